/* test_autodriver_cgroup.c: unit tests of the autodriver's cgroup usage
 * figures (autodriver/cgroup.c) on fake cgroup trees in a temp directory:
 * cgroup v1 with the host's path, v1 inside a cgroup namespace (path "/"),
 * v1 with the path absent under the mount (Docker's bind of the
 * container's own cgroup), v2, and no figures at all. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../autodriver/cgroup.h"

static char root[256];

static void put(const char *rel, const char *data)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    for (char *s = p + strlen(root) + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(data, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/ad-cg-XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd);
}

/* ad_cgroup_usage of the test's self-cgroup file with the cgroup mounts
 * under root/fsdir. */
static int usage_of(const char *fsdir, struct ad_cg_usage *u)
{
    char cg[300], fs[300];
    snprintf(cg, sizeof cg, "%s/self-cgroup", root);
    snprintf(fs, sizeof fs, "%s/%s", root, fsdir);
    return ad_cgroup_usage(cg, fs, u);
}

/* Reads the usage from root/fs, checks it and returns it. */
static struct ad_cg_usage expect_usage(long long user_ms, long long sys_ms, long long peak_kb)
{
    struct ad_cg_usage u;
    assert_int_equal(usage_of("fs", &u), 0);
    assert_int_equal(u.cpu_user_ms, user_ms);
    assert_int_equal(u.cpu_sys_ms, sys_ms);
    assert_int_equal(u.peak_kb, peak_kb);
    return u;
}

static void test_v1_host_path(void **state)
{
    (void)state;
    put("self-cgroup", "12:pids:/job1\n5:cpuacct:/job1\n4:cpu:/job1\n3:memory:/job1\n0::/\n");
    put("fs/cpuacct/job1/cpuacct.usage_user", "2500000000\n");
    put("fs/cpuacct/job1/cpuacct.usage_sys", "700000000\n");
    put("fs/memory/job1/memory.max_usage_in_bytes", "10485760\n");
    struct ad_cg_usage u = expect_usage(2500, 700, 10240);
    char line[200];
    ad_format_cgroup_usage(line, sizeof line, &u);
    assert_string_equal(line, "Autodriver: cgroup cpu_user_ms=2500 cpu_sys_ms=700 "
                              "peak_memory_kb=10240\n");
}

static void test_v1_namespaced_and_bind(void **state)
{
    (void)state;
    /* cpu,cpuacct mounted together, path "/" (cgroup namespace) */
    put("self-cgroup", "4:cpu,cpuacct:/\n3:memory:/docker/abc\n");
    put("fs/cpu,cpuacct/cpuacct.usage_user", "1000000\n");
    put("fs/cpu,cpuacct/cpuacct.usage_sys", "2000000\n");
    put("fs/memory/memory.max_usage_in_bytes", "2048\n"); /* /docker/abc absent: the mount */
    expect_usage(1, 2, 2);
}

static void test_v2(void **state)
{
    (void)state;
    put("self-cgroup", "0::/sb/job\n");
    put("fs/sb/job/cpu.stat", "usage_usec 9000\nuser_usec 6000\nsystem_usec 3000\n");
    put("fs/sb/job/memory.peak", "4096\n");
    expect_usage(6, 3, 4);
}

static void test_none(void **state)
{
    (void)state;
    put("self-cgroup", "0::/nothing/here\n");
    struct ad_cg_usage u;
    assert_int_equal(usage_of("fs-none", &u), -1);
    char fs[300];
    snprintf(fs, sizeof fs, "%s/fs-none", root);
    assert_int_equal(ad_cgroup_usage("/nonexistent/cgroup", fs, &u), -1);
    /* a path that climbs out is not followed */
    put("self-cgroup", "0::/../../etc\n");
    assert_int_equal(usage_of("fs-none", &u), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_host_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_namespaced_and_bind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_none, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
