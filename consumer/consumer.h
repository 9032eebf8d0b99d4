/*
 * consumer.h: the consumer's shared state: the loaded VMMS back end, the
 * registry of jobs this process is running (guarded by one mutex), and the
 * entry points of its threads. The consumer is one process: a dispatcher
 * (main thread: leader lease, leasing, recovery, upkeep), one worker thread
 * per running job, a callback sender, a partial-output publisher and a pool
 * keeper.
 */
#ifndef TANGO_CONSUMER_H
#define TANGO_CONSUMER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "job.h"
#include "store.h"
#include "vmms.h"

struct pool;

/* One job held by this consumer (leased, waiting for a slot, or running). */
struct held_job {
    int64_t id;
    char image[256];
    struct job *job;        /* owned by the worker once started */
    pthread_t thread;
    bool started;
    atomic_bool finished;   /* worker done: reap it */
    atomic_bool in_run;     /* run_job in progress: partial output applies */
    atomic_bool cancel;     /* cancellation requested: end it as cancelled */
    atomic_bool slot_free;  /* only cleanup left: does not count as running */
    struct vmms_vm vm;      /* valid while in_run */
    struct held_job *next;
};

struct consumer {
    struct tango_config *cfg;
    const struct vmms_ops *ops;
    void *vctx;
    char token[40];          /* this process's identity in leases */
    atomic_bool leader;
    atomic_bool stopping;    /* threads end */
    atomic_bool draining;    /* no new leases */
    atomic_llong busy_until_ms; /* VMMS had no capacity: lease nothing before (monotonic ms) */
    pthread_mutex_t lock;    /* guards held, nheld, vm_seq */
    struct held_job *held;
    int nheld;
    unsigned long vm_seq;
    struct pool *pool;
};

/* plugin.c: loads cfg->vmms from cfg->vmms_dir and initialises it. */
int vmms_load(struct consumer *c, char *err, size_t errlen);
void vmms_unload(struct consumer *c);

/* dispatch.c: the main loop until stopped; returns the exit code. */
int dispatch_run(struct consumer *c);

/* worker.c: thread body running one held job. */
void *worker_main(void *held_job_and_consumer);
struct worker_arg {
    struct consumer *c;
    struct held_job *h;
};

/* recovery.c: run once on becoming leader. */
void recover_orphans(struct consumer *c, struct store *st);
void cleanup_instances(struct consumer *c, struct store *st);

/* callback.c / partial.c: thread bodies. */
void *callback_main(void *consumer);
void *partial_main(void *consumer);
/* upkeep.c: images, builds and pools (leader only). */
void *upkeep_main(void *consumer);

/* A unique instance name: <instance_prefix><tag>-<seq>-<token prefix>. */
void consumer_vm_name(struct consumer *c, const char *tag, char *out, size_t len);

#endif
