/*
 * store_builds.c: the Redis side of Dockerfile builds (/build_image): the
 * records (imgbuilds), the queue builders take from (imgbuilds:queue) and
 * who is building what (imgbuilds:running, id -> consumer token). Every
 * state change is one Lua script, so a build is in exactly one place: a
 * consumer that dies mid-build leaves its id in imgbuilds:running with a
 * token whose heartbeat (consumers:seen:<token>) lapses, and
 * store_build_recover puts it back in the queue (or fails it, clearly).
 * Ended builds are noted in imgbuilds:ended; past STORE_BUILDS_KEEP the
 * oldest records are dropped, so the hash stays bounded.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

/* Lua: id ended; the oldest ended records past keep go (z: the ended
 * zset, r: the records hash). Prepended to the scripts that end builds. */
#define ENDED_LUA                                                             \
    "local function ended(z, r, id, keep)\n"                                  \
    "  redis.call('ZADD', z, id, id)\n"                                       \
    "  local extra = redis.call('ZCARD', z) - keep\n"                         \
    "  if extra > 0 then\n"                                                  \
    "    local gone = redis.call('ZPOPMIN', z, extra)\n"                      \
    "    for i = 1, #gone, 2 do redis.call('HDEL', r, gone[i]) end\n"         \
    "  end\n"                                                                \
    "end\n"

static const char TAKE_LUA[] =
    "if redis.call('EXISTS', ARGV[2]) == 0 then return false end\n"
    "local id = redis.call('LPOP', KEYS[1])\n"
    "while id do\n"
    "  local t = redis.call('HGET', KEYS[2], id)\n"
    "  if t then\n"
    "    local r = cjson.decode(t)\n"
    "    if r.state == 'queued' then\n"
    "      r.state = 'running'; r.message = 'building'; r.attempts = (r.attempts or 0) + 1\n"
    "      r.consumer = string.sub(ARGV[1], 1, 8)\n"
    "      local s = cjson.encode(r)\n"
    "      redis.call('HSET', KEYS[2], id, s)\n"
    "      redis.call('HSET', KEYS[3], id, ARGV[1])\n"
    "      return s\n"
    "    end\n"
    "  end\n"
    "  id = redis.call('LPOP', KEYS[1])\n"
    "end\n"
    "return false\n";

static const char FINISH_LUA[] = ENDED_LUA
    "if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end\n"
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "local t = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not t then return 1 end\n"
    "local r = cjson.decode(t)\n"
    "r.state = ARGV[3]; r.statusId = tonumber(ARGV[4]); r.message = ARGV[5]; r.log = ARGV[6]\n"
    "if ARGV[8] ~= '' then r.imageRef = ARGV[8] end\n"
    "local digest = string.match(ARGV[8], '@(sha256:%x+)$')\n"
    "if digest and type(r.keyId) == 'string' then\n"
    "  redis.call('SADD', ARGV[9] .. r.keyId, digest)\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(r))\n"
    "ended(KEYS[3], KEYS[1], ARGV[1], tonumber(ARGV[7]))\n"
    "return 1\n";

static const char RECOVER_LUA[] = ENDED_LUA
    "local n = 0\n"
    "local all = redis.call('HGETALL', KEYS[2])\n"
    "for i = 1, #all, 2 do\n"
    "  local id, tok = all[i], all[i + 1]\n"
    "  if redis.call('EXISTS', ARGV[1] .. tok) == 0 then\n"
    "    redis.call('HDEL', KEYS[2], id)\n"
    "    local t = redis.call('HGET', KEYS[1], id)\n"
    "    if t then\n"
    "      local r = cjson.decode(t)\n"
    "      if (r.attempts or 0) >= tonumber(ARGV[2]) then\n"
    "        r.state = 'failed'; r.statusId = -3\n"
    "        r.message = 'lost: the consumer building it stopped ' .. r.attempts ..\n"
    "                    ' times; not tried again'\n"
    "        ended(KEYS[4], KEYS[1], id, tonumber(ARGV[3]))\n"
    "      else\n"
    "        r.state = 'queued'; r.statusId = 1\n"
    "        r.message = 'queued again: the consumer building it stopped'\n"
    "        redis.call('LPUSH', KEYS[3], id)\n"
    "      end\n"
    "      redis.call('HSET', KEYS[1], id, cjson.encode(r))\n"
    "      n = n + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char DECIDE_LUA[] = ENDED_LUA
    "local t = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not t then return 0 end\n"
    "local r = cjson.decode(t)\n"
    "if r.state ~= 'waiting' then return -1 end\n"
    "if ARGV[2] == '1' then\n"
    "  r.state = 'queued'; r.message = 'approved'\n"
    "  redis.call('RPUSH', KEYS[2], ARGV[1])\n"
    "else\n"
    "  r.state = 'failed'; r.statusId = -2; r.message = 'rejected by an operator'\n"
    "  ended(KEYS[3], KEYS[1], ARGV[1], tonumber(ARGV[3]))\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(r))\n"
    "return 1\n";

