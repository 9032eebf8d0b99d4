/*
 * jobs.c: tangoctl's job commands: `jobs` (live or dead, by course), `job
 * ID` (record, lease, trace), `cancel ID` (the cancellation request POST
 * /cancel makes; the leader ends the job), `requeue ID` (a dead-letter or
 * failed job runs again) and `prune --dead-older-than DAYS`.
 *
 * Requeue and the state machine: done, cancelled and dead-letter are final
 * states (jobstate.c has no way back from them, on purpose). A requeued job
 * is therefore a new job made from the old one's inputs through the `add`
 * transition, exactly as a producer adds one: it gets a new id, goes
 * through the normal queue, and the old record stays in the history as it
 * ended. A dead-letter job can be requeued only when the raw text kept in
 * jobs:deadletter reads as a job record now (e.g. written with its fields
 * in another order); its names are checked as addJob checks them. A job
 * is requeued once (jobs:requeued remembers the new id, so a repeated
 * command, a script's retry or two operators at once run it once); --force
 * runs it again anyway.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "image_ref.h"
#include "names.h"

#define JOBS_DEFAULT_LIMIT 1000

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* How long ago job (a record) was created, as ctl_age writes it ("-" when
 * the record has no createdAt). */
static const char *job_age(json_t *job, double now, char *buf, size_t len)
{
    double created = json_number_value(json_object_get(job, "createdAt"));
    return ctl_age(created > 0 ? now - created : -1, buf, len);
}

static void print_job_line(json_t *job, double now)
{
    char age[32];
    printf("%-8lld %-11s %-24s %-24s %8s  %d  %.60s\n",
           (long long)json_integer_value(json_object_get(job, "id")), str(job, "state"),
           str(job, "courselab"), str(job, "name"), job_age(job, now, age, sizeof age),
           (int)json_integer_value(json_object_get(job, "retries")), str(job, "outcome"));
}

int cmd_jobs(struct ctl *x, int argc, char **argv)
{
    bool dead = false;
    const char *course = NULL;
    long limit = JOBS_DEFAULT_LIMIT;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--live") == 0)
            dead = false;
        else if (strcmp(argv[i], "--dead") == 0)
            dead = true;
        else if (strcmp(argv[i], "--course") == 0 && i + 1 < argc && argv[i + 1][0])
            course = argv[++i];
        else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc &&
                 (limit = strtol(argv[i + 1], &end, 10)) > 0 && !*end && limit <= 1000000)
            i++;
        else
            return ctl_fail(x, CTL_USAGE, "usage: jobs [--live|--dead] [--course C] [--limit N]"
                                          " (N 1..1000000); not \"%s\"", argv[i]);
    }
    json_t *list = NULL;
    int status = store_list_jobs(x->st, dead, (size_t)limit, &list);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "listing jobs");
    json_t *shown = json_array();
    size_t i;
    json_t *job;
    json_array_foreach(list, i, job) {
        char c[256];
        if (!course || strcmp(ctl_course(str(job, "courselab"), c, sizeof c), course) == 0)
            json_array_append(shown, job);
    }
    json_decref(list);
    size_t n = json_array_size(shown);
    if (!ctl_emit_json(x, json_pack("{s:s, s:s?, s:O}", "which", dead ? "dead" : "live",
                                    "course", course, "jobs", shown))) {
        double now = ctl_now();
        printf("%-8s %-11s %-24s %-24s %8s  %s  %s\n", "ID", "STATE", "COURSELAB", "NAME", "AGE",
               "R", "OUTCOME");
        json_array_foreach(shown, i, job)
            print_job_line(job, now);
        printf("%zu %s job(s)%s%s\n", n, dead ? "finished" : "live", course ? " of course " : "",
               course ? course : "");
    }
    json_decref(shown);
    return CTL_OK;
}

/* The job a command names: parses the id argument (ctl_job_id: argv[1] of
 * argc) into *id and loads its record (*rec, caller decrefs; *dead: from
 * the finished history). Refuses with a clear message (bad id, no such
 * job, Redis) and returns the exit code; CTL_OK when *rec is set. */
static int load_job(struct ctl *x, int argc, char **argv, int64_t *id, json_t **rec, bool *dead)
{
    int rc = ctl_job_id(x, argc, argv, id);
    if (rc)
        return rc;
    int status = store_get_job(x->st, *id, rec, dead);
    if (status == STORE_NOT_FOUND)
        return ctl_fail(x, CTL_REFUSED, "no job %lld (not live, not in the dead history)",
                        (long long)*id);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "reading the job");
    return CTL_OK;
}

