/*
 * exec.c: running commands inside a container through Docker's exec API:
 * the job itself (start_job starts the legacy command line of docs/api.md as a
 * detached exec, as root in /home; attach_job waits for it on Docker's event
 * stream; run_job is the two) and the peek at a running job's output
 * (get_partial_output, as the grading user). Owns the demultiplexing of
 * Docker's attach stream (8-byte frame headers when there is no TTY) and the
 * registry of waits that destroy_vm aborts.
 */
#include <inttypes.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "ld.h"
#include "log.h"

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

/* Creates an exec of argv in the container (as user, in /home); attach:
 * its stdout and stderr are kept for the caller's stream, else discarded.
 * exec_id gets its id. */
static int exec_create(struct ld_ctx *ctx, const struct vmms_vm *vm, const char *const *argv,
                       const char *user, bool attach, char *exec_id, size_t idlen,
                       char *err, size_t errlen)
{
    char path[256];
    json_t *cmd = json_array();
    for (const char *const *a = argv; *a; a++)
        json_array_append_new(cmd, json_string(*a));
    json_t *body = json_pack("{s:o, s:b, s:b, s:b, s:b, s:s, s:s}", "Cmd", cmd,
                             "AttachStdin", 0, "AttachStdout", attach, "AttachStderr", attach,
                             "Tty", 0, "User", user, "WorkingDir", "/home");
    if (body == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    snprintf(path, sizeof path, "/containers/%s/exec", ld_vm_ref(vm));
    struct vmms_engine_req req = {.method = "POST", .path = path, .json = body};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    json_decref(body);
    if (rc == VMMS_OK) {
        const char *id = json_string_value(json_object_get(resp.json, "Id"));
        if (resp.status != 201 || id == NULL || strlen(id) >= idlen ||
            strspn(id, "0123456789abcdef") != strlen(id))
            rc = vmms_engine_fail(&resp, "cannot exec in container", err, errlen);
        else
            strcpy(exec_id, id);
    }
    vmms_engine_resp_free(&resp);
    return rc;
}

/* The state of exec id: *running, or its *exit_code once it ended.
 * VMMS_NOT_FOUND when Docker has no such exec (or container). */
static int exec_inspect(struct ld_ctx *ctx, const char *id, bool *running, int *exit_code,
                        char *err, size_t errlen)
{
    char path[160];
    snprintf(path, sizeof path, "/exec/%s/json", id);
    struct vmms_engine_req req = {.method = "GET", .path = path};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "cannot inspect exec", err, errlen);
    if (rc == VMMS_OK) {
        json_t *code = json_object_get(resp.json, "ExitCode");
        *running = json_is_true(json_object_get(resp.json, "Running"));
        if (!*running && !json_is_integer(code))
            *running = true; /* started but the code is not recorded yet */
        *exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
    }
    vmms_engine_resp_free(&resp);
    return rc;
}

/* Runs argv in the container as user in /home, attached, and waits up to
 * timeout_ms for it to end; its stdout goes to *d. *exit_code gets its exit
 * code. Used for short commands (partial output). */
static int exec_run(struct ld_ctx *ctx, const struct vmms_vm *vm, const char *const *argv,
                    const char *user, long timeout_ms, struct demux *d, int *exit_code,
                    char *err, size_t errlen)
{
    char exec_id[80] = "", path[160];
    int rc = exec_create(ctx, vm, argv, user, true, exec_id, sizeof exec_id, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    long deadline = clock_mono_ms() + timeout_ms;
    json_t *start = json_pack("{s:b, s:b}", "Detach", 0, "Tty", 0);
    snprintf(path, sizeof path, "/exec/%s/start", exec_id);
    struct vmms_engine_req sreq = {.method = "POST", .path = path, .json = start,
                                   .timeout_ms = timeout_ms, .sink = demux_feed, .sink_arg = d};
    struct vmms_engine_resp resp;
    rc = vmms_engine_call(&ctx->engine, &sreq, &resp, err, errlen);
    json_decref(start);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "cannot start exec", err, errlen);
    vmms_engine_resp_free(&resp);
    /* The stream ended; the exit code may take a moment to be recorded. */
    for (long pause = 2; rc == VMMS_OK; pause = pause < 50 ? pause * 2 : 50) {
        bool running;
        rc = exec_inspect(ctx, exec_id, &running, exit_code, err, errlen);
        if (rc == VMMS_OK && !running)
            return VMMS_OK;
        if (rc == VMMS_OK && clock_mono_ms() + pause > deadline)
            return vmms_fail(err, errlen, VMMS_TIMEOUT,
                           "VM %s: the command's output ended but it did not", vm->name);
        clock_sleep_ms(pause);
    }
    return rc == VMMS_NOT_FOUND
               ? vmms_fail(err, errlen, VMMS_ERR, "VM %s: the command's record is gone "
                         "(container destroyed?)", vm->name)
               : rc;
}

