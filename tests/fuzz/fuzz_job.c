/* fuzz_job.c: libFuzzer harness for the job record JSON (common/job.c
 * job_loads). A record that loads must dump to JSON that loads again and
 * dumps to the same text (the store round-trips every record). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    char err[512];
    struct job *job = job_loads(text, err, sizeof err);
    if (job) {
        char *once = job_dumps(job);
        if (!once)
            abort();
        struct job *again = job_loads(once, err, sizeof err);
        if (!again)
            abort(); /* what we write we must read back */
        char *twice = job_dumps(again);
        if (!twice || strcmp(once, twice) != 0)
            abort();
        free(twice);
        free(once);
        job_trace(again, "fuzz"); /* whatever trace it had, it ends within bounds */
        if (json_array_size(again->trace) > JOB_TRACE_MAX_LINES)
            abort();
        job_free(again);
        job_free(job);
    } else if (strnlen(err, sizeof err) == sizeof err) {
        abort();
    }
    free(text);
    return 0;
}
