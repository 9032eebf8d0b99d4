/*
 * net.c: the network of jobs that have one. Owns
 *   - at init: the plugin's bridge (network_bridge, address .0.1 of
 *     network_subnet, IPv6 off), IPv4 forwarding, NAT (MASQUERADE) of the
 *     subnet's traffic leaving by another interface and the filter table's
 *     FORWARD ACCEPTs for the bridge (each checked with -C, inserted when
 *     missing), and the jobs' firewall of jobnet.h, which decides first
 *     (mangle FORWARD): out only by an uplink (network_uplinks, else the
 *     interfaces of the IPv4 default routes), never to a DNAT'd destination
 *     (a published port) or a link-local address (the cloud metadata
 *     service), only replies in; with host_firewall the INPUT rule (nothing
 *     new from the bridge reaches the host's own services);
 *   - per sandbox (in initialize_vm, so off the job's path): a network
 *     namespace /run/netns/<name>, a veth pair made with its peer already
 *     inside it (eth0, so no half-made pair can be left on the host), the
 *     host end on the bridge as an isolated port (no traffic between jobs),
 *     an address slot of the subnet (recorded in the bundle's net file),
 *     lo and a default route; two `ip -batch` runs;
 *   - removal: deleting the namespace takes the veth pair with it.
 * Jobs without network get a fresh namespace from the runtime (only lo).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jobfw.h"
#include "jobnet.h"
#include "lo.h"
#include "log.h"

static const char *const ip_paths[] = {"/usr/sbin/ip", "/sbin/ip", "/bin/ip", "/usr/bin/ip",
                                       NULL};
static const char *const ipt_paths[] = {"/usr/sbin/iptables", "/sbin/iptables", NULL};

static void addr(uint32_t a, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

static int write_proc(const char *path, const char *v)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = write(fd, v, strlen(v)) == (ssize_t)strlen(v) ? 0 : -1;
    close(fd);
    return rc;
}

/* iptables: -C the rule, and insert it (-I) when missing. args holds the
 * rule with "OP" where the operation goes. */
static int ensure(const char *ipt, const char *const *args, char *err, size_t errlen)
{
    const char *argv[32];
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 0;
        argv[n++] = ipt;
        argv[n++] = "-w";
        argv[n++] = "5";
        for (const char *const *a = args; *a && n < 31; a++)
            argv[n++] = strcmp(*a, "OP") == 0 ? (pass == 0 ? "-C" : "-I") : *a;
        argv[n] = NULL;
        int status = -1;
        char out[300];
        int rc = vmms_spawn(argv, NULL, 15000, &status, out, sizeof out, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        if (status == 0)
            return VMMS_OK;
        if (pass == 1 || status != 1)
            return vmms_fail(err, errlen, VMMS_ERR, "localOCI: iptables %s failed (exit %d): "
                             "%.200s", pass ? "-I" : "-C", status, out);
    }
    return VMMS_OK;
}