int ld_start_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, char *handle,
                 size_t handlelen, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    char cmd[768], exec_id[80] = "", path[160];
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc == VMMS_OK)
        rc = vmms_grading_command(run, vm->memory_mb ? vm->memory_mb
                                                     : ctx->cfg.defaults.memory_mb,
                                  NULL, cmd, sizeof cmd, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (handle == NULL || handlelen < 65)
        return vmms_fail(err, errlen, VMMS_ERR, "start_job: the handle buffer must hold 65 "
                       "bytes");
    const char *argv[] = {"sh", "-c", cmd, NULL};
    long t0 = clock_mono_ms();
    rc = exec_create(ctx, vm, argv, "root", false, exec_id, sizeof exec_id, err, errlen);
    if (rc == VMMS_OK) {
        /* Detached: the run belongs to the container, not to this connection. */
        json_t *start = json_pack("{s:b, s:b}", "Detach", 1, "Tty", 0);
        snprintf(path, sizeof path, "/exec/%s/start", exec_id);
        struct vmms_engine_req sreq = {.method = "POST", .path = path, .json = start};
        struct vmms_engine_resp resp;
        rc = vmms_engine_call(&ctx->engine, &sreq, &resp, err, errlen);
        json_decref(start);
        if (rc == VMMS_OK && resp.status != 200 && resp.status != 204)
            rc = vmms_engine_fail(&resp, "cannot start the job", err, errlen);
        vmms_engine_resp_free(&resp);
    }
    if (rc != VMMS_OK) {
        char q[600];
        log_warn("vm_start_failed", "name=%s rc=%d err=%s", vm->name, rc,
                 log_quote(err, q, sizeof q));
        return rc == VMMS_NOT_FOUND ? VMMS_ERR : rc;
    }
    snprintf(handle, handlelen, "%s", exec_id);
    log_info("vm_started_job", "name=%s exec=%.12s ms=%ld", vm->name, exec_id,
             (long)(clock_mono_ms() - t0));
    return VMMS_OK;
}

/* Reads Docker's event stream (JSON lines) until the exec's end or the
 * container's. */
struct ev_wait {
    const char *exec_id;
    char line[16384];
    size_t len;
    bool overflow;      /* the current line is too long: skipped */
    bool exec_died;
    int exit_code;
    bool container_gone;
};

static bool ev_line(struct ev_wait *w)
{
    json_t *ev = json_loadb(w->line, w->len, 0, NULL);
    const char *action = json_string_value(json_object_get(ev, "Action"));
    json_t *attrs = json_object_get(json_object_get(ev, "Actor"), "Attributes");
    const char *id = json_string_value(json_object_get(attrs, "execID"));
    const char *code = json_string_value(json_object_get(attrs, "exitCode"));
    bool stop = false;
    if (action && strcmp(action, "exec_die") == 0 && id && strcmp(id, w->exec_id) == 0) {
        w->exec_died = true;
        w->exit_code = code ? atoi(code) : -1;
        stop = true;
    } else if (action && (strcmp(action, "die") == 0 || strcmp(action, "destroy") == 0)) {
        w->container_gone = true;
        stop = true;
    }
    json_decref(ev);
    return stop;
}

static size_t ev_feed(const char *data, size_t n, void *arg)
{
    struct ev_wait *w = arg;
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n') {
            if (w->len + 1 < sizeof w->line)
                w->line[w->len++] = data[i];
            else
                w->overflow = true;
            continue;
        }
        bool stop = !w->overflow && w->len > 0 && ev_line(w);
        w->len = 0;
        w->overflow = false;
        if (stop)
            return 0; /* all we wanted: ends the transfer */
    }
    return n;
}

/* Waits for the exec's exec_die (or the container's die/destroy) event, at
 * most until deadline. Events are replayed from a little before now, so one
 * that came between the caller's inspect and this call is not missed. */
