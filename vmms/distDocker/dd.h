/*
 * dd.h: the distDocker plugin's internal interface, shared by its .c files
 * and by nothing else. distDocker runs each job's container on one of a
 * fleet of worker hosts reached over SSH (libssh2), with the docker CLI
 * there. It owns the plugin context (config, hosts, the registry of VMs and
 * of running jobs) and the declarations each file exports to the others:
 *   config.c      parse and validate the plugin's config object
 *   sftp.c        copy_in / copy_out over SFTP (vmms/common/sftp.c)
 *   host_monitor.c  a monitor thread per host: connect, backoff, health
 *                 checks, deferred removals
 *   hosts.c       host states, round-robin
 *                 assignment with capacity, the VM registry, deferred removals,
 *                 each host's one connection and dd_run (a command on a host)
 *   containers.c  create / wait / destroy / list containers
 *   jobs.c        start_job, attach_job and get_partial_output (docker exec)
 *   images.c      list images (on every healthy host) and load them
 *   pull.c        registry images: resolve_image, a pull on a worker host
 *   network.c     the jobs' network and firewall rule on each host
 *   host_health.c get_hosts: each host's state for the consumer's metrics
 *   plugin.c      init / shutdown, run_job (start + attach), the exported
 *                 ops table; the top: no other file calls into it
 *
 * The SSH client (connections, commands, SFTP, quoting) is vmms/common/ssh.h,
 * shared with ec2SSH. Concurrency. Each host has at most one live
 * connection (struct dd_conn), shared by every thread working on that host,
 * with ssh.h's locking rules. ctx->lock guards host states, the registries and connection reference
 * counts; it is never taken while a connection's mutex is held.
 */
#ifndef TANGO_DD_H
#define TANGO_DD_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <libssh2.h>

#include "vmms.h"
#include "common/grading.h"
#include "common/ssh.h"
#include "common/watch.h"

/* The plugin's ops table (plugin.c): the .so's one exported symbol. Only
 * plugin.c uses it (the other files never call back into plugin.c). */
extern const struct vmms_ops vmms_plugin;
#include "clock.h"
#include "jobnet.h"

#pragma GCC visibility push(hidden)

#define DD_MAX_HOSTS 64
#define DD_FEEDBACK_MAX (64L * 1024 * 1024)   /* biggest feedback copy_out takes */
#define DD_ADDR_MAX 240
#define DD_PULL_TIMEOUT_S 900                 /* one registry pull on a worker host */

/* ---- config.c ---- */
struct dd_host_cfg {
    char address[DD_ADDR_MAX + 1];
    int port;
    char user[64];
    char private_key[PATH_MAX];
    char public_key[PATH_MAX];   /* "" = libssh2 derives it from the private key */
    char known_hosts[PATH_MAX];  /* "" only when strict checking is off */
    char volume_dir[PATH_MAX];
    int max_jobs;
    int max_sessions;            /* the host sshd's MaxSessions */
};

struct dd_config {
    struct dd_host_cfg *hosts;
    size_t nhosts;
    bool strict_host_key_checking;
    int connect_timeout_s;
    int command_timeout_s;
    int down_backoff_s;
    int down_backoff_max_s;
    int health_interval_s;
    int run_grace_s;
    struct vmms_limits defaults; /* default_cores, _memory_mb, _pids_limit, _disk_mb
                                  * (disk: writable storage of a job, containers.c) */
    struct jobnet_config net;    /* network, network_bridge, host_firewall */
    json_t *registries;          /* the service's "registries" (consumer/plugin.c copies
                                  * it in); an empty object when none */
};

int dd_config_parse(const json_t *cfg, struct dd_config *out, char *err, size_t errlen);
void dd_config_free(struct dd_config *cfg);

/* ---- hosts.c: connections ---- */
struct dd_host;
struct dd_ctx;

struct dd_conn {
    struct vssh_conn ssh;        /* first: conn_broke finds the dd_conn from it */
    struct dd_host *host;
    int refs;                    /* ctx->lock: users besides the host */
    bool detached;               /* ctx->lock: no longer the host's connection */
    long opened_ms;
    atomic_bool net_ok;          /* the jobs' network was checked over it (network.c) */
};

/* Connects to h, verifies its key, authenticates (connect_timeout_s in
 * all). On failure *refused tells a host-key refusal from other errors. */
