/*
 * registry_manifest.c: the parse of what a registry answers a manifest GET
 * with (see registry.h): an OCI image index or a Docker manifest list (one
 * manifest chosen: linux/amd64), or an OCI or Docker v2 image manifest
 * (its config and layers). Nothing here touches the network or a file.
 */
#include <stdio.h>
#include <string.h>

#include "grading.h"
#include "registry.h"
#include "vmms.h"

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

static const char *const layer_types[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    NULL,
};

static bool sha256_digest(const char *d)
{
    return d && strlen(d) == 71 && strncmp(d, "sha256:", 7) == 0 &&
           strspn(d + 7, "0123456789abcdef") == 64;
}

/* The media type: ctype's (without parameters) when it names one we know,
 * else the body's "mediaType", else guessed from its members. */
static const char *media_type(const json_t *j, const char *ctype, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%s", ctype ? ctype : "");
    buf[strcspn(buf, "; ")] = '\0';
    const char *known[] = {MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST};
    for (size_t i = 0; i < 4; i++)
        if (strcmp(buf, known[i]) == 0)
            return buf;
    const char *own = json_string_value(json_object_get(j, "mediaType"));
    if (own)
        return own;
    if (json_is_array(json_object_get(j, "manifests")))
        return MT_OCI_INDEX;
    return json_is_array(json_object_get(j, "layers")) ? MT_OCI_MANIFEST : "";
}

/* The digest of the linux/amd64 entry of index j into pick. */
static int pick_amd64(const json_t *j, char pick[72], char *err, size_t errlen)
{
    const json_t *mans = json_object_get(j, "manifests");
    char seen[256] = "";
    size_t i;
    json_t *m;
    json_array_foreach(mans, i, m) {
        const json_t *p = json_object_get(m, "platform");
        const char *os = json_string_value(json_object_get(p, "os"));
        const char *arch = json_string_value(json_object_get(p, "architecture"));
        const char *d = json_string_value(json_object_get(m, "digest"));
        if (os && arch && strcmp(os, "linux") == 0 && strcmp(arch, "amd64") == 0) {
            if (!sha256_digest(d))
                return vmms_fail(err, errlen, VMMS_ERR, "the image index's linux/amd64 entry "
                                 "has no sha256 digest");
            snprintf(pick, 72, "%s", d);
            return REG_INDEX;
        }
        size_t n = strlen(seen);
        if (n < sizeof seen - 1)
            snprintf(seen + n, sizeof seen - n, "%s%.30s/%.30s", n ? ", " : "",
                     os ? os : "?", arch ? arch : "?");
    }
    return vmms_fail(err, errlen, VMMS_ERR, "the image index has no linux/amd64 image (it "
                     "has: %s)", seen[0] ? seen : "none");
}

static bool layer_type_ok(const char *t)
{
    for (size_t i = 0; t && layer_types[i]; i++)
        if (strcmp(t, layer_types[i]) == 0)
            return true;
    return false;
}

/* The config and layers of image manifest j into img. */
static int read_image(const json_t *j, struct reg_image *img, char *err, size_t errlen)
{
    const char *cfg = json_string_value(json_object_get(json_object_get(j, "config"),
                                                        "digest"));
    const json_t *ls = json_object_get(j, "layers");
    size_t n = json_array_size(ls);
    if (!sha256_digest(cfg) || !json_is_array(ls) || n == 0 || n > REG_LAYERS_MAX)
        return vmms_fail(err, errlen, VMMS_ERR, "the image manifest needs a sha256 config "
                         "digest and 1..%d layers", REG_LAYERS_MAX);
    snprintf(img->config, sizeof img->config, "%s", cfg);
    size_t i;
    json_t *l;
    json_array_foreach(ls, i, l) {
        const char *d = json_string_value(json_object_get(l, "digest"));
        const char *t = json_string_value(json_object_get(l, "mediaType"));
        if (!sha256_digest(d))
            return vmms_fail(err, errlen, VMMS_ERR, "layer %zu has no sha256 digest", i);
        if (!layer_type_ok(t))
            return vmms_fail(err, errlen, VMMS_ERR, "layer %zu is of type \"%.80s\": only "
                             "tar, tar+gzip and tar+zstd layers are pulled", i, t ? t : "");
        json_int_t sz = json_integer_value(json_object_get(l, "size"));
        if (!json_is_integer(json_object_get(l, "size")) || sz <= 0)
            return vmms_fail(err, errlen, VMMS_ERR, "layer %zu declares no size", i);
        snprintf(img->layers[i], sizeof img->layers[i], "%s", d);
        img->sizes[i] = (long long)sz;
    }
    img->nlayers = n;
    return REG_IMAGE;
}

int reg_manifest_parse(const char *body, size_t len, const char *ctype, struct reg_image *img,
                       char pick[72], char *err, size_t errlen)
{
    memset(img, 0, sizeof *img);
    pick[0] = '\0';
    if (len > (size_t)REG_MANIFEST_MAX)
        return vmms_fail(err, errlen, VMMS_ERR, "the manifest is larger than %ld bytes",
                         REG_MANIFEST_MAX);
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    char buf[128];
    const char *mt = json_is_object(j) ? media_type(j, ctype, buf, sizeof buf) : NULL;
    int rc;
    if (mt == NULL)
        rc = vmms_fail(err, errlen, VMMS_ERR, "the manifest is not a JSON object");
    else if (json_integer_value(json_object_get(j, "schemaVersion")) != 2)
        rc = vmms_fail(err, errlen, VMMS_ERR, "the manifest is not of schema version 2 "
                       "(Docker's schema 1 is not pulled)");
    else if (strcmp(mt, MT_OCI_INDEX) == 0 || strcmp(mt, MT_DOCKER_LIST) == 0)
        rc = pick_amd64(j, pick, err, errlen);
    else if (strcmp(mt, MT_OCI_MANIFEST) == 0 || strcmp(mt, MT_DOCKER_MANIFEST) == 0)
        rc = read_image(j, img, err, errlen);
    else
        rc = vmms_fail(err, errlen, VMMS_ERR, "the manifest's media type \"%.80s\" is not an "
                       "OCI or Docker v2 manifest or index", mt);
    json_decref(j);
    if (rc != REG_IMAGE)
        img->nlayers = 0;
    return rc;
}
