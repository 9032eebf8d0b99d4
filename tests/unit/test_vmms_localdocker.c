/*
 * test_vmms_localdocker.c: the localDocker VMMS plugin against the real
 * Docker engine. Loads $BUILD/vmms/localDocker.so (BUILD defaults to the
 * build directory this binary sits in) with dlopen and drives it through its
 * ops table with real jobs in the image autograding_image (override with
 * TANGO_TEST_IMAGE; build it with `make image`). Each run uses its own
 * prefix "tangotest-<pid>-" and volume directory; after each test no
 * container or volume directory of that prefix may be left.
 * Prints the measured timings (create+start, exec round trip, destroy).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
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
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "vmms.h"

#define SOCK "/var/run/docker.sock"
/* autodriver -u: RLIMIT_NPROC counts every process of the grading user's uid
 * on the host, in every container at once (other tests' jobs included), so
 * keep it roomy; the container's PidsLimit is the per-job bound. */
#define NPROC 1000

static const struct vmms_ops *ops;
static void *dl;
static void *ctx;        /* prefix P */
static char P[64];       /* "tangotest-<pid>-" */
static char root[PATH_MAX];   /* temp dir: volumes/, inputs, outputs */
static char voldir[PATH_MAX + 16];
static const char *image;
static char err[1024];

/* ---- small helpers ---- */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
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

static size_t collect(char *d, size_t s, size_t n, void *arg)
{
    FILE *m = arg;
    return fwrite(d, s, n, m) * s;
}

/* The test's own Docker client (the plugin is what is under test). Returns
 * the HTTP status; *body (if given) gets the answer, malloc'd. */
static long docker(const char *method, const char *path, const char *ctype,
                   const void *data, size_t datalen, char **body, size_t *bodylen)
{
    CURL *h = curl_easy_init();
    char url[2048];
    snprintf(url, sizeof url, "http://localhost/v1.41%s", path);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    struct curl_slist *hd = NULL;
    if (ctype) {
        char line[128];
        snprintf(line, sizeof line, "Content-Type: %s", ctype);
        hd = curl_slist_append(hd, line);
    }
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, SOCK);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, m);
    if (data) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)datalen);
    }
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    fclose(m);
    if (body) {
        *body = buf;
        if (bodylen)
            *bodylen = len;
    } else {
        free(buf);
    }
    return code;
}

