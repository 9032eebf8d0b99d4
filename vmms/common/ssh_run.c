/*
 * ssh_run.c: the one helper that runs a command over an SSH connection
 * (ssh.h): open an exec channel on the (possibly shared) connection,
 * optionally stream a local file to the command's stdin, collect stdout (up
 * to a cap) and the start of stderr, and return the exit status, all within
 * a deadline and abortable by another thread. A transport failure breaks the
 * connection (vssh_break, which tells its owner).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "common/grading.h"
#include "common/ssh.h"
#include "log.h"

#define READ_CHUNK 16384
#define ABANDON_MS 1000

void vssh_out_free(struct vssh_out *out)
{
    free(out->out);
    out->out = NULL;
    out->out_len = 0;
}

int vssh_cmd_fail(const char *label, const struct vssh_out *out, const char *what, char *err,
                  size_t errlen)
{
    if (out->err[0])
        return vmms_fail(err, errlen, VMMS_ERR, "%s on %s: %s", what, label, out->err);
    return vmms_fail(err, errlen, VMMS_ERR, "%s on %s: exit status %d", what, label,
                   out->exit_code);
}

int vssh_take_partial(int rc, struct vssh_out *out, size_t max_bytes, const char *label,
                      char **outp, size_t *len, char *err, size_t errlen)
{
    if (rc == VMMS_OK && out->exit_code != 0 && out->exit_code != 1)
        rc = vssh_cmd_fail(label, out, "cannot read the job's output", err, errlen);
    if (rc != VMMS_OK) {
        vssh_out_free(out);
        return rc;
    }
    /* No output yet (job not started) is an empty answer, not an error. */
    if (out->out == NULL && (out->out = calloc(1, 1)) == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    *outp = out->out;
    *len = max_bytes ? out->out_len : 0;
    return VMMS_OK;
}

int vssh_wait_result(int rc, const struct vssh_out *out, bool aborted, const char *vm_name,
                     const char *label, const char *handle, long long wait_ms, long ms,
                     int *status, char *err, size_t errlen)
{
    const char *o = out->out ? out->out : "";
    const char *mark = strstr(o, "tango-exit=");
    bool ran = rc == VMMS_OK && out->exit_code == 0;
    if (aborted)
        rc = vmms_fail(err, errlen, VMMS_ERR, "VM %s was destroyed while the job ran", vm_name);
    else if (ran && mark)
        *status = atoi(mark + strlen("tango-exit="));
    else if (ran && strstr(o, "tango-gone"))
        rc = vmms_fail(err, errlen, VMMS_NOT_FOUND, "VM %s on %s: the container or the run "
                       "%.12s is gone", vm_name, label, handle);
    else if ((ran && strstr(o, "tango-timeout")) || rc == VMMS_TIMEOUT)
        rc = vmms_fail(err, errlen, VMMS_TIMEOUT, "VM %s on %s: the run %.12s still runs after "
                       "%lld ms", vm_name, label, handle, wait_ms);
    else if (rc == VMMS_OK)
        rc = vssh_cmd_fail(label, out, "cannot wait for the job", err, errlen);
    if (rc != VMMS_OK) {
        char q[700];
        log_warn("vm_attach_failed", "name=%s host=%s run=%.12s rc=%d ms=%ld err=%s", vm_name,
                 label, handle, rc, ms, log_quote(err, q, sizeof q));
        return rc;
    }
    log_info("vm_ran_job", "name=%s host=%s run=%.12s status=%d ms=%ld", vm_name, label, handle,
             *status, ms);
    return VMMS_OK;
}

static int append(struct vssh_out *o, size_t *cap, size_t max, const char *buf, size_t n)
{
    if (o->out_len + n > max) {
        o->out_truncated = true;
        n = max - o->out_len;
    }
    if (n == 0)
        return 0;
    if (o->out_len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 1024;
        while (nc < o->out_len + n + 1)
            nc *= 2;
        char *p = realloc(o->out, nc);
        if (p == NULL)
            return -1;
        o->out = p;
        *cap = nc;
    }
    memcpy(o->out + o->out_len, buf, n);
    o->out_len += n;
    o->out[o->out_len] = '\0';
    return 0;
}

static void append_err(struct vssh_out *o, const char *buf, size_t n)
{
    size_t have = strlen(o->err);
    size_t room = sizeof o->err - 1 - have;
    if (n > room)
        n = room;
    memcpy(o->err + have, buf, n);
    o->err[have + n] = '\0';
}

