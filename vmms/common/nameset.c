/*
 * nameset.c: get_vms's set of names already reported (nameset.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nameset.h"

bool vmms_nameset_add(struct vmms_nameset *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(s->names[i], name, sizeof s->names[0] - 1) == 0)
            return false;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        void *p = realloc(s->names, nc * sizeof *s->names);
        if (p == NULL)
            return true;
        s->names = p;
        s->cap = nc;
    }
    snprintf(s->names[s->n++], sizeof s->names[0], "%s", name);
    return true;
}

void vmms_nameset_free(struct vmms_nameset *s)
{
    free(s->names);
    s->names = NULL;
    s->n = s->cap = 0;
}
