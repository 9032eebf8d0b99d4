/*
 * store.c: the Redis store's core: the handle, key names from keys.h, the
 * one retry rule every command goes through, the one place writes wait for
 * the replicas (WAIT, redis_min_replicas), calls into the job-state
 * Functions library (loaded into Redis on demand) and the reply helpers.
 * The connection itself (lazy, reconnecting, fail-fast while Redis is down,
 * the sentinels, the maxmemory-policy check) is store_conn.c's. The
 * operations live in store_queries.c (producer reads and writes),
 * store_lifecycle.c (job transitions and leases) and store_callbacks.c
 * (callbacks, cancels, builds).
 */
#include "store_internal.h"

#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
    st->min_replicas = cfg->redis_min_replicas;
    st->wait_ms = cfg->redis_wait_ms;
    if (!st->target.sentinel) {
        snprintf(st->addr_host, sizeof st->addr_host, "%s", st->target.host);
        st->addr_port = st->target.port;
    }
    snprintf(st->prefix, sizeof st->prefix, "%s", cfg->prefix);
    st->dead_keep = cfg->dead_jobs_keep;
    st->allow_eviction = cfg->redis_allow_eviction;
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

/* Maps an error reply to a status and st->err. A reply saying this server
 * is not (or no longer) a writable master means the command was refused,
 * not run: the connection is dropped so the next one asks the sentinels
 * again, and the command may be sent again (FAIL_REFUSED). */
static int error_status(struct store *st, const char *msg)
{
    static const char *const not_master[] = {"READONLY", "MASTERDOWN", "UNBLOCKED"};
    for (size_t i = 0; i < sizeof not_master / sizeof not_master[0]; i++)
        if (strncmp(msg, not_master[i], strlen(not_master[i])) == 0) {
            snprintf(st->err, sizeof st->err, "Redis unavailable: %.100s:%d is not the master (%.100s)",
                     st->addr_host, st->addr_port, msg);
            if (!st->refused)
                log_warn("redis_not_master", "host=%s port=%d reply=\"%.80s\"", st->addr_host,
                         st->addr_port, msg);
            st->last_fail = FAIL_REFUSED;
            st->refused = true;
            return STORE_UNAVAILABLE;
        }
    if (store_is_write_refusal(msg)) {
        snprintf(st->err, sizeof st->err, "Redis refuses writes: %.200s", msg);
        if (!st->refusing_writes)
            log_warn("redis_refuses_writes", "host=%s port=%d reply=\"%.120s\"", st->addr_host,
                     st->addr_port, msg);
        st->refusing_writes = st->write_refused = true;
        st->write_refused_ms = clock_mono_ms();
        return STORE_UNAVAILABLE; /* it did not run: as safe to retry as an outage */
    }
    snprintf(st->err, sizeof st->err, "Redis error: %.200s", msg);
    if (strncmp(msg, "LOADING", 7) == 0 || strncmp(msg, "NOREPLICAS", 10) == 0)
        return STORE_UNAVAILABLE;
    return STORE_ERROR;
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

/* Argument i (0 or 1) of a formatted command ("*N\r\n$L\r\narg\r\n..."):
 * *arg (not terminated) and its length; false if it has none. */
static bool command_arg(const char *cmd, long long len, int i, const char **arg, size_t *alen)
{
    const char *p = cmd, *end = cmd + len;
    if (p >= end || *p != '*')
        return false;
    long argc = strtol(p + 1, NULL, 10);
    if (argc <= i)
        return false;
    p = memchr(p, '\n', (size_t)(end - p));
    for (int k = 0; p && k <= i; k++) {
        p++;
        if (p >= end || *p != '$')
            return false;
        long l = strtol(p + 1, NULL, 10);
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p || l < 0 || end - (p + 1) < l)
            return false;
        if (k == i) {
            *arg = p + 1;
            *alen = (size_t)l;
            return true;
        }
        p = memchr(p + 1 + l, '\n', (size_t)(end - (p + 1 + l)));
    }
    return false;
}

static bool word_in(const char *w, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && strncasecmp(w, list[i], len) == 0)
            return true;
    return false;
}

