/*
 * config.c: the localOCI plugin's config object ("vmms_config.localOCI").
 * Owns the list of keys, their defaults, types and ranges. Every key is
 * optional; an unknown key or a bad value is an error that names the key.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <string.h>

#include "common/cfg.h"
#include "jobnet.h"
#include "lo.h"
#include "names.h"

static const struct vmms_int_key int_keys[] = {
    {"default_cores", offsetof(struct lo_config, defaults.cores), 1, 1, 1024},
    {"default_memory_mb", offsetof(struct lo_config, defaults.memory_mb), 512, 6, 1024 * 1024},
    {"default_pids_limit", offsetof(struct lo_config, defaults.pids), 512, 1, 4194304},
    {"default_disk_mb", offsetof(struct lo_config, defaults.disk_mb), 1024, 16, 1024 * 1024},
    {"cmd_timeout_s", offsetof(struct lo_config, cmd_timeout_s), 30, 1, 3600},
};
#define N_INT_KEYS (sizeof int_keys / sizeof int_keys[0])

#define KNOWN "runtime, store_dir, run_dir, docker_socket, import_images, oci_images, "     \
              "default_cores, "                                                            \
              "default_memory_mb, default_pids_limit, default_disk_mb, cmd_timeout_s, "   \
              "network_bridge, network_subnet, network_uplinks, host_firewall; registries, "   \
              "image_max_unpacked_mb, image_max_entries (the consumer's own keys)"

/* "network_uplinks": 1..JOBNET_UPLINKS_MAX interface names jobs leave by. */
static int set_uplinks(const json_t *v, struct lo_config *out, char *err, size_t errlen)
{
    size_t i, n = json_array_size(v);
    json_t *e;
    if (!json_is_array(v) || n == 0 || n > JOBNET_UPLINKS_MAX)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"network_uplinks\" must be "
                         "a list of 1..%d interface names", JOBNET_UPLINKS_MAX);
    json_array_foreach(v, i, e) {
        const char *s = json_string_value(e);
        if (!s || strlen(s) != json_string_length(e) || !jobnet_ifname_ok(s))
            return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"network_uplinks\" "
                             "entry %zu is not an interface name (1..15 letters, digits, '_', "
                             "'.', '-')", i);
        strcpy(out->uplinks[i], s);
    }
    out->nuplinks = n;
    return VMMS_OK;
}

/* The keys the consumer copies from its own config (consumer/plugin.c):
 * "registries" (checked there already) and the image limits. */
static int set_pull_key(const char *key, const json_t *v, struct lo_config *out, char *err,
                        size_t errlen)
{
    if (strcmp(key, "registries") == 0) {
        if (!json_is_object(v))
            return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"registries\" must be "
                             "an object");
        json_decref(out->registries);
        out->registries = json_incref((json_t *)v);
        return VMMS_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > 1000000000)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"%s\" must be an integer "
                         "1..1000000000", key);
    if (strcmp(key, "image_max_entries") == 0)
        out->pull_max_entries = json_integer_value(v);
    else
        out->pull_max_bytes = (long long)json_integer_value(v) << 20;
    return VMMS_OK;
}

static int set_path(const json_t *v, const char *key, char *dst, size_t dstsz, bool may_be_empty,
                    char *err, size_t errlen)
{
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    if (s == NULL || n >= dstsz || strlen(s) != n || (n == 0 && !may_be_empty) ||
        (n > 0 && s[0] != '/') || strstr(s, "/../") || strchr(s, '\n'))
        return vmms_fail(err, errlen, VMMS_ERR,
                         "localOCI config: \"%s\" must be an absolute path shorter than %zu "
                         "bytes%s", key, dstsz, may_be_empty ? " (or \"\")" : "");
    memcpy(dst, s, n + 1);
    return VMMS_OK;
}

void lo_config_free(struct lo_config *c)
{
    json_decref(c->import_images);
    json_decref(c->oci_images);
    json_decref(c->registries);
    c->import_images = NULL;
    c->oci_images = NULL;
    c->registries = NULL;
}

