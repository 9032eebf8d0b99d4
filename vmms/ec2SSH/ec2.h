/*
 * ec2.h: the ec2SSH plugin's internal interface, shared by its .c files and
 * by nothing else. ec2SSH runs each job on its own Amazon EC2 virtual
 * machine: launched from an AMI found by its image tag, reached over SSH
 * (vmms/common/ssh.h) at its private or public address, graded there by
 * the autodriver, terminated at the end. It owns:
 *   config.c     parse and validate vmms_config.ec2SSH
 *   creds.c      AWS credentials: config, then the environment, then the
 *                instance profile (IMDSv2); never logged
 *   api.c        the lowest layer: one HTTP(S) request with libcurl, a call's
 *                parameters, the XML reply parsed with libxml2, the small
 *                tree helpers the callers read replies with
 *   call.c       one EC2 Query API call: form-encoded POST, signed by
 *                libcurl (CURLOPT_AWS_SIGV4), retried with backoff while
 *                throttled (above api.c and creds.c)
 *   describe.c   what EC2 says about instances: the pure readers of
 *                DescribeInstances / RunInstances replies and of the
 *                console's host key fingerprints, the paged
 *                DescribeInstances, one instance's state and fingerprints
 *                (below instances.c and remote.c)
 *   instances.c  initialize (cap from DescribeInstances, RunInstances,
 *                wait running), destroy (TerminateInstances, verified, or
 *                kept as failed-NAME), get_vms, get_images
 *   remote.c     the SSH side: connect to a VM (host key by policy), wait
 *                for SSH, copy in / out, start / attach the run, partial
 *                output; the registry of runs destroy_vm aborts
 *   plugin.c     init / shutdown and the exported ops table
 */
#ifndef TANGO_EC2_H
#define TANGO_EC2_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <libxml/tree.h>

#include "vmms.h"
#include "common/grading.h"
#include "common/ssh.h"
#include "common/watch.h"

extern const struct vmms_ops vmms_plugin;

#pragma GCC visibility push(hidden)

#define EC2_MAX_LIST 16          /* security groups, instance types, tags */
#define EC2_FEEDBACK_MAX (64L * 1024 * 1024)
#define EC2_REPLY_MAX (8L * 1024 * 1024) /* biggest API reply read */
#define EC2_SERVICE_TAG "tango-service"  /* value: the instance prefix */
#define EC2_VM_TAG "tango-vm"            /* value: the VM's name */
#define EC2_IMAGE_NAME_TAG "tango-image-name" /* value: the image name it runs */

enum ec2_host_keys { EC2_KEYS_CONSOLE, EC2_KEYS_ACCEPT_NEW };

struct ec2_tag {
    char key[128];
    char value[256];
};

/* ---- config.c ---- */
struct ec2_config {
    char region[32];
    char endpoint[256];          /* "" = https://ec2.REGION.amazonaws.com/ */
    char imds_endpoint[256];     /* instance profile service (tests: a loopback fake) */
    char access_key_id[128];     /* "" = from the environment or the instance profile */
    char secret_access_key[128];
    char session_token[2048];
    char subnet[64];             /* subnet-... ; "" = the account's default */
    char security_groups[EC2_MAX_LIST][64];
    size_t nsecurity_groups;
    char key_pair[256];          /* the EC2 key pair's name */
    char private_key[PATH_MAX];  /* its private key on this host */
    char ssh_user[64];
    int ssh_port;
    enum ec2_host_keys host_keys;
    bool use_private_ip;
    int max_vms;
    char allowed_types[EC2_MAX_LIST][32];
    size_t nallowed_types;
    char default_type[32];
    bool spot;
    bool keep_failed_vms;
    bool instance_metadata;      /* VMs get IMDS (tokens only, hop limit 1); off by default */
    struct ec2_tag tags[EC2_MAX_LIST];
    size_t ntags;
    char image_tag[128];         /* AMIs carry tag image_tag=NAME */
    int initialize_timeout_s;    /* RunInstances until running */
    int ssh_timeout_s;           /* connect + handshake of one SSH attempt */
    int command_timeout_s;       /* one SSH command or transfer */
    int api_timeout_s;           /* one API request */
    int api_retries;             /* throttled requests retried this many times */
    int api_backoff_ms;          /* first backoff; doubles */
    int poll_ms;                 /* DescribeInstances while waiting */
    int run_grace_s;
};