static json_t *inspect(const char *id)
{
    char path[256], *body;
    snprintf(path, sizeof path, "/containers/%s/json", id);
    long code = docker("GET", path, NULL, NULL, 0, &body, NULL);
    json_t *j = code == 200 ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

static void init_vm(struct vmms_vm *vm, const char *suffix)
{
    memset(vm, 0, sizeof *vm);
    snprintf(vm->name, sizeof vm->name, "%s%s", P, suffix);
    snprintf(vm->image, sizeof vm->image, "%s", image);
    vm->network = false;
}

static void start_vm(void *c, struct vmms_vm *vm, const char *suffix, long *create_ms)
{
    if (vm->name[0] == '\0')
        init_vm(vm, suffix);
    long t0 = now_ms();
    int rc = ops->initialize_vm(c, vm, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("initialize_vm(%s): %s", vm->name, err);
    rc = ops->wait_vm(c, vm, 30, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("wait_vm(%s): %s", vm->name, err);
    if (create_ms)
        *create_ms = now_ms() - t0;
    assert_true(strlen(vm->id) >= 12);
}

static void stop_vm(void *c, struct vmms_vm *vm, long *destroy_ms)
{
    long t0 = now_ms();
    int rc = ops->destroy_vm(c, vm, err, sizeof err);
    if (destroy_ms)
        *destroy_ms = now_ms() - t0;
    if (rc != VMMS_OK)
        fail_msg("destroy_vm(%s): %s", vm->name, err);
}

/* Writes a job (Makefile + extra file) under root/<tag>/ and copies it in. */
static void put_job(struct vmms_vm *vm, const char *tag, const char *makefile)
{
    char dir[PATH_MAX + 64], mk[PATH_MAX + 128], hello[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s/%s", root, tag);
    mkdir(dir, 0755);
    snprintf(mk, sizeof mk, "%s/autograde-Makefile", dir);
    snprintf(hello, sizeof hello, "%s/hello.txt", dir);
    write_file(mk, makefile, 0644);
    write_file(hello, "contents of hello.txt\n", 0600); /* not world-readable: copied */
    struct vmms_file files[] = {{mk, "Makefile"}, {hello, "hello.txt"}};
    int rc = ops->copy_in(ctx, vm, files, 2, 10, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("copy_in: %s", err);
}

static char *feedback_of(struct vmms_vm *vm, const char *tag)
{
    char out[PATH_MAX + 64];
    snprintf(out, sizeof out, "%s/%s.feedback", root, tag);
    int rc = ops->copy_out(ctx, vm, out, 10, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("copy_out: %s", err);
    char *text = read_file(out);
    assert_non_null(text);
    return text;
}

struct list {
    const char *want;
    int seen_want, seen_total;
};

static void count_vm(const char *name, const char *id, const char *img, bool running,
                     void *arg)
{
    (void)id, (void)img, (void)running;
    struct list *l = arg;
    l->seen_total++;
    if (l->want && strcmp(name, l->want) == 0)
        l->seen_want++;
}

/* No container of the prefix and nothing in the volume directory. */
static void assert_clean(void)
{
    struct list l = {0};
    assert_int_equal(ops->get_vms(ctx, count_vm, &l, err, sizeof err), VMMS_OK);
    assert_int_equal(l.seen_total, 0);
    DIR *d = opendir(voldir);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    assert_int_equal(n, 0);
}

static const char *hello_mk =
    "all:\n"
    "\t@echo hello from the job\n"
    "\t@cat hello.txt\n";

static const char *loop_mk =
    "all:\n"
    "\t@echo looping\n"
    "\t@while true; do :; done\n";

static const char *slow_mk =
    "all:\n"
    "\t@for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do "
    "echo line $$i of the slow printer; sleep 0.25; done\n";

static const char *netdev_mk =
    "all:\n"
    "\t@cat /proc/net/dev\n";

/* ---- tests ---- */

static void test_config_rejected(void **state)
{
    (void)state;
    void *c = NULL;
    struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"bogus\": 1}", "bogus"},
        {"{\"default_cores\": \"2\"}", "default_cores"},
        {"{\"api_timeout_s\": 0}", "api_timeout_s"},
        {"{\"default_memory_mb\": 1.5}", "default_memory_mb"},
        {"{\"socket\": 5}", "socket"},
        {"{\"volume_dir\": \"relative/dir\"}", "volume_dir"},
        {"{\"host_volume_dir\": \"relative/dir\"}", "host_volume_dir"},
        {"{\"host_volume_dir\": \"/srv/a\\nb\"}", "host_volume_dir"},
        {"[1, 2]", "object"},
        {"{\"socket\": \"/nonexistent/docker.sock\"}", "/nonexistent/docker.sock"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *cfg = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(cfg);
        err[0] = '\0';
        int rc = ops->init(cfg, P, &c, err, sizeof err);
        json_decref(cfg);
        assert_int_not_equal(rc, VMMS_OK);
        assert_null(c);
        if (strstr(err, bad[i].needle) == NULL)
            fail_msg("config %s: error \"%s\" does not name %s", bad[i].json, err,
                     bad[i].needle);
    }
    assert_int_not_equal(ops->init(NULL, "bad/prefix", &c, err, sizeof err), VMMS_OK);
    assert_null(c);
    assert_clean();
}

static void test_hello_job(void **state)
{
    (void)state;
    struct vmms_vm vm = {0};
    long create_ms, destroy_ms;
    start_vm(ctx, &vm, "hello", &create_ms);
    put_job(&vm, "hello", hello_mk);

    /* A bad destination name never reaches the disk. */
    struct vmms_file badf[] = {{"/etc/hostname", "../escape"}};
    assert_int_equal(ops->copy_in(ctx, &vm, badf, 1, 5, err, sizeof err), VMMS_ERR);
    struct vmms_file badf2[] = {{"/etc/hostname", "a/b"}};
    assert_int_equal(ops->copy_in(ctx, &vm, badf2, 1, 5, err, sizeof err), VMMS_ERR);
    struct vmms_file badf3[] = {{"/etc/hostname", ""}};
    assert_int_equal(ops->copy_in(ctx, &vm, badf3, 1, 5, err, sizeof err), VMMS_ERR);

    /* exec round trip: a partial-output peek is one exec create/start/inspect */
    char *out = NULL;
    size_t len = 0;
    long t0 = now_ms();
    assert_int_equal(ops->get_partial_output(ctx, &vm, 1024, &out, &len, err, sizeof err),
                     VMMS_OK);
    long exec_ms = now_ms() - t0;
    assert_int_equal(len, 0); /* no job has run yet */
    free(out);

    struct vmms_run run = {.timeout_s = 20, .max_output = 1 << 20, .nproc = NPROC,
                           .fsize = 1 << 20};
    int status = -1;
    t0 = now_ms();
    int rc = ops->run_job(ctx, &vm, &run, &status, err, sizeof err);
    long run_ms = now_ms() - t0;
    if (rc != VMMS_OK)
        fail_msg("run_job: %s", err);
    assert_int_equal(status, 0);
    char *fb = feedback_of(&vm, "hello");
    if (!strstr(fb, "Autodriver: Job exited with status 0") ||
        !strstr(fb, "hello from the job") || !strstr(fb, "contents of hello.txt"))
        fail_msg("unexpected feedback:\n%s", fb);
    printf("hello job feedback:\n%s", fb);
    free(fb);
    stop_vm(ctx, &vm, &destroy_ms);
    printf("timing: create+start+wait=%ld ms, exec round trip=%ld ms, hello job=%ld ms, "
           "destroy=%ld ms\n", create_ms, exec_ms, run_ms, destroy_ms);
    assert_clean();
}

static void test_timeout_job(void **state)
{
    (void)state;
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "loop", NULL);
    put_job(&vm, "loop", loop_mk);
    struct vmms_run run = {.timeout_s = 2, .max_output = 1 << 20, .nproc = NPROC,
                           .fsize = 1 << 20};
    int status = -1;
    long t0 = now_ms();
    int rc = ops->run_job(ctx, &vm, &run, &status, err, sizeof err);
    long ms = now_ms() - t0;
    if (rc != VMMS_OK)
        fail_msg("run_job: %s", err);
    assert_int_equal(status, 2);
    assert_true(ms >= 2000 && ms < 15000);
    char *fb = feedback_of(&vm, "loop");
    if (!strstr(fb, "timed out"))
        fail_msg("unexpected feedback:\n%s", fb);
    free(fb);
    stop_vm(ctx, &vm, NULL);
    assert_clean();
}

static void test_network(void **state)
{
    (void)state;
    struct vmms_run run = {.timeout_s = 10, .max_output = 1 << 20, .nproc = NPROC,
                           .fsize = 1 << 20};
    for (int net = 0; net <= 1; net++) {
        struct vmms_vm vm;
        init_vm(&vm, net ? "net-on" : "net-off");
        vm.network = net;
        start_vm(ctx, &vm, NULL, NULL);
        put_job(&vm, vm.name, netdev_mk);
        int status = -1;
        if (ops->run_job(ctx, &vm, &run, &status, err, sizeof err) != VMMS_OK)
            fail_msg("run_job: %s", err);
        assert_int_equal(status, 0);
        char *fb = feedback_of(&vm, vm.name);
        /* count the interfaces: lines of /proc/net/dev holding a ':' */
        int ifaces = 0, lo = 0;
        for (char *line = strtok(fb, "\n"); line; line = strtok(NULL, "\n")) {
            char *colon = strchr(line, ':');
            if (colon == NULL || strstr(line, "Autodriver"))
                continue;
            ifaces++;
            if (strstr(line, "lo:"))
                lo++;
        }
        free(fb);
        assert_int_equal(lo, 1);
        if (net)
            assert_true(ifaces >= 2); /* control: networking gives an eth0 */
        else
            assert_int_equal(ifaces, 1);
        stop_vm(ctx, &vm, NULL);
    }
    assert_clean();
}

static void test_limits(void **state)
{
    (void)state;
    struct vmms_vm vm;
    init_vm(&vm, "limits");
    vm.memory_mb = 200;
    vm.pids_limit = 77;
    vm.cores = 1;
    vm.disk_mb = 64;
    start_vm(ctx, &vm, NULL, NULL);
    json_t *j = inspect(vm.id);
    assert_non_null(j);
    json_t *hc = json_object_get(j, "HostConfig");
    /* the tmpfs storage is charged to the memory cgroup: memory + disk */
    assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 264LL << 20);
    assert_int_equal(json_integer_value(json_object_get(hc, "MemorySwap")), 264LL << 20);
    assert_true(json_is_true(json_object_get(hc, "ReadonlyRootfs")));
    json_t *tmpfs = json_object_get(hc, "Tmpfs");
    assert_non_null(strstr(json_string_value(json_object_get(tmpfs, "/home")), "size=36m"));
    assert_non_null(strstr(json_string_value(json_object_get(tmpfs, "/home/output")),
                           "size=4m"));
    assert_non_null(strstr(json_string_value(json_object_get(tmpfs, "/tmp")), "size=16m"));
    assert_non_null(strstr(json_string_value(json_object_get(tmpfs, "/var/tmp")), "size=4m"));
    assert_int_equal(json_integer_value(json_object_get(hc, "ShmSize")), 4LL << 20);
    assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), 77);
    assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 1000000000LL);
    assert_string_equal(json_string_value(json_object_get(hc, "NetworkMode")), "none");
    json_t *labels = json_object_get(json_object_get(j, "Config"), "Labels");
    assert_string_equal(json_string_value(json_object_get(labels, "tango.prefix")), P);
    assert_string_equal(json_string_value(json_object_get(labels, "tango.vm")), vm.name);
    json_t *mnt = json_array_get(json_object_get(j, "Mounts"), 0);
    assert_string_equal(json_string_value(json_object_get(mnt, "Destination")), "/home/mount");
    json_decref(j);
    stop_vm(ctx, &vm, NULL);
    assert_clean();
}

