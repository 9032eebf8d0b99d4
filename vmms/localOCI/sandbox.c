/*
 * sandbox.c: the life of one sandbox ("VM"). A sandbox is a bundle
 * directory <run_dir>/vms/<name>/ holding
 *   disk/     a tmpfs of the job's root share (upper/ and work/ of the overlay)
 *   rootfs/   the overlayfs root: the image's layers read-only, disk/upper
 *   mount/    the job's /home/mount (inputs in, feedback out)
 *   config.json, image, init ("pid starttime" of its process), net, console.log
 * and a container of the same name created in the OCI runtime (its process
 * parked before exec, its namespaces and cgroups made), so that a job's
 * start is the runtime's `start` alone. initialize_vm makes it all (the warm
 * pool calls it ahead of any job), wait_vm checks the container's process
 * lives, destroy_vm kills and deletes the container and removes every
 * piece (runtime state, cgroups, mounts, network namespace, directory);
 * get_vms reports every piece carrying our prefix, so startup clean-up
 * finds what a crash left. Bundles are root's alone (0700 in a 0700
 * run_dir). Also the container process lookup, the cgroup usage figures
 * (job_usage) and the grading user's uid, read inside the container's root
 * (vmms_open_in_root), never through the host's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "common/nameset.h"
#include "lo.h"
#include "log.h"

static const char *const cg_v1[] = {"cpu", "cpuacct", "cpuset", "memory", "devices",
                                    "freezer", "blkio", "pids", "perf_event", "net_cls",
                                    "net_prio", "hugetlb", "rdma", "misc", "systemd",
                                    "unified", NULL};

int lo_open_bundle(struct lo_ctx *ctx, const char *name)
{
    return openat(ctx->vms_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int write_small(int dfd, const char *file, const char *data)
{
    int fd = openat(dfd, file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen(data);
    int rc = write(fd, data, n) == (ssize_t)n ? 0 : -1;
    close(fd);
    return rc;
}

/* Field 22 of /proc/pid/stat (start time) and its state letter. */
static long long proc_start(int pid, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (vmms_read_small(AT_FDCWD, path, 0, buf, sizeof buf) < 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? atoll(p) : -1;
}

int lo_container_pid(struct lo_ctx *ctx, const char *name)
{
    int dfd = lo_open_bundle(ctx, name);
    char buf[64];
    if (dfd < 0)
        return 0;
    ssize_t got = vmms_read_small(dfd, "init", O_NOFOLLOW, buf, sizeof buf);
    close(dfd);
    int pid = 0;
    long long start = -1;
    if (got < 0 || sscanf(buf, "%d %lld", &pid, &start) != 2 || pid <= 1)
        return 0;
    char st = '?';
    if (proc_start(pid, &st) != start || st == 'Z' || st == 'X')
        return 0;
    return pid;
}

int lo_runtime(struct lo_ctx *ctx, const char *what, const char *const *args, char *err,
               size_t errlen)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = ctx->runtime_path;
    argv[n++] = "--root";
    argv[n++] = ctx->runtime_root;
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    return vmms_spawn_ok(what, argv, NULL, 1000L * ctx->cfg.cmd_timeout_s, err, errlen);
}

/* The runtime has state for name. */
static bool runtime_has(struct lo_ctx *ctx, const char *name)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof p, "%s/%s", ctx->runtime_root, name);
    return access(p, F_OK) == 0;
}

/* The cgroup directory of name under controller ctl ("" = v2 root). */
static void cg_dir(struct lo_ctx *ctx, const char *ctl, const char *name, char *buf,
                   size_t bufsz)
{
    if (ctx->cgroup2)
        snprintf(buf, bufsz, "/sys/fs/cgroup/%s/%s", LO_CGROUP_PARENT, name);
    else
        snprintf(buf, bufsz, "/sys/fs/cgroup/%s/%s/%s", ctl, LO_CGROUP_PARENT, name);
}

/* Removes what cgroups of name are left (the runtime's delete removes them;
 * a crash in between may not have). */
static void cg_remove(struct lo_ctx *ctx, const char *name)
{
    char d[PATH_MAX];
    if (ctx->cgroup2) {
        cg_dir(ctx, "", name, d, sizeof d);
        rmdir(d);
        return;
    }
    for (const char *const *c = cg_v1; *c; c++) {
        cg_dir(ctx, *c, name, d, sizeof d);
        rmdir(d);
    }
}