/* Ends a channel we give up on: close it and free it without waiting for
 * the server's close (which comes when the remote command ends). */
static void abandon(struct vssh_conn *c, LIBSSH2_CHANNEL *ch)
{
    struct vssh_wait w;
    vssh_wait_init(&w, ABANDON_MS, NULL);
    pthread_mutex_lock(&c->lock);
    while (libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN && vssh_wait_io(c, &w, false) == 0)
        ;
    while (libssh2_channel_free(ch) == LIBSSH2_ERROR_EAGAIN && vssh_wait_io(c, &w, false) == 0)
        ;
    pthread_mutex_unlock(&c->lock);
}

int vssh_op_failed(struct vssh_conn *c, int lrc, int wr, const char *what,
                  long timeout_ms, char *err, size_t errlen)
{
    const char *label = c->t.label;
    if (wr == VSSH_W_TIMEOUT)
        return vmms_fail(err, errlen, VMMS_TIMEOUT, "%s on %s: no answer within %ld ms", what,
                       label, timeout_ms);
    if (wr == VSSH_W_ABORT)
        return vmms_fail(err, errlen, VMMS_ERR, "%s on %s: aborted", what, label);
    if (wr == VSSH_W_BROKEN)
        return vmms_fail(err, errlen, VMMS_ERR, "%s on %s: the SSH connection failed", what,
                       label);
    char e[512], why[600];
    pthread_mutex_lock(&c->lock);
    vssh_error(c, lrc, what, e, sizeof e);
    pthread_mutex_unlock(&c->lock);
    if (!vssh_fatal(lrc))
        return vmms_fail(err, errlen, VMMS_ERR, "%s on %s", e, label);
    snprintf(why, sizeof why, "SSH connection lost (%s)", e);
    vssh_break(c, why);
    return vmms_fail(err, errlen, VMMS_ERR, "%s on %s", why, label);
}

/* The streams of one running command. */
struct streams {
    LIBSSH2_CHANNEL *ch;
    LIBSSH2_SESSION *s;
    struct vssh_out *o;
    size_t cap, max;
    int in_fd;                   /* -1: no stdin */
    char *inbuf;
    size_t in_len, in_off;
    bool in_done, eof_sent;
    int pending;                 /* the call that left a packet half-sent */
};

enum { P_NONE, P_READ, P_READ_ERR, P_WRITE, P_EOF };

static bool half_sent(LIBSSH2_SESSION *s)
{
    return libssh2_session_block_directions(s) & LIBSSH2_SESSION_BLOCK_OUTBOUND;
}

/* One libssh2 call on the streams. < 0: error; else 0. A call that returns
 * EAGAIN with a packet half-sent becomes st->pending: libssh2 requires that
 * exactly that call is made again before any other that sends. */
static int step(struct streams *st, int op, bool *progress)
{
    char buf[READ_CHUNK];
    ssize_t n = 0;
    switch (op) {
    case P_READ:
        while ((n = libssh2_channel_read(st->ch, buf, sizeof buf)) > 0) {
            *progress = true;
            if (append(st->o, &st->cap, st->max, buf, (size_t)n) != 0)
                return LIBSSH2_ERROR_ALLOC;
        }
        break;
    case P_READ_ERR:
        while ((n = libssh2_channel_read_stderr(st->ch, buf, sizeof buf)) > 0) {
            *progress = true;
            append_err(st->o, buf, (size_t)n);
        }
        break;
    case P_WRITE:
        n = libssh2_channel_write(st->ch, st->inbuf + st->in_off, st->in_len - st->in_off);
        if (n > 0) {
            st->in_off += (size_t)n;
            *progress = true;
        }
        break;
    case P_EOF:
        n = libssh2_channel_send_eof(st->ch);
        if (n == 0) {
            st->eof_sent = true;
            *progress = true;
        }
        break;
    }
    if (n == LIBSSH2_ERROR_EAGAIN) {
        if (half_sent(st->s))
            st->pending = op;
        return 0;
    }
    return n < 0 ? (int)n : 0;
}

/* Moves the streams on without blocking. Returns 1 when the command's
 * output is over, 0 to wait for the socket, or a libssh2 error (< 0).
 * Called with the lock held. */
