/*
 * netset.h: IP addresses and sets of them (config "trusted_proxies"). An
 * address is held as 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d),
 * so one comparison serves both families; it is printed back in its usual
 * form (dotted quad for IPv4).
 *
 * Parsing is strict: only inet_pton's forms (a dotted quad without leading
 * zeros, or an IPv6 address without brackets, zone or port). Nothing is
 * resolved. A set entry is an address or a CIDR network ("10.1.0.0/16",
 * "fd00::/8"; an IPv4 prefix counts in IPv4 bits). A set is read-only once
 * made: share it freely.
 */
#ifndef TANGO_NETSET_H
#define TANGO_NETSET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define NETADDR_LEN 16
#define NETADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

struct netset;

/* Parses exactly len bytes of s as an address into out. Returns 0, or -1
 * if it is not strictly one address. */
int netaddr_parse(const char *s, size_t len, unsigned char out[NETADDR_LEN]);
/* The address of a socket peer (AF_INET or AF_INET6); -1 for anything else
 * (NULL, AF_UNIX). */
int netaddr_from_sockaddr(const struct sockaddr *sa, unsigned char out[NETADDR_LEN]);
/* Writes the address's usual text form into buf (NETADDR_TEXT_MAX bytes). */
void netaddr_format(const unsigned char a[NETADDR_LEN], char buf[NETADDR_TEXT_MAX]);
/* Whether the first bits bits of a and b (addresses in network byte order,
 * at least (bits + 7) / 8 bytes each) are equal: a in the network b/bits. */
bool netaddr_prefix_equal(const unsigned char *a, const unsigned char *b, int bits);

/* Parses n entries into *out (an empty set when n is 0; free with
 * netset_free). Returns 0, or -1 with the bad entry named in err. */
int netset_new(char *const *entries, size_t n, struct netset **out, char *err, size_t errlen);
void netset_free(struct netset *s);
/* Whether a is in the set (false for a NULL or empty set). */
bool netset_contains(const struct netset *s, const unsigned char a[NETADDR_LEN]);
/* How many entries the set has (0 for NULL). */
size_t netset_size(const struct netset *s);

#endif
