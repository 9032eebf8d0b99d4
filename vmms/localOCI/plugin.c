/*
 * plugin.c: the localOCI plugin's entry points. Owns init/shutdown (the
 * context's life: config, the runtime chosen for this host's cgroups, the
 * run and store directories, the jobs' network, the images imported from
 * Docker at start), run_job (start_job then attach_job) and the exported
 * ops table `vmms_plugin`.
 *
 * The runtime: "runtime": "auto" (the default) takes crun (a C program,
 * about 20 ms less per sandbox than Go's runc here) where it works: a host
 * with only the unified cgroup v2 hierarchy, or a hybrid v1 host whose
 * unified hierarchy has no controllers left (Debian 12's crun 1.8.1
 * refuses a hybrid host otherwise: "cgroups in hybrid mode not supported,
 * drop all controllers from cgroupv2"; deploy/setup-host.sh mounts the
 * missing v1 hierarchy, hugetlb on this machine). Otherwise runc. The
 * choice and its reason are logged. The consumer becomes
 * the subreaper of its descendants (PR_SET_CHILD_SUBREAPER), so a job's
 * container process, orphaned when the runtime's `create` exits, is reaped
 * here (attach_job, destroy_vm) rather than left to a pid 1 that may not.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>


#include "lo.h"
#include "log.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static const char *const runc_paths[] = {"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/bin/runc",
                                         "/usr/local/sbin/runc", NULL};
static const char *const crun_paths[] = {"/usr/bin/crun", "/usr/local/bin/crun", NULL};


static int mkdir_p(const char *path, mode_t mode)
{
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", path);
    for (char *p = d + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(d, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(d, mode) != 0 && errno != EEXIST ? -1 : 0;
}

static void lo_shutdown(void *vctx)
{
    struct lo_ctx *ctx = vctx;
    if (ctx == NULL)
        return;
    if (ctx->vms_fd >= 0)
        close(ctx->vms_fd);
    free(ctx->net_used);
    lo_config_free(&ctx->cfg);
    vmms_engine_destroy(&ctx->docker);
    pthread_mutex_destroy(&ctx->lock);
    vmms_watches_destroy(&ctx->watches);
    pthread_mutex_destroy(&ctx->import_lock);
    free(ctx);
}

/* Whether a hybrid host's unified hierarchy has no controllers (then crun
 * 1.8 accepts the host; false when there is none or it cannot be read). */
static bool unified_has_no_controllers(void)
{
    int fd = open("/sys/fs/cgroup/unified/cgroup.controllers", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return false;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] != ' ' && buf[i] != '\n')
            return false;
    return true;
}

/* Picks the runtime; *why says why (for the log). */
static int pick_runtime(struct lo_ctx *ctx, const char **why, char *err, size_t errlen)
{
    const char *runc = vmms_find_prog(runc_paths), *crun = vmms_find_prog(crun_paths);
    const char *want = ctx->cfg.runtime_name;
    const char *path = NULL;
    bool crun_ok = ctx->cgroup2 || unified_has_no_controllers();
    if (strcmp(want, "auto") == 0) {
        if (crun_ok && crun) {
            want = "crun";
            *why = ctx->cgroup2 ? "cgroup v2 only" : "hybrid cgroups, no v2 controllers";
        } else if (runc) {
            want = "runc";
            *why = !crun ? "no crun installed"
                         : "hybrid cgroups with v2 controllers: crun 1.8 refuses the host "
                           "(deploy/setup-host.sh mounts the missing v1 hierarchies)";
        } else {
            want = "crun";
            *why = "no runc installed";
        }
    } else {
        *why = "configured";
    }
    path = strcmp(want, "runc") == 0 ? runc : crun;
    if (path == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI: the OCI runtime %s is not installed "
                         "(apt-get install %s)", want, want);
    ctx->runtime = strcmp(want, "runc") == 0 ? LO_RUNC : LO_CRUN;
    snprintf(ctx->runtime_path, sizeof ctx->runtime_path, "%s", path);
    if (ctx->runtime == LO_CRUN && !crun_ok)
        log_warn("vmms_runtime", "runtime=crun note=\"this hybrid host's unified cgroup "
                 "hierarchy has controllers, which crun 1.8 refuses; set runtime to runc or "
                 "mount them as v1 hierarchies (deploy/setup-host.sh)\"");
    return VMMS_OK;
}