int cmd_job(struct ctl *x, int argc, char **argv)
{
    int64_t id;
    json_t *rec = NULL;
    bool dead = false;
    int rc = load_job(x, argc, argv, &id, &rec, &dead);
    if (rc)
        return rc;
    long long pos = 0, left = 0;
    bool cancel = false;
    char owner[64] = "";
    int ls = STORE_NOT_FOUND;
    char *raw = NULL;
    if (!dead) {
        store_queue_position(x->st, id, &pos);
        store_cancel_requested(x->st, id, &cancel);
        ls = store_job_lease(x->st, id, owner, sizeof owner, &left);
    } else if (strcmp(str(rec, "state"), "dead-letter") == 0) {
        store_deadletter_raw(x->st, id, &raw);
    }
    json_t *lease = ls == STORE_OK ? json_pack("{s:s, s:I}", "owner", owner, "expiresInMs",
                                                 (json_int_t)left)
                                   : json_null();
    if (!ctl_emit_json(x, json_pack("{s:O, s:s, s:b, s:I, s:b, s:o, s:s?}", "job", rec, "state",
                                    str(rec, "state"), "dead", dead, "queuePosition",
                                    (json_int_t)pos, "cancelRequested", cancel, "lease", lease,
                                    "deadletterRaw", raw))) {
        char age[32];
        json_t *vm = json_object_get(rec, "vm");
        printf("Job %lld: %s\n", (long long)id, str(rec, "state"));
        printf("  name       %s\n  courselab  %s (lab dir %s)\n  image      %s\n",
               str(rec, "name"), str(rec, "courselab"), str(rec, "labDir"), str(vm, "image"));
        printf("  output     %s\n  callback   %s\n  created    %s ago\n  retries    %lld\n",
               str(rec, "outputFile"), json_is_string(json_object_get(rec, "notifyURL"))
                                           ? "yes (URL not shown)" : "none",
               job_age(rec, ctl_now(), age, sizeof age),
               (long long)json_integer_value(json_object_get(rec, "retries")));
        if (json_is_string(json_object_get(vm, "name")))
            printf("  instance   %s on %s\n", str(vm, "name"),
                   str(vm, "host")[0] ? str(vm, "host") : "(local)");
        if (pos > 0)
            printf("  queue      position %lld\n", pos);
        if (ls == STORE_OK)
            printf("  lease      owner %.8s, %s %.1f s\n", owner, left >= 0 ? "expires in" : "lapsed",
                   fabs(left / 1000.0));
        if (cancel)
            printf("  cancel     requested\n");
        if (json_is_string(json_object_get(rec, "outcome")))
            printf("  outcome    %s\n", str(rec, "outcome"));
        if (raw)
            printf("  raw text   %zu bytes kept in jobs:deadletter\n", strlen(raw));
        printf("Trace:\n");
        size_t i;
        json_t *line;
        json_array_foreach(json_object_get(rec, "trace"), i, line)
            printf("  %s\n", json_string_value(line) ?: "?");
    }
    free(raw);
    json_decref(rec);
    return CTL_OK;
}

int cmd_cancel(struct ctl *x, int argc, char **argv)
{
    int64_t id;
    json_t *rec = NULL;
    bool dead = false;
    int rc = load_job(x, argc, argv, &id, &rec, &dead);
    if (rc)
        return rc;
    char state[32];
    snprintf(state, sizeof state, "%s", str(rec, "state"));
    json_decref(rec);
    bool finished = dead;
    int status = dead ? STORE_NOT_FOUND : store_request_cancel(x->st, id, &finished);
    if (finished)
        return ctl_fail(x, CTL_REFUSED, "job %lld already finished (%s): only a live job can be"
                        " cancelled", (long long)id, state);
    if (status == STORE_NOT_FOUND)
        return ctl_fail(x, CTL_REFUSED, "no job %lld", (long long)id);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "requesting the cancellation");
    if (!ctl_emit_json(x, json_pack("{s:I, s:s, s:b}", "jobId", (json_int_t)id, "state", state,
                                    "cancelRequested", 1)))
        printf("Job %lld (%s): cancellation requested; the leader ends it as cancelled (its "
               "output file and callback say so)\n", (long long)id, state);
    return CTL_OK;
}

