/*
 * store_sched.c: the fair-share scheduler's upkeep in Redis (store.h; the
 * rules are fairshare.h's, the serving is jobstate.lua's tango_lease): the
 * share weights from course_weights, migrating an older version's single
 * queue into the class and group queues, and recounting running jobs. The
 * leader's sweeper calls these.
 */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fairshare.h"
#include "job.h"

int store_set_share_weights(struct store *st, const json_t *weights)
{
    char key[KEY_MAX];
    store_key(st, key, KEY_QUEUE_WEIGHTS);
    int status;
    /* Groups no longer listed go first; the listed ones are then written,
     * so a configured group never reads as missing (weight 1) meanwhile. */
    redisReply *names = store_cmdf(st, &status, "HKEYS %s", key);
    if (!names)
        return status;
    for (size_t i = 0; i < names->elements && status == STORE_OK; i++)
        if (names->element[i]->type == REDIS_REPLY_STRING &&
            !json_object_get(weights, names->element[i]->str))
            freeReplyObject(store_cmdf(st, &status, "HDEL %s %s", key, names->element[i]->str));
    freeReplyObject(names);
    const char *name;
    json_t *w;
    json_object_foreach((json_t *)weights, name, w) {
        if (status != STORE_OK)
            break;
        char val[32];
        snprintf(val, sizeof val, "%.6g", json_number_value(w));
        freeReplyObject(store_cmdf(st, &status, "HSET %s %s %s", key, name, val));
    }
    return status;
}

int store_migrate_legacy(struct store *st, const char *token, const struct tango_config *cfg,
                         size_t *moved)
{
    enum { MIGRATE_MAX = 1000 };
    char k_pending[KEY_MAX], k_live[KEY_MAX];
    store_key(st, k_pending, KEY_QUEUE_PENDING);
    store_key(st, k_live, KEY_JOBS_LIVE);
    *moved = 0;
    int status;
    redisReply *ids = store_cmdf(st, &status, "LRANGE %s 0 %d", k_pending, MIGRATE_MAX - 1);
    if (!ids)
        return status;
    size_t n = ids->type == REDIS_REPLY_ARRAY ? ids->elements : 0;
    if (n == 0) {
        freeReplyObject(ids);
        return STORE_OK;
    }
    /* Each id's record says its class (priority field, else the rules) and
     * share group (shareGroup, else the fair_share rule). */
    const char **args = calloc(1 + 3 * n, sizeof *args);
    char (*cls)[JOB_CLASS_NAME_MAX] = calloc(n, sizeof *cls);
    char (*grp)[JOB_GROUP_MAX] = calloc(n, sizeof *grp);
    args[0] = token;
    for (size_t i = 0; i < n; i++) {
        const char *sid = ids->element[i]->type == REDIS_REPLY_STRING ? ids->element[i]->str : "0";
        args[1 + 3 * i] = sid;
        args[2 + 3 * i] = cls[i];
        args[3 + 3 * i] = grp[i];
        redisReply *rec = store_cmdf(st, &status, "HGET %s %s", k_live, sid);
        if (!rec)
            break;
        char err[128];
        struct job *job = rec->type == REDIS_REPLY_STRING ? job_loads(rec->str, err, sizeof err)
                                                          : NULL;
        freeReplyObject(rec);
        if (!job)
            continue; /* class "": unreadable (or gone): the library sets it aside */
        fairshare_classify(cfg, job, cls[i], grp[i]);
        job_free(job);
    }
    if (status == STORE_OK) {
        redisReply *r = store_fcall(st, &status, "migrate", (int)(1 + 3 * n), args);
        if (r) {
            *moved = r->type == REDIS_REPLY_INTEGER ? (size_t)r->integer : 0;
            freeReplyObject(r);
        }
    }
    free(args);
    free(cls);
    free(grp);
    freeReplyObject(ids);
    return status;
}

int store_sched_reconcile(struct store *st, long long *fixes)
{
    return store_fcall_int(st, "reconcile", 0, NULL, fixes);
}