int lo_config_parse(const json_t *cfg, struct lo_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    strcpy(out->runtime_name, "auto");
    strcpy(out->store_dir, "/var/lib/tango/oci");
    strcpy(out->run_dir, "/run/tango-oci");
    strcpy(out->docker_socket, "/var/run/docker.sock");
    out->import_images = json_pack("[s]", "autograding_image");
    out->oci_images = json_object();
    out->registries = json_object();
    out->pull_max_bytes = 16384LL << 20;
    out->pull_max_entries = 1000000;
    strcpy(out->bridge, "tango-oci0");
    out->subnet = (10u << 24) | (231u << 16);
    out->host_firewall = true;
    vmms_int_keys_default(int_keys, N_INT_KEYS, out);
    if (cfg == NULL || json_is_null(cfg))
        return VMMS_OK;
    if (!json_is_object(cfg))
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI config must be a JSON object");

    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cfg, key, v) {
        int rc = VMMS_OK;
        if (strcmp(key, "runtime") == 0) {
            const char *s = json_string_value(v);
            if (!s || (strcmp(s, "auto") && strcmp(s, "runc") && strcmp(s, "crun")))
                return vmms_fail(err, errlen, VMMS_ERR,
                                 "localOCI config: \"runtime\" must be \"auto\", \"runc\" or "
                                 "\"crun\"");
            strcpy(out->runtime_name, s);
        } else if (strcmp(key, "store_dir") == 0) {
            rc = set_path(v, key, out->store_dir, sizeof out->store_dir, false, err, errlen);
        } else if (strcmp(key, "run_dir") == 0) {
            /* bundles and runtime state; sun_path-bound, so kept short */
            rc = set_path(v, key, out->run_dir, 64, false, err, errlen);
        } else if (strcmp(key, "docker_socket") == 0) {
            rc = set_path(v, key, out->docker_socket, sizeof out->docker_socket, true, err,
                          errlen);
        } else if (strcmp(key, "import_images") == 0) {
            size_t i;
            json_t *n;
            if (!json_is_array(v) || json_array_size(v) > 64)
                return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"import_images\" "
                                 "must be a list of at most 64 image names");
            json_array_foreach(v, i, n)
                if (!json_is_string(n) || !image_name_is_valid(json_string_value(n)))
                    return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: "
                                     "\"import_images\" entry %zu is not an image name", i);
            json_decref(out->import_images);
            out->import_images = json_incref(v);
        } else if (strcmp(key, "oci_images") == 0) {
            const char *n;
            json_t *d;
            if (!json_is_object(v) || json_object_size(v) > 64)
                return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"oci_images\" must "
                                 "be an object {image name: OCI image layout directory}");
            json_object_foreach(v, n, d) {
                const char *s = json_string_value(d);
                if (!image_name_is_valid(n) || !s || s[0] != '/' || strlen(s) >= PATH_MAX)
                    return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"oci_images\" "
                                     "entry \"%.100s\": an image name and an absolute directory",
                                     n);
            }
            json_decref(out->oci_images);
            out->oci_images = json_incref(v);
        } else if (strcmp(key, "network_bridge") == 0) {
            const char *s = json_string_value(v);
            if (!s || !jobnet_ifname_ok(s))
                return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"network_bridge\" "
                                 "must be an interface name: 1..15 letters, digits, '_', '.', '-'");
            strcpy(out->bridge, s);
        } else if (strcmp(key, "network_subnet") == 0) {
            const char *s = json_string_value(v);
            char ip[32];
            struct in_addr a;
            size_t n = s ? strlen(s) : 0;
            if (n < 4 || n >= sizeof ip || strcmp(s + n - 3, "/16") != 0 ||
                (memcpy(ip, s, n - 3), ip[n - 3] = '\0', inet_pton(AF_INET, ip, &a) != 1) ||
                (ntohl(a.s_addr) & 0xffffu) != 0)
                return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"network_subnet\" "
                                 "must be an IPv4 /16 such as \"10.231.0.0/16\"");
            out->subnet = ntohl(a.s_addr);
        } else if (strcmp(key, "registries") == 0 || strcmp(key, "image_max_unpacked_mb") == 0 ||
                   strcmp(key, "image_max_entries") == 0) {
            rc = set_pull_key(key, v, out, err, errlen);
        } else if (strcmp(key, "network_uplinks") == 0) {
            rc = set_uplinks(v, out, err, errlen);
        } else if (strcmp(key, "host_firewall") == 0) {
            if (!json_is_boolean(v))
                return vmms_fail(err, errlen, VMMS_ERR,
                                 "localOCI config: \"host_firewall\" must be true or false");
            out->host_firewall = json_is_true(v);
        } else {
            const struct vmms_int_key *k = vmms_int_key_find(int_keys, N_INT_KEYS, key);
            if (k == NULL)
                return vmms_fail(err, errlen, VMMS_ERR,
                                 "localOCI config: unknown key \"%s\" (known: " KNOWN ")", key);
            rc = vmms_int_key_set(k, v, out, "localOCI", "", err, errlen);
        }
        if (rc != VMMS_OK)
            return rc;
    }
    return VMMS_OK;
}
