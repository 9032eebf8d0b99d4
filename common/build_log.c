/*
 * build_log.c: the Docker build answer reader (build_log.h): splits the
 * chunks into lines, reads each line's JSON and keeps its printable text
 * within the limits.
 */
#include "build_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char CUT_NOTE[] = "\n[log cut: past build_log_max_kb, or a line past 64 KiB]\n";

int build_log_init(struct build_log *bl, size_t max)
{
    memset(bl, 0, sizeof *bl);
    bl->max = max;
    bl->text = calloc(1, max + sizeof CUT_NOTE);
    bl->line = malloc(BUILD_LOG_LINE_MAX);
    if (!bl->text || !bl->line) {
        build_log_free(bl);
        return -1;
    }
    return 0;
}

/* Appends s (n bytes) to the log: control bytes other than newline and tab
 * become '?', and what passes the limit is dropped (noted). */
static void keep(struct build_log *bl, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (bl->len >= bl->max) {
            bl->cut = true;
            return;
        }
        unsigned char ch = (unsigned char)s[i];
        bl->text[bl->len++] = (ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f ? '?' : (char)ch;
    }
    bl->text[bl->len] = '\0';
}

/* Notes Docker's error message (printable, cut to fit) and logs it. */
static void take_error(struct build_log *bl, const char *msg)
{
    bl->failed = true;
    size_t i = 0;
    for (; msg[i] && i + 1 < sizeof bl->error; i++)
        bl->error[i] = (unsigned char)msg[i] < 0x20 || msg[i] == 0x7f ? ' ' : msg[i];
    bl->error[i] = '\0';
    keep(bl, "ERROR: ", 7);
    keep(bl, bl->error, strlen(bl->error));
    keep(bl, "\n", 1);
}

/* Reads one whole line of the answer. */
static void take_line(struct build_log *bl, const char *line, size_t len)
{
    if (len == 0)
        return;
    json_t *o = json_loadb(line, len, 0, NULL);
    if (!json_is_object(o)) {
        keep(bl, line, len); /* not JSON: kept as text */
        keep(bl, "\n", 1);
        json_decref(o);
        return;
    }
    json_t *stream = json_object_get(o, "stream"), *error = json_object_get(o, "error");
    if (json_is_string(stream))
        keep(bl, json_string_value(stream), json_string_length(stream));
    if (error)
        take_error(bl, json_is_string(error) ? json_string_value(error) : "the build failed");
    if (json_is_string(json_object_get(json_object_get(o, "aux"), "ID")))
        bl->got_id = true;
    json_decref(o);
}

void build_log_feed(struct build_log *bl, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            if (!bl->line_over)
                take_line(bl, bl->line, bl->linelen);
            bl->linelen = 0;
            bl->line_over = false;
        } else if (bl->linelen < BUILD_LOG_LINE_MAX) {
            bl->line[bl->linelen++] = data[i];
        } else {
            bl->line_over = true;
            bl->cut = true;
        }
    }
}

void build_log_end(struct build_log *bl)
{
    if (!bl->line_over)
        take_line(bl, bl->line, bl->linelen);
    bl->linelen = 0;
    if (bl->cut) { /* the note has its own room past max */
        memcpy(bl->text + bl->len, CUT_NOTE, sizeof CUT_NOTE);
        bl->len += sizeof CUT_NOTE - 1;
        bl->cut = false;
        bl->max = bl->len; /* nothing more */
    }
}

void build_log_free(struct build_log *bl)
{
    free(bl->text);
    free(bl->line);
    bl->text = bl->line = NULL;
}
