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

/* Copies v into dst (dstsz bytes) when it is an absolute path (or "" when
 * may_be_empty) without "/../" or a newline; else a VMMS error naming key. */
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

/* One key's setter: checks v and stores it in out. VMMS_OK, or a VMMS error
 * naming the key in err. */
typedef int (*key_setter)(const char *key, const json_t *v, struct lo_config *out, char *err,
                          size_t errlen);

/* "runtime": "auto", "runc" or "crun". */
static int set_runtime(const char *key, const json_t *v, struct lo_config *out, char *err,
                       size_t errlen)
{
    (void)key;
    const char *s = json_string_value(v);
    if (!s || (strcmp(s, "auto") && strcmp(s, "runc") && strcmp(s, "crun")))
        return vmms_fail(err, errlen, VMMS_ERR,
                         "localOCI config: \"runtime\" must be \"auto\", \"runc\" or "
                         "\"crun\"");
    strcpy(out->runtime_name, s);
    return VMMS_OK;
}

/* "store_dir": an absolute path. */
static int set_store_dir(const char *key, const json_t *v, struct lo_config *out, char *err,
                         size_t errlen)
{
    return set_path(v, key, out->store_dir, sizeof out->store_dir, false, err, errlen);
}

/* "run_dir": bundles and runtime state; sun_path-bound, so kept short. */
static int set_run_dir(const char *key, const json_t *v, struct lo_config *out, char *err,
                       size_t errlen)
{
    return set_path(v, key, out->run_dir, 64, false, err, errlen);
}

/* "docker_socket": an absolute path, or "" for none. */
static int set_docker_socket(const char *key, const json_t *v, struct lo_config *out,
                             char *err, size_t errlen)
{
    return set_path(v, key, out->docker_socket, sizeof out->docker_socket, true, err, errlen);
}

/* "import_images": at most 64 valid image names. */
static int set_import_images(const char *key, const json_t *v, struct lo_config *out,
                             char *err, size_t errlen)
{
    (void)key;
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
    out->import_images = json_incref((json_t *)v);
    return VMMS_OK;
}

/* "oci_images": at most 64 {image name: absolute OCI layout directory}. */
static int set_oci_images(const char *key, const json_t *v, struct lo_config *out, char *err,
                          size_t errlen)
{
    (void)key;
    const char *n;
    json_t *d;
    if (!json_is_object(v) || json_object_size(v) > 64)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"oci_images\" must "
                         "be an object {image name: OCI image layout directory}");
    json_object_foreach((json_t *)v, n, d) {
        const char *s = json_string_value(d);
        if (!image_name_is_valid(n) || !s || s[0] != '/' || strlen(s) >= PATH_MAX)
            return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"oci_images\" "
                             "entry \"%.100s\": an image name and an absolute directory",
                             n);
    }
    json_decref(out->oci_images);
    out->oci_images = json_incref((json_t *)v);
    return VMMS_OK;
}

/* "network_bridge": an interface name. */
static int set_bridge(const char *key, const json_t *v, struct lo_config *out, char *err,
                      size_t errlen)
{
    (void)key;
    const char *s = json_string_value(v);
    if (!s || !jobnet_ifname_ok(s))
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI config: \"network_bridge\" "
                         "must be an interface name: 1..15 letters, digits, '_', '.', '-'");
    strcpy(out->bridge, s);
    return VMMS_OK;
}

/* "network_subnet": an IPv4 a.b.0.0/16. */
static int set_subnet(const char *key, const json_t *v, struct lo_config *out, char *err,
                      size_t errlen)
{
    (void)key;
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
    return VMMS_OK;
}

/* "network_uplinks" through set_uplinks. */
static int set_uplinks_key(const char *key, const json_t *v, struct lo_config *out, char *err,
                           size_t errlen)
{
    (void)key;
    return set_uplinks(v, out, err, errlen);
}

/* "host_firewall": true or false. */
static int set_host_firewall(const char *key, const json_t *v, struct lo_config *out,
                             char *err, size_t errlen)
{
    (void)key;
    if (!json_is_boolean(v))
        return vmms_fail(err, errlen, VMMS_ERR,
                         "localOCI config: \"host_firewall\" must be true or false");
    out->host_firewall = json_is_true(v);
    return VMMS_OK;
}

/* The keys that are not plain integers (int_keys), with their setters. */
static const struct {
    const char *name;
    key_setter set;
} keys[] = {
    {"runtime", set_runtime},
    {"store_dir", set_store_dir},
    {"run_dir", set_run_dir},
    {"docker_socket", set_docker_socket},
    {"import_images", set_import_images},
    {"oci_images", set_oci_images},
    {"network_bridge", set_bridge},
    {"network_subnet", set_subnet},
    {"registries", set_pull_key},
    {"image_max_unpacked_mb", set_pull_key},
    {"image_max_entries", set_pull_key},
    {"network_uplinks", set_uplinks_key},
    {"host_firewall", set_host_firewall},
};

void lo_config_free(struct lo_config *c)
{
    json_decref(c->import_images);
    json_decref(c->oci_images);
    json_decref(c->registries);
    c->import_images = NULL;
    c->oci_images = NULL;
    c->registries = NULL;
}

/* Fills out with every key's default (out is zeroed first). */
static void set_defaults(struct lo_config *out)
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
}

/* Sets one key: a row of keys, else of int_keys, else unknown (an error
 * listing the known keys). */
static int set_one(const char *key, const json_t *v, struct lo_config *out, char *err,
                   size_t errlen)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i].name) == 0)
            return keys[i].set(key, v, out, err, errlen);
    const struct vmms_int_key *k = vmms_int_key_find(int_keys, N_INT_KEYS, key);
    if (k == NULL)
        return vmms_fail(err, errlen, VMMS_ERR,
                         "localOCI config: unknown key \"%s\" (known: " KNOWN ")", key);
    return vmms_int_key_set(k, v, out, "localOCI", "", err, errlen);
}

int lo_config_parse(const json_t *cfg, struct lo_config *out, char *err, size_t errlen)
{
    set_defaults(out);
    if (cfg == NULL || json_is_null(cfg))
        return VMMS_OK;
    if (!json_is_object(cfg))
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI config must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cfg, key, v) {
        int rc = set_one(key, v, out, err, errlen);
        if (rc != VMMS_OK)
            return rc;
    }
    return VMMS_OK;
}
