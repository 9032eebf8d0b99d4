/*
 * grading.c: the grading command, errors and name checks every VMMS back
 * end shares (grading.h has the contracts).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "grading.h"
#include "log.h"
#include "image_ref.h"
#include "names.h"

int vmms_fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return status;
}

bool vmms_name_ok(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max) : 0;
    if (n == 0 || n >= max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

bool vmms_dest_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 0 && n <= NAME_MAX && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

int vmms_check_files(const struct vmms_file *files, size_t nfiles, char *err, size_t errlen)
{
    for (size_t i = 0; i < nfiles; i++)
        if (files[i].local_path == NULL || !vmms_dest_name_ok(files[i].dest_name))
            return vmms_fail(err, errlen, VMMS_ERR, "bad destination file name \"%s\": it must "
                             "be a plain file name (no '/', not '.' or '..', not empty)",
                             files[i].dest_name ? files[i].dest_name : "(null)");
    return VMMS_OK;
}

int vmms_initialize_begin(const char *prefix, struct vmms_vm *vm,
                          const struct vmms_limits *defaults, bool host_cpus,
                          struct vmms_limits *out, char *err, size_t errlen)
{
    if (vm == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "no VM given");
    vm->id[0] = '\0';
    vm->host[0] = '\0';
    int rc = vmms_check_vm(prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct image_ref ref;
    if (strnlen(vm->image, sizeof vm->image) == sizeof vm->image ||
        image_ref_parse(vm->image, &ref) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: bad image name", vm->name);
    if (vm->cores < 0 || vm->memory_mb < 0 || vm->pids_limit < 0 || vm->disk_mb < 0 ||
        (vm->disk_mb > 0 && vm->disk_mb < 16) || vm->disk_mb > 1024 * 1024 ||
        vm->memory_mb > 1024 * 1024)
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: negative cores, memory or pids limit, "
                         "or a disk limit outside 16..1048576 MiB", vm->name);
    out->cores = vm->cores ? vm->cores : defaults->cores;
    out->memory_mb = vm->memory_mb ? vm->memory_mb : defaults->memory_mb;
    out->pids = vm->pids_limit ? vm->pids_limit : defaults->pids;
    out->disk_mb = vm->disk_mb ? vm->disk_mb : defaults->disk_mb;
    long ncpu = host_cpus ? sysconf(_SC_NPROCESSORS_ONLN) : 0;
    if (ncpu > 0 && out->cores > ncpu) {
        log_warn("vm_cores_clamped", "name=%s asked=%d host_cpus=%ld", vm->name, out->cores,
                 ncpu);
        out->cores = (int)ncpu;
    }
    return VMMS_OK;
}

int vmms_check_vm(const char *prefix, const struct vmms_vm *vm, char *err, size_t errlen)
{
    if (vm == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "no VM given");
    size_t pl = strlen(prefix);
    if (!vmms_name_ok(vm->name, sizeof vm->name) || strncmp(vm->name, prefix, pl) != 0 ||
        strlen(vm->name) == pl)
        return vmms_fail(err, errlen, VMMS_ERR,
                         "bad VM name \"%.*s\": it must start with the prefix \"%s\", go on "
                         "after it and hold only letters, digits, '_', '.', '-'",
                         (int)strnlen(vm->name, 127), vm->name, prefix);
    size_t il = strnlen(vm->id, sizeof vm->id);
    if (il == sizeof vm->id || strspn(vm->id, "0123456789abcdef") != il)
        return vmms_fail(err, errlen, VMMS_ERR, "bad instance id for VM %s", vm->name);
    return VMMS_OK;
}

bool vmms_exit_token_ok(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    return n >= 16 && n <= 64 && strspn(t, "0123456789abcdef") == n;
}

int vmms_new_exit_token(char token[33], char *err, size_t errlen)
{
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return vmms_fail(err, errlen, VMMS_ERR, "getrandom failed: %s", strerror(errno));
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(token + 2 * i, 3, "%02x", rnd[i]);
    return VMMS_OK;
}

void vmms_partial_script(size_t max_bytes, char *cmd, size_t cmdsz)
{
    snprintf(cmd, cmdsz,
             "t=; command -v timeout >/dev/null 2>&1 && t=\"timeout -s KILL %d\"; "
             "for f in /home/autograde/output.log /home/autograde/autolab/output.log "
             "/home/output/feedback; do d=${f%%/*}; "
             "if [ -L \"$f\" ] || [ -L \"$d\" ]; then continue; fi; "
             "if [ -f \"$f\" ]; then exec $t head -c %zu -- \"$f\"; fi; done",
             VMMS_PARTIAL_DEADLINE_S, max_bytes);
}

int vmms_grading_command(const struct vmms_run *run, int memory_mb, const char *exit_token,
                         char *cmd, size_t cmdsz, char *err, size_t errlen)
{
    if (run == NULL || run->timeout_s <= 0 || run->nproc < 0 || run->fsize < 0 ||
        run->max_output < 0)
        return vmms_fail(err, errlen, VMMS_ERR,
                         "bad job limits: timeout must be > 0, the others >= 0");
    if (exit_token != NULL && !vmms_exit_token_ok(exit_token))
        return vmms_fail(err, errlen, VMMS_ERR, "bad exit token: 16..64 lowercase hex");
    char ulimit[48] = "", tail[256] = "";
    if (memory_mb > 0)
        snprintf(ulimit, sizeof ulimit, "ulimit -d %ld 2>/dev/null; ", 1024L * memory_mb);
    if (exit_token != NULL)
        snprintf(tail, sizeof tail,
                 "echo $rc > mount/.tango-exit-%s.tmp && "
                 "mv -f mount/.tango-exit-%s.tmp mount/.tango-exit-%s; ",
                 exit_token, exit_token, exit_token);
    int n = snprintf(cmd, cmdsz,
                     "%s"
                     "if [ ! -d autolab ]; then mkdir -p -m 755 autolab autograde output && "
                     "chown autolab:autolab autolab output && "
                     "chown autograde:autograde autograde; fi; "
                     "cp -r mount/* autolab/; rm -f mount/feedback; "
                     "su autolab -c \"autodriver -u %d -f %ld -t %d -o %ld "
                     "autolab > output/feedback 2>&1\"; rc=$?; "
                     "cp output/feedback mount/feedback || rc=%d; %sexit $rc",
                     ulimit, run->nproc, run->fsize, run->timeout_s, run->max_output,
                     VMMS_EXIT_FEEDBACK_COPY, tail);
    if (n < 0 || (size_t)n >= cmdsz)
        return vmms_fail(err, errlen, VMMS_ERR, "the grading command does not fit");
    return VMMS_OK;
}

int vmms_partial_begin(const char *prefix, const struct vmms_vm *vm, size_t *max_bytes,
                       size_t cap, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    if (*max_bytes > cap)
        *max_bytes = cap;
    return vmms_check_vm(prefix, vm, err, errlen);
}

int vmms_attach_begin(const char *prefix, const struct vmms_vm *vm, const char *handle,
                      long long *wait_ms, char *err, size_t errlen)
{
    int rc = vmms_check_vm(prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (!vmms_exit_token_ok(handle))
        return vmms_fail(err, errlen, VMMS_ERR, "VM %s: bad run handle", vm->name);
    if (*wait_ms < 0)
        *wait_ms = 0;
    return VMMS_OK;
}

int vmms_start_begin(const char *prefix, const struct vmms_vm *vm, const char *handle,
                     size_t handlelen, char token[33], char *err, size_t errlen)
{
    int rc = vmms_check_vm(prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (handle == NULL || handlelen < 33)
        return vmms_fail(err, errlen, VMMS_ERR, "start_job: the handle buffer must hold 33 "
                         "bytes");
    return vmms_new_exit_token(token, err, errlen);
}

int vmms_start_end(int rc, const struct vmms_vm *vm, const char *host, const char *token,
                   long long t0, char *handle, size_t handlelen, const char *err)
{
    if (rc != VMMS_OK) {
        char q[700];
        log_warn("vm_start_failed", "name=%s host=%s rc=%d err=%s", vm->name, host, rc,
                 log_quote(err, q, sizeof q));
        return rc;
    }
    snprintf(handle, handlelen, "%s", token);
    log_info("vm_started_job", "name=%s host=%s run=%.12s ms=%lld", vm->name, host, token,
             clock_mono_ms() - t0);
    return VMMS_OK;
}
