/*
 * callback.c: delivering job callbacks. Each finished job with a callback
 * URL leaves an entry in Redis (queued atomically with the job's move to
 * dead). This thread claims due entries and sends several at once through
 * one libcurl multi handle (the request itself: callback_request.h); on
 * failure it reschedules with exponential backoff; after callback_attempts
 * the entry moves to callbacks:failed for an operator. A claimed entry is
 * only hidden, never removed, until delivered: a crash means a resend,
 * never a loss (the request headers let a receiver drop the repeat).
 *
 * Limits, so that one slow or hanging receiver holds back no other: at most
 * callback_max_in_flight callbacks in flight, at most callback_max_per_host
 * to one host:port, and a circuit breaker per host (callback_breaker.h). An
 * entry for a full host waits here (parked, still claimed) for the host's
 * next free slot, up to callback_max_per_host of them per host; beyond
 * that, or when the host's breaker is open, it goes back to Redis with a
 * later due time, without counting as an attempt.
 *
 * Before each attempt the URL's host is resolved and judged by the callback
 * policy (callback_allow.h); the connection is pinned to the address judged
 * (CURLOPT_RESOLVE), proxies are off and redirects are not followed, so
 * neither DNS rebinding nor a redirect reaches an address the policy
 * refuses. A refused callback is given up at once (retrying cannot help).
 *
 * A second small thread blocks on callbacks:wake and wakes the sender when
 * a job queues a callback, so new callbacks start at once even while others
 * are in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "callback_allow.h"
#include "callback_breaker.h"
#include "callback_request.h"
#include "clock.h"
#include "consumer.h"
#include "log.h"
#include "store_metrics.h"

#define BACKOFF_CAP_MS (10 * 60 * 1000)
#define WAKE_MS 200          /* due retries are looked for at least this often */

/* One callback in flight. */
struct transfer {
    struct cb_request req;
    json_t *cb;
    char *member;            /* the entry's text in callbacks:due */
    char host[256];          /* for logs */
    char key[320];           /* host:port, for the per-host limits */
    long long job;
    int attempts;            /* failed attempts before this one */
};

struct sender {
    struct consumer *c;
    struct store *st;
    CURLM *multi;
    struct callback_policy *policy;
    struct breakers *hosts;
    struct transfer **slots; /* callback_max_in_flight of them, NULL when free */
    int nslots, in_flight;
    struct transfer **parked; /* claimed, waiting for their host: oldest first */
    int nparked;
    int hide_ms;
    atomic_bool wake;        /* the waker saw a callback queued */
    pthread_t waker;
    bool waker_started;
};

/* ---------- the outcome of an attempt ---------- */

/* After a failed attempt: retry later with backoff, or give up (out of
 * attempts, or hopeless). Takes neither cb nor member. */
static void attempt_failed(struct sender *s, json_t *cb, const char *member, long long job,
                           const char *host, int attempts, bool hopeless, const char *err)
{
    const struct tango_config *cfg = s->c->cfg;
    attempts++;
    store_incr_counter(s->st, COUNTER_CALLBACK_FAILURES, 1);
    if (hopeless || attempts >= cfg->callback_attempts) {
        store_callback_give_up(s->st, member);
        store_incr_counter(s->st, COUNTER_CALLBACKS_GIVEN_UP, 1);
        log_error("callback_given_up", "id=%lld host=%s attempts=%d error=\"%s\"", job, host,
                  attempts, err);
        return;
    }
    long long delay = cfg->callback_backoff_ms;
    for (int i = 1; i < attempts && delay < BACKOFF_CAP_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_CAP_MS)
        delay = BACKOFF_CAP_MS;
    json_object_set_new(cb, "attempts", json_integer(attempts));
    store_callback_retry(s->st, member, cb, delay);
    log_warn("callback_failed", "id=%lld host=%s attempts=%d retry_in_ms=%lld error=\"%s\"", job,
             host, attempts, delay, err);
}

/* Counts the outcome against the host's breaker, logging when it opens
 * or closes. */
