/*
 * jobs.c: commands inside a job's container, through `docker exec` on its
 * worker host: the job itself (run_job: the legacy command line of SPEC.md,
 * as root in /home, keeping autodriver's exit status) and the peek at a
 * running job's output (get_partial_output). destroy_vm aborts a run_job in
 * progress through the watch registry (hosts.c).
 */
#include <stdlib.h>
#include <string.h>

#include "dd.h"
#include "log.h"

/* Where a job's output is, first found wins (as localDocker): autodriver
 * writes output.log in the grading user's home; some autodrivers write it
 * in the job directory; once autodriver is done, output/feedback has it. */
#define PARTIAL_SOURCES \
    "/home/autograde/output.log /home/autograde/autolab/output.log /home/output/feedback"

/* The job's shell prints this marker with autodriver's status last, so a
 * failure of docker itself (which has exit codes of its own) is told apart
 * from the job's. */
#define EXIT_MARK "tango-exit="

int dd_run_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, int *status,
               char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    int rc = dd_check_vm(ctx, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (run == NULL || run->timeout_s <= 0 || run->nproc < 0 || run->fsize < 0 ||
        run->max_output < 0)
        return dd_fail(err, errlen, VMMS_ERR,
                       "bad job limits: timeout must be > 0, the others >= 0");
    struct dd_host *h = dd_vm_host(ctx, vm);
    if (h == NULL)
        return dd_fail(err, errlen, VMMS_ERR, "VM %s: not known on any worker host", vm->name);

    /* SPEC.md's command, verbatim, then autodriver's status kept. */
    char job[512], qj[600], qn[140], line[900];
    snprintf(job, sizeof job,
             "cp -r mount/* autolab/; su autolab -c \"autodriver -u %d -f %ld -t %d -o %ld "
             "autolab > output/feedback 2>&1\"; rc=$?; cp output/feedback mount/feedback; "
             "echo " EXIT_MARK "$rc; exit $rc", run->nproc, run->fsize, run->timeout_s,
             run->max_output);
    snprintf(line, sizeof line, "docker exec -u root -w /home %s sh -c %s",
             dd_quote(vm->id[0] ? vm->id : vm->name, qn, sizeof qn),
             dd_quote(job, qj, sizeof qj));

    struct dd_watch w;
    dd_watch_add(ctx, &w, vm->name);
    int limit = run->timeout_s + ctx->cfg.run_grace_s;
    struct dd_cmd cmd = {.line = line, .timeout_ms = 1000 * limit, .abort = &w.aborted,
                         .stdin_fd = -1, .out_max = 4096, .own_timeout = true};
    struct dd_out out;
    long t0 = clock_mono_ms();
    rc = dd_run(ctx, h, &cmd, &out, err, errlen);
    dd_watch_remove(ctx, &w);
    long ms = (long)(clock_mono_ms() - t0);
    if (atomic_load(&w.aborted))
        rc = dd_fail(err, errlen, VMMS_ERR, "VM %s was destroyed while the job ran", vm->name);
    else if (rc == VMMS_TIMEOUT)
        rc = dd_fail(err, errlen, VMMS_TIMEOUT,
                     "VM %s on %s: job did not end within %d s (timeout %d s + grace %d s)",
                     vm->name, h->label, limit, run->timeout_s, ctx->cfg.run_grace_s);
    const char *mark = NULL;
    for (const char *p = out.out; rc == VMMS_OK && p && (p = strstr(p, EXIT_MARK)); p++)
        mark = p;
    if (rc == VMMS_OK && mark == NULL)
        rc = dd_cmd_fail(h, &out, "the job's command did not run", err, errlen);
    if (rc != VMMS_OK) {
        char q[700];
        log_warn("vm_run_failed", "name=%s host=%s rc=%d ms=%ld err=%s", vm->name, h->label,
                 rc, ms, log_quote(err, q, sizeof q));
        dd_out_free(&out);
        return rc;
    }
    *status = atoi(mark + strlen(EXIT_MARK));
    char qe[600];
    log_info("vm_ran_job", "name=%s host=%s status=%d ms=%ld stderr=%s", vm->name, h->label,
             *status, ms, log_quote(out.err, qe, sizeof qe));
    dd_out_free(&out);
    return VMMS_OK;
}

int dd_get_partial_output(void *vctx, struct vmms_vm *vm, size_t max_bytes, char **outp,
                          size_t *len, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    *outp = NULL;
    *len = 0;
    int rc = dd_check_vm(ctx, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct dd_host *h = dd_vm_host(ctx, vm);
    if (h == NULL)
        return dd_fail(err, errlen, VMMS_ERR, "VM %s: not known on any worker host", vm->name);
    if (max_bytes > (size_t)DD_OUT_MAX)
        max_bytes = DD_OUT_MAX;
    char inner[300], qi[400], qn[140], line[700];
    snprintf(inner, sizeof inner,
             "for f in %s; do if [ -e $f ]; then exec head -c %zu $f; fi; done",
             PARTIAL_SOURCES, max_bytes);
    snprintf(line, sizeof line, "docker exec -u root -w /home %s sh -c %s",
             dd_quote(vm->id[0] ? vm->id : vm->name, qn, sizeof qn),
             dd_quote(inner, qi, sizeof qi));
    struct dd_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = max_bytes ? max_bytes : 1};
    struct dd_out out;
    rc = dd_run(ctx, h, &cmd, &out, err, errlen);
    if (rc == VMMS_OK && out.exit_code != 0)
        rc = dd_cmd_fail(h, &out, "cannot read the job's output", err, errlen);
    if (rc != VMMS_OK) {
        dd_out_free(&out);
        return rc;
    }
    /* No output yet (job not started) is an empty answer, not an error. */
    if (out.out == NULL && (out.out = calloc(1, 1)) == NULL)
        return dd_fail(err, errlen, VMMS_ERR, "out of memory");
    *outp = out.out;
    *len = max_bytes ? out.out_len : 0;
    return VMMS_OK;
}
