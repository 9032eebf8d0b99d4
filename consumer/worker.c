/*
 * worker.c: one thread per held job, walking it through the VMMS steps. A
 * new job (HELD_RUN) gets an instance (a warm pool's that fits its spec,
 * vm_spec.h, or a fresh one), waits for it, copies in, starts the run,
 * waits for it and copies out; an adopted running job (HELD_REATTACH)
 * waits for the run its predecessor started; an adopted finishing job
 * (HELD_COMPLETE) only publishes its output (or, when that file is gone,
 * is graded again). How each step is recorded and how the job ends
 * (finished, requeued, retried, internal error) is job_end.c's. Its
 * instance is destroyed only after the job's last transition (end or
 * fenced requeue) landed; a worker whose lease was taken touches neither
 * the instance nor the run (they belong to the new owner). While a watched
 * disk is below min_free_mb (disk_guard.h) a failed copy-out waits for
 * space.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "consumer.h"
#include "disk_guard.h"
#include "image_pin.h"
#include "job_end.h"
#include "labs.h"
#include "log.h"
#include "output_file.h"
#include "pool.h"
#include "vm_spec.h"

#define POOL_CHECK_S 5
#define RUN_GRACE_S 15       /* past the job's timeout before the wait gives up */
#define WAIT_SLICE_MS 5000   /* a handed-off worker lets go of its run within this */

/* Waits for the run named by the job's run handle, at most wait_ms, in
 * slices so that a consumer handing its jobs off (lost) lets go promptly;
 * the run itself goes on in its instance. */
static int wait_run(struct run_state *rs, long long wait_ms, int *status, char *err, size_t errlen)
{
    held_publish_vm(rs->c, rs->h, &rs->vm, true);
    /* A cancellation that came while the run was being started saw no run
     * to stop (in_run was false): end it here instead of waiting. */
    if (atomic_load(&rs->h->cancel)) {
        atomic_store(&rs->h->in_run, false);
        snprintf(err, errlen, "cancelled while starting");
        return VMMS_ERR;
    }
    long long end = clock_mono_ms() + wait_ms;
    int st;
    for (;;) {
        long long left = end - clock_mono_ms();
        long long slice = left < WAIT_SLICE_MS ? (left > 0 ? left : 1) : WAIT_SLICE_MS;
        st = rs->c->ops->attach_job(rs->c->vctx, &rs->vm, rs->job->run_handle, slice, status,
                                    err, errlen);
        if (st != VMMS_TIMEOUT || left <= slice || run_lost(rs))
            break;
    }
    if (st != VMMS_TIMEOUT)
        metrics_vmms_error(rs->c, "attach_job", st);
    atomic_store(&rs->h->in_run, false);
    return st;
}

/* Copies the feedback out of the instance to rs->feedback. While it fails
 * and a watched disk is below the floor (the copy into courselabs failed
 * for lack of space: the instance still holds the feedback), it waits for
 * space and tries again, rather than spend a try on a full disk. */
static int copy_out(struct run_state *rs, char *err, size_t errlen)
{
    struct consumer *c = rs->c;
    bool warned = false;
    for (;;) {
        unlink(rs->feedback);
        int cst = c->ops->copy_out(c->vctx, &rs->vm, rs->feedback, c->cfg->copyout_timeout_s,
                                   err, errlen);
        metrics_vmms_error(c, "copy_out", cst);
        if (cst == VMMS_OK || !disk_guard_low(c))
            return cst;
        if (!warned)
            log_warn("copyout_waiting", "id=%lld error=\"%s\" reason=\"a watched disk is below "
                     "min_free_mb\"", (long long)rs->job->id, err);
        warned = true;
        while (disk_guard_low(c)) {
            if (run_lost(rs) || atomic_load(&c->stopping))
                return cst;
            usleep(DISK_GUARD_PERIOD_MS * 1000);
        }
    }
}

/* Notes how the run ended: its result for the status line, the trace
 * (with the CPU time and peak memory it used when the back end can tell)
 * and the run phase's time (t_run_start to t_run). */
