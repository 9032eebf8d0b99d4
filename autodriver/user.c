/* user.c: reads the grading user's uid, gid, home and groups straight from
 * /etc/passwd and /etc/group (see user.h for why not getpwnam). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "user.h"

#define LINE_MAX_LEN 8192

/* Splits line at ':' into at most max fields; returns how many. */
static size_t split_fields(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        fields[n++] = p;
        char *c = strchr(p, ':');
        if (!c)
            break;
        *c = '\0';
        p = c + 1;
    }
    return n;
}

static int parse_id(const char *s, unsigned long *out)
{
    /* ids are 32-bit; (uid_t)-1 is not a valid id */
    return ad_parse_uint(s, 0xfffffffeUL, out);
}

/* Reads one line into buf; skips (and reports as 0-length) lines that do not
 * fit. Returns 1 line read, 0 end of file. */
static int read_line(FILE *f, char *buf, size_t len)
{
    for (;;) {
        if (!fgets(buf, (int)len, f))
            return 0;
        size_t n = strlen(buf);
        if (n > 0 && buf[n - 1] == '\n') {
            buf[n - 1] = '\0';
            return 1;
        }
        if (feof(f))
            return 1; /* last line without newline */
        int c;         /* too long: drop the rest of it */
        while ((c = fgetc(f)) != EOF && c != '\n')
            ;
        buf[0] = '\0';
        return 1;
    }
}

int ad_lookup_user(const char *passwd_path, const char *name, struct ad_user *u, ad_err *e)
{
    FILE *f = fopen(passwd_path, "re");
    if (!f)
        return ad_fail_errno(e, errno, "Error opening %s", passwd_path);
    char *line = malloc(LINE_MAX_LEN);
    if (!line) {
        fclose(f);
        return ad_fail(e, "Out of memory reading %s", passwd_path);
    }
    int found = 0;
    while (!found && read_line(f, line, LINE_MAX_LEN)) {
        char *fld[7];
        if (split_fields(line, fld, 7) != 7 || strcmp(fld[0], name) != 0)
            continue;
        unsigned long uid, gid;
        if (parse_id(fld[2], &uid) < 0 || parse_id(fld[3], &gid) < 0) {
            found = ad_fail(e, "Invalid uid or gid for user %s in %s", name, passwd_path);
            break;
        }
        if (fld[5][0] != '/' || strlen(fld[5]) >= sizeof u->home ||
            strlen(name) >= sizeof u->name) {
            found = ad_fail(e, "Invalid home directory for user %s in %s", name, passwd_path);
            break;
        }
        memset(u, 0, sizeof *u);
        snprintf(u->name, sizeof u->name, "%s", name);
        u->uid = (uid_t)uid;
        u->gid = (gid_t)gid;
        snprintf(u->home, sizeof u->home, "%s", fld[5]);
        u->groups[0] = u->gid;
        u->ngroups = 1;
        found = 1;
    }
    if (found == 0 && ferror(f))
        found = ad_fail_errno(e, errno ? errno : EIO, "Error reading %s", passwd_path);
    free(line);
    fclose(f);
    return found;
}

static int member_of(char *members, const char *name)
{
    char *save = NULL;
    for (char *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save))
        if (strcmp(m, name) == 0)
            return 1;
    return 0;
}

int ad_lookup_groups(const char *group_path, struct ad_user *u, ad_err *e)
{
    u->groups[0] = u->gid;
    u->ngroups = 1;
    FILE *f = fopen(group_path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return ad_fail_errno(e, errno, "Error opening %s", group_path);
    }
    char *line = malloc(LINE_MAX_LEN);
    if (!line) {
        fclose(f);
        return ad_fail(e, "Out of memory reading %s", group_path);
    }
    while (read_line(f, line, LINE_MAX_LEN)) {
        char *fld[4];
        if (split_fields(line, fld, 4) != 4)
            continue;
        unsigned long gid;
        if (parse_id(fld[2], &gid) < 0 || !member_of(fld[3], u->name))
            continue;
        int dup = 0;
        for (size_t i = 0; i < u->ngroups; i++)
            if (u->groups[i] == (gid_t)gid)
                dup = 1;
        if (!dup && u->ngroups < AD_MAX_GROUPS)
            u->groups[u->ngroups++] = (gid_t)gid;
    }
    free(line);
    fclose(f);
    return 0;
}