static void test_get_vms(void **state)
{
    (void)state;
    char other_prefix[96], other_vol[PATH_MAX + 32];
    snprintf(other_prefix, sizeof other_prefix, "%sother-", P);
    snprintf(other_vol, sizeof other_vol, "%s/othervol", root);
    json_t *cfg = json_pack("{s:s}", "volume_dir", other_vol);
    void *c2 = NULL;
    int rc = ops->init(cfg, other_prefix, &c2, err, sizeof err);
    json_decref(cfg);
    if (rc != VMMS_OK)
        fail_msg("init: %s", err);

    struct vmms_vm a = {0}, b = {0};
    start_vm(ctx, &a, "mine", NULL);
    init_vm(&b, "x");
    snprintf(b.name, sizeof b.name, "%stheirs", other_prefix);
    start_vm(c2, &b, NULL, NULL);

    struct list l = {.want = a.name};
    assert_int_equal(ops->get_vms(ctx, count_vm, &l, err, sizeof err), VMMS_OK);
    assert_int_equal(l.seen_want, 1);
    assert_int_equal(l.seen_total, 1); /* not the other prefix's */
    struct list l2 = {.want = b.name};
    assert_int_equal(ops->get_vms(c2, count_vm, &l2, err, sizeof err), VMMS_OK);
    assert_int_equal(l2.seen_want, 1);
    assert_int_equal(l2.seen_total, 1);

    /* A name outside the prefix is refused. */
    struct vmms_vm stranger;
    init_vm(&stranger, "x");
    snprintf(stranger.name, sizeof stranger.name, "notmine-%d", (int)getpid());
    assert_int_equal(ops->initialize_vm(ctx, &stranger, err, sizeof err), VMMS_ERR);

    stop_vm(ctx, &a, NULL);
    stop_vm(c2, &b, NULL);
    /* destroy of a gone VM: destroy says not found, safe_destroy says ok */
    assert_int_equal(ops->destroy_vm(ctx, &a, err, sizeof err), VMMS_NOT_FOUND);
    assert_int_equal(ops->safe_destroy_vm(ctx, &a, err, sizeof err), VMMS_OK);
    struct list l3 = {0};
    assert_int_equal(ops->get_vms(c2, count_vm, &l3, err, sizeof err), VMMS_OK);
    assert_int_equal(l3.seen_total, 0);
    ops->shutdown(c2);
    rmdir(other_vol);
    assert_clean();
}

static bool has_image(void *c, const char *name)
{
    char **names = NULL;
    size_t n = 0;
    if (ops->get_images(c, &names, &n, err, sizeof err) != VMMS_OK)
        fail_msg("get_images: %s", err);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            found = true;
    vmms_free_names(names, n);
    return found;
}

static void test_get_images(void **state)
{
    (void)state;
    if (!has_image(ctx, image))
        fail_msg("get_images does not list %s", image);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(ops->get_images(ctx, &names, &n, err, sizeof err), VMMS_OK);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        assert_false(l > 7 && strcmp(names[i] + l - 7, ":latest") == 0);
        assert_string_not_equal(names[i], "<none>");
    }
    vmms_free_names(names, n);
    assert_clean();
}

struct runner {
    struct vmms_vm *vm;
    struct vmms_run run;
    int rc, status;
    long done_ms;
    char err[512];
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    r->rc = ops->run_job(ctx, r->vm, &r->run, &r->status, r->err, sizeof r->err);
    r->done_ms = now_ms();
    return NULL;
}

