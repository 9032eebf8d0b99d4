/*
 * image_tar.c: the /build tarball rule (see image_tar.h): find manifest.json
 * in a `docker save` tarball as Docker's loader would, bounded and without
 * extracting anything, and refuse any tag other than the one asked for.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "image_tar.h"
#include "names.h"
#include "strvec.h"
#include "text.h"

#define PATH_BYTES 4096                      /* longest entry name looked at */
#define MAX_UNPACKED (64LL << 30)            /* bytes of tar read through */


/* ---- references ---- */

/* "repo:tag" as Docker normalizes a local reference (docker.io/ and
 * library/ dropped, ":latest" added); false for a digest or no room. */
static bool canon(const char *ref, char *out, size_t outsz)
{
    if (ref == NULL || *ref == '\0' || strchr(ref, '@'))
        return false;
    const char *p = ref;
    if (strncmp(p, "docker.io/", 10) == 0)
        p += 10;
    else if (strncmp(p, "index.docker.io/", 16) == 0)
        p += 16;
    if (strncmp(p, "library/", 8) == 0 && strchr(p + 8, '/') == NULL)
        p += 8;
    return image_name_canon(p, out, outsz);
}

bool image_ref_same(const char *ref, const char *want)
{
    char a[512], b[512];
    return canon(ref, a, sizeof a) && canon(want, b, sizeof b) && strcmp(a, b) == 0;
}

int image_load_line(const char *line, size_t n, char *out, size_t outsz)
{
    static const struct {
        const char *prefix;
        int kind;
    } kinds[] = {{"Loaded image ID: ", 2}, {"Loaded image: ", 1}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t pl = strlen(kinds[k].prefix);
        if (n <= pl || strncmp(line, kinds[k].prefix, pl) != 0)
            continue;
        const char *v = line + pl;
        size_t vl = n - pl;
        while (vl > 0 && (v[vl - 1] == '\n' || v[vl - 1] == '\r' || v[vl - 1] == ' '))
            vl--;
        if (vl == 0 || vl >= outsz || memchr(v, '\0', vl))
            return 0;
        memcpy(out, v, vl);
        out[vl] = '\0';
        return kinds[k].kind;
    }
    return 0;
}

/* ---- the tarball ---- */

/* Entry name as Docker's untar places it (filepath.Clean, relative to the
 * root): "./a//b/" -> "a/b". -1 for ".." anywhere or a name too long. */
static int clean_path(const char *in, char *out, size_t outsz)
{
    size_t o = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - s);
        if (n == 0 || (n == 1 && s[0] == '.'))
            continue;
        if (n == 2 && s[0] == '.' && s[1] == '.')
            return -1;
        if (o + n + 2 > outsz)
            return -1;
        if (o)
            out[o++] = '/';
        memcpy(out + o, s, n);
        o += n;
    }
    out[o] = '\0';
    return 0;
}

/* Whether some proper parent directory of path is one of the symlinks. */
static bool under_symlink(const char *path, const struct strvec *links)
{
    for (size_t i = 0; i < links->n; i++) {
        size_t l = strlen(links->v[i]);
        if (strncmp(path, links->v[i], l) == 0 && path[l] == '/')
            return true;
    }
    return false;
}

/* What a scan found. */
struct scan {
    char *manifest;        /* the last top-level manifest.json's bytes */
    size_t len;
    bool found;            /* the last top-level manifest.json entry is a regular file */
    struct strvec links;     /* names of symlink entries */
    struct strvec deep;      /* names of manifest.json entries below the top */
    size_t entries;          /* entry headers read so far */
};

static int read_manifest(struct archive *a, struct archive_entry *e, struct scan *s,
                         char *err, size_t errlen)
{
    la_int64_t size = archive_entry_size(e);
    if (size > IMAGE_TAR_MANIFEST_MAX)
        return text_fail(err, errlen, "the tarball's manifest.json is over %ld bytes",
                    IMAGE_TAR_MANIFEST_MAX);
    char *buf = malloc((size_t)IMAGE_TAR_MANIFEST_MAX + 1);
    if (buf == NULL)
        return text_fail(err, errlen, "out of memory");
    size_t len = 0;
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf + len, (size_t)IMAGE_TAR_MANIFEST_MAX + 1 - len);
        if (n < 0) {
            free(buf);
            return text_fail(err, errlen, "cannot read the tarball's manifest.json: %s",
                        archive_error_string(a));
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > (size_t)IMAGE_TAR_MANIFEST_MAX) {
            free(buf);
            return text_fail(err, errlen, "the tarball's manifest.json is over %ld bytes",
                        IMAGE_TAR_MANIFEST_MAX);
        }
    }
    free(s->manifest);
    s->manifest = buf;
    s->len = len;
    s->found = true;
    return 0;
}

