/*
 * api.c: the EC2 Query API (and the one HTTP helper creds.c shares). A call
 * is a form-encoded POST of Action, Version and its parameters to the
 * configured endpoint, signed with SigV4 by libcurl itself
 * (CURLOPT_AWS_SIGV4 "aws:amz:REGION:ec2"; a session token goes in the
 * X-Amz-Security-Token header); the XML reply (at most EC2_REPLY_MAX bytes)
 * is parsed by libxml2 with no network access and no entity expansion.
 * Throttling is retried with doubling backoff. Owns no state beyond the
 * call; credentials come from creds.c and are never logged (nor is the
 * request body: it has no secret, but it stays out of logs anyway).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <libxml/parser.h>

#include "clock.h"
#include "ec2.h"
#include "log.h"

#define API_VERSION "2016-11-15"

struct buf {
    char *p;
    size_t n;
    size_t max;
    bool over;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *arg)
{
    struct buf *b = arg;
    size_t n = sz * nm;
    if (b->n + n > b->max) {
        b->over = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    char *p = realloc(b->p, b->n + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->n, d, n);
    b->p = p;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

int ec2_http(const char *method, const char *url, const struct curl_slist *headers,
             const char *body, const char *sigv4, const char *user, const char *password,
             long timeout_ms, char **out, size_t *outlen, long *http, char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    *http = 0;
    CURL *h = curl_easy_init();
    if (h == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot make an HTTP handle");
    struct buf b = {.max = EC2_REPLY_MAX};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never an environment proxy: it sees our traffic */
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    } else if (strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    }
    if (sigv4) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, password);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
    curl_easy_cleanup(h);
    if (b.over) {
        free(b.p);
        return vmms_fail(err, errlen, VMMS_ERR, "%s: the reply is over %ld bytes", url,
                         EC2_REPLY_MAX);
    }
    if (rc != CURLE_OK) {
        free(b.p);
        /* the API cannot be reached at all: the back end's outage, not the job's */
        bool gone = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
        return vmms_fail(err, errlen,
                         rc == CURLE_OPERATION_TIMEDOUT ? VMMS_TIMEOUT
                         : gone                         ? VMMS_UNAVAILABLE
                                                        : VMMS_ERR,
                         "%s: %s", url, curl_easy_strerror(rc));
    }
    *out = b.p ? b.p : calloc(1, 1);
    *outlen = b.n;
    return *out ? VMMS_OK : vmms_fail(err, errlen, VMMS_ERR, "out of memory");
}

void ec2_param(struct ec2_params *p, const char *name, const char *fmt, ...)
{
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 16;
        struct ec2_param *v = realloc(p->v, nc * sizeof *v);
        if (v == NULL) {
            p->oom = true;
            return;
        }
        p->v = v;
        p->cap = nc;
    }
    struct ec2_param *e = &p->v[p->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->value, sizeof e->value, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof e->value)
        p->oom = true; /* a value that does not fit is never sent cut short */
}

void ec2_params_free(struct ec2_params *p)
{
    free(p->v);
    memset(p, 0, sizeof *p);
}

void ec2_reply_free(struct ec2_reply *r)
{
    if (r->doc)
        xmlFreeDoc(r->doc);
    r->doc = NULL;
}

xmlNodePtr ec2_child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

const char *ec2_text(xmlNodePtr n, const char *name, char *buf, size_t bufsz)
{
    xmlNodePtr c = ec2_child(n, name);
    xmlChar *t = c ? xmlNodeGetContent(c) : NULL;
    snprintf(buf, bufsz, "%s", t ? (const char *)t : "");
    xmlFree(t);
    return buf;
}

void ec2_items(xmlNodePtr n, const char *list, void (*fn)(xmlNodePtr, void *), void *arg)
{
    for (xmlNodePtr c = ec2_child(n, list) ? ec2_child(n, list)->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, "item") == 0)
            fn(c, arg);
}

const char *ec2_tag_value(xmlNodePtr item, const char *key, char *buf, size_t bufsz)
{
    buf[0] = '\0';
    char k[160];
    for (xmlNodePtr c = ec2_child(ec2_child(item, "tagSet"), "item"); c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp(ec2_text(c, "key", k, sizeof k), key) == 0)
            return ec2_text(c, "value", buf, bufsz);
    return buf;
}

static bool throttled(const char *code, long http)
{
    return strcmp(code, "RequestLimitExceeded") == 0 || strcmp(code, "Throttling") == 0 ||
           strcmp(code, "ThrottlingException") == 0 || strcmp(code, "Unavailable") == 0 ||
           strcmp(code, "InternalError") == 0 || http == 503;
}

