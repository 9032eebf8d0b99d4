/*
 * job_end.h: how a held job's worker records its steps and ends the job
 * (job_end.c), below the run steps of worker.c. It owns the worker's state
 * (struct run_state), the store steps fenced by the lease (a Redis outage
 * waited out, a refusal ending the worker's say over the job), the job's
 * trace, the output file, and the ways a job ends exactly once: finished
 * with an outcome, requeued, retried after a pause, or ended with the
 * internal-error output once the retry budget is spent; and the release of
 * its instance once its last transition landed. It calls nothing in
 * worker.c.
 */
#ifndef TANGO_CONSUMER_JOB_END_H
#define TANGO_CONSUMER_JOB_END_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "consumer.h"

#define NOT_RUN INT_MIN /* a step result: the step never ran */

/* One worker's state for its held job. */
struct run_state {
    struct consumer *c;
    struct held_job *h;
    struct store *st;
    struct job *job;
    struct vmms_vm vm;
    bool have_vm;                        /* vm exists (or may, half made): destroy it */
    bool from_pool;                      /* vm came from a warm pool */
    int waitvm, copyin, runjob, copyout; /* step results for the status line, or NOT_RUN */
    char feedback[PATH_MAX];             /* the copied-out feedback file; "" when none */
    /* job_end.c's own, for the end transition */
    const char *const *counters;
    size_t ncounters;
    bool count_retry;
};

/* Whether the job's lease is someone else's now (touch nothing). */
bool run_lost(struct run_state *rs);

/* Appends a line (printf format) to the job's trace. */
void run_trace(struct run_state *rs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The start transition (the job running on rs->job->vm_name) and the save
 * of the job's record (its run handle and deadline), each fenced by the
 * lease, a Redis outage waited out. 0 when it landed; -1 when the job is
 * lost (the lease is someone else's: rs->h->lost set) or the consumer
 * stops. */
int run_record_start(struct run_state *rs);
int run_record_save(struct run_state *rs);

/* Whether the job's outcome is the cancelled one. */
bool run_cancel_outcome(const struct job *job);

/* Destroys the instance now, if there is one and the job is not lost;
 * gives a pool's back to the pool's books. */
void run_destroy_vm(struct run_state *rs);

/* run_destroy_vm once the job's last transition (its end or its fenced
 * requeue) has landed; else nothing: the record names the instance and a
 * successor may be using it. */
void run_release_vm(struct run_state *rs);

/* Publishes the accepted output (job->output_temp) and ends the job (the
 * end transition, its callback queued): what an adopted finishing job
 * needs, and finish's last step. */
void run_publish_and_end(struct run_state *rs);

/* Ends the job with outcome (detail: an extra line, or NULL): the output
 * file under this lease's temp name (waited for while it cannot be
 * written), the finish transition, the rename, the end transition, which
 * also bumps counters[0..ncounters) (at most 7) and the outcome's counter.
 * Nothing when the job is lost. */
void run_finish(struct run_state *rs, const char *outcome, const char *detail,
                const char *const *counters, size_t ncounters);

/* Ends the job as cancelled if that was requested; true if it did. */
bool run_end_if_cancelled(struct run_state *rs);

/* Back to the head of the queue (count_retry: one more try spent); sets
 * rs->h->ended once that landed. */
void run_requeue(struct run_state *rs, bool count_retry);

/* An infrastructure failure (why: for the trace and the log; counter: a
 * store counter to bump, or NULL): ends the job cancelled if that was
 * requested; while a watched disk is low, requeues it at no try's cost;
 * within the retry budget, retries it after a pause (doubling per try
 * spent); else ends it with the internal-error output and its step
 * results. */
void run_reschedule(struct run_state *rs, const char *why, const char *counter);

/* A VMMS step failed with st (err: the plugin's reason): when the back end
 * itself cannot be reached, the job goes back to the head of the queue
 * without spending a try (leasing pauses: backend_health.c); otherwise it
 * is the job's failure (run_reschedule with why and counter). */
void run_step_failed(struct run_state *rs, int st, const char *err, const char *why,
                     const char *counter);

#endif
