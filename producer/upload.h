/*
 * upload.h: a file being received. Bytes go to an unnamed temporary file
 * (O_TMPFILE) in the target directory while their MD5 is computed, so a
 * crash or a dropped connection leaves nothing behind; commit() gives the
 * file its name atomically (fsync, link to a temporary name, rename), so a
 * reader never sees a half-written file.
 */
#ifndef TANGO_PRODUCER_UPLOAD_H
#define TANGO_PRODUCER_UPLOAD_H

#include <stddef.h>

struct upload;

/* Starts a file in dir. NULL with errno set on failure. */
struct upload *upload_begin(const char *dir);
int upload_write(struct upload *up, const void *data, size_t len);
/* Finishes hashing; md5 gets 32 hex digits. */
void upload_digest(struct upload *up, char md5[33]);
size_t upload_size(const struct upload *up);
/* fsync + atomic rename into dir/name (replacing any old file). */
int upload_commit(struct upload *up, const char *name);
/* Drops the data (nothing stays on disk) and frees. */
void upload_free(struct upload *up);

#endif
