/*
 * image_tar.h: what a `docker save` tarball given to /build may do, decided
 * before Docker sees it, for every VMMS plugin that loads images. It owns:
 *   - reading the tarball's manifest.json with libarchive, bounded (at most
 *     IMAGE_TAR_MAX_ENTRIES entries, a manifest of at most
 *     IMAGE_TAR_MANIFEST_MAX bytes, nothing written to disk), the way Docker's
 *     loader would find it (the last top-level regular manifest.json; one
 *     that is a link, or reached through a symlinked directory, is refused);
 *   - the rule: the tarball holds one image, and the only tag it may carry is
 *     the imageName of the request (in any of Docker's spellings of it), or
 *     none; anything else is refused with a message naming the tag;
 *   - reading Docker's "Loaded image: REF" / "Loaded image ID: ID" lines and
 *     comparing references, for the check after the load;
 *   - what the image unpacks to (every layer read through, decompressed,
 *     nothing written): refused over the caps (config image_max_unpacked_mb,
 *     image_max_entries) or over the free space of the file system it would
 *     be unpacked on, before anything is loaded (decompression bombs).
 * Thread-safe (no shared state).
 */
#ifndef TANGO_IMAGE_TAR_H
#define TANGO_IMAGE_TAR_H

#include <stdbool.h>
#include <stddef.h>

#define IMAGE_TAR_MAX_ENTRIES 100000        /* entries of the outer tarball */
#define IMAGE_TAR_MANIFEST_MAX (1L << 20)   /* bytes of manifest.json */

/* Reads the tarball open at fd (from offset 0; the offset is left anywhere:
 * rewind before using fd again) and checks it against want (a valid image
 * name, [a-z0-9][a-z0-9._-]* with an optional :tag). Returns 0 when it may be
 * loaded as want, with *tagged telling whether it already carries want's tag;
 * -1 with a one-line reason in err otherwise (not a docker save tarball, too
 * big, several images, another tag, a manifest Docker could read otherwise). */
int image_tar_check(int fd, const char *want, bool *tagged, char *err, size_t errlen);

/* True if ref names the same tag as want for Docker: "repo" and
 * "repo:latest", "docker.io/library/repo" and "library/repo" are one. */
bool image_ref_same(const char *ref, const char *want);

/* One line of Docker's load answer (n bytes, no newline needed). Returns 1
 * for "Loaded image: REF", 2 for "Loaded image ID: ID", 0 for anything
 * else; copies REF or ID (trimmed) into out. */
int image_load_line(const char *line, size_t n, char *out, size_t outsz);

/* What an image unpacks to: bytes of every file of every layer (their
 * sizes as the tar headers give them, so a sparse file counts whole) plus
 * the tarball's other files, and entries of every layer plus the
 * tarball's own. */
struct image_tar_size {
    long long bytes;
    long long entries;
};

/* Reads the tarball open at fd (from offset 0; rewind before using fd
 * again) and every layer in it (each regular file that is a tar itself,
 * plain or compressed) through, counting into *size. Returns 0 within the
 * caps; -1 with a one-line reason naming the cap and its config key
 * (image_max_unpacked_mb, image_max_entries) at the first one passed, or
 * when the tarball cannot be read. */
int image_tar_measure(int fd, long long max_bytes, long long max_entries,
                      struct image_tar_size *size, char *err, size_t errlen);

/* image_tar_measure, then: the file system holding dir (NULL: not checked)
 * has room for what the image unpacks to (its bytes and an eighth more).
 * 0, or -1 with the reason (the sizes in MiB) in err. */
int image_tar_admit(int fd, long long max_bytes, long long max_entries, const char *dir,
                    char *err, size_t errlen);

#endif
