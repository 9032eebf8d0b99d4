/*
 * reaper.c: the thread that makes the VMMS calls the dispatcher must not
 * (consumer.h): it destroys queued instances (a cancelled job's, an orphan
 * of a requeued job) and, on the leader every REAP_PERIOD_MS or when asked,
 * cleans up what no live job owns:
 *   - instances of this service's prefix that are neither held here, nor
 *     in this consumer's pool, nor named by a live job's record, nor made
 *     by another consumer that still heartbeats (its own to judge);
 *   - output temp files (<lab>/output/.<id>.<fence>.tmp) and feedback files
 *     (<courselabs>/.feedback-<id>-<fence>) of a job that is not live, or
 *     whose current lease has another fence (unless the record names the
 *     temp file as its accepted output).
 * and, as the consumer exits, its own instances that nothing owns (a
 * destroy that failed or was skipped in doubt would otherwise wait for the
 * next leader's period). Instances of other prefixes and files of other
 * names are never touched.
 *
 * Acting as the leader (a queued destroy, each destroy and each removal of
 * a clean-up pass) is allowed only while leader_valid_now() says the lease
 * is still certainly ours, asked right before the act: a leader that
 * stalled past its lease and resumes destroys nothing of its successor's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "consumer.h"
#include "clock.h"
#include "leadership.h"
#include "log.h"
#include "owners.h"
#include "pool.h"

#define REAP_PERIOD_MS 10000
#define LABS_SCAN_MAX 100000

struct reap_item {
    struct vmms_vm vm;
    char why[64];
    struct reap_item *next;
};

struct reaper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct reap_item *head, *tail;
    bool cleanup_wanted;
    bool stop;
};

void reaper_destroy(struct consumer *c, const struct vmms_vm *vm, const char *why)
{
    struct reaper *r = c->reaper;
    struct reap_item *it = calloc(1, sizeof *it);
    it->vm = *vm;
    it->vm.priv = NULL;
    snprintf(it->why, sizeof it->why, "%s", why);
    pthread_mutex_lock(&r->lock);
    if (r->tail)
        r->tail->next = it;
    else
        r->head = it;
    r->tail = it;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void reaper_request_cleanup(struct consumer *c)
{
    struct reaper *r = c->reaper;
    pthread_mutex_lock(&r->lock);
    r->cleanup_wanted = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static void destroy_now(struct consumer *c, struct vmms_vm *vm, const char *why)
{
    char err[256] = "";
    int st = c->ops->safe_destroy_vm(c->vctx, vm, err, sizeof err);
    metrics_vmms_error(c, "safe_destroy_vm", st);
    if (st == VMMS_OK)
        log_info("vm_reaped", "vm=%s reason=\"%s\"", vm->name, why);
    else
        log_warn("vm_reap_failed", "vm=%s reason=\"%s\" error=\"%s\"", vm->name, why, err);
}

/* The job id in an instance name <prefix>j<id>-<seq>-<token>, else 0. */
static int64_t job_of_instance(const struct consumer *c, const char *name)
{
    size_t pl = strlen(c->cfg->instance_prefix);
    if (strncmp(name, c->cfg->instance_prefix, pl) != 0 || name[pl] != 'j')
        return 0;
    char *end = NULL;
    long long id = strtoll(name + pl + 1, &end, 10);
    return end && *end == '-' && id > 0 ? id : 0;
}

/* Whether a live, leased job records name as its instance. */
static bool live_job_uses(struct store *st, int64_t id, const char *name)
{
    json_t *rec = NULL;
    bool dead = false;
    if (store_get_job(st, id, &rec, &dead) != STORE_OK)
        return store_error(st)[0] && strstr(store_error(st), "unavailable"); /* unsure: keep */
    const char *state = json_string_value(json_object_get(rec, "state"));
    const char *vm = json_string_value(json_object_get(json_object_get(rec, "vm"), "name"));
    bool uses = !dead && state &&
                (!strcmp(state, "leased") || !strcmp(state, "running") ||
                 !strcmp(state, "finishing")) &&
                vm && strcmp(vm, name) == 0;
    json_decref(rec);
    return uses;
}

/* Whether this consumer may still act as the leader; logs the first
 * refusal of a pass (*warned) so a stalled leader says why it held back. */
static bool may_act_as_leader(struct consumer *c, bool *warned, const char *what)
{
    if (leader_valid_now(c))
        return true;
    if (!*warned)
        log_warn("leadership_expired", "skipped=\"%s\" reason=\"the leader lease may have "
                 "lapsed since its last renewal\"", what);
    *warned = true;
    return false;
}

