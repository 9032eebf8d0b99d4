/*
 * config.c: the ec2SSH plugin's config object ("vmms_config.ec2SSH"). Owns
 * the table of keys, their types, defaults, ranges and character sets, and
 * the cross-key checks (default type allowed, a key pair with its private
 * key, credentials given as a pair). An unknown key or a bad value is an
 * error that names the key. Secrets (secret_access_key, session_token) are
 * never echoed in an error; the private key file is checked for being a
 * readable regular file, never read here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ec2.h"

#define PFX "ec2SSH config: "
#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define DIGIT "0123456789"
#define NAMECH LOWER "ABCDEFGHIJKLMNOPQRSTUVWXYZ" DIGIT "_.-"

enum kind { K_STR, K_SECRET, K_INT, K_BOOL, K_LIST, K_TAGS, K_KEYS };

struct key {
    const char *name;
    enum kind kind;
    size_t off;
    size_t size;                 /* K_STR/K_SECRET/K_LIST: bytes of one string */
    const char *chars;           /* allowed characters (NULL: any printable) */
    int min, max, def;           /* K_INT; K_BOOL def */
};

#define OFF(f) offsetof(struct ec2_config, f)
#define SZ(f) sizeof(((struct ec2_config *)0)->f)
#define SZ0(f) sizeof(((struct ec2_config *)0)->f[0])

