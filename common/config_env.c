/*
 * config_env.c: Autolab's deployment variables onto config keys (see
 * config_env.h). Owns the mapping table and the checks of those values;
 * config.c's own setters (handed in by config_load, so this file needs
 * nothing of config.c) validate what becomes a top-level key, the
 * localDocker plugin what becomes one of its keys.
 */
#include "config_env.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How a variable's value becomes the key's value. */
enum env_map { MAP_KEYS, MAP_REDIS_HOST, MAP_DEPLOYMENT, MAP_LOCALDOCKER };

struct env_rule {
    const char *var;   /* Autolab's name */
    const char *key;   /* ours: top-level, or vmms_config.localDocker's */
    enum env_map map;
};

static const struct env_rule rules[] = {
    {"RESTFUL_KEY", "keys", MAP_KEYS},
    {"DOCKER_REDIS_HOSTNAME", "redis_url", MAP_REDIS_HOST},
    {"DOCKER_DEPLOYMENT", "instance_prefix", MAP_DEPLOYMENT},
    {"DOCKER_VOLUME_PATH", "volume_dir", MAP_LOCALDOCKER},
    {"DOCKER_TANGO_HOST_VOLUME_PATH", "host_volume_dir", MAP_LOCALDOCKER},
};
#define NRULES (sizeof rules / sizeof rules[0])

/* The value of var in envp, or NULL (an empty value counts as unset, as a
 * compose file's "- VAR" gives it when .env leaves VAR out). */
static const char *env_get(char *const *envp, const char *var)
{
    size_t n = strlen(var);
    for (char *const *e = envp; *e; e++)
        if (strncmp(*e, var, n) == 0 && (*e)[n] == '=')
            return (*e)[n + 1] ? *e + n + 1 : NULL;
    return NULL;
}

/* True if every byte of s is in [A-Za-z0-9] or extra, and s is 1..max long. */
static bool plain_word(const char *s, const char *extra, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
            return false;
    return true;
}

/* The localDocker object of cfg->vmms_config, made when missing; NULL
 * when vmms_config holds something else there (the plugin says so). */
static json_t *localdocker_obj(struct tango_config *cfg)
{
    json_t *ld = json_object_get(cfg->vmms_config, "localDocker");
    if (ld == NULL) {
        ld = json_object();
        json_object_set_new(cfg->vmms_config, "localDocker", ld);
    }
    return json_is_object(ld) ? ld : NULL;
}

/* Whether the config already set rule's key. */
static bool config_has(struct tango_config *cfg, const struct env_rule *r,
                       config_explicit_fn is_explicit, void *arg)
{
    if (r->map != MAP_LOCALDOCKER)
        return is_explicit(r->key, arg);
    json_t *ld = json_object_get(cfg->vmms_config, "localDocker");
    return json_is_object(ld) && json_object_get(ld, r->key) != NULL;
}

/* Sets rule's key from value (a top-level key through set). */
static int apply(struct tango_config *cfg, const struct env_rule *r, const char *value,
                 config_set_fn set, char *err, size_t errlen)
{
    char text[320];
    switch (r->map) {
    case MAP_KEYS:
        /* one key, as the Python Tango takes it (never echoed in an error) */
        if (strchr(value, ',')) {
            snprintf(err, errlen, "environment RESTFUL_KEY: must be one key (no comma)");
            return -1;
        }
        return set(cfg, r->key, value, err, errlen);
    case MAP_REDIS_HOST:
        if (!plain_word(value, ".-_", 253)) {
            snprintf(err, errlen, "environment DOCKER_REDIS_HOSTNAME: must be a host name "
                                  "(letters, digits, '.', '-', '_')");
            return -1;
        }
        snprintf(text, sizeof text, "redis://%s:6379/0", value);
        return set(cfg, r->key, text, err, errlen);
    case MAP_DEPLOYMENT:
        if (!plain_word(value, "_.-", 20)) {
            snprintf(err, errlen, "environment DOCKER_DEPLOYMENT: must be 1..20 letters, "
                                  "digits, '_', '.' or '-'");
            return -1;
        }
        snprintf(text, sizeof text, "tango-%s-", value);
        for (char *p = text; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        return set(cfg, r->key, text, err, errlen);
    case MAP_LOCALDOCKER: {
        json_t *ld = localdocker_obj(cfg);
        if (ld)
            json_object_set_new(ld, r->key, json_string(value));
        return 0;
    }
    }
    return -1;
}

/* Appends "VAR=key" to *list (a malloc'd space-separated string). */
static void note(char **list, const struct env_rule *r)
{
    size_t have = *list ? strlen(*list) : 0;
    size_t add = strlen(r->var) + strlen(r->key) + 3;
    char *grown = realloc(*list, have + add);
    if (!grown)
        return;
    snprintf(grown + have, add, "%s%s=%s", have ? " " : "", r->var, r->key);
    *list = grown;
}

int config_env_autolab(struct tango_config *cfg, char *const *envp,
                       config_explicit_fn is_explicit, void *arg, config_set_fn set,
                       char *err, size_t errlen)
{
    for (size_t i = 0; i < NRULES; i++) {
        const struct env_rule *r = &rules[i];
        const char *value = env_get(envp, r->var);
        if (value == NULL)
            continue;
        if (config_has(cfg, r, is_explicit, arg)) {
            note(&cfg->autolab_env_ignored, r);
            continue;
        }
        if (apply(cfg, r, value, set, err, errlen)) {
            size_t l = strlen(err);
            if (strncmp(err, "environment ", 12) != 0)
                snprintf(err + l, errlen - l, " (from environment %s)", r->var);
            return -1;
        }
        note(&cfg->autolab_env_used, r);
    }
    return 0;
}