/* Whether a clean-up pass must leave the instance alone (see
 * cleanup_instances): owned here, not ours to judge, or someone's. */
static bool instance_owned(struct consumer *c, struct store *st, struct owners *o,
                           const char *name, bool only_own)
{
    char mine[16];
    snprintf(mine, sizeof mine, "-%.8s", c->token);
    size_t len = strlen(name), ml = strlen(mine);
    bool own = len > ml && strcmp(name + len - ml, mine) == 0;
    int64_t job = job_of_instance(c, name);
    if (held_holds_vm(c, name) || pool_owns(c->pool, name))
        return true;
    if (only_own ? !own : own && !job)
        return true; /* not ours to judge now, or our pool is growing it */
    if (job && live_job_uses(st, job, name))
        return true; /* a live job's, adopted or about to be */
    if (!own && owners_heartbeats(o, st, name))
        return true; /* its consumer lives: it cleans up its own */
    return !job && owners_record_names(o, st, name); /* a pool instance a job took */
}

struct found_vms {
    struct found_vm { char name[128]; char id[128]; } *v;
    size_t n, cap;
};

static void collect(const char *name, const char *id, const char *image, bool running, void *arg)
{
    (void)image;
    (void)running;
    struct found_vms *f = arg;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->v = realloc(f->v, f->cap * sizeof *f->v);
    }
    snprintf(f->v[f->n].name, sizeof f->v[f->n].name, "%s", name);
    snprintf(f->v[f->n].id, sizeof f->v[f->n].id, "%s", id ? id : name);
    f->n++;
}

/* Destroys the instances of this service's prefix that nothing owns: not
 * held here, not in the pool, not named by a live job's record. With
 * only_own (the last pass before this consumer exits: its pool is done
 * growing) just this consumer's own instances (names ending -<token8>),
 * including pool instances its pool no longer lists; otherwise also those
 * of consumers that are gone (no heartbeat), but never one of ours our
 * pool may be growing right now. Except in the last pass, each destroy
 * first asks leader_valid_now(); the pass stops at the first no. */
static void cleanup_instances(struct consumer *c, struct store *st, bool only_own)
{
    struct found_vms f = {0};
    char err[256] = "";
    int listed = c->ops->get_vms(c->vctx, collect, &f, err, sizeof err);
    metrics_vmms_error(c, "get_vms", listed);
    if (listed != VMMS_OK) {
        log_warn("cleanup_list_failed", "error=\"%s\"", err);
        return;
    }
    struct owners o = {0};
    bool warned = false;
    size_t removed = 0;
    for (size_t i = 0; i < f.n; i++) {
        const char *name = f.v[i].name;
        if (instance_owned(c, st, &o, name, only_own))
            continue;
        if (!only_own && !may_act_as_leader(c, &warned, "orphan instances"))
            break;
        struct vmms_vm vm = {0};
        snprintf(vm.name, sizeof vm.name, "%s", name);
        snprintf(vm.id, sizeof vm.id, "%s", f.v[i].id);
        destroy_now(c, &vm, "orphan");
        removed++;
    }
    free(f.v);
    owners_free(&o);
    if (removed)
        log_info("cleanup_done", "found=%zu removed=%zu", f.n, removed);
}

/* Whether a writer's file for (id, fence) is garbage: the job is not live,
 * or its lease has another fence and the record does not name the file as
 * its accepted output. */
static bool file_is_stale(struct consumer *c, struct store *st, int64_t id, long long fence,
                          const char *name)
{
    if (held_find(c, id, fence))
        return false;
    /* The fence first: while it is the file's, its writer may still have
     * its finish accepted; once it has moved on, the record can no longer
     * come to name this file (read the other way round, a finish landing
     * and an adoption between the two reads would look stale). */
    long long current = 0;
    int fs = store_lease_fence(st, id, &current);
    if (fs == STORE_OK && current == fence)
        return false;
    json_t *rec = NULL;
    bool dead = false;
    int s = store_get_job(st, id, &rec, &dead);
    if (s == STORE_UNAVAILABLE)
        return false;
    if (s != STORE_OK || dead) {
        json_decref(rec);
        return true;
    }
    const char *accepted = json_string_value(json_object_get(rec, "outputTemp"));
    bool keep = accepted && name && strcmp(accepted, name) == 0;
    json_decref(rec);
    return !keep && fs == STORE_OK;
}

