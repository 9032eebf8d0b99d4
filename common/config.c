/*
 * config.c: loading and validating the configuration (see config.h). The
 * table `options` is the single list of keys: name, type, field, default and
 * range. Adding a key means adding one row here, one field in config.h, its
 * default in deploy/tango.json and its description in docs/config-keys.txt
 * (then `make docs`); tests/integration/test_docs_config.py checks all three.
 */
#include "config.h"
#include "build_push.h"
#include "callback_allow.h"
#include "config_env.h"
#include "jobstate.h"
#include "labs.h"
#include "log.h"
#include "netset.h"
#include "registries.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

enum opt_type { OPT_INT, OPT_STR, OPT_LIST, OPT_BOOL, OPT_JSON };

struct option_def {
    const char *name;
    enum opt_type type;
    size_t offset;
    size_t count_offset; /* OPT_LIST: where the count lives */
    long min, max;       /* OPT_INT range; OPT_STR/OPT_LIST max length */
    const char *def;     /* default, as text (lists comma-separated) */
};

#define F(field) offsetof(struct tango_config, field)
#define INT(n, field, def, lo, hi) {n, OPT_INT, F(field), 0, lo, hi, #def}
#define STR(n, field, def, maxlen) {n, OPT_STR, F(field), 0, 1, maxlen, def}
#define LIST(n, field, cnt, def) {n, OPT_LIST, F(field), F(cnt), 0, 255, def}
#define BOOL(n, field, def) {n, OPT_BOOL, F(field), 0, 0, 1, def}

