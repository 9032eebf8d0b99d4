/*
 * store.c: the Redis store's core: the handle, its connection (lazy,
 * reconnecting, fail-fast while Redis is down), the one retry rule every
 * command goes through, key names from keys.h, and calls into the job-state
 * Functions library (loaded into Redis on demand). The operations live in
 * store_queries.c (producer reads and writes), store_lifecycle.c (job
 * transitions and leases) and store_callbacks.c (callbacks, cancels, builds).
 */
#include "store_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"
#include "clock.h"
#include "jobstate.h"
#include "keys.h"

struct store *store_new(const struct tango_config *cfg)
{
    struct store *st = calloc(1, sizeof *st);
    char err[256];
    if (redis_url_parse(cfg->redis_url, &st->target, err, sizeof err)) {
        free(st);
        return NULL;
    }
    st->timeout_ms = cfg->redis_timeout_ms;
    snprintf(st->prefix, sizeof st->prefix, "%s", cfg->prefix);
    st->dead_keep = cfg->dead_jobs_keep;
    return st;
}

void store_free(struct store *st)
{
    if (!st)
        return;
    if (st->ctx)
        redisFree(st->ctx);
    free(st);
}

const char *store_error(const struct store *st)
{
    return st->err;
}

static const char *const key_names[KEY__COUNT] = {
#define TANGO_KEY_NAME(tag, name, what) [KEY_##tag] = name,
    TANGO_KEY_TABLE(TANGO_KEY_NAME)
#undef TANGO_KEY_NAME
};

const char *store_key_name(enum store_key_id k)
{
    return (unsigned)k < KEY__COUNT ? key_names[k] : "";
}

void store_key(const struct store *st, char *buf, enum store_key_id k)
{
    snprintf(buf, KEY_MAX, "%s%s", st->prefix, store_key_name(k));
}

void store_keyf(const struct store *st, char *buf, enum store_key_id k, const char *fmt, ...)
{
    int n = snprintf(buf, KEY_MAX, "%s%s", st->prefix, store_key_name(k));
    if (n < 0 || n >= KEY_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, KEY_MAX - (size_t)n, fmt, ap);
    va_end(ap);
}

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 4000

/* Records a failure. A reused connection that Redis closed (EOF, reset)
 * never ran the command and may be retried at once on a fresh one. A
 * timeout (Redis hung or unreachable) starts a fail-fast window, so a hung
 * Redis costs one timeout per window, not one per call; a refused
 * connection costs nothing, so it gets no window and recovery is immediate. */
static void mark_down(struct store *st, const char *why)
{
    int e = errno;
    st->last_retryable = st->ctx && (st->ctx->err == REDIS_ERR_EOF ||
                                     (st->ctx->err == REDIS_ERR_IO &&
                                      (e == ECONNRESET || e == EPIPE)));
    snprintf(st->err, sizeof st->err, "Redis unavailable: %s", why);
    /* hiredis's words: "Connection timed out" (connect), "Resource
     * temporarily unavailable" (read timeout). errno is no guide here: a
     * refused non-blocking connect leaves EINPROGRESS behind. */
    bool timed_out = strstr(why, "timed out") || strstr(why, "temporarily unavailable") ||
                     strstr(why, "Timeout");
    if (timed_out) {
        st->backoff_ms = st->backoff_ms ? st->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (st->backoff_ms > BACKOFF_MAX_MS)
            st->backoff_ms = BACKOFF_MAX_MS;
        st->down_until_ms = clock_mono_ms() + st->backoff_ms;
    }
    if (!st->was_down && !st->last_retryable)
        log_warn("redis_down", "host=%s port=%d reason=\"%s\"", st->target.host,
                 st->target.port, why);
    if (!st->last_retryable)
        st->was_down = 1;
    if (st->ctx) {
        redisFree(st->ctx);
        st->ctx = NULL;
    }
}

/* Returns 0 when connected (connecting if needed); *fresh tells whether
 * this call made the connection. */
