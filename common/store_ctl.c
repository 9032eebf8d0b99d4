/*
 * store_ctl.c: the operator's side of the store (tangoctl) and what the
 * consumers publish for it: consumer heartbeats (consumers,
 * consumers:seen:<token>), the control keys (control:paused: lease
 * nothing new; control:drain: the named consumer drains and exits), the
 * counts and lists `tangoctl status` shows, a back end's outage as the
 * consumers report it (backend:down:<vmms>, also read by /health), moving given-up callbacks back
 * to the due set, pruning the dead history, and the once-only claim of a
 * requeue (jobs:requeued). No job changes state here:
 * requeue and cancel go through the store's existing calls (add, the
 * cancellation request) like every other client.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_CHUNK 500

/* Copies a string reply into buf (len bytes); false if r is not a string. */
static bool reply_str(const redisReply *r, char *buf, size_t len)
{
    if (!r || r->type != REDIS_REPLY_STRING)
        return false;
    snprintf(buf, len, "%.*s", (int)r->len, r->str);
    return true;
}

int store_consumer_beat(struct store *st, const char *token, const json_t *info, int ttl_ms,
                        struct store_control *ctl)
{
    char k_seen[KEY_MAX], k_set[KEY_MAX], k_paused[KEY_MAX], k_drain[KEY_MAX];
    store_keyf(st, k_seen, KEY_CONSUMER_SEEN, "%s", token);
    store_key(st, k_set, KEY_CONSUMERS);
    store_key(st, k_paused, KEY_PAUSED);
    store_key(st, k_drain, KEY_DRAIN);
    char *text = json_dumps(info, JSON_COMPACT);
    struct store_batch b = {0};
    batch_add(&b, "SET %s %s PX %d", k_seen, text ? text : "{}", ttl_ms);
    batch_add(&b, "SADD %s %s", k_set, token);
    batch_add(&b, "EXISTS %s", k_paused);
    batch_add(&b, "GET %s", k_drain);
    free(text);
    int status;
    redisReply *r = store_batch_run(st, &b, false, &status);
    if (!r)
        return status;
    char drain[64] = "";
    ctl->paused = r->element[2]->type == REDIS_REPLY_INTEGER && r->element[2]->integer == 1;
    ctl->drain = reply_str(r->element[3], drain, sizeof drain) && strcmp(drain, token) == 0;
    freeReplyObject(r);
    return STORE_OK;
}

/* Deletes KEYS[1] when it holds ARGV[1] (a drain request for this token). */
static const char DEL_IF_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

int store_consumer_gone(struct store *st, const char *token)
{
    char k_seen[KEY_MAX], k_set[KEY_MAX], k_drain[KEY_MAX];
    store_keyf(st, k_seen, KEY_CONSUMER_SEEN, "%s", token);
    store_key(st, k_set, KEY_CONSUMERS);
    store_key(st, k_drain, KEY_DRAIN);
    struct store_batch b = {0};
    batch_add(&b, "DEL %s", k_seen);
    batch_add(&b, "SREM %s %s", k_set, token);
    batch_add(&b, "EVAL %s 1 %s %s", DEL_IF_LUA, k_drain, token);
    int status;
    freeReplyObject(store_batch_run(st, &b, false, &status));
    return status;
}

