/*
 * test_job.c: common/job.c: the job record, its JSON form (docs/api.md's job
 * object plus our fields), lossless round trips, malformed records, trace
 * lines and state names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"

/* A job with every field set. */
static struct job *full_job(void)
{
    struct job *j = job_new();
    j->id = 4294967297LL;
    j->name = strdup("course_lab_5_student");
    j->courselab = strdup("lab5");
    j->lab_dir = strdup("0123456789abcdef-lab5");
    j->image = strdup("autograding_image");
    j->output_file = strdup("student_5_lab_autograde.txt");
    j->callback_url = strdup("https://autolab.example.org/jobs/5/callback?x=1&y=2");
    j->timeout_s = 20;
    j->max_output_bytes = 1048576;
    j->disable_network = true;
    j->cores = 2;
    j->memory_mb = 1024;
    j->nfiles = 2;
    j->files = calloc(2, sizeof *j->files);
    j->files[0].local_file = strdup("student_5_handin.py");
    j->files[0].dest_file = strdup("handin.py");
    j->files[1].local_file = strdup("autograde-Makefile");
    j->files[1].dest_file = strdup("Makefile");
    j->state = JOB_RUNNING;
    j->assigned = true;
    j->retries = 1;
    json_array_append_new(j->trace, json_string("Sat Nov 21 21:19:04 2026|Added job"));
    json_array_append_new(j->trace, json_string("Sat Nov 21 21:19:05 2026|Dispatched \xc3\xa9"));
    j->vm_name = strdup("tango-5-course_lab_5_student");
    j->vm_id = strdup("c0ffee1234");
    j->vm_host = strdup("worker-1.example.org");
    j->outcome = strdup("Success: Autodriver returned normally");
    j->created_at = 1763759944.125;
    return j;
}

static void assert_str_or_null_equal(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_jobs_equal(const struct job *a, const struct job *b)
{
    assert_true(a->id == b->id);
    assert_str_or_null_equal(a->name, b->name);
    assert_str_or_null_equal(a->courselab, b->courselab);
    assert_str_or_null_equal(a->lab_dir, b->lab_dir);
    assert_str_or_null_equal(a->image, b->image);
    assert_str_or_null_equal(a->output_file, b->output_file);
    assert_str_or_null_equal(a->callback_url, b->callback_url);
    assert_int_equal(a->timeout_s, b->timeout_s);
    assert_int_equal(a->max_output_bytes, b->max_output_bytes);
    assert_int_equal(a->disable_network, b->disable_network);
    assert_int_equal(a->cores, b->cores);
    assert_int_equal(a->memory_mb, b->memory_mb);
    assert_int_equal(a->nfiles, b->nfiles);
    for (size_t i = 0; i < a->nfiles; i++) {
        assert_string_equal(a->files[i].local_file, b->files[i].local_file);
        assert_string_equal(a->files[i].dest_file, b->files[i].dest_file);
    }
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->assigned, b->assigned);
    assert_int_equal(a->retries, b->retries);
    assert_true(json_equal(a->trace, b->trace));
    assert_str_or_null_equal(a->vm_name, b->vm_name);
    assert_str_or_null_equal(a->vm_id, b->vm_id);
    assert_str_or_null_equal(a->vm_host, b->vm_host);
    assert_str_or_null_equal(a->outcome, b->outcome);
    assert_true(a->created_at == b->created_at);
}

static void test_new_and_free(void **state)
{
    (void)state;
    struct job *j = job_new();
    assert_non_null(j);
    assert_true(j->id == 0);
    assert_null(j->name);
    assert_null(j->files);
    assert_int_equal(j->nfiles, 0);
    assert_int_equal(j->state, JOB_QUEUED);
    assert_false(j->assigned);
    assert_true(json_is_array(j->trace));
    assert_int_equal(json_array_size(j->trace), 0);
    job_free(j);
    job_free(NULL);
}

