/*
 * test_vmms_distdocker.c: the distDocker VMMS plugin, loaded from
 * $BUILD/vmms/distDocker.so (BUILD defaults to the build directory this
 * binary sits in) with dlopen and driven through its ops table.
 *   - config validation: every bad key is refused with its name in the error;
 *   - no host up: init returns at once, initialize_vm answers VMMS_UNAVAILABLE;
 *   - against a real fleet of two SSH hosts built by tests/fleet/fleet.sh
 *     (network namespaces with their own sshd, sharing the local Docker
 *     engine; needs root): a job end to end, round-robin and capacity,
 *     concurrent jobs with partial output, destroy during run, a host whose
 *     sshd dies (its run fails fast, its VM's removal is deferred and done
 *     when it returns), a wrong host key refused.
 * A fleet that cannot be built (not root, no sshd) fails the live tests:
 * a fixture that does not come up is a failure, never a skip. The fleet,
 * containers and temp files are removed at the end.
 */
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "vmms.h"

#define NPROC 1000

static const struct vmms_ops *ops;
static void *dl;
static char P[64];              /* VM prefix "ddunit-<pid>-" */
static char F[16];              /* fleet prefix */
static char root[PATH_MAX];     /* temp dir */
static char err[2048];
static const char *image = "autograding_image";
static json_t *fleet;           /* fleet.json, NULL: no fleet */
static void *ctx;               /* live plugin context (fleet of 2) */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* Output of a shell command (trimmed), malloc'd. */
static char *sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return strdup("");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        fwrite(chunk, 1, n, m);
    pclose(p);
    fclose(m);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    return buf;
}

static const char *fleet_str(const char *key)
{
    return json_string_value(json_object_get(fleet, key));
}

static const char *host_str(int i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(fleet, "hosts"), i),
                                             key));
}

/* A host object of the fleet (i from 0), with a known_hosts file of choice. */
static json_t *host_cfg(int i, const char *known_hosts, int max_jobs)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "address", host_str(i, "address"),
                     "user", "root", "private_key", fleet_str("client_key"), "known_hosts",
                     known_hosts, "volume_dir", host_str(i, "volume_dir"), "max_jobs",
                     max_jobs);
}

static json_t *live_cfg(json_t *hosts)
{
    return json_pack("{s:o, s:i, s:i, s:i, s:i, s:i, s:i}", "hosts", hosts,
                     "connect_timeout_s", 3, "command_timeout_s", 30, "down_backoff_s", 1,
                     "down_backoff_max_s", 2, "health_interval_s", 2, "run_grace_s", 5);
}

/* ---- config validation (no network) ---- */

static char keyfile[PATH_MAX + 32], khfile[PATH_MAX + 32];

