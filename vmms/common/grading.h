/*
 * grading.h: what every VMMS back end shares about a job's run, so each
 * plugin states it once: the legacy grading command (docs/api.md) with the
 * additions all back ends make, autodriver's exit codes, the one error
 * helper, the start of init (prefix, libcurl: init.c), and the checks on
 * names that come from the consumer (VM names, instance prefixes, input
 * file names and lists). Linked into every plugin (vmms/common/ objects go
 * into each build/vmms/<name>.so).
 */
#ifndef TANGO_VMMS_GRADING_H
#define TANGO_VMMS_GRADING_H

#include <stdbool.h>
#include <stddef.h>

#include "vmms.h"

/* autodriver's exit codes (autodriver/ and docs/api.md), as run_job reports them. */
enum autodriver_exit {
    AUTODRIVER_EXIT_OK = 0,       /* the job ran (its own result is in the feedback) */
    AUTODRIVER_EXIT_USAGE = 1,    /* bad options */
    AUTODRIVER_EXIT_TIMEOUT = 2,  /* the job ran out of time and was killed */
    AUTODRIVER_EXIT_OSERR = 3,    /* a system call failed in autodriver */
};

/* Writes the printf-formatted reason into err (errlen bytes, NUL-ended;
 * err may be NULL) and returns status: `return vmms_fail(err, errlen,
 * VMMS_ERR, "...", ...)`. */
int vmms_fail(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The first check of every plugin's init (init.c): prefix is 1..63 bytes of
 * [A-Za-z0-9_.-], and with curl libcurl's global set-up has run (once per
 * process, thread-safe). VMMS_OK, or VMMS_ERR with "<plugin>: why". */
int vmms_init_check(const char *plugin, const char *prefix, bool curl, char *err, size_t errlen);

/* True when s is 1..max-1 bytes of [A-Za-z0-9_.-] (a Docker/instance name). */
bool vmms_name_ok(const char *s, size_t max);

/* True when s can be one input file's name in the job directory: 1..NAME_MAX
 * bytes, no '/', not "." or "..". */
bool vmms_dest_name_ok(const char *s);

/* copy_in's check of its files, before any is written: each has a
 * local_path and a dest_name vmms_dest_name_ok accepts. VMMS_OK, or
 * VMMS_ERR naming the first bad one. */
int vmms_check_files(const struct vmms_file *files, size_t nfiles, char *err, size_t errlen);

/* One VM's resource limits (docs/api.md's job limits), as initialize_vm makes
 * it; also the plugin's defaults (its config's default_* keys). */
struct vmms_limits {
    int cores, memory_mb, pids, disk_mb;
};

/* The start of a container back end's initialize_vm (localDocker,
 * localOCI, distDocker): vm->id and vm->host emptied, vm checked with
 * vmms_check_vm against prefix, vm->image an image name (names.h), and
 * *lim the VM's limits: its own, each 0 replaced by defaults', cores cut
 * to this host's CPUs when host_cpus (a local back end; logged). VMMS_ERR
 * (reason in err) when vm is NULL or bad, or a limit is negative, the
 * memory is over 1048576 MiB or a disk limit outside 16..1048576 MiB. */
int vmms_initialize_begin(const char *prefix, struct vmms_vm *vm,
                          const struct vmms_limits *defaults, bool host_cpus,
                          struct vmms_limits *lim, char *err, size_t errlen);

/* Checks what the consumer passes as a VM: vm->name starts with prefix, goes
 * on after it and holds only [A-Za-z0-9_.-]; vm->id is lowercase hex (may be
 * empty). VMMS_OK, or VMMS_ERR with the reason in err. */
int vmms_check_vm(const char *prefix, const struct vmms_vm *vm, char *err, size_t errlen);

/* True when t is a well-formed exit token: 16..64 lowercase hex. */
bool vmms_exit_token_ok(const char *t);

/* Fills token with a fresh random exit token (32 hex digits + NUL).
 * VMMS_OK, or VMMS_ERR (getrandom failed) with the reason in err. */
int vmms_new_exit_token(char token[33], char *err, size_t errlen);

