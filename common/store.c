/*
 * store.c: the Redis store's connection handling and the producer-side
 * operations (see store.h for the key schema).
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

void store_key(const struct store *st, char *buf, const char *fmt, ...)
{
    int n = snprintf(buf, KEY_MAX, "%s", st->prefix);
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

/* A reused connection found closed (EOF or reset: Redis restarted while it
 * was idle) never ran the command, so one retry on a fresh connection is
 * safe and spares the caller a spurious failure. A timeout is never retried:
 * the command may have run. */
#define RETRY_ON_STALE(call)                                                         \
    for (int attempt_ = 0; attempt_ < 2; attempt_++) {                              \
        bool fresh_;                                                                \
        if (ensure_connected_ex(st, &fresh_)) {                                     \
            *status = STORE_UNAVAILABLE;                                            \
            return NULL;                                                            \
        }                                                                           \
        call;                                                                       \
        if (r || fresh_ || *status != STORE_UNAVAILABLE || !st->last_retryable)     \
            return r;                                                               \
    }                                                                               \
    return NULL

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

redisReply *store_cmd(struct store *st, int *status, int argc, const char **argv,
                      const size_t *lens)
{
    redisReply *r;
    RETRY_ON_STALE(r = check_reply(st, redisCommandArgv(st->ctx, argc, argv, lens), status));
}

redisReply *store_cmdf(struct store *st, int *status, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;
    va_start(ap, fmt);
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh;
        if (ensure_connected_ex(st, &fresh)) {
            *status = STORE_UNAVAILABLE;
            r = NULL;
            break;
        }
        va_list copy;
        va_copy(copy, ap);
        r = check_reply(st, redisvCommand(st->ctx, fmt, copy), status);
        va_end(copy);
        if (r || fresh || *status != STORE_UNAVAILABLE || !st->last_retryable)
            break;
    }
    va_end(ap);
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

static void batch_clear(struct store_batch *b)
{
    for (int i = 0; i < b->n; i++)
        redisFreeCommand(b->cmds[i]);
    b->n = 0;
}

/* Sends the batch once on the current connection; NULL on failure. */
static redisReply *batch_send(struct store *st, struct store_batch *b, bool atomic, int *status)
{
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

redisReply *store_batch_run(struct store *st, struct store_batch *b, bool atomic, int *status)
{
    redisReply *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh;
        if (ensure_connected_ex(st, &fresh)) {
            *status = STORE_UNAVAILABLE;
            break;
        }
        r = batch_send(st, b, atomic, status);
        if (r || fresh || *status != STORE_UNAVAILABLE || !st->last_retryable)
            break;
    }
    batch_clear(b);
    return r;
}

int store_ping(struct store *st)
{
    int status;
    freeReplyObject(store_cmdf(st, &status, "PING"));
    return status;
}

/* One round trip: the id comes from INCR inside the script and is spliced
 * into the record, which the caller serialises with "id" first and 0 as a
 * placeholder ({"id":0,...). */
static const char ADD_JOB_LUA[] =
    "local id = redis.call('INCR', KEYS[1])\n"
    "local rec = '{\"id\":' .. id .. string.sub(ARGV[1], 8)\n"
    "redis.call('HSET', KEYS[2], id, rec)\n"
    "redis.call('ZADD', KEYS[3], id, id)\n"
    "redis.call('RPUSH', KEYS[4], id)\n"
    "redis.call('HINCRBY', KEYS[5], 'job_requests', 1)\n"
    "return id\n";

