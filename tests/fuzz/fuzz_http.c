/* fuzz_http.c: libFuzzer harness for the producer's HTTP framing and router
 * (producer/http.c, producer/router.c and the handlers behind it), driven
 * through the public entry points: every input is one client connection
 * adopted with http_server_adopt() on a socketpair, served by
 * router_on_head/router_on_request on the producer's own app state.
 *
 * The first input byte picks how the rest arrives: 0 all at once, N pieces
 * of N bytes with an event-loop turn between them (so heads, chunk-size
 * lines and bodies also arrive split). Then the client half-closes, reads
 * every reply, and finally closes; the server must have closed the
 * connection by then (a connection left open after its client is gone is
 * reported as a crash).
 *
 * State: the key "fuzzkey" (in the dictionary), a courselabs directory in a
 * private temporary directory, and a Redis URL nobody listens on: every
 * store call answers "unavailable" at once, so handlers run their refusal
 * paths without a network round trip. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <event2/event.h>

#include "app.h"
#include "fuzz_util.h"
#include "log.h"

#define MAX_TURNS 2000

static struct tango_config cfg;
static struct app app;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_init("fuzz", LOG_ERROR);
    char courselabs[PATH_MAX], env_labs[PATH_MAX + 32], err[512];
    snprintf(courselabs, sizeof courselabs, "%s/courselabs", fuzz_tmpdir());
    snprintf(env_labs, sizeof env_labs, "TANGO_COURSELABS=%s", courselabs);
    char *const envp[] = {env_labs, "TANGO_KEYS=fuzzkey", "TANGO_REDIS_URL=redis://127.0.0.1:1/0",
                          "TANGO_REDIS_TIMEOUT_MS=50", "TANGO_CALLBACK_ALLOW=127.0.0.1", NULL};
    if (config_load(&cfg, NULL, envp, err, sizeof err) < 0 || mkdir(courselabs, 0700) < 0 ||
        install_secret_load(courselabs, NULL, &app.secret, err, sizeof err) < 0 ||
        callback_policy_new(cfg.callback_allow, cfg.ncallback_allow, &app.callbacks, err,
                            sizeof err) < 0) {
        fprintf(stderr, "fuzz_http: set-up failed: %s\n", err);
        abort();
    }
    app.cfg = &cfg;
    app.store = store_new(&cfg);
    app.base = event_base_new();
    struct http_limits lim = {
        .max_head_bytes = (size_t)cfg.max_header_kb * 1024,
        .max_headers = 100,
        .timeout_s = cfg.http_timeout_s,
        .head_timeout_ms = cfg.http_head_timeout_s * 1000,
        .min_body_bps = cfg.http_min_body_bps,
        .body_window_ms = 10000,
        .max_connections = cfg.max_connections,
        .max_per_ip = cfg.max_connections_per_ip,
    };
    struct http_handlers handlers = {router_on_head, router_on_request, &app};
    app.http = http_server_new(app.base, &lim, &handlers);
    if (!app.store || !app.base || !app.http)
        abort();
    return 0;
}

/* One event-loop turn, then whatever the server wrote is read and dropped. */
static void turn(int fd)
{
    event_base_loop(app.base, EVLOOP_NONBLOCK);
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t piece = fuzz_take_piece(&data, &size);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    if (http_server_adopt(app.http, sv[1], NULL, 0) < 0)
        abort();
    int turns = 0;
    while (size > 0 && turns < MAX_TURNS && http_server_connections(app.http) > 0) {
        size_t n = size < piece ? size : piece;
        ssize_t w = write(sv[0], data, n);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            break; /* the server closed: the rest is not read */
        if (w > 0) {
            data += w;
            size -= (size_t)w;
        }
        turn(sv[0]);
        turns++;
    }
    shutdown(sv[0], SHUT_WR);
    for (int i = 0; i < MAX_TURNS && http_server_connections(app.http) > 0; i++)
        turn(sv[0]);
    close(sv[0]);
    for (int i = 0; i < MAX_TURNS && http_server_connections(app.http) > 0; i++)
        event_base_loop(app.base, EVLOOP_NONBLOCK);
    if (http_server_connections(app.http) != 0) {
        fprintf(stderr, "fuzz_http: the connection outlived its client\n");
        abort();
    }
    return 0;
}
