/*
 * remote.c: ec2SSH's work on a VM over SSH (vmms/common/ssh.h), each call on
 * its own connection to vm->host. Owns the host key rule (known_hosts
 * "console": the key must be one the instance printed on its console;
 * "accept-new": the first key a VM shows is trusted, logged, and required
 * from then on while this process knows the VM), running as root (sudo -n
 * when ssh_user is not root), wait_vm (until SSH answers and the image has
 * the autodriver), copy in to /home/mount and out of /home/mount/feedback
 * (SFTP), the detached run (start_job) and the wait on its exit file
 * (attach_job), the partial output peek, and the registry of waits that
 * destroy_vm aborts.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ec2.h"
#include "log.h"

#define MOUNT "/home/mount"

/* The attach wait on the VM: $1 token, $2 seconds. The run marker holds
 * the run's pid once started; prints tango-exit=N, tango-gone (no such
 * run, or its process died without an exit file) or tango-timeout. */
#define WAIT_SCRIPT                                                                        \
    "f=" MOUNT "/.tango-exit-$1; m=" MOUNT "/.tango-run-$1; dl=$(( $(date +%s) + $2 )); "  \
    "while :; do "                                                                         \
    "if [ -f \"$f\" ]; then echo \"tango-exit=$(cat \"$f\")\"; exit 0; fi; "               \
    "[ -f \"$m\" ] || { echo tango-gone; exit 0; }; p=$(cat \"$m\"); "                     \
    "if [ -n \"$p\" ] && ! kill -0 \"$p\" 2>/dev/null; then "                              \
    "[ -f \"$f\" ] && continue; echo tango-gone; exit 0; fi; "                             \
    "[ $(date +%s) -ge $dl ] && { echo tango-timeout; exit 0; }; sleep 0.2; done"

/* ---- connections ---- */

struct vmconn {
    struct vssh_conn c;
    struct vssh_target t;
    char label[500];
    char fps[512];
};

static bool addr_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 64 && strspn(s, "0123456789abcdefABCDEF.:") == n;
}

