/*
 * containers.c: the life of one container ("VM"): create and start it with
 * the job's limits and the seccomp profile of every back end
 * (initialize_vm), wait until it runs (wait_vm), remove it with its volume
 * directory (destroy_vm, safe_destroy_vm), and list this service's
 * containers by label (get_vms). Owns how a URL names a VM's container
 * (ld_vm_ref).
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/seccomp.h"
#include "ld.h"
#include "log.h"

const char *ld_vm_ref(const struct vmms_vm *vm)
{
    return vm->id[0] ? vm->id : vm->name;
}

/* The container idles on this until a job is exec'd into it. */
static const char *const idle_cmd[] = {"sh", "-c", "exec sleep infinity"};

/* The job's writable storage, disk_mb in all (docs/backends/localDocker.md,
 * "Disk limit"): the root file system is read-only and every place a job
 * may write is a tmpfs of its own share. /home (autolab and autograde: one file system, so
 * autodriver's move is a rename) gets what the others leave; /home/output
 * is apart, so a job that fills its home still gets its feedback written;
 * /home/mount stays the host's volume directory (the inputs, and the
 * feedback root's cp copies there from the capped /home/output). */
static json_t *writable_places(int disk_mb, long long *shm_bytes)
{
    int tmp = disk_mb / 4, vartmp = disk_mb / 16, shm = disk_mb / 16, output = disk_mb / 16;
    int home = disk_mb - tmp - vartmp - shm - output;
    char o_home[96], o_out[96], o_tmp[96], o_vartmp[96];
    snprintf(o_home, sizeof o_home, "rw,exec,nosuid,nodev,size=%dm,mode=755", home);
    snprintf(o_out, sizeof o_out, "rw,noexec,nosuid,nodev,size=%dm,mode=755", output);
    snprintf(o_tmp, sizeof o_tmp, "rw,exec,nosuid,nodev,size=%dm,mode=1777", tmp);
    snprintf(o_vartmp, sizeof o_vartmp, "rw,exec,nosuid,nodev,size=%dm,mode=1777", vartmp);
    *shm_bytes = (long long)shm << 20;
    return json_pack("{s:s, s:s, s:s, s:s}", "/home", o_home, "/home/output", o_out,
                     "/tmp", o_tmp, "/var/tmp", o_vartmp);
}

/* HostConfig.SecurityOpt: the seccomp profile of every back end
 * (common/seccomp.h) in place of the engine's own, which on older engines
 * allows io_uring, AF_ALG and AF_VSOCK. NULL when out of memory. */
static json_t *security_opts(void)
{
    char *profile = vmms_seccomp_profile_text();
    if (profile == NULL)
        return NULL;
    size_t n = strlen(profile) + sizeof "seccomp=";
    char *opt = malloc(n);
    json_t *a = opt ? json_array() : NULL;
    if (a) {
        snprintf(opt, n, "seccomp=%s", profile);
        json_array_append_new(a, json_string(opt));
    }
    free(opt);
    free(profile);
    return a;
}