int store_consumers(struct store *st, json_t **out)
{
    char k_set[KEY_MAX];
    store_key(st, k_set, KEY_CONSUMERS);
    int status;
    redisReply *tokens = store_cmdf(st, &status, "SMEMBERS %s", k_set);
    if (!tokens)
        return status;
    json_t *list = json_array();
    for (size_t i = 0; i < tokens->elements; i += BATCH_MAX / 2) {
        struct store_batch b = {0};
        size_t n = tokens->elements - i < BATCH_MAX / 2 ? tokens->elements - i : BATCH_MAX / 2;
        for (size_t j = 0; j < n; j++) {
            char key[KEY_MAX];
            store_keyf(st, key, KEY_CONSUMER_SEEN, "%s", tokens->element[i + j]->str);
            batch_add(&b, "GET %s", key);
            batch_add(&b, "PTTL %s", key);
        }
        redisReply *r = store_batch_run(st, &b, false, &status);
        if (!r) {
            freeReplyObject(tokens);
            json_decref(list);
            return status;
        }
        for (size_t j = 0; j < n; j++) {
            redisReply *v = r->element[2 * j], *ttl = r->element[2 * j + 1];
            json_t *o = v->type == REDIS_REPLY_STRING ? json_loadb(v->str, v->len, 0, NULL)
                                                      : NULL;
            if (!json_is_object(o)) {
                json_decref(o);
                /* expired (or unreadable): forget the token */
                freeReplyObject(store_cmdf(st, &status, "SREM %s %s", k_set,
                                           tokens->element[i + j]->str));
                continue;
            }
            json_object_set_new(o, "ttlMs", json_integer(ttl->integer));
            json_array_append_new(list, o);
        }
        freeReplyObject(r);
    }
    freeReplyObject(tokens);
    *out = list;
    return STORE_OK;
}

int store_leader(struct store *st, char *token, size_t len, long long *ttl_ms)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_LEADER);
    struct store_batch b = {0};
    batch_add(&b, "GET %s", key);
    batch_add(&b, "PTTL %s", key);
    int status;
    redisReply *r = store_batch_run(st, &b, false, &status);
    if (!r)
        return status;
    status = reply_str(r->element[0], token, len) ? STORE_OK : STORE_NOT_FOUND;
    *ttl_ms = r->element[1]->integer;
    freeReplyObject(r);
    return status;
}

int store_set_paused(struct store *st, const json_t *info, bool *was)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_PAUSED);
    int status;
    redisReply *r;
    if (info) {
        char *text = json_dumps(info, JSON_COMPACT);
        /* GET: the old value, so the caller can tell it was paused already */
        r = store_cmdf(st, &status, "SET %s %s GET", key, text ? text : "{}");
        free(text);
        if (r && was)
            *was = r->type == REDIS_REPLY_STRING;
    } else {
        r = store_cmdf(st, &status, "DEL %s", key);
        if (r && was)
            *was = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    }
    freeReplyObject(r);
    return r ? STORE_OK : status;
}

/* *info: the JSON object key holds (text that is not one counts as an
 * empty object: set by hand, it still means what its existence means).
 * STORE_NOT_FOUND: no such key. */
static int get_json_key(struct store *st, const char *key, json_t **info)
{
    int status;
    char *text = NULL;
    size_t len = 0;
    status = store_reply_text(store_cmdf(st, &status, "GET %s", key), &status, &text, &len);
    if (status != STORE_OK)
        return status;
    *info = json_loadb(text, len, 0, NULL);
    if (!json_is_object(*info)) {
        json_decref(*info);
        *info = json_object();
    }
    free(text);
    return STORE_OK;
}

int store_paused(struct store *st, json_t **info)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_PAUSED);
    return get_json_key(st, key, info);
}

int store_set_backend_down(struct store *st, const char *vmms, const json_t *info, int ttl_ms)
{
    char key[KEY_MAX];
    store_keyf(st, key, KEY_BACKEND_DOWN, "%s", vmms);
    int status;
    if (info) {
        char *text = json_dumps(info, JSON_COMPACT);
        freeReplyObject(store_cmdf(st, &status, "SET %s %s PX %d", key, text ? text : "{}",
                                   ttl_ms));
        free(text);
    } else {
        freeReplyObject(store_cmdf(st, &status, "DEL %s", key));
    }
    return status;
}

int store_backend_down(struct store *st, const char *vmms, json_t **info)
{
    char key[KEY_MAX];
    store_keyf(st, key, KEY_BACKEND_DOWN, "%s", vmms);
    return get_json_key(st, key, info);
}

int store_request_drain(struct store *st, const char *token, int ttl_s)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_DRAIN);
    int status;
    freeReplyObject(store_cmdf(st, &status, "SET %s %s EX %d", key, token, ttl_s));
    return status;
}

