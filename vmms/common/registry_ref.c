/*
 * registry_ref.c: what a back end asks about a registry reference before
 * it runs a job on it (see registry.h): the digest a tag names now (the
 * resolve_image op of localOCI, localDocker and distDocker), and the
 * credentials of a pull through a Docker daemon: the Engine API's
 * X-Registry-Auth value (localDocker) or a docker CLI config.json
 * (distDocker).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "grading.h"
#include "image_ref.h"
#include "registries.h"
#include "registry.h"
#include "vmms.h"

int reg_resolve(const json_t *regs, const char *name, char *out, size_t outlen, char *err,
                size_t errlen)
{
    struct image_ref ref;
    if (image_ref_parse(name, &ref) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "bad image name");
    if (!ref.remote || ref.digest[0]) {
        snprintf(out, outlen, "%s", name);
        return VMMS_OK;
    }
    struct reg_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    char *body = NULL, ctype[128], digest[72];
    size_t len = 0;
    int rc = reg_client_init(c, regs, ref.registry, err, errlen);
    if (rc == VMMS_OK)
        rc = reg_get_manifest(c, ref.path, image_ref_reference(&ref), &body, &len, ctype, digest,
                              err, errlen);
    free(body);
    reg_client_clear(c);
    free(c);
    if (rc == VMMS_OK && (size_t)snprintf(out, outlen, "%s/%s@%s", ref.registry, ref.path,
                                          digest) >= outlen)
        rc = vmms_fail(err, errlen, VMMS_ERR, "%s pinned to its digest is longer than %zu "
                       "bytes", name, outlen - 1);
    return rc;
}

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