static void note_run(struct run_state *rs, int st, int status, double t_run_start, double t_run)
{
    struct consumer *c = rs->c;
    struct job *job = rs->job;
    rs->runjob = st == VMMS_OK ? status : -1;
    run_trace(rs, "Job %s:%lld executed [status=%d] (%.0f ms)", job->name, (long long)job->id,
              rs->runjob, t_run - t_run_start);
    struct vmms_usage use;
    char err[256];
    if (c->ops->job_usage && st != VMMS_TIMEOUT &&
        c->ops->job_usage(c->vctx, &rs->vm, &use, err, sizeof err) == VMMS_OK)
        run_trace(rs, "Job %s:%lld used cpu_user_ms=%lld cpu_sys_ms=%lld peak_memory_kb=%lld",
                  job->name, (long long)job->id, use.cpu_user_ms, use.cpu_sys_ms,
                  use.peak_mem_kb);
    metrics_job_phase(c, "run", (t_run - t_run_start) / 1000.0);
}

/* Copies the feedback out of the instance into rs->feedback and notes it
 * (rs->copyout, the trace, the copyout phase's time from t_run); then
 * frees the job's slot: the instance is destroyed after the job has ended
 * (worker_main), so the student's result does not wait for it. Returns the
 * copy's status (err: why it failed). */
static int collect_feedback(struct run_state *rs, double t_run, char *err, size_t errlen)
{
    struct job *job = rs->job;
    snprintf(rs->feedback, sizeof rs->feedback, "%s/.feedback-%lld-%lld",
             rs->c->cfg->courselabs, (long long)job->id, job->fence);
    int cst = copy_out(rs, err, errlen);
    rs->copyout = cst == VMMS_OK ? 0 : -1;
    double took = (double)clock_mono_ms() - t_run;
    metrics_job_phase(rs->c, "copyout", took / 1000.0);
    run_trace(rs, "Output copied for job %s:%lld [status=%d] (%.0f ms)", job->name,
              (long long)job->id, rs->copyout, took);
    atomic_store(&rs->h->slot_free, true);
    return cst;
}

/* Ends the job as the run's result calls for once its feedback was copied
 * out: st and status the run's (a timeout: VMMS_TIMEOUT or autodriver's
 * 2), cst the copy's (err: why it failed). */
static void judge_run(struct run_state *rs, int st, int status, int cst, const char *err)
{
    struct job *job = rs->job;
    if (st == VMMS_TIMEOUT || status == 2) {
        if (cst != VMMS_OK)
            rs->feedback[0] = '\0';
        char outcome[96];
        snprintf(outcome, sizeof outcome, "Error: Job timed out after %d seconds", job->timeout_s);
        const char *counters[] = {"runjob_timeouts", "runjob_errors"};
        run_finish(rs, outcome, NULL, counters, 2);
        return;
    }
    if (cst != VMMS_OK) {
        char why[600];
        snprintf(why, sizeof why, "Error: Copy out from VM failed (status=%d): %s", rs->copyout,
                 err);
        rs->feedback[0] = '\0';
        run_step_failed(rs, cst, err, why, "copyout_errors");
        return;
    }
    const char *counters[] = {"runjob_errors"};
    if (status == 3 && job->retries < rs->c->cfg->job_retries) {
        /* Autodriver hit an OS error: the instance is suspect (already
         * destroyed, never reused); retry elsewhere within the budget. */
        unlink(rs->feedback);
        rs->feedback[0] = '\0';
        run_reschedule(rs, "OS error while running job on VM", "runjob_errors");
    } else if (status == 3) {
        run_finish(rs, "Error: OS error while running job on VM", NULL, counters, 1);
    } else if (status != 0) {
        char outcome[96];
        snprintf(outcome, sizeof outcome, status == 1 ? "Error: Autodriver usage error (status=%d)"
                 : "Error: Unknown autodriver error (status=%d)", status);
        run_finish(rs, outcome, NULL, counters, 1);
    } else {
        run_finish(rs, "Success: Autodriver returned normally", NULL, NULL, 0);
    }
}

/* After the run (st: how waiting for it ended; status: its exit status;
 * run_err: why it failed; t_run_start: when it started): copy out the
 * autodriver's output (also after a timeout: it may hold what the grader
 * printed before it was stopped) and end the job with the outcome the
 * run's result calls for. */
static void after_run(struct run_state *rs, int st, int status, const char *run_err,
                      double t_run_start)
{
    double t_run = (double)clock_mono_ms();
    if (run_lost(rs) || run_end_if_cancelled(rs))
        return;
    note_run(rs, st, status, t_run_start, t_run);
    if (st == VMMS_OK && status == VMMS_EXIT_FEEDBACK_COPY) {
        /* The run's feedback is cut or missing: nothing worth copying out. */
        atomic_store(&rs->h->slot_free, true);
        run_reschedule(rs, "Error: The feedback could not be copied out of the job's directory "
                           "(a full disk?)", "copyout_errors");
        return;
    }
    if (st != VMMS_OK && st != VMMS_TIMEOUT) {
        char why[700];
        snprintf(why, sizeof why, "Error: OS error while running job on VM: %s", run_err);
        run_step_failed(rs, st, run_err, why, "runjob_errors");
        return;
    }
    char err[512] = "";
    int cst = collect_feedback(rs, t_run, err, sizeof err);
    judge_run(rs, st, status, cst, err);
}

