/*
 * pool.c: warm instance pools (see pool.h). The keeper (pool_tick, run by
 * the upkeep thread) creates instances outside the lock and only then adds
 * them as free, so pool_take never waits for an instance to be made.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "clock.h"

struct pool_vm {
    struct vmms_vm vm;
    bool in_use;
};

struct pool_entry {
    char image[256];
    int want;              /* instances to keep: max(prealloc, automatic) */
    int prealloc;          /* size asked for with /prealloc */
    long long window_ms;   /* start of the current demand window */
    int jobs_now, jobs_before; /* jobs seen this window and the one before */
    long long last_job_ms;
    struct vmms_vm spec;   /* limits of this pool's instances */
    struct pool_vm *vms;
    size_t n, cap;
};

struct pool {
    struct consumer *c;
    pthread_mutex_t lock;
    struct pool_entry *entries;
    size_t n;
};

struct pool *pool_new(struct consumer *c)
{
    struct pool *p = calloc(1, sizeof *p);
    p->c = c;
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

static void destroy(struct pool *p, struct vmms_vm *vm)
{
    char err[256] = "";
    int st = p->c->ops->safe_destroy_vm(p->c->vctx, vm, err, sizeof err);
    metrics_vmms_error(p->c, "safe_destroy_vm", st);
    if (st != VMMS_OK)
        log_warn("pool_destroy_failed", "vm=%s error=\"%s\"", vm->name, err);
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        for (size_t k = 0; k < p->entries[i].n; k++)
            if (!p->entries[i].vms[k].in_use)
                destroy(p, &p->entries[i].vms[k].vm);
        free(p->entries[i].vms);
    }
    free(p->entries);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static bool same_limits(const struct vmms_vm *a, const struct vmms_vm *b)
{
    return strcmp(a->image, b->image) == 0 && a->cores == b->cores &&
           a->memory_mb == b->memory_mb && a->pids_limit == b->pids_limit &&
           a->network == b->network && strcmp(a->instance_type, b->instance_type) == 0;
}

bool pool_take(struct pool *p, const struct vmms_vm *want, struct vmms_vm *out)
{
    bool got = false;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n && !got; i++) {
        struct pool_entry *e = &p->entries[i];
        for (size_t k = 0; k < e->n; k++)
            if (!e->vms[k].in_use && same_limits(&e->vms[k].vm, want)) {
                e->vms[k].in_use = true;
                *out = e->vms[k].vm;
                got = true;
                break;
            }
    }
    pthread_mutex_unlock(&p->lock);
    return got;
}

void pool_release(struct pool *p, const char *name)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++) {
        struct pool_entry *e = &p->entries[i];
        for (size_t k = 0; k < e->n; k++)
            if (strcmp(e->vms[k].vm.name, name) == 0) {
                e->vms[k] = e->vms[--e->n];
                pthread_mutex_unlock(&p->lock);
                return;
            }
    }
    pthread_mutex_unlock(&p->lock);
}

bool pool_owns(struct pool *p, const char *name)
{
    bool owns = false;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n && !owns; i++)
        for (size_t k = 0; k < p->entries[i].n; k++)
            if (strcmp(p->entries[i].vms[k].vm.name, name) == 0)
                owns = true;
    pthread_mutex_unlock(&p->lock);
    return owns;
}

static struct pool_entry *entry_for(struct pool *p, const char *image)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->entries[i].image, image) == 0)
            return &p->entries[i];
    p->entries = realloc(p->entries, (p->n + 1) * sizeof *p->entries);
    struct pool_entry *e = &p->entries[p->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->image, sizeof e->image, "%s", image);
    return e;
}

#define DEMAND_WINDOW_MS 60000

static void default_spec(const struct tango_config *cfg, const char *image, struct vmms_vm *spec)
{
    memset(spec, 0, sizeof *spec);
    snprintf(spec->image, sizeof spec->image, "%s", image);
    spec->cores = cfg->default_cores;
    spec->memory_mb = cfg->default_memory_mb;
    spec->pids_limit = cfg->pids_limit;
    spec->network = !cfg->default_disable_network;
}

/* Rolls the demand window forward. Caller holds the lock. */
static void roll(struct pool_entry *e, long long now)
{
    while (now - e->window_ms >= DEMAND_WINDOW_MS) {
        e->jobs_before = e->jobs_now;
        e->jobs_now = 0;
        e->window_ms = e->window_ms ? e->window_ms + DEMAND_WINDOW_MS : now;
        if (now - e->window_ms >= 2 * DEMAND_WINDOW_MS)
            e->window_ms = now; /* long idle: start afresh */
    }
}

void pool_note_job(struct pool *p, const char *image)
{
    long long now = clock_mono_ms();
    pthread_mutex_lock(&p->lock);
    bool fresh = true;
    for (size_t i = 0; i < p->n; i++)
        fresh &= strcmp(p->entries[i].image, image) != 0;
    struct pool_entry *e = entry_for(p, image);
    if (fresh)
        default_spec(p->c->cfg, image, &e->spec);
    roll(e, now);
    e->jobs_now++;
    e->last_job_ms = now;
    pthread_mutex_unlock(&p->lock);
}

