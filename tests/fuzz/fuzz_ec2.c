/* fuzz_ec2.c: libFuzzer harness for what the ec2SSH plugin reads from
 * outside (vmms/ec2SSH, the pure parsers declared in ec2.h): the EC2 Query
 * API's XML replies (ec2_parse_reply: size cap, no DOCTYPE so no entity,
 * no network; the <Errors> code and message), and what is taken from a
 * parsed reply: DescribeInstances items (ec2_instances_read: id, state,
 * addresses, our tags), DescribeImages (ec2_images_read: tag -> AMI, the
 * image names), RunInstances' instance id (ec2_run_instance_id),
 * GetConsoleOutput's base64 text and the host key fingerprints in it
 * (ec2_console_read); and IMDSv2's answers (ec2_imds_role, ec2_imds_creds).
 *
 * Input: byte 0 picks the kind; the rest is the body.
 *   0..3  an API reply with HTTP 200, 200, 400 or 503: parsed, then every
 *         reader runs on the parsed tree;
 *   4     a console text (byte 1 sizes the fingerprint buffer, 1..256);
 *   5     an instance profile credentials document (JSON);
 *   6     an instance profile role listing.
 * Beyond "no crash, leak or UB" it checks each reader's contract: every
 * field handed on is "" or in its documented form, is the node's whole text
 * (never a longer value cut to fit), refusals say why, a DOCTYPE is never
 * accepted, credentials are header-safe and expire within 12 hours. The
 * expected values are read from the tree here with libxml2 directly, not
 * with the plugin's helpers. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "clock.h"
#include "ec2SSH/ec2.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)          \
    do {                  \
        if (!(c))         \
            abort();      \
    } while (0)

/* ---- an independent reading of the tree ---- */

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
    for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, (const xmlChar *)name))
            return c;
    return NULL;
}

/* Whole text of n's child name (malloc'd; "" when absent). */
static char *text(xmlNodePtr n, const char *name)
{
    xmlNodePtr c = child(n, name);
    xmlChar *t = c ? xmlNodeGetContent(c) : NULL;
    char *s = strdup(t ? (const char *)t : "");
    xmlFree(t);
    CHECK(s);
    return s;
}

static char *tag(xmlNodePtr item, const char *key)
{
    for (xmlNodePtr c = child(child(item, "tagSet"), "item"); c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        char *k = text(c, "key");
        bool hit = strcmp(k, key) == 0;
        free(k);
        if (hit)
            return text(c, "value");
    }
    return text(NULL, "");
}

/* The item elements of n's first child `list`, in order. */
static size_t items(xmlNodePtr n, const char *list, xmlNodePtr *out, size_t max, size_t have)
{
    for (xmlNodePtr c = child(n, list) ? child(n, list)->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, (const xmlChar *)"item") &&
            have < max)
            out[have++] = c;
    return have;
}

static bool hex_after(const char *s, const char *prefix)
{
    size_t p = strlen(prefix), n = strlen(s);
    return strncmp(s, prefix, p) == 0 && n >= p + 8 && n <= p + 32 &&
           strspn(s + p, "0123456789abcdef") == n - p;
}

static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n > 0 && n < max &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* A field handed on is "" or equal to the whole text and in form. */
static void same_or_empty(const char *got, const char *whole, bool form)
{
    CHECK(got[0] == '\0' || (strcmp(got, whole) == 0 && form));
}

