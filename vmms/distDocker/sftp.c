/*
 * sftp.c: distDocker's copy_in / copy_out: files in and out of a VM's
 * volume directory on its worker host, over SFTP (vmms/common/sftp.c) on
 * the host's shared SSH connection. copy_in writes the job's input files
 * into <volume_dir>/<vm name>/ (bind mounted at /home/mount); copy_out reads
 * <volume_dir>/<vm name>/feedback back (a regular file, at most 64 MiB; a
 * symlink there is refused).
 */
#include <limits.h>
#include <stdio.h>

#include "dd.h"
#include "log.h"

/* Where a VM's files are: its host, a reference to the host's connection
 * (dd_conn_put when done) and its volume directory there. */
struct vm_at {
    struct dd_host *h;
    struct dd_conn *c;
    char dir[PATH_MAX + 200];
};

/* Checks vm (vmms_check_vm) and fills *at. VMMS_OK, or the error with err
 * (VMMS_ERR when its host is unknown or down). */
static int vm_at(struct dd_ctx *ctx, const struct vmms_vm *vm, struct vm_at *at, char *err,
                 size_t errlen)
{
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct dd_host *h = at->h = dd_vm_host(ctx, vm, err, errlen);
    if (h == NULL)
        return VMMS_ERR;
    at->c = dd_conn_get(ctx, h);
    if (at->c == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "worker host %s of VM %s is down", h->label,
                         vm->name);
    snprintf(at->dir, sizeof at->dir, "%s/%s", h->cfg->volume_dir, vm->name);
    return VMMS_OK;
}

static long timeout_ms_of(const struct dd_ctx *ctx, int timeout_s)
{
    return 1000L * (timeout_s > 0 ? timeout_s : ctx->cfg.command_timeout_s);
}

int dd_copy_in(void *vctx, struct vmms_vm *vm, const struct vmms_file *files, size_t nfiles,
               int timeout_s, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    struct vm_at at;
    int rc = vm_at(ctx, vm, &at, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    long t0 = clock_mono_ms();
    rc = vssh_put_files(&at.c->ssh, at.dir, files, nfiles, timeout_ms_of(ctx, timeout_s), err,
                        errlen);
    dd_conn_put(ctx, at.c);
    if (rc == VMMS_NOT_FOUND) /* the VM's directory is gone */
        rc = VMMS_ERR;
    if (rc == VMMS_OK)
        log_debug("vm_copy_in", "name=%s host=%s files=%zu ms=%ld", vm->name, at.h->label,
                  nfiles, (long)(clock_mono_ms() - t0));
    return rc;
}

int dd_copy_out(void *vctx, struct vmms_vm *vm, const char *dest_path, int timeout_s,
                char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    struct vm_at at;
    int rc = vm_at(ctx, vm, &at, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char path[PATH_MAX + 220];
    snprintf(path, sizeof path, "%s/feedback", at.dir);
    long long total = 0;
    long t0 = clock_mono_ms();
    rc = vssh_get_file(&at.c->ssh, path, dest_path, DD_FEEDBACK_MAX,
                       timeout_ms_of(ctx, timeout_s), &total, err, errlen);
    dd_conn_put(ctx, at.c);
    if (rc == VMMS_NOT_FOUND)
        rc = vmms_fail(err, errlen, VMMS_ERR,
                       "VM %s has no feedback file on %s: the job did not finish", vm->name,
                       at.h->label);
    if (rc == VMMS_OK)
        log_debug("vm_copy_out", "name=%s host=%s bytes=%lld ms=%ld", vm->name, at.h->label,
                  total, (long)(clock_mono_ms() - t0));
    return rc;
}
