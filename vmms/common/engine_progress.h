/*
 * engine_progress.h: the progress stream dockerd answers a pull or a push
 * with (one JSON object a line, HTTP 200 even when the transfer fails),
 * read as it arrives: only the current line is kept, the first
 * {"error": ...} and the last {"aux": {"Digest": ...}} (a push's digest).
 * engine_progress.c owns it; localDocker's pulls and the builder's pushes
 * share it.
 */
#ifndef TANGO_VMMS_ENGINE_PROGRESS_H
#define TANGO_VMMS_ENGINE_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>

#pragma GCC visibility push(hidden)

#define VMMS_PROGRESS_LINE_MAX 8192 /* a longer progress line is skipped */

struct vmms_progress {
    char line[VMMS_PROGRESS_LINE_MAX];
    size_t len;
    bool overlong;           /* the current line did not fit: skipped */
    char error[512];         /* "" until an error line came */
    char digest[72];         /* "sha256:<hex>" of an aux line, or "" */
};

/* A vmms_engine_sink_fn: feeds data (len bytes) to the vmms_progress
 * arg; returns len. */
size_t vmms_progress_sink(const char *data, size_t len, void *arg);

/* Reads a last line that had no newline (call once the stream ended). */
void vmms_progress_end(struct vmms_progress *pr);

#pragma GCC visibility pop

#endif
