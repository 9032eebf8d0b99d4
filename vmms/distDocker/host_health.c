/*
 * host_health.c: the get_hosts op (vmms.h): each worker host's label,
 * whether it is up and how many instances hold one of its job slots, for
 * the consumer's metrics (tango_worker_host_up, tango_worker_host_jobs).
 * Reads the state the monitors keep (hosts.c) under ctx->lock and calls
 * back without holding it; never touches the network. Also the ping op:
 * the back end is reachable while at least one host is up.
 */
#include <stdlib.h>
#include <string.h>

#include "dd.h"

void dd_get_hosts(void *vctx, void (*cb)(const char *host, bool up, int jobs, void *arg),
                  void *arg)
{
    struct dd_ctx *ctx = vctx;
    struct snap {
        char label[256];
        bool up;
        int jobs;
    } *s = calloc(ctx->nhosts ? ctx->nhosts : 1, sizeof *s);
    if (!s)
        return;
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->nhosts; i++) {
        const struct dd_host *h = &ctx->hosts[i];
        memcpy(s[i].label, h->label, sizeof s[i].label);
        s[i].up = h->state == DD_UP;
        s[i].jobs = h->active;
    }
    size_t n = ctx->nhosts;
    pthread_mutex_unlock(&ctx->lock);
    for (size_t i = 0; i < n; i++)
        cb(s[i].label, s[i].up, s[i].jobs, arg);
    free(s);
}

size_t dd_hosts_up(struct dd_ctx *ctx)
{
    size_t up = 0;
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->nhosts; i++)
        up += ctx->hosts[i].state == DD_UP;
    pthread_mutex_unlock(&ctx->lock);
    return up;
}

int dd_ping(void *vctx, int timeout_ms, char *err, size_t errlen)
{
    (void)timeout_ms;
    struct dd_ctx *ctx = vctx;
    if (dd_hosts_up(ctx) > 0)
        return VMMS_OK;
    return vmms_fail(err, errlen, VMMS_UNAVAILABLE, "no worker host is up (0 of %zu)",
                     ctx->nhosts);
}
