/*
 * layers_import.c: the three ways an image enters the layer store
 * (layers.c), each checking the image's digests before a record names it:
 *   - a `docker save` tarball (load_image, what /build receives;
 *     image_tar.h's tag rule first), read in two passes: the small JSON
 *     files, then each layer the store lacks, within the image budget;
 *   - an OCI image layout directory (lo_import_oci_dir);
 *   - the Docker engine's export (GET /images/ID/get over its socket:
 *     common/engine.h) when the store does not already hold that id.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "clock.h"
#include "common/engine.h"
#include "common/image_open.h"
#include "image_tar.h"
#include "layers_int.h"
#include "lo.h"
#include "log.h"
#include "names.h"

#define JSON_MAX (1L << 20)       /* manifest / config / index bytes */
#define JSONS_MAX 64              /* small top-level JSON files kept in pass 1 */
#define LAYERS_MAX 128
#define EXPORT_TIMEOUT_S 600

/* ---- `docker save` tarballs ---- */

struct small {
    char *name[256];
    char *data[256];
    size_t n, total;
};

static void small_free(struct small *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->name[i]);
        free(s->data[i]);
    }
}

static json_t *small_json(const struct small *s, const char *name)
{
    for (size_t i = s->n; i-- > 0;)
        if (strcmp(s->name[i], name) == 0)
            return json_loads(s->data[i], 0, NULL);
    return NULL;
}

