/*
 * dispatch.c: the consumer's main loop. Holds (or waits for) the leader
 * lease, renews it and the leases of held jobs, leases queued jobs in the
 * scheduling rule's order (one atomic library call; a blocking wait for a
 * wake-up when there is nothing to lease), starts a worker thread per job
 * within the overall and per-image limits, reaps finished workers, and drains on SIGTERM or
 * when tangoctl's drain request names it. Every 500 ms it writes the
 * heartbeat tangoctl shows and reads the control keys: while control:paused
 * exists it leases nothing new (running jobs go on); nor while the back end
 * cannot be reached (backend_health.c).
 * Nothing here calls the VMMS (destroys go to the reaper thread) and no
 * Redis call is made while holding c->lock (taken by held.c alone, which
 * owns the held list), so lease renewal never stalls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend_health.h"
#include "consumer.h"
#include "disk_guard.h"
#include "leadership.h"
#include "log.h"
#include "pool.h"
#include "clock.h"

#define LEASE_BLOCK_MS 200
#define RENEW_IDS_MAX 4096
#define CANCEL_CHECK_MS 250
#define CONTROL_CHECK_MS 500

struct renew_ids {
    int64_t *ids;
    long long *fences;
    size_t n;
};

/* held_fn: collects the id and fence of each job whose lease is ours. */
static bool collect_renew(struct consumer *c, struct held_job *h, void *arg)
{
    (void)c;
    struct renew_ids *r = arg;
    if (r->n >= RENEW_IDS_MAX)
        return false;
    if (!atomic_load(&h->ended)) {
        r->ids[r->n] = h->id;
        r->fences[r->n++] = h->fence;
    }
    return true;
}

struct lost_ids {
    const int64_t *ids;
    size_t n;
};

/* held_fn: marks h lost if its id is among the lost ones. */
static bool mark_lost(struct consumer *c, struct held_job *h, void *arg)
{
    (void)c;
    const struct lost_ids *l = arg;
    for (size_t i = 0; i < l->n; i++)
        if (h->id == l->ids[i] && !atomic_load(&h->ended) && !atomic_exchange(&h->lost, true))
            log_warn("job_lease_lost", "id=%lld", (long long)h->id);
    return true;
}

/* Renews the leases of every held job (with its fence); a job whose lease
 * is someone else's now is marked lost: its worker stops touching it. */
static void renew_held(struct consumer *c, struct store *st)
{
    static int64_t ids[RENEW_IDS_MAX];
    static long long fences[RENEW_IDS_MAX];
    struct renew_ids r = {ids, fences, 0};
    held_each(c, collect_renew, &r);
    int64_t *lost = NULL;
    size_t nlost = 0;
    if (store_lease_renew(st, c->token, c->cfg->lease_ms, ids, fences, r.n, &lost, &nlost) !=
        STORE_OK) {
        log_warn("lease_renew_failed", "jobs=%zu error=\"%s\"", r.n, store_error(st));
        return;
    }
    held_each(c, mark_lost, &(struct lost_ids){lost, nlost});
    free(lost);
}

/* Leases one queued job (blocking briefly) and holds it. */
static void lease_one(struct consumer *c, struct store *st, int block_ms)
{
    int64_t id = 0;
    struct job *job = NULL;
    enum store_lease got;
    /* The next job under the scheduling rule (classes, fair share, caps,
     * promotion, pause: docs/design.md "Fair share and priorities"). */
    int status = store_lease_sched(st, c->token, c->cfg->lease_ms, block_ms,
                                   c->cfg->max_running_per_course, c->cfg->max_wait_s, &id, &job,
                                   &got);
    if (status != STORE_OK) {
        usleep(200 * 1000);
        return;
    }
    if (got == LEASE_UNREADABLE) {
        consumer_dead_letter(c, st, id, store_error(st)[0] ? store_error(st) : "malformed record");
        return;
    }
    if (got != LEASE_TAKEN)
        return;
    bool cancel = false;
    store_cancel_requested(st, id, &cancel);
    log_info("job_leased", "id=%lld image=%s fence=%lld", (long long)id, job->image, job->fence);
    held_add(c, job, HELD_RUN, cancel, worker_main);
}

