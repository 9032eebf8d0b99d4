/*
 * builder.c: the Dockerfile builder threads (builder.h). Each thread, in
 * a loop: takes back the builds of consumers that died (any consumer
 * does; the script is idempotent), takes a queued build, sends its
 * context (the stored tar, or a one-entry tar made of the stored
 * Dockerfile) to POST /build under the limits, reads the answer with
 * build_log.c, pushes a built image when build_push_to is set
 * (image_push.c) and records the verdict (with the pushed reference). The
 * image is labelled tango.build (the build id) and tango.image (its name)
 * for clean-up. A build cut short by this consumer's stop is left recorded
 * as running for the recovery.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "builder.h"
#include "build_log.h"
#include "common/engine.h"
#include "consumer.h"
#include "image_push.h"
#include "image_ref.h"
#include "log.h"
#include "pool.h"

#define IDLE_MS 500
#define RECOVER_EVERY_MS 2000
#define THREADS_MAX 64

struct builder {
    struct consumer *c;
    struct vmms_engine engine;
    atomic_int abort;          /* raised at stop: ends the Docker call */
    pthread_t threads[THREADS_MAX];
    int nthreads;
};

/* Opens the stored body at path without following a link; NULL (logged). */
static FILE *open_body(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f && fd >= 0)
        close(fd);
    return f;
}

/* A temporary tar holding df (the stored Dockerfile) as "Dockerfile",
 * rewound; NULL when it cannot be made. */
static FILE *dockerfile_tar(FILE *df)
{
    struct stat sb;
    if (fstat(fileno(df), &sb) || sb.st_size < 0)
        return NULL;
    char *data = malloc((size_t)sb.st_size + 1);
    FILE *tar = tmpfile();
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    bool ok = data && tar && a && e && fread(data, 1, (size_t)sb.st_size, df) == (size_t)sb.st_size &&
              archive_write_set_format_ustar(a) == ARCHIVE_OK &&
              archive_write_open_FILE(a, tar) == ARCHIVE_OK;
    if (ok) {
        archive_entry_set_pathname(e, "Dockerfile");
        archive_entry_set_size(e, sb.st_size);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        ok = archive_write_header(a, e) == ARCHIVE_OK &&
             archive_write_data(a, data, (size_t)sb.st_size) == sb.st_size &&
             archive_write_close(a) == ARCHIVE_OK;
    }
    archive_entry_free(e);
    if (a)
        archive_write_free(a);
    free(data);
    if (!ok || fflush(tar) || fseek(tar, 0, SEEK_SET)) {
        if (tar)
            fclose(tar);
        return NULL;
    }
    return tar;
}

static size_t log_sink(const char *data, size_t len, void *arg)
{
    build_log_feed(arg, data, len);
    return len;
}

/* Runs one build's Docker call into bl. Returns the engine's status; err
 * says why a call failed. */
static int docker_build(struct builder *b, const json_t *rec, FILE *ctx_tar,
                        struct build_log *bl, char *err, size_t errlen)
{
    const struct tango_config *cfg = b->c->cfg;
    char image[1024], path[4096], lab_enc[2048];
    long long mem = (long long)cfg->build_memory_mb << 20;
    const char *name = json_string_value(json_object_get(rec, "image"));
    json_t *lab = json_pack("{s:s, s:s}", "tango.build", "", "tango.image", name);
    json_object_set_new(lab, "tango.build",
                        json_sprintf("%lld", (long long)json_integer_value(json_object_get(rec, "id"))));
    char *labels = json_dumps(lab, JSON_COMPACT);
    json_decref(lab);
    vmms_engine_urlencode(name, image, sizeof image);
    vmms_engine_urlencode(labels ? labels : "{}", lab_enc, sizeof lab_enc);
    free(labels);
    snprintf(path, sizeof path, "/build?t=%s&labels=%s&memory=%lld&memswap=%lld&rm=1&forcerm=1"
             "&pull=0&networkmode=%s", image, lab_enc, mem, mem, cfg->build_network);
    fseek(ctx_tar, 0, SEEK_END);
    long long size = ftell(ctx_tar);
    fseek(ctx_tar, 0, SEEK_SET);
    struct vmms_engine_req req = {.method = "POST", .path = path, .upload = ctx_tar,
                                  .upload_size = size, .timeout_s = cfg->build_image_timeout_s,
                                  .sink = log_sink, .sink_arg = bl, .abort = &b->abort,
                                  .fresh = true};
    struct vmms_engine_resp resp = {0};
    int rc = vmms_engine_call(&b->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status / 100 != 2)
        rc = vmms_engine_fail(&resp, "Docker build", err, errlen);
    vmms_engine_resp_free(&resp);
    return rc;
}

/* Records the verdict of build rec (ref: its pushed reference, or NULL);
 * removes its stored body once ended. */
static void finish(struct builder *b, struct store *st, const json_t *rec, bool ok,
                   const char *why, const char *log_text, const char *ref)
{
    long long id = json_integer_value(json_object_get(rec, "id"));
    const char *image = json_string_value(json_object_get(rec, "image"));
    bool stale = false, warned = false;
    /* until Redis has it: a verdict lost here would leave the build
     * "running" under this live consumer, never taken back */
    while (store_build_finish(st, id, b->c->token, ok ? "done" : "failed", ok ? 0 : -1,
                              ok ? "built" : why, log_text, ref, &stale) != STORE_OK) {
        if (!warned)
            log_warn("image_build_record_failed", "build_id=%lld reason=store_unavailable "
                     "retrying=1", id);
        warned = true;
        if (atomic_load(&b->c->stopping))
            return; /* left running: the next consumer's recovery builds it again */
        usleep(IDLE_MS * 1000);
    }
    if (stale)
        log_warn("image_build_stale", "build_id=%lld reason=taken_back", id);
    else if (ok)
        log_info("image_build_done", "build_id=%lld image=%s pushed=%s", id, image,
                 ref ? ref : "-");
    else {
        char qi[300], qw[1200]; /* why may quote the course's Dockerfile or a registry */
        log_warn("image_build_failed", "build_id=%lld image=%s error=%s", id,
                 log_quote(image, qi, sizeof qi), log_quote(why, qw, sizeof qw));
    }
    if (!stale)
        unlink(json_string_value(json_object_get(rec, "path")));
    if (ok && !stale) {
        pool_image_rebuilt(b->c->pool, image);
        upkeep_publish_images(b->c, st);
    }
}

