/*
 * plugin.c: the localDocker plugin's entry points. Owns init/shutdown (the
 * context's life: config, volume directory, Docker reachability check), ping,
 * the small helpers every other file uses (errors, VM name checks, clocks),
 * run_job (start_job then attach_job) and the exported ops table
 * `vmms_plugin`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "ld.h"
#include "log.h"
#include "clock.h"

/* mkdir -p of dir; the last component gets mode, parents 0755. */
static int make_dirs(char *dir, mode_t mode)
{
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(dir, 0755);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(dir, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}


static void ld_shutdown(void *vctx)
{
    struct ld_ctx *ctx = vctx;
    if (ctx == NULL)
        return;
    vmms_engine_destroy(&ctx->engine);
    json_decref(ctx->cfg.registries);
    if (ctx->volume_fd >= 0)
        close(ctx->volume_fd);
    vmms_watches_destroy(&ctx->watches);
    free(ctx);
}

static int ld_init(const json_t *cfg, const char *prefix, void **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    if (vmms_init_check("localDocker", prefix, true, err, errlen) != VMMS_OK)
        return VMMS_ERR;

    struct ld_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    ctx->volume_fd = -1;
    vmms_watches_init(&ctx->watches);
    strcpy(ctx->prefix, prefix);

    int rc = ld_config_parse(cfg, &ctx->cfg, err, errlen);
    if (rc != VMMS_OK)
        goto fail;
    vmms_engine_init(&ctx->engine, ctx->cfg.socket, ctx->cfg.api_timeout_s);

    char dir[PATH_MAX];
    strcpy(dir, ctx->cfg.volume_dir);
    struct stat st;
    errno = 0;
    if (make_dirs(dir, 0700) != 0 || realpath(dir, ctx->volume_real) == NULL ||
        stat(ctx->volume_real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = vmms_fail(err, errlen, VMMS_ERR,
                     "localDocker: cannot create volume_dir %s: %s", ctx->cfg.volume_dir,
                     strerror(errno ? errno : ENOTDIR));
        goto fail;
    }
    ctx->volume_fd = open(ctx->volume_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ctx->volume_fd < 0) {
        rc = vmms_fail(err, errlen, VMMS_ERR, "localDocker: cannot open volume_dir %s: %s",
                     ctx->volume_real, strerror(errno));
        goto fail;
    }

    struct vmms_engine_req req = {.method = "GET", .path = "/_ping"};
    struct vmms_engine_resp resp;
    rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "localDocker: Docker ping failed", err, errlen);
    vmms_engine_resp_free(&resp);
    if (rc != VMMS_OK)
        goto fail;
    rc = ld_net_init(ctx, err, errlen);
    if (rc != VMMS_OK)
        goto fail;

    char qs[256], qv[256];
    char qh[256];
    log_info("vmms_init", "vmms=localDocker prefix=%s socket=%s volume_dir=%s host_volume_dir=%s",
             ctx->prefix, log_quote(ctx->cfg.socket, qs, sizeof qs),
             log_quote(ctx->volume_real, qv, sizeof qv),
             log_quote(ctx->cfg.host_volume_dir[0] ? ctx->cfg.host_volume_dir : ctx->volume_real,
                       qh, sizeof qh));
    *out = ctx;
    return VMMS_OK;
fail:
    ld_shutdown(ctx);
    return rc;
}

int ld_ping(void *vctx, int timeout_ms, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    return vmms_engine_ping(&ctx->engine, timeout_ms, err, errlen);
}

/* vmms.h data_dir: the volume directories live under volume_dir. */
static const char *ld_data_dir(void *vctx)
{
    return ((struct ld_ctx *)vctx)->cfg.volume_dir;
}

/* The run_job op: start_job, then attach_job for the job's timeout plus
 * run_grace_s (vmms_run_via_attach). */
static int ld_run_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, int *status,
                      char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    return vmms_run_via_attach(&vmms_plugin, ctx, vm, run, ctx->cfg.run_grace_s, status, err,
                               errlen);
}

const struct vmms_ops vmms_plugin = {
    .abi = VMMS_ABI_VERSION,
    .name = "localDocker",
    .init = ld_init,
    .shutdown = ld_shutdown,
    .initialize_vm = ld_initialize_vm,
    .wait_vm = ld_wait_vm,
    .copy_in = ld_copy_in,
    .run_job = ld_run_job,
    .start_job = ld_start_job,
    .attach_job = ld_attach_job,
    .copy_out = ld_copy_out,
    .destroy_vm = ld_destroy_vm,
    .safe_destroy_vm = ld_safe_destroy_vm,
    .get_vms = ld_get_vms,
    .get_images = ld_get_images,
    .image_id = ld_image_id,
    .resolve_image = ld_resolve_image,
    .get_partial_output = ld_get_partial_output,
    .load_image = ld_load_image,
    .data_dir = ld_data_dir,
    .ping = ld_ping,
};
