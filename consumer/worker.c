/*
 * worker.c: one thread per held job. A new job (HELD_RUN) is walked through
 * the VMMS steps (get an instance, wait, copy in, start the run, wait for
 * it, copy out); an adopted running job (HELD_REATTACH) waits for the run
 * its predecessor started; an adopted finishing job (HELD_COMPLETE) only
 * publishes its output (or, when that file is gone, is graded again). Each step is recorded in the job's trace and in the
 * store (fenced by the lease) before it is acted on. A job ends exactly
 * once: finished with its outcome (output file under a writer-unique temp
 * name, the finish transition, the rename, the end transition), requeued
 * after an infrastructure failure, or finished with the internal-error
 * output once the retry budget is spent. A worker that finds its lease
 * taken (STORE_STALE) stops at once and touches nothing: the instance and
 * the run belong to the new owner. Its instance is destroyed only after
 * the job's last transition (end or fenced requeue) landed. An output that
 * cannot be written (a full disk) is waited for, never skipped; while a
 * watched disk is below min_free_mb (disk_guard.h) a failed copy-out waits
 * for space and an infrastructure failure spends no try.
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend_health.h"
#include "consumer.h"
#include "disk_guard.h"
#include "image_pin.h"
#include "labs.h"
#include "log.h"
#include "output_file.h"
#include "pool.h"
#include "clock.h"
#include "store_metrics.h"

#define NOT_RUN INT_MIN
#define POOL_CHECK_S 5
#define RUN_GRACE_S 15       /* past the job's timeout before the wait gives up */
#define WAIT_SLICE_MS 5000   /* a handed-off worker lets go of its run within this */
#define CANCELLED_OUTCOME "Error: Job cancelled by request"
#define OUTPUT_RETRY_MAX_MS 5000 /* longest pause between two tries to write an output */
#define RETRY_PAUSE_MS 1000      /* before a job's first retry; doubles per try spent */
#define RETRY_PAUSE_MAX_MS 8000

struct run_state {
    struct consumer *c;
    struct held_job *h;
    struct store *st;
    struct job *job;
    struct vmms_vm vm;
    bool have_vm;
    bool from_pool;
    int waitvm, copyin, runjob, copyout; /* step results for the status line */
    char feedback[PATH_MAX];
    /* for finish() */
    const char *const *counters;
    size_t ncounters;
    bool count_retry;
};

static bool lost(struct run_state *rs)
{
    return atomic_load(&rs->h->lost);
}

typedef int (*store_step)(struct run_state *rs);

/* Whether a step retried after a lost reply had landed the first time: the
 * record is in the state the step leads to, and (for a live job) our lease
 * with our fence is still the job's and, after finish, the accepted output
 * is ours. Anything else is someone else's write. */
static bool landed(struct run_state *rs, const char *expect_state)
{
    json_t *rec = NULL;
    bool dead = false;
    if (store_get_job(rs->st, rs->job->id, &rec, &dead) != STORE_OK)
        return false;
    bool ok = strcmp(json_string_value(json_object_get(rec, "state")) ?: "", expect_state) == 0;
    if (ok && !dead && strcmp(expect_state, "queued") != 0) {
        long long fence = 0;
        ok = store_lease_fence(rs->st, rs->job->id, &fence) == STORE_OK && fence == rs->job->fence;
    }
    if (ok && strcmp(expect_state, "finishing") == 0) {
        const char *temp = json_string_value(json_object_get(rec, "outputTemp"));
        ok = temp && rs->job->output_temp && strcmp(temp, rs->job->output_temp) == 0;
    }
    json_decref(rec);
    return ok;
}

/* Runs a store step, waiting out a Redis outage instead of failing the job.
 * Any other refusal (STALE: the lease is someone else's; a refused
 * transition) means this worker must stop touching the job. */