int dd_conn_open(struct dd_ctx *ctx, struct dd_host *h, struct dd_conn **out, bool *refused,
                 char *err, size_t errlen);
/* Closes and frees a connection nobody uses any more. */
void dd_conn_free(struct dd_conn *c);
/* Runs cmd on host h over its connection (vssh_run). VMMS_OK when the
 * command ran to its end (whatever its exit code), VMMS_TIMEOUT, or VMMS_ERR
 * (host down, transport failure, aborted). A transport failure marks the
 * host down. Free out with vssh_out_free always. */
int dd_run(struct dd_ctx *ctx, struct dd_host *h, const struct vssh_cmd *cmd,
           struct vssh_out *out, char *err, size_t errlen);

/* ---- hosts.c ---- */
enum dd_state { DD_UNKNOWN = 0, DD_UP, DD_DOWN };

struct dd_pending {              /* a VM to remove when its host returns */
    char name[128];
    struct dd_pending *next;
};

struct dd_host {
    struct dd_ctx *ctx;
    int index;
    const struct dd_host_cfg *cfg;
    char label[256];             /* "address:port": logs and vm->host */
    struct vssh_target target;   /* how to reach it (points into cfg, label) */
    /* guarded by ctx->lock: */
    enum dd_state state;
    struct dd_conn *conn;        /* the live connection when up */
    int active;                  /* VMs holding one of max_jobs */
    int ncpu;                    /* the host's CPUs (docker info) */
    bool tried;                  /* first connection attempt over */
    long retry_at_ms;            /* next connection attempt */
    long backoff_ms;             /* next wait after a failed attempt */
    long down_since_ms;
    long next_health_ms;
    long last_health_ms;
    char last_error[256];
    struct dd_pending *pending;
    pthread_cond_t cond;         /* wakes the monitor */
    pthread_t monitor;
    bool monitor_started;
};

struct dd_vm_entry {             /* every VM we know: made here or listed */
    char name[128];
    int host;
    bool counted;                /* holds one of its host's max_jobs */
    struct dd_vm_entry *next;
};

/* Marks h down (caller holds ctx->lock) for reason, its next connection
 * attempt at retry_at (clock_mono_ms), logging host_down once (then
 * host_still_down) and waking its monitor and every waiter. */
void dd_host_mark_down(struct dd_ctx *ctx, struct dd_host *h, const char *reason,
                       long retry_at);

/* A reference to h's connection if it is up, else NULL. */
struct dd_conn *dd_conn_get(struct dd_ctx *ctx, struct dd_host *h);
void dd_conn_put(struct dd_ctx *ctx, struct dd_conn *c);
/* The connection failed: mark it broken and its host down (reason logged). */
void dd_conn_break(struct dd_ctx *ctx, struct dd_conn *c, const char *reason);
/* Round-robin pick of an up host with a free slot; registers name there.
 * NULL when none (the caller answers VMMS_BUSY, or VMMS_UNAVAILABLE when no
 * host is up). */
struct dd_host *dd_assign(struct dd_ctx *ctx, const char *name, int *ncpu);
/* The host of a VM (registry, else vm->host); NULL if unknown, with err
 * (may be NULL) "VM NAME: not known on any worker host". */
struct dd_host *dd_vm_host(struct dd_ctx *ctx, const struct vmms_vm *vm, char *err,
                           size_t errlen);
void dd_vm_note(struct dd_ctx *ctx, const char *name, struct dd_host *h);
/* Forgets a VM (frees its slot). */
void dd_vm_forget(struct dd_ctx *ctx, const char *name);
/* Queues name for removal when h is back up. */
void dd_defer_removal(struct dd_ctx *ctx, struct dd_host *h, const char *name);
/* Whether h is up (ctx->lock taken inside). */
bool dd_host_is_up(struct dd_ctx *ctx, struct dd_host *h);

/* ---- host_monitor.c ---- */
/* Starts a monitor thread per host and waits (at most connect_timeout_s
 * + 1 s) for each host's first connection attempt. */
int dd_hosts_start(struct dd_ctx *ctx, char *err, size_t errlen);
/* Stops and joins the monitors; frees idle connections, abandons (logged)
 * the removals still deferred. */
void dd_hosts_stop(struct dd_ctx *ctx);
/* host_health.c: the get_hosts op (vmms.h). */
void dd_get_hosts(void *ctx, void (*cb)(const char *host, bool up, int jobs, void *arg),
                  void *arg);