static void test_partial_output(void **state)
{
    (void)state;
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "slow", NULL);
    put_job(&vm, "slow", slow_mk);
    struct runner r = {.vm = &vm, .run = {.timeout_s = 30, .max_output = 1 << 20,
                                          .nproc = NPROC, .fsize = 1 << 20}};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_thread, &r), 0);
    char *o1 = NULL, *o2 = NULL;
    size_t l1 = 0, l2 = 0;
    /* first peek once some output is there */
    for (int i = 0; i < 100 && l1 == 0; i++) {
        usleep(100 * 1000);
        free(o1);
        assert_int_equal(ops->get_partial_output(ctx, &vm, 4096, &o1, &l1, err, sizeof err),
                         VMMS_OK);
    }
    assert_true(l1 > 0);
    usleep(1000 * 1000);
    assert_int_equal(ops->get_partial_output(ctx, &vm, 4096, &o2, &l2, err, sizeof err),
                     VMMS_OK);
    assert_true(l2 > l1);
    assert_memory_equal(o1, o2, l1);
    assert_non_null(strstr(o1, "line 1 of the slow printer"));
    /* max_bytes is honoured */
    char *o3 = NULL;
    size_t l3 = 0;
    assert_int_equal(ops->get_partial_output(ctx, &vm, 5, &o3, &l3, err, sizeof err),
                     VMMS_OK);
    assert_int_equal(l3, 5);
    assert_memory_equal(o3, "line ", 5);
    free(o1);
    free(o2);
    free(o3);
    pthread_join(t, NULL);
    if (r.rc != VMMS_OK)
        fail_msg("run_job: %s", r.err);
    assert_int_equal(r.status, 0);
    char *fb = feedback_of(&vm, "slow");
    assert_non_null(strstr(fb, "line 16 of the slow printer"));
    free(fb);
    /* after the job autodriver has removed output.log: the peek still has it all */
    char *o5 = NULL;
    size_t l5 = 0;
    assert_int_equal(ops->get_partial_output(ctx, &vm, 4096, &o5, &l5, err, sizeof err),
                     VMMS_OK);
    if (l5 < l2 || !strstr(o5, "line 16 of the slow printer"))
        fail_msg("partial output after the job: \"%s\"", o5);
    free(o5);
    stop_vm(ctx, &vm, NULL);
    /* a destroyed VM has no partial output */
    char *o4 = NULL;
    size_t l4 = 0;
    assert_int_not_equal(ops->get_partial_output(ctx, &vm, 10, &o4, &l4, err, sizeof err),
                         VMMS_OK);
    assert_null(o4);
    assert_clean();
}

static void test_destroy_during_run(void **state)
{
    (void)state;
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "abort", NULL);
    put_job(&vm, "abort", loop_mk);
    struct runner r = {.vm = &vm, .run = {.timeout_s = 60, .max_output = 1 << 20,
                                          .nproc = NPROC, .fsize = 1 << 20}};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_thread, &r), 0);
    sleep(2);
    long t0 = now_ms();
    struct vmms_vm copy = vm; /* the consumer's other thread has its own view */
    assert_int_equal(ops->destroy_vm(ctx, &copy, err, sizeof err), VMMS_OK);
    pthread_join(t, NULL);
    long ms = r.done_ms - t0;
    printf("timing: run_job returned %ld ms after destroy_vm started (rc=%d: %s)\n", ms,
           r.rc, r.err);
    assert_int_equal(r.rc, VMMS_ERR);
    assert_true(ms < 5000);
    assert_clean();
}

static void test_volume_removal_is_safe(void **state)
{
    (void)state;
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "rmtree", NULL);
    /* what a hostile job could leave in /home/mount: a symlink out, a deep
     * tree (deeper than the remover's fd budget per pass) */
    char outside[PATH_MAX + 32], keep[PATH_MAX + 48], p[PATH_MAX * 2];
    snprintf(outside, sizeof outside, "%s/outside", root);
    mkdir(outside, 0755);
    snprintf(keep, sizeof keep, "%s/keep.txt", outside);
    write_file(keep, "must survive\n", 0644);
    snprintf(p, sizeof p, "%s/%s/link", voldir, vm.name);
    assert_int_equal(symlink(outside, p), 0);
    snprintf(p, sizeof p, "%s/%s", voldir, vm.name);
    assert_int_equal(chdir(p), 0);
    for (int i = 0; i < 150; i++) {
        assert_int_equal(mkdir("d", 0755), 0);
        assert_int_equal(chdir("d"), 0);
        if (i % 50 == 0)
            assert_int_equal(symlink(outside, "ln"), 0);
    }
    write_file("deep.txt", "x", 0644);
    char cwd[PATH_MAX];
    snprintf(cwd, sizeof cwd, "%s", root);
    assert_int_equal(chdir(cwd), 0);
    stop_vm(ctx, &vm, NULL);
    struct stat st;
    assert_int_equal(stat(keep, &st), 0);
    assert_clean();
}

/* Caps no test tarball comes near (config image_max_*). */
static const struct vmms_image_limits LIM = {1LL << 40, 100000000};

