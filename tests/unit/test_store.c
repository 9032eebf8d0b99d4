/*
 * test_store.c: common/store.c (the producer side of the Redis store)
 * against a real redis-server that this test starts itself on a free port
 * (no persistence, killed at the end). Every test uses its own key prefix
 * "ut<pid>-<n>:" and checks that nothing outside the run's prefix was
 * written. The last tests kill Redis under a live store handle, check that
 * calls fail fast with STORE_UNAVAILABLE, restart Redis on the same port and
 * check that the same handle works again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "job.h"
#include "store.h"
#include "redis_fixture.h"

static char root_prefix[32];    /* "ut<pid>-" */
static char P[64];              /* this test's prefix */
static int test_no;

static int group_setup(void **state)
{
    (void)state;
    snprintf(redis_dir, sizeof redis_dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(redis_dir))
        return -1;
    snprintf(root_prefix, sizeof root_prefix, "ut%d-", (int)getpid());
    redis_port = free_port();
    if (redis_port <= 0 || redis_start()) {
        fprintf(stderr, "cannot start redis-server on port %d\n", redis_port);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    redis_stop(SIGTERM);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- direct commands ---- */

/* The key for suffix under this test's prefix. */
#define KMAX 400
static const char *K(char *buf, const char *suffix)
{
    int n = snprintf(buf, KMAX, "%s%s", P, suffix);
    assert_true(n > 0 && n < KMAX);
    return buf;
}

/* Every key in databases 0 and 3 carries the run's prefix. */
static void assert_all_keys_prefixed(void)
{
    for (int db = 0; db <= 3; db += 3) {
        redis_ok("SELECT %d", db);
        redisReply *r = redis_ok_reply("KEYS *");
        for (size_t i = 0; i < r->elements; i++)
            if (strncmp(r->element[i]->str, root_prefix, strlen(root_prefix)) != 0)
                fail_msg("key \"%s\" (db %d) lacks the prefix \"%s\"", r->element[i]->str, db,
                         root_prefix);
        freeReplyObject(r);
    }
    redis_ok("SELECT 0");
}

/* ---- store handles ---- */

/* A store for this test: a fresh prefix, db and extra URL text as given. */
static struct store *new_store_url(const char *userinfo, int db)
{
    snprintf(P, sizeof P, "%s%d:", root_prefix, ++test_no);
    char url[160], pfx[96];
    snprintf(url, sizeof url, "TANGO_REDIS_URL=redis://%s127.0.0.1:%d/%d",
             userinfo ? userinfo : "", redis_port, db);
    snprintf(pfx, sizeof pfx, "TANGO_PREFIX=%s", P);
    char *const env[] = {url, pfx, "TANGO_REDIS_TIMEOUT_MS=300", NULL};
    struct tango_config cfg;
    char err[256];
    if (config_load(&cfg, NULL, env, err, sizeof err))
        fail_msg("config_load: %s", err);
    struct store *st = store_new(&cfg);
    config_free(&cfg);
    assert_non_null(st);
    return st;
}

static struct store *new_store(void)
{
    return new_store_url(NULL, 0);
}

static struct job *make_job(const char *name)
{
    struct job *j = job_new();
    j->name = strdup(name);
    j->courselab = strdup("lab1");
    j->lab_dir = strdup("0123456789abcdef-lab1");
    j->image = strdup("autograding_image");
    j->output_file = strdup("out.txt");
    j->callback_url = NULL;
    j->timeout_s = 20;
    j->max_output_bytes = 1024000;
    j->nfiles = 1;
    j->files = calloc(1, sizeof *j->files);
    j->files[0].local_file = strdup("autograde-Makefile");
    j->files[0].dest_file = strdup("Makefile");
    j->created_at = 1763759944.5;
    job_trace(j, "Added job");
    return j;
}

/* Adds a job named name and returns its id. */
static int64_t add_job(struct store *st, const char *name)
{
    struct job *j = make_job(name);
    assert_int_equal(store_add_job(st, j), STORE_OK);
    int64_t id = j->id;
    job_free(j);
    return id;
}

/* Asserts that arr is an array of job objects with exactly these ids. */
static void assert_ids(json_t *arr, const long long *ids, size_t n)
{
    assert_true(json_is_array(arr));
    if (json_array_size(arr) != n)
        fail_msg("%zu jobs, want %zu", json_array_size(arr), n);
    for (size_t i = 0; i < n; i++) {
        json_int_t id = json_integer_value(json_object_get(json_array_get(arr, i), "id"));
        if (id != ids[i])
            fail_msg("job %zu has id %lld, want %lld", i, (long long)id, ids[i]);
    }
}

/* ---- tests ---- */

static void test_add_job(void **state)
{
    (void)state;
    struct store *st = new_store();
    assert_int_equal(store_ping(st), STORE_OK);
    char k[KMAX];

    struct job *j = make_job("first");
    j->callback_url = strdup("http://cb.example.org/x");
    assert_int_equal(store_add_job(st, j), STORE_OK);
    assert_true(j->id == 1);
    /* The record in jobs:live is the job's JSON form, id included. */
    redisReply *r = redis_ok_reply("HGET %s 1", K(k, "jobs:live"));
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    json_t *stored = json_loadb(r->str, r->len, 0, NULL);
    freeReplyObject(r);
    json_t *want = job_to_json(j);
    assert_true(json_equal(stored, want));
    json_decref(want);
    json_decref(stored);
    job_free(j);

    assert_true(add_job(st, "second") == 2);
    assert_true(add_job(st, "third") == 3);

    r = redis_ok_reply("LRANGE %s 0 -1", K(k, "queue:c:normal:all"));
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "1");
    assert_string_equal(r->element[1]->str, "2");
    assert_string_equal(r->element[2]->str, "3");
    freeReplyObject(r);
    r = redis_ok_reply("ZRANGE %s 0 -1", K(k, "jobs:live:ids"));
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[2]->str, "3");
    freeReplyObject(r);
    r = redis_ok_reply("HGET %s job_requests", K(k, "counters"));
    assert_string_equal(r->str, "3");
    freeReplyObject(r);
    r = redis_ok_reply("HLEN %s", K(k, "jobs:live"));
    assert_int_equal(r->integer, 3);
    freeReplyObject(r);

    /* Queue positions: 1-based, 0 when not queued. */
    long long pos = -1;
    assert_int_equal(store_queue_position(st, 1, &pos), STORE_OK);
    assert_int_equal(pos, 1);
    assert_int_equal(store_queue_position(st, 3, &pos), STORE_OK);
    assert_int_equal(pos, 3);
    assert_int_equal(store_queue_position(st, 99, &pos), STORE_OK);
    assert_int_equal(pos, 0);
    /* Once a job leaves the queue its position is 0 and the others move up. */
    redis_ok("LREM %s 0 1", K(k, "queue:c:normal:all"));
    assert_int_equal(store_queue_position(st, 1, &pos), STORE_OK);
    assert_int_equal(pos, 0);
    assert_int_equal(store_queue_position(st, 3, &pos), STORE_OK);
    assert_int_equal(pos, 2);

    json_t *info = NULL;
    assert_int_equal(store_info(st, &info), STORE_OK);
    assert_int_equal(json_integer_value(json_object_get(info, "job_requests")), 3);
    json_decref(info);

    store_free(st);
    assert_all_keys_prefixed();
}

