/*
 * nameset.c: get_vms's set of names already reported (nameset.h).
 */
#include <string.h>

#include "common/nameset.h"

bool vmms_nameset_add(struct vmms_nameset *s, const char *name)
{
    size_t len = strnlen(name, VMMS_NAMESET_KEEP);
    if (strvec_find(&s->names, name, len) >= 0)
        return false;
    (void)strvec_pushn(&s->names, name, len); /* out of memory: still new */
    return true;
}

void vmms_nameset_free(struct vmms_nameset *s)
{
    strvec_free(&s->names);
}
