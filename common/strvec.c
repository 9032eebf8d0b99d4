/*
 * strvec.c: the growable string vector (strvec.h).
 */
#include "strvec.h"

#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 8

/* Makes room for one more string. 0, or -1 out of memory. */
static int grow(struct strvec *sv)
{
    if (sv->n < sv->cap)
        return 0;
    size_t nc = sv->cap ? sv->cap * 2 : FIRST_CAP;
    if (nc < sv->cap || nc > (size_t)-1 / sizeof *sv->v)
        return -1;
    char **nv = realloc(sv->v, nc * sizeof *nv);
    if (nv == NULL)
        return -1;
    sv->v = nv;
    sv->cap = nc;
    return 0;
}

int strvec_pushn(struct strvec *sv, const char *s, size_t len)
{
    if (grow(sv) != 0)
        return -1;
    char *copy = strndup(s, len);
    if (copy == NULL)
        return -1;
    sv->v[sv->n++] = copy;
    return 0;
}

int strvec_push(struct strvec *sv, const char *s)
{
    return strvec_pushn(sv, s, strlen(s));
}

ssize_t strvec_find(const struct strvec *sv, const char *s, size_t len)
{
    for (size_t i = 0; i < sv->n; i++)
        if (strncmp(sv->v[i], s, len) == 0 && sv->v[i][strnlen(s, len)] == '\0')
            return (ssize_t)i;
    return -1;
}

char **strvec_take(struct strvec *sv, size_t *count)
{
    char **v = sv->v;
    *count = sv->n;
    if (sv->n == 0) {
        free(v);
        v = NULL;
    }
    sv->v = NULL;
    sv->n = sv->cap = 0;
    return v;
}

void strvec_free(struct strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}
