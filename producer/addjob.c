/*
 * addjob.c: addJob body validation (see addjob.h).
 */
#include "addjob.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#include "fairshare.h"
#include "jobstate.h"
#include "labs.h"
#include "build_push.h"
#include "image_ref.h"
#include "names.h"
#include "registries.h"
#include "text.h"

#define MAX_FILES 256
#define MAX_URL 2048

struct problems {
    char *buf;
    size_t len, cap;
    int count;
};

static void problem(struct problems *p, const char *fmt, ...)
{
    if (p->count++ && p->len + 2 < p->cap) {
        memcpy(p->buf + p->len, "; ", 2);
        p->len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        p->len = p->len + (size_t)n < p->cap ? p->len + (size_t)n : p->cap - 1;
}

/* Optional integer field (JSON integer, or a string of digits as some
 * clients send); -1 if absent. Reports a problem if present but bad. */
static long long opt_int(struct problems *p, json_t *o, const char *name, long long lo,
                         long long hi)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return -1;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 1e15) {
        x = (long long)json_real_value(v);
    } else if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 16 &&
               strspn(json_string_value(v), "0123456789") == json_string_length(v)) {
        x = atoll(json_string_value(v));
    } else {
        problem(p, "%s: must be an integer", name);
        return -1;
    }
    if (x < lo || x > hi) {
        problem(p, "%s: must be between %lld and %lld", name, lo, hi);
        return -1;
    }
    return x;
}

static bool text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return false;
    return true;
}

static bool url_ok(const char *s)
{
    if (!text_ok(s, MAX_URL) || strchr(s, ' '))
        return false;
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static void parse_files(struct problems *p, json_t *files, const struct tango_config *cfg,
                        const char *lab_dir, struct job *job)
{
    if (!json_is_array(files) || json_array_size(files) == 0) {
        problem(p, "files: required, a non-empty list of {localFile, destFile}");
        return;
    }
    if (json_array_size(files) > MAX_FILES) {
        problem(p, "files: at most %d files", MAX_FILES);
        return;
    }
    int makefiles = 0;
    job->files = calloc(json_array_size(files), sizeof *job->files);
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *local = json_string_value(json_object_get(f, "localFile"));
        const char *dest = json_string_value(json_object_get(f, "destFile"));
        if (!local || !dest) {
            problem(p, "files[%zu]: needs string localFile and destFile", i);
            continue;
        }
        if (!name_is_safe_str(local) || !name_is_safe_str(dest)) {
            problem(p, "files[%zu]: localFile and destFile must be plain file names", i);
            continue;
        }
        if (!lab_has_file(cfg->courselabs, lab_dir, local)) {
            problem(p, "files[%zu]: localFile \"%.100s\" is not in the courselab (upload it first)",
                    i, local);
            continue;
        }
        /* Two files may share a destFile (tango-cli sends every "*Makefile*" as
         * "Makefile"): they are copied in the order listed, the last one wins. */
        makefiles += strcmp(dest, "Makefile") == 0;
        job->files[job->nfiles].local_file = strdup(local);
        job->files[job->nfiles].dest_file = strdup(dest);
        job->nfiles++;
    }
    if (makefiles == 0 && job->nfiles == json_array_size(files))
        problem(p, "files: a destFile must be \"Makefile\"");
}

/* Whether a reference under build_push_to (parsed ref, build repository
 * local) is one of this key's pushed builds: with a digest, a digest its
 * own builds pushed (the digest is what is pulled, whatever the tag says);
 * by tag only, a repository it owns. */
static bool owns_pushed(const struct addjob_rights *rights, const struct image_ref *ref,
                        const char *local)
{
    if (ref->digest[0])
        return rights->digests && json_lists_string(rights->digests, ref->digest);
    return rights->repos && json_lists_string(rights->repos, local);
}

/* The image: a registry reference from a listed registry (under
 * build_push_to: only one of this key's builds), or a local name this key
 * may run. */
