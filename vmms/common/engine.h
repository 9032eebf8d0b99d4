/*
 * engine.h: the one Docker Engine API client of the back ends that talk to
 * a local dockerd over its unix socket (localDocker for everything,
 * localOCI to export images into its layer store). engine.c owns the HTTP
 * calls (libcurl + jansson): the API version every path is sent under, a
 * small pool of curl handles kept open between calls, per-call timeouts,
 * JSON and tar request bodies, a 2xx answer kept in memory, streamed to a
 * callback or written to a file, the abort flag another thread may raise,
 * and turning a failed call or Docker's {"message": ...} answers into err.
 * distDocker reaches remote dockerds with the docker CLI over SSH instead.
 */
#ifndef TANGO_VMMS_ENGINE_H
#define TANGO_VMMS_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#pragma GCC visibility push(hidden)

#define VMMS_ENGINE_API "/v1.41"                  /* the Engine API version of every call */
#define VMMS_ENGINE_POOL_MAX 8                    /* idle curl handles kept */
#define VMMS_ENGINE_BODY_MAX (16L * 1024 * 1024)  /* biggest answer kept in memory */
#define VMMS_ENGINE_SOCKET_MAX 107                /* sun_path minus NUL */

/* One dockerd: where it listens, the default limit of a call, the idle
 * handles (guarded by lock: calls come from several threads). */
struct vmms_engine {
    bool ready;                  /* vmms_engine_init ran */
    char socket[VMMS_ENGINE_SOCKET_MAX + 1];
    int timeout_s;
    pthread_mutex_t lock;
    void *pool[VMMS_ENGINE_POOL_MAX]; /* idle CURL * handles */
    int npool;
};

/* Receives a 2xx answer's body as it arrives; returns len to go on,
 * anything else to stop the transfer (the call then still succeeds). */
typedef size_t (*vmms_engine_sink_fn)(const char *data, size_t len, void *arg);

struct vmms_engine_req {
    const char *method;        /* "GET", "POST", "DELETE" */
    const char *path;          /* after the API version, already URL-encoded */
    const json_t *json;        /* JSON request body, or NULL */
    FILE *upload;              /* tar request body streamed from here, or NULL */
    long long upload_size;     /* its size, -1 if unknown */
    int timeout_s;             /* whole-call limit; <= 0: the engine's timeout_s */
    long timeout_ms;           /* the same in ms; > 0 wins over timeout_s */
    vmms_engine_sink_fn sink;  /* stream a 2xx body here instead of keeping it */
    void *sink_arg;
    FILE *download;            /* or write a 2xx body to this file (all of it) */
    atomic_int *abort;         /* another thread sets it to end the call */
    bool fresh;                /* on a new connection, not kept for reuse */
    const char *registry_auth; /* X-Registry-Auth value, or NULL; a secret: never
                                * logged, its header copy wiped after the call */
};

struct vmms_engine_resp {
    long status;               /* HTTP status */
    char *body;                /* kept body (NUL-ended), unless streamed */
    size_t len;
    json_t *json;              /* body parsed as JSON, when it is JSON */
};

/* Readies e to call the dockerd listening on socket (at most
 * VMMS_ENGINE_SOCKET_MAX bytes, else cut), each call limited to timeout_s
 * unless its request says otherwise. libcurl's global set-up must have run
 * (vmms_init_check with curl). */
void vmms_engine_init(struct vmms_engine *e, const char *socket, int timeout_s);

/* Frees e's idle handles. e is readied or all zero (never readied: a no-op). */
void vmms_engine_destroy(struct vmms_engine *e);

/* Does one request. Returns VMMS_OK when Docker answered (whatever the HTTP
 * status), VMMS_TIMEOUT when the call ran out of time, VMMS_UNAVAILABLE when
 * dockerd is not there (socket refused or missing, connection cut),
 * VMMS_ERR otherwise (aborted, answer too big, download file not
 * writable); err says which. Free *resp with vmms_engine_resp_free always. */
int vmms_engine_call(struct vmms_engine *e, const struct vmms_engine_req *req,
                     struct vmms_engine_resp *resp, char *err, size_t errlen);

/* Frees what *resp holds and zeroes it. */
void vmms_engine_resp_free(struct vmms_engine_resp *resp);

/* Fills err with "what: Docker's message (Docker HTTP n)" (line breaks
 * folded); returns VMMS_NOT_FOUND for 404, VMMS_UNAVAILABLE for 502..504
 * (dockerd cannot serve now), VMMS_ERR otherwise (500 included: Docker's
 * answer to many failures of one request). */
int vmms_engine_fail(const struct vmms_engine_resp *resp, const char *what, char *err,
                     size_t errlen);

/* GET /_ping on a new connection within timeout_ms (a stopping dockerd
 * still answers on the connections it has open). VMMS_OK on 200, else
 * VMMS_UNAVAILABLE with err saying why. */
int vmms_engine_ping(struct vmms_engine *e, int timeout_ms, char *err, size_t errlen);

/* Percent-encodes s into buf (bufsz bytes, NUL-ended, cut when too small:
 * every byte outside [A-Za-z0-9_.~-]); returns buf. */
const char *vmms_engine_urlencode(const char *s, char *buf, size_t bufsz);

#pragma GCC visibility pop

#endif
