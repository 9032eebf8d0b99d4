/*
 * handlers_metrics.c: GET /metrics on the producer and the producer's own
 * families (handlers_metrics.h). The registry and its families are made
 * once by producer_metrics_init; every family is labelled by instance.
 */
#include "handlers_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "log.h"
#include "metrics.h"
#include "store_metrics.h"

static struct metrics *reg;
static struct metric *m_requests, *m_duration, *m_upload, *m_redis_scrape_errors, *m_redis_errors;
static char instance[320];

void producer_metrics_init(const struct tango_config *cfg)
{
    if (reg)
        return;
    metrics_instance_label(instance, sizeof instance, cfg->port);
    reg = metrics_new();
    m_requests = metrics_counter(reg, "tango_http_requests_total",
                                 "HTTP requests answered by this producer, by route and status",
                                 (const char *const[]){"instance", "route", "code", NULL});
    m_duration = metrics_histogram(
        reg, "tango_http_request_duration_seconds",
        "Time from a request's first byte until its reply was written, by route",
        (const char *const[]){"instance", "route", NULL}, metrics_latency_buckets,
        metrics_latency_nbuckets);
    m_upload = metrics_counter(reg, "tango_upload_bytes_total",
                               "Request body bytes streamed to disk (uploads, build tarballs)",
                               (const char *const[]){"instance", NULL});
    m_redis_scrape_errors = metrics_counter(
        reg, "tango_metrics_redis_errors_total",
        "Scrapes of this producer whose service-wide values Redis did not give",
        (const char *const[]){"instance", NULL});
    metric_add(m_redis_scrape_errors, (const char *const[]){instance}, 0);
    m_redis_errors = metrics_counter(reg, "tango_redis_errors_total", STORE_ERRORS_HELP,
                                     (const char *const[]){"instance", NULL});
}

void producer_metrics_free(void)
{
    metrics_free(reg);
    reg = NULL;
}

void producer_metrics_http_done(struct http_request *req, int status, double seconds, void *app)
{
    (void)app;
    const struct route_ctx *ctx = http_user(req);
    const char *route = "other";
    char name[64];
    if (ctx && ctx->route) {
        snprintf(name, sizeof name, "/%s", ctx->route->name);
        route = name;
    }
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    metric_add(m_requests, (const char *const[]){instance, route, code}, 1);
    metric_observe(m_duration, (const char *const[]){instance, route}, seconds);
}

void producer_metrics_upload_bytes(size_t n)
{
    metric_add(m_upload, (const char *const[]){instance}, (double)n);
}

static void write_service(FILE *out, void *arg)
{
    struct store *st = arg;
    if (store_metrics_write(st, out) != STORE_OK)
        metric_add(m_redis_scrape_errors, (const char *const[]){instance}, 1);
}

void h_metrics(struct http_request *req, struct route_ctx *ctx)
{
    /* Redis first: its failure is counted in this same answer. */
    char *service = NULL;
    size_t service_len = 0;
    FILE *s = open_memstream(&service, &service_len);
    if (s) {
        write_service(s, ctx->app->store);
        fclose(s);
    }
    metric_set(m_redis_errors, (const char *const[]){instance}, (double)store_unavailable_count());
    size_t len = 0;
    char *text = metrics_render_text(reg, NULL, NULL, &len);
    if (!text || !service) {
        free(text);
        free(service);
        log_error("metrics_render_failed", "%s", "");
        http_reply(req, 500, "text/plain; charset=utf-8", NULL);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, len);
    evbuffer_add(b, service, service_len);
    free(text);
    free(service);
    http_reply(req, 200, METRICS_CONTENT_TYPE, b);
    evbuffer_free(b);
}
