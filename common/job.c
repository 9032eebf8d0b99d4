/*
 * job.c: the job record's life in memory and its JSON form (see job.h).
 */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text.h"

struct job *job_new(void)
{
    struct job *job = calloc(1, sizeof *job);
    job->trace = json_array();
    return job;
}

void job_free(struct job *job)
{
    if (!job)
        return;
    free(job->name);
    free(job->courselab);
    free(job->lab_dir);
    free(job->image);
    free(job->output_file);
    free(job->callback_url);
    for (size_t i = 0; i < job->nfiles; i++) {
        free(job->files[i].local_file);
        free(job->files[i].dest_file);
    }
    free(job->files);
    json_decref(job->trace);
    free(job->vm_name);
    free(job->instance_type);
    free(job->vm_id);
    free(job->vm_host);
    free(job->outcome);
    free(job->key_id);
    free(job->priority);
    free(job->share_group);
    free(job->run_handle);
    free(job->output_temp);
    free(job);
}

void job_ctime(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(buf, len, "%a %b %e %H:%M:%S %Y", &tm);
}

#define TRACE_CUT "|Trace cut: "
#define TRACE_CUT_MAX 1000000000L /* a larger count is no note of ours */
#define TRACE_NOTE_MAX 160 /* bytes a cut note takes at most (room kept for it) */

/* Bytes of the trace's lines from index first on. */
static size_t trace_bytes(const json_t *trace, size_t first)
{
    size_t n = 0;
    for (size_t i = first; i < json_array_size(trace); i++)
        n += json_string_length(json_array_get(trace, i));
    return n;
}

/* How many lines the note at the trace's head says were dropped; -1 when
 * its head is no note. */
static long cut_count(const json_t *trace)
{
    const char *head = json_string_value(json_array_get(trace, 0));
    const char *note = head ? strstr(head, TRACE_CUT) : NULL;
    if (!note || memchr(head, '|', (size_t)(note - head)))
        return -1;
    char *end;
    long n = strtol(note + strlen(TRACE_CUT), &end, 10);
    if (end == note + strlen(TRACE_CUT) || n < 0 || n > TRACE_CUT_MAX)
        return -1;
    return n;
}

/* The "<ctime>" part of the trace's head line into when (len bytes). */
static void head_time(const json_t *trace, char *when, size_t len)
{
    const char *head = json_string_value(json_array_get(trace, 0));
    const char *bar = head ? strchr(head, '|') : NULL;
    if (bar && (size_t)(bar - head) < len)
        snprintf(when, len, "%.*s", (int)(bar - head), head);
    else
        job_ctime(when, len);
}

/* Drops the oldest lines until the trace is within its bounds (job.h),
 * counting them in the note at its head. */
static void trace_bound(json_t *trace)
{
    long dropped = cut_count(trace);
    size_t first = dropped < 0 ? 0 : 1; /* the oldest event line */
    size_t lines = json_array_size(trace) - first, bytes = trace_bytes(trace, first);
    if (dropped < 0 && lines <= JOB_TRACE_MAX_LINES && bytes <= JOB_TRACE_MAX_BYTES)
        return;
    char when[64];
    head_time(trace, when, sizeof when);
    long cut = 0;
    while (lines > 1 && (lines + 1 > JOB_TRACE_MAX_LINES ||
                         bytes + TRACE_NOTE_MAX > JOB_TRACE_MAX_BYTES)) {
        bytes -= json_string_length(json_array_get(trace, first));
        json_array_remove(trace, first);
        lines--;
        cut++;
    }
    if (cut == 0)
        return; /* the note there already covers it */
    char note[TRACE_NOTE_MAX + 64];
    snprintf(note, sizeof note, "%s" TRACE_CUT "%ld earlier entries dropped (a trace keeps "
             "its last %d entries, %d bytes)", when, (dropped < 0 ? 0 : dropped) + cut,
             JOB_TRACE_MAX_LINES, JOB_TRACE_MAX_BYTES);
    if (first)
        json_array_set_new(trace, 0, json_string(note));
    else
        json_array_insert_new(trace, 0, json_string(note));
}

