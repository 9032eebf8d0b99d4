/*
 * held.c: the held-jobs registry (see held.h). Owns c->held, c->nheld,
 * c->vm_seq and takes c->lock for them; no Redis or VMMS call is made
 * while the lock is held. Calls nothing else in consumer/: worker bodies
 * come from the callers.
 */
#include "held.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "log.h"

bool held_start(struct consumer *c, struct held_job *h, held_body body)
{
    struct worker_arg *wa = malloc(sizeof *wa);
    if (wa == NULL) {
        log_error("worker_start_failed", "id=%lld errno=%d", (long long)h->id, ENOMEM);
        return false;
    }
    wa->c = c;
    wa->h = h;
    if (pthread_create(&h->thread, NULL, body, wa) != 0) {
        free(wa);
        log_error("worker_start_failed", "id=%lld errno=%d", (long long)h->id, errno);
        return false;
    }
    h->started = true;
    return true;
}

/* Jobs running with image (and *total running overall). Lock held. */
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

/* held_start_ready with the lock held. */
static void start_ready_locked(struct consumer *c, held_body body)
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
        if (!held_start(c, h, body))
            return;
    }
}

void held_start_ready(struct consumer *c, held_body body)
{
    pthread_mutex_lock(&c->lock);
    start_ready_locked(c, body);
    pthread_mutex_unlock(&c->lock);
}

void held_add(struct consumer *c, struct job *job, enum held_mode mode, bool cancel,
              held_body body)
{
    struct held_job *h = calloc(1, sizeof *h);
    h->id = job->id;
    h->fence = job->fence;
    h->job = job;
    h->mode = mode;
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
    if (cancel || mode != HELD_RUN)
        held_start(c, h, body);
    start_ready_locked(c, body);
    pthread_mutex_unlock(&c->lock);
}

void held_each(struct consumer *c, held_fn fn, void *arg)
{
    pthread_mutex_lock(&c->lock);
    for (struct held_job *h = c->held; h; h = h->next)
        if (!fn(c, h, arg))
            break;
    pthread_mutex_unlock(&c->lock);
}

int held_count(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    int n = c->nheld;
    pthread_mutex_unlock(&c->lock);
    return n;
}

bool held_find(struct consumer *c, int64_t id, long long fence)
{
    bool held = false;
    pthread_mutex_lock(&c->lock);
    for (struct held_job *h = c->held; h && !held; h = h->next)
        held = h->id == id && (fence == 0 || h->fence == fence) && !atomic_load(&h->ended);
    pthread_mutex_unlock(&c->lock);
    return held;
}

bool held_holds_job(struct consumer *c, int64_t id)
{
    return held_find(c, id, 0);
}

bool held_holds_vm(struct consumer *c, const char *name)
{
    bool owned = false;
    pthread_mutex_lock(&c->lock);
    for (struct held_job *h = c->held; h && !owned; h = h->next)
        owned = h->vm_name[0] && strcmp(h->vm_name, name) == 0;
    pthread_mutex_unlock(&c->lock);
    return owned;
}

void held_publish_vm(struct consumer *c, struct held_job *h, const struct vmms_vm *vm,
                     bool in_run)
{
    pthread_mutex_lock(&c->lock);
    snprintf(h->vm_name, sizeof h->vm_name, "%s", vm->name);
    if (in_run)
        h->vm = *vm;
    pthread_mutex_unlock(&c->lock);
    atomic_store(&h->in_run, in_run);
}

void held_reap(struct consumer *c)
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

void held_free_all(struct consumer *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->held) {
        struct held_job *h = c->held;
        c->held = h->next;
        job_free(h->job);
        free(h);
    }
    c->nheld = 0;
    pthread_mutex_unlock(&c->lock);
}

void held_vm_name(struct consumer *c, const char *tag, char *out, size_t len)
{
    pthread_mutex_lock(&c->lock);
    unsigned long seq = ++c->vm_seq;
    pthread_mutex_unlock(&c->lock);
    snprintf(out, len, "%s%s-%lu-%.8s", c->cfg->instance_prefix, tag, seq, c->token);
}
