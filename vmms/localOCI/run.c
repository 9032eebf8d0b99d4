/*
 * run.c: a job inside its sandbox. Owns
 *   - copy_in / copy_out: files of the sandbox's own in the bundle's
 *     mount/, the feedback read back from there (both through
 *     common/files.h: reflink or in-kernel copy, O_EXCL|O_NOFOLLOW);
 *   - start_job: the legacy grading command (vmms_grading_command, with an
 *     exit token) written to mount/.tango-run (the glob of the command's `cp -r mount/STAR`
 *     skips it), then the runtime's `start`: the container process, parked
 *     since initialize_vm, execs it. The run is the container's own process,
 *     not the consumer's (its parent is the runtime's, then us as
 *     subreaper, or init once we die), so it survives the consumer. The
 *     handle is the exit token;
 *   - attach_job: waits on a pidfd of the container process (no polling of
 *     the runtime), then reads mount/.tango-exit-TOKEN for autodriver's
 *     status. Works from any consumer process: everything it needs is in
 *     the bundle. destroy_vm sets the watch's abort flag and the wait
 *     returns within WAKE_MS;
 *   - get_partial_output: output.log read through the container's own
 *     root (/proc/PID/root) with vmms_open_in_root and RESOLVE_NO_SYMLINKS,
 *     a regular file only, so a job's symbolic link or FIFO reads nothing
 *     of the host.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "lo.h"
#include "log.h"

#define WAKE_MS 50   /* how soon a wait sees an abort */
#define PARTIAL_SOURCES {"home/autograde/output.log", "home/autograde/autolab/output.log", \
                         "home/output/feedback", NULL}

/* The bundle's mount/ directory of a VM checked with vmms_check_vm; a
 * negative vmms_status with err set. */
