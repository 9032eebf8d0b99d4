/* fuzz_oci.c: libFuzzer harness for the localOCI image import
 * (vmms/localOCI/layers_unpack.c, layers_import.c): the layer tar
 * extraction with libarchive and overlayfs whiteouts (lo_unpack_layer), a
 * `docker save` tarball's manifest.json and image config (lo_load_image),
 * and an OCI image layout's index.json, manifests and blobs (lo_import_oci_dir).
 *
 * Input: byte 0 picks the kind; the rest is:
 *   0  a layer tar stream, unpacked into a fresh directory;
 *   1  a `docker save` tarball, loaded as image "fuzz";
 *   2  records "NAME\n" CONTENT separated by "--next--", written as files
 *      of an OCI image layout directory imported as image "fuzz"; in every
 *      record, "@N" (N a digit) stands for "sha256:" and the hex digest of
 *      record N (N later than the record itself: index.json first), and
 *      NAME "@" for the record's own blob, blobs/sha256/<its sha256>, so
 *      digests stay right under mutation. Other NAMEs are a file name in
 *      the layout's top directory.
 *
 * It asserts the security properties, not only "no crash": the jail's
 * sibling directory outside/ (a file, a directory, an extended attribute)
 * is never created in, changed, removed or hard linked to; nothing appears
 * next to the layer or the store; every hard link in a layer has all its
 * names inside it; an unpacked layer's digest is the stream's sha256; a
 * refusal says why; after an import the store holds only
 * layers/<64 hex>/ (each the layer of a blob the import was given: its
 * sha256) and images/fuzz.json naming only such layers, and tmp/ is empty.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "fuzz_util.h"
#include "localOCI/lo.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(c)          \
    do {                  \
        if (!(c))         \
            abort();      \
    } while (0)

/* T/jail/{layer,outside,store,oci}; T/in.tar */
static char top[PATH_MAX], jail[PATH_MAX], layer[PATH_MAX], outside[PATH_MAX], store[PATH_MAX],
    oci[PATH_MAX], tarpath[PATH_MAX];
static struct lo_ctx ctx;

static void sha256_hex(const void *p, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned dl = 0;
    CHECK(EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL) == 1 && dl == 32);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ---- the canary outside the jail's working directories ---- */

struct snap {
    char path[PATH_MAX];
    struct stat st;
};
static struct snap canary[8];
static size_t ncanary;

static void canary_add(const char *rel)
{
    struct snap *s = &canary[ncanary++];
    snprintf(s->path, sizeof s->path, "%s%s", outside, rel);
    CHECK(lstat(s->path, &s->st) == 0);
}

static void canary_make(void)
{
    char p[PATH_MAX + 32];
    CHECK(mkdir(outside, 0700) == 0);
    snprintf(p, sizeof p, "%s/secret", outside);
    fuzz_write_file((const char *)p, (const uint8_t *)"canary", 6);
    snprintf(p, sizeof p, "%s/sub", outside);
    CHECK(mkdir(p, 0700) == 0);
    canary_add("");
    canary_add("/secret");
    canary_add("/sub");
}

/* outside/ is as made: the same entries, inodes, modes, owners, sizes,
 * times, link counts, content and no overlay attribute. */
static void canary_check(void)
{
    for (size_t i = 0; i < ncanary; i++) {
        struct stat st;
        const struct stat *o = &canary[i].st;
        CHECK(lstat(canary[i].path, &st) == 0);
        CHECK(st.st_ino == o->st_ino && st.st_mode == o->st_mode && st.st_uid == o->st_uid &&
              st.st_gid == o->st_gid && st.st_size == o->st_size &&
              st.st_nlink == o->st_nlink && st.st_mtim.tv_sec == o->st_mtim.tv_sec &&
              st.st_mtim.tv_nsec == o->st_mtim.tv_nsec);
        char v[8];
        CHECK(lgetxattr(canary[i].path, "trusted.overlay.opaque", v, sizeof v) < 0);
    }
    char p[PATH_MAX + 32], buf[16] = "";
    snprintf(p, sizeof p, "%s/secret", outside);
    int fd = open(p, O_RDONLY | O_NOFOLLOW);
    CHECK(fd >= 0 && read(fd, buf, sizeof buf) == 6 && memcmp(buf, "canary", 6) == 0);
    close(fd);
    /* nothing new in outside/ or outside/sub */
    for (int d = 0; d < 2; d++) {
        snprintf(p, sizeof p, "%s%s", outside, d ? "/sub" : "");
        DIR *dir = opendir(p);
        CHECK(dir);
        struct dirent *e;
        while ((e = readdir(dir)) != NULL)
            CHECK(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
                  (d == 0 && (strcmp(e->d_name, "secret") == 0 ||
                              strcmp(e->d_name, "sub") == 0)));
        closedir(dir);
    }
}