/* Reaps name's process if it is our child (we are its subreaper). */
static void reap(int pid)
{
    if (pid <= 1)
        return;
    for (int i = 0; i < 200; i++) {
        siginfo_t si = {0};
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) != 0 || si.si_pid == pid)
            return; /* not ours (ECHILD), or reaped */
        clock_sleep_ms(5);
    }
}

/* Whether any cgroup directory of name is left. */
static bool cg_left(struct lo_ctx *ctx, const char *name)
{
    char d[PATH_MAX];
    if (ctx->cgroup2) {
        cg_dir(ctx, "", name, d, sizeof d);
        return access(d, F_OK) == 0;
    }
    for (const char *const *c = cg_v1; *c; c++) {
        cg_dir(ctx, *c, name, d, sizeof d);
        if (access(d, F_OK) == 0)
            return true;
    }
    return false;
}

/* What `runc delete --force` does, without a runc process (~10 ms of CPU a
 * job): SIGKILL the container's first process (the kernel then kills the
 * rest of its pid namespace), reap it, remove its cgroups once empty and
 * its state directory. -1 (nothing harmed) when a cgroup stays busy: the
 * caller then runs the runtime's own delete. runc only: crun keeps more
 * state of its own. */
static int fast_delete(struct lo_ctx *ctx, const char *name)
{
    int pid = lo_container_pid(ctx, name);
    if (pid > 0) {
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        /* checked again through the pidfd's own process: never another's */
        if (pfd >= 0 && lo_container_pid(ctx, name) == pid &&
            syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) == 0) {
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            poll(&p, 1, 5000);
        }
        if (pfd >= 0)
            close(pfd);
        reap(pid);
    }
    for (int i = 0; i < 100; i++) {
        cg_remove(ctx, name);
        if (!cg_left(ctx, name))
            break;
        clock_sleep_ms(10); /* the namespace's last processes exiting */
    }
    if (cg_left(ctx, name))
        return -1;
    char st[PATH_MAX];
    snprintf(st, sizeof st, "%s/%s", ctx->runtime_root, name);
    lo_rm_tree(st);
    return runtime_has(ctx, name) ? -1 : 0;
}

