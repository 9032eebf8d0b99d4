/*
 * store_metrics.c: the service-wide metrics read from Redis (see
 * store_metrics.h): one batch for the counters hash, the leased and
 * callback lengths, the leader lease and Redis's clock, then the
 * scheduler's queue statistics (store_queue_stats).
 */
#include "store_internal.h"
#include "store_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

const char *const store_outcome_counter[OUTCOME__COUNT] = {
    "finished_success", "finished_error", "finished_timeout", "finished_internal_error",
    "finished_cancelled"};
const char *const store_outcome_label[OUTCOME__COUNT] = {"success", "error", "timeout",
                                                         "internal_error", "cancelled"};

/* Counters hash fields and the family (and label) each is shown as. */
struct counter_row {
    const char *field;
    const char *family;
    const char *label;  /* label name, NULL for none */
    const char *value;  /* its value */
};

static const struct counter_row counter_rows[] = {
    {"job_requests", "tango_jobs_accepted_total", NULL, NULL},
    {"job_retries", "tango_job_retries_total", NULL, NULL},
    {"finished_success", "tango_jobs_finished_total", "outcome", "success"},
    {"finished_error", "tango_jobs_finished_total", "outcome", "error"},
    {"finished_timeout", "tango_jobs_finished_total", "outcome", "timeout"},
    {"finished_internal_error", "tango_jobs_finished_total", "outcome", "internal_error"},
    {"finished_cancelled", "tango_jobs_finished_total", "outcome", "cancelled"},
    {"waitvm_timeouts", "tango_job_step_failures_total", "kind", "waitvm_timeout"},
    {"copyin_errors", "tango_job_step_failures_total", "kind", "copyin_error"},
    {"runjob_errors", "tango_job_step_failures_total", "kind", "runjob_error"},
    {"runjob_timeouts", "tango_job_step_failures_total", "kind", "runjob_timeout"},
    {"copyout_errors", "tango_job_step_failures_total", "kind", "copyout_error"},
    {COUNTER_CALLBACKS_DELIVERED, "tango_callbacks_delivered_total", NULL, NULL},
    {COUNTER_CALLBACK_FAILURES, "tango_callback_failures_total", NULL, NULL},
    {COUNTER_CALLBACKS_GIVEN_UP, "tango_callbacks_given_up_total", NULL, NULL},
};
#define NROWS (sizeof counter_rows / sizeof *counter_rows)

static const struct {
    const char *family;
    const char *help;
} counter_help[] = {
    {"tango_jobs_accepted_total", "Jobs accepted by addJob (service-wide, from Redis)"},
    {"tango_job_retries_total", "Job runs retried after an infrastructure failure"},
    {"tango_jobs_finished_total", "Jobs that ended, by outcome"},
    {"tango_job_step_failures_total", "Job step failures by kind (the /info counters)"},
    {"tango_callbacks_delivered_total", "Job callbacks delivered (receiver answered 2xx)"},
    {"tango_callback_failures_total", "Callback attempts that failed (retried or given up)"},
    {"tango_callbacks_given_up_total", "Callbacks given up (moved to callbacks:failed)"},
};

static long long reply_ll(const redisReply *r)
{
    if (!r)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return atoll(r->str);
    return 0;
}

/* A field's value in an HGETALL reply (0 if absent). */
static long long hash_field(const redisReply *all, const char *field)
{
    for (size_t i = 0; all && all->type == REDIS_REPLY_ARRAY && i + 1 < all->elements; i += 2)
        if (all->element[i]->type == REDIS_REPLY_STRING && strcmp(all->element[i]->str, field) == 0)
            return reply_ll(all->element[i + 1]);
    return 0;
}

static void write_counters(FILE *out, const redisReply *all)
{
    for (size_t f = 0; f < sizeof counter_help / sizeof *counter_help; f++) {
        metrics_write_header(out, counter_help[f].family, counter_help[f].help, METRIC_COUNTER);
        for (size_t i = 0; i < NROWS; i++) {
            const struct counter_row *row = &counter_rows[i];
            if (strcmp(row->family, counter_help[f].family) != 0)
                continue;
            const char *labels[] = {row->label, NULL};
            const char *values[] = {row->value};
            metrics_write_sample(out, row->family, row->label ? labels : NULL, values,
                                 (double)hash_field(all, row->field));
        }
    }
}

