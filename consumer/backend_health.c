/*
 * backend_health.c: whether this consumer's VMMS back end can be reached.
 * It owns the up/down state, the decision that a failed VMMS step was the
 * back end's outage rather than the job's failure, and the probe thread
 * that, while the back end is down, asks it (the ping op) with exponential
 * backoff (BACKOFF_MIN_MS doubling to BACKOFF_MAX_MS) and marks it up again
 * when it answers. While down: the dispatcher leases nothing
 * (backend_is_down), the record backend:down:<vmms> in Redis says since
 * when and why (for /health and tangoctl status; it expires on its own if
 * this consumer dies), the heartbeat carries the same, and the gauge
 * tango_backend_up is 0. A back end without a ping op is given the
 * backoff's delay and then tried again with jobs.
 * Every transition is logged once (backend_down, backend_up).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_health.h"
#include "clock.h"
#include "log.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000
#define PING_TIMEOUT_MS 2000
#define RECORD_TTL_MS (4 * BACKOFF_MAX_MS) /* outlives a few probes, not the consumer */
#define STOP_CHECK_MS 200
#define NO_PROBE 1 /* probe(): the back end has no ping op (not a vmms_status) */

struct backend_health {
    pthread_mutex_t lock;  /* guards what follows */
    pthread_cond_t cond;   /* signalled on a transition and at stop */
    bool down;
    bool stop;
    long long since_ms;    /* wall clock ms when it went down */
    char reason[256];
    long long up_at;       /* monotonic ms it was last marked up */
    int last_delay;        /* the last outage's last probe delay */
    pthread_t thread;
};

bool backend_is_down(struct consumer *c)
{
    return atomic_load(&c->backend_down);
}

/* Asks the back end now; VMMS_OK, VMMS_UNAVAILABLE (with why), or NO_PROBE
 * when it has no ping op. */
static int probe(struct consumer *c, char *why, size_t len)
{
    if (!c->ops->ping)
        return NO_PROBE;
    why[0] = '\0';
    int st = c->ops->ping(c->vctx, PING_TIMEOUT_MS, why, len);
    return st == VMMS_OK ? VMMS_OK : VMMS_UNAVAILABLE;
}

/* Marks the back end down (once per outage) and wakes the probe thread. */
static void mark_down(struct consumer *c, const char *why)
{
    struct backend_health *b = c->health;
    pthread_mutex_lock(&b->lock);
    bool was = b->down;
    if (!was) {
        b->down = true;
        b->since_ms = clock_wall_ms();
        snprintf(b->reason, sizeof b->reason, "%s", why);
        atomic_store(&c->backend_down, true);
        pthread_cond_signal(&b->cond);
    }
    pthread_mutex_unlock(&b->lock);
    if (!was) {
        log_error("backend_down", "vmms=%s reason=\"%s\" leasing=paused", c->cfg->vmms, why);
        metrics_backend_up(c, false);
    }
}

bool backend_unavailable(struct consumer *c, int status, const char *err)
{
    if (!c->health || status == VMMS_OK)
        return false;
    char why[256];
    int ping = probe(c, why, sizeof why);
    /* The probe decides when there is one: a 5xx for one job's request
     * from a daemon that answers its ping is that job's failure. */
    if (ping == VMMS_OK || (ping == NO_PROBE && status != VMMS_UNAVAILABLE))
        return false;
    mark_down(c, ping == NO_PROBE ? (err ? err : "unavailable") : why);
    return true;
}

/* Publishes (or, info NULL, withdraws) the outage record; logs a failure
 * to do so only on the first of a run of them. */
static void publish(struct consumer *c, struct store *st, const json_t *info, bool *warned)
{
    if (st && store_set_backend_down(st, c->cfg->vmms, info, RECORD_TTL_MS) == STORE_OK) {
        *warned = false;
    } else if (!*warned) {
        *warned = true;
        log_warn("backend_record_failed", "vmms=%s error=\"%s\"", c->cfg->vmms,
                 st ? store_error(st) : "no store");
    }
}

