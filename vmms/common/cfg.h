/*
 * cfg.h: the integer keys of a plugin's config object ("vmms_config.X"),
 * for every back end that has them (localDocker, localOCI, distDocker and
 * its hosts): a table of name, place in the plugin's config struct,
 * default and range, so each plugin lists its keys once and none repeats
 * the loops that fill, find and check them. cfg.c owns it.
 */
#ifndef TANGO_VMMS_CFG_H
#define TANGO_VMMS_CFG_H

#include <stddef.h>

#include <jansson.h>

#pragma GCC visibility push(hidden)

struct vmms_int_key {
    const char *name;
    size_t off;          /* of the int in the plugin's config struct */
    int def, min, max;
};

/* Writes every key's default into base (the config struct). */
void vmms_int_keys_default(const struct vmms_int_key *keys, size_t n, void *base);

/* The key called name among keys[0..n-1], or NULL. */
const struct vmms_int_key *vmms_int_key_find(const struct vmms_int_key *keys, size_t n,
                                             const char *name);

/* Stores v into base when it is a JSON integer in k's range: VMMS_OK. Else
 * VMMS_ERR with `<plugin> config: "<where><name>" must be an integer
 * min..max` in err (where: "" at top level, "hosts[2]." inside a list). */
int vmms_int_key_set(const struct vmms_int_key *k, const json_t *v, void *base,
                     const char *plugin, const char *where, char *err, size_t errlen);

#pragma GCC visibility pop

#endif
