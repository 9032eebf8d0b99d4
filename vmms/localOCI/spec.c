/*
 * spec.c: the OCI runtime spec (config.json) of one sandbox, made with
 * jansson. Owns the security model of a job's container:
 *   - namespaces: mount, pid, ipc, uts, cgroup, and network (a fresh one
 *     with only lo, or the sandbox's own namespace on the jobs' bridge);
 *     no user namespace (root in the job is root with Docker's default
 *     capability set, as under Docker);
 *   - capabilities: Docker's default set, bounding = effective = permitted;
 *   - seccomp: the profile of every back end (common/seccomp.h), no wider
 *     than Docker's default;
 *   - no_new_privileges stays off, as under Docker: the setuid-root
 *     autodriver (docs/api.md) must take root to run the job as its user and
 *     kill its processes; root never gets more than the set above;
 *   - Docker's masked and read-only /proc and /sys paths;
 *   - cgroup limits: cores as a CPU quota, memory with no swap (memory +
 *     the job's tmpfs share, since tmpfs pages are charged to the job, so a
 *     full disk is ENOSPC and never an OOM kill), pids, devices (the
 *     runtime's default allow list only);
 *   - the file systems a job writes, disk_mb in all as localDocker splits
 *     it: the overlay root's upper dir (a tmpfs of the plugin, mounted
 *     before the runtime starts), /home and /home/output tmpfs, /dev/shm;
 *     /home/mount is the bundle's mount/ directory (the inputs; the
 *     feedback is copied there).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/seccomp.h"
#include "lo.h"

static const char *const caps[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", NULL,
};

/* A JSON array of the NULL-ended strings v. */
static json_t *strings(const char *const *v)
{
    json_t *a = json_array();
    for (; *v; v++)
        json_array_append_new(a, json_string(*v));
    return a;
}

/* One OCI mount of dst; opts is a comma-separated option list. */
static json_t *mount(const char *dst, const char *type, const char *src, const char *opts)
{
    json_t *o = json_array();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", opts);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(o, json_string(t));
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
                     "options", o);
}

/* The sandbox's mounts: /proc, /dev and /sys as Docker has them, the tmpfs
 * a job writes (disk_mb as localDocker splits it: the root's upper dir, /tmp
 * and every other place on the root, a quarter (sandbox.c mounts it),
 * /home/output and /dev/shm a sixteenth each, /home the rest), the inputs'
 * bind mount, and the host's resolv.conf when it has a network. */