static void test_large_ids(void **state)
{
    (void)state;
    struct store *st = new_store();
    char k[KMAX];
    assert_true(add_job(st, "a") == 1);
    redis_ok("SET %s 1000", K(k, "job:lastid"));
    assert_true(add_job(st, "b") == 1001);
    redis_ok("SET %s 4294967296", K(k, "job:lastid"));
    struct job *j = make_job("big");
    assert_int_equal(store_add_job(st, j), STORE_OK);
    assert_true(j->id == 4294967297LL);
    job_free(j);
    /* Ids are never reused: after a big one comes the next. */
    assert_true(add_job(st, "c") == 4294967298LL);

    json_t *o = NULL;
    bool dead = true;
    assert_int_equal(store_get_job(st, 4294967297LL, &o, &dead), STORE_OK);
    assert_false(dead);
    assert_true(json_integer_value(json_object_get(o, "id")) == 4294967297LL);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "big");
    json_decref(o);

    redisReply *r = redis_ok_reply("LRANGE %s 0 -1", K(k, "queue:c:normal:all"));
    assert_int_equal(r->elements, 4);
    assert_string_equal(r->element[2]->str, "4294967297");
    freeReplyObject(r);
    long long pos;
    assert_int_equal(store_queue_position(st, 4294967298LL, &pos), STORE_OK);
    assert_int_equal(pos, 4);

    /* /jobs order is numeric id order, not text order. */
    json_t *list = NULL;
    assert_int_equal(store_list_jobs(st, false, 100, &list), STORE_OK);
    const long long want[] = {1, 1001, 4294967297LL, 4294967298LL};
    assert_ids(list, want, 4);
    json_decref(list);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_list_live(void **state)
{
    (void)state;
    struct store *st = new_store();
    json_t *list = NULL;
    assert_int_equal(store_list_jobs(st, false, 10, &list), STORE_OK);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    assert_int_equal(store_list_jobs(st, true, 10, &list), STORE_OK);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);

    for (int i = 0; i < 12; i++) {
        char name[16];
        snprintf(name, sizeof name, "job%d", i + 1);
        assert_true(add_job(st, name) == i + 1);
    }
    assert_int_equal(store_list_jobs(st, false, 100, &list), STORE_OK);
    const long long all[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    assert_ids(list, all, 12);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 4), "name")),
                        "job5");
    json_decref(list);
    /* The cap keeps the oldest (FIFO order). */
    assert_int_equal(store_list_jobs(st, false, 5, &list), STORE_OK);
    assert_ids(list, all, 5);
    json_decref(list);
    assert_int_equal(store_list_jobs(st, false, 1, &list), STORE_OK);
    assert_ids(list, all, 1);
    json_decref(list);
    /* A record that vanished between the two reads is skipped. */
    char k[KMAX];
    redis_ok("HDEL %s 2", K(k, "jobs:live"));
    assert_int_equal(store_list_jobs(st, false, 3, &list), STORE_OK);
    const long long gap[] = {1, 3};
    assert_ids(list, gap, 2);
    json_decref(list);
    store_free(st);
    assert_all_keys_prefixed();
}