/* Builds into cmd (cmdsz bytes) the shell command that grades one job in a
 * sandbox whose working directory is /home (docs/api.md's legacy command), run
 * as root, with what every back end adds around it:
 *   - RLIMIT_DATA (ulimit -d) of memory_mb, since the sandbox's memory limit
 *     also pays for its size-capped /home and a process alone must still
 *     stop at memory_mb (memory_mb <= 0: no ulimit);
 *   - /home/autolab, /home/autograde, /home/output made with the owners of
 *     the reference Dockerfile when /home is a fresh file system;
 *   - an input called feedback removed once copied, so the result is only
 *     what the job wrote;
 *   - autodriver's exit status kept as the command's own, except that a
 *     failed copy of the feedback to mount/feedback (a full disk) makes it
 *     VMMS_EXIT_FEEDBACK_COPY, an infrastructure failure;
 *   - with exit_token (16..64 lowercase hex; NULL = none) that status also
 *     written atomically to mount/.tango-exit-TOKEN, for back ends that
 *     collect a run's end from a file rather than from a live process.
 * VMMS_OK, or VMMS_ERR when a limit is out of range (timeout must be > 0,
 * the others >= 0), the token is malformed or the command does not fit. */
int vmms_grading_command(const struct vmms_run *run, int memory_mb, const char *exit_token,
                         char *cmd, size_t cmdsz, char *err, size_t errlen);

/* getPartialOutput: the grading user the peek runs as (so it reads nothing
 * the job could not read itself) and the deadline of its read. */
#define VMMS_PARTIAL_USER "autograde"
#define VMMS_PARTIAL_DEADLINE_S 2

/* Builds into cmd the sh script that prints up to max_bytes of a running
 * job's output from where the grading command's run writes it, first found
 * wins: autodriver's output.log in the grading user's home (reference Tango
 * reads autograde/output.log too), in the job directory for some
 * autodrivers, and once autodriver is done output/feedback (paths under
 * /home). It skips a source that is a symbolic link (or whose directory is
 * one), reads only a regular file, and `timeout` (when the image has it)
 * kills a read that blocks after VMMS_PARTIAL_DEADLINE_S (a FIFO swapped
 * in after the test). Run it as VMMS_PARTIAL_USER with a deadline of
 * VMMS_PARTIAL_DEADLINE_S + 2 s. Exit 0 (or 1: nothing yet). */
void vmms_partial_script(size_t max_bytes, char *cmd, size_t cmdsz);

/* The start of every get_partial_output: *out = NULL and *len = 0 (nothing
 * yet), vm checked with vmms_check_vm against prefix, and *max_bytes cut
 * to cap (what the back end can hold). VMMS_OK or vmms_check_vm's error. */
int vmms_partial_begin(const char *prefix, const struct vmms_vm *vm, size_t *max_bytes,
                       size_t cap, char **out, size_t *len, char *err, size_t errlen);
/* The start of an attach_job whose run handle is an exit token
 * (vmms_new_exit_token): vm checked with vmms_check_vm against prefix,
 * handle checked with vmms_exit_token_ok ("VM NAME: bad run handle"), and
 * a negative *wait_ms made 0. VMMS_OK or the error. */
int vmms_attach_begin(const char *prefix, const struct vmms_vm *vm, const char *handle,
                      long long *wait_ms, char *err, size_t errlen);
/* The start of a start_job whose run handle is an exit token: vm checked
 * with vmms_check_vm against prefix, handle (handlelen bytes) able to hold
 * a token, and a fresh one in token (vmms_new_exit_token). VMMS_OK or the
 * error. */
int vmms_start_begin(const char *prefix, const struct vmms_vm *vm, const char *handle,
                     size_t handlelen, char token[33], char *err, size_t errlen);
/* The end of a start_job on a remote host whose run handle is an exit
 * token: rc not VMMS_OK is logged (vm_start_failed: host, rc, err) and
 * returned; else token is copied into handle (handlelen bytes) and the
 * start logged (vm_started_job: host, ms since t0, a clock_mono_ms time).
 * Returns rc. */
int vmms_start_end(int rc, const struct vmms_vm *vm, const char *host, const char *token,
                   long long t0, char *handle, size_t handlelen, const char *err);

#endif
