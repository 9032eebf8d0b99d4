/*
 * callback_request.c: builds and reads one callback request (see
 * callback_request.h). Nothing here talks to Redis or decides retries.
 */
#include "callback_request.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p;
    (void)u;
    return s * n;
}

void cb_url_hosts(const char *url, char *log_host, size_t loglen, char *key, size_t keylen)
{
    snprintf(log_host, loglen, "?");
    snprintf(key, keylen, "?");
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        snprintf(log_host, loglen, "%s", host);
        snprintf(key, keylen, "%s:%s", host, port);
        for (char *p = key; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* A callback id safe to put in a header as is (ids are "job-fence"). */
static int header_safe(const char *s)
{
    if (!s || !*s || strlen(s) > 100)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-_.:", *s))
            return 0;
    return 1;
}

static struct curl_slist *make_headers(const struct cb_request_spec *spec)
{
    char line[600];
    struct curl_slist *h = NULL;
    snprintf(line, sizeof line, "Filename: %s", spec->name);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "X-Tango-Job-Id: %lld", spec->job);
    h = curl_slist_append(h, line);
    if (header_safe(spec->id)) {
        snprintf(line, sizeof line, "X-Tango-Callback-Id: %s", spec->id);
        h = curl_slist_append(h, line);
    }
    snprintf(line, sizeof line, "X-Tango-Callback-Attempt: %d", spec->attempt);
    h = curl_slist_append(h, line);
    return curl_slist_append(h, "Expect:");
}

static void set_options(struct cb_request *req, const struct cb_request_spec *spec)
{
    CURL *e = req->easy;
    curl_easy_setopt(e, CURLOPT_URL, spec->url);
    curl_easy_setopt(e, CURLOPT_RESOLVE, req->resolve);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_MIMEPOST, req->mime);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
    long connect_ms = spec->connect_timeout_ms < spec->timeout_ms ? spec->connect_timeout_ms
                                                                  : spec->timeout_ms;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, spec->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PRIVATE, req);
}

int cb_request_init(struct cb_request *req, const struct cb_request_spec *spec, char *err,
                    size_t errlen)
{
    memset(req, 0, sizeof *req);
    req->easy = curl_easy_init();
    req->mime = req->easy ? curl_mime_init(req->easy) : NULL;
    curl_mimepart *part = req->mime ? curl_mime_addpart(req->mime) : NULL;
    if (!part) {
        snprintf(err, errlen, "out of memory");
        cb_request_free(req);
        return -1;
    }
    curl_mime_name(part, "file");
    if (curl_mime_filedata(part, spec->path) != CURLE_OK) {
        snprintf(err, errlen, "cannot read output file");
        cb_request_free(req);
        return -1;
    }
    curl_mime_filename(part, spec->name);
    req->resolve = spec->pin[0] ? curl_slist_append(NULL, spec->pin) : NULL;
    req->headers = make_headers(spec);
    if (!req->headers || (spec->pin[0] && !req->resolve)) {
        snprintf(err, errlen, "out of memory");
        cb_request_free(req);
        return -1;
    }
    set_options(req, spec);
    return 0;
}

int cb_request_result(struct cb_request *req, CURLcode rc, char *err, size_t errlen)
{
    if (rc != CURLE_OK) {
        /* curl's own text, never its error buffer: that may quote the URL */
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
        return -1;
    }
    long code = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299) {
        snprintf(err, errlen, "HTTP %ld", code);
        return -1;
    }
    return 0;
}

void cb_request_free(struct cb_request *req)
{
    if (req->easy)
        curl_easy_cleanup(req->easy); /* first: it uses the rest */
    curl_mime_free(req->mime);
    curl_slist_free_all(req->headers);
    curl_slist_free_all(req->resolve);
    memset(req, 0, sizeof *req);
}
