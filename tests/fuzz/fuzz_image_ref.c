/* fuzz_image_ref.c: libFuzzer harness for common/image_ref.c, the parse of
 * every image reference a client sends (addJob's "image"). Asserts, beyond
 * "no crash": an accepted reference's parts are within their bounds, a
 * registry reference's host passes image_ref_host_ok, its path has no "..",
 * no "//" and no leading '/' (a local name: no '/' at all), its digest (if any) is sha256 and 64 hex; a refused
 * one leaves the struct zeroed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)          \
    do {                  \
        if (!(c))         \
            abort();      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[512];
    if (size >= sizeof s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct image_ref r;
    if (image_ref_parse(s, &r) != 0) {
        CHECK(!r.remote && r.registry[0] == '\0' && r.path[0] == '\0');
        return 0;
    }
    CHECK(strlen(s) <= IMAGE_REF_MAX && r.path[0] != '\0' && r.path[0] != '/');
    const char *ref = image_ref_reference(&r);
    CHECK(ref != NULL && ref[0] != '\0');
    if (r.remote) {
        CHECK(strstr(r.path, "..") == NULL && strstr(r.path, "//") == NULL);
        CHECK(image_ref_host_ok(r.registry));
        CHECK(r.digest[0] == '\0' || (strncmp(r.digest, "sha256:", 7) == 0 &&
                                      strlen(r.digest) == 71));
        CHECK(strchr(r.tag, '/') == NULL && strchr(r.tag, '@') == NULL);
    } else {
        CHECK(strchr(s, '/') == NULL && r.registry[0] == '\0');
    }
    return 0;
}
