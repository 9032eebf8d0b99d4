/*
 * sftp.c: files in and out of a server over SFTP on an SSH connection
 * (ssh.h): a job's input files into one directory (vssh_put_files) and one
 * regular file back (vssh_get_file: size-capped, a symlink refused). Each
 * call runs its own SFTP session (libssh2 keeps SFTP operation state per
 * SFTP session, so two threads never share one).
 */
#include <errno.h>
#include <fcntl.h>
#include <libssh2_sftp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <limits.h>

#include "common/grading.h"
#include "common/ssh.h"

#define CHUNK 32768

struct xfer {
    struct vssh_conn *c;
    LIBSSH2_SFTP *sftp;
    struct vssh_wait w;
    long timeout_ms;
};

static const char *fx_text(unsigned long fx)
{
    switch (fx) {
    case LIBSSH2_FX_NO_SUCH_FILE: return "no such file";
    case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied";
    case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file already exists";
    case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space left on the host";
    case LIBSSH2_FX_QUOTA_EXCEEDED: return "quota exceeded";
    case LIBSSH2_FX_NO_SUCH_PATH: return "no such directory";
    case LIBSSH2_FX_FAILURE: return "failure";
    default: return "error";
    }
}

/* A failed SFTP call: the server's own status when it sent one. */
static int xfail(struct xfer *x, int lrc, int wr, const char *what, const char *path,
                 char *err, size_t errlen)
{
    if (!wr && lrc == LIBSSH2_ERROR_SFTP_PROTOCOL) {
        pthread_mutex_lock(&x->c->lock);
        unsigned long fx = libssh2_sftp_last_error(x->sftp);
        pthread_mutex_unlock(&x->c->lock);
        return vmms_fail(err, errlen, fx == LIBSSH2_FX_NO_SUCH_FILE ? VMMS_NOT_FOUND : VMMS_ERR,
                       "%s %s on %s: %s (SFTP status %lu)", what, path, x->c->t.label,
                       fx_text(fx), fx);
    }
    char e[300];
    snprintf(e, sizeof e, "%s %s", what, path);
    return vssh_op_failed(x->c, lrc, wr, e, x->timeout_ms, err, errlen);
}

/* Starts an SFTP session on c. */
static int xfer_start(struct xfer *x, struct vssh_conn *c, long timeout_ms, char *err,
                      size_t errlen)
{
    memset(x, 0, sizeof *x);
    x->c = c;
    x->timeout_ms = timeout_ms > 0 ? timeout_ms : c->t.command_timeout_ms;
    vssh_wait_init(&x->w, x->timeout_ms, NULL);
    int wr = vssh_slot_take(c, &x->w), lrc = 0;
    if (wr) {
        int rc = vssh_op_failed(c, 0, wr, "waiting for a free SSH channel", x->timeout_ms, err,
                                errlen);
        x->c = NULL;
        return rc;
    }
    /* Starting SFTP keeps its state in the session: hold the lock. */
    VSSH_CALL_PTR(c, &x->w, true, libssh2_sftp_init(c->session), x->sftp, lrc, wr);
    if (x->sftp == NULL) {
        if (wr == VSSH_W_TIMEOUT)
            vssh_break(c, "starting SFTP took too long");
        int rc = vssh_op_failed(c, lrc, wr, "cannot start SFTP", x->timeout_ms, err, errlen);
        vssh_slot_give(c);
        x->c = NULL;
        return rc;
    }
    return VMMS_OK;
}

static void xfer_end(struct xfer *x)
{
    if (x->c == NULL)
        return;
    struct vssh_wait w;
    vssh_wait_init(&w, 1000, NULL);
    int lrc, wr;
    if (x->sftp)
        VSSH_CALL(x->c, &w, libssh2_sftp_shutdown(x->sftp), lrc, wr);
    (void)lrc;
    (void)wr;
    vssh_slot_give(x->c);
    x->c = NULL;
}

static void close_handle(struct xfer *x, LIBSSH2_SFTP_HANDLE *fh)
{
    struct vssh_wait w;
    vssh_wait_init(&w, 1000, NULL);
    int lrc, wr;
    VSSH_CALL(x->c, &w, libssh2_sftp_close_handle(fh), lrc, wr);
    (void)lrc;
    (void)wr;
}

