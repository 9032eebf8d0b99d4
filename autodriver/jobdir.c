/* jobdir.c: moves the job directory into the grading user's home (rename,
 * or copy + remove across file systems) and chowns it recursively, with
 * *at() calls that never follow symbolic links. The trees handled here come
 * from the course (copied in by root before the job), and nothing of the
 * grading user runs yet; the no-follow discipline is kept anyway. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobdir.h"
#include "dirnext.h"
#include "fdio.h"
#include "rmtree.h"

#define MAX_TREE_DEPTH 256

static int copy_file(int src_parent, const char *name, const struct stat *st,
                     int dst_parent, ad_err *e)
{
    int in = openat(src_parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return ad_fail_errno(e, errno, "Error opening '%s' to copy it", name);
    int out = openat(dst_parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     st->st_mode & 0777);
    if (out < 0) {
        int err = errno;
        close(in);
        return ad_fail_errno(e, err, "Error creating '%s'", name);
    }
    int rc = 0;
    char *buf = malloc(65536);
    if (!buf) {
        rc = ad_fail(e, "Out of memory copying '%s'", name);
        goto done;
    }
    for (;;) {
        ssize_t r = read(in, buf, 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ad_fail_errno(e, errno, "Error reading '%s'", name);
            break;
        }
        if (r == 0)
            break;
        if (ad_write_all(out, buf, (size_t)r) < 0) {
            rc = ad_fail_errno(e, errno, "Error writing '%s'", name);
            break;
        }
    }
    if (rc == 0) {
        struct timespec times[2] = {st->st_atim, st->st_mtim};
        if (fchmod(out, st->st_mode & 0777) < 0 || futimens(out, times) < 0)
            rc = ad_fail_errno(e, errno, "Error setting the mode or times of '%s'", name);
    }
done:
    free(buf);
    close(in);
    if (close(out) < 0 && rc == 0)
        rc = ad_fail_errno(e, errno, "Error writing '%s'", name);
    return rc;
}

static int copy_link(int src_parent, const char *name, int dst_parent, ad_err *e)
{
    char target[PATH_MAX];
    ssize_t n = readlinkat(src_parent, name, target, sizeof target - 1);
    if (n < 0)
        return ad_fail_errno(e, errno, "Error reading link '%s'", name);
    target[n] = '\0';
    if (symlinkat(target, dst_parent, name) < 0)
        return ad_fail_errno(e, errno, "Error creating link '%s'", name);
    return 0;
}

static int copy_dir(int src_parent, const char *name, const struct stat *st,
                    int dst_parent, unsigned depth, ad_err *e);

static int copy_entry(int src_parent, const char *name, int dst_parent, unsigned depth,
                      ad_err *e)
{
    struct stat st;
    if (fstatat(src_parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return ad_fail_errno(e, errno, "Error examining '%s'", name);
    if (S_ISDIR(st.st_mode))
        return copy_dir(src_parent, name, &st, dst_parent, depth, e);
    if (S_ISREG(st.st_mode))
        return copy_file(src_parent, name, &st, dst_parent, e);
    if (S_ISLNK(st.st_mode))
        return copy_link(src_parent, name, dst_parent, e);
    if (S_ISFIFO(st.st_mode)) {
        if (mkfifoat(dst_parent, name, st.st_mode & 0777) < 0)
            return ad_fail_errno(e, errno, "Error creating fifo '%s'", name);
        return 0;
    }
    return 0; /* sockets and devices have no place in a job directory */
}