int store_add_job(struct store *st, struct job *job)
{
    if (!job->name || !job->image || !job->output_file) {
        snprintf(st->err, sizeof st->err, "job record incomplete");
        return STORE_ERROR;
    }
    job->id = 0;
    char *text = job_dumps(job);
    if (!text || strncmp(text, "{\"id\":0,", 8) != 0) {
        free(text);
        snprintf(st->err, sizeof st->err, "job record cannot be serialized");
        return STORE_ERROR;
    }
    char k_last[KEY_MAX], k_live[KEY_MAX], k_ids[KEY_MAX], k_q[KEY_MAX], k_cnt[KEY_MAX];
    store_key(st, k_last, "job:lastid");
    store_key(st, k_live, "jobs:live");
    store_key(st, k_ids, "jobs:live:ids");
    store_key(st, k_q, "queue:pending");
    store_key(st, k_cnt, "counters");
    int status;
    redisReply *r = store_cmdf(st, &status, "EVAL %s 5 %s %s %s %s %s %s", ADD_JOB_LUA, k_last,
                               k_live, k_ids, k_q, k_cnt, text);
    free(text);
    if (!r)
        return status;
    job->id = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return job->id > 0 ? STORE_OK : STORE_ERROR;
}

/* Parses an array reply of job JSON strings (nil entries skipped). */
static json_t *parse_job_array(redisReply *r)
{
    json_t *out = json_array();
    for (size_t i = 0; r && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        json_t *o = json_loadb(e->str, e->len, 0, NULL);
        if (o)
            json_array_append_new(out, o);
    }
    return out;
}

int store_list_jobs(struct store *st, bool dead, size_t max, json_t **out)
{
    if (max == 0) {
        *out = json_array();
        return STORE_OK;
    }
    char k_ids[KEY_MAX], k_hash[KEY_MAX];
    store_key(st, k_ids, dead ? "jobs:dead:ids" : "jobs:live:ids");
    store_key(st, k_hash, dead ? "jobs:dead" : "jobs:live");
    int status;
    redisReply *ids = store_cmdf(st, &status, "%s %s 0 %lld", dead ? "ZREVRANGE" : "ZRANGE",
                                 k_ids, (long long)max - 1);
    if (!ids)
        return status;
    if (ids->elements == 0) {
        freeReplyObject(ids);
        *out = json_array();
        return STORE_OK;
    }
    size_t argc = ids->elements + 2;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    argv[0] = "HMGET";
    lens[0] = 5;
    argv[1] = k_hash;
    lens[1] = strlen(k_hash);
    for (size_t i = 0; i < ids->elements; i++) {
        argv[i + 2] = ids->element[i]->str;
        lens[i + 2] = ids->element[i]->len;
    }
    redisReply *vals = store_cmd(st, &status, (int)argc, argv, lens);
    free(argv);
    free(lens);
    freeReplyObject(ids);
    if (!vals)
        return status;
    *out = parse_job_array(vals);
    freeReplyObject(vals);
    return STORE_OK;
}

int store_get_job(struct store *st, int64_t id, json_t **out, bool *dead)
{
    char k_live[KEY_MAX], k_dead[KEY_MAX];
    store_key(st, k_live, "jobs:live");
    store_key(st, k_dead, "jobs:dead");
    struct store_batch b = {0};
    batch_add(&b, "HGET %s %lld", k_live, (long long)id);
    batch_add(&b, "HGET %s %lld", k_dead, (long long)id);
    int status;
    redisReply *r = store_batch_run(st, &b, false, &status);
    if (!r)
        return status;
    status = STORE_NOT_FOUND;
    for (size_t i = 0; i < 2; i++) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            *out = json_loadb(e->str, e->len, 0, NULL);
            *dead = i == 1;
            status = *out ? STORE_OK : STORE_ERROR;
            break;
        }
    }
    freeReplyObject(r);
    return status;
}

int store_queue_position(struct store *st, int64_t id, long long *pos)
{
    char k_q[KEY_MAX];
    store_key(st, k_q, "queue:pending");
    int status;
    redisReply *r = store_cmdf(st, &status, "LPOS %s %lld", k_q, (long long)id);
    if (!r)
        return status;
    *pos = r->type == REDIS_REPLY_INTEGER ? r->integer + 1 : 0;
    freeReplyObject(r);
    return STORE_OK;
}

