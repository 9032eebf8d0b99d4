/*
 * store.h: the Redis store. The only module (with store_consumer.c, its
 * consumer half) that knows Redis key names; every state change of a job
 * happens here, atomically (MULTI/EXEC or Lua). Keys, all under cfg->prefix:
 *
 *   job:lastid             INCR counter for job ids (64-bit, never reused)
 *   jobs:live              hash id -> job JSON (queued..finishing)
 *   jobs:live:ids          zset of live ids (score = id): /jobs order
 *   jobs:dead              hash id -> job JSON (done, cancelled)
 *   jobs:dead:ids          zset of dead ids (score = id), trimmed to dead_jobs_keep
 *   queue:pending          list of queued ids, FIFO (RPUSH / LMOVE from the left)
 *   queue:leased           list of ids a consumer took from queue:pending
 *   leases                 zset id -> lease expiry (ms); lease:owner hash id -> token
 *   consumer:leader        leader lease: value = owner token, PX expiry
 *   lab:<labdir>:files     hash file name -> md5 hex (recorded at upload)
 *   counters               hash of the /info counters
 *   started                unix seconds when the service first started (SET NX)
 *   images                 JSON {"images": [...]} published by the consumer
 *   pools:wanted           hash image -> {"size":N,"cores":..,"memory":..}
 *   pools:state            hash image -> {"total":[..],"free":[..]} (consumer)
 *   partial:<id>           partial output of a running job (consumer)
 *   partial:want:<id>      someone asked for it lately (producer, expiring)
 *   build:lastid, builds:queue (list of build JSON), build:result:<id>
 *   callbacks:due          zset of pending callback JSON by due time (consumer)
 *   callbacks:failed       list of callbacks given up after callback_attempts
 *   callbacks:wake         list pushed when a callback is queued (BLPOP wake-up)
 *   cancels                set of job ids whose cancellation was requested
 *
 * A store handle is not thread-safe: one per thread. It connects lazily and
 * reconnects by itself after Redis comes back; while Redis is unreachable
 * every call returns STORE_UNAVAILABLE at once (after one connect attempt).
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
};

struct store;

struct store *store_new(const struct tango_config *cfg);
void store_free(struct store *st);
/* The last error message (for logs and replies); never holds secrets. */
const char *store_error(const struct store *st);
int store_ping(struct store *st);

/* Jobs (producer side). store_add_job assigns job->id and writes the record,
 * its queue entry and the job_requests counter in one transaction. */
int store_add_job(struct store *st, struct job *job);
/* Live jobs in FIFO order of id, or dead jobs most recent first; at most max.
 * *out is a new JSON array of job objects. */
int store_list_jobs(struct store *st, bool dead, size_t max, json_t **out);
/* One job by id: *out is its JSON object, *dead tells where it was found. */
int store_get_job(struct store *st, int64_t id, json_t **out, bool *dead);
/* 1-based position of a queued job in queue:pending (0 if not queued). */
int store_queue_position(struct store *st, int64_t id, long long *pos);

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

/* ---- Consumer side (store_consumer.c). token identifies one consumer
 * process; every change to a leased job checks that the token still owns
 * its lease, so a consumer that lost its lease can never finish a job twice.
 */

/* Leader lease: *leader says whether token holds it after the call. */
int store_leader_acquire(struct store *st, const char *token, int lease_ms, bool *leader);
int store_leader_release(struct store *st, const char *token);

/* Blocks up to block_ms for a queued job, moves it to the leased list and
 * gives token its lease. *id = 0 when none came. */
int store_lease_next(struct store *st, const char *token, int lease_ms, int block_ms,
                     int64_t *id);
/* Takes the lease of a leased job whose lease lapsed (or never existed);
 * *taken false if another owner's lease is still valid. */
int store_lease_adopt(struct store *st, const char *token, int64_t id, int lease_ms,
                      bool *taken);
int store_lease_renew(struct store *st, const int64_t *ids, size_t n, int lease_ms);
/* Ids in the leased list (for recovery), at most max. */
int store_leased_ids(struct store *st, size_t max, int64_t **ids, size_t *n);

/* A live job's record (NOT_FOUND if it is not live). */
int store_job_load(struct store *st, int64_t id, struct job **job);
/* Writes progress; STORE_NOT_FOUND if token no longer owns the job. */
int store_job_save(struct store *st, const char *token, const struct job *job);
/* Gives the job back to the head of the queue (retry counted or not). */
int store_job_requeue(struct store *st, const char *token, const struct job *job,
                      bool count_retry);
/* Moves the job to dead with its outcome, trims the dead history, bumps the
 * named counters and queues the callback (callback may be NULL), all in one
 * step. STORE_NOT_FOUND if token does not own it (then nothing changed). */
int store_job_finish(struct store *st, const char *token, const struct job *job,
                     const char *const *counters, size_t ncounters, const json_t *callback);

/* Cancellation requests (at most max ids), and forgetting one. */
int store_cancel_requests(struct store *st, size_t max, int64_t **ids, size_t *n);
int store_cancel_forget(struct store *st, int64_t id);
/* Takes a specific queued job out of the queue into this consumer's leases
 * (for cancelling it); *taken false if it was not queued. */
int store_lease_specific(struct store *st, const char *token, int64_t id, int lease_ms,
                         bool *taken);

/* Callbacks: each is a JSON object with a unique "id" field. claim takes the
 * earliest due one and hides it for hide_ms (at-least-once delivery). */
int store_callback_claim(struct store *st, int hide_ms, json_t **cb, char **member);
int store_callback_done(struct store *st, const char *member);
int store_callback_retry(struct store *st, const char *member, const json_t *cb,
                         long long due_ms);
int store_callback_give_up(struct store *st, const char *member);
/* Blocks up to timeout_ms until a callback is queued (no polling). */
int store_callback_wait(struct store *st, int timeout_ms);

/* Image builds queued by producers. */
int store_next_build(struct store *st, json_t **build);
int store_set_build_result(struct store *st, int64_t build_id, bool ok, const char *message);

#endif