/* Writes a dead job record the way the consumer does (hash + zset). */
static void put_dead(long long id, const char *name)
{
    char k[KMAX];
    struct job *j = make_job(name);
    j->id = id;
    j->state = JOB_DONE;
    j->outcome = strdup("Success: Autodriver returned normally");
    char *text = job_dumps(j);
    job_free(j);
    redis_ok("HSET %s %lld %s", K(k, "jobs:dead"), id, text);
    redis_ok("ZADD %s %lld %lld", K(k, "jobs:dead:ids"), id, id);
    free(text);
}

static void test_dead_and_get(void **state)
{
    (void)state;
    struct store *st = new_store();
    assert_true(add_job(st, "live1") == 1);
    put_dead(10, "d10");
    put_dead(12, "d12");
    put_dead(11, "d11");
    put_dead(9, "d9");

    json_t *list = NULL;
    assert_int_equal(store_list_jobs(st, true, 100, &list), STORE_OK);
    const long long recent[] = {12, 11, 10, 9};
    assert_ids(list, recent, 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "state")),
                        "done");
    json_decref(list);
    assert_int_equal(store_list_jobs(st, true, 2, &list), STORE_OK);
    assert_ids(list, recent, 2);
    json_decref(list);
    /* Live list is unaffected. */
    assert_int_equal(store_list_jobs(st, false, 100, &list), STORE_OK);
    const long long live[] = {1};
    assert_ids(list, live, 1);
    json_decref(list);

    json_t *o = NULL;
    bool dead = true;
    assert_int_equal(store_get_job(st, 1, &o, &dead), STORE_OK);
    assert_false(dead);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "live1");
    assert_string_equal(json_string_value(json_object_get(o, "state")), "queued");
    json_decref(o);
    dead = false;
    assert_int_equal(store_get_job(st, 11, &o, &dead), STORE_OK);
    assert_true(dead);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "d11");
    assert_string_equal(json_string_value(json_object_get(o, "outcome")),
                        "Success: Autodriver returned normally");
    json_decref(o);
    o = NULL;
    assert_int_equal(store_get_job(st, 999, &o, &dead), STORE_NOT_FOUND);
    assert_null(o);
    assert_int_equal(store_get_job(st, 4294967297LL, &o, &dead), STORE_NOT_FOUND);
    assert_null(o);
    /* A record that is not JSON is an error, not a crash. */
    char k[KMAX];
    redis_ok("HSET %s 77 %s", K(k, "jobs:dead"), "{not json");
    assert_int_equal(store_get_job(st, 77, &o, &dead), STORE_ERROR);
    assert_null(o);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_lab_files(void **state)
{
    (void)state;
    struct store *st = new_store();
    const char *lab = "0123456789abcdef-lab1";
    const char *m1 = "d41d8cd98f00b204e9800998ecf8427e";
    const char *m2 = "0cc175b9c0f1b6a831c399e269772661";
    json_t *files = NULL;
    assert_int_equal(store_lab_files(st, lab, &files), STORE_OK);
    assert_true(json_is_object(files));
    assert_int_equal(json_object_size(files), 0);
    json_decref(files);

    char md5[33];
    memset(md5, 'z', sizeof md5);
    assert_int_equal(store_lab_file_md5(st, lab, "handin.py", md5), STORE_NOT_FOUND);
    assert_int_equal(store_set_lab_file(st, lab, "handin.py", m1), STORE_OK);
    assert_int_equal(store_set_lab_file(st, lab, "a file with spaces.txt", m2), STORE_OK);
    assert_int_equal(store_lab_file_md5(st, lab, "handin.py", md5), STORE_OK);
    assert_string_equal(md5, m1);
    assert_int_equal(store_lab_file_md5(st, lab, "a file with spaces.txt", md5), STORE_OK);
    assert_string_equal(md5, m2);
    assert_int_equal(store_lab_file_md5(st, lab, "missing", md5), STORE_NOT_FOUND);
    assert_int_equal(store_lab_file_md5(st, "other-lab", "handin.py", md5), STORE_NOT_FOUND);
    /* Re-upload replaces the md5. */
    assert_int_equal(store_set_lab_file(st, lab, "handin.py", m2), STORE_OK);
    assert_int_equal(store_lab_file_md5(st, lab, "handin.py", md5), STORE_OK);
    assert_string_equal(md5, m2);

    assert_int_equal(store_lab_files(st, lab, &files), STORE_OK);
    json_t *want = json_pack("{s:s, s:s}", "handin.py", m2, "a file with spaces.txt", m2);
    assert_true(json_equal(files, want));
    json_decref(want);
    json_decref(files);
    assert_int_equal(store_lab_files(st, "other-lab", &files), STORE_OK);
    assert_int_equal(json_object_size(files), 0);
    json_decref(files);

    char k[KMAX], key[100];
    snprintf(key, sizeof key, "lab:%s:files", lab);
    redisReply *r = redis_ok_reply("HGET %s handin.py", K(k, key));
    assert_string_equal(r->str, m2);
    freeReplyObject(r);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_info(void **state)
{
    (void)state;
    static const char *const names[] = {"job_requests", "job_retries", "waitvm_timeouts",
                                        "runjob_timeouts", "copyin_errors", "runjob_errors",
                                        "copyout_errors", "num_threads"};
    struct store *st = new_store();
    json_t *info = NULL;
    assert_int_equal(store_info(st, &info), STORE_OK);
    assert_int_equal(json_object_size(info), 9);
    assert_int_equal(json_integer_value(json_object_get(info, "elapsed_secs")), 0);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        json_t *v = json_object_get(info, names[i]);
        if (!json_is_integer(v) || json_integer_value(v) != 0)
            fail_msg("counter %s missing or not 0", names[i]);
    }
    json_decref(info);

    assert_int_equal(store_incr_counter(st, "runjob_errors", 5), STORE_OK);
    assert_int_equal(store_incr_counter(st, "job_retries", 1), STORE_OK);
    assert_int_equal(store_incr_counter(st, "job_retries", 1), STORE_OK);
    assert_int_equal(store_incr_counter(st, "copyin_errors", -2), STORE_OK);
    assert_true(add_job(st, "x") == 1);

    time_t t0 = time(NULL);
    assert_int_equal(store_mark_started(st), STORE_OK);
    assert_int_equal(store_info(st, &info), STORE_OK);
    assert_int_equal(json_integer_value(json_object_get(info, "runjob_errors")), 5);
    assert_int_equal(json_integer_value(json_object_get(info, "job_retries")), 2);
    assert_int_equal(json_integer_value(json_object_get(info, "copyin_errors")), -2);
    assert_int_equal(json_integer_value(json_object_get(info, "job_requests")), 1);
    assert_int_equal(json_integer_value(json_object_get(info, "waitvm_timeouts")), 0);
    long long el = json_integer_value(json_object_get(info, "elapsed_secs"));
    assert_true(el >= 0 && el <= (long long)(time(NULL) - t0) + 1);
    json_decref(info);

    /* Started 100 s ago; marking again does not reset it (first start wins). */
    char k[KMAX];
    redis_ok("SET %s %lld", K(k, "started"), (long long)time(NULL) - 100);
    assert_int_equal(store_mark_started(st), STORE_OK);
    assert_int_equal(store_info(st, &info), STORE_OK);
    el = json_integer_value(json_object_get(info, "elapsed_secs"));
    assert_true(el >= 100 && el <= 102);
    json_decref(info);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_images(void **state)
{
    (void)state;
    struct store *st = new_store();
    json_t *imgs = NULL;
    assert_int_equal(store_images(st, &imgs), STORE_NOT_FOUND);
    assert_null(imgs);
    json_t *set = json_pack("[s, s]", "autograding_image", "rhel:8");
    assert_int_equal(store_set_images(st, set), STORE_OK);
    assert_int_equal(store_images(st, &imgs), STORE_OK);
    assert_true(json_equal(imgs, set));
    json_decref(imgs);
    /* The published document is plain JSON any tool can read. */
    char k[KMAX];
    redisReply *r = redis_ok_reply("GET %s", K(k, "images"));
    json_t *doc = json_loadb(r->str, r->len, 0, NULL);
    freeReplyObject(r);
    assert_true(json_equal(json_object_get(doc, "images"), set));
    assert_true(json_is_integer(json_object_get(doc, "updatedAt")));
    json_decref(doc);
    json_decref(set);
    /* Replaced, not merged. */
    set = json_array();
    assert_int_equal(store_set_images(st, set), STORE_OK);
    assert_int_equal(store_images(st, &imgs), STORE_OK);
    assert_int_equal(json_array_size(imgs), 0);
    json_decref(imgs);
    json_decref(set);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_pools(void **state)
{
    (void)state;
    struct store *st = new_store();
    json_t *pools = NULL, *wanted = NULL;
    assert_int_equal(store_pools(st, &pools), STORE_OK);
    assert_int_equal(json_object_size(pools), 0);
    json_decref(pools);
    assert_int_equal(store_pools_wanted(st, &wanted), STORE_OK);
    assert_int_equal(json_object_size(wanted), 0);
    json_decref(wanted);

    json_t *s1 = json_pack("{s:i, s:i, s:i}", "size", 2, "cores", 1, "memory", 512);
    json_t *s0 = json_pack("{s:i}", "size", 0);
    assert_int_equal(store_set_pool_wanted(st, "img1", s1), STORE_OK);
    assert_int_equal(store_set_pool_wanted(st, "img0", s0), STORE_OK);
    assert_int_equal(store_pools_wanted(st, &wanted), STORE_OK);
    json_t *want = json_pack("{s:O, s:O}", "img1", s1, "img0", s0);
    assert_true(json_equal(wanted, want));
    json_decref(want);
    json_decref(wanted);

    /* Wanted but nothing published: empty lists; size 0 is no pool. */
    assert_int_equal(store_pools(st, &pools), STORE_OK);
    want = json_loads("{\"img1\": {\"total\": [], \"free\": []}}", 0, NULL);
    assert_true(json_equal(pools, want));
    json_decref(want);
    json_decref(pools);

    /* The consumer's state wins, and a published pool shows even if not wanted. */
    json_t *st1 = json_loads("{\"total\": [\"a\", \"b\"], \"free\": [\"b\"]}", 0, NULL);
    json_t *st2 = json_loads("{\"total\": [\"c\"], \"free\": []}", 0, NULL);
    assert_int_equal(store_set_pool_state(st, "img1", st1), STORE_OK);
    assert_int_equal(store_set_pool_state(st, "img2", st2), STORE_OK);
    assert_int_equal(store_pools(st, &pools), STORE_OK);
    want = json_pack("{s:O, s:O}", "img1", st1, "img2", st2);
    assert_true(json_equal(pools, want));
    json_decref(want);
    json_decref(pools);
    /* Wanted spec updates replace the old one. */
    json_t *s3 = json_pack("{s:i}", "size", 3);
    assert_int_equal(store_set_pool_wanted(st, "img1", s3), STORE_OK);
    assert_int_equal(store_pools_wanted(st, &wanted), STORE_OK);
    assert_true(json_equal(json_object_get(wanted, "img1"), s3));
    json_decref(wanted);
    json_decref(s1);
    json_decref(s0);
    json_decref(s3);
    json_decref(st1);
    json_decref(st2);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_partial_output(void **state)
{
    (void)state;
    struct store *st = new_store();
    char data[600];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7 % 256); /* every byte value, NULs and 0xff included */
    char *out = NULL;
    size_t len = 12345;
    assert_int_equal(store_partial_output(st, 5, &out, &len), STORE_NOT_FOUND);
    assert_null(out);
    assert_int_equal(store_set_partial_output(st, 5, data, sizeof data, 60), STORE_OK);
    assert_int_equal(store_partial_output(st, 5, &out, &len), STORE_OK);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(out, data, sizeof data);
    assert_int_equal(out[len], '\0');
    free(out);
    char k[KMAX];
    redisReply *r = redis_ok_reply("TTL %s", K(k, "partial:5"));
    assert_true(r->integer > 0 && r->integer <= 60);
    freeReplyObject(r);
    /* Overwritten by a shorter one; other ids are separate. */
    assert_int_equal(store_set_partial_output(st, 5, "\0\xff", 2, 60), STORE_OK);
    assert_int_equal(store_partial_output(st, 5, &out, &len), STORE_OK);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "\0\xff", 2);
    free(out);
    assert_int_equal(store_partial_output(st, 6, &out, &len), STORE_NOT_FOUND);
    assert_int_equal(store_set_partial_output(st, 4294967297LL, "", 0, 60), STORE_OK);
    out = NULL;
    assert_int_equal(store_partial_output(st, 4294967297LL, &out, &len), STORE_OK);
    assert_int_equal(len, 0);
    assert_non_null(out);
    assert_int_equal(out[0], '\0');
    free(out);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_builds(void **state)
{
    (void)state;
    struct store *st = new_store();
    int64_t id = 0;
    assert_int_equal(store_queue_build(st, "img1", "/var/lib/tango/builds/a.tar", &id),
                     STORE_OK);
    assert_true(id == 1);
    assert_int_equal(store_queue_build(st, "img2", "/var/lib/tango/builds/b.tar", &id),
                     STORE_OK);
    assert_true(id == 2);
    char k[KMAX];
    redisReply *r = redis_ok_reply("LRANGE %s 0 -1", K(k, "builds:queue"));
    assert_int_equal(r->elements, 2);
    json_t *b = json_loadb(r->element[0]->str, r->element[0]->len, 0, NULL);
    json_t *want = json_pack("{s:i, s:s, s:s}", "id", 1, "image", "img1", "path",
                             "/var/lib/tango/builds/a.tar");
    assert_true(json_equal(b, want));
    json_decref(b);
    json_decref(want);
    b = json_loadb(r->element[1]->str, r->element[1]->len, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "id")), 2);
    json_decref(b);
    freeReplyObject(r);

    json_t *res = NULL;
    assert_int_equal(store_build_result(st, 1, &res), STORE_NOT_FOUND);
    assert_null(res);
    redis_ok("SET %s %s", K(k, "build:result:1"), "{\"ok\": true, \"message\": \"loaded\"}");
    assert_int_equal(store_build_result(st, 1, &res), STORE_OK);
    want = json_pack("{s:b, s:s}", "ok", 1, "message", "loaded");
    assert_true(json_equal(res, want));
    json_decref(want);
    json_decref(res);
    assert_int_equal(store_build_result(st, 2, &res), STORE_NOT_FOUND);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_db_and_auth(void **state)
{
    (void)state;
    /* The db in the URL is honoured. */
    struct store *st = new_store_url(NULL, 3);
    assert_true(add_job(st, "in-db-3") == 1);
    char k[KMAX];
    redis_ok("SELECT 3");
    redisReply *r = redis_ok_reply("HLEN %s", K(k, "jobs:live"));
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redis_ok("SELECT 0");
    r = redis_ok_reply("EXISTS %s", K(k, "jobs:live"));
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    store_free(st);

    /* A password the server refuses: unavailable, and the error never
     * holds the password. */
    st = new_store_url(":Hunter2pw@", 0);
    assert_int_equal(store_ping(st), STORE_UNAVAILABLE);
    assert_null(strstr(store_error(st), "Hunter2pw"));
    assert_true(strlen(store_error(st)) > 0);
    struct job *j = make_job("nope");
    assert_int_equal(store_add_job(st, j), STORE_UNAVAILABLE);
    assert_null(strstr(store_error(st), "Hunter2pw"));
    job_free(j);
    store_free(st);
    assert_all_keys_prefixed();
}

/* Every call on st fails with STORE_UNAVAILABLE, quickly. */
static void assert_all_unavailable(struct store *st)
{
    long t0 = now_ms();
    json_t *o = NULL;
    bool dead;
    long long pos;
    char md5[33];
    char *out = NULL;
    size_t len;
    int64_t bid;
    assert_int_equal(store_ping(st), STORE_UNAVAILABLE);
    struct job *j = make_job("while-down");
    assert_int_equal(store_add_job(st, j), STORE_UNAVAILABLE);
    job_free(j);
    assert_int_equal(store_list_jobs(st, false, 10, &o), STORE_UNAVAILABLE);
    assert_int_equal(store_list_jobs(st, true, 10, &o), STORE_UNAVAILABLE);
    assert_int_equal(store_get_job(st, 1, &o, &dead), STORE_UNAVAILABLE);
    assert_int_equal(store_queue_position(st, 1, &pos), STORE_UNAVAILABLE);
    assert_int_equal(store_lab_files(st, "lab", &o), STORE_UNAVAILABLE);
    assert_int_equal(store_lab_file_md5(st, "lab", "f", md5), STORE_UNAVAILABLE);
    assert_int_equal(store_set_lab_file(st, "lab", "f", "d41d8cd98f00b204e9800998ecf8427e"),
                     STORE_UNAVAILABLE);
    assert_int_equal(store_mark_started(st), STORE_UNAVAILABLE);
    assert_int_equal(store_incr_counter(st, "job_retries", 1), STORE_UNAVAILABLE);
    assert_int_equal(store_info(st, &o), STORE_UNAVAILABLE);
    assert_int_equal(store_images(st, &o), STORE_UNAVAILABLE);
    assert_int_equal(store_pools(st, &o), STORE_UNAVAILABLE);
    assert_int_equal(store_partial_output(st, 1, &out, &len), STORE_UNAVAILABLE);
    assert_int_equal(store_queue_build(st, "img", "/x", &bid), STORE_UNAVAILABLE);
    assert_int_equal(store_build_result(st, 1, &o), STORE_UNAVAILABLE);
    assert_null(o);
    assert_null(out);
    long took = now_ms() - t0;
    if (took >= 3000)
        fail_msg("17 calls with Redis down took %ld ms", took);
    assert_non_null(strstr(store_error(st), "Redis unavailable"));
}

static void test_redis_down_and_back(void **state)
{
    (void)state;
    struct store *st = new_store();
    assert_true(add_job(st, "before") == 1);
    redis_stop(SIGKILL);

    assert_all_unavailable(st);
    /* Still down: the handle keeps answering at once. */
    assert_all_unavailable(st);

    assert_int_equal(redis_start(), 0);
    /* The same handle reconnects by itself (the data was not persisted). */
    assert_int_equal(store_ping(st), STORE_OK);
    assert_true(add_job(st, "after") == 1);
    json_t *o = NULL;
    bool dead = true;
    assert_int_equal(store_get_job(st, 1, &o, &dead), STORE_OK);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "after");
    assert_false(dead);
    json_decref(o);
    store_free(st);
    assert_all_keys_prefixed();
}

