/*
 * engine_progress.c: dockerd's pull and push progress streams
 * (engine_progress.h).
 */
#include "engine_progress.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

/* Whether s is "sha256:" and 64 lower-case hex digits. */
static bool digest_ok(const char *s)
{
    return s && strncmp(s, "sha256:", 7) == 0 && strlen(s + 7) == 64 &&
           strspn(s + 7, "0123456789abcdef") == 64;
}

/* One complete line of the stream. */
static void progress_line(struct vmms_progress *pr)
{
    json_t *msg = pr->overlong ? NULL : json_loadb(pr->line, pr->len, 0, NULL);
    const char *e = json_string_value(json_object_get(msg, "error"));
    if (e && pr->error[0] == '\0') {
        snprintf(pr->error, sizeof pr->error, "%s", e);
        for (char *c = pr->error; *c; c++) /* the daemon's or a registry's words */
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = ' ';
    }
    const char *d = json_string_value(json_object_get(json_object_get(msg, "aux"), "Digest"));
    if (digest_ok(d))
        snprintf(pr->digest, sizeof pr->digest, "%s", d);
    json_decref(msg);
    pr->len = 0;
    pr->overlong = false;
}

size_t vmms_progress_sink(const char *data, size_t len, void *arg)
{
    struct vmms_progress *pr = arg;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n')
            progress_line(pr);
        else if (pr->len < sizeof pr->line)
            pr->line[pr->len++] = data[i];
        else
            pr->overlong = true;
    }
    return len;
}

void vmms_progress_end(struct vmms_progress *pr)
{
    if (pr->len > 0 || pr->overlong)
        progress_line(pr);
}
