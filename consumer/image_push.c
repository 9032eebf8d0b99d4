/*
 * image_push.c: pushing a finished build to the configured registry
 * (image_push.h).
 */
#include "image_push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_push.h"
#include "common/engine_progress.h"
#include "common/grading.h"
#include "common/registry.h"
#include "vmms.h"

/* POST /images/IMAGE/tag?repo=REPO&tag=TAG: the pushed name on e. */
static int tag_image(struct vmms_engine *e, const char *image, const char *repo,
                     const char *tag, char *err, size_t errlen)
{
    char ei[700], er[700], et[400], path[2000];
    snprintf(path, sizeof path, "/images/%s/tag?repo=%s&tag=%s",
             vmms_engine_urlencode(image, ei, sizeof ei), vmms_engine_urlencode(repo, er, sizeof er),
             vmms_engine_urlencode(tag, et, sizeof et));
    struct vmms_engine_req req = {.method = "POST", .path = path};
    struct vmms_engine_resp resp = {0};
    int rc = vmms_engine_call(e, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status / 100 != 2)
        rc = vmms_engine_fail(&resp, "Docker could not tag the build for its push", err, errlen);
    vmms_engine_resp_free(&resp);
    return rc;
}

/* POST /images/REPO/push?tag=TAG with auth (NULL: anonymous); the
 * stream's first error or its digest into *pr. */
static int push_call(struct vmms_engine *e, const char *repo, const char *tag, const char *auth,
                     int timeout_s, atomic_int *abort, struct vmms_progress *pr, char *err,
                     size_t errlen)
{
    char er[700], et[400], path[1200];
    snprintf(path, sizeof path, "/images/%s/push?tag=%s",
             vmms_engine_urlencode(repo, er, sizeof er), vmms_engine_urlencode(tag, et, sizeof et));
    struct vmms_engine_req req = {.method = "POST", .path = path, .registry_auth = auth,
                                  .timeout_s = timeout_s, .sink = vmms_progress_sink,
                                  .sink_arg = pr, .abort = abort, .fresh = true};
    struct vmms_engine_resp resp = {0};
    int rc = vmms_engine_call(e, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "Docker could not push the build", err, errlen);
    else if (rc == VMMS_OK)
        vmms_progress_end(pr);
    vmms_engine_resp_free(&resp);
    return rc;
}

int image_push(struct vmms_engine *e, const struct tango_config *cfg, const char *image,
               int timeout_s, atomic_int *abort, char *ref, size_t reflen, char *err,
               size_t errlen)
{
    char repo[IMAGE_REF_MAX + 1], tag[IMAGE_REF_TAG_MAX + 1];
    struct image_ref target;
    if (build_push_target(cfg->build_push_to, image, repo, sizeof repo, tag, sizeof tag) ||
        image_ref_parse(repo, &target) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "%s under build_push_to %s is no valid "
                         "registry reference (too long?)", image, cfg->build_push_to);
    int rc = tag_image(e, image, repo, tag, err, errlen);
    char *auth = NULL;
    if (rc == VMMS_OK)
        rc = reg_engine_auth(cfg->registries, target.registry, &auth, err, errlen);
    struct vmms_progress *pr = rc == VMMS_OK ? calloc(1, sizeof *pr) : NULL;
    if (rc == VMMS_OK)
        rc = pr ? push_call(e, repo, tag, auth, timeout_s, abort, pr, err, errlen)
                : vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    reg_engine_auth_free(auth);
    if (rc == VMMS_OK && pr->error[0])
        rc = vmms_fail(err, errlen, VMMS_ERR, "the registry refused the push of %s:%s: %s",
                       repo, tag, pr->error);
    else if (rc == VMMS_OK && !pr->digest[0])
        rc = vmms_fail(err, errlen, VMMS_ERR, "the push of %s:%s ended without the image's "
                       "digest", repo, tag);
    else if (rc == VMMS_OK && (size_t)snprintf(ref, reflen, "%s:%s@%s", repo, tag,
                                               pr->digest) >= reflen)
        rc = vmms_fail(err, errlen, VMMS_ERR, "the pushed reference is too long");
    free(pr);
    return rc;
}