int ec2_config_parse(const json_t *cfg, struct ec2_config *out, char *err, size_t errlen);

/* ---- creds.c ---- */
struct ec2_creds {
    char key_id[128];
    char secret[128];
    char token[2048];            /* "" = none */
    long expires_ms;             /* monotonic; 0 = never (config, environment) */
    char source[24];             /* "config", "environment", "instance-profile" */
};

/* Fills *out from config, the environment or IMDSv2, in that order
 * (instance-profile credentials are cached until 5 minutes before they
 * expire). VMMS_OK or VMMS_ERR (none found) with err set. */
struct ec2_ctx;
int ec2_creds_get(struct ec2_ctx *ctx, struct ec2_creds *out, char *err, size_t errlen);
/* Pure parsers of what IMDSv2 answers (no I/O; fuzzed by
 * tests/fuzz/fuzz_ec2.c). ec2_imds_role: the role name (the first line of
 * doc) into role (129 bytes); false unless it is 1..128 characters of
 * [A-Za-z0-9+=,.@_-]. ec2_imds_creds: the role's credentials document (JSON:
 * AccessKeyId, SecretAccessKey, Token, Expiration "YYYY-MM-DDTHH:MM:SSZ")
 * into *out (source "instance-profile"; expires_ms on the monotonic clock,
 * one hour ahead when Expiration is absent or past, at most 12 hours ahead);
 * false unless the id and secret are there and they (and the token, if
 * any) fit and are printable ASCII with no space (they go into HTTP
 * headers). */
bool ec2_imds_role(const char *doc, char *role, size_t rolesz);
bool ec2_imds_creds(const char *doc, size_t len, struct ec2_creds *out);

/* ---- api.c ---- */
struct curl_slist;
/* One HTTP request (GET, PUT or POST with body) within timeout_ms, no
 * proxy, no redirects; signed with SigV4 when sigv4 ("aws:amz:R:S") is
 * given (user / password: the key id and secret). *out (malloc'd,
 * NUL-ended, at most EC2_REPLY_MAX bytes) whatever the HTTP status, which
 * goes in *http. VMMS_OK, VMMS_TIMEOUT or VMMS_ERR (no answer). */
int ec2_http(const char *method, const char *url, const struct curl_slist *headers,
             const char *body, const char *sigv4, const char *user, const char *password,
             long timeout_ms, char **out, size_t *outlen, long *http, char *err, size_t errlen);
/* One API parameter (Name=Value, both form-encoded by the call). */
struct ec2_param {
    char name[96];
    char value[512];
};

struct ec2_params {
    struct ec2_param *v;
    size_t n, cap;
    bool oom;
};

