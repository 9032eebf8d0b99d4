/* cleanup.c: the end of every job (and of every failed start): kill all the
 * grading user's processes (procs.c), then delete the files it owns in its
 * home directory, /tmp and /var/tmp (rmtree.c), as the original did with
 * pkill and find, but without running either. */
#include <stdio.h>

#include "cleanup.h"
#include "procs.h"
#include "rmtree.h"

#define CLEANUP_KILL_TIMEOUT_MS 10000

int ad_cleanup(const struct ad_user *u, ad_err *e)
{
    int rc = 0;
    ad_err local;
    if (u->uid == 0)
        return ad_fail(e, "Refusing to clean up after root");
    if (ad_kill_all(u, NULL, CLEANUP_KILL_TIMEOUT_MS, &local) < 0) {
        *e = local;
        rc = -1; /* still remove what can be removed */
    }
    const char *dirs[] = {u->home, "/tmp", "/var/tmp"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (ad_remove_user_files(dirs[i], u->uid, NULL, &local) < 0 && rc == 0) {
            *e = local;
            rc = -1;
        }
    }
    return rc;
}