int store_drain_requested(struct store *st, char *token, size_t len)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_DRAIN);
    int status;
    redisReply *r = store_cmdf(st, &status, "GET %s", key);
    if (!r)
        return status;
    status = reply_str(r, token, len) ? STORE_OK : STORE_NOT_FOUND;
    freeReplyObject(r);
    return status;
}

int store_overview(struct store *st, struct store_overview *out)
{
    static const struct {
        enum store_key_id k;
        const char *cmd;
    } counts[] = {
        {KEY_QUEUE_LEASED, "LLEN"}, {KEY_JOBS_LIVE, "HLEN"},       {KEY_JOBS_DEAD, "HLEN"},
        {KEY_DEADLETTER, "HLEN"},   {KEY_CANCELS, "SCARD"},        {KEY_CALLBACKS_DUE, "ZCARD"},
        {KEY_CALLBACKS_FAILED, "LLEN"},
    };
    long long *dst[] = {&out->leased,  &out->live,          &out->dead,
                        &out->deadletter, &out->cancels, &out->callbacks_due,
                        &out->callbacks_failed};
    size_t n = sizeof counts / sizeof *counts;
    struct store_batch b = {0};
    char key[KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        store_key(st, key, counts[i].k);
        batch_add(&b, "%s %s", counts[i].cmd, key);
    }
    int status;
    redisReply *r = store_batch_run(st, &b, false, &status);
    if (!r)
        return status;
    for (size_t i = 0; i < n; i++)
        *dst[i] = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer : 0;
    freeReplyObject(r);
    return STORE_OK;
}

int store_job_lease(struct store *st, int64_t id, char *owner, size_t len, long long *left_ms)
{
    char k_owner[KEY_MAX], k_leases[KEY_MAX];
    store_key(st, k_owner, KEY_LEASE_OWNER);
    store_key(st, k_leases, KEY_LEASES);
    struct store_batch b = {0};
    batch_add(&b, "HGET %s %lld", k_owner, (long long)id);
    batch_add(&b, "ZSCORE %s %lld", k_leases, (long long)id);
    batch_add(&b, "TIME"); /* expiries are Redis time */
    int status;
    redisReply *r = store_batch_run(st, &b, false, &status);
    if (!r)
        return status;
    status = reply_str(r->element[0], owner, len) ? STORE_OK : STORE_NOT_FOUND;
    redisReply *t = r->element[2];
    long long now_ms = t->type == REDIS_REPLY_ARRAY && t->elements == 2
                           ? atoll(t->element[0]->str) * 1000 + atoll(t->element[1]->str) / 1000
                           : 0;
    *left_ms = r->element[1]->type == REDIS_REPLY_STRING ? atoll(r->element[1]->str) - now_ms
                                                          : 0;
    freeReplyObject(r);
    return status;
}

int store_leased_jobs(struct store *st, size_t max, json_t **out)
{
    char k_leased[KEY_MAX];
    store_key(st, k_leased, KEY_QUEUE_LEASED);
    int status;
    int64_t *ids = NULL;
    size_t n = 0;
    status = store_id_array(store_cmdf(st, &status, "LRANGE %s 0 %lld", k_leased,
                                       (long long)max - 1),
                            &status, &ids, &n);
    if (status != STORE_OK)
        return status;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *rec = NULL;
        bool dead = false;
        if (store_get_job(st, ids[i], &rec, &dead) != STORE_OK || dead) {
            json_decref(rec);
            continue;
        }
        char owner[64];
        long long left = 0;
        if (store_job_lease(st, ids[i], owner, sizeof owner, &left) == STORE_OK)
            json_object_set_new(rec, "lease", json_pack("{s:s, s:I}", "owner", owner,
                                                        "expiresInMs", (json_int_t)left));
        json_array_append_new(list, rec);
    }
    free(ids);
    *out = list;
    return STORE_OK;
}

int store_deadletter_raw(struct store *st, int64_t id, char **raw)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_DEADLETTER);
    int status;
    return store_reply_text(store_cmdf(st, &status, "HGET %s %lld", key, (long long)id), &status,
                            raw, NULL);
}

/* KEYS: callbacks:failed, callbacks:due, callbacks:wake; ARGV: pairs (the
 * entry as it is in callbacks:failed, the entry to queue). An entry moves
 * only if it is still in callbacks:failed, so each moves exactly once. */