typedef int (*filter_fn)(struct archive *);

/* Checks one entry of a tarball being walked: 0 to go on, or -1 with err. */
typedef int (*entry_fn)(struct archive *a, struct archive_entry *e, void *arg, char *err,
                        size_t errlen);

/* Reads a's entry headers in turn, each through fn, until the end, an
 * unreadable header or fn's refusal; starts only if rc (the opening's
 * status) is 0. Frees a; returns the first failure or 0. */
static int walk_tar(struct archive *a, int rc, entry_fn fn, void *arg, char *err, size_t errlen)
{
    struct archive_entry *e;
    while (rc == 0) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK) {
            rc = text_fail(err, errlen, "the upload is not a tarball Docker can load (%s)",
                           archive_error_string(a));
            break;
        }
        rc = fn(a, e, arg, err, errlen);
    }
    archive_read_free(a);
    return rc;
}

/* Opens the tarball at fd (from its start) for reading: *out is the
 * archive (caller frees it, whatever this returns; NULL when none was
 * made). Returns 0, or -1 with err when it cannot be read. */
static int open_tar(int fd, struct archive **out, char *err, size_t errlen)
{
    *out = NULL;
    if (lseek(fd, 0, SEEK_SET) != 0)
        return text_fail(err, errlen, "cannot rewind the tarball: %s", strerror(errno));
    struct archive *a = *out = archive_read_new();
    if (a == NULL)
        return text_fail(err, errlen, "out of memory");
    /* What `docker load` takes: a tar, plain or compressed with one of
     * these, decompressed in-process (no helper program). */
    static const struct {
        const char *name;
        filter_fn fn;
    } filters[] = {{"gzip", archive_read_support_filter_gzip},
                   {"bzip2", archive_read_support_filter_bzip2},
                   {"xz", archive_read_support_filter_xz},
                   {"zstd", archive_read_support_filter_zstd}};
    int rc = 0;
    for (size_t i = 0; i < sizeof filters / sizeof filters[0] && rc == 0; i++)
        if (filters[i].fn(a) != ARCHIVE_OK)
            rc = text_fail(err, errlen, "libarchive cannot decompress %s by itself",
                      filters[i].name);
    if (rc == 0 && archive_read_support_format_tar(a) != ARCHIVE_OK)
        rc = text_fail(err, errlen, "libarchive cannot read tar");
    if (rc == 0 && archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK)
        rc = text_fail(err, errlen, "the upload is not a tarball (%s): make it with `docker save "
                  "IMAGE`", archive_error_string(a));
    return rc;
}

/* An entry_fn for the scan (arg: the struct scan): entry e of a against
 * the caps, and into s: a symlink's name, a manifest.json below the top,
 * and the top-level manifest.json's bytes. */
static int scan_entry(struct archive *a, struct archive_entry *e, void *arg, char *err,
                      size_t errlen)
{
    struct scan *s = arg;
    char path[PATH_BYTES];
    if (++s->entries > IMAGE_TAR_MAX_ENTRIES)
        return text_fail(err, errlen, "the tarball has over %d entries", IMAGE_TAR_MAX_ENTRIES);
    if (archive_filter_bytes(a, 0) > MAX_UNPACKED || archive_entry_size(e) > MAX_UNPACKED)
        return text_fail(err, errlen, "the tarball is over %lld GiB unpacked", MAX_UNPACKED >> 30);
    const char *name = archive_entry_pathname(e);
    if (name == NULL || clean_path(name, path, sizeof path) != 0)
        return text_fail(err, errlen, "the tarball has an entry name Docker would not place "
                  "inside it (\"..\", too long or unreadable)");
    bool link = archive_entry_filetype(e) == AE_IFLNK;
    bool hard = archive_entry_hardlink(e) != NULL;
    if (link && strvec_push(&s->links, path) != 0)
        return text_fail(err, errlen, "out of memory");
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(base, "manifest.json") != 0)
        return 0;
    if (base != path)
        return strvec_push(&s->deep, path) != 0 ? text_fail(err, errlen, "out of memory") : 0;
    if (link || hard || archive_entry_filetype(e) != AE_IFREG) {
        s->found = false; /* the last one wins: this one is not a file */
        free(s->manifest);
        s->manifest = NULL;
        return 0;
    }
    return read_manifest(a, e, s, err, errlen);
}