static void gauge(FILE *out, const char *name, const char *help, double v)
{
    metrics_write_header(out, name, help, METRIC_GAUGE);
    metrics_write_sample(out, name, NULL, NULL, v);
}

/* The queue per (class, group) from the scheduler's statistics
 * (store_queue_stats): length, age of each queue's head, jobs running. */
static void write_queues(FILE *out, const struct store_queue_stat *q, size_t n, long long now_ms)
{
    static const char *const labels[] = {"class", "group", NULL};
    static const struct {
        const char *name, *help;
    } fam[] = {
        {"tango_queue_length", "Jobs queued, by priority class and share group (course)"},
        {"tango_queue_oldest_age_seconds",
         "Seconds the head of each class and group's queue has waited in its class"},
        {"tango_queue_running", "Jobs leased, running or finishing, by class and share group"},
    };
    for (size_t f = 0; f < 3; f++) {
        metrics_write_header(out, fam[f].name, fam[f].help, METRIC_GAUGE);
        for (size_t i = 0; i < n; i++) {
            const char *values[] = {q[i].klass, q[i].group};
            double v = (double)q[i].running;
            if (f == 0)
                v = (double)q[i].length;
            else if (f == 1)
                v = q[i].length > 0 && q[i].oldest_enqueued_ms > 0 && now_ms > q[i].oldest_enqueued_ms
                        ? (double)(now_ms - q[i].oldest_enqueued_ms) / 1000.0
                        : 0;
            metrics_write_sample(out, fam[f].name, labels, values, v);
        }
    }
}

int store_metrics_write(struct store *st, FILE *out)
{
    char k_cnt[KEY_MAX], k_leased[KEY_MAX], k_due[KEY_MAX], k_failed[KEY_MAX], k_leader[KEY_MAX];
    store_key(st, k_cnt, KEY_COUNTERS);
    store_key(st, k_leased, KEY_QUEUE_LEASED);
    store_key(st, k_due, KEY_CALLBACKS_DUE);
    store_key(st, k_failed, KEY_CALLBACKS_FAILED);
    store_key(st, k_leader, KEY_LEADER);
    struct store_batch b = {0};
    batch_add(&b, "HGETALL %s", k_cnt);
    batch_add(&b, "LLEN %s", k_leased);
    batch_add(&b, "ZCARD %s", k_due);
    batch_add(&b, "LLEN %s", k_failed);
    batch_add(&b, "EXISTS %s", k_leader);
    batch_add(&b, "TIME");
    int status;
    redisReply *r = store_batch_run(st, &b, false, &status);
    const char *up_help = "Whether this process's last Redis read for the metrics succeeded";
    struct store_queue_stat *q = NULL;
    size_t nq = 0;
    int qstatus = r && r->elements == 6 ? store_queue_stats(st, &q, &nq) : STORE_ERROR;
    if (!r || r->elements != 6 || qstatus != STORE_OK) {
        freeReplyObject(r);
        free(q);
        gauge(out, "tango_redis_up", up_help, 0);
        return !r ? status : qstatus != STORE_OK ? qstatus : STORE_ERROR;
    }
    long long now_ms = 0;
    redisReply *t = r->element[5];
    if (t->type == REDIS_REPLY_ARRAY && t->elements == 2)
        now_ms = reply_ll(t->element[0]) * 1000 + reply_ll(t->element[1]) / 1000;
    write_counters(out, r->element[0]);
    write_queues(out, q, nq, now_ms);
    free(q);
    gauge(out, "tango_jobs_leased", "Jobs leased by a consumer (waiting for a slot or running)",
          (double)reply_ll(r->element[1]));
    gauge(out, "tango_callbacks_pending", "Callbacks waiting to be delivered (or retried)",
          (double)reply_ll(r->element[2]));
    gauge(out, "tango_callbacks_failed_stored",
          "Callbacks given up and kept in callbacks:failed for an operator",
          (double)reply_ll(r->element[3]));
    gauge(out, "tango_leader_present", "Whether a consumer holds the leader lease",
          (double)(reply_ll(r->element[4]) > 0));
    freeReplyObject(r);
    gauge(out, "tango_redis_up", up_help, 1);
    return STORE_OK;
}
