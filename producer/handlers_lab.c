/*
 * handlers_lab.c: the courselab routes: open (create or list a lab), upload
 * (stream an input file into it) and poll (fetch an output file).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "log.h"
#include "names.h"
#include "reply.h"
#include "upload.h"

void h_open(struct http_request *req, struct route_ctx *ctx)
{
    struct app *app = ctx->app;
    json_t *files = app_memo_get(app, MEMO_OPEN, ctx->lab_dir); /* see app.h */
    if (files) {
        reply_ok(req, "Found directory", json_pack("{s:O}", "files", files));
        return;
    }
    bool created = false;
    char ql[300]; /* log-safe lab name: it may hold spaces or '=' */
    if (lab_open(app->cfg->courselabs, ctx->lab_dir, &created)) {
        int e = errno;
        log_error("lab_open_failed", "lab_dir=%s errno=%d",
                  log_quote(ctx->lab_dir, ql, sizeof ql), e);
        reply_fail(req, ctx, 500, "Cannot create the courselab directory on the server");
        return;
    }
    if (created) {
        log_info("lab_created", "lab_dir=%s", log_quote(ctx->lab_dir, ql, sizeof ql));
        reply_ok(req, "Created directory", json_pack("{s:{}}", "files"));
        return;
    }
    int status = store_lab_files(app->store, ctx->lab_dir, &files);
    if (status != STORE_OK) {
        reply_store_fail(req, ctx, status);
        return;
    }
    app_memo_put(app, MEMO_OPEN, ctx->lab_dir, files);
    reply_ok(req, "Found directory", json_pack("{s:O}", "files", files));
}

static int upload_sink_data(struct http_request *req, const void *data, size_t len)
{
    struct route_ctx *ctx = http_user(req);
    if (upload_write(ctx->state, data, len)) {
        int e = errno;
        char ql[300];
        log_error("upload_write_failed", "lab_dir=%s errno=%d",
                  log_quote(ctx->lab_dir, ql, sizeof ql), e);
        return -1;
    }
    return 0;
}

static void upload_sink_abort(struct http_request *req)
{
    struct route_ctx *ctx = http_user(req);
    upload_free(ctx->state); /* nothing stays on disk */
    ctx->state = NULL;
}

static const struct http_body_sink upload_sink = {upload_sink_data, upload_sink_abort};

static void free_upload(void *state)
{
    upload_free(state);
}

/* Starts streaming the body into a new file in dir; replies on failure. */
void stream_body_to_dir(struct http_request *req, struct route_ctx *ctx, const char *dir)
{
    struct upload *up = upload_begin(dir);
    if (!up) {
        log_error("upload_begin_failed", "dir=%s errno=%d", dir, errno);
        reply_fail(req, ctx, 500, "Cannot store the file on the server");
        return;
    }
    ctx->state = up;
    ctx->free_state = free_upload;
    http_take_body_stream(req, &upload_sink, (size_t)ctx->app->cfg->max_upload_mb << 20);
}

void h_upload_head(struct http_request *req, struct route_ctx *ctx)
{
    const char *filename = http_header(req, "Filename");
    if (!filename || !name_is_safe_str(filename) || !app_is_utf8(filename)) {
        reply_fail(req, ctx, 400, "Invalid or missing Filename header: use 1-255 bytes of UTF-8 "
                                  "without '/', '\\', control characters, '.' or '..'");
        return;
    }
    char dir[PATH_MAX];
    if (!lab_exists(ctx->app->cfg->courselabs, ctx->lab_dir) ||
        lab_path(ctx->app->cfg->courselabs, ctx->lab_dir, NULL, NULL, dir)) {
        reply_fail(req, ctx, 404, "Courselab not found");
        return;
    }
    stream_body_to_dir(req, ctx, dir);
}

void h_upload(struct http_request *req, struct route_ctx *ctx)
{
    struct app *app = ctx->app;
    struct upload *up = ctx->state;
    if (!up || http_body_failed(req)) {
        reply_fail(req, ctx, 500, "Cannot store the file on the server (write failed)");
        return;
    }
    const char *filename = http_header(req, "Filename");
    char md5[33], old[33];
    upload_digest(up, md5);
    int status = store_lab_file_md5(app->store, ctx->lab_dir, filename, old);
    if (status != STORE_OK && status != STORE_NOT_FOUND) {
        reply_store_fail(req, ctx, status);
        return;
    }
    if (status == STORE_OK && strcmp(old, md5) == 0 &&
        lab_has_file(app->cfg->courselabs, ctx->lab_dir, filename)) {
        reply_ok(req, "File exists", NULL);
        return;
    }
    char q[300], ql[300];
    if (upload_commit(up, filename)) {
        int e = errno;
        log_error("upload_commit_failed", "lab_dir=%s errno=%d",
                  log_quote(ctx->lab_dir, ql, sizeof ql), e);
        reply_fail(req, ctx, 500, "Cannot store the file on the server");
        return;
    }
    status = store_set_lab_file(app->store, ctx->lab_dir, filename, md5);
    app_memo_drop(app, MEMO_OPEN);
    if (status != STORE_OK) {
        reply_store_fail(req, ctx, status);
        return;
    }
    log_info("file_uploaded", "lab_dir=%s file=%s bytes=%zu md5=%s",
             log_quote(ctx->lab_dir, ql, sizeof ql), log_quote(filename, q, sizeof q),
             upload_size(up), md5);
    reply_ok(req, "Uploaded file", NULL);
}

void h_poll(struct http_request *req, struct route_ctx *ctx)
{
    const char *name = ctx->args[2];
    char path[PATH_MAX];
    if (!name_is_safe_str(name) ||
        lab_path(ctx->app->cfg->courselabs, ctx->lab_dir, "output", name, path)) {
        reply_fail(req, ctx, 400, "Invalid output file name");
        return;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        reply_fail(req, ctx, 404, "Output file not found");
        return;
    }
    http_reply_file(req, 200, "application/octet-stream", fd, sb.st_size);
}