static void judge_host(struct sender *s, const struct transfer *t, bool ok)
{
    int change = breakers_finish(s->hosts, t->key, ok, clock_mono_ms());
    if (change > 0)
        log_warn("callback_host_open", "host=%s open_s=%d: its callbacks wait, none is lost",
                 t->key, s->c->cfg->callback_breaker_open_s);
    else if (change < 0)
        log_info("callback_host_closed", "host=%s: callbacks to it resume", t->key);
}

static void transfer_free(struct transfer *t)
{
    cb_request_free(&t->req);
    json_decref(t->cb);
    free(t->member);
    free(t);
}

/* A transfer ended (rc from libcurl): settles its entry in Redis. */
static void transfer_done(struct sender *s, struct transfer *t, CURLcode rc)
{
    char err[400] = "";
    bool ok = cb_request_result(&t->req, rc, err, sizeof err) == 0;
    judge_host(s, t, ok);
    if (ok) {
        store_callback_done(s->st, t->member);
        store_incr_counter(s->st, COUNTER_CALLBACKS_DELIVERED, 1);
        log_info("callback_sent", "id=%lld host=%s attempts=%d", t->job, t->host,
                 t->attempts + 1);
    } else {
        attempt_failed(s, t->cb, t->member, t->job, t->host, t->attempts, false, err);
    }
}

/* ---------- starting claimed entries ---------- */

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

/* Frees a claimed entry's transfer that never started. */
static void drop(struct transfer *t)
{
    json_decref(t->cb);
    free(t->member);
    free(t);
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
    attempt_failed(s, t->cb, t->member, t->job, t->host, t->attempts, judged < 0, err);
    drop(t);
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
        drop(t);
    }
}

/* A slot of host key freed: its parked entries, oldest first, go while
 * the host takes them (an opened breaker sends them all back to Redis). */
static void unpark(struct sender *s, const char *key)
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
        drop(t);
    }
}

/* One claimed entry (the transfer holds it): an entry that cannot be sent
 * fails its attempt; else its host decides (before any DNS lookup). Takes
 * t. */
static void dispatch(struct sender *s, struct transfer *t)
{
    const char *url = json_string_value(json_object_get(t->cb, "url"));
    const char *path = json_string_value(json_object_get(t->cb, "path"));
    const char *name = json_string_value(json_object_get(t->cb, "name"));
    cb_url_hosts(url ? url : "", t->host, sizeof t->host, t->key, sizeof t->key);
    if (!s->policy || !url || !path || !name) {
        const char *err = !s->policy ? "config callback_allow is not valid: no callback is sent"
                                     : "the callback entry lacks its url, path or name";
        attempt_failed(s, t->cb, t->member, t->job, t->host, t->attempts, s->policy != NULL, err);
        drop(t);
        return;
    }
    admit(s, t);
}

/* Settles every transfer libcurl reports finished. */
static void reap(struct sender *s)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(s->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = msg->data.result;
        CURL *easy = msg->easy_handle;
        curl_multi_remove_handle(s->multi, easy);
        for (int i = 0; i < s->nslots; i++) {
            struct transfer *t = s->slots[i];
            if (t && t->req.easy == easy) {
                char key[sizeof t->key];
                snprintf(key, sizeof key, "%s", t->key);
                transfer_done(s, t, rc);
                transfer_free(t);
                s->slots[i] = NULL;
                s->in_flight--;
                unpark(s, key);
                break;
            }
        }
    }
}

/* Claims due entries while there is room in flight (at most a few rounds
 * of deferrals, so that a backlog for full hosts cannot keep the loop
 * here). */
static void fill(struct sender *s)
{
    int budget = s->nslots * 4;
    while (s->in_flight + s->nparked < s->nslots && budget-- > 0 &&
           !atomic_load(&s->c->stopping)) {
        json_t *cb = NULL;
        char *member = NULL;
        if (store_callback_claim(s->st, s->hide_ms, &cb, &member) != STORE_OK)
            return; /* nothing due, or Redis is away: the next round looks again */
        struct transfer *t = calloc(1, sizeof *t);
        if (!t) {
            json_decref(cb);
            free(member);
            return; /* stays hidden, then due again */
        }
        t->cb = cb;
        t->member = member;
        t->job = json_integer_value(json_object_get(cb, "job"));
        t->attempts = (int)json_integer_value(json_object_get(cb, "attempts"));
        dispatch(s, t);
    }
}

