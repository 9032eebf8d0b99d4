/*
 * jobs.c: commands inside a job's container, through `docker exec` on its
 * worker host: the job itself (start_job: the legacy command line of
 * docs/api.md as root in /home, detached, so it outlives the consumer and
 * its SSH connection; attach_job: wait on the host for its exit file, woken
 * by `docker events`; plugin.c makes run_job of the two) and the peek at a
 * running job's output (get_partial_output, as the grading user).
 * destroy_vm aborts a wait in progress through the watch registry
 * (vmms/common/watch.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dd.h"
#include "log.h"

/* The host-side wait of attach_job (bash, for its process substitution):
 * $1 volume dir, $2 token, $3 container, $4 seconds to wait. Subscribes to
 * the container's events first (replayed from 5 s back, so none is missed
 * between the checks and the subscription), then looks for the exit file
 * and the container; wakes on every exec_die to look again. Should the
 * event stream end early (docker events failing), it polls until the
 * deadline instead. Prints one of tango-exit=N, tango-gone (no such run or
 * container) or tango-timeout. */
#define WAIT_SCRIPT                                                                        \
    "v=$1; t=$2; n=$3; f=\"$v/.tango-exit-$t\"; dl=$(( $(date +%s) + ${4%.*} )); "      \
    "exec 3< <(exec timeout \"$4\" docker events --since $(( $(date +%s) - 5 )) "           \
    "--filter container=\"$n\" --filter event=exec_die --filter event=die "                \
    "--filter event=destroy --format '{{.Action}}' 2>/dev/null); p=$!; "                    \
    "end() { kill $p 2>/dev/null; exec 3<&-; echo \"$1\"; exit 0; }; "                      \
    "ended() { [ -f \"$f\" ] && end \"tango-exit=$(cat \"$f\")\"; }; "                      \
    "ended; [ -e \"$v/.tango-run-$t\" ] || end tango-gone; "                                \
    "[ \"$(docker container inspect -f '{{.State.Running}}' \"$n\" 2>/dev/null)\" = true ] " \
    "|| { ended; end tango-gone; }; "                                                       \
    "while read -r a <&3; do ended; case $a in die|destroy) ended; end tango-gone;; esac; " \
    "done; "                                                                                \
    "while [ $(date +%s) -lt $dl ]; do ended; "                                            \
    "[ \"$(docker container inspect -f '{{.State.Running}}' \"$n\" 2>/dev/null)\" = true ] " \
    "|| { ended; end tango-gone; }; sleep 0.5; done; ended; end tango-timeout"

