/*
 * test_files_root.c: the reads the consumer makes in a job's or an image's
 * file system (vmms/common/files.c, issue 18.5): vmms_open_in_root resolves
 * absolute links and ".." inside the root, never the host's (an image's
 * /etc/passwd -> /dev/zero reads nothing of the host's /dev/zero), opens
 * only regular files and never opens a FIFO or a device node at all (no
 * IN_OPEN event on it: opening a device can have effects); the feedback
 * copy is held to the same; vmms_read_bounded stops at its size on an
 * endless file. Runs as root (mknod).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The module and what it calls: they go into the plugins, not into a
 * library the unit tests link. */
#include "common/files.c"
#include "common/grading.c"

static char root[64];
static int rootfd = -1;

static void put(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/tango-froot-XXXXXX");
    assert_non_null(mkdtemp(root));
    char p[256];
    snprintf(p, sizeof p, "%s/etc", root);
    assert_int_equal(mkdir(p, 0755), 0);
    put("inside", "autograde:x:1001:1001::/home/autograde:/bin/bash\n");
    /* absolute links, as an image may hold */
    snprintf(p, sizeof p, "%s/etc/passwd", root);
    assert_int_equal(symlink("/inside", p), 0);
    snprintf(p, sizeof p, "%s/etc/zero", root);
    assert_int_equal(symlink("/dev/zero", p), 0);
    snprintf(p, sizeof p, "%s/fifo", root);
    assert_int_equal(mkfifo(p, 0644), 0);
    snprintf(p, sizeof p, "%s/zero", root);
    if (mknod(p, S_IFCHR | 0644, makedev(1, 5)) != 0)
        fail_msg("mknod %s: %s (the test needs root)", p, strerror(errno));
    rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(rootfd >= 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"etc/passwd", "etc/zero", "inside", "fifo", "zero",
                                        "feedback", NULL};
    char p[256];
    for (const char *const *n = names; *n; n++) {
        snprintf(p, sizeof p, "%s/%s", root, *n);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/etc", root);
    rmdir(p);
    rmdir(root);
    close(rootfd);
    return 0;
}

static void test_links_stay_inside(void **state)
{
    (void)state;
    char buf[256];
    int fd = vmms_open_in_root(rootfd, "etc/passwd", 0);
    assert_true(fd >= 0);
    assert_true(vmms_read_bounded(fd, buf, sizeof buf) > 0);
    close(fd);
    assert_non_null(strstr(buf, "autograde:x:1001:"));
    /* the image's /dev/zero, which it lacks: never the host's */
    assert_int_equal(vmms_open_in_root(rootfd, "etc/zero", 0), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(vmms_open_in_root(rootfd, "../../../../dev/zero", 0), -1);
    /* ".." stops at the root: /inside */
    fd = vmms_open_in_root(rootfd, "../../etc/../../inside", 0);
    assert_true(fd >= 0);
    close(fd);
    /* no link at all when asked */
    assert_int_equal(vmms_open_in_root(rootfd, "etc/passwd", RESOLVE_NO_SYMLINKS), -1);
    assert_int_equal(errno, ELOOP);
}

/* Whether anything opened root/name while fn ran. */
static bool opened_by(const char *name, void (*fn)(void))
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, name);
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    assert_true(in >= 0);
    assert_true(inotify_add_watch(in, p, IN_OPEN) >= 0);
    fn();
    char ev[4096];
    ssize_t n = read(in, ev, sizeof ev);
    close(in);
    return n > 0;
}

static void open_fifo(void)
{
    assert_int_equal(vmms_open_in_root(rootfd, "fifo", 0), -1);
    assert_int_equal(errno, EINVAL);
}

static void open_device(void)
{
    assert_int_equal(vmms_open_in_root(rootfd, "zero", 0), -1);
    assert_int_equal(errno, EINVAL);
}

static void test_special_files_never_opened(void **state)
{
    (void)state;
    assert_false(opened_by("fifo", open_fifo));
    assert_false(opened_by("zero", open_device));
}

static void take_device_feedback(void)
{
    char err[256] = "", dest[300];
    snprintf(dest, sizeof dest, "%s/copied", root);
    int rc = vmms_take_feedback(rootfd, "vm", dest, 1 << 20, 5000, NULL, err, sizeof err);
    assert_int_equal(rc, VMMS_ERR);
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(access(dest, F_OK), -1);
}

static void test_feedback_device_never_opened(void **state)
{
    (void)state;
    char p[256];
    snprintf(p, sizeof p, "%s/feedback", root);
    if (mknod(p, S_IFCHR | 0644, makedev(1, 5)) != 0)
        fail_msg("mknod %s: %s", p, strerror(errno));
    assert_false(opened_by("feedback", take_device_feedback));
    unlink(p);
}

static void test_read_bounded(void **state)
{
    (void)state;
    char buf[100];
    int fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    memset(buf, 'x', sizeof buf);
    assert_int_equal(vmms_read_bounded(fd, buf, sizeof buf), sizeof buf - 1);
    assert_int_equal(buf[sizeof buf - 1], '\0');
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_links_stay_inside),
        cmocka_unit_test(test_special_files_never_opened),
        cmocka_unit_test(test_feedback_device_never_opened),
        cmocka_unit_test(test_read_bounded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