static void parse_image(struct problems *p, const char *image, const struct tango_config *cfg,
                        const struct addjob_rights *rights, struct job *job)
{
    struct image_ref ref;
    char local[IMAGE_REF_MAX + 1];
    if (!image)
        problem(p, "image: required");
    else if (image_ref_parse(image, &ref) != 0)
        problem(p, "image: \"%.100s\" is not an image name nor a registry reference "
                   "(host[:port]/path[:tag] or ...@sha256:<64 hex>)", image);
    else if (ref.remote && !registries_find(cfg->registries, ref.registry))
        problem(p, "image: registry \"%s\" is not one this service may pull from (config "
                   "key \"registries\")", ref.registry);
    else if (build_push_under(cfg->build_push_to, &ref, local, sizeof local) &&
             !owns_pushed(rights, &ref, local))
        problem(p, "image: \"%.100s\" is a pushed build this key does not own (a reference "
                   "under build_push_to belongs to the key that built it; with a digest, only "
                   "a digest that key's builds pushed)", image);
    else if (!ref.remote && !json_lists_string(rights->images, image))
        problem(p, "image: \"%.100s\" is not an image this service can run for this key "
                   "(a configured image, or one this key built with /build)", image);
    else
        job->image = strdup(image);
}

/* image, jobName and output_file: required; the image one this key may run. */
static void parse_names(struct problems *p, json_t *o, const struct tango_config *cfg,
                        const struct addjob_rights *rights, struct job *job)
{
    parse_image(p, json_string_value(json_object_get(o, "image")), cfg, rights, job);

    const char *name = json_string_value(json_object_get(o, "jobName"));
    if (!name || !text_ok(name, 255))
        problem(p, "jobName: required, 1-255 characters without control characters");
    else
        job->name = strdup(name);

    const char *output = json_string_value(json_object_get(o, "output_file"));
    if (!output || !name_is_safe_str(output))
        problem(p, "output_file: required, a plain file name");
    else
        job->output_file = strdup(output);
}

/* The optional limits, each within cfg's maximum; absent = cfg's default
 * (timeout, max_kb) or none (the others). */
static void parse_limits(struct problems *p, json_t *o, const struct tango_config *cfg,
                         struct job *job)
{
    long long timeout = opt_int(p, o, "timeout", 0, cfg->max_timeout_s);
    job->timeout_s = timeout > 0 ? (int)timeout : cfg->default_timeout_s;
    /* max_kb 0 = default: tango-cli sends 0 unless told otherwise */
    long long max_kb = opt_int(p, o, "max_kb", 0, cfg->max_output_kb);
    job->max_output_bytes = (max_kb > 0 ? max_kb : cfg->default_max_kb) * 1024L;
    long long cores = opt_int(p, o, "cores", 1, cfg->max_cores);
    job->cores = cores > 0 ? (int)cores : 0;
    long long memory = opt_int(p, o, "memory", 16, cfg->max_memory_mb);
    job->memory_mb = memory > 0 ? (int)memory : 0;
    long long disk = opt_int(p, o, "disk", 16, cfg->max_disk_limit_mb);
    job->disk_mb = disk > 0 ? (int)disk : 0;
    /* CPU seconds of the whole run (docs/backends/localOCI.md, "CPU-time
     * limit"); absent or 0 = none */
    long long cpu = opt_int(p, o, "cpu_limit_s", 0, cfg->max_cpu_limit_s);
    job->cpu_limit_s = cpu > 0 ? (int)cpu : 0;
}

/* A VM type (ec2SSH): a short name, and one of the config's
 * vmms_config.ec2SSH.allowed_instance_types when this producer's config
 * has that list (the usual case: one config file for every service), so
 * the client hears of a refused type at once; the back end checks again
 * (a job that reaches it anyway fails with the reason in its trace). */