static int destroy(struct lo_ctx *ctx, struct vmms_vm *vm, bool safe, char *err, size_t errlen)
{
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    vmms_watch_abort(&ctx->watches, vm->name);
    long long t0 = clock_mono_ms();
    bool existed = false;
    int pid = 0;
    int dfd = lo_open_bundle(ctx, vm->name);
    if (dfd >= 0) {
        char buf[64];
        existed = true;
        if (vmms_read_small(dfd, "init", O_NOFOLLOW, buf, sizeof buf) > 0)
            pid = atoi(buf);
    }
    if (runtime_has(ctx, vm->name)) {
        existed = true;
    }
    if (runtime_has(ctx, vm->name) && (ctx->runtime != LO_RUNC || fast_delete(ctx, vm->name))) {
        const char *args[] = {"delete", "--force", vm->name, NULL};
        rc = lo_runtime(ctx, "runtime delete", args, err, errlen);
        if (rc != VMMS_OK && !runtime_has(ctx, vm->name))
            rc = VMMS_OK; /* gone meanwhile (a concurrent destroy) */
    }
    reap(pid);
    cg_remove(ctx, vm->name);
    if (dfd >= 0) {
        char p[PATH_MAX * 2];
        snprintf(p, sizeof p, "%s/%s/rootfs", ctx->vms_dir, vm->name);
        if (umount2(p, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
            log_warn("vm_umount_failed", "name=%s what=rootfs errno=%d", vm->name, errno);
        snprintf(p, sizeof p, "%s/%s/disk", ctx->vms_dir, vm->name);
        if (umount2(p, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
            log_warn("vm_umount_failed", "name=%s what=disk errno=%d", vm->name, errno);
        char e2[256];
        if (lo_net_remove(ctx, vm->name, dfd, e2, sizeof e2) != VMMS_OK)
            log_warn("vm_netns_left", "name=%s err=\"%s\"", vm->name, e2);
        close(dfd);
        snprintf(p, sizeof p, "%s/%s", ctx->vms_dir, vm->name);
        lo_rm_tree(p);
        if (access(p, F_OK) == 0 && rc == VMMS_OK)
            rc = vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot remove %s", vm->name, p);
    } else {
        char e2[256];
        lo_net_remove(ctx, vm->name, -1, e2, sizeof e2); /* a namespace alone */
    }
    if (rc == VMMS_OK && !existed && !safe)
        rc = vmms_fail(err, errlen, VMMS_NOT_FOUND, "sandbox %s does not exist", vm->name);
    log_info("vm_destroyed", "name=%s existed=%d ms=%lld rc=%d", vm->name, (int)existed,
             clock_mono_ms() - t0, rc);
    return rc;
}

int lo_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    return destroy(ctx, vm, false, err, errlen);
}

int lo_safe_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    return destroy(ctx, vm, true, err, errlen);
}

/* The overlay's lowerdir option: the image's layers, top first. */
static int lower_dirs(struct lo_ctx *ctx, const json_t *image, char *buf, size_t bufsz)
{
    json_t *layers = json_object_get(image, "layers");
    size_t o = 0;
    for (size_t i = json_array_size(layers); i-- > 0;) {
        char d[PATH_MAX];
        lo_layer_dir(ctx, json_string_value(json_array_get(layers, i)), d, sizeof d);
        if (access(d, F_OK) != 0)
            return -1;
        int n = snprintf(buf + o, bufsz - o, "%s%s", o ? ":" : "", d);
        if (n < 0 || (size_t)n >= bufsz - o)
            return -1;
        o += (size_t)n;
    }
    return o ? 0 : -1;
}

/* Makes the bundle's file systems and config.json (dfd: the bundle). */
static int make_bundle(struct lo_ctx *ctx, struct vmms_vm *vm, int dfd, const json_t *image,
                       const struct vmms_limits *lim, char *err, size_t errlen)
{
    char lower[4096], opts[4096 + 2 * PATH_MAX], p[PATH_MAX * 2];
    if (lower_dirs(ctx, image, lower, sizeof lower) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "image %s: a layer is missing from the "
                         "store, or too many layers for one overlay mount: import it again",
                         vm->image);
    if (mkdirat(dfd, "disk", 0700) != 0 || mkdirat(dfd, "rootfs", 0755) != 0 ||
        mkdirat(dfd, "mount", 0755) != 0 || fchmodat(dfd, "mount", 0755, 0) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot make its directories: %s",
                         vm->name, strerror(errno));
    int upper = lim->disk_mb / 4 > 4 ? lim->disk_mb / 4 : 4;
    snprintf(p, sizeof p, "%s/%s/disk", ctx->vms_dir, vm->name);
    snprintf(opts, sizeof opts, "size=%dm,mode=0700", upper);
    if (mount("tango-oci", p, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot mount its disk tmpfs: %s",
                         vm->name, strerror(errno));
    char up[PATH_MAX * 2 + 8], work[PATH_MAX * 2 + 8];
    snprintf(up, sizeof up, "%s/upper", p);
    snprintf(work, sizeof work, "%s/work", p);
    if (mkdir(up, 0755) != 0 || mkdir(work, 0700) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot make upper/work: %s",
                         vm->name, strerror(errno));
    int n = snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, up, work);
    if (n < 0 || (size_t)n >= 4096)
        return vmms_fail(err, errlen, VMMS_ERR, "image %s: too many layers for one overlay "
                         "mount (options over 4096 bytes)", vm->image);
    snprintf(p, sizeof p, "%s/%s/rootfs", ctx->vms_dir, vm->name);
    /* not nosuid: the image's setuid autodriver is the contract (docs/api.md) */
    if (mount("tango-oci", p, "overlay", MS_NODEV, opts) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot mount its overlay root: %s",
                         vm->name, strerror(errno));
    char netns[PATH_MAX] = "";
    if (vm->network) {
        int rc = lo_net_create(ctx, vm->name, dfd, err, errlen);
        if (rc != VMMS_OK)
            return rc;
        snprintf(netns, sizeof netns, "/run/netns/%s", vm->name);
    }
    json_t *spec = lo_spec(ctx, vm->name, image, lim, netns[0] ? netns : NULL);
    int fd = spec ? openat(dfd, "config.json", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                                    O_CLOEXEC, 0600)
                  : -1;
    int rc = fd >= 0 && json_dumpfd(spec, fd, JSON_COMPACT) == 0
                 ? VMMS_OK
                 : vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot write config.json: %s",
                             vm->name, spec ? strerror(errno) : "out of memory");
    if (fd >= 0)
        close(fd);
    json_decref(spec);
    return rc;
}

/* Makes the sandbox's directory under vms/ (*image: the image found, the
 * caller's to decref on VMMS_OK). The leftover of a dead sandbox of that
 * name is cleared first and the image found again; a live one is an error.
 * VMMS_OK, or a VMMS error in err with *image released. */
static int make_vm_dir(struct lo_ctx *ctx, struct vmms_vm *vm, json_t **image, char *err,
                       size_t errlen)
{
    if (mkdirat(ctx->vms_fd, vm->name, 0700) == 0)
        return VMMS_OK;
    int e = errno;
    json_decref(*image);
    *image = NULL;
    if (e != EEXIST || lo_container_pid(ctx, vm->name) > 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: %s", vm->name,
                         e == EEXIST ? "a live sandbox has that name" : strerror(e));
    /* The leftover of a dead one: clear it and start afresh. */
    char e2[256];
    destroy(ctx, vm, true, e2, sizeof e2);
    if (mkdirat(ctx->vms_fd, vm->name, 0700) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: %s", vm->name, strerror(errno));
    return lo_image_find(ctx, vm->image, image, err, errlen);
}

/* `runtime create` of the bundle (dfd), its output in console.log. VMMS_OK,
 * or a VMMS error in err (with the start of console.log when it failed). */
static int runtime_create(struct lo_ctx *ctx, struct vmms_vm *vm, int dfd, char *err,
                          size_t errlen)
{
    char bundle[PATH_MAX * 2], pidf[PATH_MAX * 2 + 8];
    snprintf(bundle, sizeof bundle, "%s/%s", ctx->vms_dir, vm->name);
    snprintf(pidf, sizeof pidf, "%s/pid", bundle);
    int log = openat(dfd, "console.log", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                             O_CLOEXEC, 0600);
    const char *argv[] = {ctx->runtime_path, "--root", ctx->runtime_root, "create",
                          "--bundle", bundle, "--pid-file", pidf, vm->name, NULL};
    int status = -1;
    int rc = log < 0 ? vmms_fail(err, errlen, VMMS_ERR, "cannot open console.log: %s",
                                 strerror(errno))
                     : vmms_spawn_fd(argv, log, 1000L * ctx->cfg.cmd_timeout_s, &status, err,
                                     errlen);
    if (log >= 0)
        close(log);
    if (rc == VMMS_OK && status != 0) {
        char logbuf[400] = "";
        vmms_read_small(dfd, "console.log", O_NOFOLLOW, logbuf, sizeof logbuf);
        for (char *c = logbuf; *c; c++)
            if (*c == '\n')
                *c = ' ';
        rc = vmms_fail(err, errlen, VMMS_ERR, "runtime create of %s failed (exit %d): %s",
                       vm->name, status, logbuf);
    }
    return rc;
}

/* Records the created container's pid and start time in the bundle's
 * "init" (dfd). VMMS_OK or a VMMS error in err. */
static int record_init(struct vmms_vm *vm, int dfd, char *err, size_t errlen)
{
    char buf[64], init[64], st = '?';
    int pid = 0;
    if (vmms_read_small(dfd, "pid", O_NOFOLLOW, buf, sizeof buf) < 0 || (pid = atoi(buf)) <= 1)
        return vmms_fail(err, errlen, VMMS_ERR, "runtime create of %s wrote no pid", vm->name);
    long long start = proc_start(pid, &st);
    if (start < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: its process is gone", vm->name);
    snprintf(init, sizeof init, "%d %lld\n", pid, start);
    if (write_small(dfd, "init", init) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: cannot write init: %s",
                         vm->name, strerror(errno));
    return VMMS_OK;
}

/* Gives vm a random 16-hex-digit id (left as it is when getrandom fails). */
static void set_random_id(struct vmms_vm *vm)
{
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) == (ssize_t)sizeof rnd)
        for (int i = 0; i < 8; i++)
            snprintf(vm->id + 2 * i, 3, "%02x", rnd[i]);
}

int lo_initialize_vm(void *vctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    struct vmms_limits lim;
    int rc = vmms_initialize_begin(ctx->prefix, vm, &ctx->cfg.defaults, true, &lim, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    long long t0 = clock_mono_ms();
    json_t *image = NULL;
    rc = lo_image_find(ctx, vm->image, &image, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    long long t_img = clock_mono_ms();
    rc = make_vm_dir(ctx, vm, &image, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    int dfd = lo_open_bundle(ctx, vm->name);
    if (dfd < 0) {
        json_decref(image);
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: %s", vm->name, strerror(errno));
    }
    write_small(dfd, "image", vm->image);
    rc = make_bundle(ctx, vm, dfd, image, &lim, err, errlen);
    json_decref(image);
    long long t_bundle = clock_mono_ms();
    if (rc == VMMS_OK)
        rc = runtime_create(ctx, vm, dfd, err, errlen);
    if (rc == VMMS_OK)
        rc = record_init(vm, dfd, err, errlen);
    close(dfd);
    if (rc != VMMS_OK) {
        char e2[256], q[600];
        destroy(ctx, vm, true, e2, sizeof e2);
        log_warn("vm_create_failed", "name=%s err=%s", vm->name, log_quote(err, q, sizeof q));
        return rc;
    }
    set_random_id(vm);
    log_info("vm_created", "name=%s image=%s cores=%d memory_mb=%d disk_mb=%d pids=%d "
             "network=%d ms=%lld image_ms=%lld bundle_ms=%lld create_ms=%lld", vm->name,
             vm->image, lim.cores, lim.memory_mb, lim.disk_mb, lim.pids, (int)vm->network,
             clock_mono_ms() - t0, t_img - t0, t_bundle - t_img, clock_mono_ms() - t_bundle);
    return VMMS_OK;
}

int lo_wait_vm(void *vctx, struct vmms_vm *vm, int timeout_s, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    (void)timeout_s; /* initialize_vm returns with the container made */
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (lo_container_pid(ctx, vm->name) <= 0)
        return vmms_fail(err, errlen, VMMS_ERR, "sandbox %s: its container process is gone",
                         vm->name);
    return VMMS_OK;
}

/* Every entry of dir whose name carries our prefix. */
static void scan(struct lo_ctx *ctx, const char *dir, struct vmms_nameset *s, vmms_vm_cb cb,
                 void *arg)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ctx->prefix, strlen(ctx->prefix)) != 0 ||
            !vmms_name_ok(e->d_name, 128) || !vmms_nameset_add(s, e->d_name))
            continue;
        char image[256] = "";
        int dfd = lo_open_bundle(ctx, e->d_name);
        if (dfd >= 0) {
            vmms_read_small(dfd, "image", O_NOFOLLOW, image, sizeof image);
            close(dfd);
        }
        cb(e->d_name, "", image, lo_container_pid(ctx, e->d_name) > 0, arg);
    }
    if (d)
        closedir(d);
}

