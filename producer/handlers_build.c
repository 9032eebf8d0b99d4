/*
 * handlers_build.c: the Dockerfile build routes. POST /build_image/KEY/
 * takes a Dockerfile (or, with Content-Type application/x-tar, a build
 * context tar holding one) of at most build_context_max_kb, stores it
 * beside /build's tarballs, records the build in Redis (store_builds.c:
 * queued, or waiting for `tangoctl builds approve` with build_approval
 * required) and answers at once with its id; a consumer's builder runs it.
 * GET /build_status/KEY/ID/ answers the record: statusId 1 waiting or
 * running, 0 built, negative failed, and the (bounded) build log. The
 * producer keeps no state: everything is in Redis.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <openssl/rand.h>

#include "app.h"
#include "dockerfile_check.h"
#include "log.h"
#include "names.h"
#include "reply.h"
#include "text.h"
#include "upload.h"

/* The 413 text naming the limit (kept in ctx for the router). */
static const char *too_large_text(struct route_ctx *ctx)
{
    static _Thread_local char text[160];
    snprintf(text, sizeof text, "Dockerfile or build context too large: the limit is %d KiB "
             "(build_context_max_kb)", ctx->app->cfg->build_context_max_kb);
    return text;
}

void h_build_image_head(struct http_request *req, struct route_ctx *ctx)
{
    const char *image = http_header(req, "imageName");
    if (!image || !image_name_is_valid(image)) {
        reply_fail(req, ctx, 400, "Invalid image name: set the imageName header to a lower-case "
                                  "name like datalab or datalab:v3");
        return;
    }
    size_t limit = (size_t)ctx->app->cfg->build_context_max_kb * 1024;
    const char *cl = http_header(req, "Content-Length");
    ctx->too_large = too_large_text(ctx);
    if (cl && strspn(cl, "0123456789") == strlen(cl) && (strlen(cl) > 15 ||
                                                         strtoull(cl, NULL, 10) > limit)) {
        reply_fail(req, ctx, 413, ctx->too_large);
        return;
    }
    if (!build_claim(req, ctx, image))
        return;
    http_take_body_memory(req, limit);
}

/* Writes the body into a new file of the builds directory; *path gets its
 * name. 0, or -1 (logged). */
static int store_body(struct route_ctx *ctx, const void *data, size_t len, bool tar, char *path,
                      size_t pathlen)
{
    char dir[PATH_MAX], hex[17], name[64];
    unsigned char rnd[8];
    RAND_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, hex);
    snprintf(name, sizeof name, "imgbuild-%s.%s", hex, tar ? "tar" : "dockerfile");
    if (mkdir_p(ctx->app->cfg->courselabs, 0755) || app_builds_dir(ctx->app, dir, sizeof dir)) {
        log_error("build_dir_failed", "errno=%d", errno);
        return -1;
    }
    struct upload *up = upload_begin(dir);
    if (!up || upload_write(up, data, len) || upload_commit(up, name)) {
        log_error("build_store_failed", "errno=%d", errno);
        if (up)
            upload_free(up);
        return -1;
    }
    upload_free(up);
    snprintf(path, pathlen, "%s/%s", dir, name);
    return 0;
}

/* Whether a context starts like gzip, bzip2, xz or zstd data. */
static bool is_compressed(const unsigned char *p, size_t len)
{
    static const struct { const char *magic; size_t n; } kinds[] = {
        {"\x1f\x8b", 2}, {"BZh", 3}, {"\xfd" "7zXZ", 5}, {"\x28\xb5\x2f\xfd", 4}};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (len >= kinds[i].n && memcmp(p, kinds[i].magic, kinds[i].n) == 0)
            return true;
    return false;
}

struct usable {
    const struct app *app;
    const json_t *images; /* app_usable_images of the caller's key */
};

/* allow() of dockerfile_check: a configured image (even one no consumer
 * has published yet) or one in the key's usable list. */
static bool image_usable(const char *image, void *arg)
{
    const struct usable *u = arg;
    return app_image_is_configured(u->app, image) || json_lists_string(u->images, image);
}

/* Whether the Dockerfile (or the one in the context tar) is refused by
 * dockerfile_check against the images this key may run
 * (app_usable_images); answers the 400 (or the store's failure) if so. */
