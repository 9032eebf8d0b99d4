/*
 * store_health.c: whether Redis can keep this service's state, as the
 * store sees it: the maxmemory-policy check made on every new connection
 * (an evicting policy would delete job records, leases and queues when
 * Redis is full: refused unless config redis_allow_eviction), the start-up
 * check built on it, which error replies mean "Redis refuses writes", and
 * the /health probe (reachable by PING; writable by a small SET with expiry,
 * made at most once a second per handle). See store.h.
 */
#include "store_internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define HEALTH_CACHE_MS 1000     /* a write probe answers /health this long */
#define HEALTH_PROBE_TTL_MS 10000 /* the probe key's expiry */

bool store_is_write_refusal(const char *msg)
{
    return strncmp(msg, "OOM ", 4) == 0 || strncmp(msg, "MISCONF ", 8) == 0;
}

bool store_write_refused(const struct store *st)
{
    return st->write_refused;
}

/* The value of "field:" in an INFO text into out (len bytes); false if absent. */
static bool info_field(const char *info, const char *field, char *out, size_t len)
{
    size_t flen = strlen(field);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
            size_t n = strcspn(p + flen + 1, "\r\n");
            snprintf(out, len, "%.*s", (int)n, p + flen + 1);
            return true;
        }
    }
    return false;
}

/* Warns once per process (several handles, reconnects). */
static void warn_once(atomic_bool *done, const char *event, const char *detail)
{
    if (!atomic_exchange(done, true))
        log_warn(event, "%s", detail);
}

int store_check_policy(struct store *st, redisContext *c, char *why, size_t len)
{
    static atomic_bool warned_unread, warned_allowed;
    st->policy_refused = false;
    redisReply *r = redisCommand(c, "INFO memory");
    if (!r) {
        snprintf(why, len, "%s", c->errstr[0] ? c->errstr : "INFO failed");
        return -1;
    }
    char policy[64] = "";
    bool read = r->type == REDIS_REPLY_STRING;
    if (read)
        read = info_field(r->str, "maxmemory_policy", policy, sizeof policy);
    freeReplyObject(r);
    if (!read) {
        warn_once(&warned_unread, "redis_policy_unknown",
                  "reason=\"INFO memory gave no maxmemory_policy: cannot check that Redis "
                  "never evicts keys\"");
        return 0;
    }
    bool evicts = strncmp(policy, "allkeys-", 8) == 0 || strncmp(policy, "volatile-", 9) == 0;
    if (!evicts)
        return 0;
    if (st->allow_eviction) {
        char detail[200];
        snprintf(detail, sizeof detail, "maxmemory_policy=%s reason=\"redis_allow_eviction is "
                 "true: a full Redis may delete job records, leases and queues\"", policy);
        warn_once(&warned_allowed, "redis_eviction_allowed", detail);
        return 0;
    }
    snprintf(why, len, "Redis maxmemory-policy is %s: a full Redis would delete job records, "
             "leases and queues; set maxmemory-policy noeviction (or config "
             "redis_allow_eviction true to run anyway)", policy);
    st->policy_refused = true;
    return -1;
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
