/*
 * registry_auth.c: answering a registry's 401 (see registry.h). Basic: the
 * credentials file's USER:PASSWORD, base64. Bearer: GET realm?service=&scope=
 * (HTTPS only, no redirect, the registry's CA file, the credentials as
 * Basic when there are any and the realm is on the registry's own host,
 * port aside), the token of its JSON answer. The challenge and the token
 * answer are outside input (fuzzed); no secret reaches a log or err.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "grading.h"
#include "log.h"
#include "registries.h"
#include "registry.h"
#include "vmms.h"

/* Whether URL u's host (its port aside) is host hp ("host[:port]"). */
bool reg_same_host(const char *u, const char *hp)
{
    const char *h = strstr(u ? u : "", "://");
    if (h == NULL)
        return false;
    h += 3;
    size_t n = strcspn(h, ":/?#"), m = strcspn(hp, ":");
    if (memchr(h, '@', strcspn(h, "/?#")) != NULL || h[0] == '[' || hp[0] == '[')
        return false; /* userinfo, IPv6 literals: not compared, refused */
    return n == m && n > 0 && strncasecmp(h, hp, n) == 0;
}

#define TOKEN_ANSWER_MAX (64 * 1024)

/* One `key="value"` (or key=token) of a challenge at *pp into key and val. */
static int next_param(const char **pp, char *key, size_t ksz, char *val, size_t vsz)
{
    const char *p = *pp;
    while (*p == ' ' || *p == ',')
        p++;
    if (*p == '\0')
        return 0;
    size_t k = 0;
    while ((isalnum((unsigned char)*p) || *p == '_' || *p == '-') && k + 1 < ksz)
        key[k++] = *p++;
    key[k] = '\0';
    if (k == 0 || *p++ != '=')
        return -1;
    size_t v = 0;
    bool quoted = *p == '"';
    p += quoted;
    while (*p && (quoted ? *p != '"' : (*p != ',' && *p != ' '))) {
        if (quoted && *p == '\\' && p[1])
            p++;
        if (v + 1 >= vsz || (unsigned char)*p < 0x20)
            return -1;
        val[v++] = *p++;
    }
    val[v] = '\0';
    if (quoted && *p++ != '"')
        return -1;
    *pp = p;
    return 1;
}

int reg_challenge_parse(const char *v, struct reg_challenge *ch)
{
    memset(ch, 0, sizeof *ch);
    if (v == NULL)
        return -1;
    if (strncasecmp(v, "Bearer ", 7) == 0)
        ch->bearer = true;
    else if (strncasecmp(v, "Basic", 5) != 0 || (v[5] != '\0' && v[5] != ' '))
        return -1;
    const char *p = v + (ch->bearer ? 7 : 5);
    char key[32], val[1024];
    int r;
    while ((r = next_param(&p, key, sizeof key, val, sizeof val)) == 1) {
        if (strcasecmp(key, "realm") == 0)
            snprintf(ch->realm, sizeof ch->realm, "%s", val);
        else if (strcasecmp(key, "service") == 0 && strlen(val) < sizeof ch->service)
            snprintf(ch->service, sizeof ch->service, "%s", val);
        else if (strcasecmp(key, "scope") == 0 && strlen(val) < sizeof ch->scope)
            snprintf(ch->scope, sizeof ch->scope, "%s", val);
    }
    if (r < 0 || (ch->bearer && strncmp(ch->realm, "https://", 8) != 0)) {
        memset(ch, 0, sizeof *ch);
        return -1;
    }
    return 0;
}

int reg_token_parse(const char *body, size_t len, char *out, size_t outsz)
{
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "token"));
    if (t == NULL || t[0] == '\0')
        t = json_string_value(json_object_get(j, "access_token"));
    int rc = -1;
    size_t n = t ? strlen(t) : 0;
    if (n > 0 && n < outsz && n + 8 < REG_AUTH_MAX) {
        rc = 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
                rc = -1;
        if (rc == 0)
            memcpy(out, t, n + 1);
    }
    json_decref(j);
    return rc;
}

/* "Basic <base64 USER:PASSWORD>" of c's credentials file into out. */
static int basic_header(struct reg_client *c, char *out, size_t outsz, char *err,
                        size_t errlen)
{
    if (c->creds_file[0] == '\0')
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s asks for credentials and the "
                         "config gives none (registries.\"%s\".credentials)", c->host, c->host);
    char user[REGISTRY_USER_MAX], pass[REGISTRY_PASS_MAX], why[512];
    if (registries_read_creds(c->creds_file, user, pass, why, sizeof why) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s", c->host, why);
    char plain[REGISTRY_USER_MAX + REGISTRY_PASS_MAX + 2];
    int n = snprintf(plain, sizeof plain, "%s:%s", user, pass);
    unsigned char b64[((REGISTRY_USER_MAX + REGISTRY_PASS_MAX + 2) / 3 + 1) * 4 + 1];
    EVP_EncodeBlock(b64, (const unsigned char *)plain, n);
    snprintf(out, outsz, "Basic %s", b64);
    OPENSSL_cleanse(plain, sizeof plain);
    OPENSSL_cleanse(pass, sizeof pass);
    OPENSSL_cleanse(b64, sizeof b64);
    return VMMS_OK;
}

