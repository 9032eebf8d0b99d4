/*
 * hosts.c: the fleet's state, which the monitor threads (host_monitor.c)
 * keep up to date. Owns host states (marking a host down),
 * connection reference counts, round-robin assignment with per-host
 * capacity, the registry of VMs (name -> host); a host's connection (vmms/common/ssh.h plus
 * the host's bookkeeping: opening, breaking, freeing) and dd_run, the one
 * way to run a command on a host.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dd.h"
#include "log.h"

/* ---- connections ---- */

struct dd_conn *dd_conn_get(struct dd_ctx *ctx, struct dd_host *h)
{
    struct dd_conn *c = NULL;
    pthread_mutex_lock(&ctx->lock);
    if (h->state == DD_UP && h->conn && !atomic_load(&h->conn->ssh.broken)) {
        c = h->conn;
        c->refs++;
    }
    pthread_mutex_unlock(&ctx->lock);
    return c;
}

void dd_conn_put(struct dd_ctx *ctx, struct dd_conn *c)
{
    pthread_mutex_lock(&ctx->lock);
    bool free_it = --c->refs == 0 && c->detached;
    pthread_mutex_unlock(&ctx->lock);
    if (free_it)
        dd_conn_free(c);
}

void dd_host_mark_down(struct dd_ctx *ctx, struct dd_host *h, const char *reason,
                       long retry_at)
{
    long now = clock_mono_ms();
    bool was_up = h->state != DD_DOWN;
    h->state = DD_DOWN;
    h->retry_at_ms = retry_at;
    if (was_up)
        h->down_since_ms = now;
    snprintf(h->last_error, sizeof h->last_error, "%s", reason);
    char q[600];
    if (was_up)
        log_warn("host_down", "host=%s active=%d retry_in_ms=%ld reason=%s", h->label,
                 h->active, retry_at - now, log_quote(reason, q, sizeof q));
    else
        log_info("host_still_down", "host=%s retry_in_ms=%ld reason=%s", h->label,
                 retry_at - now, log_quote(reason, q, sizeof q));
    pthread_cond_signal(&h->cond);
    pthread_cond_broadcast(&ctx->changed);
}

/* The connection's vssh_break hook: its host goes down. */
static void conn_broke(struct vssh_conn *sc, const char *reason)
{
    struct dd_conn *c = (struct dd_conn *)sc; /* ssh is its first member */
    struct dd_host *h = c->host;
    struct dd_ctx *ctx = h->ctx;
    pthread_mutex_lock(&ctx->lock);
    if (h->conn == c) {
        h->conn = NULL;
        c->detached = true;
        /* The first reconnect is at once: the host may just have restarted sshd. */
        dd_host_mark_down(ctx, h, reason, clock_mono_ms());
    }
    bool free_it = c->detached && c->refs == 0;
    pthread_mutex_unlock(&ctx->lock);
    if (free_it)
        dd_conn_free(c);
}

void dd_conn_break(struct dd_ctx *ctx, struct dd_conn *c, const char *reason)
{
    (void)ctx;
    vssh_break(&c->ssh, reason);
}

int dd_conn_open(struct dd_ctx *ctx, struct dd_host *h, struct dd_conn **out, bool *refused,
                 char *err, size_t errlen)
{
    *out = NULL;
    *refused = false;
    struct dd_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    int rc = vssh_open(&c->ssh, &h->target, &ctx->stopping, refused, err, errlen);
    if (rc != VMMS_OK) {
        free(c);
        return rc;
    }
    c->ssh.on_break = conn_broke;
    c->host = h;
    atomic_init(&c->net_ok, false);
    c->opened_ms = clock_mono_ms();
    *out = c;
    return VMMS_OK;
}

void dd_conn_free(struct dd_conn *c)
{
    if (c == NULL)
        return;
    vssh_close(&c->ssh);
    free(c);
}

int dd_run(struct dd_ctx *ctx, struct dd_host *h, const struct vssh_cmd *cmd,
           struct vssh_out *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->exit_code = -1;
    struct dd_conn *c = dd_conn_get(ctx, h);
    if (c == NULL) {
        char last[256];
        pthread_mutex_lock(&ctx->lock);
        snprintf(last, sizeof last, "%s", h->last_error);
        pthread_mutex_unlock(&ctx->lock);
        return vmms_fail(err, errlen, VMMS_ERR, "worker host %s is down%s%s", h->label,
                       last[0] ? ": " : "", last);
    }
    int rc = vssh_run(&c->ssh, cmd, out, err, errlen);
    dd_conn_put(ctx, c);
    return rc;
}

