/*
 * store_internal.h: what the two halves of the Redis store (store.c and
 * store_consumer.c) share: the handle, key construction and the command
 * helpers. Nothing outside common/store*.c includes it.
 */
#ifndef TANGO_STORE_INTERNAL_H
#define TANGO_STORE_INTERNAL_H

#include <stdbool.h>
#include <hiredis/hiredis.h>

#include "store.h"

struct store {
    struct redis_target target;
    int timeout_ms;
    char prefix[80];
    int dead_keep;
    redisContext *ctx;
    int was_down;      /* for logging transitions only */
    bool last_retryable;      /* last failure: an idle connection found closed */
    long long down_until_ms;  /* fail fast until then (monotonic), Redis down */
    int backoff_ms;
    char err[256];
};

/* Writes prefix + formatted suffix into buf (KEY_MAX bytes). */
#define KEY_MAX 512
void store_key(const struct store *st, char *buf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs one command (argv form). Returns the reply (caller frees) or NULL with
 * *status set (UNAVAILABLE, or ERROR for an error reply). */
redisReply *store_cmd(struct store *st, int *status, int argc, const char **argv,
                      const size_t *lens);
/* printf-style command (hiredis format: %s %b %lld). */
redisReply *store_cmdf(struct store *st, int *status, const char *fmt, ...);
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

#endif
