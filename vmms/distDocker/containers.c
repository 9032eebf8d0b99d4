/*
 * containers.c: the life of one container ("VM") on a worker host, through
 * the docker CLI over SSH: create it on the host picked round-robin with the
 * job's limits, its volume directory and the seccomp profile of every back
 * end, its registry image pulled there first if missing (initialize_vm), wait until it runs
 * (wait_vm), remove it with its directory (destroy_vm, safe_destroy_vm;
 * deferred while its host is down), and list this service's containers on
 * every healthy host by label (get_vms). Every argument put on a command
 * line is validated and single-quoted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/nameset.h"
#include "common/seccomp.h"
#include "dd.h"
#include "log.h"
#include "names.h"

#define CMD_MAX 4096

/* A file holding the seccomp profile of every back end (common/seccomp.h),
 * read from its start: the create command's stdin, which the docker CLI
 * reads as --security-opt seccomp=/dev/stdin in place of the engine's own
 * profile (older engines' allow io_uring, AF_ALG and AF_VSOCK). -1 with
 * errno on failure. */
static int profile_fd(void)
{
    char *text = vmms_seccomp_profile_text();
    int fd = text ? memfd_create("tango-seccomp", MFD_CLOEXEC) : -1;
    size_t n = text ? strlen(text) : 0;
    if (fd >= 0 && (write(fd, text, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0)) {
        close(fd);
        fd = -1;
    }
    if (text == NULL)
        errno = ENOMEM;
    free(text);
    return fd;
}

/* The job's writable storage, disk MiB in all, as localDocker
 * (docs/backends/localDocker.md, "Disk limit"): a read-only root and a
 * tmpfs share for each place a job writes; tmpfs is charged to the memory
 * cgroup, so the memory limit is memory + disk and a full disk is ENOSPC,
 * not an OOM kill. The docker run options into buf. */
static void storage_opts(int disk, char *buf, size_t bufsz)
{
    int tmp = disk / 4, vartmp = disk / 16, shm = disk / 16, output = disk / 16;
    int home = disk - tmp - vartmp - shm - output;
    snprintf(buf, bufsz,
             "--read-only --tmpfs /home:rw,exec,nosuid,nodev,size=%dm,mode=755 "
             "--tmpfs /home/output:rw,noexec,nosuid,nodev,size=%dm,mode=755 "
             "--tmpfs /tmp:rw,exec,nosuid,nodev,size=%dm,mode=1777 "
             "--tmpfs /var/tmp:rw,exec,nosuid,nodev,size=%dm,mode=1777 --shm-size %dm",
             home, output, tmp, vartmp, shm);
}

/* Picks vm's host (dd_assign; vm->host set) into *out, lim->cores cut to
 * its CPUs. VMMS_BUSY when every up host is full, VMMS_UNAVAILABLE when
 * none is up. */
static int assign_host(struct dd_ctx *ctx, struct vmms_vm *vm, struct vmms_limits *lim,
                       struct dd_host **out, char *err, size_t errlen)
{
    int ncpu = 0;
    struct dd_host *h = dd_assign(ctx, vm->name, &ncpu);
    *out = h;
    if (h == NULL) {
        /* full: the job waits (BUSY); none up: the back end is unavailable */
        size_t up = dd_hosts_up(ctx);
        return vmms_fail(err, errlen, up ? VMMS_BUSY : VMMS_UNAVAILABLE,
                       up ? "every worker host that is up (%zu of %zu) is at its max_jobs"
                          : "no worker host is up (%zu of %zu)", up, ctx->nhosts);
    }
    snprintf(vm->host, sizeof vm->host, "%s", h->label);
    if (ncpu > 0 && lim->cores > ncpu) {
        log_warn("vm_cores_clamped", "name=%s host=%s asked=%d host_cpus=%d", vm->name,
                 h->label, lim->cores, ncpu);
        lim->cores = ncpu;
    }
    return VMMS_OK;
}

/* The shell command (CMD_MAX bytes into line) that makes vm's volume
 * directory on h and starts its container with limits lim, the seccomp
 * profile read from stdin. A leftover directory of that name (from an
 * instance that died with its host) is replaced, unless a container of that
 * name still lives. VMMS_OK, or VMMS_ERR when it does not fit. */
static int create_line(struct dd_ctx *ctx, const struct vmms_vm *vm, const struct dd_host *h,
                       const struct vmms_limits *lim, char *line, char *err, size_t errlen)
{
    char qv[PATH_MAX + 8], qd[PATH_MAX + 8], qn[140], qi[280], qp[80], qh[300];
    char vdir[PATH_MAX + 130], storage[512];
    storage_opts(lim->disk_mb, storage, sizeof storage);
    snprintf(vdir, sizeof vdir, "%s/%s", h->cfg->volume_dir, vm->name);
    vmms_sh_quote(h->cfg->volume_dir, qd, sizeof qd);
    vmms_sh_quote(vdir, qv, sizeof qv);
    vmms_sh_quote(vm->name, qn, sizeof qn);
    vmms_sh_quote(vm->image, qi, sizeof qi);
    vmms_sh_quote(ctx->prefix, qp, sizeof qp);
    vmms_sh_quote(h->label, qh, sizeof qh);
    /* With network, the jobs' own network (network.c). */
    char qnet[JOBNET_NAME_MAX + 8], netopt[JOBNET_NAME_MAX + 20];
    snprintf(netopt, sizeof netopt, "--network %s",
             vm->network ? vmms_sh_quote(ctx->cfg.net.name, qnet, sizeof qnet) : "none");
    int mem = lim->memory_mb + lim->disk_mb;
    int n = snprintf(line, CMD_MAX,
        "v=%s; n=%s; "
        "if [ -e \"$v\" ]; then "
        "if docker container inspect \"$n\" >/dev/null 2>&1; then "
        "echo \"a container named $n already exists\" >&2; exit 17; fi; "
        "rm -rf \"$v\" || exit 1; fi; "
        "mkdir -p -m 0700 %s && mkdir -m 0755 \"$v\" || exit 1; "
        "docker run -d --pull never --security-opt seccomp=/dev/stdin "
        "--name \"$n\" --label tango.prefix=%s "
        "--label tango.vm=\"$n\" --label tango.host=%s "
        "--cpus %d --memory %dm --memory-swap %dm --pids-limit %d %s %s "
        "-v \"$v\":/home/mount --entrypoint '' %s sh -c 'exec sleep infinity' "
        "|| { rc=$?; docker ps -aq --filter label=tango.vm=\"$n\" | "
        "xargs -r docker rm -f >/dev/null 2>&1; rm -rf \"$v\"; exit $rc; }",
        qv, qn, qd, qp, qh, lim->cores, mem, mem, lim->pids, storage,
        netopt, qi);
    if (n <= 0 || n >= CMD_MAX || !qv[0] || !qd[0] || !qi[0])
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: command line too long", vm->name);
    return VMMS_OK;
}

/* Runs the create command line on h with the seccomp profile on its stdin;
 * vm->id gets the container id, docker's last line. */
static int run_create(struct dd_ctx *ctx, struct dd_host *h, const char *line,
                      struct vmms_vm *vm, char *err, size_t errlen)
{
    int profile = profile_fd();
    struct vssh_cmd cmd = {.line = line, .stdin_fd = profile, .out_max = 4096};
    struct vssh_out out;
    int rc = profile >= 0 ? dd_run(ctx, h, &cmd, &out, err, errlen)
                          : vmms_fail(err, errlen, VMMS_ERR,
                                      "cannot make the seccomp profile: %s", strerror(errno));
    if (profile >= 0)
        close(profile);
    if (rc == VMMS_OK && out.exit_code != 0)
        rc = vssh_cmd_fail(h->label, &out, "cannot create the container", err, errlen);
    if (rc == VMMS_OK) {
        /* The id is docker's last line (anything before it is not ours). */
        const char *last = out.out ? out.out : "";
        for (const char *p = last; *p; p++)
            if (*p == '\n' && p[1] && p[1] != '\n')
                last = p + 1;
        size_t idl = strspn(last, "0123456789abcdef");
        if (idl < 12 || idl >= sizeof vm->id)
            rc = vmms_fail(err, errlen, VMMS_ERR, "docker run on %s printed no container id",
                         h->label);
        else
            snprintf(vm->id, sizeof vm->id, "%.*s", (int)idl, last);
    }
    if (profile >= 0)
        vssh_out_free(&out);
    return rc;
}

int dd_initialize_vm(void *vctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    struct vmms_limits lim;
    int rc = vmms_initialize_begin(ctx->prefix, vm, &ctx->cfg.defaults, false, &lim, err, errlen);
    struct dd_host *h = NULL;
    if (rc == VMMS_OK)
        rc = assign_host(ctx, vm, &lim, &h, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    /* With network, the jobs' network is checked on h first. */
    if (vm->network && (rc = dd_net_ready(ctx, h, err, errlen)) != VMMS_OK)
        return rc; /* the registry keeps the VM until destroy_vm, as below */
    /* A registry image h lacks is pulled there first (pull.c). */
    if ((rc = dd_pull_missing(ctx, h, vm->image, err, errlen)) != VMMS_OK)
        return rc;
    char *line = malloc(CMD_MAX);
    if (line == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    long t0 = clock_mono_ms();
    rc = create_line(ctx, vm, h, &lim, line, err, errlen);
    if (rc == VMMS_OK)
        rc = run_create(ctx, h, line, vm, err, errlen);
    free(line);
    if (rc != VMMS_OK) {
        /* The registry keeps the VM (and its slot) until destroy_vm, so the
         * consumer's clean-up reaches the right host. */
        char q[600];
        log_warn("vm_create_failed", "name=%s host=%s err=%s", vm->name, h->label,
                 log_quote(err, q, sizeof q));
        return rc;
    }
    char qlog[300];
    log_info("vm_created", "name=%s host=%s id=%.12s image=%s cores=%d memory_mb=%d "
             "disk_mb=%d pids=%d network=%d ms=%ld", vm->name, h->label, vm->id,
             log_quote(vm->image, qlog, sizeof qlog), lim.cores, lim.memory_mb, lim.disk_mb,
             lim.pids, (int)vm->network, (long)(clock_mono_ms() - t0));
    return VMMS_OK;
}

int dd_wait_vm(void *vctx, struct vmms_vm *vm, int timeout_s, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct dd_host *h = dd_vm_host(ctx, vm, err, errlen);
    if (h == NULL)
        return VMMS_ERR;
    char qn[140], line[300];
    snprintf(line, sizeof line, "docker container inspect --format '{{json .State}}' %s",
             vmms_sh_quote(vm->id[0] ? vm->id : vm->name, qn, sizeof qn));
    long deadline = clock_mono_ms() + 1000L * (timeout_s > 0 ? timeout_s : ctx->cfg.command_timeout_s);
    long pause = 50;
    for (;;) {
        long left = deadline - clock_mono_ms();
        struct vssh_cmd cmd = {.line = line, .timeout_ms = (int)(left < 1000 ? 1000 : left),
                             .stdin_fd = -1, .out_max = 8192};
        struct vssh_out out;
        rc = dd_run(ctx, h, &cmd, &out, err, errlen);
        if (rc == VMMS_OK && out.exit_code != 0)
            rc = vssh_cmd_fail(h->label, &out, "cannot inspect the container", err, errlen);
        json_t *state = rc == VMMS_OK ? json_loads(out.out ? out.out : "", 0, NULL) : NULL;
        if (rc == VMMS_OK && !json_is_object(state))
            rc = vmms_fail(err, errlen, VMMS_ERR, "docker inspect on %s: unexpected answer",
                         h->label);
        vssh_out_free(&out);
        bool running = json_is_true(json_object_get(state, "Running"));
        const char *status = json_string_value(json_object_get(state, "Status"));
        if (rc == VMMS_OK && !running && status &&
            (strcmp(status, "exited") == 0 || strcmp(status, "dead") == 0)) {
            const char *e = json_string_value(json_object_get(state, "Error"));
            rc = vmms_fail(err, errlen, VMMS_ERR,
                         "container %s on %s stopped (exit code %lld%s%s); does the image "
                         "have sh and sleep?", vm->name, h->label,
                         (long long)json_integer_value(json_object_get(state, "ExitCode")),
                         e && *e ? ": " : "", e ? e : "");
        }
        json_decref(state);
        if (rc != VMMS_OK)
            return rc;
        if (running)
            return VMMS_OK;
        if (clock_mono_ms() + pause > deadline)
            return vmms_fail(err, errlen, VMMS_TIMEOUT, "container %s on %s not running after "
                           "%d s", vm->name, h->label, timeout_s);
        clock_sleep_ms(pause);
        if (pause < 400)
            pause *= 2;
    }
}

int dd_remove_on(struct dd_ctx *ctx, struct dd_host *h, const char *name, bool *existed,
                 char *err, size_t errlen)
{
    char qn[140], qv[PATH_MAX + 140], vdir[PATH_MAX + 130], line[PATH_MAX + 800];
    snprintf(vdir, sizeof vdir, "%s/%s", h->cfg->volume_dir, name);
    /* `docker rm -f` prints the name when it removed something; an unknown
     * name is an error for older CLIs and silent for newer ones. */
    snprintf(line, sizeof line,
             "n=%s; v=%s; out=$(docker rm -f -v \"$n\" 2>&1); rc=$?; "
             "rm -rf \"$v\" || { echo \"cannot remove $v\" >&2; exit 3; }; "
             "case \"$out\" in *'No such container'*) exit 0;; "
             "*'already in progress'*) echo existed; exit 0;; esac; "
             "[ $rc -eq 0 ] || { echo \"$out\" >&2; exit 1; }; "
             "[ -n \"$out\" ] && echo existed; exit 0",
             vmms_sh_quote(name, qn, sizeof qn), vmms_sh_quote(vdir, qv, sizeof qv));
    struct vssh_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = 1024};
    struct vssh_out out;
    *existed = false;
    int rc = dd_run(ctx, h, &cmd, &out, err, errlen);
    if (rc == VMMS_OK && out.exit_code != 0)
        rc = vssh_cmd_fail(h->label, &out, "cannot remove the container", err, errlen);
    if (rc == VMMS_OK)
        *existed = out.out && strstr(out.out, "existed") != NULL;
    vssh_out_free(&out);
    return rc;
}

static int destroy(struct dd_ctx *ctx, struct vmms_vm *vm, bool safe, char *err, size_t errlen)
{
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    vmms_watch_abort(&ctx->watches, vm->name);
    long t0 = clock_mono_ms();
    bool existed = false;
    struct dd_host *h = dd_vm_host(ctx, vm, NULL, 0);
    if (h == NULL) {
        /* Unknown here (made by an earlier consumer): try every healthy host. */
        bool any = false;
        for (size_t i = 0; i < ctx->nhosts; i++) {
            struct dd_host *o = &ctx->hosts[i];
            bool ex = false;
            if (!dd_host_is_up(ctx, o))
                continue;
            int r = dd_remove_on(ctx, o, vm->name, &ex, err, errlen);
            any = any || r == VMMS_OK;
            existed = existed || ex;
            if (r != VMMS_OK)
                rc = r;
        }
        if (rc == VMMS_OK && !any)
            rc = vmms_fail(err, errlen, VMMS_ERR, "no worker host is up to remove %s", vm->name);
    } else if (!dd_host_is_up(ctx, h)) {
        dd_defer_removal(ctx, h, vm->name);
        if (!safe)
            rc = vmms_fail(err, errlen, VMMS_ERR, "worker host %s is down: %s is removed when "
                         "it is back", h->label, vm->name);
        existed = true;
    } else {
        rc = dd_remove_on(ctx, h, vm->name, &existed, err, errlen);
        if (rc != VMMS_OK && !dd_host_is_up(ctx, h)) {
            dd_defer_removal(ctx, h, vm->name);
            if (safe)
                rc = VMMS_OK;
            existed = true;
        }
    }
    dd_vm_forget(ctx, vm->name);
    if (rc == VMMS_OK && !existed && !safe)
        rc = vmms_fail(err, errlen, VMMS_NOT_FOUND, "container %s does not exist", vm->name);
    log_info("vm_destroyed", "name=%s host=%s existed=%d ms=%ld rc=%d", vm->name,
             h ? h->label : "?", (int)existed, (long)(clock_mono_ms() - t0), rc);
    return rc;
}

int dd_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    return destroy(ctx, vm, false, err, errlen);
}

int dd_safe_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    return destroy(ctx, vm, true, err, errlen);
}

