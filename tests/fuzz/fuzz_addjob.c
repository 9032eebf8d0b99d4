/* fuzz_addjob.c: libFuzzer harness for the addJob body (producer/addjob.c
 * addjob_parse) with the default config, one image, the default callback
 * policy plus 127.0.0.1, and a lab directory holding two uploaded files
 * (hello.c, Makefile) so that valid file lists get past the existence
 * check. A job that parses must round-trip through its record JSON. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "addjob.h"
#include "callback_allow.h"
#include "config.h"
#include "fuzz_util.h"
#include "job.h"

#define LAB_DIR "fuzzlab-0123456789abcdef"

static struct tango_config cfg;
static json_t *images;
static struct callback_policy *callbacks;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char courselabs[PATH_MAX], env[PATH_MAX + 32], err[512];
    snprintf(courselabs, sizeof courselabs, "%s/courselabs", fuzz_tmpdir());
    snprintf(env, sizeof env, "TANGO_COURSELABS=%s", courselabs);
    char *const envp[] = {env, NULL};
    if (config_load(&cfg, NULL, envp, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_addjob: %s\n", err);
        abort();
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", courselabs, LAB_DIR);
    if (mkdir(courselabs, 0700) < 0 || mkdir(path, 0700) < 0)
        abort();
    static const char *const files[] = {"hello.c", "Makefile"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", courselabs, LAB_DIR, files[i]);
        fuzz_write_file(path, (const uint8_t *)"x\n", 2);
    }
    images = json_pack("[s]", "autograding_image");
    char *allow[] = {"127.0.0.1", ".example.edu"};
    if (!images || callback_policy_new(allow, 2, &callbacks, err, sizeof err) < 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[2048] = "";
    struct addjob_rights rights = {images, NULL, NULL};
    struct job *job = addjob_parse((const char *)data, size, &cfg, &rights, callbacks, "lab",
                                   LAB_DIR, err, sizeof err);
    if (!job) {
        if (err[0] == '\0' || strnlen(err, sizeof err) == sizeof err)
            abort(); /* a refusal names its reasons */
        return 0;
    }
    char *text = job_dumps(job);
    if (!text)
        abort();
    struct job *again = job_loads(text, err, sizeof err);
    if (!again)
        abort(); /* every accepted job must be storable */
    job_free(again);
    free(text);
    job_free(job);
    return 0;
}