int lo_get_vms(void *vctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    (void)err;
    (void)errlen;
    struct vmms_nameset s = {0};
    scan(ctx, ctx->vms_dir, &s, cb, arg);
    scan(ctx, ctx->runtime_root, &s, cb, arg);
    scan(ctx, "/run/netns", &s, cb, arg);
    char d[PATH_MAX];
    if (ctx->cgroup2) {
        snprintf(d, sizeof d, "/sys/fs/cgroup/%s", LO_CGROUP_PARENT);
        scan(ctx, d, &s, cb, arg);
    } else {
        for (const char *const *c = cg_v1; *c; c++) {
            snprintf(d, sizeof d, "/sys/fs/cgroup/%s/%s", *c, LO_CGROUP_PARENT);
            scan(ctx, d, &s, cb, arg);
        }
    }
    vmms_nameset_free(&s);
    return VMMS_OK;
}

/* A number from a cgroup file: the whole file, or the value after key. */
static long long cg_value(const char *path, const char *key)
{
    char buf[4096];
    if (vmms_read_small(AT_FDCWD, path, 0, buf, sizeof buf) < 0)
        return -1;
    if (key == NULL)
        return atoll(buf);
    size_t kl = strlen(key);
    for (char *p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return atoll(p + kl + 1);
    return -1;
}

long long lo_cpu_ms(struct lo_ctx *ctx, const char *name)
{
    char d[PATH_MAX], f[PATH_MAX + 40];
    if (ctx->cgroup2) {
        cg_dir(ctx, "", name, d, sizeof d);
        snprintf(f, sizeof f, "%s/cpu.stat", d);
        long long us = cg_value(f, "usage_usec");
        return us >= 0 ? us / 1000 : -1;
    }
    cg_dir(ctx, "cpuacct", name, d, sizeof d);
    snprintf(f, sizeof f, "%s/cpuacct.usage", d);
    long long ns = cg_value(f, NULL);
    return ns >= 0 ? ns / 1000000 : -1;
}

int lo_container_root(int pid)
{
    char root[64];
    snprintf(root, sizeof root, "/proc/%d/root", pid);
    return pid > 1 ? open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
}

long lo_passwd_uid(const char *passwd)
{
    for (const char *l = passwd; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, "autograde:", 10) == 0) {
            const char *p = strchr(l + 10, ':'); /* past the password field */
            const char *nl = strchr(l, '\n');
            if (p == NULL || (nl && p > nl) || p[1] < '0' || p[1] > '9')
                return -1;
            char *end;
            errno = 0;
            long uid = strtol(p + 1, &end, 10);
            return errno == 0 && uid > 0 && uid < 0x7fffffff && *end == ':' ? uid : -1;
        }
    return -1;
}