int ec2_parse_reply(const char *action, const char *body, size_t len, long http,
                    struct ec2_reply *r, char *err, size_t errlen)
{
    r->doc = NULL;
    r->code[0] = '\0';
    if (len > (size_t)EC2_REPLY_MAX)
        return vmms_fail(err, errlen, VMMS_ERR, "EC2 %s: the reply is over %ld bytes", action,
                         EC2_REPLY_MAX);
    /* No EC2 reply has a DOCTYPE: without one there is no entity to expand
     * (only the predefined five and character references), internal or
     * external. */
    if (memmem(body, len, "<!DOCTYPE", 9) != NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "EC2 %s: HTTP %ld reply with a DOCTYPE: refused",
                         action, http);
    xmlDocPtr doc = xmlReadMemory(body, (int)len, "ec2-reply.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc && (doc->intSubset || doc->extSubset)) {
        xmlFreeDoc(doc);
        return vmms_fail(err, errlen, VMMS_ERR, "EC2 %s: HTTP %ld reply with a DOCTYPE: refused",
                         action, http);
    }
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (root == NULL) {
        if (doc)
            xmlFreeDoc(doc);
        snprintf(r->code, sizeof r->code, "%s", http == 503 ? "Unavailable" : "");
        return vmms_fail(err, errlen, VMMS_ERR, "EC2 %s: HTTP %ld with no XML reply", action,
                         http);
    }
    xmlNodePtr e = ec2_child(ec2_child(root, "Errors"), "Error");
    if (e == NULL && strcmp((const char *)root->name, "Error") == 0)
        e = root;
    if (e != NULL || http < 200 || http >= 300) {
        char msg[400] = "";
        if (e) {
            ec2_text(e, "Code", r->code, sizeof r->code);
            ec2_text(e, "Message", msg, sizeof msg);
        }
        xmlFreeDoc(doc);
        return vmms_fail(err, errlen, VMMS_ERR, "EC2 %s: %s: %s (HTTP %ld)", action,
                         r->code[0] ? r->code : "error", msg[0] ? msg : "no message", http);
    }
    r->doc = doc;
    return VMMS_OK;
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
    CURL *esc = curl_easy_init();
    if (esc == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot make an HTTP handle");
    size_t cap = 256, used = 0;
    char *body = malloc(cap);
    used = body ? (size_t)snprintf(body, cap, "Action=%s&Version=" API_VERSION, action) : 0;
    for (size_t i = 0; body && params && i < params->n; i++) {
        char *n = curl_easy_escape(esc, params->v[i].name, 0);
        char *v = curl_easy_escape(esc, params->v[i].value, 0);
        size_t need = used + (n ? strlen(n) : 0) + (v ? strlen(v) : 0) + 3;
        if (n && v && need > cap) {
            while (cap < need)
                cap *= 2;
            char *nb = realloc(body, cap);
            if (nb == NULL) {
                free(body);
                body = NULL;
            } else {
                body = nb;
            }
        }
        if (body && n && v)
            used += (size_t)snprintf(body + used, cap - used, "&%s=%s", n, v);
        else if (body) {
            free(body);
            body = NULL;
        }
        curl_free(n);
        curl_free(v);
    }
    curl_easy_cleanup(esc);
    if (body == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");

    struct curl_slist *hdrs =
        curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded; charset=utf-8");
    if (cr.token[0]) {
        char th[2200];
        snprintf(th, sizeof th, "X-Amz-Security-Token: %s", cr.token);
        hdrs = curl_slist_append(hdrs, th);
        memset(th, 0, sizeof th);
    }
    char sig[96];
    snprintf(sig, sizeof sig, "aws:amz:%s:ec2", ctx->cfg.region);
    long backoff = ctx->cfg.api_backoff_ms;
    long t0 = clock_mono_ms();
    int attempt = 0;
    for (;; attempt++) {
        char *out = NULL;
        size_t len = 0;
        long http = 0;
        rc = ec2_http("POST", ctx->cfg.endpoint, hdrs, body, sig, cr.key_id, cr.secret,
                      1000L * ctx->cfg.api_timeout_s, &out, &len, &http, err, errlen);
        r->http = (int)http;
        if (rc == VMMS_OK)
            rc = ec2_parse_reply(action, out, len, http, r, err, errlen);
        free(out);
        bool again = rc != VMMS_OK &&
                     (r->code[0] ? throttled(r->code, http) : (http == 0 || http == 503));
        if (!again || attempt >= ctx->cfg.api_retries || atomic_load(&ctx->stopping))
            break;
        char q[600];
        log_warn("ec2_retry", "action=%s attempt=%d code=%s backoff_ms=%ld err=%s", action,
                 attempt + 1, r->code[0] ? r->code : "-", backoff, log_quote(err, q, sizeof q));
        clock_sleep_ms(backoff);
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
        r->code[0] = '\0';
    }
    curl_slist_free_all(hdrs);
    free(body);
    memset(&cr, 0, sizeof cr);
    log_debug("ec2_call", "action=%s rc=%d http=%d code=%s attempts=%d ms=%ld", action, rc,
              r->http, r->code[0] ? r->code : "-", attempt + 1, (long)(clock_mono_ms() - t0));
    return rc;
}
