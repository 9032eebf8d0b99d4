/*
 * output_file.h: writing a job's feedback file, the file poll returns and the
 * callback carries (SPEC.md "The output file"):
 *   Autograder [<asctime>]: Received job NAME:ID
 *   Autograder [<asctime>]: <outcome>
 *   [Autograder [<asctime>]: <detail line>]
 *   Autograder [<asctime>]: Here is the output from the autograder:
 *   ---
 *   <the autodriver's output, bytes as they are>
 * Written to a temporary file and renamed, so a reader never sees half.
 */
#ifndef TANGO_CONSUMER_OUTPUT_FILE_H
#define TANGO_CONSUMER_OUTPUT_FILE_H

#include <stddef.h>

#include "job.h"

/* feedback_path may be NULL (no autograder output). The autodriver's output
 * is capped at max_bytes (head and tail kept around an elision line) so a
 * hostile image cannot fill the disk. Returns 0, or -1 with errno. */
int output_file_write(const char *courselabs, const struct job *job, const char *outcome,
                      const char *detail, const char *feedback_path, long max_bytes);

/* Path of the job's output file into out (PATH_MAX); -1 if names are unsafe. */
int output_file_path(const char *courselabs, const struct job *job, char *out);

#endif
