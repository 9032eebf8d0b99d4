/*
 * store_conn.c: the Redis store's connection: made lazily and again after
 * it broke, authenticated and its db selected; with redis-sentinel:// the
 * master found through the sentinels, checked with ROLE when connected and
 * against the sentinels at most once a second after; fail-fast while Redis
 * is down (a timeout opens a window of 250 ms doubling to 4 s; a refused
 * connection none); the maxmemory-policy check of every new connection
 * (store_policy.c); the redis_down / redis_up / redis_master log lines.
 * What runs on the connection (the retry rule, WAIT) is store.c's.
 */
#include "store_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "clock.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 4000

/* Logs where this handle talks to: the server, or the master's name and its
 * last known address. */
static void log_where(struct store *st, char *buf, size_t len)
{
    if (st->target.sentinel)
        snprintf(buf, len, "master=%s host=%s port=%d", st->target.master,
                 st->addr_host[0] ? st->addr_host : "-", st->addr_port);
    else
        snprintf(buf, len, "host=%s port=%d", st->addr_host, st->addr_port);
}

void store_drop_connection(struct store *st)
{
    if (st->ctx) {
        redisFree(st->ctx);
        st->ctx = NULL;
    }
}

void store_mark_down(struct store *st, const char *why)
{
    int e = errno;
    st->last_fail = st->ctx && (st->ctx->err == REDIS_ERR_EOF ||
                                (st->ctx->err == REDIS_ERR_IO &&
                                 (e == ECONNRESET || e == EPIPE)))
                        ? FAIL_BROKEN
                        : FAIL_OTHER;
    snprintf(st->err, sizeof st->err, "Redis unavailable: %s", why);
    /* hiredis's words: "Connection timed out" (connect), "Resource
     * temporarily unavailable" (read timeout). errno is no guide here: a
     * refused non-blocking connect leaves EINPROGRESS behind. */
    bool timed_out = strstr(why, "timed out") || strstr(why, "temporarily unavailable") ||
                     strstr(why, "Timeout");
    if (timed_out) {
        st->backoff_ms = st->backoff_ms ? st->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (st->backoff_ms > BACKOFF_MAX_MS)
            st->backoff_ms = BACKOFF_MAX_MS;
        st->down_until_ms = clock_mono_ms() + st->backoff_ms;
    }
    if (!st->was_down && st->last_fail != FAIL_BROKEN) {
        char where[400];
        log_where(st, where, sizeof where);
        log_warn("redis_down", "%s reason=\"%s\"", where, why);
    }
    if (st->last_fail != FAIL_BROKEN)
        st->was_down = 1;
    store_drop_connection(st);
}

/* Runs one command on a connection being set up; false (why filled) if it
 * failed or Redis refused it. */
static bool setup_command(redisContext *c, const char *what, char *why, size_t len,
                          redisReply **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        snprintf(why, len, "%s failed%s%.100s", what, r ? ": " : "", r ? r->str : "");
        freeReplyObject(r);
        return false;
    }
    if (out)
        *out = r;
    else
        freeReplyObject(r);
    return true;
}

static redisContext *connect_to(const struct store *st, const char *host, int port,
                                int timeout_ms, char *why, size_t len)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        if (st->target.sentinel)
            snprintf(why, len, "%.100s:%d: %.100s", host, port, c ? c->errstr : "out of memory");
        else
            snprintf(why, len, "%s", c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);
    return c;
}

/* A ready connection to the Redis server at host:port: authenticated, its
 * db selected and, when must_be_master, checked to be a master (ROLE).
 * NULL with why. */
