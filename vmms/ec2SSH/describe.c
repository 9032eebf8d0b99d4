/*
 * describe.c: what EC2 says about instances, below instances.c and
 * remote.c (both ask it; it asks only call.c and api.c): the pure readers
 * of DescribeInstances and RunInstances replies and of the console's host
 * key fingerprints, which validate every field where it enters; the paged
 * DescribeInstances call; one instance's state and address; the
 * fingerprints an instance printed on its console.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ec2.h"

/* ---- reading replies (pure: no I/O) ---- */

bool ec2_id_ok(const char *id, const char *prefix)
{
    size_t n = strlen(id), p = strlen(prefix);
    return n >= p + 8 && n <= p + 32 && strncmp(id, prefix, p) == 0 &&
           strspn(id + p, "0123456789abcdef") == n - p;
}

static bool instance_id_ok(const char *id)
{
    return ec2_id_ok(id, "i-");
}

/* An IPv4 or IPv6 literal, or "". */
static void ip_text(xmlNodePtr n, const char *name, char *buf, size_t bufsz)
{
    unsigned char a[16];
    ec2_text(n, name, buf, bufsz);
    if (inet_pton(AF_INET, buf, a) != 1 && inet_pton(AF_INET6, buf, a) != 1)
        buf[0] = '\0';
}

bool ec2_tag_name(xmlNodePtr item, const char *key, char *out, size_t outsz)
{
    char v[512];
    bool ok = vmms_name_ok(ec2_tag_value(item, key, v, sizeof v), outsz);
    size_t n = ok ? strlen(v) : 0; /* < outsz when ok */
    memcpy(out, v, n);
    out[n] = '\0';
    return ok;
}

static void instance_read(xmlNodePtr inst, struct ec2_instance *in)
{
    static const char *const states[] = {"pending",  "running",  "shutting-down",
                                         "terminated", "stopping", "stopped"};
    memset(in, 0, sizeof *in);
    ec2_text(inst, "instanceId", in->id, sizeof in->id);
    if (!instance_id_ok(in->id))
        in->id[0] = '\0';
    ec2_text(ec2_child(inst, "instanceState"), "name", in->state, sizeof in->state);
    bool known = false;
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        known = known || strcmp(in->state, states[i]) == 0;
    if (!known)
        in->state[0] = '\0';
    ip_text(inst, "privateIpAddress", in->private_ip, sizeof in->private_ip);
    ip_text(inst, "ipAddress", in->public_ip, sizeof in->public_ip);
    ec2_tag_name(inst, EC2_VM_TAG, in->vm_name, sizeof in->vm_name);
    ec2_tag_name(inst, EC2_IMAGE_NAME_TAG, in->image, sizeof in->image);
}

struct walk {
    void (*fn)(const struct ec2_instance *in, void *arg);
    void *arg;
};

static void each_item(xmlNodePtr item, void *arg)
{
    struct walk *w = arg;
    struct ec2_instance in;
    instance_read(item, &in);
    w->fn(&in, w->arg);
}

static void each_instance(xmlNodePtr res, void *arg)
{
    ec2_items(res, "instancesSet", each_item, arg);
}

void ec2_instances_read(xmlDocPtr doc, void (*fn)(const struct ec2_instance *, void *),
                        void *arg, char *next, size_t nextsz)
{
    xmlNodePtr root = xmlDocGetRootElement(doc);
    struct walk w = {fn, arg};
    ec2_items(root, "reservationSet", each_instance, &w);
    ec2_text(root, "nextToken", next, nextsz);
}

bool ec2_run_instance_id(xmlDocPtr doc, char *id, size_t idsz)
{
    xmlNodePtr item = ec2_child(ec2_child(xmlDocGetRootElement(doc), "instancesSet"), "item");
    ec2_text(item, "instanceId", id, idsz);
    if (instance_id_ok(id))
        return true;
    if (idsz)
        id[0] = '\0';
    return false;
}

int ec2_describe(struct ec2_ctx *ctx, const struct ec2_params *base,
                 void (*fn)(const struct ec2_instance *, void *), void *arg, char *err,
                 size_t errlen)
{
    char next[1024] = "";
    for (int page = 0; page < 100; page++) {
        struct ec2_params p = {0};
        for (size_t i = 0; i < base->n; i++)
            ec2_param(&p, base->v[i].name, "%s", base->v[i].value);
        if (next[0])
            ec2_param(&p, "NextToken", "%s", next);
        struct ec2_reply r;
        int rc = ec2_call(ctx, "DescribeInstances", &p, &r, err, errlen);
        ec2_params_free(&p);
        if (rc != VMMS_OK)
            return rc;
        ec2_instances_read(r.doc, fn, arg, next, sizeof next);
        ec2_reply_free(&r);
        if (!next[0])
            return VMMS_OK;
    }
    return vmms_fail(err, errlen, VMMS_ERR, "EC2 DescribeInstances: too many pages");
}

