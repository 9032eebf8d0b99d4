/* errors.h: the error value that autodriver functions fill in instead of
 * exiting (docs/design.md: errors are values; only main() exits). */
#ifndef AD_ERRORS_H
#define AD_ERRORS_H

#include <stddef.h>

typedef struct {
    char msg[1024];
} ad_err;

/* Sets e->msg from the format and returns -1 (so callers can `return ad_fail(...)`). */
int ad_fail(ad_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like ad_fail, then appends ": <strerror(errnum)>". */
int ad_fail_errno(ad_err *e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "Autodriver: <message>\n" to standard error in one write. */
void ad_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
