/*
 * ctl.c: the output and refusal helpers every tangoctl command shares
 * (declared, with their contracts, in ctl.h): refusals on stderr (and as
 * JSON with --json), store failures named by Redis's address, JSON output,
 * job id arguments, ages, course names, the operator's name and the time.
 * Owns no state; main.c owns options and the command table.
 */
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "ctl.h"
#include "names.h"

int ctl_fail(struct ctl *x, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tangoctl: %s\n", msg);
    if (x && x->json) {
        json_t *doc = json_pack("{s:b, s:s, s:i}", "ok", 0, "error", msg, "exit", code);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
    }
    return code;
}

int ctl_store_fail(struct ctl *x, int status, const char *what)
{
    if (status == STORE_UNAVAILABLE) {
        const char *why = store_error(x->st);
        if (strncmp(why, "Redis unavailable: ", 19) == 0)
            why += 19;
        return ctl_fail(x, CTL_STORE, "%s: Redis at %s (redis_url) is unavailable: %s", what,
                        x->redis_where, why);
    }
    if (status == STORE_NOT_FOUND)
        return ctl_fail(x, CTL_REFUSED, "%s: not found", what);
    if (status == STORE_LIMIT) /* a configured limit (max_queued_per_course) */
        return ctl_fail(x, CTL_REFUSED, "%s: %s", what, store_error(x->st));
    return ctl_fail(x, CTL_STORE, "%s: %s", what, store_error(x->st));
}

bool ctl_emit_json(struct ctl *x, json_t *doc)
{
    if (!x->json) {
        json_decref(doc);
        return false;
    }
    json_object_set_new(doc, "ok", json_true());
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', stdout);
    json_decref(doc);
    return true;
}

int ctl_job_id(struct ctl *x, int argc, char **argv, int64_t *id)
{
    long long v;
    if (argc != 2 || parse_job_id(argv[1], &v))
        return ctl_fail(x, CTL_USAGE, "%s takes one job id (a decimal number > 0)%s%s", argv[0],
                        argc >= 2 ? ", not " : "", argc >= 2 ? argv[1] : "");
    *id = v;
    return CTL_OK;
}

const char *ctl_age(double s, char *buf, size_t len)
{
    if (s < 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    long long t = (long long)s;
    if (t < 60)
        snprintf(buf, len, "%llds", t);
    else if (t < 3600)
        snprintf(buf, len, "%lldm%02llds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, len, "%lldh%02lldm", t / 3600, t % 3600 / 60);
    else
        snprintf(buf, len, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
    return buf;
}

const char *ctl_course(const char *courselab, char *buf, size_t len)
{
    const char *dash = courselab ? strrchr(courselab, '-') : NULL;
    if (!courselab)
        snprintf(buf, len, "?");
    else if (dash && dash != courselab)
        snprintf(buf, len, "%.*s", (int)(dash - courselab), courselab);
    else
        snprintf(buf, len, "%s", courselab);
    return buf;
}

void ctl_operator(char *buf, size_t len)
{
    char host[128] = "?";
    gethostname(host, sizeof host - 1);
    struct passwd *pw = getpwuid(getuid());
    snprintf(buf, len, "%s@%s", pw ? pw->pw_name : "?", host);
}

double ctl_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}
