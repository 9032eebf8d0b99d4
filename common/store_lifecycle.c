/*
 * store_lifecycle.c: a job's transitions (jobstate.h) as calls into the
 * job-state Functions library: add (producer), lease, take, adopt, sweep,
 * renew and release of leases, the owner's start/save/requeue/finish/end,
 * dead-letter, and the leader lease (the scheduler's upkeep is in
 * store_sched.c). No state is decided here: the library checks each
 * transition against the table and the caller's fence, and picks the next
 * job under the scheduling rule.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobstate.h"

int store_add_job(struct store *st, struct job *job)
{
    if (!job->name || !job->image || !job->output_file) {
        snprintf(st->err, sizeof st->err, "job record incomplete");
        return STORE_ERROR;
    }
    job->id = 0;
    char *text = job_dumps(job);
    if (!text) {
        snprintf(st->err, sizeof st->err, "job record cannot be serialized");
        return STORE_ERROR;
    }
    char cap[32];
    snprintf(cap, sizeof cap, "%d", job->queue_cap > 0 ? job->queue_cap : 0);
    const char *cls = job->priority ? job->priority : jobstate_class_name(JOB_CLASS_DEFAULT);
    const char *args[] = {text, cls, job->share_group ? job->share_group : JOB_GROUP_ALL, cap};
    int status;
    redisReply *r = store_fcall(st, &status, "add", 4, args);
    free(text);
    if (!r)
        return status;
    status = STORE_ERROR;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        if (r->element[0]->integer == 1 && r->element[1]->type == REDIS_REPLY_INTEGER &&
            r->element[1]->integer > 0) {
            job->id = r->element[1]->integer;
            status = STORE_OK;
        } else if (r->element[0]->integer == 0 && r->element[1]->type == REDIS_REPLY_STRING) {
            snprintf(st->err, sizeof st->err, "%s", r->element[1]->str);
            status = STORE_LIMIT;
        }
    }
    if (status == STORE_ERROR)
        snprintf(st->err, sizeof st->err, "unexpected add reply");
    freeReplyObject(r);
    return status;
}

int store_leader_acquire(struct store *st, const char *token, int lease_ms, bool *leader)
{
    char ms[32];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    const char *args[] = {token, ms};
    long long r = 0;
    int status = store_fcall_int(st, "leader", 2, args, &r);
    *leader = status == STORE_OK && r == 1;
    return status;
}

int store_leader_release(struct store *st, const char *token)
{
    const char *args[] = {token};
    long long r;
    return store_fcall_int(st, "leader_release", 1, args, &r);
}

/* Reads a lease reply: {1, fence, record[, id]} taken, {2, why} restored,
 * {0, why[, id]} nothing (why "unreadable": the record cannot be read; the
 * id, when given, goes to *id). */
static int lease_reply(struct store *st, redisReply *r, int status, struct job **job,
                       enum store_lease *got, int64_t *id)
{
    *got = LEASE_NONE;
    *job = NULL;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 && id) {
        redisReply *e = r->element[r->elements == 4 ? 3 : 2];
        if (e->type == REDIS_REPLY_INTEGER)
            *id = e->integer;
        else if (e->type == REDIS_REPLY_STRING)
            *id = atoll(e->str);
    }
    if (!r)
        return status;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        snprintf(st->err, sizeof st->err, "unexpected lease reply");
        return STORE_ERROR;
    }
    long long code = r->element[0]->integer;
    if (code == 2) {
        *got = LEASE_RESTORED;
    } else if (code == 0) {
        redisReply *why = r->element[1];
        if (why->type == REDIS_REPLY_STRING && strcmp(why->str, "unreadable") == 0) {
            *got = LEASE_UNREADABLE;
            snprintf(st->err, sizeof st->err, "record does not start with its id and state");
        }
    } else if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_STRING) {
        long long fence = r->element[1]->type == REDIS_REPLY_INTEGER ? r->element[1]->integer : 0;
        *job = job_loads(r->element[2]->str, st->err, sizeof st->err);
        if (*job) {
            (*job)->fence = fence;
            *got = LEASE_TAKEN;
        } else {
            *got = LEASE_UNREADABLE;
        }
    }
    freeReplyObject(r);
    return STORE_OK;
}

