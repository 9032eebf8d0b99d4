/*
 * config.c: the distDocker plugin's config object ("vmms_config.distDocker").
 * Owns the list of keys (top level and per host), their defaults, types and
 * ranges, and the checks on the files they name. An unknown key or a bad
 * value is an error that names the key (hosts[i].key for a host's keys).
 * Key files are checked for being readable regular files; their contents
 * are never read here and never logged. "registries" is the service's own
 * key, copied in by the consumer (consumer/plugin.c); registries.h checked it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cfg.h"
#include "dd.h"

#define PFX "distDocker config: "

static const struct vmms_int_key top_ints[] = {
    {"connect_timeout_s", offsetof(struct dd_config, connect_timeout_s), 10, 1, 300},
    {"command_timeout_s", offsetof(struct dd_config, command_timeout_s), 60, 1, 3600},
    {"down_backoff_s", offsetof(struct dd_config, down_backoff_s), 2, 1, 3600},
    {"down_backoff_max_s", offsetof(struct dd_config, down_backoff_max_s), 60, 1, 86400},
    {"health_interval_s", offsetof(struct dd_config, health_interval_s), 10, 1, 3600},
    {"run_grace_s", offsetof(struct dd_config, run_grace_s), 10, 0, 3600},
    {"default_cores", offsetof(struct dd_config, defaults.cores), 1, 1, 1024},
    {"default_memory_mb", offsetof(struct dd_config, defaults.memory_mb), 512, 6, 1024 * 1024},
    {"default_pids_limit", offsetof(struct dd_config, defaults.pids), 512, 1, 4194304},
    {"default_disk_mb", offsetof(struct dd_config, defaults.disk_mb), 1024, 16, 1024 * 1024},
};

static const struct vmms_int_key host_ints[] = {
    {"port", offsetof(struct dd_host_cfg, port), 22, 1, 65535},
    {"max_jobs", offsetof(struct dd_host_cfg, max_jobs), 4, 1, 1024},
    {"max_sessions", offsetof(struct dd_host_cfg, max_sessions), 10, 3, 4096},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A string value of at most max-1 bytes, no NUL inside. */
static const char *get_string(const json_t *v, size_t max, const char *where, const char *key,
                              char *err, size_t errlen)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        vmms_fail(err, errlen, VMMS_ERR, PFX "%s%s must be a non-empty string shorter than %zu "
                "bytes", where, key, max);
        return NULL;
    }
    return json_string_value(v);
}

static bool all_in(const char *s, const char *set)
{
    return strspn(s, set) == strlen(s);
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* An absolute path of [A-Za-z0-9_./-] without "." or ".." components or a
 * trailing '/': it goes into shell command lines and SFTP paths. */
static bool plain_abs_path(const char *s)
{
    if (s[0] != '/' || s[1] == '\0' || !all_in(s, ALNUM "_./-") || s[strlen(s) - 1] == '/' ||
        strstr(s, "//"))
        return false;
    for (const char *p = s; (p = strchr(p, '/')) != NULL;) {
        p++;
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
    }
    return true;
}

static int readable_file(const char *path, const char *where, const char *key, char *err,
                         size_t errlen)
{
    struct stat st;
    if (path[0] != '/')
        return vmms_fail(err, errlen, VMMS_ERR, PFX "%s%s must be an absolute path", where, key);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || access(path, R_OK) != 0)
        return vmms_fail(err, errlen, VMMS_ERR,
                       PFX "%s%s: %s is not a readable file", where, key, path);
    return VMMS_OK;
}

static int parse_host(const json_t *obj, size_t i, struct dd_host_cfg *h, bool strict,
                      char *err, size_t errlen)
{
    char where[32];
    snprintf(where, sizeof where, "hosts[%zu].", i);
    if (!json_is_object(obj))
        return vmms_fail(err, errlen, VMMS_ERR, PFX "hosts[%zu] must be an object", i);
    vmms_int_keys_default(host_ints, N(host_ints), h);
    strcpy(h->volume_dir, "/var/lib/tango/volumes");

    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        const struct vmms_int_key *ik = vmms_int_key_find(host_ints, N(host_ints), key);
        const char *s = NULL;
        int rc = VMMS_OK;
        if (ik) {
            rc = vmms_int_key_set(ik, v, h, "distDocker", where, err, errlen);
        } else if (strcmp(key, "address") == 0) {
            if ((s = get_string(v, sizeof h->address, where, key, err, errlen)) == NULL)
                return VMMS_ERR;
            if (!all_in(s, ALNUM ".-:") || s[0] == '-' || s[0] == '.')
                return vmms_fail(err, errlen, VMMS_ERR,
                               PFX "%saddress must be a host name or an IP address", where);
            strcpy(h->address, s);
        } else if (strcmp(key, "user") == 0) {
            if ((s = get_string(v, 33, where, key, err, errlen)) == NULL)
                return VMMS_ERR;
            if (!all_in(s, ALNUM "_.-") || s[0] == '-')
                return vmms_fail(err, errlen, VMMS_ERR,
                               PFX "%suser must be 1..32 of [A-Za-z0-9_.-], not starting "
                               "with '-'", where);
            strcpy(h->user, s);
        } else if (strcmp(key, "private_key") == 0 || strcmp(key, "public_key") == 0 ||
                   strcmp(key, "known_hosts") == 0) {
            if ((s = get_string(v, PATH_MAX, where, key, err, errlen)) == NULL)
                return VMMS_ERR;
            char *dst = key[1] == 'r' ? h->private_key : key[1] == 'u' ? h->public_key
                                                                       : h->known_hosts;
            rc = readable_file(s, where, key, err, errlen);
            if (rc == VMMS_OK)
                strcpy(dst, s);
        } else if (strcmp(key, "volume_dir") == 0) {
            if ((s = get_string(v, sizeof h->volume_dir - 130, where, key, err, errlen)) == NULL)
                return VMMS_ERR;
            if (!plain_abs_path(s))
                return vmms_fail(err, errlen, VMMS_ERR,
                               PFX "%svolume_dir must be an absolute path of [A-Za-z0-9_./-] "
                               "without '.' or '..' parts or a trailing '/'", where);
            strcpy(h->volume_dir, s);
        } else {
            return vmms_fail(err, errlen, VMMS_ERR,
                           PFX "hosts[%zu]: unknown key \"%s\" (known: address, port, user, "
                           "private_key, public_key, known_hosts, volume_dir, max_jobs, "
                           "max_sessions)", i, key);
        }
        if (rc != VMMS_OK)
            return rc;
    }
    if (!h->address[0])
        return vmms_fail(err, errlen, VMMS_ERR, PFX "%saddress is missing", where);
    if (!h->user[0])
        return vmms_fail(err, errlen, VMMS_ERR, PFX "%suser is missing", where);
    if (!h->private_key[0])
        return vmms_fail(err, errlen, VMMS_ERR, PFX "%sprivate_key is missing", where);
    if (strict && !h->known_hosts[0])
        return vmms_fail(err, errlen, VMMS_ERR,
                       PFX "%sknown_hosts is missing (required while "
                       "strict_host_key_checking is true)", where);
    /* run_job holds a channel for the whole job; keep two for the rest. */
    if (h->max_jobs > h->max_sessions - 2)
        return vmms_fail(err, errlen, VMMS_ERR,
                       PFX "%smax_jobs (%d) must be at most max_sessions - 2 (%d): raise "
                       "max_sessions with the host sshd's MaxSessions", where, h->max_jobs,
                       h->max_sessions - 2);
    return VMMS_OK;
}