/* Whether a formatted command can change data (and so must reach the
 * replicas before it counts). A short list of the read commands the store
 * uses says no; everything else (a new command included) says yes, which at
 * worst costs a WAIT. */
static bool command_writes(const char *cmd, long long len)
{
    static const char *const reads[] = {
        "GET", "MGET", "STRLEN", "EXISTS", "TTL", "PTTL", "PEXPIRETIME", "TYPE", "HGET",
        "HMGET", "HGETALL", "HLEN", "HEXISTS", "HKEYS", "HVALS", "HSCAN", "LLEN", "LRANGE",
        "LINDEX", "LPOS", "SCARD", "SISMEMBER", "SMISMEMBER", "SMEMBERS", "SRANDMEMBER", "SSCAN",
        "ZCARD", "ZSCORE", "ZMSCORE", "ZRANGE", "ZREVRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE",
        "ZRANK", "ZREVRANK", "ZCOUNT", "ZSCAN", "SCAN", "PING", "TIME", "INFO", "ROLE",
        "DBSIZE", "FCALL_RO", "EVAL_RO", "EVALSHA_RO",
    };
    /* Functions of jobstate.lua that only read. */
    static const char *const read_functions[] = {"tango_version", "tango_now"};
    const char *name, *fn;
    size_t nlen, flen;
    if (!command_arg(cmd, len, 0, &name, &nlen))
        return true;
    if (word_in(name, nlen, reads, sizeof reads / sizeof reads[0]))
        return false;
    if (nlen == 5 && strncasecmp(name, "FCALL", 5) == 0 && command_arg(cmd, len, 1, &fn, &flen))
        return !word_in(fn, flen, read_functions,
                        sizeof read_functions / sizeof read_functions[0]);
    return true;
}

static bool batch_writes(const struct store_batch *b)
{
    for (int i = 0; i < b->n; i++)
        if (command_writes(b->cmds[i], b->lens[i]))
            return true;
    return false;
}

/* Sends the batch once on the current connection, in one round trip:
 * [MULTI] commands [EXEC] [WAIT min_replicas wait_ms]. single: return the
 * one command's reply itself; atomic: return EXEC's reply; else an array of
 * every reply. With wait, a write the replicas did not confirm in time is
 * STORE_UNAVAILABLE (it did run on the master: its outcome is unknown to
 * the caller, never a success). NULL with *status on failure. */
static redisReply *batch_send(struct store *st, struct store_batch *b, bool atomic, bool single,
                              bool wait, int *status)
{
    if (atomic)
        redisAppendCommand(st->ctx, "MULTI");
    for (int i = 0; i < b->n; i++)
        redisAppendFormattedCommand(st->ctx, b->cmds[i], (size_t)b->lens[i]);
    if (atomic)
        redisAppendCommand(st->ctx, "EXEC");
    if (wait)
        redisAppendCommand(st->ctx, "WAIT %d %d", st->min_replicas, st->wait_ms);
    size_t total = (size_t)b->n + (atomic ? 2 : 0);
    redisReply *result = NULL;
    if (!atomic && !single) {
        result = calloc(1, sizeof *result);
        result->type = REDIS_REPLY_ARRAY;
        result->element = calloc(total, sizeof *result->element);
    }
    int rc = STORE_OK;
    st->refused = false;
    for (size_t i = 0; i < total + (wait ? 1 : 0); i++) {
        void *rv = NULL;
        if (redisGetReply(st->ctx, &rv) != REDIS_OK) {
            store_mark_down(st, st->ctx && st->ctx->errstr[0] ? st->ctx->errstr : "connection lost");
            freeReplyObject(result);
            *status = STORE_UNAVAILABLE;
            return NULL;
        }
        redisReply *r = rv;
        if (i == total) { /* WAIT's reply */
            if (rc == STORE_OK && (r->type != REDIS_REPLY_INTEGER || r->integer < st->min_replicas)) {
                if (r->type == REDIS_REPLY_INTEGER)
                    snprintf(st->err, sizeof st->err,
                             "Redis unavailable: the write reached %lld of %d replicas in %d ms",
                             r->integer, st->min_replicas, st->wait_ms);
                else
                    snprintf(st->err, sizeof st->err, "Redis unavailable: WAIT failed: %.100s",
                             r->type == REDIS_REPLY_ERROR ? r->str : "?");
                rc = STORE_UNAVAILABLE;
            }
            freeReplyObject(r);
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR && rc == STORE_OK)
            rc = error_status(st, r->str);
        if (single || (atomic && i == total - 1))
            result = r;
        else if (atomic)
            freeReplyObject(r);
        else
            result->element[result->elements++] = r;
    }
    if (rc == STORE_OK && !single && (!result || result->type != REDIS_REPLY_ARRAY)) {
        snprintf(st->err, sizeof st->err, "Redis transaction aborted");
        rc = STORE_ERROR;
    }
    if (st->refused)
        store_drop_connection(st);
    if (rc != STORE_OK) {
        freeReplyObject(result);
        *status = rc;
        return NULL;
    }
    *status = STORE_OK;
    return result;
}

