/*
 * registry_engine_auth.c: the X-Registry-Auth value the Docker Engine API
 * wants for a pull or a push with a listed registry's credentials
 * (registry.h reg_engine_auth). Apart from the registry client so the
 * consumer's builder (its pushes) links it without the client.
 */
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

int reg_engine_auth(const json_t *regs, const char *host, char **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    const json_t *e = registries_find(regs, host);
    if (e == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "registry \"%.100s\" is not in config key "
                         "\"registries\"", host);
    const char *file = json_string_value(json_object_get(e, "credentials"));
    if (file == NULL)
        return VMMS_OK; /* anonymous */
    char user[REGISTRY_USER_MAX], pass[REGISTRY_PASS_MAX], why[512];
    if (registries_read_creds(file, user, pass, why, sizeof why) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "registry %s: %s", host, why);
    json_t *j = json_pack("{s:s, s:s, s:s}", "username", user, "password", pass,
                          "serveraddress", host);
    OPENSSL_cleanse(pass, sizeof pass);
    char *plain = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (j)
        wipe_member(j, "password");
    json_decref(j);
    size_t n = plain ? strlen(plain) : 0;
    *out = plain ? malloc((n + 2) / 3 * 4 + 1) : NULL;
    if (*out) {
        EVP_EncodeBlock((unsigned char *)*out, (const unsigned char *)plain, (int)n);
        for (char *p = *out; *p; p++) /* base64url, as Docker decodes it */
            *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    if (plain) {
        explicit_bzero(plain, n);
        free(plain);
    }
    return *out ? VMMS_OK : vmms_fail(err, errlen, VMMS_ERR, "out of memory");
}

void reg_engine_auth_free(char *auth)
{
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
}
