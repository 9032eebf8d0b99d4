/*
 * network.c: the jobs' own network on this host (jobnet.h). At init it makes
 * sure the Docker network named by "network" exists as a bridge with
 * inter-container traffic off (created through the Engine API when missing;
 * an existing one that is not such a bridge stops the plugin with a message
 * saying how to fix it) and, with "host_firewall" (the default), that the
 * host's INPUT chain drops new connections arriving from its bridge, for
 * IPv4 and IPv6: the rule is checked with `iptables -C` and inserted first
 * with `-I` when missing, by running /usr/sbin/iptables (ip6tables) with a
 * fixed argv (no shell, no PATH lookup, a minimal environment, a timeout).
 * Jobs with network then join this network (containers.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ld.h"
#include "log.h"

#define PROG_TIMEOUT_MS 15000  /* iptables -w 5 waits 5 s at most for the lock */
#define PROG_OUT_MAX 512       /* start of its stderr kept for messages */

/* The program's absolute path among a fixed list, or NULL. */
static const char *find_prog(const char *const *paths)
{
    for (; *paths; paths++)
        if (access(*paths, X_OK) == 0)
            return *paths;
    return NULL;
}

/* Runs argv[0] (an absolute path) with argv, stdin /dev/null, stdout and
 * stderr into out (its start, one line). *status gets the exit code, -1 if
 * killed. VMMS_OK when it ran to its end, VMMS_TIMEOUT, VMMS_ERR. */
