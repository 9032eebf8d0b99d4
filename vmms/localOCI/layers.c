/*
 * layers.c: the layer store. Each image layer is unpacked once, with
 * libarchive, into <store>/layers/<sha256 of the layer blob as stored>/,
 * checked against the digest the image names for it (diff_id of a `docker
 * save` tarball, the manifest's digest of an OCI layout); an image is a
 * small JSON record <store>/images/<name>.json (its id, its layers bottom
 * first, its environment and working directory). Owns:
 *   - the three ways in: a `docker save` tarball (load_image, what /build
 *     receives; image_tar.h's tag rule first), an OCI image layout
 *     directory, the Docker engine's export (GET /images/NAME/get over its
 *     socket with libcurl) when the store does not already hold that id;
 *   - the unpack rules: no absolute path, no "..", no link leaving the
 *     layer, nothing written through a symbolic link
 *     (ARCHIVE_EXTRACT_SECURE_*), owners and modes kept, only the
 *     security.capability extended attribute kept; whiteouts made as
 *     overlayfs reads them (.wh.NAME: a 0/0 character device NAME;
 *     .wh..wh..opq: trusted.overlay.opaque=y on its directory), made through
 *     descriptors opened with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS;
 *   - get_images (what is unpacked, ":latest" dropped as localDocker does).
 * A layer is unpacked into <store>/tmp/ and renamed into place, so a crash
 * never leaves a half layer under its digest.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "clock.h"
#include "image_tar.h"
#include "lo.h"
#include "log.h"
#include "names.h"

#define JSON_MAX (1L << 20)       /* manifest / config / index bytes */
#define JSONS_MAX 64              /* small top-level JSON files kept in pass 1 */
#define LAYERS_MAX 128
#define ENTRIES_MAX 2000000       /* entries of one layer */
#define EXPORT_TIMEOUT_S 600

/* ---- paths ---- */

void lo_layer_dir(struct lo_ctx *ctx, const char *digest, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%s/layers/%s", ctx->cfg.store_dir, digest);
}

static bool hex64(const char *s)
{
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* "sha256:<64 hex>" -> the hex, or NULL. */
static const char *digest_hex(const char *d)
{
    return d && strncmp(d, "sha256:", 7) == 0 && hex64(d + 7) ? d + 7 : NULL;
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

/* ---- unpacking one layer ---- */

/* What an import may still unpack (struct vmms_image_limits), spent by
 * each of its layers' entries. */
struct budget {
    long long bytes, entries;     /* left */
    long long max_bytes, max_entries;
};

/* Where a layer's bytes come from: an entry of an outer tarball, or a file. */
struct source {
    struct archive *outer;   /* read from this archive's current entry, or */
    int fd;                  /* from this file */
    struct budget *budget;   /* NULL: only ENTRIES_MAX per layer */
    EVP_MD_CTX *md;
    char buf[64 * 1024];
    int error;
};

static la_ssize_t src_read(struct archive *a, void *cd, const void **buf)
{
    (void)a;
    struct source *s = cd;
    ssize_t n = s->outer ? archive_read_data(s->outer, s->buf, sizeof s->buf)
                         : read(s->fd, s->buf, sizeof s->buf);
    if (n < 0) {
        s->error = 1;
        return -1;
    }
    if (n > 0)
        EVP_DigestUpdate(s->md, s->buf, (size_t)n);
    *buf = s->buf;
    return n;
}

/* Cleans an entry's name: "./" and "/" runs folded; refuses an absolute
 * name and any ".." component. Returns 0, 1 for the layer's root itself, -1. */
static int clean(const char *in, char *out, size_t outsz)
{
    if (in == NULL || in[0] == '/')
        return -1;
    size_t o = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        const char *q = p;
        while (*q && *q != '/')
            q++;
        size_t n = (size_t)(q - p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (o + n + 2 > outsz)
                return -1;
            if (o)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p = q;
    }
    out[o] = '\0';
    return o == 0 ? 1 : 0;
}

/* Opens directory rel (may be "") of the layer open at root without
 * following any symbolic link, making the missing parts (0755). */
static int open_dir_in(int root, const char *rel)
{
    struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS |
                                      RESOLVE_NO_MAGICLINKS};
    if (*rel == '\0')
        return (int)fcntl(root, F_DUPFD_CLOEXEC, 3);
    int fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
    if (fd >= 0 || errno != ENOENT)
        return fd;
    char part[PATH_MAX];
    snprintf(part, sizeof part, "%s", rel);
    for (char *p = part;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdirat(root, part, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return (int)syscall(SYS_openat2, root, rel, &how, sizeof how);
}

/* A whiteout entry (base starts with ".wh."): made as overlayfs expects. */
static int whiteout(int root, const char *rel, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", rel);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : dir;
    if (slash)
        *slash = '\0';
    else
        dir[0] = '\0';
    base += 4; /* ".wh." */
    int dfd = open_dir_in(root, slash ? dir : "");
    if (dfd < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "whiteout %s: cannot open its directory: %s",
                         rel, strerror(errno));
    int rc = VMMS_OK;
    if (strcmp(base, ".wh..opq") == 0) {
        if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) != 0)
            rc = vmms_fail(err, errlen, VMMS_ERR, "opaque whiteout %s: %s", rel,
                           strerror(errno));
    } else if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        rc = vmms_fail(err, errlen, VMMS_ERR, "bad whiteout %s", rel);
    } else {
        unlinkat(dfd, base, 0);
        if (mknodat(dfd, base, S_IFCHR | 0600, makedev(0, 0)) != 0)
            rc = vmms_fail(err, errlen, VMMS_ERR, "whiteout %s: %s", rel, strerror(errno));
    }
    close(dfd);
    return rc;
}