static void test_state_names(void **state)
{
    (void)state;
    static const char *const names[] = {"queued", "leased", "running",
                                        "finishing", "done", "cancelled", "dead-letter"};
    for (int s = JOB_QUEUED; s <= JOB_DEAD_LETTER; s++) {
        assert_string_equal(job_state_name((enum job_state)s), names[s]);
        enum job_state out = (enum job_state)99;
        assert_int_equal(job_state_parse(names[s], &out), 0);
        assert_int_equal(out, s);
    }
    assert_string_equal(job_state_name((enum job_state)JOB_NSTATES), "unknown");
    assert_string_equal(job_state_name((enum job_state)-1), "unknown");
    enum job_state out = JOB_DONE;
    assert_int_equal(job_state_parse("Queued", &out), -1);
    assert_int_equal(job_state_parse("queued ", &out), -1);
    assert_int_equal(job_state_parse("", &out), -1);
    assert_int_equal(job_state_parse("unknown", &out), -1);
    assert_int_equal(job_state_parse(NULL, &out), -1);
    assert_int_equal(out, JOB_DONE);
}

static void test_json_has_spec_fields(void **state)
{
    (void)state;
    struct job *j = full_job();
    json_t *o = job_to_json(j);
    assert_non_null(o);
    assert_true(json_is_integer(json_object_get(o, "id")));
    assert_true(json_integer_value(json_object_get(o, "id")) == 4294967297LL);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "course_lab_5_student");
    assert_true(json_is_true(json_object_get(o, "assigned")));
    assert_int_equal(json_integer_value(json_object_get(o, "retries")), 1);
    assert_int_equal(json_integer_value(json_object_get(o, "timeout")), 20);
    assert_string_equal(json_string_value(json_object_get(o, "outputFile")),
                        "student_5_lab_autograde.txt");
    assert_string_equal(json_string_value(json_object_get(o, "notifyURL")),
                        "https://autolab.example.org/jobs/5/callback?x=1&y=2");
    assert_int_equal(json_integer_value(json_object_get(o, "maxOutputFileSize")), 1048576);
    json_t *trace = json_object_get(o, "trace");
    assert_int_equal(json_array_size(trace), 2);
    assert_string_equal(json_string_value(json_array_get(trace, 0)),
                        "Sat Nov 21 21:19:04 2026|Added job");

    json_t *vm = json_object_get(o, "vm");
    assert_true(json_is_object(vm));
    static const char *const vm_keys[] = {"name", "image", "vmms", "cores", "memory",
                                          "id", "network", "resume", "disk"};
    for (size_t i = 0; i < sizeof vm_keys / sizeof *vm_keys; i++)
        if (!json_object_get(vm, vm_keys[i]))
            fail_msg("vm lacks \"%s\"", vm_keys[i]);
    assert_string_equal(json_string_value(json_object_get(vm, "name")),
                        "tango-5-course_lab_5_student");
    assert_string_equal(json_string_value(json_object_get(vm, "image")), "autograding_image");
    assert_true(json_is_string(json_object_get(vm, "vmms")));
    assert_int_equal(json_integer_value(json_object_get(vm, "cores")), 2);
    assert_int_equal(json_integer_value(json_object_get(vm, "memory")), 1024);
    assert_string_equal(json_string_value(json_object_get(vm, "id")), "c0ffee1234");
    assert_true(json_is_false(json_object_get(vm, "network"))); /* network disabled */
    assert_true(json_is_boolean(json_object_get(vm, "resume")));

    json_t *input = json_object_get(o, "input");
    assert_int_equal(json_array_size(input), 2);
    json_t *want = json_loads("[{\"localFile\": \"student_5_handin.py\", \"destFile\": "
                              "\"handin.py\"}, {\"localFile\": \"autograde-Makefile\", "
                              "\"destFile\": \"Makefile\"}]", 0, NULL);
    assert_true(json_equal(input, want));
    json_decref(want);

    /* Our additive fields. */
    assert_string_equal(json_string_value(json_object_get(o, "state")), "running");
    assert_string_equal(json_string_value(json_object_get(o, "courselab")), "lab5");
    assert_string_equal(json_string_value(json_object_get(o, "labDir")),
                        "0123456789abcdef-lab5");
    assert_true(json_is_true(json_object_get(o, "disableNetwork")));
    assert_true(json_number_value(json_object_get(o, "createdAt")) == 1763759944.125);
    assert_string_equal(json_string_value(json_object_get(o, "outcome")),
                        "Success: Autodriver returned normally");
    json_decref(o);

    /* Network on, no callback, no VM yet, no outcome: nulls. */
    j->disable_network = false;
    free(j->callback_url);
    j->callback_url = NULL;
    free(j->vm_name);
    j->vm_name = NULL;
    free(j->vm_id);
    j->vm_id = NULL;
    free(j->outcome);
    j->outcome = NULL;
    o = job_to_json(j);
    assert_true(json_is_null(json_object_get(o, "notifyURL")));
    assert_true(json_is_null(json_object_get(o, "outcome")));
    vm = json_object_get(o, "vm");
    assert_true(json_is_null(json_object_get(vm, "name")));
    assert_true(json_is_null(json_object_get(vm, "id")));
    assert_true(json_is_true(json_object_get(vm, "network")));
    assert_true(json_is_false(json_object_get(o, "disableNetwork")));
    json_decref(o);
    job_free(j);
}

