/*
 * test_http.c: producer/http.c driven directly through socketpairs on a real
 * libevent base: every framing refusal (two Content-Length, CL with TE,
 * non-chunked TE, Host), trailers against the head limit, the chunk-size
 * line cap, the reason table, the head deadline, the body-rate floor and
 * the connection caps (in all and per client address).
 *
 * The harness: http_server_adopt() takes one end of a socketpair as if it
 * were accepted from a given peer address; the test writes a request to the
 * other end and runs the event loop until the answer it waits for arrives
 * or the peer closes, with a deadline. The handler answers
 * "path=P body=N client=C;" (C: http_client), except for paths starting
 * "/hold", which it keeps unanswered in harness.held for the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "../../producer/http.h"
#include "../../producer/proxy.h"

#define WAIT_MS 3000 /* deadline for anything that should happen at once */

struct harness {
    struct event_base *base;
    struct http_server *srv;
    struct http_limits lim;
    int requests; /* on_request calls */
    struct http_request *held[8]; /* "/hold" requests, answered by the test */
    int nheld;
};

static void on_head(struct http_request *req, void *arg)
{
    (void)arg;
    http_take_body_memory(req, 1u << 20);
}

static void on_request(struct http_request *req, void *arg)
{
    struct harness *h = arg;
    h->requests++;
    if (strncmp(http_path(req), "/hold", 5) == 0 && h->nheld < 8) {
        h->held[h->nheld++] = req;
        return;
    }
    int code = 200;
    if (strncmp(http_path(req), "/code/", 6) == 0)
        code = atoi(http_path(req) + 6);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "path=%s body=%zu client=%s;", http_path(req),
                        evbuffer_get_length(http_body(req)), http_client(req));
    http_reply(req, code, "text/plain", b);
    evbuffer_free(b);
}

static const struct http_limits default_limits = {
    .max_head_bytes = 4096,
    .max_headers = 20,
    .timeout_s = 30,
    .head_timeout_ms = 0,
    .min_body_bps = 0,
    .body_window_ms = 0,
    .max_connections = 100,
    .max_per_ip = 0,
};

static struct harness *harness_new(const struct http_limits *lim)
{
    struct harness *h = calloc(1, sizeof *h);
    h->base = event_base_new();
    h->lim = *lim;
    struct http_handlers hs = {on_head, on_request, h};
    h->srv = http_server_new(h->base, &h->lim, &hs);
    return h;
}

static void harness_free(struct harness *h)
{
    http_server_free(h->srv);
    event_base_free(h->base);
    free(h);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A connection from peer ip (dotted quad): returns the client end, or -1
 * if the server refused it (then the server's end is closed). */
static int connect_from(struct harness *h, const char *ip, int *rc)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, ip, &peer.sin_addr);
    *rc = http_server_adopt(h->srv, sv[0], (struct sockaddr *)&peer, sizeof peer);
    return sv[1];
}

static int connect_one(struct harness *h)
{
    int rc;
    int fd = connect_from(h, "10.0.0.1", &rc);
    assert_int_equal(rc, 0);
    return fd;
}