static int persist(struct run_state *rs, store_step fn, const char *expect_state)
{
    bool retried = false;
    for (int delay = 200;; delay = delay < 5000 ? delay * 2 : 5000) {
        if (lost(rs))
            return -1;
        int status = fn(rs);
        if (status == STORE_OK)
            return 0;
        if (status != STORE_UNAVAILABLE) {
            if (retried && landed(rs, expect_state))
                return 0;
            atomic_store(&rs->h->lost, true);
            log_warn("job_lease_lost", "id=%lld status=%d error=\"%s\"", (long long)rs->job->id,
                     status, store_error(rs->st));
            return -1;
        }
        if (atomic_load(&rs->c->stopping))
            return -1;
        retried = true;
        log_warn("job_store_retry", "id=%lld error=\"%s\"", (long long)rs->job->id,
                 store_error(rs->st));
        usleep((useconds_t)delay * 1000);
    }
}

static int do_start(struct run_state *rs) { return store_job_start(rs->st, rs->c->token, rs->job); }
static int do_save(struct run_state *rs) { return store_job_save(rs->st, rs->c->token, rs->job); }
static int do_finish(struct run_state *rs) { return store_job_finish(rs->st, rs->c->token, rs->job); }
static int do_requeue(struct run_state *rs)
{
    return store_job_requeue(rs->st, rs->c->token, rs->job, rs->count_retry);
}

static bool is_cancel_outcome(const struct job *job)
{
    return job->outcome && strcmp(job->outcome, CANCELLED_OUTCOME) == 0;
}

/* How the job ended, for tango_jobs_finished_total (from the outcome
 * lines this file writes; an adopted finishing job's comes from its record). */
static enum job_outcome_kind outcome_kind(const struct job *job)
{
    const char *o = job->outcome ? job->outcome : "";
    if (is_cancel_outcome(job))
        return OUTCOME_CANCELLED;
    if (strncmp(o, "Success:", 8) == 0)
        return OUTCOME_SUCCESS;
    if (strncmp(o, "Error: Job timed out", 20) == 0)
        return OUTCOME_TIMEOUT;
    if (strncmp(o, "Internal error:", 15) == 0)
        return OUTCOME_INTERNAL_ERROR;
    return OUTCOME_ERROR;
}

static int do_end(struct run_state *rs)
{
    json_t *cb = NULL;
    if (rs->job->callback_url) {
        char path[PATH_MAX];
        output_file_path(rs->c->cfg->courselabs, rs->job, path);
        cb = json_pack("{s:I, s:s, s:s, s:s, s:i}", "job", (json_int_t)rs->job->id, "url",
                       rs->job->callback_url, "path", path, "name", rs->job->output_file,
                       "attempts", 0);
        char idbuf[80];
        snprintf(idbuf, sizeof idbuf, "%lld-%lld", (long long)rs->job->id, rs->job->fence);
        json_object_set_new(cb, "id", json_string(idbuf));
    }
    /* the step's counters and the outcome's, bumped by the end transition */
    const char *counters[8];
    size_t n = 0;
    for (size_t i = 0; i < rs->ncounters && n < 7; i++)
        counters[n++] = rs->counters[i];
    counters[n++] = store_outcome_counter[outcome_kind(rs->job)];
    int status = store_job_end(rs->st, rs->c->token, rs->job, is_cancel_outcome(rs->job),
                               counters, n, cb);
    json_decref(cb);
    return status;
}

