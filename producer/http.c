/*
 * http.c: HTTP/1.1 request framing on libevent bufferevents (see http.h for
 * why). One request at a time per connection; pipelined requests wait in
 * the input buffer until the previous reply is written. A reply made while
 * its request is being handled is written at once (see
 * http_conn_write_now), so a request costs one read and one write, with no
 * epoll changes.
 *
 * This file owns the connection's state machine (head, body, handler,
 * linger), its timers and the request's lifecycle. The protocol itself (the
 * head, the body's framing, their limits) is parsed by http_parse.c; replies
 * are written by http_reply.c; the connection and client caps are counted by
 * http_admit.c (what they share: http_internal.h).
 *
 * Limits (all named in struct http_limits or below): the head and the
 * trailers share max_head_bytes and max_headers; a chunk-size line is at
 * most HTTP_CHUNK_LINE_MAX bytes; one timer per connection is the head deadline
 * while a head is arriving and the body-rate window while a body is; open
 * connections are counted in all and per client address (http_admit.c).
 *
 * Behind a load balancer (limits.trusted_proxies): a connection from a
 * trusted proxy is not counted per address (it carries many clients);
 * instead each of its requests is counted, while it is in progress, under
 * the client its X-Forwarded-For names (proxy.h), with the same cap
 * (max_per_ip; over it: 429 and close). That client is the one logged.
 */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "log.h"

#define DISCARD_LIMIT (1u << 20)   /* body bytes we read and drop for a reply sent early */
#define LINGER_LIMIT (16u << 20)   /* bytes we drain after an early reply before closing */
#define LINGER_TIMEOUT_S 2         /* idle time after which a lingering connection closes */

static void conn_progress(struct http_conn *c);

/* ---------- request lifecycle ---------- */

static struct http_request *req_new(struct http_conn *c)
{
    struct http_request *r = calloc(1, sizeof *r);
    r->conn = c;
    http_msg_init(&r->msg);
    r->body = evbuffer_new();
    return r;
}

static long long mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void req_free(struct http_request *r)
{
    if (!r)
        return;
    http_ip_put(r->conn->srv->clients, r->client_count);
    if (r->mode == BODY_STREAM && !r->msg.body_done && !r->aborted && r->sink && r->sink->on_abort) {
        r->aborted = true;
        r->sink->on_abort(r);
    }
    const struct http_server *srv = r->conn->srv;
    if (r->replied && srv->on_done)
        srv->on_done(r, r->status, r->start_us ? (double)(mono_us() - r->start_us) / 1e6 : 0,
                     srv->h.arg);
    if (r->on_free)
        r->on_free(r, r->on_free_arg);
    http_msg_clear(&r->msg);
    evbuffer_free(r->body);
    free(r);
}

static void conn_free(struct http_conn *c)
{
    req_free(c->req);
    event_free(c->timer);
    bufferevent_free(c->bev);
    LIST_REMOVE(c, link);
    http_ip_put(c->srv->ips, c->ip);
    c->srv->nconns--;
    free(c);
}

/* ---------- accessors ---------- */

const char *http_method(const struct http_request *r) { return r->msg.method; }
const char *http_path(const struct http_request *r) { return r->msg.path; }
const char *http_header(const struct http_request *r, const char *name)
{
    return evhttp_find_header(&r->msg.headers, name);
}
int64_t http_content_length(const struct http_request *r) { return r->msg.content_length; }
bool http_has_body(const struct http_request *r) { return r->msg.chunked || r->msg.content_length > 0; }
void http_set_user(struct http_request *r, void *user) { r->user = user; }
void *http_user(const struct http_request *r) { return r->user; }
struct evbuffer *http_body(struct http_request *r) { return r->body; }
bool http_body_too_large(const struct http_request *r) { return r->too_large; }
bool http_body_failed(const struct http_request *r) { return r->failed; }
size_t http_body_received(const struct http_request *r) { return r->received; }

