/*
 * files.c: local copies into and out of a job's directory, and the
 * one-read of a small state file, and reads inside a job's root (files.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/fs.h> /* FICLONE */

#include "clock.h"
#include "common/files.h"
#include "common/grading.h"

#define COPY_CHUNK (1 << 20)

ssize_t vmms_read_small(int dirfd, const char *path, int flags, char *buf, size_t bufsz)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, bufsz - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return n;
}

int vmms_open_in_root(int rootfd, const char *path, unsigned long long resolve)
{
    /* a link as the last component is followed too, within the root
     * (RESOLVE_NO_SYMLINKS in resolve refuses it) */
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve};
    int p = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
    if (p < 0)
        return -1;
    struct stat st;
    int fd = -1;
    if (fstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
        /* reopened through the O_PATH fd: the very inode checked */
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", p);
        fd = open(self, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    } else {
        errno = EINVAL;
    }
    int e = errno;
    close(p);
    errno = e;
    return fd;
}

ssize_t vmms_read_bounded(int fd, char *buf, size_t bufsz)
{
    size_t got = 0;
    while (got + 1 < bufsz) {
        ssize_t n = read(fd, buf + got, bufsz - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

long long vmms_copy_fd(int in, int out, long long max, long long deadline_ms)
{
    struct stat st;
    if (fstat(in, &st) == 0 && st.st_size <= max && ioctl(out, FICLONE, in) == 0)
        return 0;
    long long total = 0;
    for (;;) {
        if (clock_mono_ms() > deadline_ms)
            return -ETIMEDOUT;
        ssize_t n = sendfile(out, in, NULL, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return total;
        total += n;
        if (total > max)
            return -EFBIG;
    }
}

/* One input file into dfd (see vmms_put_files); where: "VM x". */
static int put_file(int dfd, const struct vmms_file *f, long long deadline_ms, const char *where,
                    char *err, size_t errlen)
{
    if (unlinkat(dfd, f->dest_name, 0) != 0 && errno != ENOENT)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot replace %s in %s: %s", f->dest_name,
                         where, strerror(errno));
    int in = open(f->local_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (in < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot open input file %s: %s", f->local_path,
                         strerror(errno));
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(in);
        return vmms_fail(err, errlen, VMMS_ERR, "input file %s is not a regular file",
                         f->local_path);
    }
    int out = openat(dfd, f->dest_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot create %s in %s: %s", f->dest_name,
                         where, strerror(e));
    }
    long long c = vmms_copy_fd(in, out, 1LL << 62, deadline_ms);
    if (c >= 0 && fchmod(out, 0644) != 0)
        c = -errno;
    close(in);
    if (close(out) != 0 && c >= 0)
        c = -errno;
    if (c < 0)
        return vmms_fail(err, errlen, c == -ETIMEDOUT ? VMMS_TIMEOUT : VMMS_ERR,
                         "cannot copy %s into %s: %s", f->dest_name, where, strerror((int)-c));
    return VMMS_OK;
}

int vmms_put_files(int dfd, const struct vmms_file *files, size_t nfiles, long timeout_ms,
                   const char *vm_name, char *err, size_t errlen)
{
    long long deadline_ms = clock_mono_ms() + timeout_ms;
    char where[160];
    snprintf(where, sizeof where, "VM %s", vm_name);
    int rc = vmms_check_files(files, nfiles, err, errlen);
    for (size_t i = 0; i < nfiles && rc == VMMS_OK; i++)
        rc = put_file(dfd, &files[i], deadline_ms, where, err, errlen);
    return rc;
}

int vmms_take_feedback(int dfd, const char *vm_name, const char *dest_path, long long max,
                       long timeout_ms, long long *bytes, char *err, size_t errlen)
{
    long long deadline_ms = clock_mono_ms() + timeout_ms;
    char where[160];
    snprintf(where, sizeof where, "VM %s", vm_name);
    if (bytes)
        *bytes = 0;
    /* checked to be a regular file before it is opened for reading: a
     * device node the job made there is never opened on the host */
    int in = vmms_open_in_root(dfd, "feedback", RESOLVE_NO_SYMLINKS);
    if (in < 0 && errno == EINVAL)
        return vmms_fail(err, errlen, VMMS_ERR, "%s: feedback is not a regular file", where);
    if (in < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "%s has no feedback file (%s): the job did "
                         "not finish", where, strerror(errno));
    struct stat st;
    if (fstat(in, &st) != 0) {
        close(in);
        return vmms_fail(err, errlen, VMMS_ERR, "%s: feedback: %s", where, strerror(errno));
    }
    if (st.st_size > max) {
        close(in);
        return vmms_fail(err, errlen, VMMS_ERR, "%s: feedback is %lld bytes, more than the "
                         "%lld MiB limit", where, (long long)st.st_size, max >> 20);
    }
    int out = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot create %s: %s", dest_path, strerror(e));
    }
    long long c = vmms_copy_fd(in, out, max, deadline_ms);
    if (c == 0)
        c = st.st_size; /* a reflink */
    close(in);
    if (close(out) != 0 && c >= 0)
        c = -errno;
    if (c == -ETIMEDOUT)
        return vmms_fail(err, errlen, VMMS_TIMEOUT, "copying the feedback of %s took too long",
                         where);
    if (c == -EFBIG)
        return vmms_fail(err, errlen, VMMS_ERR, "%s: feedback is more than the %lld MiB limit",
                         where, max >> 20);
    if (c < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot copy the feedback of %s to %s: %s",
                         where, dest_path, strerror((int)-c));
    if (bytes)
        *bytes = c;
    return VMMS_OK;
}
