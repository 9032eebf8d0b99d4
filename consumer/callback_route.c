/*
 * callback_route.c: where a claimed callback entry goes (callback_sender.h).
 * Its host (callback_breaker.h) decides: sent now (after the callback
 * policy judged the address the host resolves to, which is then pinned),
 * parked here for the host's next free slot (at most callback_max_per_host
 * per host, and never more than the free room in flight), or deferred:
 * back to Redis with a later due time, no attempt counted (a full host's
 * overflow, or an open breaker: until it half-opens).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callback_allow.h"
#include "callback_breaker.h"
#include "callback_sender.h"
#include "clock.h"
#include "log.h"

/* Starts the request for a claimed entry the host admitted, putting t in a
 * free slot. Returns 0, or -1 with err (t untouched but for its request). */
static int start(struct sender *s, struct transfer *t, const char *url, const char *pin,
                 const char *path, const char *name, char *err, size_t errlen)
{
    const struct tango_config *cfg = s->c->cfg;
    struct cb_request_spec spec = {
        .url = url, .pin = pin, .path = path, .name = name, .job = t->job,
        .id = json_string_value(json_object_get(t->cb, "id")), .attempt = t->attempts + 1,
        .connect_timeout_ms = cfg->callback_connect_timeout_ms,
        .timeout_ms = cfg->callback_timeout_s * 1000L};
    int slot = 0;
    while (slot < s->nslots && s->slots[slot])
        slot++;
    if (slot == s->nslots || cb_request_init(&t->req, &spec, err, errlen) != 0 ||
        curl_multi_add_handle(s->multi, t->req.easy) != CURLM_OK) {
        if (err[0] == '\0')
            snprintf(err, errlen, "cannot start the request");
        cb_request_free(&t->req);
        return -1;
    }
    s->slots[slot] = t;
    s->in_flight++;
    return 0;
}

/* The host cannot take the entry now: back to Redis, due again later. */
static void defer(struct sender *s, struct transfer *t, long long delay_ms)
{
    store_callback_retry(s->st, t->member, t->cb, delay_ms);
    log_debug("callback_deferred", "id=%lld host=%s in_ms=%lld", t->job, t->key, delay_ms);
}

/* Sends a claimed entry whose host admitted it: judged by the policy on
 * the resolved address, then started, or its attempt fails. Takes t. */
static void launch(struct sender *s, struct transfer *t)
{
    const char *url = json_string_value(json_object_get(t->cb, "url"));
    const char *path = json_string_value(json_object_get(t->cb, "path"));
    const char *name = json_string_value(json_object_get(t->cb, "name"));
    char err[400] = "", pin[CALLBACK_PIN_MAX] = "";
    int judged = callback_resolve(s->policy, url, pin, err, sizeof err);
    if (judged == 0 && start(s, t, url, pin, path, name, err, sizeof err) == 0)
        return; /* in flight: its slot owns t now */
    breakers_release(s->hosts, t->key); /* never sent: not the host's doing */
    sender_failed(s, t, judged < 0, err);
    transfer_free(t);
}

/* Parks t until its host frees a slot; false if the host has as many
 * parked as it may have in flight (or nowhere is left). */
static bool park(struct sender *s, struct transfer *t)
{
    int same = 0;
    for (int i = 0; i < s->nparked; i++)
        same += strcmp(s->parked[i]->key, t->key) == 0;
    if (same >= s->c->cfg->callback_max_per_host || s->in_flight + s->nparked >= s->nslots)
        return false;
    s->parked[s->nparked++] = t;
    return true;
}

/* Asks t's host whether t may go now: launched, parked, or deferred.
 * Takes t. */
static void admit(struct sender *s, struct transfer *t)
{
    long long until = 0, now = clock_mono_ms();
    enum breaker_verdict v = breakers_admit(s->hosts, t->key, now, &until);
    if (v == BREAKER_SEND) {
        launch(s, t);
    } else if (!(v == BREAKER_FULL && park(s, t))) {
        defer(s, t, until > now ? until - now : 1);
        transfer_free(t);
    }
}

/* Its parked entries, oldest first, go while the host takes them (an
 * opened breaker sends them all back to Redis). */
void sender_unpark(struct sender *s, const char *key)
{
    int i = 0;
    while (i < s->nparked) {
        struct transfer *t = s->parked[i];
        if (strcmp(t->key, key) != 0) {
            i++;
            continue;
        }
        memmove(&s->parked[i], &s->parked[i + 1], (size_t)(s->nparked - i - 1) * sizeof t);
        s->nparked--;
        long long until = 0, now = clock_mono_ms();
        enum breaker_verdict v = breakers_admit(s->hosts, key, now, &until);
        if (v == BREAKER_SEND) {
            launch(s, t);
            continue;
        }
        if (v == BREAKER_FULL) { /* back where it was: the next freed slot is its */
            memmove(&s->parked[i + 1], &s->parked[i], (size_t)(s->nparked - i) * sizeof t);
            s->parked[i] = t;
            s->nparked++;
            return;
        }
        defer(s, t, until > now ? until - now : 1);
        transfer_free(t);
    }
}

/* An entry that cannot be sent fails its attempt; else its host decides
 * (before any DNS lookup). */
void sender_dispatch(struct sender *s, struct transfer *t)
{
    const char *url = json_string_value(json_object_get(t->cb, "url"));
    const char *path = json_string_value(json_object_get(t->cb, "path"));
    const char *name = json_string_value(json_object_get(t->cb, "name"));
    cb_url_hosts(url ? url : "", t->host, sizeof t->host, t->key, sizeof t->key);
    if (!s->policy || !url || !path || !name) {
        const char *err = !s->policy ? "config callback_allow is not valid: no callback is sent"
                                     : "the callback entry lacks its url, path or name";
        sender_failed(s, t, s->policy != NULL, err);
        transfer_free(t);
        return;
    }
    admit(s, t);
}

void sender_return_parked(struct sender *s)
{
    for (int i = 0; i < s->nparked; i++) {
        defer(s, s->parked[i], 0);
        transfer_free(s->parked[i]);
    }
    s->nparked = 0;
}
