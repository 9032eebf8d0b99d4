/*
 * store_metrics.h: the service-wide Prometheus metrics, read from Redis at
 * scrape time (the same on every producer): the counters hash (jobs
 * accepted, finished by outcome, retries, step failures, callbacks), the
 * queues per priority class and share group (length, the head's wait, jobs
 * running: store_queue_stats), leased jobs, pending and given-up
 * callbacks, whether a consumer holds the leader lease. Names and meanings
 * are listed in docs/operators.md "Metrics".
 */
#ifndef TANGO_STORE_METRICS_H
#define TANGO_STORE_METRICS_H

#include <stdio.h>

#include "store.h"

/* How a job ended, as counted in the counters hash (field
 * store_outcome_counter[k], HINCRBY'd by the job's end transition from the
 * names the worker passes) and shown as tango_jobs_finished_total{outcome}. */
enum job_outcome_kind {
    OUTCOME_SUCCESS,        /* the autodriver returned normally */
    OUTCOME_ERROR,          /* the autodriver reported an error (usage, OS, unknown) */
    OUTCOME_TIMEOUT,        /* the job ran past its timeout */
    OUTCOME_INTERNAL_ERROR, /* retry budget spent on infrastructure failures */
    OUTCOME_CANCELLED,      /* cancelled by request */
    OUTCOME__COUNT
};
extern const char *const store_outcome_counter[OUTCOME__COUNT]; /* "finished_success", ... */
extern const char *const store_outcome_label[OUTCOME__COUNT];   /* "success", ... */

/* HELP of tango_redis_errors_total{instance} (store_unavailable_count),
 * which both processes show. */
#define STORE_ERRORS_HELP \
    "Redis commands of this process that failed: unreachable, timed out, not the master, " \
    "or replicas not confirming"

/* Counters hash fields the consumer's callback sender bumps. */
#define COUNTER_CALLBACKS_DELIVERED "callbacks_delivered"
#define COUNTER_CALLBACK_FAILURES "callback_failures"   /* failed attempts (retried or not) */
#define COUNTER_CALLBACKS_GIVEN_UP "callbacks_given_up"

/* Writes every service-wide family to out (two Redis round trips), then
 * tango_redis_up (1, or 0 with nothing else
 * when Redis did not answer). Returns the store status. */
int store_metrics_write(struct store *st, FILE *out);

#endif
