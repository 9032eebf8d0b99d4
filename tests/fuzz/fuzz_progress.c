/* fuzz_progress.c: libFuzzer harness for dockerd's pull and push progress
 * streams (vmms/common/engine_progress.c), which carry what a registry
 * answered. The input is fed in chunks whose size comes from its first
 * byte (lines cut anywhere, as a socket cuts them). Asserts, beyond "no
 * crash": the kept line never passes its buffer, the error is NUL-ended
 * within its buffer, and a digest is "" or "sha256:" and 64 lower hex. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/engine_progress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] % 64 + 1;
    data++;
    size--;
    struct vmms_progress *pr = calloc(1, sizeof *pr);
    if (!pr)
        return 0;
    for (size_t at = 0; at < size; at += step)
        if (vmms_progress_sink((const char *)data + at, size - at < step ? size - at : step,
                               pr) != (size - at < step ? size - at : step))
            abort();
    vmms_progress_end(pr);
    if (pr->len > sizeof pr->line || memchr(pr->error, '\0', sizeof pr->error) == NULL)
        abort();
    size_t dl = strlen(pr->digest);
    if (dl != 0 && (dl != 71 || strncmp(pr->digest, "sha256:", 7) != 0 ||
                    strspn(pr->digest + 7, "0123456789abcdef") != 64))
        abort();
    free(pr);
    return 0;
}