static void round_trip(struct job *j)
{
    char err[256] = "";
    json_t *o = job_to_json(j);
    assert_non_null(o);
    struct job *k = job_from_json(o, err, sizeof err);
    if (!k)
        fail_msg("job_from_json: %s", err);
    assert_jobs_equal(j, k);
    json_t *o2 = job_to_json(k);
    assert_true(json_equal(o, o2));
    json_decref(o2);
    job_free(k);
    json_decref(o);

    /* And through text. */
    char *text = job_dumps(j);
    assert_non_null(text);
    assert_null(strchr(text, '\n')); /* compact: one line */
    k = job_loads(text, err, sizeof err);
    if (!k)
        fail_msg("job_loads: %s", err);
    assert_jobs_equal(j, k);
    char *text2 = job_dumps(k);
    assert_string_equal(text, text2);
    free(text2);
    free(text);
    job_free(k);
}

static void test_round_trip_full(void **state)
{
    (void)state;
    struct job *j = full_job();
    round_trip(j);
    /* Every state survives. */
    for (int s = JOB_QUEUED; s <= JOB_CANCELLED; s++) {
        j->state = (enum job_state)s;
        round_trip(j);
    }
    job_free(j);
}

static void test_round_trip_nulls_and_extremes(void **state)
{
    (void)state;
    struct job *j = full_job();
    free(j->callback_url);
    j->callback_url = NULL;
    free(j->vm_name);
    j->vm_name = NULL;
    free(j->vm_id);
    j->vm_id = NULL;
    free(j->vm_host);
    j->vm_host = NULL;
    free(j->outcome);
    j->outcome = NULL;
    j->assigned = false;
    j->disable_network = false;
    j->cores = 0;
    j->memory_mb = 0;
    j->retries = 0;
    j->created_at = 0.0;
    round_trip(j);

    j->id = INT64_MAX;
    j->max_output_bytes = 1L << 40;
    j->created_at = 1763759944.123456789;
    round_trip(j);

    /* No input files, empty trace. */
    for (size_t i = 0; i < j->nfiles; i++) {
        free(j->files[i].local_file);
        free(j->files[i].dest_file);
    }
    free(j->files);
    j->files = NULL;
    j->nfiles = 0;
    json_array_clear(j->trace);
    round_trip(j);
    job_free(j);
}

