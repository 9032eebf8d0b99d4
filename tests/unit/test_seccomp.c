/*
 * test_seccomp.c: vmms/common/seccomp.c, the one seccomp profile of every
 * back end (issue 18.3): the socket families and the syscalls it must
 * refuse (each as narrow as Docker's and containerd's current defaults or
 * narrower), the ordinary ones a job needs, and that both renderings (the
 * OCI linux.seccomp object and Docker's profile text) say what the table
 * says: a small evaluator of the rendered rules is asked the same questions
 * as the table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

/* The module itself: it goes into the plugins, not into a library the unit
 * tests link. */
#include "common/seccomp.c"

#define AF_ALG_ 38
#define AF_VSOCK_ 40

/* Families refused: everything but UNIX, INET, INET6, NETLINK and PACKET. */
static const int refused_families[] = {
    0, 3 /* AX25 */, 4 /* IPX */, 5 /* APPLETALK */, 9 /* X25 */, 15 /* KEY */,
    21 /* RDS */, 24 /* PPPOX */, 29 /* CAN */, 30 /* TIPC */, 31 /* BLUETOOTH */,
    AF_ALG_, 39 /* NFC */, AF_VSOCK_, 41 /* KCM */, 42 /* QIPCRTR */, 43 /* SMC */,
    44 /* XDP */, 45 /* MCTP */, 46, 1000,
};

static const char *const refused_syscalls[] = {
    "io_uring_setup", "io_uring_enter", "io_uring_register", "userfaultfd",
    "perf_event_open", "bpf", "keyctl", "add_key", "request_key", "unshare", "setns",
    "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
    "clock_settime", "settimeofday", "clock_adjtime", "pidfd_getfd", "open_by_handle_at",
    "quotactl", "syslog", "acct", "lookup_dcookie", "fanotify_init", "process_madvise",
    "vhangup", "iopl", "ioperm", "kcmp", "sethostname", "setdomainname", "nfsservctl",
    "uselib", "ustat", "sysfs", "_sysctl", "get_mempolicy", "set_mempolicy", "mbind",
    "move_pages", "vm86", "vm86old", "socketcall", "statmount", "listmount", "uretprobe",
    NULL,
};

static const char *const ordinary_syscalls[] = {
    "read", "write", "openat", "close", "mmap", "mprotect", "brk", "execve", "fork",
    "vfork", "wait4", "exit_group", "pipe2", "dup2", "rt_sigaction", "futex", "getdents64",
    "newfstatat", "statx", "connect", "bind", "listen", "accept4", "sendto", "recvfrom",
    "setresuid", "setgroups", "kill", "prlimit64", "setrlimit", "ptrace", "chroot",
    "arch_prctl", "seccomp", "memfd_create", "fchmodat2", "mseal", NULL,
};