static json_t *create_body(struct ld_ctx *ctx, const struct vmms_vm *vm, int cores,
                           int memory_mb, int pids, int disk_mb)
{
    char src[PATH_MAX + 200];
    /* the bind source is the Docker host's path: the consumer's own when it
     * runs on the host, host_volume_dir when it runs in a container */
    const char *base = ctx->cfg.host_volume_dir[0] ? ctx->cfg.host_volume_dir : ctx->volume_real;
    snprintf(src, sizeof src, "%s/%s", base, vm->name);
    json_t *cmd = json_array();
    for (size_t i = 0; i < sizeof idle_cmd / sizeof idle_cmd[0]; i++)
        json_array_append_new(cmd, json_string(idle_cmd[i]));
    /* tmpfs pages are charged to the container's memory cgroup: the limit
     * is memory + disk, so a full disk is ENOSPC, never an OOM kill. */
    long long mem = (long long)(memory_mb + disk_mb) << 20;
    long long shm = 0;
    json_t *tmpfs = writable_places(disk_mb, &shm);
    json_t *security = security_opts();
    if (security == NULL) {
        json_decref(tmpfs);
        json_decref(cmd);
        return NULL;
    }
    json_t *host = json_pack(
        "{s:I, s:I, s:I, s:I, s:b, s:o, s:I, s:s, s:[{s:s, s:s, s:s, s:b}], s:o}",
        "NanoCpus", (json_int_t)cores * 1000000000LL,
        "Memory", (json_int_t)mem,
        "MemorySwap", (json_int_t)mem, /* same as Memory: no swap */
        "PidsLimit", (json_int_t)pids,
        "ReadonlyRootfs", 1,
        "Tmpfs", tmpfs,
        "ShmSize", (json_int_t)shm,
        "NetworkMode", vm->network ? ctx->cfg.net.name : "none", /* network.c */
        "Mounts", "Type", "bind", "Source", src, "Target", "/home/mount",
        "ReadOnly", 0,
        "SecurityOpt", security);
    return json_pack("{s:s, s:o, s:[], s:{s:s, s:s}, s:b, s:o}",
                     "Image", vm->image,
                     "Cmd", cmd,
                     "Entrypoint", /* [] = none, whatever the image says */
                     "Labels", "tango.prefix", ctx->prefix, "tango.vm", vm->name,
                     "NetworkDisabled", !vm->network,
                     "HostConfig", host);
}

/* VMMS_OK if a container of that name or id exists, VMMS_NOT_FOUND if not. */
static int container_exists(struct ld_ctx *ctx, const char *ref, char *err, size_t errlen)
{
    char path[256];
    snprintf(path, sizeof path, "/containers/%s/json", ref);
    struct vmms_engine_req req = {.method = "GET", .path = path};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "cannot inspect container", err, errlen);
    vmms_engine_resp_free(&resp);
    return rc;
}

/* DELETE the container; *gone is set when it did not exist. */
static int remove_container(struct ld_ctx *ctx, const struct vmms_vm *vm, bool *gone,
                            char *err, size_t errlen)
{
    char path[256];
    snprintf(path, sizeof path, "/containers/%s?force=true&v=true", ld_vm_ref(vm));
    struct vmms_engine_req req = {.method = "DELETE", .path = path};
    struct vmms_engine_resp resp;
    *gone = false;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status == 404)
        *gone = true;
    else if (rc == VMMS_OK && resp.status == 409) {
        /* "removal already in progress" (another thread): wait for it. */
        snprintf(path, sizeof path, "/containers/%s/json", ld_vm_ref(vm));
        struct vmms_engine_req get = {.method = "GET", .path = path};
        long deadline = clock_mono_ms() + 1000L * ctx->cfg.api_timeout_s;
        rc = vmms_fail(err, errlen, VMMS_TIMEOUT, "container %s: removal did not finish",
                     vm->name);
        while (clock_mono_ms() < deadline) {
            struct vmms_engine_resp r2;
            int rc2 = vmms_engine_call(&ctx->engine, &get, &r2, err, errlen);
            long st = r2.status;
            vmms_engine_resp_free(&r2);
            if (rc2 == VMMS_OK && st == 404) {
                rc = VMMS_OK;
                break;
            }
            clock_sleep_ms(100);
        }
    } else if (rc == VMMS_OK && resp.status != 204)
        rc = vmms_engine_fail(&resp, "cannot remove container", err, errlen);
    vmms_engine_resp_free(&resp);
    return rc;
}

