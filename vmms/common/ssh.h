/*
 * ssh.h: the SSH client every VMMS back end that reaches its instances over
 * SSH shares (distDocker's worker hosts, ec2SSH's virtual machines), on
 * libssh2. It owns:
 *   ssh.c      one connection: TCP connect with a deadline, handshake, host
 *              key verification (known_hosts, a list of expected
 *              fingerprints, or none, by the target's policy), public key
 *              authentication; the locking and waiting rules for libssh2
 *              calls; channel slots; breaking and closing a connection
 *   ssh_run.c  running one command with a timeout: stdin streamed from a
 *              file, stdout (capped) and the start of stderr collected, the
 *              exit status returned, abortable by another thread
 *   sftp.c     files in (a set of input files into a directory) and out
 *              (one regular file, size-capped, to a new local file) over SFTP
 *   quote.c    single-quoting for sh
 * Keys are never logged; host key fingerprints are.
 *
 * Concurrency. One connection may be shared by several threads. libssh2 is
 * used in non-blocking mode and every libssh2 call on a session is made
 * with the connection's mutex held; a call that would block releases the
 * mutex while it waits (poll() with a short, growing timeout), so a
 * long-running exec does not hold up other channels. Two exceptions keep
 * the mutex while waiting: calls whose state libssh2 keeps per session
 * (opening a channel, starting SFTP) and any wait for the socket to take
 * more outgoing data (a half-sent packet must be finished by the call that
 * started it).
 */
#ifndef TANGO_VMMS_SSH_H
#define TANGO_VMMS_SSH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <libssh2.h>

#include "vmms.h"

#pragma GCC visibility push(hidden)

#define VSSH_OUT_MAX (16L * 1024 * 1024)   /* biggest stdout a command may keep */

/* How a server's host key is trusted. */
enum vssh_key_policy {
    VSSH_KEY_KNOWN_HOSTS = 0,  /* must match the target's known_hosts file */
    VSSH_KEY_FINGERPRINTS,     /* its SHA256 fingerprint must be in `fingerprints` */
    VSSH_KEY_ANY,              /* not checked (the caller logs that choice) */
};

/* One SSH server and how to reach and trust it. The strings are the
 * caller's and must outlive every connection made with it. */
struct vssh_target {
    const char *address;
    int port;
    const char *user;
    const char *private_key;
    const char *public_key;    /* "" = libssh2 derives it from the private key */
    const char *known_hosts;   /* VSSH_KEY_KNOWN_HOSTS (may be "" otherwise) */
    const char *fingerprints;  /* VSSH_KEY_FINGERPRINTS: "SHA256:..." words */
    enum vssh_key_policy policy;
    int max_sessions;          /* the server's MaxSessions (channels at once) */
    int connect_timeout_ms;    /* the whole of connect + handshake + auth */
    int command_timeout_ms;    /* default of a command or transfer */
    const char *label;         /* "address:port" for logs and errors */
};

struct vssh_conn;
/* Called by vssh_break (once per break) after the connection is marked
 * broken, with the reason; the owner's hook (distDocker marks its host down). */
typedef void (*vssh_break_cb)(struct vssh_conn *c, const char *reason);

struct vssh_conn {
    struct vssh_target t;
    pthread_mutex_t lock;        /* held for every libssh2 call on session */
    pthread_cond_t slot_cond;    /* (with lock) a channel slot was freed */
    LIBSSH2_SESSION *session;
    int sock;
    int channels;                /* open channels (lock); <= t.max_sessions */
    atomic_bool broken;          /* transport failed: every call fails fast */
    vssh_break_cb on_break;      /* NULL: none */
    char fingerprint[80];        /* the server's host key, "SHA256:..." (after open) */
    bool inited;                 /* lock, cond and socket are set up */
};

/* A waiting budget for one operation. */
struct vssh_wait {
    long deadline_ms;            /* monotonic */
    atomic_int *abort;           /* another thread sets it to stop the wait */
    int nap_ms;                  /* current poll timeout; grows to VSSH_NAP_MAX */
};
#define VSSH_NAP_MAX 100

