/* run.c: runs one job. The parent (still root) becomes a child subreaper, so
 * processes the job leaves behind are re-parented to it and their memory is
 * counted; it forks the child, which sets the limits, drops to the grading
 * user for good, redirects stdout and stderr to the output file and execs
 * make in the job directory. A close-on-exec pipe tells the parent whether
 * the exec happened or why the child could not get there. The parent waits
 * for make with the timeout (sigtimedwait on SIGCHLD against a monotonic
 * deadline), then kills all processes of the grading user (through a kill
 * helper forked before the job, so a fork bomb cannot stop the kill; see
 * procs.h) and reaps them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "autodriver.h"
#include "fdio.h"
#include "procs.h"
#include "run.h"

/* How long the parent keeps killing before it gives up (processes in
 * uninterruptible sleep can take a moment to die). */
#define KILL_TIMEOUT_MS 10000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Child side: report why we failed through the pipe and exit. */
static void child_fail(int pipe_fd, const char *what, int errnum)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s: %s", what, strerror(errnum));
    if (n > 0)
        (void)ad_write_all(pipe_fd, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    _exit(AD_EXIT_OSERROR);
}

/* Lowers a limit to value (never above the current hard limit, which only
 * CAP_SYS_RESOURCE could raise). */
static int set_limit(int resource, unsigned long value)
{
    struct rlimit cur;
    if (getrlimit(resource, &cur) < 0)
        return -1;
    rlim_t v = (rlim_t)value;
    if (cur.rlim_max != RLIM_INFINITY && v > cur.rlim_max)
        v = cur.rlim_max;
    struct rlimit lim = {v, v};
    return setrlimit(resource, &lim);
}

static void run_child(const struct ad_job *job, int pipe_fd)
{
    const struct ad_user *u = job->user;

    /* A clean start: default signal handling, nothing blocked, and no
     * descriptor but 0, 1 and 2 survives the exec. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        child_fail(pipe_fd, "Error unblocking signals", errno);
    (void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

    if (job->nproc && set_limit(RLIMIT_NPROC, job->nproc) < 0)
        child_fail(pipe_fd, "Error setting the process limit", errno);
    if (job->fsize && set_limit(RLIMIT_FSIZE, job->fsize) < 0)
        child_fail(pipe_fd, "Error setting the file size limit", errno);

    if (setgroups(u->ngroups, u->groups) < 0)
        child_fail(pipe_fd, "Error setting the supplementary groups", errno);
    if (setresgid(u->gid, u->gid, u->gid) < 0)
        child_fail(pipe_fd, "Error setting the group id", errno);
    if (setresuid(u->uid, u->uid, u->uid) < 0)
        child_fail(pipe_fd, "Error setting the user id", errno);
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
        ru != u->uid || eu != u->uid || su != u->uid ||
        rg != u->gid || eg != u->gid || sg != u->gid)
        child_fail(pipe_fd, "Error dropping privileges: ids did not change", EPERM);
    if (u->uid != 0 && setuid(0) == 0)
        child_fail(pipe_fd, "Error dropping privileges: root could be regained", EPERM);

    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0)
        child_fail(pipe_fd, "Error redirecting standard input", errno);
    if (dup2(job->output_fd, STDOUT_FILENO) < 0 || dup2(job->output_fd, STDERR_FILENO) < 0)
        child_fail(pipe_fd, "Error redirecting output to " AD_OUTPUT_FILE, errno);

    if (chdir(job->workdir) < 0)
        child_fail(pipe_fd, "Error changing to the job directory", errno);

    if (setenv("HOME", u->home, 1) < 0 || setenv("USER", u->name, 1) < 0 ||
        setenv("LOGNAME", u->name, 1) < 0 ||
        (job->timezone && setenv("TZ", job->timezone, 1) < 0))
        child_fail(pipe_fd, "Error setting the environment", errno);

    execl(AD_MAKE_PATH, "make", (char *)NULL);
    if (errno == ENOENT)
        execlp("make", "make", (char *)NULL);
    child_fail(pipe_fd, "Error executing make", errno);
}

struct reaper {
    pid_t job_pid;
    int job_done;
    int job_status;
    double job_end;
    long peak_kb;
};

/* Reaps every child that has ended; notes make's status and the largest
 * resident set. Returns -1 on an unexpected wait error. */
static int reap(struct reaper *rp)
{
    for (;;) {
        int status;
        struct rusage ru;
        pid_t pid = wait4(-1, &status, WNOHANG, &ru);
        if (pid == 0)
            return 0;
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            return errno == ECHILD ? 0 : -1;
        }
        if (ru.ru_maxrss > rp->peak_kb)
            rp->peak_kb = ru.ru_maxrss;
        if (pid == rp->job_pid) {
            rp->job_done = 1;
            rp->job_status = status;
            if (rp->job_end == 0)
                rp->job_end = now_s();
        }
    }
}

