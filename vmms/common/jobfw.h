/*
 * jobfw.h: installing the jobs' firewall (common/jobnet.h's script) on this
 * host, for the plugins that run jobs here (localOCI, localDocker). jobfw.c
 * owns it; distDocker runs the same script over SSH.
 */
#ifndef TANGO_VMMS_JOBFW_H
#define TANGO_VMMS_JOBFW_H

#include <stddef.h>

#include "jobnet.h"

#pragma GCC visibility push(hidden)

/* Runs jobnet_fw_script(fw) with /bin/sh (no shell input but the script; a
 * deadline). VMMS_OK when every rule is in place, else VMMS_ERR with err
 * naming who (the plugin), the step that failed and what to do. */
int vmms_jobfw_install(const struct jobnet_fw *fw, const char *who, char *err, size_t errlen);

/* Whether the jobs' bridge is an interface of this process's network
 * namespace (/sys/class/net/BRIDGE): rules installed in another namespace
 * (a consumer in a container without the host's network) would guard
 * nothing. VMMS_OK, else VMMS_ERR with err naming who, the bridge and the
 * fix. */
int vmms_jobfw_bridge_here(const char *bridge, const char *who, char *err, size_t errlen);

/* fw->uplinks from this host's IPv4 default routes (/proc/net/route);
 * returns how many (0: none, or the file is unreadable). */
size_t vmms_jobfw_default_uplinks(struct jobnet_fw *fw);

#pragma GCC visibility pop

#endif
