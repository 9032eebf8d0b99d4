/*
 * image_ref.h: the image references a job may name. Either a local name
 * (names.h image_name_is_valid: "autograding_image", "img:v2") or a
 * registry reference "host[:port]/path[:tag]" or "host[:port]/path@sha256:<64
 * hex>" (a tag and a digest together: the digest counts). The registry part
 * is what config key "registries" lists; the parse is the one gate for
 * every such reference from outside (addJob, a plugin's pull), fuzzed by
 * tests/fuzz/fuzz_image_ref.c. image_ref.c owns it.
 */
#ifndef TANGO_IMAGE_REF_H
#define TANGO_IMAGE_REF_H

#include <stdbool.h>
#include <stddef.h>

#define IMAGE_REF_MAX 255       /* the whole reference, bytes */
#define IMAGE_REF_HOST_MAX 253  /* host[:port] */
#define IMAGE_REF_TAG_MAX 128

struct image_ref {
    bool remote;                        /* a registry reference */
    char registry[IMAGE_REF_HOST_MAX + 1]; /* "host[:port]", lower case; "" if local */
    char path[IMAGE_REF_MAX + 1];       /* "15213/datalab"; the whole name if local */
    char tag[IMAGE_REF_TAG_MAX + 1];    /* "" when none (a pull then asks "latest") */
    char digest[72];                    /* "sha256:<64 lower hex>" or "" */
};

/* Parses s into *out. 0, or -1 when s is neither a valid local name nor a
 * valid registry reference (out is then zeroed). A name is a registry
 * reference when it holds a '/' whose first component has a '.' or a ':'
 * or is "localhost". Host: DNS labels of [A-Za-z0-9-] (1..63, no '-' at
 * either end), optional ":port" 1..65535. Path components:
 * [a-z0-9] at both ends, [a-z0-9._-] between, no "..", at most 16. Tag:
 * [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. Digest: "sha256:" and 64 lower-case hex. */
int image_ref_parse(const char *s, struct image_ref *out);

/* What a pull asks the registry for: the digest, else the tag, else "latest". */
const char *image_ref_reference(const struct image_ref *r);

/* True when host (a config "registries" key) is a valid "host[:port]". */
bool image_ref_host_ok(const char *host);

/* The name of localOCI's pull record of registry r's path at digest
 * ("sha256:<hex>"): "reg-" and the sha256 hex of "host/path@digest" (one
 * record per reference, not per digest, so a digest pulled from one path
 * is never used for another), into out (69 bytes). */
void image_ref_record_name(const struct image_ref *r, const char *digest, char out[69]);

#endif