static void test_load_image(void **state)
{
    (void)state;
    /* A tiny image made here: import a one-file rootfs, `docker save` it. */
    char src[96], dst[96], path[512];
    snprintf(src, sizeof src, "%sloadsrc", P);
    snprintf(dst, sizeof dst, "%sloaded", P);
    char tarpath[PATH_MAX + 32];
    snprintf(tarpath, sizeof tarpath, "%s/rootfs.tar", root);
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd, "cd %s && mkdir -p rootfs && echo hi > rootfs/hello && "
             "tar -C rootfs -cf rootfs.tar .", root);
    assert_int_equal(system(cmd), 0);
    char *tar = read_file(tarpath);
    struct stat st;
    assert_int_equal(stat(tarpath, &st), 0);
    snprintf(path, sizeof path, "/images/create?fromSrc=-&repo=%s&tag=latest", src);
    char *body = NULL;
    long code = docker("POST", path, "application/x-tar", tar, (size_t)st.st_size, &body, NULL);
    free(tar);
    free(body);
    assert_int_equal(code, 200);
    snprintf(path, sizeof path, "/images/%s/get", src);
    size_t savelen = 0;
    code = docker("GET", path, NULL, NULL, 0, &body, &savelen);
    assert_int_equal(code, 200);
    char savepath[PATH_MAX + 32];
    snprintf(savepath, sizeof savepath, "%s/saved.tar", root);
    FILE *f = fopen(savepath, "w");
    fwrite(body, 1, savelen, f);
    fclose(f);
    free(body);

    /* /build only creates or replaces the tag it names: a tarball that
     * would tag another name is refused, and that tag is not made */
    assert_int_equal(ops->load_image(ctx, savepath, dst, 60, &LIM, err, sizeof err), VMMS_ERR);
    printf("load_image under another tag: %s\n", err);
    assert_false(has_image(ctx, dst));
    /* under the name it has, it loads */
    long t0 = now_ms();
    int rc = ops->load_image(ctx, savepath, src, 60, &LIM, err, sizeof err);
    long ms = now_ms() - t0;
    if (rc != VMMS_OK)
        fail_msg("load_image: %s", err);
    printf("timing: load_image of a %zu-byte tarball=%ld ms\n", savelen, ms);
    assert_true(has_image(ctx, src));

    /* not a tarball: Docker's own message comes back */
    char junk[PATH_MAX + 32];
    snprintf(junk, sizeof junk, "%s/junk.tar", root);
    write_file(junk, "this is not a tar file\n", 0644);
    err[0] = '\0';
    assert_int_equal(ops->load_image(ctx, junk, dst, 60, &LIM, err, sizeof err), VMMS_ERR);
    printf("load_image of junk: %s\n", err);
    assert_true(strlen(err) > 10);
    assert_int_equal(ops->load_image(ctx, savepath, "bad name", 60, &LIM, err, sizeof err),
                     VMMS_ERR);

    snprintf(path, sizeof path, "/images/%s?force=true", src);
    assert_int_equal(docker("DELETE", path, NULL, NULL, 0, NULL, NULL), 200);
    assert_false(has_image(ctx, src));
    assert_false(has_image(ctx, dst));
    assert_clean();
}

static void test_bad_image_and_names(void **state)
{
    (void)state;
    struct vmms_vm vm;
    init_vm(&vm, "noimage");
    snprintf(vm.image, sizeof vm.image, "%snosuchimage", P);
    assert_int_equal(ops->initialize_vm(ctx, &vm, err, sizeof err), VMMS_NOT_FOUND);
    assert_non_null(strstr(err, "No such image"));
    assert_clean();

    /* a stale volume directory (no container) is replaced */
    struct vmms_vm a = {0};
    init_vm(&a, "dup");
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", voldir, a.name);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/%s/stale", voldir, a.name);
    write_file(p, "old", 0644);
    start_vm(ctx, &a, NULL, NULL);
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0);

    /* a second VM of a live VM's name fails and leaves the first alone */
    char in[PATH_MAX + 32];
    snprintf(in, sizeof in, "%s/dupfile", root);
    write_file(in, "mine", 0644);
    struct vmms_file f[] = {{in, "mine.txt"}};
    assert_int_equal(ops->copy_in(ctx, &a, f, 1, 5, err, sizeof err), VMMS_OK);
    struct vmms_vm b;
    init_vm(&b, "dup");
    assert_int_equal(ops->initialize_vm(ctx, &b, err, sizeof err), VMMS_ERR);
    snprintf(p, sizeof p, "%s/%s/mine.txt", voldir, a.name);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_nlink, 1); /* a copy, never a link to the host's file */
    assert_int_equal(ops->wait_vm(ctx, &a, 5, err, sizeof err), VMMS_OK);
    stop_vm(ctx, &a, NULL);
    assert_int_equal(stat(in, &st), 0); /* the source survives */
    assert_int_equal(st.st_nlink, 1);
    assert_clean();
}

struct worker {
    int idx;
    int status;
    char *feedback;
    char err[512];
};

static void *lifecycle_thread(void *arg)
{
    struct worker *w = arg;
    struct vmms_vm vm = {0};
    char tag[32];
    snprintf(tag, sizeof tag, "par%d", w->idx);
    init_vm(&vm, tag);
    w->status = -100;
    if (ops->initialize_vm(ctx, &vm, w->err, sizeof w->err) != VMMS_OK ||
        ops->wait_vm(ctx, &vm, 30, w->err, sizeof w->err) != VMMS_OK)
        return NULL;
    char mk[PATH_MAX + 64], fb[PATH_MAX + 64];
    snprintf(mk, sizeof mk, "%s/%s.mk", root, tag);
    snprintf(fb, sizeof fb, "%s/%s.feedback", root, tag);
    FILE *f = fopen(mk, "w");
    fprintf(f, "all:\n\t@echo worker %d done\n", w->idx);
    fclose(f);
    struct vmms_file files[] = {{mk, "Makefile"}};
    struct vmms_run run = {.timeout_s = 20, .max_output = 1 << 20, .nproc = NPROC,
                           .fsize = 1 << 20};
    if (ops->copy_in(ctx, &vm, files, 1, 10, w->err, sizeof w->err) == VMMS_OK &&
        ops->run_job(ctx, &vm, &run, &w->status, w->err, sizeof w->err) == VMMS_OK &&
        ops->copy_out(ctx, &vm, fb, 10, w->err, sizeof w->err) == VMMS_OK)
        w->feedback = read_file(fb);
    char e[256];
    if (ops->destroy_vm(ctx, &vm, e, sizeof e) != VMMS_OK)
        snprintf(w->err, sizeof w->err, "destroy: %s", e);
    return NULL;
}

static void test_concurrent_jobs(void **state)
{
    (void)state;
    enum { N = 4 };
    struct worker w[N];
    pthread_t t[N];
    long t0 = now_ms();
    for (int i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].idx = i;
        assert_int_equal(pthread_create(&t[i], NULL, lifecycle_thread, &w[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    printf("timing: %d jobs in parallel, create to destroy=%ld ms\n", N, now_ms() - t0);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "worker %d done", i);
        if (w[i].status != 0 || w[i].feedback == NULL || !strstr(w[i].feedback, want))
            fail_msg("worker %d: status %d err %s feedback %s", i, w[i].status, w[i].err,
                     w[i].feedback ? w[i].feedback : "(none)");
        free(w[i].feedback);
    }
    assert_clean();
}

/* ---- setup ---- */

/* A vm as a successor rebuilds it from a job record: no priv. */
static void rebuilt_vm(struct vmms_vm *out, const struct vmms_vm *in)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", in->name);
    snprintf(out->id, sizeof out->id, "%s", in->id);
    snprintf(out->image, sizeof out->image, "%s", in->image);
    snprintf(out->host, sizeof out->host, "%s", in->host);
}

