/*
 * strvec.h: a growable vector of strings, each one its own malloc'd copy.
 * strvec.c owns it. The one helper for every "list of names" the code
 * builds as it reads (image names, symlink names, names already seen),
 * instead of a realloc loop in each place.
 *
 * Zero-initialise (or STRVEC_INIT); v[0..n) are the strings, in the order
 * they were added; strvec_free releases everything. Not thread-safe.
 */
#ifndef TANGO_STRVEC_H
#define TANGO_STRVEC_H

#include <stddef.h>
#include <sys/types.h>

struct strvec {
    char **v;
    size_t n, cap;
};
#define STRVEC_INIT {NULL, 0, 0}

/* Appends a copy of s. 0, or -1 out of memory (sv unchanged). */
int strvec_push(struct strvec *sv, const char *s);
/* Appends a copy of s's first len bytes (fewer if s ends first). 0, or -1
 * out of memory (sv unchanged). */
int strvec_pushn(struct strvec *sv, const char *s, size_t len);
/* The index of the first string equal to s's first len bytes (the whole
 * string: same length, same bytes), or -1. */
ssize_t strvec_find(const struct strvec *sv, const char *s, size_t len);
/* Hands the array over: returns it (NULL when empty), *count gets n; the
 * caller frees each string and the array (e.g. vmms_free_names). sv is
 * empty after. */
char **strvec_take(struct strvec *sv, size_t *count);
/* Frees every string and the array; sv is empty (and reusable) after. */
void strvec_free(struct strvec *sv);

#endif