/* Runs the loop for up to ms. */
static void pump(struct harness *h, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(h->base, &tv);
    event_base_dispatch(h->base);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Reads from fd into buf (NUL-terminated, cap bytes) until the peer closes,
 * until want (if not NULL) appears `times` times, or until ms pass. Returns
 * true if the peer closed. */
static bool collect(struct harness *h, int fd, char *buf, size_t cap, const char *want, int times,
                    int ms)
{
    size_t len = strlen(buf);
    long long end = now_ms() + ms;
    while (now_ms() < end) {
        pump(h, 5);
        for (;;) {
            ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                buf[len] = '\0';
                return true;
            }
            if (n < 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
            if (len + 1 >= cap)
                return false;
        }
        if (want && count_of(buf, want) >= times)
            return false;
    }
    return false;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* Sends req on a new connection; returns what came back until close. */
static void exchange(struct harness *h, const char *req, size_t len, char *out, size_t cap)
{
    int fd = connect_one(h);
    send_all(fd, req, len);
    out[0] = '\0';
    bool closed = collect(h, fd, out, cap, NULL, 0, WAIT_MS);
    close(fd);
    assert_true(closed);
    pump(h, 5); /* let the server see the close */
}

#define EXCHANGE(h, lit, out) exchange(h, lit, sizeof lit - 1, out, sizeof out)

static void test_double_content_length(void **state)
{
    (void)state;
    struct harness *h = harness_new(&default_limits);
    char out[8192];
    /* 40 then 2: the body holds what would be a second request. */
    EXCHANGE(h, "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\nContent-Length: 2\r\n\r\n"
                "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n1234", out);
    assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request"));
    assert_non_null(strstr(out, "More than one Content-Length"));
    assert_int_equal(count_of(out, "HTTP/1.1 "), 1);
    assert_null(strstr(out, "smuggled"));
    assert_int_equal(h->requests, 0);
    /* Equal values are refused too. */
    out[0] = '\0';
    EXCHANGE(h, "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab",
             out);
    assert_non_null(strstr(out, "HTTP/1.1 400 "));
    assert_int_equal(h->requests, 0);
    /* One Content-Length is fine. */
    EXCHANGE(h, "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
             out);
    assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(out, "path=/a body=2"));
    harness_free(h);
}

static void test_transfer_encoding(void **state)
{
    (void)state;
    struct harness *h = harness_new(&default_limits);
    char out[8192];
    EXCHANGE(h, "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", out);
    assert_non_null(strstr(out, "HTTP/1.1 400 "));
    assert_non_null(strstr(out, "Both Content-Length and Transfer-Encoding"));
    EXCHANGE(h, "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", out);
    assert_non_null(strstr(out, "HTTP/1.1 501 Not Implemented"));
    EXCHANGE(h, "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", out);
    assert_non_null(strstr(out, "HTTP/1.1 501 "));
    EXCHANGE(h, "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", out);
    assert_non_null(strstr(out, "HTTP/1.1 501 "));
    assert_int_equal(h->requests, 0);
    EXCHANGE(h, "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n"
                "\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n", out);
    assert_non_null(strstr(out, "path=/a body=5"));
    harness_free(h);
}

static void test_host(void **state)
{
    (void)state;
    struct harness *h = harness_new(&default_limits);
    char out[8192];
    EXCHANGE(h, "GET / HTTP/1.1\r\n\r\n", out);
    assert_non_null(strstr(out, "HTTP/1.1 400 "));
    assert_non_null(strstr(out, "Missing Host header"));
    EXCHANGE(h, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", out);
    assert_non_null(strstr(out, "More than one Host header"));
    assert_int_equal(h->requests, 0);
    EXCHANGE(h, "GET /ten HTTP/1.0\r\n\r\n", out); /* HTTP/1.0 needs none */
    assert_non_null(strstr(out, "path=/ten body=0"));
    harness_free(h);
}

static void test_trailers(void **state)
{
    (void)state;
    struct harness *h = harness_new(&default_limits);
    char out[8192];
    /* A few trailers are read and dropped. */
    EXCHANGE(h, "POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                "\r\n1\r\nx\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n", out);
    assert_non_null(strstr(out, "path=/t body=1"));
    /* Trailers past max_head_bytes (4 KiB with the head): 431. */
    char big[16384];
    int n = snprintf(big, sizeof big, "POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                      "\r\n1\r\nx\r\n0\r\n");
    for (int i = 0; i < 10; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-Pad%d: %0600d\r\n", i, 0);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    int before = h->requests;
    exchange(h, big, (size_t)n, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 431 "));
    assert_int_equal(h->requests, before);
    /* Many small trailer lines count against max_headers (20). */
    n = snprintf(big, sizeof big, "POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                  "\r\n1\r\nx\r\n0\r\n");
    for (int i = 0; i < 30; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "T: %d\r\n", i);
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n");
    exchange(h, big, (size_t)n, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 431 "));
    assert_int_equal(h->requests, before);
    harness_free(h);
}

static void test_chunk_line_cap(void **state)
{
    (void)state;
    struct harness *h = harness_new(&default_limits);
    char req[8192], out[8192];
    /* A 2000-byte chunk-size line that arrives whole, CRLF included. */
    int n = snprintf(req, sizeof req, "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                      "\r\n1;");
    memset(req + n, 'e', 2000);
    n += 2000;
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\nx\r\n0\r\n\r\n");
    exchange(h, req, (size_t)n, out, sizeof out);
    assert_non_null(strstr(out, "HTTP/1.1 400 "));
    assert_int_equal(h->requests, 0);
    /* Sizes that are not hex, or overflow. */
    EXCHANGE(h, "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n", out);
    assert_non_null(strstr(out, "HTTP/1.1 400 "));
    EXCHANGE(h, "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "fffffffffffffffffff\r\nx\r\n", out);
    assert_non_null(strstr(out, "HTTP/1.1 400 "));
    assert_int_equal(h->requests, 0);
    harness_free(h);
}

static void test_reason_phrases(void **state)
{
    (void)state;
    struct harness *h = harness_new(&default_limits);
    static const struct { const char *path, *line; } cases[] = {
        {"GET /code/409 HTTP/1.0\r\n\r\n", "HTTP/1.1 409 Conflict\r\n"},
        {"GET /code/504 HTTP/1.0\r\n\r\n", "HTTP/1.1 504 Gateway Timeout\r\n"},
        {"GET /code/503 HTTP/1.0\r\n\r\n", "HTTP/1.1 503 Service Unavailable\r\n"},
        {"GET /code/404 HTTP/1.0\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"},
        {"GET /code/401 HTTP/1.0\r\n\r\n", "HTTP/1.1 401 Unauthorized\r\n"},
        {"GET /code/413 HTTP/1.0\r\n\r\n", "HTTP/1.1 413 Payload Too Large\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[4096];
        exchange(h, cases[i].path, strlen(cases[i].path), out, sizeof out);
        if (strncmp(out, cases[i].line, strlen(cases[i].line)) != 0)
            fail_msg("%s answered %.60s", cases[i].path, out);
    }
    harness_free(h);
}

static void test_head_deadline(void **state)
{
    (void)state;
    struct http_limits lim = default_limits;
    lim.head_timeout_ms = 300;
    struct harness *h = harness_new(&lim);
    /* One header line every 50 ms: never idle, but the head never ends. */
    int fd = connect_one(h);
    long long t0 = now_ms();
    send_str(fd, "GET / HTTP/1.1\r\nHost: t\r\n");
    char out[4096] = "";
    bool closed = false;
    for (int i = 0; i < 60 && !closed; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "X-Drip-%d: a\r\n", i);
        if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0)
            break;
        closed = collect(h, fd, out, sizeof out, NULL, 0, 50);
    }
    if (!closed)
        closed = collect(h, fd, out, sizeof out, NULL, 0, WAIT_MS);
    long long took = now_ms() - t0;
    assert_true(closed);
    assert_non_null(strstr(out, "HTTP/1.1 408 Request Timeout"));
    assert_true(took >= 280 && took < 1500);
    assert_int_equal(h->requests, 0);
    close(fd);
    pump(h, 5);
    assert_int_equal(http_server_connections(h->srv), 0);

    /* On keep-alive the deadline runs from a request's first byte: idle time
     * between requests (under timeout_s) does not count. */
    fd = connect_one(h);
    out[0] = '\0';
    send_str(fd, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_false(collect(h, fd, out, sizeof out, "path=/1", 1, WAIT_MS));
    collect(h, fd, out, sizeof out, "never", 1, 500); /* idle past the deadline */
    assert_null(strstr(out, "408"));
    send_str(fd, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_false(collect(h, fd, out, sizeof out, "path=/2", 1, WAIT_MS));
    assert_int_equal(h->requests, 2);
    close(fd);
    harness_free(h);
}

static void test_slow_body(void **state)
{
    (void)state;
    struct http_limits lim = default_limits;
    lim.min_body_bps = 1000;  /* 200 bytes per 200 ms window */
    lim.body_window_ms = 200;
    struct harness *h = harness_new(&lim);
    int fd = connect_one(h);
    long long t0 = now_ms();
    send_str(fd, "POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n");
    char out[4096] = "";
    bool closed = false;
    for (int i = 0; i < 100 && !closed; i++) {
        if (send(fd, "0123456789", 10, MSG_NOSIGNAL) < 0) /* 10 bytes per 50 ms */
            break;
        closed = collect(h, fd, out, sizeof out, NULL, 0, 50);
    }
    if (!closed)
        closed = collect(h, fd, out, sizeof out, NULL, 0, WAIT_MS);
    assert_true(closed);
    assert_non_null(strstr(out, "HTTP/1.1 408 "));
    assert_non_null(strstr(out, "too slow"));
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(h->requests, 0);
    close(fd);

    /* A body faster than the floor, spread over several windows, is served. */
    fd = connect_one(h);
    out[0] = '\0';
    send_str(fd, "POST /fast HTTP/1.1\r\nHost: t\r\nContent-Length: 6000\r\n\r\n");
    char piece[500];
    memset(piece, 'b', sizeof piece);
    for (int i = 0; i < 12; i++) { /* 500 bytes per 50 ms: 10 kB/s */
        send_all(fd, piece, sizeof piece);
        collect(h, fd, out, sizeof out, "body=", 1, 50);
    }
    assert_false(collect(h, fd, out, sizeof out, "path=/fast body=6000", 1, WAIT_MS));
    close(fd);
    harness_free(h);
}

static void test_per_ip_cap(void **state)
{
    (void)state;
    struct http_limits lim = default_limits;
    lim.max_per_ip = 3;
    struct harness *h = harness_new(&lim);
    int held[3], rc;
    for (int i = 0; i < 3; i++) {
        held[i] = connect_from(h, "10.0.0.1", &rc);
        assert_int_equal(rc, 0);
    }
    /* A fourth from the same address is refused and closed at once... */
    int extra = connect_from(h, "10.0.0.1", &rc);
    assert_int_equal(rc, -1);
    char out[4096] = "";
    assert_true(collect(h, extra, out, sizeof out, NULL, 0, WAIT_MS));
    assert_string_equal(out, "");
    close(extra);
    assert_int_equal(http_server_connections(h->srv), 3);
    /* ...while another address is served. */
    int other = connect_from(h, "10.0.0.2", &rc);
    assert_int_equal(rc, 0);
    send_str(other, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_false(collect(h, other, out, sizeof out, "path=/other", 1, WAIT_MS));
    close(other);
    /* Once one of the first address's connections is gone, it may connect again. */
    close(held[0]);
    for (long long end = now_ms() + WAIT_MS; http_server_connections(h->srv) > 2 && now_ms() < end;)
        pump(h, 5);
    assert_int_equal(http_server_connections(h->srv), 2);
    int again = connect_from(h, "10.0.0.1", &rc);
    assert_int_equal(rc, 0);
    out[0] = '\0';
    send_str(again, "GET /again HTTP/1.0\r\n\r\n");
    assert_true(collect(h, again, out, sizeof out, NULL, 0, WAIT_MS));
    assert_non_null(strstr(out, "path=/again"));
    close(again);
    close(held[1]);
    close(held[2]);
    harness_free(h);
}

static void test_max_connections(void **state)
{
    (void)state;
    struct http_limits lim = default_limits;
    lim.max_connections = 2;
    struct harness *h = harness_new(&lim);
    int rc, a = connect_from(h, "10.0.0.1", &rc);
    assert_int_equal(rc, 0);
    int b = connect_from(h, "10.0.0.2", &rc);
    assert_int_equal(rc, 0);
    int c = connect_from(h, "10.0.0.3", &rc);
    assert_int_equal(rc, -1);
    char out[64] = "";
    assert_true(collect(h, c, out, sizeof out, NULL, 0, WAIT_MS));
    close(a);
    close(b);
    close(c);
    harness_free(h);
}

/* X-Forwarded-For (trusted_proxies): read only from a trusted peer, and
 * then the right-most untrusted entry names the client (proxy.h). */
static void ask_from(struct harness *h, const char *peer, const char *head, const char *want)
{
    int rc;
    int fd = connect_from(h, peer, &rc);
    assert_int_equal(rc, 0);
    send_str(fd, head);
    char out[8192] = "";
    collect(h, fd, out, sizeof out, ";", 1, WAIT_MS);
    if (!strstr(out, want))
        fail_msg("from %s: want \"%s\", got: %s", peer, want, out);
    close(fd);
    pump(h, 5);
}

static void test_forwarded_for(void **state)
{
    (void)state;
    struct netset *trusted = NULL;
    char *entries[] = {"10.0.0.9", "10.9.0.0/16"};
    char err[128];
    assert_int_equal(netset_new(entries, 2, &trusted, err, sizeof err), 0);
    struct http_limits lim = default_limits;
    lim.max_head_bytes = 64 * 1024;
    lim.trusted_proxies = trusted;
    struct harness *h = harness_new(&lim);
    /* from an untrusted peer the header is ignored */
    ask_from(h, "10.0.0.1", "GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.5\r\n\r\n",
             "client=10.0.0.1;");
    /* from the balancer it names the client */
    ask_from(h, "10.0.0.9", "GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.5\r\n\r\n",
             "client=192.0.2.5;");
    ask_from(h, "10.0.0.9", "GET /a HTTP/1.1\r\nHost: t\r\nx-forwarded-for: 6.6.6.6, 192.0.2.5, "
             "10.9.3.3\r\n\r\n", "client=192.0.2.5;");
    /* without one, or with garbage, the client is the balancer */
    ask_from(h, "10.0.0.9", "GET /a HTTP/1.1\r\nHost: t\r\n\r\n", "client=10.0.0.9;");
    ask_from(h, "10.0.0.9", "GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.5:99\r\n\r\n",
             "client=10.0.0.9;");
    ask_from(h, "10.0.0.9", "GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: \r\n\r\n",
             "client=10.0.0.9;");
    /* many headers: read as one list, last line last; the client's own line is never read */
    ask_from(h, "10.0.0.9", "GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: ::1, <x>\r\n"
             "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2001:db8::7\r\n\r\n",
             "client=2001:db8::7;");
    /* a huge header: only its right end is read */
    size_t cap = 40 * 1024, len = 0;
    char *req = malloc(cap + 256);
    len = (size_t)sprintf(req, "GET /a HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: ");
    while (len < cap)
        len += (size_t)sprintf(req + len, "10.9.%zu.1, ", len % 200);
    sprintf(req + len, "192.0.2.77\r\n\r\n");
    ask_from(h, "10.0.0.9", req, "client=192.0.2.77;");
    /* ...and a chain of trusted hops longer than PROXY_MAX_HOPS: the balancer */
    sprintf(req + len, "10.9.9.9\r\n\r\n");
    ask_from(h, "10.0.0.9", req, "client=10.0.0.9;");
    free(req);
    harness_free(h);
    netset_free(trusted);
}

/* Behind a trusted balancer, max_per_ip counts each forwarded client's
 * requests in progress (not the balancer's connections). */
static void test_forwarded_cap(void **state)
{
    (void)state;
    struct netset *trusted = NULL;
    char *entries[] = {"10.0.0.9"};
    char err[128];
    assert_int_equal(netset_new(entries, 1, &trusted, err, sizeof err), 0);
    struct http_limits lim = default_limits;
    lim.max_per_ip = 2;
    lim.trusted_proxies = trusted;
    struct harness *h = harness_new(&lim);
    int rc, fds[4];
    for (int i = 0; i < 4; i++) { /* the balancer is not held to 2 connections */
        fds[i] = connect_from(h, "10.0.0.9", &rc);
        assert_int_equal(rc, 0);
    }
    const char *hold = "GET /hold HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.5\r\n\r\n";
    send_str(fds[0], hold);
    send_str(fds[1], hold);
    for (long long end = now_ms() + WAIT_MS; h->nheld < 2 && now_ms() < end;)
        pump(h, 5);
    assert_int_equal(h->nheld, 2);
    /* a third from the same client is refused... */
    send_str(fds[2], hold);
    char out[4096] = "";
    assert_true(collect(h, fds[2], out, sizeof out, NULL, 0, WAIT_MS));
    assert_non_null(strstr(out, "HTTP/1.1 429 Too Many Requests"));
    assert_int_equal(h->nheld, 2);
    /* ...another client through the same balancer is served */
    out[0] = '\0';
    send_str(fds[3], "GET /b HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.6\r\n\r\n");
    assert_false(collect(h, fds[3], out, sizeof out, "client=192.0.2.6;", 1, WAIT_MS));
    /* once one of its requests is answered, the first client is served again */
    http_reply(h->held[0], 200, "text/plain", NULL);
    out[0] = '\0';
    assert_false(collect(h, fds[0], out, sizeof out, "200 OK", 1, WAIT_MS));
    out[0] = '\0';
    send_str(fds[3], "GET /c HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 192.0.2.5\r\n\r\n");
    assert_false(collect(h, fds[3], out, sizeof out, "client=192.0.2.5;", 1, WAIT_MS));
    http_reply(h->held[1], 200, "text/plain", NULL); /* (a held request reads no EOF) */
    pump(h, 5);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    for (long long end = now_ms() + WAIT_MS; http_server_connections(h->srv) > 0 && now_ms() < end;)
        pump(h, 5);
    assert_int_equal(http_server_connections(h->srv), 0);
    harness_free(h);
    netset_free(trusted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_double_content_length),
        cmocka_unit_test(test_transfer_encoding),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_trailers),
        cmocka_unit_test(test_chunk_line_cap),
        cmocka_unit_test(test_reason_phrases),
        cmocka_unit_test(test_head_deadline),
        cmocka_unit_test(test_slow_body),
        cmocka_unit_test(test_per_ip_cap),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_forwarded_for),
        cmocka_unit_test(test_forwarded_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