/* host_health.c: the ping op (vmms.h): VMMS_OK while some worker host is
 * up (as its monitor last saw it), else VMMS_UNAVAILABLE. No network. */
int dd_ping(void *ctx, int timeout_ms, char *err, size_t errlen);
/* How many hosts are up (ctx->lock taken inside). */
size_t dd_hosts_up(struct dd_ctx *ctx);

/* ---- plugin.c ---- */
struct dd_ctx {
    struct dd_config cfg;
    char prefix[64];
    pthread_mutex_t lock;
    pthread_cond_t changed;      /* (with lock) a host's state changed */
    struct dd_host *hosts;
    size_t nhosts;
    size_t rr;                   /* next host to try */
    struct dd_vm_entry *vms;
    struct vmms_watches watches; /* runs destroy_vm aborts (vmms/common/watch.h) */
    atomic_int stopping;         /* shutdown: monitors end, connects give up */
};


/* ---- sftp.c ---- */
int dd_copy_in(void *ctx, struct vmms_vm *vm, const struct vmms_file *files, size_t nfiles,
               int timeout_s, char *err, size_t errlen);
int dd_copy_out(void *ctx, struct vmms_vm *vm, const char *dest_path, int timeout_s,
                char *err, size_t errlen);

/* ---- containers.c ---- */
int dd_initialize_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int dd_wait_vm(void *ctx, struct vmms_vm *vm, int timeout_s, char *err, size_t errlen);
int dd_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int dd_safe_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int dd_get_vms(void *ctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen);
/* `docker rm -f` + volume removal on h; *existed tells whether it was there. */
int dd_remove_on(struct dd_ctx *ctx, struct dd_host *h, const char *name, bool *existed,
                 char *err, size_t errlen);

/* ---- jobs.c ---- */
/* The run is a detached `docker exec -d`; its handle is a random token that
 * names two files in the VM's volume directory on its host: .tango-run-T
 * (made before the start) and .tango-exit-T (the exit status, written by
 * the run's own shell at its end). attach_job waits on the host for the
 * latter, woken by `docker events` (exec_die, or the container's end). */
int dd_start_job(void *ctx, struct vmms_vm *vm, const struct vmms_run *run, char *handle,
                 size_t handlelen, char *err, size_t errlen);
int dd_attach_job(void *ctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                  int *status, char *err, size_t errlen);
int dd_get_partial_output(void *ctx, struct vmms_vm *vm, size_t max_bytes, char **out,
                          size_t *len, char *err, size_t errlen);

/* ---- images.c ---- */
int dd_get_images(void *ctx, char ***names, size_t *count, char *err, size_t errlen);
int dd_load_image(void *ctx, const char *tar_path, const char *name, int timeout_s,
                  const struct vmms_image_limits *lim, char *err, size_t errlen);

/* ---- pull.c ---- */
/* The resolve_image op (vmms.h): reg_resolve with the configured registries. */
int dd_resolve_image(void *ctx, const char *name, char *out, size_t outlen, char *err,
                     size_t errlen);
/* When name is a registry reference h's dockerd does not hold, pulls it
 * there with the registry's credentials (within DD_PULL_TIMEOUT_S; logged
 * image_pulled or image_pull_failed). VMMS_OK also for a local name. */
int dd_pull_missing(struct dd_ctx *ctx, struct dd_host *h, const char *name, char *err,
                    size_t errlen);

/* ---- network.c ---- */
/* Makes sure the jobs' network exists on c's host as a bridge with
 * inter-container traffic off (created if missing), and with host_firewall
 * that the jobs' firewall of jobnet.h is in place there (the INPUT rule and
 * the mangle chain, by jobnet_fw_script run over SSH); sets
 * c->net_ok. A misconfigured network or a rule that cannot be installed is
 * VMMS_ERR with err saying how to fix it (logged jobs_network_refused). */
int dd_net_check(struct dd_ctx *ctx, struct dd_conn *c, char *err, size_t errlen);
/* dd_net_check on h's current connection unless it was done over it already.
 * Thread-safe (two threads may both check; the steps are idempotent). */
int dd_net_ready(struct dd_ctx *ctx, struct dd_host *h, char *err, size_t errlen);

#pragma GCC visibility pop

#endif
