/*
 * spec.c: the OCI runtime spec (config.json) of one sandbox, made with
 * jansson. Owns the security model of a job's container:
 *   - namespaces: mount, pid, ipc, uts, cgroup, and network (a fresh one
 *     with only lo, or the sandbox's own namespace on the jobs' bridge);
 *     no user namespace (root in the job is root with Docker's default
 *     capability set, as under Docker);
 *   - capabilities: Docker's default set, bounding = effective = permitted;
 *   - seccomp: an allow list (everything else EPERM) no wider than Docker's
 *     default profile: no mount, namespaces (clone with CLONE_NEW* flags is
 *     refused, clone3 is ENOSYS so libc falls back to clone), keyrings,
 *     bpf, perf, module, reboot, swap, clock setting, io_uring, kexec;
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

#include "lo.h"

static const char *const caps[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", NULL,
};

/* Allowed without condition (names the kernel lacks are skipped by the
 * runtime). */
static const char *const allowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk",
    "capget", "capset", "chdir", "chmod", "chown", "chroot", "clock_getres",
    "clock_gettime", "clock_nanosleep", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fallocate", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat", "fcntl",
    "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
    "fstat", "fstatfs", "fsync", "ftruncate", "futex", "futex_waitv", "futimesat", "getcpu",
    "getcwd", "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresuid", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "kill", "lchown",
    "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "lremovexattr",
    "lseek", "lsetxattr", "lstat", "madvise", "membarrier", "memfd_create", "mincore",
    "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap",
    "modify_ldt", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync",
    "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat",
    "open", "openat", "openat2", "pause", "pidfd_getfd", "pidfd_open", "pidfd_send_signal",
    "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "process_vm_readv",
    "process_vm_writev", "pselect6", "ptrace", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
    "semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsuid",
    "setgid", "setgroups", "setitimer", "setpgid", "setpriority", "setregid", "setresgid",
    "setresuid", "setreuid", "setrlimit", "set_robust_list", "setsid", "setsockopt",
    "set_thread_area", "set_tid_address", "setuid", "setxattr", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "socket",
    "socketpair", "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime",
    "timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate",
    "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork",
    "vmsplice", "wait4", "waitid", "write", "writev", NULL,
};

/* clone's flags that make namespaces: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|
 * NEWUSER|NEWPID|NEWNET. */
#define CLONE_NS_FLAGS 0x7E020000LL

static json_t *strings(const char *const *v)
{
    json_t *a = json_array();
    for (; *v; v++)
        json_array_append_new(a, json_string(*v));
    return a;
}

static json_t *seccomp(void)
{
    json_t *sys = json_array();
    json_array_append_new(sys, json_pack("{s:o, s:s}", "names", strings(allowed), "action",
                                         "SCMP_ACT_ALLOW"));
    json_array_append_new(sys, json_pack("{s:[s], s:s, s:[{s:i, s:I, s:I, s:s}]}", "names",
                                         "clone", "action", "SCMP_ACT_ALLOW", "args", "index",
                                         0, "value", (json_int_t)CLONE_NS_FLAGS, "valueTwo",
                                         (json_int_t)0, "op", "SCMP_CMP_MASKED_EQ"));
    json_array_append_new(sys, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action",
                                         "SCMP_ACT_ERRNO", "errnoRet", 38 /* ENOSYS */));
    static const long long personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffffLL};
    for (size_t i = 0; i < sizeof personas / sizeof personas[0]; i++)
        json_array_append_new(sys, json_pack("{s:[s], s:s, s:[{s:i, s:I, s:s}]}", "names",
                                             "personality", "action", "SCMP_ACT_ALLOW", "args",
                                             "index", 0, "value", (json_int_t)personas[i],
                                             "op", "SCMP_CMP_EQ"));
    return json_pack("{s:s, s:i, s:[s, s, s], s:o}", "defaultAction", "SCMP_ACT_ERRNO",
                     "defaultErrnoRet", 1 /* EPERM */, "architectures", "SCMP_ARCH_X86_64",
                     "SCMP_ARCH_X86", "SCMP_ARCH_X32", "syscalls", sys);
}

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

json_t *lo_spec(struct lo_ctx *ctx, const char *name, const json_t *image,
                const struct vmms_limits *lim, const char *netns)
{
    /* disk_mb as localDocker splits it: the root's upper dir (/tmp and
     * every other place on the root) a quarter (sandbox.c mounts it),
     * /home/output and /dev/shm a sixteenth each, /home the rest. */
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

    json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type",
                           "ipc", "type", "uts", "type", "mount", "type", "cgroup");
    json_array_append_new(ns, netns ? json_pack("{s:s, s:s}", "type", "network", "path", netns)
                                    : json_pack("{s:s}", "type", "network"));
    /* tmpfs pages are charged to the job: memory + disk, no swap. */
    long long mem = ((long long)lim->memory_mb + lim->disk_mb) << 20;
    json_t *res = json_pack(
        "{s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I}, s:[{s:b, s:s}]}",
        "memory", "limit", (json_int_t)mem, "swap", (json_int_t)mem,
        "cpu", "quota", (json_int_t)lim->cores * 100000, "period", (json_int_t)100000,
        "pids", "limit", (json_int_t)lim->pids,
        "devices", "allow", 0, "access", "rwm");
    char cgpath[200], host[64];
    snprintf(cgpath, sizeof cgpath, "/%s/%s", LO_CGROUP_PARENT, name);
    snprintf(host, sizeof host, "%.63s", name);
    json_t *process = json_pack(
        "{s:b, s:{s:i, s:i}, s:[s, s], s:o, s:s, s:{s:o, s:o, s:o}, s:b}",
        "terminal", 0, "user", "uid", 0, "gid", 0,
        "args", "/bin/sh", "/home/mount/.tango-run", "env", env, "cwd", "/home",
        "capabilities", "bounding", strings(caps), "effective", strings(caps), "permitted",
        strings(caps),
        "noNewPrivileges", 0);
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
                     "seccomp", seccomp(), "maskedPaths", strings(masked),
                     "readonlyPaths", strings(ro));
}
