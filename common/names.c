/*
 * names.c: name validation and key handling (see names.h).
 */
#include "names.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

bool name_is_safe(const char *s, size_t len)
{
    if (!s || len == 0 || len > NAME_MAX_BYTES || strnlen(s, len + 1) != len)
        return false;
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
            return false;
    }
    return true;
}

static bool image_char(char c, bool tag)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
        return true;
    return tag && c >= 'A' && c <= 'Z';
}

bool image_name_is_valid(const char *s)
{
    if (!name_is_safe_str(s) || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    const char *colon = strchr(s, ':');
    for (const char *p = s; *p; p++) {
        if (p == colon) {
            if (p[1] == '\0')
                return false;
            continue;
        }
        if (!image_char(*p, colon && p > colon))
            return false;
    }
    return true;
}

size_t image_repo_len(const char *ref)
{
    size_t end = strcspn(ref, "@");
    const char *slash = NULL, *colon = NULL;
    for (const char *p = ref; p < ref + end; p++) {
        if (*p == '/')
            slash = p;
        else if (*p == ':')
            colon = p;
    }
    return colon && (!slash || colon > slash) ? (size_t)(colon - ref) : end;
}

bool image_name_canon(const char *ref, char *out, size_t outlen)
{
    bool has_tag = ref[image_repo_len(ref)] == ':';
    int n = snprintf(out, outlen, "%s%s", ref, has_tag ? "" : ":latest");
    return n > 0 && (size_t)n < outlen;
}

int parse_job_id(const char *s, long long *id)
{
    if (!s || !*s || strlen(s) > 19)
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno || v <= 0)
        return -1;
    *id = v;
    return 0;
}

bool key_matches(const char *presented, char *const *keys, size_t nkeys)
{
    size_t plen = strlen(presented);
    int found = 0;
    for (size_t i = 0; i < nkeys; i++) {
        size_t klen = strlen(keys[i]);
        /* Compare over the configured key's length; a length mismatch still
         * costs the same comparison, so timing does not reveal prefixes. */
        const char *cmp = plen == klen ? presented : keys[i];
        int same = CRYPTO_memcmp(cmp, keys[i], klen) == 0 && plen == klen;
        found |= same;
    }
    return found != 0;
}

static void hex_prefix(const unsigned char *md, char out[KEY_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < KEY_ID_LEN / 2; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[KEY_ID_LEN] = '\0';
}

void key_id(const unsigned char *secret, size_t secret_len, const char *key,
            char out[KEY_ID_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)key, strlen(key), md,
         &mdlen);
    hex_prefix(md, out);
}

void key_id_legacy(const char *key, char out[KEY_ID_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(key, strlen(key), md, &mdlen, EVP_sha256(), NULL);
    hex_prefix(md, out);
}
