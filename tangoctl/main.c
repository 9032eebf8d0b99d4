/*
 * main.c: tangoctl, the operator's command-line tool. It reads the same
 * config as the services (-c FILE, TANGO_<KEY> environment) and talks to
 * Redis only, through the store module (common/store*.c, keys from
 * keys.h), so every command works with the services stopped; `images`
 * alone also reads dockerd and localOCI's store (images*.c). Owns the
 * command table and option parsing; each command group lives in its own
 * file (status.c, jobs.c, control.c, builds.c, images*.c), the output helpers of ctl.h in ctl.c.
 *
 *   tangoctl [-c FILE] [--json] COMMAND [ARGS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"

static const struct {
    const char *name;
    int (*fn)(struct ctl *x, int argc, char **argv);
    const char *usage;
} commands[] = {
    {"status", cmd_status, "status                      leader, standbys, queue, running jobs, hosts, callbacks"},
    {"jobs", cmd_jobs, "jobs [--live|--dead] [--course C] [--limit N]   list jobs (live by default)"},
    {"job", cmd_job, "job ID                      one job's record, state, lease and trace"},
    {"cancel", cmd_cancel, "cancel ID                   request cancellation (as POST /cancel does)"},
    {"requeue", cmd_requeue, "requeue ID [--force]        run a dead-letter or failed job again (a new job)"},
    {"prune", cmd_prune, "prune --dead-older-than DAYS   drop finished jobs older than DAYS from Redis"},
    {"pause", cmd_pause, "pause [--reason TEXT]       lease nothing new (running jobs go on)"},
    {"resume", cmd_resume, "resume                      lease again"},
    {"drain", cmd_drain, "drain [--consumer TOKEN]    ask the leader (or TOKEN) to drain and exit"},
    {"builds", cmd_builds, "builds list|approve ID|reject ID|log ID   Dockerfile builds (/build_image)"},
    {"images", cmd_images, "images [prune [--dry-run] [--match GLOB]...]   images per back end, their users; prune ours unused"},
    {"callbacks", cmd_callbacks, "callbacks retry             move callbacks:failed back to callbacks:due"},
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

static void usage(FILE *f)
{
    fprintf(f, "usage: tangoctl [-c config.json] [--json] COMMAND [ARGS]\n"
               "Environment TANGO_<KEY> overrides any config key (e.g. TANGO_REDIS_URL).\n"
               "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %s\n", commands[i].usage);
    fprintf(f, "Exit: 0 done, 1 refused, 2 usage or config error, 3 Redis unavailable or error.\n");
}

int main(int argc, char **argv)
{
    struct ctl x = {0};
    const char *path = NULL;
    /* --json may come anywhere; -c FILE and -h before the command */
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--json") == 0)
            x.json = true;
        else
            argv[n++] = argv[i];
    }
    argc = n;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return CTL_OK;
        } else {
            usage(stderr);
            return ctl_fail(&x, CTL_USAGE, "unknown option %s", argv[i]);
        }
    }
    if (i >= argc) {
        usage(stderr);
        return ctl_fail(&x, CTL_USAGE, "no command given");
    }
    size_t c = 0;
    while (c < NCOMMANDS && strcmp(commands[c].name, argv[i]) != 0)
        c++;
    if (c == NCOMMANDS) {
        usage(stderr);
        return ctl_fail(&x, CTL_USAGE, "unknown command \"%s\"", argv[i]);
    }
    char err[512];
    if (config_load(&x.cfg, path, NULL, err, sizeof err))
        return ctl_fail(&x, CTL_USAGE, "%s", err);
    log_init("ctl", LOG_ERROR); /* the store's own warnings: the commands say it better */
    struct redis_target t;
    if (redis_url_parse(x.cfg.redis_url, &t, err, sizeof err) == 0)
        snprintf(x.redis_where, sizeof x.redis_where, "%s:%d/%d", t.host, t.port, t.db);
    x.st = store_new(&x.cfg);
    int rc;
    if (!x.st)
        rc = ctl_fail(&x, CTL_USAGE, "config key \"redis_url\" is not valid");
    else
        rc = commands[c].fn(&x, argc - i, argv + i);
    store_free(x.st);
    config_free(&x.cfg);
    return rc;
}