static int pump(struct streams *st, bool *progress)
{
    int r;
    if (st->pending != P_NONE) {
        int op = st->pending;
        st->pending = P_NONE;
        if ((r = step(st, op, progress)) < 0)
            return r;
        if (st->pending != P_NONE)
            return 0;
    }
    if ((r = step(st, P_READ, progress)) < 0 || st->pending != P_NONE)
        return r;
    if ((r = step(st, P_READ_ERR, progress)) < 0 || st->pending != P_NONE)
        return r;
    /* Sends only when nothing is half-sent (a reply libssh2 owes the
     * server is finished by the reads above). */
    if (!st->eof_sent && !half_sent(st->s)) {
        if (!st->in_done && st->in_off == st->in_len && st->in_fd >= 0) {
            ssize_t n = read(st->in_fd, st->inbuf, READ_CHUNK);
            if (n < 0 && errno != EINTR)
                return LIBSSH2_ERROR_FILE;
            if (n == 0)
                st->in_done = true;
            if (n > 0) {
                st->in_len = (size_t)n;
                st->in_off = 0;
            }
        }
        if (st->in_off < st->in_len)
            r = step(st, P_WRITE, progress);
        else if (st->in_done || st->in_fd < 0)
            r = step(st, P_EOF, progress);
        if (r < 0 || st->pending != P_NONE)
            return r;
    }
    return libssh2_channel_eof(st->ch) ? 1 : 0;
}

/* Gives up on a started command: the channel abandoned, the slot given
 * back. Returns rc. */
static int run_abandon(struct vssh_conn *c, LIBSSH2_CHANNEL *ch, int rc)
{
    abandon(c, ch);
    vssh_slot_give(c);
    return rc;
}

/* Takes a channel slot (waiting on w) and opens a channel (*ch) on c
 * within the deadline, waiting on *sw: a copy of w made after the slot is
 * taken, not abortable, for run_exec to go on with. Not abortable because: libssh2 keeps a channel open's
 * state in the session, and (1.10) fails a channel request whose wait
 * reads another channel's answer first (libssh2 issue #671), so one request
 * at a time per session, and none left unanswered. A server that does not
 * answer in time takes the session down with it. VMMS_OK, or an error with
 * no slot held. */
static int run_open(struct vssh_conn *c, struct vssh_wait *w, struct vssh_wait *sw,
                    long timeout_ms, LIBSSH2_CHANNEL **ch, char *err, size_t errlen)
{
    int wr = vssh_slot_take(c, w);
    if (wr)
        return vssh_op_failed(c, 0, wr, "waiting for a free SSH channel", timeout_ms, err,
                              errlen);
    *sw = *w;
    sw->abort = NULL;
    int lrc = 0;
    *ch = NULL;
    VSSH_CALL_PTR(c, sw, true, libssh2_channel_open_session(c->session), *ch, lrc, wr);
    if (*ch != NULL)
        return VMMS_OK;
    vssh_slot_give(c);
    if (wr == VSSH_W_TIMEOUT)
        vssh_break(c, "the host did not answer a channel open in time");
    return vssh_op_failed(c, lrc, wr, "cannot open an SSH channel", timeout_ms, err, errlen);
}

/* Starts line on ch, holding the lock until the server answers, waiting
 * on run_open's sw (not abortable, as there). VMMS_OK, or an error with ch
 * abandoned and the slot given back. */
static int run_exec(struct vssh_conn *c, struct vssh_wait *sw, long timeout_ms,
                    LIBSSH2_CHANNEL *ch, const char *line, char *err, size_t errlen)
{
    int lrc, wr = 0;
    pthread_mutex_lock(&c->lock);
    while ((lrc = libssh2_channel_exec(ch, line)) == LIBSSH2_ERROR_EAGAIN &&
           (wr = vssh_wait_io(c, sw, true)) == 0)
        ;
    pthread_mutex_unlock(&c->lock);
    if (wr == VSSH_W_TIMEOUT)
        vssh_break(c, "the host did not answer a command start in time");
    if (!wr && lrc == 0)
        return VMMS_OK;
    return run_abandon(c, ch,
                       vssh_op_failed(c, lrc, wr, "cannot start the command", timeout_ms, err,
                                      errlen));
}

/* Streams stdin in and stdout/stderr out (up to max bytes of stdout) until
 * the command's output ends, within w's deadline and abortable.
 * VMMS_OK, or an error (the caller abandons ch). */
