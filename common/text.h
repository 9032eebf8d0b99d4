/*
 * text.h: small text helpers shared by both services: hex digests,
 * turning arbitrary bytes into valid UTF-8 for JSON fields, whether a JSON
 * array lists a string, and the error-message helper of functions that
 * return -1 with a reason.
 */
#ifndef TANGO_TEXT_H
#define TANGO_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Copy of bytes as valid UTF-8 (each invalid byte becomes U+FFFD); malloc'd,
 * NUL-terminated, *outlen set. JSON strings must be UTF-8; output files are
 * never passed through this (they are bytes). */
char *utf8_sanitize(const char *in, size_t len, size_t *outlen);

/* Whether the JSON array list (anything else: none) holds the string s. */
bool json_lists_string(const json_t *list, const char *s);

/* Formats the reason into err (errlen bytes; err may be NULL) and returns
 * -1, for `return text_fail(err, errlen, "...", ...);`. */
int text_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