void dd_config_free(struct dd_config *cfg)
{
    json_decref(cfg->registries);
    cfg->registries = NULL;
    free(cfg->hosts);
    cfg->hosts = NULL;
    cfg->nhosts = 0;
}

int dd_config_parse(const json_t *cfg, struct dd_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->strict_host_key_checking = true;
    vmms_int_keys_default(top_ints, N(top_ints), out);
    jobnet_config_default(&out->net);
    if ((out->registries = json_object()) == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    if (!json_is_object(cfg))
        return vmms_fail(err, errlen, VMMS_ERR,
                       "distDocker needs a config object with \"hosts\" "
                       "(vmms_config.distDocker)");

    const json_t *hosts = NULL;
    int nk;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cfg, key, v) {
        const struct vmms_int_key *ik = vmms_int_key_find(top_ints, N(top_ints), key);
        if (ik) {
            if (vmms_int_key_set(ik, v, out, "distDocker", "", err, errlen) != VMMS_OK)
                return VMMS_ERR;
        } else if (strcmp(key, "strict_host_key_checking") == 0) {
            if (!json_is_boolean(v))
                return vmms_fail(err, errlen, VMMS_ERR,
                               PFX "strict_host_key_checking must be true or false");
            out->strict_host_key_checking = json_is_true(v);
        } else if (strcmp(key, "hosts") == 0) {
            hosts = v;
        } else if (strcmp(key, "registries") == 0) {
            if (!json_is_object(v))
                return vmms_fail(err, errlen, VMMS_ERR, PFX "\"registries\" must be an object");
            json_decref(out->registries);
            out->registries = json_incref(v);
        } else if ((nk = jobnet_config_key(&out->net, "distDocker", key, v, err,
                                           errlen)) != 0) {
            if (nk < 0)
                return VMMS_ERR;
        } else {
            return vmms_fail(err, errlen, VMMS_ERR,
                           PFX "unknown key \"%s\" (known: hosts, strict_host_key_checking, "
                           "connect_timeout_s, command_timeout_s, down_backoff_s, "
                           "down_backoff_max_s, health_interval_s, run_grace_s, "
                           "default_cores, default_memory_mb, default_pids_limit, default_disk_mb, network, "
                           "network_bridge, host_firewall; registries: the consumer's own key)", key);
        }
    }
    if (jobnet_config_finish(&out->net, "distDocker", err, errlen) != 0)
        return VMMS_ERR;
    if (out->down_backoff_max_s < out->down_backoff_s)
        return vmms_fail(err, errlen, VMMS_ERR,
                       PFX "down_backoff_max_s (%d) must be at least down_backoff_s (%d)",
                       out->down_backoff_max_s, out->down_backoff_s);
    if (!json_is_array(hosts) || json_array_size(hosts) == 0 ||
        json_array_size(hosts) > DD_MAX_HOSTS)
        return vmms_fail(err, errlen, VMMS_ERR,
                       PFX "hosts must be a list of 1..%d host objects", DD_MAX_HOSTS);
    out->nhosts = json_array_size(hosts);
    out->hosts = calloc(out->nhosts, sizeof *out->hosts);
    if (out->hosts == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    for (size_t i = 0; i < out->nhosts; i++) {
        int rc = parse_host(json_array_get(hosts, i), i, &out->hosts[i],
                            out->strict_host_key_checking, err, errlen);
        if (rc != VMMS_OK) {
            dd_config_free(out);
            return rc;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(out->hosts[j].address, out->hosts[i].address) == 0 &&
                out->hosts[j].port == out->hosts[i].port) {
                vmms_fail(err, errlen, VMMS_ERR, PFX "hosts[%zu] repeats hosts[%zu] (%s:%d)", i,
                        j, out->hosts[i].address, out->hosts[i].port);
                dd_config_free(out);
                return VMMS_ERR;
            }
    }
    return VMMS_OK;
}
