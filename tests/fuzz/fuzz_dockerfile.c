/* fuzz_dockerfile.c: libFuzzer harness for common/dockerfile_check.c, the
 * check of the Dockerfile (or build context tar) a client sends to
 * /build_image. The first byte picks text or tar. Asserts, beyond "no
 * crash": the answer is 0 or -1; a refusal's message is NUL-ended
 * and (for text) names a line; allow() is only asked about
 * NUL-ended names shorter than the input; an accepted text holds no line
 * that starts (after blanks) with "ADD " and has "://" and no "$" nor
 * quote (in a text without backslashes: no continuation joins it). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dockerfile_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t input_size;

static bool allow(const char *image, void *arg)
{
    (void)arg;
    if (strlen(image) > input_size)
        abort();
    return strcmp(image, "base") == 0;
}

/* Whether text has a plain "ADD ...://..." line (one the check must refuse). */
static bool has_plain_url_add(const char *text)
{
    for (const char *l = text; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        const char *p = l;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, "\n");
        char line[256];
        if (n >= sizeof line || strncasecmp(p, "ADD ", 4) != 0)
            continue;
        memcpy(line, p, n);
        line[n] = '\0';
        if (strstr(line, "://") && !strpbrk(line, "$\"'\\\r"))
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    bool tar = data[0] & 1;
    data++, size--;
    input_size = size;
    char err[640];
    memset(err, 'x', sizeof err);
    int rc = tar ? dockerfile_check_tar(data, size, allow, NULL, err, sizeof err)
                 : dockerfile_check((const char *)data, size, allow, NULL, err, sizeof err);
    if (rc != 0 && rc != -1)
        abort();
    if (rc == -1) {
        if (!memchr(err, '\0', sizeof err) || (!tar && strncmp(err, "Dockerfile line ", 16)))
            abort();
        return 0;
    }
    if (!tar) {
        char *text = malloc(size + 1);
        memcpy(text, data, size);
        text[size] = '\0';
        if (!memchr(data, 0, size) && !strchr(text, 0x5c) && has_plain_url_add(text))
            abort();
        free(text);
    }
    return 0;
}
