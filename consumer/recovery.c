/*
 * recovery.c: what a consumer does when it becomes leader. Jobs left leased
 * by a consumer that died are taken over once their lease has lapsed and
 * requeued with one more retry (a job over its retry budget then ends with
 * the internal-error output when it is next dispatched). Instances of this
 * service's prefix that no held job or pool owns are destroyed; instances
 * of other prefixes are never touched.
 */
#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "log.h"
#include "pool.h"

#define RECOVER_MAX 100000

void recover_orphans(struct consumer *c, struct store *st)
{
    int64_t *ids = NULL;
    size_t n = 0;
    if (store_leased_ids(st, RECOVER_MAX, &ids, &n) != STORE_OK) {
        log_error("recover_failed", "error=\"%s\"", store_error(st));
        return;
    }
    size_t requeued = 0;
    for (size_t i = 0; i < n; i++) {
        bool taken = false;
        if (store_lease_adopt(st, c->token, ids[i], c->cfg->lease_ms, &taken) != STORE_OK ||
            !taken)
            continue;
        struct job *job = NULL;
        int status = store_job_load(st, ids[i], &job);
        if (status == STORE_NOT_FOUND) {
            struct job stub = {.id = ids[i]};
            store_job_requeue(st, c->token, &stub, false); /* drops the stale entry */
            continue;
        }
        if (status != STORE_OK)
            continue;
        job->retries++;
        job->state = JOB_QUEUED;
        job->assigned = false;
        job_trace(job, "Requeued after its consumer stopped");
        if (store_job_requeue(st, c->token, job, true) == STORE_OK) {
            requeued++;
            log_warn("job_recovered", "id=%lld retries=%d", (long long)job->id, job->retries);
        }
        job_free(job);
    }
    free(ids);
    log_info("recovery_done", "leased=%zu requeued=%zu", n, requeued);
}

struct cleanup_ctx {
    struct consumer *c;
    struct found_vm { char name[128]; char id[128]; } *vms;
    size_t n, cap;
};

static void collect(const char *name, const char *id, const char *image, bool running, void *arg)
{
    (void)image; (void)running;
    struct cleanup_ctx *cc = arg;
    if (cc->n == cc->cap) {
        cc->cap = cc->cap ? cc->cap * 2 : 64;
        cc->vms = realloc(cc->vms, cc->cap * sizeof *cc->vms);
    }
    snprintf(cc->vms[cc->n].name, sizeof cc->vms[cc->n].name, "%s", name);
    snprintf(cc->vms[cc->n].id, sizeof cc->vms[cc->n].id, "%s", id ? id : name);
    cc->n++;
}

static bool held_owns(struct consumer *c, const char *name)
{
    bool owned = false;
    pthread_mutex_lock(&c->lock);
    for (struct held_job *h = c->held; h; h = h->next)
        if (h->job && h->job->vm_name && strcmp(h->job->vm_name, name) == 0)
            owned = true;
    pthread_mutex_unlock(&c->lock);
    return owned;
}

void cleanup_instances(struct consumer *c, struct store *st)
{
    (void)st;
    struct cleanup_ctx cc = {.c = c};
    char err[256] = "";
    if (c->ops->get_vms(c->vctx, collect, &cc, err, sizeof err) != VMMS_OK) {
        log_warn("cleanup_list_failed", "error=\"%s\"", err);
        return;
    }
    size_t removed = 0;
    for (size_t i = 0; i < cc.n; i++) {
        const char *name = cc.vms[i].name;
        if (held_owns(c, name) || pool_owns(c->pool, name))
            continue;
        struct vmms_vm vm = {0};
        snprintf(vm.name, sizeof vm.name, "%s", name);
        snprintf(vm.id, sizeof vm.id, "%s", cc.vms[i].id);
        if (c->ops->safe_destroy_vm(c->vctx, &vm, err, sizeof err) == VMMS_OK)
            removed++;
        else
            log_warn("cleanup_destroy_failed", "vm=%s error=\"%s\"", name, err);
    }
    free(cc.vms);
    log_info("cleanup_done", "found=%zu removed=%zu", cc.n, removed);
}