/* Run step 1: takes a warm instance from the pool (a stale one is dropped)
 * or names a fresh one, publishes its name and records the job running.
 * false: the job went no further (lease lost, cancelled). */
static bool assign_vm(struct run_state *rs)
{
    struct consumer *c = rs->c;
    const struct vmms_ops *ops = c->ops;
    struct job *job = rs->job;
    char err[512] = "";
    struct vmms_vm want;
    vm_spec_of_job(c->cfg, job, &want);
    pool_note_job(c->pool, job->image);
    rs->from_pool = pool_take(c->pool, &want, &rs->vm);
    int pst = rs->from_pool ? ops->wait_vm(c->vctx, &rs->vm, POOL_CHECK_S, err, sizeof err)
                            : VMMS_OK;
    metrics_vmms_error(c, "wait_vm", pst);
    if (pst != VMMS_OK) {
        /* A warm instance that died since (its host went down, someone
         * killed it): drop it and make a fresh one, at no retry's cost. */
        log_warn("pool_vm_stale", "id=%lld vm=%s error=\"%s\"", (long long)job->id,
                 rs->vm.name, err);
        rs->have_vm = true;
        run_destroy_vm(rs); /* a pool's, named by no record yet */
        rs->from_pool = false;
    }
    if (!rs->from_pool) {
        rs->vm = want;
        char tag[32];
        snprintf(tag, sizeof tag, "j%lld", (long long)job->id);
        held_vm_name(c, tag, rs->vm.name, sizeof rs->vm.name);
    }
    /* Named (in the held entry and the record) before it exists, so no
     * clean-up pass can take it for an orphan. */
    held_publish_vm(rs->c, rs->h, &rs->vm, false);
    free(job->vm_name);
    job->vm_name = strdup(rs->vm.name);
    job->assigned = true;
    run_trace(rs, "Assigned job %s:%lld %s VM %s", job->name, (long long)job->id,
              rs->from_pool ? "existing" : "new", rs->vm.name);
    return !(run_record_start(rs) || run_end_if_cancelled(rs));
}

/* Run step 2: makes a fresh instance and waits until it is ready (a
 * pool's is ready already), then records where it is. false: the job was
 * requeued (no capacity) or failed here. */
static bool ready_vm(struct run_state *rs)
{
    struct consumer *c = rs->c;
    const struct vmms_ops *ops = c->ops;
    struct job *job = rs->job;
    char err[512] = "";
    if (!rs->from_pool) {
        int st = ops->initialize_vm(c->vctx, &rs->vm, err, sizeof err);
        metrics_vmms_error(c, "initialize_vm", st);
        if (st == VMMS_BUSY) {
            /* No capacity anywhere: back to the head of the queue, no retry. */
            log_warn("vmms_busy", "id=%lld reason=\"%s\"", (long long)job->id, err);
            run_trace(rs, "No worker host available: waiting in the queue");
            run_requeue(rs, false);
            atomic_store(&c->busy_until_ms, clock_mono_ms() + 1000);
            return false;
        }
        rs->have_vm = true; /* even a half-made instance must be destroyed */
        if (st != VMMS_OK) {
            rs->waitvm = -1;
            char why[600];
            snprintf(why, sizeof why, "Internal error: initializeVM failed: %s", err);
            run_step_failed(rs, st, err, why, "waitvm_timeouts");
            return false;
        }
        st = ops->wait_vm(c->vctx, &rs->vm, c->cfg->waitvm_timeout_s, err, sizeof err);
        metrics_vmms_error(c, "wait_vm", st);
        rs->waitvm = st == VMMS_OK ? 0 : -1;
        if (st != VMMS_OK) {
            char why[600];
            snprintf(why, sizeof why, "Internal error: waitVM timeout after %d secs (%s)",
                     c->cfg->waitvm_timeout_s, err);
            run_step_failed(rs, st, err, why, "waitvm_timeouts");
            return false;
        }
    } else {
        rs->have_vm = true;
        rs->waitvm = 0;
    }
    free(job->vm_id);
    job->vm_id = strdup(rs->vm.id);
    free(job->vm_host);
    job->vm_host = rs->vm.host[0] ? strdup(rs->vm.host) : NULL;
    return true;
}

