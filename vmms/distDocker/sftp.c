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

/* The connection to vm's host, or NULL with err set. */
static struct dd_conn *vm_conn(struct dd_ctx *ctx, const struct vmms_vm *vm, struct dd_host **hp,
                               char *err, size_t errlen)
{
    struct dd_host *h = *hp = dd_vm_host(ctx, vm);
    if (h == NULL) {
        vmms_fail(err, errlen, VMMS_ERR, "VM %s: not known on any worker host", vm->name);
        return NULL;
    }
    struct dd_conn *c = dd_conn_get(ctx, h);
    if (c == NULL)
        vmms_fail(err, errlen, VMMS_ERR, "worker host %s of VM %s is down", h->label, vm->name);
    return c;
}

static long timeout_ms_of(const struct dd_ctx *ctx, int timeout_s)
{
    return 1000L * (timeout_s > 0 ? timeout_s : ctx->cfg.command_timeout_s);
}

int dd_copy_in(void *vctx, struct vmms_vm *vm, const struct vmms_file *files, size_t nfiles,
               int timeout_s, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct dd_host *h;
    struct dd_conn *c = vm_conn(ctx, vm, &h, err, errlen);
    if (c == NULL)
        return VMMS_ERR;
    char dir[PATH_MAX + 200];
    snprintf(dir, sizeof dir, "%s/%s", h->cfg->volume_dir, vm->name);
    long t0 = clock_mono_ms();
    rc = vssh_put_files(&c->ssh, dir, files, nfiles, timeout_ms_of(ctx, timeout_s), err, errlen);
    dd_conn_put(ctx, c);
    if (rc == VMMS_NOT_FOUND) /* the VM's directory is gone */
        rc = VMMS_ERR;
    if (rc == VMMS_OK)
        log_debug("vm_copy_in", "name=%s host=%s files=%zu ms=%ld", vm->name, h->label, nfiles,
                  (long)(clock_mono_ms() - t0));
    return rc;
}

int dd_copy_out(void *vctx, struct vmms_vm *vm, const char *dest_path, int timeout_s,
                char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct dd_host *h;
    struct dd_conn *c = vm_conn(ctx, vm, &h, err, errlen);
    if (c == NULL)
        return VMMS_ERR;
    char path[PATH_MAX + 200];
    snprintf(path, sizeof path, "%s/%s/feedback", h->cfg->volume_dir, vm->name);
    long long total = 0;
    long t0 = clock_mono_ms();
    rc = vssh_get_file(&c->ssh, path, dest_path, DD_FEEDBACK_MAX, timeout_ms_of(ctx, timeout_s),
                       &total, err, errlen);
    dd_conn_put(ctx, c);
    if (rc == VMMS_NOT_FOUND)
        rc = vmms_fail(err, errlen, VMMS_ERR,
                       "VM %s has no feedback file on %s: the job did not finish", vm->name,
                       h->label);
    if (rc == VMMS_OK)
        log_debug("vm_copy_out", "name=%s host=%s bytes=%lld ms=%ld", vm->name, h->label, total,
                  (long)(clock_mono_ms() - t0));
    return rc;
}
