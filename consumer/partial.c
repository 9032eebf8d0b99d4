/*
 * partial.c: publishing partial output. While a job runs and a client has
 * asked for its partial output lately (producers mark that interest), this
 * thread periodically reads what the job printed so far through the VMMS and
 * stores it in Redis (with an expiry), where any producer serves
 * getPartialOutput. Jobs nobody watches cost no Docker exec.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consumer.h"
#include "log.h"

#define PARTIAL_TTL_S 3600
#define PARTIAL_BATCH 256

void *partial_main(void *arg)
{
    struct consumer *c = arg;
    struct store *st = store_new(c->cfg);
    size_t max = (size_t)c->cfg->partial_output_kb * 1024;
    while (!atomic_load(&c->stopping)) {
        usleep((useconds_t)c->cfg->partial_output_interval_ms * 1000);
        struct { int64_t id; struct vmms_vm vm; } *batch = calloc(PARTIAL_BATCH, sizeof *batch);
        size_t n = 0;
        pthread_mutex_lock(&c->lock);
        for (struct held_job *h = c->held; h && n < PARTIAL_BATCH; h = h->next)
            if (h->started && atomic_load(&h->in_run)) {
                batch[n].id = h->id;
                batch[n].vm = h->vm;
                n++;
            }
        pthread_mutex_unlock(&c->lock);
        bool *wanted = calloc(n + 1, sizeof *wanted);
        int64_t *ids = calloc(n + 1, sizeof *ids);
        for (size_t i = 0; i < n; i++)
            ids[i] = batch[i].id;
        if (store_partial_wanted(st, ids, n, wanted) != STORE_OK)
            memset(wanted, 0, n * sizeof *wanted);
        free(ids);
        for (size_t i = 0; i < n && !atomic_load(&c->stopping); i++) {
            if (!wanted[i])
                continue; /* nobody asked: spare Docker an exec */
            char *out = NULL;
            size_t len = 0;
            char err[256] = "";
            if (c->ops->get_partial_output(c->vctx, &batch[i].vm, max, &out, &len, err,
                                           sizeof err) == VMMS_OK) {
                store_set_partial_output(st, batch[i].id, out ? out : "", len, PARTIAL_TTL_S);
            } else {
                log_debug("partial_output_failed", "id=%lld error=\"%s\"",
                          (long long)batch[i].id, err);
            }
            free(out);
        }
        free(wanted);
        free(batch);
    }
    store_free(st);
    return NULL;
}
