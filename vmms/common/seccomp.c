/*
 * seccomp.c: the one seccomp profile of every job container (seccomp.h
 * says what it allows and refuses), kept as one table (the syscalls
 * allowed without condition, then the conditions on socket, clone, clone3
 * and personality) and rendered from it as JSON for the OCI runtime spec
 * and for Docker, which share the form.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/seccomp.h"

/* Allowed without condition (names the kernel lacks are skipped by the
 * runtime). socket, clone and personality are allowed under the
 * conditions below; everything else, io_uring_*, userfaultfd,
 * perf_event_open, bpf, keyctl, add_key, request_key, unshare, setns,
 * mount, umount2, pidfd_getfd and the rest, fails with EPERM. */
static const char *const allowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk",
    "capget", "capset", "chdir", "chmod", "chown", "chroot", "clock_getres",
    "clock_gettime", "clock_nanosleep", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fallocate", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat", "fcntl", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
    "fstatfs", "fsync", "ftruncate", "futex", "futex_waitv", "futimesat", "getcpu",
    "getcwd", "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresuid", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "ioprio_get", "ioprio_set", "io_setup", "io_submit", "kill", "lchown", "lgetxattr",
    "link", "linkat", "listen", "listxattr", "llistxattr", "lremovexattr", "lseek",
    "lsetxattr", "lstat", "madvise", "membarrier", "memfd_create", "mincore", "mkdir",
    "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "modify_ldt",
    "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl", "pread64",
    "preadv", "preadv2", "prlimit64", "process_mrelease", "process_vm_readv",
    "process_vm_writev", "pselect6", "ptrace", "pwrite64", "pwritev", "pwritev2", "read",
    "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "sendfile", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsuid", "setgid",
    "setgroups", "setitimer", "setpgid", "setpriority", "setregid", "setresgid",
    "setresuid", "setreuid", "setrlimit", "set_robust_list", "setsid", "setsockopt",
    "set_thread_area", "set_tid_address", "setuid", "setxattr", "shmat", "shmctl", "shmdt",
    "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "socketpair", "splice",
    "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_settime", "timerfd_create", "timerfd_gettime",
    "timerfd_settime", "times", "tkill", "truncate", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4", "waitid", "write",
    "writev",
    /* newer calls a recent libc uses, each as harmless as the old ones it
     * extends (Docker's default allows them) */
    "cachestat", "fchmodat2", "futex_requeue", "futex_wait", "futex_wake", "getxattrat",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "listxattrat",
    "map_shadow_stack", "mseal", "removexattrat", "setxattrat", NULL,
};

/* socket's families (argument 0). */
static const unsigned long long families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK,
                                              AF_PACKET};

/* personality's values Docker's default allows: PER_LINUX, UNAME26,
 * PER_LINUX32, UNAME26|PER_LINUX32 and the query 0xffffffff. */
static const unsigned long long personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffffULL};

/* clone's flags that make namespaces: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|
 * NEWUSER|NEWPID|NEWNET; clone is allowed when none is set. */
#define CLONE_NS_FLAGS 0x7E020000ULL

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool listed(const unsigned long long *v, size_t n, unsigned long long x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

int vmms_seccomp_verdict(const char *name, unsigned long long arg0)
{
    for (const char *const *a = allowed; *a; a++)
        if (strcmp(*a, name) == 0)
            return 0;
    if (strcmp(name, "socket") == 0)
        return listed(families, N_OF(families), arg0) ? 0 : EPERM;
    if (strcmp(name, "personality") == 0)
        return listed(personas, N_OF(personas), arg0) ? 0 : EPERM;
    if (strcmp(name, "clone") == 0)
        return (arg0 & CLONE_NS_FLAGS) == 0 ? 0 : EPERM;
    if (strcmp(name, "clone3") == 0)
        return ENOSYS;
    return EPERM;
}

/* One rule allowing name when argument 0 compares by op with value (for
 * SCMP_CMP_MASKED_EQ: arg0 & value == two). */
static json_t *arg0_rule(const char *name, const char *op, unsigned long long value,
                         unsigned long long two)
{
    return json_pack("{s:[s], s:s, s:[{s:i, s:I, s:I, s:s}]}", "names", name, "action",
                     "SCMP_ACT_ALLOW", "args", "index", 0, "value", (json_int_t)value,
                     "valueTwo", (json_int_t)two, "op", op);
}

/* Appends one SCMP_CMP_EQ rule on argument 0 of name for each value. */
static void eq_rules(json_t *sys, const char *name, const unsigned long long *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_array_append_new(sys, arg0_rule(name, "SCMP_CMP_EQ", v[i], 0));
}

json_t *vmms_seccomp_profile(void)
{
    json_t *names = json_array(), *sys = json_array();
    for (const char *const *a = allowed; *a; a++)
        json_array_append_new(names, json_string(*a));
    json_array_append_new(sys, json_pack("{s:o, s:s}", "names", names, "action",
                                         "SCMP_ACT_ALLOW"));
    eq_rules(sys, "socket", families, N_OF(families));
    eq_rules(sys, "personality", personas, N_OF(personas));
    /* (flags & CLONE_NS_FLAGS) == 0 */
    json_array_append_new(sys, arg0_rule("clone", "SCMP_CMP_MASKED_EQ", CLONE_NS_FLAGS, 0));
    json_array_append_new(sys, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action",
                                         "SCMP_ACT_ERRNO", "errnoRet", ENOSYS));
    return json_pack("{s:s, s:i, s:[s, s, s], s:o}", "defaultAction", "SCMP_ACT_ERRNO",
                     "defaultErrnoRet", EPERM, "architectures", "SCMP_ARCH_X86_64",
                     "SCMP_ARCH_X86", "SCMP_ARCH_X32", "syscalls", sys);
}

char *vmms_seccomp_profile_text(void)
{
    json_t *p = vmms_seccomp_profile();
    char *s = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return s;
}