/* Walks every entry header of the tarball into s. */
static int scan_tar(int fd, struct scan *s, char *err, size_t errlen)
{
    struct archive *a;
    int rc = open_tar(fd, &a, err, errlen);
    return a == NULL ? rc : walk_tar(a, rc, scan_entry, s, err, errlen);
}

static bool known_entry_key(const char *k)
{
    static const char *const keys[] = {"Config", "RepoTags", "Layers", "Parent",
                                       "LayerSources"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

/* The manifest rule. Docker decodes it with Go's encoding/json, which
 * matches keys case-insensitively (with Unicode folding) and lets the last
 * duplicate win: only the exact keys docker save writes are accepted, each
 * once, so both readers see the same tags. */
static int check_manifest(const struct scan *s, const char *want, bool *tagged, char *err,
                          size_t errlen)
{
    json_error_t je;
    json_t *m = json_loadb(s->manifest, s->len, JSON_REJECT_DUPLICATES, &je);
    if (m == NULL)
        return text_fail(err, errlen, "the tarball's manifest.json is not plain JSON (line %d: "
                    "%s)", je.line, je.text);
    int rc = 0;
    json_t *img = json_array_get(m, 0);
    if (!json_is_array(m) || json_array_size(m) != 1 || !json_is_object(img))
        rc = text_fail(err, errlen, "the tarball holds %zu images (manifest.json); /build takes "
                  "one: docker save a single image", json_is_array(m) ? json_array_size(m) : 0);
    const char *k;
    json_t *v;
    if (rc == 0)
        json_object_foreach(img, k, v)
            if (rc == 0 && !known_entry_key(k))
                rc = text_fail(err, errlen, "the tarball's manifest.json has a key docker save "
                          "does not write (\"%.40s\")", k);
    json_t *tags = json_object_get(img, "RepoTags");
    if (rc == 0 && tags && !json_is_null(tags) && !json_is_array(tags))
        rc = text_fail(err, errlen, "the tarball's manifest.json RepoTags is not a list");
    size_t i;
    json_t *t;
    if (rc == 0)
        json_array_foreach(tags, i, t) {
            const char *ref = json_string_value(t);
            if (ref == NULL)
                rc = text_fail(err, errlen, "the tarball's manifest.json RepoTags holds a "
                          "non-string");
            else if (!image_ref_same(ref, want))
                rc = text_fail(err, errlen, "the tarball would tag \"%.100s\" (manifest.json "
                          "RepoTags); /build only creates or replaces %s: save that tag "
                          "alone (docker tag IMAGE %s; docker save %s)", ref, want, want,
                          want);
            if (rc != 0)
                break;
        }
    if (rc == 0)
        *tagged = json_array_size(tags) > 0;
    json_decref(m);
    return rc;
}

int image_tar_check(int fd, const char *want, bool *tagged, char *err, size_t errlen)
{
    *tagged = false;
    struct scan s = {0};
    int rc = scan_tar(fd, &s, err, errlen);
    for (size_t i = 0; rc == 0 && i < s.deep.n; i++)
        if (under_symlink(s.deep.v[i], &s.links))
            rc = text_fail(err, errlen, "the tarball reaches a manifest.json through a symlink "
                      "(%.100s)", s.deep.v[i]);
    if (rc == 0 && !s.found)
        rc = text_fail(err, errlen, "the tarball has no manifest.json file at its top: make it "
                  "with `docker save IMAGE`");
    if (rc == 0)
        rc = check_manifest(&s, want, tagged, err, errlen);
    free(s.manifest);
    strvec_free(&s.links);
    strvec_free(&s.deep);
    return rc;
}

/* ---- what it unpacks to ---- */

/* A layer read from inside the outer tarball. */
struct nested {
    struct archive *outer;
    char buf[65536];
};

static la_ssize_t nested_read(struct archive *a, void *arg, const void **buf)
{
    (void)a;
    struct nested *n = arg;
    *buf = n->buf;
    return archive_read_data(n->outer, n->buf, sizeof n->buf);
}

/* Opens a reader of tar (plain or compressed as docker load takes it) on
 * src; NULL when out of memory. */
static struct archive *tar_reader(void)
{
    struct archive *a = archive_read_new();
    if (a && (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
              archive_read_support_filter_bzip2(a) != ARCHIVE_OK ||
              archive_read_support_filter_xz(a) != ARCHIVE_OK ||
              archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
              archive_read_support_format_tar(a) != ARCHIVE_OK)) {
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Adds one entry of size bytes to *size: -1 with the reason past a cap. */
static int count(struct image_tar_size *size, long long bytes, long long max_bytes,
                 long long max_entries, char *err, size_t errlen)
{
    size->bytes += bytes > 0 ? bytes : 0;
    size->entries++;
    if (size->bytes > max_bytes)
        return text_fail(err, errlen, "the image unpacks to over %lld MiB (config "
                         "image_max_unpacked_mb): refused", max_bytes >> 20);
    if (size->entries > max_entries)
        return text_fail(err, errlen, "the image unpacks to over %lld files (config "
                         "image_max_entries): refused", max_entries);
    return 0;
}

/* Counts the entries of the outer tarball's current entry if it is a tar
 * (a layer), reading it through; its own size otherwise. */
static int measure_entry(struct archive *outer, struct archive_entry *e, long long max_bytes,
                         long long max_entries, struct image_tar_size *size, char *err,
                         size_t errlen)
{
    struct nested *n = malloc(sizeof *n);
    struct archive *in = n ? tar_reader() : NULL;
    int rc = 0;
    if (in == NULL) {
        rc = text_fail(err, errlen, "out of memory");
    } else {
        n->outer = outer;
        struct archive_entry *le;
        bool opened = archive_read_open(in, n, NULL, nested_read, NULL) == ARCHIVE_OK;
        int r = opened ? archive_read_next_header(in, &le) : ARCHIVE_FATAL;
        if (r != ARCHIVE_OK && r != ARCHIVE_EOF) { /* not a layer: a file of its own */
            rc = count(size, archive_entry_size(e), max_bytes, max_entries, err, errlen);
            r = ARCHIVE_EOF;
        }
        while (rc == 0 && r == ARCHIVE_OK) {
            rc = count(size, archive_entry_size(le), max_bytes, max_entries, err, errlen);
            r = rc == 0 ? archive_read_next_header(in, &le) : ARCHIVE_EOF;
        }
        if (rc == 0 && r != ARCHIVE_EOF && r != ARCHIVE_OK)
            rc = text_fail(err, errlen, "a layer of the tarball cannot be read (%s)",
                           archive_error_string(in));
    }
    if (in)
        archive_read_free(in);
    free(n);
    return rc;
}

/* What image_tar_measure counts against. */
struct measure {
    long long max_bytes, max_entries;
    struct image_tar_size *size;
};

/* An entry_fn for image_tar_measure (arg: the struct measure): a regular
 * file's content is measured (a layer's entries counted), anything else
 * counts as one entry of no bytes. */
static int measure_one(struct archive *a, struct archive_entry *e, void *arg, char *err,
                       size_t errlen)
{
    const struct measure *m = arg;
    if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0)
        return measure_entry(a, e, m->max_bytes, m->max_entries, m->size, err, errlen);
    return count(m->size, 0, m->max_bytes, m->max_entries, err, errlen);
}

int image_tar_measure(int fd, long long max_bytes, long long max_entries,
                      struct image_tar_size *size, char *err, size_t errlen)
{
    memset(size, 0, sizeof *size);
    if (lseek(fd, 0, SEEK_SET) != 0)
        return text_fail(err, errlen, "cannot rewind the tarball: %s", strerror(errno));
    struct archive *a = tar_reader();
    if (a == NULL)
        return text_fail(err, errlen, "out of memory");
    int rc = 0;
    if (archive_read_open_fd(a, fd, 65536) != ARCHIVE_OK)
        rc = text_fail(err, errlen, "the upload is not a tarball (%s)", archive_error_string(a));
    struct measure m = {max_bytes, max_entries, size};
    return walk_tar(a, rc, measure_one, &m, err, errlen);
}

int image_tar_admit(int fd, long long max_bytes, long long max_entries, const char *dir,
                    char *err, size_t errlen)
{
    struct image_tar_size size;
    if (image_tar_measure(fd, max_bytes, max_entries, &size, err, errlen) != 0)
        return -1;
    struct statvfs vfs;
    if (dir == NULL)
        return 0;
    if (statvfs(dir, &vfs) != 0)
        return text_fail(err, errlen, "cannot tell the free space of %s: %s", dir,
                         strerror(errno));
    long long avail = (long long)vfs.f_bavail * (long long)vfs.f_frsize;
    long long need = size.bytes + size.bytes / 8;
    if (avail < need)
        return text_fail(err, errlen, "the image unpacks to %lld MiB and the disk it would be "
                         "unpacked on has %lld MiB free (needs %lld MiB): refused",
                         size.bytes >> 20, avail >> 20, need >> 20);
    return 0;
}