/* The automatic size: as many warm instances as jobs started in the busier
 * of the last two minutes, at least one while the image was used within
 * auto_pool_idle_s, at most auto_pool_max. Caller holds the lock. */
static int auto_size(const struct tango_config *cfg, struct pool_entry *e, long long now)
{
    if (cfg->auto_pool_max == 0 || !e->last_job_ms ||
        now - e->last_job_ms > (long long)cfg->auto_pool_idle_s * 1000)
        return 0;
    roll(e, now);
    int demand = e->jobs_now > e->jobs_before ? e->jobs_now : e->jobs_before;
    if (demand < 1)
        demand = 1;
    return demand < cfg->auto_pool_max ? demand : cfg->auto_pool_max;
}

/* Reads the prealloc sizes and limits, and sets every pool's size.
 * Caller holds the lock. */
static void apply_wanted(struct pool *p, json_t *wanted)
{
    const struct tango_config *cfg = p->c->cfg;
    for (size_t i = 0; i < p->n; i++)
        p->entries[i].prealloc = 0;
    const char *image;
    json_t *spec;
    json_object_foreach(wanted, image, spec) {
        struct pool_entry *e = entry_for(p, image);
        e->prealloc = (int)json_integer_value(json_object_get(spec, "size"));
        json_int_t cores = json_integer_value(json_object_get(spec, "cores"));
        json_int_t mem = json_integer_value(json_object_get(spec, "memory"));
        default_spec(cfg, image, &e->spec);
        if (cores > 0)
            e->spec.cores = (int)cores;
        if (mem > 0)
            e->spec.memory_mb = (int)mem;
    }
    long long now = clock_mono_ms();
    for (size_t i = 0; i < p->n; i++) {
        struct pool_entry *e = &p->entries[i];
        int a = auto_size(cfg, e, now);
        e->want = e->prealloc > a ? e->prealloc : a;
    }
}

static void publish(struct pool *p, struct store *st)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++) {
        struct pool_entry *e = &p->entries[i];
        json_t *total = json_array(), *free_ = json_array();
        for (size_t k = 0; k < e->n; k++) {
            json_array_append_new(total, json_string(e->vms[k].vm.name));
            if (!e->vms[k].in_use)
                json_array_append_new(free_, json_string(e->vms[k].vm.name));
        }
        json_t *state = json_pack("{s:o, s:o}", "total", total, "free", free_);
        store_set_pool_state(st, e->image, state);
        json_decref(state);
    }
    pthread_mutex_unlock(&p->lock);
}

/* Makes one instance for image with spec; adds it free on success. */
static void grow(struct pool *p, const struct vmms_vm *spec)
{
    struct consumer *c = p->c;
    struct vmms_vm vm = *spec;
    consumer_vm_name(c, "p", vm.name, sizeof vm.name);
    char err[256] = "";
    int st = c->ops->initialize_vm(c->vctx, &vm, err, sizeof err);
    metrics_vmms_error(c, "initialize_vm", st);
    if (st == VMMS_OK) {
        st = c->ops->wait_vm(c->vctx, &vm, c->cfg->waitvm_timeout_s, err, sizeof err);
        metrics_vmms_error(c, "wait_vm", st);
    }
    if (st != VMMS_OK) {
        log_warn("pool_grow_failed", "image=%s error=\"%s\"", spec->image, err);
        destroy(p, &vm);
        return;
    }
    pthread_mutex_lock(&p->lock);
    struct pool_entry *e = entry_for(p, spec->image);
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->vms = realloc(e->vms, e->cap * sizeof *e->vms);
    }
    e->vms[e->n].vm = vm;
    e->vms[e->n].in_use = false;
    e->n++;
    pthread_mutex_unlock(&p->lock);
    log_info("pool_vm_ready", "image=%s vm=%s", spec->image, vm.name);
}

void pool_tick(struct pool *p, struct store *st)
{
    json_t *wanted = NULL;
    if (store_pools_wanted(st, &wanted) != STORE_OK)
        return;
    pthread_mutex_lock(&p->lock);
    apply_wanted(p, wanted);
    json_decref(wanted);
    /* Decide what to make or drop, then do it outside the lock. */
    struct vmms_vm make[16], drop[16];
    int nmake = 0, ndrop = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct pool_entry *e = &p->entries[i];
        for (int k = (int)e->n; k < e->want && nmake < 16; k++)
            make[nmake++] = e->spec;
        for (size_t k = 0; k < e->n && (int)e->n > e->want && ndrop < 16;) {
            bool stale = !same_limits(&e->vms[k].vm, &e->spec);
            if (!e->vms[k].in_use && ((int)e->n > e->want || stale)) {
                drop[ndrop++] = e->vms[k].vm;
                e->vms[k] = e->vms[--e->n];
                continue;
            }
            k++;
        }
    }
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < ndrop; i++)
        destroy(p, &drop[i]);
    for (int i = 0; i < nmake && !atomic_load(&p->c->stopping); i++)
        grow(p, &make[i]);
    publish(p, st);
}

void pool_unpublish(struct pool *p, struct store *st)
{
    json_t *empty = json_pack("{s:[], s:[]}", "total", "free");
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++)
        store_set_pool_state(st, p->entries[i].image, empty);
    pthread_mutex_unlock(&p->lock);
    json_decref(empty);
}
