/*
 * proxy.c: the X-Forwarded-For rule (see proxy.h).
 */
#include "proxy.h"

#include <string.h>

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool proxy_forwarded_client(const struct netset *trusted, const char *const *values, size_t n,
                            unsigned char out[NETADDR_LEN])
{
    int hops = 0;
    unsigned char addr[NETADDR_LEN];
    for (size_t v = n; v-- > 0;) {
        const char *s = values[v];
        size_t end = strlen(s);
        for (;;) {
            /* One entry: s[start..end), between the previous comma and end. */
            size_t start = end;
            while (start > 0 && s[start - 1] != ',')
                start--;
            size_t a = start, b = end;
            while (a < b && is_ows(s[a]))
                a++;
            while (b > a && is_ows(s[b - 1]))
                b--;
            if (++hops > PROXY_MAX_HOPS || netaddr_parse(s + a, b - a, addr))
                return false;
            memcpy(out, addr, NETADDR_LEN);
            if (!netset_contains(trusted, addr))
                return true;
            if (start == 0)
                break;
            end = start - 1; /* before the comma */
        }
    }
    return hops > 0; /* every entry trusted: out is the left-most */
}