struct cancel_hit {
    int64_t id;
    bool held, running;
    struct vmms_vm vm;
};

/* held_fn: flags the held job a cancel names; notes its instance if it is
 * running (to destroy), starts it at once if it never started. */
static bool flag_cancel(struct consumer *c, struct held_job *h, void *arg)
{
    struct cancel_hit *k = arg;
    if (h->id != k->id)
        return true;
    k->held = true;
    if (!atomic_exchange(&h->cancel, true) && h->started && atomic_load(&h->in_run)) {
        k->running = true;
        k->vm = h->vm;
    }
    if (!h->started)
        held_start(c, h, worker_main); /* ends at once: it runs nothing */
    return true;
}

/* Acts on cancellation requests: a held job is flagged (and its instance
 * destroyed by the reaper if it is running, which ends its run); a queued
 * job is taken out of the queue and ended as cancelled; a finished one is
 * forgotten. */
static void process_cancels(struct consumer *c, struct store *st)
{
    int64_t *ids = NULL;
    size_t n = 0;
    if (store_cancel_requests(st, 256, &ids, &n) != STORE_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        struct cancel_hit k = {.id = ids[i]};
        held_each(c, flag_cancel, &k);
        if (k.running)
            reaper_destroy(c, &k.vm, "cancel");
        if (k.held)
            continue;
        struct job *job = NULL;
        enum store_lease got;
        if (store_lease_take(st, c->token, ids[i], c->cfg->lease_ms, &job, &got) == STORE_OK &&
            got == LEASE_TAKEN) {
            log_info("job_cancel_queued", "id=%lld", (long long)ids[i]);
            held_add(c, job, HELD_RUN, true, worker_main);
            continue;
        }
        json_t *rec = NULL;
        bool dead = false;
        int status = store_get_job(st, ids[i], &rec, &dead);
        if (status == STORE_NOT_FOUND || (status == STORE_OK && dead))
            store_cancel_forget(st, ids[i]);
        json_decref(rec);
    }
    free(ids);
}

/* How many more jobs to lease: only what can start now, so queued jobs stay
 * in the queue (with a queue position, and takeable by a standby). Jobs
 * waiting for their image's own limit count against it. */
static bool count_active(struct consumer *c, struct held_job *h, void *active)
{
    (void)c;
    *(int *)active += !atomic_load(&h->slot_free);
    return true;
}

static int capacity_left(struct consumer *c)
{
    int active = 0;
    held_each(c, count_active, &active);
    return c->cfg->max_jobs - active;
}

/* The consumer stops with jobs still held (drain deadline, or a second
 * signal): new jobs not started go back to the head of the queue (no retry);
 * started ones keep running in their instances, and their leases are let
 * go at once, so the next leader adopts them and re-attaches without
 * running them again. Their workers are marked lost: they stop touching
 * the jobs and exit. No instance is destroyed. */
struct hand_off_set {
    int64_t ids[RENEW_IDS_MAX];
    long long fences[RENEW_IDS_MAX];
    struct job *unstarted[RENEW_IDS_MAX];
    size_t n, nun;
};

/* held_fn: sorts h into the jobs to requeue and those to let go (marked
 * lost). */
static bool sort_hand_off(struct consumer *c, struct held_job *h, void *arg)
{
    (void)c;
    struct hand_off_set *o = arg;
    if (atomic_load(&h->finished) || atomic_load(&h->ended))
        return true;
    /* an adopted job (a run to re-attach, an output to publish) is
     * handed off like a started one even before its worker began */
    bool began = h->started || h->mode != HELD_RUN;
    if (!began && o->nun < RENEW_IDS_MAX) {
        o->unstarted[o->nun++] = h->job;
    } else if (began && o->n < RENEW_IDS_MAX) {
        atomic_store(&h->lost, true);
        o->ids[o->n] = h->id;
        o->fences[o->n++] = h->fence;
    }
    return true;
}