/* vssh_wait_io results (besides 0: try the call again). */
enum { VSSH_W_TIMEOUT = 1, VSSH_W_ABORT, VSSH_W_BROKEN };

void vssh_wait_init(struct vssh_wait *w, long timeout_ms, atomic_int *abort);
/* Called with c->lock held after a libssh2 call returned EAGAIN; returns
 * with it held. Waits for the socket (at most nap_ms); releases the lock
 * meanwhile unless hold is set or the session waits to send. */
int vssh_wait_io(struct vssh_conn *c, struct vssh_wait *w, bool hold);

/* Calls expr (a libssh2 call returning an int status or count) with
 * c->lock held until it stops returning EAGAIN, waiting by vssh_wait_io in
 * between (lock released unless the wait must hold it). Leaves the call's
 * result in lrc and the wait's in wr (0, or VSSH_W_*). */
#define VSSH_CALL(c, w, expr, lrc, wr)                                  \
    do {                                                                \
        (wr) = 0;                                                       \
        pthread_mutex_lock(&(c)->lock);                                 \
        for (;;) {                                                      \
            (lrc) = (expr);                                             \
            if ((lrc) != LIBSSH2_ERROR_EAGAIN)                          \
                break;                                                  \
            if (((wr) = vssh_wait_io((c), (w), false)) != 0)            \
                break;                                                  \
        }                                                               \
        pthread_mutex_unlock(&(c)->lock);                               \
    } while (0)

/* The same for calls returning a pointer (NULL + last errno EAGAIN: again);
 * hold keeps the lock while waiting (session-level calls). */
#define VSSH_CALL_PTR(c, w, hold, expr, ptr, lrc, wr)                   \
    do {                                                                \
        (wr) = 0;                                                       \
        (lrc) = 0;                                                      \
        pthread_mutex_lock(&(c)->lock);                                 \
        for (;;) {                                                      \
            (ptr) = (expr);                                             \
            if ((ptr) != NULL)                                          \
                break;                                                  \
            (lrc) = libssh2_session_last_errno((c)->session);           \
            if ((lrc) != LIBSSH2_ERROR_EAGAIN)                          \
                break;                                                  \
            if (((wr) = vssh_wait_io((c), (w), (hold))) != 0)           \
                break;                                                  \
        }                                                               \
        pthread_mutex_unlock(&(c)->lock);                               \
    } while (0)

/* libssh2_init once per process; VMMS_OK or VMMS_ERR with err set. */
int vssh_global_init(char *err, size_t errlen);

/* True for libssh2 errors after which the session is unusable. */
bool vssh_fatal(int rc);
/* "what: libssh2's last message (code)" into err. Called with c->lock held
 * (or on a connection no other thread has). */
void vssh_error(struct vssh_conn *c, int rc, const char *what, char *err, size_t errlen);

/* Connects c (caller's storage, zeroed by this call) to t: TCP, handshake,
 * host key by t->policy, authentication, all within t->connect_timeout_ms;
 * stop (may be NULL) set by another thread gives up. On failure *refused
 * tells a host-key refusal from other errors, and c needs no vssh_close.
 * The fingerprint seen is logged (event ssh_host_key at debug level). */
int vssh_open(struct vssh_conn *c, const struct vssh_target *t, atomic_int *stop, bool *refused,
              char *err, size_t errlen);
/* Disconnects and releases what vssh_open made (not c itself). Nobody else
 * may use c any more. Safe on a connection that failed to open. */
void vssh_close(struct vssh_conn *c);
/* Marks c broken (every call on it fails fast, waiters wake) and calls
 * c->on_break with reason. */
void vssh_break(struct vssh_conn *c, const char *reason);

/* Takes / returns a channel slot of c (waits up to w's deadline). */
int vssh_slot_take(struct vssh_conn *c, struct vssh_wait *w);
void vssh_slot_give(struct vssh_conn *c);

