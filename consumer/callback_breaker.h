/*
 * callback_breaker.h: the callback sender's view of each receiving host
 * ("host:port", the URL's origin without the scheme): how many callbacks
 * are in flight to it (capped per host) and its circuit breaker. After
 * `threshold` failed attempts in a row the host's breaker opens: nothing is
 * sent to it for `open_ms`; then one callback goes as a probe (half-open):
 * a success closes the breaker, a failure opens it again. A success at any
 * time resets the count. Pure bookkeeping (times are passed in, nothing is
 * sent): one thread owns a table; not thread-safe.
 */
#ifndef TANGO_CALLBACK_BREAKER_H
#define TANGO_CALLBACK_BREAKER_H

#include <stdbool.h>
#include <stddef.h>

struct breakers;

/* A table for hosts allowing per_host callbacks in flight each, opening
 * after threshold failures in a row for open_ms. NULL if out of memory. */
struct breakers *breakers_new(int per_host, int threshold, long long open_ms);
void breakers_free(struct breakers *b);

enum breaker_verdict {
    BREAKER_SEND,   /* go: a slot on the host is taken (finish or release frees it) */
    BREAKER_FULL,   /* the host has per_host in flight: one frees when one ends */
    BREAKER_WAIT,   /* half-open with its probe out, or the table is full */
    BREAKER_OPEN,   /* the breaker is open */
};

/* Whether a callback to host may start at now_ms; on BREAKER_SEND a slot is
 * taken (and, half-open, this is the probe). Otherwise *until_ms says when
 * to ask again: the end of the open time; for a full host a short wait
 * that grows (up to 2 s) with the callbacks it turned away since it was
 * last idle, so a large backlog is not re-examined over and over; else
 * 1 s (a probe's outcome) or 2 s (a full table). */
enum breaker_verdict breakers_admit(struct breakers *b, const char *host, long long now_ms,
                                    long long *until_ms);

/* What happened to a callback breakers_admit let start: frees its slot and
 * counts the outcome. Returns +1 if this failure opened the host's
 * breaker, -1 if this success closed an open (half-open) one, 0 otherwise. */
int breakers_finish(struct breakers *b, const char *host, bool ok, long long now_ms);

/* Frees a slot breakers_admit took for a callback that was never sent
 * (nothing is counted against the host). */
void breakers_release(struct breakers *b, const char *host);

/* Callbacks in flight over every host; hosts whose breaker is open now. */
int breakers_in_flight(const struct breakers *b);
int breakers_open_hosts(const struct breakers *b, long long now_ms);

#endif
