/* test_autodriver_cleanup.c: unit tests of what the autodriver does with
 * files and processes: removing the grading user's files without following
 * links (rmtree.c), copying, moving and chowning the job directory
 * (jobdir.c), and counting and killing a user's processes (procs.c).
 * Tests that need other owners or other users' processes need root; run
 * as another user they are skipped. The fork bomb tests also need a pids
 * cgroup (v1 or v2) they can create, as Docker's PidsLimit does. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../autodriver/jobdir.h"
#include "../../autodriver/procs.h"
#include "../../autodriver/rmtree.h"
#include "../../autodriver/user.h"

#define GRADER 54321 /* stands for autograde */
#define OTHER 54322  /* anybody else */

static char base[64];
static char start_dir[512]; /* tests that chdir come back here */

static int setup(void **state)
{
    (void)state;
    snprintf(base, sizeof base, "/tmp/test_ad_cleanup_XXXXXX");
    assert_non_null(mkdtemp(base));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (chdir(start_dir) < 0)
        return -1;
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    ad_err e;
    const char *name = strrchr(base, '/') + 1;
    ad_remove_tree(fd, name, &e);
    close(fd);
    return 0;
}

static void path_of(char *buf, size_t len, const char *rel)
{
    int n = snprintf(buf, len, "%s/%s", base, rel);
    assert_true(n > 0 && (size_t)n < len);
}

static void make_file(const char *rel, uid_t owner, const char *text)
{
    char p[256];
    path_of(p, sizeof p, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    if (text)
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchown(fd, owner, owner), 0);
    close(fd);
}

static void make_dir(const char *rel, uid_t owner)
{
    char p[256];
    path_of(p, sizeof p, rel);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(lchown(p, owner, owner), 0);
}

static void make_link(const char *rel, const char *target, uid_t owner)
{
    char p[256];
    path_of(p, sizeof p, rel);
    assert_int_equal(symlink(target, p), 0);
    assert_int_equal(lchown(p, owner, owner), 0);
}

static int exists(const char *rel)
{
    char p[256];
    struct stat st;
    path_of(p, sizeof p, rel);
    return lstat(p, &st) == 0;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void need_root(void)
{
    if (geteuid() != 0)
        skip();
}

static void test_removes_only_the_users_files(void **state)
{
    (void)state;
    need_root();
    make_dir("home", OTHER);
    make_file("home/mine", GRADER, "x");
    make_file("home/theirs", OTHER, "y");
    make_dir("home/mydir", GRADER);
    make_file("home/mydir/f", GRADER, "z");
    make_dir("home/mydir/sub", GRADER);
    make_dir("home/theirdir", OTHER);
    make_file("home/theirdir/mine", GRADER, "w");
    make_file("home/theirdir/theirs", OTHER, "v");
    /* links planted by the grader: to a foreign file and to a foreign directory */
    make_dir("outside", OTHER);
    make_file("outside/precious", OTHER, "keep me");
    make_file("outside/graders-but-elsewhere", GRADER, "not in a cleaned dir");
    char target[256];
    path_of(target, sizeof target, "outside/precious");
    make_link("home/link-to-file", target, GRADER);
    path_of(target, sizeof target, "outside");
    make_link("home/link-to-dir", target, GRADER);
    make_link("home/mydir/link-to-dir", target, GRADER);
    make_link("home/foreign-link", target, OTHER);

    char home[256];
    path_of(home, sizeof home, "home");
    struct ad_rm_stats st;
    ad_err e;
    int fds = count_fds();
    assert_int_equal(ad_remove_user_files(home, GRADER, &st, &e), 0);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.removed, 8);

    assert_true(exists("home"));
    assert_false(exists("home/mine"));
    assert_true(exists("home/theirs"));
    assert_false(exists("home/mydir"));
    assert_true(exists("home/theirdir"));
    assert_false(exists("home/theirdir/mine"));
    assert_true(exists("home/theirdir/theirs"));
    assert_false(exists("home/link-to-file"));
    assert_false(exists("home/link-to-dir"));
    assert_true(exists("home/foreign-link"));
    /* nothing reached through the links */
    assert_true(exists("outside/precious"));
    assert_true(exists("outside/graders-but-elsewhere"));
}

