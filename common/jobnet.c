/*
 * jobnet.c: the jobs' own Docker network (see jobnet.h): config keys, the
 * options it is created with, the check of an existing one and the host
 * firewall rule, shared by the VMMS plugins.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "jobnet.h"
#include "text.h"


static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool jobnet_ifname_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > JOBNET_IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!word_char(s[i]))
            return false;
    return true;
}

bool jobnet_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > JOBNET_NAME_MAX || !alnum(s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!word_char(s[i]))
            return false;
    return true;
}

void jobnet_config_default(struct jobnet_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->name, JOBNET_DEFAULT_NAME);
    c->host_firewall = true;
}

int jobnet_config_key(struct jobnet_config *c, const char *who, const char *key,
                      const json_t *v, char *err, size_t errlen)
{
    if (strcmp(key, "network") == 0) {
        const char *s = json_string_value(v);
        if (!s || strlen(s) != json_string_length(v) || !jobnet_name_ok(s) ||
            strcmp(s, "bridge") == 0 || strcmp(s, "host") == 0 || strcmp(s, "none") == 0 ||
            strcmp(s, "default") == 0)
            return text_fail(err, errlen,
                        "%s config: \"network\" must name a Docker network of our own: 1..%d "
                        "letters, digits, '_', '.', '-' (first a letter or digit), not "
                        "bridge, host, none or default", who, JOBNET_NAME_MAX);
        strcpy(c->name, s);
        return 1;
    }
    if (strcmp(key, "network_bridge") == 0) {
        const char *s = json_string_value(v);
        if (!s || strlen(s) != json_string_length(v) || !jobnet_ifname_ok(s))
            return text_fail(err, errlen,
                        "%s config: \"network_bridge\" must be an interface name: 1..%d "
                        "letters, digits, '_', '.', '-'", who, JOBNET_IFNAME_MAX);
        strcpy(c->bridge, s);
        return 1;
    }
    if (strcmp(key, "host_firewall") == 0) {
        if (!json_is_boolean(v))
            return text_fail(err, errlen, "%s config: \"host_firewall\" must be true or false",
                        who);
        c->host_firewall = json_is_true(v);
        return 1;
    }
    return 0;
}

int jobnet_config_finish(struct jobnet_config *c, const char *who, char *err, size_t errlen)
{
    if (c->bridge[0])
        return 0;
    if (!jobnet_ifname_ok(c->name))
        return text_fail(err, errlen,
                    "%s config: network \"%s\" is longer than an interface name (%d): set "
                    "\"network_bridge\" to the name its bridge gets", who, c->name,
                    JOBNET_IFNAME_MAX);
    strcpy(c->bridge, c->name);
    return 0;
}

size_t jobnet_options(const struct jobnet_config *c, const char *opts[][2])
{
    opts[0][0] = JOBNET_OPT_ICC;
    opts[0][1] = "false";
    opts[1][0] = JOBNET_OPT_BRIDGE;
    opts[1][1] = c->bridge;
    return 2;
}

/* Docker reads the option with Go's strconv.ParseBool. */
static bool go_false(const char *s)
{
    return s && (strcmp(s, "0") == 0 || strcasecmp(s, "f") == 0 ||
                 strcmp(s, "false") == 0 || strcmp(s, "FALSE") == 0 ||
                 strcmp(s, "False") == 0);
}

int jobnet_check(const json_t *net, const struct jobnet_config *c, char *ifname,
                 size_t ifsz, char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(net, "Name"));
    const char *id = json_string_value(json_object_get(net, "Id"));
    const char *driver = json_string_value(json_object_get(net, "Driver"));
    const json_t *opts = json_object_get(net, "Options");
    if (!json_is_object(net) || !name || !id || strcmp(name, c->name) != 0)
        return text_fail(err, errlen, "Docker's description of network %s is not one we can "
                    "read", c->name);
    if (!driver || strcmp(driver, "bridge") != 0)
        return text_fail(err, errlen,
                    "network %s uses the %s driver, not bridge: remove it (docker network "
                    "rm %s) and the plugin makes it, or name another one in \"network\"",
                    c->name, driver ? driver : "(no)", c->name);
    if (!go_false(json_string_value(json_object_get(opts, JOBNET_OPT_ICC))))
        return text_fail(err, errlen,
                    "network %s lets jobs reach each other (" JOBNET_OPT_ICC " is not "
                    "false): remove it (docker network rm %s) and the plugin makes it, or "
                    "recreate it with -o " JOBNET_OPT_ICC "=false", c->name, c->name);
    const char *br = json_string_value(json_object_get(opts, JOBNET_OPT_BRIDGE));
    char dflt[16];
    if (!br || !*br) {
        if (strlen(id) < 12)
            return text_fail(err, errlen, "network %s has no id", c->name);
        snprintf(dflt, sizeof dflt, "br-%.12s", id);
        br = dflt;
    }
    if (!jobnet_ifname_ok(br) || strlen(br) >= ifsz)
        return text_fail(err, errlen, "network %s: bad bridge interface name", c->name);
    strcpy(ifname, br);
    return 0;
}

size_t jobnet_rule_argv(const char *op, const char *ifname, const char **argv)
{
    static const char *const rule[] = {"-m", "conntrack", "!", "--ctstate",
                                       "ESTABLISHED,RELATED", "-j", "DROP"};
    size_t n = 0;
    argv[n++] = "-w"; /* wait for the xtables lock instead of failing */
    argv[n++] = "5";
    argv[n++] = op;
    argv[n++] = "INPUT";
    argv[n++] = "-i";
    argv[n++] = ifname;
    for (size_t i = 0; i < sizeof rule / sizeof rule[0]; i++)
        argv[n++] = rule[i];
    argv[n] = NULL;
    return n;
}

const char *jobnet_rule_text(const char *ifname, char *buf, size_t bufsz)
{
    const char *argv[JOBNET_RULE_ARGS];
    size_t n = jobnet_rule_argv("-I", ifname, argv), o = 0;
    if (bufsz == 0)
        return buf;
    buf[0] = '\0';
    o = (size_t)snprintf(buf, bufsz, "iptables");
    for (size_t i = 0; i < n && o < bufsz; i++)
        o += (size_t)snprintf(buf + o, bufsz - o, " %s", argv[i]);
    return buf;
}
