/*
 * reply.h: the JSON envelope every route answers with:
 * {"statusId": 0|-1, "statusMsg": "...", ...extra}, Content-Type
 * application/json; charset=UTF-8. Legacy (Tango) routes answer HTTP 200
 * even for failures (clients read statusId); our own routes use real codes.
 */
#ifndef TANGO_PRODUCER_REPLY_H
#define TANGO_PRODUCER_REPLY_H

#include <jansson.h>

#include "app.h"

/* Success: statusId 0; extra (may be NULL) is merged in and released. */
void reply_ok(struct http_request *req, const char *msg, json_t *extra);
/* Failure: statusId -1. code is used on non-legacy routes (legacy: 200). */
void reply_fail(struct http_request *req, const struct route_ctx *ctx, int code,
                const char *msg);
/* A store failure: "Redis unavailable" (503 on our routes), "Redis refuses
 * writes: <cause>" (503: OOM at maxmemory...) or a Redis error. */
void reply_store_fail(struct http_request *req, const struct route_ctx *ctx, int status);
/* Any JSON document, HTTP code as given. */
void reply_json(struct http_request *req, int code, json_t *doc);

#endif