static void test_users_dir_with_foreign_file_is_an_error(void **state)
{
    (void)state;
    need_root();
    make_dir("home", OTHER);
    make_dir("home/g", GRADER);
    make_file("home/g/foreign", OTHER, "x");
    make_file("home/g/own", GRADER, "x");
    char home[256];
    path_of(home, sizeof home, "home");
    ad_err e;
    struct ad_rm_stats st;
    assert_int_equal(ad_remove_user_files(home, GRADER, &st, &e), -1);
    assert_non_null(strstr(e.msg, "removing directory 'g'"));
    assert_non_null(strstr(e.msg, home));
    assert_int_equal(st.failed, 1);
    assert_false(exists("home/g/own"));
    assert_true(exists("home/g/foreign"));
}

static void test_deep_tree_is_removed_with_few_fds(void **state)
{
    (void)state;
    need_root();
    make_dir("home", OTHER);
    char p[256];
    path_of(p, sizeof p, "home");
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    /* 500 levels (deeper than PATH_MAX allows to name), a file at the bottom */
    for (int i = 0; i < 500; i++) {
        assert_int_equal(mkdirat(fd, "d", 0755), 0);
        assert_int_equal(fchownat(fd, "d", GRADER, GRADER, AT_SYMLINK_NOFOLLOW), 0);
        int sub = openat(fd, "d", O_RDONLY | O_DIRECTORY);
        assert_true(sub >= 0);
        close(fd);
        fd = sub;
    }
    int f = openat(fd, "bottom", O_WRONLY | O_CREAT, 0644);
    assert_true(f >= 0);
    assert_int_equal(fchown(f, GRADER, GRADER), 0);
    close(f);
    close(fd);

    struct ad_rm_stats st;
    ad_err e;
    int fds = count_fds();
    assert_int_equal(ad_remove_user_files(p, GRADER, &st, &e), 0);
    assert_int_equal(count_fds(), fds);
    assert_int_equal(st.removed, 501);
    assert_true(st.flattened > 0);
    DIR *d = opendir(p);
    struct dirent *de;
    int left = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            left++;
    closedir(d);
    assert_int_equal(left, 0);
}

static void test_missing_dir_is_fine(void **state)
{
    (void)state;
    ad_err e;
    struct ad_rm_stats st;
    assert_int_equal(ad_remove_user_files("/nonexistent/dir", GRADER, &st, &e), 0);
    assert_int_equal(st.removed, 0);
}

static void test_remove_tree_any_owner(void **state)
{
    (void)state;
    make_dir("t", getuid());
    make_dir("t/a", getuid());
    make_file("t/a/f", getuid(), "x");
    make_file("outside", getuid(), "keep");
    char target[256];
    path_of(target, sizeof target, "outside");
    make_link("t/l", target, getuid());
    int fd = open(base, O_RDONLY | O_DIRECTORY);
    ad_err e;
    assert_int_equal(ad_remove_tree(fd, "t", &e), 0);
    assert_false(exists("t"));
    assert_true(exists("outside"));
    assert_int_equal(ad_remove_tree(fd, "t", &e), -1);
    assert_non_null(strstr(e.msg, "'t'"));
    close(fd);
}

/* copied: by ad_copy_tree (set-id bits dropped) rather than renamed */
static void check_copied(const char *dst, int copied)
{
    char p[256], buf[64];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s/Makefile", base, dst);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "all:\n\techo\n", 11);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_int_equal(st.st_mtim.tv_sec, 1000000000);

    snprintf(p, sizeof p, "%s/%s/tool", base, dst);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, copied ? 0755 : 06755);

    snprintf(p, sizeof p, "%s/%s/sub/deeper/data", base, dst);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 4);

    snprintf(p, sizeof p, "%s/%s/link", base, dst);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    n = readlink(p, buf, sizeof buf);
    assert_int_equal(n, 11);
    assert_memory_equal(buf, "/etc/passwd", 11);

    snprintf(p, sizeof p, "%s/%s/fifo", base, dst);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
}

