/*
 * plugin.c: the ec2SSH plugin's entry points. Owns init / shutdown (the
 * context: config, locks, the once-per-process libxml2 and libssh2 set-up;
 * the prefix and libcurl through vmms_init_check), the refusal of build
 * uploads (images here are AMIs), run_job (start_job then attach_job) and
 * the exported ops table `vmms_plugin`.
 */
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "ec2.h"
#include "log.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void ec2_shutdown(void *vctx)
{
    struct ec2_ctx *ctx = vctx;
    if (ctx == NULL)
        return;
    atomic_store(&ctx->stopping, 1);
    pthread_mutex_destroy(&ctx->lock);
    pthread_mutex_destroy(&ctx->launch);
    vmms_watches_destroy(&ctx->watches);
    memset(&ctx->creds, 0, sizeof ctx->creds);
    memset(&ctx->cfg, 0, sizeof ctx->cfg); /* secrets */
    free(ctx);
}

static int ec2_init(const json_t *cfg, const char *prefix, void **out, char *err, size_t errlen)
{
    *out = NULL;
    if (vmms_init_check("ec2SSH", prefix, true, err, errlen) != VMMS_OK)
        return VMMS_ERR;
    pthread_once(&xml_once, xmlInitParser);
    if (vssh_global_init(err, errlen) != VMMS_OK)
        return VMMS_ERR;
    struct ec2_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_mutex_init(&ctx->launch, NULL);
    vmms_watches_init(&ctx->watches);
    atomic_init(&ctx->stopping, 0);
    snprintf(ctx->prefix, sizeof ctx->prefix, "%s", prefix);
    if (ec2_config_parse(cfg, &ctx->cfg, err, errlen) != VMMS_OK) {
        ec2_shutdown(ctx);
        return VMMS_ERR;
    }
    const struct ec2_config *c = &ctx->cfg;
    if (strncmp(c->endpoint, "http://", 7) == 0)
        log_warn("vmms_plain_http", "vmms=ec2SSH endpoint=%s note=\"the EC2 API over plain "
                 "HTTP: fine for a local test endpoint, never for AWS\"", c->endpoint);
    if (c->host_keys == EC2_KEYS_ACCEPT_NEW)
        log_warn("vmms_insecure", "vmms=ec2SSH known_hosts=accept-new note=\"each new VM's "
                 "first host key is trusted unchecked; use console to check it against the "
                 "fingerprints the instance prints\"");
    log_info("vmms_init", "vmms=ec2SSH prefix=%s region=%s endpoint=%s subnet=%s "
             "security_groups=%zu key_pair=%s ssh_user=%s known_hosts=%s use_private_ip=%d "
             "max_vms=%d default_type=%s allowed_types=%zu spot=%d keep_failed_vms=%d "
             "image_tag=%s credentials=%s", ctx->prefix, c->region, c->endpoint,
             c->subnet[0] ? c->subnet : "default", c->nsecurity_groups, c->key_pair,
             c->ssh_user, c->host_keys == EC2_KEYS_CONSOLE ? "console" : "accept-new",
             (int)c->use_private_ip, c->max_vms, c->default_type, c->nallowed_types,
             (int)c->spot, (int)c->keep_failed_vms, c->image_tag,
             c->access_key_id[0] ? "config" : getenv("AWS_ACCESS_KEY_ID") ? "environment"
                                                                           : "instance-profile");
    *out = ctx;
    return VMMS_OK;
}

static int ec2_load_image(void *ctx, const char *tar_path, const char *name, int timeout_s,
                          const struct vmms_image_limits *lim, char *err, size_t errlen)
{
    (void)ctx;
    (void)lim;
    (void)tar_path;
    (void)timeout_s;
    return vmms_fail(err, errlen, VMMS_ERR,
                     "ec2SSH: images are AMIs; build \"%.100s\" as an AMI and tag it (docs/backends/"
                     "ec2SSH.md, Preparing an AMI)", name ? name : "");
}

/* The run_job op: start_job, then attach_job for the job's timeout plus
 * run_grace_s (vmms_run_via_attach). */
static int ec2_run_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, int *status,
                       char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    return vmms_run_via_attach(&vmms_plugin, ctx, vm, run, ctx->cfg.run_grace_s, status, err,
                               errlen);
}

const struct vmms_ops vmms_plugin = {
    .abi = VMMS_ABI_VERSION,
    .name = "ec2SSH",
    .init = ec2_init,
    .shutdown = ec2_shutdown,
    .initialize_vm = ec2_initialize_vm,
    .wait_vm = ec2_wait_vm,
    .copy_in = ec2_copy_in,
    .run_job = ec2_run_job,
    .start_job = ec2_start_job,
    .attach_job = ec2_attach_job,
    .copy_out = ec2_copy_out,
    .destroy_vm = ec2_destroy_vm,
    .safe_destroy_vm = ec2_safe_destroy_vm,
    .get_vms = ec2_get_vms,
    .get_images = ec2_get_images,
    .get_partial_output = ec2_get_partial_output,
    .load_image = ec2_load_image,
};