/* ---------- the threads ---------- */

/* Waker: blocks on callbacks:wake and wakes the sender's poll. */
static void *waker_main(void *arg)
{
    struct sender *s = arg;
    struct store *st = store_new(s->c->cfg);
    while (!atomic_load(&s->c->stopping)) {
        if (store_callback_wait(st, WAKE_MS) != STORE_OK) {
            clock_sleep_ms(WAKE_MS);
            continue;
        }
        atomic_store(&s->wake, true);
        curl_multi_wakeup(s->multi);
    }
    store_free(st);
    return NULL;
}

static void sender_close(struct sender *s)
{
    if (s->waker_started)
        pthread_join(s->waker, NULL);
    for (int i = 0; s->slots && i < s->nslots; i++) {
        if (!s->slots[i])
            continue; /* abandoned: its entry stays hidden, then is sent again */
        curl_multi_remove_handle(s->multi, s->slots[i]->req.easy);
        transfer_free(s->slots[i]);
    }
    free(s->slots);
    for (int i = 0; i < s->nparked; i++)
        drop(s->parked[i]); /* stays hidden, then is sent again */
    free(s->parked);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    breakers_free(s->hosts);
    callback_policy_free(s->policy);
    store_free(s->st);
}

static int sender_open(struct sender *s, struct consumer *c)
{
    const struct tango_config *cfg = c->cfg;
    memset(s, 0, sizeof *s);
    s->c = c;
    s->st = store_new(cfg);
    s->nslots = cfg->callback_max_in_flight;
    s->slots = calloc((size_t)s->nslots, sizeof *s->slots);
    s->parked = calloc((size_t)s->nslots, sizeof *s->parked);
    s->multi = curl_multi_init();
    s->hosts = breakers_new(cfg->callback_max_per_host, cfg->callback_breaker_failures,
                            cfg->callback_breaker_open_s * 1000LL);
    /* hidden long enough for one whole attempt, with room to settle it */
    s->hide_ms = (cfg->callback_timeout_s * 2 + 5) * 1000;
    char perr[300];
    if (callback_policy_new(cfg->callback_allow, cfg->ncallback_allow, &s->policy, perr,
                            sizeof perr))
        log_error("callback_policy_invalid", "error=\"%s\"", perr); /* every attempt fails */
    if (!s->slots || !s->parked || !s->multi || !s->hosts)
        return -1;
    s->waker_started = pthread_create(&s->waker, NULL, waker_main, s) == 0;
    return s->waker_started ? 0 : -1;
}

/* One round: claim what fits (when woken, or every WAKE_MS), move the
 * transfers on, settle the finished ones, then wait for the sockets, the
 * waker or WAKE_MS. */
static void round_once(struct sender *s, long long *next_fill)
{
    long long now = clock_mono_ms();
    bool woken = atomic_exchange(&s->wake, false);
    if (atomic_load(&s->c->leader) && (woken || now >= *next_fill)) {
        fill(s);
        *next_fill = now + WAKE_MS;
    }
    int running = 0;
    curl_multi_perform(s->multi, &running);
    int before = s->in_flight;
    reap(s);
    if (s->in_flight < before)
        atomic_store(&s->wake, true); /* room again: look for more at once */
    metrics_callbacks(s->c, s->in_flight, breakers_open_hosts(s->hosts, clock_mono_ms()));
    if (!atomic_load(&s->wake))
        curl_multi_poll(s->multi, NULL, 0, WAKE_MS, NULL);
}

void *callback_main(void *arg)
{
    struct consumer *c = arg;
    struct sender s;
    if (sender_open(&s, c) != 0) {
        log_error("callback_sender_failed", "error=\"out of memory or threads\": no callbacks "
                                            "are sent by this consumer");
        sender_close(&s);
        return NULL;
    }
    long long next_fill = 0;
    while (!atomic_load(&c->stopping))
        round_once(&s, &next_fill);
    sender_close(&s);
    return NULL;
}
