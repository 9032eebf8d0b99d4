/*
 * images_oci.c: tangoctl images on localOCI's layer store
 * (<store>/images/<name>.json records listing their layers bottom first,
 * <store>/layers/<sha256>/ unpacked layers; vmms/localOCI/layers.c). Lists
 * every record and layer; prunes the records of registry pulls
 * ("reg-<sha256 hex of host/path@digest>", image_ref_record_name) no live
 * job, pool or configured image uses, then
 * every layer no kept record lists and that has not changed for
 * LAYER_GRACE_S (a pull in progress stores its layers before its record).
 * Only the store named by the config's vmms_config.localOCI.store_dir is
 * looked at. Directories are opened without following links; layer names
 * are 64 hex digits and record names never hold a '/'.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "images.h"

#define LAYER_GRACE_S 3600

static bool hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* The entries of <store>/<sub> (a directory, not a link), or NULL. */
static json_t *list_dir(const char *store, const char *sub)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", store, sub);
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        fprintf(stderr, "tangoctl: localOCI: cannot read %s: %s\n", p, strerror(errno));
        return NULL;
    }
    json_t *names = json_array();
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            json_array_append_new(names, json_string(de->d_name));
    closedir(d);
    return names;
}

/* The record <store>/images/<file> (not a link), or NULL. */
static json_t *read_record(const char *store, const char *file)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/images/%s", store, file);
    int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    json_t *rec = fd >= 0 ? json_loadfd(fd, 0, NULL) : NULL;
    if (fd >= 0)
        close(fd);
    return rec;
}

/* Rows of the records; the layers of every kept record into keep.
 * Returns false when a kept record could not be read (its layers are
 * unknown: no layer may go). */
static bool records(struct img_run *r, const char *store, json_t *keep)
{
    bool known = true;
    json_t *files = list_dir(store, "images");
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *file = json_string_value(f);
        size_t n = strlen(file);
        if (n <= 5 || strcmp(file + n - 5, ".json") != 0)
            continue; /* a record being written (.tmp) */
        char name[300];
        snprintf(name, sizeof name, "%.*s", (int)(n - 5), file);
        bool reg = strncmp(name, "reg-", 4) == 0 && hex64(name + 4);
        json_t *rec = read_record(store, file);
        if (img_row(r, "localOCI", name, reg, img_use_count(r->uses, name))) {
            char p[4400];
            snprintf(p, sizeof p, "%s/images/%s", store, file);
            img_removed(r, unlink(p) == 0, strerror(errno));
        }
        if (!img_row_goes(r) && !json_is_array(json_object_get(rec, "layers"))) {
            fprintf(stderr, "tangoctl: localOCI: record %s unreadable: no layer is pruned\n",
                    file);
            known = false;
        } else if (!img_row_goes(r)) {
            size_t j;
            json_t *l;
            json_array_foreach(json_object_get(rec, "layers"), j, l)
                json_object_set_new(keep, json_string_value(l) ?: "", json_true());
        }
        json_decref(rec);
    }
    r->failed |= files == NULL;
    json_decref(files);
    return known && files != NULL;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)f;
    return (flag == FTW_DP ? rmdir(p) : unlink(p)) == 0 ? 0 : -1;
}

/* Rows of the layers: one no kept record lists and older than the grace
 * is "ours" to remove, unless known is false (a record unread). */
static void layers(struct img_run *r, const char *store, const json_t *keep, bool known)
{
    json_t *names = list_dir(store, "layers");
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
        const char *hex = json_string_value(v);
        char p[4400], label[80];
        snprintf(p, sizeof p, "%s/layers/%s", store, hex);
        struct stat st;
        if (!hex64(hex) || lstat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        bool listed = json_object_get(keep, hex) != NULL;
        bool young = time(NULL) - st.st_mtime < LAYER_GRACE_S;
        snprintf(label, sizeof label, "layer:%.64s", hex);
        if (img_row(r, "localOCI", label, known && !listed && !young, listed))
            img_removed(r, nftw(p, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0,
                        strerror(errno));
    }
    r->failed |= names == NULL;
    json_decref(names);
}

void img_oci(struct img_run *r)
{
    json_t *lo = json_object_get(r->x->cfg.vmms_config, "localOCI");
    const char *store = json_string_value(json_object_get(lo, "store_dir"));
    if (!store || store[0] != '/')
        return;
    json_t *keep = json_object();
    bool known = records(r, store, keep);
    layers(r, store, keep, known);
    json_decref(keep);
}
