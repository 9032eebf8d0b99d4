/*
 * store.h: the Redis store, the only code that talks to Redis. Key names
 * are in keys.h (one table); every change of a job's state is a transition
 * of jobstate.h, carried out atomically by the Functions library
 * (jobstate.lua). The store is split by concern: store.c (connection,
 * retry rule, library loading), store_queries.c (producer reads and
 * writes), store_lifecycle.c (transitions, leases, the leader lease),
 * store_callbacks.c (callbacks, cancels, builds), store_ctl.c (what
 * tangoctl reads, the control keys, the consumers' heartbeats).
 *
 * A store handle is not thread-safe: one per thread. It connects lazily and
 * reconnects by itself after Redis comes back; while Redis is unreachable
 * every call returns STORE_UNAVAILABLE at once (after one connect attempt).
 * With a redis-sentinel:// URL it finds the master through the sentinels
 * and follows it across failovers; it never writes to a replica. With
 * redis_min_replicas set, a write that fewer replicas confirm within
 * redis_wait_ms returns STORE_UNAVAILABLE: its outcome is unknown (it did
 * run on the master), never reported as a success. A write whose reply was
 * lost is never sent again by the store (see run_with_retry in store.c).
 */
#ifndef TANGO_STORE_H
#define TANGO_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "config.h"
#include "job.h"

enum store_status {
    STORE_OK = 0,
    STORE_UNAVAILABLE = -1, /* Redis unreachable (or loading) */
    STORE_ERROR = -2,       /* Redis answered with an error; err says which */
    STORE_NOT_FOUND = -3,
    STORE_STALE = -4,       /* the caller's lease (token + fence) or leader lease is not current */
    STORE_LIMIT = -5,       /* a configured limit refused it (max_queued_per_course); err names it */
};

struct store;

struct store *store_new(const struct tango_config *cfg);
void store_free(struct store *st);
/* The last error message (for logs and replies); never holds secrets. */
const char *store_error(const struct store *st);
int store_ping(struct store *st);
/* Whether the last failed call failed because Redis refuses writes: OOM
 * (maxmemory reached under noeviction) or MISCONF (it cannot persist). Such
 * a call ends STORE_UNAVAILABLE (it did not run: safe to try again later)
 * and store_error names the cause ("Redis refuses writes: OOM ..."). */
bool store_write_refused(const struct store *st);

/* Redis as /health reports it (store_health.c). */
enum store_health {
    STORE_HEALTH_UP,           /* reachable and takes writes */
    STORE_HEALTH_DOWN,         /* unreachable, refused (evicting policy), or the probe
                                * write's outcome unknown (replicas not confirming) */
    STORE_HEALTH_NOT_WRITABLE, /* answers, but refuses writes (OOM...) or errs on them */
};
/* PINGs on every call; whether Redis takes writes is probed with a SET of
 * the health:probe key (keys.h, 10 s expiry) at most once a second per
 * handle, and again at once after a write of this handle was refused.
 * why (len bytes) says why when not up. */
enum store_health store_health(struct store *st, char *why, size_t len);
/* A service's start-up check: -1 with err when Redis answers and its
 * maxmemory-policy evicts keys while config redis_allow_eviction is false;
 * else 0 (an unreachable Redis is checked when a connection is made: every
 * connection to an evicting Redis is refused, see store_check_policy). */
int store_startup_check(struct store *st, char *err, size_t len);
/* Commands (or batches) of this process, on every handle, that ended
 * STORE_UNAVAILABLE (unreachable, timed out, not the master, replicas not
 * confirming): tango_redis_errors_total. Thread-safe. */
long long store_unavailable_count(void);

/* Jobs (producer side). store_add_job assigns job->id and writes the record,
 * its queue entry (class job->priority, share group job->share_group; NULL:
 * normal, "all") and the job_requests counter in one transaction.
 * STORE_LIMIT: job->queue_cap (> 0) jobs of its group are queued already
 * (st->err says so, naming the limit). */
int store_add_job(struct store *st, struct job *job);
/* Live jobs in FIFO order of id, or dead jobs most recent first; at most max.
 * *out is a new JSON array of job objects. */
