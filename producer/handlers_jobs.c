/*
 * handlers_jobs.c: the job routes: addJob (validate, bound the record's
 * size, queue), jobs (live and dead lists, bounded in bytes) and
 * getPartialOutput.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "addjob.h"
#include "app.h"
#include "log.h"
#include "names.h"
#include "reply.h"
#include "text.h"

void h_add_job(struct http_request *req, struct route_ctx *ctx)
{
    struct app *app = ctx->app;
    if (!lab_exists(app->cfg->courselabs, ctx->lab_dir)) {
        reply_fail(req, ctx, 404, "Courselab not found");
        return;
    }
    json_t *images = NULL, *repos = NULL, *digests = NULL; /* this key's (issue 18) */
    int status = app_usable_images(app, ctx->key_id, &images);
    if (status == STORE_OK && app->cfg->build_push_to[0]) {
        repos = app_owned_repos(app, ctx->key_id);
        status = store_pushed_digests(app->store, ctx->key_id, &digests);
    }
    if (status != STORE_OK) {
        json_decref(images);
        json_decref(repos);
        reply_store_fail(req, ctx, status);
        return;
    }
    struct evbuffer *body = http_body(req);
    size_t len = evbuffer_get_length(body);
    const char *text = (const char *)evbuffer_pullup(body, (ev_ssize_t)len);
    char err[1024];
    struct addjob_rights rights = {images, repos, digests};
    struct job *job = addjob_parse(text ? text : "", len, app->cfg, &rights, app->callbacks,
                                   ctx->args[1], ctx->lab_dir, err, sizeof err);
    json_decref(images);
    json_decref(repos);
    json_decref(digests);
    if (!job) {
        reply_fail(req, ctx, 400, err);
        return;
    }
    job->key_id = strdup(ctx->key_id);
    addjob_schedule(job, app->cfg);
    job_trace(job, "Added job");
    if (!addjob_fits(job, app->cfg, err, sizeof err)) {
        job_free(job);
        reply_fail(req, ctx, 413, err);
        return;
    }
    status = store_add_job(app->store, job);
    app_memo_drop(app, MEMO_INFO);
    if (status == STORE_LIMIT) {
        reply_fail(req, ctx, 429, store_error(app->store));
        job_free(job);
        return;
    }
    if (status != STORE_OK) {
        job_free(job);
        reply_store_fail(req, ctx, status);
        return;
    }
    char q[300], ql[300]; /* a lab name may hold spaces or '=' */
    log_info("job_added", "id=%lld lab_dir=%s name=%s image=%s", (long long)job->id,
             log_quote(ctx->lab_dir, ql, sizeof ql), log_quote(job->name, q, sizeof q),
             job->image);
    reply_ok(req, "Job added", json_pack("{s:I}", "jobId", (json_int_t)job->id));
    job_free(job);
}

/* Bytes kept for the envelope around the jobs (statusId, statusMsg, the
 * cut marker) out of jobs_list_max_kb. */
#define JOBS_ENVELOPE_BYTES 512

/* Appends to own the caller's jobs of jobs, in order, while the answer
 * stays within max bytes (as reply_json writes it); returns how many of the
 * caller's jobs were left out. */
static size_t callers_jobs_within(const struct route_ctx *ctx, json_t *jobs, json_t *own,
                                  size_t max)
{
    size_t used = JOBS_ENVELOPE_BYTES, left = 0, i;
    json_t *j;
    json_array_foreach(jobs, i, j) {
        if (!app_job_is_callers(ctx, j))
            continue;
        size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_ENSURE_ASCII) + 1; /* + ',' */
        if (left || used + n > max) {
            left++;
            continue;
        }
        used += n;
        json_array_append(own, j);
    }
    return left;
}

void h_jobs(struct http_request *req, struct route_ctx *ctx)
{
    const char *which = ctx->args[1];
    if (strcmp(which, "0") != 0 && strcmp(which, "1") != 0) {
        reply_fail(req, ctx, 400, "Invalid deadjobs value: use 0 (live jobs) or 1 (finished jobs)");
        return;
    }
    const struct tango_config *cfg = ctx->app->cfg;
    json_t *jobs = NULL;
    int status = store_list_jobs(ctx->app->store, which[0] == '1', (size_t)cfg->jobs_list_max,
                                 &jobs);
    if (status != STORE_OK) {
        reply_store_fail(req, ctx, status);
        return;
    }
    /* Only the caller's own jobs (the store lists every key's), within
     * jobs_list_max_kb: the first ones in the list's order. */
    json_t *own = json_array();
    size_t left = callers_jobs_within(ctx, jobs, own, (size_t)cfg->jobs_list_max_kb * 1024);
    json_decref(jobs);
    json_t *extra = json_pack("{s:o}", "jobs", own);
    if (left) {
        char msg[200];
        snprintf(msg, sizeof msg, "jobs_list_max_kb (%d KB) reached: %zu jobs shown, %zu left out",
                 cfg->jobs_list_max_kb, json_array_size(own), left);
        json_object_set_new(extra, "truncated", json_true());
        json_object_set_new(extra, "truncatedMsg", json_string(msg));
    }
    reply_ok(req, "Found list of jobs", extra);
}

bool load_job_arg(struct http_request *req, struct route_ctx *ctx, long long *id, json_t **job,
                  bool *dead)
{
    if (parse_job_id(ctx->args[1], id)) {
        reply_fail(req, ctx, 400, "Invalid job id");
        return false;
    }
    int status = store_get_job(ctx->app->store, *id, job, dead);
    if (status == STORE_OK && !app_job_is_callers(ctx, *job)) {
        json_decref(*job);
        *job = NULL;
        status = STORE_NOT_FOUND; /* another key's job: exactly as if there were none */
    }
    if (status == STORE_NOT_FOUND) {
        reply_fail(req, ctx, 404, "Job not found");
        return false;
    }
    if (status != STORE_OK) {
        reply_store_fail(req, ctx, status);
        return false;
    }
    return true;
}

#define PARTIAL_INTEREST_S 30

void h_partial_output(struct http_request *req, struct route_ctx *ctx)
{
    struct app *app = ctx->app;
    long long id;
    json_t *job = NULL;
    bool dead = false;
    if (!load_job_arg(req, ctx, &id, &job, &dead))
        return;
    const char *state = json_string_value(json_object_get(job, "state"));
    bool running = state && (!strcmp(state, "running") || !strcmp(state, "finishing"));
    json_decref(job);
    if (dead) {
        reply_fail(req, ctx, 409, "Job has finished: poll its output file instead");
        return;
    }
    if (!running) {
        reply_fail(req, ctx, 409, "Job is not running yet");
        return;
    }
    /* Tell the consumer someone is watching, so it keeps publishing. */
    int status = store_want_partial(app->store, id, PARTIAL_INTEREST_S);
    char *out = NULL;
    size_t len = 0;
    if (status == STORE_OK)
        status = store_partial_output(app->store, id, &out, &len);
    if (status != STORE_OK && status != STORE_NOT_FOUND) {
        reply_store_fail(req, ctx, status);
        return;
    }
    size_t clean_len;
    char *clean = utf8_sanitize(out ? out : "", out ? len : 0, &clean_len);
    free(out);
    reply_ok(req, "Partial output obtained",
             json_pack("{s:s%}", "output", clean, clean_len));
    free(clean);
}
