/*
 * images.c: the images a job may name. Owns get_images (every repo tag the
 * engine has, ":latest" dropped) and load_image: check the `docker save`
 * tarball (image_tar.h: one image, no tag but the wanted one; within the
 * caps and the free space of Docker's data directory), POST it
 * streamed from disk, check that Docker tagged nothing else (a tag it moved
 * anyway is put back and the build fails), then tag the result with the
 * wanted name.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/image_open.h"
#include "image_ref.h"
#include "image_tar.h"
#include "ld.h"
#include "log.h"
#include "names.h"
#include "strvec.h"

/* Adds tag to names, ":latest" dropped, unless there. 0, or -1 out of memory. */
static int add_name(struct strvec *names, const char *tag)
{
    size_t n = strlen(tag);
    if (n > 7 && strcmp(tag + n - 7, ":latest") == 0)
        n -= 7;
    return strvec_find(names, tag, n) >= 0 ? 0 : strvec_pushn(names, tag, n);
}

int ld_get_images(void *vctx, char ***names, size_t *count, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    *names = NULL;
    *count = 0;
    struct vmms_engine_req req = {.method = "GET", .path = "/images/json"};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && (resp.status != 200 || !json_is_array(resp.json)))
        rc = vmms_engine_fail(&resp, "cannot list images", err, errlen);
    struct strvec sv = STRVEC_INIT;
    size_t i, j;
    json_t *img, *tag;
    if (rc == VMMS_OK)
        json_array_foreach(resp.json, i, img) {
            json_array_foreach(json_object_get(img, "RepoTags"), j, tag) {
                const char *t = json_string_value(tag);
                if (t == NULL || strcmp(t, "<none>:<none>") == 0)
                    continue;
                if (add_name(&sv, t) != 0) {
                    rc = vmms_fail(err, errlen, VMMS_ERR, "out of memory");
                    goto out;
                }
            }
        }
out:
    vmms_engine_resp_free(&resp);
    if (rc == VMMS_OK)
        *names = strvec_take(&sv, count);
    strvec_free(&sv);
    return rc;
}

int ld_image_id(void *vctx, const char *name, char *id, size_t idlen, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    struct image_ref ref;
    if (name == NULL || image_ref_parse(name, &ref) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "bad image name");
    char enc[800], path[900];
    snprintf(path, sizeof path, "/images/%s/json", vmms_engine_urlencode(name, enc, sizeof enc));
    struct vmms_engine_req req = {.method = "GET", .path = path};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    const char *got = json_string_value(json_object_get(resp.json, "Id"));
    if (rc == VMMS_OK && (resp.status != 200 || got == NULL))
        rc = vmms_engine_fail(&resp, "cannot inspect the image", err, errlen);
    if (rc == VMMS_OK)
        snprintf(id, idlen, "%s", got);
    vmms_engine_resp_free(&resp);
    return rc;
}

/* Image references we put in URLs: [A-Za-z0-9._/:@-], not empty. */
static bool ref_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 255)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/:@-") ==
           strlen(s);
}

/* "repo[:tag]" -> repo, tag ("latest" when absent). */
static void split_ref(const char *ref, char *repo, size_t rsz, char *tag, size_t tsz)
{
    const char *colon = strrchr(ref, ':');
    const char *slash = strrchr(ref, '/');
    if (colon && (!slash || colon > slash)) {
        snprintf(repo, rsz, "%.*s", (int)(colon - ref), ref);
        snprintf(tag, tsz, "%s", colon + 1);
    } else {
        snprintf(repo, rsz, "%s", ref);
        snprintf(tag, tsz, "latest");
    }
}

#define LOADED_MAX 16

/* What a load answer said: the references Docker tagged and the image IDs
 * it loaded without a tag. */
struct loaded {
    char refs[LOADED_MAX][300];
    size_t nrefs;
    char ids[LOADED_MAX][300];
    size_t nids;
};

/* Reads the load answer (a stream of JSON objects, one per line). */
static int parse_load(const struct vmms_engine_resp *resp, struct loaded *l, char *err,
                      size_t errlen)
{
    memset(l, 0, sizeof *l);
    const char *p = resp->body ? resp->body : "";
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        json_t *msg = json_loadb(p, n, 0, NULL);
        p += n + (nl ? 1 : 0);
        if (msg == NULL)
            continue;
        const char *e = json_string_value(json_object_get(msg, "error"));
        const char *s = json_string_value(json_object_get(msg, "stream"));
        int rc = VMMS_OK;
        char v[300];
        if (e)
            rc = vmms_fail(err, errlen, VMMS_ERR, "Docker could not load the image: %s", e);
        else if (s) {
            int kind = image_load_line(s, strlen(s), v, sizeof v);
            if (kind == 1 && l->nrefs < LOADED_MAX)
                strcpy(l->refs[l->nrefs++], v);
            else if (kind == 2 && l->nids < LOADED_MAX)
                strcpy(l->ids[l->nids++], v);
            else if (kind != 0)
                rc = vmms_fail(err, errlen, VMMS_ERR, "Docker loaded over %d images",
                             LOADED_MAX);
        }
        json_decref(msg);
        if (rc != VMMS_OK)
            return rc;
    }
    return VMMS_OK;
}

/* POST /images/REF/tag for name ("repo[:tag]"). */
static int tag_image(struct ld_ctx *ctx, const char *ref, const char *name, char *err,
                     size_t errlen)
{
    char repo[256], tag[256], er[800], et[800], path[2048];
    split_ref(name, repo, sizeof repo, tag, sizeof tag);
    snprintf(path, sizeof path, "/images/%s/tag?repo=%s&tag=%s", ref,
             vmms_engine_urlencode(repo, er, sizeof er), vmms_engine_urlencode(tag, et, sizeof et));
    struct vmms_engine_req req = {.method = "POST", .path = path};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 201)
        rc = vmms_engine_fail(&resp, "cannot tag the loaded image", err, errlen);
    vmms_engine_resp_free(&resp);
    return rc;
}

