/*
 * test_jobstate.c: the job state machine (common/jobstate.c) against a real
 * redis-server running the Functions library the store loads. For every
 * transition of the table and every state a record can be in, a job is
 * planted in that state (with a lease owned by the test's token) and the
 * transition is called: it must succeed and leave the state the table
 * names exactly when the table allows that pair, and be refused otherwise
 * (with an error naming both states, or nothing taken). Also: the table's
 * own consistency (states, key names, docs/design.md rows), fencing (a stale fence
 * or a stranger's token is refused) and the leader check.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "jobstate.h"
#include "keys.h"
#include "store.h"
#include "redis_fixture.h"

#define TOKEN "tok-owner"
#define FENCE "7"
static char P[64];
static struct tango_config cfg;

static int group_setup(void **state)
{
    (void)state;
    snprintf(redis_dir, sizeof redis_dir, "/tmp/test_jobstate.XXXXXX");
    if (!mkdtemp(redis_dir))
        return -1;
    redis_port = free_port();
    if (redis_port <= 0 || redis_start())
        return -1;
    char err[256], url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", redis_port);
    char *env[] = {NULL};
    if (config_load(&cfg, NULL, env, err, sizeof err))
        return -1;
    free(cfg.redis_url);
    cfg.redis_url = strdup(url);
    snprintf(P, sizeof P, "js%d:", (int)getpid());
    free(cfg.prefix);
    cfg.prefix = strdup(P);
    /* The store loads the library on its first call. */
    struct store *st = store_new(&cfg);
    long long now = 0;
    int rc = store_time_ms(st, &now);
    store_free(st);
    return rc == STORE_OK && now > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    redis_stop(SIGTERM);
    config_free(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", redis_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *key(const char *name)
{
    static char buf[8][128];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s%s", P, name);
    return buf[i];
}

static void record_of(int id, const char *state, char *out, size_t len)
{
    snprintf(out, len, "{\"id\":%d,\"state\":\"%s\",\"name\":\"j\",\"vm\":{}}", id, state);
}

enum lease_kind { NO_LEASE, OWN_LEASE, LAPSED_LEASE };

/* Plants job id in state s: record, its place (queue or leased list), a
 * lease (none, the test's own with FENCE, or a dead owner's that lapsed)
 * and leadership for the test's token. */
static void plant(int id, enum job_state s, enum lease_kind lease)
{
    redis_ok("FLUSHALL");
    /* FLUSHALL leaves the library loaded (functions are not keys). */
    char rec[256];
    record_of(id, job_state_name(s), rec, sizeof rec);
    redis_ok("HSET %s %d %s", key("jobs:live"), id, rec);
    redis_ok("ZADD %s %d %d", key("jobs:live:ids"), id, id);
    redis_ok("SET %s %s", key("consumer:leader"), TOKEN);
    /* A queued job is in its class and group queue; the others are in
     * queue:leased and counted as running in their group. */
    redis_ok("HSET %s %d normal:g1", key("queue:sched"), id);
    if (s == JOB_QUEUED) {
        redis_ok("RPUSH %s %d", key("queue:c:normal:g1"), id);
        redis_ok("RPUSH %s g1", key("queue:ring:normal"));
        redis_ok("HSET %s %d 1", key("queue:since"), id);
    } else {
        redis_ok("RPUSH %s %d", key("queue:leased"), id);
        if (s == JOB_LEASED || s == JOB_RUNNING || s == JOB_FINISHING) {
            redis_ok("SADD %s %d", key("running:ids"), id);
            redis_ok("HSET %s normal:g1 1", key("running:count"));
        }
    }
    if (lease == NO_LEASE)
        return;
    redis_ok("ZADD %s %lld %d", key("leases"), lease == LAPSED_LEASE ? 1LL : 99999999999999LL, id);
    redis_ok("HSET %s %d %s", key("lease:owner"), id, lease == LAPSED_LEASE ? "tok-dead" : TOKEN);
    redis_ok("HSET %s %d %s", key("lease:fence"), id, FENCE);
}

/* The state the record of id is in now ("" if none), live or dead. */
static void state_now(int id, char *out, size_t len)
{
    out[0] = '\0';
    const char *hashes[] = {"jobs:live", "jobs:dead"};
    for (int i = 0; i < 2 && !out[0]; i++) {
        redisReply *r = redis_reply("HGET %s %d", key(hashes[i]), id);
        const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, "\"state\":\"") : NULL;
        if (p) {
            p += 9;
            size_t n = strcspn(p, "\"");
            snprintf(out, len, "%.*s", (int)n, p);
        }
        freeReplyObject(r);
    }
}

