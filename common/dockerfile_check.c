/*
 * dockerfile_check.c: the Dockerfile check of POST /build_image
 * (dockerfile_check.h): joins Docker's logical lines, refuses parser
 * directives, and checks each instruction's flags, ADD sources and the
 * images FROM / COPY --from / RUN --mount=from name.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <archive.h>
#include <archive_entry.h>

#include "dockerfile_check.h"

#define MAX_STAGES 64
#define STAGE_MAX  128
#define WORD_MAX   1024

struct df {
    dockerfile_allow_fn allow;
    void *arg;
    char *err;
    size_t errlen;
    int line;                             /* first physical line of the instruction */
    int nstages;
    char stages[MAX_STAGES][STAGE_MAX];   /* names of earlier stages ("" when unnamed) */
};

/* Writes "Dockerfile line N: <why>" into err; -1. */
static int refuse(struct df *d, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(d->err, d->errlen, "Dockerfile line %d: %s", d->line, why);
    return -1;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Copies the next whitespace-separated word of *s (quotes kept together,
 * and dropped from the copy) into out; advances *s. False at the end, or
 * when the word does not fit. */
static bool next_word(const char **s, char *out, size_t outlen)
{
    const char *p = *s;
    while (is_space(*p))
        p++;
    if (!*p)
        return false;
    size_t n = 0;
    char quote = 0;
    for (; *p && (quote || !is_space(*p)); p++) {
        if (!quote && (*p == '"' || *p == '\'')) {
            quote = *p;
            continue;
        }
        if (quote && *p == quote) {
            quote = 0;
            continue;
        }
        if (n + 1 >= outlen)
            return false;
        out[n++] = *p;
    }
    out[n] = '\0';
    *s = p;
    return true;
}

/* Whether name is an earlier stage: its name (case-insensitive, as Docker
 * compares them) or, when index_ok, its number. */
static bool is_stage(const struct df *d, const char *name, bool index_ok)
{
    if (index_ok && name[0] && strspn(name, "0123456789") == strlen(name))
        return strlen(name) < 4 && atoi(name) < d->nstages;
    for (int i = 0; i < d->nstages; i++)
        if (d->stages[i][0] && strcasecmp(d->stages[i], name) == 0)
            return true;
    return false;
}

/* Checks an image named by what (FROM, COPY --from, RUN --mount from). */
static int check_image(struct df *d, const char *image, const char *what, bool index_ok)
{
    if (strpbrk(image, "$\\"))
        return refuse(d, "%s \"%.100s\" uses a variable or an escape, which cannot be "
                         "checked: name the image itself", what, image);
    if (strcasecmp(image, "scratch") == 0 || is_stage(d, image, index_ok) ||
        d->allow(image, d->arg))
        return 0;
    return refuse(d, "%s \"%.100s\" is not an image this key may build on (a configured "
                     "image, one this key built, or an earlier stage)", what, image);
}

/* Checks the from= part of a --mount value (comma-separated key=value). */
static int check_mount(struct df *d, const char *value)
{
    char buf[WORD_MAX];
    snprintf(buf, sizeof buf, "%s", value);
    for (char *save = NULL, *f = strtok_r(buf, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        while (is_space(*f))
            f++;
        if (strncasecmp(f, "from=", 5) == 0 && check_image(d, f + 5, "RUN --mount from", true))
            return -1;
    }
    return 0;
}

/* Checks the leading --flags of rest and sets *after past them. */
static int check_flags(struct df *d, const char *rest, const char **after)
{
    char w[WORD_MAX];
    const char *p = rest, *before = rest;
    while (next_word(&p, w, sizeof w) && strncmp(w, "--", 2) == 0) {
        const char *eq = strchr(w, '=');
        const char *value = eq ? eq + 1 : "";
        size_t n = eq ? (size_t)(eq - w) : strlen(w);
        if (n == 6 && strncasecmp(w, "--from", 6) == 0 && check_image(d, value, "--from", true))
            return -1;
        if (n == 7 && strncasecmp(w, "--mount", 7) == 0 && check_mount(d, value))
            return -1;
        before = p;
    }
    const char *q = before;
    while (is_space(*q))
        q++;
    if (strncmp(q, "--", 2) == 0)
        return refuse(d, "a flag is too long to check");
    *after = before;
    return 0;
}

/* Checks ADD's sources: no URL, nothing that substitution or escapes
 * could turn into one. */
static int check_add(struct df *d, const char *args)
{
    if (strpbrk(args, "$\\"))
        return refuse(d, "ADD with a variable or an escape (\"$\" or \"\\\") cannot be checked");
    size_t n = strlen(args);
    char *low = malloc(n + 1);
    if (!low)
        return refuse(d, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (args[i] != '"' && args[i] != '\'')
            low[k++] = (char)tolower((unsigned char)args[i]);
    low[k] = '\0';
    bool url = strstr(low, "://") || strstr(low, "git@") || strstr(low, "github.com/");
    free(low);
    if (url)
        return refuse(d, "ADD of a URL is refused (dockerd would fetch it on the build "
                         "host's network): download it yourself and send a build context tar");
    return 0;
}

/* Checks FROM [--flags] image [AS name] and records the stage. */
static int check_from(struct df *d, const char *args)
{
    char image[WORD_MAX], as[16], name[WORD_MAX], extra[8];
    const char *p = args;
    if (!next_word(&p, image, sizeof image))
        return refuse(d, "FROM needs an image");
    bool named = next_word(&p, as, sizeof as);
    if ((named && (strcasecmp(as, "as") != 0 || !next_word(&p, name, sizeof name))) ||
        next_word(&p, extra, sizeof extra))
        return refuse(d, "FROM must be \"FROM image\" or \"FROM image AS name\"");
    if (check_image(d, image, "FROM", false))
        return -1;
    if (d->nstages >= MAX_STAGES || (named && strlen(name) >= STAGE_MAX))
        return refuse(d, "too many stages or a stage name too long");
    snprintf(d->stages[d->nstages++], STAGE_MAX, "%s", named ? name : "");
    return 0;
}

/* Checks one logical line (instruction and arguments); depth bounds ONBUILD. */
static int check_instruction(struct df *d, const char *line, int depth)
{
    static const char *const known[] = {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
        "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
        "WORKDIR"};
    const char *p = line;
    while (is_space(*p))
        p++;
    size_t n = strcspn(p, " \t\r\v\f");
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof *known && !ok; i++)
        ok = strlen(known[i]) == n && strncasecmp(known[i], p, n) == 0;
    if (!ok)
        return refuse(d, "unknown instruction \"%.*s\"", (int)(n < 40 ? n : 40), p);
    const char *args = p + n, *rest = NULL;
    if (n == 7 && strncasecmp(p, "ONBUILD", 7) == 0)
        return depth > 0 ? refuse(d, "ONBUILD ONBUILD is not allowed")
                         : check_instruction(d, args, depth + 1);
    if (check_flags(d, args, &rest))
        return -1;
    if (n == 3 && strncasecmp(p, "ADD", 3) == 0)
        return check_add(d, args); /* flags too: no URL hides in one */
    if (n == 4 && strncasecmp(p, "FROM", 4) == 0)
        return depth > 0 ? refuse(d, "ONBUILD FROM is not allowed") : check_from(d, rest);
    return 0;
}

/* Whether a comment line (text after '#') is a parser directive
 * (syntax, escape or check, any case, "=" after optional blanks). */
static bool is_directive(const char *s, size_t n)
{
    static const char *const names[] = {"syntax", "escape", "check"};
    size_t i = 0;
    while (i < n && is_space(s[i]))
        i++;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        size_t m = strlen(names[k]), j = i + m;
        if (n - i < m || strncasecmp(s + i, names[k], m) != 0)
            continue;
        while (j < n && is_space(s[j]))
            j++;
        if (j < n && s[j] == '=')
            return true;
    }
    return false;
}

/* The physical line [s, s+n) without a trailing continuation `\` (and the
 * blanks after it): its new length; *cont tells whether there was one. */
static size_t strip_continuation(const char *s, size_t n, bool *cont)
{
    size_t e = n;
    while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    *cont = e > 0 && s[e - 1] == '\\';
    return *cont ? e - 1 : n;
}

/* Feeds one physical line; logical (of cap bytes) accumulates a
 * continued instruction, *used its length, *cont whether one is open. */
static int feed_line(struct df *d, const char *s, size_t n, int lineno, char *logical,
                     size_t *used, bool *cont)
{
    size_t i = 0;
    while (i < n && is_space(s[i]))
        i++;
    if (i < n && s[i] == '#')
        return is_directive(s + i + 1, n - i - 1)
                   ? (d->line = lineno, refuse(d, "parser directives (# syntax=, # escape=) "
                                                  "are refused"))
                   : 0;
    if (i == n)
        return 0; /* blank: skipped, also inside a continuation (as Docker does) */
    if (!*cont) {
        d->line = lineno;
        *used = 0;
        s += i;
        n -= i;
    }
    bool more;
    size_t keep = strip_continuation(s, n, &more);
    memcpy(logical + *used, s, keep);
    *used += keep;
    logical[*used] = '\0';
    *cont = more;
    return more ? 0 : check_instruction(d, logical, 0);
}

int dockerfile_check(const char *text, size_t len, dockerfile_allow_fn allow, void *arg,
                     char *err, size_t errlen)
{
    struct df *d = calloc(1, sizeof *d);
    char *logical = malloc(len + 1);
    if (!d || !logical) {
        free(d);
        free(logical);
        snprintf(err, errlen, "Dockerfile check: out of memory");
        return -1;
    }
    *d = (struct df){.allow = allow, .arg = arg, .err = err, .errlen = errlen, .line = 1};
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        text += 3, len -= 3;
    int rc = memchr(text, '\0', len) ? refuse(d, "the Dockerfile holds a NUL byte") : 0;
    size_t used = 0, start = 0;
    bool cont = false;
    for (int lineno = 1; rc == 0 && start < len; lineno++) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len;
        rc = feed_line(d, text + start, end - start, lineno, logical, &used, &cont);
        start = end + 1;
    }
    if (rc == 0 && cont)
        rc = check_instruction(d, logical, 0);
    free(logical);
    free(d);
    return rc;
}

