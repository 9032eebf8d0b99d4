/* user.h: looks up the grading user in /etc/passwd and /etc/group by reading
 * the files directly (no NSS: the autodriver is a static binary that must run
 * on any image, whatever its libc). */
#ifndef AD_USER_H
#define AD_USER_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "errors.h"

#define AD_MAX_GROUPS 64

struct ad_user {
    char name[64];
    uid_t uid;
    gid_t gid;
    char home[PATH_MAX];
    gid_t groups[AD_MAX_GROUPS]; /* supplementary groups, primary gid first */
    size_t ngroups;
};

/* Finds name in a passwd-format file. 1 found (u filled), 0 not there,
 * -1 error (e set). The home must be an absolute path. */
int ad_lookup_user(const char *passwd_path, const char *name, struct ad_user *u, ad_err *e);

/* Fills u->groups with u->gid followed by the gids of every group in a
 * group-format file that lists u->name as a member (like initgroups). A
 * missing file leaves just the primary group. 0, or -1 with e set. */
int ad_lookup_groups(const char *group_path, struct ad_user *u, ad_err *e);

#endif
