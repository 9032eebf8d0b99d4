/*
 * dispatch.c: the consumer's main loop. Holds (or waits for) the leader
 * lease, renews it and the leases of held jobs, leases queued jobs FIFO with
 * a blocking Redis call, starts a worker thread per job within the overall
 * and per-image limits, reaps finished workers, and drains on SIGTERM.
 * Nothing here calls the VMMS: blocking calls live in worker and upkeep
 * threads, so lease renewal never stalls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consumer.h"
#include "log.h"
#include "pool.h"
#include "clock.h"

#define LEASE_BLOCK_MS 200
#define RENEW_IDS_MAX 4096
#define CANCEL_CHECK_MS 250

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

static void renew_held(struct consumer *c, struct store *st)
{
    int64_t ids[RENEW_IDS_MAX];
    size_t n = 0;
    pthread_mutex_lock(&c->lock);
    for (struct held_job *h = c->held; h && n < RENEW_IDS_MAX; h = h->next)
        ids[n++] = h->id;
    pthread_mutex_unlock(&c->lock);
    if (store_lease_renew(st, ids, n, c->cfg->lease_ms) != STORE_OK)
        log_warn("lease_renew_failed", "jobs=%zu error=\"%s\"", n, store_error(st));
}

/* Adds a job to the held list (oldest last) and starts what fits.
 * A job to cancel starts at once, whatever the limits: it runs nothing. */
static void hold(struct consumer *c, struct job *job, bool cancel)
{
    struct held_job *h = calloc(1, sizeof *h);
    h->id = job->id;
    h->job = job;
    atomic_store(&h->cancel, cancel);
    snprintf(h->image, sizeof h->image, "%s", job->image);
    pthread_mutex_lock(&c->lock);
    struct held_job **pp = &c->held;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
    c->nheld++;
    if (cancel)
        start_worker(c, h);
    start_ready(c);
    pthread_mutex_unlock(&c->lock);
}

/* Leases one queued job (blocking briefly) and holds it. */
static void lease_one(struct consumer *c, struct store *st, int block_ms)
{
    int64_t id = 0;
    int status = store_lease_next(st, c->token, c->cfg->lease_ms, block_ms, &id);
    if (status != STORE_OK) {
        usleep(200 * 1000);
        return;
    }
    if (id == 0)
        return;
    struct job *job = NULL;
    status = store_job_load(st, id, &job);
    if (status != STORE_OK) {
        log_warn("job_unreadable", "id=%lld status=%d error=\"%s\"", (long long)id, status,
                 store_error(st));
        /* Hand it back untouched; a missing record is dropped by requeue. */
        struct job stub = {.id = id};
        if (status == STORE_NOT_FOUND)
            store_job_requeue(st, c->token, &stub, false);
        return;
    }
    job->state = JOB_LEASED;
    bool cancel = false;
    store_cancel_requested(st, id, &cancel);
    log_info("job_leased", "id=%lld image=%s", (long long)id, job->image);
    hold(c, job, cancel);
}

/* Acts on cancellation requests: a held job is flagged (and its instance
 * destroyed if it is running, which ends run_job); a queued job is taken out
 * of the queue and ended as cancelled; a finished one is forgotten. */
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
        if (running) {
            char err[256];
            c->ops->safe_destroy_vm(c->vctx, &vm, err, sizeof err);
            log_info("job_cancel_running", "id=%lld vm=%s", (long long)ids[i], vm.name);
        }
        if (held)
            continue;
        bool taken = false;
        store_lease_specific(st, c->token, ids[i], c->cfg->lease_ms, &taken);
        struct job *job = NULL;
        if (taken && store_job_load(st, ids[i], &job) == STORE_OK) {
            log_info("job_cancel_queued", "id=%lld", (long long)ids[i]);
            hold(c, job, true);
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

/* Drain deadline passed: give every held job back to the head of the queue
 * (no retry counted) and abort the running ones by destroying their
 * instances; their workers then find the lease gone and exit. */
static void hand_back(struct consumer *c, struct store *st)
{
    pthread_mutex_lock(&c->lock);
    for (struct held_job *h = c->held; h; h = h->next) {
        struct job stub = {0};
        struct job *job = h->started ? &stub : h->job;
        if (h->started) { /* the worker owns h->job: requeue a fresh copy */
            struct job *fresh = NULL;
            if (store_job_load(st, h->id, &fresh) != STORE_OK)
                continue;
            fresh->state = JOB_QUEUED;
            fresh->assigned = false;
            store_job_requeue(st, c->token, fresh, false);
            job_free(fresh);
        } else {
            store_job_requeue(st, c->token, job, false);
        }
        if (h->started && atomic_load(&h->in_run)) {
            char err[256];
            struct vmms_vm vm = h->vm;
            c->ops->safe_destroy_vm(c->vctx, &vm, err, sizeof err);
        }
        log_info("job_handed_back", "id=%lld", (long long)h->id);
    }
    pthread_mutex_unlock(&c->lock);
}

static void become_leader(struct consumer *c, struct store *st)
{
    log_info("leader_acquired", "token=%.8s", c->token);
    recover_orphans(c, st);
    cleanup_instances(c, st);
    atomic_store(&c->leader, true);
}

int dispatch_run(struct consumer *c)
{
    struct store *st = store_new(c->cfg);
    long long next_renew = 0, drain_deadline = 0, next_cancel_check = 0;
    bool was_leader = false;
    long long last_ok = clock_mono_ms();
    while (!atomic_load(&c->stopping)) {
        long long now = clock_mono_ms();
        if (now >= next_renew) {
            bool leader = false;
            int status = store_leader_acquire(st, c->token, c->cfg->lease_ms, &leader);
            if (status == STORE_OK) {
                last_ok = now;
                if (leader && !was_leader)
                    become_leader(c, st);
                else if (!leader && was_leader) {
                    log_error("leader_lost", "token=%.8s", c->token);
                    atomic_store(&c->leader, false);
                }
                was_leader = leader;
                if (leader)
                    renew_held(c, st);
            } else if (was_leader && now - last_ok > c->cfg->lease_ms) {
                log_error("leader_lease_expired", "reason=\"%s\"", store_error(st));
                atomic_store(&c->leader, false);
                was_leader = false;
            }
            next_renew = now + c->cfg->lease_ms / 3;
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
                hand_back(c, st);
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
        pthread_mutex_lock(&c->lock);
        start_ready(c);
        pthread_mutex_unlock(&c->lock);
        if (clock_mono_ms() < atomic_load(&c->busy_until_ms)) {
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
    atomic_store(&c->stopping, true);
    /* Wait for workers still running (drained or stopping). */
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
    if (was_leader)
        store_leader_release(st, c->token);
    atomic_store(&c->leader, false);
    store_free(st);
    log_info("dispatch_stopped", "%s", "");
    return 0;
}