bool dd_host_is_up(struct dd_ctx *ctx, struct dd_host *h)
{
    pthread_mutex_lock(&ctx->lock);
    bool up = h->state == DD_UP;
    pthread_mutex_unlock(&ctx->lock);
    return up;
}

/* ---- assignment and the VM registry ---- */

/* Caller holds ctx->lock. */
static struct dd_vm_entry *find_vm(struct dd_ctx *ctx, const char *name)
{
    for (struct dd_vm_entry *e = ctx->vms; e; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

struct dd_host *dd_assign(struct dd_ctx *ctx, const char *name, int *ncpu)
{
    struct dd_vm_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    struct dd_host *pick = NULL;
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->nhosts && !pick; i++) {
        size_t k = (ctx->rr + i) % ctx->nhosts;
        struct dd_host *h = &ctx->hosts[k];
        if (h->state == DD_UP && h->conn && !atomic_load(&h->conn->ssh.broken) &&
            h->active < h->cfg->max_jobs) {
            pick = h;
            ctx->rr = (k + 1) % ctx->nhosts;
        }
    }
    if (pick) {
        pick->active++;
        *ncpu = pick->ncpu;
        snprintf(e->name, sizeof e->name, "%s", name);
        e->host = pick->index;
        e->counted = true;
        e->next = ctx->vms;
        ctx->vms = e;
        e = NULL;
    }
    pthread_mutex_unlock(&ctx->lock);
    free(e);
    return pick;
}

struct dd_host *dd_vm_host(struct dd_ctx *ctx, const struct vmms_vm *vm, char *err,
                           size_t errlen)
{
    struct dd_host *h = NULL;
    pthread_mutex_lock(&ctx->lock);
    struct dd_vm_entry *e = find_vm(ctx, vm->name);
    if (e)
        h = &ctx->hosts[e->host];
    for (size_t i = 0; i < ctx->nhosts && !h && vm->host[0]; i++)
        if (strcmp(ctx->hosts[i].label, vm->host) == 0)
            h = &ctx->hosts[i];
    pthread_mutex_unlock(&ctx->lock);
    if (h == NULL)
        vmms_fail(err, errlen, VMMS_ERR, "VM %s: not known on any worker host", vm->name);
    return h;
}

void dd_vm_note(struct dd_ctx *ctx, const char *name, struct dd_host *h)
{
    pthread_mutex_lock(&ctx->lock);
    if (find_vm(ctx, name) == NULL) {
        struct dd_vm_entry *e = calloc(1, sizeof *e);
        if (e) {
            snprintf(e->name, sizeof e->name, "%s", name);
            e->host = h->index;
            e->next = ctx->vms;
            ctx->vms = e;
        }
    }
    pthread_mutex_unlock(&ctx->lock);
}

void dd_vm_forget(struct dd_ctx *ctx, const char *name)
{
    pthread_mutex_lock(&ctx->lock);
    for (struct dd_vm_entry **p = &ctx->vms; *p; p = &(*p)->next)
        if (strcmp((*p)->name, name) == 0) {
            struct dd_vm_entry *e = *p;
            *p = e->next;
            if (e->counted)
                ctx->hosts[e->host].active--;
            free(e);
            break;
        }
    pthread_cond_broadcast(&ctx->changed);
    pthread_mutex_unlock(&ctx->lock);
}

void dd_defer_removal(struct dd_ctx *ctx, struct dd_host *h, const char *name)
{
    struct dd_pending *p = calloc(1, sizeof *p);
    if (p == NULL) {
        log_error("vm_destroy_abandoned", "name=%s host=%s note=\"out of memory\"", name,
                  h->label);
        return;
    }
    snprintf(p->name, sizeof p->name, "%s", name);
    pthread_mutex_lock(&ctx->lock);
    for (struct dd_pending *q = h->pending; q; q = q->next)
        if (strcmp(q->name, name) == 0) {
            pthread_mutex_unlock(&ctx->lock);
            free(p);
            return;
        }
    p->next = h->pending;
    h->pending = p;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&ctx->lock);
    log_warn("vm_destroy_deferred", "name=%s host=%s note=\"host down: removed when it is "
             "back\"", name, h->label);
}

/* ---- running jobs ---- */
