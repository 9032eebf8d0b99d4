/*
 * layers.c: the layer store. Each image layer is unpacked once (by
 * layers_unpack.c) into <store>/layers/<sha256 of the layer blob as
 * stored>/, checked against the digest the image names for it (diff_id of a
 * `docker save` tarball, the manifest's digest of an OCI layout); an image
 * is a small JSON record <store>/images/<name>.json (its id, its layers
 * bottom first, its environment and working directory). Owns:
 *   - the store's directories and paths, storing one layer (unpacked into
 *     <store>/tmp/ and renamed into place, so a crash never leaves a half
 *     layer under its digest) and writing an image record atomically;
 *   - the lookups of what is stored: lo_image_get (one record),
 *     get_images (what is unpacked, ":latest" dropped as localDocker does).
 * The ways in (docker save, OCI layout, the Docker engine's export) are
 * layers_import.c's, a registry pull is pull.c's, and images.c finds an
 * image by bringing it in when the store lacks it; the unpack rules are
 * layers_unpack.c's. This file calls none of them (the store is below).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layers_int.h"
#include "lo.h"
#include "log.h"
#include "image_ref.h"
#include "names.h"
#include "strvec.h"

/* ---- paths ---- */

void lo_layer_dir(struct lo_ctx *ctx, const char *digest, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%s/layers/%s", ctx->cfg.store_dir, digest);
}

