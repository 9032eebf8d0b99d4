/* run.h: runs the job: forks the child that becomes the grading user and
 * execs make, waits for it with the timeout, then kills whatever the
 * grading user left running and measures the job. */
#ifndef AD_RUN_H
#define AD_RUN_H

#include "errors.h"
#include "user.h"

struct ad_job {
    const struct ad_user *user;
    const char *workdir;      /* absolute path of the job directory */
    int output_fd;            /* where the job's stdout and stderr go */
    unsigned long nproc;      /* RLIMIT_NPROC; 0 = unchanged */
    unsigned long fsize;      /* RLIMIT_FSIZE in bytes; 0 = unchanged */
    unsigned long timeout;    /* seconds; 0 = none */
    const char *timezone;     /* TZ for the job, or NULL */
};

struct ad_result {
    int ran;             /* make was started (the fields below mean something) */
    int finished;        /* make ended by itself (exit_status is valid) */
    int timed_out;       /* killed at the timeout */
    int aborted_by;      /* the signal (HUP, INT, TERM) that made us stop the job, or 0 */
    int exit_status;     /* make's exit status; 128+N if killed by signal N */
    double wall_seconds; /* from fork to make's end (or the timeout) */
    long peak_kb;        /* largest resident set of any job process, KiB */
};

/* Runs the job to its end or its timeout, then kills every process of the
 * grading user. SIGHUP, SIGINT and SIGTERM sent to the autodriver while the
 * job runs stop the job early (r->aborted_by); the caller should keep them
 * blocked (see ad_block_stop_signals) so cleanup cannot be interrupted. 0 (r filled), or -1 with e set: the job could not be
 * started (r->ran is 0), or it ran but its processes could not be killed or
 * waited for (r->ran is 1 and r is filled). */
int ad_run_job(const struct ad_job *job, struct ad_result *r, ad_err *e);

/* Blocks SIGHUP, SIGINT, SIGTERM (ad_run_job waits for them) and ignores
 * SIGPIPE, so the autodriver always gets to clean up. 0, or -1 with e set. */
int ad_block_stop_signals(ad_err *e);

#endif
