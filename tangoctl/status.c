/*
 * status.c: `tangoctl status`: the service at a glance, from Redis alone.
 * The leader (consumer:leader) and the standbys (the consumers' heartbeats,
 * consumers:seen:<token>), whether leasing is paused or a drain is asked
 * for, the queues by class and course (length, age of the oldest queued
 * job, running jobs: store_queue_stats), the running jobs with their
 * hosts and leases, the VMMS's published images and pools, callbacks
 * pending and given up, the dead history and the /info counters.
 *
 * Worker host health: each consumer's heartbeat carries its back end's
 * worker hosts (up or down, jobs on each: vmms get_hosts, e.g. distDocker);
 * status shows the leader's view (any consumer's when there is no leader),
 * and the hosts the running jobs use. A back end without worker hosts
 * (localDocker) reports none. A consumer whose back end cannot be reached
 * at all (its heartbeat's "backend": up false) is shown BACK END DOWN.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define RUNNING_MAX 1000

/* The queues by class and share group, as JSON rows, with their total
 * length and the age (s) of the oldest queued job (-1: none queued). */
static int queue_rows(struct store *st, json_t **rows, long long *total, double *oldest_age)
{
    struct store_queue_stat *q = NULL;
    size_t n = 0;
    long long now_ms = 0;
    int status = store_queue_stats(st, &q, &n);
    if (status == STORE_OK)
        status = store_time_ms(st, &now_ms); /* enqueue times are Redis time */
    if (status != STORE_OK) {
        free(q);
        return status;
    }
    *rows = json_array();
    *total = 0;
    *oldest_age = -1;
    for (size_t i = 0; i < n; i++) {
        double age = q[i].length > 0 && q[i].oldest_enqueued_ms > 0
                         ? (now_ms - q[i].oldest_enqueued_ms) / 1000.0
                         : -1;
        *total += q[i].length;
        if (age > *oldest_age)
            *oldest_age = age;
        json_array_append_new(*rows, json_pack("{s:s, s:s, s:I, s:o, s:I}", "class", q[i].klass,
                                               "group", q[i].group, "length",
                                               (json_int_t)q[i].length, "oldestAgeS",
                                               age >= 0 ? json_real(age) : json_null(),
                                               "running", (json_int_t)q[i].running));
    }
    free(q);
    return STORE_OK;
}

/* The heartbeat of token among consumers, or NULL. */
static json_t *consumer_of(json_t *consumers, const char *token)
{
    size_t i;
    json_t *c;
    json_array_foreach(consumers, i, c) {
        const char *t = json_string_value(json_object_get(c, "token"));
        if (t && token && strcmp(t, token) == 0)
            return c;
    }
    return NULL;
}

/* ", BACK END DOWN for <age>: <reason>" when the heartbeat says its back
 * end cannot be reached (backend_health.c: leasing paused meanwhile). */
static void print_backend_down(json_t *c)
{
    json_t *b = json_object_get(c, "backend");
    if (!json_is_object(b) || !json_is_false(json_object_get(b, "up")))
        return;
    char age[32];
    double since = json_number_value(json_object_get(b, "since"));
    const char *why = json_string_value(json_object_get(b, "reason"));
    printf(", BACK END DOWN for %s (leasing paused): %s",
           ctl_age(since > 0 ? ctl_now() - since : -1, age, sizeof age), why ? why : "?");
}

static void print_consumer(const char *label, json_t *c, const char *token, long long ttl)
{
    char age[32];
    const char *host = json_string_value(json_object_get(c, "host"));
    printf("%-11s%.8s", label, token);
    if (c)
        printf("  host %s pid %lld vmms %s, %lld job(s) held, up %s%s", host ? host : "?",
               (long long)json_integer_value(json_object_get(c, "pid")),
               json_string_value(json_object_get(c, "vmms")) ?: "?",
               (long long)json_integer_value(json_object_get(c, "held")),
               ctl_age(ctl_now() - (double)json_integer_value(json_object_get(c, "startedAt")),
                       age, sizeof age),
               json_is_true(json_object_get(c, "draining")) ? ", DRAINING" : "");
    if (c)
        print_backend_down(c);
    else
        printf("  (no heartbeat: an older consumer, or it is gone)");
    if (ttl >= 0)
        printf(", lease %.1f s left", ttl / 1000.0);
    printf("\n");
}