/* HGETALL into a JSON object of strings. */
static int hash_to_json(struct store *st, const char *key, bool values_are_json, json_t **out)
{
    int status;
    redisReply *r = store_cmdf(st, &status, "HGETALL %s", key);
    if (!r)
        return status;
    json_t *o = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        redisReply *k = r->element[i], *v = r->element[i + 1];
        json_t *val = values_are_json ? json_loadb(v->str, v->len, 0, NULL)
                                      : json_stringn(v->str, v->len);
        if (val)
            json_object_setn_new(o, k->str, k->len, val);
    }
    freeReplyObject(r);
    *out = o;
    return STORE_OK;
}

int store_lab_files(struct store *st, const char *lab_dir, json_t **out)
{
    char key[KEY_MAX];
    store_key(st, key, "lab:%s:files", lab_dir);
    return hash_to_json(st, key, false, out);
}

int store_lab_file_md5(struct store *st, const char *lab_dir, const char *name, char md5[33])
{
    char key[KEY_MAX];
    store_key(st, key, "lab:%s:files", lab_dir);
    int status;
    redisReply *r = store_cmdf(st, &status, "HGET %s %s", key, name);
    if (!r)
        return status;
    status = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_STRING && r->len == 32) {
        memcpy(md5, r->str, 33);
        status = STORE_OK;
    }
    freeReplyObject(r);
    return status;
}

int store_set_lab_file(struct store *st, const char *lab_dir, const char *name, const char *md5)
{
    char key[KEY_MAX];
    store_key(st, key, "lab:%s:files", lab_dir);
    int status;
    freeReplyObject(store_cmdf(st, &status, "HSET %s %s %s", key, name, md5));
    return status;
}

int store_mark_started(struct store *st)
{
    char key[KEY_MAX];
    store_key(st, key, "started");
    int status;
    freeReplyObject(store_cmdf(st, &status, "SET %s %lld NX", key, (long long)time(NULL)));
    return status;
}

int store_incr_counter(struct store *st, const char *name, long long by)
{
    char key[KEY_MAX];
    store_key(st, key, "counters");
    int status;
    freeReplyObject(store_cmdf(st, &status, "HINCRBY %s %s %lld", key, name, by));
    return status;
}

int store_info(struct store *st, json_t **out)
{
    static const char *const names[] = {"job_requests",   "job_retries",    "waitvm_timeouts",
                                        "runjob_timeouts", "copyin_errors",  "runjob_errors",
                                        "copyout_errors", "num_threads"};
    char k_cnt[KEY_MAX], k_started[KEY_MAX];
    store_key(st, k_cnt, "counters");
    store_key(st, k_started, "started");
    struct store_batch b = {0};
    batch_add(&b, "HMGET %s job_requests job_retries waitvm_timeouts runjob_timeouts "
                  "copyin_errors runjob_errors copyout_errors num_threads", k_cnt);
    batch_add(&b, "GET %s", k_started);
    int status;
    redisReply *r = store_batch_run(st, &b, false, &status);
    if (!r)
        return status;
    json_t *info = json_object();
    redisReply *started = r->element[1];
    long long elapsed = 0;
    if (started->type == REDIS_REPLY_STRING)
        elapsed = (long long)time(NULL) - atoll(started->str);
    json_object_set_new(info, "elapsed_secs", json_integer(elapsed > 0 ? elapsed : 0));
    redisReply *vals = r->element[0];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        long long v = 0;
        if (i < vals->elements && vals->element[i]->type == REDIS_REPLY_STRING)
            v = atoll(vals->element[i]->str);
        json_object_set_new(info, names[i], json_integer(v));
    }
    freeReplyObject(r);
    *out = info;
    return STORE_OK;
}

