/*
 * pull.c: localOCI's way in with no daemon: an image pulled from a registry
 * (vmms/common/registry.h) into the layer store (layers.c), checked at
 * every step. Owns lo_pull:
 *   - the record: <store>/images/reg-<hex>.json, <hex> the sha256 of the
 *     full reference "host/path@sha256:..." (a tag's digest resolved at
 *     the pull): the same reference pulled before needs no network; the
 *     same digest under another registry or repository is asked of that
 *     registry (its manifest, with its credentials) before the layers
 *     already here are shared, so a registry that never granted the
 *     image cannot have it run;
 *   - the manifest (an index's linux/amd64 one), the image config (to
 *     memory, at most REG_MANIFEST_MAX) and each layer the store lacks:
 *     to a file in <store>/tmp, at most the size the manifest declares
 *     (itself at most image_max_unpacked_mb) (sha256 checked as it arrives,
 *     removed when wrong), refused when what it unpacks to does not fit the store's
 *     free space (with an eighth more), unpacked by lo_store_layer (sha256 checked again, the unpack
 *     rules, the budget of image_max_unpacked_mb and image_max_entries),
 *     the file removed; layers another image already brought are shared;
 *   - one pull at a time under import_lock, so two jobs wanting the same
 *     image at once cause one pull; a failure removes the layers this pull
 *     stored and writes no record; what a killed consumer left in tmp/ is
 *     removed at the next start (lo_store_init).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "clock.h"
#include "common/registry.h"
#include "image_ref.h"
#include "layers_int.h"
#include "lo.h"
#include "log.h"
#include "names.h"

/* What one pull works on. */
struct pull {
    struct lo_ctx *ctx;
    struct reg_client client;
    const char *repo;
    struct reg_image img;
    bool made[REG_LAYERS_MAX];
    size_t fetched;
    long long fetch_ms, unpack_ms, bytes; /* of the layers fetched */
};

/* Whether the store holds record rec_name already. */
static bool have_record(struct lo_ctx *ctx, const char *rec_name)
{
    json_t *rec = NULL;
    char e[256];
    int rc = lo_image_get(ctx, rec_name, &rec, e, sizeof e);
    json_decref(rec);
    return rc == VMMS_OK;
}

/* The image manifest of the body got for the reference (an index: its
 * linux/amd64 manifest, fetched by digest) into p->img. */
static int read_manifest(struct pull *p, char *body, size_t len, const char *ctype, char *err,
                         size_t errlen)
{
    char pick[72], ct2[128], dg[72];
    int kind = reg_manifest_parse(body, len, ctype, &p->img, pick, err, errlen);
    if (kind != REG_INDEX)
        return kind == REG_IMAGE ? VMMS_OK : VMMS_ERR;
    char *b2 = NULL;
    size_t l2 = 0;
    int rc = reg_get_manifest(&p->client, p->repo, pick, &b2, &l2, ct2, dg, err, errlen);
    if (rc == VMMS_OK) {
        kind = reg_manifest_parse(b2, l2, ct2, &p->img, pick, err, errlen);
        if (kind == REG_INDEX)
            vmms_fail(err, errlen, VMMS_ERR, "the index's linux/amd64 entry is an index again");
        rc = kind == REG_IMAGE ? VMMS_OK : VMMS_ERR;
    }
    free(b2);
    return rc;
}

/* The image config (verified) as JSON into *cfg. */
static int read_config(struct pull *p, json_t **cfg, char *err, size_t errlen)
{
    char *body = NULL;
    size_t len = 0;
    int rc = reg_get_blob_mem(&p->client, p->repo, p->img.config, REG_MANIFEST_MAX, &body, &len,
                              err, errlen);
    *cfg = rc == VMMS_OK ? json_loadb(body, len, 0, NULL) : NULL;
    free(body);
    if (rc == VMMS_OK && !json_is_object(*cfg))
        rc = vmms_fail(err, errlen, VMMS_ERR, "the image config is not a JSON object");
    return rc;
}