/* The worker hosts as the leader (or else some consumer) reports them:
 * a borrowed array, or NULL when no heartbeat has any. */
static json_t *reported_hosts(json_t *consumers, const char *leader, const char **from)
{
    json_t *c = consumer_of(consumers, leader);
    if (c && json_is_array(json_object_get(c, "hosts"))) {
        *from = leader;
        return json_object_get(c, "hosts");
    }
    size_t i;
    json_array_foreach(consumers, i, c)
        if (json_is_array(json_object_get(c, "hosts"))) {
            *from = json_string_value(json_object_get(c, "token"));
            return json_object_get(c, "hosts");
        }
    return NULL;
}

/* Everything status shows, read once from Redis, then tallied. */
struct status_view {
    char leader[64], drain[64];
    long long leader_ttl;
    json_t *consumers, *paused, *running, *info, *images, *pools, *queues;
    struct store_overview ov;
    long long queued;
    double head_age, now;
    int ps, ds;                  /* store_paused / store_drain_requested */
    const char *hosts_from;      /* whose heartbeat the worker hosts come from */
    json_t *reported;            /* borrowed from consumers, or NULL */
    json_t *standbys;            /* the heartbeats other than the leader's */
    long long by_state[JOB_NSTATES];
    json_t *hosts;               /* host -> running jobs on it */
};

/* Reads the service's state into v (zeroed by the caller); on failure the
 * ctl_store_fail exit code, else CTL_OK. */
static int status_read(struct ctl *x, struct status_view *v)
{
    struct store *st = x->st;
    v->leader_ttl = -1;
    v->head_age = -1;
    int status = store_leader(st, v->leader, sizeof v->leader, &v->leader_ttl);
    if (status != STORE_OK && status != STORE_NOT_FOUND)
        return ctl_store_fail(x, status, "reading the leader lease");
    if ((status = store_consumers(st, &v->consumers)) != STORE_OK ||
        (status = queue_rows(st, &v->queues, &v->queued, &v->head_age)) != STORE_OK ||
        (status = store_overview(st, &v->ov)) != STORE_OK ||
        (status = store_leased_jobs(st, RUNNING_MAX, &v->running)) != STORE_OK ||
        (status = store_info(st, &v->info)) != STORE_OK ||
        (status = store_pools(st, &v->pools)) != STORE_OK)
        return ctl_store_fail(x, status, "reading the service's state");
    v->ps = store_paused(st, &v->paused);
    v->ds = store_drain_requested(st, v->drain, sizeof v->drain);
    if (store_images(st, &v->images) != STORE_OK)
        v->images = json_array();
    v->now = ctl_now();
    return CTL_OK;
}

/* The standbys, the running jobs by state, and the hosts they use. */
static void status_tally(struct status_view *v)
{
    v->reported = reported_hosts(v->consumers, v->leader, &v->hosts_from);
    v->standbys = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(v->consumers, i, c) {
        const char *t = json_string_value(json_object_get(c, "token"));
        if (!v->leader[0] || !t || strcmp(t, v->leader) != 0)
            json_array_append(v->standbys, c);
    }
    v->hosts = json_object();
    json_t *job;
    json_array_foreach(v->running, i, job) {
        enum job_state s;
        if (job_state_parse(json_string_value(json_object_get(job, "state")), &s) == 0)
            v->by_state[s]++;
        const char *h = json_string_value(json_object_get(json_object_get(job, "vm"), "host"));
        if (json_is_string(json_object_get(json_object_get(job, "vm"), "name"))) {
            const char *key = h && h[0] ? h : "(local)";
            json_object_set_new(v->hosts, key,
                                json_integer(json_integer_value(json_object_get(v->hosts, key)) + 1));
        }
    }
}

static void status_free(struct status_view *v)
{
    json_decref(v->consumers);
    json_decref(v->queues);
    json_decref(v->standbys);
    json_decref(v->running);
    json_decref(v->info);
    json_decref(v->images);
    json_decref(v->pools);
    json_decref(v->hosts);
    json_decref(v->paused);
}

