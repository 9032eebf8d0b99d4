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
 * Redis call is made while holding c->lock, so lease renewal never stalls.
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

void consumer_vm_name(struct consumer *c, const char *tag, char *out, size_t len)
{
    pthread_mutex_lock(&c->lock);
    unsigned long seq = ++c->vm_seq;
    pthread_mutex_unlock(&c->lock);
    snprintf(out, len, "%s%s-%lu-%.8s", c->cfg->instance_prefix, tag, seq, c->token);
}

static int running_for_image(struct consumer *c, const char *image, int *total)
{
    int n = 0;
    *total = 0;
    for (struct held_job *h = c->held; h; h = h->next) {
        if (!h->started || atomic_load(&h->slot_free))
            continue;
        (*total)++;
        if (strcmp(h->image, image) == 0)
            n++;
    }
    return n;
}

/* Starts h's worker thread. Caller holds the lock. */
static bool start_worker(struct consumer *c, struct held_job *h)
{
    struct worker_arg *wa = malloc(sizeof *wa);
    wa->c = c;
    wa->h = h;
    if (pthread_create(&h->thread, NULL, worker_main, wa) != 0) {
        free(wa);
        log_error("worker_start_failed", "id=%lld errno=%d", (long long)h->id, errno);
        return false;
    }
    h->started = true;
    return true;
}

/* Starts held jobs that fit the limits, oldest first. Caller holds lock. */
static void start_ready(struct consumer *c)
{
    for (struct held_job *h = c->held; h; h = h->next) {
        if (h->started)
            continue;
        int total;
        int same = running_for_image(c, h->image, &total);
        if (total >= c->cfg->max_jobs)
            return;
        if (same >= c->cfg->max_jobs_per_image)
            continue;
        if (!start_worker(c, h))
            return;
    }
}

/* Joins finished workers and forgets their jobs. */
static void reap(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    struct held_job **pp = &c->held;
    while (*pp) {
        struct held_job *h = *pp;
        if (h->started && atomic_load(&h->finished)) {
            *pp = h->next;
            c->nheld--;
            pthread_mutex_unlock(&c->lock);
            pthread_join(h->thread, NULL);
            job_free(h->job);
            free(h);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        pp = &h->next;
    }
    pthread_mutex_unlock(&c->lock);
}

/* Renews the leases of every held job (with its fence); a job whose lease
 * is someone else's now is marked lost: its worker stops touching it. */
static void renew_held(struct consumer *c, struct store *st)
{
    static int64_t ids[RENEW_IDS_MAX];
    static long long fences[RENEW_IDS_MAX];
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    for (struct held_job *h = c->held; h && n < RENEW_IDS_MAX; h = h->next) {
        if (atomic_load(&h->ended))
            continue;
        ids[n] = h->id;
        fences[n++] = h->fence;
    }
    pthread_mutex_unlock(&c->lock);
    int64_t *lost = NULL;
    size_t nlost = 0;
    if (store_lease_renew(st, c->token, c->cfg->lease_ms, ids, fences, n, &lost, &nlost) !=
        STORE_OK) {
        log_warn("lease_renew_failed", "jobs=%zu error=\"%s\"", n, store_error(st));
        return;
    }
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < nlost; i++)
        for (struct held_job *h = c->held; h; h = h->next)
            if (h->id == lost[i] && !atomic_load(&h->ended) && !atomic_exchange(&h->lost, true))
                log_warn("job_lease_lost", "id=%lld", (long long)h->id);
    pthread_mutex_unlock(&c->lock);
    free(lost);
}

void hold_job(struct consumer *c, struct job *job, enum held_mode mode, bool cancel)
{
    struct held_job *h = calloc(1, sizeof *h);
    h->id = job->id;
    h->fence = job->fence;
    h->job = job;
    h->mode = mode;
    metrics_job_adopted(c, mode);
    atomic_store(&h->cancel, cancel);
    snprintf(h->image, sizeof h->image, "%s", job->image);
    if (mode != HELD_RUN && job->vm_name)
        snprintf(h->vm_name, sizeof h->vm_name, "%s", job->vm_name);
    pthread_mutex_lock(&c->lock);
    struct held_job **pp = &c->held;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
    c->nheld++;
    /* A job to cancel, re-attach to or complete starts at once, whatever
     * the limits: it starts no new instance. */
    if (cancel || mode != HELD_RUN)
        start_worker(c, h);
    start_ready(c);
    pthread_mutex_unlock(&c->lock);
}