/* Directory dir holds only the names in allowed (NULL-ended). */
static void only(const char *dir, const char *const *allowed)
{
    DIR *d = opendir(dir);
    CHECK(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        bool ok = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(e->d_name, allowed[i]) == 0;
        CHECK(ok);
    }
    closedir(d);
}

static void surroundings_check(void)
{
    static const char *const at_top[] = {"jail", "in.tar", NULL};
    static const char *const in_jail[] = {"layer", "outside", "store", "oci", NULL};
    only(top, at_top);
    only(jail, in_jail);
    canary_check();
    struct stat st; /* the name the absolute-path seeds aim at */
    CHECK(lstat("/tmp/tango-fuzz-pwn", &st) != 0);
}

/* ---- the hard links of a tree ---- */

#define MAX_FILES 4096
static struct {
    dev_t dev;
    ino_t ino;
    nlink_t nlink;
    size_t seen;
} files[MAX_FILES];
static size_t nfiles;
static bool too_many;

static int walk_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)p;
    (void)f;
    if (flag == FTW_NS || S_ISDIR(st->st_mode) || st->st_nlink < 2)
        return 0;
    for (size_t i = 0; i < nfiles; i++)
        if (files[i].dev == st->st_dev && files[i].ino == st->st_ino) {
            files[i].seen++;
            return 0;
        }
    if (nfiles == MAX_FILES) {
        too_many = true;
        return 0;
    }
    files[nfiles].dev = st->st_dev;
    files[nfiles].ino = st->st_ino;
    files[nfiles].nlink = st->st_nlink;
    files[nfiles++].seen = 1;
    return 0;
}

/* Every file of tree with several names has all of them in tree. */
static void links_inside(const char *tree)
{
    nfiles = 0;
    too_many = false;
    CHECK(nftw(tree, walk_one, 32, FTW_PHYS) == 0);
    for (size_t i = 0; i < nfiles && !too_many; i++)
        CHECK(files[i].seen == files[i].nlink);
}

static void fresh_dir(const char *d)
{
    lo_rm_tree(d);
    CHECK(mkdir(d, 0755) == 0);
}

static void write_tar(const uint8_t *data, size_t size)
{
    unlink(tarpath);
    fuzz_write_file(tarpath, data, size);
}

/* ---- kind 0: one layer ---- */