static bool ip_ok(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* ---- DescribeInstances ---- */

#define MAX_INST 4096

struct expect {
    xmlNodePtr inst[MAX_INST];
    size_t n, seen;
};

static void on_instance(const struct ec2_instance *in, void *arg)
{
    struct expect *x = arg;
    CHECK(x->seen < x->n); /* no more instances than the tree holds */
    xmlNodePtr node = x->inst[x->seen++];
    char *id = text(node, "instanceId");
    char *st = text(child(node, "instanceState"), "name");
    char *priv = text(node, "privateIpAddress");
    char *pub = text(node, "ipAddress");
    char *vm = tag(node, EC2_VM_TAG);
    char *img = tag(node, EC2_IMAGE_NAME_TAG);
    same_or_empty(in->id, id, hex_after(in->id, "i-"));
    /* an id in form is never dropped */
    CHECK(in->id[0] || !hex_after(id, "i-"));
    static const char *const states[] = {"pending",  "running",  "shutting-down",
                                         "terminated", "stopping", "stopped"};
    bool known = false;
    for (size_t i = 0; i < 6; i++)
        known = known || strcmp(st, states[i]) == 0;
    same_or_empty(in->state, st, known);
    CHECK(in->state[0] || !known);
    same_or_empty(in->private_ip, priv, ip_ok(in->private_ip));
    same_or_empty(in->public_ip, pub, ip_ok(in->public_ip));
    same_or_empty(in->vm_name, vm, name_ok(in->vm_name, sizeof in->vm_name));
    CHECK(in->vm_name[0] || !name_ok(vm, sizeof in->vm_name));
    same_or_empty(in->image, img, name_ok(in->image, sizeof in->image));
    free(id);
    free(st);
    free(priv);
    free(pub);
    free(vm);
    free(img);
}

static void check_instances(xmlDocPtr doc)
{
    static struct expect x;
    static xmlNodePtr res[MAX_INST];
    x.n = x.seen = 0;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    size_t nres = items(root, "reservationSet", res, MAX_INST, 0);
    for (size_t i = 0; i < nres; i++)
        x.n = items(res[i], "instancesSet", x.inst, MAX_INST, x.n);
    if (x.n == MAX_INST)
        return; /* more than the oracle keeps: not checked */
    char next[1024];
    ec2_instances_read(doc, on_instance, &x, next, sizeof next);
    CHECK(x.seen == x.n);
    char *whole = text(root, "nextToken");
    CHECK(strncmp(next, whole, sizeof next - 1) == 0);
    free(whole);
}

/* ---- DescribeImages ---- */

static void check_images(xmlDocPtr doc)
{
    const char *key = "tango-image";
    char **names = NULL;
    size_t count = 0;
    int rc = ec2_images_read(doc, key, NULL, NULL, 0, &names, &count);
    CHECK(rc == VMMS_OK || rc == VMMS_ERR);
    xmlNodePtr img[512];
    size_t n = items(xmlDocGetRootElement(doc), "imagesSet", img, 512, 0);
    for (size_t i = 0; i < count; i++) {
        CHECK(name_ok(names[i], 256));
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(names[i], names[j]) != 0);
        /* it is the whole tag value of some available image */
        bool found = n == 512;
        for (size_t j = 0; j < n && !found; j++) {
            char *v = tag(img[j], key), *st = text(img[j], "imageState");
            found = strcmp(v, names[i]) == 0 && (!st[0] || strcmp(st, "available") == 0);
            free(v);
            free(st);
        }
        CHECK(found);
    }
    /* the AMI for a wanted name: one of the images that carry it */
    const char *want = count ? names[0] : "fuzz";
    char ami[48] = "x";
    CHECK(ec2_images_read(doc, key, want, ami, sizeof ami, NULL, NULL) == VMMS_OK);
    if (ami[0]) {
        CHECK(hex_after(ami, "ami-"));
        bool found = n == 512;
        for (size_t j = 0; j < n && !found; j++) {
            char *v = tag(img[j], key), *id = text(img[j], "imageId");
            found = strcmp(v, want) == 0 && strcmp(id, ami) == 0;
            free(v);
            free(id);
        }
        CHECK(found);
    }
    vmms_free_names(names, count);
}

/* ---- GetConsoleOutput ---- */

static void check_fingerprints(const char *buf, size_t bufsz)
{
    size_t n = strlen(buf);
    CHECK(n < bufsz);
    for (const char *p = buf; *p;) {
        size_t w = strcspn(p, " ");
        CHECK(w == 7 + 43 && strncmp(p, "SHA256:", 7) == 0 &&
              strspn(p + 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                            "0123456789+/") == 43);
        p += w;
        if (*p == ' ') {
            p++;
            CHECK(*p && *p != ' '); /* one space between words, none at the end */
        }
    }
}

