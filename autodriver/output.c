/* output.c: writes the autodriver's report: the status line, the resource
 * line and the captured output of the job, capped at OSIZE bytes (head and
 * tail around the elision line, read with pread so a huge file costs no
 * memory). Output is bytes: nothing is re-encoded or dropped. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autodriver.h"
#include "fdio.h"
#include "output.h"

#define COPY_BUFSIZE 65536

int ad_copy_range(int out_fd, int in_fd, off_t offset, off_t len, ad_err *e)
{
    char buf[COPY_BUFSIZE];
    while (len > 0) {
        size_t want = len < (off_t)sizeof buf ? (size_t)len : sizeof buf;
        ssize_t r = pread(in_fd, buf, want, offset);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ad_fail_errno(e, errno, "Error reading the job's output file");
        }
        if (r == 0)
            break; /* the file shrank: print what there is */
        if (ad_write_all(out_fd, buf, (size_t)r) < 0)
            return ad_fail_errno(e, errno, "Error writing the job's output");
        offset += r;
        len -= r;
    }
    return 0;
}

int ad_dump_capped(int out_fd, int in_fd, unsigned long osize, ad_err *e)
{
    struct stat st;
    if (fstat(in_fd, &st) < 0)
        return ad_fail_errno(e, errno, "Error examining the job's output file");
    off_t size = st.st_size;
    if (osize == 0 || (unsigned long long)size <= (unsigned long long)osize)
        return ad_copy_range(out_fd, in_fd, 0, size, e);

    off_t part = (off_t)(osize / 2);
    if (ad_copy_range(out_fd, in_fd, 0, part, e) < 0)
        return -1;
    if (ad_write_all(out_fd, AD_ELISION_LINE, sizeof AD_ELISION_LINE - 1) < 0)
        return ad_fail_errno(e, errno, "Error writing the job's output");
    return ad_copy_range(out_fd, in_fd, size - part, part, e);
}

int ad_format_status(char *buf, size_t len, int timed_out, unsigned long timeout,
                     int exit_status)
{
    if (timed_out)
        return snprintf(buf, len, AD_PREFIX "Job timed out after %lu seconds\n", timeout);
    return snprintf(buf, len, AD_PREFIX "Job exited with status %d\n", exit_status);
}

int ad_format_usage(char *buf, size_t len, double wall_seconds, long peak_kb)
{
    if (wall_seconds < 0)
        wall_seconds = 0;
    if (peak_kb < 0)
        peak_kb = 0;
    return snprintf(buf, len, AD_PREFIX "wall_time=%.3fs peak_memory_kb=%ld\n",
                    wall_seconds, peak_kb);
}
