/*
 * reply.c: JSON envelopes (see reply.h).
 */
#include "reply.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define JSON_TYPE "application/json; charset=UTF-8"

void reply_json(struct http_request *req, int code, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII);
    struct evbuffer *b = evbuffer_new();
    if (text)
        evbuffer_add(b, text, strlen(text));
    free(text);
    http_reply(req, code, JSON_TYPE, b);
    evbuffer_free(b);
}

static json_t *envelope(int status_id, const char *msg, json_t *extra)
{
    json_t *doc = json_pack("{s:i, s:s}", "statusId", status_id, "statusMsg", msg);
    if (extra) {
        json_object_update(doc, extra);
        json_decref(extra);
    }
    return doc;
}

void reply_ok(struct http_request *req, const char *msg, json_t *extra)
{
    json_t *doc = envelope(0, msg, extra);
    reply_json(req, 200, doc);
    json_decref(doc);
}

void reply_fail(struct http_request *req, const struct route_ctx *ctx, int code,
                const char *msg)
{
    json_t *doc = envelope(-1, msg, NULL);
    reply_json(req, ctx && ctx->route && ctx->route->legacy ? 200 : code, doc);
    json_decref(doc);
}

void reply_store_fail(struct http_request *req, const struct route_ctx *ctx, int status)
{
    if (status == STORE_UNAVAILABLE) {
        /* Refused writes name their cause (OOM at maxmemory...): an outage
         * says no more than it always did (the address stays private). */
        const struct store *st = ctx->app->store;
        reply_fail(req, ctx, 503, store_write_refused(st) ? store_error(st) : "Redis unavailable");
        return;
    }
    log_error("store_error", "route=%s error=\"%s\"", ctx->route->name,
              store_error(ctx->app->store));
    reply_fail(req, ctx, 500, "Internal error: the job store failed; try again");
}
