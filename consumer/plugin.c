/*
 * plugin.c: loading the configured VMMS back end (a shared object exporting
 * `vmms_plugin`, see vmms/vmms.h) and initialising it with its config.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "consumer.h"
#include "log.h"
#include "names.h"

/* The back ends that pull from registries (localOCI itself, with no
 * daemon; localDocker and distDocker through dockerd) get the service's "registries" in
 * their config too, and localOCI the image limits its unpack applies. */
static bool pulls_itself(const char *name)
{
    return strcmp(name, "localOCI") == 0;
}
static bool pulls(const char *name)
{
    return pulls_itself(name) || strcmp(name, "localDocker") == 0 ||
           strcmp(name, "distDocker") == 0;
}

/* A new reference to plugin name's config object (NULL: none). */
static json_t *plugin_config(const struct tango_config *cfg, const char *name)
{
    json_t *own = json_object_get(cfg->vmms_config, name);
    if (!pulls(name) || json_object_size(cfg->registries) == 0 ||
        (own && !json_is_object(own)))
        return json_incref(own);
    json_t *pc = own ? json_deep_copy(own) : json_object();
    json_object_set(pc, "registries", cfg->registries);
    if (pulls_itself(name)) {
        json_object_set_new(pc, "image_max_unpacked_mb",
                            json_integer(cfg->image_max_unpacked_mb));
        json_object_set_new(pc, "image_max_entries", json_integer(cfg->image_max_entries));
    }
    return pc;
}

int vmms_load(struct consumer *c, char *err, size_t errlen)
{
    const char *name = c->cfg->vmms;
    if (!name_is_safe_str(name)) {
        snprintf(err, errlen, "config key \"vmms\": not a plugin name");
        return -1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.so", c->cfg->vmms_dir, name);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "config key \"vmms\": cannot load %s: %s", path, dlerror());
        return -1;
    }
    const struct vmms_ops *ops = dlsym(h, "vmms_plugin");
    if (!ops || ops->abi != VMMS_ABI_VERSION) {
        snprintf(err, errlen, "config key \"vmms\": %s is not a VMMS plugin of ABI %d", path,
                 VMMS_ABI_VERSION);
        dlclose(h);
        return -1;
    }
    json_t *pcfg = plugin_config(c->cfg, name);
    char perr[256] = "";
    int irc = ops->init(pcfg, c->cfg->instance_prefix, &c->vctx, perr, sizeof perr);
    json_decref(pcfg);
    if (irc != VMMS_OK) {
        snprintf(err, errlen, "config key \"vmms_config.%s\": %s", name, perr);
        dlclose(h);
        return -1;
    }
    c->ops = ops;
    log_info("vmms_loaded", "vmms=%s path=%s", name, path);
    return 0;
}

void vmms_unload(struct consumer *c)
{
    if (c->ops && c->ops->shutdown)
        c->ops->shutdown(c->vctx);
    /* The .so stays mapped until exit: worker threads may still return into it. */
}
