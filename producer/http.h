/*
 * http.h: the producer's HTTP/1.1 server layer on libevent bufferevents.
 *
 * Why not evhttp: libevent 2.1 (Debian 12's) reads every request body fully
 * into memory before a handler sees the request, and offers no server-side
 * hook to stream it (evhttp_set_newreqcb arrived only in 2.2). Uploads of
 * hundreds of MB from 20 clients at once would need GBs of RAM. This layer
 * uses libevent for everything it offers (listener, bufferevents, evbuffer
 * line reading, header lists, URI decoding, sendfile-backed file replies) and
 * adds only request framing: head parsing with limits, Content-Length and
 * chunked bodies delivered to a handler as they arrive, keep-alive.
 *
 * Framing is strict (one parser, nothing ambiguous reaches a handler): a
 * request with two Content-Length headers, Content-Length with
 * Transfer-Encoding, a Transfer-Encoding other than "chunked", an HTTP/1.1
 * request without exactly one Host, a chunk-size line over 1 KiB, or
 * trailers past the head limit is answered 400/431/501 and the connection
 * is closed, so nothing after it is read as another request. A head that
 * does not arrive within head_timeout_ms or a body slower than min_body_bps
 * is answered 408 and closed. One event loop; not thread-safe.
 *
 * Flow per request: on_head(req) once the head is parsed (the handler picks
 * how to take the body, or replies at once), then on_request(req) once the
 * body is taken. A reply may be sent later (async); if the client goes away
 * first, the request's on_free hook runs and the request is gone.
 */
#ifndef TANGO_HTTP_H
#define TANGO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <event2/event.h>

struct http_server;
struct http_request;
struct evbuffer;
struct netset;

/* Every limit the layer enforces; 0 turns off the ones marked "0 = off". */
struct http_limits {
    size_t max_head_bytes;   /* request line + headers, and again + chunked trailers */
    int max_headers;         /* header lines (trailer lines count too) */
    int timeout_s;           /* idle read/write timeout */
    int head_timeout_ms;     /* a whole request head must arrive within this, counted from
                              * the connection's accept or the request's first byte; 0 = off */
    int min_body_bps;        /* slowest request body accepted, in bytes/s, measured over each
                              * body_window_ms; 0 = off */
    int body_window_ms;      /* window for min_body_bps (> 0 when it is on) */
    int max_connections;     /* open connections in all */
    int max_per_ip;          /* open connections from one client address; 0 = off. From a
                              * trusted proxy: requests in progress per forwarded client */
    const struct netset *trusted_proxies; /* peers whose X-Forwarded-For names the client
                                           * (proxy.h); borrowed; NULL = none */
};

struct http_handlers {
    void (*on_head)(struct http_request *req, void *arg);
    void (*on_request)(struct http_request *req, void *arg);
    void *arg;
};

/* A streaming body consumer. on_data returns 0 to go on, -1 to stop taking
 * the body (the handler then replies from on_request with
 * http_body_failed() true). on_abort runs if the connection dies before the
 * body is complete or the body exceeds its limit. */
struct http_body_sink {
    int (*on_data)(struct http_request *req, const void *data, size_t len);
    void (*on_abort)(struct http_request *req);
};

struct http_server *http_server_new(struct event_base *base, const struct http_limits *lim,
                                    const struct http_handlers *h);
/* Binds and listens; returns the bound port (useful with port 0) or -1. */
int http_server_listen(struct http_server *srv, const char *addr, int port);
/* Serves an already connected socket as if accepted from peer (NULL or an
 * AF_UNIX address: not counted per address). Takes over fd: on refusal (a
 * connection cap reached) it is closed at once and -1 is returned. The
 * listener uses it for every connection; tests drive it with socketpairs. */
int http_server_adopt(struct http_server *srv, int fd, const struct sockaddr *peer,
                      socklen_t peerlen);
/* Stops listening and closes every open connection (requests are dropped). */
void http_server_free(struct http_server *srv);
int http_server_connections(const struct http_server *srv);
/* Optional: cb runs once per answered request, as it is freed, with the
 * status sent and the seconds from its first byte until the reply was
 * written (or the client went away); arg is the handlers' arg. */
void http_server_on_done(struct http_server *srv,
                         void (*cb)(struct http_request *req, int status, double seconds,
                                    void *arg));

/* The request. */
const char *http_method(const struct http_request *req);
const char *http_path(const struct http_request *req); /* raw, without query */
const char *http_header(const struct http_request *req, const char *name);
int64_t http_content_length(const struct http_request *req); /* -1 if none/chunked */
/* Who sent the request, as text: the peer's address, or, when the peer is a
 * trusted proxy, the client its X-Forwarded-For names (proxy.h); "-" for a
 * peer without an IP address. Use it for per-client decisions and logs. */
const char *http_client(const struct http_request *req);
/* The TCP peer's address as text ("-" without an IP address). */
const char *http_peer(const struct http_request *req);
bool http_has_body(const struct http_request *req);
void http_set_user(struct http_request *req, void *user);
void *http_user(const struct http_request *req);

/* In on_head: how to take the body. Without a call the body is discarded. */
void http_take_body_memory(struct http_request *req, size_t limit);
void http_take_body_stream(struct http_request *req, const struct http_body_sink *sink,
                           size_t limit);
/* In on_request. */
struct evbuffer *http_body(struct http_request *req);
bool http_body_too_large(const struct http_request *req);
bool http_body_failed(const struct http_request *req);
size_t http_body_received(const struct http_request *req);

/* Replies (exactly once). body may be NULL; it is drained into the reply. */
void http_reply(struct http_request *req, int code, const char *content_type,
                struct evbuffer *body);
/* Sends len bytes of fd (taken over, closed by the layer) as the body. */
void http_reply_file(struct http_request *req, int code, const char *content_type, int fd,
                     off_t len);
/* Called when the request is freed (reply sent or client gone). */
void http_on_free(struct http_request *req, void (*cb)(struct http_request *, void *),
                  void *arg);

#endif
