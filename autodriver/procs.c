/* procs.c: kills the grading user's processes: a kill helper forked ahead
 * of time (kill(-1) once it has become that user), then kill rounds from
 * the caller itself, by pidfd, over a /proc scan (see procs.h for why both). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procs.h"
#include "dirnext.h"

/* Longest pause between two kill rounds. */
#define MAX_PAUSE_MS 50

/* Parses /proc/PID/status: the state letter and the real and effective uids.
 * 0 on success, -1 if the process is gone or the file is unreadable. */
static int read_status(int proc_fd, const char *pid, char *state, uid_t *ruid, uid_t *euid)
{
    char path[64];
    snprintf(path, sizeof path, "%s/status", pid);
    int fd = openat(proc_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    int have_state = 0, have_uid = 0;
    for (char *line = buf; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "State:", 6) == 0) {
            char *p = line + 6;
            while (*p == ' ' || *p == '\t')
                p++;
            *state = *p;
            have_state = 1;
        } else if (strncmp(line, "Uid:", 4) == 0) {
            unsigned long r, ef;
            if (sscanf(line + 4, "%lu %lu", &r, &ef) == 2) {
                *ruid = (uid_t)r;
                *euid = (uid_t)ef;
                have_uid = 1;
            }
        }
        line = next;
    }
    return have_state && have_uid ? 0 : -1;
}

/* A descriptor that names process pid for as long as it is open (so a
 * signal sent through it never reaches a process that reused the pid), or
 * -1 with errno (ESRCH gone; ENOSYS kernel older than 5.3). */
static int pidfd_of(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd, pid_t pid)
{
    if (pidfd < 0)
        return kill(pid, SIGKILL);
    return (int)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
}

/* Scans proc_root for live processes whose real or effective uid is uid,
 * leaving out process skip (0: none). With kill_them, each is sent SIGKILL:
 * the pidfd is opened before its status is read, so the uid checked is the
 * uid of the process signalled. Returns how many were found, or -1 with e. */
static long scan_procs(const char *proc_root, uid_t uid, int kill_them, pid_t skip, ad_err *e)
{
    int proc_fd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc_fd < 0)
        return ad_fail_errno(e, errno, "Error opening %s", proc_root);
    DIR *d = fdopendir(proc_fd);
    if (!d) {
        int err = errno;
        close(proc_fd);
        return ad_fail_errno(e, err, "Error reading %s", proc_root);
    }
    long count = 0;
    const char *name;
    int more;
    while ((more = ad_dir_next(d, &name)) > 0) {
        if (!isdigit((unsigned char)name[0]))
            continue;
        char *end;
        long pid = strtol(name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long)skip)
            continue;
        int pidfd = -1;
        if (kill_them) {
            pidfd = pidfd_of((pid_t)pid);
            if (pidfd < 0 && errno != ENOSYS)
                continue; /* exited meanwhile */
        }
        char state;
        uid_t ruid, euid;
        if (read_status(dirfd(d), name, &state, &ruid, &euid) == 0 &&
            (ruid == uid || euid == uid) && state != 'Z' && state != 'X') {
            count++;
            if (kill_them)
                (void)pidfd_kill(pidfd, (pid_t)pid); /* ESRCH: died meanwhile */
        }
        if (pidfd >= 0)
            close(pidfd);
    }
    if (more < 0) {
        int err = errno;
        closedir(d);
        return ad_fail_errno(e, err, "Error reading %s", proc_root);
    }
    closedir(d);
    return count;
}

