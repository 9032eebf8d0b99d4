/*
 * metrics_http.c: the consumer's Prometheus metrics. It owns the
 * consumer's registry and families (jobs running per image, leader state
 * and acquisitions, adopted jobs, job phase durations and end-to-end
 * latency, VMMS errors by operation, worker host health, the callback
 * sender's in-flight count and open breakers, free disk space, whether the
 * back end can be reached) and the small
 * listener that serves them: GET /metrics on metrics_bind:metrics_port,
 * libevent's evhttp on its own thread and event_base (no request bodies,
 * so evhttp's buffering of them does not matter: bodies are capped at 0
 * bytes). Everything but GET /metrics answers 404. Limits: request heads
 * of at most 8 KiB, a 10 s timeout per connection, at most 64 connections
 * served at once (beyond: 503 and close).
 *
 * The recording calls are thread-safe (metrics.h) and work whether or not
 * the listener runs (metrics_port 0 turns only the listener off). A
 * listener that cannot start (its port taken by a second consumer on the
 * host, a bad metrics_bind) is logged once and the consumer grades without
 * it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "consumer.h"
#include "log.h"
#include "metrics.h"
#include "store_metrics.h"

#define MAX_HEAD_BYTES 8192
#define CONN_TIMEOUT_S 10
#define MAX_CONNS 64
#define STOP_CHECK_MS 200

struct consumer_metrics {
    struct consumer *c;
    struct metrics *reg;
    char instance[320];
    struct metric *leader, *draining, *leader_acquired, *leader_lost, *adopted, *held, *running,
        *phase, *latency, *vmms_errors, *host_up, *host_jobs, *redis_errors, *cb_in_flight,
        *cb_hosts_open, *disk_free, *disk_floor, *backend_up;
    /* the listener (its thread only) */
    struct event_base *base;
    struct evhttp *http;
    struct event *tick;
    pthread_t thread;
    bool thread_started;
    struct evhttp_connection *conns[MAX_CONNS];
    int nconns;
};

static const char *const L_INSTANCE[] = {"instance", NULL};

static void make_families(struct consumer_metrics *m)
{
    struct metrics *r = m->reg;
    m->leader = metrics_gauge(r, "tango_consumer_leader",
                              "Whether this consumer holds the leader lease", L_INSTANCE);
    m->draining = metrics_gauge(r, "tango_consumer_draining",
                                "Whether this consumer is draining (SIGTERM)", L_INSTANCE);
    m->leader_acquired = metrics_counter(r, "tango_leader_acquired_total",
                                         "Times this consumer became the leader", L_INSTANCE);
    m->leader_lost = metrics_counter(r, "tango_leader_lost_total",
                                     "Times this consumer lost the leader lease (not released)",
                                     L_INSTANCE);
    m->adopted = metrics_counter(r, "tango_jobs_adopted_total",
                                 "Jobs taken over from a lapsed lease (a takeover), by mode",
                                 (const char *const[]){"instance", "mode", NULL});
    m->held = metrics_gauge(r, "tango_consumer_jobs_held",
                            "Jobs this consumer holds (leased, waiting for a slot or running)",
                            L_INSTANCE);
    m->running = metrics_gauge(r, "tango_jobs_running", "Jobs running on this consumer, by image",
                               (const char *const[]){"instance", "image", NULL});
    m->phase = metrics_histogram(
        r, "tango_job_phase_duration_seconds",
        "Duration of a job's steps: waitvm (instance made and ready), copyin, run, copyout",
        (const char *const[]){"instance", "phase", NULL}, metrics_latency_buckets,
        metrics_latency_nbuckets);
    m->latency = metrics_histogram(r, "tango_job_latency_seconds",
                                   "Seconds from addJob until the job ended (end-to-end)",
                                   L_INSTANCE, metrics_latency_buckets, metrics_latency_nbuckets);
    m->vmms_errors = metrics_counter(r, "tango_vmms_errors_total",
                                     "VMMS operations that failed, by operation and status",
                                     (const char *const[]){"instance", "op", "status", NULL});
    m->host_up = metrics_gauge(r, "tango_worker_host_up",
                               "Whether a worker host is up (distDocker)",
                               (const char *const[]){"instance", "host", NULL});
    m->host_jobs = metrics_gauge(r, "tango_worker_host_jobs",
                                 "Instances holding a job slot on a worker host (distDocker)",
                                 (const char *const[]){"instance", "host", NULL});
    m->redis_errors = metrics_counter(r, "tango_redis_errors_total", STORE_ERRORS_HELP, L_INSTANCE);
    m->cb_in_flight = metrics_gauge(r, "tango_callbacks_in_flight",
                                    "Callbacks this consumer is sending now", L_INSTANCE);
    m->cb_hosts_open = metrics_gauge(r, "tango_callback_hosts_open",
                                     "Callback hosts whose circuit breaker is open (their "
                                     "callbacks wait)", L_INSTANCE);
    m->disk_free = metrics_gauge(r, "tango_disk_free_bytes",
                                 "Free bytes of a disk the consumer writes jobs' files to "
                                 "(courselabs, the back end's data directory)",
                                 (const char *const[]){"instance", "path", NULL});
    m->disk_floor = metrics_gauge(r, "tango_disk_min_free_bytes",
                                  "min_free_mb in bytes: below it on any watched disk, "
                                  "leasing pauses", L_INSTANCE);
    m->backend_up = metrics_gauge(r, "tango_backend_up",
                                  "Whether this consumer can reach its VMMS back end (0: an "
                                  "outage; leasing paused until its health probe passes)",
                                  (const char *const[]){"instance", "backend", NULL});
    const char *inst[] = {m->instance};
    metric_add(m->leader_acquired, inst, 0);
    metric_add(m->leader_lost, inst, 0);
}

