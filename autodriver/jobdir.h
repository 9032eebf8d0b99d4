/* jobdir.h: puts the job directory in place: moves DIRNAME (in the current
 * directory) into the grading user's home and gives it to that user. */
#ifndef AD_JOBDIR_H
#define AD_JOBDIR_H

#include <sys/types.h>

#include "errors.h"

/* Moves name (relative to the current directory) to name in the directory
 * open as home_fd, like `mv -f`: a rename, or across file systems (overlay
 * file systems refuse to rename image directories) a copy that keeps modes
 * (without set-id bits) and times, then removal of the original. An empty
 * directory already at the target is replaced. name must be a directory
 * owned by owner (the user who called the setuid autodriver): nobody gets
 * to move a directory that is not theirs. 0, or -1 with e set. */
int ad_move_dir(const char *name, int home_fd, uid_t owner, ad_err *e);

/* Copies the tree name in src_parent to a new tree name in dst_parent.
 * Symbolic links are copied as links, never followed; sockets and devices
 * are skipped. 0, or -1 with e set. */
int ad_copy_tree(int src_parent, const char *name, int dst_parent, ad_err *e);

/* Gives name in parent_fd and everything below it to uid:gid, like
 * `chown -R` but never following a symbolic link, and refusing files with
 * several hard links (a link to a file outside the tree would hand that
 * file over too). 0, or -1 with e set. */
int ad_chown_tree(int parent_fd, const char *name, uid_t uid, gid_t gid, ad_err *e);

#endif