/* The full job's JSON with one change applied by a JSON merge. */
static json_t *full_json_with(const char *patch_text, const char *remove_key,
                              const char *remove_vm_key)
{
    struct job *j = full_job();
    json_t *o = job_to_json(j);
    job_free(j);
    if (patch_text) {
        json_t *patch = json_loads(patch_text, 0, NULL);
        assert_non_null(patch);
        json_object_update(o, patch);
        json_decref(patch);
    }
    if (remove_key)
        assert_int_equal(json_object_del(o, remove_key), 0);
    if (remove_vm_key)
        assert_int_equal(json_object_del(json_object_get(o, "vm"), remove_vm_key), 0);
    return o;
}

static void expect_malformed(json_t *o, const char *want)
{
    char err[256];
    memset(err, 0, sizeof err);
    struct job *j = job_from_json(o, err, sizeof err);
    if (j) {
        job_free(j);
        json_decref(o);
        fail_msg("malformed record accepted (want \"%s\")", want);
    }
    if (!strstr(err, "malformed job record") || (want && !strstr(err, want))) {
        json_decref(o);
        fail_msg("error \"%s\" lacks \"%s\"", err, want ? want : "malformed job record");
    }
    json_decref(o);
}

static void test_malformed_missing_fields(void **state)
{
    (void)state;
    static const char *const required[] = {
        "id", "name", "assigned", "retries", "timeout", "outputFile", "notifyURL",
        "maxOutputFileSize", "trace", "vm", "input", "state", "courselab", "labDir",
        "disableNetwork", "createdAt", "outcome",
    };
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        expect_malformed(full_json_with(NULL, required[i], NULL), required[i]);
    expect_malformed(full_json_with(NULL, NULL, "image"), "vm");
    expect_malformed(full_json_with(NULL, NULL, "cores"), "vm");
    expect_malformed(full_json_with(NULL, NULL, "memory"), "vm");
    expect_malformed(full_json_with(NULL, NULL, "name"), "vm");
    expect_malformed(full_json_with(NULL, NULL, "id"), "vm");
    /* vm.host is optional. */
    char err[256];
    json_t *o = full_json_with(NULL, NULL, "host");
    struct job *j = job_from_json(o, err, sizeof err);
    assert_non_null(j);
    assert_null(j->vm_host);
    job_free(j);
    json_decref(o);
}

static void test_malformed_types(void **state)
{
    (void)state;
    expect_malformed(full_json_with("{\"id\": \"5\"}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"id\": 5.5}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"name\": 5}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"name\": null}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"assigned\": 1}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"retries\": \"1\"}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"timeout\": true}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"maxOutputFileSize\": \"big\"}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"trace\": {}}", NULL, NULL), "trace");
    expect_malformed(full_json_with("{\"trace\": \"x\"}", NULL, NULL), "trace");
    expect_malformed(full_json_with("{\"vm\": []}", NULL, NULL), "vm");
    expect_malformed(full_json_with("{\"vm\": null}", NULL, NULL), "vm");
    expect_malformed(full_json_with("{\"vm\": {\"image\": 1, \"cores\": 1, \"memory\": 1, "
                                    "\"name\": null, \"id\": null}}", NULL, NULL), "vm");
    expect_malformed(full_json_with("{\"input\": {}}", NULL, NULL), "input");
    expect_malformed(full_json_with("{\"createdAt\": \"now\"}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"disableNetwork\": \"no\"}", NULL, NULL), NULL);
    expect_malformed(full_json_with("{\"courselab\": null}", NULL, NULL), NULL);
}