int ld_initialize_vm(void *vctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    struct vmms_limits lim;
    int rc = vmms_initialize_begin(ctx->prefix, vm, &ctx->cfg.defaults, true, &lim, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    int cores = lim.cores, mem = lim.memory_mb, pids = lim.pids, disk = lim.disk_mb;

    long t0 = clock_mono_ms();
    rc = ld_pull_missing(ctx, vm->image, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    bool existed;
    rc = ld_vol_create(ctx, vm->name, false, &existed, err, errlen);
    if (rc != VMMS_OK && existed) {
        /* Another live VM of that name, or the leftover of a dead one? */
        rc = container_exists(ctx, vm->name, err, errlen);
        if (rc == VMMS_OK)
            return vmms_fail(err, errlen, VMMS_ERR, "a container named %s already exists",
                           vm->name);
        if (rc == VMMS_NOT_FOUND)
            rc = ld_vol_create(ctx, vm->name, true, &existed, err, errlen);
    }
    if (rc != VMMS_OK)
        return rc;

    char path[256];
    snprintf(path, sizeof path, "/containers/create?name=%s", vm->name);
    json_t *body = create_body(ctx, vm, cores, mem, pids, disk);
    struct vmms_engine_req req = {.method = "POST", .path = path, .json = body};
    struct vmms_engine_resp resp;
    bool conflict = false; /* the name is taken: nothing here is ours to clean */
    rc = body ? vmms_engine_call(&ctx->engine, &req, &resp, err, errlen)
              : vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    json_decref(body);
    if (body && rc == VMMS_OK) {
        const char *id = json_string_value(json_object_get(resp.json, "Id"));
        conflict = resp.status == 409;
        if (resp.status == 404)
            rc = vmms_engine_fail(&resp, "cannot create container", err, errlen);
        else if (resp.status != 201 || id == NULL || strlen(id) >= sizeof vm->id)
            rc = vmms_engine_fail(&resp, "cannot create container", err, errlen);
        else
            strcpy(vm->id, id);
    }
    if (body)
        vmms_engine_resp_free(&resp);
    if (rc == VMMS_OK) {
        snprintf(path, sizeof path, "/containers/%s/start", vm->id);
        struct vmms_engine_req start = {.method = "POST", .path = path};
        rc = vmms_engine_call(&ctx->engine, &start, &resp, err, errlen);
        if (rc == VMMS_OK && resp.status != 204 && resp.status != 304)
            rc = vmms_engine_fail(&resp, "cannot start container", err, errlen);
        vmms_engine_resp_free(&resp);
    }
    if (rc != VMMS_OK) {
        char e2[256];
        bool gone;
        if (vm->id[0] || rc == VMMS_TIMEOUT)
            remove_container(ctx, vm, &gone, e2, sizeof e2);
        if (!conflict)
            ld_vol_remove(ctx, vm->name, e2, sizeof e2);
        vm->id[0] = '\0';
        char q[300];
        log_warn("vm_create_failed", "name=%s err=%s", vm->name, log_quote(err, q, sizeof q));
        return rc;
    }
    char qi[300];
    log_info("vm_created", "name=%s id=%.12s image=%s cores=%d memory_mb=%d disk_mb=%d "
             "pids=%d network=%d ms=%ld", vm->name, vm->id,
             log_quote(vm->image, qi, sizeof qi), cores, mem, disk, pids, (int)vm->network,
             (long)(clock_mono_ms() - t0));
    return VMMS_OK;
}

int ld_wait_vm(void *vctx, struct vmms_vm *vm, int timeout_s, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char path[256];
    snprintf(path, sizeof path, "/containers/%s/json", ld_vm_ref(vm));
    long deadline = clock_mono_ms() + 1000L * (timeout_s > 0 ? timeout_s : ctx->cfg.api_timeout_s);
    long pause = 10;
    for (;;) {
        long left_s = (deadline - clock_mono_ms() + 999) / 1000;
        struct vmms_engine_req req = {.method = "GET", .path = path,
                                      .timeout_s = (int)(left_s < 1 ? 1 : left_s)};
        struct vmms_engine_resp resp;
        rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
        if (rc == VMMS_OK && resp.status != 200)
            rc = vmms_engine_fail(&resp, "cannot inspect container", err, errlen);
        if (rc != VMMS_OK) {
            vmms_engine_resp_free(&resp);
            return rc;
        }
        json_t *state = json_object_get(resp.json, "State");
        bool running = json_is_true(json_object_get(state, "Running"));
        const char *status = json_string_value(json_object_get(state, "Status"));
        if (!running && status &&
            (strcmp(status, "exited") == 0 || strcmp(status, "dead") == 0)) {
            const char *e = json_string_value(json_object_get(state, "Error"));
            rc = vmms_fail(err, errlen, VMMS_ERR,
                         "container %s stopped (exit code %lld%s%s); does the image have "
                         "sh and sleep?", vm->name,
                         (long long)json_integer_value(json_object_get(state, "ExitCode")),
                         e && *e ? ": " : "", e ? e : "");
        }
        vmms_engine_resp_free(&resp);
        if (running)
            return VMMS_OK;
        if (rc != VMMS_OK)
            return rc;
        if (clock_mono_ms() + pause > deadline)
            return vmms_fail(err, errlen, VMMS_TIMEOUT, "container %s not running after %d s",
                           vm->name, timeout_s);
        clock_sleep_ms(pause);
        if (pause < 200)
            pause *= 2;
    }
}

static int destroy(struct ld_ctx *ctx, struct vmms_vm *vm, bool safe, char *err,
                   size_t errlen)
{
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    vmms_watch_abort(&ctx->watches, vm->name);
    long t0 = clock_mono_ms();
    bool gone = false;
    rc = remove_container(ctx, vm, &gone, err, errlen);
    char e2[512];
    int vrc = ld_vol_remove(ctx, vm->name, e2, sizeof e2);
    if (vrc != VMMS_OK) {
        char q[600];
        log_warn("vm_volume_left", "name=%s err=%s", vm->name, log_quote(e2, q, sizeof q));
        if (rc == VMMS_OK)
            rc = vmms_fail(err, errlen, vrc, "%s", e2);
    }
    if (rc == VMMS_OK && gone && !safe)
        rc = vmms_fail(err, errlen, VMMS_NOT_FOUND, "container %s does not exist", vm->name);
    log_info("vm_destroyed", "name=%s id=%.12s existed=%d ms=%ld rc=%d", vm->name, vm->id,
             (int)!gone, (long)(clock_mono_ms() - t0), rc);
    return rc;
}

int ld_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    return destroy(ctx, vm, false, err, errlen);
}

int ld_safe_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    return destroy(ctx, vm, true, err, errlen);
}

