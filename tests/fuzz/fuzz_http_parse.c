/* fuzz_http_parse.c: libFuzzer harness for the producer's HTTP parser on
 * its own (producer/http_parse.c), with no connection, event loop or
 * handler: the request head and then the body's framing, read from an
 * evbuffer the way http.c reads them, request after request.
 *
 * The first input byte picks how the rest arrives: 0 all at once, N pieces
 * of N bytes (so heads, chunk-size lines and bodies also arrive split).
 * Small limits (max_head_bytes 2048, 20 headers) make the limit paths
 * reachable. Checked on every input: results are in range, a refused head
 * names 400, 431 or 501, the body handed out never exceeds a declared
 * Content-Length and equals it once complete, and the parser never takes
 * more bytes than it was given. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "fuzz_util.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct http_parse_limits lim = {2048, 20};

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_http_parse: %s\n", what);
        abort();
    }
}

/* The body sink: drains exactly n bytes, counting them. */
static void sink(void *arg, struct evbuffer *in, size_t n)
{
    check(evbuffer_get_length(in) >= n, "asked to deliver more than has arrived");
    check(evbuffer_drain(in, n) == 0, "drain failed");
    *(uint64_t *)arg += n;
}

/* One step on the input received so far: 1 to go on with the next
 * request, 0 for more input, -1 when the parser refused (as http.c, which
 * then closes the connection). */
static int step(struct http_msg *m, struct evbuffer *in, uint64_t *got)
{
    if (!m->head_done) {
        struct http_parse_error err = {0, NULL};
        int rc = http_parse_head(m, in, &lim, &err);
        check(rc >= -1 && rc <= 1, "head result out of range");
        if (rc < 0)
            check((err.status == 400 || err.status == 431 || err.status == 501) && err.msg,
                  "refused head without a 400/431/501 and a message");
        if (rc <= 0)
            return rc;
        check(m->uri && m->uri[0] == '/' && m->path, "head done without a uri");
        check(!m->chunked || m->content_length == -1, "both chunked and Content-Length");
    }
    if (!m->body_done) {
        int rc = http_parse_body(m, in, &lim, sink, got);
        check(rc >= HTTP_BODY_TRAILERS_TOO_LARGE && rc <= 1, "body result out of range");
        if (m->content_length >= 0)
            check(*got <= (uint64_t)m->content_length, "body past its Content-Length");
        if (rc <= 0)
            return rc;
    }
    if (m->content_length >= 0)
        check(*got == (uint64_t)m->content_length, "body done short of its Content-Length");
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t piece = fuzz_take_piece(&data, &size);
    struct evbuffer *in = evbuffer_new();
    struct http_msg m;
    memset(&m, 0, sizeof m);
    http_msg_init(&m);
    uint64_t got = 0;
    int rc = 0;
    while (size > 0 && rc >= 0) {
        size_t n = size < piece ? size : piece;
        evbuffer_add(in, data, n);
        data += n;
        size -= n;
        while ((rc = step(&m, in, &got)) == 1) { /* a whole request: the next one */
            http_msg_clear(&m);
            memset(&m, 0, sizeof m);
            http_msg_init(&m);
            got = 0;
        }
    }
    http_msg_clear(&m);
    evbuffer_free(in);
    return 0;
}