static void make_job_dir(const char *rel)
{
    char p[256];
    make_dir(rel, getuid());
    snprintf(p, sizeof p, "%s/Makefile", rel);
    make_file(p, getuid(), "all:\n\techo\n");
    char full[256];
    path_of(full, sizeof full, p);
    assert_int_equal(chmod(full, 0640), 0);
    struct timespec t[2] = {{1000000000, 0}, {1000000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, full, t, 0), 0);
    snprintf(p, sizeof p, "%s/tool", rel);
    make_file(p, getuid(), "#!/bin/sh\n");
    path_of(full, sizeof full, p);
    assert_int_equal(chmod(full, 06755), 0);
    snprintf(p, sizeof p, "%s/sub", rel);
    make_dir(p, getuid());
    snprintf(p, sizeof p, "%s/sub/deeper", rel);
    make_dir(p, getuid());
    snprintf(p, sizeof p, "%s/sub/deeper/data", rel);
    make_file(p, getuid(), "1234");
    snprintf(p, sizeof p, "%s/link", rel);
    make_link(p, "/etc/passwd", getuid());
    snprintf(p, sizeof p, "%s/fifo", rel);
    path_of(full, sizeof full, p);
    assert_int_equal(mkfifo(full, 0600), 0);
}

static void test_copy_tree(void **state)
{
    (void)state;
    make_job_dir("src");
    make_dir("dst", getuid());
    char p[256];
    int fd = open(base, O_RDONLY | O_DIRECTORY);
    path_of(p, sizeof p, "dst");
    int dfd = open(p, O_RDONLY | O_DIRECTORY);
    ad_err e;
    assert_int_equal(ad_copy_tree(fd, "src", dfd, &e), 0);
    check_copied("dst/src", 1);
    /* copying over an existing tree fails cleanly */
    assert_int_equal(ad_copy_tree(fd, "src", dfd, &e), -1);
    assert_non_null(strstr(e.msg, "'src'"));
    close(fd);
    close(dfd);
}

static void test_chown_tree_does_not_follow_links(void **state)
{
    (void)state;
    need_root();
    make_job_dir("job");
    make_file("victim", OTHER, "v");
    char target[256];
    path_of(target, sizeof target, "victim");
    make_link("job/sub/to-victim", target, getuid());
    int fd = open(base, O_RDONLY | O_DIRECTORY);
    ad_err e;
    assert_int_equal(ad_chown_tree(fd, "job", GRADER, GRADER + 1, &e), 0);
    close(fd);
    const char *all[] = {"job", "job/Makefile", "job/tool", "job/sub", "job/sub/deeper",
                         "job/sub/deeper/data", "job/link", "job/fifo", "job/sub/to-victim"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        char p[256];
        struct stat st;
        path_of(p, sizeof p, all[i]);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_uid, GRADER);
        assert_int_equal(st.st_gid, GRADER + 1);
    }
    struct stat st;
    assert_int_equal(lstat(target, &st), 0);
    assert_int_equal(st.st_uid, OTHER);
    assert_int_equal(lstat("/etc/passwd", &st), 0);
    assert_int_equal(st.st_uid, 0);
}

