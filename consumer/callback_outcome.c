/*
 * callback_outcome.c: the end of a callback attempt (callback_sender.h):
 * delivered (removed from callbacks:due), failed (due again after an
 * exponential backoff, capped at 10 min, with its attempt counted) or given
 * up (moved to callbacks:failed), the counters, the log lines, and the
 * host's breaker told.
 */
#include <stdio.h>
#include <stdlib.h>

#include "callback_breaker.h"
#include "callback_sender.h"
#include "clock.h"
#include "log.h"
#include "store_metrics.h"

#define BACKOFF_CAP_MS (10 * 60 * 1000)

void sender_failed(struct sender *s, struct transfer *t, bool hopeless, const char *err)
{
    const struct tango_config *cfg = s->c->cfg;
    const char *member = t->member, *host = t->host;
    long long job = t->job;
    int attempts = t->attempts + 1;
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
    json_object_set_new(t->cb, "attempts", json_integer(attempts));
    store_callback_retry(s->st, member, t->cb, delay);
    log_warn("callback_failed", "id=%lld host=%s attempts=%d retry_in_ms=%lld error=\"%s\"", job,
             host, attempts, delay, err);
}

/* Counts the outcome against the host's breaker, logging when it opens
 * or closes. */
static void judge_host(struct sender *s, const struct transfer *t, bool ok)
{
    int change = breakers_finish(s->hosts, t->key, ok, clock_mono_ms());
    if (change > 0)
        log_warn("callback_host_open", "host=%s open_s=%d note=\"its callbacks wait in "
                 "callbacks:due, no attempt used\"", t->key, s->c->cfg->callback_breaker_open_s);
    else if (change < 0)
        log_info("callback_host_closed", "host=%s", t->key);
}

void transfer_free(struct transfer *t)
{
    cb_request_free(&t->req);
    json_decref(t->cb);
    free(t->member);
    free(t);
}

void sender_settle(struct sender *s, struct transfer *t, CURLcode rc)
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
        sender_failed(s, t, false, err);
    }
}
