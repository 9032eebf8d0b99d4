/*
 * docker_api.c: the one place that talks HTTP to the Docker Engine API over
 * its unix socket (libcurl + jansson). Owns the small pool of curl easy
 * handles (reused so connections stay open; guarded by a mutex because ops
 * run on several threads), the per-call timeouts, the abort hook used by
 * destroy_vm, and turning Docker's {"message": ...} error bodies into err.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ld.h"

struct call {
    CURL *h;
    const struct ld_request *req;
    struct ld_response *resp;
    bool sink_stopped;
    bool too_big;
};

static CURL *pool_get(struct ld_ctx *ctx)
{
    CURL *h = NULL;
    pthread_mutex_lock(&ctx->pool_lock);
    if (ctx->npool > 0)
        h = ctx->pool[--ctx->npool];
    pthread_mutex_unlock(&ctx->pool_lock);
    return h ? h : curl_easy_init();
}

static void pool_put(struct ld_ctx *ctx, CURL *h)
{
    curl_easy_reset(h); /* keeps the open connection for the next call */
    pthread_mutex_lock(&ctx->pool_lock);
    if (ctx->npool < LD_POOL_MAX) {
        ctx->pool[ctx->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&ctx->pool_lock);
    if (h)
        curl_easy_cleanup(h);
}

void ld_pool_free(struct ld_ctx *ctx)
{
    pthread_mutex_lock(&ctx->pool_lock);
    for (int i = 0; i < ctx->npool; i++)
        curl_easy_cleanup(ctx->pool[i]);
    ctx->npool = 0;
    pthread_mutex_unlock(&ctx->pool_lock);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct call *c = arg;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
    if (c->req->sink && code >= 200 && code < 300) {
        if (c->req->sink(data, n, c->req->sink_arg) != n) {
            c->sink_stopped = true;
            return 0;
        }
        return n;
    }
    struct ld_response *r = c->resp;
    if (r->len + n > (size_t)LD_BODY_MAX) {
        c->too_big = true;
        return 0;
    }
    char *nb = realloc(r->body, r->len + n + 1);
    if (nb == NULL)
        return 0;
    memcpy(nb + r->len, data, n);
    r->body = nb;
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t on_upload(char *buf, size_t size, size_t nitems, void *arg)
{
    FILE *f = arg;
    size_t n = fread(buf, 1, size * nitems, f);
    if (n == 0 && ferror(f))
        return CURL_READFUNC_ABORT;
    return n;
}

static int on_progress(void *arg, curl_off_t dlt, curl_off_t dln, curl_off_t ult,
                       curl_off_t uln)
{
    (void)dlt, (void)dln, (void)ult, (void)uln;
    atomic_int *abort = arg;
    return atomic_load(abort) ? 1 : 0;
}

/* Whether a transfer failed because dockerd is not there: the socket
 * refused or missing (not running, restarting), or the connection cut
 * before or while it answered (it stopped mid-call). */
static bool daemon_gone(CURLcode cc)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_GOT_NOTHING || cc == CURLE_RECV_ERROR ||
           cc == CURLE_SEND_ERROR || cc == CURLE_PARTIAL_FILE;
}