static const struct option_def options[] = {
    STR("bind", bind, "127.0.0.1", 255),
    INT("port", port, 3000, 1, 65535),
    INT("http_timeout_s", http_timeout_s, 60, 1, 3600),
    INT("http_head_timeout_s", http_head_timeout_s, 10, 1, 3600),
    INT("http_min_body_bps", http_min_body_bps, 1024, 0, 1000000000),
    INT("max_connections", max_connections, 4096, 1, 1000000),
    INT("max_connections_per_ip", max_connections_per_ip, 256, 1, 1000000),
    LIST("trusted_proxies", trusted_proxies, ntrusted_proxies, ""),
    INT("max_header_kb", max_header_kb, 16, 1, 1024),
    INT("max_request_kb", max_request_kb, 1024, 1, 65536),
    INT("max_upload_mb", max_upload_mb, 256, 1, 65536),
    INT("build_timeout_s", build_timeout_s, 600, 1, 86400),
    STR("build_approval", build_approval, "none", 16),
    INT("build_image_timeout_s", build_image_timeout_s, 900, 10, 86400),
    INT("build_memory_mb", build_memory_mb, 2048, 64, 1048576),
    INT("build_log_max_kb", build_log_max_kb, 64, 1, 16384),
    INT("build_context_max_kb", build_context_max_kb, 8192, 1, 1048576),
    INT("builds_at_once", builds_at_once, 1, 0, 64),
    STR("build_network", build_network, "none", 16),
    STR("build_docker_socket", build_docker_socket, "/var/run/docker.sock", 107),
    {"build_push_to", OPT_STR, F(build_push_to), 0, 0, 200, ""},
    INT("image_max_unpacked_mb", image_max_unpacked_mb, 16384, 1, 16777216),
    INT("image_max_entries", image_max_entries, 1000000, 1, 1000000000),
    STR("redis_url", redis_url, "redis://127.0.0.1:6379/0", 1024),
    INT("redis_timeout_ms", redis_timeout_ms, 2000, 10, 600000),
    INT("redis_min_replicas", redis_min_replicas, 0, 0, 16),
    INT("redis_wait_ms", redis_wait_ms, 1000, 1, 600000),
    BOOL("redis_allow_eviction", redis_allow_eviction, "false"),
    STR("prefix", prefix, "tango:", 64),
    STR("courselabs", courselabs, "courselabs", 4096),
    LIST("keys", keys, nkeys, ""),
    {"secret_file", OPT_STR, F(secret_file), 0, 0, 4096, ""},
    LIST("images", images, nimages, "autograding_image"),
    STR("log_level", log_level, "info", 16),
    INT("default_timeout_s", default_timeout_s, 60, 1, 86400),
    INT("max_timeout_s", max_timeout_s, 3600, 1, 86400),
    INT("default_max_kb", default_max_kb, 1000, 1, 1048576),
    INT("max_output_kb", max_output_kb, 65536, 1, 1048576),
    INT("max_cores", max_cores, 16, 1, 1024),
    INT("max_memory_mb", max_memory_mb, 16384, 16, 1048576),
    INT("jobs_list_max", jobs_list_max, 1000, 1, 1000000),
    INT("jobs_list_max_kb", jobs_list_max_kb, 2048, 16, 1048576),
    INT("max_job_record_kb", max_job_record_kb, 32, 4, 1024),
    INT("dead_jobs_keep", dead_jobs_keep, 10000, 1, 100000000),
    INT("max_pool_size", max_pool_size, 64, 0, 10000),
    INT("auto_pool_max", auto_pool_max, 2, 0, 10000),
    INT("auto_pool_idle_s", auto_pool_idle_s, 600, 1, 86400),
    STR("vmms", vmms, "localDocker", 64),
    STR("vmms_dir", vmms_dir, "build/vmms", 4096),
    {"vmms_config", OPT_JSON, F(vmms_config), 0, 0, 0, "{}"},
    {"registries", OPT_JSON, F(registries), 0, 0, 0, "{}"},
    STR("instance_prefix", instance_prefix, "tango-", 32),
    INT("max_jobs", max_jobs, 4, 1, 10000),
    INT("max_jobs_per_image", max_jobs_per_image, 4, 1, 10000),
    INT("job_retries", job_retries, 2, 0, 100),
    INT("waitvm_timeout_s", waitvm_timeout_s, 60, 1, 86400),
    INT("copyin_timeout_s", copyin_timeout_s, 60, 1, 86400),
    INT("copyout_timeout_s", copyout_timeout_s, 60, 1, 86400),
    INT("lease_ms", lease_ms, 10000, 500, 3600000),
    INT("drain_timeout_s", drain_timeout_s, 300, 0, 86400),
    INT("default_cores", default_cores, 1, 1, 1024),
    INT("default_memory_mb", default_memory_mb, 512, 16, 1048576),
    INT("pids_limit", pids_limit, 512, 16, 1000000),
    INT("disk_limit_mb", disk_limit_mb, 1024, 16, 1048576),
    INT("max_disk_limit_mb", max_disk_limit_mb, 8192, 16, 1048576),
    INT("max_cpu_limit_s", max_cpu_limit_s, 3600, 1, 86400),
    INT("sweep_interval_ms", sweep_interval_ms, 2000, 100, 600000),
    INT("min_free_mb", min_free_mb, 256, 0, 1048576),
    BOOL("default_disable_network", default_disable_network, "false"),
    INT("autodriver_nproc", autodriver_nproc, 1000000, 1, 10000000),
    INT("autodriver_fsize_mb", autodriver_fsize_mb, 100, 1, 1048576),
    INT("callback_attempts", callback_attempts, 10, 1, 1000),
    INT("callback_backoff_ms", callback_backoff_ms, 1000, 10, 3600000),
    INT("callback_timeout_s", callback_timeout_s, 10, 1, 600),
    INT("callback_connect_timeout_ms", callback_connect_timeout_ms, 3000, 100, 600000),
    INT("callback_max_in_flight", callback_max_in_flight, 64, 1, 1024),
    INT("callback_max_per_host", callback_max_per_host, 16, 1, 1024),
    INT("callback_breaker_failures", callback_breaker_failures, 5, 1, 1000),
    INT("callback_breaker_open_s", callback_breaker_open_s, 30, 1, 86400),
    LIST("callback_allow", callback_allow, ncallback_allow, ""),
    INT("partial_output_interval_ms", partial_output_interval_ms, 1000, 50, 600000),
    INT("partial_output_kb", partial_output_kb, 64, 1, 65536),
    STR("metrics_bind", metrics_bind, "127.0.0.1", 255),
    INT("metrics_port", metrics_port, 9101, 0, 65535),
    /* fair share and priorities (jobstate.h) */
    STR("fair_share", fair_share, "course", 16),
    {"priority_rules", OPT_JSON, F(priority_rules), 0, 0, 1, "[]"},
    {"course_weights", OPT_JSON, F(course_weights), 0, 0, 0, "{}"},
    INT("max_wait_s", max_wait_s, 600, 0, 604800),
    INT("max_running_per_course", max_running_per_course, 0, 0, 100000),
    INT("max_queued_per_course", max_queued_per_course, 5000, 0, 100000000),
};
#define NOPTIONS (sizeof options / sizeof options[0])

