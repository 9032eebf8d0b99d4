/*
 * engine.c: the Docker Engine API client of engine.h: HTTP over dockerd's
 * unix socket with libcurl, answers parsed with jansson. Owns the pool of
 * curl easy handles (reused so connections stay open; guarded by the
 * engine's mutex because calls run on several threads), the per-call
 * timeouts, the abort hook, where a 2xx body goes (kept, a sink, a file)
 * and turning a failed transfer or Docker's error answers into err.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/engine.h"
#include "common/grading.h"

#define URL_BASE "http://localhost" VMMS_ENGINE_API

/* One call in progress: what the callbacks see. */
struct call {
    CURL *h;
    const struct vmms_engine_req *req;
    struct vmms_engine_resp *resp;
    bool sink_stopped;  /* the sink wanted no more */
    bool too_big;       /* a kept body passed VMMS_ENGINE_BODY_MAX */
    int write_errno;    /* writing to req->download failed */
};

void vmms_engine_init(struct vmms_engine *e, const char *socket, int timeout_s)
{
    memset(e, 0, sizeof *e);
    snprintf(e->socket, sizeof e->socket, "%s", socket);
    e->timeout_s = timeout_s;
    pthread_mutex_init(&e->lock, NULL);
    e->ready = true;
}

static CURL *pool_get(struct vmms_engine *e)
{
    CURL *h = NULL;
    pthread_mutex_lock(&e->lock);
    if (e->npool > 0)
        h = e->pool[--e->npool];
    pthread_mutex_unlock(&e->lock);
    return h ? h : curl_easy_init();
}

static void pool_put(struct vmms_engine *e, CURL *h)
{
    curl_easy_reset(h); /* keeps the open connection for the next call */
    pthread_mutex_lock(&e->lock);
    if (e->npool < VMMS_ENGINE_POOL_MAX) {
        e->pool[e->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&e->lock);
    if (h)
        curl_easy_cleanup(h);
}

void vmms_engine_destroy(struct vmms_engine *e)
{
    if (!e->ready)
        return;
    pthread_mutex_lock(&e->lock);
    for (int i = 0; i < e->npool; i++)
        curl_easy_cleanup(e->pool[i]);
    e->npool = 0;
    pthread_mutex_unlock(&e->lock);
    pthread_mutex_destroy(&e->lock);
    e->ready = false;
}

/* A 2xx body, when the request streams it: to the sink or the file. */
static size_t stream_body(struct call *c, const char *data, size_t n)
{
    const struct vmms_engine_req *req = c->req;
    if (req->sink) {
        if (req->sink(data, n, req->sink_arg) != n) {
            c->sink_stopped = true;
            return 0;
        }
        return n;
    }
    errno = 0;
    if (fwrite(data, 1, n, req->download) != n) {
        c->write_errno = errno ? errno : EIO;
        return 0;
    }
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct call *c = arg;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
    if ((c->req->sink || c->req->download) && code >= 200 && code < 300)
        return stream_body(c, data, n);
    struct vmms_engine_resp *r = c->resp;
    if (r->len + n > (size_t)VMMS_ENGINE_BODY_MAX) {
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

/* The request body options of c: POST with its JSON payload (may be NULL)
 * or its upload stream; any other method but GET named as is. */
static void set_body(struct call *c, const char *payload)
{
    const struct vmms_engine_req *req = c->req;
    CURL *h = c->h;
    if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        if (req->upload) {
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
            curl_easy_setopt(h, CURLOPT_READDATA, req->upload);
            if (req->upload_size >= 0)
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->upload_size);
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(payload ? strlen(payload) : 0));
        }
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
}

/* Every option of c's transfer but its body: where, how long, callbacks. */
static void set_transfer(struct vmms_engine *e, struct call *c, const char *url,
                         long timeout_ms, struct curl_slist *hdrs, char *curlerr)
{
    const struct vmms_engine_req *req = c->req;
    CURL *h = c->h;
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, e->socket);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
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
}

/* What a finished transfer (curl's cc) means for the caller: VMMS_OK or
 * the status engine.h's vmms_engine_call names, with err. */