/* Calls transition t on job id as the test's owner/leader. Returns 1 when
 * it was carried out, 0 when refused (an error naming both states, or a
 * lease call that took nothing). */
static int call(const struct jobstate_transition *t, int id, enum job_state from)
{
    char rec[256], sid[16];
    snprintf(sid, sizeof sid, "%d", id);
    record_of(id, "x", rec, sizeof rec);
    const char *argv[16];
    int argc = 0;
    char fn[64];
    snprintf(fn, sizeof fn, "tango_%s", strcmp(t->name, "restore") ? t->name : "adopt");
    argv[argc++] = "FCALL";
    argv[argc++] = fn;
    argv[argc++] = "1";
    argv[argc++] = P;
    bool lease_like = !strcmp(t->name, "lease") || !strcmp(t->name, "take") ||
                      !strcmp(t->name, "adopt") || !strcmp(t->name, "restore");
    if (!strcmp(t->name, "lease")) {
        /* the next job under the rule: token, lease_ms, cap, max_wait */
        argv[argc++] = TOKEN;
        argv[argc++] = "5000";
        argv[argc++] = "0";
        argv[argc++] = "0";
    } else if (lease_like) {
        argv[argc++] = sid;
        argv[argc++] = TOKEN;
        argv[argc++] = "5000";
    } else if (!strcmp(t->name, "deadletter")) {
        argv[argc++] = sid;
        argv[argc++] = TOKEN;
        argv[argc++] = "test";
        argv[argc++] = "100";
        argv[argc++] = "Tue Dec  1 00:00:00 2026";
    } else {
        argv[argc++] = sid;
        argv[argc++] = TOKEN;
        argv[argc++] = FENCE;
        argv[argc++] = rec;
        if (!strcmp(t->name, "requeue"))
            argv[argc++] = "0";
        if (!strcmp(t->name, "done") || !strcmp(t->name, "cancelled")) {
            argv[argc++] = "100";
            argv[argc++] = "";
        }
    }
    redisReply *r = redisCommandArgv(R, argc, argv, NULL);
    assert_non_null(r);
    int done;
    if (r->type == REDIS_REPLY_ERROR) {
        /* A refusal names the transition and both states. */
        if (!strstr(r->str, "REFUSED"))
            fail_msg("%s from %s: unexpected error %s", t->name, job_state_name(from), r->str);
        assert_non_null(strstr(r->str, job_state_name(from)));
        done = 0;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        long long code = r->element[0]->integer;
        done = !strcmp(t->name, "restore") ? code == 2 : code == 1;
    } else {
        done = 1;
    }
    freeReplyObject(r);
    return done;
}

/* Every transition of the table from every state: carried out exactly when
 * the table allows it, ending in the state it names. */
static void test_every_pair(void **state)
{
    (void)state;
    size_t n;
    const struct jobstate_transition *ts = jobstate_transitions(&n);
    int checked = 0;
    for (size_t i = 0; i < n; i++) {
        const struct jobstate_transition *t = &ts[i];
        if (t->from == JS_NONE)
            continue; /* add: test_add */
        enum lease_kind lease = t->who == JS_OWNER ? OWN_LEASE
                                : (!strcmp(t->name, "adopt") || !strcmp(t->name, "restore"))
                                    ? LAPSED_LEASE
                                    : NO_LEASE;
        for (int s = 0; s < JOB_NSTATES; s++) {
            /* restore's row is the queued case of adopt; adopt's own rows
             * are the leased ones. Each row owns its from-states. */
            if (!strcmp(t->name, "adopt") && s == JOB_QUEUED)
                continue;
            if (!strcmp(t->name, "restore") && s != JOB_QUEUED && !(t->from & JS_BIT(s)))
                continue;
            plant(100 + s, (enum job_state)s, lease);
            int allowed = (t->from & JS_BIT(s)) != 0;
            int done = call(t, 100 + s, (enum job_state)s);
            if (done != allowed)
                fail_msg("transition %s from %s: %s, table says %s", t->name,
                         job_state_name((enum job_state)s), done ? "carried out" : "refused",
                         allowed ? "allowed" : "refused");
            char now[32];
            state_now(100 + s, now, sizeof now);
            const char *want = allowed ? (t->to == JS_SAME ? job_state_name((enum job_state)s)
                                                           : job_state_name((enum job_state)t->to))
                                       : job_state_name((enum job_state)s);
            if (strcmp(now, want) != 0)
                fail_msg("transition %s from %s: state now \"%s\", expected \"%s\"", t->name,
                         job_state_name((enum job_state)s), now, want);
            if (allowed)
                assert_true(jobstate_allowed(JS_BIT(s), t->to == JS_SAME ? s : t->to));
            checked++;
        }
    }
    assert_true(checked > 50);
}

