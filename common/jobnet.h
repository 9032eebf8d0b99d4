/*
 * jobnet.h: the jobs' own Docker network, described once for every VMMS
 * plugin that runs containers (localDocker over the Engine API, distDocker
 * through the docker CLI of each worker host). It owns:
 *   - the plugin config keys "network", "network_bridge", "host_firewall"
 *     (parsing, defaults, validation);
 *   - what the network must be: a bridge with inter-container traffic off
 *     (com.docker.network.bridge.enable_icc=false), the options it is created
 *     with, and the check of an existing one (a misconfigured network is an
 *     error that says how to fix it);
 *   - the host firewall rule that keeps jobs off the host's own addresses:
 *       INPUT -i <bridge> -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP
 *     (new connections from a job to any address of the host are dropped;
 *     replies to connections the host opened still pass);
 *   - the jobs' forwarding rules: a chain of the mangle table per bridge,
 *     TANGO-<bridge>, jumped to from mangle FORWARD. mangle FORWARD runs
 *     before every filter rule (Docker's, DOCKER-USER, ufw's), and Docker
 *     never touches it, so its drops hold whatever order the filter table
 *     is in and across dockerd restarts. It drops what a job sends to a
 *     destination that was DNAT'd (a published port of any container, any
 *     port forward of the host) and to link-local addresses (169.254.0.0/16,
 *     fe80::/10) and the EC2 metadata service's IPv6 address fd00:ec2::254;
 *     for a bridge the plugin owns (localOCI) it also drops everything from
 *     the bridge that does not leave by an uplink, and everything into it
 *     that is not a reply;
 *   - the one POSIX sh script that installs all of that (iptables-restore
 *     --noflush replaces the chain's contents in one transaction; jumps and
 *     the INPUT rule are checked with -C and inserted with -I), for IPv4 and,
 *     when the kernel has it, IPv6. Plugins run it locally or over SSH.
 * Plain data and pure functions: thread-safe, no I/O.
 */
#ifndef TANGO_JOBNET_H
#define TANGO_JOBNET_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define JOBNET_DEFAULT_NAME "tango-jobs"
#define JOBNET_NAME_MAX 64          /* Docker network name */
#define JOBNET_IFNAME_MAX 15        /* Linux interface name (IFNAMSIZ - 1) */
#define JOBNET_OPT_ICC "com.docker.network.bridge.enable_icc"
#define JOBNET_OPT_BRIDGE "com.docker.network.bridge.name"
#define JOBNET_LABEL "tango.jobs"   /* label (value "1") on networks we create */
#define JOBNET_RULE_ARGS 16         /* room for jobnet_rule_argv's argv */
#define JOBNET_CHAIN_PREFIX "TANGO-" /* + bridge: the mangle chain of its jobs */
#define JOBNET_UPLINKS_MAX 8
#define JOBNET_SCRIPT_MAX 8192      /* room for jobnet_fw_script */

struct jobnet_config {
    char name[JOBNET_NAME_MAX + 1];      /* Docker network jobs with network join */
    char bridge[JOBNET_IFNAME_MAX + 1];  /* its host interface when we create it */
    bool host_firewall;                  /* the plugin installs the INPUT rule */
};

/* Defaults: name "tango-jobs", bridge "" (= the name, see finish), firewall on. */
void jobnet_config_default(struct jobnet_config *c);

/* One key of a plugin's config object. Returns 1 if the key is one of ours
 * and its value is good, 0 if the key is not ours (nothing touched), -1 if
 * its value is bad (err names the key; who is the plugin, e.g. "localDocker"). */
int jobnet_config_key(struct jobnet_config *c, const char *who, const char *key,
                      const json_t *v, char *err, size_t errlen);

/* After every key: an unset bridge takes the network's name, which must then
 * be a valid interface name (else set network_bridge). 0, or -1 with err. */
int jobnet_config_finish(struct jobnet_config *c, const char *who, char *err, size_t errlen);

/* The options a network is created with, as n pairs {key, value} (static
 * strings or c->bridge); returns n (<= 4). */
size_t jobnet_options(const struct jobnet_config *c, const char *opts[][2]);

/* Checks a network as Docker describes it (the Engine API's GET /networks/X
 * object, or one element of `docker network inspect X`): its name is
 * c->name, its driver is bridge and inter-container traffic is off. Fills
 * ifname with its host interface (the bridge name option, else "br-" and the
 * first 12 digits of its id). 0, or -1 with err saying what to do. */
int jobnet_check(const json_t *net, const struct jobnet_config *c, char *ifname,
                 size_t ifsz, char *err, size_t errlen);

/* The firewall rule's arguments after the program name, for op "-C" (check)
 * or "-I" (insert first) or "-D" (delete); argv gets at most JOBNET_RULE_ARGS
 * entries, NULL-ended, pointing at static strings and ifname. Returns argc. */
size_t jobnet_rule_argv(const char *op, const char *ifname, const char **argv);

/* The rule as an `iptables -I ...` command line (for messages and logs). */
const char *jobnet_rule_text(const char *ifname, char *buf, size_t bufsz);

/* What jobnet_fw_script installs for one bridge. */
struct jobnet_fw {
    char bridge[JOBNET_IFNAME_MAX + 1];  /* the jobs' bridge */
    bool input;                          /* also the INPUT rule (host_firewall) */
    bool owned;        /* the bridge's forwarding is the plugin's own (localOCI): only
                        * out by an uplink, only replies in; else Docker's rules follow */
    char uplinks[JOBNET_UPLINKS_MAX][JOBNET_IFNAME_MAX + 1];
    size_t nuplinks;   /* owned: the interfaces jobs may leave by (none: nowhere) */
};

/* The chain's name for a bridge into buf (>= 6 + JOBNET_IFNAME_MAX + 1). */
void jobnet_chain_name(const char *ifname, char *buf, size_t bufsz);

/* The POSIX sh script (no input, run as root) that installs fw's rules, as
 * described above; every name in it was checked by jobnet_ifname_ok and is
 * single-quoted. It exits 0, or 1 with one line on stderr naming the step
 * that failed. 0, or -1 when a name is invalid or bufsz is too small. */
int jobnet_fw_script(const struct jobnet_fw *fw, char *buf, size_t bufsz);

/* Interface names of the IPv4 default routes in text (the format of
 * /proc/net/route) into up (at most max, no duplicates); returns how many. */
size_t jobnet_default_uplinks(const char *text, char up[][JOBNET_IFNAME_MAX + 1], size_t max);

/* A valid Linux interface name: 1..15 of [A-Za-z0-9_.-], not "." or "..". */
bool jobnet_ifname_ok(const char *s);
/* A valid Docker network name: [A-Za-z0-9] then [A-Za-z0-9_.-], 1..64. */
bool jobnet_name_ok(const char *s);

#endif
