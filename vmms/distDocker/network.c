/*
 * network.c: the jobs' own network on each worker host (jobnet.h), through
 * the host's docker CLI over the shared SSH connection. Once per connection,
 * before the first container with network is made there: the network named
 * by "network" is created if missing (a bridge with inter-container traffic
 * off), an existing one is checked (a misconfigured one fails the container
 * with a message saying how to fix it), and with "host_firewall" (the
 * default) the jobs' firewall of jobnet.h is put in place there by its one
 * script (sh -c over SSH): the INPUT rule that drops new connections from
 * the bridge, and the mangle chain that drops what jobs send to DNAT'd
 * destinations and link-local addresses (the cloud metadata service), for
 * IPv4 and IPv6 (the SSH user must then be root; otherwise install them on
 * the host and set host_firewall false: docs/sandbox-network.md).
 * Every argument on a command line is validated and single-quoted.
 */
#include <stdlib.h>
#include <string.h>

#include "dd.h"
#include "log.h"

#define LINE_MAX_BYTES 2048

/* The network's description on c's host, created first if missing. */
static int inspect_or_create(struct dd_ctx *ctx, struct dd_conn *c, json_t **net, char *err,
                             size_t errlen)
{
    char qn[JOBNET_NAME_MAX + 8], opts[512] = "", q[128], kv[128];
    const char *o[4][2];
    size_t n = jobnet_options(&ctx->cfg.net, o), used = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(kv, sizeof kv, "%s=%s", o[i][0], o[i][1]);
        used += (size_t)snprintf(opts + used, sizeof opts - used, " -o %s",
                                 vmms_sh_quote(kv, q, sizeof q));
    }
    char line[LINE_MAX_BYTES];
    snprintf(line, sizeof line,
             "n=%s; docker network inspect \"$n\" >/dev/null 2>&1 || "
             "docker network create --driver bridge --label " JOBNET_LABEL "=1%s \"$n\" "
             ">/dev/null || docker network inspect \"$n\" >/dev/null 2>&1 || exit 1; "
             "exec docker network inspect \"$n\"",
             vmms_sh_quote(ctx->cfg.net.name, qn, sizeof qn), opts);
    struct vssh_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = 256 * 1024};
    struct vssh_out out;
    int rc = vssh_run(&c->ssh, &cmd, &out, err, errlen);
    if (rc == VMMS_OK && out.exit_code != 0)
        rc = vssh_cmd_fail(c->host->label, &out, "cannot make the jobs' network", err, errlen);
    json_t *all = rc == VMMS_OK && out.out ? json_loads(out.out, 0, NULL) : NULL;
    if (rc == VMMS_OK && (!json_is_array(all) || json_array_size(all) != 1))
        rc = vmms_fail(err, errlen, VMMS_ERR, "docker on %s: unexpected answer to `docker "
                     "network inspect %s`", c->host->label, ctx->cfg.net.name);
    if (rc == VMMS_OK)
        *net = json_incref(json_array_get(all, 0));
    json_decref(all);
    vssh_out_free(&out);
    return rc;
}

#define FW_LINE_MAX (2 * JOBNET_SCRIPT_MAX) /* the script single-quoted */

/* "exec sh -c '<the jobs' firewall script for ifname>'", malloc'd; NULL
 * with err when out of memory or the name is bad. */
static char *firewall_line(const char *ifname, char *err, size_t errlen)
{
    struct jobnet_fw fw = {.input = true};
    snprintf(fw.bridge, sizeof fw.bridge, "%s", ifname);
    char *script = malloc(JOBNET_SCRIPT_MAX), *line = malloc(FW_LINE_MAX);
    bool ok = script && line && jobnet_fw_script(&fw, script, JOBNET_SCRIPT_MAX) == 0;
    if (ok) {
        memcpy(line, "exec sh -c ", 11);
        ok = vmms_sh_quote(script, line + 11, FW_LINE_MAX - 11)[0] != '\0';
    }
    free(script);
    if (!ok) {
        free(line);
        vmms_fail(err, errlen, VMMS_ERR, "the jobs' firewall for bridge %s cannot be written "
                  "(out of memory or a bad name)", ifname);
        return NULL;
    }
    return line;
}

/* The jobs' firewall (jobnet.h's script) on c's host, run by sh there. */
static int ensure_firewall(struct dd_conn *c, const char *ifname, char *err, size_t errlen)
{
    char *line = firewall_line(ifname, err, errlen);
    if (line == NULL)
        return VMMS_ERR;
    struct vssh_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = 4096};
    struct vssh_out out;
    int rc = vssh_run(&c->ssh, &cmd, &out, err, errlen);
    if (rc == VMMS_OK && out.exit_code != 0) {
        char why[700];
        vssh_cmd_fail(c->host->label, &out, "cannot install the jobs' firewall", why,
                      sizeof why);
        rc = vmms_fail(err, errlen, VMMS_ERR, "%s (the SSH user must be root, or set "
                     "host_firewall false and install it there yourself: "
                     "docs/sandbox-network.md)", why);
    }
    vssh_out_free(&out);
    free(line);
    return rc;
}

int dd_net_check(struct dd_ctx *ctx, struct dd_conn *c, char *err, size_t errlen)
{
    json_t *net = NULL;
    int rc = inspect_or_create(ctx, c, &net, err, errlen);
    char ifname[JOBNET_IFNAME_MAX + 1], why[512];
    if (rc == VMMS_OK && jobnet_check(net, &ctx->cfg.net, ifname, sizeof ifname, why,
                                      sizeof why) != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "worker host %s: %s", c->host->label, why);
    json_decref(net);
    if (rc == VMMS_OK && ctx->cfg.net.host_firewall)
        rc = ensure_firewall(c, ifname, err, errlen);
    if (rc != VMMS_OK) {
        char q[600];
        log_error("jobs_network_refused", "host=%s network=%s err=%s", c->host->label,
                  ctx->cfg.net.name, log_quote(err, q, sizeof q));
        return rc;
    }
    atomic_store(&c->net_ok, true);
    if (!ctx->cfg.net.host_firewall) {
        char rule[256], q[300];
        jobnet_rule_text(ifname, rule, sizeof rule);
        log_warn("jobs_firewall_off", "host=%s rule=%s note=\"host_firewall is false: unless "
                 "that rule and the mangle chain of docs/sandbox-network.md are installed "
                 "there, jobs reach every service of the host and its metadata service\"",
                 c->host->label, log_quote(rule, q, sizeof q));
    }
    log_info("jobs_network", "host=%s network=%s bridge=%s icc=0 firewall=%s", c->host->label,
             ctx->cfg.net.name, ifname, ctx->cfg.net.host_firewall ? "on" : "off");
    return VMMS_OK;
}

int dd_net_ready(struct dd_ctx *ctx, struct dd_host *h, char *err, size_t errlen)
{
    struct dd_conn *c = dd_conn_get(ctx, h);
    if (c == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "worker host %s is down", h->label);
    int rc = atomic_load(&c->net_ok) ? VMMS_OK : dd_net_check(ctx, c, err, errlen);
    dd_conn_put(ctx, c);
    return rc;
}
