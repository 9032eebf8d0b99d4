/*
 * job_end.c: a worker's store steps and the ways its job ends (see
 * job_end.h). Each step is recorded in the job's trace and in the store
 * (fenced by the lease) before it is acted on. A job ends exactly once:
 * finished with its outcome (output file under a writer-unique temp name,
 * the finish transition, the rename, the end transition), requeued after
 * an infrastructure failure, or finished with the internal-error output
 * once the retry budget is spent. A worker that finds its lease taken
 * (STORE_STALE) stops at once and touches nothing. An output that cannot
 * be written (a full disk) is waited for, never skipped; while a watched
 * disk is below min_free_mb (disk_guard.h) an infrastructure failure
 * spends no try.
 */
#include "job_end.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_health.h"
#include "clock.h"
#include "disk_guard.h"
#include "log.h"
#include "output_file.h"
#include "pool.h"
#include "store_metrics.h"

#define CANCELLED_OUTCOME "Error: Job cancelled by request"
#define OUTPUT_RETRY_MAX_MS 5000 /* longest pause between two tries to write an output */
#define RETRY_PAUSE_MS 1000      /* before a job's first retry; doubles per try spent */
#define RETRY_PAUSE_MAX_MS 8000

bool run_lost(struct run_state *rs)
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
        if (run_lost(rs))
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

/* The store steps persist runs (each fenced by the lease). */
static int do_start(struct run_state *rs)
{
    return store_job_start(rs->st, rs->c->token, rs->job);
}

static int do_save(struct run_state *rs)
{
    return store_job_save(rs->st, rs->c->token, rs->job);
}

static int do_finish(struct run_state *rs)
{
    return store_job_finish(rs->st, rs->c->token, rs->job);
}

static int do_requeue(struct run_state *rs)
{
    return store_job_requeue(rs->st, rs->c->token, rs->job, rs->count_retry);
}

int run_record_start(struct run_state *rs)
{
    return persist(rs, do_start, "running");
}

int run_record_save(struct run_state *rs)
{
    return persist(rs, do_save, "running");
}

bool run_cancel_outcome(const struct job *job)
{
    return job->outcome && strcmp(job->outcome, CANCELLED_OUTCOME) == 0;
}

/* How the job ended, for tango_jobs_finished_total (from the outcome
 * lines this file writes; an adopted finishing job's comes from its record). */
static enum job_outcome_kind outcome_kind(const struct job *job)
{
    const char *o = job->outcome ? job->outcome : "";
    if (run_cancel_outcome(job))
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
    int status = store_job_end(rs->st, rs->c->token, rs->job, run_cancel_outcome(rs->job),
                               counters, n, cb);
    json_decref(cb);
    return status;
}

void run_trace(struct run_state *rs, const char *fmt, ...)
{
    char event[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(event, sizeof event, fmt, ap);
    va_end(ap);
    job_trace(rs->job, event);
}

/* Destroys the instance (never one whose job is someone else's now). */
void run_destroy_vm(struct run_state *rs)
{
    if (!rs->have_vm || run_lost(rs))
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
void run_release_vm(struct run_state *rs)
{
    if (atomic_load(&rs->h->ended))
        run_destroy_vm(rs);
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
        if (run_lost(rs) || atomic_load(&rs->c->stopping))
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
void run_publish_and_end(struct run_state *rs)
{
    struct job *job = rs->job;
    if (job->output_temp && output_file_publish(rs->c->cfg->courselabs, job))
        log_error("output_publish_failed", "id=%lld errno=%d", (long long)job->id, errno);
    if (persist(rs, do_end, run_cancel_outcome(job) ? "cancelled" : "done") == 0) {
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
void run_finish(struct run_state *rs, const char *outcome, const char *detail,
                const char *const *counters, size_t ncounters)
{
    struct job *job = rs->job;
    if (run_lost(rs))
        return;
    free(job->outcome);
    job->outcome = strdup(outcome);
    run_trace(rs, "Job %s:%lld finished: %s", job->name, (long long)job->id, outcome);
    free(job->output_temp);
    job->output_temp = NULL;
    if (write_output(rs, outcome, detail))
        return;
    rs->counters = counters;
    rs->ncounters = ncounters;
    if (persist(rs, do_finish, "finishing"))
        return;
    run_publish_and_end(rs);
}

/* Ends the job as cancelled if that was requested; true if it did. */
bool run_end_if_cancelled(struct run_state *rs)
{
    if (!atomic_load(&rs->h->cancel))
        return false;
    run_finish(rs, CANCELLED_OUTCOME, NULL, NULL, 0);
    return true;
}

/* Back to the head of the queue; count_retry: one more try spent. */
void run_requeue(struct run_state *rs, bool count_retry)
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
    run_trace(rs, "Retrying in %lld ms", ms);
    atomic_store(&rs->h->slot_free, true);
    long long end = clock_mono_ms() + ms;
    while (clock_mono_ms() < end && !run_lost(rs) && !atomic_load(&rs->h->cancel) &&
           !atomic_load(&rs->c->draining) && !atomic_load(&rs->c->stopping))
        usleep(50 * 1000);
}

/* An infrastructure failure: retry within the budget (after a pause), else
 * internal error. */
void run_reschedule(struct run_state *rs, const char *why, const char *counter)
{
    struct job *job = rs->job;
    if (run_end_if_cancelled(rs))
        return;
    run_trace(rs, "Job %s:%lld failed: %s", job->name, (long long)job->id, why);
    log_warn("job_failed", "id=%lld retries=%d reason=\"%s\"", (long long)job->id, job->retries,
             why);
    const char *counters[] = {counter};
    if (disk_guard_low(rs->c)) {
        /* Our disk, not the job: back to the head of the queue at no
         * try's cost; leasing waits for the space to come back. */
        run_trace(rs, "Waiting in the queue for disk space on the grading host");
        run_requeue(rs, false);
        return;
    }
    if (job->retries < rs->c->cfg->job_retries) {
        job->retries++;
        if (counter)
            store_incr_counter(rs->st, counter, 1);
        retry_pause(rs);
        if (!run_end_if_cancelled(rs))
            run_requeue(rs, true);
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
    run_finish(rs, outcome, detail, counters, counter ? 1 : 0);
}

/* A VMMS step failed with st (err: the plugin's reason): when the back end
 * itself cannot be reached, the job goes back to the head of the queue
 * without spending a try (leasing pauses: backend_health.c); otherwise it
 * is the job's failure (reschedule). */
void run_step_failed(struct run_state *rs, int st, const char *err, const char *why,
                     const char *counter)
{
    if (run_lost(rs) || atomic_load(&rs->h->cancel) || !backend_unavailable(rs->c, st, err)) {
        run_reschedule(rs, why, counter);
        return;
    }
    run_release_vm(rs); /* fails while it is down: the reaper's clean-up finds it later */
    log_warn("job_backend_unavailable", "id=%lld status=%d reason=\"%s\"", (long long)rs->job->id,
             st, err);
    run_trace(rs, "Back end unavailable (%s): back in the queue, no try spent", err);
    run_requeue(rs, false);
}