/* Run step 3: copies the input files in from the lab directory, in the
 * order listed; *t_in: when it ended. false: the job failed, was
 * rescheduled or was cancelled here. */
static bool copy_in_files(struct run_state *rs, double t_ready, double *t_in)
{
    struct consumer *c = rs->c;
    const struct vmms_ops *ops = c->ops;
    struct job *job = rs->job;
    char err[512] = "";
    struct vmms_file *files = calloc(job->nfiles + 1, sizeof *files);
    char (*paths)[PATH_MAX] = calloc(job->nfiles + 1, PATH_MAX);
    int bad = 0;
    for (size_t i = 0; i < job->nfiles; i++) {
        bad |= lab_path(c->cfg->courselabs, job->lab_dir, NULL, job->files[i].local_file, paths[i]);
        files[i].local_path = paths[i];
        files[i].dest_name = job->files[i].dest_file;
    }
    int st = bad ? VMMS_ERR
                 : ops->copy_in(c->vctx, &rs->vm, files, job->nfiles, c->cfg->copyin_timeout_s,
                                err, sizeof err);
    free(files);
    free(paths);
    rs->copyin = st == VMMS_OK ? 0 : -1;
    if (!bad)
        metrics_vmms_error(c, "copy_in", st);
    *t_in = (double)clock_mono_ms();
    metrics_job_phase(c, "copyin", (*t_in - t_ready) / 1000.0);
    run_trace(rs, "Input copied for job %s:%lld [status=%d] (%.0f ms)", job->name,
              (long long)job->id, rs->copyin, *t_in - t_ready);
    if (st != VMMS_OK) {
        char why[600];
        snprintf(why, sizeof why, "Error: Copy in to VM failed (status=%d): %s", rs->copyin, err);
        if (bad)
            run_reschedule(rs, why, "copyin_errors");
        else
            run_step_failed(rs, st, err, why, "copyin_errors");
        return false;
    }
    return !run_end_if_cancelled(rs);
}

/* Run step 4: starts the run, records what a successor needs to find it
 * again (instance, run handle, deadline on Redis's clock), waits for it and
 * finishes the job (after_run). t_in: when the copy in ended. */
static void start_and_wait(struct run_state *rs, double t_in)
{
    struct consumer *c = rs->c;
    const struct vmms_ops *ops = c->ops;
    struct job *job = rs->job;
    char err[512] = "";
    struct vmms_run run = {
        .timeout_s = job->timeout_s,
        .max_output = job->max_output_bytes,
        .nproc = c->cfg->autodriver_nproc,
        .fsize = (long)c->cfg->autodriver_fsize_mb << 20,
        .cpu_limit_s = job->cpu_limit_s,
    };
    long long wait_ms = ((long long)job->timeout_s + RUN_GRACE_S) * 1000;
    long long now = 0;
    if (store_time_ms(rs->st, &now) != STORE_OK)
        now = clock_wall_ms();
    char handle[256] = "";
    int st = ops->start_job(c->vctx, &rs->vm, &run, handle, sizeof handle, err, sizeof err);
    metrics_vmms_error(c, "start_job", st);
    if (st != VMMS_OK) {
        after_run(rs, st == VMMS_TIMEOUT ? VMMS_ERR : st, -1, err, t_in);
        return;
    }
    job->run_handle = strdup(handle);
    job->run_deadline_ms = now + wait_ms;
    run_trace(rs, "Job %s:%lld started (run %.12s)", job->name, (long long)job->id, handle);
    if (run_record_save(rs))
        return;
    int status = -1;
    st = wait_run(rs, wait_ms, &status, err, sizeof err);
    after_run(rs, st, status, err, t_in);
}

/* A registry tag pinned to its digest before anything else; the record
 * keeps it from assign_vm's write on. false: the job failed here. */
static bool pin_image(struct run_state *rs)
{
    char err[512] = "", before[300];
    bool pinned = false;
    snprintf(before, sizeof before, "%s", rs->job->image);
    int st = image_pin(rs->c, rs->job, &pinned, err, sizeof err);
    if (st != VMMS_OK) {
        char why[600];
        snprintf(why, sizeof why, "Internal error: cannot resolve image %s: %s", before, err);
        run_step_failed(rs, st, err, why, "waitvm_timeouts");
        return false;
    }
    if (pinned)
        run_trace(rs, "Image %s is %s", before, rs->job->image);
    return true;
}

