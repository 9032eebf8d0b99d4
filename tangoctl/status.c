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

int cmd_status(struct ctl *x, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return ctl_fail(x, CTL_USAGE, "status takes no arguments");
    struct store *st = x->st;
    char leader[64] = "", drain[64] = "";
    long long leader_ttl = -1;
    int status = store_leader(st, leader, sizeof leader, &leader_ttl);
    if (status != STORE_OK && status != STORE_NOT_FOUND)
        return ctl_store_fail(x, status, "reading the leader lease");
    json_t *consumers = NULL, *paused = NULL, *running = NULL, *info = NULL, *images = NULL,
           *pools = NULL, *queues = NULL;
    struct store_overview ov;
    long long queued = 0;
    double head_age = -1;
    if ((status = store_consumers(st, &consumers)) != STORE_OK ||
        (status = queue_rows(st, &queues, &queued, &head_age)) != STORE_OK ||
        (status = store_overview(st, &ov)) != STORE_OK ||
        (status = store_leased_jobs(st, RUNNING_MAX, &running)) != STORE_OK ||
        (status = store_info(st, &info)) != STORE_OK ||
        (status = store_pools(st, &pools)) != STORE_OK) {
        json_decref(consumers);
        json_decref(queues);
        json_decref(running);
        json_decref(info);
        json_decref(pools);
        return ctl_store_fail(x, status, "reading the service's state");
    }
    int ps = store_paused(st, &paused);
    int ds = store_drain_requested(st, drain, sizeof drain);
    if (store_images(st, &images) != STORE_OK)
        images = json_array();
    double now = ctl_now();
    const char *hosts_from = NULL;
    json_t *reported = reported_hosts(consumers, leader, &hosts_from);

    json_t *standbys = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(consumers, i, c) {
        const char *t = json_string_value(json_object_get(c, "token"));
        if (!leader[0] || !t || strcmp(t, leader) != 0)
            json_array_append(standbys, c);
    }
    /* running jobs: by state, and the hosts they use */
    long long by_state[JOB_NSTATES] = {0};
    json_t *hosts = json_object();
    json_t *job;
    json_array_foreach(running, i, job) {
        enum job_state s;
        if (job_state_parse(json_string_value(json_object_get(job, "state")), &s) == 0)
            by_state[s]++;
        const char *h = json_string_value(json_object_get(json_object_get(job, "vm"), "host"));
        if (json_is_string(json_object_get(json_object_get(job, "vm"), "name"))) {
            const char *key = h && h[0] ? h : "(local)";
            json_object_set_new(hosts, key,
                                json_integer(json_integer_value(json_object_get(hosts, key)) + 1));
        }
    }

    if (x->json) {
        json_t *lead = leader[0] ? json_pack("{s:s, s:I, s:O?}", "token", leader, "leaseMsLeft",
                                             (json_int_t)leader_ttl, "heartbeat",
                                             consumer_of(consumers, leader))
                                 : json_null();
        json_t *doc = json_pack(
            "{s:o, s:O, s:O, s:o, s:o, s:{s:I, s:o, s:I, s:O}, s:{s:I, s:I, s:I, s:I, s:O},"
            " s:{s:s, s:s?, s:O?, s:O}, s:O, s:O, s:{s:I, s:I}, s:{s:I, s:I, s:I}, s:O}",
            "leader", lead, "standbys", standbys, "consumers", consumers, "paused",
            ps == STORE_OK ? json_incref(paused) : json_null(), "drainRequested",
            ds == STORE_OK ? json_string(drain) : json_null(), "queue", "length",
            (json_int_t)queued, "oldestAgeS", head_age >= 0 ? json_real(head_age) : json_null(),
            "cancelsPending", (json_int_t)ov.cancels, "courses", queues, "running", "count", (json_int_t)ov.leased,
            "leased", (json_int_t)by_state[JOB_LEASED], "running", (json_int_t)by_state[JOB_RUNNING],
            "finishing", (json_int_t)by_state[JOB_FINISHING], "jobs", running, "hosts", "health",
            reported ? "reported" : "none reported (no consumer, or a back end without worker "
                                    "hosts)",
            "from", hosts_from, "workers", reported, "inUse", hosts, "images", images, "pools", pools, "callbacks", "pending",
            (json_int_t)ov.callbacks_due, "failed", (json_int_t)ov.callbacks_failed, "dead",
            "total", (json_int_t)ov.dead, "deadLetter", (json_int_t)ov.deadletter, "live",
            (json_int_t)ov.live, "counters", info);
        ctl_emit_json(x, doc);
    } else {
        char age[32];
        if (leader[0])
            print_consumer("Leader:", consumer_of(consumers, leader), leader, leader_ttl);
        else
            printf("%-11s%s\n", "Leader:", "none (no consumer holds the leader lease)");
        if (json_array_size(standbys) == 0)
            printf("%-11s%s\n", "Standby:", "none");
        json_array_foreach(standbys, i, c)
            print_consumer("Standby:", c, json_string_value(json_object_get(c, "token")), -1);
        if (ps == STORE_OK) {
            const char *by = json_string_value(json_object_get(paused, "by"));
            const char *why = json_string_value(json_object_get(paused, "reason"));
            double since = json_number_value(json_object_get(paused, "since"));
            printf("%-11sPAUSED %s ago by %s%s%s: nothing new is leased (tangoctl resume)\n",
                   "Leasing:", ctl_age(since > 0 ? now - since : -1, age, sizeof age),
                   by ? by : "?", why ? ": " : "", why ? why : "");
        } else {
            printf("%-11s%s\n", "Leasing:", "on");
        }
        if (ds == STORE_OK)
            printf("%-11sdrain requested for consumer %.8s\n", "Drain:", drain);
        printf("%-11s%lld queued, oldest %s; %lld cancellation(s) pending\n", "Queue:", queued,
               ctl_age(head_age, age, sizeof age), ov.cancels);
        json_t *row;
        json_array_foreach(queues, i, row)
            printf("  %-7s %-24s %5lld queued, oldest %-8s %lld running\n",
                   json_string_value(json_object_get(row, "class")),
                   json_string_value(json_object_get(row, "group")),
                   (long long)json_integer_value(json_object_get(row, "length")),
                   ctl_age(json_is_real(json_object_get(row, "oldestAgeS"))
                               ? json_real_value(json_object_get(row, "oldestAgeS"))
                               : -1,
                           age, sizeof age),
                   (long long)json_integer_value(json_object_get(row, "running")));
        printf("%-11s%lld job(s): %lld leased, %lld running, %lld finishing\n", "Running:",
               ov.leased, by_state[JOB_LEASED], by_state[JOB_RUNNING], by_state[JOB_FINISHING]);
        json_array_foreach(running, i, job) {
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
                   ctl_age(now - json_number_value(json_object_get(job, "createdAt")), age,
                           sizeof age));
        }
        const char *h;
        json_t *v;
        if (reported) {
            printf("%-11s%zu worker host(s), as consumer %.8s sees them\n", "Hosts:",
                   json_array_size(reported), hosts_from ? hosts_from : "?");
            json_array_foreach(reported, i, v)
                printf("  %-32s %-4s %lld job(s)\n", json_string_value(json_object_get(v, "host")),
                       json_is_true(json_object_get(v, "up")) ? "up" : "DOWN",
                       (long long)json_integer_value(json_object_get(v, "jobs")));
        } else {
            printf("%-11sno worker hosts reported (no consumer, or its back end has none)\n",
                   "Hosts:");
        }
        if (json_object_size(hosts)) {
            printf("%-11s", "In use:");
            json_object_foreach(hosts, h, v)
                printf("%s: %lld running  ", h, (long long)json_integer_value(v));
            printf("\n");
        }
        printf("%-11s", "Images:");
        json_array_foreach(images, i, v)
            printf("%s%s", i ? ", " : "", json_string_value(v));
        printf("%s\n", json_array_size(images) ? "" : "(none published yet)");
        json_object_foreach(pools, h, v)
            printf("%-11s%s: %zu ready of %zu\n", "Pool:", h,
                   json_array_size(json_object_get(v, "free")),
                   json_array_size(json_object_get(v, "total")));
        printf("%-11s%lld pending, %lld failed (tangoctl callbacks retry)\n", "Callbacks:",
               ov.callbacks_due, ov.callbacks_failed);
        printf("%-11s%lld finished job(s) kept, %lld dead-letter\n", "Dead:", ov.dead,
               ov.deadletter);
        printf("%-11s", "Counters:");
        json_object_foreach(info, h, v)
            printf("%s=%lld ", h, (long long)json_integer_value(v));
        printf("\n");
    }
    json_decref(consumers);
    json_decref(queues);
    json_decref(standbys);
    json_decref(running);
    json_decref(info);
    json_decref(images);
    json_decref(pools);
    json_decref(hosts);
    json_decref(paused);
    return CTL_OK;
}
