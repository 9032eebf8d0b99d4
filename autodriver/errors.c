/* errors.c: builds error messages (ad_err) and reports them on stderr with
 * the "Autodriver: " prefix. Writes through fdio.h only (not output.h,
 * which itself reports through ad_err). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "autodriver.h"
#include "errors.h"
#include "fdio.h"

int ad_fail(ad_err *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int ad_fail_errno(ad_err *e, int errnum, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof e->msg)
            snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(errnum));
    }
    return -1;
}

void ad_report(const char *fmt, ...)
{
    char line[1200];
    int n = snprintf(line, sizeof line, "%s", AD_PREFIX);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    int saved = errno;
    (void)ad_write_all(STDERR_FILENO, line, len);
    errno = saved;
}