/* What the layer blob open at fd unpacks to (the sizes its tar headers
 * give) fits the free space of the store's file system, with an eighth
 * more (image_tar_admit's rule); fd is rewound. VMMS_OK or VMMS_ERR. */
static int layer_fits(struct lo_ctx *ctx, int fd, char *err, size_t errlen)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    long long bytes = 0;
    int r = ARCHIVE_FATAL;
    if (a && archive_read_support_filter_all(a) == ARCHIVE_OK &&
        archive_read_support_format_tar(a) == ARCHIVE_OK &&
        archive_read_open_fd(a, fd, 65536) == ARCHIVE_OK)
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK)
            bytes += archive_entry_size(e) > 0 ? archive_entry_size(e) : 0;
    archive_read_free(a);
    struct statvfs vfs;
    long long need = bytes + bytes / 8, avail = -1;
    if (lseek(fd, 0, SEEK_SET) != 0 || statvfs(ctx->cfg.store_dir, &vfs) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot tell the free space of %s: %s",
                         ctx->cfg.store_dir, strerror(errno));
    avail = (long long)vfs.f_bavail * (long long)vfs.f_frsize;
    if (r == ARCHIVE_EOF && avail < need)
        return vmms_fail(err, errlen, VMMS_ERR, "a layer unpacks to %lld MiB and the layer "
                         "store's disk has %lld MiB free (needs %lld MiB): refused",
                         bytes >> 20, avail >> 20, need >> 20);
    return VMMS_OK; /* (a bad tar: the unpack says so) */
}

/* Layer i into the store unless it is there: fetched to a file, its room
 * checked, unpacked. */