/* The bridge, its address, IPv6 off on it, IPv4 forwarding on. */
static int bridge_up(struct lo_ctx *ctx, const char *ip, char *err, size_t errlen)
{
    const char *br = ctx->cfg.bridge;
    char gw[32], sysp[128], batch[512];
    addr(ctx->cfg.subnet | 1, gw, sizeof gw);
    snprintf(sysp, sizeof sysp, "/sys/class/net/%s", br);
    if (access(sysp, F_OK) != 0) {
        const char *argv[] = {ip, "link", "add", "name", br, "type", "bridge", NULL};
        int rc = vmms_spawn_ok("ip link add (the jobs' bridge)", argv, NULL, 15000, err, errlen);
        if (rc != VMMS_OK && access(sysp, F_OK) != 0)
            return rc;
    }
    snprintf(sysp, sizeof sysp, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", br);
    write_proc(sysp, "1");
    snprintf(batch, sizeof batch, "addr replace %s/16 dev %s\nlink set %s up\n", gw, br, br);
    const char *argv[] = {ip, "-batch", "-", NULL};
    int rc = vmms_spawn_ok("ip (the jobs' bridge address)", argv, batch, 15000, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (write_proc("/proc/sys/net/ipv4/ip_forward", "1") != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI: cannot turn IPv4 forwarding on: %s",
                         strerror(errno));
    return VMMS_OK;
}

/* NAT of the subnet's traffic out, and the filter table's ACCEPTs for the
 * bridge (FORWARD's policy may be DROP, as Docker sets it). What may pass is
 * decided before these, by the mangle chain of the jobs' firewall. */
static int forwarding(struct lo_ctx *ctx, const char *subnet, char *err, size_t errlen)
{
    const char *ipt = vmms_find_prog(ipt_paths);
    if (ipt == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI: iptables is not installed "
                         "(apt-get install iptables)");
    const char *br = ctx->cfg.bridge;
    const char *nat[] = {"-t", "nat", "OP", "POSTROUTING", "-s", subnet, "!", "-o", br, "-j",
                         "MASQUERADE", NULL};
    const char *fwd_out[] = {"OP", "FORWARD", "-i", br, "!", "-o", br, "-j", "ACCEPT", NULL};
    const char *fwd_back[] = {"OP", "FORWARD", "-o", br, "-m", "conntrack", "--ctstate",
                              "ESTABLISHED,RELATED", "-j", "ACCEPT", NULL};
    int rc = ensure(ipt, nat, err, errlen);
    if (rc == VMMS_OK)
        rc = ensure(ipt, fwd_out, err, errlen);
    if (rc == VMMS_OK)
        rc = ensure(ipt, fwd_back, err, errlen);
    return rc;
}

/* The jobs' firewall (jobnet.h) for the bridge we own: out only by the
 * uplinks, never to a DNAT'd or link-local address; INPUT with host_firewall. */
static int firewall(struct lo_ctx *ctx, struct jobnet_fw *fw, char *err, size_t errlen)
{
    memset(fw, 0, sizeof *fw);
    snprintf(fw->bridge, sizeof fw->bridge, "%s", ctx->cfg.bridge);
    fw->owned = true;
    fw->input = ctx->cfg.host_firewall;
    memcpy(fw->uplinks, ctx->cfg.uplinks, sizeof fw->uplinks);
    fw->nuplinks = ctx->cfg.nuplinks;
    if (fw->nuplinks == 0 && vmms_jobfw_default_uplinks(fw) == 0)
        log_warn("jobs_no_uplink", "bridge=%s note=\"no IPv4 default route and no "
                 "network_uplinks: jobs with network reach nothing\"", fw->bridge);
    if (!fw->input) {
        char rule[256];
        jobnet_rule_text(fw->bridge, rule, sizeof rule);
        log_warn("jobs_firewall_off", "bridge=%s rule=\"%s\" note=\"host_firewall is false: "
                 "unless that rule is installed, jobs reach every service of this host\"",
                 fw->bridge, rule);
    }
    return vmms_jobfw_install(fw, "localOCI", err, errlen);
}

int lo_net_init(struct lo_ctx *ctx, char *err, size_t errlen)
{
    const char *ip = vmms_find_prog(ip_paths);
    if (ip == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI: ip (iproute2) is not installed");
    char subnet[40];
    addr(ctx->cfg.subnet, subnet, sizeof subnet);
    strcat(subnet, "/16");
    struct jobnet_fw fw;
    int rc = bridge_up(ctx, ip, err, errlen);
    if (rc == VMMS_OK)
        rc = forwarding(ctx, subnet, err, errlen);
    if (rc == VMMS_OK)
        rc = firewall(ctx, &fw, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char ups[JOBNET_UPLINKS_MAX * (JOBNET_IFNAME_MAX + 1) + 1] = "";
    for (size_t i = 0; i < fw.nuplinks; i++)
        snprintf(ups + strlen(ups), sizeof ups - strlen(ups), "%s%s", i ? "," : "",
                 fw.uplinks[i]);
    log_info("jobs_network", "vmms=localOCI bridge=%s subnet=%s uplinks=%s firewall=%d",
             fw.bridge, subnet, ups[0] ? ups : "none", (int)fw.input);
    return VMMS_OK;
}

/* The slot recorded in the bundle, or -1. */
static int bundle_slot(int dfd)
{
    if (dfd < 0)
        return -1;
    char buf[16];
    if (vmms_read_small(dfd, "net", O_NOFOLLOW, buf, sizeof buf) < 0)
        return -1;
    int s = atoi(buf);
    return s >= 2 && s < LO_NET_SLOTS - 1 ? s : -1;
}

void lo_net_adopt(struct lo_ctx *ctx, int dfd)
{
    int s = bundle_slot(dfd);
    if (s > 0) {
        pthread_mutex_lock(&ctx->lock);
        ctx->net_used[s] = 1;
        pthread_mutex_unlock(&ctx->lock);
    }
}

int lo_net_create(struct lo_ctx *ctx, const char *name, int dfd, char *err, size_t errlen)
{
    const char *ip = vmms_find_prog(ip_paths);
    if (ip == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI: ip (iproute2) is not installed");
    static unsigned cursor = 2;
    int slot = -1;
    pthread_mutex_lock(&ctx->lock);
    for (unsigned i = 0; i < LO_NET_SLOTS - 3 && slot < 0; i++) {
        unsigned s = 2 + (cursor - 2 + i) % (LO_NET_SLOTS - 3);
        if (!ctx->net_used[s]) {
            ctx->net_used[s] = 1;
            slot = (int)s;
            cursor = s + 1;
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    if (slot < 0)
        return vmms_fail(err, errlen, VMMS_BUSY, "localOCI: every address of the subnet is "
                         "in use");
    char sbuf[16];
    snprintf(sbuf, sizeof sbuf, "%d\n", slot);
    int fd = openat(dfd, "net", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, sbuf, strlen(sbuf)) != (ssize_t)strlen(sbuf)) {
        if (fd >= 0)
            close(fd);
        pthread_mutex_lock(&ctx->lock);
        ctx->net_used[slot] = 0;
        pthread_mutex_unlock(&ctx->lock);
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot record its address: %s",
                         name, strerror(errno));
    }
    close(fd);
    char veth[16], a[32], gw[32], batch[1024];
    snprintf(veth, sizeof veth, "tov%d", slot);
    addr(ctx->cfg.subnet | (uint32_t)slot, a, sizeof a);
    addr(ctx->cfg.subnet | 1, gw, sizeof gw);
    snprintf(batch, sizeof batch,
             "netns add %s\n"
             "link add %s type veth peer name eth0 netns %s\n"
             "link set dev %s master %s\n"
             "link set dev %s type bridge_slave isolated on\n"
             "link set dev %s up\n",
             name, veth, name, veth, ctx->cfg.bridge, veth, veth);
    const char *argv[] = {ip, "-batch", "-", NULL};
    int rc = vmms_spawn_ok("ip (the sandbox's veth)", argv, batch, 15000, err, errlen);
    if (rc == VMMS_OK) {
        snprintf(batch, sizeof batch,
                 "link set lo up\naddr add %s/16 dev eth0\nlink set eth0 up\n"
                 "route add default via %s\n", a, gw);
        const char *argv2[] = {ip, "-n", name, "-batch", "-", NULL};
        rc = vmms_spawn_ok("ip (the sandbox's address)", argv2, batch, 15000, err, errlen);
    }
    return rc; /* on failure the caller's destroy removes what was made */
}

int lo_net_remove(struct lo_ctx *ctx, const char *name, int dfd, char *err, size_t errlen)
{
    char p[PATH_MAX];
    int rc = VMMS_OK;
    int slot = bundle_slot(dfd);
    snprintf(p, sizeof p, "/run/netns/%s", name);
    const char *ip = vmms_find_prog(ip_paths);
    if (access(p, F_OK) == 0 && ip) {
        const char *argv[] = {ip, "netns", "delete", name, NULL};
        rc = vmms_spawn_ok("ip netns delete", argv, NULL, 15000, err, errlen);
    }
    if (slot > 0) {
        char sysp[64], veth[16];
        snprintf(veth, sizeof veth, "tov%d", slot);
        snprintf(sysp, sizeof sysp, "/sys/class/net/%s", veth);
        if (access(sysp, F_OK) == 0 && ip) {
            const char *argv[] = {ip, "link", "delete", veth, NULL};
            vmms_spawn_ok("ip link delete", argv, NULL, 15000, err, errlen);
        }
        pthread_mutex_lock(&ctx->lock);
        ctx->net_used[slot] = 0;
        pthread_mutex_unlock(&ctx->lock);
    }
    return rc;
}
