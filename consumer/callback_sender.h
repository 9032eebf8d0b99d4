/*
 * callback_sender.h: the callback sender's state, shared by its files:
 * callback.c (the thread, its loop, claiming and reaping), callback_route.c
 * (where a claimed entry goes: sent, parked for its host, or deferred) and
 * callback_outcome.c (what an attempt's end does to the entry in Redis and
 * to its host's breaker). One thread owns a sender; nothing here locks.
 */
#ifndef TANGO_CALLBACK_SENDER_H
#define TANGO_CALLBACK_SENDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>
#include <curl/curl.h>
#include <jansson.h>

#include "callback_request.h"
#include "consumer.h"

/* One claimed callback entry: parked, or in flight (then req is live). */
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

/* callback_outcome.c: frees t (its request too, if any). */
void transfer_free(struct transfer *t);

/* callback_outcome.c: an attempt failed (err says why): retried later with
 * backoff, or given up (out of attempts, or hopeless). t stays the
 * caller's. */
void sender_failed(struct sender *s, struct transfer *t, bool hopeless, const char *err);

/* callback_outcome.c: t's transfer ended with rc: the entry is done or
 * failed, and the host's breaker counts it. t stays the caller's. */
void sender_settle(struct sender *s, struct transfer *t, CURLcode rc);

/* callback_route.c: a freshly claimed entry: started, parked, deferred,
 * or failed. Takes t. */
void sender_dispatch(struct sender *s, struct transfer *t);

/* callback_route.c: host key freed a slot: its parked entries go on. */
void sender_unpark(struct sender *s, const char *key);

/* callback_route.c: stopping: every parked entry back to Redis, due now
 * (another consumer may send it at once). */
void sender_return_parked(struct sender *s);

#endif