static void hand_off(struct consumer *c, struct store *st)
{
    static struct hand_off_set set; /* dispatcher thread only */
    struct hand_off_set *o = &set;
    o->n = o->nun = 0;
    held_each(c, sort_hand_off, o);
    for (size_t i = 0; i < o->nun; i++)
        if (store_job_requeue(st, c->token, o->unstarted[i], false) == STORE_OK)
            log_info("job_handed_back", "id=%lld", (long long)o->unstarted[i]->id);
    if (store_lease_release(st, c->token, o->ids, o->fences, o->n) == STORE_OK)
        for (size_t i = 0; i < o->n; i++)
            log_info("job_handed_off", "id=%lld", (long long)o->ids[i]);
}

static void host_row(const char *host, bool up, int jobs, void *rows)
{
    json_array_append_new(rows, json_pack("{s:s, s:b, s:i}", "host", host, "up", up, "jobs", jobs));
}

/* The heartbeat tangoctl shows (every consumer, leader or standby: with
 * its back end's worker hosts, up or down, when it has some), and the
 * control keys read with it: pause (lease nothing new; running jobs go on)
 * and a drain request naming this consumer (the SIGTERM path). */
static void control_check(struct consumer *c, struct store *st, bool *paused, time_t started)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    int held = held_count(c);
    json_t *info = json_pack("{s:s, s:s, s:i, s:s, s:b, s:i, s:b, s:I}", "token", c->token,
                             "host", host, "pid", (int)getpid(), "vmms", c->cfg->vmms, "leader",
                             atomic_load(&c->leader), "held", held, "draining",
                             atomic_load(&c->draining), "startedAt", (json_int_t)started);
    if (c->ops && c->ops->get_hosts) { /* in-memory state only: never waits for the network */
        json_t *hosts = json_array();
        c->ops->get_hosts(c->vctx, host_row, hosts);
        json_object_set_new(info, "hosts", hosts);
    }
    backend_health_info(c, info);
    struct store_control ctl;
    int ttl = c->cfg->lease_ms > 3 * CONTROL_CHECK_MS ? c->cfg->lease_ms : 3 * CONTROL_CHECK_MS;
    int status = store_consumer_beat(st, c->token, info, ttl, &ctl);
    json_decref(info);
    if (status != STORE_OK)
        return;
    if (ctl.paused != *paused)
        log_info(ctl.paused ? "leasing_paused" : "leasing_resumed", "token=%.8s leader=%d",
                 c->token, (int)atomic_load(&c->leader));
    *paused = ctl.paused;
    if (ctl.drain && !atomic_exchange(&c->draining, true))
        log_info("drain_requested", "token=%.8s by=control", c->token);
}

static void become_leader(struct consumer *c, struct store *st)
{
    log_info("leader_acquired", "token=%.8s", c->token);
    atomic_store(&c->leader, true);
    metrics_leader_change(c, true);
    sweep_leases(c, st);
    reaper_request_cleanup(c);
}

/* held_fn: whether any held job's worker started. */
static bool any_started_fn(struct consumer *c, struct held_job *h, void *any)
{
    (void)c;
    *(bool *)any |= h->started;
    return true;
}

/* The dispatcher's state between loop turns. */
struct dispatch_state {
    struct store *st;
    long long next_renew, next_control, next_cancel_check, next_sweep;
    long long drain_deadline; /* 0: not draining yet */
    long long last_ok;        /* when Redis last answered the leader lease */
    bool was_leader, paused;
    time_t started;
};

/* Leadership is gone (lost or lapsed): the flag and the metric say so. */
static void leader_gone(struct consumer *c)
{
    atomic_store(&c->leader, false);
    metrics_leader_change(c, false);
}

/* Takes or renews the leader lease (and, as leader, the held jobs'
 * leases); notices leadership gained, lost, or lapsed while Redis did not
 * answer for longer than a lease. */