static int transfer_result(const struct vmms_engine *e, const struct call *c, CURLcode cc,
                           long timeout_ms, const char *curlerr, char *err, size_t errlen)
{
    const char *m = c->req->method, *p = c->req->path;
    if (cc == CURLE_OK)
        return VMMS_OK;
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return vmms_fail(err, errlen, VMMS_TIMEOUT, "Docker %s %s: no answer within %ld ms",
                         m, p, timeout_ms);
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        return vmms_fail(err, errlen, VMMS_ERR, "Docker %s %s: aborted", m, p);
    if (cc == CURLE_WRITE_ERROR && c->sink_stopped)
        return VMMS_OK; /* the sink had all it wanted */
    if (cc == CURLE_WRITE_ERROR && c->too_big)
        return vmms_fail(err, errlen, VMMS_ERR, "Docker %s %s: answer larger than %ld bytes",
                         m, p, VMMS_ENGINE_BODY_MAX);
    if (cc == CURLE_WRITE_ERROR && c->write_errno)
        return vmms_fail(err, errlen, VMMS_ERR, "Docker %s %s: cannot write the answer: %s",
                         m, p, strerror(c->write_errno));
    return vmms_fail(err, errlen, daemon_gone(cc) ? VMMS_UNAVAILABLE : VMMS_ERR,
                     "cannot talk to Docker at %s (%s %s): %s; is dockerd running?",
                     e->socket, m, p, curlerr[0] ? curlerr : curl_easy_strerror(cc));
}

/* hdrs plus "X-Registry-Auth: v" (v a secret: the line on the stack is
 * wiped once curl has its copy). */
static struct curl_slist *auth_header(struct curl_slist *hdrs, const char *v)
{
    char line[8192];
    int n = snprintf(line, sizeof line, "X-Registry-Auth: %s", v);
    struct curl_slist *out = n > 0 && (size_t)n < sizeof line ? curl_slist_append(hdrs, line)
                                                             : NULL;
    explicit_bzero(line, sizeof line);
    return out ? out : hdrs; /* (too long or no memory: sent without, Docker says 401) */
}

/* Frees the header list, every line wiped first (one may hold a secret). */
static void headers_free(struct curl_slist *hdrs)
{
    for (struct curl_slist *l = hdrs; l; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(hdrs);
}

int vmms_engine_call(struct vmms_engine *e, const struct vmms_engine_req *req,
                     struct vmms_engine_resp *resp, char *err, size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    char url[2048];
    int un = snprintf(url, sizeof url, "%s%s", URL_BASE, req->path);
    if (un < 0 || (size_t)un >= sizeof url)
        return vmms_fail(err, errlen, VMMS_ERR, "Docker API path too long");
    CURL *h = pool_get(e);
    if (h == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory (curl handle)");

    char *payload = NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    if (req->json) {
        payload = json_dumps(req->json, JSON_COMPACT);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    } else if (req->upload) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/x-tar");
    }
    if (req->registry_auth)
        hdrs = auth_header(hdrs, req->registry_auth);
    int timeout_s = req->timeout_s > 0 ? req->timeout_s : e->timeout_s;
    long timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 1000L * timeout_s;
    struct call c = {.h = h, .req = req, .resp = resp};
    char curlerr[CURL_ERROR_SIZE] = "";
    set_transfer(e, &c, url, timeout_ms, hdrs, curlerr);
    set_body(&c, payload);

    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    headers_free(hdrs);
    free(payload);
    pool_put(e, h);

    int rc = transfer_result(e, &c, cc, timeout_ms, curlerr, err, errlen);
    if (rc == VMMS_OK && resp->body)
        resp->json = json_loadb(resp->body, resp->len, JSON_DECODE_ANY, NULL);
    return rc;
}

void vmms_engine_resp_free(struct vmms_engine_resp *resp)
{
    free(resp->body);
    json_decref(resp->json);
    memset(resp, 0, sizeof *resp);
}

int vmms_engine_fail(const struct vmms_engine_resp *resp, const char *what, char *err,
                     size_t errlen)
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
    return vmms_fail(err, errlen, status, "%s: %s (Docker HTTP %ld)", what, clean,
                     resp->status);
}

int vmms_engine_ping(struct vmms_engine *e, int timeout_ms, char *err, size_t errlen)
{
    struct vmms_engine_req req = {.method = "GET", .path = "/_ping", .timeout_ms = timeout_ms,
                                  .fresh = true};
    struct vmms_engine_resp resp;
    int rc = vmms_engine_call(e, &req, &resp, err, errlen);
    if (rc == VMMS_OK && resp.status != 200)
        rc = vmms_engine_fail(&resp, "Docker ping failed", err, errlen);
    vmms_engine_resp_free(&resp);
    return rc == VMMS_OK ? VMMS_OK : VMMS_UNAVAILABLE;
}

const char *vmms_engine_urlencode(const char *s, char *buf, size_t bufsz)
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