static int get_json(struct store *st, const char *key, json_t **out)
{
    int status;
    redisReply *r = store_cmdf(st, &status, "GET %s", key);
    if (!r)
        return status;
    status = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_STRING) {
        *out = json_loadb(r->str, r->len, 0, NULL);
        status = *out ? STORE_OK : STORE_ERROR;
    }
    freeReplyObject(r);
    return status;
}

static int set_json(struct store *st, const char *key, const json_t *v, int ttl_s)
{
    char *text = json_dumps(v, JSON_COMPACT);
    int status;
    if (ttl_s > 0)
        freeReplyObject(store_cmdf(st, &status, "SET %s %s EX %d", key, text, ttl_s));
    else
        freeReplyObject(store_cmdf(st, &status, "SET %s %s", key, text));
    free(text);
    return status;
}

static int hset_json(struct store *st, const char *key, const char *field, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    int status;
    freeReplyObject(store_cmdf(st, &status, "HSET %s %s %s", key, field, text));
    free(text);
    return status;
}

int store_images(struct store *st, json_t **out)
{
    char key[KEY_MAX];
    store_key(st, key, "images");
    json_t *doc = NULL;
    int status = get_json(st, key, &doc);
    if (status != STORE_OK)
        return status;
    json_t *list = json_object_get(doc, "images");
    if (!json_is_array(list)) {
        json_decref(doc);
        return STORE_NOT_FOUND;
    }
    *out = json_incref(list);
    json_decref(doc);
    return STORE_OK;
}

int store_set_images(struct store *st, const json_t *images)
{
    char key[KEY_MAX];
    store_key(st, key, "images");
    json_t *doc = json_pack("{s:O, s:I}", "images", images, "updatedAt", (json_int_t)time(NULL));
    int status = set_json(st, key, doc, 0);
    json_decref(doc);
    return status;
}

int store_set_pool_wanted(struct store *st, const char *image, const json_t *spec)
{
    char key[KEY_MAX];
    store_key(st, key, "pools:wanted");
    return hset_json(st, key, image, spec);
}

int store_pools_wanted(struct store *st, json_t **out)
{
    char key[KEY_MAX];
    store_key(st, key, "pools:wanted");
    return hash_to_json(st, key, true, out);
}

int store_set_pool_state(struct store *st, const char *image, const json_t *state)
{
    char key[KEY_MAX];
    store_key(st, key, "pools:state");
    return hset_json(st, key, image, state);
}

int store_pools(struct store *st, json_t **out)
{
    char key[KEY_MAX];
    json_t *wanted = NULL, *state = NULL;
    int status = store_pools_wanted(st, &wanted);
    if (status != STORE_OK)
        return status;
    store_key(st, key, "pools:state");
    status = hash_to_json(st, key, true, &state);
    if (status != STORE_OK) {
        json_decref(wanted);
        return status;
    }
    json_t *pools = json_object();
    const char *image;
    json_t *v;
    json_object_foreach(wanted, image, v) {
        if (json_integer_value(json_object_get(v, "size")) > 0)
            json_object_set_new(pools, image, json_pack("{s:[], s:[]}", "total", "free"));
    }
    json_object_foreach(state, image, v) {
        json_t *total = json_object_get(v, "total"), *free_ = json_object_get(v, "free");
        if (json_is_array(total) && json_is_array(free_))
            json_object_set_new(pools, image, json_pack("{s:O, s:O}", "total", total, "free", free_));
    }
    json_decref(wanted);
    json_decref(state);
    *out = pools;
    return STORE_OK;
}

int store_partial_output(struct store *st, int64_t id, char **out, size_t *len)
{
    char key[KEY_MAX];
    store_key(st, key, "partial:%lld", (long long)id);
    int status;
    redisReply *r = store_cmdf(st, &status, "GET %s", key);
    if (!r)
        return status;
    status = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_STRING) {
        *out = malloc(r->len + 1);
        memcpy(*out, r->str, r->len);
        (*out)[r->len] = '\0';
        *len = r->len;
        status = STORE_OK;
    }
    freeReplyObject(r);
    return status;
}