static void test_malformed_state_and_input(void **state)
{
    (void)state;
    expect_malformed(full_json_with("{\"state\": \"flying\"}", NULL, NULL),
                     "unknown state \"flying\"");
    expect_malformed(full_json_with("{\"state\": \"Queued\"}", NULL, NULL), "unknown state");
    expect_malformed(full_json_with("{\"state\": 1}", NULL, NULL), NULL);
    /* Bad input entries, first and later ones (earlier ones are freed). */
    expect_malformed(full_json_with("{\"input\": [{\"localFile\": \"a\"}]}", NULL, NULL),
                     "input 0");
    expect_malformed(full_json_with("{\"input\": [{\"localFile\": \"a\", \"destFile\": \"b\"},"
                                    " {\"localFile\": \"c\", \"destFile\": \"d\"},"
                                    " {\"localFile\": \"e\", \"destFile\": 5}]}", NULL, NULL),
                     "input 2");
    expect_malformed(full_json_with("{\"input\": [{\"localFile\": \"a\", \"destFile\": \"b\"},"
                                    " \"Makefile\"]}", NULL, NULL), "input 1");
    expect_malformed(full_json_with("{\"input\": [null]}", NULL, NULL), "input 0");
    expect_malformed(json_array(), NULL);
    expect_malformed(json_string("job"), NULL);
    expect_malformed(json_object(), NULL);
}

static void test_loads_bad_text(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "{", "not json", "null", "[]", "{\"id\": 1}",
                                      "{\"id\": 1,}", NULL};
    for (int i = 0; bad[i]; i++) {
        char err[256];
        memset(err, 0, sizeof err);
        struct job *j = job_loads(bad[i], err, sizeof err);
        if (j) {
            job_free(j);
            fail_msg("\"%s\" loaded", bad[i]);
        }
        assert_non_null(strstr(err, "malformed job record"));
    }
    /* Unknown extra fields are tolerated (forward compatibility). */
    struct job *j = full_job();
    json_t *o = job_to_json(j);
    json_object_set_new(o, "futureField", json_integer(7));
    char err[256];
    struct job *k = job_from_json(o, err, sizeof err);
    assert_non_null(k);
    assert_jobs_equal(j, k);
    job_free(k);
    json_decref(o);
    job_free(j);
}

static void test_trace_format(void **state)
{
    (void)state;
    struct job *j = job_new();
    time_t before = time(NULL);
    job_trace(j, "Added job");
    job_trace(j, "Dispatched job autograding_image:5 to tango-5");
    time_t after = time(NULL);
    assert_int_equal(json_array_size(j->trace), 2);
    const char *line = json_string_value(json_array_get(j->trace, 0));
    assert_non_null(line);

    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                             "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                             "[ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4}\\|Added job$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    int m = regexec(&re, line, 0, NULL, 0);
    regfree(&re);
    if (m != 0)
        fail_msg("trace line \"%s\" is not \"<ctime>|event\"", line);
    /* Exactly what ctime(3) (and Python's time.ctime) prints. */
    char c1[64], c2[64], want1[128], want2[128];
    ctime_r(&before, c1);
    ctime_r(&after, c2);
    c1[strcspn(c1, "\n")] = '\0';
    c2[strcspn(c2, "\n")] = '\0';
    snprintf(want1, sizeof want1, "%s|Added job", c1);
    snprintf(want2, sizeof want2, "%s|Added job", c2);
    if (strcmp(line, want1) && strcmp(line, want2))
        fail_msg("trace line \"%s\", want \"%s\"", line, want1);
    const char *second = json_string_value(json_array_get(j->trace, 1));
    const char *bar = strchr(second, '|');
    assert_non_null(bar);
    assert_string_equal(bar + 1, "Dispatched job autograding_image:5 to tango-5");
    assert_int_equal(bar - second, 24);
    job_free(j);
}

/* Bytes of every trace line. */
static size_t trace_size(const json_t *trace)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(trace); i++)
        n += json_string_length(json_array_get(trace, i));
    return n;
}

/* The count a "Trace cut: N earlier entries dropped" head line gives. */
static long trace_cut(const json_t *trace)
{
    const char *head = json_string_value(json_array_get(trace, 0));
    const char *note = head ? strstr(head, "|Trace cut: ") : NULL;
    long n = -1;
    if (note)
        sscanf(note + strlen("|Trace cut: "), "%ld earlier entries dropped", &n);
    return n;
}