static void *field(struct tango_config *cfg, const struct option_def *o)
{
    return (char *)cfg + o->offset;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static int set_int(struct tango_config *cfg, const struct option_def *o, long long v,
                   char *err, size_t errlen)
{
    if (v < o->min || v > o->max) {
        snprintf(err, errlen, "config key \"%s\": %lld is out of range %ld..%ld", o->name,
                 v, o->min, o->max);
        return -1;
    }
    *(int *)field(cfg, o) = (int)v;
    return 0;
}

static int set_str(struct tango_config *cfg, const struct option_def *o, const char *s,
                   char *err, size_t errlen)
{
    size_t len = strlen(s);
    if (len < (size_t)o->min || len > (size_t)o->max) {
        snprintf(err, errlen, "config key \"%s\": length must be %ld..%ld", o->name, o->min,
                 o->max);
        return -1;
    }
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20) {
            snprintf(err, errlen, "config key \"%s\": control character in value", o->name);
            return -1;
        }
    char **dst = field(cfg, o);
    free(*dst);
    *dst = strdup(s);
    return 0;
}

/* Replaces a list field with items (n of them, copied). */
static int set_list(struct tango_config *cfg, const struct option_def *o,
                    const char *const *items, size_t n, char *err, size_t errlen)
{
    char **list = calloc(n + 1, sizeof *list);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]);
        if (len == 0 || len > (size_t)o->max) {
            snprintf(err, errlen, "config key \"%s\": item %zu must be 1..%ld bytes", o->name,
                     i, o->max);
            free_list(list, i);
            return -1;
        }
        list[i] = strdup(items[i]);
    }
    char ***dst = field(cfg, o);
    free_list(*dst, *(size_t *)((char *)cfg + o->count_offset));
    *dst = list;
    *(size_t *)((char *)cfg + o->count_offset) = n;
    return 0;
}

/* Splits "a,b,c" (items trimmed, empties skipped) and sets the list. */
static int set_list_text(struct tango_config *cfg, const struct option_def *o,
                         const char *text, char *err, size_t errlen)
{
    char *copy = strdup(text);
    const char **items = calloc(strlen(text) / 2 + 2, sizeof *items);
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok)
            items[n++] = tok;
    }
    int rc = set_list(cfg, o, items, n, err, errlen);
    free(items);
    free(copy);
    return rc;
}

