/*
 * test_config_env.c: common/config_env.c through config_load: Autolab's
 * deployment variables (RESTFUL_KEY, DOCKER_REDIS_HOSTNAME,
 * DOCKER_DEPLOYMENT, DOCKER_VOLUME_PATH, DOCKER_TANGO_HOST_VOLUME_PATH)
 * become config keys; the file's and TANGO_ names win; the record of what
 * was used names variables, never values; bad values are errors naming
 * the variable without echoing a key.
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


/* The string value of vmms_config.localDocker.key, or NULL. */
static const char *ld_key(const struct tango_config *cfg, const char *key)
{
    json_t *ld = json_object_get(cfg->vmms_config, "localDocker");
    return json_string_value(json_object_get(ld, key));
}

static char *const autolab_env[] = {
    "RESTFUL_KEY=s3cretKey-autolab",
    "DOCKER_REDIS_HOSTNAME=redis",
    "DOCKER_DEPLOYMENT=Prod",
    "DOCKER_VOLUME_PATH=/opt/TangoService/Tango/volumes",
    "DOCKER_TANGO_HOST_VOLUME_PATH=/home/ec2-user/autolab-docker/Tango/volumes",
    "DOCKER_SSL=true",
    NULL,
};

static void test_autolab_names_map(void **state)
{
    (void)state;
    struct tango_config c;
    load_ok(&c, NULL, autolab_env);
    assert_int_equal(c.nkeys, 1);
    assert_string_equal(c.keys[0], "s3cretKey-autolab");
    assert_string_equal(c.redis_url, "redis://redis:6379/0");
    assert_string_equal(c.instance_prefix, "tango-prod-");
    assert_string_equal(ld_key(&c, "volume_dir"), "/opt/TangoService/Tango/volumes");
    assert_string_equal(ld_key(&c, "host_volume_dir"),
                        "/home/ec2-user/autolab-docker/Tango/volumes");
    assert_non_null(c.autolab_env_used);
    assert_non_null(strstr(c.autolab_env_used, "RESTFUL_KEY=keys"));
    assert_non_null(strstr(c.autolab_env_used, "DOCKER_REDIS_HOSTNAME=redis_url"));
    assert_non_null(strstr(c.autolab_env_used, "DOCKER_TANGO_HOST_VOLUME_PATH=host_volume_dir"));
    assert_null(strstr(c.autolab_env_used, "s3cret")); /* names, never values */
    assert_null(c.autolab_env_ignored);
    config_free(&c);
}

static void test_config_names_win(void **state)
{
    (void)state;
    struct tango_config c;
    const char *path = file_with("{\"keys\": [\"filekey\"], \"vmms_config\": "
                                 "{\"localDocker\": {\"volume_dir\": \"/srv/vol\"}}}");
    char *const env[] = {
        "RESTFUL_KEY=s3cretKey-autolab",
        "DOCKER_REDIS_HOSTNAME=redis",
        "TANGO_REDIS_URL=redis://other:6380/1",
        "DOCKER_VOLUME_PATH=/opt/vol",
        "DOCKER_TANGO_HOST_VOLUME_PATH=/host/vol",
        NULL,
    };
    load_ok(&c, path, env);
    assert_int_equal(c.nkeys, 1);
    assert_string_equal(c.keys[0], "filekey");
    assert_string_equal(c.redis_url, "redis://other:6380/1");
    assert_string_equal(ld_key(&c, "volume_dir"), "/srv/vol");
    assert_string_equal(ld_key(&c, "host_volume_dir"), "/host/vol");
    assert_string_equal(c.autolab_env_used, "DOCKER_TANGO_HOST_VOLUME_PATH=host_volume_dir");
    assert_non_null(strstr(c.autolab_env_ignored, "RESTFUL_KEY=keys"));
    assert_non_null(strstr(c.autolab_env_ignored, "DOCKER_REDIS_HOSTNAME=redis_url"));
    assert_non_null(strstr(c.autolab_env_ignored, "DOCKER_VOLUME_PATH=volume_dir"));
    config_free(&c);
}

static void test_none_set_changes_nothing(void **state)
{
    (void)state;
    struct tango_config c;
    char *const env[] = {"RESTFUL_KEY=", "HOME=/root", NULL}; /* empty counts as unset */
    load_ok(&c, NULL, env);
    assert_int_equal(c.nkeys, 0);
    assert_string_equal(c.redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(c.instance_prefix, "tango-");
    assert_null(c.autolab_env_used);
    assert_null(c.autolab_env_ignored);
    config_free(&c);
}

/* Expects a failed load whose message names var and holds no secret. */
static void fails(char *const *env, const char *var)
{
    struct tango_config c;
    char err[512] = "";
    assert_int_equal(config_load(&c, NULL, env, err, sizeof err), -1);
    if (!strstr(err, var))
        fail_msg("error \"%s\" does not name %s", err, var);
    if (strstr(err, "s3cret"))
        fail_msg("error \"%s\" leaks the key", err);
}

static void test_bad_values(void **state)
{
    (void)state;
    char *const comma[] = {"RESTFUL_KEY=s3cret1,s3cret2", NULL};
    fails(comma, "RESTFUL_KEY");
    char *const space[] = {"RESTFUL_KEY=s3cret key", NULL};
    fails(space, "keys");
    char *const host[] = {"DOCKER_REDIS_HOSTNAME=redis:6379/0?x", NULL};
    fails(host, "DOCKER_REDIS_HOSTNAME");
    char *const url[] = {"DOCKER_REDIS_HOSTNAME=a@b", NULL};
    fails(url, "DOCKER_REDIS_HOSTNAME");
    char *const dep[] = {"DOCKER_DEPLOYMENT=prod/../x", NULL};
    fails(dep, "DOCKER_DEPLOYMENT");
    char *const longdep[] = {"DOCKER_DEPLOYMENT=abcdefghijklmnopqrstuvwxyz", NULL};
    fails(longdep, "DOCKER_DEPLOYMENT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_autolab_names_map),
        cmocka_unit_test(test_config_names_win),
        cmocka_unit_test(test_none_set_changes_nothing),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