static void test_config_rejected(void **state)
{
    (void)state;
    char good_host[PATH_MAX * 2 + 200];
    snprintf(good_host, sizeof good_host,
             "{\"address\": \"127.0.0.1\", \"user\": \"root\", \"private_key\": \"%s\", "
             "\"known_hosts\": \"%s\"", keyfile, khfile);
    struct {
        const char *fmt; /* %s = good_host (an unterminated host object) */
        const char *needle;
    } bad[] = {
        {"{\"bogus\": 1, \"hosts\": [%s}]}", "bogus"},
        {"{\"hosts\": []}", "hosts"},
        {"{\"hosts\": {}}", "hosts"},
        {"{\"hosts\": [{}]}", "address"},
        {"{\"hosts\": [%s, \"adress\": \"x\"}]}", "adress"},
        {"{\"hosts\": [%s, \"adress\": \"x\"}]}", "hosts[0]"},
        {"{\"hosts\": [%s, \"port\": 0}]}", "port"},
        {"{\"hosts\": [%s, \"port\": \"22\"}]}", "port"},
        {"{\"hosts\": [%s, \"port\": 70000}]}", "port"},
        {"{\"hosts\": [%s, \"address\": \"-oProxyCommand=x\"}]}", "address"},
        {"{\"hosts\": [%s, \"address\": \"a b\"}]}", "address"},
        {"{\"hosts\": [%s, \"user\": \"ro ot\"}]}", "user"},
        {"{\"hosts\": [%s, \"private_key\": \"/nonexistent/key\"}]}", "private_key"},
        {"{\"hosts\": [%s, \"private_key\": \"relative/key\"}]}", "private_key"},
        {"{\"hosts\": [%s, \"public_key\": \"/nonexistent/key.pub\"}]}", "public_key"},
        {"{\"hosts\": [%s, \"known_hosts\": \"/nonexistent/kh\"}]}", "known_hosts"},
        {"{\"hosts\": [%s, \"volume_dir\": \"relative\"}]}", "volume_dir"},
        {"{\"hosts\": [%s, \"volume_dir\": \"/var/../etc\"}]}", "volume_dir"},
        {"{\"hosts\": [%s, \"volume_dir\": \"/a b\"}]}", "volume_dir"},
        {"{\"hosts\": [%s, \"volume_dir\": \"/a/$(x)\"}]}", "volume_dir"},
        {"{\"hosts\": [%s, \"volume_dir\": \"/a/\"}]}", "volume_dir"},
        {"{\"hosts\": [%s, \"max_jobs\": 0}]}", "max_jobs"},
        {"{\"hosts\": [%s, \"max_jobs\": 9}]}", "max_sessions"},
        {"{\"hosts\": [%s, \"max_sessions\": 2}]}", "max_sessions"},
        {"{\"hosts\": [%s}, %s}]}", "repeats"},
        {"{\"hosts\": [%s}], \"strict_host_key_checking\": \"yes\"}", "strict_host_key_checking"},
        {"{\"hosts\": [%s}], \"connect_timeout_s\": 0}", "connect_timeout_s"},
        {"{\"hosts\": [%s}], \"command_timeout_s\": 1.5}", "command_timeout_s"},
        {"{\"hosts\": [%s}], \"down_backoff_s\": 10, \"down_backoff_max_s\": 5}",
         "down_backoff_max_s"},
        {"{\"hosts\": [%s}], \"default_memory_mb\": 1}", "default_memory_mb"},
        {"{\"hosts\": [%s}], \"run_grace_s\": -1}", "run_grace_s"},
        {"{\"hosts\": [{\"address\": \"127.0.0.1\", \"user\": \"root\", \"private_key\": "
         "\"/etc/hostname\"}]}", "known_hosts"},
        {"[1, 2]", "object"},
        {"null", "hosts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[8192];
        snprintf(text, sizeof text, bad[i].fmt, good_host, good_host);
        json_t *cfg = json_loads(text, JSON_DECODE_ANY, NULL);
        if (cfg == NULL)
            fail_msg("test config %zu is not JSON: %s", i, text);
        void *c = NULL;
        err[0] = '\0';
        int rc = ops->init(cfg, P, &c, err, sizeof err);
        json_decref(cfg);
        if (rc == VMMS_OK)
            fail_msg("config %s was accepted", text);
        assert_null(c);
        if (strstr(err, bad[i].needle) == NULL)
            fail_msg("config %s: error \"%s\" does not name %s", text, err, bad[i].needle);
    }
    void *c = NULL;
    assert_int_not_equal(ops->init(NULL, "bad/prefix", &c, err, sizeof err), VMMS_OK);
    assert_null(c);
}

/* No host answers: init is quick, every assignment is VMMS_UNAVAILABLE (the
 * job waits, no try spent, and the consumer probes with ping), listing
 * fails, nothing blocks; strict checking off is allowed. */
static void test_no_host_up(void **state)
{
    (void)state;
    char text[PATH_MAX * 2 + 400];
    /* port 1 on loopback: refused at once */
    snprintf(text, sizeof text,
             "{\"hosts\": [{\"address\": \"127.0.0.1\", \"port\": 1, \"user\": \"root\", "
             "\"private_key\": \"%s\"}], \"strict_host_key_checking\": false, "
             "\"connect_timeout_s\": 2, \"down_backoff_s\": 1}", keyfile);
    json_t *cfg = json_loads(text, 0, NULL);
    assert_non_null(cfg);
    void *c = NULL;
    long t0 = now_ms();
    int rc = ops->init(cfg, P, &c, err, sizeof err);
    json_decref(cfg);
    if (rc != VMMS_OK)
        fail_msg("init: %s", err);
    assert_true(now_ms() - t0 < 3000);
    struct vmms_vm vm = {0};
    snprintf(vm.name, sizeof vm.name, "%sbusy", P);
    snprintf(vm.image, sizeof vm.image, "%s", image);
    t0 = now_ms();
    assert_int_equal(ops->initialize_vm(c, &vm, err, sizeof err), VMMS_UNAVAILABLE);
    assert_non_null(strstr(err, "no worker host is up"));
    assert_int_equal(ops->ping(c, 1000, err, sizeof err), VMMS_UNAVAILABLE);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(ops->get_images(c, &names, &n, err, sizeof err), VMMS_ERR);
    assert_int_not_equal(ops->get_vms(c, NULL, NULL, err, sizeof err), VMMS_OK);
    char *out = NULL;
    size_t len = 0;
    assert_int_not_equal(ops->get_partial_output(c, &vm, 100, &out, &len, err, sizeof err),
                         VMMS_OK);
    assert_true(now_ms() - t0 < 1000);
    ops->shutdown(c);
}

/* ---- live: the fleet ---- */

static void init_vm(struct vmms_vm *vm, const char *suffix)
{
    memset(vm, 0, sizeof *vm);
    snprintf(vm->name, sizeof vm->name, "%s%s", P, suffix);
    snprintf(vm->image, sizeof vm->image, "%s", image);
    vm->pids_limit = 256;
}

static void start_vm(struct vmms_vm *vm, const char *suffix)
{
    init_vm(vm, suffix);
    int rc = ops->initialize_vm(ctx, vm, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("initialize_vm(%s): %s", vm->name, err);
    rc = ops->wait_vm(ctx, vm, 30, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("wait_vm(%s): %s", vm->name, err);
    assert_true(strlen(vm->id) >= 12);
    assert_true(vm->host[0] != '\0');
}

static void put_job(struct vmms_vm *vm, const char *tag, const char *makefile)
{
    char dir[PATH_MAX + 64], mk[PATH_MAX + 128], data[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s/%s", root, tag);
    mkdir(dir, 0755);
    snprintf(mk, sizeof mk, "%s/autograde-Makefile", dir);
    snprintf(data, sizeof data, "%s/data.txt", dir);
    write_file(mk, makefile);
    write_file(data, "contents of data.txt\n");
    struct vmms_file files[] = {{mk, "Makefile"}, {data, "data.txt"}};
    int rc = ops->copy_in(ctx, vm, files, 2, 20, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("copy_in: %s", err);
}

static int run(struct vmms_vm *vm, int timeout_s, int *status)
{
    struct vmms_run r = {.timeout_s = timeout_s, .max_output = 65536, .nproc = NPROC,
                         .fsize = 1 << 20};
    return ops->run_job(ctx, vm, &r, status, err, sizeof err);
}

static char *feedback_of(struct vmms_vm *vm, const char *tag)
{
    char out[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s/%s.feedback", root, tag);
    int rc = ops->copy_out(ctx, vm, out, 20, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("copy_out: %s", err);
    char *text = read_file(out);
    assert_non_null(text);
    return text;
}

static void count_cb(const char *name, const char *id, const char *img, bool running, void *arg)
{
    (void)name, (void)id, (void)img, (void)running;
    (*(int *)arg)++;
}

/* Nothing of the prefix on any host: no container, no volume directory. */
static void assert_clean(void)
{
    int n = 0;
    assert_int_equal(ops->get_vms(ctx, count_cb, &n, err, sizeof err), VMMS_OK);
    assert_int_equal(n, 0);
    for (int i = 0; i < 2; i++) {
        char *ls = sh("ls -A '%s' | grep -c '^%s' || true", host_str(i, "volume_dir"), P);
        assert_string_equal(ls, "0");
        free(ls);
    }
}

#define NEED_FLEET()                                                  \
    do {                                                                      \
        if (ctx == NULL) {                                                    \
            fail_msg("the test fleet did not come up (needs root, sshd, "    \
                     "ip netns; see tests/fleet/fleet.sh)");                  \
        }                                                                     \
    } while (0)

static const char *hello_mk = "all:\n\t@echo hello from the job\n\t@cat data.txt\n";
static const char *loop_mk = "all:\n\t@echo looping\n\t@while true; do :; done\n";
static const char *slow_mk =
    "all:\n\t@for i in 1 2 3 4 5 6 7 8 9 10; do echo line $$i; sleep 0.3; done\n";

static void test_hello_job(void **state)
{
    (void)state;
    NEED_FLEET();
    struct vmms_vm vm;
    long t0 = now_ms();
    start_vm(&vm, "hello");
    long t_create = now_ms() - t0;
    put_job(&vm, "hello", hello_mk);
    int status = -1;
    t0 = now_ms();
    if (run(&vm, 20, &status) != VMMS_OK)
        fail_msg("run_job: %s", err);
    long t_run = now_ms() - t0;
    assert_int_equal(status, 0);
    char *fb = feedback_of(&vm, "hello");
    assert_non_null(strstr(fb, "Autodriver: Job exited with status 0"));
    assert_non_null(strstr(fb, "hello from the job"));
    assert_non_null(strstr(fb, "contents of data.txt"));
    free(fb);
    /* a feedback that is not a regular file (a symlink made by root in the
     * container) is refused, never followed */
    int hi = strstr(vm.host, host_str(0, "address")) ? 0 : 1;
    free(sh("ln -sf /etc/hostname '%s/%s/feedback'", host_str(hi, "volume_dir"), vm.name));
    char lnk[PATH_MAX + 64];
    snprintf(lnk, sizeof lnk, "%s/link.feedback", root);
    assert_int_equal(ops->copy_out(ctx, &vm, lnk, 10, err, sizeof err), VMMS_ERR);
    assert_non_null(strstr(err, "not a regular file"));
    /* a bad destination name never reaches the host */
    struct vmms_file badf[] = {{"/etc/hostname", "../x"}};
    assert_int_equal(ops->copy_in(ctx, &vm, badf, 1, 5, err, sizeof err), VMMS_ERR);
    t0 = now_ms();
    if (ops->destroy_vm(ctx, &vm, err, sizeof err) != VMMS_OK)
        fail_msg("destroy_vm: %s", err);
    printf("# create+wait %ld ms, run %ld ms, destroy %ld ms\n", t_create, t_run,
           now_ms() - t0);
    assert_int_equal(ops->destroy_vm(ctx, &vm, err, sizeof err), VMMS_NOT_FOUND);
    assert_int_equal(ops->safe_destroy_vm(ctx, &vm, err, sizeof err), VMMS_OK);
    assert_clean();
}

static void test_round_robin_and_capacity(void **state)
{
    (void)state;
    NEED_FLEET();
    struct vmms_vm vm[5];
    char name[16];
    int on[2] = {0, 0};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "rr%d", i);
        start_vm(&vm[i], name);
        on[strstr(vm[i].host, host_str(0, "address")) ? 0 : 1]++;
        if (i > 0)
            assert_string_not_equal(vm[i].host, vm[i - 1].host);
    }
    assert_int_equal(on[0], 2);
    assert_int_equal(on[1], 2);
    /* max_jobs 2 per host: full */
    init_vm(&vm[4], "rr4");
    assert_int_equal(ops->initialize_vm(ctx, &vm[4], err, sizeof err), VMMS_BUSY);
    assert_non_null(strstr(err, "max_jobs"));
    /* a copy of the struct (as the consumer makes) still finds its host */
    struct vmms_vm copy = vm[1];
    copy.host[0] = '\0';
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(ops->get_partial_output(ctx, &copy, 100, &out, &len, err, sizeof err),
                     VMMS_OK);
    free(out);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ops->destroy_vm(ctx, &vm[i], err, sizeof err), VMMS_OK);
    assert_clean();
}

struct runner {
    struct vmms_vm vm;
    int rc, status;
    char err[1024];
    long ms;
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    struct vmms_run run = {.timeout_s = 30, .max_output = 65536, .nproc = NPROC,
                           .fsize = 1 << 20};
    long t0 = now_ms();
    r->rc = ops->run_job(ctx, &r->vm, &run, &r->status, r->err, sizeof r->err);
    r->ms = now_ms() - t0;
    return NULL;
}

static void test_concurrent_with_partial_output(void **state)
{
    (void)state;
    NEED_FLEET();
    struct runner r[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "cc%d", i);
        start_vm(&r[i].vm, tag);
        put_job(&r[i].vm, tag, slow_mk);
    }
    long t0 = now_ms();
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, run_thread, &r[i]);
    /* partial output grows while they run, over the same SSH sessions */
    int polls = 0, grew = 0;
    size_t last = 0;
    for (; now_ms() - t0 < 2500; polls++) {
        char *out = NULL;
        size_t len = 0;
        if (ops->get_partial_output(ctx, &r[0].vm, 65536, &out, &len, err, sizeof err) ==
            VMMS_OK) {
            if (len > last)
                grew++;
            last = len;
        }
        free(out);
        usleep(200 * 1000);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    long wall = now_ms() - t0;
    printf("# 3 concurrent 3 s jobs: wall %ld ms; partial output grew %d times in %d polls\n",
           wall, grew, polls);
    for (int i = 0; i < 3; i++) {
        if (r[i].rc != VMMS_OK)
            fail_msg("run %d: %s", i, r[i].err);
        assert_int_equal(r[i].status, 0);
    }
    assert_true(grew >= 2);
    assert_true(wall < 3 * 3000); /* they ran side by side */
    for (int i = 0; i < 3; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "cc%d", i);
        char *fb = feedback_of(&r[i].vm, tag);
        assert_non_null(strstr(fb, "line 10"));
        free(fb);
        assert_int_equal(ops->destroy_vm(ctx, &r[i].vm, err, sizeof err), VMMS_OK);
    }
    assert_clean();
}

static void test_timeout_and_destroy_during_run(void **state)
{
    (void)state;
    NEED_FLEET();
    struct vmms_vm vm;
    start_vm(&vm, "loop");
    put_job(&vm, "loop", loop_mk);
    int status = -1;
    long t0 = now_ms();
    if (run(&vm, 2, &status) != VMMS_OK)
        fail_msg("run_job: %s", err);
    assert_int_equal(status, 2); /* autodriver: timed out */
    assert_true(now_ms() - t0 < 2000 + 5000);
    char *fb = feedback_of(&vm, "loop");
    assert_non_null(strstr(fb, "timed out"));
    free(fb);
    assert_int_equal(ops->destroy_vm(ctx, &vm, err, sizeof err), VMMS_OK);

    struct runner r;
    pthread_t t;
    start_vm(&r.vm, "abort");
    put_job(&r.vm, "abort", loop_mk);
    pthread_create(&t, NULL, run_thread, &r);
    usleep(1500 * 1000);
    struct vmms_vm copy = r.vm; /* destroy gets a copy, as in the consumer */
    t0 = now_ms();
    assert_int_equal(ops->destroy_vm(ctx, &copy, err, sizeof err), VMMS_OK);
    pthread_join(t, NULL);
    printf("# destroy during run: run_job returned %ld ms after destroy began\n",
           now_ms() - t0);
    assert_int_equal(r.rc, VMMS_ERR);
    assert_true(now_ms() - t0 < 5000);
    assert_clean();
}

/* Host 2's sshd dies while a job runs there: the run fails fast (no hang),
 * new VMs go to host 1, the dead host's VM is removed once it is back. */
static void test_host_down_and_back(void **state)
{
    (void)state;
    NEED_FLEET();
    struct vmms_vm a, b;
    start_vm(&a, "hd-a");
    start_vm(&b, "hd-b");
    struct vmms_vm *on2 = strstr(a.host, host_str(1, "address")) ? &a : &b;
    struct vmms_vm *on1 = on2 == &a ? &b : &a;
    struct runner r;
    r.vm = *on2;
    put_job(on2, "hd", loop_mk);
    pthread_t t;
    pthread_create(&t, NULL, run_thread, &r);
    usleep(1000 * 1000);
    long t0 = now_ms();
    free(sh("tests/fleet/fleet.sh stop %s 2", F));
    pthread_join(t, NULL);
    long fail_ms = now_ms() - t0;
    printf("# sshd killed: run_job on that host failed after %ld ms: %s\n", fail_ms, r.err);
    assert_int_equal(r.rc, VMMS_ERR);
    assert_true(fail_ms < 3000);
    /* its container still runs on the (shared) engine; removal is deferred */
    assert_int_equal(ops->safe_destroy_vm(ctx, on2, err, sizeof err), VMMS_OK);
    char *left = sh("docker ps -aq --filter name=^/%s$", on2->name);
    assert_true(left[0] != '\0');
    free(left);
    /* new VMs land on host 1 only */
    struct vmms_vm c;
    start_vm(&c, "hd-c");
    assert_string_equal(c.host, on1->host);
    assert_int_equal(ops->destroy_vm(ctx, &c, err, sizeof err), VMMS_OK);
    /* back: within the backoff (1..2 s) it reconnects and removes the leftover */
    free(sh("tests/fleet/fleet.sh start %s 2", F));
    t0 = now_ms();
    bool gone = false;
    while (now_ms() - t0 < 15000 && !gone) {
        char *l = sh("docker ps -aq --filter name=^/%s$", on2->name);
        gone = l[0] == '\0';
        free(l);
        if (!gone)
            usleep(200 * 1000);
    }
    printf("# host back: leftover removed %ld ms after sshd restarted\n", now_ms() - t0);
    assert_true(gone);
    struct vmms_vm d, e;
    start_vm(&d, "hd-d");
    start_vm(&e, "hd-e");
    assert_string_not_equal(d.host, e.host); /* both hosts in rotation again */
    assert_int_equal(ops->destroy_vm(ctx, &d, err, sizeof err), VMMS_OK);
    assert_int_equal(ops->destroy_vm(ctx, &e, err, sizeof err), VMMS_OK);
    assert_int_equal(ops->destroy_vm(ctx, on1, err, sizeof err), VMMS_OK);
    assert_clean();
}

/* Caps no test tarball comes near (config image_max_*). */
static const struct vmms_image_limits LIM = {1LL << 40, 100000000};

static void test_images_load_and_list(void **state)
{
    (void)state;
    NEED_FLEET();
    int pid = (int)getpid();
    /* tiny.tar tags the name it is loaded as; other.tar another name
     * (/build only creates or replaces the tag it names: refused) */
    char *ok = sh("cd '%s' && mkdir -p tiny && echo hi > tiny/hello && "
                  "tar -C tiny -c . | docker import - ddunit-tiny-%d:src >/dev/null && "
                  "docker tag ddunit-tiny-%d:src ddunit-loaded-%d:v1 && "
                  "docker save -o tiny.tar ddunit-loaded-%d:v1 && "
                  "docker save -o other.tar ddunit-tiny-%d:src && "
                  "docker rmi ddunit-tiny-%d:src ddunit-loaded-%d:v1 >/dev/null && echo ok",
                  root, pid, pid, pid, pid, pid, pid, pid);
    assert_string_equal(ok, "ok");
    free(ok);
    char tar[PATH_MAX + 32], other[PATH_MAX + 32], want[64];
    snprintf(tar, sizeof tar, "%s/tiny.tar", root);
    snprintf(other, sizeof other, "%s/other.tar", root);
    snprintf(want, sizeof want, "ddunit-loaded-%d:v1", pid);
    assert_int_equal(ops->load_image(ctx, other, want, 60, &LIM, err, sizeof err), VMMS_ERR);
    printf("# load_image under another tag: %s\n", err);
    long t0 = now_ms();
    int rc = ops->load_image(ctx, tar, want, 60, &LIM, err, sizeof err);
    long ms = now_ms() - t0;
    char **names = NULL;
    size_t n = 0;
    int grc = ops->get_images(ctx, &names, &n, err, sizeof err);
    bool has_loaded = false, has_grading = false;
    for (size_t i = 0; grc == VMMS_OK && i < n; i++) {
        has_loaded |= strcmp(names[i], want) == 0;
        has_grading |= strcmp(names[i], image) == 0;
    }
    vmms_free_names(names, n);
    free(sh("docker rmi -f %s ddunit-tiny-%d:src >/dev/null 2>&1", want, pid));
    printf("# load_image of a tiny image on 2 hosts: %ld ms\n", ms);
    if (rc != VMMS_OK)
        fail_msg("load_image: %s", err);
    assert_int_equal(grc, VMMS_OK);
    assert_true(has_loaded);
    assert_true(has_grading);
    assert_int_equal(ops->load_image(ctx, tar, "Bad Name", 60, &LIM, err, sizeof err),
                     VMMS_ERR);
    assert_int_equal(ops->load_image(ctx, "/nonexistent.tar", "x", 60, &LIM, err, sizeof err),
                     VMMS_ERR);
}

static void test_wrong_host_key_refused(void **state)
{
    (void)state;
    NEED_FLEET();
    json_t *hosts = json_pack("[o]", host_cfg(0, fleet_str("known_hosts_wrong"), 2));
    json_t *cfg = live_cfg(hosts);
    void *c = NULL;
    int rc = ops->init(cfg, P, &c, err, sizeof err);
    json_decref(cfg);
    if (rc != VMMS_OK)
        fail_msg("init: %s", err);
    struct vmms_vm vm;
    init_vm(&vm, "wrongkey");
    assert_int_equal(ops->initialize_vm(c, &vm, err, sizeof err), VMMS_UNAVAILABLE);
    ops->shutdown(c);
}

/* ---- setup ---- */

/* A new consumer process: its own plugin context on the same fleet. */
static void *fresh_ctx(void)
{
    json_t *hosts = json_pack("[o, o]", host_cfg(0, fleet_str("known_hosts"), 2),
                              host_cfg(1, fleet_str("known_hosts"), 2));
    json_t *cfg = live_cfg(hosts);
    void *c = NULL;
    int rc = ops->init(cfg, P, &c, err, sizeof err);
    json_decref(cfg);
    if (rc != VMMS_OK)
        fail_msg("init: %s", err);
    return c;
}

static void test_start_attach_reattach(void **state)
{
    (void)state;
    NEED_FLEET();
    assert_non_null(ops->start_job);
    assert_non_null(ops->attach_job);
    struct vmms_vm vm;
    start_vm(&vm, "reattach");
    put_job(&vm, "reattach", "all:\n\t@echo started; sleep 5; echo five seconds later\n");
    struct vmms_run r = {.timeout_s = 30, .max_output = 65536, .nproc = NPROC,
                         .fsize = 1 << 20};
    char handle[128];
    long t0 = now_ms();
    if (ops->start_job(ctx, &vm, &r, handle, sizeof handle, err, sizeof err) != VMMS_OK)
        fail_msg("start_job: %s", err);
    long start_ms = now_ms() - t0;
    assert_true(start_ms < 3000);
    /* drop all state: a fresh context, the vm from name/id/image/host only */
    void *c2 = fresh_ctx();
    struct vmms_vm vm2;
    memset(&vm2, 0, sizeof vm2);
    strcpy(vm2.name, vm.name);
    strcpy(vm2.id, vm.id);
    strcpy(vm2.image, vm.image);
    strcpy(vm2.host, vm.host);
    int status = -1;
    long t1 = now_ms();
    int rc = ops->attach_job(c2, &vm2, handle, 300, &status, err, sizeof err);
    long to_ms = now_ms() - t1;
    if (rc != VMMS_TIMEOUT)
        fail_msg("attach_job(300 ms): rc=%d %s", rc, err);
    assert_true(to_ms >= 250 && to_ms < 3000);
    rc = ops->attach_job(c2, &vm2, handle, 20000, &status, err, sizeof err);
    long end_ms = now_ms() - t0;
    if (rc != VMMS_OK)
        fail_msg("attach_job: %s", err);
    assert_int_equal(status, 0);
    assert_true(end_ms >= 4500 && end_ms < 10000);
    char *fb = feedback_of(&vm, "reattach");
    assert_non_null(strstr(fb, "five seconds later"));
    free(fb);
    printf("# start_job %ld ms, attach TIMEOUT(300 ms) %ld ms, run end seen at %ld ms\n",
           start_ms, to_ms, end_ms);
    /* a run that is not there, and a container that is gone: NOT_FOUND */
    assert_int_equal(ops->attach_job(c2, &vm2, "0123456789abcdef0123456789abcdef", 1000,
                                     &status, err, sizeof err), VMMS_NOT_FOUND);
    if (ops->destroy_vm(ctx, &vm, err, sizeof err) != VMMS_OK)
        fail_msg("destroy_vm: %s", err);
    assert_int_equal(ops->attach_job(c2, &vm2, handle, 1000, &status, err, sizeof err),
                     VMMS_NOT_FOUND);
    ops->shutdown(c2);
    assert_clean();
}

/* The disk limit's flags, the copy-in (a copy, last of one name wins) and
 * partial output as the grading user (a symlink to /etc/shadow shows
 * nothing of it). */
static void test_sandbox(void **state)
{
    (void)state;
    NEED_FLEET();
    struct vmms_vm vm;
    init_vm(&vm, "sandbox");
    vm.memory_mb = 200;
    vm.disk_mb = 64;
    if (ops->initialize_vm(ctx, &vm, err, sizeof err) != VMMS_OK)
        fail_msg("initialize_vm: %s", err);
    assert_int_equal(ops->wait_vm(ctx, &vm, 30, err, sizeof err), VMMS_OK);
    char *o = sh("docker inspect -f '{{.HostConfig.Memory}} {{.HostConfig.ReadonlyRootfs}} "
                 "{{index .HostConfig.Tmpfs \"/home\"}} {{.HostConfig.ShmSize}}' %s", vm.id);
    printf("# %s\n", o);
    assert_non_null(strstr(o, "276824064 true")); /* (200 + 64) MiB */
    assert_non_null(strstr(o, "size=36m"));
    assert_non_null(strstr(o, " 4194304"));
    free(o);
    char a[PATH_MAX + 64], b[PATH_MAX + 64];
    snprintf(a, sizeof a, "%s/first", root);
    snprintf(b, sizeof b, "%s/second", root);
    write_file(a, "first\n");
    write_file(b, "second\n");
    struct vmms_file files[] = {{a, "same.txt"}, {b, "same.txt"}};
    assert_int_equal(ops->copy_in(ctx, &vm, files, 2, 20, err, sizeof err), VMMS_OK);
    o = sh("docker exec %s cat /home/mount/same.txt", vm.id);
    assert_string_equal(o, "second");
    free(o);
    free(sh("docker exec -u root %s sh -c 'mkdir -p /home/autograde && "
            "ln -s /etc/shadow /home/autograde/output.log'", vm.id));
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(ops->get_partial_output(ctx, &vm, 4096, &out, &len, err, sizeof err),
                     VMMS_OK);
    if (memmem(out, len, "root:", 5))
        fail_msg("partial output shows /etc/shadow: %.*s", (int)len, out);
    free(out);
    if (ops->destroy_vm(ctx, &vm, err, sizeof err) != VMMS_OK)
        fail_msg("destroy_vm: %s", err);
    assert_clean();
}

static int setup_group(void **state)
{
    (void)state;
    char so[PATH_MAX + 64];
    const char *build = getenv("BUILD");
    char self[PATH_MAX] = "";
    if (build == NULL || *build == '\0') {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            build = dirname(dirname(self));
        } else {
            build = "build";
        }
    }
    snprintf(so, sizeof so, "%s/vmms/distDocker.so", build);
    dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "cannot load %s: %s\n", so, dlerror());
        return -1;
    }
    ops = dlsym(dl, "vmms_plugin");
    if (ops == NULL || ops->abi != VMMS_ABI_VERSION || strcmp(ops->name, "distDocker") != 0) {
        fprintf(stderr, "%s: no vmms_plugin of the right ABI\n", so);
        return -1;
    }
    snprintf(P, sizeof P, "ddunit-%d-", (int)getpid());
    snprintf(F, sizeof F, "u%d", (int)(getpid() % 100000));
    snprintf(root, sizeof root, "/tmp/ddunit-%d-XXXXXX", (int)getpid());
    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(keyfile, sizeof keyfile, "%s/key", root);
    snprintf(khfile, sizeof khfile, "%s/known_hosts", root);
    write_file(keyfile, "not a key\n");
    write_file(khfile, "");

    /* the fleet (run from the source tree, as tests/run.sh does) */
    if (geteuid() == 0 && access("tests/fleet/fleet.sh", X_OK) == 0 &&
        access("/usr/sbin/sshd", X_OK) == 0) {
        char *o = sh("FLEET_OWNER_PID=%d tests/fleet/fleet.sh up 2 %s 2>&1 | tail -n 1",
                     (int)getpid(), F);
        char path[256];
        snprintf(path, sizeof path, "/run/tango-fleet/%s/fleet.json", F);
        fleet = json_load_file(path, 0, NULL);
        if (fleet == NULL)
            printf("# no fleet: %s\n", o);
        free(o);
    }
    if (fleet) {
        json_t *hosts = json_pack("[o, o]", host_cfg(0, fleet_str("known_hosts"), 2),
                                  host_cfg(1, fleet_str("known_hosts"), 2));
        json_t *cfg = live_cfg(hosts);
        int rc = ops->init(cfg, P, &ctx, err, sizeof err);
        json_decref(cfg);
        if (rc != VMMS_OK) {
            fprintf(stderr, "init on the fleet: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int teardown_group(void **state)
{
    (void)state;
    if (ctx)
        ops->shutdown(ctx);
    free(sh("docker ps -aq --filter name=^/%s | xargs -r docker rm -f >/dev/null 2>&1", P));
    if (fleet)
        free(sh("tests/fleet/fleet.sh down 2 %s 2>&1", F));
    json_decref(fleet);
    if (root[0])
        free(sh("rm -rf '%s'", root));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_rejected),
        cmocka_unit_test(test_no_host_up),
        cmocka_unit_test(test_hello_job),
        cmocka_unit_test(test_round_robin_and_capacity),
        cmocka_unit_test(test_concurrent_with_partial_output),
        cmocka_unit_test(test_timeout_and_destroy_during_run),
        cmocka_unit_test(test_host_down_and_back),
        cmocka_unit_test(test_images_load_and_list),
        cmocka_unit_test(test_wrong_host_key_refused),
        cmocka_unit_test(test_start_attach_reattach),
        cmocka_unit_test(test_sandbox),
    };
    return cmocka_run_group_tests_name("vmms_distdocker", tests, setup_group, teardown_group);
}
