/* cgroup.c: the sandbox's own usage figures from its cgroup (cgroup.h). */
#include "cgroup.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autodriver.h"

/* Reads a small file into buf (NUL-ended); 0 or -1. */
static int slurp(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return 0;
}

/* The number in file (whole file when key is NULL, else after "key "). */
static long long number(const char *file, const char *key)
{
    char buf[4096];
    if (slurp(file, buf, sizeof buf) != 0)
        return -1;
    if (key == NULL)
        return buf[0] >= '0' && buf[0] <= '9' ? atoll(buf) : -1;
    size_t kl = strlen(key);
    for (char *p = buf; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return atoll(p + kl + 1);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* file under mnt/path, else under mnt: its number. */
static long long read_in(const char *mnt, const char *path, const char *file, const char *key)
{
    char p[4096];
    if (strstr(path, "..") == NULL) {
        snprintf(p, sizeof p, "%s%s/%s", mnt, strcmp(path, "/") == 0 ? "" : path, file);
        long long v = number(p, key);
        if (v >= 0)
            return v;
    }
    snprintf(p, sizeof p, "%s/%s", mnt, file);
    return number(p, key);
}

/* The path of the v1 hierarchy holding ctl ("" = the v2 one), or NULL. */
static const char *path_of(char *cg, const char *ctl, char *out, size_t outsz)
{
    for (char *line = cg; line && *line;) {
        char *nl = strchr(line, '\n');
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 && (!nl || c2 < nl)) {
            size_t clen = (size_t)(c2 - c1 - 1), plen = (size_t)((nl ? nl : c2 + strlen(c2)) - c2 - 1);
            int match = 0;
            if (*ctl == '\0')
                match = clen == 0;
            else
                for (char *t = c1 + 1; t < c2;) {
                    char *comma = memchr(t, ',', (size_t)(c2 - t));
                    char *end = comma ? comma : c2;
                    if ((size_t)(end - t) == strlen(ctl) && strncmp(t, ctl, strlen(ctl)) == 0)
                        match = 1;
                    t = end + 1;
                }
            if (match && plen < outsz) {
                memcpy(out, c2 + 1, plen);
                out[plen] = '\0';
                return out;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

int ad_cgroup_usage(const char *proc_cgroup, const char *root, struct ad_cg_usage *u)
{
    char cg[4096], path[1024], mnt[1200];
    if (slurp(proc_cgroup, cg, sizeof cg) != 0)
        return -1;
    long long user = -1, sys = -1, peak = -1;
    /* cgroup v1: cpuacct (mounted alone or with cpu) and memory */
    if (path_of(cg, "cpuacct", path, sizeof path)) {
        static const char *const mounts[] = {"cpuacct", "cpu,cpuacct", "cpuacct,cpu"};
        for (size_t i = 0; i < 3 && (user < 0 || sys < 0); i++) {
            snprintf(mnt, sizeof mnt, "%s/%s", root, mounts[i]);
            user = read_in(mnt, path, "cpuacct.usage_user", NULL);
            sys = read_in(mnt, path, "cpuacct.usage_sys", NULL);
        }
        user = user >= 0 ? user / 1000000 : -1;
        sys = sys >= 0 ? sys / 1000000 : -1;
        if (path_of(cg, "memory", path, sizeof path)) {
            snprintf(mnt, sizeof mnt, "%s/memory", root);
            peak = read_in(mnt, path, "memory.max_usage_in_bytes", NULL);
        }
    }
    /* cgroup v2 */
    if ((user < 0 || sys < 0 || peak < 0) && path_of(cg, "", path, sizeof path)) {
        long long uu = read_in(root, path, "cpu.stat", "user_usec");
        long long su = read_in(root, path, "cpu.stat", "system_usec");
        long long pk = read_in(root, path, "memory.peak", NULL);
        if (uu >= 0 && su >= 0 && pk >= 0) {
            user = uu / 1000;
            sys = su / 1000;
            peak = pk;
        }
    }
    if (user < 0 || sys < 0 || peak < 0)
        return -1;
    u->cpu_user_ms = user;
    u->cpu_sys_ms = sys;
    u->peak_kb = peak / 1024;
    return 0;
}

int ad_format_cgroup_usage(char *buf, size_t len, const struct ad_cg_usage *u)
{
    return snprintf(buf, len, AD_PREFIX "cgroup cpu_user_ms=%lld cpu_sys_ms=%lld "
                    "peak_memory_kb=%lld\n", u->cpu_user_ms, u->cpu_sys_ms, u->peak_kb);
}