static const char CALLBACKS_REQUEUE_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local n = 0\n"
    "for i = 1, #ARGV - 1, 2 do\n"
    "  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then\n"
    "    redis.call('ZADD', KEYS[2], now, ARGV[i + 1])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "if n > 0 then redis.call('RPUSH', KEYS[3], 'retry') end\n"
    "return n\n";

int store_callbacks_requeue(struct store *st, size_t *moved, size_t *unreadable)
{
    char k_failed[KEY_MAX], k_due[KEY_MAX], k_wake[KEY_MAX];
    store_key(st, k_failed, KEY_CALLBACKS_FAILED);
    store_key(st, k_due, KEY_CALLBACKS_DUE);
    store_key(st, k_wake, KEY_CALLBACKS_WAKE);
    *moved = *unreadable = 0;
    int status;
    redisReply *list = store_cmdf(st, &status, "LRANGE %s 0 -1", k_failed);
    if (!list)
        return status;
    /* argv: EVAL script 3 keys... then (old, new) pairs */
    size_t cap = 6 + 2 * list->elements;
    const char **argv = calloc(cap, sizeof *argv);
    size_t *lens = calloc(cap, sizeof *lens);
    char **fresh = calloc(list->elements + 1, sizeof *fresh);
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = CALLBACKS_REQUEUE_LUA;
    argv[argc++] = "3";
    argv[argc++] = k_failed;
    argv[argc++] = k_due;
    argv[argc++] = k_wake;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    size_t nfresh = 0;
    for (size_t i = 0; i < list->elements; i++) {
        redisReply *e = list->element[i];
        json_t *cb = e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, NULL) : NULL;
        if (!json_is_object(cb)) {
            json_decref(cb);
            (*unreadable)++;
            continue;
        }
        /* the consumer's own form (callback.c): compact, sorted keys */
        json_object_set_new(cb, "attempts", json_integer(0));
        fresh[nfresh] = json_dumps(cb, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(cb);
        argv[argc] = e->str;
        lens[argc++] = e->len;
        argv[argc] = fresh[nfresh];
        lens[argc++] = strlen(fresh[nfresh++]);
    }
    if (nfresh > 0) {
        redisReply *r = store_cmd(st, &status, argc, argv, lens);
        if (r && r->type == REDIS_REPLY_INTEGER)
            *moved = (size_t)r->integer;
        freeReplyObject(r);
    } else {
        status = STORE_OK;
    }
    for (size_t i = 0; i < nfresh; i++)
        free(fresh[i]);
    free(fresh);
    free(argv);
    free(lens);
    freeReplyObject(list);
    return status;
}

/* When a dead record's job was created (unix s): createdAt, else the time
 * of its first trace line (a dead-letter stub), else 0 (unknown: kept). */
static double dead_created(const json_t *rec)
{
    double t = json_number_value(json_object_get(rec, "createdAt"));
    if (t > 0)
        return t;
    const char *line = json_string_value(json_array_get(json_object_get(rec, "trace"), 0));
    struct tm tm = {0};
    if (!line || !strptime(line, "%a %b %e %H:%M:%S %Y", &tm))
        return 0;
    tm.tm_isdst = -1;
    time_t when = mktime(&tm); /* job_ctime writes local time */
    return when > 0 ? (double)when : 0;
}

