/*
 * main.c: tango-consumer, the process that runs jobs. Loads the config,
 * refuses a Redis whose maxmemory-policy evicts keys, loads the VMMS
 * plugin, starts its threads and runs the dispatcher until told to stop.
 * SIGTERM or SIGINT: drain (lease nothing new, finish running jobs up to
 * drain_timeout_s, hand the rest back, release the leader lease, exit 0).
 * A second signal stops at once.
 *
 *   tango-consumer [-c config.json]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/rand.h>

#include "backend_health.h"
#include "builder.h"
#include "consumer.h"
#include "disk_guard.h"
#include "log.h"
#include "pool.h"
#include "labs.h"
#include "text.h"

static struct consumer *the_consumer;

static void on_signal(int sig)
{
    (void)sig;
    if (atomic_load(&the_consumer->draining))
        atomic_store(&the_consumer->stopping, true);
    atomic_store(&the_consumer->draining, true);
}

/* Whether Redis answers with a maxmemory-policy that evicts keys (refused
 * unless config redis_allow_eviction): err says so. */
static bool redis_policy_refused(const struct tango_config *cfg, char *err, size_t len)
{
    struct store *st = store_new(cfg);
    bool refused = st && store_startup_check(st, err, len);
    store_free(st);
    return refused;
}

int main(int argc, char **argv)
{
    struct tango_config cfg;
    int rc = config_from_cli(argc, argv, "consumer", &cfg);
    if (rc >= 0)
        return rc;
    char err[512];
    if (redis_policy_refused(&cfg, err, sizeof err)) {
        fprintf(stderr, "tango-consumer: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct consumer c = {.cfg = &cfg};
    pthread_mutex_init(&c.lock, NULL);
    unsigned char rnd[16];
    RAND_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, c.token);
    if (vmms_load(&c, err, sizeof err)) {
        fprintf(stderr, "tango-consumer: %s\n", err);
        curl_global_cleanup();
        config_free(&cfg);
        return 2;
    }
    c.pool = pool_new(&c);
    if (metrics_start(&c)) {
        fprintf(stderr, "tango-consumer: out of memory for the metrics registry\n");
        return 2;
    }
    if (backend_health_start(&c)) {
        fprintf(stderr, "tango-consumer: cannot start the back end health thread\n");
        return 2;
    }
    if (reaper_start(&c)) {
        fprintf(stderr, "tango-consumer: cannot start the reaper thread\n");
        return 2;
    }
    if (disk_guard_start(&c)) {
        fprintf(stderr, "tango-consumer: cannot start the disk guard thread\n");
        return 2;
    }
    if (builder_start(&c)) {
        fprintf(stderr, "tango-consumer: cannot start the image builder threads\n");
        return 2;
    }
    the_consumer = &c;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_info("started", "token=%.8s vmms=%s max_jobs=%d lease_ms=%d", c.token, cfg.vmms,
             cfg.max_jobs, cfg.lease_ms);
    pthread_t t_cb, t_partial, t_upkeep;
    pthread_create(&t_cb, NULL, callback_main, &c);
    pthread_create(&t_partial, NULL, partial_main, &c);
    pthread_create(&t_upkeep, NULL, upkeep_main, &c);

    rc = dispatch_run(&c);

    atomic_store(&c.stopping, true);
    pthread_join(t_cb, NULL);
    pthread_join(t_partial, NULL);
    pthread_join(t_upkeep, NULL);
    builder_stop(&c);
    reaper_stop(&c);
    disk_guard_stop(&c);
    backend_health_stop(&c);
    metrics_stop(&c);
    pool_free(c.pool);
    vmms_unload(&c);
    pthread_mutex_destroy(&c.lock);
    curl_global_cleanup();
    config_free(&cfg);
    log_info("stopped", "exit=%d", rc);
    return rc;
}
