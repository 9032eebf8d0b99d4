/*
 * handlers_job.c: one job's own routes (our extensions): GET /job/KEY/ID/
 * (its record, state and queue position) and POST /cancel/KEY/ID/ (records
 * a cancellation request; the consumer, which owns every job transition,
 * ends the job as cancelled, frees its container and fires its callback).
 */
#include <string.h>

#include "app.h"
#include "log.h"
#include "reply.h"

void h_job(struct http_request *req, struct route_ctx *ctx)
{
    long long id;
    json_t *job = NULL;
    bool dead = false;
    if (!load_job_arg(req, ctx, &id, &job, &dead))
        return;
    long long pos = 0;
    bool cancel = false;
    int status = dead ? STORE_OK : store_queue_position(ctx->app->store, id, &pos);
    if (status == STORE_OK && !dead)
        status = store_cancel_requested(ctx->app->store, id, &cancel);
    if (status != STORE_OK) {
        json_decref(job);
        reply_store_fail(req, ctx, status);
        return;
    }
    json_t *state = json_object_get(job, "state");
    reply_ok(req, "Found job",
             json_pack("{s:O, s:o, s:I, s:b}", "state", state ? state : json_null(), "job", job,
                       "queuePosition", (json_int_t)pos, "cancelRequested", cancel));
}

void h_cancel(struct http_request *req, struct route_ctx *ctx)
{
    long long id;
    json_t *job = NULL;
    bool dead = false;
    if (!load_job_arg(req, ctx, &id, &job, &dead))
        return;
    json_decref(job);
    if (dead) {
        reply_fail(req, ctx, 409, "Job already finished");
        return;
    }
    bool finished = false;
    int status = store_request_cancel(ctx->app->store, id, &finished);
    if (status == STORE_NOT_FOUND) {
        reply_fail(req, ctx, finished ? 409 : 404,
                   finished ? "Job already finished" : "Job not found");
        return;
    }
    if (status != STORE_OK) {
        reply_store_fail(req, ctx, status);
        return;
    }
    log_info("job_cancel_requested", "id=%lld", id);
    reply_ok(req, "Job cancellation requested", json_pack("{s:I}", "jobId", (json_int_t)id));
}
