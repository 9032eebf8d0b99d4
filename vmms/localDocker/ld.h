/*
 * ld.h: the localDocker plugin's internal interface, shared by its .c files
 * and by nothing else. It owns the plugin context (config, its Docker
 * Engine API client: common/engine.h, the registry of running jobs that
 * destroy_vm can abort: common/watch.h) and the declarations each file
 * exports to the others:
 *   config.c       parse and validate the plugin's config object
 *   volumes.c      the per-VM directory mounted at /home/mount
 *   containers.c   create / wait / destroy / list containers
 *   exec.c         run commands inside a container (start / attach, partial output)
 *   images.c       list and load images
 *   pull.c         registry images: resolve_image, pulls through the engine
 *   network.c      the jobs' network and the host firewall rule (init)
 *   plugin.c       init / shutdown, ping, run_job and the exported ops table
 */
#ifndef TANGO_LD_H
#define TANGO_LD_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "vmms.h"
#include "common/engine.h"
#include "common/grading.h"
#include "common/watch.h"

/* The plugin's ops table (plugin.c), for helpers that call its own ops. */
extern const struct vmms_ops vmms_plugin;
#include "clock.h"
#include "jobnet.h"

/* Everything below is internal: only vmms_plugin leaves the .so. */
#pragma GCC visibility push(hidden)

#define LD_FEEDBACK_MAX (64L * 1024 * 1024)   /* biggest feedback copy_out takes */
#define LD_SOCKET_MAX VMMS_ENGINE_SOCKET_MAX
#define LD_PULL_TIMEOUT_S 900                  /* one registry pull through dockerd */

struct ld_config {
    char socket[LD_SOCKET_MAX + 1];
    char volume_dir[PATH_MAX];
    char host_volume_dir[PATH_MAX]; /* volume_dir as the Docker host names it ("": the
                                     * same path; the consumer runs in a container) */
    struct vmms_limits defaults; /* default_cores, _memory_mb, _pids_limit, _disk_mb
                                  * (disk: writable storage of a job, containers.c) */
    int run_grace_s;
    int api_timeout_s;
    struct jobnet_config net;    /* network, network_bridge, host_firewall */
    json_t *registries;          /* the service's "registries" (consumer/plugin.c copies
                                  * it in; checked there): an object, never NULL */
};

struct ld_ctx {
    struct ld_config cfg;
    char prefix[64];
    char volume_real[PATH_MAX];  /* canonical volume_dir (bind sources) */
    int volume_fd;               /* O_DIRECTORY fd of volume_real */
    char net_if[JOBNET_IFNAME_MAX + 1]; /* host interface of cfg.net.name */

    struct vmms_engine engine;   /* cfg.socket, api_timeout_s */

    struct vmms_watches watches; /* attach_job's waits, aborted by destroy_vm */
};

/* ---- helpers (plugin.c) ---- */
void clock_sleep_ms(long ms);
/* The ping op: vmms_engine_ping of ctx's engine (GET /_ping on a new
 * connection within timeout_ms); VMMS_OK or VMMS_UNAVAILABLE with err. */
int ld_ping(void *vctx, int timeout_ms, char *err, size_t errlen);

/* ---- config.c ---- */
int ld_config_parse(const json_t *cfg, struct ld_config *out, char *err, size_t errlen);

/* ---- volumes.c ---- */
/* Makes <volume_dir>/<name>/ (0755). If it exists: *existed is set and,
 * with replace, it is emptied and made afresh; without, it is an error. */
int ld_vol_create(struct ld_ctx *ctx, const char *name, bool replace, bool *existed,
                  char *err, size_t errlen);
int ld_vol_remove(struct ld_ctx *ctx, const char *name, char *err, size_t errlen);
int ld_copy_in(void *ctx, struct vmms_vm *vm, const struct vmms_file *files,
               size_t nfiles, int timeout_s, char *err, size_t errlen);
int ld_copy_out(void *ctx, struct vmms_vm *vm, const char *dest_path,
                int timeout_s, char *err, size_t errlen);

/* ---- containers.c ---- */
/* Container reference for URLs: vm->id if set, else vm->name. */
const char *ld_vm_ref(const struct vmms_vm *vm);
int ld_initialize_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int ld_wait_vm(void *ctx, struct vmms_vm *vm, int timeout_s, char *err, size_t errlen);
int ld_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int ld_safe_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int ld_get_vms(void *ctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen);

/* ---- exec.c ---- */
/* The run is a detached exec (it outlives the consumer); its handle is the
 * exec id (64 hex digits). attach_job waits on Docker's event stream for
 * that exec's exec_die (or the container's die/destroy). */
int ld_start_job(void *ctx, struct vmms_vm *vm, const struct vmms_run *run,
                 char *handle, size_t handlelen, char *err, size_t errlen);
int ld_attach_job(void *ctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                  int *status, char *err, size_t errlen);
int ld_get_partial_output(void *ctx, struct vmms_vm *vm, size_t max_bytes,
                          char **out, size_t *len, char *err, size_t errlen);
/* Aborts every run_job in progress on the VM called name. */

/* ---- images.c ---- */
int ld_get_images(void *ctx, char ***names, size_t *count, char *err, size_t errlen);
/* image_id (vmms.h): the engine's "Id" of image name (GET /images/NAME/json), a
 * local name or a registry reference (image_ref.h). */
int ld_image_id(void *ctx, const char *name, char *id, size_t idlen, char *err, size_t errlen);
int ld_load_image(void *ctx, const char *tar_path, const char *name, int timeout_s,
                  const struct vmms_image_limits *lim, char *err, size_t errlen);

/* ---- pull.c ---- */
/* The resolve_image op (vmms.h): reg_resolve with the configured registries. */
int ld_resolve_image(void *ctx, const char *name, char *out, size_t outlen, char *err,
                     size_t errlen);
/* When name is a registry reference the engine does not hold, dockerd
 * pulls it (with the registry's credentials) within LD_PULL_TIMEOUT_S.
 * VMMS_OK when the engine has it (or name is a local name), else the
 * failure with err saying what Docker answered (no secret in it). */
int ld_pull_missing(struct ld_ctx *ctx, const char *name, char *err, size_t errlen);

/* ---- network.c ---- */
/* At init: makes sure the jobs' network cfg.net.name exists and is a bridge
 * with inter-container traffic off (creates it if missing; a misconfigured
 * one is an error), fills ctx->net_if, and with host_firewall installs the
 * jobs' firewall of jobnet.h on its bridge (the INPUT rule and the mangle
 * chain dropping DNAT'd and link-local destinations) for IPv4 and IPv6
 * (common/jobfw.h); VMMS_ERR if it cannot. Not thread-safe: init only. */
int ld_net_init(struct ld_ctx *ctx, char *err, size_t errlen);

#pragma GCC visibility pop

#endif