/* (from, to) pairs the table has no transition for are refused by every
 * transition that ends in `to`; the allowed set is what docs/design.md shows. */
static void test_allowed_pairs(void **state)
{
    (void)state;
    /* Spot checks that must never change. */
    assert_true(jobstate_allowed(JS_NONE, JOB_QUEUED));
    assert_true(jobstate_allowed(JS_BIT(JOB_QUEUED), JOB_LEASED));
    assert_true(jobstate_allowed(JS_BIT(JOB_RUNNING), JOB_FINISHING));
    assert_true(jobstate_allowed(JS_BIT(JOB_FINISHING), JOB_DONE));
    assert_false(jobstate_allowed(JS_BIT(JOB_DONE), JOB_QUEUED));
    assert_false(jobstate_allowed(JS_BIT(JOB_QUEUED), JOB_DONE));
    assert_false(jobstate_allowed(JS_BIT(JOB_RUNNING), JOB_DONE));
    assert_false(jobstate_allowed(JS_BIT(JOB_CANCELLED), JOB_RUNNING));
    /* finishing -> queued: only the owner's requeue, for an adopted job
     * whose accepted output file is gone (graded again, never ended
     * without its output). */
    assert_true(jobstate_allowed(JS_BIT(JOB_FINISHING), JOB_QUEUED));
    assert_false(jobstate_allowed(JS_BIT(JOB_DONE), JOB_FINISHING));
    assert_false(jobstate_allowed(JS_NONE, JOB_RUNNING));
}

static void test_add(void **state)
{
    (void)state;
    redis_ok("FLUSHALL");
    redisReply *r = redis_reply("FCALL tango_add 1 %s %s normal g1 0", P,
                                "{\"id\":0,\"state\":\"done\",\"name\":\"a\"}");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 1);
    int id = (int)r->element[1]->integer;
    freeReplyObject(r);
    char now[32];
    state_now(id, now, sizeof now);
    assert_string_equal(now, "queued"); /* the library sets it, whatever C wrote */
    r = redis_reply("FCALL tango_add 1 %s %s", P, "{\"name\":\"no id first\"}");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* A stale fence, a stranger's token, a non-leader: all refused. */
/* finishing -> queued (requeue) only with a record that names no accepted
 * output: an accepted grade is never thrown away by a requeue. */
static void test_requeue_finishing(void **state)
{
    (void)state;
    plant(9, JOB_FINISHING, OWN_LEASE);
    const char *named = "{\"id\":9,\"state\":\"finishing\",\"name\":\"j\",\"vm\":{},"
                        "\"outputTemp\":\".9.7.tmp\"}";
    redisReply *r = redis_reply("FCALL tango_requeue 1 %s 9 %s %s %s 1", P, TOKEN, FENCE, named);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "REFUSED"));
    freeReplyObject(r);
    char now[32];
    state_now(9, now, sizeof now);
    assert_string_equal(now, "finishing");
    /* nothing moved: still in queue:leased, counted, no retry counted */
    r = redis_reply("LPOS %s 9", key("queue:leased"));
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    r = redis_reply("HGET %s job_retries", key("counters"));
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    char rec[256];
    record_of(9, "finishing", rec, sizeof rec);
    r = redis_reply("FCALL tango_requeue 1 %s 9 %s %s %s 1", P, TOKEN, FENCE, rec);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    state_now(9, now, sizeof now);
    assert_string_equal(now, "queued");
}