static void check_console(const char *b64, size_t len, size_t bufsz)
{
    char *buf = malloc(bufsz);
    CHECK(buf);
    memset(buf, 'x', bufsz);
    ec2_console_read(b64, len, buf, bufsz);
    check_fingerprints(buf, bufsz);
    free(buf);
}

/* ---- the reply ---- */

static void check_reply(const uint8_t *body, size_t len, long http)
{
    struct ec2_reply r;
    memset(&r, 0x5a, sizeof r); /* whatever the caller had */
    char err[512] = "";
    int rc = ec2_parse_reply("Fuzz", (const char *)body, len, http, &r, err, sizeof err);
    bool doctype = memmem(body, len, "<!DOCTYPE", 9) != NULL;
    if (rc != VMMS_OK) {
        CHECK(rc == VMMS_ERR && r.doc == NULL && strncmp(err, "EC2 Fuzz: ", 10) == 0);
        CHECK(memchr(r.code, '\0', sizeof r.code) != NULL);
        return;
    }
    CHECK(http >= 200 && http < 300 && r.doc && r.code[0] == '\0' && !doctype);
    CHECK(r.doc->intSubset == NULL && r.doc->extSubset == NULL);
    xmlNodePtr root = xmlDocGetRootElement(r.doc);
    CHECK(root && !xmlStrEqual(root->name, (const xmlChar *)"Error") &&
          child(child(root, "Errors"), "Error") == NULL);
    check_instances(r.doc);
    check_images(r.doc);
    char id[40] = "x";
    bool ok = ec2_run_instance_id(r.doc, id, sizeof id);
    char *whole = text(child(child(root, "instancesSet"), "item"), "instanceId");
    CHECK(ok ? strcmp(id, whole) == 0 && hex_after(id, "i-") : id[0] == '\0');
    free(whole);
    xmlNodePtr o = child(root, "output");
    xmlChar *b64 = o ? xmlNodeGetContent(o) : NULL;
    if (b64)
        check_console((const char *)b64, strlen((const char *)b64), 512);
    xmlFree(b64);
    ec2_reply_free(&r);
    CHECK(r.doc == NULL);
}

/* ---- IMDSv2 ---- */

static bool header_safe(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

static void check_creds(const uint8_t *doc, size_t len)
{
    struct ec2_creds c;
    memset(&c, 0, sizeof c);
    long now = clock_mono_ms();
    if (!ec2_imds_creds((const char *)doc, len, &c))
        return;
    CHECK(c.key_id[0] && c.secret[0] && header_safe(c.key_id) && header_safe(c.secret) &&
          header_safe(c.token) && strcmp(c.source, "instance-profile") == 0);
    CHECK(c.expires_ms > now && c.expires_ms <= clock_mono_ms() + 12 * 3600 * 1000L);
}

static void check_role(const uint8_t *data, size_t size)
{
    char *doc = fuzz_cstr(data, size);
    char role[129] = "x";
    bool ok = ec2_imds_role(doc, role, sizeof role);
    size_t first = strcspn(doc, "\r\n");
    if (ok)
        CHECK(strlen(role) == first && first >= 1 && first <= 128 &&
              strncmp(role, doc, first) == 0 &&
              strspn(role, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                           "0123456789+=,.@_-") == first);
    else
        CHECK(role[0] == '\0');
    free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const long statuses[] = {200, 200, 400, 503};
    unsigned kind = data[0] % 7;
    data++;
    size--;
    if (kind < 4) {
        check_reply(data, size, statuses[kind]);
    } else if (kind == 4) {
        size_t bufsz = size ? 1 + data[0] % 256 : 1;
        check_console((const char *)data + (size ? 1 : 0), size ? size - 1 : 0, bufsz);
    } else if (kind == 5) {
        check_creds(data, size);
    } else {
        check_role(data, size);
    }
    return 0;
}
