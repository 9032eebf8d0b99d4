/*
 * store_lifecycle.c: a job's transitions (jobstate.h) as calls into the
 * job-state Functions library: add (producer), lease, take, adopt, sweep,
 * renew and release of leases, the owner's start/save/requeue/finish/end,
 * dead-letter, and the leader lease. No state is decided here: the library
 * checks each transition against the table and the caller's fence.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobstate.h"

/* Calls fn and reads an integer reply into *result. */
static int fcall_int(struct store *st, const char *fn, int nargs, const char *const *args,
                     long long *result)
{
    int status;
    redisReply *r = store_fcall(st, &status, fn, nargs, args);
    if (!r)
        return status;
    *result = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return STORE_OK;
}

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
    const char *args[] = {text};
    long long id = 0;
    int status = fcall_int(st, "add", 1, args, &id);
    free(text);
    if (status != STORE_OK)
        return status;
    job->id = id;
    return id > 0 ? STORE_OK : STORE_ERROR;
}

int store_leader_acquire(struct store *st, const char *token, int lease_ms, bool *leader)
{
    char ms[32];
    snprintf(ms, sizeof ms, "%d", lease_ms);
    const char *args[] = {token, ms};
    long long r = 0;
    int status = fcall_int(st, "leader", 2, args, &r);
    *leader = status == STORE_OK && r == 1;
    return status;
}

int store_leader_release(struct store *st, const char *token)
{
    const char *args[] = {token};
    long long r;
    return fcall_int(st, "leader_release", 1, args, &r);
}

/* Reads a lease reply: {1, fence, record} taken, {2, why} restored,
 * {0, why} nothing (why "unreadable": the record cannot be read). */
static int lease_reply(struct store *st, redisReply *r, int status, struct job **job,
                       enum store_lease *got)
{
    *got = LEASE_NONE;
    *job = NULL;
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
    } else if (r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
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
    return lease_reply(st, r, status, job, got);
}

int store_lease_next(struct store *st, const char *token, int lease_ms, int block_ms,
                     int64_t *id, struct job **job, enum store_lease *got)
{
    char k_pending[KEY_MAX], k_leased[KEY_MAX];
    store_key(st, k_pending, KEY_QUEUE_PENDING);
    store_key(st, k_leased, KEY_QUEUE_LEASED);
    int status;
    redisReply *r;
    *id = 0;
    *job = NULL;
    *got = LEASE_NONE;
    if (block_ms > 0)
        r = store_cmdf(st, &status, "BLMOVE %s %s LEFT RIGHT %.3f", k_pending, k_leased,
                       block_ms / 1000.0);
    else
        r = store_cmdf(st, &status, "LMOVE %s %s LEFT RIGHT", k_pending, k_leased);
    if (!r)
        return status;
    if (r->type == REDIS_REPLY_STRING)
        *id = atoll(r->str);
    freeReplyObject(r);
    if (*id <= 0)
        return STORE_OK;
    /* A crash or an error right here leaves the id in queue:leased without
     * a lease: the leader's sweep (store_lease_sweep + adopt) restores it. */
    return lease_call(st, "lease", token, *id, lease_ms, job, got);
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
    return store_id_array(r, status, ids, n);
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
    return store_id_array(r, status, lost, nlost);
}

int store_lease_release(struct store *st, const char *token, const int64_t *ids,
                        const long long *fences, size_t n)
{
    if (n == 0)
        return STORE_OK;
    int nargs;
    const char **args = id_fence_args(token, NULL, ids, fences, n, &nargs);
    long long r;
    int status = fcall_int(st, "release", nargs, args, &r);
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
    int status = fcall_int(st, fn, nextra + 4, args, &r);
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
    return fcall_int(st, "deadletter", 5, args, &r);
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