void job_trace(struct job *job, const char *event)
{
    char when[64];
    job_ctime(when, sizeof when);
    size_t len = strlen(event);
    const char *more = "";
    if (len > JOB_TRACE_EVENT_MAX) {
        len = JOB_TRACE_EVENT_MAX;
        while (len > 0 && ((unsigned char)event[len] & 0xc0) == 0x80)
            len--; /* not inside a UTF-8 sequence */
        more = " [cut]";
    }
    char *line = NULL;
    if (asprintf(&line, "%s|%.*s%s", when, (int)len, event, more) < 0)
        return;
    size_t clean_len;
    char *clean = utf8_sanitize(line, strlen(line), &clean_len);
    free(line);
    json_array_append_new(job->trace, json_stringn(clean, clean_len));
    free(clean);
    trace_bound(job->trace);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *job_to_json(const struct job *job)
{
    json_t *input = json_array();
    for (size_t i = 0; i < job->nfiles; i++)
        json_array_append_new(input, json_pack("{s:s, s:s}", "localFile", job->files[i].local_file,
                                               "destFile", job->files[i].dest_file));
    json_t *vm = json_pack("{s:o, s:s, s:s, s:i, s:i, s:o, s:b, s:b, s:o}",
                           "name", str_or_null(job->vm_name), "image", job->image,
                           "vmms", "", "cores", job->cores, "memory", job->memory_mb,
                           "id", str_or_null(job->vm_id), "network", !job->disable_network,
                           "resume", 0, "disk",
                           job->disk_mb ? json_integer(job->disk_mb) : json_null());
    json_object_set_new(vm, "host", str_or_null(job->vm_host));
    if (job->instance_type)
        json_object_set_new(vm, "instance_type", json_string(job->instance_type));
    json_t *o = json_pack("{s:I, s:s, s:s, s:b, s:i, s:i, s:s, s:o, s:I, s:O, s:o, s:o}",
                          "id", (json_int_t)job->id, "state", job_state_name(job->state),
                          "name", job->name, "assigned", job->assigned,
                          "retries", job->retries, "timeout", job->timeout_s,
                          "outputFile", job->output_file, "notifyURL",
                          str_or_null(job->callback_url), "maxOutputFileSize",
                          (json_int_t)job->max_output_bytes, "trace", job->trace, "vm", vm,
                          "input", input);
    json_object_set_new(o, "courselab", json_string(job->courselab));
    json_object_set_new(o, "labDir", json_string(job->lab_dir));
    json_object_set_new(o, "disableNetwork", json_boolean(job->disable_network));
    if (job->cpu_limit_s)
        json_object_set_new(o, "cpuLimit", json_integer(job->cpu_limit_s));
    json_object_set_new(o, "createdAt", json_real(job->created_at));
    json_object_set_new(o, "outcome", str_or_null(job->outcome));
    if (job->key_id)
        json_object_set_new(o, "keyId", json_string(job->key_id));
    if (job->priority)
        json_object_set_new(o, "priority", json_string(job->priority));
    if (job->share_group)
        json_object_set_new(o, "shareGroup", json_string(job->share_group));
    if (job->run_handle)
        json_object_set_new(o, "run", json_pack("{s:s, s:I}", "handle", job->run_handle,
                                                "deadline", (json_int_t)job->run_deadline_ms));
    if (job->output_temp)
        json_object_set_new(o, "outputTemp", json_string(job->output_temp));
    return o;
}

static char *dup_opt(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* The fields a record may lack (older records, or unset): the disk and
 * CPU limits, instance type, key, class, share group, the run's handle and
 * the output's temporary name. */
static void job_optional_fields(struct job *job, const json_t *o, const json_t *vm)
{
    json_t *disk = json_object_get(vm, "disk");
    job->disk_mb = json_is_integer(disk) ? (int)json_integer_value(disk) : 0;
    json_t *cpu = json_object_get(o, "cpuLimit");
    job->cpu_limit_s = json_is_integer(cpu) && json_integer_value(cpu) > 0 &&
                               json_integer_value(cpu) <= 86400
                           ? (int)json_integer_value(cpu)
                           : 0;
    job->instance_type = dup_opt(json_object_get(vm, "instance_type"));
    job->key_id = dup_opt(json_object_get(o, "keyId"));
    job->priority = dup_opt(json_object_get(o, "priority"));
    job->share_group = dup_opt(json_object_get(o, "shareGroup"));
    json_t *run = json_object_get(o, "run");
    if (json_is_object(run) && json_is_string(json_object_get(run, "handle"))) {
        job->run_handle = strdup(json_string_value(json_object_get(run, "handle")));
        job->run_deadline_ms = json_integer_value(json_object_get(run, "deadline"));
    }
    job->output_temp = dup_opt(json_object_get(o, "outputTemp"));
}

/* The record's input files into job->files; 0, or -1 with err naming the
 * first malformed one (job->nfiles then counts those filled). */
static int job_input_files(struct job *job, const json_t *input, char *err, size_t errlen)
{
    job->nfiles = json_array_size(input);
    job->files = calloc(job->nfiles + 1, sizeof *job->files);
    for (size_t i = 0; i < job->nfiles; i++) {
        const char *l, *d;
        if (json_unpack(json_array_get(input, i), "{s:s, s:s}", "localFile", &l, "destFile", &d)) {
            snprintf(err, errlen, "malformed job record: input %zu", i);
            job->nfiles = i;
            return -1;
        }
        job->files[i].local_file = strdup(l);
        job->files[i].dest_file = strdup(d);
    }
    return 0;
}

struct job *job_from_json(const json_t *o, char *err, size_t errlen)
{
    json_t *trace = NULL, *vm = NULL, *input = NULL, *notify = NULL, *outcome = NULL;
    const char *name, *output, *courselab, *lab_dir, *state, *image;
    json_int_t id, maxout;
    int assigned, retries, timeout, disable_network;
    double created;
    json_error_t jerr;
    if (json_unpack_ex((json_t *)o, &jerr, 0,
                       "{s:I, s:s, s:b, s:i, s:i, s:s, s:o, s:I, s:o, s:o, s:o,"
                       " s:s, s:s, s:s, s:b, s:F, s:o}",
                       "id", &id, "name", &name, "assigned", &assigned, "retries", &retries,
                       "timeout", &timeout, "outputFile", &output, "notifyURL", &notify,
                       "maxOutputFileSize", &maxout, "trace", &trace, "vm", &vm, "input", &input,
                       "state", &state, "courselab", &courselab, "labDir", &lab_dir,
                       "disableNetwork", &disable_network, "createdAt", &created,
                       "outcome", &outcome)) {
        snprintf(err, errlen, "malformed job record: %s", jerr.text);
        return NULL;
    }
    int cores = 0, memory = 0;
    json_t *vm_name = NULL, *vm_id = NULL, *vm_host = NULL;
    if (json_unpack_ex(vm, &jerr, 0, "{s:s, s:i, s:i, s:o, s:o, s?o}", "image", &image,
                       "cores", &cores, "memory", &memory, "name", &vm_name, "id", &vm_id,
                       "host", &vm_host) ||
        !json_is_array(trace) || !json_is_array(input)) {
        snprintf(err, errlen, "malformed job record: vm, trace or input");
        return NULL;
    }
    struct job *job = job_new();
    job->id = id;
    job->name = strdup(name);
    job->assigned = assigned;
    job->retries = retries;
    job->timeout_s = timeout;
    job->output_file = strdup(output);
    job->callback_url = dup_opt(notify);
    job->max_output_bytes = (long)maxout;
    json_decref(job->trace);
    job->trace = json_deep_copy(trace);
    job->image = strdup(image);
    job->cores = cores;
    job->memory_mb = memory;
    job->vm_name = dup_opt(vm_name);
    job->vm_id = dup_opt(vm_id);
    job->vm_host = dup_opt(vm_host);
    job->courselab = strdup(courselab);
    job->lab_dir = strdup(lab_dir);
    job->disable_network = disable_network;
    job->created_at = created;
    job->outcome = dup_opt(outcome);
    job_optional_fields(job, o, vm);
    if (job_state_parse(state, &job->state)) {
        snprintf(err, errlen, "malformed job record: unknown state \"%s\"", state);
        job_free(job);
        return NULL;
    }
    if (job_input_files(job, input, err, errlen)) {
        job_free(job);
        return NULL;
    }
    return job;
}

char *job_dumps(const struct job *job)
{
    json_t *o = job_to_json(job);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

struct job *job_loads(const char *text, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    if (!o) {
        snprintf(err, errlen, "malformed job record: %s", jerr.text);
        return NULL;
    }
    struct job *job = job_from_json(o, err, errlen);
    json_decref(o);
    return job;
}