static int copy_dir(int src_parent, const char *name, const struct stat *st,
                    int dst_parent, unsigned depth, ad_err *e)
{
    if (depth > MAX_TREE_DEPTH)
        return ad_fail(e, "Error copying '%s': directories nested too deeply", name);
    int src = openat(src_parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
        return ad_fail_errno(e, errno, "Error opening directory '%s'", name);
    if (mkdirat(dst_parent, name, 0700) < 0) {
        int err = errno;
        close(src);
        return ad_fail_errno(e, err, "Error creating directory '%s'", name);
    }
    int dst = openat(dst_parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dst < 0) {
        int err = errno;
        close(src);
        return ad_fail_errno(e, err, "Error opening new directory '%s'", name);
    }
    DIR *d = fdopendir(src);
    if (!d) {
        int err = errno;
        close(src);
        close(dst);
        return ad_fail_errno(e, err, "Error reading directory '%s'", name);
    }
    int rc = 0, more;
    const char *n;
    while ((more = ad_dir_next(d, &n)) > 0)
        if ((rc = copy_entry(dirfd(d), n, dst, depth + 1, e)) < 0)
            break;
    if (more < 0)
        rc = ad_fail_errno(e, errno, "Error reading directory '%s'", name);
    if (rc == 0) {
        struct timespec times[2] = {st->st_atim, st->st_mtim};
        if (fchmod(dst, st->st_mode & 0777) < 0 || futimens(dst, times) < 0)
            rc = ad_fail_errno(e, errno, "Error setting the mode or times of '%s'", name);
    }
    closedir(d);
    close(dst);
    return rc;
}

int ad_copy_tree(int src_parent, const char *name, int dst_parent, ad_err *e)
{
    struct stat st;
    if (fstatat(src_parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return ad_fail_errno(e, errno, "Error examining '%s'", name);
    if (!S_ISDIR(st.st_mode))
        return ad_fail(e, "Error: '%s' is not a directory", name);
    return copy_dir(src_parent, name, &st, dst_parent, 0, e);
}

int ad_move_dir(const char *name, int home_fd, uid_t owner, ad_err *e)
{
    struct stat st;
    if (fstatat(AT_FDCWD, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return ad_fail_errno(e, errno, "Error moving directory '%s'", name);
    if (!S_ISDIR(st.st_mode))
        return ad_fail(e, "Error moving directory '%s': not a directory", name);
    if (st.st_uid != owner)
        return ad_fail(e, "Error moving directory '%s': it belongs to uid %lu, not to the "
                       "calling user (uid %lu)", name, (unsigned long)st.st_uid,
                       (unsigned long)owner);
    if (renameat(AT_FDCWD, name, home_fd, name) == 0)
        return 0;
    if (errno != EXDEV)
        return ad_fail_errno(e, errno, "Error moving directory '%s'", name);

    /* Another file system (or an overlay lower layer): copy, then remove. */
    if (unlinkat(home_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return ad_fail_errno(e, errno, "Error moving directory '%s': the target exists", name);
    if (ad_copy_tree(AT_FDCWD, name, home_fd, e) < 0) {
        char inner[sizeof e->msg];
        snprintf(inner, sizeof inner, "%s", e->msg);
        ad_err ignored;
        if (faccessat(home_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            ad_remove_tree(home_fd, name, &ignored);
        return ad_fail(e, "Error copying directory '%s': %s", name, inner);
    }
    if (ad_remove_tree(AT_FDCWD, name, e) < 0) {
        char inner[sizeof e->msg];
        snprintf(inner, sizeof inner, "%s", e->msg);
        return ad_fail(e, "Error removing '%s' after copying it: %s", name, inner);
    }
    return 0;
}

static int chown_walk(int dfd, uid_t uid, gid_t gid, unsigned depth, ad_err *e)
{
    if (depth > MAX_TREE_DEPTH) {
        close(dfd);
        return ad_fail(e, "Error changing owners: directories nested too deeply");
    }
    DIR *d = fdopendir(dfd);
    if (!d) {
        int err = errno;
        close(dfd);
        return ad_fail_errno(e, err, "Error reading a directory to change its owner");
    }
    int rc = 0, more;
    const char *n;
    while ((more = ad_dir_next(d, &n)) > 0) {
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = ad_fail_errno(e, errno, "Error examining '%s'", n);
            break;
        }
        if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
            rc = ad_fail(e, "Error changing the owner of '%s': it has %lu hard links", n,
                         (unsigned long)st.st_nlink);
            break;
        }
        if (fchownat(dirfd(d), n, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = ad_fail_errno(e, errno, "Error changing the owner of '%s'", n);
            break;
        }
        if (!S_ISDIR(st.st_mode))
            continue;
        int sub = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            rc = ad_fail_errno(e, errno, "Error opening directory '%s'", n);
            break;
        }
        if ((rc = chown_walk(sub, uid, gid, depth + 1, e)) < 0)
            break;
    }
    if (more < 0)
        rc = ad_fail_errno(e, errno, "Error reading a directory to change its owner");
    closedir(d);
    return rc;
}

int ad_chown_tree(int parent_fd, const char *name, uid_t uid, gid_t gid, ad_err *e)
{
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ad_fail_errno(e, errno, "Error opening directory '%s' to change its owner", name);
    if (fchown(fd, uid, gid) < 0) {
        int err = errno;
        close(fd);
        return ad_fail_errno(e, err, "Error changing the owner of '%s'", name);
    }
    return chown_walk(fd, uid, gid, 0, e);
}
