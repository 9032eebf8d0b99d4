/*
 * registry_engine_auth.c: a listed registry's credentials in the forms a
 * Docker daemon takes them for a pull or a push: the Engine API's
 * X-Registry-Auth value (localDocker's pulls, the builder's pushes) and a
 * docker CLI config.json (distDocker's pulls on a worker host). See
 * registry.h. Apart from the registry client so the consumer's builder
 * links it without the client. Every copy of a secret is wiped before it
 * is freed; nothing here logs.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "grading.h"
#include "registries.h"
#include "registry.h"
#include "vmms.h"

/* Wipes the string value of key in o (a secret about to be freed). */
static void wipe_member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        explicit_bzero((char *)json_string_value(v), json_string_length(v));
}

/* The credentials of listed registry host into user and pass (*anon:
 * listed with none). VMMS_OK, or VMMS_ERR with err (unlisted, unreadable). */
static int creds_of(const json_t *regs, const char *host, char user[REGISTRY_USER_MAX],
                    char pass[REGISTRY_PASS_MAX], bool *anon, char *err, size_t errlen)
{
    const json_t *e = registries_find(regs, host);
    if (e == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "registry \"%.100s\" is not in config key "
                         "\"registries\"", host);
    const char *file = json_string_value(json_object_get(e, "credentials"));
    *anon = file == NULL;
    char why[512];
    if (file && registries_read_creds(file, user, pass, why, sizeof why) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s", host, why);
    return VMMS_OK;
}

/* base64 of plain's n bytes (base64url when url), malloc'd; plain is wiped
 * and freed either way. NULL: out of memory (or plain NULL). */
static char *b64_of_secret(char *plain, size_t n, bool url)
{
    char *out = plain ? malloc((n + 2) / 3 * 4 + 1) : NULL;
    if (out) {
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)plain, (int)n);
        for (char *p = out; url && *p; p++) /* base64url, as Docker decodes it */
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    if (plain) {
        explicit_bzero(plain, n);
        free(plain);
    }
    return out;
}

int reg_engine_auth(const json_t *regs, const char *host, char **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    char user[REGISTRY_USER_MAX], pass[REGISTRY_PASS_MAX];
    bool anon = false;
    int rc = creds_of(regs, host, user, pass, &anon, err, errlen);
    if (rc != VMMS_OK || anon)
        return rc;
    json_t *j = json_pack("{s:s, s:s, s:s}", "username", user, "password", pass,
                          "serveraddress", host);
    OPENSSL_cleanse(pass, sizeof pass);
    char *plain = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (j)
        wipe_member(j, "password");
    json_decref(j);
    *out = b64_of_secret(plain, plain ? strlen(plain) : 0, true);
    return *out ? VMMS_OK : vmms_fail(err, errlen, VMMS_ERR, "out of memory");
}

int reg_docker_config(const json_t *regs, const char *host, char **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    char user[REGISTRY_USER_MAX], pass[REGISTRY_PASS_MAX];
    bool anon = false;
    int rc = creds_of(regs, host, user, pass, &anon, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (anon) {
        *out = strdup("{\"auths\":{}}\n");
        return *out ? VMMS_OK : vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    }
    size_t n = strlen(user) + 1 + strlen(pass);
    char *plain = malloc(n + 1);
    if (plain)
        snprintf(plain, n + 1, "%s:%s", user, pass);
    OPENSSL_cleanse(pass, sizeof pass);
    char *b64 = b64_of_secret(plain, n, false);
    /* host is a checked registry name (image_ref.h): nothing in it needs escaping */
    size_t len = b64 ? strlen(host) + strlen(b64) + 32 : 0;
    *out = b64 ? malloc(len) : NULL;
    if (*out)
        snprintf(*out, len, "{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}\n", host, b64);
    reg_engine_auth_free(b64);
    return *out ? VMMS_OK : vmms_fail(err, errlen, VMMS_ERR, "out of memory");
}

void reg_engine_auth_free(char *auth)
{
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
}