static int wait_events(struct ld_ctx *ctx, const struct vmms_vm *vm, struct ev_wait *w,
                       long deadline, atomic_int *abort, char *err, size_t errlen)
{
    char filter[400], enc[1200], path[1400];
    snprintf(filter, sizeof filter,
             "{\"type\":[\"container\"],\"container\":[\"%s\"],"
             "\"event\":[\"exec_die\",\"die\",\"destroy\"]}", ld_vm_ref(vm));
    snprintf(path, sizeof path, "/events?since=%lld&filters=%s",
             (long long)time(NULL) - 5, vmms_engine_urlencode(filter, enc, sizeof enc));
    long left = deadline - clock_mono_ms();
    struct vmms_engine_req req = {.method = "GET", .path = path,
                                  .timeout_ms = left > 1 ? left : 1, .sink = ev_feed,
                                  .sink_arg = w, .abort = abort};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "cannot watch Docker's events", err, errlen);
    vmms_engine_resp_free(&resp);
    if (rc == VMMS_OK && !w->exec_died && !w->container_gone)
        rc = vmms_fail(err, errlen, VMMS_ERR, "Docker's event stream ended");
    return rc;
}

static bool handle_ok(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    return n >= 12 && n <= 64 && strspn(h, "0123456789abcdef") == n;
}

int ld_attach_job(void *vctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                  int *status, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (!handle_ok(handle))
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: bad run handle", vm->name);
    if (wait_ms < 0)
        wait_ms = 0;
    struct vmms_watch w;
    vmms_watch_add(&ctx->watches, &w, vm->name);
    long t0 = clock_mono_ms();
    long deadline = t0 + (long)wait_ms;
    bool running = false;
    int code = -1;
    /* At most twice: the first inspect, and once more after the stream saw
     * the container end (the exec's own record then says how it ended). */
    rc = exec_inspect(ctx, handle, &running, &code, err, errlen);
    if (rc == VMMS_OK && running) {
        struct ev_wait ew = {.exec_id = handle};
        rc = wait_events(ctx, vm, &ew, deadline, &w.aborted, err, errlen);
        if (rc == VMMS_OK && ew.exec_died) {
            running = false;
            code = ew.exit_code;
        } else if (rc == VMMS_OK) {
            rc = exec_inspect(ctx, handle, &running, &code, err, errlen);
            if (rc == VMMS_OK && running)
                rc = vmms_fail(err, errlen, VMMS_NOT_FOUND, "VM %s: the container stopped "
                             "while the job ran", vm->name);
        }
    }
    vmms_watch_remove(&ctx->watches, &w);
    long ms = (long)(clock_mono_ms() - t0);
    if (atomic_load(&w.aborted))
        rc = vmms_fail(err, errlen, VMMS_ERR, "VM %s was destroyed while the job ran",
                     vm->name);
    else if (rc == VMMS_NOT_FOUND)
        rc = vmms_fail(err, errlen, VMMS_NOT_FOUND, "VM %s: the container or the run %.12s "
                     "is gone", vm->name, handle);
    else if (rc == VMMS_TIMEOUT)
        rc = vmms_fail(err, errlen, VMMS_TIMEOUT, "VM %s: the run %.12s still runs after "
                     "%lld ms", vm->name, handle, wait_ms);
    if (rc != VMMS_OK) {
        char q[600];
        log_warn("vm_attach_failed", "name=%s exec=%.12s rc=%d ms=%ld err=%s", vm->name,
                 handle, rc, ms, log_quote(err, q, sizeof q));
        return rc;
    }
    *status = code;
    log_info("vm_ran_job", "name=%s exec=%.12s status=%d ms=%ld", vm->name, handle, code, ms);
    return VMMS_OK;
}

int ld_run_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, int *status,
               char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    return vmms_run_via_attach(&vmms_plugin, ctx, vm, run, ctx->cfg.run_grace_s, status, err,
                               errlen);
}

int ld_get_partial_output(void *vctx, struct vmms_vm *vm, size_t max_bytes, char **out,
                          size_t *len, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    int rc = vmms_partial_begin(ctx->prefix, vm, &max_bytes, VMMS_ENGINE_BODY_MAX, out, len,
                                err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char cmd[512];
    vmms_partial_script(max_bytes, cmd, sizeof cmd);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    struct demux d = {.cap = max_bytes, .out = malloc(max_bytes + 1)};
    if (d.out == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    int code = -1;
    rc = exec_run(ctx, vm, argv, VMMS_PARTIAL_USER, 1000L * (VMMS_PARTIAL_DEADLINE_S + 2), &d,
                  &code, err, errlen);
    if (rc == VMMS_OK && (code == 126 || code == 127)) {
        /* Docker could not run it: its reason is on the stream, not output. */
        d.out[d.len < 200 ? d.len : 200] = '\0';
        for (char *p = d.out; *p; p++)
            if (*p == '\r' || *p == '\n')
                *p = ' ';
        rc = vmms_fail(err, errlen, VMMS_ERR, "VM %s: cannot read the output as %s (does the "
                     "image have that user?): %s", vm->name, VMMS_PARTIAL_USER, d.out);
    }
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
