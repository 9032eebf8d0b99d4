/*
 * proxy.h: which client a request forwarded by a trusted load balancer
 * (config "trusted_proxies") came from, read from its X-Forwarded-For
 * headers. The producer asks only when the TCP peer itself is trusted; a
 * header from anyone else is never read.
 *
 * The rule: the headers' entries (every X-Forwarded-For line, in order, each
 * a comma list) are read from the right, the end the balancer appended to;
 * the first entry that is not itself a trusted proxy is the client. Entries
 * left of it were written by the client and are never looked at. Every
 * entry read must be strictly one IP address (netaddr_parse: no port, no
 * brackets, no "unknown", no empty element) and at most PROXY_MAX_HOPS are
 * read; anything else, or no entry at all, means "no forwarded client":
 * the caller uses the peer's address. When every entry is trusted the
 * left-most one is the client.
 */
#ifndef TANGO_PROXY_H
#define TANGO_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "netset.h"

#define PROXY_MAX_HOPS 16

/* values: the n X-Forwarded-For header values in arrival order. Returns
 * true and fills out with the client's address, or false (use the peer). */
bool proxy_forwarded_client(const struct netset *trusted, const char *const *values, size_t n,
                            unsigned char out[NETADDR_LEN]);

#endif