static void trace(struct run_state *rs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void trace(struct run_state *rs, const char *fmt, ...)
{
    char event[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(event, sizeof event, fmt, ap);
    va_end(ap);
    job_trace(rs->job, event);
}

/* Destroys the instance (never one whose job is someone else's now). */
static void destroy_vm(struct run_state *rs)
{
    if (!rs->have_vm || lost(rs))
        return;
    char err[256] = "";
    int st = rs->c->ops->safe_destroy_vm(rs->c->vctx, &rs->vm, err, sizeof err);
    metrics_vmms_error(rs->c, "safe_destroy_vm", st);
    if (st != VMMS_OK)
        log_warn("vm_destroy_failed", "id=%lld vm=%s error=\"%s\"", (long long)rs->job->id,
                 rs->vm.name, err);
    if (rs->from_pool)
        pool_release(rs->c->pool, rs->vm.name);
    rs->have_vm = false;
}

/* Destroys the job's instance once the job's last transition (its end or
 * its fenced requeue) has landed: until then the record names the instance
 * and a successor may be using it (a worker that stalled past its lease). */
static void release_vm(struct run_state *rs)
{
    if (atomic_load(&rs->h->ended))
        destroy_vm(rs);
}

/* Writes the job's output under its temp name, waiting while it cannot be
 * written (a full disk: ENOSPC, EDQUOT; or any other error, which is
 * logged as such) with backoff up to OUTPUT_RETRY_MAX_MS, the feedback
 * kept, as a Redis outage is waited out: a job never ends without its
 * output. Warns once when it starts waiting and once when it is written.
 * 0 once written (job->output_temp set), or at once without output when
 * the record's names make no path (EINVAL: waiting cannot help); -1 when
 * the job is lost or the consumer stops (it stays unfinished for its next
 * owner). */
static int write_output(struct run_state *rs, const char *outcome, const char *detail)
{
    struct job *job = rs->job;
    long long t0 = clock_mono_ms();
    bool waited = false;
    for (int delay = 200;; delay = delay < OUTPUT_RETRY_MAX_MS ? delay * 2 : OUTPUT_RETRY_MAX_MS) {
        if (output_file_write_temp(rs->c->cfg->courselabs, job, outcome, detail,
                                   rs->feedback[0] ? rs->feedback : NULL,
                                   job->max_output_bytes) == 0)
            break;
        int e = errno;
        if (e == EINVAL) {
            /* names that can never make a path (a record altered in Redis):
             * waiting cannot help; the job ends without an output file */
            log_error("output_write_failed", "id=%lld errno=%d error=\"unsafe output path\"",
                      (long long)job->id, e);
            return 0;
        }
        if (!waited)
            log_error(e == ENOSPC || e == EDQUOT ? "output_write_waiting" : "output_write_failed",
                      "id=%lld errno=%d error=\"%s\" action=\"retrying until it can be "
                      "written\"", (long long)job->id, e, strerror(e));
        waited = true;
        if (lost(rs) || atomic_load(&rs->c->stopping))
            return -1;
        usleep((useconds_t)delay * 1000);
    }
    if (waited)
        log_info("output_write_recovered", "id=%lld waited_ms=%lld", (long long)job->id,
                 clock_mono_ms() - t0);
    char tmp[128]; /* the temp name the record will name as the accepted output */
    output_file_temp_name(job, job->fence, tmp, sizeof tmp);
    job->output_temp = strdup(tmp);
    return 0;
}

/* Publishes an accepted output and ends the job (the last two steps of
 * finish; all an adopted finishing job needs). */
static void publish_and_end(struct run_state *rs)
{
    struct job *job = rs->job;
    if (job->output_temp && output_file_publish(rs->c->cfg->courselabs, job))
        log_error("output_publish_failed", "id=%lld errno=%d", (long long)job->id, errno);
    if (persist(rs, do_end, is_cancel_outcome(job) ? "cancelled" : "done") == 0) {
        atomic_store(&rs->h->ended, true);
        if (job->created_at > 0)
            metrics_job_latency(rs->c, (double)clock_wall_ms() / 1000.0 - job->created_at);
        log_info("job_done", "id=%lld outcome=\"%s\" retries=%d", (long long)job->id,
                 job->outcome, job->retries);
    }
}

/* Ends the job with an outcome: the output file under this lease's temp
 * name, the finish transition, the rename, the end transition. When the
 * finish is refused or its outcome is unknown, the temp file stays: in a
 * Redis failover this worker's view of the record can be wrong (the
 * finish may have landed where it read that it did not), and the job's
 * next owner publishes the file the record names. The reaper removes it
 * once no live record names it; it is never renamed from here. */
static void finish(struct run_state *rs, const char *outcome, const char *detail,
                   const char *const *counters, size_t ncounters)
{
    struct job *job = rs->job;
    if (lost(rs))
        return;
    free(job->outcome);
    job->outcome = strdup(outcome);
    trace(rs, "Job %s:%lld finished: %s", job->name, (long long)job->id, outcome);
    free(job->output_temp);
    job->output_temp = NULL;
    if (write_output(rs, outcome, detail))
        return;
    rs->counters = counters;
    rs->ncounters = ncounters;
    if (persist(rs, do_finish, "finishing"))
        return;
    publish_and_end(rs);
}

/* Ends the job as cancelled if that was requested; true if it did. */
static bool end_if_cancelled(struct run_state *rs)
{
    if (!atomic_load(&rs->h->cancel))
        return false;
    finish(rs, CANCELLED_OUTCOME, NULL, NULL, 0);
    return true;
}

/* Back to the head of the queue; count_retry: one more try spent. */
static void requeue(struct run_state *rs, bool count_retry)
{
    rs->job->assigned = false;
    free(rs->job->run_handle);
    rs->job->run_handle = NULL;
    rs->job->run_deadline_ms = 0;
    rs->count_retry = count_retry;
    if (persist(rs, do_requeue, "queued") == 0)
        atomic_store(&rs->h->ended, true);
}

/* A job's own failure is retried after a pause, not at once: RETRY_PAUSE_MS
 * doubling with each try spent, at most RETRY_PAUSE_MAX_MS. The job stays
 * held meanwhile (its lease renewed) with its slot freed for other jobs.
 * The pause ends early when the consumer stops or drains, the lease is
 * lost or the job is cancelled. */
static void retry_pause(struct run_state *rs)
{
    long long ms = RETRY_PAUSE_MS;
    for (int i = 1; i < rs->job->retries && ms < RETRY_PAUSE_MAX_MS; i++)
        ms *= 2;
    if (ms > RETRY_PAUSE_MAX_MS)
        ms = RETRY_PAUSE_MAX_MS;
    trace(rs, "Retrying in %lld ms", ms);
    atomic_store(&rs->h->slot_free, true);
    long long end = clock_mono_ms() + ms;
    while (clock_mono_ms() < end && !lost(rs) && !atomic_load(&rs->h->cancel) &&
           !atomic_load(&rs->c->draining) && !atomic_load(&rs->c->stopping))
        usleep(50 * 1000);
}

/* An infrastructure failure: retry within the budget (after a pause), else
 * internal error. */
static void reschedule(struct run_state *rs, const char *why, const char *counter)
{
    struct job *job = rs->job;
    if (end_if_cancelled(rs))
        return;
    trace(rs, "Job %s:%lld failed: %s", job->name, (long long)job->id, why);
    log_warn("job_failed", "id=%lld retries=%d reason=\"%s\"", (long long)job->id, job->retries,
             why);
    const char *counters[] = {counter};
    if (disk_guard_low(rs->c)) {
        /* Our disk, not the job: back to the head of the queue at no
         * try's cost; leasing waits for the space to come back. */
        trace(rs, "Waiting in the queue for disk space on the grading host");
        requeue(rs, false);
        return;
    }
    if (job->retries < rs->c->cfg->job_retries) {
        job->retries++;
        if (counter)
            store_incr_counter(rs->st, counter, 1);
        retry_pause(rs);
        if (!end_if_cancelled(rs))
            requeue(rs, true);
        return;
    }
    char outcome[160], detail[200];
    snprintf(outcome, sizeof outcome,
             "Internal error: Unable to complete job after %d tries. Please resubmit",
             job->retries + 1);
    char s[4][16];
    int vals[4] = {rs->waitvm, rs->copyin, rs->runjob, rs->copyout};
    for (int i = 0; i < 4; i++)
        if (vals[i] == NOT_RUN)
            snprintf(s[i], sizeof s[i], "None");
        else
            snprintf(s[i], sizeof s[i], "%d", vals[i]);
    snprintf(detail, sizeof detail, "Job status: waitVM=%s copyIn=%s runJob=%s copyOut=%s", s[0],
             s[1], s[2], s[3]);
    rs->feedback[0] = '\0';
    finish(rs, outcome, detail, counters, counter ? 1 : 0);
}

/* A VMMS step failed with st (err: the plugin's reason): when the back end
 * itself cannot be reached, the job goes back to the head of the queue
 * without spending a try (leasing pauses: backend_health.c); otherwise it
 * is the job's failure (reschedule). */
static void step_failed(struct run_state *rs, int st, const char *err, const char *why,
                        const char *counter)
{
    if (lost(rs) || atomic_load(&rs->h->cancel) || !backend_unavailable(rs->c, st, err)) {
        reschedule(rs, why, counter);
        return;
    }
    release_vm(rs); /* fails while it is down: the reaper's clean-up finds it later */
    log_warn("job_backend_unavailable", "id=%lld status=%d reason=\"%s\"", (long long)rs->job->id,
             st, err);
    trace(rs, "Back end unavailable (%s): back in the queue, no try spent", err);
    requeue(rs, false);
}

static void fill_vm_spec(struct run_state *rs, struct vmms_vm *vm)
{
    const struct tango_config *cfg = rs->c->cfg;
    memset(vm, 0, sizeof *vm);
    snprintf(vm->image, sizeof vm->image, "%s", rs->job->image);
    vm->cores = rs->job->cores ? rs->job->cores : cfg->default_cores;
    vm->memory_mb = rs->job->memory_mb ? rs->job->memory_mb : cfg->default_memory_mb;
    vm->disk_mb = rs->job->disk_mb ? rs->job->disk_mb : cfg->disk_limit_mb;
    vm->pids_limit = cfg->pids_limit;
    vm->network = !rs->job->disable_network;
    if (rs->job->instance_type)
        snprintf(vm->instance_type, sizeof vm->instance_type, "%s", rs->job->instance_type);
}

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
        if (st != VMMS_TIMEOUT || left <= slice || lost(rs))
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
            if (lost(rs) || atomic_load(&c->stopping))
                return cst;
            usleep(DISK_GUARD_PERIOD_MS * 1000);
        }
    }
}