/* One local file to path on the host. */
static int put_file(struct xfer *x, const struct vmms_file *f, const char *path, char *buf,
                    char *err, size_t errlen)
{
    int fd = open(f->local_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot open input file %s: %s", f->local_path,
                       strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vmms_fail(err, errlen, VMMS_ERR, "input file %s is not a regular file",
                       f->local_path);
    }
    int lrc, wr;
    /* A file of that name (a repeated destFile) is replaced, never followed. */
    VSSH_CALL(x->c, &x->w, libssh2_sftp_unlink_ex(x->sftp, path, (unsigned)strlen(path)), lrc, wr);
    if (wr) {
        close(fd);
        return xfail(x, lrc, wr, "cannot replace", path, err, errlen);
    }
    LIBSSH2_SFTP_HANDLE *fh = NULL;
    VSSH_CALL_PTR(x->c, &x->w, false,
                libssh2_sftp_open_ex(x->sftp, path, (unsigned)strlen(path),
                                     LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
                                     0644, LIBSSH2_SFTP_OPENFILE),
                fh, lrc, wr);
    if (fh == NULL) {
        close(fd);
        return xfail(x, lrc, wr, "cannot create", path, err, errlen);
    }
    int rc = VMMS_OK;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = vmms_fail(err, errlen, VMMS_ERR, "cannot read %s: %s", f->local_path,
                         strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n && rc == VMMS_OK;) {
            ssize_t wn;
            VSSH_CALL(x->c, &x->w, libssh2_sftp_write(fh, buf + off, (size_t)(n - off)), wn, wr);
            if (wr || wn < 0)
                rc = xfail(x, (int)wn, wr, "cannot write", path, err, errlen);
            else
                off += wn;
        }
        if (rc != VMMS_OK)
            break;
    }
    close(fd);
    if (rc == VMMS_OK) {
        VSSH_CALL(x->c, &x->w, libssh2_sftp_close_handle(fh), lrc, wr);
        if (wr || lrc != 0)
            rc = xfail(x, lrc, wr, "cannot finish writing", path, err, errlen);
    } else {
        close_handle(x, fh);
    }
    return rc;
}