static bool dockerfile_refused(struct http_request *req, struct route_ctx *ctx,
                               const unsigned char *body, size_t len, bool tar)
{
    json_t *images = NULL;
    int status = app_usable_images(ctx->app, ctx->key_id, &images);
    if (status != STORE_OK) {
        reply_store_fail(req, ctx, status);
        return true;
    }
    char err[640];
    struct usable u = {ctx->app, images};
    int rc = tar ? dockerfile_check_tar(body, len, image_usable, &u, err, sizeof err)
                 : dockerfile_check((const char *)body, len, image_usable, &u, err, sizeof err);
    json_decref(images);
    if (rc == 0)
        return false;
    log_info("image_build_refused", "image=%s reason=dockerfile_check",
             http_header(req, "imageName"));
    reply_fail(req, ctx, 400, err);
    return true;
}

void h_build_image(struct http_request *req, struct route_ctx *ctx)
{
    struct evbuffer *body = http_body(req);
    size_t len = evbuffer_get_length(body);
    if (len == 0) {
        reply_fail(req, ctx, 400, "Empty body: send the Dockerfile (or, with Content-Type "
                                  "application/x-tar, a build context tar holding one)");
        return;
    }
    const char *type = http_header(req, "Content-Type");
    bool tar = type && strncasecmp(type, "application/x-tar", 17) == 0;
    const unsigned char *head = evbuffer_pullup(body, (ev_ssize_t)len);
    if (tar && is_compressed(head, len)) {
        reply_fail(req, ctx, 400, "Compressed build context refused: send a plain tar "
                                  "(dockerd would unpack a compressed one without our limit)");
        return;
    }
    if (dockerfile_refused(req, ctx, head, len, tar))
        return;
    const char *image = http_header(req, "imageName");
    char path[PATH_MAX + 64];
    if (store_body(ctx, head, len, tar, path, sizeof path)) {
        reply_fail(req, ctx, 500, "Image build failed: cannot store the Dockerfile");
        return;
    }
    bool approval = strcmp(ctx->app->cfg->build_approval, "required") == 0;
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:I}", "keyId",
                            ctx->key_id, "image", image, "path", path, "context",
                            tar ? "tar" : "dockerfile", "state", approval ? "waiting" : "queued",
                            "statusId", 1, "message", approval ? "waiting for approval" : "queued",
                            "log", "", "attempts", 0, "createdAt", (json_int_t)time(NULL));
    int64_t id = 0;
    int status = store_build_add(ctx->app->store, rec, !approval, &id);
    json_decref(rec);
    if (status != STORE_OK) {
        remove(path);
        reply_store_fail(req, ctx, status);
        return;
    }
    log_info("image_build_queued", "build_id=%lld image=%s bytes=%zu approval=%s", (long long)id,
             image, len, approval ? "required" : "none");
    reply_ok(req, approval ? "Build waiting for approval" : "Build queued",
             json_pack("{s:I, s:i, s:s}", "buildId", (json_int_t)id, "statusId", 1, "imageName",
                       image));
}

void h_build_status(struct http_request *req, struct route_ctx *ctx)
{
    const char *arg = ctx->args[1];
    size_t n = strlen(arg);
    if (n == 0 || n > 18 || strspn(arg, "0123456789") != n) {
        reply_fail(req, ctx, 400, "Invalid build id: a decimal number");
        return;
    }
    json_t *rec = NULL;
    int status = store_build_get(ctx->app->store, atoll(arg), &rec);
    if (status == STORE_OK && (!json_is_object(rec) ||
        strcmp(json_string_value(json_object_get(rec, "keyId")) ?: "", ctx->key_id) != 0))
        status = STORE_NOT_FOUND; /* another key's build answers as an unknown one */
    if (status != STORE_OK) {
        json_decref(rec);
        if (status == STORE_NOT_FOUND)
            reply_fail(req, ctx, 404, "Build not found");
        else
            reply_store_fail(req, ctx, status);
        return;
    }
    json_t *extra = json_pack("{s:O, s:O, s:O, s:O, s:O}", "buildId", json_object_get(rec, "id"),
                              "statusId", json_object_get(rec, "statusId"), "state",
                              json_object_get(rec, "state"), "imageName",
                              json_object_get(rec, "image"), "log", json_object_get(rec, "log"));
    json_t *pushed = json_object_get(rec, "imageRef");
    if (json_is_string(pushed))
        json_object_set(extra, "imageRef", pushed);
    const char *msg = json_string_value(json_object_get(rec, "message"));
    reply_ok(req, msg ? msg : "", extra);
    json_decref(rec);
}
