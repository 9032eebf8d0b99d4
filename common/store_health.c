/*
 * store_health.c: whether Redis can keep this service's state, as the
 * store sees it: the start-up check built on the maxmemory-policy check of
 * every new connection (store_policy.c), whether the last call found Redis
 * refusing writes, and the /health probe (reachable by PING; writable by a
 * small SET with expiry, made at most once a second per handle). See store.h.
 */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define HEALTH_CACHE_MS 1000     /* a write probe answers /health this long */
#define HEALTH_PROBE_TTL_MS 10000 /* the probe key's expiry */

bool store_write_refused(const struct store *st)
{
    return st->write_refused;
}

int store_startup_check(struct store *st, char *err, size_t len)
{
    if (store_ping(st) == STORE_OK || !st->policy_refused)
        return 0;
    snprintf(err, len, "%s", st->err);
    return -1;
}

/* Writes the probe key and records what it found; returns its status. */
static int probe_writes(struct store *st, long long now)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_HEALTH_PROBE);
    int status;
    freeReplyObject(store_cmdf(st, &status, "SET %s 1 PX %d", key, HEALTH_PROBE_TTL_MS));
    st->health_ms = now > st->write_refused_ms ? now : st->write_refused_ms; /* its own refusal */
    st->health_writable = status == STORE_OK;
    snprintf(st->health_why, sizeof st->health_why, "%s", status == STORE_OK ? "" : st->err);
    return status;
}

enum store_health store_health(struct store *st, char *why, size_t len)
{
    if (store_ping(st) != STORE_OK) {
        snprintf(why, len, "%s", st->err);
        return STORE_HEALTH_DOWN;
    }
    long long now = clock_mono_ms();
    bool fresh = st->health_ms && now - st->health_ms < HEALTH_CACHE_MS &&
                 st->write_refused_ms <= st->health_ms;
    if (!fresh && probe_writes(st, now) == STORE_UNAVAILABLE && !st->write_refused) {
        st->health_ms = 0; /* lost on the way, or replicas not confirming: an outage */
        snprintf(why, len, "%s", st->err);
        return STORE_HEALTH_DOWN;
    }
    if (st->health_writable)
        return STORE_HEALTH_UP;
    snprintf(why, len, "%s", st->health_why);
    return STORE_HEALTH_NOT_WRITABLE;
}