static int fetch_layer(struct pull *p, size_t i, struct lo_budget *b, char *err, size_t errlen)
{
    const char *hex = p->img.layers[i] + 7;
    char dir[PATH_MAX], tmpdir[PATH_MAX], blob[PATH_MAX];
    lo_layer_dir(p->ctx, hex, dir, sizeof dir);
    if (access(dir, F_OK) == 0)
        return VMMS_OK; /* another image brought it */
    if (p->img.sizes[i] > p->ctx->cfg.pull_max_bytes || p->img.sizes[i] > LONG_MAX)
        return vmms_fail(err, errlen, VMMS_ERR, "layer %.19s... declares %lld bytes, over "
                         "the image cap of %lld: refused", p->img.layers[i], p->img.sizes[i],
                         (long long)p->ctx->cfg.pull_max_bytes);
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp", p->ctx->cfg.store_dir);
    long long t0 = clock_mono_ms();
    int rc = reg_get_blob_file(&p->client, p->repo, p->img.layers[i],
                               (long)p->img.sizes[i], tmpdir, blob, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    long long t1 = clock_mono_ms();
    int fd = open(blob, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0)
        p->bytes += st.st_size;
    if (fd < 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "cannot read %s: %s", blob, strerror(errno));
    else if ((rc = layer_fits(p->ctx, fd, err, errlen)) == VMMS_OK) {
        struct lo_source src = {.fd = fd, .budget = b};
        rc = lo_store_layer(p->ctx, &src, hex, &p->made[i], err, errlen);
    }
    if (fd >= 0)
        close(fd);
    unlink(blob);
    p->fetched += rc == VMMS_OK;
    p->fetch_ms += t1 - t0;
    p->unpack_ms += clock_mono_ms() - t1;
    return rc;
}

/* Removes the layers this pull stored (after a failure). */
static void forget_made(struct pull *p)
{
    for (size_t i = 0; i < p->img.nlayers; i++)
        if (p->made[i]) {
            char d[PATH_MAX];
            lo_layer_dir(p->ctx, p->img.layers[i] + 7, d, sizeof d);
            lo_rm_tree(d);
            log_info("layer_forgotten", "digest=%.12s reason=\"the pull failed\"",
                     p->img.layers[i] + 7);
        }
}

/* Config, layers, record rec_name of the image whose manifest is body. */
static int pull_image(struct pull *p, char *body, size_t len, const char *ctype,
                      const char *rec_name, char *err, size_t errlen)
{
    json_t *cfg = NULL, *layers = json_array();
    int rc = read_manifest(p, body, len, ctype, err, errlen);
    if (rc == VMMS_OK)
        rc = read_config(p, &cfg, err, errlen);
    struct lo_budget b = {p->ctx->cfg.pull_max_bytes, p->ctx->cfg.pull_max_entries,
                          p->ctx->cfg.pull_max_bytes, p->ctx->cfg.pull_max_entries};
    for (size_t i = 0; rc == VMMS_OK && i < p->img.nlayers; i++) {
        rc = fetch_layer(p, i, &b, err, errlen);
        json_array_append_new(layers, json_string(p->img.layers[i] + 7));
    }
    if (rc == VMMS_OK)
        rc = lo_write_record(p->ctx, rec_name, p->img.config, layers, cfg, err, errlen);
    if (rc != VMMS_OK)
        forget_made(p);
    json_decref(layers);
    json_decref(cfg);
    return rc;
}

/* Under import_lock: the record of ref, pulled unless the store has it. */
static int pull_locked(struct pull *p, const struct image_ref *ref, char *rec_name,
                       char *err, size_t errlen)
{
    if (ref->digest[0]) {
        image_ref_record_name(ref, ref->digest, rec_name);
        if (have_record(p->ctx, rec_name))
            return VMMS_OK;
    }
    char *body = NULL, ctype[128], top[72];
    size_t len = 0;
    int rc = reg_get_manifest(&p->client, p->repo, image_ref_reference(ref), &body, &len, ctype,
                              top, err, errlen);
    if (rc == VMMS_OK) {
        image_ref_record_name(ref, top, rec_name);
        if (!have_record(p->ctx, rec_name))
            rc = pull_image(p, body, len, ctype, rec_name, err, errlen);
    }
    free(body);
    return rc;
}

int lo_pull(struct lo_ctx *ctx, const char *name, char *rec_name, char *err, size_t errlen)
{
    struct image_ref ref;
    rec_name[0] = '\0';
    if (image_ref_parse(name, &ref) != 0 || !ref.remote)
        return vmms_fail(err, errlen, VMMS_ERR, "not a registry reference");
    struct pull *p = calloc(1, sizeof *p);
    if (p == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    p->ctx = ctx;
    p->repo = ref.path;
    int rc = reg_client_init(&p->client, ctx->cfg.registries, ref.registry, err, errlen);
    long long t0 = clock_mono_ms();
    if (rc == VMMS_OK) {
        pthread_mutex_lock(&ctx->import_lock);
        rc = pull_locked(p, &ref, rec_name, err, errlen);
        pthread_mutex_unlock(&ctx->import_lock);
    }
    reg_client_clear(&p->client);
    char q[300], qe[600];
    if (rc != VMMS_OK)
        log_warn("image_pull_failed", "name=%s reason=%s", log_quote(name, q, sizeof q),
                 log_quote(err, qe, sizeof qe));
    else if (p->img.nlayers > 0)
        log_info("image_pulled", "name=%s record=%s layers=%zu fetched=%zu bytes=%lld "
                 "fetch_ms=%lld unpack_ms=%lld ms=%lld", log_quote(name, q, sizeof q), rec_name,
                 p->img.nlayers, p->fetched, p->bytes, p->fetch_ms, p->unpack_ms,
                 clock_mono_ms() - t0);
    free(p);
    return rc;
}

int lo_pulled_get(struct lo_ctx *ctx, const char *name, json_t **out, char *err,
                  size_t errlen)
{
    struct image_ref ref;
    *out = NULL;
    if (image_ref_parse(name, &ref) != 0 || !ref.remote || !ref.digest[0])
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "not a registry reference by digest");
    char rec[NAME_MAX_BYTES + 1];
    image_ref_record_name(&ref, ref.digest, rec);
    return lo_image_get(ctx, rec, out, err, errlen);
}

int lo_resolve_image(void *vctx, const char *name, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    return reg_resolve(ctx->cfg.registries, name, out, outlen, err, errlen);
}
