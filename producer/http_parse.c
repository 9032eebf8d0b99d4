/*
 * http_parse.c: the HTTP/1.1 request parser (see http_parse.h): request
 * line, header lines, the body framing they declare, and the chunked body
 * decoder. No sockets, timers or replies here: a refusal is returned as a
 * status and message for the connection layer (http.c) to send.
 */
#include "http_parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/http.h>

void http_msg_init(struct http_msg *m)
{
    m->content_length = -1;
    TAILQ_INIT(&m->headers);
}

void http_msg_clear(struct http_msg *m)
{
    evhttp_clear_headers(&m->headers);
    free(m->uri);
    free(m->path);
    m->uri = m->path = NULL;
}

bool http_msg_keepalive(const struct http_msg *m)
{
    const char *conn = evhttp_find_header(&m->headers, "Connection");
    if (m->minor == 0)
        return conn && strcasecmp(conn, "keep-alive") == 0;
    return !(conn && strcasecmp(conn, "close") == 0);
}

/* ---------- head ---------- */

static int refuse(struct http_parse_error *err, int status, const char *msg)
{
    err->status = status;
    err->msg = msg;
    return -1;
}

/* "METHOD /uri HTTP/1.x": 0, or -1 if it is not that. */
static int parse_request_line(struct http_msg *m, const char *line)
{
    const char *sp1 = strchr(line, ' ');
    const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || (size_t)(sp1 - line) >= sizeof m->method || sp1 == line)
        return -1;
    memcpy(m->method, line, (size_t)(sp1 - line));
    m->method[sp1 - line] = '\0';
    for (const char *p = m->method; *p; p++)
        if (!isupper((unsigned char)*p))
            return -1;
    if (strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)sp2[8]) || sp2[9])
        return -1;
    m->minor = sp2[8] - '0';
    m->uri = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    if (m->uri[0] != '/')
        return -1;
    m->path = strndup(m->uri, strcspn(m->uri, "?#"));
    return 0;
}

/* "Name: value" (value trimmed of blanks) added to m's headers; -1 if malformed. */
static int parse_header_line(struct http_msg *m, char *line)
{
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return -1;
    *colon = '\0';
    for (char *p = line; *p; p++)
        if (!isgraph((unsigned char)*p))
            return -1;
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    char *end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    return evhttp_add_header(&m->headers, line, v);
}

/* How many headers are called name (case-insensitive); *first is the first one's value. */
static int header_count(const struct http_msg *m, const char *name, const char **first)
{
    int n = 0;
    *first = NULL;
    struct evkeyval *h;
    TAILQ_FOREACH(h, &m->headers, next) {
        if (strcasecmp(h->key, name) != 0)
            continue;
        if (!n++)
            *first = h->value;
    }
    return n;
}

/* Checks the head as a whole and sets up body framing from it; -1 with
 * *err set when it is ambiguous or unsupported. */
static int setup_body(struct http_msg *m, struct http_parse_error *err)
{
    const char *te, *cl, *host;
    int nte = header_count(m, "Transfer-Encoding", &te);
    int ncl = header_count(m, "Content-Length", &cl);
    int nhost = header_count(m, "Host", &host);
    if (nhost > 1 || (m->minor >= 1 && nhost == 0))
        return refuse(err, 400, nhost ? "More than one Host header" : "Missing Host header");
    if (ncl > 1)
        return refuse(err, 400, "More than one Content-Length header");
    if (nte && ncl)
        return refuse(err, 400, "Both Content-Length and Transfer-Encoding");
    if (nte) {
        if (nte > 1 || strcasecmp(te, "chunked") != 0)
            return refuse(err, 501, "Unsupported Transfer-Encoding: only chunked");
        m->chunked = true;
        m->chunk = HTTP_CH_SIZE;
        return 0;
    }
    if (cl) {
        if (!*cl || strlen(cl) > 18 || strspn(cl, "0123456789") != strlen(cl))
            return refuse(err, 400, "Bad Content-Length");
        m->content_length = strtoll(cl, NULL, 10);
        m->remaining = (uint64_t)m->content_length;
    }
    if (!m->chunked && m->remaining == 0)
        m->body_done = true;
    return 0;
}

/* One complete head line (len bytes, taken over): 1 when it ended the head
 * (which is then checked), 0 to go on, -1 with *err set. */
static int head_line(struct http_msg *m, char *line, size_t len,
                     const struct http_parse_limits *lim, struct http_parse_error *err)
{
    if (!m->uri) {
        if (len == 0) { /* tolerate blank lines before a request */
            free(line);
            return 0;
        }
        int bad = strlen(line) != len || parse_request_line(m, line);
        free(line);
        return bad ? refuse(err, 400, "Malformed request line") : 0;
    }
    if (len == 0) {
        free(line);
        m->head_done = true;
        return setup_body(m, err) ? -1 : 1;
    }
    int bad = strlen(line) != len || ++m->nheaders > lim->max_headers ||
              parse_header_line(m, line);
    free(line);
    if (bad && m->nheaders > lim->max_headers)
        return refuse(err, 431, "Too many headers");
    return bad ? refuse(err, 400, "Malformed header") : 0;
}

