/*
 * vmms.h: the one interface every VMMS back end (virtual machine / container
 * manager) implements. It owns the contract between the consumer and a back
 * end; nothing else in the tree knows how a back end works.
 *
 * A back end is a shared object build/vmms/<name>.so (sources in
 * vmms/<name>/) that exports one symbol, `vmms_plugin`, of type
 * `const struct vmms_ops`. The consumer dlopen()s it by the name given in the
 * config key "vmms" and passes it the config object "vmms_config.<name>".
 *
 * Life of an instance ("VM"), mirroring Tango's VMMS methods:
 *   initialize_vm  create and start an idle instance of vm->image with the
 *                  limits in *vm; fills vm->id. An instance may be created
 *                  ahead of time (warm pool) and used later by one job.
 *   wait_vm        block until the instance can take files and a job.
 *   copy_in        place the job's input files in /home/mount inside it, in
 *                  the order given (of two with one dest_name the last
 *                  wins); each a file of the instance's own, never a link
 *                  to local_path.
 *   run_job        run the legacy command (docs/api.md) inside it, as root, and
 *                  wait (the backslash is only there so that slash-star does
 *                  not open a comment; it is not part of the command):
 *                  cp -r mount/\* autolab/; su autolab -c "autodriver
 *                  -u NPROC -f FSIZE -t TIMEOUT -o OSIZE autolab >
 *                  output/feedback 2>&1"; cp output/feedback mount/feedback
 *                  *status gets autodriver's exit code (0 ok, 1 usage,
 *                  2 timed out, 3 OS error), or VMMS_EXIT_FEEDBACK_COPY
 *                  when that last cp failed (see below). Returns
 *                  VMMS_TIMEOUT if the command did not end within
 *                  run->timeout_s + grace.
 *   start_job      like run_job, but returns as soon as the run has started,
 *                  with a handle (a short printable string, e.g. Docker's
 *                  exec id) that names the run. The run must go on without
 *                  the consumer process: if the consumer dies, the command
 *                  keeps running in the instance and writes its feedback.
 *   attach_job     wait for the run named by handle to end, at most wait_ms
 *                  (then VMMS_TIMEOUT; the run may still be going); *status
 *                  as for run_job. Works from any consumer process: vm may
 *                  carry only name, id, image and host (priv NULL), as a
 *                  successor rebuilds it from the job record after a
 *                  takeover. VMMS_NOT_FOUND: the instance or the run is gone
 *                  (the job must be run again). destroy_vm from another
 *                  thread makes it return VMMS_ERR promptly.
 *   copy_out       copy /home/mount/feedback out to a local file, which
 *                  must not exist yet (created O_EXCL|O_NOFOLLOW).
 *   destroy_vm     stop and remove the instance and anything made for it
 *                  (volume directory, ...). Never reused after a job.
 *   safe_destroy_vm  same, but an instance that is already gone is success.
 *   get_vms        list this service's instances (names starting with prefix).
 *   get_images     the images a job may name.
 *   get_partial_output  up to max_bytes of what the running job printed so
 *                  far (the grading output.log), for getPartialOutput.
 *   ping           (optional) a cheap health probe of the back end itself
 *                  (localDocker: GET /_ping): VMMS_OK when it answers,
 *                  VMMS_UNAVAILABLE when it cannot be reached.
 *   load_image     load a `docker save` tarball as image `name` (build),
 *                  within lim (struct vmms_image_limits).
 *   image_id       (optional) the current id of an image name, so a warm
 *                  instance made before a rebuild is never handed out after.
 *   resolve_image  (optional) a registry tag pinned to its digest.
 *
 * Rules for implementers:
 *   - Every function is thread-safe: the consumer calls them from several
 *     worker threads at once, on different VMs. destroy_vm may be called
 *     from another thread while run_job runs on the same VM, to abort it;
 *     run_job must then return (VMMS_ERR) promptly.
 *   - Every function returns a vmms_status and, on failure, writes a
 *     one-line human-readable reason into err (errlen bytes, NUL-ended).
 *   - Nothing blocks forever: every network or process call has a timeout.
 *   - Never log secrets; log with common/log.h.
 */
#ifndef TANGO_VMMS_H
#define TANGO_VMMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <jansson.h>

#define VMMS_ABI_VERSION 2 /* 2: load_image takes struct vmms_image_limits; image_id */

