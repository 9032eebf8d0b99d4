/*
 * store_internal.h: what the parts of the Redis store (store.c,
 * store_conn.c, store_policy.c, store_health.c, store_queries.c,
 * store_lifecycle.c, store_sched.c, store_callbacks.c, store_ctl.c,
 * store_metrics.c) share: the handle, key construction, the
 * connection, the command and reply helpers and the Functions call. Nothing outside common/store*.c
 * includes it.
 */
#ifndef TANGO_STORE_INTERNAL_H
#define TANGO_STORE_INTERNAL_H

#include <stdbool.h>
#include <hiredis/hiredis.h>

#include "keys.h"
#include "store.h"

struct store {
    struct redis_target target;
    int timeout_ms;
    char prefix[80];
    int dead_keep;
    int min_replicas;         /* WAIT for this many replicas after a write (0: never) */
    int wait_ms;
    redisContext *ctx;
    char addr_host[REDIS_HOST_MAX + 1]; /* the server talked to (sentinel: last master) */
    int addr_port;
    int sentinel_next;        /* the sentinel asked first: the last that answered */
    long long master_checked_ms; /* monotonic: when the sentinels last named our master */
    int was_down;      /* for logging transitions only */
    enum {
        FAIL_OTHER,   /* timeout, refused connection...: not sent again */
        FAIL_BROKEN,  /* the connection broke after sending (EOF, reset) */
        FAIL_REFUSED, /* not the master (READONLY...): it did not run */
    } last_fail;
    bool refused;             /* the batch being read got a not-master refusal */
    long long down_until_ms;  /* fail fast until then (monotonic), Redis down */
    int backoff_ms;
    bool library_checked;     /* this connection saw our Functions library */
    bool allow_eviction;      /* config redis_allow_eviction */
    bool policy_refused;      /* the last connection made was refused: maxmemory-policy evicts */
    bool write_refused;       /* the last call failed because Redis refuses writes (OOM...) */
    bool refusing_writes;     /* for logging transitions only */
    long long write_refused_ms; /* monotonic: the last such refusal */
    long long health_ms;      /* monotonic: the last write probe (store_health.c) */
    bool health_writable;     /* what it found */
    char health_why[256];     /* why not writable */
    char err[256];
};

/* store_conn.c: makes sure st->ctx is a usable connection: an idle one
 * Redis closed, or (sentinel) one to a server the sentinels no longer name
 * as master, is replaced; a new one is authenticated, its db selected, its
 * maxmemory-policy checked. Returns 0 when connected, -1 when not (st->err
 * says why: this attempt's failure, or, at once and without trying, the
 * one that opened the fail-fast window we are in). *fresh tells whether
 * the connection was not one already open (made now, or none). */
int store_connect(struct store *st, bool *fresh);
/* store_conn.c: records a failure of the connection (errno and st->ctx's
 * error tell how it failed; st->ctx, if any, is dropped) with why in
 * st->err. One that broke (EOF, reset: st->last_fail FAIL_BROKEN) may be
 * retried at once on a fresh connection if what was sent only reads. A
 * timeout (Redis hung or unreachable) starts a fail-fast window, so a hung
 * Redis costs one timeout per window, not one per call; a refused
 * connection costs nothing, so it gets no window and recovery is
 * immediate. Logs redis_down once per outage. */
void store_mark_down(struct store *st, const char *why);
/* store_conn.c: closes st->ctx (if any); the next command connects again. */
void store_drop_connection(struct store *st);

/* store_policy.c: whether the server c talks to may be used: 0, or -1 with
 * why when INFO failed on the connection, or (st->policy_refused set) when
 * its maxmemory-policy evicts keys (allkeys-*, volatile-*) and config
 * redis_allow_eviction is false. Redis would delete job records,
 * leases and queues when full; noeviction refuses writes instead (the
 * caller sees STORE_UNAVAILABLE, store_write_refused). A policy that cannot
 * be read (INFO refused) is allowed, with a warning once. */
int store_check_policy(struct store *st, redisContext *c, char *why, size_t len);
/* store_policy.c: whether an error reply means Redis refuses writes (OOM
 * at maxmemory with noeviction, MISCONF: it cannot persist): the command
 * did not run. */
bool store_is_write_refusal(const char *msg);

/* Writes prefix + the name of key k (keys.h) into buf (KEY_MAX bytes);
 * store_keyf appends a formatted suffix (a family member: "partial:" + id). */
#define KEY_MAX 512
void store_key(const struct store *st, char *buf, enum store_key_id k);
void store_keyf(const struct store *st, char *buf, enum store_key_id k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Runs one command (argv form). Returns the reply (caller frees) or NULL with
 * *status set (UNAVAILABLE, or ERROR for an error reply). */
redisReply *store_cmd(struct store *st, int *status, int argc, const char **argv,
                      const size_t *lens);
/* printf-style command (hiredis format: %s %b %lld). */
redisReply *store_cmdf(struct store *st, int *status, const char *fmt, ...);
/* Runs "<verb> <key k> <id>" (e.g. SREM cancels 7) and drops the reply;
 * returns the status. */
int store_key_id_cmd(struct store *st, const char *verb, enum store_key_id k, int64_t id);
/* A batch of commands sent in one round trip. */
#define BATCH_MAX 16
struct store_batch {
    char *cmds[BATCH_MAX];
    long long lens[BATCH_MAX];
    int n;
};
/* Adds a printf-style command to the batch (hiredis format). */
void batch_add(struct store_batch *b, const char *fmt, ...);
/* Sends the batch (wrapped in MULTI/EXEC when atomic) and frees its
 * commands. Returns an array reply (caller frees): EXEC's reply when atomic,
 * else one element per command. NULL with *status set on failure. */
redisReply *store_batch_run(struct store *st, struct store_batch *b, bool atomic, int *status);

/* The reply helpers below take the reply of a store_cmd/store_cmdf/
 * store_fcall/store_batch_run call and the status that call sets, by
 * address, so they can be called as f(store_cmdf(st, &status, ...),
 * &status, ...): *status is read only after the call has set it.
 *
 * Turns an array reply of ids (strings or integers) into *ids (malloc'd,
 * caller frees) and frees the reply; r NULL: returns *status. */
int store_id_array(redisReply *r, const int *status, int64_t **ids, size_t *n);
/* Turns a string reply into *out (malloc'd and NUL-terminated, caller
 * frees; *len its length when len is not NULL) and frees the reply:
 * STORE_OK, or STORE_NOT_FOUND (nil or not a string; *out untouched);
 * r NULL: returns *status. */
int store_reply_text(redisReply *r, const int *status, char **out, size_t *len);
/* The same for a JSON text: *out the parsed value (caller decrefs);
 * STORE_ERROR (*out NULL) when the text does not parse. */
int store_reply_json(redisReply *r, const int *status, json_t **out);

/* Calls tango_<fn> of the job-state library (jobstate.lua) with the prefix
 * as its key and nargs string args, loading the library into Redis first if
 * this connection has not seen this build's version. Library errors map to
 * STORE_STALE (not the lease owner / not the leader), STORE_NOT_FOUND (no
 * such live job) or STORE_ERROR (a refused transition; st->err names both
 * states). Returns the reply (caller frees) or NULL with *status. */
redisReply *store_fcall(struct store *st, int *status, const char *fn, int nargs,
                        const char *const *args);
/* store_fcall for a function that answers an integer: *result gets it (0
 * for any other reply); returns the call's status. */
int store_fcall_int(struct store *st, const char *fn, int nargs, const char *const *args,
                    long long *result);

#endif
