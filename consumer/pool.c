/*
 * pool.c: warm instance pools (see pool.h). The keeper (pool_tick, run by
 * the upkeep thread) creates instances outside the lock and only then adds
 * them as free, so pool_take never waits for an instance to be made.
 * Each instance remembers the id its image had when it was made (the
 * plugin's image_id); pool_take hands out only instances of the image's
 * current id, so a rebuilt image is never served from an older warm
 * instance. A pool whose instances cannot be made backs off (doubling from
 * GROW_BACKOFF_MIN_MS to GROW_BACKOFF_MAX_MS) and says so once, until an
 * instance is made again.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "vm_spec.h"

struct pool_vm {
    struct vmms_vm vm;
    char image_id[128];    /* the image's id when it was made ("" = unknown) */
    bool in_use;
    bool stale;            /* its image was rebuilt since: dropped by the keeper */
};

#define GROW_BACKOFF_MIN_MS 500
#define GROW_BACKOFF_MAX_MS 60000

struct pool_entry {
    char image[256];
    int want;              /* instances to keep: max(prealloc, automatic) */
    int prealloc;          /* size asked for with /prealloc */
    long long window_ms;   /* start of the current demand window */
    int jobs_now, jobs_before; /* jobs seen this window and the one before */
    long long last_job_ms;
    struct vmms_vm spec;   /* limits of this pool's instances */
    int failures;          /* instances that could not be made in a row */
    long long retry_at_ms; /* no instance is made before (backoff) */
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

/* The current id of image into id (128 bytes): VMMS_OK, "" when the
 * plugin cannot tell (no image_id), or the plugin's failure. */
static int current_image_id(struct pool *p, const char *image, char id[128], char *err,
                            size_t errlen)
{
    id[0] = '\0';
    if (!p->c->ops->image_id)
        return VMMS_OK;
    int st = p->c->ops->image_id(p->c->vctx, image, id, 128, err, errlen);
    metrics_vmms_error(p->c, "image_id", st);
    return st;
}

/* A free instance matching want whose image id is id; instances of another
 * id are marked stale on the way. Caller holds the lock. */
static struct pool_vm *find_free(struct pool *p, const struct vmms_vm *want, const char *id)
{
    for (size_t i = 0; i < p->n; i++) {
        struct pool_entry *e = &p->entries[i];
        for (size_t k = 0; k < e->n; k++) {
            struct pool_vm *v = &e->vms[k];
            if (v->in_use || v->stale || !vm_spec_fits(&v->vm, want))
                continue;
            if (id == NULL || strcmp(v->image_id, id) == 0)
                return v;
            v->stale = true;
            log_info("pool_vm_outdated", "image=%s vm=%s made_from=%.19s now=%.19s",
                     v->vm.image, v->vm.name, v->image_id, id);
        }
    }
    return NULL;
}

bool pool_take(struct pool *p, const struct vmms_vm *want, struct vmms_vm *out)
{
    pthread_mutex_lock(&p->lock);
    bool any = find_free(p, want, NULL) != NULL;
    pthread_mutex_unlock(&p->lock);
    if (!any)
        return false; /* no lookup of the image's id when nothing is warm */
    char id[128], err[256] = "";
    if (current_image_id(p, want->image, id, err, sizeof err) != VMMS_OK)
        return false; /* the image is gone or unreadable: a fresh instance says why */
    pthread_mutex_lock(&p->lock);
    struct pool_vm *v = find_free(p, want, id);
    if (v) {
        v->in_use = true;
        *out = v->vm;
    }
    pthread_mutex_unlock(&p->lock);
    return v != NULL;
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

void pool_image_rebuilt(struct pool *p, const char *image)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n; i++)
        for (size_t k = 0; k < p->entries[i].n; k++) {
            struct pool_vm *v = &p->entries[i].vms[k];
            v->stale |= !v->in_use && strcmp(v->vm.image, image) == 0;
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

/* The spec of image's pool: that of a job for image asking for these cores
 * and memory (0: the default) and nothing else of its own. */
static void pool_spec(const struct tango_config *cfg, const char *image, int cores,
                      int memory_mb, struct vmms_vm *spec)
{
    struct job job = {.image = (char *)image, .cores = cores, .memory_mb = memory_mb,
                      .disable_network = cfg->default_disable_network};
    vm_spec_of_job(cfg, &job, spec);
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
        pool_spec(p->c->cfg, image, 0, 0, &e->spec);
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
        pool_spec(cfg, image, cores > 0 ? (int)cores : 0, mem > 0 ? (int)mem : 0, &e->spec);
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
            if (!e->vms[k].in_use && !e->vms[k].stale) /* stale: never handed out */
                json_array_append_new(free_, json_string(e->vms[k].vm.name));
        }
        json_t *state = json_pack("{s:o, s:o}", "total", total, "free", free_);
        store_set_pool_state(st, e->image, state);
        json_decref(state);
    }
    pthread_mutex_unlock(&p->lock);
}

/* Notes how making an instance of image ended: a failure pushes the next
 * try back (doubling) and is logged once, with its reason, until an
 * instance is made again, which is logged too. */
