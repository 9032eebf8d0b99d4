/* procs.h: finds and kills every process of the grading user without
 * pkill: /proc is scanned to count them, and kill(-1, SIGKILL) is sent from
 * a helper process that has become the grading user. */
#ifndef AD_PROCS_H
#define AD_PROCS_H

#include <sys/types.h>

#include "errors.h"
#include "user.h"

/* Number of live (not zombie) processes whose real or effective uid is uid,
 * read from proc_root (normally "/proc"). -1 with e set on error. */
long ad_count_user_procs(const char *proc_root, uid_t uid, ad_err *e);

/* Forks a helper that drops to u (groups, gid, uid; each checked) and sends
 * SIGKILL to every process it may signal: kill(-1) by a process of that uid
 * reaches exactly the processes of that uid, except itself, and the kernel
 * makes it race-free against fork. Waits for the helper. 0, or -1 with e. */
int ad_kill_user_procs(const struct ad_user *u, ad_err *e);

/* Kills every process of u, repeating until /proc shows none alive or
 * timeout_ms passes. 0, or -1 with e set (processes survived or a system
 * call failed). */
int ad_kill_all(const struct ad_user *u, long timeout_ms, ad_err *e);

#endif
