/*
 * lo.h: the localOCI plugin's internal interface, shared by its .c files and
 * by nothing else. localOCI runs each job in a sandbox of its own with no
 * daemon on the job's path: the image's layers unpacked once into a
 * content-addressed store, an overlayfs root per job (upper dir on a
 * size-capped tmpfs), and an OCI runtime (runc or crun) started on a bundle
 * made ahead of time. It owns the plugin context and what each file exports:
 *   config.c    parse and validate "vmms_config.localOCI"
 *   layers.c    the layer store: paths, storing a layer, image records,
 *               images listed by name
 *   layers_unpack.c  the unpack of one layer (entry rules, whiteouts,
 *               budget, sha256); layers_int.h is what the three share
 *   layers_import.c  the ways in: a `docker save` tarball, an OCI image
 *               layout directory or the Docker engine's export
 *   spec.c      the bundle's config.json (namespaces, capabilities,
 *               seccomp, cgroup limits, mounts)
 *   net.c       the jobs' bridge, NAT and firewall (init) and each
 *               sandbox's network namespace and veth
 *   sandbox.c   a sandbox's life: make (initialize_vm), check (wait_vm),
 *               destroy, list, startup clean-up, cgroup usage
 *   run.c       files in and out, start and attach a run, partial output
 *   plugin.c    init / shutdown, the ops table
 */
#ifndef TANGO_LO_H
#define TANGO_LO_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vmms.h"
#include "common/engine.h"
#include "common/files.h"
#include "common/grading.h"
#include "common/spawn.h"
#include "common/watch.h"
#include "jobnet.h"

extern const struct vmms_ops vmms_plugin;

#pragma GCC visibility push(hidden)

#define LO_FEEDBACK_MAX (64L * 1024 * 1024)  /* biggest feedback copy_out takes */
#define LO_CGROUP_PARENT "tango-oci"         /* cgroups: <controller>/tango-oci/<vm> */
#define LO_NET_SLOTS 65536                   /* addresses of a /16 */

enum lo_runtime { LO_RUNC, LO_CRUN };

struct lo_config {
    char runtime_name[16];        /* "auto", "runc" or "crun" */
    char store_dir[256];          /* layers/, images/, tmp/ (canonical, < 200 bytes) */
    char run_dir[64];             /* vms/<name>/ bundles, runtime/ state */
    char docker_socket[108];      /* "" = never ask Docker */
    json_t *import_images;        /* names imported from Docker at init */
    json_t *oci_images;           /* {name: OCI image layout directory} imported at init */
    struct vmms_limits defaults;  /* default_cores, _memory_mb, _pids_limit, _disk_mb */
    int cmd_timeout_s;            /* limit of each helper program */
    char bridge[16];              /* the jobs' bridge */
    uint32_t subnet;              /* a /16, host order; .0.1 is the bridge */
    bool host_firewall;
    char uplinks[JOBNET_UPLINKS_MAX][JOBNET_IFNAME_MAX + 1]; /* network_uplinks */
    size_t nuplinks;              /* 0: the interfaces of the default routes at init */
};

struct lo_ctx {
    struct lo_config cfg;
    char prefix[64];
    enum lo_runtime runtime;
    char runtime_path[64];
    char runtime_root[128];       /* --root of the runtime */
    char vms_dir[128];
    int vms_fd;                   /* O_DIRECTORY of vms_dir */
    bool cgroup2;                 /* unified hierarchy only */
    pthread_mutex_t lock;         /* net slots, image imports */
    struct vmms_watches watches;  /* attach_job's waits, aborted by destroy_vm */
    uint8_t *net_used;            /* LO_NET_SLOTS bytes */
    pthread_mutex_t import_lock;  /* one import at a time */
    struct vmms_engine docker;    /* cfg.docker_socket's engine; not ready when "" */
};

/* ---- config.c ---- */
int lo_config_parse(const json_t *cfg, struct lo_config *out, char *err, size_t errlen);
void lo_config_free(struct lo_config *c);

/* ---- layers.c, layers_import.c, layers_unpack.c ---- */
int lo_store_init(struct lo_ctx *ctx, char *err, size_t errlen);
/* Imports a `docker save` tarball (tar_path) as image name, within lim and
 * the store's free space (image_tar_admit first, then every layer's
 * entries spent from lim as they are unpacked); a failed import leaves no
 * layer it stored. */
int lo_load_image(void *ctx, const char *tar_path, const char *name, int timeout_s,
                  const struct vmms_image_limits *lim, char *err, size_t errlen);
/* Imports an OCI image layout directory as image name. */
int lo_import_oci_dir(struct lo_ctx *ctx, const char *dir, const char *name, char *err,
                      size_t errlen);
/* Imports image name from the Docker engine (GET /images/NAME/get) unless
 * the store already holds the same image id. VMMS_NOT_FOUND: Docker has no
 * such image (or no Docker). */
int lo_import_docker(struct lo_ctx *ctx, const char *name, char *err, size_t errlen);
int lo_get_images(void *ctx, char ***names, size_t *count, char *err, size_t errlen);
/* lo_image_get, imported from Docker first when the store lacks it (what
 * initialize_vm runs). */
int lo_image_find(struct lo_ctx *ctx, const char *name, json_t **out, char *err, size_t errlen);
/* image_id (vmms.h): the "id" of the store's record of image name
 * (lo_image_find: imported from Docker first when the store lacks it). */
int lo_image_id(void *ctx, const char *name, char *id, size_t idlen, char *err, size_t errlen);
/* The image's record: {"layers": [dir, ... bottom first], "env": [...],
 * "cwd": "..."}; *out is a new reference. VMMS_NOT_FOUND if not imported. */