static json_t *spec_mounts(struct lo_ctx *ctx, const char *name, const struct vmms_limits *lim,
                           const char *netns)
{
    int shm = lim->disk_mb / 16, output = lim->disk_mb / 16, upper = lim->disk_mb / 4;
    int home = lim->disk_mb - shm - output - upper;
    char o_home[96], o_out[96], o_shm[96], bind_src[PATH_MAX];
    snprintf(o_home, sizeof o_home, "rw,exec,nosuid,nodev,size=%dm,mode=755", home);
    snprintf(o_out, sizeof o_out, "rw,noexec,nosuid,nodev,size=%dm,mode=755", output);
    snprintf(o_shm, sizeof o_shm, "rw,nosuid,nodev,noexec,size=%dm,mode=1777", shm);
    snprintf(bind_src, sizeof bind_src, "%s/%s/mount", ctx->vms_dir, name);

    json_t *mounts = json_array();
    json_array_append_new(mounts, mount("/proc", "proc", "proc", "nosuid,noexec,nodev"));
    json_array_append_new(mounts, mount("/dev", "tmpfs", "tmpfs",
                                        "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(mounts, mount("/dev/pts", "devpts", "devpts",
                                        "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,"
                                        "gid=5"));
    json_array_append_new(mounts, mount("/dev/shm", "tmpfs", "shm", o_shm));
    json_array_append_new(mounts, mount("/dev/mqueue", "mqueue", "mqueue",
                                        "nosuid,noexec,nodev"));
    json_array_append_new(mounts, mount("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
    json_array_append_new(mounts, mount("/sys/fs/cgroup", "cgroup", "cgroup",
                                        "nosuid,noexec,nodev,relatime,ro"));
    json_array_append_new(mounts, mount("/home", "tmpfs", "tmpfs", o_home));
    json_array_append_new(mounts, mount("/home/output", "tmpfs", "tmpfs", o_out));
    json_array_append_new(mounts, mount("/home/mount", "bind", bind_src,
                                        "rbind,rw,nosuid,nodev"));
    if (netns && access("/etc/resolv.conf", R_OK) == 0)
        json_array_append_new(mounts, mount("/etc/resolv.conf", "bind", "/etc/resolv.conf",
                                            "rbind,ro,nosuid,nodev,noexec"));
    return mounts;
}

/* The job's environment: the image's VAR=value entries, a default PATH when
 * the image has none, HOME and TANGO_CGROUP_USAGE. */
static json_t *spec_env(const json_t *image)
{
    json_t *env = json_array(), *e;
    size_t i;
    bool has_path = false;
    json_array_foreach(json_object_get(image, "env"), i, e) {
        const char *s = json_string_value(e);
        if (s && strchr(s, '=')) {
            json_array_append_new(env, json_string(s));
            has_path |= strncmp(s, "PATH=", 5) == 0;
        }
    }
    if (!has_path)
        json_array_append_new(env, json_string("PATH=/usr/local/sbin:/usr/local/bin:"
                                               "/usr/sbin:/usr/bin:/sbin:/bin"));
    json_array_append_new(env, json_string("HOME=/root"));
    /* our autodriver then reports the sandbox's cgroup figures (old ones ignore it) */
    json_array_append_new(env, json_string("TANGO_CGROUP_USAGE=1"));
    return env;
}

/* The namespaces: fresh pid, ipc, uts, mount and cgroup ones, and netns (a
 * path) or a fresh network namespace. */
static json_t *spec_namespaces(const char *netns)
{
    json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type",
                           "ipc", "type", "uts", "type", "mount", "type", "cgroup");
    json_array_append_new(ns, netns ? json_pack("{s:s, s:s}", "type", "network", "path", netns)
                                    : json_pack("{s:s}", "type", "network"));
    return ns;
}

/* The cgroup limits of lim. tmpfs pages are charged to the job: memory +
 * disk, no swap. */
static json_t *spec_resources(const struct vmms_limits *lim)
{
    long long mem = ((long long)lim->memory_mb + lim->disk_mb) << 20;
    return json_pack(
        "{s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I}, s:[{s:b, s:s}]}",
        "memory", "limit", (json_int_t)mem, "swap", (json_int_t)mem,
        "cpu", "quota", (json_int_t)lim->cores * 100000, "period", (json_int_t)100000,
        "pids", "limit", (json_int_t)lim->pids,
        "devices", "allow", 0, "access", "rwm");
}

/* The job's process: root running /home/mount/.tango-run with env (taken)
 * and Docker's default capabilities. */
static json_t *spec_process(json_t *env)
{
    return json_pack(
        "{s:b, s:{s:i, s:i}, s:[s, s], s:o, s:s, s:{s:o, s:o, s:o}, s:b}",
        "terminal", 0, "user", "uid", 0, "gid", 0,
        "args", "/bin/sh", "/home/mount/.tango-run", "env", env, "cwd", "/home",
        "capabilities", "bounding", strings(caps), "effective", strings(caps), "permitted",
        strings(caps),
        "noNewPrivileges", 0);
}

json_t *lo_spec(struct lo_ctx *ctx, const char *name, const json_t *image,
                const struct vmms_limits *lim, const char *netns)
{
    json_t *mounts = spec_mounts(ctx, name, lim, netns);
    json_t *env = spec_env(image);
    json_t *ns = spec_namespaces(netns);
    json_t *res = spec_resources(lim);
    char cgpath[200], host[64];
    snprintf(cgpath, sizeof cgpath, "/%s/%s", LO_CGROUP_PARENT, name);
    snprintf(host, sizeof host, "%.63s", name);
    json_t *process = spec_process(env);
    static const char *const masked[] = {
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/sys/firmware", NULL};
    static const char *const ro[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                     "/proc/sysrq-trigger", NULL};
    return json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:{s:o, s:s, s:o, s:o, s:o, s:o}}",
                     "ociVersion", "1.0.2", "process", process,
                     "root", "path", "rootfs", "readonly", 0,
                     "hostname", host, "mounts", mounts,
                     "linux", "namespaces", ns, "cgroupsPath", cgpath, "resources", res,
                     "seccomp", vmms_seccomp_profile(), "maskedPaths", strings(masked),
                     "readonlyPaths", strings(ro));
}