static int open_mount(struct lo_ctx *ctx, const struct vmms_vm *vm, char *err, size_t errlen)
{
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    int b = lo_open_bundle(ctx, vm->name);
    if (b < 0)
        return vmms_fail(err, errlen, errno == ENOENT ? VMMS_NOT_FOUND : VMMS_ERR,
                         "sandbox %s: %s", vm->name, strerror(errno));
    int fd = openat(b, "mount", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(b);
    if (fd < 0)
        return vmms_fail(err, errlen, e == ENOENT ? VMMS_NOT_FOUND : VMMS_ERR,
                         "sandbox %s has no mount directory: %s", vm->name, strerror(e));
    return fd;
}

int lo_copy_in(void *vctx, struct vmms_vm *vm, const struct vmms_file *files, size_t nfiles,
               int timeout_s, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    int dfd = open_mount(ctx, vm, err, errlen);
    if (dfd < 0)
        return dfd;
    int rc = vmms_put_files(dfd, files, nfiles, 1000L * (timeout_s > 0 ? timeout_s : 60),
                            vm->name, err, errlen);
    close(dfd);
    return rc;
}

int lo_copy_out(void *vctx, struct vmms_vm *vm, const char *dest_path, int timeout_s,
                char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    int dfd = open_mount(ctx, vm, err, errlen);
    if (dfd < 0)
        return dfd;
    int rc = vmms_take_feedback(dfd, vm->name, dest_path, LO_FEEDBACK_MAX,
                                1000L * (timeout_s > 0 ? timeout_s : 60), NULL, err, errlen);
    close(dfd);
    return rc;
}

/* Opens a created container's exec.fifo in the runtime's state dir (its
 * path into path, PATH_MAX) with O_NONBLOCK plus mode (O_RDONLY or
 * O_WRONLY), refusing anything but a fifo; -1 when there is none to open
 * (for O_WRONLY: ENXIO when no init waits on it). */
static int open_exec_fifo(struct lo_ctx *ctx, const char *name, int mode, char *path)
{
    snprintf(path, PATH_MAX, "%s/%s/exec.fifo", ctx->runtime_root, name);
    int fd = open(path, mode | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* runc's `start`, without a runc process (~10 ms of Go start-up off the
 * job's path): the created container's init waits to open the state dir's
 * exec.fifo for writing; `start` is opening it for reading, reading what
 * init writes until it execs (the fifo is close-on-exec), and removing it
 * (runc then reports the container running). 0 when the init went on; -1
 * (nothing read: the container is not waiting) lets the caller run
 * `runc start`, which says why. */
static int fast_start(struct lo_ctx *ctx, const char *name)
{
    char path[PATH_MAX];
    int fd = open_exec_fifo(ctx, name, O_RDONLY, path);
    if (fd < 0)
        return -1;
    long long deadline = clock_mono_ms() + 1000LL * ctx->cfg.cmd_timeout_s;
    size_t got = 0;
    for (;;) {
        long long left = deadline - clock_mono_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR))
            break;
        char buf[16];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 && got > 0)
            break; /* init wrote and exec'd: started */
        else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
    close(fd);
    if (got == 0)
        return -1;
    unlink(path);
    return 0;
}

/* crun's `start`, without a crun process (~6 ms off the job's path): the
 * created container's init blocks reading the state dir's exec.fifo;
 * `start` opens it for writing, writes one byte and removes it, as crun
 * 1.8's own start does (crun then reports the container running). 0 when
 * done; -1 lets the caller run `crun start`, which says why (the fifo is
 * left in place for it). */
static int fast_start_crun(struct lo_ctx *ctx, const char *name)
{
    char path[PATH_MAX];
    int fd = open_exec_fifo(ctx, name, O_WRONLY, path);
    if (fd < 0)
        return -1;
    ssize_t n;
    do
        n = write(fd, "1", 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n != 1)
        return -1;
    unlink(path);
    return 0;
}

int lo_start_job(void *vctx, struct vmms_vm *vm, const struct vmms_run *run, char *handle,
                 size_t handlelen, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    char token[33], cmd[1024];
    int rc = vmms_start_begin(ctx->prefix, vm, handle, handlelen, token, err, errlen);
    if (rc == VMMS_OK)
        rc = vmms_grading_command(run, vm->memory_mb ? vm->memory_mb
                                                     : ctx->cfg.defaults.memory_mb,
                                  token, cmd, sizeof cmd, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    long long t0 = clock_mono_ms();
    int dfd = open_mount(ctx, vm, err, errlen);
    if (dfd < 0)
        return dfd == VMMS_NOT_FOUND ? VMMS_ERR : dfd;
    int fd = openat(dfd, ".tango-run", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0644);
    size_t n = strlen(cmd);
    cmd[n++] = '\n';
    if (fd < 0 || write(fd, cmd, n) != (ssize_t)n)
        rc = vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot write the run script: %s "
                       "(a second run in one sandbox?)", vm->name, strerror(errno));
    if (fd >= 0)
        close(fd);
    close(dfd);
    if (rc == VMMS_OK && run->cpu_limit_s > 0) {
        /* in the bundle, so a successor's attach_job enforces it too */
        char lim[32];
        int b = lo_open_bundle(ctx, vm->name);
        int lf = b >= 0 ? openat(b, "cpu_limit", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                                     O_CLOEXEC, 0600)
                        : -1;
        snprintf(lim, sizeof lim, "%d\n", run->cpu_limit_s);
        if (lf < 0 || write(lf, lim, strlen(lim)) != (ssize_t)strlen(lim))
            rc = vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot record its CPU limit",
                           vm->name);
        if (lf >= 0)
            close(lf);
        if (b >= 0)
            close(b);
    }
    if (rc == VMMS_OK && (ctx->runtime == LO_RUNC ? fast_start(ctx, vm->name)
                                                  : fast_start_crun(ctx, vm->name)) != 0) {
        const char *args[] = {"start", vm->name, NULL};
        rc = lo_runtime(ctx, "runtime start", args, err, errlen);
    }
    if (rc != VMMS_OK) {
        char q[600];
        log_warn("vm_start_failed", "name=%s err=%s", vm->name, log_quote(err, q, sizeof q));
        return rc;
    }
    snprintf(handle, handlelen, "%s", token);
    log_debug("vm_started_job", "name=%s ms=%lld", vm->name, clock_mono_ms() - t0);
    return VMMS_OK;
}

/* autodriver's status from the exit-token file: 0 and *status, or -1. */
static int read_exit(struct lo_ctx *ctx, const struct vmms_vm *vm, const char *token,
                     int *status)
{
    char e[64], name[80], buf[32];
    int dfd = open_mount(ctx, vm, e, sizeof e);
    if (dfd < 0)
        return -1;
    snprintf(name, sizeof name, ".tango-exit-%s", token);
    /* mount/ is the job's too: a regular file only, never a device node */
    int fd = vmms_open_in_root(dfd, name, RESOLVE_NO_SYMLINKS);
    ssize_t n = fd >= 0 ? vmms_read_bounded(fd, buf, sizeof buf) : -1;
    if (fd >= 0)
        close(fd);
    close(dfd);
    if (n <= 0)
        return -1;
    char *end;
    long v = strtol(buf, &end, 10);
    if (end == buf || v < 0 || v > 255)
        return -1;
    *status = (int)v;
    return 0;
}