static void one_layer(const uint8_t *data, size_t size)
{
    fresh_dir(layer);
    write_tar(data, size);
    int fd = open(tarpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    CHECK(fd >= 0);
    char hex[65] = "x", err[512] = "";
    int rc = lo_unpack_layer(fd, layer, hex, err, sizeof err);
    close(fd);
    if (getenv("FUZZ_OCI_SHOW"))
        fprintf(stderr, "unpack rc=%d err=%s\n", rc, err);
    struct stat st;
    CHECK(lstat(layer, &st) == 0 && S_ISDIR(st.st_mode));
    surroundings_check();
    links_inside(layer);
    if (rc == VMMS_OK) {
        char want[65];
        sha256_hex(data, size, want);
        CHECK(strcmp(hex, want) == 0);
    } else {
        CHECK(rc == VMMS_ERR && err[0] && hex[0] == '\0');
    }
}

/* ---- the store after an import ---- */

#define MAX_BLOBS 16
static char given[MAX_BLOBS][65]; /* sha256 of what the import was given */
static size_t ngiven;

static bool was_given(const char *hex)
{
    for (size_t i = 0; i < ngiven; i++)
        if (strcmp(given[i], hex) == 0)
            return true;
    return false;
}

static bool hex64(const char *s)
{
    return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static void store_check(int rc, const char *err)
{
    if (getenv("FUZZ_OCI_SHOW")) /* what an input does, to write seeds */
        fprintf(stderr, "import rc=%d err=%s\n", rc, err);
    char p[PATH_MAX + 64];
    static const char *const subs[] = {"layers", "images", "tmp", NULL};
    static const char *const none[] = {NULL};
    static const char *const image[] = {"fuzz.json", NULL};
    only(store, subs);
    snprintf(p, sizeof p, "%s/tmp", store);
    only(p, none);
    snprintf(p, sizeof p, "%s/images", store);
    only(p, image);
    surroundings_check();
    CHECK(rc == VMMS_OK || (rc == VMMS_ERR && err[0]));
    snprintf(p, sizeof p, "%s/layers", store);
    DIR *d = opendir(p);
    CHECK(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        /* a layer is named by the digest of a blob it was given */
        CHECK(hex64(e->d_name) && (ngiven == MAX_BLOBS || was_given(e->d_name)));
        char l[PATH_MAX * 2];
        snprintf(l, sizeof l, "%s/%s", p, e->d_name);
        struct stat st;
        CHECK(lstat(l, &st) == 0 && S_ISDIR(st.st_mode));
        links_inside(l);
    }
    closedir(d);
    json_t *rec = NULL;
    char e2[256];
    int g = lo_image_get(&ctx, "fuzz", &rec, e2, sizeof e2);
    if (rc == VMMS_OK) {
        CHECK(g == VMMS_OK);
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(rec, "layers"), i, l) {
            char ld[PATH_MAX];
            lo_layer_dir(&ctx, json_string_value(l), ld, sizeof ld);
            CHECK(hex64(json_string_value(l)) && access(ld, F_OK) == 0);
        }
        const char *cwd = json_string_value(json_object_get(rec, "cwd"));
        CHECK(cwd && cwd[0] == '/');
    }
    json_decref(rec);
}

static void store_reset(void)
{
    static const char *const subs[] = {"layers", "images", "tmp"};
    char p[PATH_MAX + 16];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", store, subs[i]);
        fresh_dir(p);
        chmod(p, 0700);
    }
}

/* ---- kind 1: a docker save tarball ---- */

/* The sha256 of each entry of a plain uncompressed ustar stream (octal
 * sizes, no pax or GNU headers, which may change names and sizes) into
 * given: the only layers the import may store. Anything else: not
 * followed here, and the layer names are not checked. */
static void tar_blobs(const uint8_t *data, size_t size)
{
    ngiven = 0;
    bool plain = true;
    size_t off = 0;
    while (plain && off + 512 <= size) {
        const uint8_t *h = data + off;
        bool zero = true;
        for (size_t i = 0; i < 512 && zero; i++)
            zero = h[i] == 0;
        if (zero)
            break; /* the end */
        char sz[13];
        memcpy(sz, h + 124, 12);
        sz[12] = '\0';
        size_t digits = strspn(sz + strspn(sz, " "), "01234567");
        char *end;
        unsigned long long n = strtoull(sz, &end, 8);
        plain = digits > 0 && strchr("0125\0", h[156]) && ngiven < MAX_BLOBS &&
                memcmp(h + 257, "ustar", 5) == 0 && n <= size - off - 512;
        if (!plain)
            break;
        off += 512;
        sha256_hex(data + off, (size_t)n, given[ngiven++]);
        off += (size_t)((n + 511) / 512 * 512);
    }
    if (!plain)
        ngiven = MAX_BLOBS;
}

/* Caps as a small config would set them (image_max_*), so they are fuzzed too. */
static const struct vmms_image_limits lim = {64LL << 20, 20000};

static void docker_save(const uint8_t *data, size_t size)
{
    store_reset();
    write_tar(data, size);
    tar_blobs(data, size);
    char err[512] = "";
    int rc = lo_load_image(&ctx, tarpath, "fuzz", 10, &lim, err, sizeof err);
    store_check(rc, err);
}

/* ---- kind 2: an OCI image layout ---- */

#define SEP "--next--"

