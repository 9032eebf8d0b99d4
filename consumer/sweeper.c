/*
 * sweeper.c: the leader's periodic sweep of job leases (see consumer.h).
 * Every id in queue:leased whose lease lapsed or was never granted is taken
 * over here, on the dispatcher thread, without any VMMS call: what the job
 * needs next is decided from the state its record is in.
 *
 *   never leased (queued)       back to the queue head (the store does it)
 *   leased, not started         back to the queue head, no retry
 *   running, run recorded       held again: re-attach to the run (no retry)
 *   running, no run recorded    its grading never started: back to the queue
 *                               head with no retry (unless it has come back
 *                               this way job_retries times: then one more
 *                               retry is counted, so a job that keeps
 *                               killing its consumer still ends); its
 *                               instance, if any, goes to the reaper
 *                               once that requeue landed
 *   finishing                   held again: publish the output, end it
 *   unreadable                  dead-letter
 *
 * Each sweep also keeps the scheduler's shared state: it publishes
 * course_weights, drains a queue:pending an older version left into the
 * class and group queues, and recounts the running jobs per group from the
 * lease state (logging any correction: there should be none).
 */
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "log.h"
#include "vm_spec.h"

#define SWEEP_MAX 10000

#define BEFORE_RUN "Requeued after its consumer stopped before its run started"

/* How often the job came back because its consumer stopped before the run. */
static int times_before_run(const struct job *job)
{
    int n = 0;
    size_t i;
    json_t *line;
    json_array_foreach(job->trace, i, line)
        n += json_is_string(line) && strstr(json_string_value(line), BEFORE_RUN) != NULL;
    return n;
}

/* A job adopted in state running or leased that cannot be re-attached. */
static void requeue_adopted(struct consumer *c, struct store *st, struct job *job, bool retry,
                            const char *why)
{
    if (retry)
        job->retries++;
    job->assigned = false;
    job_trace(job, why);
    bool requeued = store_job_requeue(st, c->token, job, retry) == STORE_OK;
    if (requeued)
        log_warn("job_recovered", "id=%lld retries=%d reason=\"%s\"", (long long)job->id,
                 job->retries, why);
    /* The fenced requeue first: only once it landed is the instance no
     * job's (else a clean-up pass judges it later). */
    if (requeued && job->vm_name) {
        struct vmms_vm vm;
        vm_spec_of_record(c->cfg, job, &vm);
        reaper_destroy(c, &vm, "orphan of a requeued job");
    }
    job_free(job);
}

/* Holds an adopted job (takes job): counted, and its worker starts at once. */
static void hold_adopted(struct consumer *c, struct job *job, enum held_mode mode, bool cancel)
{
    metrics_job_adopted(c, mode);
    held_add(c, job, mode, cancel, worker_main);
}

void consumer_dead_letter(struct consumer *c, struct store *st, int64_t id, const char *why)
{
    log_error("job_unreadable", "id=%lld error=\"%s\"", (long long)id, why);
    if (store_job_deadletter(st, c->token, id, why) != STORE_OK)
        log_error("deadletter_failed", "id=%lld error=\"%s\"", (long long)id, store_error(st));
}

/* Decides what an adopted job needs (the table above); takes job. */
static void adopted(struct consumer *c, struct store *st, struct job *job)
{
    bool cancel = false;
    store_cancel_requested(st, job->id, &cancel);
    switch (job->state) {
    case JOB_RUNNING:
        if (job->run_handle && job->vm_name) {
            log_info("job_adopted", "id=%lld mode=reattach vm=%s", (long long)job->id,
                     job->vm_name);
            hold_adopted(c, job, HELD_REATTACH, cancel);
            return;
        }
        requeue_adopted(c, st, job, times_before_run(job) >= c->cfg->job_retries, BEFORE_RUN);
        return;
    case JOB_FINISHING:
        log_info("job_adopted", "id=%lld mode=complete", (long long)job->id);
        hold_adopted(c, job, HELD_COMPLETE, cancel); /* used only if its output is gone */
        return;
    case JOB_LEASED:
        requeue_adopted(c, st, job, false, "Requeued after its consumer stopped before it ran");
        return;
    default:
        log_error("job_adopt_unexpected", "id=%lld state=%s", (long long)job->id,
                  job_state_name(job->state));
        job_free(job);
        return;
    }
}

/* The scheduler's upkeep (see the top of the file). */
static void sweep_schedule(struct consumer *c, struct store *st)
{
    if (store_set_share_weights(st, c->cfg->course_weights) != STORE_OK)
        log_warn("share_weights_failed", "error=\"%s\"", store_error(st));
    size_t moved = 0;
    if (store_migrate_legacy(st, c->token, c->cfg, &moved) != STORE_OK)
        log_warn("queue_migrate_failed", "error=\"%s\"", store_error(st));
    else if (moved)
        log_info("queue_migrated", "jobs=%zu from=queue:pending", moved);
    long long fixes = 0;
    if (store_sched_reconcile(st, &fixes) != STORE_OK)
        log_warn("running_recount_failed", "error=\"%s\"", store_error(st));
    else if (fixes)
        log_warn("running_recounted", "corrections=%lld", fixes);
}

void sweep_leases(struct consumer *c, struct store *st)
{
    sweep_schedule(c, st);
    int64_t *ids = NULL;
    size_t n = 0;
    if (store_lease_sweep(st, c->token, SWEEP_MAX, &ids, &n) != STORE_OK) {
        log_warn("sweep_failed", "error=\"%s\"", store_error(st));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct job *job = NULL;
        enum store_lease got;
        if (held_holds_job(c, ids[i]))
            continue; /* ours and running here: its renewal only lagged */
        if (store_lease_adopt(st, c->token, ids[i], c->cfg->lease_ms, &job, &got) != STORE_OK)
            continue;
        if (got == LEASE_RESTORED)
            log_warn("job_restored", "id=%lld reason=\"in queue:leased without a lease\"",
                     (long long)ids[i]);
        else if (got == LEASE_UNREADABLE)
            consumer_dead_letter(c, st, ids[i], store_error(st)[0] ? store_error(st)
                                                                  : "malformed record");
        else if (got == LEASE_TAKEN)
            adopted(c, st, job);
    }
    if (n)
        log_info("sweep_done", "lapsed=%zu", n);
    free(ids);
}