static int run_prog(const char *const *argv, int *status, char *out, size_t outsz,
                    char *err, size_t errlen)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawnattr_init(&at);
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGINT);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, &at, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pfd[1]);
    if (e != 0) {
        close(pfd[0]);
        return vmms_fail(err, errlen, VMMS_ERR, "cannot run %s: %s", argv[0], strerror(e));
    }
    size_t used = 0;
    long deadline = clock_mono_ms() + PROG_TIMEOUT_MS;
    bool timed_out = false;
    for (;;) {
        long left = deadline - clock_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue; /* the deadline check ends it */
        char buf[256];
        ssize_t n = read(pfd[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && used + 1 < outsz; i++)
            out[used++] = buf[i] == '\n' || buf[i] == '\r' ? ' ' : buf[i];
    }
    close(pfd[0]);
    while (used > 0 && out[used - 1] == ' ')
        used--;
    if (outsz)
        out[used] = '\0';
    /* Its output is over (or the deadline passed); it may still be running. */
    int ws = 0;
    for (;;) {
        if (timed_out)
            kill(pid, SIGKILL); /* our own child, by pid */
        pid_t r = waitpid(pid, &ws, timed_out ? 0 : WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return vmms_fail(err, errlen, VMMS_ERR, "waiting for %s: %s", argv[0],
                           strerror(errno));
        if (r == 0 && clock_mono_ms() >= deadline)
            timed_out = true;
        else if (r == 0)
            clock_sleep_ms(10);
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    if (timed_out)
        return vmms_fail(err, errlen, VMMS_TIMEOUT, "%s did not end within %d s", argv[0],
                       PROG_TIMEOUT_MS / 1000);
    return VMMS_OK;
}

struct family {
    const char *what;           /* for messages */
    const char *const *paths;   /* where its iptables program may be */
    const char *needs;          /* the kernel has it when this exists; NULL: always */
};

static const char *const v4_paths[] = {"/usr/sbin/iptables", "/sbin/iptables", NULL};
static const char *const v6_paths[] = {"/usr/sbin/ip6tables", "/sbin/ip6tables", NULL};
static const struct family families[] = {
    {"iptables", v4_paths, NULL},
    {"ip6tables", v6_paths, "/proc/net/if_inet6"},
};

/* Checks the rule for one family and inserts it when missing; *state says
 * what was done ("present", "installed", "no-ipv6"). */
static int ensure_rule(const struct family *f, const char *ifname, const char **state,
                       char *err, size_t errlen)
{
    if (f->needs && access(f->needs, F_OK) != 0) {
        *state = "no-ipv6"; /* no IPv6 in this kernel: nothing to reach */
        return VMMS_OK;
    }
    const char *prog = find_prog(f->paths);
    if (prog == NULL)
        return vmms_fail(err, errlen, VMMS_ERR,
                       "localDocker: %s is not installed (apt-get install iptables), so the "
                       "host cannot be closed to jobs; install it, or set host_firewall "
                       "false and drop their traffic yourself (README)", f->what);
    const char *argv[JOBNET_RULE_ARGS + 2];
    argv[0] = prog;
    for (int pass = 0; pass < 2; pass++) {
        jobnet_rule_argv(pass == 0 ? "-C" : "-I", ifname, argv + 1);
        int status = -1;
        char out[PROG_OUT_MAX];
        int rc = run_prog(argv, &status, out, sizeof out, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        if (status == 0) {
            *state = pass == 0 ? "present" : "installed";
            return VMMS_OK;
        }
        if (pass == 0 && status == 1)
            continue; /* -C: no such rule */
        return vmms_fail(err, errlen, VMMS_ERR,
                       "localDocker: %s %s of the jobs' firewall rule failed (exit %d: "
                       "%.90s); run the consumer as root, or set host_firewall false and "
                       "install it yourself (README)", f->what, pass == 0 ? "-C" : "-I",
                       status, out[0] ? out : "no message");
    }
    return VMMS_OK; /* not reached */
}

/* GET /networks/NAME into *resp; VMMS_NOT_FOUND when there is none. */
static int inspect(struct ld_ctx *ctx, struct ld_response *resp, char *err, size_t errlen)
{
    char path[128];
    snprintf(path, sizeof path, "/networks/%s", ctx->cfg.net.name);
    struct ld_request req = {.method = "GET", .path = path};
    int rc = ld_docker(ctx, &req, resp, err, errlen);
    if (rc == VMMS_OK && resp->status != 200)
        rc = ld_docker_fail(resp, "localDocker: cannot inspect the jobs' network", err, errlen);
    return rc;
}

static int create(struct ld_ctx *ctx, char *err, size_t errlen)
{
    const char *opts[4][2];
    size_t n = jobnet_options(&ctx->cfg.net, opts);
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, opts[i][0], json_string(opts[i][1]));
    json_t *body = json_pack("{s:s, s:s, s:b, s:o, s:{s:s}}", "Name", ctx->cfg.net.name,
                             "Driver", "bridge", "CheckDuplicate", 1, "Options", o,
                             "Labels", JOBNET_LABEL, "1");
    if (body == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    struct ld_request req = {.method = "POST", .path = "/networks/create", .json = body};
    struct ld_response resp;
    int rc = ld_docker(ctx, &req, &resp, err, errlen);
    json_decref(body);
    /* 409: made meanwhile by another consumer; the check that follows decides. */
    if (rc == VMMS_OK && resp.status != 201 && resp.status != 409)
        rc = ld_docker_fail(&resp, "localDocker: cannot create the jobs' network", err,
                            errlen);
    ld_response_free(&resp);
    if (rc == VMMS_OK)
        log_info("jobs_network_created", "network=%s bridge=%s", ctx->cfg.net.name,
                 ctx->cfg.net.bridge);
    return rc;
}

int ld_net_init(struct ld_ctx *ctx, char *err, size_t errlen)
{
    struct ld_response resp;
    int rc = inspect(ctx, &resp, err, errlen);
    if (rc == VMMS_NOT_FOUND) {
        ld_response_free(&resp);
        rc = create(ctx, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        rc = inspect(ctx, &resp, err, errlen);
    }
    char why[512];
    if (rc == VMMS_OK && jobnet_check(resp.json, &ctx->cfg.net, ctx->net_if,
                                      sizeof ctx->net_if, why, sizeof why) != 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "localDocker: %s", why);
    ld_response_free(&resp);
    if (rc != VMMS_OK)
        return rc;

    const char *st4 = "off", *st6 = "off";
    if (ctx->cfg.net.host_firewall) {
        rc = ensure_rule(&families[0], ctx->net_if, &st4, err, errlen);
        if (rc == VMMS_OK)
            rc = ensure_rule(&families[1], ctx->net_if, &st6, err, errlen);
        if (rc != VMMS_OK)
            return rc;
    } else {
        char rule[256], q[300];
        jobnet_rule_text(ctx->net_if, rule, sizeof rule);
        log_warn("jobs_firewall_off", "network=%s bridge=%s rule=%s note=\"host_firewall is "
                 "false: unless that rule is installed, jobs reach every service of this "
                 "host\"", ctx->cfg.net.name, ctx->net_if, log_quote(rule, q, sizeof q));
    }
    log_info("jobs_network", "network=%s bridge=%s icc=0 firewall_ipv4=%s firewall_ipv6=%s",
             ctx->cfg.net.name, ctx->net_if, st4, st6);
    return VMMS_OK;
}