/* The one retry rule, and the one place a write waits for the replicas.
 * A connection Redis closed while idle is noticed before anything is sent
 * on it and replaced (store_connect). After sending, a command is
 * sent again at most once, on a fresh connection, and only when that
 * cannot run it twice: Redis refused it as not the master (READONLY and the
 * like: ask the sentinels again), or the connection broke (EOF, reset) and
 * the batch only reads. A write whose reply was lost (broken connection,
 * timeout, replicas not confirming) is never sent again here: its outcome
 * is unknown, the caller gets STORE_UNAVAILABLE, and the lifecycle's fenced
 * transitions tell on their retry whether it had landed. Frees b's commands. */
static atomic_llong unavailable_count; /* store_unavailable_count */

long long store_unavailable_count(void)
{
    return atomic_load(&unavailable_count);
}

static redisReply *run_with_retry(struct store *st, struct store_batch *b, bool atomic,
                                  bool single, int *status)
{
    redisReply *r = NULL;
    bool writes = batch_writes(b);
    bool wait = writes && st->min_replicas > 0;
    *status = STORE_UNAVAILABLE;
    st->write_refused = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh;
        if (store_connect(st, &fresh)) {
            *status = STORE_UNAVAILABLE;
            break;
        }
        r = batch_send(st, b, atomic, single, wait, status);
        if (r || *status != STORE_UNAVAILABLE)
            break;
        bool again = st->last_fail == FAIL_REFUSED ||
                     (st->last_fail == FAIL_BROKEN && !fresh && !writes);
        st->last_fail = FAIL_OTHER;
        if (!again)
            break;
    }
    if (!r && *status == STORE_UNAVAILABLE)
        atomic_fetch_add(&unavailable_count, 1);
    if (r && writes && st->refusing_writes) {
        st->refusing_writes = false;
        log_info("redis_takes_writes", "host=%s port=%d", st->addr_host, st->addr_port);
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

int store_key_id_cmd(struct store *st, const char *verb, enum store_key_id k, int64_t id)
{
    char key[KEY_MAX];
    store_key(st, key, k);
    int status;
    freeReplyObject(store_cmdf(st, &status, "%s %s %lld", verb, key, (long long)id));
    return status;
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

int store_fcall_int(struct store *st, const char *fn, int nargs, const char *const *args,
                    long long *result)
{
    int status;
    redisReply *r = store_fcall(st, &status, fn, nargs, args);
    if (!r)
        return status;
    *result = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return STORE_OK;
}

int store_id_array(redisReply *r, const int *status, int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (!r)
        return *status;
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

int store_reply_text(redisReply *r, const int *status, char **out, size_t *len)
{
    if (!r)
        return *status;
    int found = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_STRING) {
        *out = malloc(r->len + 1);
        memcpy(*out, r->str, r->len);
        (*out)[r->len] = '\0';
        if (len)
            *len = r->len;
        found = STORE_OK;
    }
    freeReplyObject(r);
    return found;
}

int store_reply_json(redisReply *r, const int *status, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    int found = store_reply_text(r, status, &text, &len);
    if (found != STORE_OK)
        return found;
    *out = json_loadb(text, len, 0, NULL);
    free(text);
    return *out ? STORE_OK : STORE_ERROR;
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

