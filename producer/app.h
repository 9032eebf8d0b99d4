/*
 * app.h: the producer's shared state and the route/handler interface. The
 * route table itself is in routes.c (the one place listing every route).
 */
#ifndef TANGO_PRODUCER_APP_H
#define TANGO_PRODUCER_APP_H

#include <limits.h>
#include <stdbool.h>
#include <event2/event.h>
#include <jansson.h>

#include "callback_allow.h"
#include "config.h"
#include "http.h"
#include "labs.h"
#include "names.h"
#include "store.h"

/* Read-only answers shared by the requests of one event-loop turn. Every
 * request handled in a turn arrived before the turn's other work, so one
 * Redis read made during the turn may answer all of them: under load that
 * is one round trip per turn instead of one per request, and no answer is
 * older than the turn that sends it. Writes by this producer drop the memo. */
enum app_memo { MEMO_INFO, MEMO_OPEN, MEMO_COUNT };

struct app_memo_slot {
    char key[LAB_DIR_MAX];
    json_t *doc;
    struct timeval turn;
};

struct app {
    struct tango_config *cfg;
    struct store *store;
    struct event_base *base;
    struct http_server *http;
    struct install_secret secret; /* names labs and key ids (labs.h) */
    struct callback_policy *callbacks; /* config callback_allow */
    struct app_memo_slot memo[MEMO_COUNT];
    json_t *images;            /* image list cache (app_known_images) */
    json_t *owners;            /* {image: keyId} cache, refreshed with images */
    long long images_until_ms; /* monotonic ms it is good until */
};

#define ROUTE_MAX_ARGS 4

struct route_ctx;
typedef void (*route_fn)(struct http_request *req, struct route_ctx *ctx);

enum route_body { RB_NONE, RB_JSON, RB_STREAM };

struct route {
    const char *method;
    const char *name;        /* first path segment */
    int min_args, max_args;  /* segments after the name (the key included) */
    bool needs_key;
    bool has_lab;            /* args are KEY/COURSELAB/...: ctx->lab_dir is set */
    bool legacy;             /* Tango route: failures answer HTTP 200 */
    enum route_body body;
    route_fn on_head;        /* RB_STREAM: prepare the sink (may reply) */
    route_fn handler;
};

/* Per-request state, owned by the router (freed with the request). */
struct route_ctx {
    struct app *app;
    const struct route *route;
    char *args[ROUTE_MAX_ARGS]; /* URL-decoded segments after the name */
    int nargs;
    char key_id[KEY_ID_LEN + 1];        /* the caller's key id, when the route takes a key */
    char key_id_legacy[KEY_ID_LEN + 1]; /* its id before the secret (old job records) */
    char lab_dir[LAB_DIR_MAX];  /* set when the route has KEY/COURSELAB */
    const char *too_large;      /* on_head's 413 text for a body past its limit, or NULL */
    void *state;                /* handler's own (e.g. an upload) */
    void (*free_state)(void *state);
};

const struct route *routes_find(const char *name, const char *method, bool *name_known);

/* Router entry points, wired into http_handlers by main.c. */
void router_on_head(struct http_request *req, void *app);
void router_on_request(struct http_request *req, void *app);

/* The images a job may name: what the consumer published, else config's
 * "images". *out is a new JSON array. Cached for one second: a newly built
 * image is accepted at most a second after the consumer publishes it. */
int app_known_images(struct app *app, json_t **out);

/* Whether image is one of config's "images" (nobody's to build over),
 * compared as Docker names them (no tag = ":latest"). */
bool app_image_is_configured(const struct app *app, const char *image);
/* Whether key key_id owns image's repository (image without its tag) in the
 * owners app_known_images cached: a key that built NAME owns every tag of
 * NAME. A claim recorded before claims named repositories (the full name)
 * counts when the repository has none. */
bool app_owns_repo(const struct app *app, const char *key_id, const char *image);
/* A new JSON array of the repositories key key_id owns in the owners
 * app_known_images cached (call that first). */
