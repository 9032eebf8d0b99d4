/*
 * registry_ref.c: what a back end asks about a registry reference before
 * it runs a job on it (see registry.h): the digest a tag names now (the
 * resolve_image op of localOCI and localDocker). The X-Registry-Auth value
 * of dockerd's pulls and pushes is registry_engine_auth.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grading.h"
#include "image_ref.h"
#include "registries.h"
#include "registry.h"
#include "vmms.h"

int reg_resolve(const json_t *regs, const char *name, char *out, size_t outlen, char *err,
                size_t errlen)
{
    struct image_ref ref;
    if (image_ref_parse(name, &ref) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "bad image name");
    if (!ref.remote || ref.digest[0]) {
        snprintf(out, outlen, "%s", name);
        return VMMS_OK;
    }
    struct reg_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    char *body = NULL, ctype[128], digest[72];
    size_t len = 0;
    int rc = reg_client_init(c, regs, ref.registry, err, errlen);
    if (rc == VMMS_OK)
        rc = reg_get_manifest(c, ref.path, image_ref_reference(&ref), &body, &len, ctype, digest,
                              err, errlen);
    free(body);
    reg_client_clear(c);
    free(c);
    if (rc == VMMS_OK && (size_t)snprintf(out, outlen, "%s/%s@%s", ref.registry, ref.path,
                                          digest) >= outlen)
        rc = vmms_fail(err, errlen, VMMS_ERR, "%s pinned to its digest is longer than %zu "
                       "bytes", name, outlen - 1);
    return rc;
}