static redisContext *open_server(const struct store *st, const char *host, int port,
                                 bool must_be_master, char *why, size_t len)
{
    redisContext *c = connect_to(st, host, port, st->timeout_ms, why, len);
    if (!c)
        return NULL;
    redisReply *role = NULL;
    if ((st->target.password[0] &&
         !setup_command(c, "authentication", why, len, NULL, "AUTH %s", st->target.password)) ||
        (st->target.db && !setup_command(c, "SELECT", why, len, NULL, "SELECT %d", st->target.db)) ||
        (must_be_master && !setup_command(c, "ROLE", why, len, &role, "ROLE"))) {
        redisFree(c);
        return NULL;
    }
    if (role) {
        bool master = role->type == REDIS_REPLY_ARRAY && role->elements > 0 &&
                      role->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(role->element[0]->str, "master") == 0;
        if (!master)
            snprintf(why, len, "%.100s:%d is not a master (ROLE %.20s)", host, port,
                     role->type == REDIS_REPLY_ARRAY && role->elements > 0 &&
                             role->element[0]->type == REDIS_REPLY_STRING
                         ? role->element[0]->str
                         : "?");
        freeReplyObject(role);
        if (!master) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Asks sentinel s for the master's address (host: REDIS_HOST_MAX + 1
 * bytes). A sentinel that wants a password gets the URL's. */
static int ask_sentinel(const struct store *st, const struct redis_addr *s, int timeout_ms,
                        char *host, int *port, char *why, size_t len)
{
    redisContext *c = connect_to(st, s->host, s->port, timeout_ms, why, len);
    if (!c)
        return -1;
    const char *cmd = "SENTINEL get-master-addr-by-name %s";
    redisReply *r = redisCommand(c, cmd, st->target.master);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0 &&
        st->target.password[0]) {
        freeReplyObject(r);
        r = redisCommand(c, "AUTH %s", st->target.password);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        r = ok ? redisCommand(c, cmd, st->target.master) : NULL;
    }
    int rc = -1;
    if (!r) {
        snprintf(why, len, "sentinel %.100s:%d: %.100s", s->host, s->port,
                 c->errstr[0] ? c->errstr : "authentication failed");
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len > 0 &&
               r->element[0]->len <= REDIS_HOST_MAX) {
        char *end;
        long p = strtol(r->element[1]->str, &end, 10);
        if (*end == '\0' && p >= 1 && p <= 65535) {
            memcpy(host, r->element[0]->str, r->element[0]->len + 1);
            *port = (int)p;
            rc = 0;
        } else {
            snprintf(why, len, "sentinel %.100s:%d: bad master port", s->host, s->port);
        }
    } else if (r->type == REDIS_REPLY_NIL) {
        snprintf(why, len, "sentinel %.100s:%d does not know master %.64s", s->host, s->port,
                 st->target.master);
    } else {
        snprintf(why, len, "sentinel %.100s:%d: unexpected reply%s%.100s", s->host, s->port,
                 r->type == REDIS_REPLY_ERROR ? ": " : "",
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    }
    freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* Sentinel mode: asks each sentinel in turn (the last one that answered
 * first) and connects to the master it names, checking it is one. */
static redisContext *discover_master(struct store *st, char *why, size_t len)
{
    int n = st->target.nsentinels;
    for (int k = 0; k < n; k++) {
        int i = (st->sentinel_next + k) % n;
        const struct redis_addr *s = &st->target.sentinels[i];
        char host[REDIS_HOST_MAX + 1];
        int port;
        if (ask_sentinel(st, s, st->timeout_ms, host, &port, why, len))
            continue;
        redisContext *c = open_server(st, host, port, true, why, len);
        if (!c)
            continue;
        st->sentinel_next = i;
        st->master_checked_ms = clock_mono_ms();
        if (strcmp(host, st->addr_host) != 0 || port != st->addr_port) {
            /* A handle's first master is news only at debug level. */
            log_event(st->addr_host[0] ? LOG_INFO : LOG_DEBUG, "redis_master",
                      "master=%s host=%s port=%d sentinel=%s:%d", st->target.master, host, port,
                      s->host, s->port);
            snprintf(st->addr_host, sizeof st->addr_host, "%s", host);
            st->addr_port = port;
        }
        return c;
    }
    return NULL;
}

/* How often a connection's master is checked against the sentinels, and
 * how long that check may take (it is skipped, not failed, without an
 * answer: the connection's server was checked with ROLE when it was made). */
#define SENTINEL_RECHECK_MS 1000
#define SENTINEL_RECHECK_TIMEOUT_MS 250

/* Sentinel mode: whether the sentinels still name the server this handle
 * is connected to as the master. A master demoted by a failover it lived
 * through (SENTINEL FAILOVER, a partition) may keep accepting writes until
 * Sentinel turns it into a replica, seconds later, and those writes would
 * be lost; asking at most once a second bounds that to about a second. */
static bool master_still_current(struct store *st)
{
    if (!st->target.sentinel)
        return true;
    long long now = clock_mono_ms();
    if (now - st->master_checked_ms < SENTINEL_RECHECK_MS)
        return true;
    st->master_checked_ms = now;
    const struct redis_addr *s = &st->target.sentinels[st->sentinel_next];
    int timeout = st->timeout_ms < SENTINEL_RECHECK_TIMEOUT_MS ? st->timeout_ms
                                                               : SENTINEL_RECHECK_TIMEOUT_MS;
    char host[REDIS_HOST_MAX + 1], why[300];
    int port;
    if (ask_sentinel(st, s, timeout, host, &port, why, sizeof why) ||
        (strcmp(host, st->addr_host) == 0 && port == st->addr_port))
        return true;
    log_info("redis_master_moved", "master=%s from=%s:%d to=%s:%d sentinel=%s:%d",
             st->target.master, st->addr_host, st->addr_port, host, port, s->host, s->port);
    return false;
}

/* Whether an idle connection is still usable: nothing may be waiting on it
 * (Redis sends nothing unasked), so anything readable is its close. This is
 * how a connection that Redis (or a failover) closed is noticed before a
 * command is sent on it. */
static bool connection_idle_ok(const redisContext *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
    return poll(&p, 1, 0) == 0;
}

int store_connect(struct store *st, bool *fresh)
{
    *fresh = false;
    if (st->ctx && connection_idle_ok(st->ctx) && master_still_current(st))
        return 0;
    store_drop_connection(st); /* closed while idle, or no longer the master: nothing lost on it */
    *fresh = true;
    st->last_fail = FAIL_OTHER;
    if (clock_mono_ms() < st->down_until_ms)
        return -1; /* still in the fail-fast window; st->err says why */
    char why[300] = "";
    redisContext *c = st->target.sentinel
                          ? discover_master(st, why, sizeof why)
                          : open_server(st, st->target.host, st->target.port, false, why,
                                        sizeof why);
    if (c && store_check_policy(st, c, why, sizeof why)) {
        redisFree(c);
        c = NULL;
    }
    if (!c) {
        store_mark_down(st, why);
        return -1;
    }
    st->ctx = c;
    st->library_checked = false;
    if (st->was_down) {
        char where[400];
        log_where(st, where, sizeof where);
        log_info("redis_up", "%s", where);
    }
    st->was_down = 0;
    st->backoff_ms = 0;
    st->down_until_ms = 0;
    return 0;
}