static void test_move_dir_rename(void **state)
{
    (void)state;
    make_job_dir("autolab");
    make_dir("home", getuid());
    make_dir("home/autolab", getuid()); /* an empty target is replaced, like mv */
    char p[256];
    assert_int_equal(chdir(base), 0);
    path_of(p, sizeof p, "home");
    int home = open(p, O_RDONLY | O_DIRECTORY);
    ad_err e;
    assert_int_equal(ad_move_dir("autolab", home, getuid(), &e), 0);
    assert_false(exists("autolab"));
    check_copied("home/autolab", 0);
    /* the source is gone now */
    assert_int_equal(ad_move_dir("autolab", home, getuid(), &e), -1);
    assert_non_null(strstr(e.msg, "autolab"));
    /* not a directory */
    make_file("plain", getuid(), "x");
    assert_int_equal(ad_move_dir("plain", home, getuid(), &e), -1);
    assert_non_null(strstr(e.msg, "not a directory"));
    close(home);
}

static void test_move_dir_refuses_foreign_dir(void **state)
{
    (void)state;
    need_root();
    make_dir("home", 0);
    make_dir("notmine", OTHER);
    make_file("notmine/f", OTHER, "x");
    assert_int_equal(chdir(base), 0);
    char p[256];
    path_of(p, sizeof p, "home");
    int home = open(p, O_RDONLY | O_DIRECTORY);
    ad_err e;
    assert_int_equal(ad_move_dir("notmine", home, GRADER, &e), -1);
    assert_non_null(strstr(e.msg, "not to the calling user"));
    assert_true(exists("notmine/f"));
    assert_false(exists("home/notmine"));
    close(home);
}

static void test_chown_tree_refuses_hard_links(void **state)
{
    (void)state;
    need_root();
    make_dir("job", 0);
    make_file("victim", OTHER, "v");
    char a[256], b[256];
    path_of(a, sizeof a, "victim");
    path_of(b, sizeof b, "job/link");
    assert_int_equal(link(a, b), 0);
    int fd = open(base, O_RDONLY | O_DIRECTORY);
    ad_err e;
    assert_int_equal(ad_chown_tree(fd, "job", GRADER, GRADER, &e), -1);
    assert_non_null(strstr(e.msg, "hard links"));
    close(fd);
    struct stat st;
    assert_int_equal(stat(a, &st), 0);
    assert_int_equal(st.st_uid, OTHER);
}

static void test_move_dir_across_file_systems(void **state)
{
    (void)state;
    struct stat a, b;
    if (stat("/dev/shm", &a) < 0 || stat(base, &b) < 0 || a.st_dev == b.st_dev)
        skip(); /* needs /dev/shm on another file system than /tmp */
    char other[] = "/dev/shm/test_ad_move_XXXXXX";
    assert_non_null(mkdtemp(other));
    make_job_dir("autolab");
    assert_int_equal(chdir(base), 0);
    int home = open(other, O_RDONLY | O_DIRECTORY);
    ad_err e;
    assert_int_equal(ad_move_dir("autolab", home, getuid(), &e), 0);
    assert_false(exists("autolab"));
    /* check the copy through a link from base */
    char link[256];
    path_of(link, sizeof link, "moved");
    assert_int_equal(symlink(other, link), 0);
    check_copied("moved/autolab", 1);
    assert_int_equal(ad_remove_tree(home, "autolab", &e), 0);
    close(home);
    rmdir(other);
}

static struct ad_user fake_user(void)
{
    struct ad_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.name, sizeof u.name, "fakegrader");
    u.uid = GRADER;
    u.gid = GRADER;
    snprintf(u.home, sizeof u.home, "%s", base);
    u.groups[0] = GRADER;
    u.ngroups = 1;
    return u;
}

static void test_count_procs(void **state)
{
    (void)state;
    ad_err e;
    assert_true(ad_count_user_procs("/proc", geteuid(), &e) >= 1);
    assert_int_equal(ad_count_user_procs("/proc", 3999999999u, &e), 0);
    assert_int_equal(ad_count_user_procs("/nonexistent", 0, &e), -1);
    assert_non_null(strstr(e.msg, "/nonexistent"));
}

