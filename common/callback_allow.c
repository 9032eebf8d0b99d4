/*
 * callback_allow.c: the callback host policy (see callback_allow.h).
 */
#include "callback_allow.h"

#include <ctype.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <curl/curl.h>

#include "netset.h"

#define HOST_MAX 256

enum entry_kind { E_HOST, E_DOMAIN, E_NET };

/* An address: IPv4 as 4 bytes (family AF_INET), IPv6 as 16. */
struct addr {
    int family;
    unsigned char b[16];
};

struct entry {
    enum entry_kind kind;
    char name[HOST_MAX];   /* E_HOST / E_DOMAIN (with its leading '.'), lower case */
    struct addr net;       /* E_NET */
    int prefix;
};

struct callback_policy {
    struct entry *entries;
    size_t n;
    bool has_nets;
};

/* Addresses refused when the policy has no entries. */
static const struct {
    const char *net;
    int prefix;
} refused_by_default[] = {
    {"127.0.0.0", 8}, {"169.254.0.0", 16}, {"0.0.0.0", 8},
    {"::1", 128},     {"fe80::", 10},      {"::", 128},
};

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* Parses a numeric address the way the resolver would (inet_aton forms such
 * as "127.1" included); IPv4-mapped IPv6 becomes IPv4. */
static bool parse_addr(const char *s, struct addr *out)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(s, NULL, &hints, &res) != 0 || !res)
        return false;
    bool ok = true;
    if (res->ai_family == AF_INET) {
        out->family = AF_INET;
        memcpy(out->b, &((struct sockaddr_in *)res->ai_addr)->sin_addr, 4);
    } else if (res->ai_family == AF_INET6) {
        const unsigned char *a = ((struct sockaddr_in6 *)res->ai_addr)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            out->family = AF_INET;
            memcpy(out->b, a + 12, 4);
        } else {
            out->family = AF_INET6;
            memcpy(out->b, a, 16);
        }
    } else {
        ok = false;
    }
    freeaddrinfo(res);
    return ok;
}

static bool in_net(const struct addr *a, const struct addr *net, int prefix)
{
    return a->family == net->family && netaddr_prefix_equal(a->b, net->b, prefix);
}

static bool default_refused(const struct addr *a)
{
    for (size_t i = 0; i < sizeof refused_by_default / sizeof *refused_by_default; i++) {
        struct addr net;
        parse_addr(refused_by_default[i].net, &net);
        if (in_net(a, &net, refused_by_default[i].prefix))
            return true;
    }
    return false;
}

static bool addr_allowed(const struct callback_policy *p, const struct addr *a)
{
    if (p->n == 0)
        return !default_refused(a);
    for (size_t i = 0; i < p->n; i++)
        if (p->entries[i].kind == E_NET && in_net(a, &p->entries[i].net, p->entries[i].prefix))
            return true;
    return false;
}

/* Whether a host entry names host (lower case, no trailing dot). */
static bool name_listed(const struct callback_policy *p, const char *host)
{
    size_t hl = strlen(host);
    for (size_t i = 0; i < p->n; i++) {
        const struct entry *e = &p->entries[i];
        if (e->kind == E_HOST && strcmp(e->name, host) == 0)
            return true;
        size_t dl = strlen(e->name);
        if (e->kind == E_DOMAIN && hl > dl && strcmp(host + hl - dl, e->name) == 0)
            return true;
    }
    return false;
}

static bool is_localhost(const char *host)
{
    size_t hl = strlen(host);
    return strcmp(host, "localhost") == 0 ||
           (hl > 10 && strcmp(host + hl - 10, ".localhost") == 0);
}