int store_list_jobs(struct store *st, bool dead, size_t max, json_t **out);
/* One job by id: *out is its JSON object, *dead tells where it was found. */
int store_get_job(struct store *st, int64_t id, json_t **out, bool *dead);
/* 1-based position of a queued job in dispatch order under the scheduling
 * rule (docs/design.md "Fair share and priorities"; 0 if not queued). */
int store_queue_position(struct store *st, int64_t id, long long *pos);

/* Queue statistics: one row per (class, group) with queued or running
 * (leased, running, finishing) jobs. oldest_enqueued_ms: Redis time (ms)
 * when the head of that queue was queued in its class (0 if none queued).
 * *out malloc'd (caller frees; NULL when *n is 0). STORE_OK or an error. */
struct store_queue_stat {
    char klass[8];
    char group[128];
    long long length;
    long long oldest_enqueued_ms;
    long long running;
};
int store_queue_stats(struct store *st, struct store_queue_stat **out, size_t *n);

/* Records a cancellation request for a live job (the consumer acts on it).
 * STORE_NOT_FOUND: no such job; *finished true if it already ended. */
int store_request_cancel(struct store *st, int64_t id, bool *finished);
/* Whether a cancellation was requested for id. */
int store_cancel_requested(struct store *st, int64_t id, bool *requested);

/* Lab input files: name -> md5 recorded at upload time. */
int store_lab_files(struct store *st, const char *lab_dir, json_t **out);
int store_lab_file_md5(struct store *st, const char *lab_dir, const char *name,
                       char md5[33]);
int store_set_lab_file(struct store *st, const char *lab_dir, const char *name,
                       const char *md5);

/* /info counters. */
int store_mark_started(struct store *st);
int store_incr_counter(struct store *st, const char *name, long long by);
/* *out: {"elapsed_secs":..,"job_requests":..,...} with every SPEC counter. */
int store_info(struct store *st, json_t **out);

/* Images the VMMS can run, published by the consumer. NOT_FOUND until then. */
int store_images(struct store *st, json_t **out);
int store_set_images(struct store *st, const json_t *images);
/* Image owners: the keyId (never the key) of the key that first ran /build
 * with each image repository (a name without its tag: the caller passes
 * that). store_claim_image makes key_id the owner of image
 * unless it has one (atomic: of two claims one wins) and copies the owner
 * after the claim into owner (ownerlen bytes): key_id when it won or held
 * it already. */
int store_claim_image(struct store *st, const char *image, const char *key_id, char *owner,
                      size_t ownerlen);
/* *out: {image: keyId} of every claimed image name. */
int store_image_owners(struct store *st, json_t **out);

/* Pools. */
int store_set_pool_wanted(struct store *st, const char *image, const json_t *spec);
int store_pools_wanted(struct store *st, json_t **out);
int store_set_pool_state(struct store *st, const char *image, const json_t *state);
/* {image: {"total":[ids],"free":[ids]}} for every wanted or published pool. */
int store_pools(struct store *st, json_t **out);

/* Partial output of a running job. A producer serving getPartialOutput
 * marks interest (partial:want:<id>, expiring), and the consumer reads a
 * running job's output only while someone is interested. */
int store_want_partial(struct store *st, int64_t id, int ttl_s);
/* wanted[i] tells whether ids[i] has interest (one round trip). */
int store_partial_wanted(struct store *st, const int64_t *ids, size_t n, bool *wanted);
int store_partial_output(struct store *st, int64_t id, char **out, size_t *len);
int store_set_partial_output(struct store *st, int64_t id, const char *data, size_t len,
                             int ttl_s);

/* Image builds: the producer queues a tarball, the consumer loads it and
 * writes a result {"ok":bool,"message":..}. */
int store_queue_build(struct store *st, const char *image, const char *path,
                      int64_t *build_id);
int store_build_result(struct store *st, int64_t build_id, json_t **out);

/* ---- Consumer side (store_lifecycle.c). token identifies one consumer
 * process. Every job change names the lease's token and fencing token
 * (job->fence) and is refused with STORE_STALE when they are not current,
 * so a consumer that lost its lease can never write for the job again.
 * Lease expiries use Redis's clock (TIME in the functions). */

/* Redis's clock, in ms since the epoch. */
int store_time_ms(struct store *st, long long *now_ms);

