/*
 * test_config.c: common/config.c: defaults, the JSON file, TANGO_<KEY>
 * environment overrides (passed as an envp array, never the real
 * environment), every kind of bad value, and redis_url_parse. Error
 * messages must name the key and must never hold a client key or the
 * Redis password.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#include "config_fixture.h"

static char *const no_env[] = {NULL};

/* Loads and expects failure; the message must contain each of want[] and
 * none of the secrets. Nothing is freed: a failed load leaves nothing. */
static void load_fails(const char *path, char *const *envp, const char *want1,
                       const char *want2)
{
    static const char *const secrets[] = {"s3cretKey", "hunter2", "TopSecret", NULL};
    struct tango_config cfg;
    char err[512];
    memset(err, 0, sizeof err);
    assert_int_equal(config_load(&cfg, path, envp, err, sizeof err), -1);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("error \"%s\" lacks \"%s\"/\"%s\"", err, want1, want2 ? want2 : "");
    for (int i = 0; secrets[i]; i++)
        if (strstr(err, secrets[i]))
            fail_msg("error \"%s\" leaks a secret", err);
    /* The failed load released everything and left *cfg empty. */
    assert_null(cfg.redis_url);
    assert_null(cfg.keys);
    assert_null(cfg.vmms_config);
    assert_int_equal(cfg.nkeys, 0);
    /* A defensive config_free afterwards is harmless. */
    config_free(&cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    struct tango_config c;
    load_ok(&c, NULL, no_env);
    assert_string_equal(c.bind, "127.0.0.1"); /* never the jobs' bridge by default */
    assert_int_equal(c.port, 3000);
    assert_int_equal(c.http_timeout_s, 60);
    assert_int_equal(c.max_connections, 4096);
    assert_int_equal(c.max_header_kb, 16);
    assert_int_equal(c.max_request_kb, 1024);
    assert_int_equal(c.max_upload_mb, 256);
    assert_int_equal(c.build_timeout_s, 600);
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/0");
    assert_int_equal(c.redis_timeout_ms, 2000);
    assert_string_equal(c.prefix, "tango:");
    assert_string_equal(c.courselabs, "courselabs");
    assert_int_equal(c.nkeys, 0);
    assert_int_equal(c.nimages, 1);
    assert_string_equal(c.images[0], "autograding_image");
    assert_string_equal(c.log_level, "info");
    assert_int_equal(c.default_timeout_s, 60);
    assert_int_equal(c.max_timeout_s, 3600);
    assert_int_equal(c.default_max_kb, 1000);
    assert_int_equal(c.max_output_kb, 65536);
    assert_int_equal(c.max_cores, 16);
    assert_int_equal(c.max_memory_mb, 16384);
    assert_int_equal(c.jobs_list_max, 1000);
    assert_int_equal(c.jobs_list_max_kb, 2048);
    assert_int_equal(c.max_job_record_kb, 32);
    assert_false(c.redis_allow_eviction);
    assert_int_equal(c.dead_jobs_keep, 10000);
    assert_int_equal(c.max_pool_size, 64);
    assert_string_equal(c.vmms, "localDocker");
    assert_string_equal(c.vmms_dir, "build/vmms");
    assert_true(json_is_object(c.vmms_config));
    assert_int_equal(json_object_size(c.vmms_config), 0);
    assert_string_equal(c.instance_prefix, "tango-");
    assert_int_equal(c.max_jobs, 4);
    assert_int_equal(c.max_jobs_per_image, 4);
    assert_int_equal(c.job_retries, 2);
    assert_int_equal(c.waitvm_timeout_s, 60);
    assert_int_equal(c.copyin_timeout_s, 60);
    assert_int_equal(c.copyout_timeout_s, 60);
    assert_int_equal(c.lease_ms, 10000);
    assert_int_equal(c.drain_timeout_s, 300);
    assert_int_equal(c.default_cores, 1);
    assert_int_equal(c.default_memory_mb, 512);
    assert_int_equal(c.pids_limit, 512);
    assert_false(c.default_disable_network);
    assert_int_equal(c.autodriver_nproc, 1000000);
    assert_int_equal(c.autodriver_fsize_mb, 100);
    assert_int_equal(c.callback_attempts, 10);
    assert_int_equal(c.callback_backoff_ms, 1000);
    assert_int_equal(c.callback_timeout_s, 10);
    assert_int_equal(c.callback_connect_timeout_ms, 3000);
    assert_int_equal(c.callback_max_in_flight, 64);
    assert_int_equal(c.callback_max_per_host, 16);
    assert_int_equal(c.callback_breaker_failures, 5);
    assert_int_equal(c.callback_breaker_open_s, 30);
    assert_int_equal(c.partial_output_interval_ms, 1000);
    assert_int_equal(c.partial_output_kb, 64);
    assert_int_equal(c.max_queued_per_course, 5000); /* finite: a queue has a bound */
    config_free(&c);
    /* config_free zeroes, so a second call is harmless. */
    assert_null(c.bind);
    config_free(&c);
}

static void test_file_overrides_each_type(void **state)
{
    (void)state;
    struct tango_config c;
    load_ok(&c, file_with("{\n"
                          "  \"port\": 8080,\n"
                          "  \"lease_ms\": 500,\n"
                          "  \"max_pool_size\": 0,\n"
                          "  \"bind\": \"127.0.0.1\",\n"
                          "  \"courselabs\": \"/srv/labs\",\n"
                          "  \"keys\": [\"k1\", \"key-two\"],\n"
                          "  \"images\": [],\n"
                          "  \"default_disable_network\": true,\n"
                          "  \"vmms_config\": {\"a\": 1, \"b\": [true, \"x\"]},\n"
                          "  \"log_level\": \"debug\"\n"
                          "}\n"),
            no_env);
    assert_int_equal(c.port, 8080);
    assert_int_equal(c.lease_ms, 500);       /* lower bound is allowed */
    assert_int_equal(c.max_pool_size, 0);
    assert_string_equal(c.bind, "127.0.0.1");
    assert_string_equal(c.courselabs, "/srv/labs");
    assert_int_equal(c.nkeys, 2);
    assert_string_equal(c.keys[0], "k1");
    assert_string_equal(c.keys[1], "key-two");
    assert_int_equal(c.nimages, 0);
    assert_true(c.default_disable_network);
    json_t *want = json_loads("{\"a\": 1, \"b\": [true, \"x\"]}", 0, NULL);
    assert_true(json_equal(c.vmms_config, want));
    json_decref(want);
    assert_string_equal(c.log_level, "debug");
    /* Everything not in the file keeps its default. */
    assert_int_equal(c.max_jobs, 4);
    assert_string_equal(c.prefix, "tango:");
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/0");
    config_free(&c);

    /* false overrides back, and an empty object is fine. */
    load_ok(&c, file_with("{\"default_disable_network\": false, \"vmms_config\": {}}"), no_env);
    assert_false(c.default_disable_network);
    assert_int_equal(json_object_size(c.vmms_config), 0);
    config_free(&c);
    load_ok(&c, file_with("{}"), no_env);
    assert_int_equal(c.port, 3000);
    config_free(&c);
}

static void test_env_beats_file(void **state)
{
    (void)state;
    const char *path = file_with("{\"port\": 1111, \"redis_url\": \"redis://filehost:1/1\",\n"
                                 " \"courselabs\": \"/file/labs\", \"keys\": [\"filekey\"],\n"
                                 " \"prefix\": \"file:\", \"bind\": \"10.0.0.1\"}");
    char *const env[] = {
        "PATH=/usr/bin",
        "TANGO_PORT=2222",
        "TANGO_REDIS_URL=redis://envhost:6380/2",
        "TANGO_COURSELABS=/env/labs",
        "TANGO_KEYS= alpha , beta,,gamma ,",
        "TANGO_PREFIX=env-pfx:",
        "TANGO_DEFAULT_DISABLE_NETWORK=yes",
        "TANGO_VMMS_CONFIG={\"host\": \"x\"}",
        "TANGO_UNKNOWN_KNOB=whatever",   /* not ours: ignored */
        "TANGO_=x",
        "TANGO_MAX_JOBS",                /* no '=': ignored */
        "tango_port=9",                  /* wrong case: not ours */
        NULL,
    };
    struct tango_config c;
    load_ok(&c, path, env);
    assert_int_equal(c.port, 2222);
    assert_string_equal(c.redis_url, "redis://envhost:6380/2");
    assert_string_equal(c.courselabs, "/env/labs");
    assert_int_equal(c.nkeys, 3);
    assert_string_equal(c.keys[0], "alpha");
    assert_string_equal(c.keys[1], "beta");
    assert_string_equal(c.keys[2], "gamma");
    assert_string_equal(c.prefix, "env-pfx:");
    assert_true(c.default_disable_network);
    assert_string_equal(json_string_value(json_object_get(c.vmms_config, "host")), "x");
    assert_int_equal(json_object_size(c.vmms_config), 1);
    assert_int_equal(c.max_jobs, 4);
    /* The file still counts where the environment is silent. */
    assert_string_equal(c.bind, "10.0.0.1");
    config_free(&c);

    /* An empty TANGO_KEYS clears the list; booleans in text form. */
    char *const env2[] = {"TANGO_KEYS=", "TANGO_DEFAULT_DISABLE_NETWORK=0", NULL};
    load_ok(&c, path, env2);
    assert_int_equal(c.nkeys, 0);
    assert_false(c.default_disable_network);
    config_free(&c);
}

static void test_unknown_key(void **state)
{
    (void)state;
    load_fails(file_with("{\"port\": 1, \"colour\": \"blue\"}"), no_env, "\"colour\"",
               "unknown key");
    load_fails(file_with("{\"Port\": 1}"), no_env, "\"Port\"", "unknown key");
}

static void test_wrong_types(void **state)
{
    (void)state;
    load_fails(file_with("{\"port\": \"3000\"}"), no_env, "\"port\"", "integer");
    load_fails(file_with("{\"port\": 3000.5}"), no_env, "\"port\"", "integer");
    load_fails(file_with("{\"port\": true}"), no_env, "\"port\"", "integer");
    load_fails(file_with("{\"bind\": 5}"), no_env, "\"bind\"", "string");
    load_fails(file_with("{\"bind\": null}"), no_env, "\"bind\"", "string");
    load_fails(file_with("{\"images\": \"a,b\"}"), no_env, "\"images\"", "list");
    load_fails(file_with("{\"images\": [\"a\", 2]}"), no_env, "\"images\"", "list");
    load_fails(file_with("{\"images\": [\"\"]}"), no_env, "\"images\"", "item 0");
    load_fails(file_with("{\"default_disable_network\": \"true\"}"), no_env,
               "\"default_disable_network\"", "true or false");
    load_fails(file_with("{\"default_disable_network\": 1}"), no_env,
               "\"default_disable_network\"", NULL);
    load_fails(file_with("{\"vmms_config\": [1]}"), no_env, "\"vmms_config\"", "object");
    load_fails(file_with("{\"vmms_config\": \"{}\"}"), no_env, "\"vmms_config\"", "object");
    /* Strings: empty, too long, control characters. */
    load_fails(file_with("{\"bind\": \"\"}"), no_env, "\"bind\"", "length");
    load_fails(file_with("{\"vmms\": \"a\\tb\"}"), no_env, "\"vmms\"", "control");
    char big[200];
    snprintf(big, sizeof big, "{\"prefix\": \"%070d\"}", 0);
    load_fails(file_with(big), no_env, "\"prefix\"", "length");
    /* Environment values of the wrong form. */
    char *const e1[] = {"TANGO_PORT=abc", NULL};
    load_fails(NULL, e1, "\"port\"", "TANGO_PORT");
    char *const e2[] = {"TANGO_PORT=", NULL};
    load_fails(NULL, e2, "\"port\"", "not an integer");
    char *const e3[] = {"TANGO_PORT=80x", NULL};
    load_fails(NULL, e3, "\"port\"", "not an integer");
    char *const e4[] = {"TANGO_DEFAULT_DISABLE_NETWORK=maybe", NULL};
    load_fails(NULL, e4, "\"default_disable_network\"", "boolean");
    char *const e5[] = {"TANGO_VMMS_CONFIG={bad", NULL};
    load_fails(NULL, e5, "\"vmms_config\"", "invalid JSON");
    char *const e6[] = {"TANGO_VMMS_CONFIG=[]", NULL};
    load_fails(NULL, e6, "\"vmms_config\"", "object");
    char *const e7[] = {"TANGO_PORT=99999999999999999999", NULL};
    load_fails(NULL, e7, "\"port\"", NULL);
}

static void test_out_of_range(void **state)
{
    (void)state;
    load_fails(file_with("{\"port\": 0}"), no_env, "\"port\"", "out of range 1..65535");
    load_fails(file_with("{\"port\": 65536}"), no_env, "\"port\"", "65536");
    load_fails(file_with("{\"port\": -1}"), no_env, "\"port\"", "range");
    load_fails(file_with("{\"port\": 4294967297}"), no_env, "\"port\"", "range");
    load_fails(file_with("{\"redis_timeout_ms\": 9}"), no_env, "\"redis_timeout_ms\"", "range");
    load_fails(file_with("{\"lease_ms\": 499}"), no_env, "\"lease_ms\"", "range");
    load_fails(file_with("{\"job_retries\": 101}"), no_env, "\"job_retries\"", "range");
    char *const env[] = {"TANGO_PORT=70000", NULL};
    load_fails(NULL, env, "\"port\"", "TANGO_PORT");
    struct tango_config c;
    load_ok(&c, file_with("{\"port\": 65535, \"job_retries\": 0}"), no_env);
    assert_int_equal(c.port, 65535);
    assert_int_equal(c.job_retries, 0);
    config_free(&c);
}

static void test_bad_redis_url(void **state)
{
    (void)state;
    load_fails(file_with("{\"redis_url\": \"http://localhost\"}"), no_env, "\"redis_url\"",
               "redis://");
    load_fails(file_with("{\"redis_url\": \"redis://:hunter2@host:0/1\"}"), no_env,
               "\"redis_url\"", NULL);
    load_fails(file_with("{\"redis_url\": \"redis://:hunter2@host:6379/db\"}"), no_env,
               "\"redis_url\"", NULL);
    char *const env[] = {"TANGO_REDIS_URL=redis://hunter2@host", NULL};
    load_fails(NULL, env, "\"redis_url\"", NULL);
    char *const env2[] = {"TANGO_REDIS_URL=redis://:hunter2\001@h", NULL};
    load_fails(NULL, env2, "\"redis_url\"", "TANGO_REDIS_URL");
}

static void test_bad_prefix(void **state)
{
    (void)state;
    load_fails(file_with("{\"prefix\": \"a b\"}"), no_env, "\"prefix\"", ":_.-");
    load_fails(file_with("{\"prefix\": \"a/b:\"}"), no_env, "\"prefix\"", NULL);
    load_fails(file_with("{\"prefix\": \"tango{x}\"}"), no_env, "\"prefix\"", NULL);
    load_fails(file_with("{\"prefix\": \"t\\u00e9:\"}"), no_env, "\"prefix\"", NULL);
    char *const env[] = {"TANGO_PREFIX=x*", NULL};
    load_fails(NULL, env, "\"prefix\"", NULL);
    load_fails(file_with("{\"instance_prefix\": \"tango/\"}"), no_env, "\"instance_prefix\"",
               NULL);
    load_fails(file_with("{\"prefix\": \":tango\"}"), no_env, "\"prefix\"", "start");
    load_fails(file_with("{\"instance_prefix\": \"-tango\"}"), no_env,
               "\"instance_prefix\"", "start");
    /* Container names take no ':'. */
    load_fails(file_with("{\"instance_prefix\": \"tango:\"}"), no_env,
               "\"instance_prefix\"", NULL);
    struct tango_config c;
    load_ok(&c, file_with("{\"prefix\": \"Ab9:_.-\"}"), no_env);
    assert_string_equal(c.prefix, "Ab9:_.-");
    config_free(&c);
}

static void test_cross_checks(void **state)
{
    (void)state;
    load_fails(file_with("{\"default_timeout_s\": 61, \"max_timeout_s\": 60}"), no_env,
               "\"default_timeout_s\"", "max_timeout_s");
    char *const env[] = {"TANGO_MAX_TIMEOUT_S=30", NULL};
    load_fails(NULL, env, "\"default_timeout_s\"", NULL);
    load_fails(file_with("{\"default_max_kb\": 2000, \"max_output_kb\": 1999}"), no_env,
               "\"default_max_kb\"", "max_output_kb");
    load_fails(file_with("{\"log_level\": \"verbose\"}"), no_env, "\"log_level\"", "debug");
    load_fails(file_with("{\"disk_limit_mb\": 2048, \"max_disk_limit_mb\": 1024}"), no_env,
               "\"disk_limit_mb\"", "max_disk_limit_mb");
    load_fails(file_with("{\"callback_allow\": [\"10.0.0.0/99\"]}"), no_env,
               "\"callback_allow\"", "10.0.0.0/99");
    struct tango_config c;
    load_ok(&c, file_with("{\"default_timeout_s\": 60, \"max_timeout_s\": 60}"), no_env);
    assert_int_equal(c.default_timeout_s, 60);
    assert_int_equal(c.max_timeout_s, 60);
    config_free(&c);
}

static void test_json_syntax_and_duplicates(void **state)
{
    (void)state;
    load_fails(file_with("{\n  \"port\": 1,\n  \"bind\" \"x\"\n}\n"), no_env, cfgpath,
               "line 3");
    load_fails(file_with("{\n\n\n\n  \"port\": 1,\n}\n"), no_env, "line 6", NULL);
    load_fails(file_with("{\"port\": 1,\n \"port\": 2}"), no_env, "duplicate", "line 2");
    load_fails(file_with(""), no_env, cfgpath, NULL);
    load_fails(file_with("[1, 2]"), no_env, "JSON object", NULL);
    load_fails(file_with("\"port\""), no_env, cfgpath, NULL);
    char missing[PATH_MAX + 40];
    snprintf(missing, sizeof missing, "%s/does-not-exist.json", tmpdir);
    load_fails(missing, no_env, "does-not-exist.json", NULL);
}

static void test_no_secrets_in_errors(void **state)
{
    (void)state;
    /* Bad keys: space, slash, control character, too long, not strings. */
    load_fails(file_with("{\"keys\": [\"ok1\", \"s3cretKey with space\"]}"), no_env, "\"keys\"",
               "item 1");
    load_fails(file_with("{\"keys\": [\"s3cretKey/x\"]}"), no_env, "\"keys\"", NULL);
    load_fails(file_with("{\"keys\": [\"s3cretKey\\u007f\"]}"), no_env, "\"keys\"", NULL);
    char *const env[] = {"TANGO_KEYS=s3cretKey,TopSecret\tx", NULL};
    load_fails(NULL, env, "\"keys\"", "item 1");
    char big[400];
    snprintf(big, sizeof big, "{\"keys\": [\"s3cretKey%0260d\"]}", 0);
    load_fails(file_with(big), no_env, "\"keys\"", NULL);
    /* Syntax errors right at a key or at the Redis URL. */
    load_fails(file_with("{\"keys\": [\"ok\" \"s3cretKey\"]}"), no_env, "line 1", NULL);
    load_fails(file_with("{\"keys\": [\"s3cretKey\"] \"x\": 1}"), no_env, "line 1", NULL);
    load_fails(file_with("{\"keys\": [s3cretKey]}"), no_env, "line 1", NULL);
    load_fails(file_with("{\"keys\": [\"s3cret\x01Key\"]}"), no_env, "line 1", NULL);
    load_fails(file_with("{\"redis_url\" \"redis://:hunter2@h\"}"), no_env, "line 1", NULL);
    load_fails(file_with("{\"keys\": [\"a\"],\n\"keys\": [\"s3cretKey\"]}"), no_env,
               "duplicate", NULL);
    char *const env2[] = {"TANGO_VMMS_CONFIG={\"TopSecret\" 1}", NULL};
    load_fails(NULL, env2, "\"vmms_config\"", NULL);
    /* Later errors while keys and password are loaded. */
    load_fails(file_with("{\"keys\": [\"s3cretKey\"], \"redis_url\": \"redis://:hunter2@h\","
                         " \"nope\": 1}"),
               no_env, "\"nope\"", NULL);
    char *const env3[] = {"TANGO_KEYS=s3cretKey", "TANGO_REDIS_URL=redis://:hunter2@h:1",
                          "TANGO_PORT=0", NULL};
    load_fails(NULL, env3, "\"port\"", NULL);
}

static void test_redis_url_parse(void **state)
{
    (void)state;
    struct redis_target t;
    char err[256];
    assert_int_equal(redis_url_parse("redis://h", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "h");
    assert_int_equal(t.port, 6379);
    assert_int_equal(t.db, 0);
    assert_string_equal(t.password, "");

    assert_int_equal(redis_url_parse("redis://h:1234/3", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "h");
    assert_int_equal(t.port, 1234);
    assert_int_equal(t.db, 3);
    assert_string_equal(t.password, "");

    assert_int_equal(redis_url_parse("redis://:pw@h:1/2", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "h");
    assert_int_equal(t.port, 1);
    assert_int_equal(t.db, 2);
    assert_string_equal(t.password, "pw");

    assert_int_equal(redis_url_parse("redis://127.0.0.1:6379/", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "127.0.0.1");
    assert_int_equal(t.db, 0);
    assert_int_equal(redis_url_parse("redis://redis.example.org/15", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "redis.example.org");
    assert_int_equal(t.port, 6379);
    assert_int_equal(t.db, 15);
    /* A user name is ignored; a password may hold ':' and '@'. */
    assert_int_equal(redis_url_parse("redis://user:pw@h", &t, err, sizeof err), 0);
    assert_string_equal(t.password, "pw");
    assert_string_equal(t.host, "h");
    assert_int_equal(redis_url_parse("redis://:p:w@rd@h:7/1", &t, err, sizeof err), 0);
    assert_string_equal(t.password, "p:w@rd");
    assert_string_equal(t.host, "h");
    assert_int_equal(t.port, 7);
    assert_int_equal(t.db, 1);
    assert_int_equal(redis_url_parse("redis://h:65535", &t, err, sizeof err), 0);
    assert_int_equal(t.port, 65535);

    static const char *const bad[] = {
        "", "h:6379", "http://h", "redis:/h", "redis://", "redis://:6379", "redis:///1",
        "redis://h:", "redis://h:0", "redis://h:65536", "redis://h:12x", "redis://h:1:2",
        "redis://h/x", "redis://h/1x", "redis://h/-1", "redis://h/1001", "redis://h/1/2",
        "redis://pw@h", "redis://:pw@", "redis://:pw@:1", "rediss://h", NULL,
    };
    for (int i = 0; bad[i]; i++) {
        memset(err, 0, sizeof err);
        if (redis_url_parse(bad[i], &t, err, sizeof err) != -1)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_non_null(strstr(err, "\"redis_url\""));
    }
    /* Over-long parts. */
    char url[700];
    snprintf(url, sizeof url, "redis://%0300d", 0);
    assert_int_equal(redis_url_parse(url, &t, err, sizeof err), -1);
    snprintf(url, sizeof url, "redis://:%0300d@h", 0);
    assert_int_equal(redis_url_parse(url, &t, err, sizeof err), -1);
    assert_null(strstr(err, "000000"));
    snprintf(url, sizeof url, "redis://:%0255d@h", 0);
    assert_int_equal(redis_url_parse(url, &t, err, sizeof err), 0);
    assert_int_equal(strlen(t.password), 255);
    assert_string_equal(t.host, "h");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_overrides_each_type),
        cmocka_unit_test(test_env_beats_file),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_redis_url),
        cmocka_unit_test(test_bad_prefix),
        cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_json_syntax_and_duplicates),
        cmocka_unit_test(test_no_secrets_in_errors),
        cmocka_unit_test(test_redis_url_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
