/*
 * callback_breaker.c: per-host callback slots and circuit breakers (see
 * callback_breaker.h). A small array searched linearly: it holds only hosts
 * with callbacks in flight, an open breaker or failures counted, at most
 * MAX_HOSTS of them (a closed, idle host's entry is reused when full).
 */
#include "callback_breaker.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HOSTS 1024
#define HOST_MAX 300
#define BUSY_WAIT_MS 250
#define BUSY_WAIT_MAX_MS 2000
#define PROBE_WAIT_MS 1000

struct host_state {
    char host[HOST_MAX];
    int in_flight;
    int failures;       /* failed attempts in a row */
    int turned_away;    /* FULL answers since it was last idle */
    bool open;          /* open (until > now) or half-open (until <= now) */
    long long until;
};

struct breakers {
    int per_host, threshold;
    long long open_ms;
    struct host_state *hosts;
    size_t n;
};

struct breakers *breakers_new(int per_host, int threshold, long long open_ms)
{
    struct breakers *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->hosts = calloc(MAX_HOSTS, sizeof *b->hosts);
    if (!b->hosts) {
        free(b);
        return NULL;
    }
    b->per_host = per_host > 0 ? per_host : 1;
    b->threshold = threshold > 0 ? threshold : 1;
    b->open_ms = open_ms;
    return b;
}

void breakers_free(struct breakers *b)
{
    if (!b)
        return;
    free(b->hosts);
    free(b);
}

static bool idle(const struct host_state *h)
{
    return h->in_flight == 0 && !h->open;
}

static struct host_state *find(struct breakers *b, const char *host)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->hosts[i].host, host) == 0)
            return &b->hosts[i];
    return NULL;
}

/* The host's entry, made if new (reusing an idle one when the table is
 * full); NULL if the name is too long or no entry is free. */
static struct host_state *find_or_add(struct breakers *b, const char *host)
{
    struct host_state *h = find(b, host);
    if (h || strlen(host) >= HOST_MAX)
        return h;
    if (b->n < MAX_HOSTS)
        h = &b->hosts[b->n++];
    for (size_t i = 0; !h && i < b->n; i++)
        if (idle(&b->hosts[i]))
            h = &b->hosts[i];
    if (h) {
        memset(h, 0, sizeof *h);
        strcpy(h->host, host);
    }
    return h;
}

enum breaker_verdict breakers_admit(struct breakers *b, const char *host, long long now_ms,
                                    long long *until_ms)
{
    struct host_state *h = find_or_add(b, host);
    if (!h) {
        *until_ms = now_ms + BUSY_WAIT_MAX_MS;
        return BREAKER_WAIT;
    }
    if (h->open && h->until > now_ms) {
        *until_ms = h->until;
        return BREAKER_OPEN;
    }
    if (h->open && h->in_flight > 0) {
        *until_ms = now_ms + PROBE_WAIT_MS; /* half-open: one probe at a time */
        return BREAKER_WAIT;
    }
    if (h->in_flight >= b->per_host) {
        long long wait = BUSY_WAIT_MS * (1LL + h->turned_away++ / b->per_host);
        *until_ms = now_ms + (wait < BUSY_WAIT_MAX_MS ? wait : BUSY_WAIT_MAX_MS);
        return BREAKER_FULL;
    }
    h->in_flight++;
    return BREAKER_SEND;
}

/* A slot freed: an idle host starts its count of turned-away callbacks
 * afresh; an entry left with nothing to remember is dropped. */
static void slot_freed(struct breakers *b, struct host_state *h)
{
    if (h->in_flight > 0)
        h->in_flight--;
    if (h->in_flight == 0)
        h->turned_away = 0;
    if (idle(h) && h->failures == 0)
        *h = b->hosts[--b->n];
}

void breakers_release(struct breakers *b, const char *host)
{
    struct host_state *h = find(b, host);
    if (h)
        slot_freed(b, h);
}

int breakers_finish(struct breakers *b, const char *host, bool ok, long long now_ms)
{
    struct host_state *h = find(b, host);
    if (!h)
        return 0;
    int change = 0;
    if (ok) {
        change = h->open ? -1 : 0;
        h->failures = 0;
        h->open = false;
    } else {
        h->failures++;
        bool half_open = h->open && h->until <= now_ms;
        if (half_open || (!h->open && h->failures >= b->threshold)) {
            h->open = true;
            h->until = now_ms + b->open_ms;
            change = 1;
        }
    }
    slot_freed(b, h);
    return change;
}

int breakers_in_flight(const struct breakers *b)
{
    int n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->hosts[i].in_flight;
    return n;
}

int breakers_open_hosts(const struct breakers *b, long long now_ms)
{
    int n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->hosts[i].open && b->hosts[i].until > now_ms;
    return n;
}
