/*
 * layers_unpack.c: the security-critical unpack of one image layer (a tar
 * stream, possibly compressed) into an empty directory, with libarchive.
 * Owns:
 *   - the entry name rule (lo_clean_path): no absolute path, no "..";
 *   - the unpack rules: no link leaving the layer, nothing written through
 *     a symbolic link (ARCHIVE_EXTRACT_SECURE_*), owners and modes kept,
 *     only the security.capability extended attribute kept; whiteouts made
 *     as overlayfs reads them (.wh.NAME: a 0/0 character device NAME;
 *     .wh..wh..opq: trusted.overlay.opaque=y on its directory), made through
 *     descriptors opened with RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS;
 *   - the budget (struct lo_budget): entries and bytes an import may still
 *     unpack, and ENTRIES_MAX per layer;
 *   - the sha256 of every byte read, to check against the image's digest.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
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
#include <openssl/evp.h>

#include "layers_int.h"
#include "lo.h"
#include "log.h"

#define ENTRIES_MAX 2000000       /* entries of one layer */

/* ---- unpacking one layer ---- */

static la_ssize_t src_read(struct archive *a, void *cd, const void **buf)
{
    (void)a;
    struct lo_source *s = cd;
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
int lo_clean_path(const char *in, char *out, size_t outsz)
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
static int spend(struct lo_budget *b, la_int64_t size, char *err, size_t errlen)
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

/* One unpack in progress: the layer's source, its directory (by name and
 * open), the tar reader and the disk writer. */
struct unpack {
    struct lo_source *src;
    const char *dir;
    int root;
    struct archive *in, *out;
};

/* The disk writer of the unpack rules: owners, modes, times and extended
 * attributes (filter_xattrs first) kept; nothing written through a
 * symbolic link, no "..". */
static struct archive *disk_writer(void)
{
    struct archive *out = archive_write_disk_new();
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
                                            ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
                                            ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT);
    return out;
}

/* Names entry e (rel: its cleaned name) by its absolute path under dir,
 * and its hard link target likewise; VMMS_ERR when that target is not a
 * clean name inside the layer. */
static int rebase_entry(struct archive_entry *e, const char *dir, const char *rel, char *err,
                        size_t errlen)
{
    char full[PATH_MAX * 2];
    snprintf(full, sizeof full, "%s/%s", dir, rel);
    archive_entry_copy_pathname(e, full);
    const char *hl = archive_entry_hardlink(e);
    if (hl == NULL)
        return VMMS_OK;
    char t[PATH_MAX];
    if (lo_clean_path(hl, t, sizeof t) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "layer hard link \"%.200s\" leaves the "
                         "layer: refused", hl);
    snprintf(full, sizeof full, "%s/%s", dir, t);
    archive_entry_copy_hardlink(e, full);
    return VMMS_OK;
}

/* Writes rebased entry e (named rel in errors) and its data to disk, with
 * only its file capability among its extended attributes. */
static int write_entry(struct unpack *u, struct archive_entry *e, const char *rel, char *err,
                       size_t errlen)
{
    filter_xattrs(e);
    int r = archive_write_header(u->out, e);
    if (r >= ARCHIVE_WARN && archive_entry_size(e) > 0)
        r = copy_data(u->in, u->out);
    if (r >= ARCHIVE_WARN)
        r = archive_write_finish_entry(u->out);
    if (r < ARCHIVE_WARN)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot unpack \"%.200s\": %s", rel,
                         archive_error_string(u->out));
    return VMMS_OK;
}

/* One entry e of the layer, in this order: spent from the budget, its name
 * cleaned (absolute or ".." refused; the root's own entry skipped), a
 * whiteout made as overlayfs reads it, or else rebased and written. */
static int unpack_entry(struct unpack *u, struct archive_entry *e, char *err, size_t errlen)
{
    int rc = spend(u->src->budget, archive_entry_size(e), err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char rel[PATH_MAX];
    int c = lo_clean_path(archive_entry_pathname(e), rel, sizeof rel);
    if (c < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "layer entry \"%.200s\" is absolute or "
                         "goes up (..): refused", archive_entry_pathname(e));
    if (c == 1)
        return VMMS_OK; /* the root's own entry */
    const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    if (strncmp(base, ".wh.", 4) == 0)
        return whiteout(u->root, rel, err, errlen);
    rc = rebase_entry(e, u->dir, rel, err, errlen);
    return rc == VMMS_OK ? write_entry(u, e, rel, err, errlen) : rc;
}

/* Every entry of the tar stream, at most ENTRIES_MAX; VMMS_ERR at the
 * first bad header or refused entry. */
static int unpack_entries(struct unpack *u, char *err, size_t errlen)
{
    struct archive_entry *e;
    long entries = 0;
    for (;;) {
        int r = archive_read_next_header(u->in, &e);
        if (r == ARCHIVE_EOF)
            return VMMS_OK;
        if (r < ARCHIVE_WARN || ++entries > ENTRIES_MAX)
            return vmms_fail(err, errlen, VMMS_ERR, "bad layer tar: %s",
                             r < ARCHIVE_WARN ? archive_error_string(u->in)
                                              : "too many entries");
        int rc = unpack_entry(u, e, err, errlen);
        if (rc != VMMS_OK)
            return rc;
    }
}

/* Reads the rest of src after the last entry: the tar padding counts in
 * the digest too. VMMS_ERR if reading src failed. */
static int drain(struct lo_source *src, char *err, size_t errlen)
{
    const void *b;
    while (src_read(NULL, src, &b) > 0)
        ;
    return src->error ? vmms_fail(err, errlen, VMMS_ERR, "reading the layer failed") : VMMS_OK;
}

/* Unpacks the tar stream of src into dir (which exists, empty). The
 * digest of every byte read is left in src->md. */
static int unpack(struct lo_source *src, const char *dir, char *err, size_t errlen)
{
    struct unpack u = {.src = src, .dir = dir};
    u.root = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (u.root < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot open %s: %s", dir, strerror(errno));
    u.in = archive_read_new();
    u.out = disk_writer();
    archive_read_support_filter_all(u.in);
    archive_read_support_format_tar(u.in);
    int rc = VMMS_OK;
    if (archive_read_open(u.in, src, NULL, src_read, NULL) != ARCHIVE_OK)
        rc = vmms_fail(err, errlen, VMMS_ERR, "layer is not a tar stream: %s",
                       archive_error_string(u.in));
    if (rc == VMMS_OK)
        rc = unpack_entries(&u, err, errlen);
    if (rc == VMMS_OK)
        rc = drain(src, err, errlen);
    archive_read_free(u.in);
    archive_write_free(u.out);
    close(u.root);
    return rc;
}

/* Unpacks src into dir (as unpack) with hex (65 bytes) set to the sha256
 * of every byte read from src ("" on failure). */
int lo_unpack_source(struct lo_source *src, const char *dir, char *hex, char *err,
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
    struct lo_source src = {.fd = fd};
    return lo_unpack_source(&src, dir, hex, err, errlen);
}
