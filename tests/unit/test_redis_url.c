/*
 * test_redis_url.c: the redis-sentinel:// form of config key redis_url
 * (common/redis_url.c): sentinel lists, default ports, IPv6, the master
 * name and db, the password syntax shared with redis://, and hostile input
 * (too many hosts, over-long names, bad ports, a missing master), each
 * refused with a message naming the key and never the password. The
 * redis:// form is covered by test_config.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "redis_url.h"

static void parses(const char *url, struct redis_target *t)
{
    char err[512] = "";
    if (redis_url_parse(url, t, err, sizeof err) != 0)
        fail_msg("\"%s\" was refused: %s", url, err);
    assert_true(t->sentinel);
}

static void test_sentinel_forms(void **state)
{
    (void)state;
    struct redis_target t;
    parses("redis-sentinel://127.0.0.1:26379/mymaster", &t);
    assert_int_equal(t.nsentinels, 1);
    assert_string_equal(t.sentinels[0].host, "127.0.0.1");
    assert_int_equal(t.sentinels[0].port, 26379);
    assert_string_equal(t.master, "mymaster");
    assert_int_equal(t.db, 0);
    assert_string_equal(t.password, "");

    parses("redis-sentinel://a:1,b.example.org:2,[::1]:3/tango-main/5", &t);
    assert_int_equal(t.nsentinels, 3);
    assert_string_equal(t.sentinels[0].host, "a");
    assert_int_equal(t.sentinels[0].port, 1);
    assert_string_equal(t.sentinels[1].host, "b.example.org");
    assert_int_equal(t.sentinels[1].port, 2);
    assert_string_equal(t.sentinels[2].host, "::1");
    assert_int_equal(t.sentinels[2].port, 3);
    assert_string_equal(t.master, "tango-main");
    assert_int_equal(t.db, 5);

    /* Default sentinel port; a trailing '/' after the master. */
    parses("redis-sentinel://s1,s2:65535/m_1.x/", &t);
    assert_int_equal(t.sentinels[0].port, 26379);
    assert_int_equal(t.sentinels[1].port, 65535);
    assert_string_equal(t.master, "m_1.x");
    assert_int_equal(t.db, 0);
    parses("redis-sentinel://s/m/1000", &t);
    assert_int_equal(t.db, 1000);

    /* The password syntax of redis://: a user name is ignored, ':' and
     * '@' may be in the password (the last '@' ends it). */
    parses("redis-sentinel://:pw@s:1/m", &t);
    assert_string_equal(t.password, "pw");
    parses("redis-sentinel://user:p:w@rd@s1:1,s2:2/m/3", &t);
    assert_string_equal(t.password, "p:w@rd");
    assert_int_equal(t.nsentinels, 2);
    assert_string_equal(t.sentinels[0].host, "s1");
    assert_int_equal(t.db, 3);

    /* Exactly the limits. */
    char url[4096];
    int n = snprintf(url, sizeof url, "redis-sentinel://");
    for (int i = 0; i < REDIS_SENTINELS_MAX; i++)
        n += snprintf(url + n, sizeof url - (size_t)n, "%sh%d:%d", i ? "," : "", i, 100 + i);
    snprintf(url + n, sizeof url - (size_t)n, "/%0*d", REDIS_MASTER_NAME_MAX, 0);
    parses(url, &t);
    assert_int_equal(t.nsentinels, REDIS_SENTINELS_MAX);
    assert_string_equal(t.sentinels[REDIS_SENTINELS_MAX - 1].host, "h7");
    assert_int_equal(strlen(t.master), REDIS_MASTER_NAME_MAX);
    snprintf(url, sizeof url, "redis-sentinel://%0*d/m", REDIS_HOST_MAX, 0);
    parses(url, &t);
    assert_int_equal(strlen(t.sentinels[0].host), REDIS_HOST_MAX);
}

/* url is refused; the message names the key, says want (if given), and
 * never shows the password "hunter2". */
static void refused(const char *url, const char *want)
{
    struct redis_target t;
    char err[512] = "";
    if (redis_url_parse(url, &t, err, sizeof err) != -1)
        fail_msg("\"%s\" was accepted", url);
    if (!strstr(err, "config key \"redis_url\""))
        fail_msg("\"%s\": message does not name the key: %s", url, err);
    if (want && !strstr(err, want))
        fail_msg("\"%s\": message \"%s\" does not say \"%s\"", url, err, want);
    if (strstr(err, "hunter2"))
        fail_msg("\"%s\": message shows the password: %s", url, err);
    /* Nothing half-parsed is left behind (the password included). */
    assert_int_equal(t.nsentinels, 0);
    assert_string_equal(t.password, "");
}

