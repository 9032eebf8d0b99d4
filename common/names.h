/*
 * names.h: validation of every name that comes from outside and may become a
 * path or a Redis key part (KEY, COURSELAB, Filename, output_file, localFile,
 * destFile, image names), and constant-time key comparison.
 */
#ifndef TANGO_NAMES_H
#define TANGO_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_MAX_BYTES 255

/* A safe path component: 1..255 bytes, not "." or "..", no '/', '\\', NUL
 * (len must equal strlen) or control characters (< 0x20, 0x7f). */
bool name_is_safe(const char *s, size_t len);
static inline bool name_is_safe_str(const char *s);

/* An image name: a safe name that also fits Docker's reference grammar for a
 * local image: [a-z0-9] then [a-z0-9._-]*, optional ":tag" ([A-Za-z0-9._-]). */
bool image_name_is_valid(const char *s);

/* Job ids in URLs: decimal, 1..19 digits, > 0. Returns 0 and sets *id. */
int parse_job_id(const char *s, long long *id);

/* Compares a presented key with each configured key in constant time (for
 * a given key length); true if any matches. */
bool key_matches(const char *presented, char *const *keys, size_t nkeys);

/* A short, non-secret id for a key: first 16 hex digits of its SHA-256.
 * Used to keep each key's labs apart on disk without the key in any path. */
void key_id(const char *key, char out[17]);

#include <string.h>
static inline bool name_is_safe_str(const char *s)
{
    return s && name_is_safe(s, strlen(s));
}

#endif