/* Leader lease: *leader says whether token holds it after the call. */
int store_leader_acquire(struct store *st, const char *token, int lease_ms, bool *leader);
int store_leader_release(struct store *st, const char *token);

/* What a lease attempt found. */
enum store_lease {
    LEASE_TAKEN,      /* *job is ours (caller frees), job->fence set */
    LEASE_NONE,       /* nothing to take (no job came, or a valid lease holds it) */
    LEASE_UNREADABLE, /* the record cannot be read: dead-letter it */
    LEASE_RESTORED,   /* adopt: it was never leased; back at the queue head */
};

/* Leases the next job under the scheduling rule (leader only), waiting up
 * to block_ms for one (woken when a job is queued or a slot frees).
 * max_running: max_running_per_course (0 none); max_wait_s: promotion age
 * (0 never). Leases nothing while control:paused exists. *id is the id
 * that came (0: none). */
int store_lease_sched(struct store *st, const char *token, int lease_ms, int block_ms,
                      int max_running, int max_wait_s, int64_t *id, struct job **job,
                      enum store_lease *got);
/* store_lease_sched with no cap and no promotion. */
int store_lease_next(struct store *st, const char *token, int lease_ms, int block_ms,
                     int64_t *id, struct job **job, enum store_lease *got);
/* Publishes course_weights ({group: weight}) for the lease and position
 * functions (leader; replaces the previous set). */
int store_set_share_weights(struct store *st, const json_t *weights);
/* Drains a queue:pending left by an older version into the class and group
 * queues (cfg's fair_share and priority_rules decide; leader only), up to
 * 1000 ids a call; *moved gets how many left it. */
int store_migrate_legacy(struct store *st, const char *token, const struct tango_config *cfg,
                         size_t *moved);
/* Rebuilds the per-group running counts from the lease state; *fixes gets
 * the number of corrections (0 when they were exact). */
int store_sched_reconcile(struct store *st, long long *fixes);
/* Takes a given queued job out of the queue and leases it (to cancel it). */
int store_lease_take(struct store *st, const char *token, int64_t id, int lease_ms,
                     struct job **job, enum store_lease *got);
/* Takes over a leased job whose lease lapsed or never existed (leader only). */
int store_lease_adopt(struct store *st, const char *token, int64_t id, int lease_ms,
                      struct job **job, enum store_lease *got);
/* Ids in queue:leased (at most max) whose lease lapsed or never existed and
 * that token does not own. *ids malloc'd (caller frees). */
int store_lease_sweep(struct store *st, const char *token, size_t max, int64_t **ids,
                      size_t *n);
/* Extends the leases token owns with the given fences; *lost (malloc'd,
 * caller frees, may be NULL when none) gets the ids it no longer owns. */
int store_lease_renew(struct store *st, const char *token, int lease_ms, const int64_t *ids,
                      const long long *fences, size_t n, int64_t **lost, size_t *nlost);
/* Lets the given leases lapse now, so the next leader adopts them at once. */
int store_lease_release(struct store *st, const char *token, const int64_t *ids,
                        const long long *fences, size_t n);

/* The fencing token of id's current lease (0: none). */
int store_lease_fence(struct store *st, int64_t id, long long *fence);

/* Owner transitions on a job this token leases with job->fence (jobstate.h):
 * start (leased -> running), save (running, progress), requeue (-> queued at
 * the head, a retry counted or not), finish (-> finishing: job->output_temp
 * names the written output), end (finishing -> done or cancelled: moves it
 * to the dead history, trims it, bumps the named counters and queues the
 * callback (may be NULL), all in one step). STORE_STALE: not ours any more,
 * nothing changed. */
int store_job_start(struct store *st, const char *token, const struct job *job);
int store_job_save(struct store *st, const char *token, const struct job *job);
int store_job_requeue(struct store *st, const char *token, const struct job *job,
                      bool count_retry);
int store_job_finish(struct store *st, const char *token, const struct job *job);
int store_job_end(struct store *st, const char *token, const struct job *job, bool cancelled,
                  const char *const *counters, size_t ncounters, const json_t *callback);
/* Sets an unreadable live record aside (leader only): its raw text in
 * jobs:deadletter, a stub in the dead history with reason in its trace. */
int store_job_deadletter(struct store *st, const char *token, int64_t id, const char *reason);