static bool host_name_ok(const char *s)
{
    if (!*s || strlen(s) >= HOST_MAX)
        return false;
    for (const char *c = s; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.' && *c != '_')
            return false;
    return true;
}

int callback_policy_new(char *const *entries, size_t n, struct callback_policy **out, char *err,
                        size_t errlen)
{
    struct callback_policy *p = calloc(1, sizeof *p);
    p->entries = calloc(n ? n : 1, sizeof *p->entries);
    for (size_t i = 0; i < n; i++) {
        const char *s = entries[i];
        struct entry *e = &p->entries[p->n];
        char buf[HOST_MAX];
        if (!s || strlen(s) >= sizeof buf)
            goto bad;
        snprintf(buf, sizeof buf, "%s", s);
        lower(buf);
        char *slash = strchr(buf, '/');
        if (slash)
            *slash = '\0';
        if (parse_addr(buf, &e->net) && strspn(buf, "0123456789abcdef.:") == strlen(buf)) {
            int max = e->net.family == AF_INET ? 32 : 128;
            e->prefix = max;
            if (slash) {
                char *end;
                long pl = strtol(slash + 1, &end, 10);
                if (!slash[1] || *end || pl < 0 || pl > max)
                    goto bad;
                e->prefix = (int)pl;
            }
            e->kind = E_NET;
            p->has_nets = true;
        } else if (!slash && host_name_ok(buf[0] == '.' ? buf + 1 : buf)) {
            size_t l = strlen(buf);
            if (l > 1 && buf[l - 1] == '.' && buf[0] != '.')
                buf[l - 1] = '\0';
            e->kind = buf[0] == '.' ? E_DOMAIN : E_HOST;
            snprintf(e->name, sizeof e->name, "%s", buf);
        } else {
            goto bad;
        }
        p->n++;
        continue;
    bad:
        snprintf(err, errlen,
                 "callback_allow: entry %zu (\"%.80s\") is not a host name, .domain, IP address "
                 "or CIDR network", i + 1, s ? s : "");
        callback_policy_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void callback_policy_free(struct callback_policy *p)
{
    if (!p)
        return;
    free(p->entries);
    free(p);
}

/* The URL's host (lower case, no brackets, no trailing dot) and port. */
static int url_parts(const char *url, char host[HOST_MAX], long *port)
{
    CURLU *u = curl_url();
    char *h = NULL, *ps = NULL;
    int rc = -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &ps, CURLU_DEFAULT_PORT) == CURLUE_OK && h &&
        strlen(h) < HOST_MAX) {
        const char *s = h;
        size_t l = strlen(s);
        if (s[0] == '[' && l > 2 && s[l - 1] == ']') {
            s++;
            l -= 2;
        }
        memcpy(host, s, l);
        host[l] = '\0';
        lower(host);
        if (l > 1 && host[l - 1] == '.')
            host[l - 1] = '\0';
        *port = strtol(ps, NULL, 10);
        rc = host[0] ? 0 : -1;
    }
    curl_free(h);
    curl_free(ps);
    curl_url_cleanup(u);
    return rc;
}

int callback_check_url(const struct callback_policy *p, const char *url, char *why,
                       size_t whylen)
{
    char host[HOST_MAX];
    long port;
    if (url_parts(url, host, &port)) {
        snprintf(why, whylen, "not a URL with a host");
        return -1;
    }
    struct addr a;
    if (parse_addr(host, &a)) {
        if (addr_allowed(p, &a))
            return 0;
        snprintf(why, whylen, "%s is %s (allow it with config callback_allow)", host,
                 p->n ? "not in callback_allow" : "a loopback, link-local or unspecified address");
        return -1;
    }
    if (name_listed(p, host))
        return 0;
    if (p->n == 0 && !is_localhost(host))
        return 0; /* a name: judged on its addresses when the callback is sent */
    if (p->n && p->has_nets)
        return 0;
    snprintf(why, whylen, "host \"%.100s\" is %s (allow it with config callback_allow)", host,
             p->n ? "not in callback_allow" : "the local host");
    return -1;
}

int callback_resolve(const struct callback_policy *p, const char *url, char pin[CALLBACK_PIN_MAX],
                     char *why, size_t whylen)
{
    pin[0] = '\0';
    if (callback_check_url(p, url, why, whylen))
        return -1;
    char host[HOST_MAX];
    long port;
    url_parts(url, host, &port);
    struct addr lit;
    if (parse_addr(host, &lit))
        return 0; /* an IP literal, judged above; no lookup to pin */
    bool listed = name_listed(p, host);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai) {
        snprintf(why, whylen, "cannot resolve %.100s: %s", host, gai_strerror(gai));
        return 1;
    }
    char first_refused[INET6_ADDRSTRLEN] = "";
    int rc = -1;
    for (struct addrinfo *ai = res; ai && rc; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN];
        const void *raw = ai->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            !inet_ntop(ai->ai_family, raw, text, sizeof text))
            continue;
        struct addr a;
        if (!parse_addr(text, &a))
            continue;
        if (!listed && !addr_allowed(p, &a)) {
            if (!first_refused[0])
                snprintf(first_refused, sizeof first_refused, "%s", text);
            continue;
        }
        snprintf(pin, CALLBACK_PIN_MAX, ai->ai_family == AF_INET6 ? "%s:%ld:[%s]" : "%s:%ld:%s",
                 host, port, text);
        rc = 0;
    }
    freeaddrinfo(res);
    if (rc)
        snprintf(why, whylen, "%.100s resolves only to refused addresses (%s); allow them with "
                              "config callback_allow", host, first_refused[0] ? first_refused : "none");
    return rc;
}
