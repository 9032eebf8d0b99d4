/* fuzz_passwd.c: libFuzzer harness for the parse of an image's /etc/passwd
 * that localOCI's CPU time limit does (vmms/localOCI/sandbox.c
 * lo_passwd_uid): whatever the bytes, the answer is -1 or a uid in
 * 1..0x7ffffffe that is the whole third field of a line beginning
 * "autograde:", and nothing is read past the text (ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "localOCI/lo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    long uid = lo_passwd_uid(text);
    if (uid != -1) {
        /* the first "autograde:" line's third field, as a number */
        const char *line = text;
        if (strncmp(text, "autograde:", 10) != 0)
            line = (line = strstr(text, "\nautograde:")) ? line + 1 : NULL;
        const char *p = line ? strchr(line + 10, ':') : NULL;
        const char *nl = line ? strchr(line, '\n') : NULL;
        if (uid < 1 || uid > 0x7ffffffe || p == NULL || (nl && p > nl) ||
            strtoll(p + 1, NULL, 10) != uid)
            abort();
    }
    free(text);
    return 0;
}
