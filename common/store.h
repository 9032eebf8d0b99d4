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
 *   counters               hash of the /info counters; started: unix seconds
 *   images                 JSON {"images": [...]} published by the consumer
 *   pools:wanted           hash image -> {"size":N,"cores":..,"memory":..}
 *   pools:state            hash image -> {"total":[..],"free":[..]} (consumer)
 *   partial:<id>           partial output of a running job (consumer)
 *   build:lastid, builds:queue (list of build JSON), build:result:<id>
 *   callbacks              list of pending callback JSON (consumer)
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

/* Partial output of a running job. */
int store_partial_output(struct store *st, int64_t id, char **out, size_t *len);
int store_set_partial_output(struct store *st, int64_t id, const char *data, size_t len,
                             int ttl_s);

/* Image builds: the producer queues a tarball, the consumer loads it and
 * writes a result {"ok":bool,"message":..}. */
int store_queue_build(struct store *st, const char *image, const char *path,
                      int64_t *build_id);
int store_build_result(struct store *st, int64_t build_id, json_t **out);

#endif