static void test_hostile(void **state)
{
    (void)state;
    /* Missing parts. */
    refused("redis-sentinel://", "host is missing");
    refused("redis-sentinel:///m", "host is missing");
    refused("redis-sentinel://s", "master name is missing");
    refused("redis-sentinel://s:1", "master name is missing");
    refused("redis-sentinel://s:1/", "master name is missing");
    refused("redis-sentinel://s:1//1", "master name is missing");
    refused("redis-sentinel://:hunter2@s:1", "master name is missing");
    refused("redis-sentinel://:hunter2@/m", "host is missing");
    refused("redis-sentinel://s1,,s2/m", "host is missing");
    refused("redis-sentinel://s1,/m", "host is missing");
    refused("redis-sentinel://,s1/m", "host is missing");
    /* Bad ports. */
    refused("redis-sentinel://s:/m", "port");
    refused("redis-sentinel://s:0/m", "port");
    refused("redis-sentinel://s:65536/m", "port");
    refused("redis-sentinel://s:-1/m", "port");
    refused("redis-sentinel://s:+1/m", "port");
    refused("redis-sentinel://s: 1/m", "port");
    refused("redis-sentinel://s:1x/m", "port");
    refused("redis-sentinel://s:99999999999999999999/m", "port");
    refused("redis-sentinel://s:1:2/m", "port");
    /* Bad hosts and names. */
    refused("redis-sentinel://s h:1/m", "unexpected character");
    refused("redis-sentinel://s;rm:1/m", "unexpected character");
    refused("redis-sentinel://[::1:1/m", "IPv6");
    refused("redis-sentinel://[]:1/m", "IPv6");
    refused("redis-sentinel://[fe80::1%eth0]:1/m", "IPv6");
    refused("redis-sentinel://s:1/my master", "master name");
    refused("redis-sentinel://s:1/m\"x", "master name");
    refused("redis-sentinel://s:1/m*", "master name");
    /* The db. */
    refused("redis-sentinel://s:1/m/x", "db");
    refused("redis-sentinel://s:1/m/-1", "db");
    refused("redis-sentinel://s:1/m/1001", "db");
    refused("redis-sentinel://s:1/m/1/2", "db");
    refused("redis-sentinel://s:1/m/1x", "db");
    /* The password part. */
    refused("redis-sentinel://hunter2@s:1/m", "password");
    char url[4096];
    snprintf(url, sizeof url, "redis-sentinel://:%0300d@s/m", 0);
    refused(url, "password");
    /* Over the limits. */
    int n = snprintf(url, sizeof url, "redis-sentinel://:hunter2@");
    for (int i = 0; i <= REDIS_SENTINELS_MAX; i++)
        n += snprintf(url + n, sizeof url - (size_t)n, "%sh%d:1", i ? "," : "", i);
    snprintf(url + n, sizeof url - (size_t)n, "/m");
    refused(url, "at most 8 sentinels");
    snprintf(url, sizeof url, "redis-sentinel://%0*d/m", REDIS_HOST_MAX + 1, 0);
    refused(url, "too long");
    snprintf(url, sizeof url, "redis-sentinel://[%0*d]:1/m", REDIS_HOST_MAX + 1, 0);
    refused(url, "IPv6");
    snprintf(url, sizeof url, "redis-sentinel://s/%0*d", REDIS_MASTER_NAME_MAX + 1, 0);
    refused(url, "too long");
    /* Wrong schemes. */
    refused("redis-sentinels://s/m", "redis-sentinel://");
    refused("sentinel://s/m", "redis-sentinel://");
    refused("REDIS-SENTINEL://s/m", NULL);
}

static void test_ipv6_needs_brackets(void **state)
{
    (void)state;
    struct redis_target t;
    parses("redis-sentinel://[::1]/m", &t); /* default port */
    assert_string_equal(t.sentinels[0].host, "::1");
    assert_int_equal(t.sentinels[0].port, 26379);
    char err[256];
    assert_int_equal(redis_url_parse("redis-sentinel://::1:5/m", &t, err, sizeof err), -1);
}

/* The config loader refuses a bad sentinel URL at start, naming the key,
 * and checks redis_wait_ms against redis_timeout_ms when WAIT is on. */
static void test_config_load(void **state)
{
    (void)state;
    struct tango_config cfg;
    char err[512];
    char *const bad[] = {"TANGO_REDIS_URL=redis-sentinel://:hunter2@s1:1,s2:0/m", NULL};
    assert_int_equal(config_load(&cfg, NULL, bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"redis_url\""));
    assert_null(strstr(err, "hunter2"));
    char *const good[] = {"TANGO_REDIS_URL=redis-sentinel://s1:1,s2:2/m/1",
                          "TANGO_REDIS_MIN_REPLICAS=1", "TANGO_REDIS_WAIT_MS=500", NULL};
    assert_int_equal(config_load(&cfg, NULL, good, err, sizeof err), 0);
    assert_int_equal(cfg.redis_min_replicas, 1);
    assert_int_equal(cfg.redis_wait_ms, 500);
    config_free(&cfg);
    char *const slow[] = {"TANGO_REDIS_MIN_REPLICAS=1", "TANGO_REDIS_WAIT_MS=2000",
                          "TANGO_REDIS_TIMEOUT_MS=2000", NULL};
    assert_int_equal(config_load(&cfg, NULL, slow, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"redis_wait_ms\""));
    char *const off[] = {"TANGO_REDIS_WAIT_MS=5000", NULL}; /* no WAIT: no constraint */
    assert_int_equal(config_load(&cfg, NULL, off, err, sizeof err), 0);
    assert_int_equal(cfg.redis_min_replicas, 0);
    config_free(&cfg);
    char *const many[] = {"TANGO_REDIS_MIN_REPLICAS=17", NULL};
    assert_int_equal(config_load(&cfg, NULL, many, err, sizeof err), -1);
    assert_non_null(strstr(err, "\"redis_min_replicas\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sentinel_forms),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_ipv6_needs_brackets),
        cmocka_unit_test(test_config_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