/* Connects to vm by the host key rule. VMMS_OK, or VMMS_ERR with err. */
static int vm_connect(struct ec2_ctx *ctx, struct vmms_vm *vm, struct vmconn *vc,
                      int timeout_s, char *err, size_t errlen)
{
    const struct ec2_config *cfg = &ctx->cfg;
    memset(vc, 0, sizeof *vc);
    if (!addr_ok(vm->host))
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s has no usable address (\"%.64s\")",
                         vm->name, vm->host);
    struct ec2_vm *pv = vm->priv; /* NULL after a takeover: nothing is kept then */
    snprintf(vc->label, sizeof vc->label, "%s (i-%s at %s)", vm->name, vm->id, vm->host);
    vc->t = (struct vssh_target){
        .address = vm->host, .port = cfg->ssh_port, .user = cfg->ssh_user,
        .private_key = cfg->private_key, .public_key = "", .known_hosts = "",
        .max_sessions = 4, .connect_timeout_ms = 1000 * cfg->ssh_timeout_s,
        .command_timeout_ms = 1000 * (timeout_s > 0 ? timeout_s : cfg->command_timeout_s),
        .label = vc->label};
    if (pv && pv->fingerprints[0])
        snprintf(vc->fps, sizeof vc->fps, "%s", pv->fingerprints);
    else if (cfg->host_keys == EC2_KEYS_CONSOLE) {
        int rc = ec2_console_fingerprints(ctx, vm->id, vc->fps, sizeof vc->fps, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        if (!vc->fps[0])
            return vmms_fail(err, errlen, VMMS_ERR,
                             "VM %s: its console shows no SSH host key fingerprints yet", vm->name);
    }
    vc->t.policy = vc->fps[0] ? VSSH_KEY_FINGERPRINTS : VSSH_KEY_ANY;
    vc->t.fingerprints = vc->fps;
    bool refused = false;
    int rc = vssh_open(&vc->c, &vc->t, &ctx->stopping, &refused, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (!vc->fps[0]) {
        log_warn("host_key_accepted_new", "name=%s id=i-%s host=%s fingerprint=%s "
                 "note=\"known_hosts accept-new: the first key this VM showed is trusted\"",
                 vm->name, vm->id, vm->host, vc->c.fingerprint);
    }
    if (pv && !pv->fingerprints[0])
        snprintf(pv->fingerprints, sizeof pv->fingerprints, "%s",
                 vc->fps[0] ? vc->fps : vc->c.fingerprint);
    return VMMS_OK;
}

static void vm_close(struct vmconn *vc)
{
    vssh_close(&vc->c);
}

/* The line run as root: itself, or through sudo -n for another ssh_user. */
static const char *as_root(const struct ec2_ctx *ctx, const char *line, char *buf, size_t bufsz)
{
    if (strcmp(ctx->cfg.ssh_user, "root") == 0)
        return line;
    char *q = malloc(bufsz);
    if (q == NULL)
        return "";
    int n = snprintf(buf, bufsz, "sudo -n sh -c %s", vmms_sh_quote(line, q, bufsz));
    bool ok = q[0] && n > 0 && (size_t)n < bufsz;
    free(q);
    return ok ? buf : "";
}

/* Runs line as root on vm (a fresh connection). VMMS_OK when it ran and
 * exited 0; else VMMS_ERR / VMMS_TIMEOUT with err. */
static int vm_run(struct ec2_ctx *ctx, struct vmms_vm *vm, const char *line, int timeout_s,
                  atomic_int *abort, struct vssh_out *out, const char *what, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t sz = strlen(line) * 4 + 64;
    char *buf = malloc(sz);
    if (buf == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    const char *l = as_root(ctx, line, buf, sz);
    if (!l[0]) {
        free(buf);
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: command line too long", vm->name);
    }
    struct vmconn vc;
    int rc = vm_connect(ctx, vm, &vc, timeout_s, err, errlen);
    if (rc == VMMS_OK) {
        struct vssh_cmd cmd = {.line = l, .abort = abort, .stdin_fd = -1, .out_max = 65536,
                               .own_timeout = true};
        rc = vssh_run(&vc.c, &cmd, out, err, errlen);
        if (rc == VMMS_OK && out->exit_code != 0)
            rc = vssh_cmd_fail(vc.label, out, what, err, errlen);
        vm_close(&vc);
    }
    free(buf);
    return rc;
}

/* A failed step on a VM: VMMS_NOT_FOUND when EC2 says the instance is gone. */
static int gone_or(struct ec2_ctx *ctx, struct vmms_vm *vm, int rc, char *err, size_t errlen)
{
    char state[32], e[300];
    if (ec2_instance_state(ctx, vm->id, state, sizeof state, NULL, 0, e, sizeof e) == VMMS_OK &&
        (!state[0] || strcmp(state, "terminated") == 0 || strcmp(state, "shutting-down") == 0))
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "VM %s: instance i-%s is %s", vm->name,
                         vm->id, state[0] ? state : "gone");
    if (vm->priv)
        ((struct ec2_vm *)vm->priv)->failed = true;
    return rc;
}

/* ---- wait_vm ---- */

int ec2_wait_vm(void *vctx, struct vmms_vm *vm, int timeout_s, char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    long t0 = clock_mono_ms(), deadline = t0 + 1000L * (timeout_s > 0 ? timeout_s : 60);
    char last[600] = "";
    int tries = 0;
    while (!atomic_load(&ctx->stopping)) {
        tries++;
        struct vssh_out out;
        char e[600];
        rc = vm_run(ctx, vm, "command -v autodriver >/dev/null && test -d /home", 0, NULL, &out,
                    "the image has no autodriver", e, sizeof e);
        vssh_out_free(&out);
        if (rc == VMMS_OK) {
            log_info("vm_ready", "name=%s host=%s tries=%d ms=%ld", vm->name, vm->host, tries,
                     (long)(clock_mono_ms() - t0));
            return VMMS_OK;
        }
        snprintf(last, sizeof last, "%s", e);
        if (strstr(e, "host key mismatch")) /* someone else answers there: no retry */
            break;
        if (tries % 5 == 0 && gone_or(ctx, vm, rc, err, errlen) == VMMS_NOT_FOUND)
            return VMMS_ERR;
        if (clock_mono_ms() + 1000 >= deadline)
            break;
        clock_sleep_ms(1000);
    }
    if (vm->priv)
        ((struct ec2_vm *)vm->priv)->failed = true;
    return vmms_fail(err, errlen, VMMS_TIMEOUT, "VM %s: no SSH after %d s (%d tries): %s",
                     vm->name, timeout_s, tries, last);
}

/* ---- files ---- */

int ec2_copy_in(void *vctx, struct vmms_vm *vm, const struct vmms_file *files, size_t nfiles,
                int timeout_s, char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    /* A fresh mount directory the SSH user may write (SFTP runs as that user). */
    char line[300], qu[80];
    snprintf(line, sizeof line, "rm -rf " MOUNT " && mkdir -m 755 " MOUNT " && chown %s " MOUNT,
             vmms_sh_quote(ctx->cfg.ssh_user, qu, sizeof qu));
    struct vssh_out out;
    rc = vm_run(ctx, vm, line, timeout_s, NULL, &out, "cannot make " MOUNT, err, errlen);
    vssh_out_free(&out);
    struct vmconn vc;
    if (rc == VMMS_OK)
        rc = vm_connect(ctx, vm, &vc, timeout_s, err, errlen);
    if (rc == VMMS_OK) {
        long t0 = clock_mono_ms();
        rc = vssh_put_files(&vc.c, MOUNT, files, nfiles,
                            1000L * (timeout_s > 0 ? timeout_s : ctx->cfg.command_timeout_s),
                            err, errlen);
        vm_close(&vc);
        if (rc == VMMS_NOT_FOUND)
            rc = VMMS_ERR;
        if (rc == VMMS_OK)
            log_debug("vm_copy_in", "name=%s host=%s files=%zu ms=%ld", vm->name, vm->host,
                      nfiles, (long)(clock_mono_ms() - t0));
    }
    if (rc != VMMS_OK && gone_or(ctx, vm, rc, err, errlen) == VMMS_NOT_FOUND)
        return VMMS_ERR; /* err says the instance is gone */
    return rc;
}

int ec2_copy_out(void *vctx, struct vmms_vm *vm, const char *dest_path, int timeout_s,
                 char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct vmconn vc;
    rc = vm_connect(ctx, vm, &vc, timeout_s, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    long long bytes = 0;
    rc = vssh_get_file(&vc.c, MOUNT "/feedback", dest_path, EC2_FEEDBACK_MAX,
                       1000L * (timeout_s > 0 ? timeout_s : ctx->cfg.command_timeout_s), &bytes,
                       err, errlen);
    vm_close(&vc);
    if (rc == VMMS_NOT_FOUND)
        rc = vmms_fail(err, errlen, VMMS_ERR, "VM %s has no feedback file: the job did not "
                       "finish", vm->name);
    if (rc == VMMS_OK)
        log_debug("vm_copy_out", "name=%s host=%s bytes=%lld", vm->name, vm->host, bytes);
    return rc;
}

/* ---- the run ---- */

void ec2_abort_runs(struct ec2_ctx *ctx, const char *name)
{
    vmms_watch_abort(&ctx->watches, name);
}

int ec2_start_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, char *handle,
                  size_t handlelen, char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    char token[33];
    int rc = vmms_start_begin(ctx->prefix, vm, handle, handlelen, token, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char job[900], qj[1200], line[1600];
    rc = vmms_grading_command(run, vm->memory_mb, token, job, sizeof job, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    /* The marker first (noclobber: a file of ours), then the run in a
     * session of its own, detached from this SSH session; its pid goes in
     * the marker for attach_job. */
    int n = snprintf(line, sizeof line,
                     "cd /home || exit 1; m=" MOUNT "/.tango-run-%s; (set -C; : > \"$m\") || "
                     "exit 1; setsid sh -c %s </dev/null >/dev/null 2>&1 & echo $! > \"$m\"",
                     token, vmms_sh_quote(job, qj, sizeof qj));
    if (n <= 0 || (size_t)n >= sizeof line || !qj[0])
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: command line too long", vm->name);
    struct vssh_out out;
    long t0 = clock_mono_ms();
    rc = vm_run(ctx, vm, line, 0, NULL, &out, "cannot start the job", err, errlen);
    vssh_out_free(&out);
    if (rc != VMMS_OK)
        rc = gone_or(ctx, vm, rc, err, errlen);
    rc = vmms_start_end(rc, vm, vm->host, token, t0, handle, handlelen, err);
    return rc == VMMS_NOT_FOUND ? VMMS_ERR : rc;
}

int ec2_attach_job(void *vctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                   int *status, char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    int rc = vmms_attach_begin(ctx->prefix, vm, handle, &wait_ms, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char qs[1200], line[1600];
    long long secs = (wait_ms + 999) / 1000;
    snprintf(line, sizeof line, "sh -c %s _ %s %lld", vmms_sh_quote(WAIT_SCRIPT, qs, sizeof qs),
             handle, secs);
    struct vmms_watch w;
    vmms_watch_add(&ctx->watches, &w, vm->name);
    long long limit_s = secs + ctx->cfg.command_timeout_s;
    struct vssh_out out;
    long t0 = clock_mono_ms();
    rc = vm_run(ctx, vm, line, limit_s > INT_MAX / 1000 ? INT_MAX / 1000 : (int)limit_s,
                &w.aborted, &out, "cannot wait for the job", err, errlen);
    vmms_watch_remove(&ctx->watches, &w);
    bool aborted = atomic_load(&w.aborted);
    if (rc != VMMS_OK && !aborted)
        rc = gone_or(ctx, vm, rc, err, errlen);
    char label[400];
    snprintf(label, sizeof label, "i-%s at %s", vm->id, vm->host);
    rc = vssh_wait_result(rc, &out, aborted, vm->name, label, handle, wait_ms,
                          (long)(clock_mono_ms() - t0), status, err, errlen);
    vssh_out_free(&out);
    return rc;
}

int ec2_get_partial_output(void *vctx, struct vmms_vm *vm, size_t max_bytes, char **outp,
                           size_t *len, char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    int rc = vmms_partial_begin(ctx->prefix, vm, &max_bytes, VSSH_OUT_MAX, outp, len, err,
                                errlen);
    if (rc != VMMS_OK)
        return rc;
    char inner[600], qi[800], line[1100];
    vmms_partial_script(max_bytes, inner, sizeof inner);
    /* As the grading user, from root (su) or through sudo. */
    if (strcmp(ctx->cfg.ssh_user, "root") == 0)
        snprintf(line, sizeof line, "cd /home && exec su -s /bin/sh " VMMS_PARTIAL_USER " -c %s",
                 vmms_sh_quote(inner, qi, sizeof qi));
    else
        snprintf(line, sizeof line, "cd /home && exec sudo -n -u " VMMS_PARTIAL_USER " sh -c %s",
                 vmms_sh_quote(inner, qi, sizeof qi));
    struct vmconn vc;
    rc = vm_connect(ctx, vm, &vc, VMMS_PARTIAL_DEADLINE_S + 2, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct vssh_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = max_bytes ? max_bytes : 1,
                           .own_timeout = true};
    struct vssh_out out;
    rc = vssh_run(&vc.c, &cmd, &out, err, errlen);
    rc = vssh_take_partial(rc, &out, max_bytes, vc.label, outp, len, err, errlen);
    vm_close(&vc);
    return rc;
}
