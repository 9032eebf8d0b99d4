/*
 * store_consumer.c: the consumer's half of the Redis store: the leader
 * lease, job leases, and the atomic job transitions (save, requeue, finish)
 * as Lua scripts that first check the caller still owns the job. Key names
 * are the ones listed in store.h.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include "clock.h"

/* Runs a Lua script with nkeys key suffixes (prefixed here) and string args. */
static redisReply *run_script(struct store *st, int *status, const char *script,
                              int nkeys, const char *const *keys, int nargs,
                              const char *const *args)
{
    int argc = 3 + nkeys + nargs;
    const char **argv = calloc((size_t)argc, sizeof *argv);
    size_t *lens = calloc((size_t)argc, sizeof *lens);
    char (*full)[KEY_MAX] = calloc((size_t)nkeys + 1, KEY_MAX);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++) {
        store_key(st, full[i], "%s", keys[i]);
        argv[3 + i] = full[i];
    }
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = store_cmd(st, status, argc, argv, lens);
    free(argv);
    free(lens);
    free(full);
    return r;
}

/* Runs a script whose reply is an integer; returns status, *result gets it. */
static int script_int(struct store *st, const char *script, int nkeys, const char *const *keys,
                      int nargs, const char *const *args, long long *result)
{
    int status;
    redisReply *r = run_script(st, &status, script, nkeys, keys, nargs, args);
    if (!r)
        return status;
    *result = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return STORE_OK;
}

static const char LEADER_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end\n"
    "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end\n"
    "return 0\n";

int store_leader_acquire(struct store *st, const char *token, int lease_ms, bool *leader)
{
    char ms[32];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    const char *keys[] = {"consumer:leader"};
    const char *args[] = {token, ms};
    long long r = 0;
    int status = script_int(st, LEADER_LUA, 1, keys, 2, args, &r);
    *leader = status == STORE_OK && r == 1;
    return status;
}

int store_leader_release(struct store *st, const char *token)
{
    static const char lua[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
        "return 0\n";
    const char *keys[] = {"consumer:leader"};
    const char *args[] = {token};
    long long r;
    return script_int(st, lua, 1, keys, 1, args, &r);
}

static const char ADOPT_LUA[] =
    "local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
    "local owner = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if exp and owner and owner ~= ARGV[2] and tonumber(exp) > tonumber(ARGV[3]) then return 0 end\n"
    "redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "return 1\n";

int store_lease_adopt(struct store *st, const char *token, int64_t id, int lease_ms, bool *taken)
{
    char sid[32], now[32], exp[32];
    long long t = clock_wall_ms();
    snprintf(sid, sizeof sid, "%lld", (long long)id);
    snprintf(now, sizeof now, "%lld", t);
    snprintf(exp, sizeof exp, "%lld", t + lease_ms);
    const char *keys[] = {"leases", "lease:owner"};
    const char *args[] = {sid, token, now, exp};
    long long r = 0;
    int status = script_int(st, ADOPT_LUA, 2, keys, 4, args, &r);
    *taken = status == STORE_OK && r == 1;
    return status;
}

int store_lease_next(struct store *st, const char *token, int lease_ms, int block_ms,
                     int64_t *id)
{
    char k_pending[KEY_MAX], k_leased[KEY_MAX];
    store_key(st, k_pending, "queue:pending");
    store_key(st, k_leased, "queue:leased");
    int status;
    redisReply *r;
    *id = 0;
    if (block_ms > 0)
        r = store_cmdf(st, &status, "BLMOVE %s %s LEFT RIGHT %.3f", k_pending, k_leased,
                       block_ms / 1000.0);
    else
        r = store_cmdf(st, &status, "LMOVE %s %s LEFT RIGHT", k_pending, k_leased);
    if (!r)
        return status;
    if (r->type == REDIS_REPLY_STRING)
        *id = atoll(r->str);
    freeReplyObject(r);
    if (*id <= 0)
        return STORE_OK;
    bool taken;
    /* A crash right here leaves the id leased without a lease: recovery
     * (store_leased_ids + store_lease_adopt) picks it up. */
    return store_lease_adopt(st, token, *id, lease_ms, &taken);
}

int store_lease_renew(struct store *st, const int64_t *ids, size_t n, int lease_ms)
{
    if (n == 0)
        return STORE_OK;
    char key[KEY_MAX];
    store_key(st, key, "leases");
    long long exp = clock_wall_ms() + lease_ms;
    size_t argc = 3 + 2 * n;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    char (*nums)[24] = calloc(2 * n + 1, 24);
    argv[0] = "ZADD";
    argv[1] = key;
    argv[2] = "XX";
    for (size_t i = 0; i < n; i++) {
        snprintf(nums[2 * i], 24, "%lld", exp);
        snprintf(nums[2 * i + 1], 24, "%lld", (long long)ids[i]);
        argv[3 + 2 * i] = nums[2 * i];
        argv[4 + 2 * i] = nums[2 * i + 1];
    }
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    int status;
    freeReplyObject(store_cmd(st, &status, (int)argc, argv, lens));
    free(argv);
    free(lens);
    free(nums);
    return status;
}

/* Turns an array reply of job ids into a malloc'd array (frees the reply).
 * r NULL: the command failed with status. */
static int ids_reply(redisReply *r, int status, int64_t **ids, size_t *n)
{
    if (!r)
        return status;
    *ids = calloc(r->elements + 1, sizeof **ids);
    *n = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            (*ids)[(*n)++] = atoll(r->element[i]->str);
    freeReplyObject(r);
    return STORE_OK;
}

int store_leased_ids(struct store *st, size_t max, int64_t **ids, size_t *n)
{
    char key[KEY_MAX];
    store_key(st, key, "queue:leased");
    int status;
    return ids_reply(store_cmdf(st, &status, "LRANGE %s 0 %lld", key, (long long)max - 1),
                     status, ids, n);
}

int store_job_load(struct store *st, int64_t id, struct job **job)
{
    char key[KEY_MAX];
    store_key(st, key, "jobs:live");
    int status;
    redisReply *r = store_cmdf(st, &status, "HGET %s %lld", key, (long long)id);
    if (!r)
        return status;
    status = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_STRING) {
        *job = job_loads(r->str, st->err, sizeof st->err);
        status = *job ? STORE_OK : STORE_ERROR;
    }
    freeReplyObject(r);
    return status;
}

