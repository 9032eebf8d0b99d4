/*
 * quote.c: single-quoting for sh, for every back end that builds a command
 * line for a remote or local shell (ssh.h has the contract).
 */
#include <string.h>

#include "common/ssh.h"

const char *vmms_sh_quote(const char *s, char *buf, size_t bufsz)
{
    size_t o = 0;
    if (bufsz < 3)
        goto too_long;
    buf[o++] = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            if (o + 4 >= bufsz)
                goto too_long;
            memcpy(buf + o, "'\\''", 4);
            o += 4;
        } else {
            if (o + 1 >= bufsz)
                goto too_long;
            buf[o++] = *p;
        }
    }
    if (o + 2 > bufsz)
        goto too_long;
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
too_long:
    if (bufsz)
        buf[0] = '\0';
    return buf;
}