/* The entry's path without "." parts and leading '/' into out; -1 when it
 * has a ".." part or does not fit. */
static int clean_path(const char *path, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = path; *p;) {
        size_t m = strcspn(p, "/");
        if (m == 2 && strncmp(p, "..", 2) == 0)
            return -1;
        if (m > 0 && !(m == 1 && *p == '.')) {
            if (n + m + 2 > outlen)
                return -1;
            n += (size_t)snprintf(out + n, outlen - n, "%s%.*s", n ? "/" : "", (int)m, p);
        }
        p += m;
        p += *p == '/';
    }
    return 0;
}

/* Reads the current entry (a Dockerfile, at most DOCKERFILE_MAX bytes)
 * and checks it. */
static int check_entry(struct archive *a, struct archive_entry *e, dockerfile_allow_fn allow,
                       void *arg, char *err, size_t errlen)
{
    la_int64_t size = archive_entry_size(e);
    if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) || size < 0 ||
        size > DOCKERFILE_MAX) {
        snprintf(err, errlen, "The context's Dockerfile must be a regular file of at most %d "
                              "bytes", DOCKERFILE_MAX);
        return -1;
    }
    char *buf = malloc((size_t)size + 1);
    la_ssize_t got = buf ? archive_read_data(a, buf, (size_t)size) : -1;
    int rc = got == size ? dockerfile_check(buf, (size_t)size, allow, arg, err, errlen) : -1;
    if (got != size)
        snprintf(err, errlen, "The context tar cannot be read (its Dockerfile is cut short)");
    free(buf);
    return rc;
}

int dockerfile_check_tar(const void *tar, size_t len, dockerfile_allow_fn allow, void *arg,
                         char *err, size_t errlen)
{
    struct archive *a = archive_read_new();
    if (!a || archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_open_memory(a, tar, len) != ARCHIVE_OK) {
        snprintf(err, errlen, "The build context is not a tar");
        archive_read_free(a);
        return -1;
    }
    struct archive_entry *e;
    int r, rc = 0, found = 0;
    char path[4096];
    while (rc == 0 && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (!name || clean_path(name, path, sizeof path)) {
            snprintf(err, errlen, "The context tar has an entry with a \"..\" part or too long");
            rc = -1;
        } else if (strcasecmp(path, "Dockerfile") == 0) {
            found++;
            rc = check_entry(a, e, allow, arg, err, errlen);
        }
    }
    if (rc == 0 && r != ARCHIVE_EOF)
        rc = -1, snprintf(err, errlen, "The build context is not a valid tar: %s",
                          archive_error_string(a) ? archive_error_string(a) : "read error");
    if (rc == 0 && !found)
        rc = -1, snprintf(err, errlen, "The build context tar holds no Dockerfile at its top");
    archive_read_free(a);
    return rc;
}