/* Waits for the exec to happen (pipe closed) or for the child's error. */
static int wait_exec(int pipe_fd, ad_err *e)
{
    char msg[512];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(pipe_fd, msg + got, sizeof msg - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == sizeof msg - 1)
            break;
    }
    if (got == 0)
        return 0;
    msg[got] = '\0';
    return ad_fail(e, "Could not start the job: %s", msg);
}

/* Waits for the started job (rp->job_pid) to end, reaping as it goes,
 * until it ends, its timeout passes (r->timed_out), or a signal in waited
 * other than SIGCHLD comes (r->aborted_by, e set). A failure to wait sets
 * e. rp->job_end is set when the wait stopped before the job ended. */
static void wait_job(const struct ad_job *job, double start, const sigset_t *waited,
                     struct reaper *rp, struct ad_result *r, ad_err *e)
{
    double deadline = start + (double)job->timeout;
    for (;;) {
        if (reap(rp) < 0) {
            ad_fail_errno(e, errno, "Error waiting for the job");
            break;
        }
        if (rp->job_done)
            break;
        struct timespec wait_ts, *wait_p = NULL;
        if (job->timeout) {
            double left = deadline - now_s();
            if (left <= 0) {
                r->timed_out = 1;
                rp->job_end = now_s();
                break;
            }
            wait_ts.tv_sec = (time_t)left;
            wait_ts.tv_nsec = (long)((left - (double)wait_ts.tv_sec) * 1e9);
            wait_p = &wait_ts;
        }
        int sig = sigtimedwait(waited, NULL, wait_p);
        if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            ad_fail_errno(e, errno, "Error waiting for the job");
            break;
        }
        if (sig > 0 && sig != SIGCHLD) {
            r->aborted_by = sig;
            rp->job_end = now_s();
            ad_fail(e, "Job aborted: the autodriver received signal %d (%s)", sig,
                    strsignal(sig));
            break;
        }
    }
}

/* The figures of a job that is over: wall time, peak memory, and its exit
 * status (128 + signal when killed) when it ended by itself. */
static void set_result(const struct reaper *rp, double start, struct ad_result *r)
{
    r->wall_seconds = rp->job_end - start;
    r->peak_kb = rp->peak_kb;
    if (rp->job_done && !r->timed_out && !r->aborted_by) {
        r->finished = 1;
        if (WIFEXITED(rp->job_status))
            r->exit_status = WEXITSTATUS(rp->job_status);
        else if (WIFSIGNALED(rp->job_status))
            r->exit_status = 128 + WTERMSIG(rp->job_status);
    }
}

int ad_run_job(const struct ad_job *job, struct ad_result *r, ad_err *e)
{
    memset(r, 0, sizeof *r);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        return ad_fail_errno(e, errno, "Error becoming a child subreaper");

    sigset_t chld, waited, old_mask;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, &old_mask) < 0)
        return ad_fail_errno(e, errno, "Error blocking SIGCHLD");
    waited = chld;
    sigaddset(&waited, SIGHUP);
    sigaddset(&waited, SIGINT);
    sigaddset(&waited, SIGTERM);

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return ad_fail_errno(e, errno, "Error creating a pipe");

    /* The kill helper is made now, while forking is possible: a fork bomb
     * may fill the pids limit before the job ends. Without one, the kill
     * rounds of ad_kill_all still work (they never fork). */
    struct ad_killer killer;
    ad_err ignored;
    (void)ad_killer_start(&killer, job->user, KILL_TIMEOUT_MS / 2, &ignored);

    struct reaper rp = {0};
    double start = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        close(pfd[0]);
        close(pfd[1]);
        ad_killer_stop(&killer);
        return ad_fail_errno(e, err, "Error forking the job");
    }
    if (pid == 0) {
        close(pfd[0]);
        run_child(job, pfd[1]);
    }
    close(pfd[1]);
    rp.job_pid = pid;
    int started = wait_exec(pfd[0], e);
    close(pfd[0]);
    if (started < 0) {
        ad_kill_all(job->user, &killer, KILL_TIMEOUT_MS, &ignored);
        reap(&rp);
        return -1;
    }
    r->ran = 1;

    wait_job(job, start, &waited, &rp, r, e);
    int failed = (!rp.job_done && !r->timed_out) || r->aborted_by;
    if (failed && rp.job_end == 0)
        rp.job_end = now_s();

    /* The job is over: nothing of the grading user may outlive it. */
    ad_err kill_err;
    if (ad_kill_all(job->user, &killer, KILL_TIMEOUT_MS, &kill_err) < 0 && !failed) {
        *e = kill_err;
        failed = 1;
    }
    /* Everything the job started is now a zombie re-parented to us (we are
     * its subreaper): collect them, and their peak memory with them. */
    reap(&rp);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);

    set_result(&rp, start, r);
    return failed ? -1 : 0;
}

int ad_block_stop_signals(ad_err *e)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return ad_fail_errno(e, errno, "Error blocking signals");
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return ad_fail_errno(e, errno, "Error ignoring SIGPIPE");
    return 0;
}