/* A trace keeps its last lines, the count of dropped ones in one note at
 * its head, also across a round trip through the record (issue 18.9). */
static void test_trace_keeps_last_lines(void **state)
{
    (void)state;
    struct job *j = job_new();
    char ev[64];
    for (int i = 0; i < 150; i++) {
        snprintf(ev, sizeof ev, "event %d", i);
        job_trace(j, ev);
    }
    assert_true(json_array_size(j->trace) <= JOB_TRACE_MAX_LINES);
    long cut = trace_cut(j->trace);
    assert_true(cut > 0);
    assert_int_equal(cut + (long)json_array_size(j->trace) - 1, 150);
    const char *last = json_string_value(json_array_get(j->trace, json_array_size(j->trace) - 1));
    assert_non_null(strstr(last, "|event 149"));
    /* the oldest line kept follows the dropped ones */
    snprintf(ev, sizeof ev, "|event %ld", cut);
    assert_non_null(strstr(json_string_value(json_array_get(j->trace, 1)), ev));
    char err[256];
    j->name = strdup("n");
    j->courselab = strdup("c");
    j->lab_dir = strdup("d");
    j->image = strdup("i");
    j->output_file = strdup("o");
    char *text = job_dumps(j);
    struct job *k = job_loads(text, err, sizeof err);
    free(text);
    assert_non_null(k);
    for (int i = 150; i < 160; i++) {
        snprintf(ev, sizeof ev, "event %d", i);
        job_trace(k, ev);
    }
    assert_int_equal(trace_cut(k->trace) + (long)json_array_size(k->trace) - 1, 160);
    assert_true(json_array_size(k->trace) <= JOB_TRACE_MAX_LINES);
    job_free(k);
    job_free(j);
}

/* Long events: the trace stays within its bytes, each event is cut at
 * JOB_TRACE_EVENT_MAX on a character boundary, and bytes that are not
 * UTF-8 still make a line (JSON cannot carry them as they are). */
static void test_trace_bytes_and_long_events(void **state)
{
    (void)state;
    struct job *j = job_new();
    char *big = malloc(5001);
    for (int i = 0; i < 5000; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[5000] = '\0';
    for (int i = 0; i < 40; i++)
        job_trace(j, big);
    free(big);
    assert_true(trace_size(j->trace) <= JOB_TRACE_MAX_BYTES);
    assert_true(trace_cut(j->trace) > 0);
    assert_int_equal(trace_cut(j->trace) + (long)json_array_size(j->trace) - 1, 40);
    const char *last = json_string_value(json_array_get(j->trace, json_array_size(j->trace) - 1));
    assert_non_null(last);
    const char *bar = strchr(last, '|');
    assert_true(strlen(bar + 1) <= JOB_TRACE_EVENT_MAX + strlen(" [cut]"));
    assert_string_equal(last + strlen(last) - 8, "\xc3\xa9 [cut]");
    size_t before = json_array_size(j->trace);
    job_trace(j, "bad \xff\xfe bytes");
    last = json_string_value(json_array_get(j->trace, json_array_size(j->trace) - 1));
    assert_non_null(strstr(last, "|bad "));
    assert_true(json_array_size(j->trace) >= before);
    job_free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_free),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_json_has_spec_fields),
        cmocka_unit_test(test_round_trip_full),
        cmocka_unit_test(test_round_trip_nulls_and_extremes),
        cmocka_unit_test(test_malformed_missing_fields),
        cmocka_unit_test(test_malformed_types),
        cmocka_unit_test(test_malformed_state_and_input),
        cmocka_unit_test(test_loads_bad_text),
        cmocka_unit_test(test_trace_format),
        cmocka_unit_test(test_trace_keeps_last_lines),
        cmocka_unit_test(test_trace_bytes_and_long_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