static int parse_bool_text(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int set_json(struct tango_config *cfg, const struct option_def *o, json_t *v,
                    char *err, size_t errlen)
{
    /* max 1: a list is accepted too (priority_rules) */
    if (!json_is_object(v) && !(o->max == 1 && json_is_array(v))) {
        snprintf(err, errlen, "config key \"%s\": must be a JSON %s", o->name,
                 o->max == 1 ? "list" : "object");
        return -1;
    }
    json_t **dst = field(cfg, o);
    json_decref(*dst);
    *dst = json_incref(v);
    return 0;
}

/* jansson's message without its "near '<token>'" part: the token may be a
 * secret (a client key, the Redis password) and errors are printed. */
static const char *json_error_text(json_error_t *jerr)
{
    char *near = strstr(jerr->text, " near '");
    if (near)
        *near = '\0';
    return jerr->text;
}

/* Sets an option from its text form (defaults and environment). */
static int set_from_text(struct tango_config *cfg, const struct option_def *o,
                         const char *text, char *err, size_t errlen)
{
    switch (o->type) {
    case OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end) {
            snprintf(err, errlen, "config key \"%s\": \"%s\" is not an integer", o->name, text);
            return -1;
        }
        return set_int(cfg, o, v, err, errlen);
    }
    case OPT_STR:
        return set_str(cfg, o, text, err, errlen);
    case OPT_LIST:
        return set_list_text(cfg, o, text, err, errlen);
    case OPT_BOOL: {
        bool b;
        if (parse_bool_text(text, &b)) {
            snprintf(err, errlen, "config key \"%s\": \"%s\" is not a boolean", o->name, text);
            return -1;
        }
        *(bool *)field(cfg, o) = b;
        return 0;
    }
    case OPT_JSON: {
        json_error_t jerr;
        json_t *v = json_loads(text, 0, &jerr);
        if (!v) {
            snprintf(err, errlen, "config key \"%s\": invalid JSON: %s", o->name,
                     json_error_text(&jerr));
            return -1;
        }
        int rc = set_json(cfg, o, v, err, errlen);
        json_decref(v);
        return rc;
    }
    }
    return -1;
}

static int set_from_json(struct tango_config *cfg, const struct option_def *o, json_t *v,
                         char *err, size_t errlen)
{
    const char *want = NULL;
    switch (o->type) {
    case OPT_INT:
        if (json_is_integer(v))
            return set_int(cfg, o, json_integer_value(v), err, errlen);
        want = "an integer";
        break;
    case OPT_STR:
        if (json_is_string(v))
            return set_str(cfg, o, json_string_value(v), err, errlen);
        want = "a string";
        break;
    case OPT_BOOL:
        if (json_is_boolean(v)) {
            *(bool *)field(cfg, o) = json_is_true(v);
            return 0;
        }
        want = "true or false";
        break;
    case OPT_JSON:
        return set_json(cfg, o, v, err, errlen);
    case OPT_LIST: {
        if (!json_is_array(v)) {
            want = "a list of strings";
            break;
        }
        size_t n = json_array_size(v);
        const char **items = calloc(n + 1, sizeof *items);
        for (size_t i = 0; i < n; i++) {
            items[i] = json_string_value(json_array_get(v, i));
            if (!items[i]) {
                free(items);
                want = "a list of strings";
                goto bad;
            }
        }
        int rc = set_list(cfg, o, items, n, err, errlen);
        free(items);
        return rc;
    }
    }
bad:
    snprintf(err, errlen, "config key \"%s\": must be %s", o->name, want);
    return -1;
}

static const struct option_def *find_option(const char *name)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

/* The keys the file and the TANGO_ variables set (config_env.c's rule:
 * those win over Autolab's names). */
struct explicit_keys {
    bool set[NOPTIONS];
};

static void mark_explicit(struct explicit_keys *x, const struct option_def *o)
{
    if (x)
        x->set[o - options] = true;
}

static bool is_explicit(const char *key, void *arg)
{
    const struct option_def *o = find_option(key);
    return o && ((struct explicit_keys *)arg)->set[o - options];
}

int config_set_text(struct tango_config *cfg, const char *key, const char *text, char *err,
                    size_t errlen)
{
    const struct option_def *o = find_option(key);
    if (!o) {
        snprintf(err, errlen, "config key \"%s\": unknown", key);
        return -1;
    }
    return set_from_text(cfg, o, text, err, errlen);
}

