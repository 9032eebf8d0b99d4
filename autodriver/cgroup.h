/* cgroup.h: what the sandbox's cgroup says the job used, read by the
 * autodriver at its end for its report: CPU time (user and system) and
 * peak memory of the cgroup the autodriver itself is in (the whole
 * sandbox, as a container runtime makes it). cgroup v1 (cpuacct and
 * memory controllers) and v2 (cpu.stat, memory.peak); the path in
 * /proc/self/cgroup is tried under the controller's mount, then the mount
 * itself (a cgroup namespace, or a runtime that mounts the container's own
 * cgroup there). No figures (old kernels, no cgroup mounted): no line. */
#ifndef AD_CGROUP_H
#define AD_CGROUP_H

#include <stddef.h>

/* Set to "1" in the autodriver's environment (localOCI does, in the
 * container's) to get the cgroup line in the report. */
#define AD_CGROUP_ENV "TANGO_CGROUP_USAGE"

struct ad_cg_usage {
    long long cpu_user_ms;
    long long cpu_sys_ms;
    long long peak_kb;
};

/* Reads the figures for the process whose cgroup file is proc_cgroup (e.g.
 * "/proc/self/cgroup") under the cgroup file systems mounted at root (e.g.
 * "/sys/fs/cgroup"). 0 with u filled, -1 when they cannot be read. */
int ad_cgroup_usage(const char *proc_cgroup, const char *root, struct ad_cg_usage *u);

/* Formats "Autodriver: cgroup cpu_user_ms=U cpu_sys_ms=S peak_memory_kb=P\n".
 * Returns what snprintf returns. */
int ad_format_cgroup_usage(char *buf, size_t len, const struct ad_cg_usage *u);

#endif