void consumer_dead_letter(struct consumer *c, struct store *st, int64_t id, const char *why)
{
    log_error("job_unreadable", "id=%lld error=\"%s\"", (long long)id, why);
    if (store_job_deadletter(st, c->token, id, why) != STORE_OK)
        log_error("deadletter_failed", "id=%lld error=\"%s\"", (long long)id, store_error(st));
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
    hold_job(c, job, HELD_RUN, cancel);
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
        bool held = false, running = false;
        struct vmms_vm vm;
        pthread_mutex_lock(&c->lock);
        for (struct held_job *h = c->held; h; h = h->next)
            if (h->id == ids[i]) {
                held = true;
                if (!atomic_exchange(&h->cancel, true) && h->started && atomic_load(&h->in_run)) {
                    running = true;
                    vm = h->vm;
                }
                if (!h->started)
                    start_worker(c, h); /* ends at once: it runs nothing */
            }
        pthread_mutex_unlock(&c->lock);
        if (running)
            reaper_destroy(c, &vm, "cancel");
        if (held)
            continue;
        struct job *job = NULL;
        enum store_lease got;
        if (store_lease_take(st, c->token, ids[i], c->cfg->lease_ms, &job, &got) == STORE_OK &&
            got == LEASE_TAKEN) {
            log_info("job_cancel_queued", "id=%lld", (long long)ids[i]);
            hold_job(c, job, HELD_RUN, true);
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
static int capacity_left(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    int active = 0;
    for (struct held_job *h = c->held; h; h = h->next)
        active += !atomic_load(&h->slot_free);
    pthread_mutex_unlock(&c->lock);
    return c->cfg->max_jobs - active;
}

/* The consumer stops with jobs still held (drain deadline, or a second
 * signal): new jobs not started go back to the head of the queue (no retry);
 * started ones keep running in their instances, and their leases are let
 * go at once, so the next leader adopts them and re-attaches without
 * running them again. Their workers are marked lost: they stop touching
 * the jobs and exit. No instance is destroyed. */
static void hand_off(struct consumer *c, struct store *st)
{
    int64_t ids[RENEW_IDS_MAX];
    long long fences[RENEW_IDS_MAX];
    struct job *unstarted[RENEW_IDS_MAX];
    size_t n = 0, nun = 0;
    pthread_mutex_lock(&c->lock);
    for (struct held_job *h = c->held; h; h = h->next) {
        if (atomic_load(&h->finished) || atomic_load(&h->ended))
            continue;
        /* an adopted job (a run to re-attach, an output to publish) is
         * handed off like a started one even before its worker began */
        bool began = h->started || h->mode != HELD_RUN;
        if (!began && nun < RENEW_IDS_MAX) {
            unstarted[nun++] = h->job;
        } else if (began && n < RENEW_IDS_MAX) {
            atomic_store(&h->lost, true);
            ids[n] = h->id;
            fences[n++] = h->fence;
        }
    }
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < nun; i++)
        if (store_job_requeue(st, c->token, unstarted[i], false) == STORE_OK)
            log_info("job_handed_back", "id=%lld", (long long)unstarted[i]->id);
    if (store_lease_release(st, c->token, ids, fences, n) == STORE_OK)
        for (size_t i = 0; i < n; i++)
            log_info("job_handed_off", "id=%lld", (long long)ids[i]);
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
    pthread_mutex_lock(&c->lock);
    int held = c->nheld;
    pthread_mutex_unlock(&c->lock);
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

int dispatch_run(struct consumer *c)
{
    struct store *st = store_new(c->cfg);
    long long next_renew = 0, drain_deadline = 0, next_cancel_check = 0, next_sweep = 0;
    long long next_control = 0;
    bool was_leader = false, paused = false;
    time_t started = time(NULL);
    long long last_ok = clock_mono_ms();
    while (!atomic_load(&c->stopping)) {
        long long now = clock_mono_ms();
        if (now >= next_renew) {
            bool leader = false;
            long long sent = leadership_clock_ms();
            int status = store_leader_acquire(st, c->token, c->cfg->lease_ms, &leader);
            if (status == STORE_OK) {
                last_ok = now;
                if (leader)
                    leadership_renewed(c, sent);
                else
                    leadership_dropped(c);
                if (leader && !was_leader)
                    become_leader(c, st);
                else if (!leader && was_leader) {
                    log_error("leader_lost", "token=%.8s", c->token);
                    atomic_store(&c->leader, false);
                    metrics_leader_change(c, false);
                }
                was_leader = leader;
                if (leader)
                    renew_held(c, st);
            } else if (was_leader && now - last_ok > c->cfg->lease_ms) {
                leadership_dropped(c);
                log_error("leader_lease_expired", "reason=\"%s\"", store_error(st));
                atomic_store(&c->leader, false);
                metrics_leader_change(c, false);
                was_leader = false;
            }
            next_renew = now + c->cfg->lease_ms / 3;
        }
        if (now >= next_control) {
            control_check(c, st, &paused, started);
            next_control = now + CONTROL_CHECK_MS;
        }
        reap(c);
        if (atomic_load(&c->draining)) {
            if (!drain_deadline) {
                drain_deadline = now + (long long)c->cfg->drain_timeout_s * 1000;
                log_info("drain_start", "held=%d deadline_s=%d", c->nheld, c->cfg->drain_timeout_s);
            }
            pthread_mutex_lock(&c->lock);
            int held = c->nheld;
            pthread_mutex_unlock(&c->lock);
            if (held == 0)
                break;
            if (now >= drain_deadline) {
                log_warn("drain_deadline", "held=%d", held);
                break;
            }
            usleep(100 * 1000);
            continue;
        }
        if (!was_leader) {
            usleep(200 * 1000);
            continue;
        }
        if (now >= next_cancel_check) {
            process_cancels(c, st);
            next_cancel_check = now + CANCEL_CHECK_MS;
        }
        if (now >= next_sweep) {
            sweep_leases(c, st);
            next_sweep = now + c->cfg->sweep_interval_ms;
        }
        pthread_mutex_lock(&c->lock);
        start_ready(c);
        pthread_mutex_unlock(&c->lock);
        if (paused || !disk_guard_lease_ok(c) || backend_is_down(c) ||
            clock_mono_ms() < atomic_load(&c->busy_until_ms)) {
            usleep(50 * 1000);
        } else if (capacity_left(c) > 0) {
            long long until_renew = next_renew - clock_mono_ms();
            int block = until_renew < LEASE_BLOCK_MS ? (int)(until_renew > 10 ? until_renew : 10)
                                                     : LEASE_BLOCK_MS;
            lease_one(c, st, block);
        } else {
            usleep(20 * 1000);
        }
    }
    hand_off(c, st);
    atomic_store(&c->stopping, true);
    /* Wait for the workers: handed-off ones exit within a wait slice. */
    for (;;) {
        reap(c);
        pthread_mutex_lock(&c->lock);
        bool any_started = false;
        for (struct held_job *h = c->held; h; h = h->next)
            any_started |= h->started;
        pthread_mutex_unlock(&c->lock);
        if (!any_started)
            break;
        usleep(50 * 1000);
    }
    pthread_mutex_lock(&c->lock);
    while (c->held) {
        struct held_job *h = c->held;
        c->held = h->next;
        job_free(h->job);
        free(h);
    }
    c->nheld = 0;
    pthread_mutex_unlock(&c->lock);
    leadership_dropped(c);
    if (was_leader)
        store_leader_release(st, c->token);
    atomic_store(&c->leader, false);
    store_consumer_gone(st, c->token);
    store_free(st);
    log_info("dispatch_stopped", "%s", "");
    return 0;
}