static void test_kill_all_user_processes(void **state)
{
    (void)state;
    need_root();
    /* a process of the fake grader that forks a few sleepers of its own,
     * including one in a new session that ignores SIGTERM and SIGHUP */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(GRADER) < 0 || setuid(GRADER) < 0)
            _exit(1);
        for (int i = 0; i < 3; i++) {
            if (fork() == 0) {
                setsid();
                signal(SIGTERM, SIG_IGN);
                signal(SIGHUP, SIG_IGN);
                for (;;)
                    pause();
            }
        }
        for (;;)
            pause();
    }
    ad_err e;
    long n = 0;
    for (int i = 0; i < 200 && n < 4; i++) {
        n = ad_count_user_procs("/proc", GRADER, &e);
        usleep(10000);
    }
    assert_int_equal(n, 4);
    struct ad_user u = fake_user();
    assert_int_equal(ad_kill_all(&u, NULL, 5000, &e), 0);
    assert_int_equal(ad_count_user_procs("/proc", GRADER, &e), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    /* we ourselves (root) are untouched, and killing nothing is fine */
    assert_int_equal(ad_kill_all(&u, NULL, 1000, &e), 0);
}

static void test_kill_refuses_root(void **state)
{
    (void)state;
    struct ad_user u = fake_user();
    u.uid = 0;
    ad_err e;
    assert_int_equal(ad_kill_all(&u, NULL, 1000, &e), -1);
    assert_non_null(strstr(e.msg, "root"));
    struct ad_killer k;
    assert_int_equal(ad_killer_start(&k, &u, 1000, &e), -1);
    assert_int_equal(k.pid, -1);
    assert_non_null(strstr(e.msg, "root"));
}

/* ---------- fork bombs (procs.c) ---------- */

/* A pids cgroup the test process can put a stand-in autodriver in, as
 * Docker's PidsLimit does to a container. Empty when there is none. */
static char pids_cg[256];

