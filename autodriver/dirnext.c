/* dirnext.c: the one readdir loop step (see dirnext.h). */
#include "dirnext.h"

#include <errno.h>

int ad_dir_next(DIR *d, const char **name)
{
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de)
            return errno ? -1 : 0;
        const char *n = de->d_name;
        if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
            continue;
        *name = n;
        return 1;
    }
}
