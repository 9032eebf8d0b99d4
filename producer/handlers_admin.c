/*
 * handlers_admin.c: service routes: liveness (/ and /health), info, pool,
 * prealloc and build (queue an image tarball for the consumer to load and
 * wait for its answer without blocking the event loop).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>

#include "app.h"
#include "log.h"
#include "names.h"
#include "reply.h"
#include "text.h"
#include "upload.h"

#define BUILD_POLL_MS 250

void h_hello(struct http_request *req, struct route_ctx *ctx)
{
    (void)ctx;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "Hello, world! RESTful Tango here!\n");
    http_reply(req, 200, "text/html; charset=UTF-8", b);
    evbuffer_free(b);
}

/* /health: 200 while Redis answers and takes writes; else 503 with "redis":
 * "down" (unreachable) or "not writable" (answers, but refuses writes:
 * statusMsg names the cause, e.g. OOM at maxmemory), so a balancer takes
 * this producer out of rotation either way. The write probe is cached
 * (store.h). "backend" says whether the consumers can reach the VMMS back
 * end (backend:down:<vmms>, backend_health.c): while "down", jobs wait in
 * the queue and "backendDown" says since when and why; still 200, as this
 * producer takes jobs all the same. */
void h_health(struct http_request *req, struct route_ctx *ctx)
{
    static const char *const redis_state[] = {
        [STORE_HEALTH_UP] = "up", [STORE_HEALTH_DOWN] = "down",
        [STORE_HEALTH_NOT_WRITABLE] = "not writable"};
    struct app *app = ctx->app;
    char why[256];
    enum store_health h = store_health(app->store, why, sizeof why);
    bool up = h == STORE_HEALTH_UP;
    json_t *down = NULL;
    if (h != STORE_HEALTH_DOWN && store_backend_down(app->store, app->cfg->vmms, &down) != STORE_OK)
        down = NULL;
    const char *msg = h == STORE_HEALTH_DOWN ? "Redis unavailable"
                      : !up                  ? why
                      : down ? "OK; the back end is unavailable: jobs wait in the queue"
                             : "OK";
    json_t *doc = json_pack("{s:i, s:s, s:s, s:s}", "statusId", up ? 0 : -1, "statusMsg", msg,
                            "redis", redis_state[h], "backend",
                            h == STORE_HEALTH_DOWN ? "unknown" : down ? "down" : "up");
    if (down)
        json_object_set_new(doc, "backendDown", down);
    reply_json(req, up ? 200 : 503, doc);
    json_decref(doc);
}

void h_info(struct http_request *req, struct route_ctx *ctx)
{
    struct app *app = ctx->app;
    json_t *info = app_memo_get(app, MEMO_INFO, ""); /* shared within a turn: see app.h */
    if (!info) {
        int status = store_info(app->store, &info);
        if (status != STORE_OK) {
            reply_store_fail(req, ctx, status);
            return;
        }
        app_memo_put(app, MEMO_INFO, "", info);
    }
    reply_ok(req, "Found info successfully", json_pack("{s:O}", "info", info));
}

/* Whether image is one the caller's key may use (app_usable_images). */
static bool image_is_usable(struct route_ctx *ctx, const char *image, int *status)
{
    json_t *images = NULL;
    *status = app_usable_images(ctx->app, ctx->key_id, &images);
    bool found = *status == STORE_OK && json_lists_string(images, image);
    json_decref(images);
    return found;
}

/* Removes from pools (an object keyed by image) every image the caller's
 * key may not use. */
static int keep_usable_pools(struct route_ctx *ctx, json_t *pools)
{
    json_t *images = NULL;
    int status = app_usable_images(ctx->app, ctx->key_id, &images);
    if (status != STORE_OK)
        return status;
    const char *image;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(pools, tmp, image, v) {
        if (!json_lists_string(images, image))
            json_object_del(pools, image);
    }
    json_decref(images);
    return STORE_OK;
}

