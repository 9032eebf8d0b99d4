/*
 * callback.c: delivering job callbacks. Each finished job with a callback
 * URL leaves an entry in Redis (queued atomically with the job's move to
 * dead). This thread claims due entries, POSTs the output file as
 * multipart/form-data (part "file", header "Filename") with libcurl, and on
 * failure reschedules with exponential backoff; after callback_attempts the
 * entry moves to callbacks:failed for an operator. A claimed entry is only
 * hidden, never removed, until delivered: a crash means a resend, never a loss.
 *
 * Before each attempt the URL's host is resolved and judged by the callback
 * policy (callback_allow.h); the connection is pinned to the address judged
 * (CURLOPT_RESOLVE), proxies are off and redirects are not followed, so
 * neither DNS rebinding nor a redirect reaches an address the policy
 * refuses. A refused callback is given up at once (retrying cannot help).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "callback_allow.h"
#include "consumer.h"
#include "log.h"
#include "store_metrics.h"
#include "clock.h"

#define BACKOFF_CAP_MS (10 * 60 * 1000)
#define WAKE_MS 200

static size_t discard(char *p, size_t s, size_t n, void *u)
{
    (void)p; (void)u;
    return s * n;
}

/* The URL's host, for logs (never the path or query: they may hold keys). */
static void url_host(const char *url, char *out, size_t len)
{
    snprintf(out, len, "?");
    CURLU *u = curl_url();
    char *host = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        snprintf(out, len, "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
}

/* Returns 0 when the receiver answered 2xx. pin: a CURLOPT_RESOLVE entry,
 * or "" (an IP literal). */
static int post_file(CURL *curl, const char *url, const char *pin, const char *path,
                     const char *name, int timeout_s, char *err, size_t errlen)
{
    curl_easy_reset(curl);
    struct curl_slist *resolve = pin[0] ? curl_slist_append(NULL, pin) : NULL;
    curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_mime *mime = curl_mime_init(curl);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    if (curl_mime_filedata(part, path) != CURLE_OK) {
        snprintf(err, errlen, "cannot read output file");
        curl_mime_free(mime);
        curl_slist_free_all(resolve);
        return -1;
    }
    curl_mime_filename(part, name);
    char header[600];
    snprintf(header, sizeof header, "Filename: %s", name);
    struct curl_slist *headers = curl_slist_append(NULL, header);
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)timeout_s);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)timeout_s);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(curl);
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(headers);
    curl_mime_free(mime);
    curl_easy_setopt(curl, CURLOPT_RESOLVE, NULL);
    curl_slist_free_all(resolve);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
        return -1;
    }
    if (code < 200 || code > 299) {
        snprintf(err, errlen, "HTTP %ld", code);
        return -1;
    }
    return 0;
}

static void deliver(struct consumer *c, struct store *st, CURL *curl,
                    const struct callback_policy *policy, json_t *cb, const char *member)
{
    const char *url = json_string_value(json_object_get(cb, "url"));
    const char *path = json_string_value(json_object_get(cb, "path"));
    const char *name = json_string_value(json_object_get(cb, "name"));
    long long job = json_integer_value(json_object_get(cb, "job"));
    int attempts = (int)json_integer_value(json_object_get(cb, "attempts"));
    char host[256], err[400] = "", pin[CALLBACK_PIN_MAX] = "";
    url_host(url ? url : "", host, sizeof host);
    int judged = !policy ? -1 : url ? callback_resolve(policy, url, pin, err, sizeof err) : -1;
    if (!policy)
        snprintf(err, sizeof err, "config callback_allow is not valid: no callback is sent");
    if (judged == 0 && path && name &&
        post_file(curl, url, pin, path, name, c->cfg->callback_timeout_s, err, sizeof err) == 0) {
        store_callback_done(st, member);
        store_incr_counter(st, COUNTER_CALLBACKS_DELIVERED, 1);
        log_info("callback_sent", "id=%lld host=%s attempts=%d", job, host, attempts + 1);
        return;
    }
    attempts++;
    store_incr_counter(st, COUNTER_CALLBACK_FAILURES, 1);
    if (attempts >= c->cfg->callback_attempts || !url || !path || !name ||
        (judged < 0 && policy)) {
        store_callback_give_up(st, member);
        store_incr_counter(st, COUNTER_CALLBACKS_GIVEN_UP, 1);
        log_error("callback_given_up", "id=%lld host=%s attempts=%d error=\"%s\"", job, host,
                  attempts, err);
        return;
    }
    long long delay = c->cfg->callback_backoff_ms;
    for (int i = 1; i < attempts && delay < BACKOFF_CAP_MS; i++)
        delay *= 2;
    if (delay > BACKOFF_CAP_MS)
        delay = BACKOFF_CAP_MS;
    json_object_set_new(cb, "attempts", json_integer(attempts));
    store_callback_retry(st, member, cb, delay);
    log_warn("callback_failed", "id=%lld host=%s attempts=%d retry_in_ms=%lld error=\"%s\"",
             job, host, attempts, delay, err);
}

void *callback_main(void *arg)
{
    struct consumer *c = arg;
    struct store *st = store_new(c->cfg);
    CURL *curl = curl_easy_init();
    struct callback_policy *policy = NULL;
    char perr[300];
    if (callback_policy_new(c->cfg->callback_allow, c->cfg->ncallback_allow, &policy, perr,
                            sizeof perr))
        log_error("callback_policy_invalid", "error=\"%s\"", perr); /* every attempt fails */
    int hide_ms = (c->cfg->callback_timeout_s * 2 + 5) * 1000;
    while (!atomic_load(&c->stopping)) {
        if (!atomic_load(&c->leader)) {
            usleep(200 * 1000);
            continue;
        }
        json_t *cb = NULL;
        char *member = NULL;
        int status = store_callback_claim(st, hide_ms, &cb, &member);
        if (status == STORE_NOT_FOUND) {
            /* Nothing due: sleep until a job queues one (or a retry may be
             * due: those are rechecked at least every WAKE_MS). */
            store_callback_wait(st, WAKE_MS);
            continue;
        }
        if (status != STORE_OK) {
            usleep(500 * 1000);
            continue;
        }
        deliver(c, st, curl, policy, cb, member);
        json_decref(cb);
        free(member);
    }
    curl_easy_cleanup(curl);
    callback_policy_free(policy);
    store_free(st);
    return NULL;
}