static void *fresh_ctx(void)
{
    json_t *cfg = json_pack("{s:s, s:i}", "volume_dir", voldir, "run_grace_s", 5);
    void *c = NULL;
    int rc = ops->init(cfg, P, &c, err, sizeof err);
    json_decref(cfg);
    if (rc != VMMS_OK)
        fail_msg("init: %s", err);
    return c;
}

static const char *five_s_mk =
    "all:\n"
    "\t@echo started; sleep 5; echo five seconds later\n";

static void test_start_attach_reattach(void **state)
{
    (void)state;
    assert_non_null(ops->start_job);
    assert_non_null(ops->attach_job);
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "reattach", NULL);
    put_job(&vm, "reattach", five_s_mk);
    struct vmms_run run = {.timeout_s = 30, .max_output = 1 << 20, .nproc = NPROC,
                           .fsize = 1 << 20};
    char handle[128];
    long t0 = now_ms();
    assert_int_equal(ops->start_job(ctx, &vm, &run, handle, sizeof handle, err, sizeof err),
                     VMMS_OK);
    long start_ms = now_ms() - t0;
    assert_true(start_ms < 2000); /* returns once started, not at the end */
    assert_true(strlen(handle) >= 12);

    /* a new process: its own plugin context, the vm from name/id/host only */
    void *c2 = fresh_ctx();
    struct vmms_vm vm2;
    rebuilt_vm(&vm2, &vm);
    int status = -1;
    long t1 = now_ms();
    assert_int_equal(ops->attach_job(c2, &vm2, handle, 300, &status, err, sizeof err),
                     VMMS_TIMEOUT);
    long to_ms = now_ms() - t1;
    assert_true(to_ms >= 250 && to_ms < 2000);
    int rc = ops->attach_job(c2, &vm2, handle, 20000, &status, err, sizeof err);
    long end_ms = now_ms() - t0;
    if (rc != VMMS_OK)
        fail_msg("attach_job: %s", err);
    assert_int_equal(status, 0);
    assert_true(end_ms >= 4500 && end_ms < 9000);
    /* attaching to a run that is over answers at once */
    long t2 = now_ms();
    assert_int_equal(ops->attach_job(c2, &vm2, handle, 5000, &status, err, sizeof err),
                     VMMS_OK);
    assert_true(now_ms() - t2 < 1000);
    char *fb = feedback_of(&vm, "reattach");
    assert_non_null(strstr(fb, "five seconds later"));
    free(fb);
    printf("timing: start_job=%ld ms, attach TIMEOUT(300 ms)=%ld ms, run end seen at %ld ms\n",
           start_ms, to_ms, end_ms);

    /* a run that is not there: NOT_FOUND */
    char bogus[65];
    memset(bogus, 'a', 64);
    bogus[64] = '\0';
    assert_int_equal(ops->attach_job(c2, &vm2, bogus, 1000, &status, err, sizeof err),
                     VMMS_NOT_FOUND);
    /* the container removed: NOT_FOUND */
    stop_vm(ctx, &vm, NULL);
    assert_int_equal(ops->attach_job(c2, &vm2, handle, 1000, &status, err, sizeof err),
                     VMMS_NOT_FOUND);
    ops->shutdown(c2);
    assert_clean();
}

/* The process that started a run is SIGKILLed: the run goes on, and
 * another context attaches to it and gets its status and feedback. */
static void test_run_survives_sigkill(void **state)
{
    (void)state;
    assert_non_null(ops->start_job);
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "sigkill", NULL);
    put_job(&vm, "sigkill", "all:\n\t@echo started; sleep 3; echo three seconds later\n");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        void *c = fresh_ctx();
        struct vmms_run run = {.timeout_s = 30, .max_output = 1 << 20, .nproc = NPROC,
                               .fsize = 1 << 20};
        char handle[128] = "";
        if (ops->start_job(c, &vm, &run, handle, sizeof handle, err, sizeof err) != VMMS_OK)
            _exit(1);
        if (write(fds[1], handle, strlen(handle) + 1) < 0)
            _exit(1);
        for (;;)
            pause(); /* killed here, holding whatever it holds */
    }
    close(fds[1]);
    char handle[128] = "";
    ssize_t n = read(fds[0], handle, sizeof handle - 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_true(n > 12);
    void *c2 = fresh_ctx();
    struct vmms_vm vm2;
    rebuilt_vm(&vm2, &vm);
    int status = -1;
    int rc = ops->attach_job(c2, &vm2, handle, 20000, &status, err, sizeof err);
    if (rc != VMMS_OK)
        fail_msg("attach_job after the starter was killed: %s", err);
    assert_int_equal(status, 0);
    char *fb = feedback_of(&vm, "sigkill");
    assert_non_null(strstr(fb, "three seconds later"));
    free(fb);
    ops->shutdown(c2);
    stop_vm(ctx, &vm, NULL);
    assert_clean();
}

/* The run goes on when the attach is given up, and a container removed while
 * a successor waits ends the wait with NOT_FOUND promptly. */
static void test_attach_container_removed(void **state)
{
    (void)state;
    assert_non_null(ops->start_job);
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "gone", NULL);
    put_job(&vm, "gone", loop_mk);
    struct vmms_run run = {.timeout_s = 60, .max_output = 1 << 20, .nproc = NPROC,
                           .fsize = 1 << 20};
    char handle[128];
    assert_int_equal(ops->start_job(ctx, &vm, &run, handle, sizeof handle, err, sizeof err),
                     VMMS_OK);
    void *c2 = fresh_ctx();
    struct vmms_vm vm2;
    rebuilt_vm(&vm2, &vm);
    int status = -1;
    assert_int_equal(ops->attach_job(c2, &vm2, handle, 200, &status, err, sizeof err),
                     VMMS_TIMEOUT);
    /* remove the container behind the plugin's back, as a crash would */
    char path[300];
    snprintf(path, sizeof path, "/containers/%s?force=true", vm.id);
    long t0 = now_ms();
    assert_int_equal(docker("DELETE", path, NULL, NULL, 0, NULL, NULL), 204);
    assert_int_equal(ops->attach_job(c2, &vm2, handle, 10000, &status, err, sizeof err),
                     VMMS_NOT_FOUND);
    assert_true(now_ms() - t0 < 3000);
    ops->shutdown(c2);
    ops->safe_destroy_vm(ctx, &vm, err, sizeof err);
    assert_clean();
}