/* Puts tag ref back where it was before the load (before: GET /images/json
 * then), or removes it if it did not exist. */
static void undo_tag(struct ld_ctx *ctx, const json_t *before, const char *ref)
{
    const char *prev = NULL;
    size_t i, j;
    json_t *img, *t;
    json_array_foreach(before, i, img)
        json_array_foreach(json_object_get(img, "RepoTags"), j, t)
            if (!prev && json_string_value(t) && image_ref_same(json_string_value(t), ref))
                prev = json_string_value(json_object_get(img, "Id"));
    char e[256], q[300];
    int rc;
    if (prev && ref_ok(prev)) {
        rc = tag_image(ctx, prev, ref, e, sizeof e);
    } else {
        char path[600];
        snprintf(path, sizeof path, "/images/%s?noprune=1", ref);
        struct vmms_engine_req req = {.method = "DELETE", .path = path};
        struct vmms_engine_resp resp;
        rc = vmms_engine_call(&ctx->engine, &req, &resp, e, sizeof e);
        if (rc == VMMS_OK && resp.status != 200)
            rc = vmms_engine_fail(&resp, "cannot remove the tag", e, sizeof e);
        vmms_engine_resp_free(&resp);
    }
    char qe[300];
    log_error("image_tag_undone", "tag=%s restored_to=%.19s rc=%d err=%s",
              log_quote(ref, q, sizeof q), prev ? prev : "(removed)", rc,
              log_quote(rc == VMMS_OK ? "none" : e, qe, sizeof qe));
}

/* Docker's data directory (GET /info DockerRootDir) into dir, when this
 * host can see it; NULL otherwise (its free space then goes unchecked). */
static const char *docker_root(struct ld_ctx *ctx, char *dir, size_t dirlen)
{
    struct vmms_engine_req req = {.method = "GET", .path = "/info"};
    struct vmms_engine_resp resp;
    char err[256];
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, sizeof err);
    const char *root = json_string_value(json_object_get(resp.json, "DockerRootDir"));
    bool seen = rc == VMMS_OK && resp.status == 200 && root && root[0] == '/' &&
                access(root, F_OK) == 0;
    if (seen)
        snprintf(dir, dirlen, "%s", root);
    else
        log_debug("docker_root_unknown", "free space before a load not checked");
    vmms_engine_resp_free(&resp);
    return seen ? dir : NULL;
}

int ld_load_image(void *vctx, const char *tar_path, const char *name, int timeout_s,
                  const struct vmms_image_limits *lim, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    char root[PATH_MAX];
    int fd = vmms_image_tar_open(tar_path, name, lim, docker_root(ctx, root, sizeof root), err,
                                 errlen);
    if (fd < 0)
        return VMMS_ERR;
    FILE *f = lseek(fd, 0, SEEK_SET) == 0 ? fdopen(fd, "rb") : NULL;
    if (f == NULL) {
        int e = errno;
        close(fd);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot reopen %s: %s", tar_path, strerror(e));
    }
    struct stat st;
    long long size = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? st.st_size : -1;
    long t0 = clock_mono_ms();

    /* The tags as they are, to put back any the load moves against the check. */
    struct vmms_engine_req breq = {.method = "GET", .path = "/images/json"};
    struct vmms_engine_resp before;
    int rc = vmms_engine_call(&ctx->engine, &breq, &before, err, errlen);
    if (rc == VMMS_OK && (before.status != 200 || !json_is_array(before.json)))
        rc = vmms_engine_fail(&before, "cannot list images", err, errlen);
    if (rc != VMMS_OK) {
        fclose(f);
        vmms_engine_resp_free(&before);
        return rc;
    }

    struct vmms_engine_req req = {.method = "POST", .path = "/images/load?quiet=1", .upload = f,
                                  .upload_size = size, .timeout_s = timeout_s};
    struct vmms_engine_resp resp;
    rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    fclose(f);
    struct loaded l;
    memset(&l, 0, sizeof l);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "Docker could not load the image", err, errlen);
    if (rc == VMMS_OK)
        rc = parse_load(&resp, &l, err, errlen);
    vmms_engine_resp_free(&resp);

    /* Docker may only have tagged name. */
    bool named = false;
    for (size_t i = 0; i < l.nrefs; i++) {
        if (image_ref_same(l.refs[i], name)) {
            named = true;
            continue;
        }
        undo_tag(ctx, before.json, l.refs[i]);
        if (rc == VMMS_OK)
            rc = vmms_fail(err, errlen, VMMS_ERR, "Docker tagged %.100s from the tarball, "
                         "which /build does not allow (only %s); the tag was put back",
                         l.refs[i], name);
    }
    vmms_engine_resp_free(&before);
    if (rc == VMMS_OK && !named) {
        if (l.nids != 1 || !ref_ok(l.ids[0]))
            rc = vmms_fail(err, errlen, VMMS_ERR,
                         "Docker loaded no single image from the tarball (is it a `docker "
                         "save` archive?)");
        else
            rc = tag_image(ctx, l.ids[0], name, err, errlen);
    }
    if (rc != VMMS_OK)
        return rc;
    char qn[300], ql[300];
    log_info("image_loaded", "name=%s loaded=%s ms=%ld", log_quote(name, qn, sizeof qn),
             log_quote(named ? name : l.ids[0], ql, sizeof ql), (long)(clock_mono_ms() - t0));
    return VMMS_OK;
}