static int load_file(struct tango_config *cfg, const char *path, struct explicit_keys *x,
                     char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "config file %s: line %d: %s", path, jerr.line,
                 json_error_text(&jerr));
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "config file %s: must hold a JSON object", path);
        json_decref(root);
        return -1;
    }
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, name, v) {
        const struct option_def *o = find_option(name);
        if (!o) {
            snprintf(err, errlen, "config file %s: unknown key \"%s\"", path, name);
            rc = -1;
            break;
        }
        if (set_from_json(cfg, o, v, err, errlen)) {
            rc = -1;
            break;
        }
        mark_explicit(x, o);
    }
    json_decref(root);
    return rc;
}

static int load_env(struct tango_config *cfg, char *const *envp, struct explicit_keys *x,
                    char *err, size_t errlen)
{
    for (char *const *e = envp; *e; e++) {
        if (strncmp(*e, "TANGO_", 6) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char name[80];
        size_t n = (size_t)(eq - (*e + 6));
        if (n == 0 || n >= sizeof name)
            continue;
        for (size_t i = 0; i < n; i++)
            name[i] = (char)tolower((unsigned char)(*e)[6 + i]);
        name[n] = '\0';
        const struct option_def *o = find_option(name);
        if (!o)
            continue; /* other TANGO_ variables (e.g. test knobs) are not ours */
        if (set_from_text(cfg, o, eq + 1, err, errlen)) {
            size_t l = strlen(err);
            snprintf(err + l, errlen - l, " (from environment TANGO_%.*s)", (int)n, *e + 6);
            return -1;
        }
        mark_explicit(x, o);
    }
    return 0;
}

static int check_prefix(const char *key, const char *p, const char *extra, char *err,
                        size_t errlen)
{
    if (!isalnum((unsigned char)*p)) {
        snprintf(err, errlen, "config key \"%s\": must start with a letter or digit", key);
        return -1;
    }
    for (; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(extra, *p)) {
            snprintf(err, errlen, "config key \"%s\": only letters, digits and %s allowed", key,
                     extra);
            return -1;
        }
    return 0;
}

static int validate(struct tango_config *cfg, char *err, size_t errlen)
{
    struct redis_target t;
    if (redis_url_parse(cfg->redis_url, &t, err, errlen))
        return -1;
    if (cfg->redis_min_replicas > 0 && cfg->redis_wait_ms >= cfg->redis_timeout_ms) {
        snprintf(err, errlen, "config key \"redis_wait_ms\": must be less than redis_timeout_ms "
                              "when redis_min_replicas is set");
        return -1;
    }
    if (check_prefix("prefix", cfg->prefix, ":_.-", err, errlen) ||
        check_prefix("instance_prefix", cfg->instance_prefix, "_.-", err, errlen))
        return -1;
    for (size_t i = 0; i < cfg->nkeys; i++)
        for (const char *p = cfg->keys[i]; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == '/' || *p == 0x7f) {
                snprintf(err, errlen, "config key \"keys\": item %zu has a space, '/' or a control character", i);
                return -1;
            }
    if (cfg->default_timeout_s > cfg->max_timeout_s) {
        snprintf(err, errlen, "config key \"default_timeout_s\": larger than max_timeout_s");
        return -1;
    }
    if (cfg->default_max_kb > cfg->max_output_kb) {
        snprintf(err, errlen, "config key \"default_max_kb\": larger than max_output_kb");
        return -1;
    }
    if (strcmp(cfg->build_approval, "none") != 0 && strcmp(cfg->build_approval, "required") != 0) {
        snprintf(err, errlen, "config key \"build_approval\": must be none or required");
        return -1;
    }
    if (strcmp(cfg->build_network, "none") != 0 && strcmp(cfg->build_network, "bridge") != 0) {
        snprintf(err, errlen, "config key \"build_network\": must be none or bridge");
        return -1;
    }
    if (log_level_parse(cfg->log_level) < 0) {
        snprintf(err, errlen, "config key \"log_level\": must be debug, info, warn or error");
        return -1;
    }
    if (cfg->disk_limit_mb > cfg->max_disk_limit_mb) {
        snprintf(err, errlen, "config key \"disk_limit_mb\": larger than max_disk_limit_mb");
        return -1;
    }
    /* Both services refuse a bad callback allowlist at start. */
    struct callback_policy *policy = NULL;
    char why[512];
    if (callback_policy_new(cfg->callback_allow, cfg->ncallback_allow, &policy, why, sizeof why)) {
        snprintf(err, errlen, "config key \"callback_allow\": %s", why);
        return -1;
    }
    callback_policy_free(policy);
    struct netset *proxies = NULL;
    if (netset_new(cfg->trusted_proxies, cfg->ntrusted_proxies, &proxies, why, sizeof why)) {
        snprintf(err, errlen, "config key \"trusted_proxies\": %s", why);
        return -1;
    }
    netset_free(proxies);
    if (registries_check(cfg->registries, why, sizeof why)) {
        snprintf(err, errlen, "config key \"registries\": %s", why);
        return -1;
    }
    if (build_push_check(cfg->build_push_to, cfg->registries, why, sizeof why)) {
        snprintf(err, errlen, "config key \"build_push_to\": %s", why);
        return -1;
    }
    if (jobstate_sched_check(cfg->fair_share, cfg->priority_rules, cfg->course_weights, err,
                             errlen))
        return -1;
    return 0;
}

/* On error *cfg is freed (and zeroed): the caller has nothing to release. */
int config_load(struct tango_config *cfg, const char *path, char *const *envp, char *err,
                size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NOPTIONS; i++)
        if (set_from_text(cfg, &options[i], options[i].def, err, errlen))
            goto fail;
    struct explicit_keys x = {{0}};
    char *const *env = envp ? envp : environ;
    if (path && load_file(cfg, path, &x, err, errlen))
        goto fail;
    if (load_env(cfg, env, &x, err, errlen))
        goto fail;
    if (config_env_autolab(cfg, env, is_explicit, &x, config_set_text, err, errlen))
        goto fail;
    if (validate(cfg, err, errlen))
        goto fail;
    return 0;
fail:
    config_free(cfg);
    return -1;
}

