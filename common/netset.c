/*
 * netset.c: strict IP address parsing and address/CIDR sets (see netset.h).
 */
#include "netset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

struct net {
    unsigned char addr[NETADDR_LEN];
    int prefix; /* in bits of the 16-byte form */
};

struct netset {
    struct net *nets;
    size_t n;
};

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4(const unsigned char a[NETADDR_LEN])
{
    return memcmp(a, v4_mapped, sizeof v4_mapped) == 0;
}

int netaddr_parse(const char *s, size_t len, unsigned char out[NETADDR_LEN])
{
    char buf[NETADDR_TEXT_MAX];
    if (len == 0 || len >= sizeof buf || memchr(s, '\0', len))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memcpy(out, v4_mapped, sizeof v4_mapped);
        memcpy(out + 12, &a4, 4);
        return 0;
    }
    struct in6_addr a6;
    if (strchr(buf, ':') && inet_pton(AF_INET6, buf, &a6) == 1) {
        memcpy(out, &a6, NETADDR_LEN);
        return 0;
    }
    return -1;
}

int netaddr_from_sockaddr(const struct sockaddr *sa, unsigned char out[NETADDR_LEN])
{
    if (sa && sa->sa_family == AF_INET) {
        memcpy(out, v4_mapped, sizeof v4_mapped);
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, NETADDR_LEN);
        return 0;
    }
    return -1;
}

void netaddr_format(const unsigned char a[NETADDR_LEN], char buf[NETADDR_TEXT_MAX])
{
    if (is_v4(a))
        inet_ntop(AF_INET, a + 12, buf, NETADDR_TEXT_MAX);
    else
        inet_ntop(AF_INET6, a, buf, NETADDR_TEXT_MAX);
}

bool netaddr_prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* One entry, "ADDR" or "ADDR/PREFIX" (decimal, no sign, within the family's bits). */
static int parse_entry(const char *s, struct net *out)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (netaddr_parse(s, alen, out->addr))
        return -1;
    int bits = is_v4(out->addr) ? 32 : 128;
    int prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3 || p[digits] || (digits > 1 && p[0] == '0'))
            return -1;
        prefix = atoi(p);
        if (prefix > bits)
            return -1;
    }
    out->prefix = prefix + (128 - bits);
    return 0;
}

int netset_new(char *const *entries, size_t n, struct netset **out, char *err, size_t errlen)
{
    struct netset *s = calloc(1, sizeof *s);
    s->nets = calloc(n ? n : 1, sizeof *s->nets);
    for (size_t i = 0; i < n; i++) {
        if (!entries[i] || parse_entry(entries[i], &s->nets[i])) {
            snprintf(err, errlen, "entry %zu (\"%.80s\") is not an IP address or CIDR network",
                     i + 1, entries[i] ? entries[i] : "");
            netset_free(s);
            return -1;
        }
        s->n++;
    }
    *out = s;
    return 0;
}

void netset_free(struct netset *s)
{
    if (!s)
        return;
    free(s->nets);
    free(s);
}

bool netset_contains(const struct netset *s, const unsigned char a[NETADDR_LEN])
{
    for (size_t i = 0; s && i < s->n; i++)
        if (netaddr_prefix_equal(a, s->nets[i].addr, s->nets[i].prefix))
            return true;
    return false;
}

size_t netset_size(const struct netset *s)
{
    return s ? s->n : 0;
}