static int run_streams(struct vssh_conn *c, struct vssh_wait *w, const struct vssh_cmd *cmd,
                       long timeout_ms, LIBSSH2_CHANNEL *ch, struct vssh_out *out, size_t max,
                       char *err, size_t errlen)
{
    struct streams st = {.ch = ch, .s = c->session, .o = out, .max = max,
                         .in_fd = cmd->stdin_fd};
    if (cmd->stdin_fd >= 0 && (st.inbuf = malloc(READ_CHUNK)) == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    int lrc = 0, wr = 0;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        bool progress = false;
        int p = pump(&st, &progress);
        if (p == 1)
            break;
        if (p < 0) {
            lrc = p;
            wr = 0;
            break;
        }
        if (progress) {
            w->nap_ms = 1;
            continue;
        }
        if ((wr = vssh_wait_io(c, w, false)) != 0)
            break;
    }
    pthread_mutex_unlock(&c->lock);
    free(st.inbuf);
    if (lrc == 0 && !wr)
        return VMMS_OK;
    if (wr == VSSH_W_TIMEOUT && cmd->own_timeout)
        return vmms_fail(err, errlen, VMMS_TIMEOUT, "the command on %s did not end within "
                         "%ld ms", c->t.label, timeout_ms);
    return vssh_op_failed(c, lrc, wr, "remote command", timeout_ms, err, errlen);
}

/* Output over: closes ch and waits for the server's close, which brings
 * the exit status (or the signal, added to out->err). VMMS_OK, or an
 * error (the caller abandons ch). */
static int run_close(struct vssh_conn *c, struct vssh_wait *w, long timeout_ms,
                     LIBSSH2_CHANNEL *ch, struct vssh_out *out, char *err, size_t errlen)
{
    int lrc, wr;
    VSSH_CALL(c, w, libssh2_channel_close(ch), lrc, wr);
    if (!wr && lrc == 0)
        VSSH_CALL(c, w, libssh2_channel_wait_closed(ch), lrc, wr);
    if (wr || lrc != 0)
        return vssh_op_failed(c, lrc, wr, "waiting for the command to end", timeout_ms, err,
                              errlen);
    pthread_mutex_lock(&c->lock);
    char *sig = NULL;
    size_t siglen = 0;
    libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL);
    out->exit_code = sig ? -1 : libssh2_channel_get_exit_status(ch);
    if (sig) {
        char m[96];
        snprintf(m, sizeof m, "%s(killed by signal %.*s)", out->err[0] ? " " : "",
                 (int)(siglen < 32 ? siglen : 32), sig);
        append_err(out, m, strlen(m));
        libssh2_free(c->session, sig);
    }
    pthread_mutex_unlock(&c->lock);
    return VMMS_OK;
}

/* Frees a closed channel and gives its slot back. */
static void run_release(struct vssh_conn *c, LIBSSH2_CHANNEL *ch)
{
    struct vssh_wait fw;
    int lrc, wr;
    vssh_wait_init(&fw, ABANDON_MS, NULL);
    VSSH_CALL(c, &fw, libssh2_channel_free(ch), lrc, wr);
    (void)lrc;
    (void)wr;
    vssh_slot_give(c);
}

/* Errors quote stderr on one line: newlines become spaces, runs of blanks
 * one space, none at the ends. */
static void one_line(char *text)
{
    size_t k = 0;
    for (size_t i = 0; text[i]; i++) {
        char ch = text[i] == '\n' || text[i] == '\r' || text[i] == '\t' ? ' ' : text[i];
        if (ch == ' ' && (k == 0 || text[k - 1] == ' '))
            continue;
        text[k++] = ch;
    }
    while (k > 0 && text[k - 1] == ' ')
        k--;
    text[k] = '\0';
}

int vssh_run(struct vssh_conn *c, const struct vssh_cmd *cmd, struct vssh_out *out, char *err,
             size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->exit_code = -1;
    long timeout_ms = cmd->timeout_ms > 0 ? cmd->timeout_ms : (long)c->t.command_timeout_ms;
    size_t max = cmd->out_max ? cmd->out_max : 65536;
    if (max > (size_t)VSSH_OUT_MAX)
        max = VSSH_OUT_MAX;
    struct vssh_wait w, sw;
    vssh_wait_init(&w, timeout_ms, cmd->abort);
    LIBSSH2_CHANNEL *ch;
    int rc = run_open(c, &w, &sw, timeout_ms, &ch, err, errlen);
    if (rc == VMMS_OK)
        rc = run_exec(c, &sw, timeout_ms, ch, cmd->line, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    rc = run_streams(c, &w, cmd, timeout_ms, ch, out, max, err, errlen);
    if (rc == VMMS_OK)
        rc = run_close(c, &w, timeout_ms, ch, out, err, errlen);
    if (rc != VMMS_OK)
        return run_abandon(c, ch, rc);
    run_release(c, ch);
    one_line(out->err);
    return VMMS_OK;
}
