/*
 * images_docker.c: tangoctl images on Docker: lists a dockerd's images
 * through the back ends' one Engine API client (vmms/common/engine.c) and
 * prunes those labelled tango.image (what the consumer's builder makes)
 * that no live job, pool or configured image names. An image without that
 * label is never removed. Removal is by tag (Docker drops the image with
 * its last tag), by id for an untagged one, never forced.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "common/engine.h"
#include "common/grading.h"
#include "images.h"

#define OUR_LABEL "tango.image"

/* The socket of the dockerd tangoctl looks at. */
static const char *docker_socket(const struct ctl *x)
{
    json_t *ld = json_object_get(x->cfg.vmms_config, "localDocker");
    const char *s = json_string_value(json_object_get(ld, "socket"));
    return s && *s ? s : x->cfg.build_docker_socket;
}

/* Uses of one image: of each of its names (tags, digests, its
 * tango.image label) once. */
static long long image_uses(const json_t *uses, const json_t *img, const char *label)
{
    json_t *names = json_object();
    if (label)
        json_object_set_new(names, label, json_true());
    const char *fields[] = {"RepoTags", "RepoDigests"};
    for (int f = 0; f < 2; f++) {
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(img, fields[f]), i, t) {
            char c[512];
            json_object_set_new(names, img_canon(json_string_value(t) ?: "", c, sizeof c),
                                json_true());
        }
    }
    long long count = 0;
    const char *k;
    json_t *v;
    json_object_foreach(names, k, v)
        count += img_use_count(uses, k);
    json_decref(names);
    return count;
}

/* DELETE /images/<ref>; true when Docker removed it (why in err). */
static bool docker_remove(struct vmms_engine *e, const char *ref, char *err, size_t errlen)
{
    char enc[1024], path[1100];
    snprintf(path, sizeof path, "/images/%s",
             vmms_engine_urlencode(ref, enc, sizeof enc));
    struct vmms_engine_req req = {.method = "DELETE", .path = path};
    struct vmms_engine_resp resp = {0};
    int rc = vmms_engine_call(e, &req, &resp, err, errlen);
    bool ok = rc == VMMS_OK && resp.status / 100 == 2;
    if (rc == VMMS_OK && !ok)
        vmms_engine_fail(&resp, "Docker refused", err, errlen);
    vmms_engine_resp_free(&resp);
    return ok;
}

/* One image's rows (one per tag, or its id when untagged) and removals. */
static void one_image(struct img_run *r, struct vmms_engine *e, const json_t *img)
{
    const char *label =
        json_string_value(json_object_get(json_object_get(img, "Labels"), OUR_LABEL));
    long long n = image_uses(r->uses, img, label);
    json_t *tags = json_object_get(img, "RepoTags");
    size_t ntags = json_array_size(tags);
    for (size_t i = 0; i < (ntags ? ntags : 1); i++) {
        const char *ref = ntags ? json_string_value(json_array_get(tags, i))
                                : json_string_value(json_object_get(img, "Id"));
        if (!ref || strcmp(ref, "<none>:<none>") == 0)
            ref = json_string_value(json_object_get(img, "Id"));
        char err[512];
        if (ref && img_row(r, "localDocker", ref, label != NULL, n))
            img_removed(r, docker_remove(e, ref, err, sizeof err), err);
    }
}

void img_docker(struct img_run *r)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct vmms_engine e;
    vmms_engine_init(&e, docker_socket(r->x), 60);
    char err[512];
    struct vmms_engine_req req = {.method = "GET", .path = "/images/json"};
    struct vmms_engine_resp resp = {0};
    int rc = vmms_engine_call(&e, &req, &resp, err, sizeof err);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "listing the images", err, sizeof err);
    if (rc == VMMS_OK && !json_is_array(resp.json))
        rc = vmms_fail(err, sizeof err, VMMS_ERR, "listing the images: not a JSON list");
    if (rc != VMMS_OK) {
        fprintf(stderr, "tangoctl: localDocker: dockerd at %s: %s\n", docker_socket(r->x), err);
        r->failed = 1;
    } else {
        size_t i;
        json_t *img;
        json_array_foreach(resp.json, i, img)
            one_image(r, &e, img);
    }
    vmms_engine_resp_free(&resp);
    vmms_engine_destroy(&e);
}