static struct archive *open_tar(const char *path, char *err, size_t errlen)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK) {
        vmms_fail(err, errlen, VMMS_ERR, "cannot read %s: %s", path, archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Pass 2 of import_save: unpacks from tarball path each layer file
 * paths[i] (of nl) the store lacks as digest want[i], spending b; made[i]
 * tells which this call stored. */
static int unpack_layers(struct lo_ctx *ctx, const char *path, size_t nl,
                         const char (*paths)[PATH_MAX], const char (*want)[65], struct lo_budget *b,
                         bool *made, char *err, size_t errlen)
{
    struct archive *a = open_tar(path, err, errlen);
    if (a == NULL)
        return VMMS_ERR;
    struct archive_entry *e;
    char rel[PATH_MAX];
    int r, rc = VMMS_OK;
    while (rc == VMMS_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        if (lo_clean_path(archive_entry_pathname(e), rel, sizeof rel) != 0 ||
            archive_entry_filetype(e) != AE_IFREG)
            continue;
        for (size_t i = 0; i < nl; i++)
            if (strcmp(rel, paths[i]) == 0) {
                struct lo_source src = {.outer = a, .fd = -1, .budget = b};
                rc = lo_store_layer(ctx, &src, want[i], &made[i], err, errlen);
                break; /* one entry is read once: a layer listed twice is stored already */
            }
    }
    if (rc == VMMS_OK && r != ARCHIVE_EOF)
        rc = vmms_fail(err, errlen, VMMS_ERR, "bad tarball: %s", archive_error_string(a));
    archive_read_free(a);
    return rc;
}

/* After a failed import (rc not VMMS_OK): removes the layers it stored
 * (made[i]; no image record names them: imports hold import_lock). */
static void forget_made(struct lo_ctx *ctx, int rc, size_t nl, const char (*want)[65],
                        const bool *made)
{
    for (size_t i = 0; rc != VMMS_OK && i < nl; i++)
        if (made[i]) {
            char d[PATH_MAX];
            lo_layer_dir(ctx, want[i], d, sizeof d);
            lo_rm_tree(d);
            log_info("layer_forgotten", "digest=%.12s reason=\"the import failed\"", want[i]);
        }
}

/* Pass 1 of import_save: keeps in sm (up to 256 files, 16 * JSON_MAX
 * bytes) the small regular files of tarball path that may be manifest.json
 * or the image config (*.json, blobs/...). VMMS_OK, or VMMS_ERR with err
 * for an unreadable tarball (sm then holds what was read: small_free). */
static int read_small(const char *path, struct small *sm, char *err, size_t errlen)
{
    struct archive *a = open_tar(path, err, errlen);
    if (a == NULL)
        return VMMS_ERR;
    struct archive_entry *e;
    char rel[PATH_MAX];
    int r, rc = VMMS_OK;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        la_int64_t size = archive_entry_size(e);
        if (archive_entry_filetype(e) != AE_IFREG || size > JSON_MAX ||
            lo_clean_path(archive_entry_pathname(e), rel, sizeof rel) != 0 || sm->n == 256 ||
            sm->total + (size_t)size > 16 * JSON_MAX)
            continue;
        size_t n = strlen(rel);
        if (!(n > 5 && strcmp(rel + n - 5, ".json") == 0) && strncmp(rel, "blobs/", 6) != 0)
            continue;
        char *buf = malloc((size_t)size + 1);
        if (buf == NULL || archive_read_data(a, buf, (size_t)size) != size) {
            free(buf);
            continue;
        }
        buf[size] = '\0';
        sm->name[sm->n] = strdup(rel);
        sm->data[sm->n++] = buf;
        sm->total += (size_t)size;
    }
    if (r != ARCHIVE_EOF)
        rc = vmms_fail(err, errlen, VMMS_ERR, "bad tarball: %s", archive_error_string(a));
    archive_read_free(a); /* pass 2 opens it again, or not at all */
    return rc;
}

/* Imports tarball path as name within budget b (NULL: no budget). */
static int import_save(struct lo_ctx *ctx, const char *path, const char *name,
                       struct lo_budget *b, char *err, size_t errlen)
{
    struct small sm = {.n = 0};
    /* Pass 1: manifest.json and the small files the config may be. */
    int rc = read_small(path, &sm, err, errlen);
    json_t *man = rc == VMMS_OK ? small_json(&sm, "manifest.json") : NULL;
    json_t *m0 = json_array_get(man, 0);
    const char *cfg_name = json_string_value(json_object_get(m0, "Config"));
    json_t *lnames = json_object_get(m0, "Layers");
    char cfg_rel[PATH_MAX] = "";
    json_t *cfg = cfg_name && lo_clean_path(cfg_name, cfg_rel, sizeof cfg_rel) == 0
                      ? small_json(&sm, cfg_rel) : NULL;
    json_t *diff = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    small_free(&sm);
    if (rc == VMMS_OK && (!json_is_array(man) || json_array_size(man) != 1 || !cfg ||
                          !json_is_array(lnames) || !json_is_array(diff) ||
                          json_array_size(lnames) != json_array_size(diff) ||
                          json_array_size(lnames) == 0 || json_array_size(lnames) > LAYERS_MAX))
        rc = vmms_fail(err, errlen, VMMS_ERR, "not a `docker save` tarball of one image "
                       "(manifest.json, its config and 1..%d layers)", LAYERS_MAX);
    /* The digest each layer file must have, by its name in the tarball. */
    size_t nl = rc == VMMS_OK ? json_array_size(lnames) : 0;
    char (*paths)[PATH_MAX] = calloc(nl + 1, PATH_MAX);
    char (*want)[65] = calloc(nl + 1, 65);
    json_t *layers = json_array();
    for (size_t i = 0; i < nl && rc == VMMS_OK; i++) {
        const char *ln = json_string_value(json_array_get(lnames, i));
        const char *dh = lo_digest_hex(json_string_value(json_array_get(diff, i)));
        if (!ln || lo_clean_path(ln, paths[i], PATH_MAX) != 0 || !dh) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "manifest layer %zu is malformed", i);
            break;
        }
        const char *bh = strncmp(paths[i], "blobs/sha256/", 13) == 0 && lo_hex64(paths[i] + 13)
                             ? paths[i] + 13 : dh;
        strcpy(want[i], bh);
        json_array_append_new(layers, json_string(bh));
    }
    /* Pass 2: unpack the layers the store does not have. */
    bool *made = calloc(nl + 1, sizeof *made);
    if (rc == VMMS_OK)
        rc = unpack_layers(ctx, path, nl, paths, want, b, made, err, errlen);
    for (size_t i = 0; i < nl && rc == VMMS_OK; i++) {
        char d[PATH_MAX];
        lo_layer_dir(ctx, want[i], d, sizeof d);
        if (access(d, F_OK) != 0)
            rc = vmms_fail(err, errlen, VMMS_ERR, "layer %s is not in the tarball", paths[i]);
    }
    char id[80];
    const char *ch = cfg_rel[0] ? strrchr(cfg_rel, '/') : NULL;
    snprintf(id, sizeof id, "sha256:%.64s", ch ? ch + 1 : cfg_rel);
    if (rc == VMMS_OK)
        rc = lo_write_record(ctx, name, id, layers, cfg, err, errlen);
    forget_made(ctx, rc, nl, want, made); /* nothing half-imported stays */
    free(made);
    json_decref(layers);
    json_decref(man);
    json_decref(cfg);
    free(paths);
    free(want);
    return rc;
}