int store_set_partial_output(struct store *st, int64_t id, const char *data, size_t len,
                             int ttl_s)
{
    char key[KEY_MAX];
    store_key(st, key, "partial:%lld", (long long)id);
    int status;
    if (ttl_s > 0)
        freeReplyObject(store_cmdf(st, &status, "SET %s %b EX %d", key, data, len, ttl_s));
    else
        freeReplyObject(store_cmdf(st, &status, "SET %s %b", key, data, len));
    return status;
}

int store_queue_build(struct store *st, const char *image, const char *path, int64_t *build_id)
{
    char k_last[KEY_MAX], k_q[KEY_MAX];
    store_key(st, k_last, "build:lastid");
    store_key(st, k_q, "builds:queue");
    int status;
    redisReply *r = store_cmdf(st, &status, "INCR %s", k_last);
    if (!r)
        return status;
    *build_id = r->integer;
    freeReplyObject(r);
    json_t *b = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)*build_id, "image", image,
                          "path", path);
    char *text = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    freeReplyObject(store_cmdf(st, &status, "RPUSH %s %s", k_q, text));
    free(text);
    return status;
}

int store_build_result(struct store *st, int64_t build_id, json_t **out)
{
    char key[KEY_MAX];
    store_key(st, key, "build:result:%lld", (long long)build_id);
    return get_json(st, key, out);
}

static const char CANCEL_LUA[] =
    "if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 2 end\n"
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('SADD', KEYS[3], ARGV[1])\n"
    "return 1\n";

int store_request_cancel(struct store *st, int64_t id, bool *finished)
{
    char k_live[KEY_MAX], k_dead[KEY_MAX], k_cancels[KEY_MAX], sid[32];
    store_key(st, k_live, "jobs:live");
    store_key(st, k_dead, "jobs:dead");
    store_key(st, k_cancels, "cancels");
    snprintf(sid, sizeof sid, "%lld", (long long)id);
    int status;
    redisReply *r = store_cmdf(st, &status, "EVAL %s 3 %s %s %s %s", CANCEL_LUA, k_live, k_dead,
                               k_cancels, sid);
    if (!r)
        return status;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    *finished = v == 2;
    return v == 1 ? STORE_OK : STORE_NOT_FOUND;
}

int store_cancel_requested(struct store *st, int64_t id, bool *requested)
{
    char key[KEY_MAX];
    store_key(st, key, "cancels");
    int status;
    redisReply *r = store_cmdf(st, &status, "SISMEMBER %s %lld", key, (long long)id);
    if (!r)
        return status;
    *requested = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return STORE_OK;
}

int store_want_partial(struct store *st, int64_t id, int ttl_s)
{
    char key[KEY_MAX];
    store_key(st, key, "partial:want:%lld", (long long)id);
    int status;
    freeReplyObject(store_cmdf(st, &status, "SET %s 1 EX %d", key, ttl_s));
    return status;
}

int store_partial_wanted(struct store *st, const int64_t *ids, size_t n, bool *wanted)
{
    for (size_t done = 0; done < n;) {
        struct store_batch b = {0};
        size_t chunk = n - done < BATCH_MAX ? n - done : BATCH_MAX;
        for (size_t i = 0; i < chunk; i++) {
            char key[KEY_MAX];
            store_key(st, key, "partial:want:%lld", (long long)ids[done + i]);
            batch_add(&b, "EXISTS %s", key);
        }
        int status;
        redisReply *r = store_batch_run(st, &b, false, &status);
        if (!r)
            return status;
        for (size_t i = 0; i < chunk; i++)
            wanted[done + i] = r->element[i]->type == REDIS_REPLY_INTEGER &&
                               r->element[i]->integer == 1;
        freeReplyObject(r);
        done += chunk;
    }
    return STORE_OK;
}