/* Whether a container listing holds one labelled tango.vm=name. */
static bool listed(json_t *containers, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(containers, i, c) {
        const char *vm = json_string_value(json_object_get(json_object_get(c, "Labels"), "tango.vm"));
        if (vm && strcmp(vm, name) == 0)
            return true;
    }
    return false;
}

/* A consumer killed between making an instance's volume directory and
 * creating its container leaves a directory with no container. Report those
 * too (empty id, not running) so startup cleanup removes them. */
static void report_orphan_volumes(struct ld_ctx *ctx, json_t *containers, vmms_vm_cb cb,
                                  void *arg)
{
    int fd = dup(ctx->volume_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ctx->prefix, strlen(ctx->prefix)) != 0 ||
            listed(containers, e->d_name))
            continue;
        cb(e->d_name, "", "", false, arg); /* no container: destroy by name */
    }
    closedir(d);
}

int ld_get_vms(void *vctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    char filter[256], enc[800], path[1024];
    snprintf(filter, sizeof filter, "{\"label\":[\"tango.prefix=%s\"]}", ctx->prefix);
    snprintf(path, sizeof path, "/containers/json?all=true&filters=%s",
             vmms_engine_urlencode(filter, enc, sizeof enc));
    struct vmms_engine_req req = {.method = "GET", .path = path};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(&ctx->engine, &req, &resp, err, errlen);
    if (rc == VMMS_OK && (resp.status != 200 || !json_is_array(resp.json)))
        rc = vmms_engine_fail(&resp, "cannot list containers", err, errlen);
    if (rc == VMMS_OK) {
        size_t i;
        json_t *c;
        json_array_foreach(resp.json, i, c) {
            const char *id = json_string_value(json_object_get(c, "Id"));
            const char *image = json_string_value(json_object_get(c, "Image"));
            const char *state = json_string_value(json_object_get(c, "State"));
            const char *name = json_string_value(
                json_object_get(json_object_get(c, "Labels"), "tango.vm"));
            if (name == NULL) {
                name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
                if (name && name[0] == '/')
                    name++;
            }
            if (id && name)
                cb(name, id, image ? image : "", state && strcmp(state, "running") == 0, arg);
        }
        report_orphan_volumes(ctx, resp.json, cb, arg);
    }
    vmms_engine_resp_free(&resp);
    return rc;
}
