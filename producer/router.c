/*
 * router.c: turns a request head into a route and validated arguments:
 * splits and URL-decodes the path, finds the route in routes.c, checks the
 * key (constant time) and every name that may become a path, and picks how
 * the body is taken. Every refusal is a JSON envelope.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/http.h>

#include "app.h"
#include "log.h"
#include "names.h"
#include "reply.h"

#define PATH_SEGMENTS_MAX (ROUTE_MAX_ARGS + 2)

static void ctx_free(struct http_request *req, void *arg)
{
    (void)req;
    struct route_ctx *ctx = arg;
    if (ctx->free_state && ctx->state)
        ctx->free_state(ctx->state);
    for (int i = 0; i < ctx->nargs; i++)
        free(ctx->args[i]);
    free(ctx);
}

/* Splits the raw path into raw segments (at most max); -1 if malformed. An
 * empty segment is allowed only last ("/pool/KEY//", as tango-cli sends for
 * "all pools"): it becomes "", which each route's validation then judges. */
static int split_path(const char *path, char **segs, int max)
{
    if (path[0] != '/')
        return -1;
    const char *p = path + 1;
    int n = 0;
    if (*p == '\0') {
        segs[n++] = strdup("");
        return n;
    }
    while (*p) {
        size_t len = strcspn(p, "/");
        if ((len == 0 && strcmp(p, "/") != 0) || n == max)
            return -1 - n; /* empty segment, or too many */
        segs[n++] = strndup(p, len);
        p += len;
        if (*p == '/')
            p++;
    }
    return n;
}

/* URL-decodes a segment; NULL if it decodes to something holding a NUL. */
static char *decode_segment(const char *raw)
{
    size_t len = 0;
    char *out = evhttp_uridecode(raw, 0, &len);
    if (out && strlen(out) != len) {
        free(out);
        return NULL;
    }
    return out;
}

void router_on_head(struct http_request *req, void *arg)
{
    struct app *app = arg;
    struct route_ctx *ctx = calloc(1, sizeof *ctx);
    ctx->app = app;
    http_set_user(req, ctx);
    http_on_free(req, ctx_free, ctx);

    char *segs[PATH_SEGMENTS_MAX] = {0};
    int n = split_path(http_path(req), segs, PATH_SEGMENTS_MAX);
    int nsegs = n < 0 ? -1 - n : n;
    bool known = false;
    const struct route *route = NULL;
    char *name = n > 0 ? decode_segment(segs[0]) : NULL;
    if (name)
        route = routes_find(name, http_method(req), &known);
    free(name);
    if (route && (n - 1 < route->min_args || n - 1 > route->max_args)) {
        route = NULL;
        known = false; /* right method, wrong shape: no such route */
    }
    for (int i = 1; route && i < n; i++) {
        ctx->args[ctx->nargs] = decode_segment(segs[i]);
        if (!ctx->args[ctx->nargs])
            break;
        ctx->nargs++;
    }
    for (int i = 0; i < nsegs; i++)
        free(segs[i]);
    if (!route) {
        if (known)
            reply_fail(req, NULL, 405, "Method not allowed for this route");
        else
            reply_fail(req, NULL, 404, "Unknown route");
        return;
    }
    ctx->route = route;
    if (ctx->nargs != n - 1) {
        reply_fail(req, ctx, 400, "Invalid path: a segment is not valid URL encoding");
        return;
    }
    if (route->needs_key && !key_matches(ctx->args[0], app->cfg->keys, app->cfg->nkeys)) {
        reply_fail(req, ctx, 401, "Key not recognized");
        return;
    }
    if (route->needs_key) {
        key_id(app->secret.bytes, app->secret.len, ctx->args[0], ctx->key_id);
        key_id_legacy(ctx->args[0], ctx->key_id_legacy);
    }
    if (route->has_lab && (!app_is_utf8(ctx->args[1]) ||
                                 lab_dir_find(app->cfg->courselabs, &app->secret, ctx->args[0],
                                              ctx->args[1], ctx->lab_dir))) {
        reply_fail(req, ctx, 400, "Invalid courselab name: use 1-238 bytes of UTF-8 without '/', "
                                  "'\\', control characters, '.' or '..'");
        return;
    }
    if (route->body == RB_JSON)
        http_take_body_memory(req, (size_t)app->cfg->max_request_kb * 1024);
    else if (route->body == RB_STREAM)
        route->on_head(req, ctx);
}

void router_on_request(struct http_request *req, void *arg)
{
    (void)arg;
    struct route_ctx *ctx = http_user(req);
    if (http_body_too_large(req)) {
        char msg[160];
        if (ctx->too_large)
            snprintf(msg, sizeof msg, "%s", ctx->too_large);
        else if (ctx->route->body == RB_STREAM)
            snprintf(msg, sizeof msg, "File too large: the limit is %d MiB",
                     ctx->app->cfg->max_upload_mb);
        else if (ctx->route->body == RB_JSON)
            snprintf(msg, sizeof msg, "Request body too large: the limit is %d KiB",
                     ctx->app->cfg->max_request_kb);
        else
            snprintf(msg, sizeof msg, "This route takes no request body");
        reply_fail(req, ctx, 413, msg);
        return;
    }
    ctx->route->handler(req, ctx);
}
