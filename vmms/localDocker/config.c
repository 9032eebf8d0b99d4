/*
 * config.c: the localDocker plugin's config object ("vmms_config.localDocker").
 * Owns the list of keys, their defaults, types and ranges. Every key is
 * optional; an unknown key or a bad value is an error that names the key.
 * "registries" is the service's own key, copied in by the consumer
 * (consumer/plugin.c) and checked there; the caller frees it (ld_shutdown).
 */
#include <string.h>

#include "common/cfg.h"
#include "ld.h"

static const struct vmms_int_key int_keys[] = {
    {"default_cores", offsetof(struct ld_config, defaults.cores), 1, 1, 1024},
    {"default_memory_mb", offsetof(struct ld_config, defaults.memory_mb), 512, 6, 1024 * 1024},
    {"default_pids_limit", offsetof(struct ld_config, defaults.pids), 512, 1, 4194304},
    {"default_disk_mb", offsetof(struct ld_config, defaults.disk_mb), 1024, 16, 1024 * 1024},
    {"run_grace_s", offsetof(struct ld_config, run_grace_s), 10, 0, 3600},
    {"api_timeout_s", offsetof(struct ld_config, api_timeout_s), 30, 1, 3600},
};
#define N_INT_KEYS (sizeof int_keys / sizeof int_keys[0])

static int set_string(const json_t *v, const char *key, char *dst, size_t dstsz,
                      bool absolute, char *err, size_t errlen)
{
    if (!json_is_string(v))
        return vmms_fail(err, errlen, VMMS_ERR,
                       "localDocker config: \"%s\" must be a string", key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n >= dstsz || strlen(s) != n)
        return vmms_fail(err, errlen, VMMS_ERR,
                       "localDocker config: \"%s\" must be a non-empty path "
                       "shorter than %zu bytes", key, dstsz);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return vmms_fail(err, errlen, VMMS_ERR,
                           "localDocker config: \"%s\" has a control character", key);
    if (absolute && s[0] != '/')
        return vmms_fail(err, errlen, VMMS_ERR,
                       "localDocker config: \"%s\" must be an absolute path", key);
    memcpy(dst, s, n + 1);
    return VMMS_OK;
}

int ld_config_parse(const json_t *cfg, struct ld_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    strcpy(out->socket, "/var/run/docker.sock");
    strcpy(out->volume_dir, "/var/lib/tango/volumes");
    vmms_int_keys_default(int_keys, N_INT_KEYS, out);
    jobnet_config_default(&out->net);
    out->registries = json_object();
    if (out->registries == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");

    if (cfg == NULL || json_is_null(cfg))
        return jobnet_config_finish(&out->net, "localDocker", err, errlen) == 0 ? VMMS_OK
                                                                               : VMMS_ERR;
    if (!json_is_object(cfg))
        return vmms_fail(err, errlen, VMMS_ERR, "localDocker config must be a JSON object");

    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cfg, key, v) {
        int rc = VMMS_OK;
        if (strcmp(key, "socket") == 0) {
            rc = set_string(v, key, out->socket, sizeof out->socket, true, err, errlen);
        } else if (strcmp(key, "volume_dir") == 0) {
            rc = set_string(v, key, out->volume_dir, sizeof out->volume_dir, true,
                            err, errlen);
        } else if (strcmp(key, "host_volume_dir") == 0) {
            rc = set_string(v, key, out->host_volume_dir, sizeof out->host_volume_dir, true,
                            err, errlen);
        } else if (strcmp(key, "registries") == 0) {
            if (!json_is_object(v))
                return vmms_fail(err, errlen, VMMS_ERR, "localDocker config: \"registries\" "
                                 "must be an object");
            json_decref(out->registries);
            out->registries = json_incref(v);
        } else if ((rc = jobnet_config_key(&out->net, "localDocker", key, v, err,
                                           errlen)) != 0) {
            rc = rc > 0 ? VMMS_OK : VMMS_ERR;
        } else {
            const struct vmms_int_key *k = vmms_int_key_find(int_keys, N_INT_KEYS, key);
            if (k == NULL)
                return vmms_fail(err, errlen, VMMS_ERR,
                               "localDocker config: unknown key \"%s\" (known: socket, "
                               "volume_dir, host_volume_dir, default_cores, default_memory_mb, "
                               "default_pids_limit, default_disk_mb, run_grace_s, api_timeout_s, "
                               "network, network_bridge, host_firewall; registries: the consumer's own key)", key);
            rc = vmms_int_key_set(k, v, out, "localDocker", "", err, errlen);
        }
        if (rc != VMMS_OK)
            return rc;
    }
    return jobnet_config_finish(&out->net, "localDocker", err, errlen) == 0 ? VMMS_OK : VMMS_ERR;
}
