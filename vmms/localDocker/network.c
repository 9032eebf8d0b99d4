/*
 * network.c: the jobs' own network on this host (jobnet.h). At init it makes
 * sure the Docker network named by "network" exists as a bridge with
 * inter-container traffic off (created through the Engine API when missing;
 * an existing one that is not such a bridge stops the plugin with a message
 * saying how to fix it) and, with "host_firewall" (the default), that the
 * host's INPUT chain drops new connections arriving from its bridge, for
 * IPv4 and IPv6: the rule is checked with `iptables -C` and inserted first
 * with `-I` when missing, by running /usr/sbin/iptables (ip6tables) through
 * vmms_spawn (common/spawn.h: fixed argv, no shell, a timeout).
 * Jobs with network then join this network (containers.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/spawn.h"
#include "ld.h"
#include "log.h"

#define PROG_TIMEOUT_MS 15000  /* iptables -w 5 waits 5 s at most for the lock */
#define PROG_OUT_MAX 512       /* start of its stderr kept for messages */

struct family {
    const char *what;           /* for messages */
    const char *const *paths;   /* where its iptables program may be */
    const char *needs;          /* the kernel has it when this exists; NULL: always */
};

static const char *const v4_paths[] = {"/usr/sbin/iptables", "/sbin/iptables", NULL};
static const char *const v6_paths[] = {"/usr/sbin/ip6tables", "/sbin/ip6tables", NULL};
static const struct family families[] = {
    {"iptables", v4_paths, NULL},
    {"ip6tables", v6_paths, "/proc/net/if_inet6"},
};

/* Checks the rule for one family and inserts it when missing; *state says
 * what was done ("present", "installed", "no-ipv6"). */
static int ensure_rule(const struct family *f, const char *ifname, const char **state,
                       char *err, size_t errlen)
{
    if (f->needs && access(f->needs, F_OK) != 0) {
        *state = "no-ipv6"; /* no IPv6 in this kernel: nothing to reach */
        return VMMS_OK;
    }
    const char *prog = vmms_find_prog(f->paths);
    if (prog == NULL)
        return vmms_fail(err, errlen, VMMS_ERR,
                       "localDocker: %s is not installed (apt-get install iptables), so the "
                       "host cannot be closed to jobs; install it, or set host_firewall "
                       "false and drop their traffic yourself (README)", f->what);
    const char *argv[JOBNET_RULE_ARGS + 2];
    argv[0] = prog;
    for (int pass = 0; pass < 2; pass++) {
        jobnet_rule_argv(pass == 0 ? "-C" : "-I", ifname, argv + 1);
        int status = -1;
        char out[PROG_OUT_MAX];
        int rc = vmms_spawn(argv, NULL, PROG_TIMEOUT_MS, &status, out, sizeof out, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        if (status == 0) {
            *state = pass == 0 ? "present" : "installed";
            return VMMS_OK;
        }
        if (pass == 0 && status == 1)
            continue; /* -C: no such rule */
        return vmms_fail(err, errlen, VMMS_ERR,
                       "localDocker: %s %s of the jobs' firewall rule failed (exit %d: "
                       "%.90s); run the consumer as root, or set host_firewall false and "
                       "install it yourself (README)", f->what, pass == 0 ? "-C" : "-I",
                       status, out[0] ? out : "no message");
    }
    return VMMS_OK; /* not reached */
}

/* GET /networks/NAME into *resp; VMMS_NOT_FOUND when there is none. */
static int inspect(struct ld_ctx *ctx, struct ld_response *resp, char *err, size_t errlen)
{
    char path[128];
    snprintf(path, sizeof path, "/networks/%s", ctx->cfg.net.name);
    struct ld_request req = {.method = "GET", .path = path};
    int rc = ld_docker(ctx, &req, resp, err, errlen);
    if (rc == VMMS_OK && resp->status != 200)
        rc = ld_docker_fail(resp, "localDocker: cannot inspect the jobs' network", err, errlen);
    return rc;
}

static int create(struct ld_ctx *ctx, char *err, size_t errlen)
{
    const char *opts[4][2];
    size_t n = jobnet_options(&ctx->cfg.net, opts);
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, opts[i][0], json_string(opts[i][1]));
    json_t *body = json_pack("{s:s, s:s, s:b, s:o, s:{s:s}}", "Name", ctx->cfg.net.name,
                             "Driver", "bridge", "CheckDuplicate", 1, "Options", o,
                             "Labels", JOBNET_LABEL, "1");
    if (body == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    struct ld_request req = {.method = "POST", .path = "/networks/create", .json = body};
    struct ld_response resp;
    int rc = ld_docker(ctx, &req, &resp, err, errlen);
    json_decref(body);
    /* 409: made meanwhile by another consumer; the check that follows decides. */
    if (rc == VMMS_OK && resp.status != 201 && resp.status != 409)
        rc = ld_docker_fail(&resp, "localDocker: cannot create the jobs' network", err,
                            errlen);
    ld_response_free(&resp);
    if (rc == VMMS_OK)
        log_info("jobs_network_created", "network=%s bridge=%s", ctx->cfg.net.name,
                 ctx->cfg.net.bridge);
    return rc;
}

int ld_net_init(struct ld_ctx *ctx, char *err, size_t errlen)
{
    struct ld_response resp;
    int rc = inspect(ctx, &resp, err, errlen);
    if (rc == VMMS_NOT_FOUND) {
        ld_response_free(&resp);
        rc = create(ctx, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        rc = inspect(ctx, &resp, err, errlen);
    }
    char why[512];
    if (rc == VMMS_OK && jobnet_check(resp.json, &ctx->cfg.net, ctx->net_if,
                                      sizeof ctx->net_if, why, sizeof why) != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "localDocker: %s", why);
    ld_response_free(&resp);
    if (rc != VMMS_OK)
        return rc;

    const char *st4 = "off", *st6 = "off";
    if (ctx->cfg.net.host_firewall) {
        rc = ensure_rule(&families[0], ctx->net_if, &st4, err, errlen);
        if (rc == VMMS_OK)
            rc = ensure_rule(&families[1], ctx->net_if, &st6, err, errlen);
        if (rc != VMMS_OK)
            return rc;
    } else {
        char rule[256], q[300];
        jobnet_rule_text(ctx->net_if, rule, sizeof rule);
        log_warn("jobs_firewall_off", "network=%s bridge=%s rule=%s note=\"host_firewall is "
                 "false: unless that rule is installed, jobs reach every service of this "
                 "host\"", ctx->cfg.net.name, ctx->net_if, log_quote(rule, q, sizeof q));
    }
    log_info("jobs_network", "network=%s bridge=%s icc=0 firewall_ipv4=%s firewall_ipv6=%s",
             ctx->cfg.net.name, ctx->net_if, st4, st6);
    return VMMS_OK;
}
