/* fuzz_config.c: libFuzzer harness for the config file (common/config.c
 * config_load). Each input is written to a file in a private temporary
 * directory and loaded with an empty environment; a config that loads is
 * freed, a refusal must say why. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[128];
    if (!path[0])
        snprintf(path, sizeof path, "%s/config.json", fuzz_tmpdir());
    fuzz_write_file(path, data, size);
    char *const noenv[] = {NULL};
    struct tango_config cfg;
    char err[512] = "";
    if (config_load(&cfg, path, noenv, err, sizeof err) == 0)
        config_free(&cfg);
    else if (err[0] == '\0' || strnlen(err, sizeof err) == sizeof err)
        abort(); /* a refusal names its reason */
    return 0;
}
