/* procs.c: kills the grading user's processes (kill(-1) from a helper that
 * runs as that user) and counts the survivors by scanning /proc. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procs.h"

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

long ad_count_user_procs(const char *proc_root, uid_t uid, ad_err *e)
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
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                int err = errno;
                closedir(d);
                return ad_fail_errno(e, err, "Error reading %s", proc_root);
            }
            break;
        }
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        char state;
        uid_t ruid, euid;
        if (read_status(dirfd(d), de->d_name, &state, &ruid, &euid) < 0)
            continue; /* exited meanwhile */
        if ((ruid == uid || euid == uid) && state != 'Z' && state != 'X')
            count++;
    }
    closedir(d);
    return count;
}

/* In the helper: become u for good, then kill. Exit code 0 killed or nothing
 * to kill, 1 a call failed. Only async-signal-safe calls after fork. */
static void helper(const struct ad_user *u)
{
    if (setgroups(u->ngroups, u->groups) < 0)
        _exit(10);
    if (setresgid(u->gid, u->gid, u->gid) < 0)
        _exit(11);
    if (setresuid(u->uid, u->uid, u->uid) < 0)
        _exit(12);
    if (getuid() != u->uid || geteuid() != u->uid)
        _exit(13);
    if (kill(-1, SIGKILL) < 0 && errno != ESRCH)
        _exit(14);
    _exit(0);
}

int ad_kill_user_procs(const struct ad_user *u, ad_err *e)
{
    if (u->uid == 0)
        return ad_fail(e, "Refusing to kill the processes of root");
    pid_t pid = fork();
    if (pid < 0)
        return ad_fail_errno(e, errno, "Error forking to kill the processes of %s", u->name);
    if (pid == 0)
        helper(u);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return ad_fail_errno(e, errno, "Error waiting for the kill helper");
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    static const char *const steps[] = {"setting groups", "setting the group id",
                                        "setting the user id", "checking the user id",
                                        "sending SIGKILL"};
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code >= 10 && code <= 14)
        return ad_fail(e, "Error killing the processes of %s: the helper failed %s", u->name,
                       steps[code - 10]);
    return ad_fail(e, "Error killing the processes of %s: the helper ended with status 0x%x",
                   u->name, status);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int ad_kill_all(const struct ad_user *u, long timeout_ms, ad_err *e)
{
    long deadline = now_ms() + timeout_ms;
    long pause_ms = 1;
    for (;;) {
        if (ad_kill_user_procs(u, e) < 0)
            return -1;
        long left = ad_count_user_procs("/proc", u->uid, e);
        if (left < 0)
            return -1;
        if (left == 0)
            return 0;
        if (now_ms() >= deadline)
            return ad_fail(e, "Gave up killing the processes of %s: %ld still alive",
                           u->name, left);
        struct timespec ts = {0, pause_ms * 1000000L};
        nanosleep(&ts, NULL);
        if (pause_ms < 100)
            pause_ms *= 2;
    }
}
