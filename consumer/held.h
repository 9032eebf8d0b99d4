/*
 * held.h: the held-jobs registry: the jobs this consumer holds (leased,
 * waiting for a slot, or running), their count, the instance-name sequence,
 * and the lock rule of struct held_job. It alone takes c->lock for them and
 * alone walks the list (c->held, c->nheld, c->vm_seq in struct consumer);
 * everything else goes through the calls below. It starts worker threads
 * with a body its caller passes in, so it calls nothing else in consumer/.
 */
#ifndef TANGO_HELD_H
#define TANGO_HELD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "vmms.h"

struct consumer;

/* What a worker does with a held job. */
enum held_mode {
    HELD_RUN,       /* run it from the start (a new lease) */
    HELD_REATTACH,  /* adopted while running: wait for its run, then finish it */
    HELD_COMPLETE,  /* adopted while finishing: publish its output, end it */
};

/* One job held by this consumer (leased, waiting for a slot, or running).
 * Lock rule: c->lock guards the held list, nheld, vm_seq and the fields
 * marked (L); id, fence, image and mode never change after held_add; h->job
 * belongs to the dispatcher until the worker starts, then to the worker
 * alone (nobody else reads it); the atomics are read without the lock. */
struct held_job {
    int64_t id;
    long long fence;        /* fencing token of our lease on it */
    char image[256];
    enum held_mode mode;
    struct job *job;        /* see the rule above */
    pthread_t thread;
    bool started;           /* (L) */
    atomic_bool finished;   /* worker done: reap it */
    atomic_bool in_run;     /* the run is going: partial output applies */
    atomic_bool cancel;     /* cancellation requested: end it as cancelled */
    atomic_bool slot_free;  /* only cleanup left: does not count as running */
    atomic_bool lost;       /* the lease is someone else's now: touch nothing */
    atomic_bool ended;      /* its last transition (end, requeue) landed: no lease to renew */
    struct vmms_vm vm;      /* (L) valid while in_run */
    char vm_name[128];      /* (L) the instance it uses, once named ("" before) */
    struct held_job *next;  /* (L) */
};

/* What a worker thread's body receives (malloc'd; the body frees it). */
struct worker_arg {
    struct consumer *c;
    struct held_job *h;
};

/* A worker thread's body: runs one held job given a struct worker_arg *. */
typedef void *(*held_body)(void *worker_arg);

/* Called per entry by held_each with c->lock held: may read and change the
 * (L) fields and call held_start, must not take c->lock nor call the other
 * held_* functions, nor block; returns false to stop the walk. */
typedef bool (*held_fn)(struct consumer *c, struct held_job *h, void *arg);

/* Holds job (ownership passes to the registry) in mode at the end of the
 * list. A job to cancel, re-attach to or complete starts at once whatever
 * the limits (it starts no new instance); then every job that fits the
 * limits starts (held_start_ready). body: the worker thread's body. */
void held_add(struct consumer *c, struct job *job, enum held_mode mode, bool cancel,
              held_body body);

/* Starts h's worker thread running body. Only from a held_fn (the lock is
 * held); false (logged) if the thread could not be made. */
bool held_start(struct consumer *c, struct held_job *h, held_body body);

/* Starts held jobs not started yet that fit cfg->max_jobs and
 * cfg->max_jobs_per_image, oldest first, each running body. */
void held_start_ready(struct consumer *c, held_body body);

/* Calls fn(c, h, arg) per held entry in order, under c->lock, until fn
 * returns false. */
void held_each(struct consumer *c, held_fn fn, void *arg);

/* How many jobs are held. */
int held_count(struct consumer *c);

/* Whether job id is held under fence (any fence if 0) and its last
 * transition has not landed. */
bool held_find(struct consumer *c, int64_t id, long long fence);
/* held_find with any fence. */
bool held_holds_job(struct consumer *c, int64_t id);
/* Whether a held job uses the instance called name. */
bool held_holds_vm(struct consumer *c, const char *name);

/* Publishes the instance h uses (for orphan clean-up and partial output):
 * its name always, the whole vm only when in_run; then sets h->in_run. */
void held_publish_vm(struct consumer *c, struct held_job *h, const struct vmms_vm *vm,
                     bool in_run);

/* Joins the workers that finished and forgets their jobs (frees them).
 * Dispatcher thread only. */
void held_reap(struct consumer *c);

/* Forgets every held job (frees them). Only once no worker runs. */
void held_free_all(struct consumer *c);

/* A unique instance name into out (len bytes):
 * <instance_prefix><tag>-<seq>-<token prefix>. */
void held_vm_name(struct consumer *c, const char *tag, char *out, size_t len);

#endif