void ec2_param(struct ec2_params *p, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ec2_params_free(struct ec2_params *p);

/* A parsed reply, or the API's error. */
struct ec2_reply {
    xmlDocPtr doc;               /* NULL unless VMMS_OK */
    int http;                    /* HTTP status (0: no answer) */
    char code[96];               /* the API's error code, "" when none */
};

/* Parses the reply body (len bytes, not necessarily NUL-ended) that came
 * with HTTP status http to action; pure: no I/O, no network (XML_PARSE_NONET),
 * at most EC2_REPLY_MAX bytes, and a body with a DOCTYPE is refused (so no
 * entity, internal or external, is ever expanded). VMMS_OK with r->doc (the
 * caller frees it with ec2_reply_free) for a 2xx XML reply that is no
 * <Error>; else VMMS_ERR with r->doc NULL, r->code the API's error code (""
 * when none; "Unavailable" for a 503 without XML) and err "EC2 ACTION: CODE:
 * message (HTTP N)". Used by ec2_call; fuzzed by tests/fuzz/fuzz_ec2.c. */
int ec2_parse_reply(const char *action, const char *body, size_t len, long http,
                    struct ec2_reply *r, char *err, size_t errlen);
void ec2_reply_free(struct ec2_reply *r);
/* Tree helpers (by local name, namespaces ignored). */
xmlNodePtr ec2_child(xmlNodePtr n, const char *name);
/* Text of n's child `name` into buf ("" when absent); returns buf. */
const char *ec2_text(xmlNodePtr n, const char *name, char *buf, size_t bufsz);
/* Calls fn for each <item> under n's child `list`. */
void ec2_items(xmlNodePtr n, const char *list, void (*fn)(xmlNodePtr item, void *arg),
               void *arg);
/* The value of tag `key` in an item's tagSet ("" when absent). */
const char *ec2_tag_value(xmlNodePtr item, const char *key, char *buf, size_t bufsz);

/* ---- call.c ---- */
/* Calls Action with params (Version added). Throttling (RequestLimitExceeded,
 * Throttling, HTTP 503) is retried api_retries times with doubling backoff
 * from api_backoff_ms. VMMS_OK with r->doc, or VMMS_ERR / VMMS_TIMEOUT with
 * err ("EC2 Action: CODE: message") and r->code. */
int ec2_call(struct ec2_ctx *ctx, const char *action, const struct ec2_params *params,
             struct ec2_reply *r, char *err, size_t errlen);

/* ---- describe.c ---- */
/* What ec2SSH reads of one instance item of a DescribeInstances reply, each
 * field validated where it enters ("" when absent or not in form). */
struct ec2_instance {
    char id[40];                 /* "i-" then 8..32 lowercase hex */
    char state[16];              /* pending, running, shutting-down, terminated,
                                  * stopping or stopped */
    char private_ip[48];         /* an IPv4 or IPv6 literal (inet_pton) */
    char public_ip[48];
    char vm_name[128];           /* tag EC2_VM_TAG: a valid VM name (vmms_name_ok) */
    char image[256];             /* tag EC2_IMAGE_NAME_TAG: a valid image name */
};
/* Pure parsers of parsed replies (no I/O; fuzzed by tests/fuzz/fuzz_ec2.c): */
/* Whether id is prefix then 8..32 lowercase hex ("i-" instances, "ami-"
 * images). */
bool ec2_id_ok(const char *id, const char *prefix);
/* The value of tag key in an item's tagSet into out if it is a valid name
 * (vmms_name_ok) that fits in outsz (read in full first: a longer one cut
 * to fit is no name of ours); else out "" and false. */
bool ec2_tag_name(xmlNodePtr item, const char *key, char *out, size_t outsz);
/* Calls fn for each instance of a DescribeInstances reply doc
 * (reservationSet/item/instancesSet/item) in order; next (nextsz bytes) gets
 * its nextToken, "" on the last page. */
void ec2_instances_read(xmlDocPtr doc, void (*fn)(const struct ec2_instance *in, void *arg),
                        void *arg, char *next, size_t nextsz);
/* The instance id of a RunInstances reply doc (its first instancesSet item)
 * into id (idsz bytes, at least 40); false (id "") unless it is "i-" then
 * 8..32 lowercase hex. */
bool ec2_run_instance_id(xmlDocPtr doc, char *id, size_t idsz);
/* The SHA256 host key fingerprints in a GetConsoleOutput text b64 (len
 * bytes: base64, line breaks and other characters outside the alphabet
 * skipped) between cloud-init's "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
 * and "-----END ...-----" lines, into buf as space separated words
 * "SHA256:" + 43 base64 characters (what ssh-keygen -l prints); the ones that
 * do not fit in bufsz are dropped; "" when there are none. */
void ec2_console_read(const char *b64, size_t len, char *buf, size_t bufsz);
/* Asking EC2 (through ec2_call): */
/* Runs DescribeInstances with base's params, every page (at most 100),
 * calling fn per instance in order. VMMS_OK, or the call's status with
 * err. */
int ec2_describe(struct ec2_ctx *ctx, const struct ec2_params *base,
                 void (*fn)(const struct ec2_instance *, void *), void *arg, char *err,
                 size_t errlen);
/* The instance's state name ("running", ...; "" = no such instance) and
 * address (private or public by config) by DescribeInstances. */
int ec2_instance_state(struct ec2_ctx *ctx, const char *id_hex, char *state, size_t statesz,
                       char *addr, size_t addrsz, char *err, size_t errlen);
/* The SHA256 host key fingerprints the instance printed on its console
 * (cloud-init's "BEGIN SSH HOST KEY FINGERPRINTS" block) into buf, space
 * separated; "" when it printed none yet. */
int ec2_console_fingerprints(struct ec2_ctx *ctx, const char *id_hex, char *buf, size_t bufsz,
                             char *err, size_t errlen);

/* ---- instances.c ---- */
/* A pure reader (no I/O; fuzzed by tests/fuzz/fuzz_ec2.c): */
/* The available images of a DescribeImages reply doc whose tag `tag` holds a
 * valid image name: with want (non-NULL), the id ("ami-" then 8..32 hex) of
 * one tagged want into ami ("" when none); else their distinct names
 * appended to the malloc'd *names / *count (free with vmms_free_names, also
 * on failure). VMMS_OK, or VMMS_ERR when out of memory. */
int ec2_images_read(xmlDocPtr doc, const char *tag, const char *want, char *ami, size_t amisz,
                    char ***names, size_t *count);
/* Per-VM state hung on vm->priv. */
struct ec2_vm {
    char fingerprints[512];      /* host key(s) to accept ("SHA256:..." words) */
    bool failed;                 /* an operation on it failed (keep_failed_vms) */
};

int ec2_initialize_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int ec2_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int ec2_safe_destroy_vm(void *ctx, struct vmms_vm *vm, char *err, size_t errlen);
int ec2_get_vms(void *ctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen);
int ec2_get_images(void *ctx, char ***names, size_t *count, char *err, size_t errlen);
/* vm's struct ec2_vm (vm->priv), allocated zeroed on first use; NULL when
 * out of memory. */
struct ec2_vm *ec2_vm_priv(struct vmms_vm *vm);

/* ---- remote.c ---- */
int ec2_wait_vm(void *ctx, struct vmms_vm *vm, int timeout_s, char *err, size_t errlen);
int ec2_copy_in(void *ctx, struct vmms_vm *vm, const struct vmms_file *files, size_t nfiles,
                int timeout_s, char *err, size_t errlen);
int ec2_copy_out(void *ctx, struct vmms_vm *vm, const char *dest_path, int timeout_s,
                 char *err, size_t errlen);
/* The run is detached on the VM (setsid, outliving the SSH session and the
 * consumer); its handle is a random token naming /home/mount/.tango-run-T
 * (made first; holds the run's pid) and /home/mount/.tango-exit-T (its exit
 * status, written by the grading command at its end). */
int ec2_start_job(void *ctx, struct vmms_vm *vm, const struct vmms_run *run, char *handle,
                  size_t handlelen, char *err, size_t errlen);
int ec2_attach_job(void *ctx, struct vmms_vm *vm, const char *handle, long long wait_ms,
                   int *status, char *err, size_t errlen);
int ec2_get_partial_output(void *ctx, struct vmms_vm *vm, size_t max_bytes, char **out,
                           size_t *len, char *err, size_t errlen);
/* destroy_vm: makes every wait on vm's runs return VMMS_ERR promptly. */
void ec2_abort_runs(struct ec2_ctx *ctx, const char *name);

/* ---- plugin.c ---- */
struct ec2_ctx {
    struct ec2_config cfg;
    char prefix[64];
    pthread_mutex_t lock;        /* the credentials cache */
    pthread_mutex_t launch;      /* cap count + RunInstances, one at a time here */
    struct ec2_creds creds;      /* cached instance-profile credentials */
    struct vmms_watches watches; /* runs destroy_vm aborts */
    atomic_int stopping;
};

#pragma GCC visibility pop

#endif