/* Runs sh -c cmd in container id as root (what a job that became root
 * could do); returns its raw output stream, malloc'd. */
static char *root_exec(const char *id, const char *cmd)
{
    char path[300], *body = NULL;
    json_t *req = json_pack("{s:[s,s,s], s:b, s:b, s:s}", "Cmd", "sh", "-c", cmd,
                            "AttachStdout", 1, "AttachStderr", 1, "User", "root");
    char *js = json_dumps(req, 0);
    json_decref(req);
    snprintf(path, sizeof path, "/containers/%s/exec", id);
    long code = docker("POST", path, "application/json", js, strlen(js), &body, NULL);
    free(js);
    json_t *r = json_loads(body ? body : "", 0, NULL);
    free(body);
    assert_int_equal(code, 201);
    snprintf(path, sizeof path, "/exec/%s/start", json_string_value(json_object_get(r, "Id")));
    json_decref(r);
    const char *start = "{\"Detach\":false}";
    size_t len = 0;
    code = docker("POST", path, "application/json", start, strlen(start), &body, &len);
    assert_int_equal(code, 200);
    /* drop the 8-byte frame headers of the stream */
    char *text = calloc(1, len + 1);
    size_t o = 0;
    for (size_t i = 0; i + 8 <= len;) {
        const unsigned char *h = (const unsigned char *)body + i;
        size_t n = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
        i += 8;
        if (n > len - i)
            n = len - i;
        memcpy(text + o, body + i, n);
        o += n;
        i += n;
    }
    free(body);
    return text;
}

static void test_copy_in_isolated(void **state)
{
    (void)state;
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "copyin", NULL);
    char dir[PATH_MAX + 64], lab[PATH_MAX + 128], mk1[PATH_MAX + 128], mk2[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s/copyin", root);
    mkdir(dir, 0755);
    snprintf(lab, sizeof lab, "%s/lab.txt", dir);
    snprintf(mk1, sizeof mk1, "%s/Makefile", dir);
    snprintf(mk2, sizeof mk2, "%s/autograde-Makefile", dir);
    write_file(lab, "the lab's own bytes\n", 0644); /* world-readable, same fs */
    write_file(mk1, "first\n", 0644);
    write_file(mk2, "second\n", 0644);
    struct vmms_file files[] = {{lab, "lab.txt"}, {mk1, "Makefile"}, {mk2, "Makefile"}};
    assert_int_equal(ops->copy_in(ctx, &vm, files, 3, 10, err, sizeof err), VMMS_OK);
    char *out = root_exec(vm.id, "echo changed > /home/mount/lab.txt; "
                                 "chmod 666 /home/mount/lab.txt; cat /home/mount/Makefile");
    assert_non_null(strstr(out, "second"));  /* the last one listed wins */
    assert_null(strstr(out, "first"));
    free(out);
    char *text = read_file(lab);
    assert_string_equal(text, "the lab's own bytes\n");
    free(text);
    struct stat st;
    assert_int_equal(stat(lab, &st), 0);
    assert_int_equal(st.st_nlink, 1);
    assert_int_equal(st.st_mode & 0777, 0644);
    stop_vm(ctx, &vm, NULL);
    assert_clean();
}

/* Partial output reads as the grading user: a symlink to a root-only file
 * gives nothing of it, and a FIFO does not hold the peek for long. */
static void test_partial_output_hostile(void **state)
{
    (void)state;
    struct vmms_vm vm = {0};
    start_vm(ctx, &vm, "peek", NULL);
    free(root_exec(vm.id, "mkdir -p /home/autograde && chown autograde /home/autograde && "
                          "ln -s /etc/shadow /home/autograde/output.log"));
    char *o = NULL;
    size_t l = 0;
    assert_int_equal(ops->get_partial_output(ctx, &vm, 4096, &o, &l, err, sizeof err),
                     VMMS_OK);
    if (memmem(o, l, "root:", 5) != NULL)
        fail_msg("partial output shows /etc/shadow: %.*s", (int)l, o);
    free(o);
    /* the same with the link one directory up */
    free(root_exec(vm.id, "rm /home/autograde/output.log; "
                          "ln -s /etc /home/autograde/autolab; "
                          "ln -sf /etc/shadow /etc/output.log 2>/dev/null; true"));
    assert_int_equal(ops->get_partial_output(ctx, &vm, 4096, &o, &l, err, sizeof err),
                     VMMS_OK);
    assert_null(memmem(o, l, "root:", 5));
    free(o);
    free(root_exec(vm.id, "rm -f /home/autograde/autolab; mkfifo /home/autograde/output.log; "
                          "chown autograde /home/autograde/output.log"));
    long t0 = now_ms();
    int rc = ops->get_partial_output(ctx, &vm, 4096, &o, &l, err, sizeof err);
    long ms = now_ms() - t0;
    printf("timing: partial output of a FIFO answered in %ld ms (rc=%d)\n", ms, rc);
    assert_true(ms < 5000);
    free(o);
    stop_vm(ctx, &vm, NULL);
    assert_clean();
}

/* An image without the grading user: partial output fails with a clear
 * error (never Docker's message passed off as the job's output), and the
 * job itself still runs. */
