/* output.h: what the autodriver prints: its report lines and the job's
 * captured output, capped at OSIZE bytes with the middle elided. Errors
 * come back as ad_err values (errors.h); the bytes go out through fdio.h,
 * which errors.c uses too, so errors and output do not depend on each
 * other in a circle. */
#ifndef AD_OUTPUT_H
#define AD_OUTPUT_H

#include <stddef.h>
#include <sys/types.h>

#include "errors.h"

/* The line put between the head and the tail of an over-long output
 * (byte-for-byte the original autodriver's). */
#define AD_ELISION_LINE "\n...[excess bytes elided]...\n"

/* Copies len bytes of in_fd starting at offset to out_fd with pread (the
 * file offset of in_fd is not used). Stops early, without error, at end of
 * file. 0, or -1 with e set. */
int ad_copy_range(int out_fd, int in_fd, off_t offset, off_t len, ad_err *e);

/* Prints the file behind in_fd to out_fd: all of it if osize is 0 or the
 * file is at most osize bytes long, otherwise its first osize/2 bytes,
 * AD_ELISION_LINE, and its last osize/2 bytes. Bytes are copied unchanged.
 * Memory use is constant whatever the file size. 0, or -1 with e set. */
int ad_dump_capped(int out_fd, int in_fd, unsigned long osize, ad_err *e);

/* Formats the status line, exactly the original's:
 *   "Autodriver: Job exited with status N\n" or
 *   "Autodriver: Job timed out after N seconds\n".
 * Returns the length (as snprintf). */
int ad_format_status(char *buf, size_t len, int timed_out, unsigned long timeout,
                     int exit_status);

/* Formats our extra line: "Autodriver: wall_time=1.234s peak_memory_kb=N\n". */
int ad_format_usage(char *buf, size_t len, double wall_seconds, long peak_kb);

#endif