void h_pool(struct http_request *req, struct route_ctx *ctx)
{
    /* "/pool/KEY//" (tango-cli without --image) means all pools, as in Tango */
    const char *image = ctx->nargs > 1 && ctx->args[1][0] ? ctx->args[1] : NULL;
    if (image && !image_name_is_valid(image)) {
        reply_fail(req, ctx, 404, "Pool not found");
        return;
    }
    json_t *pools = NULL;
    int status = store_pools(ctx->app->store, &pools);
    if (status == STORE_OK) /* only the pools of images this key may use */
        status = keep_usable_pools(ctx, pools);
    if (status != STORE_OK) {
        json_decref(pools);
        reply_store_fail(req, ctx, status);
        return;
    }
    if (!image) {
        reply_ok(req, "Found all pools", json_pack("{s:o}", "pools", pools));
        return;
    }
    json_t *one = json_object_get(pools, image);
    if (!one) {
        json_decref(pools);
        reply_fail(req, ctx, 404, "Pool not found");
        return;
    }
    reply_ok(req, "Found pool", json_pack("{s:{s:O}}", "pools", image, one));
    json_decref(pools);
}

void h_prealloc(struct http_request *req, struct route_ctx *ctx)
{
    struct app *app = ctx->app;
    const char *image = ctx->args[1], *num = ctx->args[2];
    int status = STORE_OK;
    if (!image_name_is_valid(image) || !image_is_usable(ctx, image, &status)) {
        if (status != STORE_OK)
            reply_store_fail(req, ctx, status);
        else
            reply_fail(req, ctx, 400, "Invalid image name"); /* Tango's words; also for
                                                                * another key's image */
        return;
    }
    long long size = -1;
    if (*num && strlen(num) < 10 && strspn(num, "0123456789") == strlen(num))
        size = atoll(num);
    if (size < 0 || size > app->cfg->max_pool_size) {
        reply_fail(req, ctx, 400, "Invalid prealloc size");
        return;
    }
    json_t *spec = json_pack("{s:I}", "size", (json_int_t)size);
    struct evbuffer *body = http_body(req);
    size_t len = evbuffer_get_length(body);
    if (len > 0) {
        json_error_t jerr;
        json_t *o = json_loadb((const char *)evbuffer_pullup(body, (ev_ssize_t)len), len, 0, &jerr);
        json_t *cores = json_object_get(o, "cores"), *memory = json_object_get(o, "memory");
        if (!json_is_object(o) || (cores && (!json_is_integer(cores) ||
            json_integer_value(cores) < 1 || json_integer_value(cores) > app->cfg->max_cores)) ||
            (memory && (!json_is_integer(memory) || json_integer_value(memory) < 16 ||
            json_integer_value(memory) > app->cfg->max_memory_mb))) {
            json_decref(o);
            json_decref(spec);
            reply_fail(req, ctx, 400, "Preallocate VM failed: body must be JSON "
                                      "{\"vmms\", \"cores\", \"memory\"} within limits");
            return;
        }
        if (cores)
            json_object_set(spec, "cores", cores);
        if (memory)
            json_object_set(spec, "memory", memory);
        json_decref(o);
    }
    status = store_set_pool_wanted(app->store, image, spec);
    json_decref(spec);
    if (status != STORE_OK) {
        reply_store_fail(req, ctx, status);
        return;
    }
    log_info("pool_wanted", "image=%s size=%lld", image, size);
    reply_ok(req, "VMs preallocated", NULL);
}

int app_builds_dir(struct app *app, char *out, size_t len)
{
    char *real = realpath(app->cfg->courselabs, NULL);
    if (!real)
        return -1;
    int n = snprintf(out, len, "%s/.builds", real);
    free(real);
    if (n < 0 || (size_t)n >= len)
        return -1;
    return mkdir_p(out, 0700);
}

