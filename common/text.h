/*
 * text.h: small text helpers shared by both services: hex digests and
 * turning arbitrary bytes into valid UTF-8 for JSON fields.
 */
#ifndef TANGO_TEXT_H
#define TANGO_TEXT_H

#include <stddef.h>

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Copy of bytes as valid UTF-8 (each invalid byte becomes U+FFFD); malloc'd,
 * NUL-terminated, *outlen set. JSON strings must be UTF-8; output files are
 * never passed through this (they are bytes). */
char *utf8_sanitize(const char *in, size_t len, size_t *outlen);

#endif