/* Cancellation requests (at most max ids), and forgetting one. */
int store_cancel_requests(struct store *st, size_t max, int64_t **ids, size_t *n);
int store_cancel_forget(struct store *st, int64_t id);

/* Callbacks: each is a JSON object with a unique "id" field. claim takes the
 * earliest due one and hides it for hide_ms (at-least-once delivery). */
int store_callback_claim(struct store *st, int hide_ms, json_t **cb, char **member);
int store_callback_done(struct store *st, const char *member);
/* Puts cb back, due delay_ms from now (Redis time). */
int store_callback_retry(struct store *st, const char *member, const json_t *cb,
                         long long delay_ms);
int store_callback_give_up(struct store *st, const char *member);
/* Blocks up to timeout_ms until a callback is queued (no polling). */
int store_callback_wait(struct store *st, int timeout_ms);

/* Dockerfile builds (/build_image, store_builds.c). A record is JSON
 * {id, keyId, image, path, context, state, statusId, message, log,
 * attempts, imageRef (when pushed: build_push.h)}; state: waiting (for approval), queued, running, done, failed.
 * statusId: 1 while waiting/queued/running, 0 done, -1 the build failed,
 * -2 rejected, -3 lost (its consumer stopped too often). */
#define STORE_BUILD_MAX_ATTEMPTS 2
#define STORE_BUILDS_KEEP 1000   /* ended build records kept (the oldest go) */
/* Gives rec a new id (*id, also set in rec) and stores it; queue: also
 * queued for a builder (else it waits for store_build_decide). */
int store_build_add(struct store *st, json_t *rec, bool queue, int64_t *id);
/* The record of build id (STORE_NOT_FOUND when none). */
int store_build_get(struct store *st, int64_t id, json_t **out);
/* Every build record, as a JSON array (caller decrefs). */
int store_build_all(struct store *st, json_t **out);
/* Takes the next queued build for the consumer token (marked running,
 * attempts counted); STORE_NOT_FOUND when none is queued or token has no
 * heartbeat yet (another consumer would take it back at once). */
int store_build_take(struct store *st, const char *token, json_t **out);
/* Ends build id run by token: state "done" or "failed", its statusId,
 * message and log, and image_ref (the pushed registry reference, kept as
 * imageRef, its digest added to the record's keyId's pushed digests,
 * store_pushed_digests; NULL or "": none). *stale: token no longer held it (nothing
 * written). */
int store_build_finish(struct store *st, int64_t id, const char *token, const char *state,
                       int status_id, const char *message, const char *log,
                       const char *image_ref, bool *stale);
/* *out: a new JSON array of the "sha256:<hex>" digests that key key_id's
 * builds pushed (store_build_finish records each imageRef's digest under
 * the build record's keyId): the references under build_push_to with a
 * digest that key may run. */
int store_pushed_digests(struct store *st, const char *key_id, json_t **out);
/* Takes back every running build whose consumer has no heartbeat: queued
 * again at the head, or failed (-3) after STORE_BUILD_MAX_ATTEMPTS. *n: how
 * many. */
int store_build_recover(struct store *st, long long *n);
/* Approves (queues) or rejects (fails, -2) waiting build id. *result: 1
 * done, 0 no such build, -1 it is not waiting. */
int store_build_decide(struct store *st, int64_t id, bool approve, long long *result);

/* Image builds queued by producers. */
int store_next_build(struct store *st, json_t **build);
int store_set_build_result(struct store *st, int64_t build_id, bool ok, const char *message);

/* ---- Operator side (store_ctl.c): what tangoctl reads and the control
 * keys it writes (pause, drain), and the consumers' heartbeats. */

/* The control keys as a consumer reads them with its heartbeat. */
struct store_control {
    bool paused; /* control:paused exists: lease nothing new */
    bool drain;  /* control:drain names this consumer's token: drain and exit */
};
/* A consumer's heartbeat: info (a JSON object describing it) is kept under
 * consumers:seen:<token> for ttl_ms (Redis expiry) and token joins the
 * consumers set; *ctl gets the control keys in the same round trip. */
int store_consumer_beat(struct store *st, const char *token, const json_t *info, int ttl_ms,
                        struct store_control *ctl);
