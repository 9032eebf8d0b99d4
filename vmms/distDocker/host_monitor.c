/*
 * host_monitor.c: one monitor thread per worker host. It connects the host
 * (at start, and again after a failure: at once, then with a backoff that
 * doubles up to down_backoff_max_s; docker's CPU count and the jobs'
 * network check (network.c) are the proof it answers), checks it every
 * health_interval_s (docker answers over the session), watches the idle
 * socket for the peer hanging up, and removes, once the host is back, the
 * VMs whose destroy came while it was down (containers.c). The state it
 * updates is hosts.c's; nothing in hosts.c calls back into this file.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dd.h"
#include "log.h"

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *m, long until_ms)
{
    long ms = until_ms - clock_mono_ms();
    if (ms <= 0)
        return;
    struct timespec ts = clock_after_ms(CLOCK_MONOTONIC, ms);
    pthread_cond_timedwait(cv, m, &ts);
}

static const char *state_name(enum dd_state s)
{
    return s == DD_UP ? "up" : s == DD_DOWN ? "down" : "unknown";
}

/* ---- the monitor ---- */

/* One connection attempt, with docker's CPU count as the proof that the
 * host answers. Updates the host's state. */
static void connect_attempt(struct dd_ctx *ctx, struct dd_host *h)
{
    long t0 = clock_mono_ms();
    char err[512] = "";
    bool refused = false;
    struct dd_conn *c = NULL;
    int ncpu = 0;
    int rc = dd_conn_open(ctx, h, &c, &refused, err, sizeof err);
    if (rc == VMMS_OK) {
        struct vssh_cmd cmd = {.line = "docker info --format '{{json .NCPU}}'",
                             .timeout_ms = 1000 * ctx->cfg.command_timeout_s, .stdin_fd = -1,
                             .out_max = 256};
        struct vssh_out out;
        c->refs = 1; /* ours while we check it */
        rc = vssh_run(&c->ssh, &cmd, &out, err, sizeof err);
        if (rc == VMMS_OK && out.exit_code != 0)
            rc = vssh_cmd_fail(h->label, &out, "docker does not answer", err, sizeof err);
        const char *last = out.out ? out.out : "";
        for (const char *p = last; *p; p++) /* docker's answer is the last line */
            if (*p == '\n' && p[1] && p[1] != '\n')
                last = p + 1;
        if (rc == VMMS_OK && (ncpu = atoi(last)) <= 0)
            rc = vmms_fail(err, sizeof err, VMMS_ERR, "docker on %s: unexpected answer to "
                         "`docker info`", h->label);
        vssh_out_free(&out);
        /* A host whose jobs' network is misconfigured never comes up. */
        if (rc == VMMS_OK)
            rc = dd_net_check(ctx, c, err, sizeof err);
        c->refs = 0;
        if (rc != VMMS_OK) {
            atomic_store(&c->ssh.broken, true);
            dd_conn_free(c);
            c = NULL;
        }
    }
    long now = clock_mono_ms();
    pthread_mutex_lock(&ctx->lock);
    h->tried = true;
    if (rc == VMMS_OK && !atomic_load(&ctx->stopping)) {
        long down_ms = h->state == DD_DOWN ? now - h->down_since_ms : 0;
        h->conn = c;
        h->ncpu = ncpu;
        h->state = DD_UP;
        h->last_error[0] = '\0';
        h->backoff_ms = 1000L * ctx->cfg.down_backoff_s;
        h->next_health_ms = now + 1000L * ctx->cfg.health_interval_s;
        log_info("host_up", "host=%s ncpu=%d connect_ms=%ld down_ms=%ld pending=%d", h->label,
                 ncpu, now - t0, down_ms, h->pending != NULL);
        pthread_cond_broadcast(&ctx->changed);
    } else {
        if (rc == VMMS_OK) { /* stopping */
            pthread_mutex_unlock(&ctx->lock);
            dd_conn_free(c);
            return;
        }
        if (refused) {
            char q[700];
            log_error("host_refused", "host=%s reason=%s", h->label,
                      log_quote(err, q, sizeof q));
        }
        dd_host_mark_down(ctx, h, err, now + h->backoff_ms);
        h->backoff_ms *= 2;
        if (h->backoff_ms > 1000L * ctx->cfg.down_backoff_max_s)
            h->backoff_ms = 1000L * ctx->cfg.down_backoff_max_s;
    }
    pthread_mutex_unlock(&ctx->lock);
}

