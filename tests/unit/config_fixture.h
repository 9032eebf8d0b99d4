/*
 * config_fixture.h: the configuration tests' shared fixture (test_config.c,
 * test_config_env.c): a temporary directory holding one tango.json, written
 * by file_with and loaded by load_ok. Header-only: each test includes it
 * once.
 */
#ifndef TANGO_TEST_CONFIG_FIXTURE_H
#define TANGO_TEST_CONFIG_FIXTURE_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

static char tmpdir[PATH_MAX];
static char cfgpath[PATH_MAX + 32];

/* cmocka setup: a fresh temporary directory for the config file. */
static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_config.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(cfgpath, sizeof cfgpath, "%s/tango.json", tmpdir);
    return 0;
}

/* cmocka teardown: removes the file and the directory. */
static int teardown(void **state)
{
    (void)state;
    unlink(cfgpath);
    rmdir(tmpdir);
    return 0;
}

/* Writes text to the config file and returns its path. */
static const char *file_with(const char *text)
{
    FILE *f = fopen(cfgpath, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return cfgpath;
}

/* Loads and expects success. */
static void load_ok(struct tango_config *cfg, const char *path, char *const *envp)
{
    char err[512] = "";
    if (config_load(cfg, path, envp, err, sizeof err) != 0)
        fail_msg("config_load failed: %s", err);
}

#endif