enum vmms_status {
    VMMS_OK = 0,
    VMMS_ERR = -1,       /* the operation failed; err says why */
    VMMS_TIMEOUT = -2,   /* the operation did not finish in time */
    VMMS_NOT_FOUND = -3, /* the instance or image does not exist */
    VMMS_BUSY = -4,      /* initialize_vm: no host can take an instance now
                          * (all down or full); the job waits in the queue
                          * and no retry is counted */
    VMMS_UNAVAILABLE = -5, /* the back end itself cannot be reached (its
                            * daemon's socket refused or missing, the
                            * daemon answered 5xx, the SSH host or the
                            * cloud API unreachable): not the job's fault.
                            * The consumer puts the job back without a
                            * retry, stops leasing and probes with ping
                            * until it answers again. */
};

/* The run's status when the grading command could not copy the feedback
 * to mount/feedback (a full disk): whatever autodriver said, the output is
 * lost or cut, so the consumer treats the run as an infrastructure failure
 * (retried). Every back end builds its command with vmms_grading_command,
 * which says so. 75 is EX_TEMPFAIL; autodriver itself exits 0..3. */
#define VMMS_EXIT_FEEDBACK_COPY 75

/* One input file: a path on the consumer's host and its name inside
 * /home/mount. dest_name is validated (common/names.h) before it gets here. */
struct vmms_file {
    const char *local_path;
    const char *dest_name;
};

/* Limits and identity of one instance. The caller fills name, image and the
 * limits; the plugin fills id (and host, for back ends with several hosts)
 * and may hang its own state on priv (freed by destroy_vm). */
struct vmms_vm {
    char name[128];   /* unique, starts with the service's prefix */
    char image[256];
    char id[128];     /* back end's id for the instance */
    char host[256];   /* where it runs; "" for the local host */
    int cores;        /* CPUs; 0 = back end default */
    int memory_mb;    /* memory limit in MiB; 0 = back end default */
    int pids_limit;   /* max processes in the instance; 0 = default */
    int disk_mb;      /* writable storage of the instance in MiB; 0 = default */
    bool network;     /* false: no network inside the instance */
    void *priv;
    char instance_type[32]; /* the job's VM type ([a-z0-9.]); "" = back end default;
                             * back ends without types ignore it */
};

/* autodriver's arguments for one job (docs/api.md, "Inside the container"). */
struct vmms_run {
    int timeout_s;        /* -t: seconds the grader may run */
    long max_output;      /* -o: bytes of output kept */
    int nproc;            /* -u: process limit for the grading user */
    long fsize;           /* -f: file size limit in bytes */
    int cpu_limit_s;      /* CPU seconds (user + system) of the whole run; 0 = none.
                           * Back ends that cannot measure it ignore it (localOCI
                           * kills the job's processes when its cgroup passes it). */
};

/* Resources a run used (job_usage). */
struct vmms_usage {
    long long cpu_user_ms;   /* user CPU time of every process of the run */
    long long cpu_sys_ms;    /* system CPU time */
    long long peak_mem_kb;   /* highest memory use of the instance (page cache included) */
};

/* What load_image may unpack (config image_max_unpacked_mb and
 * image_max_entries): every layer's files together. A back end refuses a
 * tarball over either, or over the free space where it would unpack it,
 * before loading anything, and leaves nothing of a refused or failed load. */
struct vmms_image_limits {
    long long max_bytes;
    long long max_entries;
};

/* Called once per instance found by get_vms. */
typedef void (*vmms_vm_cb)(const char *name, const char *id, const char *image,
                           bool running, void *arg);

struct vmms_ops {
    unsigned abi;         /* VMMS_ABI_VERSION */
    const char *name;     /* "localDocker", "distDocker", ... */

    /* cfg is the plugin's own config object (may be NULL); prefix is the
     * service's instance-name prefix. Returns the plugin context in *ctx. */
    int (*init)(const json_t *cfg, const char *prefix, void **ctx,
                char *err, size_t errlen);
    void (*shutdown)(void *ctx);

