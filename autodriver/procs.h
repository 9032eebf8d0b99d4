/* procs.h: finds and kills every process of the grading user without
 * pkill, and without needing to fork at the moment of the kill (a fork bomb
 * of the grading user can fill the container's pids limit, and then fork()
 * fails with EAGAIN even for root):
 *  - a kill helper is forked before the job starts; it waits, still root
 *    (so the job cannot signal or trace it), for the order to kill; then it
 *    becomes the grading user and repeats kill(-1, SIGKILL), which the kernel
 *    makes race-free against fork, until /proc shows nobody left;
 *  - whatever the helper did (it may have been killed or stopped by the job
 *    once it dropped to the grading user), the caller then scans /proc as
 *    root and SIGKILLs each remaining process through a pidfd (never a
 *    reused pid), until none is left or the time is up. That step never
 *    forks, so the kill works even when no helper could be made. */
#ifndef AD_PROCS_H
#define AD_PROCS_H

#include <sys/types.h>

#include "errors.h"
#include "user.h"

/* A kill helper waiting for its order. pid -1 means none. */
struct ad_killer {
    pid_t pid;     /* the helper, a child of the caller */
    int order_fd;  /* our end of its order socket (close-on-exec) */
    long work_ms;  /* how long it keeps killing once ordered */
};

/* Number of live (not zombie) processes whose real or effective uid is uid,
 * read from proc_root (normally "/proc"). -1 with e set on error. */
long ad_count_user_procs(const char *proc_root, uid_t uid, ad_err *e);

/* Forks a kill helper for u that will keep killing for at most work_ms once
 * ordered. Every descriptor of the caller but its order socket is closed in
 * the helper. 0 (k filled), or -1 with e set and k->pid -1 (u is root, or
 * socketpair or fork failed). Call it while forking is still possible: before
 * the job starts. */
int ad_killer_start(struct ad_killer *k, const struct ad_user *u, long work_ms, ad_err *e);

/* Dismisses an unused helper (it exits without killing: its socket is
 * closed) and reaps it.
 * Safe on a helper already used or never started; leaves k->pid -1. */
void ad_killer_stop(struct ad_killer *k);

/* Kills every process of u within timeout_ms: orders the helper k (or, when
 * k is NULL or already used, tries to fork one now, which may fail), waits
 * for it for at most half the time, then SIGKILLs from here whatever /proc
 * still shows, repeating until nobody is left or the time is up. Uses up k
 * (k->pid is -1 afterwards). Never needs a fork to succeed. 0, or -1 with e
 * set (u is root, processes survived, or /proc could not be read). */
int ad_kill_all(const struct ad_user *u, struct ad_killer *k, long timeout_ms, ad_err *e);

#endif