int lo_load_image(void *vctx, const char *tar_path, const char *name, int timeout_s,
                  const struct vmms_image_limits *lim, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    (void)timeout_s; /* bounded by the tarball's size; no network */
    int fd = vmms_image_tar_open(tar_path, name, lim, ctx->cfg.store_dir, err, errlen);
    if (fd < 0)
        return VMMS_ERR;
    close(fd);
    long long t0 = clock_mono_ms();
    struct lo_budget b = {lim->max_bytes, lim->max_entries, lim->max_bytes, lim->max_entries};
    pthread_mutex_lock(&ctx->import_lock);
    int rc = import_save(ctx, tar_path, name, &b, err, errlen);
    pthread_mutex_unlock(&ctx->import_lock);
    char q[300], qe[600];
    if (rc != VMMS_OK)
        log_warn("image_refused", "name=%s reason=%s", log_quote(name, q, sizeof q),
                 log_quote(err, qe, sizeof qe));
    else
        log_info("image_loaded", "name=%s ms=%lld", log_quote(name, q, sizeof q),
                 clock_mono_ms() - t0);
    return rc;
}

/* ---- OCI image layouts ---- */

static json_t *read_json_at(int dfd, const char *rel)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS};
    int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
    if (fd < 0)
        return NULL;
    struct stat st;
    json_t *j = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= JSON_MAX)
        j = json_loadfd(fd, 0, NULL);
    close(fd);
    return j;
}

static json_t *read_blob(int dfd, const char *digest)
{
    const char *h = lo_digest_hex(digest);
    char rel[100];
    if (!h)
        return NULL;
    snprintf(rel, sizeof rel, "blobs/sha256/%s", h);
    return read_json_at(dfd, rel);
}

int lo_import_oci_dir(struct lo_ctx *ctx, const char *dir, const char *name, char *err,
                      size_t errlen)
{
    if (name == NULL || !image_name_is_valid(name))
        return vmms_fail(err, errlen, VMMS_ERR, "bad image name");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot open %s: %s", dir, strerror(errno));
    json_t *index = read_json_at(dfd, "index.json");
    json_t *mans = json_object_get(index, "manifests"), *pick = NULL, *m;
    size_t i;
    json_array_foreach(mans, i, m) {
        const char *ref = json_string_value(json_object_get(
            json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
        const char *colon = strrchr(name, ':');
        if (json_array_size(mans) == 1 || (ref && colon && strcmp(ref, colon + 1) == 0) ||
            (ref && !colon && strcmp(ref, "latest") == 0))
            pick = m;
    }
    json_t *man = pick ? read_blob(dfd, json_string_value(json_object_get(pick, "digest")))
                       : NULL;
    const char *cfg_digest = json_string_value(json_object_get(json_object_get(man, "config"),
                                                               "digest"));
    json_t *cfg = read_blob(dfd, cfg_digest);
    json_t *ls = json_object_get(man, "layers"), *layers = json_array(), *l;
    /* (an image of no layers would be stored, then refused as damaged) */
    int rc = man && cfg && json_is_array(ls) && json_array_size(ls) > 0 &&
                     json_array_size(ls) <= LAYERS_MAX
                 ? VMMS_OK
                 : vmms_fail(err, errlen, VMMS_ERR, "%s is not an OCI image layout holding "
                             "%s (index.json, an image manifest, its config, 1..%d layers)",
                             dir, name, LAYERS_MAX);
    pthread_mutex_lock(&ctx->import_lock);
    json_array_foreach(ls, i, l) {
        const char *h = lo_digest_hex(json_string_value(json_object_get(l, "digest")));
        if (rc != VMMS_OK)
            break;
        if (!h) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "layer %zu has no sha256 digest", i);
            break;
        }
        char rel[100];
        snprintf(rel, sizeof rel, "blobs/sha256/%s", h);
        struct open_how how = {.flags = O_RDONLY | O_CLOEXEC,
                               .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS};
        int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
        if (fd < 0) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "layer blob %s: %s", rel, strerror(errno));
            break;
        }
        struct lo_source src = {.fd = fd};
        rc = lo_store_layer(ctx, &src, h, NULL, err, errlen);
        close(fd);
        json_array_append_new(layers, json_string(h));
    }
    if (rc == VMMS_OK)
        rc = lo_write_record(ctx, name, cfg_digest, layers, cfg, err, errlen);
    pthread_mutex_unlock(&ctx->import_lock);
    json_decref(layers);
    json_decref(cfg);
    json_decref(man);
    json_decref(index);
    close(dfd);
    return rc;
}

/* ---- the Docker engine's export ---- */

