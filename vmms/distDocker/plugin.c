/*
 * plugin.c: the distDocker plugin's entry points, the top of its files (no
 * other file of the plugin calls into it). Owns init/shutdown (the
 * context's life: config, hosts, their targets and monitor threads),
 * run_job as start_job then attach_job, and the exported ops table
 * `vmms_plugin`.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dd.h"
#include "log.h"
#include "clock.h"

static void dd_shutdown(void *vctx)
{
    struct dd_ctx *ctx = vctx;
    if (ctx == NULL)
        return;
    if (ctx->hosts)
        dd_hosts_stop(ctx);
    for (struct dd_vm_entry *e = ctx->vms, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    free(ctx->hosts);
    dd_config_free(&ctx->cfg);
    pthread_mutex_destroy(&ctx->lock);
    pthread_cond_destroy(&ctx->changed);
    vmms_watches_destroy(&ctx->watches);
    free(ctx);
}

static int dd_init(const json_t *cfg, const char *prefix, void **out, char *err, size_t errlen)
{
    *out = NULL;
    if (vmms_init_check("distDocker", prefix, false, err, errlen) != VMMS_OK)
        return VMMS_ERR;
    if (vssh_global_init(err, errlen) != VMMS_OK)
        return VMMS_ERR;
    struct dd_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ctx->changed, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&ctx->stopping, 0);
    vmms_watches_init(&ctx->watches);
    strcpy(ctx->prefix, prefix);

    int rc = dd_config_parse(cfg, &ctx->cfg, err, errlen);
    if (rc != VMMS_OK) {
        dd_shutdown(ctx);
        return rc;
    }
    ctx->nhosts = ctx->cfg.nhosts;
    ctx->hosts = calloc(ctx->nhosts, sizeof *ctx->hosts);
    if (ctx->hosts == NULL) {
        dd_shutdown(ctx);
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    }
    for (size_t i = 0; i < ctx->nhosts; i++) {
        struct dd_host *h = &ctx->hosts[i];
        h->ctx = ctx;
        h->index = (int)i;
        h->cfg = &ctx->cfg.hosts[i];
        snprintf(h->label, sizeof h->label, "%s:%d", h->cfg->address, h->cfg->port);
        h->target = (struct vssh_target){
            .address = h->cfg->address, .port = h->cfg->port, .user = h->cfg->user,
            .private_key = h->cfg->private_key, .public_key = h->cfg->public_key,
            .known_hosts = h->cfg->known_hosts,
            .policy = ctx->cfg.strict_host_key_checking ? VSSH_KEY_KNOWN_HOSTS : VSSH_KEY_ANY,
            .max_sessions = h->cfg->max_sessions,
            .connect_timeout_ms = 1000 * ctx->cfg.connect_timeout_s,
            .command_timeout_ms = 1000 * ctx->cfg.command_timeout_s, .label = h->label};
    }
    if (!ctx->cfg.strict_host_key_checking)
        log_warn("vmms_insecure", "vmms=distDocker strict_host_key_checking=0 note=\"worker "
                 "host keys are NOT verified: anyone in between can impersonate a host; set "
                 "it to true with known_hosts files in production\"");
    log_info("vmms_init", "vmms=distDocker prefix=%s hosts=%zu strict_host_key_checking=%d "
             "connect_timeout_s=%d command_timeout_s=%d down_backoff_s=%d..%d", ctx->prefix,
             ctx->nhosts, (int)ctx->cfg.strict_host_key_checking, ctx->cfg.connect_timeout_s,
             ctx->cfg.command_timeout_s, ctx->cfg.down_backoff_s, ctx->cfg.down_backoff_max_s);
    rc = dd_hosts_start(ctx, err, errlen);
    if (rc != VMMS_OK) {
        dd_shutdown(ctx);
        return rc;
    }
    *out = ctx;
    return VMMS_OK;
}

/* The run_job op: start_job, then attach_job for the job's timeout plus
 * run_grace_s (vmms_run_via_attach). */
static int dd_run_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, int *status,
                      char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    return vmms_run_via_attach(&vmms_plugin, ctx, vm, run, ctx->cfg.run_grace_s, status, err,
                               errlen);
}

const struct vmms_ops vmms_plugin = {
    .abi = VMMS_ABI_VERSION,
    .name = "distDocker",
    .init = dd_init,
    .shutdown = dd_shutdown,
    .initialize_vm = dd_initialize_vm,
    .resolve_image = dd_resolve_image,
    .wait_vm = dd_wait_vm,
    .copy_in = dd_copy_in,
    .run_job = dd_run_job,
    .start_job = dd_start_job,
    .attach_job = dd_attach_job,
    .copy_out = dd_copy_out,
    .destroy_vm = dd_destroy_vm,
    .safe_destroy_vm = dd_safe_destroy_vm,
    .get_vms = dd_get_vms,
    .get_images = dd_get_images,
    .get_partial_output = dd_get_partial_output,
    .load_image = dd_load_image,
    .get_hosts = dd_get_hosts,
    .ping = dd_ping,
};
