/*
 * image_ref.c: parsing image references (see image_ref.h). No allocation;
 * every field is bounded by IMAGE_REF_MAX.
 */
#include "image_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "names.h"

#define PATH_COMPONENTS_MAX 16

static bool alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool alnum_any(char c)
{
    return alnum_lower(c) || (c >= 'A' && c <= 'Z');
}

/* One DNS label of s[0..n). */
static bool label_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum_any(s[i]) && s[i] != '-')
            return false;
    return true;
}

/* "host[:port]" of s[0..n). */
static bool host_ok(const char *s, size_t n)
{
    if (n == 0 || n > IMAGE_REF_HOST_MAX)
        return false;
    const char *colon = memchr(s, ':', n);
    size_t hn = colon ? (size_t)(colon - s) : n;
    if (colon) {
        size_t pn = n - hn - 1;
        if (pn == 0 || pn > 5 || strspn(colon + 1, "0123456789") < pn || colon[1] == '0')
            return false;
        long port = strtol(colon + 1, NULL, 10);
        if (port < 1 || port > 65535)
            return false;
    }
    for (size_t i = 0, start = 0; i <= hn; i++)
        if (i == hn || s[i] == '.') {
            if (!label_ok(s + start, i - start))
                return false;
            start = i + 1;
        }
    return true;
}

bool image_ref_host_ok(const char *host)
{
    return host && host_ok(host, strlen(host));
}

/* One path component of s[0..n). */
static bool component_ok(const char *s, size_t n)
{
    if (n == 0 || !alnum_lower(s[0]) || !alnum_lower(s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum_lower(s[i]) && !strchr("._-", s[i]))
            return false;
    return memmem(s, n, "..", 2) == NULL;
}

static bool path_ok(const char *s, size_t n)
{
    int count = 0;
    for (size_t i = 0, start = 0; i <= n; i++)
        if (i == n || s[i] == '/') {
            if (!component_ok(s + start, i - start) || ++count > PATH_COMPONENTS_MAX)
                return false;
            start = i + 1;
        }
    return true;
}

static bool tag_ok(const char *s, size_t n)
{
    if (n == 0 || n > IMAGE_REF_TAG_MAX || !(alnum_any(s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!alnum_any(s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

static bool digest_ok(const char *s)
{
    return strncmp(s, "sha256:", 7) == 0 && strlen(s + 7) == 64 &&
           strspn(s + 7, "0123456789abcdef") == 64;
}

/* Whether s is a registry reference: its first component names a host. */
static bool names_registry(const char *s)
{
    const char *slash = strchr(s, '/');
    if (slash == NULL)
        return false;
    size_t n = (size_t)(slash - s);
    return memchr(s, '.', n) || memchr(s, ':', n) ||
           (n == 9 && strncmp(s, "localhost", 9) == 0);
}

/* The part after the host: "path[:tag][@digest]" into out. */
static int parse_remote(const char *s, struct image_ref *out)
{
    const char *slash = strchr(s, '/');
    if (!host_ok(s, (size_t)(slash - s)))
        return -1;
    snprintf(out->registry, sizeof out->registry, "%.*s", (int)(slash - s), s);
    for (char *p = out->registry; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    const char *rest = slash + 1, *at = strchr(rest, '@');
    size_t end = at ? (size_t)(at - rest) : strlen(rest);
    if (at && !digest_ok(at + 1))
        return -1;
    if (at)
        snprintf(out->digest, sizeof out->digest, "%s", at + 1);
    const char *colon = memchr(rest, ':', end);
    size_t pn = colon ? (size_t)(colon - rest) : end;
    if (!path_ok(rest, pn))
        return -1;
    if (colon && !tag_ok(colon + 1, end - pn - 1))
        return -1;
    snprintf(out->path, sizeof out->path, "%.*s", (int)pn, rest);
    if (colon)
        snprintf(out->tag, sizeof out->tag, "%.*s", (int)(end - pn - 1), colon + 1);
    out->remote = true;
    return 0;
}

int image_ref_parse(const char *s, struct image_ref *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || strlen(s) > IMAGE_REF_MAX)
        return -1;
    int rc;
    if (names_registry(s)) {
        rc = parse_remote(s, out);
    } else {
        rc = image_name_is_valid(s) ? 0 : -1;
        if (rc == 0)
            snprintf(out->path, sizeof out->path, "%s", s);
    }
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

const char *image_ref_reference(const struct image_ref *r)
{
    return r->digest[0] ? r->digest : r->tag[0] ? r->tag : "latest";
}

void image_ref_record_name(const struct image_ref *r, const char *digest, char out[69])
{
    char full[IMAGE_REF_HOST_MAX + IMAGE_REF_MAX + 80];
    unsigned char d[32];
    unsigned dl = 0;
    int n = snprintf(full, sizeof full, "%s/%s@%s", r->registry, r->path, digest);
    EVP_Digest(full, n > 0 && (size_t)n < sizeof full ? (size_t)n : sizeof full - 1, d, &dl,
               EVP_sha256(), NULL);
    strcpy(out, "reg-");
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 4 + 2 * i, 3, "%02x", d[i]);
}
