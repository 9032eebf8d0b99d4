/*
 * cfg.c: a plugin config's integer keys (cfg.h).
 */
#include <string.h>

#include "common/cfg.h"
#include "common/grading.h"

void vmms_int_keys_default(const struct vmms_int_key *keys, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++)
        *(int *)((char *)base + keys[i].off) = keys[i].def;
}

const struct vmms_int_key *vmms_int_key_find(const struct vmms_int_key *keys, size_t n,
                                             const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

int vmms_int_key_set(const struct vmms_int_key *k, const json_t *v, void *base,
                     const char *plugin, const char *where, char *err, size_t errlen)
{
    if (!json_is_integer(v) || json_integer_value(v) < k->min ||
        json_integer_value(v) > k->max)
        return vmms_fail(err, errlen, VMMS_ERR, "%s config: \"%s%s\" must be an integer %d..%d",
                         plugin, where, k->name, k->min, k->max);
    *(int *)((char *)base + k->off) = (int)json_integer_value(v);
    return VMMS_OK;
}
