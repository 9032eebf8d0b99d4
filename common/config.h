/*
 * config.h: the service configuration shared by producer and consumer. One
 * JSON file (-c FILE; every key optional, documented in deploy/tango.json and
 * docs/config-reference.md) plus an environment override TANGO_<KEY> for every key (e.g.
 * TANGO_PORT, TANGO_REDIS_URL, TANGO_COURSELABS, TANGO_KEYS as a comma list,
 * TANGO_PREFIX). Autolab's deployment variables (RESTFUL_KEY, ...) map onto
 * keys the file and TANGO_ variables leave unset (config_env.h). Unknown keys
 * and bad values are startup errors naming the key.
 */
#ifndef TANGO_CONFIG_H
#define TANGO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "redis_url.h" /* redis_url_parse: config key redis_url */

struct tango_config {
    /* HTTP (producer) */
    char *bind;
    int port;
    int http_timeout_s;
    int http_head_timeout_s;  /* deadline for a whole request head */
    int http_min_body_bps;    /* slowest body accepted (bytes/s); 0 = no floor */
    int max_connections;
    int max_connections_per_ip;
    char **trusted_proxies;   /* load balancers whose X-Forwarded-For is believed */
    size_t ntrusted_proxies;
    int max_header_kb;
    int max_request_kb;
    int max_upload_mb;
    int build_timeout_s;
    char *build_approval;      /* /build_image: "none" or "required" (tangoctl builds approve) */
    int build_image_timeout_s; /* one Dockerfile build, whole */
    int build_memory_mb;       /* memory of a build's RUN steps */
    int build_log_max_kb;      /* build log kept per build */
    int build_context_max_kb;  /* Dockerfile or context tar of one /build_image */
    int builds_at_once;        /* Dockerfile builds per consumer (0: this consumer builds none) */
    char *build_network;       /* RUN steps' network: "none" or "bridge" (Docker's default) */
    char *build_docker_socket; /* the dockerd Dockerfile builds run on */
    char *build_push_to;       /* build_push.h: "host[:port]/prefix" builds are pushed to, or "" */
    int image_max_unpacked_mb; /* what a /build image may unpack to (all layers) */
    int image_max_entries;     /* files of a /build image (all layers) */
    /* shared state */
    char *redis_url;
    int redis_timeout_ms;
    int redis_min_replicas;  /* WAIT for this many replicas after each write (0: no WAIT) */
    int redis_wait_ms;       /* ... for at most this long, else the write fails */
    bool redis_allow_eviction; /* run on a Redis whose maxmemory-policy evicts keys (store.h) */
    char *prefix;
    char *courselabs;
    char **keys;
    size_t nkeys;
    char *secret_file;       /* per-installation secret; "" = <courselabs>/.tango-secret */
    char **images;
    size_t nimages;
    char *log_level;
    /* jobs */
    int default_timeout_s;
    int max_timeout_s;
    int default_max_kb;
    int max_output_kb;
    int max_cores;
    int max_memory_mb;
    int jobs_list_max;
    int jobs_list_max_kb;    /* /jobs answer size; more jobs are cut, with a marker */
    int max_job_record_kb;   /* a job's record at addJob (fields, files, trace) */
    int dead_jobs_keep;
    int max_pool_size;
    int auto_pool_max;
    int auto_pool_idle_s;
    /* consumer */
    char *vmms;
    char *vmms_dir;
    json_t *vmms_config;
    json_t *registries;      /* registries.h: {host[:port]: {credentials, ca_file, ...}} */
    char *instance_prefix;
    int max_jobs;
    int max_jobs_per_image;
    int job_retries;
    int waitvm_timeout_s;
    int copyin_timeout_s;
    int copyout_timeout_s;
    int lease_ms;
    int drain_timeout_s;
    int default_cores;
    int default_memory_mb;
    int pids_limit;
    int disk_limit_mb;       /* writable storage per job (default) */
    int max_disk_limit_mb;   /* largest per-job override */
    int max_cpu_limit_s;     /* largest per-job cpu_limit_s (CPU seconds) */
    int sweep_interval_ms;   /* leader's sweep of lapsed leases and stale files */
    int min_free_mb;         /* free-space floor of courselabs and the VMMS data dir (0: off) */
    bool default_disable_network;
    int autodriver_nproc;
    int autodriver_fsize_mb;
    int callback_attempts;
    int callback_backoff_ms;
    int callback_timeout_s;  /* one request, connect to the last byte of the answer */
    int callback_connect_timeout_ms; /* the TCP/TLS connect alone (capped by the above) */
    int callback_max_in_flight;      /* callbacks sent at once, all hosts */
    int callback_max_per_host;       /* callbacks sent at once to one host:port */
    int callback_breaker_failures;   /* failed attempts in a row that open a host's breaker */
    int callback_breaker_open_s;     /* how long an open breaker holds a host's callbacks */
    char **callback_allow;   /* hosts / networks callbacks may reach */
    size_t ncallback_allow;
    int partial_output_interval_ms;
    int partial_output_kb;
    char *metrics_bind;      /* consumer /metrics listener address */
    int metrics_port;        /* its port; 0 = no listener */
    /* fair share and priorities (jobstate.h, docs/design.md "Fair share and priorities") */
    char *fair_share;             /* course, lab, key or off */
    json_t *priority_rules;       /* [{"lab"|"key": .., "class": ..}] */
    json_t *course_weights;       /* {group: weight >= 1} */
    int max_wait_s;               /* a queued job waiting longer moves up a class; 0 = never */
    int max_running_per_course;   /* 0 = no cap */
    int max_queued_per_course;    /* 0 = no limit (default 5000) */
    /* not keys: which of Autolab's variables config_env.c used / the config
     * overrode ("VAR=key ..."), logged at start; NULL when none */
    char *autolab_env_used;
    char *autolab_env_ignored;
};

/* Fills *cfg with defaults, then the file (path may be NULL), then the
 * environment (envp-style array; NULL = environ). On error returns -1 with a
 * message naming the key in err. */
int config_load(struct tango_config *cfg, const char *path, char *const *envp,
                char *err, size_t errlen);
void config_free(struct tango_config *cfg);

/* Sets the top-level key from its text form (as a TANGO_<KEY> variable
 * gives it), with the key's checks; for config_env.c. 0, or -1 with err
 * naming the key (never the value). */
int config_set_text(struct tango_config *cfg, const char *key, const char *text, char *err,
                    size_t errlen);

/* A service's start-up: parses "-c FILE" / "-h" from argv, loads the config
 * (file + environment), starts the logger as component and makes sure the
 * courselabs directory exists. Returns -1 when the service should run, else
 * the exit code (0 after -h, 2 on a usage or config error, reported on
 * stderr as "tango-<component>: ..."). */
int config_from_cli(int argc, char **argv, const char *component, struct tango_config *cfg);

#endif