/* Keeps only the file capability among an entry's extended attributes. */
static void filter_xattrs(struct archive_entry *e)
{
    const char *name;
    const void *val;
    size_t size;
    void *keep = NULL;
    size_t keep_size = 0;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK)
        if (strcmp(name, "security.capability") == 0 && !keep && size <= 64 &&
            (keep = malloc(size ? size : 1)) != NULL) {
            memcpy(keep, val, size);
            keep_size = size;
        }
    archive_entry_xattr_clear(e);
    if (keep)
        archive_entry_xattr_add_entry(e, "security.capability", keep, keep_size);
    free(keep);
}

static int copy_data(struct archive *in, struct archive *out)
{
    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t off;
        int r = archive_read_data_block(in, &buf, &size, &off);
        if (r == ARCHIVE_EOF)
            return ARCHIVE_OK;
        if (r < ARCHIVE_WARN)
            return r;
        if (archive_write_data_block(out, buf, size, off) < ARCHIVE_WARN)
            return ARCHIVE_FAILED;
    }
}

/* Spends one entry of size bytes from b (NULL: none): VMMS_ERR naming the
 * cap and its config key once either is passed. */
static int spend(struct budget *b, la_int64_t size, char *err, size_t errlen)
{
    if (b == NULL)
        return VMMS_OK;
    b->entries--;
    b->bytes -= size > 0 ? size : 0;
    if (b->bytes < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "the image unpacks to over %lld MiB (config "
                         "image_max_unpacked_mb): refused", b->max_bytes >> 20);
    if (b->entries < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "the image unpacks to over %lld files (config "
                         "image_max_entries): refused", b->max_entries);
    return VMMS_OK;
}

/* Unpacks the tar stream of src into dir (which exists, empty). The
 * digest of every byte read is left in src->md. */
static int unpack(struct source *src, const char *dir, char *err, size_t errlen)
{
    int root = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot open %s: %s", dir, strerror(errno));
    struct archive *in = archive_read_new();
    struct archive *out = archive_write_disk_new();
    archive_read_support_filter_all(in);
    archive_read_support_format_tar(in);
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
                                            ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
                                            ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT);
    int rc = VMMS_OK;
    if (archive_read_open(in, src, NULL, src_read, NULL) != ARCHIVE_OK) {
        rc = vmms_fail(err, errlen, VMMS_ERR, "layer is not a tar stream: %s",
                       archive_error_string(in));
        goto out;
    }
    struct archive_entry *e;
    long entries = 0;
    char rel[PATH_MAX], full[PATH_MAX * 2];
    for (;;) {
        int r = archive_read_next_header(in, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN || ++entries > ENTRIES_MAX) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "bad layer tar: %s",
                           r < ARCHIVE_WARN ? archive_error_string(in) : "too many entries");
            goto out;
        }
        rc = spend(src->budget, archive_entry_size(e), err, errlen);
        if (rc != VMMS_OK)
            goto out;
        int c = clean(archive_entry_pathname(e), rel, sizeof rel);
        if (c < 0) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "layer entry \"%.200s\" is absolute or "
                           "goes up (..): refused", archive_entry_pathname(e));
            goto out;
        }
        if (c == 1)
            continue; /* the root's own entry */
        const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
        if (strncmp(base, ".wh.", 4) == 0) {
            rc = whiteout(root, rel, err, errlen);
            if (rc != VMMS_OK)
                goto out;
            continue;
        }
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        archive_entry_copy_pathname(e, full);
        const char *hl = archive_entry_hardlink(e);
        if (hl) {
            char t[PATH_MAX];
            if (clean(hl, t, sizeof t) != 0) {
                rc = vmms_fail(err, errlen, VMMS_ERR, "layer hard link \"%.200s\" leaves the "
                               "layer: refused", hl);
                goto out;
            }
            snprintf(full, sizeof full, "%s/%s", dir, t);
            archive_entry_copy_hardlink(e, full);
        }
        filter_xattrs(e);
        r = archive_write_header(out, e);
        if (r >= ARCHIVE_WARN && archive_entry_size(e) > 0)
            r = copy_data(in, out);
        if (r >= ARCHIVE_WARN)
            r = archive_write_finish_entry(out);
        if (r < ARCHIVE_WARN) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "cannot unpack \"%.200s\": %s", rel,
                           archive_error_string(out));
            goto out;
        }
    }
    /* The rest of the stream (tar padding) counts in the digest too. */
    const void *b;
    while (src_read(NULL, src, &b) > 0)
        ;
    if (src->error)
        rc = vmms_fail(err, errlen, VMMS_ERR, "reading the layer failed");
