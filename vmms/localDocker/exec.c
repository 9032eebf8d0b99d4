/*
 * exec.c: running commands inside a container through Docker's exec API:
 * the job itself (run_job: the legacy command line of SPEC.md, as root in
 * /home) and the peek at a running job's output (get_partial_output). Owns
 * the demultiplexing of Docker's attach stream (8-byte frame headers when
 * there is no TTY) and the registry of running jobs that destroy_vm aborts.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ld.h"
#include "log.h"

/* Where a job's output is, first found wins: autodriver writes output.log in
 * the grading user's home (reference Tango reads autograde/output.log too);
 * some autodrivers write it in the job directory; once autodriver is done it
 * deletes the grading user's files, and output/feedback holds it all. */
#define PARTIAL_SOURCES \
    "/home/autograde/output.log /home/autograde/autolab/output.log /home/output/feedback"

/* Keeps up to cap bytes of the stdout frames of an attach stream. */
struct demux {
    unsigned char hdr[8];
    size_t hdr_have;
    uint32_t left;    /* payload bytes left in the current frame */
    int stream;       /* 1 stdout, 2 stderr */
    char *out;
    size_t len, cap;
    char err[512];    /* the start of stderr, for the log */
    size_t err_len;
};

static size_t demux_feed(const char *data, size_t n, void *arg)
{
    struct demux *d = arg;
    for (size_t i = 0; i < n;) {
        if (d->left == 0) {
            d->hdr[d->hdr_have++] = (unsigned char)data[i++];
            if (d->hdr_have == 8) {
                d->stream = d->hdr[0];
                d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 |
                          (uint32_t)d->hdr[6] << 8 | d->hdr[7];
                d->hdr_have = 0;
            }
            continue;
        }
        size_t take = n - i < d->left ? n - i : d->left;
        if (d->stream == 1 && d->len < d->cap) {
            size_t k = take < d->cap - d->len ? take : d->cap - d->len;
            memcpy(d->out + d->len, data + i, k);
            d->len += k;
        } else if (d->stream == 2 && d->err_len + 1 < sizeof d->err) {
            size_t room = sizeof d->err - 1 - d->err_len;
            size_t k = take < room ? take : room;
            memcpy(d->err + d->err_len, data + i, k);
            d->err_len += k;
        }
        d->left -= (uint32_t)take;
        i += take;
    }
    return n;
}

void ld_abort_runs(struct ld_ctx *ctx, const char *name)
{
    pthread_mutex_lock(&ctx->watch_lock);
    for (struct ld_watch *w = ctx->watches; w; w = w->next)
        if (strcmp(w->name, name) == 0)
            atomic_store(&w->aborted, 1);
    pthread_mutex_unlock(&ctx->watch_lock);
}

static void watch_add(struct ld_ctx *ctx, struct ld_watch *w, const char *name)
{
    snprintf(w->name, sizeof w->name, "%s", name);
    atomic_init(&w->aborted, 0);
    pthread_mutex_lock(&ctx->watch_lock);
    w->next = ctx->watches;
    ctx->watches = w;
    pthread_mutex_unlock(&ctx->watch_lock);
}

static void watch_remove(struct ld_ctx *ctx, struct ld_watch *w)
{
    pthread_mutex_lock(&ctx->watch_lock);
    for (struct ld_watch **p = &ctx->watches; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&ctx->watch_lock);
}

/* Runs argv in the container as root in /home and waits up to timeout_s for
 * it to end; its stdout goes to *d. *exit_code gets its exit code. abort, if
 * set by another thread, ends the wait (VMMS_ERR). */
