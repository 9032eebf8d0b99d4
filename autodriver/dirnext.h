/* dirnext.h: reading a directory's entries, the one readdir loop step that
 * the tree walks (jobdir.c's copy and chown, rmtree.c) and the process scan
 * (procs.c) share: end and error told apart, "." and ".." skipped. */
#ifndef AD_DIRNEXT_H
#define AD_DIRNEXT_H

#include <dirent.h>

/* The next entry of d other than "." and "..": 1 with *name (valid until
 * the next call or closedir), 0 at the end, -1 with errno set when
 * readdir failed. */
int ad_dir_next(DIR *d, const char **name);

#endif