static void test_fencing(void **state)
{
    (void)state;
    char rec[256];
    record_of(5, "running", rec, sizeof rec);
    plant(5, JOB_RUNNING, OWN_LEASE);
    redisReply *r = redis_reply("FCALL tango_save 1 %s 5 %s 6 %s", P, TOKEN, rec);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "STALE"));
    freeReplyObject(r);
    r = redis_reply("FCALL tango_save 1 %s 5 tok-other %s %s", P, FENCE, rec);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    /* The adopter's new fence makes the old one stale. */
    plant(5, JOB_RUNNING, LAPSED_LEASE);
    r = redis_reply("FCALL tango_adopt 1 %s 5 %s 5000", P, TOKEN);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 1);
    long long fence = r->element[1]->integer;
    freeReplyObject(r);
    assert_true(fence != 7);
    r = redis_reply("FCALL tango_save 1 %s 5 %s %s %s", P, TOKEN, FENCE, rec);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    /* Only the leader leases. */
    plant(6, JOB_QUEUED, NO_LEASE);
    redis_ok("SET %s someone-else", key("consumer:leader"));
    r = redis_reply("FCALL tango_lease 1 %s %s 5000 0 0", P, TOKEN);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "NOTLEADER"));
    freeReplyObject(r);
    /* A valid lease is never adopted. */
    plant(7, JOB_RUNNING, OWN_LEASE);
    redis_ok("HSET %s 7 tok-alive", key("lease:owner"));
    r = redis_reply("FCALL tango_adopt 1 %s 7 %s 5000", P, TOKEN);
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
}

/* The table itself: names unique, keys real, docs/design.md rows present. */
static void test_table(void **state)
{
    (void)state;
    size_t n;
    const struct jobstate_transition *ts = jobstate_transitions(&n);
    FILE *f = fopen("docs/design.md", "r");
    assert_non_null(f);
    static char readme[1 << 20];
    size_t len = fread(readme, 1, sizeof readme - 1, f);
    readme[len] = '\0';
    fclose(f);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(ts[i].name, ts[j].name);
        assert_ptr_equal(jobstate_find(ts[i].name), &ts[i]);
        char row[64];
        snprintf(row, sizeof row, "| `%s` |", ts[i].name);
        if (!strstr(readme, row))
            fail_msg("docs/design.md's state table has no row %s", row);
        char keys[512];
        snprintf(keys, sizeof keys, "%s", ts[i].keys);
        for (char *save = NULL, *k = strtok_r(keys, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
            bool known = false;
            for (int e = 0; e < KEY__COUNT; e++)
                known |= strcmp(store_key_name((enum store_key_id)e), k) == 0;
            if (!known)
                fail_msg("transition %s names unknown key %s", ts[i].name, k);
        }
    }
    size_t liblen;
    const char *lib = jobstate_library(&liblen);
    assert_true(liblen > 1000 && strncmp(lib, "#!lua name=tango\n", 17) == 0);
    assert_int_equal(strlen(jobstate_library_version()), 16);
}


/* ---- Fair share and priorities ---- */

/* Adds a queued job of class c and group g through the library; its id. */
static int add_job(const char *c, const char *g)
{
    redisReply *r = redis_reply("FCALL tango_add 1 %s %s %s %s 0", P,
                                "{\"id\":0,\"state\":\"queued\",\"name\":\"j\",\"vm\":{}}", c, g);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 1);
    int id = (int)r->element[1]->integer;
    freeReplyObject(r);
    return id;
}

/* Leases the next job (cap, max_wait ms); its id, or 0 with why set. */
static int lease_next(int cap, int wait_ms, char *why, size_t whylen, long long *fence)
{
    redis_ok("DEL %s", key("queue:promote:at")); /* scan for promotions on every call */
    redisReply *r = redis_reply("FCALL tango_lease 1 %s %s 5000 %d %d", P, TOKEN, cap, wait_ms);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    int id = 0;
    if (r->element[0]->integer == 1) {
        redisReply *e = r->element[3];
        id = e->type == REDIS_REPLY_STRING ? atoi(e->str) : (int)e->integer;
        if (fence)
            *fence = r->element[1]->integer;
    } else if (why) {
        snprintf(why, whylen, "%s", r->element[1]->str);
    }
    freeReplyObject(r);
    return id;
}