long ad_count_user_procs(const char *proc_root, uid_t uid, ad_err *e)
{
    return scan_procs(proc_root, uid, 0, 0, e);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Sleeps *pause_ms and doubles it, up to MAX_PAUSE_MS. */
static void backoff(long *pause_ms)
{
    struct timespec ts = {0, *pause_ms * 1000000L};
    nanosleep(&ts, NULL);
    if (*pause_ms < MAX_PAUSE_MS)
        *pause_ms *= 2;
}

/* The helper's life: wait for the order, then become u for good and kill
 * until nobody of u is left. Exit codes: 0 done (or dismissed), 1 some
 * survived work_ms, 10-14 a step failed. */
static __attribute__((noreturn)) void killer_main(const struct ad_user *u, int order_fd,
                                                  long work_ms)
{
    char order;
    ssize_t n;
    do
        n = read(order_fd, &order, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(0); /* dismissed: the socket was closed */
    if (setgroups(u->ngroups, u->groups) < 0)
        _exit(10);
    if (setresgid(u->gid, u->gid, u->gid) < 0)
        _exit(11);
    if (setresuid(u->uid, u->uid, u->uid) < 0)
        _exit(12);
    if (getuid() != u->uid || geteuid() != u->uid)
        _exit(13);
    long deadline = now_ms() + work_ms;
    long pause_ms = 1;
    pid_t self = getpid();
    for (;;) {
        if (kill(-1, SIGKILL) < 0 && errno != ESRCH)
            _exit(14);
        ad_err e;
        long left = scan_procs("/proc", u->uid, 0, self, &e);
        if (left == 0)
            _exit(0);
        if (now_ms() >= deadline)
            _exit(1);
        backoff(&pause_ms);
    }
}

int ad_killer_start(struct ad_killer *k, const struct ad_user *u, long work_ms, ad_err *e)
{
    k->pid = -1;
    k->order_fd = -1;
    k->work_ms = work_ms;
    if (u->uid == 0)
        return ad_fail(e, "Refusing to kill the processes of root");
    /* A socket pair, not a pipe: the order is sent with MSG_NOSIGNAL, so a
     * helper that died meanwhile costs no SIGPIPE. */
    int pfd[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pfd) < 0)
        return ad_fail_errno(e, errno, "Error creating the kill helper's socket");
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(pfd[0]);
        close(pfd[1]);
        return ad_fail_errno(e, err, "Error forking to kill the processes of %s", u->name);
    }
    if (pid == 0) {
        /* A name of its own in ps and /proc (the autodriver's callers look
         * for "autodriver" to signal it). */
        (void)prctl(PR_SET_NAME, "autodriver-kill", 0, 0, 0);
        /* Keep only the order socket: the helper must hold nothing of ours
         * (the output file, the job's pipes) once it is the grading user. */
        int fd = pfd[0];
        if (fd > 3)
            (void)close_range(3, (unsigned)fd - 1, 0);
        (void)close_range((unsigned)fd + 1, ~0U, 0);
        killer_main(u, fd, work_ms);
    }
    close(pfd[0]);
    k->pid = pid;
    k->order_fd = pfd[1];
    return 0;
}

/* Waits for the helper until deadline (ms, monotonic) without blocking on
 * it (once it is the grading user, the job may have stopped it), then
 * kills it if it is still there, and reaps it. */
static void killer_reap(struct ad_killer *k, long deadline)
{
    long pause_ms = 1;
    for (;;) {
        int status;
        pid_t r = waitpid(k->pid, &status, WNOHANG);
        if (r == k->pid || (r < 0 && errno != EINTR))
            break; /* ended, or already reaped by someone else */
        if (r == 0 && now_ms() >= deadline) {
            kill(k->pid, SIGKILL);
            while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        if (r == 0)
            backoff(&pause_ms);
    }
    k->pid = -1;
}

void ad_killer_stop(struct ad_killer *k)
{
    if (k->order_fd >= 0)
        close(k->order_fd);
    k->order_fd = -1;
    if (k->pid > 0)
        killer_reap(k, now_ms() + 1000);
}

int ad_kill_all(const struct ad_user *u, struct ad_killer *k, long timeout_ms, ad_err *e)
{
    if (u->uid == 0)
        return ad_fail(e, "Refusing to kill the processes of root");
    long start = now_ms();
    long deadline = start + timeout_ms;
    struct ad_killer own = {-1, -1, 0};
    if (!k || k->pid <= 0) {
        ad_err ignored; /* no helper now: the rounds below do it all */
        k = ad_killer_start(&own, u, timeout_ms / 2, &ignored) == 0 ? &own : NULL;
    }
    if (k) {
        /* Its outcome does not matter: the rounds below check the result. */
        int ordered = k->order_fd >= 0 && send(k->order_fd, "K", 1, MSG_NOSIGNAL) == 1;
        close(k->order_fd);
        k->order_fd = -1;
        killer_reap(k, ordered ? start + timeout_ms / 2 : now_ms() + 1000);
    }
    long pause_ms = 1;
    for (;;) {
        long left = scan_procs("/proc", u->uid, 1, 0, e);
        if (left < 0)
            return -1;
        if (left == 0)
            return 0;
        if (now_ms() >= deadline)
            return ad_fail(e, "Gave up killing the processes of %s: %ld still alive",
                           u->name, left);
        backoff(&pause_ms);
    }
}