static void health_check(struct dd_ctx *ctx, struct dd_host *h)
{
    struct dd_conn *c = dd_conn_get(ctx, h);
    if (c == NULL)
        return;
    struct vssh_cmd cmd = {.line = "docker version --format '{{json .Server.Version}}'",
                         .timeout_ms = 1000 * ctx->cfg.command_timeout_s, .stdin_fd = -1,
                         .out_max = 256};
    struct vssh_out out;
    char err[512], why[600];
    int rc = vssh_run(&c->ssh, &cmd, &out, err, sizeof err);
    if (rc == VMMS_OK && out.exit_code != 0)
        rc = vssh_cmd_fail(h->label, &out, "docker does not answer", err, sizeof err);
    vssh_out_free(&out);
    snprintf(why, sizeof why, "health check: %s", err);
    if (rc != VMMS_OK)
        dd_conn_break(ctx, c, why);
    dd_conn_put(ctx, c);
}

/* Removes the VMs whose destroy came while h was down. */
static void run_pending(struct dd_ctx *ctx, struct dd_host *h)
{
    pthread_mutex_lock(&ctx->lock);
    struct dd_pending *list = h->pending;
    h->pending = NULL;
    pthread_mutex_unlock(&ctx->lock);
    while (list) {
        struct dd_pending *p = list;
        list = p->next;
        char err[512];
        bool existed = false;
        if (dd_remove_on(ctx, h, p->name, &existed, err, sizeof err) == VMMS_OK) {
            log_info("vm_destroyed_late", "name=%s host=%s existed=%d", p->name, h->label,
                     (int)existed);
            free(p);
        } else {
            char q[600];
            log_warn("vm_destroy_late_failed", "name=%s host=%s err=%s", p->name, h->label,
                     log_quote(err, q, sizeof q));
            pthread_mutex_lock(&ctx->lock);
            p->next = h->pending;
            h->pending = p;
            pthread_mutex_unlock(&ctx->lock);
        }
    }
}

static void *monitor_main(void *arg)
{
    struct dd_host *h = arg;
    struct dd_ctx *ctx = h->ctx;
    pthread_mutex_lock(&ctx->lock);
    while (!atomic_load(&ctx->stopping)) {
        long now = clock_mono_ms();
        if (h->conn == NULL && now >= h->retry_at_ms) {
            pthread_mutex_unlock(&ctx->lock);
            connect_attempt(ctx, h);
            pthread_mutex_lock(&ctx->lock);
            continue;
        }
        if (h->conn && h->pending) {
            pthread_mutex_unlock(&ctx->lock);
            run_pending(ctx, h);
            pthread_mutex_lock(&ctx->lock);
            if (h->conn && h->pending) /* failed again: not before the next check */
                timed_wait(&h->cond, &ctx->lock, h->next_health_ms);
            continue;
        }
        if (h->conn && now >= h->next_health_ms) {
            h->next_health_ms = now + 1000L * ctx->cfg.health_interval_s;
            h->last_health_ms = now;
            pthread_mutex_unlock(&ctx->lock);
            health_check(ctx, h);
            pthread_mutex_lock(&ctx->lock);
            continue;
        }
        if (h->conn) {
            /* Idle between checks: watch the socket for the peer hanging up
             * (sshd killed, host rebooted), so a dead host is noticed before
             * a job is sent there, not by the job. */
            struct dd_conn *c = h->conn;
            c->refs++;
            long t = h->next_health_ms - now < 250 ? h->next_health_ms - now : 250;
            pthread_mutex_unlock(&ctx->lock);
            struct pollfd p = {.fd = c->ssh.sock, .events = POLLRDHUP};
            bool hup = poll(&p, 1, (int)t) == 1 &&
                       (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) &&
                       !atomic_load(&c->ssh.broken);
            pthread_mutex_lock(&ctx->lock);
            if (hup && h->conn == c && clock_mono_ms() - h->last_health_ms > 1000)
                h->next_health_ms = clock_mono_ms(); /* check it now */
            bool free_it = --c->refs == 0 && c->detached;
            if (free_it) {
                pthread_mutex_unlock(&ctx->lock);
                dd_conn_free(c);
                pthread_mutex_lock(&ctx->lock);
            }
            continue;
        }
        timed_wait(&h->cond, &ctx->lock, h->retry_at_ms);
    }
    pthread_mutex_unlock(&ctx->lock);
    return NULL;
}