void http_on_free(struct http_request *r, void (*cb)(struct http_request *, void *), void *arg)
{
    r->on_free = cb;
    r->on_free_arg = arg;
}

void http_take_body_memory(struct http_request *r, size_t limit)
{
    r->mode = BODY_MEMORY;
    r->limit = limit;
}

void http_take_body_stream(struct http_request *r, const struct http_body_sink *sink,
                           size_t limit)
{
    r->mode = BODY_STREAM;
    r->sink = sink;
    r->limit = limit;
}

/* ---------- body ---------- */

/* Hands n bytes from the input to the body's consumer (an http_body_fn
 * for http_parse_body; arg is the request). */
static void deliver(void *arg, struct evbuffer *in, size_t n)
{
    struct http_request *r = arg;
    if (r->too_large || r->failed || r->received + n > r->limit) {
        if (!r->too_large && !r->failed && r->received + n > r->limit) {
            r->too_large = true;
            if (r->mode == BODY_STREAM && r->sink->on_abort && !r->aborted) {
                r->aborted = true;
                r->sink->on_abort(r);
            }
        }
        evbuffer_drain(in, n);
        r->received += n;
        return;
    }
    r->received += n;
    if (r->mode == BODY_MEMORY) {
        evbuffer_remove_buffer(in, r->body, n);
        return;
    }
    if (r->mode == BODY_DISCARD) {
        evbuffer_drain(in, n);
        return;
    }
    struct evbuffer_iovec vec[16];
    size_t left = n;
    while (left > 0 && !r->failed) {
        int nv = evbuffer_peek(in, (ev_ssize_t)left, NULL, vec, 16);
        size_t took = 0;
        for (int i = 0; i < nv && i < 16 && took < left; i++) {
            size_t part = vec[i].iov_len < left - took ? vec[i].iov_len : left - took;
            if (r->sink->on_data(r, vec[i].iov_base, part)) {
                r->failed = true;
                break;
            }
            took += part;
        }
        if (r->failed) {
            evbuffer_drain(in, left);
            return;
        }
        evbuffer_drain(in, took);
        left -= took;
    }
}

/* ---------- connection state machine ---------- */

