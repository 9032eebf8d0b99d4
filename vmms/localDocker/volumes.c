/*
 * volumes.c: the per-VM directory <volume_dir>/<vm name>/ that is bind
 * mounted at /home/mount in the container. Owns its creation, copy_in (a
 * copy or reflink of each input file, never a link to the host's file; the
 * last of two files with one name wins), copy_out (the feedback file the
 * job wrote, out of it; the job's command removes an input of that name
 * before it runs, exec.c), both through common/files.h, and its removal.
 * Every file made here is created O_EXCL|O_NOFOLLOW under a name unlinked
 * first. The job runs as root in the container and
 * may leave anything there, so removal never follows a symlink: everything
 * is done relative to directory fds with openat/unlinkat.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/files.h"
#include "ld.h"
#include "log.h"

#define RM_MAX_DEPTH 48     /* deeper subtrees are moved up and removed later */
#define RM_MAX_PASSES 10000 /* bound on the whole removal */

/* Empties the directory open at fd. Directories at RM_MAX_DEPTH are renamed
 * into topfd (the VM's directory) instead, so the caller's next pass gets
 * them without holding more fds open. Returns 0 or an errno value. */
static int empty_dir(int fd, int depth, int topfd, unsigned *moved)
{
    int dfd = dup(fd);
    if (dfd < 0)
        return errno;
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = errno;
        close(dfd);
        return e;
    }
    rewinddir(d); /* the dup shares fd's offset, left at the end by a past pass */
    int first_err = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT && !first_err)
                first_err = errno;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (depth >= RM_MAX_DEPTH) {
                char tmp[64];
                snprintf(tmp, sizeof tmp, ".tango-rm-%u", (*moved)++);
                if (renameat(fd, n, topfd, tmp) != 0 && !first_err)
                    first_err = errno;
                continue;
            }
            int cfd = openat(fd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                if (!first_err)
                    first_err = errno;
                continue;
            }
            int e = empty_dir(cfd, depth + 1, topfd, moved);
            close(cfd);
            if (e && !first_err)
                first_err = e;
            if (unlinkat(fd, n, AT_REMOVEDIR) != 0 && errno != ENOENT && !first_err)
                first_err = errno;
        } else if (unlinkat(fd, n, 0) != 0 && errno != ENOENT && !first_err) {
            first_err = errno;
        }
    }
    closedir(d);
    return first_err;
}

int ld_vol_remove(struct ld_ctx *ctx, const char *name, char *err, size_t errlen)
{
    struct stat st;
    if (fstatat(ctx->volume_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return VMMS_OK;
        return vmms_fail(err, errlen, VMMS_ERR, "cannot stat %s/%s: %s", ctx->volume_real,
                       name, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        int fd = openat(ctx->volume_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return vmms_fail(err, errlen, VMMS_ERR, "cannot open %s/%s: %s", ctx->volume_real,
                           name, strerror(errno));
        unsigned moved = 0;
        for (int pass = 0; pass < RM_MAX_PASSES; pass++) {
            unsigned before = moved;
            empty_dir(fd, 1, fd, &moved);
            if (moved == before) /* nothing left to come back for */
                break;
        }
        close(fd);
    }
    if (unlinkat(ctx->volume_fd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0 &&
        errno != ENOENT)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot remove %s/%s: %s", ctx->volume_real,
                       name, strerror(errno));
    return VMMS_OK;
}

int ld_vol_create(struct ld_ctx *ctx, const char *name, bool replace, bool *existed,
                  char *err, size_t errlen)
{
    *existed = false;
    if (mkdirat(ctx->volume_fd, name, 0755) != 0) {
        if (errno != EEXIST)
            return vmms_fail(err, errlen, VMMS_ERR, "cannot create %s/%s: %s",
                           ctx->volume_real, name, strerror(errno));
        *existed = true;
        if (!replace)
            return vmms_fail(err, errlen, VMMS_ERR, "%s/%s already exists",
                           ctx->volume_real, name);
        /* A leftover of an earlier instance of that name: start afresh. */
        int rc = ld_vol_remove(ctx, name, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        if (mkdirat(ctx->volume_fd, name, 0755) != 0)
            return vmms_fail(err, errlen, VMMS_ERR, "cannot create %s/%s: %s",
                           ctx->volume_real, name, strerror(errno));
    }
    /* 0755 whatever the umask: the container's users read their files here
     * (volume_dir itself is 0700, so nobody else on the host gets in). */
    int fd = openat(ctx->volume_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, 0755) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot set up %s/%s: %s", ctx->volume_real,
                       name, strerror(e));
    }
    close(fd);
    return VMMS_OK;
}

/* Checks vm (vmms_check_vm) and returns its directory's fd, or a
 * (negative) vmms_status with err set. */
static int open_vm_dir(struct ld_ctx *ctx, const struct vmms_vm *vm, char *err, size_t errlen)
{
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    int fd = openat(ctx->volume_fd, vm->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return vmms_fail(err, errlen, errno == ENOENT ? VMMS_NOT_FOUND : VMMS_ERR,
                       "cannot open the volume directory of VM %s: %s", vm->name,
                       strerror(errno));
    return fd;
}

int ld_copy_in(void *vctx, struct vmms_vm *vm, const struct vmms_file *files,
               size_t nfiles, int timeout_s, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    int dfd = open_vm_dir(ctx, vm, err, errlen);
    if (dfd < 0)
        return dfd;
    long ms = 1000L * (timeout_s > 0 ? timeout_s : ctx->cfg.api_timeout_s);
    int rc = vmms_put_files(dfd, files, nfiles, ms, vm->name, err, errlen);
    close(dfd);
    if (rc == VMMS_OK)
        log_debug("vm_copy_in", "name=%s files=%zu", vm->name, nfiles);
    return rc;
}

int ld_copy_out(void *vctx, struct vmms_vm *vm, const char *dest_path, int timeout_s,
                char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    int dfd = open_vm_dir(ctx, vm, err, errlen);
    if (dfd < 0)
        return dfd;
    long long n = 0;
    long ms = 1000L * (timeout_s > 0 ? timeout_s : ctx->cfg.api_timeout_s);
    int rc = vmms_take_feedback(dfd, vm->name, dest_path, LD_FEEDBACK_MAX, ms, &n, err, errlen);
    close(dfd);
    if (rc == VMMS_OK)
        log_debug("vm_copy_out", "name=%s bytes=%lld", vm->name, n);
    return rc;
}
