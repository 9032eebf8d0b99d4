/*
 * main.c: tango-producer, the stateless HTTP front end. Loads the config,
 * opens the Redis store (refusing one whose maxmemory-policy evicts), serves the routes in routes.c until SIGINT/SIGTERM.
 *
 *   tango-producer [-c config.json]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "app.h"
#include "handlers_metrics.h"
#include "log.h"
#include "netset.h"

#define MAX_HEADERS 100             /* header lines in a head (trailers count too) */
#define BODY_RATE_WINDOW_MS 10000   /* window over which http_min_body_bps is measured */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("shutdown", "signal=%d", (int)sig);
    event_base_loopexit(arg, NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct app *app = arg;
    store_mark_started(app->store); /* first producer ever sets the service start */
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Loads what the producer needs before it listens: the install secret, the
 * callback policy, the trusted proxies and the store (checked against
 * Redis). 0, or a message on stderr, whatever it made freed, and 2. */
static int producer_prepare(struct tango_config *cfg, struct app *app, struct netset **proxies)
{
    char err[512];
    if (install_secret_load(cfg->courselabs, cfg->secret_file, &app->secret, err, sizeof err)) {
        fprintf(stderr, "tango-producer: %s\n", err);
        return 2;
    }
    if (callback_policy_new(cfg->callback_allow, cfg->ncallback_allow, &app->callbacks, err,
                            sizeof err)) {
        fprintf(stderr, "tango-producer: %s\n", err);
        return 2;
    }
    *proxies = NULL; /* config checked it: cannot fail */
    netset_new(cfg->trusted_proxies, cfg->ntrusted_proxies, proxies, err, sizeof err);
    app->store = store_new(cfg);
    if (store_startup_check(app->store, err, sizeof err)) {
        fprintf(stderr, "tango-producer: %s\n", err);
        netset_free(*proxies);
        callback_policy_free(app->callbacks);
        store_free(app->store);
        return 2;
    }
    return 0;
}

/* Listens and serves until SIGINT or SIGTERM, then frees the HTTP server
 * and its events. 0, or 1 (with a message) when it cannot listen. */
static int producer_serve(struct app *app, struct netset *proxies)
{
    const struct tango_config *cfg = app->cfg;
    app->base = event_base_new();
    struct http_limits lim = {
        .max_head_bytes = (size_t)cfg->max_header_kb * 1024,
        .max_headers = MAX_HEADERS,
        .timeout_s = cfg->http_timeout_s,
        .head_timeout_ms = cfg->http_head_timeout_s * 1000,
        .min_body_bps = cfg->http_min_body_bps,
        .body_window_ms = BODY_RATE_WINDOW_MS,
        .max_connections = cfg->max_connections,
        .max_per_ip = cfg->max_connections_per_ip,
        .trusted_proxies = proxies,
    };
    producer_metrics_init(cfg);
    struct http_handlers handlers = {router_on_head, router_on_request, app};
    app->http = http_server_new(app->base, &lim, &handlers);
    http_server_on_done(app->http, producer_metrics_http_done);
    int port = http_server_listen(app->http, cfg->bind, cfg->port);
    if (port < 0) {
        fprintf(stderr, "tango-producer: cannot listen on %s:%d: %s\n", cfg->bind, cfg->port,
                strerror(errno));
        return 1;
    }
    store_mark_started(app->store);
    struct event *sigint = evsignal_new(app->base, SIGINT, on_signal, app->base);
    struct event *sigterm = evsignal_new(app->base, SIGTERM, on_signal, app->base);
    struct event *tick = event_new(app->base, -1, EV_PERSIST, on_tick, app);
    struct timeval tick_tv = {30, 0};
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    event_add(tick, &tick_tv);
    log_info("listening", "bind=%s port=%d courselabs=%s keys=%zu trusted_proxies=%zu", cfg->bind,
             port, cfg->courselabs, cfg->nkeys, cfg->ntrusted_proxies);

    event_base_dispatch(app->base);

    event_free(sigint);
    event_free(sigterm);
    event_free(tick);
    http_server_free(app->http);
    return 0;
}

int main(int argc, char **argv)
{
    struct tango_config cfg;
    int rc = config_from_cli(argc, argv, "producer", &cfg);
    if (rc >= 0)
        return rc;
    if (cfg.nkeys == 0) {
        fprintf(stderr, "tango-producer: config key \"keys\": at least one client key is "
                        "required (or set TANGO_KEYS)\n");
        config_free(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    struct app app = {.cfg = &cfg};
    struct netset *proxies = NULL;
    if ((rc = producer_prepare(&cfg, &app, &proxies)) != 0) {
        config_free(&cfg);
        return rc;
    }
    if ((rc = producer_serve(&app, proxies)) != 0)
        return rc;
    netset_free(proxies);
    event_base_free(app.base);
    app_memo_free_all(&app);
    producer_metrics_free();
    OPENSSL_cleanse(&app.secret, sizeof app.secret);
    callback_policy_free(app.callbacks);
    store_free(app.store);
    config_free(&cfg);
    log_info("stopped", "%s", "");
    return 0;
}