out:
    archive_read_free(in);
    archive_write_free(out);
    close(root);
    return rc;
}

/* Unpacks src into dir (as unpack) with hex (65 bytes) set to the sha256
 * of every byte read from src ("" on failure). */
static int unpack_hashed(struct source *src, const char *dir, char *hex, char *err,
                         size_t errlen)
{
    hex[0] = '\0';
    src->md = EVP_MD_CTX_new();
    src->error = 0;
    int rc = src->md && EVP_DigestInit_ex(src->md, EVP_sha256(), NULL) == 1
                 ? unpack(src, dir, err, errlen)
                 : vmms_fail(err, errlen, VMMS_ERR, "sha256 unavailable");
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    if (rc == VMMS_OK && EVP_DigestFinal_ex(src->md, d, &dl) == 1 && dl == 32)
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", d[i]);
    EVP_MD_CTX_free(src->md);
    src->md = NULL;
    return rc;
}

int lo_unpack_layer(int fd, const char *dir, char *hex, char *err, size_t errlen)
{
    struct source src = {.fd = fd};
    return unpack_hashed(&src, dir, hex, err, errlen);
}

/* Unpacks one layer from src into the store as digest want (64 hex),
 * unless it is there already; *made (may be NULL) tells whether this call
 * stored it. */
