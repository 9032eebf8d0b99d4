/*
 * http_parse.h: HTTP/1.1 request parsing with no connection behind it: the
 * request head (request line, header lines, the framing they declare) and
 * the body's framing (Content-Length or chunked, with trailers), read from
 * an evbuffer as the bytes arrive, under the limits of struct
 * http_parse_limits. It owns what the protocol says; http.c owns the
 * connection (sockets, timers, replies, keep-alive) and calls it, and the
 * fuzz harness tests/fuzz/fuzz_http_parse.c drives it directly.
 *
 * Strict by design: one reading of every input, nothing ambiguous passes
 * (see http.h for the list of refusals). Every function may be called again
 * with more input after it answered "need more"; none keeps a pointer into
 * the buffer between calls.
 */
#ifndef TANGO_HTTP_PARSE_H
#define TANGO_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <event2/keyvalq_struct.h>

struct evbuffer;

#define HTTP_CHUNK_LINE_MAX 1024 /* longest chunk-size (or chunk-end) line, CRLF excluded */
#define HTTP_CHUNK_SIZE_MAX (1ull << 40) /* largest single chunk accepted */

/* The limits the parser enforces: the head and the chunked trailers share
 * max_head_bytes and max_headers. */
struct http_parse_limits {
    size_t max_head_bytes;
    int max_headers;
};

enum http_chunk_state { HTTP_CH_SIZE, HTTP_CH_DATA, HTTP_CH_DATA_END, HTTP_CH_TRAILER };

/* One request as parsed so far. Zero it, then http_msg_init(); release with
 * http_msg_clear(). Read-only for callers, except as noted. */
struct http_msg {
    char method[16];        /* upper-case letters only */
    char *uri;              /* as sent, starts with '/'; NULL until the request line */
    char *path;             /* uri up to '?' or '#' (not decoded) */
    int minor;              /* HTTP/1.<minor> */
    struct evkeyvalq headers;
    size_t head_bytes;      /* head bytes so far, CRLFs included, and then trailer bytes */
    int nheaders;           /* header lines, and then trailer lines */
    bool head_done;         /* the head's blank line was read */
    int64_t content_length; /* -1: none (or chunked) */
    bool chunked;
    enum http_chunk_state chunk;
    uint64_t remaining;     /* body bytes still to come (Content-Length) or of this chunk */
    bool body_done;         /* the whole body has been framed (or there is none) */
};

/* Why a head was refused: the status to answer and its message (static). */
struct http_parse_error {
    int status;
    const char *msg;
};

/* Results of http_parse_body other than 1 (done) and 0 (needs more input). */
#define HTTP_BODY_BAD_FRAMING (-1)
#define HTTP_BODY_TRAILERS_TOO_LARGE (-2)

/* Receives n body bytes, which are the first n bytes of in; it must remove
 * exactly those n bytes from in (drain them or move them elsewhere). */
typedef void (*http_body_fn)(void *arg, struct evbuffer *in, size_t n);

/* Makes a zeroed m ready: no headers, no Content-Length. */
void http_msg_init(struct http_msg *m);
/* Frees what m holds (headers, uri, path); m may then be dropped. */
void http_msg_clear(struct http_msg *m);

/* Reads head lines from in (consuming them). Returns 1 when the head is
 * complete and valid (its body framing then set up: chunked, or
 * content_length/remaining, with body_done when there is no body), 0 when
 * more input is needed (all complete lines consumed), or -1 with *err set
 * (431 over the limits, 400 malformed or ambiguous, 501 an unsupported
 * Transfer-Encoding). Blank lines before the request line are skipped. */
int http_parse_head(struct http_msg *m, struct evbuffer *in, const struct http_parse_limits *lim,
                    struct http_parse_error *err);

/* Reads body framing from in after a complete head, handing the body bytes
 * to deliver as they arrive (never more than the body holds). Returns 1
 * when the body is complete (body_done is then set), 0 when more input is
 * needed, HTTP_BODY_BAD_FRAMING (a bad chunk-size or chunk-end line) or
 * HTTP_BODY_TRAILERS_TOO_LARGE (trailers past the head's limits).
 * Trailers are read and dropped. */
int http_parse_body(struct http_msg *m, struct evbuffer *in, const struct http_parse_limits *lim,
                    http_body_fn deliver, void *arg);

/* Whether the client asked to keep the connection open (HTTP/1.0: only
 * with "Connection: keep-alive"; HTTP/1.1: unless "Connection: close"). */
bool http_msg_keepalive(const struct http_msg *m);

#endif