static int exec_run(struct ld_ctx *ctx, const struct vmms_vm *vm, const char *const *argv,
                    int timeout_s, atomic_int *abort, struct demux *d, int *exit_code,
                    char *err, size_t errlen)
{
    char path[256];
    json_t *cmd = json_array();
    for (const char *const *a = argv; *a; a++)
        json_array_append_new(cmd, json_string(*a));
    json_t *body = json_pack("{s:o, s:b, s:b, s:b, s:b, s:s, s:s}", "Cmd", cmd,
                             "AttachStdin", 0, "AttachStdout", 1, "AttachStderr", 1,
                             "Tty", 0, "User", "root", "WorkingDir", "/home");
    if (body == NULL)
        return ld_fail(err, errlen, VMMS_ERR, "out of memory");
    snprintf(path, sizeof path, "/containers/%s/exec", ld_vm_ref(vm));
    struct ld_request req = {.method = "POST", .path = path, .json = body};
    struct ld_response resp;
    int rc = ld_docker(ctx, &req, &resp, err, errlen);
    json_decref(body);
    char exec_id[80] = "";
    if (rc == VMMS_OK) {
        const char *id = json_string_value(json_object_get(resp.json, "Id"));
        if (resp.status != 201 || id == NULL || strlen(id) >= sizeof exec_id ||
            strspn(id, "0123456789abcdef") != strlen(id))
            rc = ld_docker_fail(&resp, "cannot exec in container", err, errlen);
        else
            strcpy(exec_id, id);
    }
    ld_response_free(&resp);
    if (rc != VMMS_OK)
        return rc;

    json_t *start = json_pack("{s:b, s:b}", "Detach", 0, "Tty", 0);
    snprintf(path, sizeof path, "/exec/%s/start", exec_id);
    struct ld_request sreq = {.method = "POST", .path = path, .json = start,
                              .timeout_s = timeout_s, .sink = demux_feed, .sink_arg = d,
                              .abort = abort};
    rc = ld_docker(ctx, &sreq, &resp, err, errlen);
    json_decref(start);
    if (rc == VMMS_OK && resp.status != 200)
        rc = ld_docker_fail(&resp, "cannot start exec", err, errlen);
    ld_response_free(&resp);
    if (abort && atomic_load(abort))
        return ld_fail(err, errlen, VMMS_ERR, "VM %s was destroyed while the job ran",
                       vm->name);
    if (rc != VMMS_OK)
        return rc;

    /* The stream ended; the exit code may take a moment to be recorded. */
    snprintf(path, sizeof path, "/exec/%s/json", exec_id);
    struct ld_request ireq = {.method = "GET", .path = path};
    for (int tries = 0;; tries++) {
        rc = ld_docker(ctx, &ireq, &resp, err, errlen);
        if (rc == VMMS_OK && resp.status == 404)
            rc = ld_fail(err, errlen, VMMS_ERR,
                         "VM %s: the command's record is gone (container destroyed?)",
                         vm->name);
        else if (rc == VMMS_OK && resp.status != 200)
            rc = ld_docker_fail(&resp, "cannot inspect exec", err, errlen);
        bool running = rc == VMMS_OK && json_is_true(json_object_get(resp.json, "Running"));
        json_t *code = json_object_get(resp.json, "ExitCode");
        bool ended = rc == VMMS_OK && !running && json_is_integer(code);
        if (ended)
            *exit_code = (int)json_integer_value(code);
        ld_response_free(&resp);
        if (rc != VMMS_OK || ended)
            return rc;
        if (tries >= 100)
            return ld_fail(err, errlen, VMMS_ERR,
                           "VM %s: the command's output ended but it did not", vm->name);
        clock_sleep_ms(20);
    }
}

int ld_run_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, int *status,
               char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    int rc = ld_check_vm(ctx, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (run == NULL || run->timeout_s <= 0 || run->nproc < 0 || run->fsize < 0 ||
        run->max_output < 0)
        return ld_fail(err, errlen, VMMS_ERR,
                       "bad job limits: timeout must be > 0, the others >= 0");
    /* SPEC.md's command, verbatim, plus keeping autodriver's exit status
     * (the last cp would otherwise decide the exec's exit code). */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "cp -r mount/* autolab/; su autolab -c \"autodriver -u %d -f %ld -t %d -o %ld "
             "autolab > output/feedback 2>&1\"; rc=$?; cp output/feedback mount/feedback; "
             "exit $rc", run->nproc, run->fsize, run->timeout_s, run->max_output);
    const char *argv[] = {"sh", "-c", cmd, NULL};

    struct ld_watch w;
    watch_add(ctx, &w, vm->name);
    char out[256];
    struct demux d = {.out = out, .cap = sizeof out - 1};
    int code = -1;
    long t0 = clock_mono_ms();
    int limit = run->timeout_s + ctx->cfg.run_grace_s;
    rc = exec_run(ctx, vm, argv, limit, &w.aborted, &d, &code, err, errlen);
    watch_remove(ctx, &w);
    long ms = (long)(clock_mono_ms() - t0);
    if (rc == VMMS_NOT_FOUND) /* gone before the job started: destroyed */
        rc = VMMS_ERR;
    if (rc == VMMS_TIMEOUT)
        rc = ld_fail(err, errlen, VMMS_TIMEOUT,
                     "VM %s: job did not end within %d s (timeout %d s + grace %d s)",
                     vm->name, limit, run->timeout_s, ctx->cfg.run_grace_s);
    if (rc != VMMS_OK) {
        char q[600];
        log_warn("vm_run_failed", "name=%s rc=%d ms=%ld err=%s", vm->name, rc, ms,
                 log_quote(err, q, sizeof q));
        return rc;
    }
    *status = code;
    d.out[d.len] = '\0';
    d.err[d.err_len] = '\0';
    char qo[300], qe[600];
    log_info("vm_ran_job", "name=%s status=%d ms=%ld stdout=%s stderr=%s", vm->name, code, ms,
             log_quote(d.out, qo, sizeof qo), log_quote(d.err, qe, sizeof qe));
    return VMMS_OK;
}

int ld_get_partial_output(void *vctx, struct vmms_vm *vm, size_t max_bytes, char **out,
                          size_t *len, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    *out = NULL;
    *len = 0;
    int rc = ld_check_vm(ctx, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (max_bytes > (size_t)LD_BODY_MAX)
        max_bytes = LD_BODY_MAX;
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "for f in %s; do if [ -e $f ]; then exec head -c %zu $f; fi; done",
             PARTIAL_SOURCES, max_bytes);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    struct demux d = {.cap = max_bytes, .out = malloc(max_bytes + 1)};
    if (d.out == NULL)
        return ld_fail(err, errlen, VMMS_ERR, "out of memory");
    int code = -1;
    rc = exec_run(ctx, vm, argv, 0, NULL, &d, &code, err, errlen);
    if (rc != VMMS_OK) {
        free(d.out);
        return rc;
    }
    /* No output yet (job not started) is an empty answer, not an error. */
    d.out[d.len] = '\0';
    *out = d.out;
    *len = d.len;
    return VMMS_OK;
}