static void note_grow(struct pool *p, const char *image, bool ok, const char *err)
{
    pthread_mutex_lock(&p->lock);
    struct pool_entry *e = entry_for(p, image);
    int failures = e->failures;
    long long delay = GROW_BACKOFF_MIN_MS;
    for (int i = 0; i < failures && delay < GROW_BACKOFF_MAX_MS; i++)
        delay *= 2;
    delay = delay < GROW_BACKOFF_MAX_MS ? delay : GROW_BACKOFF_MAX_MS;
    e->failures = ok ? 0 : failures + 1;
    e->retry_at_ms = ok ? 0 : clock_mono_ms() + delay;
    pthread_mutex_unlock(&p->lock);
    if (!ok && failures == 0)
        log_warn("pool_grow_failed", "image=%s error=\"%s\" action=\"retrying, waiting up to "
                 "%d s between tries; said once until an instance is made\"", image, err,
                 GROW_BACKOFF_MAX_MS / 1000);
    else if (!ok)
        log_debug("pool_grow_failed", "image=%s failures=%d retry_in_ms=%lld error=\"%s\"",
                  image, failures + 1, delay, err);
    else if (failures > 0)
        log_info("pool_grow_recovered", "image=%s after_failures=%d", image, failures);
}

/* Makes one instance for image with spec, noting its image's id first (an
 * instance made after a rebuild is then only younger than its id); adds it
 * free on success. Returns whether it did. */
static bool grow(struct pool *p, const struct vmms_vm *spec)
{
    struct consumer *c = p->c;
    struct vmms_vm vm = *spec;
    held_vm_name(c, "p", vm.name, sizeof vm.name);
    char err[256] = "", id[128];
    int st = current_image_id(p, spec->image, id, err, sizeof err);
    bool made = false;
    if (st == VMMS_OK) {
        st = c->ops->initialize_vm(c->vctx, &vm, err, sizeof err);
        metrics_vmms_error(c, "initialize_vm", st);
        made = true;
    }
    if (st == VMMS_OK) {
        st = c->ops->wait_vm(c->vctx, &vm, c->cfg->waitvm_timeout_s, err, sizeof err);
        metrics_vmms_error(c, "wait_vm", st);
    }
    note_grow(p, spec->image, st == VMMS_OK, err);
    if (st != VMMS_OK) {
        if (made)
            destroy(p, &vm);
        return false;
    }
    pthread_mutex_lock(&p->lock);
    struct pool_entry *e = entry_for(p, spec->image);
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->vms = realloc(e->vms, e->cap * sizeof *e->vms);
    }
    struct pool_vm *v = &e->vms[e->n++];
    memset(v, 0, sizeof *v);
    v->vm = vm;
    snprintf(v->image_id, sizeof v->image_id, "%s", id);
    pthread_mutex_unlock(&p->lock);
    log_info("pool_vm_ready", "image=%s vm=%s", spec->image, vm.name);
    return true;
}

/* Moves entry e's free instances that are stale, of other limits, or over
 * its size into drop (room for *ndrop up to max). Caller holds the lock. */
static void pick_drops(struct pool_entry *e, struct vmms_vm *drop, int *ndrop, int max)
{
    for (size_t k = 0; k < e->n && *ndrop < max;) {
        struct pool_vm *v = &e->vms[k];
        bool unwanted = v->stale || !vm_spec_fits(&v->vm, &e->spec) || (int)e->n > e->want;
        if (!v->in_use && unwanted) {
            drop[(*ndrop)++] = v->vm;
            *v = e->vms[--e->n];
            continue;
        }
        k++;
    }
}

void pool_tick(struct pool *p, struct store *st)
{
    json_t *wanted = NULL;
    if (store_pools_wanted(st, &wanted) != STORE_OK)
        return;
    pthread_mutex_lock(&p->lock);
    apply_wanted(p, wanted);
    json_decref(wanted);
    /* Decide what to make or drop, then do it outside the lock; a pool
     * backing off after failures makes nothing this tick. */
    struct vmms_vm make[16], drop[16];
    int nmake = 0, ndrop = 0;
    long long now = clock_mono_ms();
    for (size_t i = 0; i < p->n; i++) {
        struct pool_entry *e = &p->entries[i];
        pick_drops(e, drop, &ndrop, 16);
        for (int k = (int)e->n; k < e->want && nmake < 16 && now >= e->retry_at_ms; k++)
            make[nmake++] = e->spec;
    }
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < ndrop; i++)
        destroy(p, &drop[i]);
    /* after one failure, the same image's other instances wait for the backoff */
    char failed[16][256];
    int nfailed = 0;
    for (int i = 0; i < nmake && !atomic_load(&p->c->stopping); i++) {
        bool skip = false;
        for (int f = 0; f < nfailed; f++)
            skip |= strcmp(failed[f], make[i].image) == 0;
        if (!skip && !grow(p, &make[i]))
            snprintf(failed[nfailed++], sizeof failed[0], "%s", make[i].image);
    }
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
