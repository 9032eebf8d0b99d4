/*
 * call.c: one EC2 Query API call (ec2.h ec2_call): a form-encoded POST of
 * Action, Version and its parameters to the configured endpoint, signed
 * with SigV4 by libcurl itself (CURLOPT_AWS_SIGV4 "aws:amz:REGION:ec2"; a
 * session token goes in the X-Amz-Security-Token header), its reply parsed
 * by api.c; throttling is retried with doubling backoff. Credentials come
 * from creds.c and are never logged (nor is the request body: it has no
 * secret, but it stays out of logs anyway). Sits above api.c and creds.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "clock.h"
#include "ec2.h"
#include "log.h"

#define API_VERSION "2016-11-15"

/* A reply worth trying again: the API throttled us or was briefly down. */
static bool throttled(const char *code, long http)
{
    return strcmp(code, "RequestLimitExceeded") == 0 || strcmp(code, "Throttling") == 0 ||
           strcmp(code, "ThrottlingException") == 0 || strcmp(code, "Unavailable") == 0 ||
           strcmp(code, "InternalError") == 0 || http == 503;
}

/* Appends "&name=value" (both URL-escaped through esc) to body (cap bytes,
 * used of them filled), growing it. The body, or NULL with it freed when
 * out of memory. */
static char *append_param(CURL *esc, char *body, size_t *cap, size_t *used, const char *name,
                          const char *value)
{
    char *n = curl_easy_escape(esc, name, 0);
    char *v = curl_easy_escape(esc, value, 0);
    size_t need = *used + (n ? strlen(n) : 0) + (v ? strlen(v) : 0) + 3;
    if (n && v && need > *cap) {
        while (*cap < need)
            *cap *= 2;
        char *nb = realloc(body, *cap);
        if (nb == NULL) {
            free(body);
            body = NULL;
        } else {
            body = nb;
        }
    }
    if (body && n && v)
        *used += (size_t)snprintf(body + *used, *cap - *used, "&%s=%s", n, v);
    else if (body) {
        free(body);
        body = NULL;
    }
    curl_free(n);
    curl_free(v);
    return body;
}

/* The form-encoded request body "Action=...&Version=...&params" in *body
 * (the caller frees it). VMMS_OK or a VMMS error in err. */
static int build_body(const char *action, const struct ec2_params *params, char **body,
                      char *err, size_t errlen)
{
    CURL *esc = curl_easy_init();
    if (esc == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot make an HTTP handle");
    size_t cap = 256, used = 0;
    char *b = malloc(cap);
    used = b ? (size_t)snprintf(b, cap, "Action=%s&Version=" API_VERSION, action) : 0;
    for (size_t i = 0; b && params && i < params->n; i++)
        b = append_param(esc, b, &cap, &used, params->v[i].name, params->v[i].value);
    curl_easy_cleanup(esc);
    if (b == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    *body = b;
    return VMMS_OK;
}

/* The request's headers: the form's content type, and the session token
 * when cr has one (its copy on the stack wiped). */
static struct curl_slist *make_headers(const struct ec2_creds *cr)
{
    struct curl_slist *hdrs =
        curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded; charset=utf-8");
    if (cr->token[0]) {
        char th[2200];
        snprintf(th, sizeof th, "X-Amz-Security-Token: %s", cr->token);
        hdrs = curl_slist_append(hdrs, th);
        memset(th, 0, sizeof th);
    }
    return hdrs;
}

/* POSTs body (signed with cr) until it succeeds, fails for good, runs out
 * of api_retries or the plugin stops; throttling waits a doubling backoff
 * (at most 30 s) between tries. The reply in r, the last try's index in
 * *attempt. VMMS_OK or a VMMS error in err. */
static int post_with_retries(struct ec2_ctx *ctx, const char *action, struct curl_slist *hdrs,
                             const char *body, const struct ec2_creds *cr, struct ec2_reply *r,
                             int *attempt, char *err, size_t errlen)
{
    char sig[96];
    snprintf(sig, sizeof sig, "aws:amz:%s:ec2", ctx->cfg.region);
    long backoff = ctx->cfg.api_backoff_ms;
    int rc;
    for (*attempt = 0;; (*attempt)++) {
        char *out = NULL;
        size_t len = 0;
        long http = 0;
        rc = ec2_http("POST", ctx->cfg.endpoint, hdrs, body, sig, cr->key_id, cr->secret,
                      1000L * ctx->cfg.api_timeout_s, &out, &len, &http, err, errlen);
        r->http = (int)http;
        if (rc == VMMS_OK)
            rc = ec2_parse_reply(action, out, len, http, r, err, errlen);
        free(out);
        bool again = rc != VMMS_OK &&
                     (r->code[0] ? throttled(r->code, http) : (http == 0 || http == 503));
        if (!again || *attempt >= ctx->cfg.api_retries || atomic_load(&ctx->stopping))
            return rc;
        char q[600];
        log_warn("ec2_retry", "action=%s attempt=%d code=%s backoff_ms=%ld err=%s", action,
                 *attempt + 1, r->code[0] ? r->code : "-", backoff, log_quote(err, q, sizeof q));
        clock_sleep_ms(backoff);
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
        r->code[0] = '\0';
    }
}

int ec2_call(struct ec2_ctx *ctx, const char *action, const struct ec2_params *params,
             struct ec2_reply *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (params && params->oom)
        return vmms_fail(err, errlen, VMMS_ERR, "EC2 %s: a parameter does not fit", action);
    struct ec2_creds cr;
    int rc = ec2_creds_get(ctx, &cr, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    char *body = NULL;
    rc = build_body(action, params, &body, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    struct curl_slist *hdrs = make_headers(&cr);
    long t0 = clock_mono_ms();
    int attempt = 0;
    rc = post_with_retries(ctx, action, hdrs, body, &cr, r, &attempt, err, errlen);
    curl_slist_free_all(hdrs);
    free(body);
    memset(&cr, 0, sizeof cr);
    log_debug("ec2_call", "action=%s rc=%d http=%d code=%s attempts=%d ms=%ld", action, rc,
              r->http, r->code[0] ? r->code : "-", attempt + 1, (long)(clock_mono_ms() - t0));
    return rc;
}