/* A new context for prefix: locks and watches ready, no fd open. NULL when
 * out of memory. */
static struct lo_ctx *ctx_new(const char *prefix)
{
    struct lo_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return NULL;
    ctx->vms_fd = -1;
    pthread_mutex_init(&ctx->lock, NULL);
    vmms_watches_init(&ctx->watches);
    pthread_mutex_init(&ctx->import_lock, NULL);
    snprintf(ctx->prefix, sizeof ctx->prefix, "%s", prefix);
    return ctx;
}

/* Parses cfg into ctx (and its Docker engine when docker_socket is set),
 * notes the cgroup version and picks the runtime; why says why that one.
 * VMMS_OK or a VMMS error in err. */
static int configure(struct lo_ctx *ctx, const json_t *cfg, const char **why, char *err,
                     size_t errlen)
{
    int rc = lo_config_parse(cfg, &ctx->cfg, err, errlen);
    if (rc == VMMS_OK && ctx->cfg.docker_socket[0])
        vmms_engine_init(&ctx->docker, ctx->cfg.docker_socket, 10);
    struct statfs sf;
    ctx->cgroup2 = statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
    if (rc == VMMS_OK)
        rc = pick_runtime(ctx, why, err, errlen);
    return rc;
}

/* Makes run_dir, its vms/ and the runtime's root, and opens vms/ as
 * ctx->vms_fd. VMMS_OK or a VMMS error in err. */