int dd_start_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, char *handle,
                 size_t handlelen, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    char token[33];
    int rc = vmms_start_begin(ctx->prefix, vm, handle, handlelen, token, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct dd_host *h = dd_vm_host(ctx, vm, err, errlen);
    if (h == NULL)
        return VMMS_ERR;
    char job[900], qj[1100], qn[140], qv[PATH_MAX + 140], vdir[PATH_MAX + 130];
    rc = vmms_grading_command(run, vm->memory_mb ? vm->memory_mb : ctx->cfg.defaults.memory_mb,
                              token, job, sizeof job, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    snprintf(vdir, sizeof vdir, "%s/%s", h->cfg->volume_dir, vm->name);
    char *line = malloc(4096);
    if (line == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    /* The run marker first (noclobber: a file of ours, never followed), so
     * a successor that finds neither it nor the exit file knows the run is
     * not there. */
    int n = snprintf(line, 4096,
                     "v=%s; m=\"$v/.tango-run-%s\"; (set -C; : > \"$m\") || exit 1; "
                     "docker exec -d -u root -w /home %s sh -c %s || "
                     "{ rc=$?; rm -f \"$m\"; exit $rc; }",
                     vmms_sh_quote(vdir, qv, sizeof qv), token,
                     vmms_sh_quote(vm->id[0] ? vm->id : vm->name, qn, sizeof qn),
                     vmms_sh_quote(job, qj, sizeof qj));
    if (n <= 0 || n >= 4096 || !qv[0] || !qj[0]) {
        free(line);
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: command line too long", vm->name);
    }
    struct vssh_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = 4096};
    struct vssh_out out;
    long t0 = clock_mono_ms();
    rc = dd_run(ctx, h, &cmd, &out, err, errlen);
    free(line);
    if (rc == VMMS_OK && out.exit_code != 0)
        rc = vssh_cmd_fail(h->label, &out, "cannot start the job", err, errlen);
    vssh_out_free(&out);
    return vmms_start_end(rc, vm, h->label, token, t0, handle, handlelen, err);
}

int dd_attach_job(void *vctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                  int *status, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    int rc = vmms_attach_begin(ctx->prefix, vm, handle, &wait_ms, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct dd_host *h = dd_vm_host(ctx, vm, err, errlen);
    if (h == NULL)
        return VMMS_NOT_FOUND;
    char qs[3000], qv[PATH_MAX + 140], qn[140], vdir[PATH_MAX + 130];
    snprintf(vdir, sizeof vdir, "%s/%s", h->cfg->volume_dir, vm->name);
    char *line = malloc(8192);
    if (line == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    int n = snprintf(line, 8192, "bash -c %s _ %s %s %s %lld.%03lld",
                     vmms_sh_quote(WAIT_SCRIPT, qs, sizeof qs), vmms_sh_quote(vdir, qv, sizeof qv),
                     handle, vmms_sh_quote(vm->id[0] ? vm->id : vm->name, qn, sizeof qn),
                     wait_ms / 1000, wait_ms % 1000);
    if (n <= 0 || n >= 8192 || !qs[0] || !qv[0]) {
        free(line);
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: command line too long", vm->name);
    }
    struct vmms_watch w;
    vmms_watch_add(&ctx->watches, &w, vm->name);
    long long limit = wait_ms + 1000LL * ctx->cfg.command_timeout_s;
    struct vssh_cmd cmd = {.line = line, .timeout_ms = limit > INT_MAX ? INT_MAX : (int)limit,
                         .abort = &w.aborted, .stdin_fd = -1, .out_max = 4096,
                         .own_timeout = true};
    struct vssh_out out;
    long t0 = clock_mono_ms();
    rc = dd_run(ctx, h, &cmd, &out, err, errlen);
    free(line);
    vmms_watch_remove(&ctx->watches, &w);
    rc = vssh_wait_result(rc, &out, atomic_load(&w.aborted), vm->name, h->label, handle,
                          wait_ms, (long)(clock_mono_ms() - t0), status, err, errlen);
    vssh_out_free(&out);
    return rc;
}

int dd_get_partial_output(void *vctx, struct vmms_vm *vm, size_t max_bytes, char **outp,
                          size_t *len, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    int rc = vmms_partial_begin(ctx->prefix, vm, &max_bytes, VSSH_OUT_MAX, outp, len, err,
                                errlen);
    if (rc != VMMS_OK)
        return rc;
    struct dd_host *h = dd_vm_host(ctx, vm, err, errlen);
    if (h == NULL)
        return VMMS_ERR;
    char inner[600], qi[800], qn[140], line[1100];
    vmms_partial_script(max_bytes, inner, sizeof inner);
    snprintf(line, sizeof line, "docker exec -u " VMMS_PARTIAL_USER " -w /home %s sh -c %s",
             vmms_sh_quote(vm->id[0] ? vm->id : vm->name, qn, sizeof qn),
             vmms_sh_quote(inner, qi, sizeof qi));
    struct vssh_cmd cmd = {.line = line, .timeout_ms = 1000 * (VMMS_PARTIAL_DEADLINE_S + 2),
                         .stdin_fd = -1, .out_max = max_bytes ? max_bytes : 1,
                         .own_timeout = true};
    struct vssh_out out;
    rc = dd_run(ctx, h, &cmd, &out, err, errlen);
    return vssh_take_partial(rc, &out, max_bytes, h->label, outp, len, err, errlen);
}