/* HMGET key with the n ids: one reply element per id (nil when absent). */
static redisReply *hmget_ids(struct store *st, int *status, const char *key, const int64_t *ids,
                             size_t n)
{
    const char **argv = calloc(n + 2, sizeof *argv);
    size_t *lens = calloc(n + 2, sizeof *lens);
    char (*num)[24] = calloc(n, sizeof *num);
    argv[0] = "HMGET";
    argv[1] = key;
    for (size_t i = 0; i < n; i++) {
        snprintf(num[i], sizeof num[i], "%lld", (long long)ids[i]);
        argv[i + 2] = num[i];
    }
    for (size_t i = 0; i < n + 2; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = store_cmd(st, status, (int)n + 2, argv, lens);
    free(num);
    free(argv);
    free(lens);
    return r;
}

int store_prune_dead(struct store *st, double cutoff, size_t *pruned, size_t *kept)
{
    char k_ids[KEY_MAX], k_dead[KEY_MAX], k_dl[KEY_MAX], k_rq[KEY_MAX];
    store_key(st, k_ids, KEY_JOBS_DEAD_IDS);
    store_key(st, k_dead, KEY_JOBS_DEAD);
    store_key(st, k_dl, KEY_DEADLETTER);
    store_key(st, k_rq, KEY_REQUEUED);
    *pruned = *kept = 0;
    int status;
    int64_t *ids = NULL;
    size_t n = 0;
    status = store_id_array(store_cmdf(st, &status, "ZRANGE %s 0 -1", k_ids), &status, &ids, &n);
    for (size_t i = 0; status == STORE_OK && i < n; i += LIST_CHUNK) {
        size_t m = n - i < LIST_CHUNK ? n - i : LIST_CHUNK;
        redisReply *recs = hmget_ids(st, &status, k_dead, ids + i, m);
        if (!recs)
            break;
        for (size_t j = 0; j < m && status == STORE_OK; j++) {
            redisReply *e = j < recs->elements ? recs->element[j] : NULL;
            json_t *rec = e && e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, NULL)
                                                             : NULL;
            double created = dead_created(rec);
            bool gone = e && e->type == REDIS_REPLY_NIL; /* trimmed: only its id is left */
            json_decref(rec);
            /* unknown age (unreadable record, no time) is kept */
            if (!gone && (created <= 0 || created >= cutoff)) {
                (*kept)++;
                continue;
            }
            struct store_batch b = {0};
            batch_add(&b, "HDEL %s %lld", k_dead, (long long)ids[i + j]);
            batch_add(&b, "ZREM %s %lld", k_ids, (long long)ids[i + j]);
            batch_add(&b, "HDEL %s %lld", k_dl, (long long)ids[i + j]);
            batch_add(&b, "HDEL %s %lld", k_rq, (long long)ids[i + j]);
            freeReplyObject(store_batch_run(st, &b, true, &status));
            if (status == STORE_OK)
                (*pruned)++;
        }
        freeReplyObject(recs);
    }
    free(ids);
    return status;
}

/* HSETNX (or, forced, HSET) of ARGV[1] -> 0; returns the value that was
 * there ('' when none) and whether the claim is now the caller's. */
static const char REQUEUE_CLAIM_LUA[] =
    "local prior = redis.call('HGET', KEYS[1], ARGV[1]) or ''\n"
    "if prior ~= '' and ARGV[2] ~= '1' then return {prior, 0} end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], '0')\n"
    "return {prior, 1}\n";

int store_requeue_claim(struct store *st, int64_t old_id, bool force, int64_t *prior)
{
    char k_rq[KEY_MAX];
    store_key(st, k_rq, KEY_REQUEUED);
    int status;
    redisReply *r = store_cmdf(st, &status, "EVAL %s 1 %s %lld %s", REQUEUE_CLAIM_LUA, k_rq,
                               (long long)old_id, force ? "1" : "0");
    if (!r)
        return status;
    status = STORE_ERROR;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        const char *was = r->element[0]->str;
        long long v = was[0] ? strtoll(was, NULL, 10) : 0;
        *prior = !was[0] ? 0 : v > 0 ? v : -1;
        status = STORE_OK;
    }
    freeReplyObject(r);
    return status;
}

int store_requeue_record(struct store *st, int64_t old_id, int64_t new_id)
{
    char k_rq[KEY_MAX];
    store_key(st, k_rq, KEY_REQUEUED);
    int status;
    freeReplyObject(store_cmdf(st, &status, "HSET %s %lld %lld", k_rq, (long long)old_id,
                               (long long)new_id));
    return status;
}

int store_requeue_release(struct store *st, int64_t old_id, int64_t prior)
{
    if (prior > 0)
        return store_requeue_record(st, old_id, prior);
    return store_key_id_cmd(st, "HDEL", KEY_REQUEUED, old_id);
}
