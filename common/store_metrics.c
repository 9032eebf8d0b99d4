/*
 * store_metrics.c: the service-wide metrics read from Redis (see
 * store_metrics.h): one batch for the counters hash, the queue and
 * callback lengths, the leader lease and Redis's clock; the oldest queued
 * job's age comes from the queue head's record.
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

/* Age in seconds of the job at the queue head (submitted at createdAt),
 * on Redis's clock; 0 when none. */
static double head_age(struct store *st, const redisReply *head, long long now_ms)
{
    if (!head || head->type != REDIS_REPLY_STRING)
        return 0;
    char k_live[KEY_MAX];
    store_key(st, k_live, KEY_JOBS_LIVE);
    int status;
    redisReply *r = store_cmdf(st, &status, "HGET %s %b", k_live, head->str, head->len);
    double age = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        json_t *rec = json_loadb(r->str, r->len, 0, NULL);
        json_t *created = json_object_get(rec, "createdAt");
        if (json_is_number(created) && json_number_value(created) > 0) {
            age = (double)now_ms / 1000.0 - json_number_value(created);
            if (age < 0)
                age = 0;
        }
        json_decref(rec);
    }
    freeReplyObject(r);
    return age;
}

int store_metrics_write(struct store *st, FILE *out)
{
    char k_cnt[KEY_MAX], k_pend[KEY_MAX], k_leased[KEY_MAX], k_due[KEY_MAX], k_failed[KEY_MAX],
        k_leader[KEY_MAX];
    store_key(st, k_cnt, KEY_COUNTERS);
    store_key(st, k_pend, KEY_QUEUE_PENDING);
    store_key(st, k_leased, KEY_QUEUE_LEASED);
    store_key(st, k_due, KEY_CALLBACKS_DUE);
    store_key(st, k_failed, KEY_CALLBACKS_FAILED);
    store_key(st, k_leader, KEY_LEADER);
    struct store_batch b = {0};
    batch_add(&b, "HGETALL %s", k_cnt);
    batch_add(&b, "LLEN %s", k_pend);
    batch_add(&b, "LLEN %s", k_leased);
    batch_add(&b, "ZCARD %s", k_due);
    batch_add(&b, "LLEN %s", k_failed);
    batch_add(&b, "EXISTS %s", k_leader);
    batch_add(&b, "LINDEX %s 0", k_pend);
    batch_add(&b, "TIME");
    int status;
    redisReply *r = store_batch_run(st, &b, false, &status);
    const char *up_help = "Whether this process's last Redis read for the metrics succeeded";
    if (!r || r->elements != 8) {
        freeReplyObject(r);
        gauge(out, "tango_redis_up", up_help, 0);
        return r ? STORE_ERROR : status;
    }
    long long now_ms = 0;
    redisReply *t = r->element[7];
    if (t->type == REDIS_REPLY_ARRAY && t->elements == 2)
        now_ms = reply_ll(t->element[0]) * 1000 + reply_ll(t->element[1]) / 1000;
    write_counters(out, r->element[0]);
    gauge(out, "tango_queue_length", "Jobs waiting in the queue", (double)reply_ll(r->element[1]));
    gauge(out, "tango_queue_oldest_age_seconds",
          "Seconds since the job at the queue head was submitted (0: queue empty)",
          head_age(st, r->element[6], now_ms));
    gauge(out, "tango_jobs_leased", "Jobs leased by a consumer (waiting for a slot or running)",
          (double)reply_ll(r->element[2]));
    gauge(out, "tango_callbacks_pending", "Callbacks waiting to be delivered (or retried)",
          (double)reply_ll(r->element[3]));
    gauge(out, "tango_callbacks_failed_stored",
          "Callbacks given up and kept in callbacks:failed for an operator",
          (double)reply_ll(r->element[4]));
    gauge(out, "tango_leader_present", "Whether a consumer holds the leader lease",
          (double)(reply_ll(r->element[5]) > 0));
    freeReplyObject(r);
    gauge(out, "tango_redis_up", up_help, 1);
    return STORE_OK;
}