json_t *app_owned_repos(const struct app *app, const char *key_id);
/* The known images (app_known_images) that key key_id may use: configured
 * ones and those whose repository it owns (images:owners, app_owns_repo). An image built by another key,
 * or a name nobody built that config does not list, is left out. *out is a
 * new JSON array; owners are cached with the image list (an owner never
 * changes once set, so the cache cannot grant another key's image). */
int app_usable_images(struct app *app, const char *key_id, json_t **out);

/* The memo's document for key if it was read in this turn (borrowed), else
 * NULL; put() takes over doc; drop() forgets; free_all() at exit. */
json_t *app_memo_get(struct app *app, enum app_memo which, const char *key);
void app_memo_put(struct app *app, enum app_memo which, const char *key, json_t *doc);
void app_memo_drop(struct app *app, enum app_memo which);
void app_memo_free_all(struct app *app);

/* Names that end up in job records or JSON listings (COURSELAB, Filename)
 * must be valid UTF-8: JSON cannot carry anything else. */
bool app_is_utf8(const char *s);

/* Streams the request body into a new file in dir (handlers_lab.c); on
 * success ctx->state is the struct upload. Replies itself on failure. */
void stream_body_to_dir(struct http_request *req, struct route_ctx *ctx, const char *dir);

/* Whether the caller's key may build image (handlers_admin.c): not one of
 * config's images (app_image_is_configured), and its repository (image
 * without its tag) is its own in images:owners (claimed now if nobody
 * built it: the one ownership rule of /build and /build_image).
 * Replies itself (the reason named) and returns false otherwise. */
bool build_claim(struct http_request *req, struct route_ctx *ctx, const char *image);
/* Makes (0700) and names the directory build bodies wait in for the
 * consumer (<courselabs>/.builds); -1 when it cannot. */
int app_builds_dir(struct app *app, char *out, size_t len);

/* Whether a job record belongs to the caller's key: its "keyId", or, for a
 * record made before jobs recorded one, the key id its "labDir" was named
 * with (so each old job stays visible to the key that made it, and to no
 * other). */
bool app_job_is_callers(const struct route_ctx *ctx, const json_t *job);

/* Parses args[1] as a job id and loads the job's record (live or dead);
 * replies itself and returns false on a bad id, unknown job or store error.
 * Another key's job answers exactly as an unknown one. */
bool load_job_arg(struct http_request *req, struct route_ctx *ctx, long long *id, json_t **job,
                  bool *dead);

/* Handlers (handlers_*.c). */
void h_hello(struct http_request *req, struct route_ctx *ctx);
void h_health(struct http_request *req, struct route_ctx *ctx);
void h_open(struct http_request *req, struct route_ctx *ctx);
void h_upload_head(struct http_request *req, struct route_ctx *ctx);
void h_upload(struct http_request *req, struct route_ctx *ctx);
void h_poll(struct http_request *req, struct route_ctx *ctx);
void h_add_job(struct http_request *req, struct route_ctx *ctx);
void h_jobs(struct http_request *req, struct route_ctx *ctx);
void h_partial_output(struct http_request *req, struct route_ctx *ctx);
void h_info(struct http_request *req, struct route_ctx *ctx);
void h_pool(struct http_request *req, struct route_ctx *ctx);
void h_prealloc(struct http_request *req, struct route_ctx *ctx);
void h_build_head(struct http_request *req, struct route_ctx *ctx);
void h_build(struct http_request *req, struct route_ctx *ctx);
void h_build_image_head(struct http_request *req, struct route_ctx *ctx);
void h_build_image(struct http_request *req, struct route_ctx *ctx);
void h_build_status(struct http_request *req, struct route_ctx *ctx);
void h_job(struct http_request *req, struct route_ctx *ctx);
void h_cancel(struct http_request *req, struct route_ctx *ctx);

#endif
