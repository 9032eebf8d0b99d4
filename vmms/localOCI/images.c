/*
 * images.c: an image by name, brought in when the store lacks it. A
 * registry reference is pulled (pull.c: always checked against the
 * registry, which pins a tag's digest); a local name is read from the
 * store (layers.c) and, when absent, imported from the Docker engine
 * (layers_import.c). Owns lo_image_find and the image_id op; sits above
 * the store and the ways in, so none of them calls back here.
 */
#include <stdbool.h>

#include "image_ref.h"
#include "layers_int.h"
#include "lo.h"
#include "names.h"

int lo_image_find(struct lo_ctx *ctx, const char *name, json_t **out, char *err, size_t errlen)
{
    struct image_ref ref;
    if (image_ref_parse(name, &ref) == 0 && ref.remote) {
        char rec[NAME_MAX_BYTES + 1];
        *out = NULL;
        int rc = lo_pull(ctx, name, rec, err, errlen);
        return rc == VMMS_OK ? lo_image_get(ctx, rec, out, err, errlen) : rc;
    }
    int rc = lo_image_get(ctx, name, out, err, errlen);
    if (rc != VMMS_NOT_FOUND)
        return rc;
    rc = lo_import_docker(ctx, name, err, errlen);
    return rc == VMMS_OK ? lo_image_get(ctx, name, out, err, errlen) : rc;
}

int lo_image_id(void *vctx, const char *name, char *id, size_t idlen, char *err, size_t errlen)
{
    json_t *rec = NULL;
    struct image_ref ref;
    bool remote = image_ref_parse(name, &ref) == 0 && ref.remote;
    int rc = remote ? lo_pulled_get(vctx, name, &rec, err, errlen) /* no network here */
                    : lo_image_find(vctx, name, &rec, err, errlen);
    const char *got = json_string_value(json_object_get(rec, "id"));
    if (rc == VMMS_OK && got == NULL)
        rc = vmms_fail(err, errlen, VMMS_ERR, "image record %s has no id: import it again", name);
    if (rc == VMMS_OK)
        snprintf(id, idlen, "%s", got);
    json_decref(rec);
    return rc;
}