long lo_grading_uid(int pid)
{
    /* Inside the container's root, never the host's (an absolute link
     * /etc/passwd -> /dev/zero in the image), a regular file, its first
     * PASSWD_MAX bytes: this runs on attach_job's thread. */
    enum { PASSWD_MAX = 64 * 1024 };
    int rfd = lo_container_root(pid);
    int fd = rfd >= 0 ? vmms_open_in_root(rfd, "etc/passwd", 0) : -1;
    char *buf = fd >= 0 ? malloc(PASSWD_MAX) : NULL;
    long uid = buf && vmms_read_bounded(fd, buf, PASSWD_MAX) > 0 ? lo_passwd_uid(buf) : -1;
    free(buf);
    if (fd >= 0)
        close(fd);
    if (rfd >= 0)
        close(rfd);
    return uid;
}

int lo_kill_job_procs(struct lo_ctx *ctx, const char *name, long uid)
{
    if (uid <= 0)
        return 0;
    char d[PATH_MAX], f[PATH_MAX + 40];
    cg_dir(ctx, "pids", name, d, sizeof d);
    snprintf(f, sizeof f, "%s/cgroup.procs", d);
    FILE *in = fopen(f, "re");
    int killed = 0, pid;
    while (in && fscanf(in, "%d", &pid) == 1) {
        char st[64], line[256];
        snprintf(st, sizeof st, "/proc/%d/status", pid);
        FILE *s = fopen(st, "re");
        long ruid = -1;
        while (s && fgets(line, sizeof line, s))
            if (sscanf(line, "Uid: %ld", &ruid) == 1)
                break;
        if (s)
            fclose(s);
        /* autodriver itself runs with the real uid of autolab, su as root */
        if (ruid == uid && kill(pid, SIGKILL) == 0)
            killed++;
    }
    if (in)
        fclose(in);
    return killed;
}