static void parse_instance_type(struct problems *p, json_t *o, const struct tango_config *cfg,
                                struct job *job)
{
    json_t *itype = json_object_get(o, "instance_type");
    if (!itype || json_is_null(itype))
        return;
    const char *t = json_string_value(itype);
    size_t tl = t ? strlen(t) : 0;
    const json_t *allowed = json_object_get(json_object_get(cfg->vmms_config, "ec2SSH"),
                                            "allowed_instance_types");
    if (tl == 0 || tl > 31 || strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789.") != tl)
        problem(p, "instance_type: 1-31 of a-z, 0-9 and '.', e.g. \"t3.micro\"");
    else if (json_is_array(allowed) && !json_lists_string(allowed, t))
        problem(p, "instance_type: \"%s\" is not allowed on this service (see "
                   "vmms_config.ec2SSH.allowed_instance_types)", t);
    else
        job->instance_type = strdup(t);
}

/* priority (a class name) and disable_network (a boolean, else cfg's
 * default). */
static void parse_scheduling(struct problems *p, json_t *o, const struct tango_config *cfg,
                             struct job *job)
{
    json_t *prio = json_object_get(o, "priority");
    if (prio && !json_is_null(prio)) {
        if (!json_is_string(prio) || jobstate_class_parse(json_string_value(prio)) < 0)
            problem(p, "priority: must be \"high\", \"normal\" or \"low\"");
        else
            job->priority = strdup(json_string_value(prio));
    }

    json_t *net = json_object_get(o, "disable_network");
    if (net && !json_is_null(net) && !json_is_boolean(net))
        problem(p, "disable_network: must be true or false");
    job->disable_network = json_is_boolean(net) ? json_is_true(net) : cfg->default_disable_network;
}

/* callback_url (or Tango's notifyURL): an http(s) URL callbacks may go to. */
static void parse_callback(struct problems *p, json_t *o,
                           const struct callback_policy *callbacks, struct job *job)
{
    const char *keys[] = {"callback_url", "notifyURL"};
    for (int i = 0; i < 2 && !job->callback_url; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
            continue;
        char why[300];
        if (!json_is_string(v) || !url_ok(json_string_value(v)))
            problem(p, "%s: must be an http:// or https:// URL", keys[i]);
        else if (callback_check_url(callbacks, json_string_value(v), why, sizeof why))
            problem(p, "%s: callbacks may not go there: %s", keys[i], why);
        else
            job->callback_url = strdup(json_string_value(v));
    }
}

struct job *addjob_parse(const char *body, size_t len, const struct tango_config *cfg,
                         const struct addjob_rights *rights,
                         const struct callback_policy *callbacks,
                         const char *courselab, const char *lab_dir, char *err, size_t errlen)
{
    struct problems p = {err, 0, errlen, 0};
    err[0] = '\0';
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "Malformed JSON body: %s", o ? "expected an object" : jerr.text);
        json_decref(o);
        return NULL;
    }
    struct job *job = job_new();
    job->courselab = strdup(courselab);
    job->lab_dir = strdup(lab_dir);
    parse_names(&p, o, cfg, rights, job);
    parse_files(&p, json_object_get(o, "files"), cfg, lab_dir, job);
    parse_limits(&p, o, cfg, job);
    parse_instance_type(&p, o, cfg, job);
    parse_scheduling(&p, o, cfg, job);
    parse_callback(&p, o, callbacks, job);
    json_decref(o);
    if (p.count) {
        job_free(job);
        return NULL;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    job->created_at = (double)tv.tv_sec + tv.tv_usec / 1e6;
    return job;
}

void addjob_schedule(struct job *job, const struct tango_config *cfg)
{
    /* the scheduler's own rule (a parsed job has no share group yet) */
    char cls[JOB_CLASS_NAME_MAX], group[JOB_GROUP_MAX];
    fairshare_classify(cfg, job, cls, group);
    free(job->priority);
    job->priority = strdup(cls);
    free(job->share_group);
    job->share_group = strdup(group);
    job->queue_cap = cfg->max_queued_per_course;
}

bool addjob_fits(const struct job *job, const struct tango_config *cfg, char *err,
                 size_t errlen)
{
    char *text = job_dumps(job);
    size_t size = text ? strlen(text) : SIZE_MAX;
    free(text);
    size_t max = (size_t)cfg->max_job_record_kb * 1024;
    if (size <= max)
        return true;
    snprintf(err, errlen, "Job record too large: %zu bytes, over max_job_record_kb (%d KB); "
             "send fewer files or shorter names", size, cfg->max_job_record_kb);
    return false;
}