/* Pushes built rec (log: its build log) and records the verdict: done with
 * the pushed reference, or failed with the push's error added to the log. */
static void push_built(struct builder *b, struct store *st, const json_t *rec,
                       const char *log)
{
    const char *image = json_string_value(json_object_get(rec, "image"));
    char ref[IMAGE_REF_MAX + 1], err[1024] = "";
    int rc = image_push(&b->engine, b->c->cfg, image, b->c->cfg->build_image_timeout_s,
                        &b->abort, ref, sizeof ref, err, sizeof err);
    if (atomic_load(&b->abort))
        return; /* left running: the recovery builds it again */
    if (rc == VMMS_OK) {
        finish(b, st, rec, true, "", log, ref);
        return;
    }
    if (rc == VMMS_TIMEOUT)
        snprintf(err, sizeof err, "the push ran past build_image_timeout_s");
    size_t n = strlen(log) + strlen(err) + 32;
    char *text = malloc(n);
    if (text)
        snprintf(text, n, "%s\nPush failed: %s\n", log, err);
    finish(b, st, rec, false, err, text ? text : log, NULL);
    free(text);
}

/* Runs build rec from its stored body to its recorded verdict. */
static void run_build(struct builder *b, struct store *st, const json_t *rec)
{
    const char *path = json_string_value(json_object_get(rec, "path"));
    const char *image = json_string_value(json_object_get(rec, "image"));
    bool tar = strcmp(json_string_value(json_object_get(rec, "context")) ?: "", "tar") == 0;
    FILE *body = path && image ? open_body(path) : NULL;
    FILE *ctx_tar = body && !tar ? dockerfile_tar(body) : body;
    struct build_log bl;
    if (!ctx_tar || build_log_init(&bl, (size_t)b->c->cfg->build_log_max_kb * 1024)) {
        finish(b, st, rec, false, "the stored Dockerfile cannot be read", "", NULL);
        if (ctx_tar && ctx_tar != body)
            fclose(ctx_tar);
        if (body)
            fclose(body);
        return;
    }
    char err[512] = "";
    int rc = docker_build(b, rec, ctx_tar, &bl, err, sizeof err);
    build_log_end(&bl);
    if (atomic_load(&b->abort))
        log_info("image_build_interrupted", "build_id=%lld reason=consumer_stopping",
                 (long long)json_integer_value(json_object_get(rec, "id")));
    else if (rc != VMMS_OK)
        finish(b, st, rec, false, rc == VMMS_TIMEOUT ? "the build ran past build_image_timeout_s"
                                                     : err, bl.text, NULL);
    else if (bl.failed || !b->c->cfg->build_push_to[0])
        finish(b, st, rec, !bl.failed, bl.failed ? bl.error : "", bl.text, NULL);
    else
        push_built(b, st, rec, bl.text);
    build_log_free(&bl);
    if (ctx_tar != body)
        fclose(ctx_tar);
    fclose(body);
}

static void *builder_main(void *arg)
{
    struct builder *b = arg;
    struct store *st = store_new(b->c->cfg);
    long long since_recover = RECOVER_EVERY_MS;
    while (!atomic_load(&b->c->stopping)) {
        if (since_recover >= RECOVER_EVERY_MS) {
            long long n = 0;
            if (store_build_recover(st, &n) == STORE_OK && n > 0)
                log_warn("image_builds_taken_back", "count=%lld reason=consumer_gone", n);
            since_recover = 0;
        }
        json_t *rec = NULL;
        if (store_build_take(st, b->c->token, &rec) == STORE_OK && json_is_object(rec)) {
            run_build(b, st, rec);
            since_recover = RECOVER_EVERY_MS;
        } else {
            usleep(IDLE_MS * 1000);
            since_recover += IDLE_MS;
        }
        json_decref(rec);
    }
    store_free(st);
    return NULL;
}

int builder_start(struct consumer *c)
{
    if (c->cfg->builds_at_once <= 0)
        return 0;
    struct builder *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    b->c = c;
    vmms_engine_init(&b->engine, c->cfg->build_docker_socket, c->cfg->build_image_timeout_s);
    c->builder = b;
    for (int i = 0; i < c->cfg->builds_at_once && i < THREADS_MAX; i++) {
        if (pthread_create(&b->threads[i], NULL, builder_main, b)) {
            builder_stop(c);
            return -1;
        }
        b->nthreads++;
    }
    log_info("builder_started", "threads=%d socket=%s", b->nthreads, c->cfg->build_docker_socket);
    return 0;
}

void builder_stop(struct consumer *c)
{
    struct builder *b = c->builder;
    if (!b)
        return;
    atomic_store(&b->abort, 1);
    for (int i = 0; i < b->nthreads; i++)
        pthread_join(b->threads[i], NULL);
    vmms_engine_destroy(&b->engine);
    free(b);
    c->builder = NULL;
}
