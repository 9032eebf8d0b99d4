/* fuzz_registry.c: libFuzzer harness for what a registry answers
 * (vmms/common/registry_manifest.c, registry_auth.c): a manifest or index
 * body under a Content-Type, a WWW-Authenticate challenge, a token
 * server's JSON answer.
 *
 * Input: byte 0 picks the kind; the rest is:
 *   0  "CONTENT-TYPE\n" then the manifest body (reg_manifest_parse);
 *   1  a WWW-Authenticate value (reg_challenge_parse);
 *   2  a token server's answer (reg_token_parse);
 *   3  "URL\nHOST[:PORT]": a realm or effective URL against the registry's
 *      host (reg_same_host).
 * Asserts, beyond "no crash": an image has 1..REG_LAYERS_MAX layers and a
 * config, every digest "sha256:" and 64 lower hex; an index pick likewise
 * and no layers; a failure fills err and leaves no layers; a Bearer
 * challenge's realm is https://; a token is printable, without spaces;
 * every layer's declared size is positive; a URL matches a host only when
 * it has "://" and no userinfo (no '@' before its path). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/registry.h"
#include "vmms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)          \
    do {                  \
        if (!(c))         \
            abort();      \
    } while (0)

static int digest_ok(const char *d)
{
    return strlen(d) == 71 && strncmp(d, "sha256:", 7) == 0 &&
           strspn(d + 7, "0123456789abcdef") == 64;
}

static void manifest(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    char ctype[128] = "";
    if (nl && (size_t)(nl - s) < sizeof ctype) {
        memcpy(ctype, s, (size_t)(nl - s));
        n -= (size_t)(nl - s) + 1;
        s = nl + 1;
    }
    struct reg_image *img = malloc(sizeof *img);
    char pick[72], err[256] = "";
    int k = reg_manifest_parse(s, n, ctype, img, pick, err, sizeof err);
    if (k == REG_IMAGE) {
        CHECK(img->nlayers >= 1 && img->nlayers <= REG_LAYERS_MAX && digest_ok(img->config));
        for (size_t i = 0; i < img->nlayers; i++)
            CHECK(digest_ok(img->layers[i]) && img->sizes[i] > 0);
    } else if (k == REG_INDEX) {
        CHECK(digest_ok(pick) && img->nlayers == 0);
    } else {
        CHECK(k == VMMS_ERR && err[0] != '\0' && img->nlayers == 0);
    }
    free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 200000)
        return 0;
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] % 4 == 0) {
        manifest(s, size - 1);
    } else if (data[0] % 4 == 3) {
        char *nl = strchr(s, '\n');
        if (nl) {
            *nl = '\0';
            if (reg_same_host(s, nl + 1)) {
                const char *h = strstr(s, "://");
                CHECK(h != NULL);
                CHECK(memchr(h + 3, '@', strcspn(h + 3, "/?#")) == NULL);
            }
        }
    } else if (data[0] % 4 == 1) {
        struct reg_challenge ch;
        if (reg_challenge_parse(s, &ch) == 0 && ch.bearer)
            CHECK(strncmp(ch.realm, "https://", 8) == 0);
    } else {
        char tok[512];
        if (reg_token_parse(s, size - 1, tok, sizeof tok) == 0) {
            CHECK(tok[0] != '\0' && strlen(tok) < sizeof tok);
            for (const char *p = tok; *p; p++)
                CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
        }
    }
    free(s);
    return 0;
}
