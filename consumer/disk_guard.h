/*
 * disk_guard.h: the free-space floor of the grading host's disks. It
 * watches courselabs (outputs, feedback files, uploads) and the back end's
 * data directory (vmms.h data_dir: localDocker's volume_dir, localOCI's
 * run_dir) and, while any of them has less than min_free_mb MiB free,
 * reports the disk low: the dispatcher leases nothing new (running jobs go
 * on), an infrastructure failure sends its job back to the queue without
 * spending a try, and a copy-out that fails waits for space instead of
 * failing the job. Leasing resumes by itself once every path is above the
 * floor again. min_free_mb 0 turns the guard off. Its thread samples every
 * DISK_GUARD_PERIOD_MS and publishes tango_disk_free_bytes{path} and
 * tango_disk_min_free_bytes (metrics_http.c).
 */
#ifndef TANGO_CONSUMER_DISK_GUARD_H
#define TANGO_CONSUMER_DISK_GUARD_H

#include <stdbool.h>

struct consumer;

#define DISK_GUARD_PERIOD_MS 1000

/* Starts the sampling thread (after vmms_load and metrics_start); 0, or -1
 * when the thread cannot start. */
int disk_guard_start(struct consumer *c);
/* Stops it (after the other threads ended); safe when never started. */
void disk_guard_stop(struct consumer *c);

/* Whether a watched path is below the floor, sampled now (a statvfs per
 * path; the workers' question before they spend a try or give up on a
 * copy). False when the guard is off or not started. Thread-safe. */
bool disk_guard_low(struct consumer *c);

/* The dispatcher's question before leasing: false while the last sample
 * was below the floor. Logs disk_leasing_paused / disk_leasing_resumed on
 * each change (dispatcher thread only). */
bool disk_guard_lease_ok(struct consumer *c);

#endif