/* "a=b,c=d" labels string of `docker ps`: the value of key, into buf. */
static const char *label_value(const char *labels, const char *key, char *buf, size_t bufsz)
{
    size_t kl = strlen(key);
    for (const char *p = labels; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(buf, bufsz, "%.*s", (int)(n - kl - 1), p + kl + 1);
            return buf;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

int dd_get_vms(void *vctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    char qp[80], line[300];
    snprintf(line, sizeof line,
             "docker ps -a --no-trunc --filter label=tango.prefix=%s --format '{{json .}}'",
             vmms_sh_quote(ctx->prefix, qp, sizeof qp));
    size_t answered = 0;
    struct vmms_nameset seen = {0};
    int rc = VMMS_OK;
    for (size_t i = 0; i < ctx->nhosts; i++) {
        struct dd_host *h = &ctx->hosts[i];
        if (!dd_host_is_up(ctx, h))
            continue;
        struct vssh_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = VSSH_OUT_MAX};
        struct vssh_out out;
        int r = dd_run(ctx, h, &cmd, &out, err, errlen);
        if (r == VMMS_OK && out.exit_code != 0)
            r = vssh_cmd_fail(h->label, &out, "cannot list containers", err, errlen);
        if (r != VMMS_OK) {
            vssh_out_free(&out);
            rc = r;
            continue;
        }
        answered++;
        for (char *p = out.out, *nl; p && *p; p = nl ? nl + 1 : NULL) {
            nl = strchr(p, '\n');
            json_t *c = json_loadb(p, nl ? (size_t)(nl - p) : strlen(p), 0, NULL);
            const char *id = json_string_value(json_object_get(c, "ID"));
            const char *image = json_string_value(json_object_get(c, "Image"));
            const char *state = json_string_value(json_object_get(c, "State"));
            const char *names = json_string_value(json_object_get(c, "Names"));
            const char *labels = json_string_value(json_object_get(c, "Labels"));
            char nbuf[128], hbuf[256];
            const char *name = label_value(labels, "tango.vm", nbuf, sizeof nbuf);
            if (name == NULL && names) {
                snprintf(nbuf, sizeof nbuf, "%.*s", (int)strcspn(names, ","), names);
                name = nbuf;
            }
            /* The host that made it (its label), if it is one of ours; else
             * the host that lists it. */
            const char *made_on = label_value(labels, "tango.host", hbuf, sizeof hbuf);
            struct dd_host *owner = h;
            for (size_t k = 0; made_on && k < ctx->nhosts; k++)
                if (strcmp(ctx->hosts[k].label, made_on) == 0)
                    owner = &ctx->hosts[k];
            if (id && name && vmms_name_ok(name, 128) && vmms_nameset_add(&seen, name)) {
                dd_vm_note(ctx, name, owner);
                cb(name, id, image ? image : "", state && strcmp(state, "running") == 0, arg);
            }
            json_decref(c);
        }
        vssh_out_free(&out);
    }
    vmms_nameset_free(&seen);
    if (answered == 0 && rc == VMMS_OK)
        rc = vmms_fail(err, errlen, VMMS_ERR, "no worker host is up");
    return answered > 0 ? VMMS_OK : rc;
}
