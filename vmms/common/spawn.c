/*
 * spawn.c: runs the plugins' helper programs (spawn.h: the OCI runtime, ip,
 * iptables) with a fixed argv: absolute path, no shell, no PATH lookup, a
 * minimal environment, stdin from a pipe (optional input) or /dev/null,
 * stdout and stderr collected (their start), and a deadline after which the
 * program is killed. posix_spawn (vfork) keeps each call to a few ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "common/grading.h"
#include "common/spawn.h"

const char *vmms_find_prog(const char *const *paths)
{
    for (; *paths; paths++)
        if (access(*paths, X_OK) == 0)
            return *paths;
    return NULL;
}

/* Makes pout the child's stdout/stderr: a pipe to read (out_fd < 0), or a
 * CLOEXEC copy of out_fd with /dev/null as the read end. pin gets a pipe when
 * input is given. 0, or a VMMS error in err with nothing left open. */
static int open_pipes(int out_fd, const char *input, int pout[2], int pin[2], char *err,
                      size_t errlen)
{
    if (out_fd >= 0) {
        pout[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        pout[1] = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
        if (pout[0] < 0 || pout[1] < 0) {
            if (pout[0] >= 0)
                close(pout[0]);
            return vmms_fail(err, errlen, VMMS_ERR, "dup: %s", strerror(errno));
        }
    } else if (pipe2(pout, O_CLOEXEC) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "pipe: %s", strerror(errno));
    if (input && pipe2(pin, O_CLOEXEC) != 0) {
        close(pout[0]);
        close(pout[1]);
        return vmms_fail(err, errlen, VMMS_ERR, "pipe: %s", strerror(errno));
    }
    return 0;
}

/* posix_spawn of argv with stdin = in_fd (or /dev/null when in_fd < 0),
 * stdout and stderr = out_fd, a fresh session, default signals, no signal
 * mask and the minimal environment. The child's pid in *pid; posix_spawn's
 * error number (0 when started). */
static int start_child(const char *const *argv, int in_fd, int out_fd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    if (in_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
    posix_spawnattr_init(&at);
    sigset_t none, dflt;
    sigemptyset(&none);
    sigfillset(&dflt);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSID);
    char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
    int e = posix_spawn(pid, argv[0], &fa, &at, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    return e;
}

/* Writes input to fd as far as the reader takes it, then closes fd. Small
 * inputs (ip -batch): fits the pipe; a reader that quits is EPIPE. */
static void feed_input(int fd, const char *input)
{
    size_t n = strlen(input), off = 0;
    while (off < n) {
        ssize_t w = write(fd, input + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);
}

/* Reads fd until EOF or the deadline, keeping the start in out (NUL-ended,
 * newlines as spaces, trailing spaces cut; out may be NULL). Closes fd.
 * Skips the reading (only closes) when skip. True when the deadline passed. */
static bool collect_output(int fd, bool skip, long long deadline, char *out, size_t outsz)
{
    size_t used = 0;
    bool timed_out = false;
    for (; !skip;) {
        long long left = deadline - clock_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r <= 0)
            continue; /* EINTR, or the deadline check ends it */
        char buf[512];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; out && i < n && used + 1 < outsz; i++)
            out[used++] = buf[i] == '\n' || buf[i] == '\r' ? ' ' : buf[i];
    }
    close(fd);
    while (out && used > 0 && out[used - 1] == ' ')
        used--;
    if (out && outsz)
        out[used] = '\0';
    return timed_out;
}

/* Waits for our child pid, killing it (by pid) once *timed_out is or becomes
 * true at the deadline. Its wait status in *ws; VMMS_OK, or a VMMS error in
 * err when waitpid fails. */
static int reap(pid_t pid, const char *prog, long long deadline, bool *timed_out, int *ws,
                char *err, size_t errlen)
{
    for (;;) {
        if (*timed_out)
            kill(pid, SIGKILL); /* our own child, by pid */
        pid_t r = waitpid(pid, ws, *timed_out ? 0 : WNOHANG);
        if (r == pid)
            return VMMS_OK;
        if (r < 0 && errno != EINTR)
            return vmms_fail(err, errlen, VMMS_ERR, "waiting for %s: %s", prog,
                             strerror(errno));
        if (r == 0 && clock_mono_ms() >= deadline)
            *timed_out = true;
        else if (r == 0)
            clock_sleep_ms(1);
    }
}

/* out_fd >= 0: the program's stdout and stderr go there (a program whose
 * children keep them open, such as `runc create`, whose container inherits
 * them) and only its exit is waited for. */
static int spawn(const char *const *argv, const char *input, int out_fd, long timeout_ms,
                 int *status, char *out, size_t outsz, char *err, size_t errlen)
{
    int pout[2], pin[2] = {-1, -1};
    int rc = open_pipes(out_fd, input, pout, pin, err, errlen);
    if (rc != 0)
        return rc;
    pid_t pid;
    int e = start_child(argv, input ? pin[0] : -1, pout[1], &pid);
    close(pout[1]);
    if (input)
        close(pin[0]);
    if (e != 0) {
        close(pout[0]);
        if (input)
            close(pin[1]);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot run %s: %s", argv[0], strerror(e));
    }
    if (input)
        feed_input(pin[1], input);
    long long deadline = clock_mono_ms() + timeout_ms;
    bool timed_out = collect_output(pout[0], out_fd >= 0, deadline, out, outsz);
    int ws = 0;
    rc = reap(pid, argv[0], deadline, &timed_out, &ws, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    if (timed_out)
        return vmms_fail(err, errlen, VMMS_TIMEOUT, "%s did not end within %ld ms", argv[0],
                         timeout_ms);
    return VMMS_OK;
}

int vmms_spawn(const char *const *argv, const char *input, long timeout_ms, int *status,
             char *out, size_t outsz, char *err, size_t errlen)
{
    return spawn(argv, input, -1, timeout_ms, status, out, outsz, err, errlen);
}

int vmms_spawn_fd(const char *const *argv, int out_fd, long timeout_ms, int *status, char *err,
                size_t errlen)
{
    return spawn(argv, NULL, out_fd, timeout_ms, status, NULL, 0, err, errlen);
}

int vmms_spawn_ok(const char *what, const char *const *argv, const char *input, long timeout_ms,
                char *err, size_t errlen)
{
    char out[400];
    int status = -1;
    int rc = vmms_spawn(argv, input, timeout_ms, &status, out, sizeof out, err, errlen);
    if (rc == VMMS_OK && status != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "%s failed (exit %d): %.300s", what, status,
                       out[0] ? out : "no message");
    return rc;
}
