/*
 * labs.c: courselab directory names and paths (see labs.h).
 */
#include "labs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "names.h"

int lab_dir_name(const char *key, const char *courselab, char out[LAB_DIR_MAX])
{
    if (!name_is_safe_str(courselab))
        return -1;
    char id[17];
    key_id(key, id);
    int n = snprintf(out, LAB_DIR_MAX, "%s-%s", id, courselab);
    return n > 0 && n <= NAME_MAX_BYTES ? 0 : -1;
}

int lab_path(const char *courselabs, const char *lab_dir, const char *sub, const char *name,
             char out[PATH_MAX])
{
    if (!name_is_safe_str(lab_dir) || (sub && !name_is_safe_str(sub)) ||
        (name && !name_is_safe_str(name)))
        return -1;
    int n = snprintf(out, PATH_MAX, "%s/%s%s%s%s%s", courselabs, lab_dir, sub ? "/" : "",
                     sub ? sub : "", name ? "/" : "", name ? name : "");
    return n > 0 && n < PATH_MAX ? 0 : -1;
}

int mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    if (!*path) {
        errno = ENOENT;
        return -1;
    }
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) == 0)
        return 0;
    struct stat sb;
    if (errno != EEXIST || stat(buf, &sb))
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR; /* exists, but is not a directory */
        return -1;
    }
    return 0;
}

int lab_open(const char *courselabs, const char *lab_dir, bool *created)
{
    char dir[PATH_MAX], out[PATH_MAX];
    if (lab_path(courselabs, lab_dir, NULL, NULL, dir) ||
        lab_path(courselabs, lab_dir, "output", NULL, out))
        return -1;
    if (mkdir_p(courselabs, 0755))
        return -1;
    *created = mkdir(dir, 0755) == 0;
    if (!*created && errno != EEXIST)
        return -1;
    if (mkdir(out, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

bool lab_exists(const char *courselabs, const char *lab_dir)
{
    char dir[PATH_MAX];
    struct stat sb;
    return lab_path(courselabs, lab_dir, NULL, NULL, dir) == 0 && stat(dir, &sb) == 0 &&
           S_ISDIR(sb.st_mode);
}

bool lab_has_file(const char *courselabs, const char *lab_dir, const char *name)
{
    char path[PATH_MAX];
    struct stat sb;
    return lab_path(courselabs, lab_dir, NULL, name, path) == 0 && lstat(path, &sb) == 0 &&
           S_ISREG(sb.st_mode);
}