int ld_docker(struct ld_ctx *ctx, const struct ld_request *req,
              struct ld_response *resp, char *err, size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    CURL *h = pool_get(ctx);
    if (h == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory (curl handle)");

    char url[2048];
    int un = snprintf(url, sizeof url, "%s%s", LD_API_BASE, req->path);
    if (un < 0 || (size_t)un >= sizeof url) {
        pool_put(ctx, h);
        return vmms_fail(err, errlen, VMMS_ERR, "Docker API path too long");
    }
    char *payload = NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    if (req->json) {
        payload = json_dumps(req->json, JSON_COMPACT);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    } else if (req->upload) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/x-tar");
    }
    int timeout = req->timeout_s > 0 ? req->timeout_s : ctx->cfg.api_timeout_s;
    struct call c = {.h = h, .req = req, .resp = resp};
    char curlerr[CURL_ERROR_SIZE] = "";

    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, ctx->cfg.socket);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 1000L * timeout;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curlerr);
    if (req->fresh) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    }
    if (req->abort) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, req->abort);
    }
    if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (req->upload) {
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
            curl_easy_setopt(h, CURLOPT_READDATA, req->upload);
            if (req->upload_size >= 0)
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                                 (curl_off_t)req->upload_size);
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(payload ? strlen(payload) : 0));
        }
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }

    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(hdrs);
    free(payload);
    pool_put(ctx, h);

    int rc = VMMS_OK;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = vmms_fail(err, errlen, VMMS_TIMEOUT, "Docker %s %s: no answer within %ld ms",
                     req->method, req->path, timeout_ms);
    } else if (cc == CURLE_ABORTED_BY_CALLBACK) {
        rc = vmms_fail(err, errlen, VMMS_ERR, "Docker %s %s: aborted", req->method, req->path);
    } else if (cc == CURLE_WRITE_ERROR && c.sink_stopped) {
        rc = VMMS_OK; /* the sink had all it wanted */
    } else if (cc == CURLE_WRITE_ERROR && c.too_big) {
        rc = vmms_fail(err, errlen, VMMS_ERR, "Docker %s %s: answer larger than %ld bytes",
                     req->method, req->path, LD_BODY_MAX);
    } else if (cc != CURLE_OK) {
        rc = vmms_fail(err, errlen, daemon_gone(cc) ? VMMS_UNAVAILABLE : VMMS_ERR,
                     "cannot talk to Docker at %s (%s %s): %s; is dockerd running?",
                     ctx->cfg.socket, req->method, req->path,
                     curlerr[0] ? curlerr : curl_easy_strerror(cc));
    }
    if (rc == VMMS_OK && resp->body)
        resp->json = json_loadb(resp->body, resp->len, JSON_DECODE_ANY, NULL);
    return rc;
}

int ld_ping(void *vctx, int timeout_ms, char *err, size_t errlen)
{
    struct ld_ctx *ctx = vctx;
    /* On a new connection: a stopping dockerd still answers on the ones
     * it has open, while it refuses new ones (every other call's). */
    struct ld_request req = {.method = "GET", .path = "/_ping", .timeout_ms = timeout_ms,
                             .fresh = true};
    struct ld_response resp;
    int rc = ld_docker(ctx, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 200)
        rc = ld_docker_fail(&resp, "Docker ping failed", err, errlen);
    ld_response_free(&resp);
    return rc == VMMS_OK ? VMMS_OK : VMMS_UNAVAILABLE;
}

void ld_response_free(struct ld_response *resp)
{
    free(resp->body);
    json_decref(resp->json);
    memset(resp, 0, sizeof *resp);
}

int ld_docker_fail(const struct ld_response *resp, const char *what,
                   char *err, size_t errlen)
{
    const char *msg = NULL;
    if (json_is_object(resp->json))
        msg = json_string_value(json_object_get(resp->json, "message"));
    if (msg == NULL && resp->body && resp->len < 400)
        msg = resp->body;
    char clean[512];
    size_t o = 0;
    for (const char *p = msg ? msg : "(no message)"; *p && o + 1 < sizeof clean; p++)
        clean[o++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
    while (o > 0 && clean[o - 1] == ' ')
        o--;
    clean[o] = '\0';
    /* 502..504: dockerd (or a proxy before it) says it cannot serve now.
     * Plain 500 is how Docker reports most request-specific failures (a
     * tarball it cannot read, a runtime that refused one container), so it
     * stays VMMS_ERR; the consumer asks ping after any failure anyway. */
    int status = resp->status == 404                          ? VMMS_NOT_FOUND
                 : resp->status >= 502 && resp->status <= 504 ? VMMS_UNAVAILABLE
                                                              : VMMS_ERR;
    return vmms_fail(err, errlen, status,
                   "%s: %s (Docker HTTP %ld)", what, clean, resp->status);
}

const char *ld_urlencode(const char *s, char *buf, size_t bufsz)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && o + 4 < bufsz; p++) {
        unsigned char ch = *p;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '~' || ch == '-') {
            buf[o++] = (char)ch;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        }
    }
    if (bufsz)
        buf[o < bufsz ? o : bufsz - 1] = '\0';
    return buf;
}