static long long position_of(int id)
{
    redisReply *r = redis_reply("FCALL tango_position 1 %s %d", P, id);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long hget_ll(const char *k, const char *field)
{
    redisReply *r = redis_reply("HGET %s %s", key(k), field);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

static void fresh(void)
{
    redis_ok("FLUSHALL");
    redis_ok("SET %s %s", key("consumer:leader"), TOKEN);
}

/* Every queued job's position is its place in the order the lease function
 * then takes them (no job arrives meanwhile). */
static void check_positions_then_drain(const int *ids, int n, const int *want_order)
{
    long long pos[64];
    for (int i = 0; i < n; i++)
        pos[i] = position_of(ids[i]);
    for (int k = 0; k < n; k++) {
        int got = lease_next(0, 0, NULL, 0, NULL);
        if (got != want_order[k])
            fail_msg("lease %d: got job %d, expected %d", k, got, want_order[k]);
        for (int i = 0; i < n; i++)
            if (ids[i] == got && pos[i] != k + 1)
                fail_msg("job %d had queuePosition %lld, started %d", got, pos[i], k + 1);
    }
    char why[32] = "";
    assert_int_equal(lease_next(0, 0, why, sizeof why, NULL), 0);
    assert_string_equal(why, "empty");
}

/* Classes in order, round-robin over groups, FIFO within a group. */
static void test_sched_order(void **state)
{
    (void)state;
    fresh();
    int a[5];
    for (int i = 0; i < 5; i++)
        a[i] = add_job("normal", "A");
    int b = add_job("normal", "B"), c = add_job("low", "C"), h = add_job("high", "A");
    int ids[] = {a[0], a[1], a[2], a[3], a[4], b, c, h};
    int order[] = {h, a[0], b, a[1], a[2], a[3], a[4], c};
    check_positions_then_drain(ids, 8, order);
    assert_int_equal(position_of(a[0]), 0); /* leased: not queued */
}

/* course_weights: deficit round-robin (A twice as often as B). */
static void test_sched_weights(void **state)
{
    (void)state;
    fresh();
    redis_ok("HSET %s A 2", key("queue:weights"));
    int a[4], b[4];
    for (int i = 0; i < 4; i++)
        a[i] = add_job("normal", "A");
    for (int i = 0; i < 4; i++)
        b[i] = add_job("normal", "B");
    int ids[] = {a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]};
    int order[] = {a[0], a[1], b[0], a[2], a[3], b[1], b[2], b[3]};
    check_positions_then_drain(ids, 8, order);
}

/* max_running_per_course: a group at its cap is skipped; the counts follow
 * lease, requeue and the end of a job exactly, and reconcile agrees. */
static void test_sched_cap(void **state)
{
    (void)state;
    fresh();
    int a1 = add_job("normal", "A"), a2 = add_job("normal", "A"), b1 = add_job("low", "B");
    long long fence = 0;
    assert_int_equal(lease_next(1, 0, NULL, 0, &fence), a1);
    assert_int_equal(hget_ll("running:count", "normal:A"), 1);
    assert_int_equal(lease_next(1, 0, NULL, 0, NULL), b1); /* A is capped: B, though low */
    char why[32] = "";
    assert_int_equal(lease_next(1, 0, why, sizeof why, NULL), 0);
    assert_string_equal(why, "capped");
    /* a1 goes back to the head of A: its slot frees, and it is next. */
    char rec[256];
    record_of(a1, "leased", rec, sizeof rec);
    redis_ok("FCALL tango_requeue 1 %s %d %s %lld %s 0", P, a1, TOKEN, fence, rec);
    assert_int_equal(hget_ll("running:count", "normal:A"), 0);
    assert_int_equal(lease_next(1, 0, NULL, 0, &fence), a1);
    /* It ends: finish then done; the count drops again. */
    record_of(a1, "running", rec, sizeof rec);
    redis_ok("FCALL tango_finish 1 %s %d %s %lld %s", P, a1, TOKEN, fence, rec);
    redis_ok("FCALL tango_done 1 %s %d %s %lld %s 100 %s", P, a1, TOKEN, fence, rec, "");
    assert_int_equal(hget_ll("running:count", "normal:A"), 0);
    assert_int_equal(hget_ll("running:count", "low:B"), 1);
    redisReply *r = redis_reply("FCALL tango_reconcile 1 %s", P);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* A count changed behind the library's back is put right. */
    redis_ok("HSET %s low:B 7", key("running:count"));
    redis_ok("HSET %s normal:Z 3", key("running:count"));
    r = redis_reply("FCALL tango_reconcile 1 %s", P);
    assert_true(r->integer >= 2);
    freeReplyObject(r);
    assert_int_equal(hget_ll("running:count", "low:B"), 1);
    assert_int_equal(hget_ll("running:count", "normal:Z"), 0);
    assert_int_equal(lease_next(1, 0, NULL, 0, NULL), a2);
}

/* No starvation: a low job queued longer than max_wait moves up a class
 * (to the tail of its group there: its group joins the normal ring) and so
 * takes its turn with the normal groups; jobs promoted one after another
 * stay FIFO, and the wait starts again in the new class. */
static void test_sched_promote(void **state)
{
    (void)state;
    fresh();
    int l1 = add_job("low", "L"), l2 = add_job("low", "L");
    int n1 = add_job("normal", "N"), n2 = add_job("normal", "N"), n3 = add_job("normal", "N");
    redis_ok("HSET %s %d 1", key("queue:since"), l1); /* queued long ago */
    redis_ok("HSET %s %d 1", key("queue:since"), l2);
    redis_ok("HSET %s %d 1", key("queue:since"), n3);
    /* One promotion per group per lease: l1 now (the normal ring is [N, L]). */
    assert_int_equal(lease_next(0, 60000, NULL, 0, NULL), n1);
    assert_int_equal(hget_ll("counters", "job_promotions"), 1);
    assert_int_equal(lease_next(0, 60000, NULL, 0, NULL), l1); /* l2 promoted behind it */
    assert_int_equal(hget_ll("counters", "job_promotions"), 2);
    assert_int_equal(lease_next(0, 60000, NULL, 0, NULL), n2);
    /* n3 reaches the head of N old: promoted to high, served first. */
    assert_int_equal(lease_next(0, 60000, NULL, 0, NULL), n3);
    assert_int_equal(hget_ll("counters", "job_promotions"), 3);
    assert_int_equal(lease_next(0, 60000, NULL, 0, NULL), l2);
    /* Without promotion the low jobs wait behind every normal one. */
    fresh();
    l1 = add_job("low", "L");
    n1 = add_job("normal", "N");
    n2 = add_job("normal", "N");
    redis_ok("HSET %s %d 1", key("queue:since"), l1);
    assert_int_equal(lease_next(0, 0, NULL, 0, NULL), n1);
    assert_int_equal(lease_next(0, 0, NULL, 0, NULL), n2);
    assert_int_equal(lease_next(0, 0, NULL, 0, NULL), l1);
}

/* Jobs requeued one after another (a sweep after a crash) keep their FIFO
 * order at the head of their group. */
static void test_sched_requeue_fifo(void **state)
{
    (void)state;
    fresh();
    int a[4];
    long long f[4];
    for (int i = 0; i < 4; i++)
        a[i] = add_job("normal", "A");
    for (int i = 0; i < 3; i++)
        assert_int_equal(lease_next(0, 0, NULL, 0, &f[i]), a[i]);
    char rec[256];
    for (int i = 0; i < 3; i++) {
        record_of(a[i], "leased", rec, sizeof rec);
        redis_ok("FCALL tango_requeue 1 %s %d %s %lld %s 0", P, a[i], TOKEN, f[i], rec);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(lease_next(0, 0, NULL, 0, NULL), a[i]);
}

/* control:paused: nothing is leased while it exists. */
static void test_sched_pause(void **state)
{
    (void)state;
    fresh();
    int a1 = add_job("normal", "A");
    redis_ok("SET %s x", key("control:paused"));
    char why[32] = "";
    assert_int_equal(lease_next(0, 0, why, sizeof why, NULL), 0);
    assert_string_equal(why, "paused");
    assert_int_equal(position_of(a1), 1);
    redis_ok("DEL %s", key("control:paused"));
    assert_int_equal(lease_next(0, 0, NULL, 0, NULL), a1);
}

/* max_queued_per_course refuses an add over it, naming the limit. */
static void test_sched_queue_limit(void **state)
{
    (void)state;
    fresh();
    const char *rec = "{\"id\":0,\"state\":\"queued\",\"name\":\"j\",\"vm\":{}}";
    for (int i = 0; i < 2; i++)
        redis_ok("FCALL tango_add 1 %s %s normal A 2", P, rec);
    redisReply *r = redis_reply("FCALL tango_add 1 %s %s low A 2", P, rec);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 0);
    assert_non_null(strstr(r->element[1]->str, "max_queued_per_course (2)"));
    freeReplyObject(r);
    r = redis_reply("FCALL tango_add 1 %s %s normal B 2", P, rec);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
    r = redis_reply("FCALL tango_add 1 %s %s urgent B 2", P, rec);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* A queue:pending left by an older version is drained into the group
 * queues in its order; a queued job taken out (cancel) or set aside
 * leaves no empty group in the ring. */
static void test_sched_migrate_take(void **state)
{
    (void)state;
    fresh();
    for (int id = 1; id <= 3; id++) {
        char rec[256];
        record_of(id, "queued", rec, sizeof rec);
        redis_ok("HSET %s %d %s", key("jobs:live"), id, rec);
        redis_ok("RPUSH %s %d", key("queue:pending"), id);
    }
    redisReply *r = redis_reply("FCALL tango_migrate 1 %s %s 1 normal A 2 normal A 3 low B", P,
                                TOKEN);
    assert_int_equal(r->integer, 3);
    freeReplyObject(r);
    r = redis_reply("LLEN %s", key("queue:pending"));
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(position_of(3), 3);
    r = redis_reply("FCALL tango_take 1 %s 3 %s 5000", P, TOKEN);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
    r = redis_reply("LLEN %s", key("queue:ring:low"));
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(hget_ll("running:count", "low:B"), 1);
    redis_ok("HSET %s 2 garbage", key("jobs:live"));
    redis_ok("FCALL tango_deadletter 1 %s 2 %s test 100 now", P, TOKEN);
    assert_int_equal(lease_next(0, 0, NULL, 0, NULL), 1);
    r = redis_reply("LLEN %s", key("queue:ring:normal"));
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
}

/* store_queue_stats: one row per (class, group) with queued or running jobs. */
static void test_sched_stats(void **state)
{
    (void)state;
    fresh();
    add_job("normal", "A");
    add_job("normal", "A");
    add_job("low", "B");
    assert_true(lease_next(0, 0, NULL, 0, NULL) > 0); /* one of A runs */
    add_job("high", "C");
    assert_true(lease_next(0, 0, NULL, 0, NULL) > 0); /* C's only job runs */
    struct store *st = store_new(&cfg);
    struct store_queue_stat *q = NULL;
    size_t n = 0;
    assert_int_equal(store_queue_stats(st, &q, &n), STORE_OK);
    store_free(st);
    assert_int_equal(n, 3);
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(q[i].klass, "normal") && !strcmp(q[i].group, "A")) {
            assert_int_equal(q[i].length, 1);
            assert_int_equal(q[i].running, 1);
            assert_true(q[i].oldest_enqueued_ms > 1700000000000LL);
            seen |= 1;
        } else if (!strcmp(q[i].klass, "low") && !strcmp(q[i].group, "B")) {
            assert_int_equal(q[i].length, 1);
            assert_int_equal(q[i].running, 0);
            seen |= 2;
        } else if (!strcmp(q[i].klass, "high") && !strcmp(q[i].group, "C")) {
            assert_int_equal(q[i].length, 0);
            assert_int_equal(q[i].oldest_enqueued_ms, 0);
            assert_int_equal(q[i].running, 1);
            seen |= 4;
        }
    }
    free(q);
    assert_int_equal(seen, 7);
}