/* ---------- recording ---------- */

static const char *status_name(int st)
{
    switch (st) {
    case VMMS_TIMEOUT: return "timeout";
    case VMMS_NOT_FOUND: return "not_found";
    case VMMS_BUSY: return "busy";
    case VMMS_UNAVAILABLE: return "unavailable";
    default: return "error";
    }
}

void metrics_vmms_error(struct consumer *c, const char *op, int status)
{
    if (c->metrics && status != VMMS_OK)
        metric_add(c->metrics->vmms_errors,
                   (const char *const[]){c->metrics->instance, op, status_name(status)}, 1);
}

void metrics_backend_up(struct consumer *c, bool up)
{
    if (c->metrics)
        metric_set(c->metrics->backend_up,
                   (const char *const[]){c->metrics->instance, c->cfg->vmms}, up ? 1 : 0);
}

void metrics_job_phase(struct consumer *c, const char *phase, double seconds)
{
    if (c->metrics && seconds >= 0)
        metric_observe(c->metrics->phase, (const char *const[]){c->metrics->instance, phase},
                       seconds);
}

void metrics_job_latency(struct consumer *c, double seconds)
{
    if (c->metrics && seconds >= 0)
        metric_observe(c->metrics->latency, (const char *const[]){c->metrics->instance}, seconds);
}

void metrics_leader_change(struct consumer *c, bool acquired)
{
    if (c->metrics)
        metric_add(acquired ? c->metrics->leader_acquired : c->metrics->leader_lost,
                   (const char *const[]){c->metrics->instance}, 1);
}

void metrics_disk_free(struct consumer *c, const char *path, double bytes)
{
    if (c->metrics)
        metric_set(c->metrics->disk_free, (const char *const[]){c->metrics->instance, path},
                   bytes);
}

void metrics_disk_floor(struct consumer *c, double bytes)
{
    if (c->metrics)
        metric_set(c->metrics->disk_floor, (const char *const[]){c->metrics->instance}, bytes);
}

void metrics_job_adopted(struct consumer *c, enum held_mode mode)
{
    if (c->metrics && mode != HELD_RUN)
        metric_add(c->metrics->adopted,
                   (const char *const[]){c->metrics->instance,
                                         mode == HELD_REATTACH ? "reattach" : "complete"},
                   1);
}

void metrics_callbacks(struct consumer *c, int in_flight, int hosts_open)
{
    if (!c->metrics)
        return;
    const char *inst[] = {c->metrics->instance};
    metric_set(c->metrics->cb_in_flight, inst, in_flight);
    metric_set(c->metrics->cb_hosts_open, inst, hosts_open);
}

/* ---------- scrape ---------- */

static void host_cb(const char *host, bool up, int jobs, void *arg)
{
    struct consumer_metrics *m = arg;
    const char *v[] = {m->instance, host};
    metric_set(m->host_up, v, up ? 1 : 0);
    metric_set(m->host_jobs, v, jobs);
}

struct running_count {
    struct consumer_metrics *m;
    int held;
};

/* held_fn: counts h, and adds it to the running gauge if its run is going. */
static bool count_running(struct consumer *c, struct held_job *h, void *arg)
{
    (void)c;
    struct running_count *rc = arg;
    rc->held++;
    if (h->started && !atomic_load(&h->slot_free) && !atomic_load(&h->finished))
        metric_add(rc->m->running, (const char *const[]){rc->m->instance, h->image}, 1);
    return true;
}

/* Recomputes the gauges that describe this process now. */
static void refresh(struct consumer_metrics *m)
{
    struct consumer *c = m->c;
    const char *inst[] = {m->instance};
    metric_set(m->leader, inst, atomic_load(&c->leader) ? 1 : 0);
    metric_set(m->draining, inst, atomic_load(&c->draining) ? 1 : 0);
    metric_set(m->redis_errors, inst, (double)store_unavailable_count());
    metric_clear(m->running);
    struct running_count rc = {m, 0};
    held_each(c, count_running, &rc);
    metric_set(m->held, inst, rc.held);
    if (c->ops->get_hosts) {
        metric_clear(m->host_up);
        metric_clear(m->host_jobs);
        c->ops->get_hosts(c->vctx, host_cb, m);
    }
}