int store_build_add(struct store *st, json_t *rec, bool queue, int64_t *id)
{
    char k_last[KEY_MAX], k_recs[KEY_MAX], k_q[KEY_MAX];
    store_key(st, k_last, KEY_BUILD_LASTID);
    store_key(st, k_recs, KEY_IMGBUILDS);
    store_key(st, k_q, KEY_IMGBUILDS_QUEUE);
    int status;
    redisReply *r = store_cmdf(st, &status, "INCR %s", k_last);
    if (!r)
        return status;
    *id = r->integer;
    freeReplyObject(r);
    json_object_set_new(rec, "id", json_integer(*id));
    char *text = json_dumps(rec, JSON_COMPACT);
    if (!text)
        return STORE_ERROR;
    struct store_batch b = {0};
    batch_add(&b, "HSET %s %lld %s", k_recs, (long long)*id, text);
    if (queue)
        batch_add(&b, "RPUSH %s %lld", k_q, (long long)*id);
    free(text);
    freeReplyObject(store_batch_run(st, &b, true, &status));
    return status;
}

int store_build_get(struct store *st, int64_t id, json_t **out)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_IMGBUILDS);
    int status;
    return store_reply_json(store_cmdf(st, &status, "HGET %s %lld", key, (long long)id), &status,
                            out);
}

int store_build_all(struct store *st, json_t **out)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_IMGBUILDS);
    int status;
    redisReply *r = store_cmdf(st, &status, "HVALS %s", key);
    if (!r)
        return status;
    json_t *list = json_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        json_t *rec = json_loadb(r->element[i]->str, r->element[i]->len, 0, NULL);
        if (json_is_object(rec))
            json_array_append(list, rec);
        json_decref(rec);
    }
    freeReplyObject(r);
    *out = list;
    return STORE_OK;
}

int store_pushed_digests(struct store *st, const char *key_id, json_t **out)
{
    char key[KEY_MAX];
    store_keyf(st, key, KEY_IMGBUILDS_DIGESTS, "%s", key_id);
    int status;
    redisReply *r = store_cmdf(st, &status, "SMEMBERS %s", key);
    if (!r)
        return status;
    json_t *list = json_array();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            json_array_append_new(list, json_stringn(r->element[i]->str, r->element[i]->len));
    freeReplyObject(r);
    *out = list;
    return STORE_OK;
}

int store_build_take(struct store *st, const char *token, json_t **out)
{
    char k_q[KEY_MAX], k_recs[KEY_MAX], k_run[KEY_MAX], k_seen[KEY_MAX];
    store_key(st, k_q, KEY_IMGBUILDS_QUEUE);
    store_key(st, k_recs, KEY_IMGBUILDS);
    store_key(st, k_run, KEY_IMGBUILDS_RUNNING);
    store_keyf(st, k_seen, KEY_CONSUMER_SEEN, "%s", token);
    int status;
    return store_reply_json(store_cmdf(st, &status, "EVAL %s 3 %s %s %s %s %s", TAKE_LUA, k_q,
                                       k_recs, k_run, token, k_seen),
                            &status, out);
}

int store_build_finish(struct store *st, int64_t id, const char *token, const char *state,
                       int status_id, const char *message, const char *log,
                       const char *image_ref, bool *stale)
{
    char k_recs[KEY_MAX], k_run[KEY_MAX], k_end[KEY_MAX], k_dig[KEY_MAX];
    store_key(st, k_recs, KEY_IMGBUILDS);
    store_key(st, k_run, KEY_IMGBUILDS_RUNNING);
    store_key(st, k_end, KEY_IMGBUILDS_ENDED);
    store_key(st, k_dig, KEY_IMGBUILDS_DIGESTS);
    int status;
    redisReply *r = store_cmdf(st, &status, "EVAL %s 3 %s %s %s %lld %s %s %d %s %s %d %s %s",
                               FINISH_LUA, k_recs, k_run, k_end, (long long)id, token, state,
                               status_id, message, log, STORE_BUILDS_KEEP,
                               image_ref ? image_ref : "", k_dig);
    if (!r)
        return status;
    *stale = r->type != REDIS_REPLY_INTEGER || r->integer != 1;
    freeReplyObject(r);
    return STORE_OK;
}

int store_build_recover(struct store *st, long long *n)
{
    char k_recs[KEY_MAX], k_run[KEY_MAX], k_q[KEY_MAX], k_end[KEY_MAX], k_seen[KEY_MAX];
    store_key(st, k_recs, KEY_IMGBUILDS);
    store_key(st, k_run, KEY_IMGBUILDS_RUNNING);
    store_key(st, k_q, KEY_IMGBUILDS_QUEUE);
    store_key(st, k_end, KEY_IMGBUILDS_ENDED);
    store_key(st, k_seen, KEY_CONSUMER_SEEN);
    int status;
    redisReply *r = store_cmdf(st, &status, "EVAL %s 4 %s %s %s %s %s %d %d", RECOVER_LUA, k_recs,
                               k_run, k_q, k_end, k_seen, STORE_BUILD_MAX_ATTEMPTS,
                               STORE_BUILDS_KEEP);
    if (!r)
        return status;
    *n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return STORE_OK;
}

int store_build_decide(struct store *st, int64_t id, bool approve, long long *result)
{
    char k_recs[KEY_MAX], k_q[KEY_MAX], k_end[KEY_MAX];
    store_key(st, k_recs, KEY_IMGBUILDS);
    store_key(st, k_q, KEY_IMGBUILDS_QUEUE);
    store_key(st, k_end, KEY_IMGBUILDS_ENDED);
    int status;
    redisReply *r = store_cmdf(st, &status, "EVAL %s 3 %s %s %s %lld %s %d", DECIDE_LUA, k_recs,
                               k_q, k_end, (long long)id, approve ? "1" : "0", STORE_BUILDS_KEEP);
    if (!r)
        return status;
    *result = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return STORE_OK;
}