/* Runs a script that changes a job this consumer owns. Its arguments are
 * the job id, the owner token, the job's JSON, then extra; it returns 1 when
 * it did the change, else 0 (the token does not own the job). */
static int owned_job_script(struct store *st, const char *script, int nkeys,
                            const char *const *keys, const char *token, const struct job *job,
                            const char *const *extra, int nextra)
{
    char sid[32];
    snprintf(sid, sizeof sid, "%lld", (long long)job->id);
    char *text = job_dumps(job);
    if (!text) {
        snprintf(st->err, sizeof st->err, "job record cannot be serialized");
        return STORE_ERROR;
    }
    const char **args = calloc((size_t)nextra + 3, sizeof *args);
    args[0] = sid;
    args[1] = token;
    args[2] = text;
    for (int i = 0; i < nextra; i++)
        args[3 + i] = extra[i];
    long long r = 0;
    int status = script_int(st, script, nkeys, keys, nextra + 3, args, &r);
    free(args);
    free(text);
    if (status == STORE_OK && r != 1)
        return STORE_NOT_FOUND;
    return status;
}

static const char SAVE_LUA[] =
    "if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end\n"
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
    "return 1\n";

int store_job_save(struct store *st, const char *token, const struct job *job)
{
    const char *keys[] = {"jobs:live", "lease:owner"};
    return owned_job_script(st, SAVE_LUA, 2, keys, token, job, NULL, 0);
}

static const char REQUEUE_LUA[] =
    "if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end\n"
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then\n"
    "  redis.call('LREM', KEYS[2], 0, ARGV[1])\n"
    "  redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[4], ARGV[1])\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
    "redis.call('LREM', KEYS[2], 0, ARGV[1])\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "redis.call('HDEL', KEYS[4], ARGV[1])\n"
    "redis.call('LPUSH', KEYS[5], ARGV[1])\n"
    "redis.call('DEL', KEYS[7] .. ARGV[1])\n"
    "if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[6], 'job_retries', 1) end\n"
    "return 1\n";