/* ---- one instance's state ---- */

struct state_ask {
    const struct ec2_ctx *ctx;
    char *state, *addr;
    size_t statesz, addrsz;
    bool found;
};

static void take_state(const struct ec2_instance *in, void *arg)
{
    struct state_ask *a = arg;
    a->found = true;
    snprintf(a->state, a->statesz, "%s", in->state);
    if (a->addr)
        snprintf(a->addr, a->addrsz, "%s",
                 a->ctx->cfg.use_private_ip ? in->private_ip : in->public_ip);
}

int ec2_instance_state(struct ec2_ctx *ctx, const char *id_hex, char *state, size_t statesz,
                       char *addr, size_t addrsz, char *err, size_t errlen)
{
    state[0] = '\0';
    if (addr)
        addr[0] = '\0';
    struct ec2_params p = {0};
    ec2_param(&p, "InstanceId.1", "i-%s", id_hex);
    struct state_ask a = {ctx, state, addr, statesz, addrsz, false};
    char e[600];
    int rc = ec2_describe(ctx, &p, take_state, &a, e, sizeof e);
    ec2_params_free(&p);
    if (rc != VMMS_OK && strstr(e, "InvalidInstanceID.NotFound"))
        return VMMS_OK; /* state "" */
    if (rc != VMMS_OK)
        return vmms_fail(err, errlen, rc, "%s", e);
    return VMMS_OK;
}

/* ---- console fingerprints ---- */

int ec2_console_fingerprints(struct ec2_ctx *ctx, const char *id_hex, char *buf, size_t bufsz,
                             char *err, size_t errlen)
{
    buf[0] = '\0';
    struct ec2_params p = {0};
    ec2_param(&p, "InstanceId", "i-%s", id_hex);
    ec2_param(&p, "Latest", "true");
    struct ec2_reply r;
    int rc = ec2_call(ctx, "GetConsoleOutput", &p, &r, err, errlen);
    ec2_params_free(&p);
    if (rc != VMMS_OK)
        return rc;
    xmlNodePtr o = ec2_child(xmlDocGetRootElement(r.doc), "output");
    xmlChar *b64 = o ? xmlNodeGetContent(o) : NULL;
    ec2_reply_free(&r);
    if (b64)
        ec2_console_read((const char *)b64, strlen((const char *)b64), buf, bufsz);
    xmlFree(b64);
    return VMMS_OK;
}

void ec2_console_read(const char *b64, size_t len, char *buf, size_t bufsz)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (bufsz)
        buf[0] = '\0';
    /* The console is base64 with line breaks: decode the characters of the
     * alphabet only (padding, which may only end the text, dropped). */
    char *clean = malloc(len + 4);
    size_t k = 0;
    for (size_t i = 0; clean && i < len; i++)
        if (b64[i] && strchr(alphabet, b64[i]))
            clean[k++] = b64[i];
    size_t pad = 0;
    while (clean && k % 4) {
        clean[k++] = '=';
        pad++;
    }
    unsigned char *text = clean ? malloc(k / 4 * 3 + 1) : NULL;
    int d = text ? EVP_DecodeBlock(text, (unsigned char *)clean, (int)k) : -1;
    if (text)
        text[k / 4 * 3] = '\0'; /* every scan below also stops at the END line */
    free(clean);
    /* EVP_DecodeBlock counts the padding's zero bytes */
    size_t n = d > 0 && (size_t)d >= pad ? (size_t)d - (pad == 3 ? 2 : pad) : 0;
    static const char B[] = "-----BEGIN SSH HOST KEY FINGERPRINTS-----";
    static const char E[] = "-----END SSH HOST KEY FINGERPRINTS-----";
    const char *t = (const char *)text;
    const char *begin = t ? memmem(t, n, B, sizeof B - 1) : NULL;
    const char *end = begin ? memmem(begin, n - (size_t)(begin - t), E, sizeof E - 1) : NULL;
    size_t used = 0;
    /* Whole words "SHA256:" + 43 characters of the alphabet (no padding). */
    for (const char *s = begin; end && s < end;) {
        const char *w = memmem(s, (size_t)(end - s), "SHA256:", 7);
        if (w == NULL)
            break;
        size_t l = strspn(w + 7, alphabet);
        bool word = (w == t || !strchr(alphabet, w[-1]) || w[-1] == '\0') &&
                    w + 7 + l <= end && l == 43;
        if (word && used + 7 + l + 2 <= bufsz)
            used += (size_t)snprintf(buf + used, bufsz - used, "%s%.*s", used ? " " : "",
                                     (int)(7 + l), w);
        s = w + 7 + l;
    }
    free(text);
}