int lo_job_usage(void *vctx, struct vmms_vm *vm, struct vmms_usage *u, char *err, size_t errlen)
{
    struct lo_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char d[PATH_MAX], f[PATH_MAX + 40];
    long long user = -1, sys = -1, peak = -1;
    if (ctx->cgroup2) {
        cg_dir(ctx, "", vm->name, d, sizeof d);
        snprintf(f, sizeof f, "%s/cpu.stat", d);
        user = cg_value(f, "user_usec");
        sys = cg_value(f, "system_usec");
        user = user >= 0 ? user / 1000 : -1;
        sys = sys >= 0 ? sys / 1000 : -1;
        snprintf(f, sizeof f, "%s/memory.peak", d);
        peak = cg_value(f, NULL);
    } else {
        cg_dir(ctx, "cpuacct", vm->name, d, sizeof d);
        snprintf(f, sizeof f, "%s/cpuacct.usage_user", d);
        user = cg_value(f, NULL);
        snprintf(f, sizeof f, "%s/cpuacct.usage_sys", d);
        sys = cg_value(f, NULL);
        user = user >= 0 ? user / 1000000 : -1;
        sys = sys >= 0 ? sys / 1000000 : -1;
        cg_dir(ctx, "memory", vm->name, d, sizeof d);
        snprintf(f, sizeof f, "%s/memory.max_usage_in_bytes", d);
        peak = cg_value(f, NULL);
    }
    if (user < 0 || sys < 0 || peak < 0)
        return vmms_fail(err, errlen, VMMS_NOT_FOUND, "sandbox %s: no cgroup figures",
                         vm->name);
    u->cpu_user_ms = user;
    u->cpu_sys_ms = sys;
    u->peak_mem_kb = peak / 1024;
    return VMMS_OK;
}
