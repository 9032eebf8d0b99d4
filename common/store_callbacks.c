/*
 * store_callbacks.c: the consumer's queues besides jobs: callbacks (claimed
 * and hidden for at-least-once delivery, due times on Redis's clock),
 * image builds queued by producers, and cancellation requests.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_callback_claim(struct store *st, int hide_ms, json_t **cb, char **member)
{
    char hide[32];
    snprintf(hide, sizeof hide, "%d", hide_ms);
    const char *args[] = {hide};
    int status;
    size_t len = 0;
    status = store_reply_text(store_fcall(st, &status, "callback_claim", 1, args), &status,
                              member, &len);
    if (status != STORE_OK)
        return status;
    *cb = json_loadb(*member, len, 0, NULL);
    if (!*cb) {
        /* Unreadable entry: drop it rather than loop on it forever. */
        store_callback_give_up(st, *member);
        free(*member);
        *member = NULL;
        return STORE_NOT_FOUND;
    }
    return STORE_OK;
}

int store_callback_done(struct store *st, const char *member)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_CALLBACKS_DUE);
    int status;
    freeReplyObject(store_cmdf(st, &status, "ZREM %s %s", key, member));
    return status;
}

int store_callback_retry(struct store *st, const char *member, const json_t *cb,
                         long long delay_ms)
{
    char *text = json_dumps(cb, JSON_COMPACT | JSON_SORT_KEYS);
    char delay[32];
    snprintf(delay, sizeof delay, "%lld", delay_ms);
    const char *args[] = {member, text, delay};
    int status;
    freeReplyObject(store_fcall(st, &status, "callback_retry", 3, args));
    free(text);
    return status;
}

int store_callback_give_up(struct store *st, const char *member)
{
    char due[KEY_MAX], failed[KEY_MAX];
    store_key(st, due, KEY_CALLBACKS_DUE);
    store_key(st, failed, KEY_CALLBACKS_FAILED);
    struct store_batch b = {0};
    batch_add(&b, "ZREM %s %s", due, member);
    batch_add(&b, "RPUSH %s %s", failed, member);
    int status;
    freeReplyObject(store_batch_run(st, &b, true, &status));
    return status;
}

int store_callback_wait(struct store *st, int timeout_ms)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_CALLBACKS_WAKE);
    int status;
    redisReply *r = store_cmdf(st, &status, "BLPOP %s %.3f", key, timeout_ms / 1000.0);
    freeReplyObject(r);
    if (status == STORE_OK) /* one wake-up covers every callback queued so far */
        freeReplyObject(store_cmdf(st, &status, "DEL %s", key));
    return status;
}

int store_next_build(struct store *st, json_t **build)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_BUILDS_QUEUE);
    int status;
    return store_reply_json(store_cmdf(st, &status, "LPOP %s", key), &status, build);
}

int store_set_build_result(struct store *st, int64_t build_id, bool ok, const char *message)
{
    char key[KEY_MAX];
    store_keyf(st, key, KEY_BUILD_RESULT, "%lld", (long long)build_id);
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
    store_key(st, key, KEY_CANCELS);
    int status;
    return store_id_array(store_cmdf(st, &status, "SRANDMEMBER %s %lld", key, (long long)max),
                          &status, ids, n);
}

int store_cancel_forget(struct store *st, int64_t id)
{
    return store_key_id_cmd(st, "SREM", KEY_CANCELS, id);
}
