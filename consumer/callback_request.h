/*
 * callback_request.h: one callback's HTTP request, as a libcurl easy handle
 * for the sender's multi handle (callback.c). The body is what Autolab
 * parses: multipart/form-data with the output file as part "file" (its
 * file name the job's output file name) and a "Filename" header. Headers
 * that let a receiver drop a repeat (a retry, or a resend after a crash):
 *   X-Tango-Job-Id: the job's id
 *   X-Tango-Callback-Id: this callback's id (the same on every attempt)
 *   X-Tango-Callback-Attempt: 1 on the first try, 2 on the first retry, ...
 * Protections: the host's judged address is pinned (CURLOPT_RESOLVE), no
 * proxy, redirects are not followed, http and https only; a connect
 * timeout and a timeout for the whole request.
 */
#ifndef TANGO_CALLBACK_REQUEST_H
#define TANGO_CALLBACK_REQUEST_H

#include <stddef.h>
#include <curl/curl.h>

/* What one attempt sends. */
struct cb_request_spec {
    const char *url;
    const char *pin;        /* a CURLOPT_RESOLVE entry, or "" (an IP literal) */
    const char *path;       /* the output file */
    const char *name;       /* its name as the receiver sees it */
    long long job;
    const char *id;         /* the callback's id, or NULL (then no such header) */
    int attempt;            /* 1-based */
    long connect_timeout_ms;
    long timeout_ms;        /* the whole request */
};

struct cb_request {
    CURL *easy;
    curl_mime *mime;
    struct curl_slist *headers;
    struct curl_slist *resolve;
};

/* Makes req's easy handle ready to add to a multi handle. Returns 0, or -1
 * with the reason in err (the output file cannot be read, no memory); req
 * holds nothing to free then. */
int cb_request_init(struct cb_request *req, const struct cb_request_spec *spec, char *err,
                    size_t errlen);

/* The outcome of a finished transfer (rc from CURLMSG_DONE): 0 if the
 * receiver answered 2xx, else -1 with the reason in err. */
int cb_request_result(struct cb_request *req, CURLcode rc, char *err, size_t errlen);

/* Frees what init made (the easy handle must be out of any multi handle). */
void cb_request_free(struct cb_request *req);

/* The URL's host, for logs (never the path or query: they may hold keys),
 * and the key its per-host limits go by: "host:port" (the scheme's port
 * when none is given), lower case. "?" when the URL does not parse. */
void cb_url_hosts(const char *url, char *log_host, size_t loglen, char *key, size_t keylen);

#endif