static int ensure_connected_ex(struct store *st, bool *fresh)
{
    *fresh = false;
    if (st->ctx)
        return 0;
    *fresh = true;
    st->last_retryable = false;
    if (clock_mono_ms() < st->down_until_ms)
        return -1; /* still in the fail-fast window; st->err says why */
    struct timeval tv = {st->timeout_ms / 1000, (st->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(st->target.host, st->target.port, tv);
    if (!c || c->err) {
        const char *why = c ? c->errstr : "out of memory";
        char buf[160];
        snprintf(buf, sizeof buf, "%s", why);
        if (c)
            redisFree(c);
        mark_down(st, buf);
        return -1;
    }
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);
    st->ctx = c;
    st->library_checked = false;
    if (st->target.password[0]) {
        redisReply *r = redisCommand(c, "AUTH %s", st->target.password);
        int bad = !r || r->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (bad) {
            mark_down(st, "authentication failed");
            return -1;
        }
    }
    if (st->target.db) {
        redisReply *r = redisCommand(c, "SELECT %d", st->target.db);
        int bad = !r || r->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (bad) {
            mark_down(st, "SELECT failed");
            return -1;
        }
    }
    if (st->was_down)
        log_info("redis_up", "host=%s port=%d", st->target.host, st->target.port);
    st->was_down = 0;
    st->backoff_ms = 0;
    st->down_until_ms = 0;
    return 0;
}

/* Checks a reply: NULL means the connection broke. */
static redisReply *check_reply(struct store *st, redisReply *r, int *status)
{
    if (!r) {
        mark_down(st, st->ctx && st->ctx->errstr[0] ? st->ctx->errstr : "connection lost");
        *status = STORE_UNAVAILABLE;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(st->err, sizeof st->err, "Redis error: %.200s", r->str);
        *status = strncmp(r->str, "LOADING", 7) == 0 ? STORE_UNAVAILABLE : STORE_ERROR;
        freeReplyObject(r);
        return NULL;
    }
    *status = STORE_OK;
    return r;
}

void batch_add(struct store_batch *b, const char *fmt, ...)
{
    if (b->n >= BATCH_MAX)
        abort(); /* a programming error: batches are small and fixed */
    va_list ap;
    va_start(ap, fmt);
    b->lens[b->n] = redisvFormatCommand(&b->cmds[b->n], fmt, ap);
    va_end(ap);
    b->n++;
}

/* Adds an argv-form command to the batch. */
static void batch_add_argv(struct store_batch *b, int argc, const char **argv, const size_t *lens)
{
    if (b->n >= BATCH_MAX)
        abort();
    b->lens[b->n] = redisFormatCommandArgv(&b->cmds[b->n], argc, argv, lens);
    b->n++;
}

static void batch_clear(struct store_batch *b)
{
    for (int i = 0; i < b->n; i++)
        redisFreeCommand(b->cmds[i]);
    b->n = 0;
}

/* Sends the batch once on the current connection. single: return the one
 * command's reply itself; atomic: wrap in MULTI/EXEC and return EXEC's
 * reply; else an array of every reply. NULL with *status on failure. */
static redisReply *batch_send(struct store *st, struct store_batch *b, bool atomic, bool single,
                              int *status)
{
    if (single) {
        void *rv = NULL;
        if (redisAppendFormattedCommand(st->ctx, b->cmds[0], (size_t)b->lens[0]) != REDIS_OK ||
            redisGetReply(st->ctx, &rv) != REDIS_OK)
            rv = NULL;
        return check_reply(st, rv, status);
    }
    if (atomic)
        redisAppendCommand(st->ctx, "MULTI");
    for (int i = 0; i < b->n; i++)
        redisAppendFormattedCommand(st->ctx, b->cmds[i], (size_t)b->lens[i]);
    if (atomic)
        redisAppendCommand(st->ctx, "EXEC");
    size_t total = (size_t)b->n + (atomic ? 2 : 0);
    redisReply *result = atomic ? NULL : calloc(1, sizeof *result);
    if (!atomic) {
        result->type = REDIS_REPLY_ARRAY;
        result->element = calloc(total, sizeof *result->element);
    }
    int rc = STORE_OK;
    for (size_t i = 0; i < total; i++) {
        void *rv = NULL;
        if (redisGetReply(st->ctx, &rv) != REDIS_OK) {
            mark_down(st, st->ctx && st->ctx->errstr[0] ? st->ctx->errstr : "connection lost");
            freeReplyObject(result);
            *status = STORE_UNAVAILABLE;
            return NULL;
        }
        redisReply *r = rv;
        if (r->type == REDIS_REPLY_ERROR && rc == STORE_OK) {
            snprintf(st->err, sizeof st->err, "Redis error: %.200s", r->str);
            rc = STORE_ERROR;
        }
        if (atomic) {
            if (i == total - 1)
                result = r;
            else
                freeReplyObject(r);
        } else {
            result->element[result->elements++] = r;
        }
    }
    if (rc == STORE_OK && (!result || result->type != REDIS_REPLY_ARRAY)) {
        snprintf(st->err, sizeof st->err, "Redis transaction aborted");
        rc = STORE_ERROR;
    }
    if (rc != STORE_OK) {
        freeReplyObject(result);
        *status = rc;
        return NULL;
    }
    *status = STORE_OK;
    return result;
}

/* The one retry rule. A reused connection found closed (EOF or reset: Redis
 * restarted while it was idle) never ran the command, so one retry on a
 * fresh connection is safe and spares the caller a spurious failure. A
 * timeout is never retried: the command may have run. Frees b's commands. */
static redisReply *run_with_retry(struct store *st, struct store_batch *b, bool atomic,
                                  bool single, int *status)
{
    redisReply *r = NULL;
    *status = STORE_UNAVAILABLE;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh;
        if (ensure_connected_ex(st, &fresh)) {
            *status = STORE_UNAVAILABLE;
            break;
        }
        r = batch_send(st, b, atomic, single, status);
        if (r || fresh || *status != STORE_UNAVAILABLE || !st->last_retryable)
            break;
    }
    batch_clear(b);
    return r;
}