static void test_redis_restart_under_idle_handle(void **state)
{
    (void)state;
    /* A connected handle that makes no call while Redis restarts. */
    struct store *st = new_store();
    assert_true(add_job(st, "before") == 1);
    redis_stop(SIGKILL);
    assert_int_equal(redis_start(), 0);
    /* The old connection is dead; at most one call may notice that, after
     * which the handle is connected again. */
    int first = store_ping(st);
    assert_true(first == STORE_OK || first == STORE_UNAVAILABLE);
    assert_int_equal(store_ping(st), STORE_OK);
    assert_true(add_job(st, "after") == 1);
    store_free(st);
    assert_all_keys_prefixed();
}

/* /build_image records (store_builds.c): a take needs the consumer's
 * heartbeat; a dead consumer's build is queued again, then failed (-3);
 * finish by a consumer that lost it is stale; approve queues, reject fails
 * (-2); ended records past STORE_BUILDS_KEEP go, oldest first. */
static json_t *new_build(struct store *st, bool queue, int64_t *id)
{
    json_t *rec = json_pack("{s:s, s:s, s:i, s:s, s:i}", "keyId", "k", "image", "img", "statusId",
                            1, "state", queue ? "queued" : "waiting", "attempts", 0);
    assert_int_equal(store_build_add(st, rec, queue, id), STORE_OK);
    return rec;
}

