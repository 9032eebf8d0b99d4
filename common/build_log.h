/*
 * build_log.h: reads the answer of the Docker Engine's POST /build (one
 * JSON object a line: {"stream": text}, {"error": text, "errorDetail": ..},
 * {"aux": {"ID": ..}}), arriving in chunks cut anywhere, into a bounded,
 * printable log and the build's verdict. The answer is outside input (a
 * Dockerfile's RUN steps write what they like into it): lines past
 * BUILD_LOG_LINE_MAX and log text past the caller's limit are dropped,
 * with a note that they were.
 */
#ifndef TANGO_BUILD_LOG_H
#define TANGO_BUILD_LOG_H

#include <stdbool.h>
#include <stddef.h>

#define BUILD_LOG_LINE_MAX (64 * 1024)

struct build_log {
    char *text;          /* the log kept so far, NUL-ended */
    size_t len, max;     /* its length and its limit */
    bool cut;            /* text was dropped (log limit or an overlong line) */
    char *line;          /* the line being assembled (BUILD_LOG_LINE_MAX) */
    size_t linelen;
    bool line_over;      /* the current line is past BUILD_LOG_LINE_MAX: skip to its end */
    bool failed;         /* Docker reported an error */
    char error[512];     /* its message (printable) */
    bool got_id;         /* Docker reported the built image's id */
};

/* Readies bl to keep at most max bytes of log. 0, or -1 out of memory. */
int build_log_init(struct build_log *bl, size_t max);
/* Takes the next len bytes of the answer. */
void build_log_feed(struct build_log *bl, const char *data, size_t len);
/* The answer ended: reads a last line without its newline and notes a cut
 * log at the end of text. */
void build_log_end(struct build_log *bl);
/* Frees what bl holds. */
void build_log_free(struct build_log *bl);

#endif