    int (*initialize_vm)(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
    int (*wait_vm)(void *ctx, struct vmms_vm *vm, int timeout_s,
                   char *err, size_t errlen);
    int (*copy_in)(void *ctx, struct vmms_vm *vm, const struct vmms_file *files,
                   size_t nfiles, int timeout_s, char *err, size_t errlen);
    int (*run_job)(void *ctx, struct vmms_vm *vm, const struct vmms_run *run,
                   int *status, char *err, size_t errlen);
    int (*start_job)(void *ctx, struct vmms_vm *vm, const struct vmms_run *run,
                     char *handle, size_t handlelen, char *err, size_t errlen);
    int (*attach_job)(void *ctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                      int *status, char *err, size_t errlen);
    int (*copy_out)(void *ctx, struct vmms_vm *vm, const char *dest_path,
                    int timeout_s, char *err, size_t errlen);
    int (*destroy_vm)(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
    int (*safe_destroy_vm)(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
    int (*get_vms)(void *ctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen);
    /* *names is a malloc'd array of malloc'd strings; free with vmms_free_names. */
    int (*get_images)(void *ctx, char ***names, size_t *count,
                      char *err, size_t errlen);
    /* *out is malloc'd (caller frees), *len its length; at most max_bytes. */
    int (*get_partial_output)(void *ctx, struct vmms_vm *vm, size_t max_bytes,
                              char **out, size_t *len, char *err, size_t errlen);
    int (*load_image)(void *ctx, const char *tar_path, const char *name, int timeout_s,
                      const struct vmms_image_limits *lim, char *err, size_t errlen);
    /* Optional (NULL: no hosts to report, e.g. localDocker): calls cb once
     * per worker host (its label, whether it is up, how many instances hold
     * one of its job slots), for the consumer's metrics. Thread-safe; never
     * waits for the network. */
    void (*get_hosts)(void *ctx, void (*cb)(const char *host, bool up, int jobs, void *arg),
                      void *arg);
    /* Optional (NULL: not measured). What the instance's last run used, read
     * after attach_job said it ended and before destroy_vm: CPU time (user
     * + system) and peak memory of the instance's cgroup. VMMS_OK, or
     * VMMS_ERR / VMMS_NOT_FOUND when the figures cannot be read. */
    int (*job_usage)(void *ctx, struct vmms_vm *vm, struct vmms_usage *usage,
                     char *err, size_t errlen);
    /* Optional (NULL: none). The local directory this back end writes jobs'
     * files into (localDocker's volume_dir), or NULL: the consumer watches
     * its free space with courselabs' (config min_free_mb). */
    const char *(*data_dir)(void *ctx);
    /* Optional (NULL: the consumer cannot probe; it then waits out a
     * VMMS_UNAVAILABLE with backoff and tries jobs again). Whether the back
     * end can be reached now: VMMS_OK, or VMMS_UNAVAILABLE with err saying
     * why. Thread-safe; answers within timeout_ms. Added at the end of the
     * table so that plugins built before it (which leave it zero) still load. */
    int (*ping)(void *ctx, int timeout_ms, char *err, size_t errlen);
    /* Optional (NULL: ids unknown; warm pools then match instances by name
     * only). The id of what image name is now, as an instance made from it
     * now would run it (localDocker: the engine's image "Id"; localOCI: the
     * id in the store's image record, imported from Docker first when the
     * store lacks it, as initialize_vm would), into id (idlen bytes, at most
     * 127 characters). The same name gives another id after a rebuild.
     * VMMS_OK, VMMS_NOT_FOUND (no such image) or VMMS_ERR. Thread-safe; a
     * local lookup (no remote network). */
    int (*image_id)(void *ctx, const char *name, char *id, size_t idlen, char *err,
                    size_t errlen);
    /* Optional (NULL: registry tags are not pinned). For a registry
     * reference by tag (image_ref.h), the same image by digest,
     * "host[:port]/path@sha256:<hex>", as the registry resolves the tag now
     * (its manifest's digest), into out (outlen bytes); any other name is
     * copied unchanged. The consumer calls it before a job's first run and
     * keeps the answer in the job's record, so a retried or re-attached job
     * runs the same image. VMMS_OK, VMMS_NOT_FOUND (no such tag) or
     * VMMS_ERR. Thread-safe; may use the network within the registry's
     * deadlines. Added at the end of the table (older plugins leave it 0). */
    int (*resolve_image)(void *ctx, const char *name, char *out, size_t outlen, char *err,
                         size_t errlen);
};

/* A plugin's run_job in terms of its start_job and attach_job: waits
 * timeout + grace_s seconds; a run gone meanwhile (its instance destroyed)
 * is VMMS_ERR. One implementation for every plugin. */
static inline int vmms_run_via_attach(const struct vmms_ops *ops, void *ctx, struct vmms_vm *vm,
                                      const struct vmms_run *run, int grace_s, int *status,
                                      char *err, size_t errlen)
{
    char handle[128];
    int rc = ops->start_job(ctx, vm, run, handle, sizeof handle, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    int limit = run->timeout_s + grace_s;
    rc = ops->attach_job(ctx, vm, handle, 1000LL * limit, status, err, errlen);
    if (rc == VMMS_NOT_FOUND)
        rc = VMMS_ERR;
    if (rc == VMMS_TIMEOUT)
        snprintf(err, errlen, "VM %s: job did not end within %d s (timeout %d s + grace %d s)",
                 vm->name, limit, run->timeout_s, grace_s);
    return rc;
}

static inline void vmms_free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

#endif
