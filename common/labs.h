/*
 * labs.h: courselab directories on disk. Each client key's labs live apart:
 *   <courselabs>/<keyid>-<COURSELAB>/          input files (uploads)
 *   <courselabs>/<keyid>-<COURSELAB>/output/   output files (feedback)
 * where keyid is a hash of the key (names.h), so no key is ever in a path.
 * Every name is validated here before it is joined to a path.
 */
#ifndef TANGO_LABS_H
#define TANGO_LABS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define LAB_DIR_MAX 256

/* Builds the lab directory name; -1 if courselab is not a safe name or the
 * result would be too long for one path component. */
int lab_dir_name(const char *key, const char *courselab, char out[LAB_DIR_MAX]);

/* <courselabs>/<lab_dir>[/<sub>][/<name>] into out (PATH_MAX). -1 if a part
 * is unsafe or the path is too long. sub and name may be NULL. */
int lab_path(const char *courselabs, const char *lab_dir, const char *sub, const char *name,
             char out[PATH_MAX]);

/* Creates the lab directory and its output folder if missing. *created tells
 * whether the lab directory was new. */
int lab_open(const char *courselabs, const char *lab_dir, bool *created);
bool lab_exists(const char *courselabs, const char *lab_dir);
/* true if <lab>/<name> is a regular file. */
bool lab_has_file(const char *courselabs, const char *lab_dir, const char *name);

/* mkdir -p with mode for each missing component. */
int mkdir_p(const char *path, unsigned mode);

#endif