static int write_file(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static long read_long(const char *dir, const char *name)
{
    char p[512], buf[64];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* Makes pids_cg with pids.max = max under the v1 pids hierarchy or the v2
 * root (when pids is delegated to its children); skips the test if neither. */
static void make_pids_cgroup(long max)
{
    static const char *const roots[] = {"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified",
                                        "/sys/fs/cgroup"};
    char text[32];
    snprintf(text, sizeof text, "%ld", max);
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        snprintf(pids_cg, sizeof pids_cg, "%s/test_ad_forkbomb_%d", roots[i], (int)getpid());
        if (mkdir(pids_cg, 0755) < 0)
            continue;
        if (write_file(pids_cg, "pids.max", text) == 0)
            return;
        rmdir(pids_cg);
    }
    pids_cg[0] = '\0';
    skip();
}

/* Removes pids_cg once its last process has been reaped. */
static void remove_pids_cgroup(void)
{
    for (int i = 0; i < 500 && rmdir(pids_cg) < 0 && errno == EBUSY; i++)
        usleep(10000);
    pids_cg[0] = '\0';
}

/* The grading user's fork bomb: every process forks for ever; a refused
 * fork is retried after a millisecond. With a stopper, one more process,
 * once forks are refused, sends SIGSTOP to every other process of the user,
 * again and again (so a kill helper that becomes the user is stopped before
 * it is done). */
static void fork_bomb(int stopper)
{
    if (setpgid(0, 0) < 0 || setgroups(0, NULL) < 0 || setgid(GRADER) < 0 ||
        setuid(GRADER) < 0)
        _exit(1);
    if (stopper && fork() == 0) {
        for (;;) { /* first let the others fill the pids limit */
            pid_t p = fork();
            if (p == 0)
                _exit(0);
            if (p < 0)
                break;
            waitpid(p, NULL, 0);
        }
        for (;;)
            kill(-1, SIGSTOP);
    }
    for (;;)
        if (fork() < 0)
            usleep(1000);
}

/* The stand-in autodriver, in the pids cgroup: optionally makes a kill
 * helper, lets the bomb fill the pids limit, then kills. Exit code 0 all
 * dead, 1 ad_kill_all failed, 2 survivors, 3 the set-up failed. */
static void bomb_and_kill(int use_killer, int stopper, long timeout_ms)
{
    if (write_file(pids_cg, "cgroup.procs", "0") < 0 ||
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        _exit(3);
    struct ad_user u = fake_user();
    struct ad_killer k = {-1, -1, 0};
    ad_err e;
    if (use_killer && ad_killer_start(&k, &u, timeout_ms / 2, &e) < 0)
        _exit(3);
    pid_t bomb = fork();
    if (bomb < 0)
        _exit(3);
    if (bomb == 0)
        fork_bomb(stopper);
    long max = read_long(pids_cg, "pids.max");
    for (int i = 0; i < 1000 && read_long(pids_cg, "pids.current") < max; i++)
        usleep(5000);
    if (read_long(pids_cg, "pids.current") < max)
        _exit(3);
    int rc = ad_kill_all(&u, use_killer ? &k : NULL, timeout_ms, &e) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "ad_kill_all: %s\n", e.msg);
    if (rc == 0 && ad_count_user_procs("/proc", GRADER, &e) != 0)
        rc = 2;
    /* Leave nothing behind for the other tests, even if ad_kill_all failed:
     * the bomb has a process group of its own. */
    while (rc && kill(-bomb, SIGKILL) == 0)
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    _exit(rc);
}

static void check_bomb_killed(int use_killer, int stopper, long timeout_ms)
{
    need_root();
    make_pids_cgroup(24);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        bomb_and_kill(use_killer, stopper, timeout_ms);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    remove_pids_cgroup();
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The fork bomb fills the pids limit: the helper made beforehand kills it. */
static void test_fork_bomb_killed_by_helper(void **state)
{
    (void)state;
    check_bomb_killed(1, 0, 5000);
}

/* No helper, and none can be forked now: the kill rounds alone do it. */
static void test_fork_bomb_killed_without_fork(void **state)
{
    (void)state;
    check_bomb_killed(0, 0, 5000);
}

/* The job stops the helper once it has become the grading user: the
 * caller gives up on it at half time and the kill rounds finish the job. */
static void test_fork_bomb_that_stops_the_helper(void **state)
{
    (void)state;
    check_bomb_killed(1, 1, 2000);
}

/* A helper that is never ordered exits without killing anything. */
static void test_killer_dismissed(void **state)
{
    (void)state;
    need_root();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(GRADER) < 0 || setuid(GRADER) < 0)
            _exit(1);
        for (;;)
            pause();
    }
    ad_err e;
    long n = 0;
    for (int i = 0; i < 200 && n < 1; i++) {
        n = ad_count_user_procs("/proc", GRADER, &e);
        usleep(10000);
    }
    assert_int_equal(n, 1);
    struct ad_user u = fake_user();
    struct ad_killer k;
    assert_int_equal(ad_killer_start(&k, &u, 1000, &e), 0);
    assert_true(k.pid > 0);
    ad_killer_stop(&k);
    assert_int_equal(k.pid, -1);
    assert_int_equal(ad_count_user_procs("/proc", GRADER, &e), 1);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
}

int main(void)
{
    if (!getcwd(start_dir, sizeof start_dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_removes_only_the_users_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_dir_with_foreign_file_is_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deep_tree_is_removed_with_few_fds, setup, teardown),
        cmocka_unit_test(test_missing_dir_is_fine),
        cmocka_unit_test_setup_teardown(test_remove_tree_any_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chown_tree_does_not_follow_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_dir_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_dir_refuses_foreign_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chown_tree_refuses_hard_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_dir_across_file_systems, setup, teardown),
        cmocka_unit_test(test_count_procs),
        cmocka_unit_test_setup_teardown(test_kill_all_user_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_refuses_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_bomb_killed_by_helper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_bomb_killed_without_fork, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_bomb_that_stops_the_helper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killer_dismissed, setup, teardown),
    };
    return cmocka_run_group_tests_name("autodriver_cleanup", tests, NULL, NULL);
}