/* Removes the stale file name in the folder dfd, if this consumer may
 * still act as the leader. */
static void remove_stale(struct consumer *c, int dfd, const char *name, bool *warned)
{
    if (may_act_as_leader(c, warned, "stale files") && unlinkat(dfd, name, 0) == 0)
        log_info("stale_file_removed", "file=%s", name);
}

/* Removes stale ".<id>.<fence>.tmp" files in one open output folder. */
static void sweep_output_dir(struct consumer *c, struct store *st, int dfd, bool *warned)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        long long id, fence;
        int used = 0;
        if (e->d_name[0] != '.' ||
            sscanf(e->d_name, ".%lld.%lld.tmp%n", &id, &fence, &used) != 2 ||
            e->d_name[used] != '\0')
            continue;
        if (file_is_stale(c, st, id, fence, e->d_name))
            remove_stale(c, dirfd(d), e->d_name, warned);
    }
    closedir(d);
}

static void cleanup_files(struct consumer *c, struct store *st)
{
    int root = open(c->cfg->courselabs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0)
        return;
    DIR *d = fdopendir(root);
    if (!d) {
        close(root);
        return;
    }
    struct dirent *e;
    size_t labs = 0;
    bool warned = false;
    while ((e = readdir(d)) && labs < LABS_SCAN_MAX) {
        if (e->d_name[0] == '.') {
            long long id, fence;
            int used = 0;
            if (sscanf(e->d_name, ".feedback-%lld-%lld%n", &id, &fence, &used) == 2 &&
                e->d_name[used] == '\0' && file_is_stale(c, st, id, fence, NULL))
                remove_stale(c, dirfd(d), e->d_name, &warned);
            continue;
        }
        labs++;
        int lab = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (lab < 0)
            continue;
        int out = openat(lab, "output", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(lab);
        if (out >= 0)
            sweep_output_dir(c, st, out, &warned);
    }
    closedir(d);
}

/* A queued destroy (ordered by the leader: a cancel, the orphan of a job
 * it requeued), done only while the lease is certainly still ours; else
 * the next leader's clean-up judges the instance. Frees it. */
static void destroy_ordered(struct consumer *c, struct reap_item *it)
{
    if (leader_valid_now(c))
        destroy_now(c, &it->vm, it->why);
    else
        log_warn("vm_destroy_skipped", "vm=%s reason=\"%s\" why=\"leadership lapsed\"",
                 it->vm.name, it->why);
    free(it);
}

static void *reaper_main(void *arg)
{
    struct consumer *c = arg;
    struct reaper *r = c->reaper;
    struct store *st = store_new(c->cfg);
    long long next_cleanup = clock_mono_ms() + REAP_PERIOD_MS;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        if (!r->head && !r->cleanup_wanted && clock_mono_ms() < next_cleanup) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
            continue;
        }
        struct reap_item *it = r->head;
        if (it) {
            r->head = it->next;
            if (!r->head)
                r->tail = NULL;
            pthread_mutex_unlock(&r->lock);
            destroy_ordered(c, it);
            pthread_mutex_lock(&r->lock);
            continue;
        }
        r->cleanup_wanted = false;
        pthread_mutex_unlock(&r->lock);
        bool warned = false;
        if (atomic_load(&c->leader) && !atomic_load(&c->draining) &&
            may_act_as_leader(c, &warned, "clean-up pass")) {
            cleanup_instances(c, st, false);
            cleanup_files(c, st);
        }
        next_cleanup = clock_mono_ms() + REAP_PERIOD_MS;
        pthread_mutex_lock(&r->lock);
    }
    /* Destroys still queued are done before the consumer exits, and then
     * whatever instance of its own it still has that no live job needs (one
     * whose destroy failed or was skipped while its lease was in doubt): the
     * periodic clean-up would have had it, but not before this exit. */
    while (r->head) {
        struct reap_item *it = r->head;
        r->head = it->next;
        pthread_mutex_unlock(&r->lock);
        destroy_ordered(c, it);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    cleanup_instances(c, st, true);
    store_free(st);
    return NULL;
}

int reaper_start(struct consumer *c)
{
    struct reaper *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    c->reaper = r;
    return pthread_create(&r->thread, NULL, reaper_main, c);
}

void reaper_stop(struct consumer *c)
{
    struct reaper *r = c->reaper;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
    c->reaper = NULL;
}