static void oci_layout(const uint8_t *data, size_t size)
{
    store_reset();
    fresh_dir(oci);
    /* split into records */
    const uint8_t *rec[10];
    size_t len[10], n = 0;
    const uint8_t *p = data, *end = data + size;
    while (n < 10) {
        const uint8_t *s = memmem(p, (size_t)(end - p), SEP, strlen(SEP));
        rec[n] = p;
        len[n++] = (size_t)((s ? s : end) - p);
        if (!s)
            break;
        p = s + strlen(SEP);
    }
    /* last first: each record's @N are digests of later ones */
    static char hexes[10][65];
    char *text[10] = {0};
    size_t tlen[10] = {0};
    ngiven = 0;
    for (size_t i = n; i-- > 0;) {
        text[i] = malloc(len[i] * 36 + 1);
        CHECK(text[i]);
        size_t o = 0;
        for (size_t k = 0; k < len[i]; k++) {
            unsigned d = k + 1 < len[i] ? (unsigned)(rec[i][k + 1] - '0') : 10;
            if (rec[i][k] == '@' && d < 10 && d > i && d < n) {
                o += (size_t)sprintf(text[i] + o, "sha256:%s", hexes[d]);
                k++;
            } else {
                text[i][o++] = (char)rec[i][k];
            }
        }
        text[i][o] = '\0';
        tlen[i] = o;
        const char *nl = memchr(text[i], '\n', o);
        size_t off = nl ? (size_t)(nl - text[i]) + 1 : o;
        sha256_hex(text[i] + off, o - off, hexes[i]);
        snprintf(given[ngiven++], 65, "%s", hexes[i]);
    }
    /* write them: NAME is one path component under oci/ or blobs/sha256/ */
    char d[PATH_MAX + 32];
    snprintf(d, sizeof d, "%s/blobs", oci);
    CHECK(mkdir(d, 0755) == 0);
    snprintf(d, sizeof d, "%s/blobs/sha256", oci);
    CHECK(mkdir(d, 0755) == 0);
    for (size_t i = 0; i < n; i++) {
        const char *nl = memchr(text[i], '\n', tlen[i]);
        size_t nlen = nl ? (size_t)(nl - text[i]) : tlen[i];
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)(nlen < 79 ? nlen : 79), text[i]);
        if (strcmp(name, "@") == 0) /* the record's own blob */
            snprintf(name, sizeof name, "sha256:%s", hexes[i]);
        bool blob = strncmp(name, "sha256:", 7) == 0 && hex64(name + 7);
        if (!blob && (name[0] == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 ||
                      strcmp(name, "..") == 0 || strcmp(name, "blobs") == 0))
            continue;
        char path[PATH_MAX + 200];
        snprintf(path, sizeof path, "%s/%s%s", oci, blob ? "blobs/sha256/" : "",
                 blob ? name + 7 : name);
        size_t off = nl ? nlen + 1 : tlen[i];
        unlink(path);
        fuzz_write_file(path, (const uint8_t *)text[i] + off, tlen[i] - off);
    }
    for (size_t i = 0; i < n; i++)
        free(text[i]);
    char err[512] = "";
    int rc = lo_import_oci_dir(&ctx, oci, "fuzz", err, sizeof err);
    store_check(rc, err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_init("fuzz", LOG_ERROR);
    /* canonical: the store's rule is no symbolic link on the way */
    CHECK(realpath(fuzz_tmpdir(), top) != NULL && strlen(top) < 150);
    snprintf(jail, sizeof jail, "%s/jail", top);
    snprintf(layer, sizeof layer, "%s/layer", jail);
    snprintf(outside, sizeof outside, "%s/outside", jail);
    snprintf(store, sizeof store, "%s/store", jail);
    snprintf(oci, sizeof oci, "%s/oci", jail);
    snprintf(tarpath, sizeof tarpath, "%s/in.tar", top);
    CHECK(mkdir(jail, 0755) == 0);
    canary_make();
    snprintf(ctx.cfg.store_dir, sizeof ctx.cfg.store_dir, "%s", store);
    pthread_mutex_init(&ctx.lock, NULL);
    pthread_mutex_init(&ctx.import_lock, NULL);
    char err[256];
    CHECK(lo_store_init(&ctx, err, sizeof err) == VMMS_OK);
    CHECK(strcmp(ctx.cfg.store_dir, store) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    unsigned kind = data[0] % 3;
    if (kind == 0)
        one_layer(data + 1, size - 1);
    else if (kind == 1)
        docker_save(data + 1, size - 1);
    else
        oci_layout(data + 1, size - 1);
    return 0;
}