static const struct key keys[] = {
    {"region", K_STR, OFF(region), SZ(region), LOWER DIGIT "-", 0, 0, 0},
    {"endpoint", K_STR, OFF(endpoint), SZ(endpoint), NULL, 0, 0, 0},
    {"imds_endpoint", K_STR, OFF(imds_endpoint), SZ(imds_endpoint), NULL, 0, 0, 0},
    {"access_key_id", K_STR, OFF(access_key_id), SZ(access_key_id), NAMECH, 0, 0, 0},
    {"secret_access_key", K_SECRET, OFF(secret_access_key), SZ(secret_access_key), NULL, 0, 0,
     0},
    {"session_token", K_SECRET, OFF(session_token), SZ(session_token), NULL, 0, 0, 0},
    {"subnet", K_STR, OFF(subnet), SZ(subnet), LOWER DIGIT "-", 0, 0, 0},
    {"security_groups", K_LIST, OFF(security_groups), SZ0(security_groups), LOWER DIGIT "-",
     0, EC2_MAX_LIST, 0},
    {"key_pair", K_STR, OFF(key_pair), SZ(key_pair), NAMECH " ", 0, 0, 0},
    {"private_key", K_STR, OFF(private_key), SZ(private_key), NULL, 0, 0, 0},
    {"ssh_user", K_STR, OFF(ssh_user), SZ(ssh_user), LOWER DIGIT "_-", 0, 0, 0},
    {"ssh_port", K_INT, OFF(ssh_port), 0, NULL, 1, 65535, 22},
    {"known_hosts", K_KEYS, OFF(host_keys), 0, NULL, 0, 0, 0},
    {"use_private_ip", K_BOOL, OFF(use_private_ip), 0, NULL, 0, 0, 0},
    {"max_vms", K_INT, OFF(max_vms), 0, NULL, 1, 10000, 4},
    {"allowed_instance_types", K_LIST, OFF(allowed_types), SZ0(allowed_types), LOWER DIGIT ".",
     0, EC2_MAX_LIST, 0},
    {"default_instance_type", K_STR, OFF(default_type), SZ(default_type), LOWER DIGIT ".", 0,
     0, 0},
    {"spot", K_BOOL, OFF(spot), 0, NULL, 0, 0, 0},
    {"keep_failed_vms", K_BOOL, OFF(keep_failed_vms), 0, NULL, 0, 0, 0},
    {"instance_metadata", K_BOOL, OFF(instance_metadata), 0, NULL, 0, 0, 0},
    {"tags", K_TAGS, OFF(tags), 0, NULL, 0, 0, 0},
    {"image_tag", K_STR, OFF(image_tag), SZ(image_tag), NAMECH ":/", 0, 0, 0},
    {"initialize_timeout_s", K_INT, OFF(initialize_timeout_s), 0, NULL, 1, 3600, 180},
    {"ssh_timeout_s", K_INT, OFF(ssh_timeout_s), 0, NULL, 1, 300, 10},
    {"command_timeout_s", K_INT, OFF(command_timeout_s), 0, NULL, 1, 3600, 60},
    {"api_timeout_s", K_INT, OFF(api_timeout_s), 0, NULL, 1, 300, 20},
    {"api_retries", K_INT, OFF(api_retries), 0, NULL, 0, 20, 5},
    {"api_backoff_ms", K_INT, OFF(api_backoff_ms), 0, NULL, 1, 60000, 500},
    {"poll_ms", K_INT, OFF(poll_ms), 0, NULL, 50, 60000, 2000},
    {"run_grace_s", K_INT, OFF(run_grace_s), 0, NULL, 0, 3600, 10},
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* A string value of 1..size-1 bytes from chars (printable when NULL). */
static int get_str(const struct key *k, const json_t *v, char *dst, char *err, size_t errlen)
{
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    bool ok = n > 0 && n < k->size && strlen(s) == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = k->chars ? strchr(k->chars, s[i]) != NULL : (s[i] >= 0x21 && s[i] < 0x7f);
    if (!ok)
        return vmms_fail(err, errlen, VMMS_ERR,
                         PFX "%s must be a string of 1..%zu %s%s", k->name, k->size - 1,
                         k->chars ? "of: " : "printable characters without spaces",
                         k->chars ? k->chars : "");
    memcpy(dst, s, n + 1);
    return VMMS_OK;
}

static int set_key(const struct key *k, const json_t *v, struct ec2_config *c, char *err,
                   size_t errlen)
{
    char *base = (char *)c + k->off;
    switch (k->kind) {
    case K_STR:
        return get_str(k, v, base, err, errlen);
    case K_SECRET: {
        size_t n = json_is_string(v) ? json_string_length(v) : 0;
        const char *sv = n ? json_string_value(v) : "";
        bool printable = true; /* it goes into an HTTP header: no space, CR or LF */
        for (size_t i = 0; i < n; i++)
            printable = printable && sv[i] > 0x20 && sv[i] < 0x7f;
        if (n == 0 || n >= k->size || strlen(sv) != n || !printable)
            return vmms_fail(err, errlen, VMMS_ERR, PFX "%s must be a string of 1..%zu "
                             "printable ASCII characters, no space", k->name, k->size - 1);
        memcpy(base, sv, n + 1);
        return VMMS_OK;
    }
    case K_INT:
        if (!json_is_integer(v) || json_integer_value(v) < k->min ||
            json_integer_value(v) > k->max)
            return vmms_fail(err, errlen, VMMS_ERR, PFX "%s must be an integer %d..%d", k->name,
                             k->min, k->max);
        *(int *)base = (int)json_integer_value(v);
        return VMMS_OK;
    case K_BOOL:
        if (!json_is_boolean(v))
            return vmms_fail(err, errlen, VMMS_ERR, PFX "%s must be true or false", k->name);
        *(bool *)base = json_is_true(v);
        return VMMS_OK;
    case K_LIST: {
        size_t *count = k->off == OFF(security_groups) ? &c->nsecurity_groups
                                                       : &c->nallowed_types;
        if (!json_is_array(v) || json_array_size(v) > (size_t)k->max)
            return vmms_fail(err, errlen, VMMS_ERR, PFX "%s must be a list of at most %d strings",
                             k->name, k->max);
        for (size_t i = 0; i < json_array_size(v); i++)
            if (get_str(k, json_array_get(v, i), base + i * k->size, err, errlen) != VMMS_OK)
                return VMMS_ERR;
        *count = json_array_size(v);
        return VMMS_OK;
    }
    case K_TAGS: {
        if (!json_is_object(v) || json_object_size(v) > EC2_MAX_LIST)
            return vmms_fail(err, errlen, VMMS_ERR,
                             PFX "tags must be an object of at most %d \"key\": \"value\" strings",
                             EC2_MAX_LIST);
        const char *tk;
        json_t *tv;
        json_object_foreach((json_t *)v, tk, tv) {
            size_t kl = strlen(tk);
            if (kl == 0 || kl >= sizeof c->tags[0].key || strncmp(tk, "aws:", 4) == 0 ||
                strncmp(tk, "tango-", 6) == 0 || strcmp(tk, "Name") == 0 ||
                !json_is_string(tv) || json_string_length(tv) >= sizeof c->tags[0].value)
                return vmms_fail(err, errlen, VMMS_ERR,
                                 PFX "tags: \"%.60s\" must be a key of 1..127 bytes (not "
                                 "Name, aws:* or tango-*) with a string value under 256 bytes",
                                 tk);
            struct ec2_tag *t = &c->tags[c->ntags++];
            snprintf(t->key, sizeof t->key, "%s", tk);
            snprintf(t->value, sizeof t->value, "%s", json_string_value(tv));
        }
        return VMMS_OK;
    }
    case K_KEYS: {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "console") == 0)
            c->host_keys = EC2_KEYS_CONSOLE;
        else if (s && strcmp(s, "accept-new") == 0)
            c->host_keys = EC2_KEYS_ACCEPT_NEW;
        else
            return vmms_fail(err, errlen, VMMS_ERR,
                             PFX "known_hosts must be \"console\" (check the host key against "
                             "the fingerprints the instance prints on its console) or "
                             "\"accept-new\" (trust the first key each new instance shows)");
        return VMMS_OK;
    }
    }
    return VMMS_ERR;
}

