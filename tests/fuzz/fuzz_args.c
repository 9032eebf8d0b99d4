/* fuzz_args.c: libFuzzer harness for the autodriver's command line
 * (autodriver/args.c). The input is split at NUL bytes into argv[1..]; a
 * parse that succeeds must leave a directory name that is one path
 * component. ad_parse_uint is fed the first argument too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "autodriver";
    for (size_t i = 0; i <= size && argc <= MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;

    struct ad_args a;
    char err[256];
    int rc = ad_parse_args(argc, argv, &a, err, sizeof err);
    if (rc == AD_ARGS_OK) {
        size_t n = strnlen(a.dirname, sizeof a.dirname);
        if (n == 0 || n == sizeof a.dirname || strchr(a.dirname, '/') ||
            strcmp(a.dirname, ".") == 0 || strcmp(a.dirname, "..") == 0)
            abort(); /* DIRECTORY must be one safe name */
        if (a.nproc > AD_ARG_MAX || a.fsize > AD_ARG_MAX || a.timeout > AD_ARG_MAX ||
            a.osize > AD_ARG_MAX)
            abort();
    } else if (rc == AD_ARGS_ERROR) {
        if (strnlen(err, sizeof err) == sizeof err)
            abort(); /* the message must be terminated */
    } else if (rc != AD_ARGS_HELP) {
        abort();
    }
    unsigned long v;
    if (ad_parse_uint(argv[1], AD_ARG_MAX, &v) == 0 && v > AD_ARG_MAX)
        abort();
    free(buf);
    return 0;
}