static void test_partial_output_no_user(void **state)
{
    (void)state;
    char img[96], cmd[512];
    snprintf(img, sizeof img, "%snouser", P);
    snprintf(cmd, sizeof cmd,
             "c=$(docker run -d --entrypoint '' %s userdel autograde) && docker wait $c "
             ">/dev/null && docker commit $c %s >/dev/null && docker rm $c >/dev/null",
             image, img);
    assert_int_equal(system(cmd), 0);
    struct vmms_vm vm;
    init_vm(&vm, "nouser");
    snprintf(vm.image, sizeof vm.image, "%s", img);
    start_vm(ctx, &vm, NULL, NULL);
    char *o = NULL;
    size_t l = 0;
    int rc = ops->get_partial_output(ctx, &vm, 4096, &o, &l, err, sizeof err);
    printf("partial output without the user: rc=%d %s\n", rc, err);
    assert_int_equal(rc, VMMS_ERR);
    assert_null(o);
    assert_non_null(strstr(err, "autograde"));
    stop_vm(ctx, &vm, NULL);
    snprintf(cmd, sizeof cmd, "docker rmi -f %s >/dev/null", img);
    assert_int_equal(system(cmd), 0);
    assert_clean();
}

static void destroy_all_cb(const char *name, const char *id, const char *img, bool running,
                           void *arg)
{
    (void)img, (void)running;
    struct vmms_vm vm = {0};
    snprintf(vm.name, sizeof vm.name, "%s", name);
    snprintf(vm.id, sizeof vm.id, "%s", id);
    char e[256];
    ops->safe_destroy_vm(arg, &vm, e, sizeof e);
}

/* After each test: remove whatever a failed test left behind. */
static int teardown_test(void **state)
{
    (void)state;
    ops->get_vms(ctx, destroy_all_cb, ctx, err, sizeof err);
    return 0;
}

static int setup_group(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char so[PATH_MAX + 64];
    const char *build = getenv("BUILD");
    char self[PATH_MAX] = "";
    if (build == NULL || *build == '\0') {
        /* the build directory this binary lives in: <build>/tests/<me> */
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            build = dirname(dirname(self));
        } else {
            build = "build";
        }
    }
    snprintf(so, sizeof so, "%s/vmms/localDocker.so", build);
    dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        fprintf(stderr, "cannot load %s: %s\n", so, dlerror());
        return -1;
    }
    printf("plugin: %s\n", so);
    ops = dlsym(dl, "vmms_plugin");
    if (ops == NULL || ops->abi != VMMS_ABI_VERSION ||
        strcmp(ops->name, "localDocker") != 0) {
        fprintf(stderr, "%s: no vmms_plugin of the right ABI\n", so);
        return -1;
    }
    image = getenv("TANGO_TEST_IMAGE");
    if (image == NULL || *image == '\0')
        image = "autograding_image";
    snprintf(P, sizeof P, "tangotest-%d-", (int)getpid());
    snprintf(root, sizeof root, "/tmp/tangotest-%d-XXXXXX", (int)getpid());
    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(voldir, sizeof voldir, "%s/volumes", root);
    json_t *cfg = json_pack("{s:s, s:i, s:i}", "volume_dir", voldir, "run_grace_s", 5,
                            "api_timeout_s", 30);
    int rc = ops->init(cfg, P, &ctx, err, sizeof err);
    json_decref(cfg);
    if (rc != VMMS_OK) {
        fprintf(stderr, "init: %s\n", err);
        return -1;
    }
    struct stat st;
    if (stat(voldir, &st) != 0 || (st.st_mode & 0777) != 0700) {
        fprintf(stderr, "volume_dir %s not created 0700\n", voldir);
        return -1;
    }
    char path[300];
    snprintf(path, sizeof path, "/images/%s/json", image);
    if (docker("GET", path, NULL, NULL, 0, NULL, NULL) != 200) {
        fprintf(stderr, "image %s is missing: build it with `make image`\n", image);
        return -1;
    }
    return 0;
}

static int teardown_group(void **state)
{
    (void)state;
    if (ctx) {
        teardown_test(NULL);
        ops->shutdown(ctx);
    }
    /* whatever a failed test left under any prefix of this run */
    char path[512], *body = NULL;
    snprintf(path, sizeof path,
             "/containers/json?all=true&filters=%%7B%%22name%%22%%3A%%5B%%22%s%%22%%5D%%7D", P);
    if (docker("GET", path, NULL, NULL, 0, &body, NULL) == 200) {
        json_t *list = json_loads(body, 0, NULL);
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c) {
            snprintf(path, sizeof path, "/containers/%s?force=true&v=true",
                     json_string_value(json_object_get(c, "Id")));
            docker("DELETE", path, NULL, NULL, 0, NULL, NULL);
        }
        json_decref(list);
    }
    free(body);
    if (root[0]) {
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", root);
    }
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_config_rejected, teardown_test),
        cmocka_unit_test_teardown(test_hello_job, teardown_test),
        cmocka_unit_test_teardown(test_timeout_job, teardown_test),
        cmocka_unit_test_teardown(test_network, teardown_test),
        cmocka_unit_test_teardown(test_limits, teardown_test),
        cmocka_unit_test_teardown(test_get_vms, teardown_test),
        cmocka_unit_test_teardown(test_get_images, teardown_test),
        cmocka_unit_test_teardown(test_partial_output, teardown_test),
        cmocka_unit_test_teardown(test_destroy_during_run, teardown_test),
        cmocka_unit_test_teardown(test_volume_removal_is_safe, teardown_test),
        cmocka_unit_test_teardown(test_load_image, teardown_test),
        cmocka_unit_test_teardown(test_bad_image_and_names, teardown_test),
        cmocka_unit_test_teardown(test_concurrent_jobs, teardown_test),
        cmocka_unit_test_teardown(test_start_attach_reattach, teardown_test),
        cmocka_unit_test_teardown(test_attach_container_removed, teardown_test),
        cmocka_unit_test_teardown(test_run_survives_sigkill, teardown_test),
        cmocka_unit_test_teardown(test_copy_in_isolated, teardown_test),
        cmocka_unit_test_teardown(test_partial_output_hostile, teardown_test),
        cmocka_unit_test_teardown(test_partial_output_no_user, teardown_test),
    };
    return cmocka_run_group_tests_name("vmms_localdocker", tests, setup_group, teardown_group);
}