static int store_layer(struct lo_ctx *ctx, struct source *src, const char *want, bool *made,
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
    int rc = unpack_hashed(src, tmp, hex, err, errlen);
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
static int write_record(struct lo_ctx *ctx, const char *name, const char *id,
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
                         const char (*paths)[PATH_MAX], const char (*want)[65], struct budget *b,
                         bool *made, char *err, size_t errlen)
{
    struct archive *a = open_tar(path, err, errlen);
    if (a == NULL)
        return VMMS_ERR;
    struct archive_entry *e;
    char rel[PATH_MAX];
    int r, rc = VMMS_OK;
    while (rc == VMMS_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        if (clean(archive_entry_pathname(e), rel, sizeof rel) != 0 ||
            archive_entry_filetype(e) != AE_IFREG)
            continue;
        for (size_t i = 0; i < nl; i++)
            if (strcmp(rel, paths[i]) == 0) {
                struct source src = {.outer = a, .fd = -1, .budget = b};
                rc = store_layer(ctx, &src, want[i], &made[i], err, errlen);
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

/* Imports tarball path as name within budget b (NULL: no budget). */
static int import_save(struct lo_ctx *ctx, const char *path, const char *name,
                       struct budget *b, char *err, size_t errlen)
{
    struct small sm = {.n = 0};
    struct archive *a = open_tar(path, err, errlen);
    if (a == NULL)
        return VMMS_ERR;
    struct archive_entry *e;
    char rel[PATH_MAX];
    int r, rc = VMMS_OK;
    /* Pass 1: manifest.json and the small files the config may be. */
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        la_int64_t size = archive_entry_size(e);
        if (archive_entry_filetype(e) != AE_IFREG || size > JSON_MAX ||
            clean(archive_entry_pathname(e), rel, sizeof rel) != 0 || sm.n == 256 ||
            sm.total + (size_t)size > 16 * JSON_MAX)
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
        sm.name[sm.n] = strdup(rel);
        sm.data[sm.n++] = buf;
        sm.total += (size_t)size;
    }
    if (r != ARCHIVE_EOF)
        rc = vmms_fail(err, errlen, VMMS_ERR, "bad tarball: %s", archive_error_string(a));
    archive_read_free(a);
    a = NULL; /* pass 2 opens it again, or not at all (freed twice before) */
    json_t *man = rc == VMMS_OK ? small_json(&sm, "manifest.json") : NULL;
    json_t *m0 = json_array_get(man, 0);
    const char *cfg_name = json_string_value(json_object_get(m0, "Config"));
    json_t *lnames = json_object_get(m0, "Layers");
    char cfg_rel[PATH_MAX] = "";
    json_t *cfg = cfg_name && clean(cfg_name, cfg_rel, sizeof cfg_rel) == 0
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
        const char *dh = digest_hex(json_string_value(json_array_get(diff, i)));
        if (!ln || clean(ln, paths[i], PATH_MAX) != 0 || !dh) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "manifest layer %zu is malformed", i);
            break;
        }
        const char *bh = strncmp(paths[i], "blobs/sha256/", 13) == 0 && hex64(paths[i] + 13)
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
        rc = write_record(ctx, name, id, layers, cfg, err, errlen);
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
    if (name == NULL || !image_name_is_valid(name))
        return vmms_fail(err, errlen, VMMS_ERR, "bad image name \"%s\": use [a-z0-9] then "
                         "[a-z0-9._-] and an optional :tag", name ? name : "(null)");
    int fd = open(tar_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot open %s: %s", tar_path, strerror(errno));
    bool tagged = false;
    int rc = image_tar_check(fd, name, &tagged, err, errlen) == 0 &&
                     image_tar_admit(fd, lim->max_bytes, lim->max_entries, ctx->cfg.store_dir,
                                     err, errlen) == 0
                 ? VMMS_OK : VMMS_ERR;
    close(fd);
    long long t0 = clock_mono_ms();
    if (rc == VMMS_OK) {
        struct budget b = {lim->max_bytes, lim->max_entries, lim->max_bytes, lim->max_entries};
        pthread_mutex_lock(&ctx->import_lock);
        rc = import_save(ctx, tar_path, name, &b, err, errlen);
        pthread_mutex_unlock(&ctx->import_lock);
    }
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
    const char *h = digest_hex(digest);
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
        const char *h = digest_hex(json_string_value(json_object_get(l, "digest")));
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
        struct source src = {.fd = fd};
        rc = store_layer(ctx, &src, h, NULL, err, errlen);
        close(fd);
        json_array_append_new(layers, json_string(h));
    }
    if (rc == VMMS_OK)
        rc = write_record(ctx, name, cfg_digest, layers, cfg, err, errlen);
    pthread_mutex_unlock(&ctx->import_lock);
    json_decref(layers);
    json_decref(cfg);
    json_decref(man);
    json_decref(index);
    close(dfd);
    return rc;
}

/* ---- the Docker engine's export ---- */

struct sink {
    FILE *f;
    char buf[4096];
    size_t len;
};

static size_t sink_write(char *p, size_t sz, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = sz * n;
    if (s->f)
        return fwrite(p, 1, len, s->f);
    size_t k = len < sizeof s->buf - 1 - s->len ? len : sizeof s->buf - 1 - s->len;
    memcpy(s->buf + s->len, p, k);
    s->len += k;
    s->buf[s->len] = '\0';
    return len;
}

/* GET path from Docker into s; *status gets the HTTP status. */
static int docker_get(struct lo_ctx *ctx, const char *path, struct sink *s, long timeout_s,
                      long *status, char *err, size_t errlen)
{
    CURL *c = curl_easy_init();
    if (c == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "curl_easy_init failed");
    char url[600];
    snprintf(url, sizeof url, "http://localhost/v1.41%s", path);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, ctx->cfg.docker_socket);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode r = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    if (r != CURLE_OK)
        return vmms_fail(err, errlen, VMMS_ERR, "Docker at %s: %s", ctx->cfg.docker_socket,
                         curl_easy_strerror(r));
    return VMMS_OK;
}