int http_parse_head(struct http_msg *m, struct evbuffer *in, const struct http_parse_limits *lim,
                    struct http_parse_error *err)
{
    for (;;) {
        size_t len;
        char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
        if (!line) {
            if (m->head_bytes + evbuffer_get_length(in) > lim->max_head_bytes)
                return refuse(err, 431, "Request head too large");
            return 0;
        }
        m->head_bytes += len + 2;
        if (m->head_bytes > lim->max_head_bytes) {
            free(line);
            return refuse(err, 431, "Request head too large");
        }
        int rc = head_line(m, line, len, lim, err);
        if (rc != 0)
            return rc;
    }
}

/* ---------- body ---------- */

/* Reads one chunk-size, CRLF or trailer line of at most max bytes (whole
 * or still arriving); NULL if incomplete or too long (then *bad is set).
 * *len is the line's length. */
static char *chunk_line(struct evbuffer *in, size_t max, size_t *len, bool *bad)
{
    char *line = evbuffer_readln(in, len, EVBUFFER_EOL_CRLF);
    if ((!line && evbuffer_get_length(in) > max) || (line && *len > max)) {
        free(line);
        *bad = true;
        return NULL;
    }
    return line;
}

/* Hands what has arrived of the remaining body (or chunk) to deliver;
 * true when none of it is left. */
static bool take_data(struct http_msg *m, struct evbuffer *in, http_body_fn deliver, void *arg)
{
    size_t avail = evbuffer_get_length(in);
    size_t n = avail < m->remaining ? avail : (size_t)m->remaining;
    if (n)
        deliver(arg, in, n);
    m->remaining -= n;
    return m->remaining == 0;
}

/* A chunk-size or chunk-end line (*len its length), or NULL with *rc 0
 * (more input needed) or HTTP_BODY_BAD_FRAMING (over HTTP_CHUNK_LINE_MAX). */
static char *framing_line(struct evbuffer *in, size_t *len, int *rc)
{
    bool bad = false;
    char *line = chunk_line(in, HTTP_CHUNK_LINE_MAX, len, &bad);
    *rc = bad ? HTTP_BODY_BAD_FRAMING : 0;
    return line;
}

/* The chunk-size line: 1 when read (the next state set), 0 for more input,
 * or HTTP_BODY_BAD_FRAMING. */
static int chunk_size(struct http_msg *m, struct evbuffer *in)
{
    size_t len;
    int rc;
    char *line = framing_line(in, &len, &rc);
    if (!line)
        return rc;
    char *end;
    errno = 0;
    unsigned long long size = strtoull(line, &end, 16);
    bool bad = end == line || !isxdigit((unsigned char)line[0]) || errno ||
          (*end && *end != ';' && *end != ' ') || size > HTTP_CHUNK_SIZE_MAX ||
          strlen(line) != len;
    free(line);
    if (bad)
        return HTTP_BODY_BAD_FRAMING;
    m->remaining = size;
    m->chunk = size ? HTTP_CH_DATA : HTTP_CH_TRAILER;
    return 1;
}

/* The empty line after a chunk's data: as chunk_size. */
static int chunk_end(struct http_msg *m, struct evbuffer *in)
{
    size_t len;
    int rc;
    char *line = framing_line(in, &len, &rc);
    if (!line)
        return rc;
    free(line);
    if (len != 0)
        return HTTP_BODY_BAD_FRAMING;
    m->chunk = HTTP_CH_SIZE;
    return 1;
}

/* One trailer line, read and dropped but counted against the head's
 * limits: 1 for a trailer, 2 for the final empty line, 0 for more input,
 * or HTTP_BODY_TRAILERS_TOO_LARGE. */
static int chunk_trailer(struct http_msg *m, struct evbuffer *in,
                         const struct http_parse_limits *lim)
{
    bool bad = false;
    size_t len;
    size_t room = lim->max_head_bytes > m->head_bytes ? lim->max_head_bytes - m->head_bytes : 0;
    char *line = chunk_line(in, room, &len, &bad);
    if (!line)
        return bad ? HTTP_BODY_TRAILERS_TOO_LARGE : 0;
    free(line);
    if (len == 0)
        return 2;
    m->head_bytes += len + 2;
    if (m->head_bytes > lim->max_head_bytes || ++m->nheaders > lim->max_headers)
        return HTTP_BODY_TRAILERS_TOO_LARGE;
    return 1;
}

/* The chunked body, state by state, as far as the input goes. */
static int chunked_body(struct http_msg *m, struct evbuffer *in,
                        const struct http_parse_limits *lim, http_body_fn deliver, void *arg)
{
    for (;;) {
        int rc = 1;
        switch (m->chunk) {
        case HTTP_CH_SIZE:
            rc = chunk_size(m, in);
            break;
        case HTTP_CH_DATA:
            if (!take_data(m, in, deliver, arg))
                return 0;
            m->chunk = HTTP_CH_DATA_END;
            break;
        case HTTP_CH_DATA_END:
            rc = chunk_end(m, in);
            break;
        case HTTP_CH_TRAILER:
            rc = chunk_trailer(m, in, lim);
            if (rc == 2)
                return 1;
            break;
        }
        if (rc <= 0)
            return rc;
    }
}

int http_parse_body(struct http_msg *m, struct evbuffer *in, const struct http_parse_limits *lim,
                    http_body_fn deliver, void *arg)
{
    int rc = m->chunked ? chunked_body(m, in, lim, deliver, arg) : take_data(m, in, deliver, arg);
    if (rc == 1)
        m->body_done = true;
    return rc;
}
