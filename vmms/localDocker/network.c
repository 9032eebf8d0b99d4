/*
 * network.c: the jobs' own network on this host (jobnet.h). At init it makes
 * sure the Docker network named by "network" exists as a bridge with
 * inter-container traffic off (created through the Engine API when missing;
 * an existing one that is not such a bridge stops the plugin with a message
 * saying how to fix it) and, with "host_firewall" (the default), that the
 * jobs' firewall of jobnet.h is in place on its bridge, for IPv4 and IPv6
 * (common/jobfw.h runs the shared script): the host's INPUT chain drops new
 * connections arriving from the bridge, and mangle FORWARD drops what jobs
 * send to DNAT'd destinations (published ports) and link-local addresses
 * (the cloud metadata service). Other bridges are Docker's to close: its
 * isolation chains drop traffic between its networks.
 * Jobs with network then join this network (containers.c).
 */
#include <string.h>

#include "common/jobfw.h"
#include "ld.h"
#include "log.h"

/* GET /networks/NAME into *resp; VMMS_NOT_FOUND when there is none. */
static int inspect(struct ld_ctx *ctx, struct vmms_engine_resp *resp, char *err, size_t errlen)
{
    char path[128];
    snprintf(path, sizeof path, "/networks/%s", ctx->cfg.net.name);
    struct vmms_engine_req req = {.method = "GET", .path = path};
    int rc = vmms_engine_call(&ctx->engine, &req, resp, err, errlen);
    if (rc == VMMS_OK && resp->status != 200)
        rc = vmms_engine_fail(resp, "localDocker: cannot inspect the jobs' network", err, errlen);
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
    struct vmms_engine_req req = {.method = "POST", .path = "/networks/create", .json = body};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    json_decref(body);
    /* 409: made meanwhile by another consumer; the check that follows decides. */
    if (rc == VMMS_OK && resp.status != 201 && resp.status != 409)
        rc = vmms_engine_fail(&resp, "localDocker: cannot create the jobs' network", err,
                            errlen);
    vmms_engine_resp_free(&resp);
    if (rc == VMMS_OK)
        log_info("jobs_network_created", "network=%s bridge=%s", ctx->cfg.net.name,
                 ctx->cfg.net.bridge);
    return rc;
}

int ld_net_init(struct ld_ctx *ctx, char *err, size_t errlen)
{
    struct vmms_engine_resp resp;
    int rc = inspect(ctx, &resp, err, errlen);
    if (rc == VMMS_NOT_FOUND) {
        vmms_engine_resp_free(&resp);
        rc = create(ctx, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        rc = inspect(ctx, &resp, err, errlen);
    }
    char why[512];
    if (rc == VMMS_OK && jobnet_check(resp.json, &ctx->cfg.net, ctx->net_if,
                                      sizeof ctx->net_if, why, sizeof why) != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "localDocker: %s", why);
    vmms_engine_resp_free(&resp);
    if (rc != VMMS_OK)
        return rc;

    if (ctx->cfg.net.host_firewall) {
        struct jobnet_fw fw = {.input = true};
        snprintf(fw.bridge, sizeof fw.bridge, "%s", ctx->net_if);
        rc = vmms_jobfw_install(&fw, "localDocker", err, errlen);
        if (rc != VMMS_OK)
            return rc;
    } else {
        char rule[256], q[300];
        jobnet_rule_text(ctx->net_if, rule, sizeof rule);
        log_warn("jobs_firewall_off", "network=%s bridge=%s rule=%s note=\"host_firewall is "
                 "false: unless that rule and the mangle chain of docs/sandbox-network.md are "
                 "installed, jobs reach every service of this host and the cloud metadata "
                 "service\"", ctx->cfg.net.name, ctx->net_if, log_quote(rule, q, sizeof q));
    }
    log_info("jobs_network", "network=%s bridge=%s icc=0 firewall=%s", ctx->cfg.net.name,
             ctx->net_if, ctx->cfg.net.host_firewall ? "on" : "off");
    return VMMS_OK;
}
