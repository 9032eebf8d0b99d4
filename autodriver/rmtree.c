/* rmtree.c: deletes the grading user's files (cleanup) and whole trees (the
 * job directory's old place) with openat/unlinkat only:
 *  - each directory is opened with O_NOFOLLOW|O_DIRECTORY relative to its
 *    parent and checked to be the inode that was examined, so a planted
 *    symbolic link can never make us delete outside the tree;
 *  - entries are examined with AT_SYMLINK_NOFOLLOW and links are unlinked
 *    themselves;
 *  - directories on another file system (mount points) are left alone;
 *  - past AD_RM_MAX_DEPTH a directory that may be removed is renamed to the
 *    top directory and handled from there, so any depth costs at most
 *    AD_RM_MAX_DEPTH open directories. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rmtree.h"
#include "dirnext.h"

struct ctx {
    int top_fd;
    dev_t dev;
    uid_t uid;
    int any_owner;
    struct ad_rm_stats stats;
    unsigned long seq;
    ad_err *e;
    int have_error;
};

static void failure(struct ctx *c, int errnum, const char *what, const char *name)
{
    c->stats.failed++;
    if (!c->have_error) {
        ad_fail_errno(c->e, errnum, "Error %s '%s'", what, name);
        c->have_error = 1;
    }
}

/* Moves the too-deep directory name (in dfd) to the top directory under a
 * fresh name. */
static int flatten(struct ctx *c, int dfd, const char *name)
{
    char fresh[64];
    for (int tries = 0; tries < 1000; tries++) {
        snprintf(fresh, sizeof fresh, ".autodriver-deep-%ld-%lu", (long)getpid(), ++c->seq);
        if (renameat2(dfd, name, c->top_fd, fresh, RENAME_NOREPLACE) == 0) {
            c->stats.flattened++;
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    failure(c, errno, "moving up deep directory", name);
    return -1;
}

static void walk(struct ctx *c, int fd, unsigned depth);

static void handle_dir(struct ctx *c, int dfd, const char *name, const struct stat *st,
                       unsigned depth)
{
    int owned = c->any_owner || st->st_uid == c->uid;
    if (st->st_dev != c->dev)
        return; /* another file system mounted here: not ours to clean */
    if (depth + 1 >= AD_RM_MAX_DEPTH) {
        if (owned)
            flatten(c, dfd, name);
        else
            failure(c, ELOOP, "descending (too deep) into", name);
        return;
    }
    int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
        if (errno != ENOENT)
            failure(c, errno, "opening directory", name);
        return;
    }
    struct stat now;
    if (fstat(sub, &now) < 0 || now.st_ino != st->st_ino || now.st_dev != st->st_dev) {
        close(sub);
        failure(c, ESTALE, "opening directory (it changed)", name);
        return;
    }
    walk(c, sub, depth + 1); /* closes sub */
    if (owned) {
        if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
            c->stats.removed++;
        else if (errno != ENOENT)
            failure(c, errno, "removing directory", name);
    }
}

/* Cleans the directory open as fd (which it closes). */
static void walk(struct ctx *c, int fd, unsigned depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        failure(c, errno, "reading directory", ".");
        close(fd);
        return;
    }
    int dfd = dirfd(d);
    const char *name;
    int more;
    while ((more = ad_dir_next(d, &name)) > 0) {
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT)
                failure(c, errno, "examining", name);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            handle_dir(c, dfd, name, &st, depth);
        } else if (c->any_owner || st.st_uid == c->uid) {
            if (unlinkat(dfd, name, 0) == 0)
                c->stats.removed++;
            else if (errno != ENOENT)
                failure(c, errno, "removing", name);
        }
    }
    if (more < 0)
        failure(c, errno, "reading directory", ".");
    closedir(d);
}

int ad_remove_owned(int dirfd, uid_t uid, int any_owner, struct ad_rm_stats *stats,
                    ad_err *e)
{
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.top_fd = dirfd;
    c.uid = uid;
    c.any_owner = any_owner;
    c.e = e;
    struct stat st;
    if (fstat(dirfd, &st) < 0)
        return ad_fail_errno(e, errno, "Error examining a directory to clean");
    c.dev = st.st_dev;

    /* Each pass walks the tree from the top; directories moved up by a pass
     * are handled by the next one. Every move shortens what is left, so this
     * ends; the bound is only a guard. */
    unsigned long before;
    unsigned passes = 0;
    do {
        before = c.stats.flattened;
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            failure(&c, errno, "reopening directory", ".");
            break;
        }
        walk(&c, fd, 0);
    } while (c.stats.flattened != before && ++passes < 1000000);

    if (stats)
        *stats = c.stats;
    if (c.stats.failed) {
        if (c.stats.failed > 1) {
            char first[sizeof e->msg];
            snprintf(first, sizeof first, "%s", e->msg);
            ad_fail(e, "%s (and %lu more entries could not be removed)", first,
                    c.stats.failed - 1);
        }
        return -1;
    }
    return 0;
}

int ad_remove_user_files(const char *path, uid_t uid, struct ad_rm_stats *stats, ad_err *e)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        if (stats)
            memset(stats, 0, sizeof *stats);
        if (errno == ENOENT)
            return 0;
        return ad_fail_errno(e, errno, "Error opening %s to remove the grading user's files",
                             path);
    }
    int rc = ad_remove_owned(fd, uid, 0, stats, e);
    close(fd);
    if (rc < 0) {
        char inner[sizeof e->msg];
        snprintf(inner, sizeof inner, "%s", e->msg);
        ad_fail(e, "Error removing the grading user's files in %s: %s", path, inner);
    }
    return rc;
}

int ad_remove_tree(int parentfd, const char *name, ad_err *e)
{
    int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ad_fail_errno(e, errno, "Error opening '%s' to remove it", name);
    int rc = ad_remove_owned(fd, 0, 1, NULL, e);
    close(fd);
    if (rc < 0)
        return -1;
    if (unlinkat(parentfd, name, AT_REMOVEDIR) < 0)
        return ad_fail_errno(e, errno, "Error removing directory '%s'", name);
    return 0;
}