static void test_socket_families(void **state)
{
    (void)state;
    const int ok[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(vmms_seccomp_verdict("socket", (unsigned long long)ok[i]), 0);
    for (size_t i = 0; i < sizeof refused_families / sizeof refused_families[0]; i++)
        assert_int_equal(vmms_seccomp_verdict("socket",
                                              (unsigned long long)refused_families[i]),
                         EPERM);
    /* socketpair takes the same families but makes only AF_UNIX pairs */
    assert_int_equal(vmms_seccomp_verdict("socketpair", AF_UNIX), 0);
}

static void test_refused_syscalls(void **state)
{
    (void)state;
    for (const char *const *s = refused_syscalls; *s; s++) {
        int v = vmms_seccomp_verdict(*s, 0);
        if (v != EPERM)
            fail_msg("%s: verdict %d, want EPERM", *s, v);
    }
}

static void test_ordinary_syscalls(void **state)
{
    (void)state;
    for (const char *const *s = ordinary_syscalls; *s; s++)
        if (vmms_seccomp_verdict(*s, 0) != 0)
            fail_msg("%s refused", *s);
}

static void test_clone_and_personality(void **state)
{
    (void)state;
    /* glibc's fork and pthread_create */
    assert_int_equal(vmms_seccomp_verdict("clone", CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID |
                                                       SIGCHLD), 0);
    assert_int_equal(vmms_seccomp_verdict("clone", CLONE_VM | CLONE_FS | CLONE_FILES |
                                                       CLONE_SIGHAND | CLONE_THREAD |
                                                       CLONE_SYSVSEM | CLONE_SETTLS), 0);
    const unsigned long long ns[] = {CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS,
                                     CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        assert_int_equal(vmms_seccomp_verdict("clone", ns[i] | SIGCHLD), EPERM);
    /* clone3's flags are behind a pointer: ENOSYS, so libc falls back to clone */
    assert_int_equal(vmms_seccomp_verdict("clone3", 0), ENOSYS);
    assert_int_equal(vmms_seccomp_verdict("personality", 0), 0);
    assert_int_equal(vmms_seccomp_verdict("personality", 0xffffffffULL), 0);
    assert_int_equal(vmms_seccomp_verdict("personality", 0x0040000 /* ADDR_NO_RANDOMIZE */),
                     EPERM);
}

/* ---- a small evaluator of the rendered rules ---- */

/* Whether rule (one "syscalls" entry) matches name with argument 0 arg0. */
static bool rule_matches(json_t *rule, const char *name, unsigned long long arg0)
{
    bool named = false;
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(rule, "names"), i, n)
        named |= strcmp(json_string_value(n), name) == 0;
    if (!named)
        return false;
    json_t *a;
    json_array_foreach(json_object_get(rule, "args"), i, a) {
        assert_int_equal(json_integer_value(json_object_get(a, "index")), 0);
        unsigned long long v = (unsigned long long)json_integer_value(json_object_get(a, "value"));
        unsigned long long two =
            (unsigned long long)json_integer_value(json_object_get(a, "valueTwo"));
        const char *op = json_string_value(json_object_get(a, "op"));
        if (strcmp(op, "SCMP_CMP_EQ") == 0) {
            if (arg0 != v)
                return false;
        } else if (strcmp(op, "SCMP_CMP_MASKED_EQ") == 0) {
            if ((arg0 & v) != two)
                return false;
        } else {
            fail_msg("unknown op %s", op);
        }
    }
    return true;
}

/* What profile p does with name(arg0): 0 allowed, else the errno. */
static int rendered_verdict(json_t *p, const char *name, unsigned long long arg0)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(p, "syscalls"), i, r) {
        if (!rule_matches(r, name, arg0))
            continue;
        const char *action = json_string_value(json_object_get(r, "action"));
        if (strcmp(action, "SCMP_ACT_ALLOW") == 0)
            return 0;
        assert_string_equal(action, "SCMP_ACT_ERRNO");
        return (int)json_integer_value(json_object_get(r, "errnoRet"));
    }
    assert_string_equal(json_string_value(json_object_get(p, "defaultAction")),
                        "SCMP_ACT_ERRNO");
    return (int)json_integer_value(json_object_get(p, "defaultErrnoRet"));
}

/* Asks the table and p the same questions. */
static void agree(json_t *p)
{
    for (const char *const *s = refused_syscalls; *s; s++)
        assert_int_equal(rendered_verdict(p, *s, 0), vmms_seccomp_verdict(*s, 0));
    for (const char *const *s = ordinary_syscalls; *s; s++)
        assert_int_equal(rendered_verdict(p, *s, 0), 0);
    for (const char *const *s = allowed; *s; s++)
        assert_int_equal(rendered_verdict(p, *s, 0), 0);
    for (unsigned long long f = 0; f < 64; f++)
        assert_int_equal(rendered_verdict(p, "socket", f), vmms_seccomp_verdict("socket", f));
    const unsigned long long flags[] = {SIGCHLD, CLONE_NEWUSER, CLONE_NEWNET | CLONE_VM,
                                        CLONE_VM | CLONE_THREAD | CLONE_SIGHAND};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        assert_int_equal(rendered_verdict(p, "clone", flags[i]),
                         vmms_seccomp_verdict("clone", flags[i]));
    assert_int_equal(rendered_verdict(p, "clone3", 0), ENOSYS);
    for (unsigned long long v = 0; v < 0x30000; v += 4)
        assert_int_equal(rendered_verdict(p, "personality", v),
                         vmms_seccomp_verdict("personality", v));
    json_t *arch = json_object_get(p, "architectures");
    assert_int_equal(json_array_size(arch), 3);
    assert_string_equal(json_string_value(json_array_get(arch, 0)), "SCMP_ARCH_X86_64");
}

static void test_oci_rendering(void **state)
{
    (void)state;
    json_t *p = vmms_seccomp_profile();
    assert_non_null(p);
    agree(p);
    json_decref(p);
}

static void test_docker_rendering(void **state)
{
    (void)state;
    char *text = vmms_seccomp_profile_text();
    assert_non_null(text);
    json_error_t je;
    json_t *p = json_loads(text, 0, &je);
    assert_non_null(p);
    agree(p);
    json_t *oci = vmms_seccomp_profile();
    assert_true(json_equal(p, oci));
    json_decref(oci);
    json_decref(p);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_families),
        cmocka_unit_test(test_refused_syscalls),
        cmocka_unit_test(test_ordinary_syscalls),
        cmocka_unit_test(test_clone_and_personality),
        cmocka_unit_test(test_oci_rendering),
        cmocka_unit_test(test_docker_rendering),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
