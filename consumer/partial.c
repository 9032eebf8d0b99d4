/*
 * partial.c: publishing partial output. While a job runs and a client has
 * asked for its partial output lately (producers mark that interest), this
 * thread periodically has what the job printed so far read through the VMMS
 * and stores it in Redis (with an expiry), where any producer serves
 * getPartialOutput. Jobs nobody watches cost no Docker exec.
 *
 * One job's trick (a FIFO, a huge file, a stuck exec) must not delay any
 * other job's output: each peek runs on a thread of its own, at most one at
 * a time per job, bounded by the plugin's own deadline on the read; this
 * thread only starts peeks and publishes those that are done, and is the
 * only one that talks to Redis. A job whose peek is still going is skipped
 * until it ends.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "consumer.h"
#include "log.h"

#define PARTIAL_TTL_S 3600
#define PARTIAL_BATCH 256
#define PARTIAL_MAX_PEEKS 64   /* peeks in flight at once */
#define PARTIAL_REAP_MS 10     /* how often finished peeks are looked for */

/* One read of one job's output, on its own thread. The fields after
 * `done` are the thread's until it sets done. */
struct peek {
    struct consumer *c;
    int64_t id;
    struct vmms_vm vm;
    size_t max;
    pthread_t thread;
    atomic_bool done;
    int rc;
    char *out;
    size_t len;
    char err[256];
    struct peek *next;
};

static void *peek_main(void *arg)
{
    struct peek *p = arg;
    p->rc = p->c->ops->get_partial_output(p->c->vctx, &p->vm, p->max, &p->out, &p->len,
                                          p->err, sizeof p->err);
    atomic_store(&p->done, true);
    return NULL;
}

static bool in_flight(const struct peek *list, int64_t id)
{
    for (const struct peek *p = list; p; p = p->next)
        if (p->id == id)
            return true;
    return false;
}

/* Joins and frees the peeks that are done; publishes their output when st
 * is given. Returns how many are still in flight. */
static size_t reap_peeks(struct peek **list, struct store *st)
{
    size_t left = 0;
    for (struct peek **pp = list; *pp;) {
        struct peek *p = *pp;
        if (!atomic_load(&p->done)) {
            left++;
            pp = &p->next;
            continue;
        }
        pthread_join(p->thread, NULL);
        if (p->rc == VMMS_OK && st)
            store_set_partial_output(st, p->id, p->out ? p->out : "", p->len, PARTIAL_TTL_S);
        else if (p->rc != VMMS_OK)
            log_debug("partial_output_failed", "id=%lld error=\"%s\"", (long long)p->id,
                      p->err);
        *pp = p->next;
        free(p->out);
        free(p);
    }
    return left;
}

struct peek_item {
    int64_t id;
    struct vmms_vm vm;
};

struct peek_batch {
    struct peek_item *items; /* PARTIAL_BATCH of them */
    size_t n;
    const struct peek *inflight;
};

/* held_fn: collects each running job with no peek going (its vm too). */
static bool collect_running(struct consumer *c, struct held_job *h, void *arg)
{
    (void)c;
    struct peek_batch *b = arg;
    if (b->n >= PARTIAL_BATCH)
        return false;
    if (h->started && atomic_load(&h->in_run) && !in_flight(b->inflight, h->id)) {
        b->items[b->n].id = h->id;
        b->items[b->n].vm = h->vm;
        b->n++;
    }
    return true;
}

/* Starts a peek for each running job a client watches that has none going;
 * returns how many it started. */
static size_t start_peeks(struct consumer *c, struct store *st, struct peek **list,
                        size_t inflight, size_t max)
{
    struct peek_batch b = {calloc(PARTIAL_BATCH, sizeof *b.items), 0, *list};
    if (b.items == NULL)
        return 0;
    struct peek_item *batch = b.items;
    size_t started = 0;
    held_each(c, collect_running, &b);
    size_t n = b.n;
    bool *wanted = calloc(n + 1, sizeof *wanted);
    int64_t *ids = calloc(n + 1, sizeof *ids);
    if (wanted && ids) {
        for (size_t i = 0; i < n; i++)
            ids[i] = batch[i].id;
        if (store_partial_wanted(st, ids, n, wanted) != STORE_OK)
            memset(wanted, 0, n * sizeof *wanted);
        for (size_t i = 0; i < n && inflight < PARTIAL_MAX_PEEKS; i++) {
            if (!wanted[i])
                continue; /* nobody asked: spare Docker an exec */
            struct peek *p = calloc(1, sizeof *p);
            if (p == NULL)
                break;
            p->c = c;
            p->id = batch[i].id;
            p->vm = batch[i].vm;
            p->max = max;
            atomic_init(&p->done, false);
            if (pthread_create(&p->thread, NULL, peek_main, p) != 0) {
                free(p);
                break;
            }
            p->next = *list;
            *list = p;
            inflight++;
            started++;
        }
    }
    free(wanted);
    free(ids);
    free(batch);
    return started;
}

void *partial_main(void *arg)
{
    struct consumer *c = arg;
    struct store *st = store_new(c->cfg);
    size_t max = (size_t)c->cfg->partial_output_kb * 1024;
    long interval = c->cfg->partial_output_interval_ms;
    long next = clock_mono_ms() + interval;
    struct peek *peeks = NULL;
    while (!atomic_load(&c->stopping)) {
        /* Done peeks are published within PARTIAL_REAP_MS of their end. */
        size_t inflight = reap_peeks(&peeks, st);
        long now = clock_mono_ms();
        if (now >= next) {
            inflight += start_peeks(c, st, &peeks, inflight, max);
            next = now + interval;
        }
        long nap = next - now;
        if (inflight > 0 && nap > PARTIAL_REAP_MS)
            nap = PARTIAL_REAP_MS;
        usleep((useconds_t)(nap > 0 ? nap : 1) * 1000);
    }
    /* Every peek ends within the plugin's deadline: wait for the last ones. */
    while (reap_peeks(&peeks, NULL) > 0)
        usleep(PARTIAL_REAP_MS * 1000);
    store_free(st);
    return NULL;
}