/* A stopping consumer removes its heartbeat and a drain request naming it. */
int store_consumer_gone(struct store *st, const char *token);
/* The consumers whose heartbeat has not expired: *out a new JSON array of
 * their info objects, each with "ttlMs" added; expired tokens are dropped
 * from the set. */
int store_consumers(struct store *st, json_t **out);
/* The leader lease's holder (token, len bytes) and its ms left.
 * STORE_NOT_FOUND: nobody holds it. */
int store_leader(struct store *st, char *token, size_t len, long long *ttl_ms);

/* A back end's outage as the consumers see it (backend:down:<vmms>): info
 * (a JSON object: since, reason, consumer) kept for ttl_ms, refreshed by
 * the consumer while it stays unreachable, so that the record goes away
 * with the consumer; NULL deletes it (reachable again). */
int store_set_backend_down(struct store *st, const char *vmms, const json_t *info, int ttl_ms);
/* *info: what backend:down:<vmms> holds (new reference). STORE_NOT_FOUND:
 * no consumer reports that back end unreachable. */
int store_backend_down(struct store *st, const char *vmms, json_t **info);

/* Pause: info (a JSON object: who, when) is stored in control:paused; NULL
 * deletes it (resume). *was tells whether it existed before (may be NULL). */
int store_set_paused(struct store *st, const json_t *info, bool *was);
/* *info: what control:paused holds (new reference). STORE_NOT_FOUND: not paused. */
int store_paused(struct store *st, json_t **info);
/* Asks the consumer holding token to drain and exit; the request expires
 * after ttl_s. */
int store_request_drain(struct store *st, const char *token, int ttl_s);
/* The outstanding drain request's token (len bytes). STORE_NOT_FOUND: none. */
int store_drain_requested(struct store *st, char *token, size_t len);

/* Counts in one round trip (the queues by class and group:
 * store_queue_stats). */
struct store_overview {
    long long leased, live, dead, deadletter, cancels;
    long long callbacks_due, callbacks_failed;
};
int store_overview(struct store *st, struct store_overview *out);
/* The live records of the ids in queue:leased (at most max), each with
 * "lease": {"owner": token, "expiresInMs": ms} when it has one. *out a new
 * JSON array; unreadable records are skipped. */
int store_leased_jobs(struct store *st, size_t max, json_t **out);
/* id's lease: owner token (len bytes) and ms left (negative: lapsed).
 * STORE_NOT_FOUND: no lease. */
int store_job_lease(struct store *st, int64_t id, char *owner, size_t len, long long *left_ms);
/* The raw text kept for a dead-letter job (malloc'd). STORE_NOT_FOUND: none. */
int store_deadletter_raw(struct store *st, int64_t id, char **raw);
/* Moves every entry of callbacks:failed back to callbacks:due, due now, with
 * its attempts reset (one atomic step; each entry moves once even if a
 * consumer gives another up meanwhile). *moved: how many; *unreadable:
 * entries left in callbacks:failed because they are not JSON. */
int store_callbacks_requeue(struct store *st, size_t *moved, size_t *unreadable);
/* Removes from the dead history (jobs:dead, jobs:dead:ids, jobs:deadletter)
 * every job that ended before cutoff (unix s: createdAt, or for a
 * dead-letter stub its trace's time). *pruned / *kept: counts. */
int store_prune_dead(struct store *st, double cutoff, size_t *pruned, size_t *kept);
/* Requeue once (tangoctl requeue): claims dead job old_id for one requeue
 * (jobs:requeued old_id -> 0, set only if absent; force: set anyway).
 * STORE_OK with *prior 0: claimed; the caller adds the new job, then calls
 * store_requeue_record, or store_requeue_release if the add failed.
 * *prior > 0: it was requeued as that job already (with force: it is
 * claimed again all the same); *prior -1: another requeue of it is under
 * way or died midway (force claims it). */
int store_requeue_claim(struct store *st, int64_t old_id, bool force, int64_t *prior);
/* Records that old_id was requeued as new_id. */
int store_requeue_record(struct store *st, int64_t old_id, int64_t new_id);
/* Drops old_id's claim (its requeue surely did not happen), putting back
 * prior (the id it was requeued as before a forced claim; 0: none). */
int store_requeue_release(struct store *st, int64_t old_id, int64_t prior);

#endif
