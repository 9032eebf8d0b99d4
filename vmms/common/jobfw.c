/*
 * jobfw.c: the jobs' firewall on this host (jobfw.h): the shared script of
 * common/jobnet_fw.c run through vmms_spawn, and the uplinks read from
 * /proc/net/route.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "files.h"
#include "grading.h"
#include "jobfw.h"
#include "spawn.h"

#define JOBFW_TIMEOUT_MS 30000  /* every iptables call waits 5 s at most for the lock */
#define ROUTE_MAX 16384         /* bytes of /proc/net/route read */

int vmms_jobfw_install(const struct jobnet_fw *fw, const char *who, char *err, size_t errlen)
{
    char *script = malloc(JOBNET_SCRIPT_MAX);
    if (script == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    if (jobnet_fw_script(fw, script, JOBNET_SCRIPT_MAX) != 0) {
        free(script);
        return vmms_fail(err, errlen, VMMS_ERR, "%s: bad name for the jobs' firewall", who);
    }
    const char *argv[] = {"/bin/sh", "-s", NULL};
    int status = -1;
    char out[512];
    int rc = vmms_spawn(argv, script, JOBFW_TIMEOUT_MS, &status, out, sizeof out, err, errlen);
    free(script);
    if (rc == VMMS_OK && status != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "%s: %.300s (exit %d); run the consumer as root "
                       "with iptables installed, in a container with NET_ADMIN and the host's "
                       "network (docs/sandbox-network.md)", who,
                       out[0] ? out : "the jobs' firewall could not be installed", status);
    return rc;
}

int vmms_jobfw_bridge_here(const char *bridge, const char *who, char *err, size_t errlen)
{
    char path[64 + JOBNET_IFNAME_MAX];
    if (!jobnet_ifname_ok(bridge))
        return vmms_fail(err, errlen, VMMS_ERR, "%s: bad name for the jobs' bridge", who);
    snprintf(path, sizeof path, "/sys/class/net/%s", bridge);
    if (faccessat(AT_FDCWD, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return VMMS_OK;
    return vmms_fail(err, errlen, VMMS_ERR,
                     "%s: the jobs' bridge %s is not in this network namespace, so the jobs' "
                     "firewall installed here would guard nothing; a consumer in a container "
                     "needs the host's network (network_mode: host) and NET_ADMIN "
                     "(docs/autolab-compose.md)", who, bridge);
}

size_t vmms_jobfw_default_uplinks(struct jobnet_fw *fw)
{
    char *text = malloc(ROUTE_MAX);
    fw->nuplinks = 0;
    /* one read: the kernel hands out whole lines, the default route first */
    if (text && vmms_read_small(AT_FDCWD, "/proc/net/route", 0, text, ROUTE_MAX) > 0)
        fw->nuplinks = jobnet_default_uplinks(text, fw->uplinks, JOBNET_UPLINKS_MAX);
    free(text);
    return fw->nuplinks;
}
