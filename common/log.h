/*
 * log.h: the service's one logger. One line per event on stderr:
 *   ts=2026-11-21T21:19:04.123Z level=info comp=producer event=job_added id=5 ...
 * Callers pass the event name and the rest as "key=value" text; values with
 * spaces are quoted by the caller with log_quote(). Never pass a client key.
 */
#ifndef TANGO_LOG_H
#define TANGO_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set once at startup: component name ("producer", "consumer") and the least
 * level that is printed. Thread-safe afterwards. */
void log_init(const char *component, enum log_level min_level);
/* Parses "debug", "info", "warn", "error"; returns -1 if none of those. */
int log_level_parse(const char *name);

void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes s into buf as a log-safe value: quoted if it holds spaces or '=',
 * with control characters and quotes escaped, cut at bufsz. Returns buf. */
const char *log_quote(const char *s, char *buf, size_t bufsz);

#define log_debug(ev, ...) log_event(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...)  log_event(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...)  log_event(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_event(LOG_ERROR, ev, __VA_ARGS__)

#endif