int vssh_put_files(struct vssh_conn *c, const char *dir, const struct vmms_file *files,
                   size_t nfiles, long timeout_ms, char *err, size_t errlen)
{
    int rc = vmms_check_files(files, nfiles, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct xfer x;
    rc = xfer_start(&x, c, timeout_ms, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char *buf = malloc(CHUNK);
    if (buf == NULL)
        rc = vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    for (size_t i = 0; i < nfiles && rc == VMMS_OK; i++) {
        char path[PATH_MAX + 400];
        snprintf(path, sizeof path, "%s/%s", dir, files[i].dest_name);
        rc = put_file(&x, &files[i], path, buf, err, errlen);
    }
    free(buf);
    xfer_end(&x);
    return rc;
}

/* lstat of path on the host: a regular file of at most max_bytes (when the
 * server tells its size). VMMS_OK, or a VMMS error in err (VMMS_NOT_FOUND
 * when it does not exist). */
static int check_remote(struct xfer *x, const char *path, long long max_bytes, char *err,
                        size_t errlen)
{
    int lrc, wr;
    LIBSSH2_SFTP_ATTRIBUTES at;
    memset(&at, 0, sizeof at);
    VSSH_CALL(x->c, &x->w, libssh2_sftp_stat_ex(x->sftp, path, (unsigned)strlen(path),
                                                LIBSSH2_SFTP_LSTAT, &at), lrc, wr);
    if (wr || lrc != 0)
        return xfail(x, lrc, wr, "cannot find", path, err, errlen);
    if (!(at.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) ||
        (at.permissions & LIBSSH2_SFTP_S_IFMT) != LIBSSH2_SFTP_S_IFREG)
        return vmms_fail(err, errlen, VMMS_ERR, "%s on %s is not a regular file", path,
                         x->c->t.label);
    if ((at.flags & LIBSSH2_SFTP_ATTR_SIZE) && at.filesize > (unsigned long long)max_bytes)
        return vmms_fail(err, errlen, VMMS_ERR, "%s on %s is %llu bytes, more than the %lld MiB "
                         "limit", path, x->c->t.label, (unsigned long long)at.filesize,
                         max_bytes >> 20);
    return VMMS_OK;
}

/* Opens path on the host for reading into *fh. VMMS_OK, or a VMMS error in
 * err (never VMMS_NOT_FOUND: it was just found). */
static int open_remote(struct xfer *x, const char *path, LIBSSH2_SFTP_HANDLE **fh, char *err,
                       size_t errlen)
{
    int lrc, wr;
    VSSH_CALL_PTR(x->c, &x->w, false,
                  libssh2_sftp_open_ex(x->sftp, path, (unsigned)strlen(path), LIBSSH2_FXF_READ, 0,
                                       LIBSSH2_SFTP_OPENFILE),
                  *fh, lrc, wr);
    if (*fh != NULL)
        return VMMS_OK;
    int rc = xfail(x, lrc, wr, "cannot open", path, err, errlen);
    return rc == VMMS_NOT_FOUND ? VMMS_ERR : rc;
}

/* Creates dest_path (the caller names a file of its own that does not
 * exist yet; no link followed) as *out, with a CHUNK buffer in *buf. VMMS_OK,
 * or a VMMS error in err with nothing left open. */
static int open_dest(const char *dest_path, int *out, char **buf, char *err, size_t errlen)
{
    *out = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    *buf = *out >= 0 ? malloc(CHUNK) : NULL;
    if (*out >= 0 && *buf != NULL)
        return VMMS_OK;
    int rc = vmms_fail(err, errlen, VMMS_ERR, "cannot create %s: %s", dest_path,
                       *out < 0 ? strerror(errno) : "out of memory");
    if (*out >= 0)
        close(*out);
    return rc;
}

/* Writes buf[0..n) to out (dest_path in messages). VMMS_OK or a VMMS error. */
static int write_all(int out, const char *buf, ssize_t n, const char *dest_path, char *err,
                     size_t errlen)
{
    for (ssize_t off = 0; off < n;) {
        ssize_t k = write(out, buf + off, (size_t)(n - off));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return vmms_fail(err, errlen, VMMS_ERR, "cannot write %s: %s", dest_path,
                             strerror(errno));
        off += k;
    }
    return VMMS_OK;
}

/* Copies the open remote file fh (path) to out (dest_path) through buf, at
 * most max_bytes; the bytes written in *total. VMMS_OK or a VMMS error. */
static int copy_remote(struct xfer *x, LIBSSH2_SFTP_HANDLE *fh, const char *path, int out,
                       const char *dest_path, char *buf, long long max_bytes,
                       long long *total, char *err, size_t errlen)
{
    int rc = VMMS_OK, wr;
    for (;;) {
        ssize_t n;
        VSSH_CALL(x->c, &x->w, libssh2_sftp_read(fh, buf, CHUNK), n, wr);
        if (wr || n < 0)
            return xfail(x, (int)n, wr, "cannot read", path, err, errlen);
        if (n == 0)
            return VMMS_OK;
        if (*total + n > max_bytes)
            return vmms_fail(err, errlen, VMMS_ERR, "%s on %s is more than the %lld MiB limit",
                             path, x->c->t.label, max_bytes >> 20);
        rc = write_all(out, buf, n, dest_path, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        *total += n;
    }
}

int vssh_get_file(struct vssh_conn *c, const char *path, const char *dest_path,
                  long long max_bytes, long timeout_ms, long long *bytes, char *err,
                  size_t errlen)
{
    if (bytes)
        *bytes = 0;
    struct xfer x;
    int rc = xfer_start(&x, c, timeout_ms, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    LIBSSH2_SFTP_HANDLE *fh = NULL;
    rc = check_remote(&x, path, max_bytes, err, errlen);
    if (rc == VMMS_OK)
        rc = open_remote(&x, path, &fh, err, errlen);
    if (rc != VMMS_OK) {
        xfer_end(&x);
        return rc;
    }
    int out;
    char *buf;
    rc = open_dest(dest_path, &out, &buf, err, errlen);
    if (rc != VMMS_OK) {
        close_handle(&x, fh);
        xfer_end(&x);
        return rc;
    }
    long long total = 0;
    rc = copy_remote(&x, fh, path, out, dest_path, buf, max_bytes, &total, err, errlen);
    free(buf);
    if (close(out) != 0 && rc == VMMS_OK)
        rc = vmms_fail(err, errlen, VMMS_ERR, "cannot write %s: %s", dest_path, strerror(errno));
    close_handle(&x, fh);
    xfer_end(&x);
    if (rc == VMMS_NOT_FOUND)
        rc = VMMS_ERR;
    if (bytes)
        *bytes = total;
    return rc;
}