/* A new job's steps: image, instance, ready, copy in, run; each step ends
 * the job itself when it cannot go on. */
static void run_steps(struct run_state *rs)
{
    double t0 = (double)clock_mono_ms();
    if (!pin_image(rs) || !assign_vm(rs) || !ready_vm(rs))
        return;
    double t_ready = (double)clock_mono_ms();
    struct job *job = rs->job;
    run_trace(rs, "VM %s ready for job %s:%lld (%.0f ms)", rs->vm.name, job->name,
              (long long)job->id, t_ready - t0);
    metrics_job_phase(rs->c, "waitvm", (t_ready - t0) / 1000.0);
    double t_in;
    if (!copy_in_files(rs, t_ready, &t_in))
        return;
    start_and_wait(rs, t_in);
}

/* An adopted running job: its predecessor started the run and recorded it;
 * wait for that run (no retry spent, no second run), then finish it. */
static void reattach_steps(struct run_state *rs)
{
    struct job *job = rs->job;
    vm_spec_of_record(rs->c->cfg, job, &rs->vm);
    rs->have_vm = true;
    rs->waitvm = rs->copyin = 0;
    long long now = 0;
    if (store_time_ms(rs->st, &now) != STORE_OK)
        now = clock_wall_ms();
    long long wait_ms = job->run_deadline_ms - now;
    if (wait_ms < 1000)
        wait_ms = 1000;
    run_trace(rs, "Re-attached to job %s:%lld on VM %s after a takeover", job->name,
              (long long)job->id, rs->vm.name);
    log_info("job_reattached", "id=%lld vm=%s wait_ms=%lld", (long long)job->id, rs->vm.name,
             wait_ms);
    if (run_record_save(rs) || run_end_if_cancelled(rs))
        return;
    char err[512] = "";
    int status = -1;
    double t0 = (double)clock_mono_ms();
    int st = wait_run(rs, wait_ms, &status, err, sizeof err);
    if (st == VMMS_NOT_FOUND) {
        char why[700];
        snprintf(why, sizeof why, "Its instance was gone after a takeover: %s", err);
        run_reschedule(rs, why, NULL);
        return;
    }
    after_run(rs, st, status, err, t0);
}

/* An adopted finishing job: publish the output its record names and end.
 * If that file is gone (neither the temp nor the output file exists) the
 * grade would be lost: the job is graded again (one retry) instead of
 * ending with no output; one that was being cancelled ends cancelled. */
static void complete_adopted(struct run_state *rs)
{
    struct job *job = rs->job;
    if (!output_file_lost(rs->c->cfg->courselabs, job)) {
        run_publish_and_end(rs);
        return;
    }
    log_warn("output_lost", "id=%lld temp=%s", (long long)job->id, job->output_temp);
    if (run_cancel_outcome(job))
        atomic_store(&rs->h->cancel, true);
    free(job->output_temp);
    free(job->outcome);
    job->output_temp = job->outcome = NULL;
    run_reschedule(rs, "Its accepted output file was gone after a takeover; grading it again",
                   NULL);
}

void *worker_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct run_state rs = {.c = wa->c, .h = wa->h, .waitvm = NOT_RUN, .copyin = NOT_RUN,
                           .runjob = NOT_RUN, .copyout = NOT_RUN};
    free(wa);
    rs.st = store_new(rs.c->cfg);
    rs.job = rs.h->job;
    rs.job->fence = rs.h->fence;
    log_info("job_start", "id=%lld image=%s retries=%d mode=%d", (long long)rs.job->id,
             rs.job->image, rs.job->retries, (int)rs.h->mode);
    if (rs.h->mode == HELD_COMPLETE) {
        complete_adopted(&rs);
    } else if (rs.h->mode == HELD_REATTACH) {
        reattach_steps(&rs);
    } else if (run_end_if_cancelled(&rs)) {
        /* cancelled before it ran */
    } else if (rs.job->retries > rs.c->cfg->job_retries) {
        /* Recovered after its consumer died once too often: end it here. */
        rs.job->retries = rs.c->cfg->job_retries;
        run_reschedule(&rs, "Retry budget spent (its consumer stopped while it ran)", NULL);
    } else {
        run_steps(&rs);
    }
    run_release_vm(&rs);
    if (rs.feedback[0])
        unlink(rs.feedback);
    store_free(rs.st);
    atomic_store(&rs.h->finished, true);
    return NULL;
}
