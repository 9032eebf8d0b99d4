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
    job_ctime(when, sizeof when);
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

void output_file_temp_name(const struct job *job, long long fence, char *out, size_t outlen)
{
    snprintf(out, outlen, ".%lld.%lld.tmp", (long long)job->id, fence);
}

/* Opens the lab's output folder (made if missing) without following links. */
static int open_output_dir(const char *courselabs, const struct job *job)
{
    char dir[PATH_MAX];
    if (lab_path(courselabs, job->lab_dir, "output", NULL, dir)) {
        errno = EINVAL;
        return -1;
    }
    if (mkdir_p(dir, 0755))
        return -1;
    return open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

int output_file_write_temp(const char *courselabs, const struct job *job, const char *outcome,
                           const char *detail, const char *feedback_path, long max_bytes)
{
    char tmp[128];
    output_file_temp_name(job, job->fence, tmp, sizeof tmp);
    int dfd = open_output_dir(courselabs, job);
    if (dfd < 0)
        return -1;
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) {
        /* Our own leftover from an attempt under the same fence. */
        unlinkat(dfd, tmp, 0);
        fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        close(dfd);
        errno = e;
        return -1;
    }
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
    int e = errno;
    if (rc != 0)
        unlinkat(dfd, tmp, 0);
    close(dfd);
    errno = e;
    return rc;
}

/* Whether the record's temp name is one of ours: a bare ".<...>" name in
 * the output folder (it comes from Redis, so it is checked like input). */
static bool temp_name_ok(const struct job *job)
{
    return job->output_temp && !strchr(job->output_temp, '/') && job->output_temp[0] == '.';
}

bool output_file_lost(const char *courselabs, const struct job *job)
{
    if (!temp_name_ok(job))
        return false;
    int dfd = open_output_dir(courselabs, job);
    if (dfd < 0)
        return false;
    struct stat sb;
    bool lost = fstatat(dfd, job->output_temp, &sb, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT &&
                fstatat(dfd, job->output_file, &sb, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
    close(dfd);
    return lost;
}

int output_file_publish(const char *courselabs, const struct job *job)
{
    if (!temp_name_ok(job)) {
        errno = EINVAL;
        return -1;
    }
    int dfd = open_output_dir(courselabs, job);
    if (dfd < 0)
        return -1;
    int rc = renameat(dfd, job->output_temp, dfd, job->output_file);
    int e = errno;
    if (rc != 0 && e == ENOENT) {
        struct stat sb;
        if (fstatat(dfd, job->output_file, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
            rc = 0;
    }
    if (rc == 0)
        fsync(dfd);
    close(dfd);
    errno = e;
    return rc;
}

