/* rmtree.h: removes files safely in directories the grading user could
 * write: never follows a symbolic link, never leaves the file system it
 * started on, bounded in depth and open file descriptors whatever the tree. */
#ifndef AD_RMTREE_H
#define AD_RMTREE_H

#include <sys/types.h>

#include "errors.h"

/* Depth at which a directory is moved up to the top instead of descended
 * into (keeps the number of open directories bounded). */
#define AD_RM_MAX_DEPTH 48

struct ad_rm_stats {
    unsigned long removed;   /* entries removed */
    unsigned long failed;    /* entries that could not be removed */
    unsigned long flattened; /* deep directories moved up to the top */
};

/* Removes, below the directory open as dirfd (never that directory itself),
 * every entry whose owner is uid (any_owner: every entry). Directories are
 * searched whoever owns them; a directory is removed when it is owned by
 * uid and ends up empty. Symbolic links are removed, never followed.
 * Continues past failures; returns 0, or -1 with e describing the first
 * failure. stats may be NULL. */
int ad_remove_owned(int dirfd, uid_t uid, int any_owner, struct ad_rm_stats *stats,
                    ad_err *e);

/* ad_remove_owned on the directory at path; a missing path is not an error. */
int ad_remove_user_files(const char *path, uid_t uid, struct ad_rm_stats *stats, ad_err *e);

/* Removes the whole tree name in parentfd, whoever owns it, and name itself. */
int ad_remove_tree(int parentfd, const char *name, ad_err *e);

#endif