/* One call of localOCI to Docker (common/engine.h): a transfer that failed
 * for any reason is VMMS_ERR here (no Docker is not an outage of localOCI). */
static int docker_call(struct lo_ctx *ctx, const struct vmms_engine_req *req,
                       struct vmms_engine_resp *resp, char *err, size_t errlen)
{
    int rc = vmms_engine_call(&ctx->docker, req, resp, err, errlen);
    return rc == VMMS_OK ? VMMS_OK : VMMS_ERR;
}

/* The engine's image id ("sha256:<64 hex>") of image name into id (80
 * bytes): VMMS_NOT_FOUND when Docker has no such image. */
static int docker_image_id(struct lo_ctx *ctx, const char *name, char *id, char *err,
                           size_t errlen)
{
    char path[400];
    snprintf(path, sizeof path, "/images/%s/json", name);
    struct vmms_engine_req req = {.method = "GET", .path = path, .timeout_s = 10};
    struct vmms_engine_resp resp;
    int rc = docker_call(ctx, &req, &resp, err, errlen);
    const char *got = json_string_value(json_object_get(resp.json, "Id"));
    if (rc == VMMS_OK && resp.status == 404)
        rc = vmms_fail(err, errlen, VMMS_NOT_FOUND, "image %s: neither in the layer store "
                       "nor in Docker", name);
    else if (rc == VMMS_OK && (resp.status != 200 || !lo_digest_hex(got)))
        rc = vmms_fail(err, errlen, VMMS_ERR, "Docker: cannot inspect image %s (HTTP %ld)",
                       name, resp.status);
    if (rc == VMMS_OK)
        snprintf(id, 80, "%s", got);
    vmms_engine_resp_free(&resp);
    return rc;
}

/* Whether the store's record of name has image id id. */
static bool store_has(struct lo_ctx *ctx, const char *name, const char *id)
{
    json_t *rec = NULL;
    char e2[256];
    bool same = lo_image_get(ctx, name, &rec, e2, sizeof e2) == VMMS_OK &&
                strcmp(json_string_value(json_object_get(rec, "id")) ?: "", id) == 0;
    json_decref(rec);
    return same;
}

/* Has Docker export image id (named name in errors) into a temporary file
 * of the store and imports that as name (the engine's own: no caps).
 * Callers hold import_lock. */
static int export_import(struct lo_ctx *ctx, const char *name, const char *id, char *err,
                         size_t errlen)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/tmp/export-%d-XXXXXX", ctx->cfg.store_dir, (int)getpid());
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w+") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot make %s: %s", tmp, strerror(errno));
    }
    char path[400];
    snprintf(path, sizeof path, "/images/%s/get", id);
    struct vmms_engine_req req = {.method = "GET", .path = path, .timeout_s = EXPORT_TIMEOUT_S,
                                  .download = f};
    struct vmms_engine_resp resp;
    int rc = docker_call(ctx, &req, &resp, err, errlen);
    if (fclose(f) != 0 && rc == VMMS_OK)
        rc = vmms_fail(err, errlen, VMMS_ERR, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_fail(err, errlen, VMMS_ERR, "Docker: cannot export image %s (HTTP %ld)",
                       name, resp.status);
    vmms_engine_resp_free(&resp);
    if (rc == VMMS_OK)
        rc = import_save(ctx, tmp, name, NULL, err, errlen);
    unlink(tmp);
    return rc;
}

int lo_import_docker(struct lo_ctx *ctx, const char *name, char *err, size_t errlen)
{
    if (!ctx->docker.ready || access(ctx->cfg.docker_socket, F_OK) != 0)
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "image %s is not in the layer store "
                         "and there is no Docker engine to export it from", name);
    if (!image_name_is_valid(name))
        return vmms_fail(err, errlen, VMMS_ERR, "bad image name");
    char want_id[80];
    int rc = docker_image_id(ctx, name, want_id, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    pthread_mutex_lock(&ctx->import_lock);
    if (store_has(ctx, name, want_id)) {
        pthread_mutex_unlock(&ctx->import_lock);
        return VMMS_OK; /* the store has this very image */
    }
    long long t0 = clock_mono_ms();
    rc = export_import(ctx, name, want_id, err, errlen);
    pthread_mutex_unlock(&ctx->import_lock);
    char q[300];
    if (rc == VMMS_OK)
        log_info("image_imported", "name=%s from=docker id=%.19s ms=%lld",
                 log_quote(name, q, sizeof q), want_id, clock_mono_ms() - t0);
    return rc;
}
