/*
 * jobnet_fw.c: the jobs' firewall as one POSIX sh script (jobnet.h): the
 * mangle chain TANGO-<bridge> with its drops, its jump from mangle FORWARD,
 * and the INPUT rule, for IPv4 and IPv6; plus the reader of /proc/net/route
 * that finds the uplinks. Pure: builds text, runs nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "jobnet.h"

enum { V4 = 1, V6 = 2 };
enum scope { ALL, OWNED, UPLINK };

/* The chain's rules in order; "@" stands for the bridge, "%" for an uplink
 * (an UPLINK rule is repeated for each). Drops first, so the RETURNs that
 * follow cannot let a dropped packet by. */
static const struct {
    unsigned fam;
    enum scope scope;
    const char *text;
} chain_rules[] = {
    {V4 | V6, ALL, "-i @ -m conntrack --ctstate DNAT -j DROP"},
    {V4, ALL, "-i @ -d 169.254.0.0/16 -j DROP"},
    {V6, ALL, "-i @ -d fe80::/10 -j DROP"},
    {V6, ALL, "-i @ -d fd00:ec2::254/128 -j DROP"},
    {V4, UPLINK, "-i @ -o % -j RETURN"},
    {V4 | V6, OWNED, "-i @ -j DROP"},
    {V4, OWNED, "-o @ -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"},
    {V4 | V6, OWNED, "-o @ -j DROP"},
};
#define NRULES (sizeof chain_rules / sizeof chain_rules[0])

struct out {
    char *buf;
    size_t size, used;
    bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->used, o->size - o->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->size - o->used)
        o->full = true;
    else
        o->used += (size_t)n;
}

/* Appends text with "@" as the bridge and "%" as up (names hold no quote). */
static void put_rule(struct out *o, const char *text, const char *br, const char *up)
{
    for (const char *t = text; *t; t++) {
        if (*t == '@')
            put(o, "%s", br);
        else if (*t == '%')
            put(o, "%s", up);
        else
            put(o, "%c", *t);
    }
}

void jobnet_chain_name(const char *ifname, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, JOBNET_CHAIN_PREFIX "%s", ifname);
}

/* printf '%s\n' of the iptables-restore input that replaces the chain. */
static void put_restore(struct out *o, const struct jobnet_fw *fw, unsigned fam,
                        const char *chain)
{
    put(o, "printf '%%s\\n' '*mangle' ':%s - [0:0]'", chain);
    for (size_t i = 0; i < NRULES; i++) {
        if (!(chain_rules[i].fam & fam) || (chain_rules[i].scope != ALL && !fw->owned))
            continue;
        size_t reps = chain_rules[i].scope == UPLINK ? fw->nuplinks : 1;
        for (size_t u = 0; u < reps; u++) {
            put(o, " '-A %s ", chain);
            put_rule(o, chain_rules[i].text, fw->bridge,
                     chain_rules[i].scope == UPLINK ? fw->uplinks[u] : "");
            put(o, "'");
        }
    }
    put(o, " 'COMMIT'");
}

/* The INPUT rule's arguments after -C/-I, single-quoted. */
static void put_input_rule(struct out *o, const char *br)
{
    const char *argv[JOBNET_RULE_ARGS];
    size_t n = jobnet_rule_argv("-C", br, argv);
    for (size_t i = 3; i < n; i++) /* after "-w", "5", "-C" */
        put(o, " '%s'", argv[i]);
}

/* One family: the chain, its jump, the INPUT rule. */
static void put_family(struct out *o, const struct jobnet_fw *fw, unsigned fam)
{
    const char *t = fam == V4 ? "iptables" : "ip6tables";
    char chain[sizeof JOBNET_CHAIN_PREFIX + JOBNET_IFNAME_MAX];
    jobnet_chain_name(fw->bridge, chain, sizeof chain);
    put(o, "need %s\n", t);
    put_restore(o, fw, fam, chain);
    put(o, " | %s-restore -w 5 --noflush || fail '%s-restore of mangle chain %s failed'\n", t,
        t, chain);
    put(o, "%s -w 5 -t mangle -C FORWARD -j '%s' 2>/dev/null || "
        "%s -w 5 -t mangle -I FORWARD -j '%s' || fail '%s: cannot jump to %s from mangle "
        "FORWARD'\n", t, chain, t, chain, t, chain);
    if (!fw->input)
        return;
    put(o, "%s -w 5 -C", t);
    put_input_rule(o, fw->bridge);
    put(o, " 2>/dev/null || %s -w 5 -I", t);
    put_input_rule(o, fw->bridge);
    put(o, " || fail '%s: cannot insert the INPUT rule for %s'\n", t, fw->bridge);
}

int jobnet_fw_script(const struct jobnet_fw *fw, char *buf, size_t bufsz)
{
    if (!jobnet_ifname_ok(fw->bridge) || fw->nuplinks > JOBNET_UPLINKS_MAX || bufsz == 0)
        return -1;
    for (size_t i = 0; i < fw->nuplinks; i++)
        if (!jobnet_ifname_ok(fw->uplinks[i]))
            return -1;
    struct out o = {.buf = buf, .size = bufsz};
    buf[0] = '\0';
    put(&o, "PATH=/usr/sbin:/sbin:/usr/bin:/bin\n"
        "fail() { echo \"jobs' firewall: $*\" >&2; exit 1; }\n"
        "need() { command -v \"$1\" >/dev/null && command -v \"$1-restore\" >/dev/null || "
        "fail \"$1 is not installed (apt-get install iptables)\"; }\n");
    put_family(&o, fw, V4);
    put(&o, "[ -e /proc/net/if_inet6 ] || exit 0\n");
    put_family(&o, fw, V6);
    return o.full ? -1 : 0;
}

size_t jobnet_default_uplinks(const char *text, char up[][JOBNET_IFNAME_MAX + 1], size_t max)
{
    size_t n = 0;
    const char *line = text ? strchr(text, '\n') : NULL; /* the header line goes */
    while (line && *line && n < max) {
        line++;
        char ifname[32], dest[16], gw[16], mask[16];
        unsigned flags;
        int refcnt, use, metric;
        if (sscanf(line, "%31s %15s %15s %x %d %d %d %15s", ifname, dest, gw, &flags, &refcnt,
                   &use, &metric, mask) == 8 &&
            strcmp(dest, "00000000") == 0 && strcmp(mask, "00000000") == 0 &&
            (flags & 1) && jobnet_ifname_ok(ifname)) { /* RTF_UP */
            bool seen = false;
            for (size_t i = 0; i < n; i++)
                seen = seen || strcmp(up[i], ifname) == 0;
            if (!seen)
                memcpy(up[n++], ifname, strlen(ifname) + 1); /* <= JOBNET_IFNAME_MAX */
        }
        line = strchr(line, '\n');
    }
    return n;
}