void config_free(struct tango_config *cfg)
{
    for (size_t i = 0; i < NOPTIONS; i++) {
        const struct option_def *o = &options[i];
        if (o->type == OPT_STR) {
            free(*(char **)field(cfg, o));
        } else if (o->type == OPT_LIST) {
            free_list(*(char ***)field(cfg, o), *(size_t *)((char *)cfg + o->count_offset));
        } else if (o->type == OPT_JSON) {
            json_decref(*(json_t **)field(cfg, o));
        }
    }
    free(cfg->autolab_env_used);
    free(cfg->autolab_env_ignored);
    memset(cfg, 0, sizeof *cfg);
}

int config_from_cli(int argc, char **argv, const char *component, struct tango_config *cfg)
{
    const char *path = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt(argc, argv, "c:h")) != -1) {
        if (opt == 'c') {
            path = optarg;
        } else {
            fprintf(stderr, "usage: %s [-c config.json]\n"
                            "Environment TANGO_<KEY> overrides any config key.\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    char err[512];
    if (config_load(cfg, path, NULL, err, sizeof err)) {
        fprintf(stderr, "tango-%s: %s\n", component, err);
        return 2;
    }
    log_init(component, (enum log_level)log_level_parse(cfg->log_level));
    if (cfg->autolab_env_used || cfg->autolab_env_ignored) {
        char qu[512], qi[512];
        log_info("autolab_env", "used=%s overridden_by_config=%s",
                 log_quote(cfg->autolab_env_used ? cfg->autolab_env_used : "", qu, sizeof qu),
                 log_quote(cfg->autolab_env_ignored ? cfg->autolab_env_ignored : "", qi,
                           sizeof qi));
    }
    if (mkdir_p(cfg->courselabs, 0755)) {
        fprintf(stderr, "tango-%s: config key \"courselabs\": cannot create %s: %s\n",
                component, cfg->courselabs, strerror(errno));
        config_free(cfg);
        return 2;
    }
    return -1;
}
