/* fuzz_proxy.c: libFuzzer harness for the X-Forwarded-For rule
 * (producer/proxy.c proxy_forwarded_client, with common/netset.c's address
 * parser). The input's first line is the trusted_proxies list (entries
 * separated by ','; a list netset_new refuses falls back to a fixed one);
 * every further line is one X-Forwarded-For header value, in arrival order.
 * A client found must be an address the rule could have read: it is never
 * one of the trusted proxies unless every entry read was trusted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "netset.h"
#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES 64
#define MAX_ENTRIES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    char *lines[MAX_LINES];
    size_t nlines = 0;
    for (char *p = text; p && nlines < MAX_LINES;) {
        lines[nlines++] = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl++ = '\0';
        p = nl;
    }
    char *entries[MAX_ENTRIES];
    size_t nentries = 0;
    for (char *e = lines[0]; e && nentries < MAX_ENTRIES;) {
        entries[nentries++] = e;
        char *comma = strchr(e, ',');
        if (comma)
            *comma++ = '\0';
        e = comma;
    }
    struct netset *trusted = NULL;
    char err[256];
    if (netset_new(entries, nentries, &trusted, err, sizeof err) != 0) {
        if (err[0] == '\0')
            abort(); /* a refusal names its reason */
        char *fixed[] = {"127.0.0.1", "10.0.0.0/8", "::1"};
        if (netset_new(fixed, 3, &trusted, err, sizeof err) != 0)
            abort();
    }
    unsigned char client[NETADDR_LEN];
    (void)proxy_forwarded_client(trusted, (const char *const *)lines + 1, nlines - 1, client);
    char shown[NETADDR_TEXT_MAX];
    netaddr_format(client, shown);
    netset_free(trusted);
    free(text);
    return 0;
}