static long long build_status_id(struct store *st, int64_t id)
{
    json_t *rec = NULL;
    assert_int_equal(store_build_get(st, id, &rec), STORE_OK);
    long long v = json_integer_value(json_object_get(rec, "statusId"));
    json_decref(rec);
    return v;
}

static void test_image_builds(void **state)
{
    (void)state;
    struct store *st = new_store();
    char k[KMAX];
    int64_t id;
    json_decref(new_build(st, true, &id));
    json_t *got = NULL;
    assert_int_equal(store_build_take(st, "tok", &got), STORE_NOT_FOUND); /* no heartbeat */
    redis_ok("SET %s %s", K(k, "consumers:seen:tok"), "{}");
    assert_int_equal(store_build_take(st, "tok", &got), STORE_OK);
    assert_string_equal(json_string_value(json_object_get(got, "state")), "running");
    json_decref(got);
    long long n = 0;
    assert_int_equal(store_build_recover(st, &n), STORE_OK);
    assert_int_equal(n, 0); /* its consumer is alive */
    redis_ok("DEL %s", K(k, "consumers:seen:tok"));
    assert_int_equal(store_build_recover(st, &n), STORE_OK);
    assert_int_equal(n, 1);
    bool stale = false;
    assert_int_equal(store_build_finish(st, id, "tok", "done", 0, "built", "", NULL, &stale), STORE_OK);
    assert_true(stale); /* taken back: its old builder's verdict is not written */
    redis_ok("SET %s %s", K(k, "consumers:seen:tok2"), "{}");
    assert_int_equal(store_build_take(st, "tok2", &got), STORE_OK);
    assert_int_equal(json_integer_value(json_object_get(got, "attempts")), 2);
    json_decref(got);
    redis_ok("DEL %s", K(k, "consumers:seen:tok2"));
    assert_int_equal(store_build_recover(st, &n), STORE_OK);
    assert_int_equal(build_status_id(st, id), -3); /* lost twice: failed, said so */

    int64_t a, b;
    json_decref(new_build(st, false, &a));
    json_decref(new_build(st, false, &b));
    long long res = 0;
    assert_int_equal(store_build_decide(st, a, true, &res), STORE_OK);
    assert_int_equal(res, 1);
    assert_int_equal(store_build_decide(st, a, true, &res), STORE_OK);
    assert_int_equal(res, -1); /* not waiting any more */
    assert_int_equal(store_build_decide(st, 999999, false, &res), STORE_OK);
    assert_int_equal(res, 0);
    assert_int_equal(store_build_decide(st, b, false, &res), STORE_OK);
    assert_int_equal(build_status_id(st, b), -2);

    for (int i = 0; i < STORE_BUILDS_KEEP + 5; i++) {
        json_decref(new_build(st, false, &id));
        assert_int_equal(store_build_decide(st, id, false, &res), STORE_OK);
    }
    json_t *all = NULL;
    assert_int_equal(store_build_all(st, &all), STORE_OK);
    /* ended records bounded; the queued (approved) one a is not ended */
    assert_int_equal(json_array_size(all), STORE_BUILDS_KEEP + 1);
    json_decref(all);
    assert_int_equal(store_build_get(st, b, &got), STORE_NOT_FOUND); /* oldest went */

    /* a finished push records its digest as its key's (store_pushed_digests) */
    static const char digest[] =
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char ref[160];
    snprintf(ref, sizeof ref, "reg:5000/courses/img:latest@%s", digest);
    redis_ok("SET %s %s", K(k, "consumers:seen:tok3"), "{}");
    assert_int_equal(store_build_take(st, "tok3", &got), STORE_OK);
    id = json_integer_value(json_object_get(got, "id"));
    json_decref(got);
    assert_int_equal(store_build_finish(st, id, "tok3", "done", 0, "built", "", ref, &stale),
                     STORE_OK);
    assert_false(stale);
    assert_int_equal(store_pushed_digests(st, "k", &all), STORE_OK);
    assert_int_equal(json_array_size(all), 1);
    assert_string_equal(json_string_value(json_array_get(all, 0)), digest);
    json_decref(all);
    assert_int_equal(store_pushed_digests(st, "other", &all), STORE_OK);
    assert_int_equal(json_array_size(all), 0); /* another key's: none */
    json_decref(all);
    store_free(st);
    assert_all_keys_prefixed();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_job),
        cmocka_unit_test(test_large_ids),
        cmocka_unit_test(test_list_live),
        cmocka_unit_test(test_dead_and_get),
        cmocka_unit_test(test_lab_files),
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_partial_output),
        cmocka_unit_test(test_builds),
        cmocka_unit_test(test_image_builds),
        cmocka_unit_test(test_db_and_auth),
        cmocka_unit_test(test_redis_down_and_back),
        cmocka_unit_test(test_redis_restart_under_idle_handle),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
