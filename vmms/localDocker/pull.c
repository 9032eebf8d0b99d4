/*
 * pull.c: localDocker's registry images. Owns resolve_image (a tag pinned
 * to its digest through the registry client of vmms/common, as localOCI
 * does) and ld_pull_missing: a job's registry reference the engine lacks
 * is pulled by dockerd itself (POST /images/create) with the registry's
 * credentials in X-Registry-Auth (registry.h reg_engine_auth: read from
 * its credentials file for this pull, wiped after, never logged). Only
 * registries listed in config key "registries" are pulled from; dockerd
 * trusts a registry's CA by /etc/docker/certs.d/HOST:PORT/ca.crt (its own
 * rule: the registry's ca_file is for the clients of vmms/common).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "common/engine_progress.h"
#include "common/registry.h"
#include "image_ref.h"
#include "ld.h"
#include "log.h"

int ld_resolve_image(void *vctx, const char *name, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    return reg_resolve(ctx->cfg.registries, name, out, outlen, err, errlen);
}

/* Whether the engine holds image name: VMMS_OK, VMMS_NOT_FOUND, or a
 * failure of the call. */
static int have_image(struct ld_ctx *ctx, const char *name, char *err, size_t errlen)
{
    char id[128];
    return ld_image_id(ctx, name, id, sizeof id, err, errlen);
}

/* POST /images/create?fromImage=HOST/PATH&tag=TAG-OR-DIGEST of ref. */
static int engine_pull(struct ld_ctx *ctx, const struct image_ref *ref, const char *name,
                       char *err, size_t errlen)
{
    char *auth = NULL, from[2 * IMAGE_REF_MAX + 2], ef[1600], et[300], path[2000];
    int rc = reg_engine_auth(ctx->cfg.registries, ref->registry, &auth, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    snprintf(from, sizeof from, "%s/%s", ref->registry, ref->path);
    snprintf(path, sizeof path, "/images/create?fromImage=%s&tag=%s",
             vmms_engine_urlencode(from, ef, sizeof ef),
             vmms_engine_urlencode(image_ref_reference(ref), et, sizeof et));
    struct vmms_progress *pr = calloc(1, sizeof *pr);
    struct vmms_engine_req req = {.method = "POST", .path = path, .registry_auth = auth,
                                  .timeout_s = LD_PULL_TIMEOUT_S, .sink = vmms_progress_sink,
                                  .sink_arg = pr};
    struct vmms_engine_resp resp = {0};
    rc = pr ? vmms_engine_call(&ctx->engine, &req, &resp, err, errlen)
            : vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    reg_engine_auth_free(auth);
    char what[300];
    snprintf(what, sizeof what, "Docker could not pull %s", name);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, what, err, errlen);
    else if (rc == VMMS_OK)
        vmms_progress_end(pr);
    if (rc == VMMS_OK && pr->error[0])
        rc = vmms_fail(err, errlen, VMMS_ERR, "%s: %s", what, pr->error);
    vmms_engine_resp_free(&resp);
    free(pr);
    return rc == VMMS_NOT_FOUND ? VMMS_ERR : rc; /* (a 404 here: no such image upstream) */
}

int ld_pull_missing(struct ld_ctx *ctx, const char *name, char *err, size_t errlen)
{
    struct image_ref ref;
    if (image_ref_parse(name, &ref) != 0 || !ref.remote)
        return VMMS_OK; /* a local name: the engine has it or the create says so */
    int rc = have_image(ctx, name, err, errlen);
    if (rc != VMMS_NOT_FOUND)
        return rc;
    long t0 = clock_mono_ms();
    rc = engine_pull(ctx, &ref, name, err, errlen);
    char q[300], qe[600];
    if (rc != VMMS_OK)
        log_warn("image_pull_failed", "name=%s reason=%s", log_quote(name, q, sizeof q),
                 log_quote(err, qe, sizeof qe));
    else
        log_info("image_pulled", "name=%s via=engine ms=%ld", log_quote(name, q, sizeof q),
                 (long)(clock_mono_ms() - t0));
    return rc;
}
