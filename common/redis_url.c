/*
 * redis_url.c: parsing config key redis_url (see redis_url.h). Every part
 * is checked where it is read, against a named limit; anything else is a
 * startup error.
 */
#include "redis_url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL_SCHEME "redis-sentinel://"
#define REDIS_SCHEME "redis://"
#define SENTINEL_DEFAULT_PORT 26379
#define REDIS_DEFAULT_PORT 6379
#define DB_MAX 1000

#define EXPECT_REDIS "expected redis://[:password@]host[:port][/db]"
#define EXPECT_SENTINEL \
    "expected redis-sentinel://[:password@]host[:port][,host[:port]...]/master[/db]"

static int fail(char *err, size_t errlen, const char *expect, const char *why)
{
    snprintf(err, errlen, "config key \"redis_url\": %s%s%s%s", expect, why ? " (" : "",
             why ? why : "", why ? ")" : "");
    return -1;
}

/* Reads "[user]:password@" at *p if the rest holds an '@' (the last one
 * ends the password, so it may hold '@' and ':'). */
static int parse_password(const char **p, char *out, size_t outlen)
{
    const char *at = strrchr(*p, '@');
    if (!at)
        return 0;
    const char *colon = memchr(*p, ':', (size_t)(at - *p));
    if (!colon || (size_t)(at - colon - 1) >= outlen)
        return -1;
    memcpy(out, colon + 1, (size_t)(at - colon - 1));
    out[at - colon - 1] = '\0';
    *p = at + 1;
    return 0;
}

/* Decimal digits only, [lo, hi]; *end after them. */
static int parse_number(const char *p, long lo, long hi, long *v, const char **end)
{
    long n = 0;
    const char *q = p;
    while (isdigit((unsigned char)*q) && q - p < 8)
        n = n * 10 + (*q++ - '0');
    if (q == p || isdigit((unsigned char)*q) || n < lo || n > hi)
        return -1;
    *v = n;
    *end = q;
    return 0;
}

static int parse_plain(const char *p, struct redis_target *out, char *err, size_t errlen)
{
    if (parse_password(&p, out->password, sizeof out->password))
        return fail(err, errlen, EXPECT_REDIS, NULL);
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof out->host)
        return fail(err, errlen, EXPECT_REDIS, NULL);
    memcpy(out->host, p, hl);
    p += hl;
    out->port = REDIS_DEFAULT_PORT;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            return fail(err, errlen, EXPECT_REDIS, NULL);
        out->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1]) {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end || db < 0 || db > DB_MAX)
            return fail(err, errlen, EXPECT_REDIS, NULL);
        out->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        return fail(err, errlen, EXPECT_REDIS, NULL);
    }
    return 0;
}

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

/* One "host[:port]" or "[v6]:port" of the sentinel list, ending at ',' or
 * '/'. *p moves past it. */
static int parse_sentinel_addr(const char **p, struct redis_addr *a, const char **why)
{
    const char *s = *p;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        hl = close ? (size_t)(close - s - 1) : 0;
        for (size_t i = 0; i < hl; i++)
            if (!isxdigit((unsigned char)s[1 + i]) && s[1 + i] != ':' && s[1 + i] != '.') {
                hl = 0;
                break;
            }
        if (hl == 0 || hl > REDIS_HOST_MAX) {
            *why = "bad IPv6 address";
            return -1;
        }
        memcpy(a->host, s + 1, hl);
        s = close + 1;
    } else {
        hl = 0;
        while (host_char(s[hl]))
            hl++;
        if (hl == 0) {
            *why = "a sentinel's host is missing";
            return -1;
        }
        if (hl > REDIS_HOST_MAX) {
            *why = "a sentinel's host name is too long";
            return -1;
        }
        memcpy(a->host, s, hl);
        s += hl;
    }
    a->host[hl] = '\0';
    a->port = SENTINEL_DEFAULT_PORT;
    if (*s == ':') {
        long port;
        if (parse_number(s + 1, 1, 65535, &port, &s)) {
            *why = "a sentinel's port must be 1..65535";
            return -1;
        }
        a->port = (int)port;
    }
    if (*s != ',' && *s != '/') {
        *why = *s ? "unexpected character in the sentinel list" : "the master name is missing";
        return -1;
    }
    *p = s;
    return 0;
}

static int parse_sentinel(const char *p, struct redis_target *out, char *err, size_t errlen)
{
    const char *why = NULL;
    out->sentinel = true;
    if (parse_password(&p, out->password, sizeof out->password))
        return fail(err, errlen, EXPECT_SENTINEL, "bad password part");
    for (;;) {
        if (out->nsentinels == REDIS_SENTINELS_MAX) {
            char w[64];
            snprintf(w, sizeof w, "at most %d sentinels", REDIS_SENTINELS_MAX);
            return fail(err, errlen, EXPECT_SENTINEL, w);
        }
        if (parse_sentinel_addr(&p, &out->sentinels[out->nsentinels], &why))
            return fail(err, errlen, EXPECT_SENTINEL, why);
        out->nsentinels++;
        if (*p == '/')
            break;
        p++; /* ',' */
    }
    p++;
    size_t ml = 0;
    while (host_char(p[ml]))
        ml++;
    if (ml == 0)
        return fail(err, errlen, EXPECT_SENTINEL,
                    *p && *p != '/' ? "the master name may hold only letters, digits, '.', '-', '_'"
                                    : "the master name is missing");
    if (ml > REDIS_MASTER_NAME_MAX)
        return fail(err, errlen, EXPECT_SENTINEL, "the master name is too long");
    memcpy(out->master, p, ml);
    out->master[ml] = '\0';
    p += ml;
    if (*p == '/' && p[1]) {
        long db;
        if (parse_number(p + 1, 0, DB_MAX, &db, &p) || *p)
            return fail(err, errlen, EXPECT_SENTINEL, "db must be 0..1000");
        out->db = (int)db;
    } else if (*p && strcmp(p, "/") != 0) {
        return fail(err, errlen, EXPECT_SENTINEL,
                    "the master name may hold only letters, digits, '.', '-', '_'");
    }
    return 0;
}

int redis_url_parse(const char *url, struct redis_target *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc;
    if (strncmp(url, REDIS_SCHEME, strlen(REDIS_SCHEME)) == 0)
        rc = parse_plain(url + strlen(REDIS_SCHEME), out, err, errlen);
    else if (strncmp(url, SENTINEL_SCHEME, strlen(SENTINEL_SCHEME)) == 0)
        rc = parse_sentinel(url + strlen(SENTINEL_SCHEME), out, err, errlen);
    else
        rc = fail(err, errlen, EXPECT_REDIS " or redis-sentinel://...", NULL);
    if (rc) {
        memset(out, 0, sizeof *out); /* no half-parsed password left behind */
        return -1;
    }
    return 0;
}
