/*
 * consumer.h: the consumer's shared state: the loaded VMMS back end, the
 * registry of jobs this process is running (its fields here, owned and
 * locked by held.c: see held.h), and the entry points of its threads. The
 * consumer is one process: a dispatcher
 * (main thread: leader lease, leasing, renewal, the lease sweep, cancels),
 * one worker thread per held job, a reaper (VMMS clean-up), a callback
 * sender, a partial-output publisher, an upkeep thread (images, /build
 * tarballs, pools) and the Dockerfile builder threads (builder.h).
 */
#ifndef TANGO_CONSUMER_H
#define TANGO_CONSUMER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "held.h"
#include "job.h"
#include "store.h"
#include "vmms.h"

struct pool;
struct reaper;
struct consumer_metrics;
struct disk_guard;
struct backend_health;
struct builder;

struct consumer {
    struct tango_config *cfg;
    const struct vmms_ops *ops;
    void *vctx;
    char token[40];          /* this process's identity in leases */
    atomic_bool leader;
    atomic_llong leader_valid_until_ms; /* leadership.h: valid while the boot-time clock is below */
    atomic_bool stopping;    /* threads end */
    atomic_bool draining;    /* no new leases */
    atomic_llong busy_until_ms; /* VMMS had no capacity: lease nothing before (monotonic ms) */
    pthread_mutex_t lock;    /* guards held, nheld, vm_seq: taken by held.c alone */
    struct held_job *held;   /* held.c alone reads and writes these three */
    int nheld;
    unsigned long vm_seq;
    struct pool *pool;
    struct reaper *reaper;   /* VMMS clean-up off the dispatcher thread */
    struct consumer_metrics *metrics; /* metrics_http.c; set before the threads start */
    struct disk_guard *disk; /* disk_guard.c: the free-space floor */
    struct backend_health *health;    /* backend_health.c; set before the threads start */
    atomic_bool backend_down;         /* the back end cannot be reached: lease nothing */
    struct builder *builder;          /* builder.c: Dockerfile builds (NULL: none) */
};

/* plugin.c: loads cfg->vmms from cfg->vmms_dir and initialises it. */
int vmms_load(struct consumer *c, char *err, size_t errlen);
void vmms_unload(struct consumer *c);

/* dispatch.c: the main loop until stopped; returns the exit code. */
int dispatch_run(struct consumer *c);

/* worker.c: thread body running one held job (a held_body: its argument
 * is a malloc'd struct worker_arg, which it frees). */
void *worker_main(void *held_job_and_consumer);

/* sweeper.c (dispatcher thread, leader only): every sweep_interval_ms,
 * takes over each leased job whose lease lapsed or never existed: a job
 * that was running with a recorded run is held again to re-attach to it, a
 * finishing one to publish its output, one that never started goes back to
 * the queue head, one whose run cannot be found is requeued with a retry,
 * an unreadable record goes to dead-letter. Never calls the VMMS. */
void sweep_leases(struct consumer *c, struct store *st);
/* sweeper.c: sets an unreadable record aside (dead-letter), logging why. */
void consumer_dead_letter(struct consumer *c, struct store *st, int64_t id, const char *why);

/* reaper.c: a thread for the VMMS calls the dispatcher must not make:
 * destroying instances (cancel, drain, orphans) and the periodic clean-up
 * of instances, temp files and feedback files that no live job owns. */
int reaper_start(struct consumer *c);
void reaper_stop(struct consumer *c);
/* Queues the instance vm for destruction (a copy is taken). */
void reaper_destroy(struct consumer *c, const struct vmms_vm *vm, const char *why);
/* Asks for a clean-up pass soon (after becoming leader). */
void reaper_request_cleanup(struct consumer *c);

/* callback.c / partial.c: thread bodies. */
void *callback_main(void *consumer);
void *partial_main(void *consumer);
/* upkeep.c: images, builds and pools (leader only). */
void *upkeep_main(void *consumer);
/* upkeep.c: publishes the VMMS's image list to Redis now (also after a
 * Dockerfile build, from the builder). */
void upkeep_publish_images(struct consumer *c, struct store *st);

/* metrics_http.c: the consumer's Prometheus families and its /metrics
 * listener (metrics_bind:metrics_port; 0: no listener), on its own thread
 * and event_base. start: before the other threads; a listener that
 * cannot start is logged and the consumer runs without it (-1: out of memory);
 * stop: after they ended. The recording calls are thread-safe and do
 * nothing before start. op: the vmms_ops member that failed ("copy_in");
 * status: its vmms_status (VMMS_OK is not counted); phase: "waitvm",
 * "copyin", "run", "copyout"; latency: addJob until the job ended. */
int metrics_start(struct consumer *c);
void metrics_stop(struct consumer *c);
void metrics_vmms_error(struct consumer *c, const char *op, int status);
void metrics_job_phase(struct consumer *c, const char *phase, double seconds);
void metrics_job_latency(struct consumer *c, double seconds);
void metrics_leader_change(struct consumer *c, bool acquired);
void metrics_job_adopted(struct consumer *c, enum held_mode mode);
/* The callback sender's state now: callbacks in flight, hosts whose
 * circuit breaker is open. */
void metrics_callbacks(struct consumer *c, int in_flight, int hosts_open);
/* disk_guard.c's samples: free bytes of a watched path, and the floor. */
void metrics_disk_free(struct consumer *c, const char *path, double bytes);
void metrics_disk_floor(struct consumer *c, double bytes);
/* tango_backend_up{backend=<vmms>}: whether the back end can be reached. */
void metrics_backend_up(struct consumer *c, bool up);

#endif
