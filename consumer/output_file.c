/*
 * output_file.c: the job's feedback file (see output_file.h).
 */
#include "output_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "labs.h"

#define ELISION "\n...[excess bytes elided]...\n"

int output_file_path(const char *courselabs, const struct job *job, char *out)
{
    return lab_path(courselabs, job->lab_dir, "output", job->output_file, out);
}

static void autograder_line(FILE *f, const char *msg)
{
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%a %b %e %H:%M:%S %Y", &tm);
    fprintf(f, "Autograder [%s]: %s\n", when, msg);
}

/* Copies len bytes of in from offset off to out. */
static int copy_range(int in, FILE *out, off_t off, off_t len)
{
    char buf[65536];
    while (len > 0) {
        ssize_t n = pread(in, buf, len < (off_t)sizeof buf ? (size_t)len : sizeof buf, off);
        if (n <= 0)
            return n == 0 ? 0 : -1;
        if (fwrite(buf, 1, (size_t)n, out) != (size_t)n)
            return -1;
        off += n;
        len -= n;
    }
    return 0;
}

static int append_feedback(FILE *out, const char *path, long max_bytes)
{
    int in = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? 0 : -1;
    struct stat sb;
    int rc = -1;
    if (fstat(in, &sb) == 0 && S_ISREG(sb.st_mode)) {
        /* The autodriver already caps the grader's output at max_bytes; allow
         * room for its own lines, and cut only what a broken image overran. */
        off_t cap = (off_t)max_bytes + 65536;
        if (sb.st_size <= cap) {
            rc = copy_range(in, out, 0, sb.st_size);
        } else {
            rc = copy_range(in, out, 0, cap / 2);
            if (rc == 0 && fputs(ELISION, out) >= 0)
                rc = copy_range(in, out, sb.st_size - cap / 2, cap / 2);
        }
    }
    close(in);
    return rc;
}

int output_file_write(const char *courselabs, const struct job *job, const char *outcome,
                      const char *detail, const char *feedback_path, long max_bytes)
{
    char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX + 32];
    if (output_file_path(courselabs, job, path) ||
        lab_path(courselabs, job->lab_dir, "output", NULL, dir)) {
        errno = EINVAL;
        return -1;
    }
    if (mkdir_p(dir, 0755))
        return -1;
    snprintf(tmp, sizeof tmp, "%s/.%lld.tmp", dir, (long long)job->id);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -1;
    char received[600];
    snprintf(received, sizeof received, "Received job %s:%lld", job->name, (long long)job->id);
    autograder_line(f, received);
    autograder_line(f, outcome);
    if (detail)
        autograder_line(f, detail);
    autograder_line(f, "Here is the output from the autograder:\n---");
    int rc = feedback_path ? append_feedback(f, feedback_path, max_bytes) : 0;
    if (fflush(f) || fsync(fileno(f)))
        rc = -1;
    if (fclose(f))
        rc = -1;
    if (rc == 0 && rename(tmp, path) == 0)
        return 0;
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
}
