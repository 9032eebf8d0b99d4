/*
 * ctl.h: what tangoctl's command files share: the run context (config,
 * store handle, output mode), the command entry points, and the output and
 * refusal helpers, so every command answers the same way: human text on
 * stdout by default, one JSON document on stdout with --json, a clear
 * message on stderr and a non-zero exit when it refuses.
 *
 * Exit codes: 0 done; 1 refused (the state machine or the service's state
 * forbids it, or no such job); 2 usage or config error; 3 Redis unreachable
 * or answering with an error.
 */
#ifndef TANGO_CTL_H
#define TANGO_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "config.h"
#include "store.h"

enum { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2, CTL_STORE = 3 };

struct ctl {
    struct tango_config cfg;
    struct store *st;
    bool json;            /* --json: one JSON document on stdout */
    char redis_where[300]; /* "host:port/db" for messages (never the password) */
};

/* A command: argv[0] is its name; returns the exit code. */
int cmd_status(struct ctl *x, int argc, char **argv);
int cmd_jobs(struct ctl *x, int argc, char **argv);
int cmd_job(struct ctl *x, int argc, char **argv);
int cmd_cancel(struct ctl *x, int argc, char **argv);
int cmd_requeue(struct ctl *x, int argc, char **argv);
int cmd_prune(struct ctl *x, int argc, char **argv);
int cmd_pause(struct ctl *x, int argc, char **argv);
int cmd_resume(struct ctl *x, int argc, char **argv);
int cmd_drain(struct ctl *x, int argc, char **argv);
int cmd_callbacks(struct ctl *x, int argc, char **argv);
int cmd_builds(struct ctl *x, int argc, char **argv);
int cmd_images(struct ctl *x, int argc, char **argv);

/* Refuses: prints "tangoctl: <message>" on stderr (and {"ok":false,
 * "error":...} on stdout with --json); returns code. */
int ctl_fail(struct ctl *x, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A store call that failed with status: the message names Redis's address
 * (unreachable) or its error; returns CTL_STORE (CTL_REFUSED for NOT_FOUND). */
int ctl_store_fail(struct ctl *x, int status, const char *what);
/* With --json prints doc (adding "ok": true) and returns true; else
 * returns false and the caller prints text. Takes the reference either way. */
bool ctl_emit_json(struct ctl *x, json_t *doc);
/* A job id argument (decimal, > 0); refuses (usage) otherwise. */
int ctl_job_id(struct ctl *x, int argc, char **argv, int64_t *id);
/* "45s", "3m12s", "2h05m", "3d04h" (seconds >= 0; "-" when unknown < 0). */
const char *ctl_age(double seconds, char *buf, size_t len);
/* The course a courselab belongs to: what comes before its last '-'
 * (Autolab names courselabs <course>-<assessment>), else the whole name. */
const char *ctl_course(const char *courselab, char *buf, size_t len);
/* Who runs tangoctl, for traces and the pause record: "user@host". */
void ctl_operator(char *buf, size_t len);
/* Unix time now, as a double. */
double ctl_now(void);

#endif
