/* cleanup.h: leaves nothing of the grading user behind: no process and no
 * file in its home, /tmp or /var/tmp. */
#ifndef AD_CLEANUP_H
#define AD_CLEANUP_H

#include "errors.h"
#include "user.h"

/* Kills every process of u, then removes every file u owns in u's home,
 * /tmp and /var/tmp (the directories themselves stay). Does all it can even
 * after a failure. 0, or -1 with e describing the first failure. */
int ad_cleanup(const struct ad_user *u, ad_err *e);

#endif