struct memsink {
    char buf[TOKEN_ANSWER_MAX + 1];
    size_t len;
    bool over;
};

static size_t mem_write(char *p, size_t sz, size_t n, void *arg)
{
    struct memsink *m = arg;
    if (m->len + sz * n > TOKEN_ANSWER_MAX) {
        m->over = true;
        return 0;
    }
    memcpy(m->buf + m->len, p, sz * n);
    m->len += sz * n;
    return sz * n;
}

/* The token URL: realm?service=..&scope=.. (escaped) into url. */
static int token_url(CURL *h, const struct reg_challenge *ch, const char *scope, char *url,
                     size_t urlsz)
{
    char *s = curl_easy_escape(h, ch->service, 0);
    char *sc = curl_easy_escape(h, ch->scope[0] ? ch->scope : scope, 0);
    int n = snprintf(url, urlsz, "%s%sservice=%s&scope=%s", ch->realm,
                     strchr(ch->realm, '?') ? "&" : "?", s ? s : "", sc ? sc : "");
    curl_free(s);
    curl_free(sc);
    return n > 0 && (size_t)n < urlsz ? 0 : -1;
}

/* Fetches a bearer token for ch into c->auth. */
static int fetch_token(struct reg_client *c, const struct reg_challenge *ch, const char *scope,
                       char *err, size_t errlen)
{
    char basic[REG_AUTH_MAX] = "", hdr[REG_AUTH_MAX + 32], url[2048];
    bool ours = reg_same_host(ch->realm, c->host); /* else: asked anonymously */
    if (!ours && c->creds_file[0])
        log_info("registry_realm_foreign", "registry=%s reason=\"its token realm is on "
                 "another host: the token is asked for without credentials\"", c->host);
    if (ours && c->creds_file[0] && basic_header(c, basic, sizeof basic, err, errlen) != VMMS_OK)
        return VMMS_ERR;
    struct memsink *m = calloc(1, sizeof *m);
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    int rc = VMMS_ERR;
    if (m == NULL || h == NULL || token_url(h, ch, scope, url, sizeof url) != 0) {
        vmms_fail(err, errlen, VMMS_ERR, "registry %s: cannot ask its token server", c->host);
        goto out;
    }
    if (basic[0]) {
        snprintf(hdr, sizeof hdr, "Authorization: %s", basic);
        hl = curl_slist_append(NULL, hdr);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, m);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->stall_s * 2);
    if (c->ca_file[0])
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    CURLcode r = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    char token[REG_AUTH_MAX - 8];
    if (r != CURLE_OK)
        vmms_fail(err, errlen, VMMS_ERR, "registry %s: its token server: %s", c->host,
                  curl_easy_strerror(r));
    else if (status == 401 || status == 403)
        vmms_fail(err, errlen, VMMS_ERR, "registry %s: its token server refused the "
                  "credentials of %s (HTTP %ld)", c->host, c->creds_file[0] ? c->creds_file
                  : "(none configured)", status);
    else if (status != 200 || reg_token_parse(m->buf, m->len, token, sizeof token) != 0)
        vmms_fail(err, errlen, VMMS_ERR, "registry %s: its token server answered HTTP %ld "
                  "without a token", c->host, status);
    else {
        memcpy(c->auth, "Bearer ", 7);
        memcpy(c->auth + 7, token, strlen(token) + 1);
        OPENSSL_cleanse(token, sizeof token);
        rc = VMMS_OK;
    }
out:
    curl_slist_free_all(hl);
    if (h)
        curl_easy_cleanup(h);
    if (m)
        OPENSSL_cleanse(m, sizeof *m);
    free(m);
    OPENSSL_cleanse(basic, sizeof basic);
    OPENSSL_cleanse(hdr, sizeof hdr);
    return rc;
}

int reg_authorize(struct reg_client *c, const struct reg_challenge *ch, const char *scope,
                  char *err, size_t errlen)
{
    if (!ch->bearer)
        return basic_header(c, c->auth, sizeof c->auth, err, errlen);
    return fetch_token(c, ch, scope, err, errlen);
}
