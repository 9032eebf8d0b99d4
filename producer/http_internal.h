/*
 * http_internal.h: what the parts of the HTTP server layer share: the
 * server, connection and request structs, and the calls between
 * http.c (the connection's state machine and the request's lifecycle),
 * http_reply.c (writing replies) and http_admit.c (connection and client
 * counts: the per-address caps). Nothing outside producer/http*.c
 * includes it.
 */
#ifndef TANGO_HTTP_INTERNAL_H
#define TANGO_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <event2/bufferevent.h>

#include "http.h"
#include "http_parse.h"
#include "netset.h"

#define IP_BUCKETS 256             /* hash buckets of the per-address connection counts */

enum conn_state { ST_HEAD, ST_BODY, ST_HANDLER, ST_LINGER };
enum body_mode { BODY_DISCARD, BODY_MEMORY, BODY_STREAM };
enum timer_mode { TM_OFF, TM_HEAD, TM_BODY };

/* Open connections (or, for forwarded clients, requests in progress) from
 * one client address. */
struct ip_count {
    unsigned char addr[NETADDR_LEN]; /* IPv4 as IPv4-mapped IPv6 */
    unsigned bucket;                 /* its index in its table */
    int n;
    struct ip_count *next;
};

struct http_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct http_limits lim;
    struct http_parse_limits plim; /* the parser's share of lim */
    struct http_handlers h;
    int nconns;
    LIST_HEAD(, http_conn) conns; /* open connections, closed by http_server_free */
    void (*on_done)(struct http_request *, int, double, void *); /* http_server_on_done */
    struct ip_count *ips[IP_BUCKETS];     /* connections per peer address */
    struct ip_count *clients[IP_BUCKETS]; /* requests in progress per forwarded client */
};

struct http_conn;

struct http_request {
    struct http_conn *conn;
    struct http_msg msg;    /* the head and the body's framing, as parsed so far */
    enum body_mode mode;
    size_t limit;
    size_t received;
    bool too_large;
    bool failed;
    bool aborted;
    struct evbuffer *body;
    const struct http_body_sink *sink;
    void *user;
    bool handled;           /* on_request called */
    bool replied;
    bool close_after;
    int status;             /* the reply's status code, once replied */
    long long start_us;     /* monotonic, at the request's first byte (0: none seen) */
    char client[NETADDR_TEXT_MAX];    /* who sent it: the peer, or the forwarded client */
    struct ip_count *client_count;    /* via a trusted proxy: its count in clients[] */
    void (*on_free)(struct http_request *, void *);
    void *on_free_arg;
};

struct http_conn {
    struct http_server *srv;
    struct bufferevent *bev;
    enum conn_state state;
    struct http_request *req;
    size_t lingered;
    bool busy;              /* inside conn_progress: a reply is written there */
    struct ip_count *ip;    /* this connection's address count; NULL if not counted */
    bool has_peer;          /* peer is an IP address */
    bool via_proxy;         /* peer is a trusted proxy: X-Forwarded-For is read */
    unsigned char peer[NETADDR_LEN];
    char peer_text[NETADDR_TEXT_MAX]; /* "-" when not an IP peer */
    struct event *timer;    /* head deadline or body-rate window (mode) */
    enum timer_mode mode;
    size_t window_start;    /* body bytes received when the current window began */
    LIST_ENTRY(http_conn) link;
};

/* ---------- http_reply.c ---------- */

/* Answers r with a JSON error body {"statusId": -1, "statusMsg": msg} (msg
 * is our own text: it is not escaped) and marks the connection to close
 * after the reply; if r was already answered, only the latter. */
void http_reply_error(struct http_request *r, int code, const char *msg);
/* Writes c's queued output now, as far as the socket takes it; what is
 * left waits for the bufferevent's write callback (EV_WRITE enabled). */
void http_conn_write_now(struct http_conn *c);

/* ---------- http_admit.c ---------- */

/* Whether srv takes a new connection from the peer addr (text: its printed
 * form; has_peer false: not an IP peer, never counted per address). Counts
 * it (*ip: its address count, NULL when not counted) and sets *via_proxy
 * (the peer is a trusted proxy); false (logged) when max_connections or
 * max_per_ip is reached: the caller closes the socket. */
bool http_peer_admit(struct http_server *srv, bool has_peer, const unsigned char addr[NETADDR_LEN],
                     const char *text, bool *via_proxy, struct ip_count **ip);
/* Sets r->client: the peer, or behind a trusted proxy the client its
 * X-Forwarded-For names (proxy.h). Returns false if that client already
 * has max_per_ip requests in progress (the request is then refused). */
bool http_client_admit(struct http_conn *c, struct http_request *r);
/* Drops one from e's count in table (NULL: nothing); frees e when none is
 * left. */
void http_ip_put(struct ip_count **table, struct ip_count *e);
/* Frees every count in table (at server teardown, once every connection
 * is gone). */
void http_ip_table_free(struct ip_count **table);

#endif
