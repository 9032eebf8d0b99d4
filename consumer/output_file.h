/*
 * output_file.h: writing a job's feedback file, the file poll returns and the
 * callback carries (docs/api.md "The output file"):
 *   Autograder [<asctime>]: Received job NAME:ID
 *   Autograder [<asctime>]: <outcome>
 *   [Autograder [<asctime>]: <detail line>]
 *   Autograder [<asctime>]: Here is the output from the autograder:
 *   ---
 *   <the autodriver's output, bytes as they are>
 * Written under a name unique to the writer (".<id>.<fence>.tmp" in the
 * lab's output folder, created O_EXCL|O_NOFOLLOW), and renamed into place
 * only after the store accepted the job's finish transition, so a reader
 * never sees half a file and a consumer that lost its lease never replaces
 * the new owner's file (the reaper removes temp files no record names).
 */
#ifndef TANGO_CONSUMER_OUTPUT_FILE_H
#define TANGO_CONSUMER_OUTPUT_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "job.h"

/* The writer-unique temp name (a bare file name, no directory) of a job's
 * output for the lease with this fence, into out (outlen bytes). */
void output_file_temp_name(const struct job *job, long long fence, char *out, size_t outlen);

/* Writes the output file to its temp name (output_file_temp_name with
 * job->fence) in the lab's output folder, created O_CREAT|O_EXCL|O_NOFOLLOW
 * and fsync'd. feedback_path may be NULL (no autograder output); the
 * autodriver's output is capped at max_bytes (head and tail kept around an
 * elision line) so a hostile image cannot fill the disk. Returns 0, or -1
 * with errno (nothing left behind). */
int output_file_write_temp(const char *courselabs, const struct job *job, const char *outcome,
                           const char *detail, const char *feedback_path, long max_bytes);

/* Renames the temp file named job->output_temp onto the job's output file.
 * 0 also when the temp is already gone and the output file exists (a
 * predecessor renamed it before it died); -1 with errno otherwise. */
int output_file_publish(const char *courselabs, const struct job *job);

/* Whether the job's accepted output is gone: its output folder opens and
 * neither the temp named job->output_temp nor the output file exists (both
 * ENOENT; any other answer, e.g. EACCES or a directory in the way, is not
 * "gone": publishing it is tried and fails loudly instead). */
bool output_file_lost(const char *courselabs, const struct job *job);

/* Path of the job's output file into out (PATH_MAX); -1 if names are unsafe. */
int output_file_path(const char *courselabs, const struct job *job, char *out);

#endif
