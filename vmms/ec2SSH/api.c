/*
 * api.c: the lowest layer of ec2SSH's EC2 API: one HTTP request with
 * libcurl (ec2_http, which call.c and creds.c share), the parameters of a
 * call, the XML reply (at most EC2_REPLY_MAX bytes) parsed by libxml2 with
 * no network access and no entity expansion, and the tree helpers replies
 * are read with. It calls nothing else in ec2SSH. Owns no state beyond
 * the request; it never logs a request body or a credential.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <libxml/parser.h>

#include "ec2.h"

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
