/*
 * job.h: the job record and its JSON form. The JSON form is what lives in
 * Redis and what /jobs shows: Tango's job object (docs/api.md: id, name,
 * assigned, retries, timeout, outputFile, notifyURL, maxOutputFileSize,
 * trace, vm, input) plus our additive fields (state, courselab, labDir,
 * createdAt, outcome, ...). Round-trips without loss.
 */
#ifndef TANGO_JOB_H
#define TANGO_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "jobstate.h" /* enum job_state, job_state_name, job_state_parse */

struct job_file {
    char *local_file; /* name in the lab directory */
    char *dest_file;  /* name inside the container's /home/mount */
};

struct job {
    int64_t id;
    char *name;          /* jobName */
    char *courselab;     /* COURSELAB as the client named it */
    char *lab_dir;       /* directory under courselabs/ (key id + lab) */
    char *image;
    char *output_file;   /* name under <lab_dir>/output/ */
    char *callback_url;  /* "notifyURL" in the JSON form; may be NULL */
    int timeout_s;
    long max_output_bytes; /* maxOutputFileSize */
    bool disable_network;
    int cores;           /* 0 = default */
    int memory_mb;       /* 0 = default */
    int disk_mb;         /* writable storage limit; 0 = default (vm.disk) */
    int cpu_limit_s;     /* "cpuLimit": CPU seconds (user + system) of the whole run;
                          * 0 = none (back ends that measure it: localOCI) */
    char *instance_type; /* "instance_type": a VM type for back ends with types (ec2SSH);
                          * NULL = the back end's default; [a-z0-9.]{1,31} */
    char *key_id;        /* "keyId": which client key owns the job (never the key itself) */
    char *priority;      /* "priority": high, normal or low (NULL: normal) */
    char *share_group;   /* "shareGroup": its fair-share group (jobstate.h) */
    int queue_cap;       /* in memory only: max_queued_per_course at addJob (0: none) */
    struct job_file *files;
    size_t nfiles;
    /* progress, written by the consumer */
    enum job_state state;
    bool assigned;
    int retries;
    json_t *trace;       /* array of "<ctime>|<event>" strings */
    char *vm_name;
    char *vm_id;
    char *vm_host;
    char *outcome;       /* final outcome line, once done */
    /* what a successor needs to find a running job again ("run" object) */
    char *run_handle;    /* the plugin's handle of the started run (e.g. exec id) */
    long long run_deadline_ms; /* Redis time (ms) after which the run is over */
    char *output_temp;   /* "outputTemp": finishing: the accepted output, not yet renamed */
    long long fence;     /* in memory only: fencing token of this process's lease */
    double created_at;   /* unix seconds */
};

/* Allocates a zeroed job with an empty trace. */
struct job *job_new(void);
void job_free(struct job *job);

/* The local time now as Tango writes it ("Tue Dec  1 21:12:35 2026") into
 * buf (len bytes): the trace's and the output file's timestamps. */
void job_ctime(char *buf, size_t len);

/* The trace's bounds: a record's trace grows while its job runs (retries,
 * re-attachments), so it keeps only its last JOB_TRACE_MAX_LINES lines and
 * JOB_TRACE_MAX_BYTES bytes; older lines give way to one note at its head,
 * "<ctime>|Trace cut: N earlier entries dropped (...)", ctime being that of
 * the oldest line it replaced. An event longer than JOB_TRACE_EVENT_MAX
 * bytes is cut, ending in " [cut]". */
#define JOB_TRACE_MAX_LINES 64
#define JOB_TRACE_MAX_BYTES 8192
#define JOB_TRACE_EVENT_MAX 1024

/* Appends "<ctime>|<event>" to the trace (ctime as Tango writes it; event
 * made valid UTF-8), then keeps the trace within its bounds (above). */
void job_trace(struct job *job, const char *event);

/* JSON form (new reference). */
json_t *job_to_json(const struct job *job);
/* Parses the JSON form; NULL with err filled on a malformed record. */
struct job *job_from_json(const json_t *obj, char *err, size_t errlen);
/* Serialized JSON text (malloc'd) and back. */
char *job_dumps(const struct job *job);
struct job *job_loads(const char *text, char *err, size_t errlen);

#endif