/* Arms the connection's one timer for mode (TM_OFF, or ms <= 0: disarms). */
static void timer_set(struct http_conn *c, enum timer_mode mode, int ms)
{
    if (mode == TM_OFF || ms <= 0) {
        c->mode = TM_OFF;
        evtimer_del(c->timer);
        return;
    }
    c->mode = mode;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* No more input for this request: its reply (queued or to come) is next. */
static void conn_stop_reading(struct http_conn *c)
{
    c->state = ST_HANDLER;
    bufferevent_disable(c->bev, EV_READ);
}

/* Answers the current request with an error and closes the connection
 * after it (lingering, see conn_advance): for a limit that is hit while the
 * layer itself is waiting for input. */
static void fail_now(struct http_conn *c, int code, const char *msg)
{
    timer_set(c, TM_OFF, 0);
    if (!c->req)
        c->req = req_new(c);
    struct http_request *r = c->req;
    if (!r->replied)
        http_reply_error(r, code, msg);
    r->close_after = true;
    conn_stop_reading(c);
    conn_progress(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct http_conn *c = arg;
    const struct http_limits *lim = &c->srv->lim;
    enum timer_mode mode = c->mode;
    c->mode = TM_OFF;
    if (mode == TM_HEAD && c->state == ST_HEAD) {
        log_info("http_head_timeout", "deadline_ms=%d head_bytes=%zu peer=%s",
                 lim->head_timeout_ms,
                 (c->req ? c->req->msg.head_bytes : 0) +
                     evbuffer_get_length(bufferevent_get_input(c->bev)),
                 c->peer_text);
        fail_now(c, 408, "Request head not complete in time");
        return;
    }
    if (mode == TM_BODY && c->state == ST_BODY && c->req && !c->req->msg.body_done) {
        struct http_request *r = c->req;
        uint64_t need = (uint64_t)lim->min_body_bps * (uint64_t)lim->body_window_ms / 1000;
        if (r->received - c->window_start >= need) {
            c->window_start = r->received;
            timer_set(c, TM_BODY, lim->body_window_ms);
            return;
        }
        log_info("http_body_too_slow",
                 "received=%zu window_bytes=%zu window_ms=%d min_bps=%d client=%s peer=%s",
                 r->received, r->received - c->window_start, lim->body_window_ms,
                 lim->min_body_bps, r->client, c->peer_text);
        fail_now(c, 408, "Request body too slow");
    }
}

static void start_linger(struct http_conn *c)
{
    int fd = bufferevent_getfd(c->bev);
    shutdown(fd, SHUT_WR);
    c->state = ST_LINGER;
    c->lingered = 0;
    struct timeval tv = {LINGER_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->bev, &tv, NULL);
    bufferevent_enable(c->bev, EV_READ);
}

static void call_handler(struct http_conn *c)
{
    struct http_request *r = c->req;
    if (r->handled || r->replied)
        return;
    r->handled = true;
    c->srv->h.on_request(r, c->srv->h.arg);
}

/* What one step of conn_advance leaves: go on with the connection's next
 * state, wait (for input, a reply, or the reply's write), or the
 * connection is gone. */
enum step { STEP_GO, STEP_WAIT, STEP_FREED };

/* ST_LINGER: input after an early reply is read and dropped, up to
 * LINGER_LIMIT bytes, until the client closes (or the idle timeout). */
static enum step step_linger(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    c->lingered += evbuffer_get_length(in);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (c->lingered <= LINGER_LIMIT)
        return STEP_WAIT;
    conn_free(c);
    return STEP_FREED;
}

/* After on_head: a body announced larger than the handler takes is
 * answered at once, unread (413 unless the handler answers). */
static enum step head_too_large(struct http_conn *c, struct http_request *r)
{
    r->too_large = true;
    conn_stop_reading(c);
    call_handler(c);
    if (!r->replied)
        http_reply_error(r, 413, "Request body too large");
    return STEP_GO;
}

/* After on_head: "Expect: 100-continue" answered, then on to the body
 * (with the body-rate window armed). */
static enum step head_to_body(struct http_conn *c, struct http_request *r)
{
    const char *expect = evhttp_find_header(&r->msg.headers, "Expect");
    bool expects_100 = !r->msg.body_done && expect && strcasecmp(expect, "100-continue") == 0;
    if (expects_100 && r->replied) {
        /* Answered before "100 Continue": the client will not send
         * the body, so do not wait for it; close after the reply. */
        conn_stop_reading(c);
        return STEP_GO;
    }
    if (expects_100) {
        evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
        http_conn_write_now(c);
    }
    c->state = ST_BODY;
    if (!r->msg.body_done && c->srv->lim.min_body_bps > 0) {
        c->window_start = r->received;
        timer_set(c, TM_BODY, c->srv->lim.body_window_ms);
    }
    return STEP_GO;
}

/* A complete head: the client's admission, on_head, and how the body is
 * taken (an early answer goes out before any body is read). */
static enum step head_dispatch(struct http_conn *c, struct http_request *r)
{
    if (http_client_admit(c, r))
        c->srv->h.on_head(r, c->srv->h.arg);
    else
        http_reply_error(r, 429, "Too many requests from this client");
    if (r->replied)
        http_conn_write_now(c);
    if (r->replied && r->mode == BODY_DISCARD &&
        (r->msg.content_length > (int64_t)DISCARD_LIMIT || r->msg.chunked))
        r->close_after = true;
    if (r->mode == BODY_DISCARD)
        r->limit = DISCARD_LIMIT;
    if (!r->msg.body_done && r->msg.content_length > (int64_t)r->limit)
        return head_too_large(c, r);
    return head_to_body(c, r);
}

/* ST_HEAD: the head as far as it has arrived, under the head deadline. */
static enum step step_head(struct http_conn *c)
{
    struct http_request *r = c->req ? c->req : (c->req = req_new(c));
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (!r->start_us && evbuffer_get_length(in) > 0)
        r->start_us = mono_us();
    /* The head deadline runs from accept, or from a later request's first byte. */
    if (c->mode != TM_HEAD && evbuffer_get_length(in) > 0)
        timer_set(c, TM_HEAD, c->srv->lim.head_timeout_ms);
    struct http_parse_error err;
    int rc = http_parse_head(&r->msg, in, &c->srv->plim, &err);
    if (rc == 0)
        return STEP_WAIT;
    timer_set(c, TM_OFF, 0);
    if (rc > 0)
        return head_dispatch(c, r);
    /* The error reply is queued. The body stays "not done" so the
     * connection lingers after it: closing with unread input would
     * send a reset that can destroy the reply on its way. */
    http_reply_error(r, err.status, err.msg);
    conn_stop_reading(c);
    return STEP_GO;
}

/* ST_BODY: the body as far as it has arrived; on_request once it is taken,
 * or at once when it is refused (framing, limit, or the handler). */
static enum step step_body(struct http_conn *c)
{
    struct http_request *r = c->req;
    if (!r->msg.body_done) {
        int rc = http_parse_body(&r->msg, bufferevent_get_input(c->bev), &c->srv->plim, deliver,
                                 r);
        if (rc == 0 && !r->too_large && !r->failed)
            return STEP_WAIT;
        timer_set(c, TM_OFF, 0);
        if (rc < 0) {
            /* Not marked done: the body's consumer aborts and the
             * connection lingers after the reply (see step_head). */
            conn_stop_reading(c);
            if (!r->replied && rc == HTTP_BODY_TRAILERS_TOO_LARGE)
                http_reply_error(r, 431, "Chunked trailers too large");
            else if (!r->replied)
                http_reply_error(r, 400, "Malformed chunked body");
            r->close_after = true;
            return STEP_GO;
        }
        if (rc == 0) {
            /* Over the limit or refused mid-body: answer now, then close. */
            conn_stop_reading(c);
            call_handler(c);
            r->close_after = true;
            return STEP_GO;
        }
    }
    c->state = ST_HANDLER;
    call_handler(c);
    return c->req == r ? STEP_GO : STEP_WAIT; /* cannot differ: the handler never frees */
}

/* ST_HANDLER: once the reply is out, the request is freed and the
 * connection reads the next one, lingers, or closes. */
static enum step step_handler(struct http_conn *c)
{
    struct http_request *r = c->req;
    if (r->replied)
        http_conn_write_now(c);
    if (!r->replied || evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
        /* An async handler, or a reply still on its way: no more
         * input until it is out; the write callback brings us back. */
        bufferevent_disable(c->bev, EV_READ);
        return STEP_WAIT;
    }
    bool close_after = r->close_after, body_done = r->msg.body_done;
    req_free(r);
    c->req = NULL;
    if (close_after && body_done) {
        conn_free(c);
        return STEP_FREED;
    }
    if (close_after) {
        start_linger(c);
        return STEP_WAIT;
    }
    c->state = ST_HEAD;
    bufferevent_enable(c->bev, EV_READ); /* no-op unless it was paused */
    return evbuffer_get_length(bufferevent_get_input(c->bev)) == 0 ? STEP_WAIT : STEP_GO;
}

/* Moves the connection forward as far as input and replies allow, one
 * state's step at a time. Returns true if the connection was freed. */
static bool conn_advance(struct http_conn *c)
{
    for (;;) {
        enum step s;
        switch (c->state) {
        case ST_LINGER: s = step_linger(c); break;
        case ST_HEAD: s = step_head(c); break;
        case ST_BODY: s = step_body(c); break;
        default: s = step_handler(c); break;
        }
        if (s != STEP_GO)
            return s == STEP_FREED;
    }
}

/* Replies made while this runs are written by it (see reply_queued). */
static void conn_progress(struct http_conn *c)
{
    c->busy = true;
    if (!conn_advance(c))
        c->busy = false;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_progress(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE); /* replies are written at once again */
    if (c->state == ST_HANDLER)
        conn_progress(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct http_conn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (c->state != ST_LINGER && c->req && c->req->msg.uri && !c->req->msg.body_done)
            log_info("http_client_gone", "path_len=%zu received=%zu timeout=%d client=%s peer=%s",
                     strlen(c->req->msg.path ? c->req->msg.path : ""), c->req->received,
                     (what & BEV_EVENT_TIMEOUT) != 0,
                     c->req->client[0] ? c->req->client : c->peer_text, c->peer_text);
        conn_free(c);
    }
}

int http_server_adopt(struct http_server *srv, int fd, const struct sockaddr *peer,
                      socklen_t peerlen)
{
    (void)peerlen;
    unsigned char addr[NETADDR_LEN] = {0};
    bool has_peer = netaddr_from_sockaddr(peer, addr) == 0;
    char text[NETADDR_TEXT_MAX] = "-";
    if (has_peer)
        netaddr_format(addr, text);
    bool via_proxy;
    struct ip_count *ip;
    if (!http_peer_admit(srv, has_peer, addr, text, &via_proxy, &ip)) {
        evutil_closesocket(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    struct http_conn *c = calloc(1, sizeof *c);
    c->srv = srv;
    c->ip = ip;
    c->has_peer = has_peer;
    c->via_proxy = via_proxy;
    memcpy(c->peer, addr, NETADDR_LEN);
    memcpy(c->peer_text, text, sizeof text);
    c->timer = evtimer_new(srv->base, on_timer, c);
    c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_set_max_single_read(c->bev, 256 * 1024);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    struct timeval tv = {srv->lim.timeout_s, 0};
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    /* EV_WRITE (on by default) only while a reply waits: see http_conn_write_now */
    bufferevent_disable(c->bev, EV_WRITE);
    bufferevent_enable(c->bev, EV_READ);
    LIST_INSERT_HEAD(&srv->conns, c, link);
    srv->nconns++;
    timer_set(c, TM_HEAD, srv->lim.head_timeout_ms);
    return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l;
    http_server_adopt(arg, fd, sa, (socklen_t)salen);
}

struct http_server *http_server_new(struct event_base *base, const struct http_limits *lim,
                                    const struct http_handlers *h)
{
    struct http_server *srv = calloc(1, sizeof *srv);
    srv->base = base;
    srv->lim = *lim;
    srv->plim = (struct http_parse_limits){lim->max_head_bytes, lim->max_headers};
    srv->h = *h;
    LIST_INIT(&srv->conns);
    return srv;
}

int http_server_listen(struct http_server *srv, const char *addr, int port)
{
    struct sockaddr_in6 sa6 = {0};
    struct sockaddr_in sa4 = {0};
    struct sockaddr *sa;
    int salen;
    if (inet_pton(AF_INET, addr, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&sa4;
        salen = sizeof sa4;
    } else if (inet_pton(AF_INET6, addr, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&sa6;
        salen = sizeof sa6;
    } else {
        return -1;
    }
    srv->listener = evconnlistener_new_bind(
        srv->base, on_accept, srv, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024, sa, salen);
    if (!srv->listener)
        return -1;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound, &blen);
    return bound.ss_family == AF_INET ? ntohs(((struct sockaddr_in *)&bound)->sin_port)
                                      : ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
}

void http_server_free(struct http_server *srv)
{
    if (!srv)
        return;
    if (srv->listener)
        evconnlistener_free(srv->listener);
    while (!LIST_EMPTY(&srv->conns))
        conn_free(LIST_FIRST(&srv->conns));
    http_ip_table_free(srv->ips);
    http_ip_table_free(srv->clients);
    free(srv);
}

void http_server_on_done(struct http_server *srv,
                         void (*cb)(struct http_request *req, int status, double seconds,
                                    void *arg))
{
    srv->on_done = cb;
}

int http_server_connections(const struct http_server *srv)
{
    return srv->nconns;
}