int lo_image_get(struct lo_ctx *ctx, const char *name, json_t **out, char *err, size_t errlen);
/* Unpacks the layer tar stream read from fd (compressed or not) into dir,
 * an existing empty directory named by an absolute path with no symbolic
 * link on the way, by the unpack rules of layers_unpack.c's header; hex (65 bytes)
 * gets the sha256 of every byte read from fd ("" on failure). Whatever the
 * tar holds, nothing outside dir is created, changed, removed or linked to
 * (no absolute name, no "..", nothing written through a symbolic link, no
 * hard link to a file outside); VMMS_ERR with err at the first entry that
 * would, or at a bad tar (dir may then hold part of the layer: the caller
 * removes it). What the store unpacks every layer with; fuzzed by
 * tests/fuzz/fuzz_oci.c. */
int lo_unpack_layer(int fd, const char *dir, char *hex, char *err, size_t errlen);
/* rm -rf of a directory of our own: symbolic links not followed, other
 * file systems (a mount left in it) not entered. */
void lo_rm_tree(const char *dir);
/* The absolute directory of layer digest (64 hex) into buf. */
void lo_layer_dir(struct lo_ctx *ctx, const char *digest, char *buf, size_t bufsz);

/* ---- spec.c ---- */
/* The OCI config.json for one sandbox; netns: path of its network namespace
 * or NULL for a fresh one with only lo. NULL when out of memory. */
json_t *lo_spec(struct lo_ctx *ctx, const char *name, const json_t *image,
                const struct vmms_limits *lim, const char *netns);

/* ---- net.c ---- */
/* At init: the jobs' bridge, forwarding, NAT and the jobs' firewall of
 * jobnet.h (out only by an uplink; no DNAT'd or link-local destination;
 * with host_firewall the INPUT rule). VMMS_ERR with err naming the step
 * that failed: the plugin does not start. */
int lo_net_init(struct lo_ctx *ctx, char *err, size_t errlen);
/* Makes /run/netns/<name> with lo, and eth0 on the bridge (address slot
 * written to <bundle>/net). */
int lo_net_create(struct lo_ctx *ctx, const char *name, int bundle_fd, char *err,
                  size_t errlen);
/* Removes the namespace of name (its veth goes with it) and frees its slot. */
int lo_net_remove(struct lo_ctx *ctx, const char *name, int bundle_fd, char *err,
                  size_t errlen);
/* Marks the slot named in <bundle>/net as used (startup, re-attach). */
void lo_net_adopt(struct lo_ctx *ctx, int bundle_fd);

/* ---- sandbox.c ---- */
int lo_initialize_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int lo_wait_vm(void *ctx, struct vmms_vm *vm, int timeout_s, char *err, size_t errlen);
int lo_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int lo_safe_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int lo_get_vms(void *ctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen);
int lo_job_usage(void *ctx, struct vmms_vm *vm, struct vmms_usage *u, char *err,
                 size_t errlen);
/* Runs the runtime with args after "--root ROOT"; VMMS_ERR unless exit 0. */
int lo_runtime(struct lo_ctx *ctx, const char *what, const char *const *args, char *err,
               size_t errlen);
/* The pid of name's container process if it lives (checked against its
 * cgroup), else 0. */
int lo_container_pid(struct lo_ctx *ctx, const char *name);
/* CPU time (user + system, ms) name's cgroup used so far; -1 if unknown. */
long long lo_cpu_ms(struct lo_ctx *ctx, const char *name);
/* The root directory of the container whose process is pid (its
 * /proc/PID/root), open O_DIRECTORY for vmms_open_in_root; -1 with errno. */
int lo_container_root(int pid);
/* The uid of the grading user (autodriver's "autograde") in the /etc/passwd
 * of the container whose process is pid, read inside the container's root
 * (vmms_open_in_root: a regular file, at most 64 KiB); -1 if none. Never
 * blocks on, nor reads past, whatever the image put there. */
long lo_grading_uid(int pid);
/* The uid of the first "autograde:" line of passwd (a NUL-ended passwd
 * file, the image's: any bytes): 1..0x7ffffffe, or -1 if there is none or
 * its uid field is not a whole number in that range. Fuzzed by
 * tests/fuzz/fuzz_passwd.c. */
long lo_passwd_uid(const char *passwd);
/* SIGKILLs every process of name's cgroup whose real uid is uid (the job's
 * own: autodriver runs it as the grading user); returns how many. */
int lo_kill_job_procs(struct lo_ctx *ctx, const char *name, long uid);
/* Opens <vms_dir>/<name> (O_DIRECTORY|O_NOFOLLOW); -1 with errno. */
int lo_open_bundle(struct lo_ctx *ctx, const char *name);

/* ---- run.c ---- */
int lo_copy_in(void *ctx, struct vmms_vm *vm, const struct vmms_file *files, size_t nfiles,
               int timeout_s, char *err, size_t errlen);
int lo_copy_out(void *ctx, struct vmms_vm *vm, const char *dest_path, int timeout_s,
                char *err, size_t errlen);
int lo_start_job(void *ctx, struct vmms_vm *vm, const struct vmms_run *run, char *handle,
                 size_t handlelen, char *err, size_t errlen);
int lo_attach_job(void *ctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                  int *status, char *err, size_t errlen);
int lo_run_job(void *ctx, struct vmms_vm *vm, const struct vmms_run *run, int *status,
               char *err, size_t errlen);
int lo_get_partial_output(void *ctx, struct vmms_vm *vm, size_t max_bytes, char **out,
                          size_t *len, char *err, size_t errlen);

#pragma GCC visibility pop

#endif
