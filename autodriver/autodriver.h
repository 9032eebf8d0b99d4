/* autodriver.h: constants shared by every part of the autodriver: the
 * exit codes of its contract (docs/api.md, "Inside the container"), the name of
 * the grading user, the name of the captured output file and the prefix of
 * every line the autodriver itself prints. */
#ifndef AUTODRIVER_H
#define AUTODRIVER_H

/* Exit codes: exactly these, old Tango clients read them. */
#define AD_EXIT_OK       0   /* the job ran to its end (whatever make returned) */
#define AD_EXIT_USAGE    1   /* bad command line, or run as root / the grading user */
#define AD_EXIT_TIMEOUT  2   /* the job was killed at the timeout */
#define AD_EXIT_OSERROR  3   /* a system call failed: the job did not run properly */

#define AD_PREFIX        "Autodriver: "
#define AD_GRADING_USER  "autograde"
#define AD_OUTPUT_FILE   "output.log"
#define AD_PASSWD_FILE   "/etc/passwd"
#define AD_GROUP_FILE    "/etc/group"
#define AD_MAKE_PATH     "/usr/bin/make"

#endif
