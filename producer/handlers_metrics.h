/*
 * handlers_metrics.h: the producer's Prometheus metrics: GET /metrics and
 * the per-process families it records (HTTP requests by route and status
 * with their latency, upload bytes), each labelled by instance
 * (<hostname>:<port>). Service-wide values come from Redis
 * (store_metrics.h). One event loop: called from the producer's thread.
 */
#ifndef TANGO_PRODUCER_METRICS_H
#define TANGO_PRODUCER_METRICS_H

#include <stddef.h>

#include "app.h"

/* Makes the registry and the instance label; once, before serving. */
void producer_metrics_init(const struct tango_config *cfg);
void producer_metrics_free(void);

/* http_handlers.on_done: counts a finished request under its route's name
 * ("/" for the root, "other" for a path no route matched). */
void producer_metrics_http_done(struct http_request *req, int status, double seconds, void *app);

/* Request body bytes written to disk (uploads and build tarballs). */
void producer_metrics_upload_bytes(size_t n);

/* GET /metrics (no key): the text exposition format 0.0.4. */
void h_metrics(struct http_request *req, struct route_ctx *ctx);

#endif
