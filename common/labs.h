/*
 * labs.h: courselab directories on disk and the installation secret that
 * names them. Each client key's labs live apart:
 *   <courselabs>/<keyid>-<COURSELAB>/          input files (uploads)
 *   <courselabs>/<keyid>-<COURSELAB>/output/   output files (feedback)
 * where keyid is an HMAC of the key with the installation secret (names.h
 * key_id), so no key is ever in a path and no path lets anyone test a
 * guessed key. Directories made before the secret existed carry the old id
 * (SHA-256 of the key); lab_dir_find still finds them, in place (they are
 * not renamed: queued jobs name them in their records).
 * Every name is validated here before it is joined to a path.
 */
#ifndef TANGO_LABS_H
#define TANGO_LABS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define LAB_DIR_MAX 256

#define INSTALL_SECRET_BYTES 32  /* what a new secret file holds (random) */
#define INSTALL_SECRET_MIN 16    /* shortest secret file accepted */
#define INSTALL_SECRET_MAX 1024  /* longest secret file accepted */
#define INSTALL_SECRET_NAME ".tango-secret"

/* The per-installation secret (never logged, never in a path or answer). */
struct install_secret {
    unsigned char bytes[INSTALL_SECRET_MAX];
    size_t len;
};

/* Loads the installation secret from path, or from
 * <courselabs>/.tango-secret when path is NULL or "". A missing file is
 * created with INSTALL_SECRET_BYTES random bytes (OpenSSL RAND_bytes), mode
 * 0600: written to a temporary made with O_EXCL|O_NOFOLLOW, then linked into
 * place, so services starting at once all end up with the one secret that
 * won and nobody reads a half-written file. The file must be a regular file
 * (not a symlink), readable by its owner only, INSTALL_SECRET_MIN..MAX bytes.
 * Returns 0, or -1 with the reason in err. */
int install_secret_load(const char *courselabs, const char *path, struct install_secret *out,
                        char *err, size_t errlen);

/* Builds the lab directory name for key (with the installation secret);
 * -1 if courselab is not a safe name or the result would be too long for
 * one path component. */
int lab_dir_name(const struct install_secret *secret, const char *key, const char *courselab,
                 char out[LAB_DIR_MAX]);
/* The name the same lab had before the installation secret (SHA-256 id). */
int lab_dir_name_legacy(const char *key, const char *courselab, char out[LAB_DIR_MAX]);
/* The lab's directory as it is on disk: the legacy-named directory if only
 * that one exists, else the secret-derived name (existing or to be made by
 * lab_open). -1 as lab_dir_name. */
int lab_dir_find(const char *courselabs, const struct install_secret *secret, const char *key,
                 const char *courselab, char out[LAB_DIR_MAX]);

/* <courselabs>/<lab_dir>[/<sub>][/<name>] into out (PATH_MAX). -1 if a part
 * is unsafe or the path is too long. sub and name may be NULL. */
int lab_path(const char *courselabs, const char *lab_dir, const char *sub, const char *name,
             char out[PATH_MAX]);

/* Creates the lab directory and its output folder if missing. *created tells
 * whether the lab directory was new. */
int lab_open(const char *courselabs, const char *lab_dir, bool *created);
bool lab_exists(const char *courselabs, const char *lab_dir);
/* true if <lab>/<name> is a regular file. */
bool lab_has_file(const char *courselabs, const char *lab_dir, const char *name);

/* mkdir -p with mode for each missing component. */
int mkdir_p(const char *path, unsigned mode);

#endif
