/*
 * config_env.h: the environment variables of Autolab's Docker deployment
 * (its .env: RESTFUL_KEY, DOCKER_REDIS_HOSTNAME, DOCKER_DEPLOYMENT,
 * DOCKER_VOLUME_PATH, DOCKER_TANGO_HOST_VOLUME_PATH), read as the Python
 * Tango reads them and mapped onto this service's config keys. A key the
 * config file or a TANGO_<KEY> variable sets wins over Autolab's name.
 * config_load calls it; nothing else needs to.
 */
#ifndef TANGO_CONFIG_ENV_H
#define TANGO_CONFIG_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Whether the config file or a TANGO_ variable set the top-level key. */
typedef bool (*config_explicit_fn)(const char *key, void *arg);
/* Sets a top-level key from its text form, validated as a config file's
 * value is (config.c's config_set_text): 0, or -1 with err. */
typedef int (*config_set_fn)(struct tango_config *cfg, const char *key, const char *text,
                             char *err, size_t errlen);

/* Applies Autolab's variables found in envp onto cfg (after the file and
 * the TANGO_ variables were loaded; is_explicit tells which keys they set,
 * nested vmms_config keys are looked up in cfg->vmms_config itself); set
 * sets a top-level key (nested ones are set in cfg->vmms_config itself).
 * Records in cfg->autolab_env_used / autolab_env_ignored the names used and
 * the names the config overrode (space-separated "VAR=key" words; never a
 * value). Returns 0, or -1 with err naming the variable on a bad value. */
int config_env_autolab(struct tango_config *cfg, char *const *envp,
                       config_explicit_fn is_explicit, void *arg, config_set_fn set,
                       char *err, size_t errlen);

#endif