static bool url_ok(const char *s)
{
    return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
}

int ec2_config_parse(const json_t *cfg, struct ec2_config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].kind == K_INT)
            *(int *)((char *)c + keys[i].off) = keys[i].def;
    }
    snprintf(c->ssh_user, sizeof c->ssh_user, "ubuntu");
    snprintf(c->image_tag, sizeof c->image_tag, "tango-image");
    snprintf(c->imds_endpoint, sizeof c->imds_endpoint, "http://169.254.169.254");
    c->host_keys = EC2_KEYS_CONSOLE;
    if (cfg == NULL || !json_is_object(cfg))
        return vmms_fail(err, errlen, VMMS_ERR, PFX "vmms_config.ec2SSH must be an object "
                         "(region, key_pair, private_key, allowed_instance_types, ... are "
                         "required)");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)cfg, name, v) {
        const struct key *k = NULL;
        for (size_t i = 0; i < NKEYS && !k; i++)
            if (strcmp(keys[i].name, name) == 0)
                k = &keys[i];
        if (k == NULL)
            return vmms_fail(err, errlen, VMMS_ERR, PFX "unknown key \"%.60s\"", name);
        if (set_key(k, v, c, err, errlen) != VMMS_OK)
            return VMMS_ERR;
    }
    if (!c->region[0])
        return vmms_fail(err, errlen, VMMS_ERR, PFX "region is required (e.g. \"us-east-1\")");
    if (!c->endpoint[0])
        snprintf(c->endpoint, sizeof c->endpoint, "https://ec2.%s.amazonaws.com/", c->region);
    if (!url_ok(c->endpoint))
        return vmms_fail(err, errlen, VMMS_ERR, PFX "endpoint must be an http:// or https:// URL");
    if (!url_ok(c->imds_endpoint))
        return vmms_fail(err, errlen, VMMS_ERR,
                         PFX "imds_endpoint must be an http:// or https:// URL");
    if (!c->key_pair[0] || !c->private_key[0])
        return vmms_fail(err, errlen, VMMS_ERR,
                         PFX "key_pair (the EC2 key pair's name) and private_key (its private "
                         "key file here) are required");
    struct stat st;
    if (c->private_key[0] != '/' || stat(c->private_key, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(c->private_key, R_OK) != 0)
        return vmms_fail(err, errlen, VMMS_ERR,
                         PFX "private_key: %s is not a readable file (an absolute path)",
                         c->private_key);
    if (!c->access_key_id[0] != !c->secret_access_key[0])
        return vmms_fail(err, errlen, VMMS_ERR,
                         PFX "access_key_id and secret_access_key go together (or leave both "
                         "out: the environment, then the instance profile)");
    if (c->session_token[0] && !c->access_key_id[0])
        return vmms_fail(err, errlen, VMMS_ERR,
                         PFX "session_token needs access_key_id and secret_access_key");
    if (c->nallowed_types == 0)
        return vmms_fail(err, errlen, VMMS_ERR,
                         PFX "allowed_instance_types is required: the instance types a job "
                         "may run on (e.g. [\"t3.small\"])");
    if (!c->default_type[0])
        snprintf(c->default_type, sizeof c->default_type, "%s", c->allowed_types[0]);
    bool found = false;
    for (size_t i = 0; i < c->nallowed_types; i++)
        found = found || strcmp(c->allowed_types[i], c->default_type) == 0;
    if (!found)
        return vmms_fail(err, errlen, VMMS_ERR,
                         PFX "default_instance_type \"%s\" is not in allowed_instance_types",
                         c->default_type);
    return VMMS_OK;
}