/* The outage as published: vmms, since (unix s), reason, consumer. */
static json_t *outage_info(struct consumer *c)
{
    struct backend_health *b = c->health;
    pthread_mutex_lock(&b->lock);
    json_t *o = json_pack("{s:s, s:f, s:s, s:s}", "vmms", c->cfg->vmms, "since",
                          (double)b->since_ms / 1000.0, "reason", b->reason, "consumer",
                          c->token);
    pthread_mutex_unlock(&b->lock);
    return o;
}

/* Waits until stop, or ms passed; true if stopping. Caller holds b->lock. */
static bool nap(struct backend_health *b, long long ms)
{
    struct timespec ts = clock_after_ms(CLOCK_REALTIME, (long)ms);
    if (!b->stop)
        pthread_cond_timedwait(&b->cond, &b->lock, &ts);
    return b->stop;
}

/* The first wait of an outage: BACKOFF_MIN_MS, but for a back end that
 * cannot be probed and went down again within a minute of coming back,
 * twice the last one (so an outage it cannot see goes on backing off). */
static int first_delay(struct consumer *c)
{
    struct backend_health *b = c->health;
    bool again = !c->ops->ping && b->last_delay && clock_mono_ms() - b->up_at < 60000;
    if (!again)
        return BACKOFF_MIN_MS;
    return b->last_delay * 2 < BACKOFF_MAX_MS ? b->last_delay * 2 : BACKOFF_MAX_MS;
}

/* One outage, from its start until the back end answers (or stop):
 * publish, probe with backoff, then mark it up. */
static void ride_out(struct consumer *c, struct store *st)
{
    struct backend_health *b = c->health;
    bool warned = false;
    long long t0 = clock_mono_ms();
    char why[256] = "";
    for (int delay = first_delay(c);; delay = delay * 2 < BACKOFF_MAX_MS ? delay * 2
                                                                        : BACKOFF_MAX_MS) {
        b->last_delay = delay; /* this thread's own */
        json_t *info = outage_info(c);
        publish(c, st, info, &warned);
        json_decref(info);
        pthread_mutex_lock(&b->lock);
        bool stop = nap(b, delay);
        pthread_mutex_unlock(&b->lock);
        if (stop)
            return;
        int ping = probe(c, why, sizeof why);
        if (ping != VMMS_UNAVAILABLE)
            break; /* answered, or nothing to ask: try jobs again */
    }
    pthread_mutex_lock(&b->lock);
    b->down = false;
    b->up_at = clock_mono_ms();
    atomic_store(&c->backend_down, false);
    pthread_mutex_unlock(&b->lock);
    publish(c, st, NULL, &warned);
    metrics_backend_up(c, true);
    log_info("backend_up", "vmms=%s down_ms=%lld probed=%s leasing=resumed", c->cfg->vmms,
             clock_mono_ms() - t0, c->ops->ping ? "yes" : "no");
}

static void *health_main(void *arg)
{
    struct consumer *c = arg;
    struct backend_health *b = c->health;
    struct store *st = store_new(c->cfg);
    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        if (!b->down) {
            nap(b, STOP_CHECK_MS);
            continue;
        }
        pthread_mutex_unlock(&b->lock);
        ride_out(c, st);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    store_free(st);
    return NULL;
}

int backend_health_start(struct consumer *c)
{
    struct backend_health *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    c->health = b;
    metrics_backend_up(c, true);
    if (pthread_create(&b->thread, NULL, health_main, c) != 0) {
        c->health = NULL;
        free(b);
        return -1;
    }
    return 0;
}

void backend_health_stop(struct consumer *c)
{
    struct backend_health *b = c->health;
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    c->health = NULL;
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}

void backend_health_info(struct consumer *c, json_t *info)
{
    if (!c->health)
        return;
    bool down = backend_is_down(c);
    json_t *o = down ? outage_info(c) : json_pack("{s:s}", "vmms", c->cfg->vmms);
    json_object_set_new(o, "up", json_boolean(!down));
    json_object_set_new(info, "backend", o);
}
