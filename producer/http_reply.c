/*
 * http_reply.c: the HTTP layer's replies: the status line and head
 * (Content-Length, keep-alive or close), a body from memory or a file
 * (sendfile-backed), the JSON error reply, and writing queued output to
 * the socket. A reply made while http.c's state machine runs is written
 * there at once (http_conn_write_now); one made later (an async handler)
 * is left to the bufferevent, whose write callback brings the state
 * machine back.
 */
#include "http_internal.h"

#include <unistd.h>
#include <event2/buffer.h>

#include "log.h"

static const char *reason_phrase(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 403: return "Forbidden";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* Queues the status line and head of r's reply (len: the body's length)
 * and marks r answered. */
static void write_head(struct http_request *r, int code, const char *ctype, uint64_t len)
{
    /* A reply before the body is fully taken ends the connection. */
    if (!r->msg.body_done)
        r->close_after = true;
    if (!r->msg.head_done || !http_msg_keepalive(&r->msg))
        r->close_after = true;
    struct evbuffer *out = bufferevent_get_output(r->conn->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nServer: Tango-C\r\nContent-Type: %s\r\n"
                        "Content-Length: %llu\r\nConnection: %s\r\n\r\n",
                        code, reason_phrase(code), ctype ? ctype : "text/plain",
                        (unsigned long long)len, r->close_after ? "close" : "keep-alive");
    r->replied = true;
    r->status = code;
    log_debug("http_request", "method=%s code=%d client=%s peer=%s",
              r->msg.method[0] ? r->msg.method : "-", code, http_client(r), r->conn->peer_text);
}

/* A reply made inside conn_progress (the usual, synchronous case) is
 * written there at once, with no wait for the next loop turn and no
 * epoll change; one made later (an async handler) is left to the
 * bufferevent, whose write callback brings conn_progress back. */
static void reply_queued(struct http_conn *c)
{
    if (!c->busy)
        bufferevent_enable(c->bev, EV_WRITE);
}

void http_reply(struct http_request *r, int code, const char *ctype, struct evbuffer *body)
{
    if (r->replied)
        return;
    write_head(r, code, ctype, body ? evbuffer_get_length(body) : 0);
    if (body)
        evbuffer_add_buffer(bufferevent_get_output(r->conn->bev), body);
    reply_queued(r->conn);
}

void http_reply_file(struct http_request *r, int code, const char *ctype, int fd, off_t len)
{
    if (r->replied) {
        close(fd);
        return;
    }
    write_head(r, code, ctype, (uint64_t)len);
    if (len > 0)
        evbuffer_add_file(bufferevent_get_output(r->conn->bev), fd, 0, len);
    else
        close(fd);
    reply_queued(r->conn);
}

void http_reply_error(struct http_request *r, int code, const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"statusId\": -1, \"statusMsg\": \"%s\"}", msg);
    r->close_after = true;
    http_reply(r, code, "application/json; charset=UTF-8", b);
    evbuffer_free(b);
}

/* A socket bufferevent keeps its output's start frozen; like its own write
 * callback, we unfreeze it around the write. */
void http_conn_write_now(struct http_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    int fd = bufferevent_getfd(c->bev);
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, fd) > 0)
        ;
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(c->bev, EV_WRITE);
}