/* ---- ssh_run.c ---- */
struct vssh_cmd {
    const char *line;            /* shell command line run on the server */
    int timeout_ms;              /* the whole call; <= 0: t.command_timeout_ms */
    atomic_int *abort;           /* another thread sets it: stop, VMMS_ERR */
    int stdin_fd;                /* streamed to the command's stdin; -1: none */
    size_t out_max;              /* stdout bytes kept (the rest is read and dropped) */
    bool own_timeout;            /* a timeout is the command's (a job), not the server's */
};

struct vssh_out {
    int exit_code;               /* -1: none (killed by a signal) */
    char *out;                   /* stdout, NUL-ended (malloc'd) */
    size_t out_len;
    bool out_truncated;
    char err[1024];              /* start of stderr, NUL-ended, on one line */
};

/* Runs cmd on c. VMMS_OK when the command ran to its end (whatever its
 * exit code), VMMS_TIMEOUT, or VMMS_ERR (transport failure, aborted). A
 * transport failure breaks c. Free out with vssh_out_free always. */
int vssh_run(struct vssh_conn *c, const struct vssh_cmd *cmd, struct vssh_out *out, char *err,
             size_t errlen);
void vssh_out_free(struct vssh_out *out);
/* Maps a failed libssh2 call (its result lrc, or a wait result wr) to a
 * status with err set; a transport failure also breaks c. */
int vssh_op_failed(struct vssh_conn *c, int lrc, int wr, const char *what, long timeout_ms,
                   char *err, size_t errlen);
/* The end of a getPartialOutput peek (vmms_partial_script) run by vssh_run
 * with status rc: a failed peek (exit code other than 0 or 1) is VMMS_ERR
 * naming label; else *outp gets out's bytes (an empty string when the job
 * printed nothing yet), *len their length (0 when max_bytes is 0). Frees
 * out on failure; on success out's buffer is the caller's. */
int vssh_take_partial(int rc, struct vssh_out *out, size_t max_bytes, const char *label,
                      char **outp, size_t *len, char *err, size_t errlen);
/* The end of an attach_job wait run by vssh_run with status rc, for back
 * ends whose wait command prints one of tango-exit=N (*status = N),
 * tango-gone (VMMS_NOT_FOUND) or tango-timeout (VMMS_TIMEOUT); aborted
 * (destroy_vm came) is VMMS_ERR; another answer is VMMS_ERR naming label.
 * A failed rc is kept. Logs the outcome (vm_ran_job, or vm_attach_failed
 * with the reason) with the VM's name, label, the handle and ms waited. */
int vssh_wait_result(int rc, const struct vssh_out *out, bool aborted, const char *vm_name,
                     const char *label, const char *handle, long long wait_ms, long ms,
                     int *status, char *err, size_t errlen);
/* Fills err with "what on LABEL: <stderr or exit code>"; returns VMMS_ERR. */
int vssh_cmd_fail(const char *label, const struct vssh_out *out, const char *what, char *err,
                  size_t errlen);

/* ---- sftp.c ---- */
/* Writes each file into dir/<dest_name> on c's server (names checked with
 * vmms_dest_name_ok; a file of that name is replaced, never followed), in
 * order, all within timeout_ms. VMMS_NOT_FOUND: dir does not exist. */
int vssh_put_files(struct vssh_conn *c, const char *dir, const struct vmms_file *files,
                   size_t nfiles, long timeout_ms, char *err, size_t errlen);
/* Copies the regular file remote_path (not a symlink, at most max_bytes)
 * to dest_path, created O_EXCL|O_NOFOLLOW. VMMS_NOT_FOUND: no such file
 * (dest_path not made). *bytes (may be NULL) gets the size copied. */
int vssh_get_file(struct vssh_conn *c, const char *remote_path, const char *dest_path,
                  long long max_bytes, long timeout_ms, long long *bytes, char *err,
                  size_t errlen);

/* ---- quote.c ---- */
/* Single-quotes s for sh into buf; returns buf ("" if it does not fit). */
const char *vmms_sh_quote(const char *s, char *buf, size_t bufsz);

#pragma GCC visibility pop

#endif