/* status --json: one document. */
static void status_emit_json(struct ctl *x, const struct status_view *v)
{
    const struct store_overview *ov = &v->ov;
    json_t *lead = v->leader[0] ? json_pack("{s:s, s:I, s:O?}", "token", v->leader, "leaseMsLeft",
                                            (json_int_t)v->leader_ttl, "heartbeat",
                                            consumer_of(v->consumers, v->leader))
                                : json_null();
    json_t *doc = json_pack(
        "{s:o, s:O, s:O, s:o, s:o, s:{s:I, s:o, s:I, s:O}, s:{s:I, s:I, s:I, s:I, s:O},"
        " s:{s:s, s:s?, s:O?, s:O}, s:O, s:O, s:{s:I, s:I}, s:{s:I, s:I, s:I}, s:O}",
        "leader", lead, "standbys", v->standbys, "consumers", v->consumers, "paused",
        v->ps == STORE_OK ? json_incref(v->paused) : json_null(), "drainRequested",
        v->ds == STORE_OK ? json_string(v->drain) : json_null(), "queue", "length",
        (json_int_t)v->queued, "oldestAgeS", v->head_age >= 0 ? json_real(v->head_age) : json_null(),
        "cancelsPending", (json_int_t)ov->cancels, "courses", v->queues, "running", "count",
        (json_int_t)ov->leased, "leased", (json_int_t)v->by_state[JOB_LEASED], "running",
        (json_int_t)v->by_state[JOB_RUNNING], "finishing", (json_int_t)v->by_state[JOB_FINISHING],
        "jobs", v->running, "hosts", "health",
        v->reported ? "reported" : "none reported (no consumer, or a back end without worker "
                                   "hosts)",
        "from", v->hosts_from, "workers", v->reported, "inUse", v->hosts, "images", v->images,
        "pools", v->pools, "callbacks", "pending", (json_int_t)ov->callbacks_due, "failed",
        (json_int_t)ov->callbacks_failed, "dead", "total", (json_int_t)ov->dead, "deadLetter",
        (json_int_t)ov->deadletter, "live", (json_int_t)ov->live, "counters", v->info);
    ctl_emit_json(x, doc);
}

/* Leader:, Standby:, Leasing: and Drain: lines. */
static void print_control(const struct status_view *v)
{
    char age[32];
    size_t i;
    json_t *c;
    if (v->leader[0])
        print_consumer("Leader:", consumer_of(v->consumers, v->leader), v->leader, v->leader_ttl);
    else
        printf("%-11s%s\n", "Leader:", "none (no consumer holds the leader lease)");
    if (json_array_size(v->standbys) == 0)
        printf("%-11s%s\n", "Standby:", "none");
    json_array_foreach(v->standbys, i, c)
        print_consumer("Standby:", c, json_string_value(json_object_get(c, "token")), -1);
    if (v->ps == STORE_OK) {
        const char *by = json_string_value(json_object_get(v->paused, "by"));
        const char *why = json_string_value(json_object_get(v->paused, "reason"));
        double since = json_number_value(json_object_get(v->paused, "since"));
        printf("%-11sPAUSED %s ago by %s%s%s: nothing new is leased (tangoctl resume)\n",
               "Leasing:", ctl_age(since > 0 ? v->now - since : -1, age, sizeof age),
               by ? by : "?", why ? ": " : "", why ? why : "");
    } else {
        printf("%-11s%s\n", "Leasing:", "on");
    }
    if (v->ds == STORE_OK)
        printf("%-11sdrain requested for consumer %.8s\n", "Drain:", v->drain);
}

/* Queue: and one line per class and share group. */
static void print_queues(const struct status_view *v)
{
    char age[32];
    size_t i;
    json_t *row;
    printf("%-11s%lld queued, oldest %s; %lld cancellation(s) pending\n", "Queue:", v->queued,
           ctl_age(v->head_age, age, sizeof age), v->ov.cancels);
    json_array_foreach(v->queues, i, row)
        printf("  %-7s %-24s %5lld queued, oldest %-8s %lld running\n",
               json_string_value(json_object_get(row, "class")),
               json_string_value(json_object_get(row, "group")),
               (long long)json_integer_value(json_object_get(row, "length")),
               ctl_age(json_is_real(json_object_get(row, "oldestAgeS"))
                           ? json_real_value(json_object_get(row, "oldestAgeS"))
                           : -1,
                       age, sizeof age),
               (long long)json_integer_value(json_object_get(row, "running")));
}