int store_job_requeue(struct store *st, const char *token, const struct job *job,
                      bool count_retry)
{
    const char *keys[] = {"jobs:live", "queue:leased", "leases", "lease:owner",
                          "queue:pending", "counters", "partial:"};
    const char *extra[] = {count_retry ? "1" : "0"};
    return owned_job_script(st, REQUEUE_LUA, 7, keys, token, job, extra, 1);
}

static const char FINISH_LUA[] =
    "local id = ARGV[1]\n"
    "if redis.call('HGET', KEYS[7], id) ~= ARGV[2] then return 0 end\n"
    "if redis.call('HEXISTS', KEYS[1], id) == 0 then return 0 end\n"
    "redis.call('HDEL', KEYS[1], id)\n"
    "redis.call('ZREM', KEYS[2], id)\n"
    "redis.call('HSET', KEYS[3], id, ARGV[3])\n"
    "redis.call('ZADD', KEYS[4], id, id)\n"
    "redis.call('LREM', KEYS[5], 0, id)\n"
    "redis.call('ZREM', KEYS[6], id)\n"
    "redis.call('HDEL', KEYS[7], id)\n"
    "redis.call('DEL', KEYS[10] .. id)\n"
    "redis.call('SREM', KEYS[11], id)\n"
    "local n = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[4])\n"
    "if n > 0 then\n"
    "  for _, old in ipairs(redis.call('ZRANGE', KEYS[4], 0, n - 1)) do\n"
    "    redis.call('HDEL', KEYS[3], old)\n"
    "  end\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, n - 1)\n"
    "end\n"
    "if ARGV[5] ~= '' then\n"
    "  redis.call('ZADD', KEYS[9], ARGV[6], ARGV[5])\n"
    "  redis.call('RPUSH', KEYS[12], id)\n"
    "end\n"
    "for i = 7, #ARGV do redis.call('HINCRBY', KEYS[8], ARGV[i], 1) end\n"
    "return 1\n";

int store_job_finish(struct store *st, const char *token, const struct job *job,
                     const char *const *counters, size_t ncounters, const json_t *callback)
{
    char keep[32], due[32];
    snprintf(keep, sizeof keep, "%d", st->dead_keep);
    snprintf(due, sizeof due, "%lld", clock_wall_ms());
    char *cb = callback ? json_dumps(callback, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    const char *keys[] = {"jobs:live", "jobs:live:ids", "jobs:dead", "jobs:dead:ids",
                          "queue:leased", "leases", "lease:owner", "counters",
                          "callbacks:due", "partial:", "cancels", "callbacks:wake"};
    const char **extra = calloc(3 + ncounters, sizeof *extra);
    extra[0] = keep;
    extra[1] = cb ? cb : "";
    extra[2] = due;
    for (size_t i = 0; i < ncounters; i++)
        extra[3 + i] = counters[i];
    int status = owned_job_script(st, FINISH_LUA, 12, keys, token, job, extra, 3 + (int)ncounters);
    free(extra);
    free(cb);
    return status;
}

static const char CLAIM_LUA[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)\n"
    "if #due == 0 then return false end\n"
    "redis.call('ZADD', KEYS[1], ARGV[2], due[1])\n"
    "return due[1]\n";

int store_callback_claim(struct store *st, int hide_ms, json_t **cb, char **member)
{
    char now[32], hide[32];
    long long t = clock_wall_ms();
    snprintf(now, sizeof now, "%lld", t);
    snprintf(hide, sizeof hide, "%lld", t + hide_ms);
    const char *keys[] = {"callbacks:due"};
    const char *args[] = {now, hide};
    int status;
    redisReply *r = run_script(st, &status, CLAIM_LUA, 1, keys, 2, args);
    if (!r)
        return status;
    status = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_STRING) {
        *cb = json_loadb(r->str, r->len, 0, NULL);
        *member = strndup(r->str, r->len);
        status = STORE_OK;
        if (!*cb) {
            /* Unreadable entry: drop it rather than loop on it forever. */
            store_callback_give_up(st, *member);
            free(*member);
            *member = NULL;
            status = STORE_NOT_FOUND;
        }
    }
    freeReplyObject(r);
    return status;
}

