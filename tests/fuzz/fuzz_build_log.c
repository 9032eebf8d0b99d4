/* fuzz_build_log.c: libFuzzer harness for the Docker build answer reader
 * (common/build_log.c), whose input a Dockerfile's RUN steps control. The
 * input is fed in chunks whose sizes come from its first bytes (lines cut
 * anywhere, as a socket cuts them). The kept log never passes its limit
 * plus the cut note, is NUL-ended at len, holds no control byte but
 * newline and tab, and the error message is printable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max = data[0] * 4u + 1, step = data[1] % 64 + 1;
    data += 2;
    size -= 2;
    struct build_log bl;
    if (build_log_init(&bl, max))
        return 0;
    for (size_t at = 0; at < size; at += step)
        build_log_feed(&bl, (const char *)data + at, size - at < step ? size - at : step);
    build_log_end(&bl);
    if (bl.len > max + 64 || bl.text[bl.len] != '\0' || strlen(bl.text) != bl.len)
        abort();
    for (size_t i = 0; i < bl.len; i++) {
        unsigned char c = (unsigned char)bl.text[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
            abort();
    }
    for (const char *p = bl.error; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            abort();
    build_log_free(&bl);
    return 0;
}
