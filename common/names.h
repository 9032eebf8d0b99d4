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

/* The length of image reference ref's repository: ref up to its tag's ':'
 * (a ':' after the last '/', so a registry's port is no tag), or all of ref
 * up to an '@digest'. "datalab:v3" -> 8; "host:5000/x/y:t" -> 13. */
size_t image_repo_len(const char *ref);

/* ref (no '@digest') as Docker names it: with ":latest" added when it has
 * no tag. True, or false when out (outlen bytes) has no room. */
bool image_name_canon(const char *ref, char *out, size_t outlen);

/* Job ids in URLs: decimal, 1..19 digits, > 0. Returns 0 and sets *id. */
int parse_job_id(const char *s, long long *id);

/* Compares a presented key with each configured key in constant time (for
 * a given key length); true if any matches. */
bool key_matches(const char *presented, char *const *keys, size_t nkeys);

#define KEY_ID_LEN 16

/* A short, non-secret id for a key: the first 16 hex digits of
 * HMAC-SHA256(secret, key), secret being the installation's (labs.h
 * install_secret_load). Names each key's labs on disk and records which key
 * owns a job, without the key in any path or record; without the secret
 * nobody can test a guessed key against an id. */
void key_id(const unsigned char *secret, size_t secret_len, const char *key,
            char out[KEY_ID_LEN + 1]);

/* The id lab directories were named by before the installation secret:
 * the first 16 hex digits of SHA-256(key). Only to find what was made
 * then (labs.h lab_dir_find, job records without "keyId"). */
void key_id_legacy(const char *key, char out[KEY_ID_LEN + 1]);

#include <string.h>
static inline bool name_is_safe_str(const char *s)
{
    return s && name_is_safe(s, strlen(s));
}

#endif