/* After the run: copy out the autodriver's output (also after a timeout:
 * it may hold what the grader printed before it was stopped) and end the
 * job with the outcome the run's result calls for. */
static void after_run(struct run_state *rs, int st, int status, const char *run_err,
                      double t_run_start)
{
    struct consumer *c = rs->c;
    struct job *job = rs->job;
    char err[512] = "";
    double t_run = (double)clock_mono_ms();
    if (lost(rs) || end_if_cancelled(rs))
        return;
    rs->runjob = st == VMMS_OK ? status : -1;
    trace(rs, "Job %s:%lld executed [status=%d] (%.0f ms)", job->name, (long long)job->id,
          rs->runjob, t_run - t_run_start);
    struct vmms_usage use;
    if (c->ops->job_usage && st != VMMS_TIMEOUT &&
        c->ops->job_usage(c->vctx, &rs->vm, &use, err, sizeof err) == VMMS_OK)
        trace(rs, "Job %s:%lld used cpu_user_ms=%lld cpu_sys_ms=%lld peak_memory_kb=%lld",
              job->name, (long long)job->id, use.cpu_user_ms, use.cpu_sys_ms, use.peak_mem_kb);
    metrics_job_phase(c, "run", (t_run - t_run_start) / 1000.0);
    if (st == VMMS_OK && status == VMMS_EXIT_FEEDBACK_COPY) {
        /* The run's feedback is cut or missing: nothing worth copying out. */
        atomic_store(&rs->h->slot_free, true);
        reschedule(rs, "Error: The feedback could not be copied out of the job's directory "
                       "(a full disk?)", "copyout_errors");
        return;
    }
    if (st != VMMS_OK && st != VMMS_TIMEOUT) {
        char why[700];
        snprintf(why, sizeof why, "Error: OS error while running job on VM: %s", run_err);
        step_failed(rs, st, run_err, why, "runjob_errors");
        return;
    }
    snprintf(rs->feedback, sizeof rs->feedback, "%s/.feedback-%lld-%lld", c->cfg->courselabs,
             (long long)job->id, job->fence);
    int cst = copy_out(rs, err, sizeof err);
    rs->copyout = cst == VMMS_OK ? 0 : -1;
    metrics_job_phase(c, "copyout", ((double)clock_mono_ms() - t_run) / 1000.0);
    trace(rs, "Output copied for job %s:%lld [status=%d] (%.0f ms)", job->name,
          (long long)job->id, rs->copyout, (double)clock_mono_ms() - t_run);
    /* The instance is destroyed after the job has ended (worker_main), so
     * the student's result does not wait for it; its slot is freed now. */
    atomic_store(&rs->h->slot_free, true);

    if (st == VMMS_TIMEOUT || status == 2) {
        if (cst != VMMS_OK)
            rs->feedback[0] = '\0';
        char outcome[96];
        snprintf(outcome, sizeof outcome, "Error: Job timed out after %d seconds", job->timeout_s);
        const char *counters[] = {"runjob_timeouts", "runjob_errors"};
        finish(rs, outcome, NULL, counters, 2);
        return;
    }
    if (cst != VMMS_OK) {
        char why[600];
        snprintf(why, sizeof why, "Error: Copy out from VM failed (status=%d): %s", rs->copyout,
                 err);
        rs->feedback[0] = '\0';
        step_failed(rs, cst, err, why, "copyout_errors");
        return;
    }
    if (status == 3) {
        /* Autodriver hit an OS error: the instance is suspect (already
         * destroyed, never reused); retry elsewhere within the budget. */
        if (job->retries < c->cfg->job_retries) {
            unlink(rs->feedback);
            rs->feedback[0] = '\0';
            reschedule(rs, "OS error while running job on VM", "runjob_errors");
            return;
        }
        const char *counters[] = {"runjob_errors"};
        finish(rs, "Error: OS error while running job on VM", NULL, counters, 1);
        return;
    }
    if (status != 0) {
        char outcome[96];
        snprintf(outcome, sizeof outcome, status == 1 ? "Error: Autodriver usage error (status=%d)"
                                                      : "Error: Unknown autodriver error (status=%d)",
                 status);
        const char *counters[] = {"runjob_errors"};
        finish(rs, outcome, NULL, counters, 1);
        return;
    }
    finish(rs, "Success: Autodriver returned normally", NULL, NULL, 0);
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
    fill_vm_spec(rs, &want);
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
        destroy_vm(rs); /* a pool's, named by no record yet */
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
    trace(rs, "Assigned job %s:%lld %s VM %s", job->name, (long long)job->id,
          rs->from_pool ? "existing" : "new", rs->vm.name);
    return !(persist(rs, do_start, "running") || end_if_cancelled(rs));
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
            trace(rs, "No worker host available: waiting in the queue");
            requeue(rs, false);
            atomic_store(&c->busy_until_ms, clock_mono_ms() + 1000);
            return false;
        }
        rs->have_vm = true; /* even a half-made instance must be destroyed */
        if (st != VMMS_OK) {
            rs->waitvm = -1;
            char why[600];
            snprintf(why, sizeof why, "Internal error: initializeVM failed: %s", err);
            step_failed(rs, st, err, why, "waitvm_timeouts");
            return false;
        }
        st = ops->wait_vm(c->vctx, &rs->vm, c->cfg->waitvm_timeout_s, err, sizeof err);
        metrics_vmms_error(c, "wait_vm", st);
        rs->waitvm = st == VMMS_OK ? 0 : -1;
        if (st != VMMS_OK) {
            char why[600];
            snprintf(why, sizeof why, "Internal error: waitVM timeout after %d secs (%s)",
                     c->cfg->waitvm_timeout_s, err);
            step_failed(rs, st, err, why, "waitvm_timeouts");
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
    trace(rs, "Input copied for job %s:%lld [status=%d] (%.0f ms)", job->name, (long long)job->id,
          rs->copyin, *t_in - t_ready);
    if (st != VMMS_OK) {
        char why[600];
        snprintf(why, sizeof why, "Error: Copy in to VM failed (status=%d): %s", rs->copyin, err);
        if (bad)
            reschedule(rs, why, "copyin_errors");
        else
            step_failed(rs, st, err, why, "copyin_errors");
        return false;
    }
    return !end_if_cancelled(rs);
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
    trace(rs, "Job %s:%lld started (run %.12s)", job->name, (long long)job->id, handle);
    if (persist(rs, do_save, "running"))
        return;
    int status = -1;
    st = wait_run(rs, wait_ms, &status, err, sizeof err);
    after_run(rs, st, status, err, t_in);
}

