/*
 * log.c: key=value event lines on stderr (see log.h). One write(2) per line
 * so lines from several threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_component = "tango";
static enum log_level log_min = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *component, enum log_level min_level)
{
    log_component = component;
    log_min = min_level;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
    if (level < log_min)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s comp=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
                     level_names[level], log_component, event);
    if (n < 0 || (size_t)n >= sizeof line - 2)
        n = (int)sizeof line - 2;
    if (fmt && *fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += (size_t)m < sizeof line - (size_t)n - 1 ? m : (int)(sizeof line - (size_t)n - 2);
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

const char *log_quote(const char *s, char *buf, size_t bufsz)
{
    if (bufsz == 0)
        return buf;
    size_t o = 0;
    int need = (*s == '\0');
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '=' || *p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ||
            *p == 0x7f)
            need = 1; /* escapes only mean something inside quotes */
    int quoted = need && bufsz >= 3; /* both quotes or none */
    if (quoted)
        buf[o++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 5 < bufsz; p++) {
        if (*p == '"' || *p == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", *p);
        } else {
            buf[o++] = (char)*p;
        }
    }
    if (quoted && o + 1 < bufsz)
        buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
