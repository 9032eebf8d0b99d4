/*
 * nameset.h: the set of VM names get_vms has already reported, so a back end
 * whose sources overlap (localOCI's bundle, runtime, netns and cgroup
 * directories; distDocker's hosts sharing one engine) reports each VM once.
 * nameset.c owns it. Not thread-safe: one get_vms call's own.
 */
#ifndef TANGO_VMMS_NAMESET_H
#define TANGO_VMMS_NAMESET_H

#include <stdbool.h>
#include <stddef.h>

#include "strvec.h"

#pragma GCC visibility push(hidden)

#define VMMS_NAMESET_KEEP 127    /* bytes of a name that are kept and compared */

struct vmms_nameset {            /* zero-initialise; vmms_nameset_free after */
    struct strvec names;
};

/* True when name (at most 127 bytes are kept) is new to s, which now holds
 * it; false when s had it. Out of memory it is taken as new (a name may
 * then be reported twice, never lost). */
bool vmms_nameset_add(struct vmms_nameset *s, const char *name);
void vmms_nameset_free(struct vmms_nameset *s);

#pragma GCC visibility pop

#endif