/* Checks the names of a job made from a stored record as addJob checks
 * them (they become paths); NULL if fine, else what is wrong. */
static const char *bad_names(const struct job *j)
{
    if (!name_is_safe_str(j->lab_dir) || !name_is_safe_str(j->courselab))
        return "its lab directory";
    if (!name_is_safe_str(j->output_file))
        return "its output file name";
    struct image_ref ref;
    if (!j->image || image_ref_parse(j->image, &ref) != 0) /* a registry reference too */
        return "its image name";
    if (j->nfiles == 0)
        return "its input files (none)";
    for (size_t i = 0; i < j->nfiles; i++)
        if (!name_is_safe_str(j->files[i].local_file) || !name_is_safe_str(j->files[i].dest_file))
            return "an input file name";
    return NULL;
}


/* Why a finished job of this state and outcome may not be requeued (the
 * ctl_fail exit code), or CTL_OK when it may. */
static int requeue_refusal(struct ctl *x, int64_t id, bool dead, const char *state,
                           const char *outcome, bool force)
{
    if (!dead)
        return ctl_fail(x, CTL_REFUSED, "job %lld is %s, not finished: requeue takes dead-letter"
                        " or failed jobs (%s)", (long long)id, state,
                        strcmp(state, "queued") == 0 ? "it is queued already"
                                                     : "cancel it first, then requeue it");
    if (strcmp(state, "cancelled") == 0)
        return ctl_fail(x, CTL_REFUSED, "job %lld was cancelled by request: requeue takes "
                        "dead-letter or failed jobs", (long long)id);
    if (strcmp(state, "done") == 0 && strncmp(outcome, "Success", 7) == 0 && !force)
        return ctl_fail(x, CTL_REFUSED, "job %lld succeeded (%s): requeue takes dead-letter or "
                        "failed jobs; add --force to run it again anyway", (long long)id, outcome);
    return CTL_OK;
}

/* The job to run again: a dead-letter job from the raw text kept in
 * jobs:deadletter, any other from its record rec. CTL_OK and *job, or the
 * ctl_fail exit code. */
static int requeue_job_of(struct ctl *x, int64_t id, const char *state, json_t *rec,
                          struct job **job)
{
    char err[300] = "";
    *job = NULL;
    if (strcmp(state, "dead-letter") != 0) {
        *job = job_from_json(rec, err, sizeof err);
        if (!*job)
            return ctl_fail(x, CTL_REFUSED, "job %lld's record cannot be read (%s)",
                            (long long)id, err);
        return CTL_OK;
    }
    char *raw = NULL;
    int rc = CTL_OK;
    int status = store_deadletter_raw(x->st, id, &raw);
    if (status == STORE_OK)
        *job = job_loads(raw, err, sizeof err);
    else if (status == STORE_NOT_FOUND)
        snprintf(err, sizeof err, "no raw text kept in jobs:deadletter");
    else
        rc = ctl_store_fail(x, status, "reading the dead-letter record");
    free(raw);
    if (!*job && !rc)
        rc = ctl_fail(x, CTL_REFUSED, "job %lld's record still cannot be read (%s): nothing "
                      "to run", (long long)id, err);
    return rc;
}

/* Makes job a fresh run of the same inputs: nothing of the old run
 * (instance, outcome, retries, trace) carries over; the trace says who
 * requeued it from which job. */
static void requeue_fresh(struct job *job, int64_t id, const char *state)
{
    char line[300], who[200];
    ctl_operator(who, sizeof who);
    free(job->vm_name);
    free(job->vm_id);
    free(job->vm_host);
    free(job->outcome);
    free(job->run_handle);
    free(job->output_temp);
    job->vm_name = job->vm_id = job->vm_host = job->outcome = job->run_handle = NULL;
    job->output_temp = NULL;
    job->run_deadline_ms = 0;
    job->retries = 0;
    job->assigned = false;
    job->state = JOB_QUEUED;
    job->created_at = ctl_now();
    json_array_clear(job->trace);
    snprintf(line, sizeof line, "Requeued by %s (tangoctl) from job %lld (%s)", who,
             (long long)id, state);
    job_trace(job, line);
}

/* Claims the requeue of job id, so two operators do not both run it again
 * (a prior claim refuses unless force). CTL_OK and *prior, or the exit code. */