redisReply *store_cmd(struct store *st, int *status, int argc, const char **argv,
                      const size_t *lens)
{
    struct store_batch b = {0};
    batch_add_argv(&b, argc, argv, lens);
    return run_with_retry(st, &b, false, true, status);
}

redisReply *store_cmdf(struct store *st, int *status, const char *fmt, ...)
{
    struct store_batch b = {0};
    va_list ap;
    va_start(ap, fmt);
    b.lens[0] = redisvFormatCommand(&b.cmds[0], fmt, ap);
    va_end(ap);
    b.n = 1;
    return run_with_retry(st, &b, false, true, status);
}

redisReply *store_batch_run(struct store *st, struct store_batch *b, bool atomic, int *status)
{
    return run_with_retry(st, b, atomic, false, status);
}

/* Makes sure Redis holds this build's Functions library (once per
 * connection): tango_version answers its digest, else FUNCTION LOAD. */
static int ensure_library(struct store *st)
{
    if (st->ctx && st->library_checked)
        return STORE_OK;
    int status;
    redisReply *r = store_cmdf(st, &status, "FCALL tango_version 0");
    bool current = r && r->type == REDIS_REPLY_STRING &&
                   strcmp(r->str, jobstate_library_version()) == 0;
    freeReplyObject(r);
    if (status == STORE_UNAVAILABLE)
        return status;
    if (!current) {
        size_t len;
        const char *lib = jobstate_library(&len);
        r = store_cmdf(st, &status, "FUNCTION LOAD REPLACE %b", lib, len);
        freeReplyObject(r);
        if (status != STORE_OK)
            return status;
        log_info("redis_functions_loaded", "library=tango version=%s",
                 jobstate_library_version());
    }
    st->library_checked = true;
    return STORE_OK;
}

/* Maps the library's error words to statuses (see jobstate.lua). */
static int fcall_error_status(const char *err)
{
    if (strstr(err, "STALE") || strstr(err, "NOTLEADER"))
        return STORE_STALE;
    if (strstr(err, "GONE"))
        return STORE_NOT_FOUND;
    return STORE_ERROR;
}

redisReply *store_fcall(struct store *st, int *status, const char *fn, int nargs,
                        const char *const *args)
{
    char name[64];
    snprintf(name, sizeof name, "tango_%s", fn);
    int argc = 4 + nargs;
    const char **argv = calloc((size_t)argc, sizeof *argv);
    size_t *lens = calloc((size_t)argc, sizeof *lens);
    argv[0] = "FCALL";
    argv[1] = name;
    argv[2] = "1";
    argv[3] = st->prefix;
    for (int i = 0; i < nargs; i++)
        argv[4 + i] = args[i];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        *status = ensure_library(st);
        if (*status != STORE_OK)
            break;
        r = store_cmd(st, status, argc, argv, lens);
        /* Redis lost the library (a restart without persistence, a
         * FUNCTION FLUSH): load it again and retry once. */
        if (!r && *status == STORE_ERROR && strstr(st->err, "Function not found")) {
            st->library_checked = false;
            continue;
        }
        break;
    }
    if (!r && *status == STORE_ERROR)
        *status = fcall_error_status(st->err);
    free(argv);
    free(lens);
    return r;
}

int store_id_array(redisReply *r, int status, int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!r)
        return status;
    *ids = calloc(r->elements + 1, sizeof **ids);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING)
            (*ids)[(*n)++] = atoll(e->str);
        else if (e->type == REDIS_REPLY_INTEGER)
            (*ids)[(*n)++] = e->integer;
    }
    freeReplyObject(r);
    return STORE_OK;
}

int store_time_ms(struct store *st, long long *now_ms)
{
    int status;
    redisReply *r = store_fcall(st, &status, "now", 0, NULL);
    if (!r)
        return status;
    *now_ms = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return STORE_OK;
}

int store_ping(struct store *st)
{
    int status;
    freeReplyObject(store_cmdf(st, &status, "PING"));
    return status;
}