bool lo_hex64(const char *s)
{
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* "sha256:<64 hex>" -> the hex, or NULL. */
const char *lo_digest_hex(const char *d)
{
    return d && strncmp(d, "sha256:", 7) == 0 && lo_hex64(d + 7) ? d + 7 : NULL;
}

/* The store's name of an image: ":latest" dropped. */
static void canon_name(const char *name, char *out, size_t outsz)
{
    size_t n = strlen(name);
    if (n > 7 && strcmp(name + n - 7, ":latest") == 0)
        n -= 7;
    snprintf(out, outsz, "%.*s", (int)n, name);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)f;
    if (flag == FTW_DP)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

void lo_rm_tree(const char *dir)
{
    nftw(dir, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int lo_store_init(struct lo_ctx *ctx, char *err, size_t errlen)
{
    const char *subs[] = {"", "/layers", "/images", "/tmp"};
    char real[PATH_MAX];
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        char d[PATH_MAX + 16];
        snprintf(d, sizeof d, "%s%s", ctx->cfg.store_dir, subs[i]);
        if (i == 0) {
            /* mkdir -p of the store itself */
            for (char *p = d + 1; *p; p++)
                if (*p == '/') {
                    *p = '\0';
                    mkdir(d, 0755);
                    *p = '/';
                }
        }
        /* root's alone (an existing one too): the layers hold the images'
         * setuid autodriver, which no host user may run */
        if ((mkdir(d, 0700) != 0 && errno != EEXIST) || chmod(d, 0700) != 0)
            return vmms_fail(err, errlen, VMMS_ERR, "localOCI: cannot create %s: %s", d,
                             strerror(errno));
        if (i == 0) {
            if (realpath(d, real) == NULL || strlen(real) >= 200)
                return vmms_fail(err, errlen, VMMS_ERR, "localOCI: store_dir %s: %s", d,
                                 realpath(d, real) ? "longer than 200 bytes" : strerror(errno));
            strcpy(ctx->cfg.store_dir, real); /* no symlink on the way: SECURE_SYMLINKS */
        }
    }
    /* What a dead process left in tmp/ is no layer (entries carry their
     * writer's pid: another consumer on this store may be importing now). */
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s/tmp", ctx->cfg.store_dir);
    DIR *d = opendir(tmp);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        const char *dash = strchr(e->d_name, '-');
        long owner = dash ? strtol(dash + 1, NULL, 10) : 0;
        if (owner > 0 && (kill((pid_t)owner, 0) == 0 || errno != ESRCH))
            continue; /* its writer lives */
        char p[PATH_MAX * 2];
        snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
        lo_rm_tree(p);
    }
    if (d)
        closedir(d);
    return VMMS_OK;
}

/* Unpacks one layer from src into the store as digest want (64 hex),
 * unless it is there already; *made (may be NULL) tells whether this call
 * stored it. */
int lo_store_layer(struct lo_ctx *ctx, struct lo_source *src, const char *want, bool *made,
                   char *err, size_t errlen)
{
    char final[PATH_MAX], tmp[PATH_MAX];
    lo_layer_dir(ctx, want, final, sizeof final);
    if (made)
        *made = false;
    if (access(final, F_OK) == 0)
        return VMMS_OK;
    snprintf(tmp, sizeof tmp, "%s/tmp/layer-%d-XXXXXX", ctx->cfg.store_dir, (int)getpid());
    if (mkdtemp(tmp) == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot make %s: %s", tmp, strerror(errno));
    chmod(tmp, 0755);
    char hex[65];
    int rc = lo_unpack_source(src, tmp, hex, err, errlen);
    if (rc == VMMS_OK && strcmp(hex, want) != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "layer digest is sha256:%.12s..., the image "
                       "names sha256:%.12s...: refused", hex, want);
    bool renamed = rc == VMMS_OK && rename(tmp, final) == 0;
    if (rc == VMMS_OK && !renamed && errno != EEXIST && errno != ENOTEMPTY)
        rc = vmms_fail(err, errlen, VMMS_ERR, "cannot store layer %.12s: %s", want,
                       strerror(errno));
    if (made)
        *made = renamed;
    lo_rm_tree(tmp); /* gone after the rename; else the loser of a race, or a failure */
    if (rc == VMMS_OK)
        log_info("layer_stored", "digest=%.12s", want);
    return rc;
}

/* Writes the image record atomically. */
int lo_write_record(struct lo_ctx *ctx, const char *name, const char *id,
                    const json_t *layers, const json_t *cfg, char *err, size_t errlen)
{
    char cname[300], path[PATH_MAX], tmp[PATH_MAX + 8];
    canon_name(name, cname, sizeof cname);
    json_t *conf = json_object_get(cfg, "config");
    json_t *env = json_object_get(conf, "Env");
    const char *cwd = json_string_value(json_object_get(conf, "WorkingDir"));
    json_t *rec = json_pack("{s:s, s:s, s:O, s:o, s:s}", "name", cname, "id", id, "layers",
                            layers, "env", json_is_array(env) ? json_incref(env) : json_array(),
                            "cwd", cwd && cwd[0] == '/' ? cwd : "/");
    if (rec == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    snprintf(path, sizeof path, "%s/images/%s.json", ctx->cfg.store_dir, cname);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid()); /* under import_lock */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = VMMS_OK;
    if (fd < 0 || json_dumpfd(rec, fd, JSON_COMPACT) != 0 || fsync(fd) != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "cannot write %s: %s", tmp, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (rc == VMMS_OK && rename(tmp, path) != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "cannot write %s: %s", path, strerror(errno));
    json_decref(rec);
    if (rc == VMMS_OK) {
        char q[320];
        log_info("image_stored", "name=%s id=%.19s layers=%zu", log_quote(cname, q, sizeof q),
                 id, json_array_size(layers));
    }
    return rc;
}

/* ---- lookups ---- */

int lo_image_get(struct lo_ctx *ctx, const char *name, json_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!image_name_is_valid(name))
        return vmms_fail(err, errlen, VMMS_ERR, "bad image name");
    char cname[300], path[PATH_MAX];
    canon_name(name, cname, sizeof cname);
    snprintf(path, sizeof path, "%s/images/%s.json", ctx->cfg.store_dir, cname);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return vmms_fail(err, errlen, errno == ENOENT ? VMMS_NOT_FOUND : VMMS_ERR,
                         "image %s: %s", cname, strerror(errno));
    json_t *j = json_loadfd(fd, 0, NULL);
    close(fd);
    json_t *layers = json_object_get(j, "layers");
    size_t i;
    json_t *l;
    bool ok = json_is_array(layers) && json_array_size(layers) > 0;
    json_array_foreach(layers, i, l)
        ok &= lo_hex64(json_string_value(l));
    if (!ok) {
        json_decref(j);
        return vmms_fail(err, errlen, VMMS_ERR, "image record %s is damaged: import it again",
                         path);
    }
    *out = j;
    return VMMS_OK;
}

int lo_get_images(void *vctx, char ***names, size_t *count, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    *names = NULL;
    *count = 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/images", ctx->cfg.store_dir);
    DIR *d = opendir(path);
    if (d == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot list %s: %s", path, strerror(errno));
    struct strvec sv = STRVEC_INIT;
    struct dirent *e;
    int rc = VMMS_OK;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0)
            continue;
        char nm[300];
        snprintf(nm, sizeof nm, "%.*s", (int)(n - 5), e->d_name);
        if (!image_name_is_valid(nm))
            continue;
        if (strvec_push(&sv, nm) != 0) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "out of memory");
            break;
        }
    }
    closedir(d);
    if (rc == VMMS_OK)
        *names = strvec_take(&sv, count);
    strvec_free(&sv);
    return rc;
}