static void leader_tick(struct consumer *c, struct dispatch_state *d, long long now)
{
    bool leader = false;
    long long sent = leadership_clock_ms();
    int status = store_leader_acquire(d->st, c->token, c->cfg->lease_ms, &leader);
    if (status == STORE_OK) {
        d->last_ok = now;
        if (leader)
            leadership_renewed(c, sent);
        else
            leadership_dropped(c);
        if (leader && !d->was_leader)
            become_leader(c, d->st);
        else if (!leader && d->was_leader) {
            log_error("leader_lost", "token=%.8s", c->token);
            leader_gone(c);
        }
        d->was_leader = leader;
        if (leader)
            renew_held(c, d->st);
    } else if (d->was_leader && now - d->last_ok > c->cfg->lease_ms) {
        leadership_dropped(c);
        log_error("leader_lease_expired", "reason=\"%s\"", store_error(d->st));
        leader_gone(c);
        d->was_leader = false;
    }
}

/* While draining: whether to stop now (nothing held, or the deadline
 * passed). */
static bool drain_done(struct consumer *c, struct dispatch_state *d, long long now)
{
    if (!d->drain_deadline) {
        d->drain_deadline = now + (long long)c->cfg->drain_timeout_s * 1000;
        log_info("drain_start", "held=%d deadline_s=%d", held_count(c),
                 c->cfg->drain_timeout_s);
    }
    int held = held_count(c);
    if (held == 0)
        return true;
    if (now >= d->drain_deadline) {
        log_warn("drain_deadline", "held=%d", held);
        return true;
    }
    return false;
}

/* The leader's turn: cancels, the lease sweep, starting what fits, then
 * leasing one job when leasing is allowed and a slot is free (blocking
 * until the next renewal at most), or a short sleep. */
static void leader_work(struct consumer *c, struct dispatch_state *d, long long now)
{
    if (now >= d->next_cancel_check) {
        process_cancels(c, d->st);
        d->next_cancel_check = now + CANCEL_CHECK_MS;
    }
    if (now >= d->next_sweep) {
        sweep_leases(c, d->st);
        d->next_sweep = now + c->cfg->sweep_interval_ms;
    }
    held_start_ready(c, worker_main);
    if (d->paused || !disk_guard_lease_ok(c) || backend_is_down(c) ||
        clock_mono_ms() < atomic_load(&c->busy_until_ms)) {
        usleep(50 * 1000);
    } else if (capacity_left(c) > 0) {
        long long until_renew = d->next_renew - clock_mono_ms();
        int block = until_renew < LEASE_BLOCK_MS ? (int)(until_renew > 10 ? until_renew : 10)
                                                 : LEASE_BLOCK_MS;
        lease_one(c, d->st, block);
    } else {
        usleep(20 * 1000);
    }
}

/* Leaving: hands held jobs off, waits for the workers (handed-off ones exit
 * within a wait slice), frees the held list, lets go of the leader lease
 * and the heartbeat. */
static void stop_dispatch(struct consumer *c, struct dispatch_state *d)
{
    hand_off(c, d->st);
    atomic_store(&c->stopping, true);
    for (;;) {
        held_reap(c);
        bool any_started = false;
        held_each(c, any_started_fn, &any_started);
        if (!any_started)
            break;
        usleep(50 * 1000);
    }
    held_free_all(c);
    leadership_dropped(c);
    if (d->was_leader)
        store_leader_release(d->st, c->token);
    atomic_store(&c->leader, false);
    store_consumer_gone(d->st, c->token);
    store_free(d->st);
    log_info("dispatch_stopped", "%s", "");
}

int dispatch_run(struct consumer *c)
{
    struct dispatch_state d = {
        .st = store_new(c->cfg), .last_ok = clock_mono_ms(), .started = time(NULL)};
    while (!atomic_load(&c->stopping)) {
        long long now = clock_mono_ms();
        if (now >= d.next_renew) {
            leader_tick(c, &d, now);
            d.next_renew = now + c->cfg->lease_ms / 3;
        }
        if (now >= d.next_control) {
            control_check(c, d.st, &d.paused, d.started);
            d.next_control = now + CONTROL_CHECK_MS;
        }
        held_reap(c);
        if (atomic_load(&c->draining)) {
            if (drain_done(c, &d, now))
                break;
            usleep(100 * 1000);
        } else if (!d.was_leader) {
            usleep(200 * 1000);
        } else {
            leader_work(c, &d, now);
        }
    }
    stop_dispatch(c, &d);
    return 0;
}