static int make_run_dirs(struct lo_ctx *ctx, char *err, size_t errlen)
{
    snprintf(ctx->vms_dir, sizeof ctx->vms_dir, "%s/vms", ctx->cfg.run_dir);
    snprintf(ctx->runtime_root, sizeof ctx->runtime_root, "%s/%s", ctx->cfg.run_dir,
             ctx->runtime == LO_RUNC ? "runc" : "crun");
    /* root's alone: the bundles hold the graders and the images' setuid
     * autodriver, which no host user may read or run (chmod: also an
     * existing run_dir of an older version, once 0711) */
    if (mkdir_p(ctx->cfg.run_dir, 0700) != 0 || chmod(ctx->cfg.run_dir, 0700) != 0 ||
        mkdir_p(ctx->vms_dir, 0700) != 0 || mkdir_p(ctx->runtime_root, 0700) != 0 ||
        (ctx->vms_fd = open(ctx->vms_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI: cannot make run_dir %s: %s",
                         ctx->cfg.run_dir, strerror(errno));
    return VMMS_OK;
}

/* The image store, the address slots and the job network. VMMS_OK or a
 * VMMS error in err. */
static int open_store_and_net(struct lo_ctx *ctx, char *err, size_t errlen)
{
    int rc = lo_store_init(ctx, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    ctx->net_used = calloc(LO_NET_SLOTS, 1);
    if (ctx->net_used == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    return lo_net_init(ctx, err, errlen);
}

/* Takes back the addresses held by sandboxes a predecessor left
 * (re-attach, clean-up). */
static void adopt_sandboxes(struct lo_ctx *ctx)
{
    DIR *d = opendir(ctx->vms_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int b = lo_open_bundle(ctx, e->d_name);
        if (b >= 0) {
            lo_net_adopt(ctx, b);
            close(b);
        }
    }
    if (d)
        closedir(d);
}

/* Imports import_images (from Docker) and oci_images (OCI layouts); one that
 * fails is logged and skipped. */
static void import_configured_images(struct lo_ctx *ctx)
{
    size_t i;
    json_t *n;
    json_array_foreach(ctx->cfg.import_images, i, n) {
        char e2[512];
        int r = lo_import_docker(ctx, json_string_value(n), e2, sizeof e2);
        if (r != VMMS_OK) {
            char q[600];
            log_warn("image_import_skipped", "name=%s err=%s", json_string_value(n),
                     log_quote(e2, q, sizeof q));
        }
    }
    const char *oname;
    json_t *odir;
    json_object_foreach(ctx->cfg.oci_images, oname, odir) {
        char e2[512], q[600];
        int r = lo_import_oci_dir(ctx, json_string_value(odir), oname, e2, sizeof e2);
        if (r != VMMS_OK)
            log_warn("image_import_skipped", "name=%s from=oci_layout err=%s", oname,
                     log_quote(e2, q, sizeof q));
    }
}

/* vmms.h init: checks the host (root), configures, makes the run
 * directories, opens the store and network, adopts what a predecessor left
 * and imports the configured images. The context in *out, or NULL and a
 * VMMS error in err. */
static int lo_init(const json_t *cfg, const char *prefix, void **out, char *err, size_t errlen)
{
    *out = NULL;
    if (vmms_init_check("localOCI", prefix, true, err, errlen) != VMMS_OK)
        return VMMS_ERR;
    if (geteuid() != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "localOCI: the consumer must run as root "
                         "(it mounts, makes namespaces and cgroups)");
    struct lo_ctx *ctx = ctx_new(prefix);
    if (ctx == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    const char *why = "";
    int rc = configure(ctx, cfg, &why, err, errlen);
    if (rc == VMMS_OK)
        rc = make_run_dirs(ctx, err, errlen);
    if (rc == VMMS_OK)
        rc = open_store_and_net(ctx, err, errlen);
    if (rc != VMMS_OK) {
        lo_shutdown(ctx);
        return rc;
    }
    adopt_sandboxes(ctx);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        log_warn("vmms_subreaper", "errno=%d note=\"job processes are reaped by pid 1\"", errno);
    import_configured_images(ctx);
    char qs[300], qr[300];
    log_info("vmms_init", "vmms=localOCI prefix=%s runtime=%s runtime_path=%s reason=\"%s\" "
             "cgroup=%s store_dir=%s run_dir=%s", ctx->prefix,
             ctx->runtime == LO_RUNC ? "runc" : "crun", ctx->runtime_path, why,
             ctx->cgroup2 ? "v2" : "v1", log_quote(ctx->cfg.store_dir, qs, sizeof qs),
             log_quote(ctx->cfg.run_dir, qr, sizeof qr));
    *out = ctx;
    return VMMS_OK;
}

/* vmms.h data_dir: instances' bundles and job directories live under run_dir. */
static const char *lo_data_dir(void *vctx)
{
    return ((struct lo_ctx *)vctx)->cfg.run_dir;
}

/* The run_job op: start_job, then attach_job for the job's timeout plus
 * 10 s of grace (vmms_run_via_attach). */
static int lo_run_job(void *ctx, struct vmms_vm *vm, const struct vmms_run *run, int *status,
                      char *err, size_t errlen)
{
    return vmms_run_via_attach(&vmms_plugin, ctx, vm, run, 10, status, err, errlen);
}

const struct vmms_ops vmms_plugin = {
    .abi = VMMS_ABI_VERSION,
    .name = "localOCI",
    .init = lo_init,
    .shutdown = lo_shutdown,
    .initialize_vm = lo_initialize_vm,
    .wait_vm = lo_wait_vm,
    .copy_in = lo_copy_in,
    .run_job = lo_run_job,
    .start_job = lo_start_job,
    .attach_job = lo_attach_job,
    .copy_out = lo_copy_out,
    .destroy_vm = lo_destroy_vm,
    .safe_destroy_vm = lo_safe_destroy_vm,
    .get_vms = lo_get_vms,
    .get_images = lo_get_images,
    .image_id = lo_image_id,
    .resolve_image = lo_resolve_image,
    .get_partial_output = lo_get_partial_output,
    .load_image = lo_load_image,
    .job_usage = lo_job_usage,
    .data_dir = lo_data_dir,
};