/* The pure parts: share-group rule, class names, rules, config checks. */
static void test_sched_pure(void **state)
{
    (void)state;
    static const struct {
        const char *mode, *courselab, *key, *group;
    } groups[] = {
        {"course", "15213-f24-malloc", "k1", "15213-f24"},
        {"course", "intro", "k1", "intro"},
        {"course", "-lab", "k1", "-lab"},
        {"lab", "15213-f24-malloc", "k1", "15213-f24-malloc"},
        {"key", "15213-malloc", "abc123", "abc123"},
        {"off", "15213-malloc", "k", "all"},
    };
    char g[JOB_GROUP_MAX];
    for (size_t i = 0; i < sizeof groups / sizeof *groups; i++) {
        assert_int_equal(jobstate_share_group(groups[i].mode, groups[i].courselab, groups[i].key,
                                              g, sizeof g),
                         0);
        assert_string_equal(g, groups[i].group);
    }
    assert_int_equal(jobstate_share_group("course", NULL, "k", g, sizeof g), -1);
    assert_int_equal(jobstate_share_group("key", "lab", NULL, g, sizeof g), -1);
    assert_int_equal(jobstate_share_group("courses", "a-b", "k", g, sizeof g), -1);
    char small[4];
    assert_int_equal(jobstate_share_group("lab", "abcdefgh", "k", small, sizeof small), 0);
    assert_string_equal(small, "abc");

    assert_int_equal(jobstate_class_parse("high"), JOB_CLASS_HIGH);
    assert_int_equal(jobstate_class_parse("normal"), JOB_CLASS_NORMAL);
    assert_int_equal(jobstate_class_parse("low"), JOB_CLASS_LOW);
    assert_int_equal(jobstate_class_parse("LOW"), -1);
    assert_int_equal(jobstate_class_parse(""), -1);
    assert_int_equal(jobstate_class_parse(NULL), -1);
    assert_string_equal(jobstate_class_name(JOB_CLASS_LOW), "low");

    json_t *rules = json_loads("[{\"lab\": \"*-regrade*\", \"class\": \"low\"},"
                               " {\"key\": \"abc123\", \"class\": \"high\"},"
                               " {\"lab\": \"intro-lab1\", \"class\": \"high\"}]", 0, NULL);
    assert_int_equal(jobstate_rule_class(rules, "15213-regrade-malloc", "x"), JOB_CLASS_LOW);
    assert_int_equal(jobstate_rule_class(rules, "15213-malloc", "abc123"), JOB_CLASS_HIGH);
    assert_int_equal(jobstate_rule_class(rules, "intro-lab1", "x"), JOB_CLASS_HIGH);
    assert_int_equal(jobstate_rule_class(rules, "intro-lab2", "x"), -1);
    char err[256];
    json_t *w = json_loads("{\"A\": 2, \"B\": 1.5}", 0, NULL);
    assert_int_equal(jobstate_sched_check("course", rules, w, err, sizeof err), 0);
    assert_int_equal(jobstate_sched_check("courses", rules, w, err, sizeof err), -1);
    assert_non_null(strstr(err, "fair_share"));
    json_t *bad = json_loads("[{\"lab\": \"x\", \"class\": \"urgent\"}]", 0, NULL);
    assert_int_equal(jobstate_sched_check("off", bad, w, err, sizeof err), -1);
    assert_non_null(strstr(err, "priority_rules"));
    json_decref(bad);
    bad = json_loads("[{\"lab\": \"x\", \"key\": \"y\", \"class\": \"low\"}]", 0, NULL);
    assert_int_equal(jobstate_sched_check("off", bad, w, err, sizeof err), -1);
    json_decref(bad);
    bad = json_loads("{\"A\": 0.5}", 0, NULL);
    assert_int_equal(jobstate_sched_check("lab", rules, bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "course_weights"));
    json_decref(bad);
    json_decref(w);
    json_decref(rules);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_allowed_pairs),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_every_pair),
        cmocka_unit_test(test_requeue_finishing),
        cmocka_unit_test(test_fencing),
        cmocka_unit_test(test_sched_order),
        cmocka_unit_test(test_sched_weights),
        cmocka_unit_test(test_sched_cap),
        cmocka_unit_test(test_sched_promote),
        cmocka_unit_test(test_sched_requeue_fifo),
        cmocka_unit_test(test_sched_pause),
        cmocka_unit_test(test_sched_queue_limit),
        cmocka_unit_test(test_sched_migrate_take),
        cmocka_unit_test(test_sched_stats),
        cmocka_unit_test(test_sched_pure),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
