/*
 * image_pin.c: pinning a job's registry tag to its digest (see image_pin.h).
 */
#include "image_pin.h"

#include <stdlib.h>
#include <string.h>

#include "consumer.h"
#include "image_ref.h"
#include "job.h"
#include "log.h"

int image_pin(struct consumer *c, struct job *job, bool *pinned, char *err, size_t errlen)
{
    struct image_ref ref;
    *pinned = false;
    if (!c->ops->resolve_image || image_ref_parse(job->image, &ref) != 0 || !ref.remote ||
        ref.digest[0])
        return VMMS_OK;
    char out[IMAGE_REF_MAX + 1];
    int st = c->ops->resolve_image(c->vctx, job->image, out, sizeof out, err, errlen);
    if (st != VMMS_OK)
        return st;
    struct image_ref check;
    if (image_ref_parse(out, &check) != 0 || !check.remote || !check.digest[0] ||
        strcmp(check.registry, ref.registry) != 0 || strcmp(check.path, ref.path) != 0) {
        snprintf(err, errlen, "the back end resolved %s to no digest of the same image",
                 job->image);
        return VMMS_ERR;
    }
    log_info("image_pinned", "id=%lld image=%s digest=%s", (long long)job->id, job->image,
             check.digest);
    char *copy = strdup(out);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return VMMS_ERR;
    }
    free(job->image);
    job->image = copy;
    *pinned = true;
    return VMMS_OK;
}