int dd_hosts_start(struct dd_ctx *ctx, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (size_t i = 0; i < ctx->nhosts; i++) {
        struct dd_host *h = &ctx->hosts[i];
        pthread_cond_init(&h->cond, &ca);
        h->backoff_ms = 1000L * ctx->cfg.down_backoff_s;
    }
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < ctx->nhosts; i++) {
        struct dd_host *h = &ctx->hosts[i];
        if (pthread_create(&h->monitor, NULL, monitor_main, h) != 0)
            return vmms_fail(err, errlen, VMMS_ERR, "cannot start a monitor thread");
        h->monitor_started = true;
    }
    /* The first attempts run in parallel; wait for them, boundedly. */
    long deadline = clock_mono_ms() + 1000L * ctx->cfg.connect_timeout_s + 1000;
    pthread_mutex_lock(&ctx->lock);
    for (;;) {
        size_t tried = 0;
        for (size_t i = 0; i < ctx->nhosts; i++)
            tried += ctx->hosts[i].tried;
        if (tried == ctx->nhosts || clock_mono_ms() >= deadline)
            break;
        timed_wait(&ctx->changed, &ctx->lock, deadline);
    }
    size_t up = 0;
    for (size_t i = 0; i < ctx->nhosts; i++) {
        struct dd_host *h = &ctx->hosts[i];
        up += h->state == DD_UP;
        log_info("host_state", "host=%s state=%s max_jobs=%d volume_dir=%s", h->label,
                 state_name(h->state), h->cfg->max_jobs, h->cfg->volume_dir);
    }
    pthread_mutex_unlock(&ctx->lock);
    if (up == 0)
        log_warn("no_host_up", "hosts=%zu note=\"jobs wait in the queue until one answers\"",
                 ctx->nhosts);
    return VMMS_OK;
}

void dd_hosts_stop(struct dd_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    atomic_store(&ctx->stopping, 1);
    for (size_t i = 0; i < ctx->nhosts; i++)
        pthread_cond_signal(&ctx->hosts[i].cond);
    pthread_mutex_unlock(&ctx->lock);
    for (size_t i = 0; i < ctx->nhosts; i++) {
        struct dd_host *h = &ctx->hosts[i];
        if (h->monitor_started)
            pthread_join(h->monitor, NULL);
        h->monitor_started = false;
    }
    for (size_t i = 0; i < ctx->nhosts; i++) {
        struct dd_host *h = &ctx->hosts[i];
        struct dd_conn *c = h->conn;
        h->conn = NULL;
        h->state = DD_DOWN;
        if (c && c->refs == 0)
            dd_conn_free(c);
        else if (c) /* still in use by a stuck call: leave it to its last user */
            c->detached = true;
        for (struct dd_pending *p = h->pending, *n; p; p = n) {
            n = p->next;
            log_warn("vm_destroy_abandoned", "name=%s host=%s note=\"its host was down until "
                     "shutdown: remove it by hand\"", p->name, h->label);
            free(p);
        }
        h->pending = NULL;
        pthread_cond_destroy(&h->cond);
    }
}