/* A new job's steps: instance, ready, copy in, run; each step ends the job
 * itself when it cannot go on. */
/* Run step 0 (issue 21): a registry tag pinned to its digest; the record
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
        step_failed(rs, st, err, why, "waitvm_timeouts");
        return false;
    }
    if (pinned)
        trace(rs, "Image %s is %s", before, rs->job->image);
    return true;
}

static void run_steps(struct run_state *rs)
{
    double t0 = (double)clock_mono_ms();
    if (!pin_image(rs) || !assign_vm(rs) || !ready_vm(rs))
        return;
    double t_ready = (double)clock_mono_ms();
    struct job *job = rs->job;
    trace(rs, "VM %s ready for job %s:%lld (%.0f ms)", rs->vm.name, job->name, (long long)job->id,
          t_ready - t0);
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
    memset(&rs->vm, 0, sizeof rs->vm);
    snprintf(rs->vm.name, sizeof rs->vm.name, "%s", job->vm_name ? job->vm_name : "");
    snprintf(rs->vm.id, sizeof rs->vm.id, "%s", job->vm_id ? job->vm_id : "");
    snprintf(rs->vm.host, sizeof rs->vm.host, "%s", job->vm_host ? job->vm_host : "");
    snprintf(rs->vm.image, sizeof rs->vm.image, "%s", job->image);
    rs->have_vm = true;
    rs->waitvm = rs->copyin = 0;
    long long now = 0;
    if (store_time_ms(rs->st, &now) != STORE_OK)
        now = clock_wall_ms();
    long long wait_ms = job->run_deadline_ms - now;
    if (wait_ms < 1000)
        wait_ms = 1000;
    trace(rs, "Re-attached to job %s:%lld on VM %s after a takeover", job->name,
          (long long)job->id, rs->vm.name);
    log_info("job_reattached", "id=%lld vm=%s wait_ms=%lld", (long long)job->id, rs->vm.name,
             wait_ms);
    if (persist(rs, do_save, "running") || end_if_cancelled(rs))
        return;
    char err[512] = "";
    int status = -1;
    double t0 = (double)clock_mono_ms();
    int st = wait_run(rs, wait_ms, &status, err, sizeof err);
    if (st == VMMS_NOT_FOUND) {
        char why[700];
        snprintf(why, sizeof why, "Its instance was gone after a takeover: %s", err);
        reschedule(rs, why, NULL);
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
        publish_and_end(rs);
        return;
    }
    log_warn("output_lost", "id=%lld temp=%s", (long long)job->id, job->output_temp);
    if (is_cancel_outcome(job))
        atomic_store(&rs->h->cancel, true);
    free(job->output_temp);
    free(job->outcome);
    job->output_temp = job->outcome = NULL;
    reschedule(rs, "Its accepted output file was gone after a takeover; grading it again", NULL);
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
    } else if (end_if_cancelled(&rs)) {
        /* cancelled before it ran */
    } else if (rs.job->retries > rs.c->cfg->job_retries) {
        /* Recovered after its consumer died once too often: end it here. */
        rs.job->retries = rs.c->cfg->job_retries;
        reschedule(&rs, "Retry budget spent (its consumer stopped while it ran)", NULL);
    } else {
        run_steps(&rs);
    }
    release_vm(&rs);
    if (rs.feedback[0])
        unlink(rs.feedback);
    store_free(rs.st);
    atomic_store(&rs.h->finished, true);
    return NULL;
}
