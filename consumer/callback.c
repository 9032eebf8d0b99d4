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
 * entry for a full host waits (parked, still claimed) for the host's next
 * free slot, or goes back to Redis with a later due time, without counting
 * as an attempt (callback_route.c); so does one whose host's breaker is
 * open. Outcomes: callback_outcome.c.
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
#include "callback_sender.h"
#include "clock.h"
#include "log.h"

#define WAKE_MS 200          /* due retries are looked for at least this often */
#define STOP_GRACE_MS 5000   /* what a stopping sender gives callbacks in flight */

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
                sender_settle(s, t, rc);
                transfer_free(t);
                s->slots[i] = NULL;
                s->in_flight--;
                sender_unpark(s, key);
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
        sender_dispatch(s, t);
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

/* Stopping: parked entries go back to Redis, and callbacks in flight get
 * up to STOP_GRACE_MS (at most callback_timeout_s) to end and be settled.
 * One still going then is abandoned: its entry stays hidden and is sent
 * again after the hide time (the receiver may get it twice). */
static void sender_drain(struct sender *s)
{
    sender_return_parked(s);
    long long grace = s->c->cfg->callback_timeout_s * 1000LL;
    long long end = clock_mono_ms() + (grace < STOP_GRACE_MS ? grace : STOP_GRACE_MS);
    while (s->in_flight > 0 && clock_mono_ms() < end) {
        int running = 0;
        curl_multi_perform(s->multi, &running);
        reap(s);
        if (s->in_flight > 0)
            curl_multi_poll(s->multi, NULL, 0, 100, NULL);
    }
    if (s->in_flight > 0)
        log_warn("callback_abandoned", "in_flight=%d resent_after_s=%d", s->in_flight,
                 s->hide_ms / 1000);
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
        transfer_free(s->parked[i]); /* stays hidden, then is sent again */
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
        log_error("callback_sender_failed",
                  "error=\"out of memory or threads: this consumer sends no callbacks\"");
        sender_close(&s);
        return NULL;
    }
    long long next_fill = 0;
    while (!atomic_load(&c->stopping))
        round_once(&s, &next_fill);
    sender_drain(&s);
    sender_close(&s);
    return NULL;
}