int lo_import_docker(struct lo_ctx *ctx, const char *name, char *err, size_t errlen)
{
    if (ctx->cfg.docker_socket[0] == '\0' || access(ctx->cfg.docker_socket, F_OK) != 0)
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "image %s is not in the layer store "
                         "and there is no Docker engine to export it from", name);
    if (!image_name_is_valid(name))
        return vmms_fail(err, errlen, VMMS_ERR, "bad image name");
    char path[400];
    struct sink s = {.f = NULL};
    long status = 0;
    snprintf(path, sizeof path, "/images/%s/json", name);
    int rc = docker_get(ctx, path, &s, 10, &status, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (status == 404)
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "image %s: neither in the layer store "
                         "nor in Docker", name);
    json_t *j = json_loads(s.buf, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "Id"));
    if (status != 200 || !digest_hex(id)) {
        json_decref(j);
        return vmms_fail(err, errlen, VMMS_ERR, "Docker: cannot inspect image %s (HTTP %ld)",
                         name, status);
    }
    char want_id[80];
    snprintf(want_id, sizeof want_id, "%s", id);
    json_decref(j);

    pthread_mutex_lock(&ctx->import_lock);
    json_t *rec = NULL;
    char e2[256];
    if (lo_image_get(ctx, name, &rec, e2, sizeof e2) == VMMS_OK &&
        strcmp(json_string_value(json_object_get(rec, "id")) ?: "", want_id) == 0) {
        json_decref(rec);
        pthread_mutex_unlock(&ctx->import_lock);
        return VMMS_OK; /* the store has this very image */
    }
    json_decref(rec);
    long long t0 = clock_mono_ms();
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/tmp/export-%d-XXXXXX", ctx->cfg.store_dir, (int)getpid());
    int fd = mkstemp(tmp);
    s.f = fd >= 0 ? fdopen(fd, "w+") : NULL;
    if (s.f == NULL) {
        if (fd >= 0)
            close(fd);
        pthread_mutex_unlock(&ctx->import_lock);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot make %s: %s", tmp, strerror(errno));
    }
    snprintf(path, sizeof path, "/images/%s/get", want_id);
    rc = docker_get(ctx, path, &s, EXPORT_TIMEOUT_S, &status, err, errlen);
    if (fclose(s.f) != 0 && rc == VMMS_OK)
        rc = vmms_fail(err, errlen, VMMS_ERR, "cannot write %s: %s", tmp, strerror(errno));
    if (rc == VMMS_OK && status != 200)
        rc = vmms_fail(err, errlen, VMMS_ERR, "Docker: cannot export image %s (HTTP %ld)",
                       name, status);
    if (rc == VMMS_OK)
        rc = import_save(ctx, tmp, name, NULL, err, errlen); /* the engine's own: no caps */
    unlink(tmp);
    pthread_mutex_unlock(&ctx->import_lock);
    char q[300];
    if (rc == VMMS_OK)
        log_info("image_imported", "name=%s from=docker id=%.19s ms=%lld",
                 log_quote(name, q, sizeof q), want_id, clock_mono_ms() - t0);
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
        ok &= hex64(json_string_value(l));
    if (!ok) {
        json_decref(j);
        return vmms_fail(err, errlen, VMMS_ERR, "image record %s is damaged: import it again",
                         path);
    }
    *out = j;
    return VMMS_OK;
}

int lo_image_find(struct lo_ctx *ctx, const char *name, json_t **out, char *err, size_t errlen)
{
    int rc = lo_image_get(ctx, name, out, err, errlen);
    if (rc != VMMS_NOT_FOUND)
        return rc;
    rc = lo_import_docker(ctx, name, err, errlen);
    return rc == VMMS_OK ? lo_image_get(ctx, name, out, err, errlen) : rc;
}

int lo_image_id(void *vctx, const char *name, char *id, size_t idlen, char *err, size_t errlen)
{
    json_t *rec = NULL;
    int rc = lo_image_find(vctx, name, &rec, err, errlen);
    const char *got = json_string_value(json_object_get(rec, "id"));
    if (rc == VMMS_OK && got == NULL)
        rc = vmms_fail(err, errlen, VMMS_ERR, "image record %s has no id: import it again", name);
    if (rc == VMMS_OK)
        snprintf(id, idlen, "%s", got);
    json_decref(rec);
    return rc;
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
    size_t cap = 0;
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
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(*names, cap * sizeof *nn);
            if (nn == NULL) {
                rc = vmms_fail(err, errlen, VMMS_ERR, "out of memory");
                break;
            }
            *names = nn;
        }
        if (((*names)[*count] = strdup(nm)) == NULL) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "out of memory");
            break;
        }
        (*count)++;
    }
    closedir(d);
    if (rc != VMMS_OK) {
        vmms_free_names(*names, *count);
        *names = NULL;
        *count = 0;
    }
    return rc;
}