/* Calls a lease function (lease, take, adopt) for id. */
static int lease_call(struct store *st, const char *fn, const char *token, int64_t id,
                      int lease_ms, struct job **job, enum store_lease *got)
{
    char sid[32], ms[32];
    snprintf(sid, sizeof sid, "%lld", (long long)id);
    snprintf(ms, sizeof ms, "%d", lease_ms);
    const char *args[] = {sid, token, ms};
    int status;
    redisReply *r = store_fcall(st, &status, fn, 3, args);
    return lease_reply(st, r, status, job, got, NULL);
}

/* One call of the lease function: the next job under the scheduling rule. */
static int lease_once(struct store *st, const char *token, int lease_ms, int max_running,
                      int max_wait_s, int64_t *id, struct job **job, enum store_lease *got)
{
    char ms[32], cap[32], wait[32];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    snprintf(cap, sizeof cap, "%d", max_running > 0 ? max_running : 0);
    snprintf(wait, sizeof wait, "%lld", max_wait_s > 0 ? (long long)max_wait_s * 1000 : 0LL);
    const char *args[] = {token, ms, cap, wait};
    int status;
    redisReply *r = store_fcall(st, &status, "lease", 4, args);
    status = lease_reply(st, r, status, job, got, id);
    if (status == STORE_OK && *got == LEASE_TAKEN && *id <= 0)
        *id = (*job)->id;
    return status;
}

int store_lease_sched(struct store *st, const char *token, int lease_ms, int block_ms,
                      int max_running, int max_wait_s, int64_t *id, struct job **job,
                      enum store_lease *got)
{
    *id = 0;
    int status = lease_once(st, token, lease_ms, max_running, max_wait_s, id, job, got);
    if (status != STORE_OK || *got != LEASE_NONE || block_ms <= 0)
        return status;
    /* Nothing to lease (or paused): wait for a wake-up (a job queued, a
     * slot freed) or block_ms, then try once more. */
    char k_wake[KEY_MAX];
    store_key(st, k_wake, KEY_QUEUE_WAKE);
    redisReply *r = store_cmdf(st, &status, "BLPOP %s %.3f", k_wake, block_ms / 1000.0);
    if (!r)
        return status;
    bool woken = r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    if (!woken)
        return STORE_OK;
    return lease_once(st, token, lease_ms, max_running, max_wait_s, id, job, got);
}

int store_lease_next(struct store *st, const char *token, int lease_ms, int block_ms,
                     int64_t *id, struct job **job, enum store_lease *got)
{
    return store_lease_sched(st, token, lease_ms, block_ms, 0, 0, id, job, got);
}

int store_lease_take(struct store *st, const char *token, int64_t id, int lease_ms,
                     struct job **job, enum store_lease *got)
{
    return lease_call(st, "take", token, id, lease_ms, job, got);
}

int store_lease_adopt(struct store *st, const char *token, int64_t id, int lease_ms,
                      struct job **job, enum store_lease *got)
{
    return lease_call(st, "adopt", token, id, lease_ms, job, got);
}

int store_lease_sweep(struct store *st, const char *token, size_t max, int64_t **ids, size_t *n)
{
    char smax[32];
    snprintf(smax, sizeof smax, "%zu", max);
    const char *args[] = {token, smax};
    int status;
    redisReply *r = store_fcall(st, &status, "sweep", 2, args);
    return store_id_array(r, &status, ids, n);
}

/* Builds the args "token [lease_ms] id1 fence1 id2 fence2 ..." (malloc'd;
 * free with free_id_fence_args). */
static const char **id_fence_args(const char *token, const char *ms, const int64_t *ids,
                                  const long long *fences, size_t n, int *nargs)
{
    int head = ms ? 2 : 1;
    const char **args = calloc(2 * n + (size_t)head + 1, sizeof *args);
    args[0] = token;
    if (ms)
        args[1] = ms;
    for (size_t i = 0; i < n; i++) {
        char *a = NULL, *b = NULL;
        if (asprintf(&a, "%lld", (long long)ids[i]) < 0)
            a = NULL;
        if (asprintf(&b, "%lld", fences[i]) < 0)
            b = NULL;
        args[head + 2 * i] = a ? a : "";
        args[head + 2 * i + 1] = b ? b : "";
    }
    *nargs = head + 2 * (int)n;
    return args;
}

