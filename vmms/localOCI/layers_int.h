/*
 * layers_int.h: what the three layer-store files of localOCI share and
 * nothing else sees: layers_unpack.c (the unpack of one layer and its
 * rules), layers.c (the store: storing a layer, writing an image record,
 * digests) and layers_import.c (the ways an image comes in).
 */
#ifndef TANGO_LO_LAYERS_INT_H
#define TANGO_LO_LAYERS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>

struct archive;
struct lo_ctx;

/* What an import may still unpack (struct vmms_image_limits), spent by
 * each of its layers' entries. */
struct lo_budget {
    long long bytes, entries; /* left */
    long long max_bytes, max_entries;
};

/* Where a layer's bytes come from: an entry of an outer tarball, or a file. */
struct lo_source {
    struct archive *outer;    /* read from this archive's current entry, or */
    int fd;                   /* from this file */
    struct lo_budget *budget; /* NULL: only ENTRIES_MAX per layer */
    EVP_MD_CTX *md;
    char buf[64 * 1024];
    int error;
};

/* Cleans a tar entry's name into out (outsz bytes): "./" and "/" runs
 * folded; refuses an absolute name and any ".." component. Returns 0, 1 for
 * the layer's root itself, -1 (refused or too long). */
int lo_clean_path(const char *in, char *out, size_t outsz);

/* Unpacks the layer tar stream of src into dir (exists, empty) by the unpack
 * rules, spending src->budget, with hex (65 bytes) set to the sha256 of
 * every byte read from src ("" on failure). VMMS_OK or VMMS_ERR with err. */
int lo_unpack_source(struct lo_source *src, const char *dir, char *hex, char *err,
                     size_t errlen);

/* True when s is exactly 64 lower-case hex digits. */
bool lo_hex64(const char *s);

/* "sha256:<64 hex>" -> the hex (pointing into d), or NULL. */
const char *lo_digest_hex(const char *d);

/* Unpacks one layer from src into the store as digest want (64 hex),
 * unless it is there already; refused when the bytes' sha256 is not want.
 * *made (may be NULL) tells whether this call stored it. VMMS_OK or
 * VMMS_ERR with err. */
int lo_store_layer(struct lo_ctx *ctx, struct lo_source *src, const char *want, bool *made,
                   char *err, size_t errlen);

/* Writes the image record of name (":latest" dropped) atomically: its id,
 * layers (64-hex digests, bottom first) and cfg's Env and WorkingDir.
 * Callers hold import_lock. VMMS_OK or VMMS_ERR with err. */
int lo_write_record(struct lo_ctx *ctx, const char *name, const char *id,
                    const json_t *layers, const json_t *cfg, char *err, size_t errlen);

#endif