static int requeue_claim(struct ctl *x, int64_t id, bool force, int64_t *prior)
{
    *prior = 0;
    int status = store_requeue_claim(x->st, id, force, prior);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "claiming the requeue");
    if (*prior != 0 && !force) {
        if (*prior > 0)
            return ctl_fail(x, CTL_REFUSED, "job %lld was requeued already, as job %lld; add "
                            "--force to run it once more", (long long)id, (long long)*prior);
        return ctl_fail(x, CTL_REFUSED, "a requeue of job %lld is under way (or stopped midway);"
                        " add --force to requeue it anyway", (long long)id);
    }
    return CTL_OK;
}

/* Adds job (freed) as a new job and records it as job id's requeue.
 * CTL_OK and *new_id, or the exit code. */
static int requeue_add(struct ctl *x, int64_t id, int64_t prior, struct job *job,
                       int64_t *new_id)
{
    int status = store_add_job(x->st, job);
    *new_id = job->id;
    job_free(job);
    if (status != STORE_OK) {
        /* Unavailable: the add may have landed with its reply lost, so the
         * claim stays ("under way or stopped midway": a retry needs
         * --force, and the operator can look first). Any other refusal
         * (a queue cap, a bad record) surely added nothing. */
        if (status != STORE_UNAVAILABLE)
            store_requeue_release(x->st, id, prior);
        return ctl_store_fail(x, status, "adding the job again");
    }
    if (store_requeue_record(x->st, id, *new_id) != STORE_OK)
        fprintf(stderr, "tangoctl: job %lld was requeued as job %lld, but that could not be "
                "recorded: a second requeue of it needs --force\n", (long long)id,
                (long long)*new_id);
    return CTL_OK;
}

int cmd_requeue(struct ctl *x, int argc, char **argv)
{
    bool force = argc == 3 && strcmp(argv[2], "--force") == 0;
    int64_t id;
    json_t *rec = NULL;
    bool dead = false;
    int rc = load_job(x, force ? 2 : argc, argv, &id, &rec, &dead);
    if (rc)
        return rc;
    char state[32], outcome[200];
    snprintf(state, sizeof state, "%s", str(rec, "state"));
    snprintf(outcome, sizeof outcome, "%s", str(rec, "outcome"));
    struct job *job = NULL;
    rc = requeue_refusal(x, id, dead, state, outcome, force);
    if (rc == CTL_OK)
        rc = requeue_job_of(x, id, state, rec, &job);
    json_decref(rec);
    if (rc)
        return rc;
    const char *bad = bad_names(job);
    if (bad) {
        job_free(job);
        return ctl_fail(x, CTL_REFUSED, "job %lld cannot run again: %s is not valid",
                        (long long)id, bad);
    }
    requeue_fresh(job, id, state);
    int64_t prior, new_id;
    if ((rc = requeue_claim(x, id, force, &prior)) != CTL_OK) {
        job_free(job);
        return rc;
    }
    if ((rc = requeue_add(x, id, prior, job, &new_id)) != CTL_OK)
        return rc;
    if (!ctl_emit_json(x, json_pack("{s:I, s:s, s:I}", "jobId", (json_int_t)id, "was", state,
                                    "newJobId", (json_int_t)new_id)))
        printf("Job %lld (%s) requeued as job %lld: queued, it runs through the normal queue\n",
               (long long)id, state, (long long)new_id);
    return CTL_OK;
}

int cmd_prune(struct ctl *x, int argc, char **argv)
{
    char *end = NULL;
    double days = argc == 3 && strcmp(argv[1], "--dead-older-than") == 0 ? strtod(argv[2], &end)
                                                                          : NAN;
    if (!end || *end || !isfinite(days) || days < 0 || days > 36500)
        return ctl_fail(x, CTL_USAGE, "usage: prune --dead-older-than DAYS (a number of days, "
                                      "0 to 36500)");
    double cutoff = ctl_now() - days * 86400.0;
    size_t pruned = 0, kept = 0;
    int status = store_prune_dead(x->st, cutoff, &pruned, &kept);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "pruning the dead history");
    if (!ctl_emit_json(x, json_pack("{s:f, s:I, s:I}", "olderThanDays", days, "pruned",
                                    (json_int_t)pruned, "kept", (json_int_t)kept)))
        printf("Pruned %zu finished job(s) created more than %g day(s) ago; %zu kept\n", pruned,
               days, kept);
    return CTL_OK;
}
