/*
 * store_queries.c: the producer's side of the store: job lists and lookups,
 * queue positions and queue statistics (read-only library functions),
 * cancellation requests, lab file hashes, /info counters, images, pools,
 * partial output and image builds. Key names come from keys.h; no job state
 * changes here (those are store_lifecycle.c's).
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keys.h"

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
    store_key(st, k_ids, dead ? KEY_JOBS_DEAD_IDS : KEY_JOBS_LIVE_IDS);
    store_key(st, k_hash, dead ? KEY_JOBS_DEAD : KEY_JOBS_LIVE);
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
    store_key(st, k_live, KEY_JOBS_LIVE);
    store_key(st, k_dead, KEY_JOBS_DEAD);
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
    char sid[32];
    snprintf(sid, sizeof sid, "%lld", (long long)id);
    const char *args[] = {sid};
    int status;
    redisReply *r = store_fcall(st, &status, "position", 1, args);
    if (!r)
        return status;
    *pos = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return STORE_OK;
}

static long long reply_ll(const redisReply *e)
{
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    return e->type == REDIS_REPLY_STRING ? atoll(e->str) : 0;
}

int store_queue_stats(struct store *st, struct store_queue_stat **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int status;
    redisReply *r = store_fcall(st, &status, "queue_stats", 0, NULL);
    if (!r)
        return status;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        snprintf(st->err, sizeof st->err, "unexpected queue_stats reply");
        return STORE_ERROR;
    }
    if (r->elements)
        *out = calloc(r->elements, sizeof **out);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *row = r->element[i];
        if (row->type != REDIS_REPLY_ARRAY || row->elements != 5 ||
            row->element[0]->type != REDIS_REPLY_STRING ||
            row->element[1]->type != REDIS_REPLY_STRING)
            continue;
        struct store_queue_stat *q = &(*out)[(*n)++];
        snprintf(q->klass, sizeof q->klass, "%s", row->element[0]->str);
        snprintf(q->group, sizeof q->group, "%s", row->element[1]->str);
        q->length = reply_ll(row->element[2]);
        q->oldest_enqueued_ms = reply_ll(row->element[3]);
        q->running = reply_ll(row->element[4]);
    }
    freeReplyObject(r);
    if (*n == 0) {
        free(*out);
        *out = NULL;
    }
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
    store_keyf(st, key, KEY_LAB_FILES, "%s:files", lab_dir);
    return hash_to_json(st, key, false, out);
}

int store_lab_file_md5(struct store *st, const char *lab_dir, const char *name, char md5[33])
{
    char key[KEY_MAX];
    store_keyf(st, key, KEY_LAB_FILES, "%s:files", lab_dir);
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
    store_keyf(st, key, KEY_LAB_FILES, "%s:files", lab_dir);
    int status;
    freeReplyObject(store_cmdf(st, &status, "HSET %s %s %s", key, name, md5));
    return status;
}

int store_mark_started(struct store *st)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_STARTED);
    int status;
    freeReplyObject(store_cmdf(st, &status, "SET %s %lld NX", key, (long long)time(NULL)));
    return status;
}

int store_incr_counter(struct store *st, const char *name, long long by)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_COUNTERS);
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
    store_key(st, k_cnt, KEY_COUNTERS);
    store_key(st, k_started, KEY_STARTED);
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
    return store_reply_json(store_cmdf(st, &status, "GET %s", key), &status, out);
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
    store_key(st, key, KEY_IMAGES);
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
    store_key(st, key, KEY_IMAGES);
    json_t *doc = json_pack("{s:O, s:I}", "images", images, "updatedAt", (json_int_t)time(NULL));
    int status = set_json(st, key, doc, 0);
    json_decref(doc);
    return status;
}

int store_claim_image(struct store *st, const char *image, const char *key_id, char *owner,
                      size_t ownerlen)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_IMAGE_OWNERS);
    struct store_batch b = {0};
    batch_add(&b, "HSETNX %s %s %s", key, image, key_id);
    batch_add(&b, "HGET %s %s", key, image);
    int status;
    redisReply *r = store_batch_run(st, &b, true, &status);
    if (!r)
        return status;
    redisReply *got = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1] : NULL;
    if (got && got->type == REDIS_REPLY_STRING)
        snprintf(owner, ownerlen, "%.*s", (int)got->len, got->str);
    else
        status = STORE_ERROR;
    freeReplyObject(r);
    return status;
}

int store_image_owners(struct store *st, json_t **out)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_IMAGE_OWNERS);
    return hash_to_json(st, key, false, out);
}

int store_set_pool_wanted(struct store *st, const char *image, const json_t *spec)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_POOLS_WANTED);
    return hset_json(st, key, image, spec);
}

int store_pools_wanted(struct store *st, json_t **out)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_POOLS_WANTED);
    return hash_to_json(st, key, true, out);
}

int store_set_pool_state(struct store *st, const char *image, const json_t *state)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_POOLS_STATE);
    return hset_json(st, key, image, state);
}

int store_pools(struct store *st, json_t **out)
{
    char key[KEY_MAX];
    json_t *wanted = NULL, *state = NULL;
    int status = store_pools_wanted(st, &wanted);
    if (status != STORE_OK)
        return status;
    store_key(st, key, KEY_POOLS_STATE);
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
    store_keyf(st, key, KEY_PARTIAL, "%lld", (long long)id);
    int status;
    return store_reply_text(store_cmdf(st, &status, "GET %s", key), &status, out, len);
}

int store_set_partial_output(struct store *st, int64_t id, const char *data, size_t len,
                             int ttl_s)
{
    char key[KEY_MAX];
    store_keyf(st, key, KEY_PARTIAL, "%lld", (long long)id);
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
    store_key(st, k_last, KEY_BUILD_LASTID);
    store_key(st, k_q, KEY_BUILDS_QUEUE);
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
    store_keyf(st, key, KEY_BUILD_RESULT, "%lld", (long long)build_id);
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
    store_key(st, k_live, KEY_JOBS_LIVE);
    store_key(st, k_dead, KEY_JOBS_DEAD);
    store_key(st, k_cancels, KEY_CANCELS);
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
    store_key(st, key, KEY_CANCELS);
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
    store_keyf(st, key, KEY_PARTIAL_WANT, "%lld", (long long)id);
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
            store_keyf(st, key, KEY_PARTIAL_WANT, "%lld", (long long)ids[done + i]);
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