static void free_id_fence_args(const char **args, int nargs, bool with_ms)
{
    for (int i = with_ms ? 2 : 1; i < nargs; i++)
        if (args[i][0])
            free((char *)args[i]);
    free(args);
}

int store_lease_renew(struct store *st, const char *token, int lease_ms, const int64_t *ids,
                      const long long *fences, size_t n, int64_t **lost, size_t *nlost)
{
    *lost = NULL;
    *nlost = 0;
    if (n == 0)
        return STORE_OK;
    char ms[32];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    int nargs;
    const char **args = id_fence_args(token, ms, ids, fences, n, &nargs);
    int status;
    redisReply *r = store_fcall(st, &status, "renew", nargs, args);
    free_id_fence_args(args, nargs, true);
    return store_id_array(r, &status, lost, nlost);
}

int store_lease_release(struct store *st, const char *token, const int64_t *ids,
                        const long long *fences, size_t n)
{
    if (n == 0)
        return STORE_OK;
    int nargs;
    const char **args = id_fence_args(token, NULL, ids, fences, n, &nargs);
    long long r;
    int status = store_fcall_int(st, "release", nargs, args, &r);
    free_id_fence_args(args, nargs, false);
    return status;
}

/* Calls an owner transition: args "id token fence record" then extra. */
static int owned_call(struct store *st, const char *fn, const char *token, const struct job *job,
                      const char *const *extra, int nextra)
{
    char sid[32], fence[32];
    snprintf(sid, sizeof sid, "%lld", (long long)job->id);
    snprintf(fence, sizeof fence, "%lld", job->fence);
    char *text = job_dumps(job);
    if (!text) {
        snprintf(st->err, sizeof st->err, "job record cannot be serialized");
        return STORE_ERROR;
    }
    const char **args = calloc((size_t)nextra + 4, sizeof *args);
    args[0] = sid;
    args[1] = token;
    args[2] = fence;
    args[3] = text;
    for (int i = 0; i < nextra; i++)
        args[4 + i] = extra[i];
    long long r = 0;
    int status = store_fcall_int(st, fn, nextra + 4, args, &r);
    free(args);
    free(text);
    return status;
}

int store_job_start(struct store *st, const char *token, const struct job *job)
{
    return owned_call(st, "start", token, job, NULL, 0);
}

int store_job_save(struct store *st, const char *token, const struct job *job)
{
    return owned_call(st, "save", token, job, NULL, 0);
}

int store_job_requeue(struct store *st, const char *token, const struct job *job,
                      bool count_retry)
{
    const char *extra[] = {count_retry ? "1" : "0"};
    return owned_call(st, "requeue", token, job, extra, 1);
}

int store_job_finish(struct store *st, const char *token, const struct job *job)
{
    return owned_call(st, "finish", token, job, NULL, 0);
}

int store_job_end(struct store *st, const char *token, const struct job *job, bool cancelled,
                  const char *const *counters, size_t ncounters, const json_t *callback)
{
    char keep[32];
    snprintf(keep, sizeof keep, "%d", st->dead_keep);
    char *cb = callback ? json_dumps(callback, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    const char **extra = calloc(2 + ncounters, sizeof *extra);
    extra[0] = keep;
    extra[1] = cb ? cb : "";
    for (size_t i = 0; i < ncounters; i++)
        extra[2 + i] = counters[i];
    int status = owned_call(st, cancelled ? "cancelled" : "done", token, job, extra,
                            2 + (int)ncounters);
    free(extra);
    free(cb);
    return status;
}

int store_job_deadletter(struct store *st, const char *token, int64_t id, const char *reason)
{
    char sid[32], keep[32], when[64];
    snprintf(sid, sizeof sid, "%lld", (long long)id);
    snprintf(keep, sizeof keep, "%d", st->dead_keep);
    job_ctime(when, sizeof when);
    const char *args[] = {sid, token, reason, keep, when};
    long long r;
    return store_fcall_int(st, "deadletter", 5, args, &r);
}

int store_lease_fence(struct store *st, int64_t id, long long *fence)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_LEASE_FENCE);
    int status;
    redisReply *r = store_cmdf(st, &status, "HGET %s %lld", key, (long long)id);
    if (!r)
        return status;
    *fence = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return STORE_OK;
}