/* The CPU limit (s) recorded in name's bundle; 0 = none. */
static int cpu_limit_of(struct lo_ctx *ctx, const char *name)
{
    int b = lo_open_bundle(ctx, name);
    int fd = b >= 0 ? openat(b, "cpu_limit", O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    char buf[16] = "";
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (b >= 0)
        close(b);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int v = atoi(buf);
    return v > 0 && v <= 86400 ? v : 0;
}

/* Says in the feedback that the job was stopped at its CPU limit. */
static void note_cpu_kill(struct lo_ctx *ctx, const struct vmms_vm *vm, int limit)
{
    char e[64], line[160];
    int dfd = open_mount(ctx, vm, e, sizeof e);
    int fd = dfd >= 0 ? openat(dfd, "feedback", O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC)
                      : -1;
    snprintf(line, sizeof line, "\nlocalOCI: the job's processes were killed at its CPU time "
             "limit (%d s of CPU)\n", limit);
    if (fd >= 0 && write(fd, line, strlen(line)) < 0)
        log_warn("cpu_note_failed", "name=%s errno=%d", vm->name, errno);
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
}

int lo_attach_job(void *vctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                  int *status, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    int rc = vmms_attach_begin(ctx->prefix, vm, handle, &wait_ms, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    int b = lo_open_bundle(ctx, vm->name);
    if (b < 0)
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "sandbox %s is gone", vm->name);
    close(b);
    if (read_exit(ctx, vm, handle, status) == 0)
        return VMMS_OK;
    struct vmms_watch w;
    vmms_watch_add(&ctx->watches, &w, vm->name);
    long long deadline = clock_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    int pid = lo_container_pid(ctx, vm->name);
    int pfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    int cpu_limit = cpu_limit_of(ctx, vm->name);
    long job_uid = -1; /* read from the image once, when the limit is reached */
    bool uid_read = false;
    bool cpu_killed = false;
    /* No process (gone, or a zombie a dead predecessor left): it ended. */
    rc = pfd >= 0 ? VMMS_TIMEOUT : VMMS_OK;
    while (pfd >= 0) {
        if (atomic_load(&w.aborted)) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: destroyed while the job ran",
                           vm->name);
            break;
        }
        long long left = deadline - clock_mono_ms();
        if (left <= 0)
            break;
        bool over = cpu_limit > 0 && lo_cpu_ms(ctx, vm->name) >= 1000LL * cpu_limit;
        if (over && !uid_read) {
            job_uid = lo_grading_uid(pid); /* bounded: never holds this wait up */
            uid_read = true;
        }
        if (over && lo_kill_job_procs(ctx, vm->name, job_uid) > 0 && !cpu_killed) {
            cpu_killed = true; /* autodriver sees its job die and reports as usual */
            log_info("vm_cpu_limit", "name=%s cpu_limit_s=%d", vm->name, cpu_limit);
        }
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left < WAKE_MS ? left : WAKE_MS));
        if (r > 0) {
            siginfo_t si = {0};
            waitid(P_PIDFD, (id_t)pfd, &si, WEXITED | WNOHANG); /* ours: reap it */
            rc = VMMS_OK;
            break;
        }
    }
    if (pfd >= 0)
        close(pfd);
    vmms_watch_remove(&ctx->watches, &w);
    if (rc == VMMS_TIMEOUT)
        return vmms_fail(err, errlen, VMMS_TIMEOUT, "sandbox %s: the job is still running",
                         vm->name);
    if (rc != VMMS_OK)
        return rc;
    /* The process ended (or was gone already): its status is in the file. */
    if (cpu_killed)
        note_cpu_kill(ctx, vm, cpu_limit);
    if (read_exit(ctx, vm, handle, status) == 0)
        return VMMS_OK;
    return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: the job's process ended without a "
                     "status (killed?)", vm->name);
}

int lo_get_partial_output(void *vctx, struct vmms_vm *vm, size_t max_bytes, char **out,
                          size_t *len, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    int rc = vmms_partial_begin(ctx->prefix, vm, &max_bytes, LO_FEEDBACK_MAX, out, len, err,
                                errlen);
    if (rc != VMMS_OK)
        return rc;
    int rfd = lo_container_root(lo_container_pid(ctx, vm->name));
    if (rfd < 0)
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "sandbox %s: no job running", vm->name);
    static const char *const sources[] = PARTIAL_SOURCES;
    int fd = -1;
    for (const char *const *s = sources; *s && fd < 0; s++)
        fd = vmms_open_in_root(rfd, *s, RESOLVE_NO_SYMLINKS);
    close(rfd);
    if (fd < 0)
        return VMMS_OK; /* nothing printed yet */
    char *buf = malloc(max_bytes + 1);
    if (buf == NULL) {
        close(fd);
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    }
    ssize_t n = vmms_read_bounded(fd, buf, max_bytes + 1);
    size_t got = n > 0 ? (size_t)n : 0;
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return VMMS_OK;
}
