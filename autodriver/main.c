/* main.c: the autodriver's main(): checks who runs it, puts the job
 * directory in place, runs the job, prints the report and the output, and
 * cleans up. The steps live in the other files; this one only orders them
 * and turns their errors into the contract's exit codes (autodriver.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "autodriver.h"
#include "cgroup.h"
#include "cleanup.h"
#include "errors.h"
#include "jobdir.h"
#include "fdio.h"
#include "output.h"
#include "procs.h"
#include "run.h"
#include "user.h"

/* Reports e, cleans up after the grading user and returns the OS-error code. */
static int os_error(const struct ad_user *u, const ad_err *e)
{
    ad_report("%s", e->msg);
    ad_err ce;
    if (u && ad_cleanup(u, &ce) < 0)
        ad_report("%s", ce.msg);
    return AD_EXIT_OSERROR;
}

/* Creates AD_OUTPUT_FILE in the home for the job (owned by the grading user)
 * and opens it a second time for us to read back. The grading user owns
 * that directory, so the name is never opened again after the job. */
static int open_output(int home_fd, const struct ad_user *u, int *write_fd, int *read_fd,
                       ad_err *e)
{
    if (unlinkat(home_fd, AD_OUTPUT_FILE, 0) < 0 && errno != ENOENT)
        return ad_fail_errno(e, errno, "Error removing an old %s/%s", u->home, AD_OUTPUT_FILE);
    int w = openat(home_fd, AD_OUTPUT_FILE,
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (w < 0)
        return ad_fail_errno(e, errno, "Error creating %s/%s", u->home, AD_OUTPUT_FILE);
    if (fchown(w, u->uid, u->gid) < 0) {
        int err = errno;
        close(w);
        return ad_fail_errno(e, err, "Error changing the owner of %s", AD_OUTPUT_FILE);
    }
    int r = openat(home_fd, AD_OUTPUT_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sw, sr;
    if (r < 0 || fstat(w, &sw) < 0 || fstat(r, &sr) < 0 || sw.st_ino != sr.st_ino ||
        sw.st_dev != sr.st_dev) {
        int err = r < 0 ? errno : ESTALE;
        if (r >= 0)
            close(r);
        close(w);
        return ad_fail_errno(e, err, "Error opening %s", AD_OUTPUT_FILE);
    }
    *write_fd = w;
    *read_fd = r;
    return 0;
}

static int print_report(const struct ad_result *res, unsigned long timeout, ad_err *e)
{
    char line[512];
    int n = ad_format_status(line, sizeof line, res->timed_out, timeout, res->exit_status);
    int m = ad_format_usage(line + n, sizeof line - (size_t)n, res->wall_seconds,
                            res->peak_kb);
    /* the sandbox's own cgroup figures, when the back end asks for them
     * (AD_CGROUP_ENV=1; the report stays the original's otherwise) and a
     * runtime gives it a cgroup. getenv, not secure_getenv: we are setuid,
     * and the variable only adds a line of figures. */
    struct ad_cg_usage cg;
    const char *want = getenv(AD_CGROUP_ENV);
    if (want && strcmp(want, "1") == 0 &&
        ad_cgroup_usage("/proc/self/cgroup", "/sys/fs/cgroup", &cg) == 0)
        m += ad_format_cgroup_usage(line + n + m, sizeof line - (size_t)(n + m), &cg);
    if (ad_write_all(STDOUT_FILENO, line, (size_t)n + (size_t)m) < 0)
        return ad_fail_errno(e, errno, "Error writing the report");
    return 0;
}

/* What a step of main returns when the autodriver goes on; any other value
 * is the exit code to return at once. */
#define AD_GO (-1)

/* The command line into *args: AD_GO, or the exit code of --help (after
 * printing the usage) or of a bad command line (after reporting it). */
static int parse_command_line(int argc, char **argv, struct ad_args *args)
{
    char msg[512];
    int parsed = ad_parse_args(argc, argv, args, msg, sizeof msg);
    if (parsed == AD_ARGS_HELP) {
        const char *u = ad_usage();
        return ad_write_all(STDOUT_FILENO, u, strlen(u)) < 0 ? AD_EXIT_OSERROR : AD_EXIT_OK;
    }
    if (parsed != AD_ARGS_OK) {
        ad_report("%s", msg);
        const char *u = ad_usage();
        (void)ad_write_all(STDERR_FILENO, u, strlen(u));
        return AD_EXIT_USAGE;
    }
    return AD_GO;
}

/* Who runs us and for whom: an ordinary user (neither root nor the grading
 * user), through a setuid-root binary, for a grading user that exists and
 * is not root. Fills *user (groups included). AD_GO or the exit code. */
static int check_identity(struct ad_user *user)
{
    if (getuid() == 0) {
        ad_report("This should not be run as root (run it as an ordinary user, "
                  "e.g. su autolab -c \"autodriver ... DIRECTORY\")");
        return AD_EXIT_USAGE;
    }
    ad_err e;
    int found = ad_lookup_user(AD_PASSWD_FILE, AD_GRADING_USER, user, &e);
    if (found < 0)
        return os_error(NULL, &e);
    if (found == 0) {
        ad_report("Invalid grading user: there is no user " AD_GRADING_USER " in "
                  AD_PASSWD_FILE);
        return AD_EXIT_OSERROR;
    }
    if (getuid() == user->uid) {
        ad_report("This should not be run as the grading user " AD_GRADING_USER);
        return AD_EXIT_USAGE;
    }
    if (user->uid == 0) {
        ad_report("The grading user " AD_GRADING_USER " must not have uid 0");
        return AD_EXIT_OSERROR;
    }
    if (geteuid() != 0) {
        ad_report("Autodriver must be installed setuid root (owner root, mode 4755)");
        return AD_EXIT_OSERROR;
    }
    if (ad_lookup_groups(AD_GROUP_FILE, user, &e) < 0)
        return os_error(NULL, &e);
    return AD_GO;
}

/* Our own process ready for the job: stop signals blocked, umask 022, and
 * nothing of the grading user running. AD_GO or the exit code. */
static int prepare_process(const struct ad_user *user)
{
    ad_err e;
    if (ad_block_stop_signals(&e) < 0)
        return os_error(NULL, &e);
    umask(022);
    if (ad_kill_all(user, NULL, 10000, &e) < 0)
        return os_error(NULL, &e);
    return AD_GO;
}

/* DIRECTORY moved into the grading user's home and given to that user,
 * with the output file made there: *write_fd for the job, *read_fd for us.
 * AD_GO or the exit code. */
static int place_job(const struct ad_args *args, const struct ad_user *user, int *write_fd,
                     int *read_fd)
{
    ad_err e;
    int home_fd = open(user->home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (home_fd < 0) {
        ad_fail_errno(&e, errno, "Error opening the home of " AD_GRADING_USER " (%s)",
                      user->home);
        return os_error(NULL, &e);
    }
    int rc = AD_GO;
    if (ad_move_dir(args->dirname, home_fd, getuid(), &e) < 0 ||
        ad_chown_tree(home_fd, args->dirname, user->uid, user->gid, &e) < 0 ||
        open_output(home_fd, user, write_fd, read_fd, &e) < 0)
        rc = os_error(user, &e);
    close(home_fd);
    return rc;
}

/* Runs the job with its output going to write_fd (closed here). Fills
 * *res; AD_GO when the job ran (even if it ended in an error then left in
 * *e and *ran < 0), or the exit code when it could not start. */
static int run_job(const struct ad_args *args, const struct ad_user *user, int write_fd,
                   struct ad_result *res, int *ran, ad_err *e)
{
    char workdir[sizeof user->home + sizeof args->dirname + 1];
    snprintf(workdir, sizeof workdir, "%s/%s", user->home, args->dirname);
    struct ad_job job = {
        .user = user,
        .workdir = workdir,
        .output_fd = write_fd,
        .nproc = args->nproc,
        .fsize = args->fsize,
        .timeout = args->timeout,
        .timezone = args->timezone,
    };
    *ran = ad_run_job(&job, res, e);
    close(write_fd);
    if (*ran < 0 && !res->ran)
        return os_error(user, e);
    return AD_GO;
}

/* After the job: the error if it ended in one, the status line only when
 * the job ended (or timed out) and then the output from read_fd (closed
 * here), and the clean-up. Returns the exit code. */
static int finish_job(const struct ad_args *args, const struct ad_user *user,
                      const struct ad_result *res, int ran, ad_err *e, int read_fd)
{
    int code = res->timed_out ? AD_EXIT_TIMEOUT : AD_EXIT_OK;
    if (ran < 0) {
        ad_report("%s", e->msg);
        code = AD_EXIT_OSERROR;
    }
    if (((res->finished || res->timed_out) && print_report(res, args->timeout, e) < 0) ||
        ad_dump_capped(STDOUT_FILENO, read_fd, args->osize, e) < 0) {
        ad_report("%s", e->msg);
        code = AD_EXIT_OSERROR;
    }
    close(read_fd);
    if (ad_cleanup(user, e) < 0) {
        ad_report("%s", e->msg);
        code = AD_EXIT_OSERROR;
    }
    return code;
}

int main(int argc, char **argv)
{
    struct ad_args args;
    struct ad_user user;
    int write_fd = -1, read_fd = -1, ran, rc;
    struct ad_result res;
    ad_err e;
    if ((rc = parse_command_line(argc, argv, &args)) != AD_GO ||
        (rc = check_identity(&user)) != AD_GO || (rc = prepare_process(&user)) != AD_GO ||
        (rc = place_job(&args, &user, &write_fd, &read_fd)) != AD_GO ||
        (rc = run_job(&args, &user, write_fd, &res, &ran, &e)) != AD_GO)
        return rc;
    return finish_job(&args, &user, &res, ran, &e, read_fd);
}
