/*
 * test_jobstate.c: the job state machine (common/jobstate.c) against a real
 * redis-server running the Functions library the store loads. For every
 * transition of the table and every state a record can be in, a job is
 * planted in that state (with a lease owned by the test's token) and the
 * transition is called: it must succeed and leave the state the table
 * names exactly when the table allows that pair, and be refused otherwise
 * (with an error naming both states, or nothing taken). Also: the table's
 * own consistency (states, key names, README rows), fencing (a stale fence
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
    redis_ok("RPUSH %s %d", key(s == JOB_QUEUED ? "queue:pending" : "queue:leased"), id);
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
    if (lease_like) {
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
    if (!strcmp(t->name, "lease") && from == JOB_QUEUED)
        redis_ok("LMOVE %s %s LEFT RIGHT", key("queue:pending"), key("queue:leased"));
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
 * transition that ends in `to`; the allowed set is what the README shows. */
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
    assert_false(jobstate_allowed(JS_BIT(JOB_FINISHING), JOB_QUEUED));
    assert_false(jobstate_allowed(JS_NONE, JOB_RUNNING));
}

static void test_add(void **state)
{
    (void)state;
    redis_ok("FLUSHALL");
    redisReply *r = redis_reply("FCALL tango_add 1 %s %s", P, "{\"id\":0,\"state\":\"done\",\"name\":\"a\"}");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    int id = (int)r->integer;
    freeReplyObject(r);
    char now[32];
    state_now(id, now, sizeof now);
    assert_string_equal(now, "queued"); /* the library sets it, whatever C wrote */
    r = redis_reply("FCALL tango_add 1 %s %s", P, "{\"name\":\"no id first\"}");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* A stale fence, a stranger's token, a non-leader: all refused. */
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
    redis_ok("LMOVE %s %s LEFT RIGHT", key("queue:pending"), key("queue:leased"));
    r = redis_reply("FCALL tango_lease 1 %s 6 %s 5000", P, TOKEN);
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

/* The table itself: names unique, keys real, README rows present. */
static void test_table(void **state)
{
    (void)state;
    size_t n;
    const struct jobstate_transition *ts = jobstate_transitions(&n);
    FILE *f = fopen("README.md", "r");
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
            fail_msg("README's state table has no row %s", row);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_allowed_pairs),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_every_pair),
        cmocka_unit_test(test_fencing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