bool build_claim(struct http_request *req, struct route_ctx *ctx, const char *image)
{
    char text[512];
    if (app_image_is_configured(ctx->app, image)) {
        snprintf(text, sizeof text, "Image build refused: %s is an image the service's config "
                 "provides (\"images\"); build under another name", image);
        reply_fail(req, ctx, 403, text);
        return false;
    }
    char owner[KEY_ID_LEN + 1] = "", repo[NAME_MAX_BYTES + 1];
    snprintf(repo, sizeof repo, "%.*s", (int)image_repo_len(image), image);
    int status = store_claim_image(ctx->app->store, repo, ctx->key_id, owner, sizeof owner);
    if (status != STORE_OK) {
        reply_store_fail(req, ctx, status);
        return false;
    }
    if (strcmp(owner, ctx->key_id) != 0) {
        snprintf(text, sizeof text, "Image build refused: %s was built by another key; an "
                 "image (every tag of its name) belongs to the key that built it: build under "
                 "another name", repo);
        reply_fail(req, ctx, 403, text);
        log_warn("build_refused", "image=%s reason=owned_by_another_key", image);
        return false;
    }
    return true;
}

void h_build_head(struct http_request *req, struct route_ctx *ctx)
{
    const char *image = http_header(req, "imageName");
    if (!image || !image_name_is_valid(image)) {
        reply_fail(req, ctx, 400, "Invalid image name: set the imageName header to a lower-case "
                                  "name like autograding_image or name:tag");
        return;
    }
    if (!build_claim(req, ctx, image))
        return;
    char dir[PATH_MAX];
    if (mkdir_p(ctx->app->cfg->courselabs, 0755) || app_builds_dir(ctx->app, dir, sizeof dir)) {
        log_error("build_dir_failed", "errno=%d", errno);
        reply_fail(req, ctx, 500, "Image build failed: cannot store the tarball");
        return;
    }
    stream_body_to_dir(req, ctx, dir);
}

struct build_wait {
    struct http_request *req;
    struct route_ctx *ctx;
    struct event *timer;
    int64_t build_id;
    int polls_left;
};

static void build_wait_free(void *arg)
{
    struct build_wait *w = arg;
    event_free(w->timer);
    free(w);
}

static void build_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct build_wait *w = arg;
    json_t *result = NULL;
    int status = store_build_result(w->ctx->app->store, w->build_id, &result);
    if (status == STORE_OK) {
        const char *msg = json_string_value(json_object_get(result, "message"));
        if (json_is_true(json_object_get(result, "ok"))) {
            reply_ok(w->req, "Docker image built", NULL);
        } else {
            char text[512];
            snprintf(text, sizeof text, "Image build failed: %s", msg ? msg : "unknown error");
            reply_fail(w->req, w->ctx, 500, text);
        }
        json_decref(result);
        return;
    }
    if (--w->polls_left <= 0) {
        reply_fail(w->req, w->ctx, 504, "Image build failed: no consumer loaded the image in time");
        return;
    }
    struct timeval tv = {0, BUILD_POLL_MS * 1000};
    evtimer_add(w->timer, &tv);
}

void h_build(struct http_request *req, struct route_ctx *ctx)
{
    struct app *app = ctx->app;
    struct upload *up = ctx->state;
    if (!up || http_body_failed(req)) {
        reply_fail(req, ctx, 500, "Image build failed: cannot store the tarball");
        return;
    }
    unsigned char rnd[8];
    char hex[17], name[64], dir[PATH_MAX], path[PATH_MAX + 64];
    RAND_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, hex);
    snprintf(name, sizeof name, "build-%s.tar", hex);
    if (app_builds_dir(app, dir, sizeof dir) || upload_commit(up, name)) {
        reply_fail(req, ctx, 500, "Image build failed: cannot store the tarball");
        return;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int64_t build_id;
    const char *image = http_header(req, "imageName");
    int status = store_queue_build(app->store, image, path, &build_id);
    if (status != STORE_OK) {
        remove(path);
        reply_store_fail(req, ctx, status);
        return;
    }
    log_info("build_queued", "build_id=%lld image=%s bytes=%zu", (long long)build_id, image,
             upload_size(up));
    ctx->free_state(ctx->state);
    struct build_wait *w = calloc(1, sizeof *w);
    w->req = req;
    w->ctx = ctx;
    w->build_id = build_id;
    w->polls_left = app->cfg->build_timeout_s * 1000 / BUILD_POLL_MS;
    w->timer = evtimer_new(app->base, build_poll, w);
    ctx->state = w;
    ctx->free_state = build_wait_free;
    struct timeval tv = {0, BUILD_POLL_MS * 1000};
    evtimer_add(w->timer, &tv);
}