/* Running: and one line per running job. */
static void print_running(const struct status_view *v)
{
    char age[32];
    size_t i;
    json_t *job;
    printf("%-11s%lld job(s): %lld leased, %lld running, %lld finishing\n", "Running:",
           v->ov.leased, v->by_state[JOB_LEASED], v->by_state[JOB_RUNNING],
           v->by_state[JOB_FINISHING]);
    json_array_foreach(v->running, i, job) {
        json_t *vm = json_object_get(job, "vm");
        json_t *lease = json_object_get(job, "lease");
        const char *host = json_string_value(json_object_get(vm, "host"));
        printf("  %-8lld %-10s %-24s %-20s host %-12s owner %.8s for %s\n",
               (long long)json_integer_value(json_object_get(job, "id")),
               json_string_value(json_object_get(job, "state")) ?: "?",
               json_string_value(json_object_get(job, "courselab")) ?: "?",
               json_string_value(json_object_get(vm, "image")) ?: "?",
               host && host[0] ? host : "(local)",
               json_string_value(json_object_get(lease, "owner")) ?: "-",
               ctl_age(v->now - json_number_value(json_object_get(job, "createdAt")), age,
                       sizeof age));
    }
}

/* Hosts: (the worker hosts as reported) and In use: (by the running jobs). */
static void print_hosts(const struct status_view *v)
{
    size_t i;
    const char *h;
    json_t *w;
    if (v->reported) {
        printf("%-11s%zu worker host(s), as consumer %.8s sees them\n", "Hosts:",
               json_array_size(v->reported), v->hosts_from ? v->hosts_from : "?");
        json_array_foreach(v->reported, i, w)
            printf("  %-32s %-4s %lld job(s)\n", json_string_value(json_object_get(w, "host")),
                   json_is_true(json_object_get(w, "up")) ? "up" : "DOWN",
                   (long long)json_integer_value(json_object_get(w, "jobs")));
    } else {
        printf("%-11sno worker hosts reported (no consumer, or its back end has none)\n",
               "Hosts:");
    }
    if (json_object_size(v->hosts)) {
        printf("%-11s", "In use:");
        json_object_foreach(v->hosts, h, w)
            printf("%s: %lld running  ", h, (long long)json_integer_value(w));
        printf("\n");
    }
}

/* Images:, Pool:, Callbacks:, Dead: and Counters: lines. */
static void print_resources(const struct status_view *v)
{
    size_t i;
    const char *h;
    json_t *w;
    printf("%-11s", "Images:");
    json_array_foreach(v->images, i, w)
        printf("%s%s", i ? ", " : "", json_string_value(w));
    printf("%s\n", json_array_size(v->images) ? "" : "(none published yet)");
    json_object_foreach(v->pools, h, w)
        printf("%-11s%s: %zu ready of %zu\n", "Pool:", h,
               json_array_size(json_object_get(w, "free")),
               json_array_size(json_object_get(w, "total")));
    printf("%-11s%lld pending, %lld failed (tangoctl callbacks retry)\n", "Callbacks:",
           v->ov.callbacks_due, v->ov.callbacks_failed);
    printf("%-11s%lld finished job(s) kept, %lld dead-letter\n", "Dead:", v->ov.dead,
           v->ov.deadletter);
    printf("%-11s", "Counters:");
    json_object_foreach(v->info, h, w)
        printf("%s=%lld ", h, (long long)json_integer_value(w));
    printf("\n");
}

int cmd_status(struct ctl *x, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return ctl_fail(x, CTL_USAGE, "status takes no arguments");
    struct status_view v = {0};
    int rc = status_read(x, &v);
    if (rc == CTL_OK) {
        status_tally(&v);
        if (x->json) {
            status_emit_json(x, &v);
        } else {
            print_control(&v);
            print_queues(&v);
            print_running(&v);
            print_hosts(&v);
            print_resources(&v);
        }
    }
    status_free(&v);
    return rc;
}