static void conn_closed(struct evhttp_connection *conn, void *arg)
{
    struct consumer_metrics *m = arg;
    for (int i = 0; i < m->nconns; i++)
        if (m->conns[i] == conn) {
            m->conns[i] = m->conns[--m->nconns];
            return;
        }
}

/* Whether conn may be served (counted against MAX_CONNS). */
static bool conn_admit(struct consumer_metrics *m, struct evhttp_connection *conn)
{
    for (int i = 0; i < m->nconns; i++)
        if (m->conns[i] == conn)
            return true;
    if (m->nconns == MAX_CONNS)
        return false;
    m->conns[m->nconns++] = conn;
    evhttp_connection_set_closecb(conn, conn_closed, m);
    return true;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct consumer_metrics *m = arg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (!conn_admit(m, evhttp_request_get_connection(req))) {
        evhttp_add_header(out, "Connection", "close");
        evhttp_send_error(req, 503, "Too many connections");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET || !path ||
        strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, 404, "Not Found");
        return;
    }
    refresh(m);
    size_t len = 0;
    char *text = metrics_render_text(m->reg, NULL, NULL, &len);
    if (!text) {
        evhttp_send_error(req, 500, "Internal Server Error");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, len);
    free(text);
    evhttp_add_header(out, "Content-Type", METRICS_CONTENT_TYPE);
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct consumer_metrics *m = arg;
    if (atomic_load(&m->c->stopping))
        event_base_loopexit(m->base, NULL);
}

static void *listener_main(void *arg)
{
    struct consumer_metrics *m = arg;
    event_base_dispatch(m->base);
    return NULL;
}

/* Frees what listener_open made so far (the thread never started). */
static void listener_discard(struct consumer_metrics *m)
{
    if (m->tick)
        event_free(m->tick);
    if (m->http)
        evhttp_free(m->http);
    if (m->base)
        event_base_free(m->base);
    m->tick = NULL;
    m->http = NULL;
    m->base = NULL;
}

/* Binds metrics_bind:metrics_port and starts the listener's thread; 0, or
 * -1 with *why saying what failed (errno kept for a bind). */
static int listener_open(struct consumer_metrics *m, const char **why)
{
    const struct tango_config *cfg = m->c->cfg;
    m->base = event_base_new();
    m->http = m->base ? evhttp_new(m->base) : NULL;
    if (!m->http) {
        *why = "cannot make the event base";
        return -1;
    }
    evhttp_set_max_headers_size(m->http, MAX_HEAD_BYTES);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_timeout(m->http, CONN_TIMEOUT_S);
    evhttp_set_gencb(m->http, on_request, m);
    errno = 0;
    if (!evhttp_bind_socket_with_handle(m->http, cfg->metrics_bind,
                                        (ev_uint16_t)cfg->metrics_port)) {
        *why = errno == EADDRINUSE ? "the port is taken (another consumer on this host?)"
                                   : errno ? strerror(errno) : "cannot bind";
        return -1;
    }
    m->tick = event_new(m->base, -1, EV_PERSIST, on_tick, m);
    struct timeval tv = {0, STOP_CHECK_MS * 1000};
    event_add(m->tick, &tv);
    if (pthread_create(&m->thread, NULL, listener_main, m) != 0) {
        *why = "cannot start its thread";
        return -1;
    }
    m->thread_started = true;
    return 0;
}

int metrics_start(struct consumer *c)
{
    struct consumer_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    m->c = c;
    m->reg = metrics_new();
    metrics_instance_label(m->instance, sizeof m->instance, c->cfg->metrics_port);
    make_families(m);
    c->metrics = m;
    if (c->cfg->metrics_port == 0)
        return 0;
    const char *why = "";
    if (listener_open(m, &why) != 0) {
        /* Metrics are no reason to stop grading: say so once and go on. */
        char q[160];
        log_error("metrics_listen_failed", "bind=%s port=%d reason=%s note=\"running without "
                  "the /metrics listener; give this consumer its own metrics_port "
                  "(TANGO_METRICS_PORT)\"", c->cfg->metrics_bind, c->cfg->metrics_port,
                  log_quote(why, q, sizeof q));
        listener_discard(m);
        return 0;
    }
    log_info("metrics_listening", "bind=%s port=%d", c->cfg->metrics_bind, c->cfg->metrics_port);
    return 0;
}

void metrics_stop(struct consumer *c)
{
    struct consumer_metrics *m = c->metrics;
    if (!m)
        return;
    if (m->thread_started)
        pthread_join(m->thread, NULL); /* ends within STOP_CHECK_MS of c->stopping */
    listener_discard(m);
    c->metrics = NULL;
    metrics_free(m->reg);
    free(m);
}