int store_callback_done(struct store *st, const char *member)
{
    char key[KEY_MAX];
    store_key(st, key, "callbacks:due");
    int status;
    freeReplyObject(store_cmdf(st, &status, "ZREM %s %s", key, member));
    return status;
}

int store_callback_retry(struct store *st, const char *member, const json_t *cb,
                         long long due_ms)
{
    char key[KEY_MAX];
    store_key(st, key, "callbacks:due");
    char *text = json_dumps(cb, JSON_COMPACT | JSON_SORT_KEYS);
    struct store_batch b = {0};
    batch_add(&b, "ZREM %s %s", key, member);
    batch_add(&b, "ZADD %s %lld %s", key, due_ms, text);
    free(text);
    int status;
    freeReplyObject(store_batch_run(st, &b, true, &status));
    return status;
}

int store_callback_give_up(struct store *st, const char *member)
{
    char due[KEY_MAX], failed[KEY_MAX];
    store_key(st, due, "callbacks:due");
    store_key(st, failed, "callbacks:failed");
    struct store_batch b = {0};
    batch_add(&b, "ZREM %s %s", due, member);
    batch_add(&b, "RPUSH %s %s", failed, member);
    int status;
    freeReplyObject(store_batch_run(st, &b, true, &status));
    return status;
}

int store_next_build(struct store *st, json_t **build)
{
    char key[KEY_MAX];
    store_key(st, key, "builds:queue");
    int status;
    redisReply *r = store_cmdf(st, &status, "LPOP %s", key);
    if (!r)
        return status;
    status = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_STRING) {
        *build = json_loadb(r->str, r->len, 0, NULL);
        status = *build ? STORE_OK : STORE_ERROR;
    }
    freeReplyObject(r);
    return status;
}

int store_set_build_result(struct store *st, int64_t build_id, bool ok, const char *message)
{
    char key[KEY_MAX];
    store_key(st, key, "build:result:%lld", (long long)build_id);
    json_t *doc = json_pack("{s:b, s:s}", "ok", ok, "message", message ? message : "");
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    int status;
    freeReplyObject(store_cmdf(st, &status, "SET %s %s EX 3600", key, text));
    free(text);
    return status;
}

int store_cancel_requests(struct store *st, size_t max, int64_t **ids, size_t *n)
{
    char key[KEY_MAX];
    store_key(st, key, "cancels");
    int status;
    return ids_reply(store_cmdf(st, &status, "SRANDMEMBER %s %lld", key, (long long)max),
                     status, ids, n);
}

int store_cancel_forget(struct store *st, int64_t id)
{
    char key[KEY_MAX];
    store_key(st, key, "cancels");
    int status;
    freeReplyObject(store_cmdf(st, &status, "SREM %s %lld", key, (long long)id));
    return status;
}

static const char LEASE_SPECIFIC_LUA[] =
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "redis.call('RPUSH', KEYS[2], ARGV[1])\n"
    "redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])\n"
    "redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])\n"
    "return 1\n";

int store_lease_specific(struct store *st, const char *token, int64_t id, int lease_ms,
                         bool *taken)
{
    char sid[32], exp[32];
    snprintf(sid, sizeof sid, "%lld", (long long)id);
    snprintf(exp, sizeof exp, "%lld", clock_wall_ms() + lease_ms);
    const char *keys[] = {"queue:pending", "queue:leased", "leases", "lease:owner"};
    const char *args[] = {sid, token, exp};
    long long r = 0;
    int status = script_int(st, LEASE_SPECIFIC_LUA, 4, keys, 3, args, &r);
    *taken = status == STORE_OK && r == 1;
    return status;
}

int store_callback_wait(struct store *st, int timeout_ms)
{
    char key[KEY_MAX];
    store_key(st, key, "callbacks:wake");
    int status;
    redisReply *r = store_cmdf(st, &status, "BLPOP %s %.3f", key, timeout_ms / 1000.0);
    freeReplyObject(r);
    if (status == STORE_OK) /* one wake-up covers every callback queued so far */
        freeReplyObject(store_cmdf(st, &status, "DEL %s", key));
    return status;
}
