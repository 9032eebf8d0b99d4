/*
 * instances.c: ec2SSH's instances and images through the EC2 API.
 * initialize_vm checks the job's instance type against the allowed list,
 * finds the AMI by its image tag, counts this service's pending/running
 * instances (DescribeInstances by our tag: the cap is what EC2 reports, so
 * no slot leaks across crashes), launches one (RunInstances, tagged with
 * Name, our prefix and the VM name on the instance and its volumes, in the
 * configured subnet and security groups, a one-time spot request when
 * configured, the metadata service off unless instance_metadata) and waits until it runs. destroy_vm terminates it and checks
 * EC2 took that (or, with keep_failed_vms and a VM whose operations failed,
 * renames it failed-NAME and drops our tag so it is neither counted nor
 * cleaned up). get_vms lists ours; get_images lists the account's AMIs
 * carrying the image tag. The instance id is kept in vm->id without its
 * "i-" (vm ids are lowercase hex). What is read of a reply goes through the
 * pure readers (ec2_instances_read, ec2_images_read, ec2_run_instance_id,
 * ec2_console_read), which validate every field where it enters.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "clock.h"
#include "ec2.h"
#include "log.h"

/* Launch errors that mean "not now": the job waits in the queue. */
static bool busy_code(const char *code)
{
    static const char *const busy[] = {
        "InsufficientInstanceCapacity", "InsufficientCapacity", "InstanceLimitExceeded",
        "VcpuLimitExceeded", "InsufficientFreeAddressesInSubnet", "SpotMaxPriceTooLow",
        "MaxSpotInstanceCountExceeded", "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity"};
    for (size_t i = 0; i < sizeof busy / sizeof busy[0]; i++)
        if (strcmp(code, busy[i]) == 0)
            return true;
    return false;
}

struct ec2_vm *ec2_vm_priv(struct vmms_vm *vm)
{
    if (vm->priv == NULL)
        vm->priv = calloc(1, sizeof(struct ec2_vm));
    return vm->priv;
}

/* ---- reading replies (pure: no I/O) ---- */

/* prefix then 8..32 lowercase hex: "i-..." instances, "ami-..." images */
static bool hex_id_ok(const char *id, const char *prefix)
{
    size_t n = strlen(id), p = strlen(prefix);
    return n >= p + 8 && n <= p + 32 && strncmp(id, prefix, p) == 0 &&
           strspn(id + p, "0123456789abcdef") == n - p;
}

static bool instance_id_ok(const char *id)
{
    return hex_id_ok(id, "i-");
}

/* An IPv4 or IPv6 literal, or "". */
static void ip_text(xmlNodePtr n, const char *name, char *buf, size_t bufsz)
{
    unsigned char a[16];
    ec2_text(n, name, buf, bufsz);
    if (inet_pton(AF_INET, buf, a) != 1 && inet_pton(AF_INET6, buf, a) != 1)
        buf[0] = '\0';
}

/* Tag key's value into out if it is a valid name that fits (read in full
 * first: a longer one cut to fit is no name of ours), else "". */
static bool tag_name(xmlNodePtr item, const char *key, char *out, size_t outsz)
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
    tag_name(inst, EC2_VM_TAG, in->vm_name, sizeof in->vm_name);
    tag_name(inst, EC2_IMAGE_NAME_TAG, in->image, sizeof in->image);
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

/* Runs DescribeInstances with params, all pages, calling fn per instance. */
static int describe(struct ec2_ctx *ctx, const struct ec2_params *base,
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

enum which { ANY_STATE, LIVE, NOT_ENDED };

/* Our instances (by the service tag): in any state, pending or running (the
 * cap), or not ended (get_vms: a stopped one of ours still costs). */
static void ours_filter(struct ec2_ctx *ctx, struct ec2_params *p, enum which w)
{
    ec2_param(p, "Filter.1.Name", "tag:" EC2_SERVICE_TAG);
    ec2_param(p, "Filter.1.Value.1", "%s", ctx->prefix);
    if (w == ANY_STATE)
        return;
    static const char *const states[] = {"pending", "running", "stopping", "stopped"};
    ec2_param(p, "Filter.2.Name", "instance-state-name");
    for (size_t i = 0; i < (w == LIVE ? 2 : 4); i++) {
        char k[32];
        snprintf(k, sizeof k, "Filter.2.Value.%zu", i + 1);
        ec2_param(p, k, "%s", states[i]);
    }
}

static void count_one(const struct ec2_instance *inst, void *arg)
{
    (void)inst;
    (*(int *)arg)++;
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
    int rc = describe(ctx, &p, take_state, &a, e, sizeof e);
    ec2_params_free(&p);
    if (rc != VMMS_OK && strstr(e, "InvalidInstanceID.NotFound"))
        return VMMS_OK; /* state "" */
    if (rc != VMMS_OK)
        return vmms_fail(err, errlen, rc, "%s", e);
    return VMMS_OK;
}

/* ---- images ---- */

struct image_find {
    const char *tag, *want;
    char ***names;
    size_t *count;
    char *ami;
    size_t amisz;
    bool oom;
};

static void take_image(xmlNodePtr img, void *arg)
{
    struct image_find *f = arg;
    char v[256], state[32], id[48];
    ec2_text(img, "imageState", state, sizeof state);
    if (state[0] && strcmp(state, "available") != 0)
        return;
    if (!tag_name(img, f->tag, v, sizeof v))
        return;
    if (f->want) {
        if (strcmp(v, f->want) == 0 &&
            hex_id_ok(ec2_text(img, "imageId", id, sizeof id), "ami-"))
            snprintf(f->ami, f->amisz, "%s", id);
        return;
    }
    for (size_t i = 0; i < *f->count; i++)
        if (strcmp((*f->names)[i], v) == 0)
            return;
    char **nv = realloc(*f->names, (*f->count + 1) * sizeof *nv);
    char *s = nv ? strdup(v) : NULL;
    if (nv)
        *f->names = nv;
    if (s == NULL) {
        f->oom = true;
        return;
    }
    (*f->names)[(*f->count)++] = s;
}

int ec2_images_read(xmlDocPtr doc, const char *tag, const char *want, char *ami, size_t amisz,
                    char ***names, size_t *count)
{
    struct image_find f = {tag, want, names, count, ami, amisz, false};
    if (want && amisz)
        ami[0] = '\0';
    ec2_items(xmlDocGetRootElement(doc), "imagesSet", take_image, &f);
    return f.oom ? VMMS_ERR : VMMS_OK;
}

/* DescribeImages (Owner self) with the image tag = value (NULL: any). */
static int images(struct ec2_ctx *ctx, const char *value, char *ami, size_t amisz,
                  char ***names, size_t *count, char *err, size_t errlen)
{
    struct ec2_params p = {0};
    ec2_param(&p, "Owner.1", "self");
    if (value) {
        ec2_param(&p, "Filter.1.Name", "tag:%s", ctx->cfg.image_tag);
        ec2_param(&p, "Filter.1.Value.1", "%s", value);
    } else {
        ec2_param(&p, "Filter.1.Name", "tag-key");
        ec2_param(&p, "Filter.1.Value.1", "%s", ctx->cfg.image_tag);
    }
    struct ec2_reply r;
    int rc = ec2_call(ctx, "DescribeImages", &p, &r, err, errlen);
    ec2_params_free(&p);
    if (rc != VMMS_OK)
        return rc;
    rc = ec2_images_read(r.doc, ctx->cfg.image_tag, value, ami, amisz, names, count);
    ec2_reply_free(&r);
    return rc != VMMS_OK ? vmms_fail(err, errlen, VMMS_ERR, "out of memory") : VMMS_OK;
}

int ec2_get_images(void *vctx, char ***names, size_t *count, char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    *names = NULL;
    *count = 0;
    int rc = images(ctx, NULL, NULL, 0, names, count, err, errlen);
    if (rc != VMMS_OK) {
        vmms_free_names(*names, *count);
        *names = NULL;
        *count = 0;
    }
    return rc;
}

/* ---- initialize ---- */

static void add_tags(struct ec2_ctx *ctx, struct ec2_params *p, int spec, const char *type,
                     const struct vmms_vm *vm)
{
    char pfx[64];
    snprintf(pfx, sizeof pfx, "TagSpecification.%d", spec);
    char k[96];
    snprintf(k, sizeof k, "%s.ResourceType", pfx);
    ec2_param(p, k, "%s", type);
    const char *fixed[][2] = {{"Name", vm->name}, {EC2_SERVICE_TAG, ctx->prefix},
                              {EC2_VM_TAG, vm->name}, {EC2_IMAGE_NAME_TAG, vm->image}};
    int n = 1;
    for (size_t i = 0; i < 4; i++, n++) {
        snprintf(k, sizeof k, "%s.Tag.%d.Key", pfx, n);
        ec2_param(p, k, "%s", fixed[i][0]);
        snprintf(k, sizeof k, "%s.Tag.%d.Value", pfx, n);
        ec2_param(p, k, "%s", fixed[i][1]);
    }
    for (size_t i = 0; i < ctx->cfg.ntags; i++, n++) {
        snprintf(k, sizeof k, "%s.Tag.%d.Key", pfx, n);
        ec2_param(p, k, "%s", ctx->cfg.tags[i].key);
        snprintf(k, sizeof k, "%s.Tag.%d.Value", pfx, n);
        ec2_param(p, k, "%s", ctx->cfg.tags[i].value);
    }
}

/* The VM's instance metadata service: jobs run on the VM itself, so by
 * default it has none (no instance role's credentials, no user data for a
 * student to read); with instance_metadata it is IMDSv2 only (a token from a
 * PUT first) whose answers go no further than one hop (the VM, not a
 * container or a forwarded packet). */
static void add_metadata_options(const struct ec2_config *c, struct ec2_params *p)
{
    if (!c->instance_metadata) {
        ec2_param(p, "MetadataOptions.HttpEndpoint", "disabled");
        return;
    }
    ec2_param(p, "MetadataOptions.HttpEndpoint", "enabled");
    ec2_param(p, "MetadataOptions.HttpTokens", "required");
    ec2_param(p, "MetadataOptions.HttpPutResponseHopLimit", "1");
}

static int launch(struct ec2_ctx *ctx, struct vmms_vm *vm, const char *type, const char *ami,
                  char *err, size_t errlen)
{
    const struct ec2_config *c = &ctx->cfg;
    /* The API call's own retries carry one token (a retried request is not a
     * second VM); a new launch for the same VM name gets a new one. */
    char nonce[33];
    if (vmms_new_exit_token(nonce, err, errlen) != VMMS_OK)
        return VMMS_ERR;
    struct ec2_params p = {0};
    ec2_param(&p, "ImageId", "%s", ami);
    ec2_param(&p, "InstanceType", "%s", type);
    ec2_param(&p, "MinCount", "1");
    ec2_param(&p, "MaxCount", "1");
    ec2_param(&p, "KeyName", "%s", c->key_pair);
    ec2_param(&p, "ClientToken", "%.31s-%.16s", vm->name, nonce);
    ec2_param(&p, "InstanceInitiatedShutdownBehavior", "terminate");
    if (c->subnet[0])
        ec2_param(&p, "SubnetId", "%s", c->subnet);
    for (size_t i = 0; i < c->nsecurity_groups; i++) {
        char k[48];
        snprintf(k, sizeof k, "SecurityGroupId.%zu", i + 1);
        ec2_param(&p, k, "%s", c->security_groups[i]);
    }
    add_metadata_options(c, &p);
    if (c->spot) {
        ec2_param(&p, "InstanceMarketOptions.MarketType", "spot");
        ec2_param(&p, "InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time");
        ec2_param(&p, "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior",
                  "terminate");
    }
    add_tags(ctx, &p, 1, "instance", vm);
    add_tags(ctx, &p, 2, "volume", vm);
    struct ec2_reply r;
    int rc = ec2_call(ctx, "RunInstances", &p, &r, err, errlen);
    ec2_params_free(&p);
    if (rc != VMMS_OK)
        return busy_code(r.code) ? VMMS_BUSY : rc;
    char id[40] = "";
    bool ok = ec2_run_instance_id(r.doc, id, sizeof id);
    ec2_reply_free(&r);
    if (!ok || strlen(id + 2) >= sizeof vm->id)
        return vmms_fail(err, errlen, VMMS_ERR, "EC2 RunInstances: no usable instance id in "
                         "the reply");
    snprintf(vm->id, sizeof vm->id, "%s", id + 2);
    return VMMS_OK;
}

int ec2_initialize_vm(void *vctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    vm->id[0] = '\0';
    vm->host[0] = '\0';
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    const struct ec2_config *c = &ctx->cfg;
    const char *type = vm->instance_type[0] ? vm->instance_type : c->default_type;
    bool allowed = false;
    char list[EC2_MAX_LIST * 34] = "";
    for (size_t i = 0; i < c->nallowed_types; i++) {
        allowed = allowed || strcmp(type, c->allowed_types[i]) == 0;
        strcat(list, i ? ", " : "");
        strcat(list, c->allowed_types[i]);
    }
    if (!allowed)
        return vmms_fail(err, errlen, VMMS_ERR,
                         "instance type \"%.31s\" is not allowed on this service (allowed: %s)",
                         type, list);
    if (ec2_vm_priv(vm) == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    char ami[48] = "";
    rc = images(ctx, vm->image, ami, sizeof ami, NULL, NULL, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (!ami[0])
        return vmms_fail(err, errlen, VMMS_NOT_FOUND,
                         "no AMI of this account is tagged %s=%s", c->image_tag, vm->image);

    /* The cap: what EC2 reports as ours, counted and launched one at a time
     * in this process (other consumers may launch in between: each counts
     * what it sees, so the cap can be passed by at most one per consumer). */
    pthread_mutex_lock(&ctx->launch);
    int live = 0;
    struct ec2_params p = {0};
    ours_filter(ctx, &p, LIVE);
    rc = describe(ctx, &p, count_one, &live, err, errlen);
    ec2_params_free(&p);
    if (rc == VMMS_OK && live >= c->max_vms)
        rc = vmms_fail(err, errlen, VMMS_BUSY,
                       "max_vms reached: %d of this service's instances are pending or running "
                       "(max_vms %d)", live, c->max_vms);
    long t0 = clock_mono_ms();
    if (rc == VMMS_OK)
        rc = launch(ctx, vm, type, ami, err, errlen);
    pthread_mutex_unlock(&ctx->launch);
    if (rc != VMMS_OK) {
        char q[700];
        log_warn("vm_create_failed", "name=%s type=%s rc=%d err=%s", vm->name, type, rc,
                 log_quote(err, q, sizeof q));
        return rc;
    }
    log_info("vm_created", "name=%s id=i-%s type=%s ami=%s spot=%d live_before=%d", vm->name,
             vm->id, type, ami, (int)c->spot, live);

    /* Until it runs (and has the address we reach it at). */
    long deadline = t0 + 1000L * c->initialize_timeout_s;
    char state[32] = "", addr[64] = "";
    for (;;) {
        rc = ec2_instance_state(ctx, vm->id, state, sizeof state, addr, sizeof addr, err,
                                errlen);
        if (rc == VMMS_OK && strcmp(state, "running") == 0 && addr[0])
            break;
        if (rc == VMMS_OK && state[0] && strcmp(state, "pending") != 0 &&
            strcmp(state, "running") != 0) {
            ec2_vm_priv(vm)->failed = true;
            return vmms_fail(err, errlen, VMMS_ERR,
                             "instance i-%s ended before it ran (state %s)", vm->id, state);
        }
        if (clock_mono_ms() >= deadline || atomic_load(&ctx->stopping)) {
            ec2_vm_priv(vm)->failed = true;
            return vmms_fail(err, errlen, VMMS_TIMEOUT,
                             "instance i-%s not running with an address after %d s (state %s)",
                             vm->id, c->initialize_timeout_s, state[0] ? state : "unknown");
        }
        clock_sleep_ms(c->poll_ms);
    }
    snprintf(vm->host, sizeof vm->host, "%s", addr);
    log_info("vm_running", "name=%s id=i-%s host=%s ms=%ld", vm->name, vm->id, vm->host,
             (long)(clock_mono_ms() - t0));
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

/* ---- destroy ---- */

struct by_name {
    const char *name;
    char id[64];
};

static void take_id(const struct ec2_instance *in, void *arg)
{
    struct by_name *b = arg;
    if (strcmp(in->state, "terminated") == 0 || strcmp(in->state, "shutting-down") == 0)
        return;
    if (in->id[0] && strcmp(in->vm_name, b->name) == 0)
        snprintf(b->id, sizeof b->id, "%s", in->id);
}

static int terminate(struct ec2_ctx *ctx, struct vmms_vm *vm, bool safe, char *err,
                     size_t errlen)
{
    const struct ec2_config *c = &ctx->cfg;
    int rc;
    if (!vm->id[0]) { /* destroyed by name (no id was recorded): find it by our tags */
        struct ec2_params p = {0};
        ours_filter(ctx, &p, ANY_STATE);
        struct by_name b = {vm->name, ""};
        rc = describe(ctx, &p, take_id, &b, err, errlen);
        ec2_params_free(&p);
        if (rc != VMMS_OK)
            return rc;
        if (!instance_id_ok(b.id))
            return safe ? VMMS_OK
                        : vmms_fail(err, errlen, VMMS_NOT_FOUND, "VM %s: no such instance",
                                    vm->name);
        snprintf(vm->id, sizeof vm->id, "%s", b.id + 2);
    }
    struct ec2_vm *pv = vm->priv;
    struct ec2_params p = {0};
    struct ec2_reply r;
    if (c->keep_failed_vms && pv && pv->failed) {
        ec2_param(&p, "ResourceId.1", "i-%s", vm->id);
        ec2_param(&p, "Tag.1.Key", "Name");
        ec2_param(&p, "Tag.1.Value", "failed-%s", vm->name);
        rc = ec2_call(ctx, "CreateTags", &p, &r, err, errlen);
        ec2_params_free(&p);
        ec2_reply_free(&r);
        if (rc == VMMS_OK) {
            ec2_param(&p, "ResourceId.1", "i-%s", vm->id);
            ec2_param(&p, "Tag.1.Key", EC2_SERVICE_TAG);
            rc = ec2_call(ctx, "DeleteTags", &p, &r, err, errlen);
            ec2_params_free(&p);
            ec2_reply_free(&r);
        }
        if (rc == VMMS_OK) {
            log_warn("vm_kept", "name=%s id=i-%s tag=failed-%s note=\"keep_failed_vms: it runs "
                     "(and costs) until you terminate it\"", vm->name, vm->id, vm->name);
            return VMMS_OK;
        }
        return rc;
    }
    ec2_param(&p, "InstanceId.1", "i-%s", vm->id);
    rc = ec2_call(ctx, "TerminateInstances", &p, &r, err, errlen);
    ec2_params_free(&p);
    ec2_reply_free(&r);
    if (rc != VMMS_OK && strcmp(r.code, "InvalidInstanceID.NotFound") == 0)
        return safe ? VMMS_OK : VMMS_NOT_FOUND;
    if (rc != VMMS_OK)
        return rc;
    /* Verified: EC2 reports it going or gone. */
    long deadline = clock_mono_ms() + 1000L * c->api_timeout_s;
    char state[32] = "";
    for (;;) {
        rc = ec2_instance_state(ctx, vm->id, state, sizeof state, NULL, 0, err, errlen);
        if (rc == VMMS_OK && (!state[0] || strcmp(state, "terminated") == 0 ||
                              strcmp(state, "shutting-down") == 0))
            break;
        if (clock_mono_ms() >= deadline)
            return vmms_fail(err, errlen, VMMS_ERR,
                             "instance i-%s still %s after TerminateInstances", vm->id,
                             state[0] ? state : "unknown");
        clock_sleep_ms(c->poll_ms);
    }
    log_info("vm_destroyed", "name=%s id=i-%s state=%s", vm->name, vm->id,
             state[0] ? state : "gone");
    return VMMS_OK;
}

static int destroy(struct ec2_ctx *ctx, struct vmms_vm *vm, bool safe, char *err, size_t errlen)
{
    int rc = vmms_check_vm(ctx->prefix, vm, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    ec2_abort_runs(ctx, vm->name);
    rc = terminate(ctx, vm, safe, err, errlen);
    if (rc == VMMS_OK || rc == VMMS_NOT_FOUND) {
        free(vm->priv);
        vm->priv = NULL;
    }
    return rc;
}

int ec2_destroy_vm(void *vctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    return destroy(vctx, vm, false, err, errlen);
}

int ec2_safe_destroy_vm(void *vctx, struct vmms_vm *vm, char *err, size_t errlen)
{
    return destroy(vctx, vm, true, err, errlen);
}

/* ---- listing ---- */

struct list_cb {
    vmms_vm_cb cb;
    void *arg;
};

static void list_one(const struct ec2_instance *in, void *arg)
{
    struct list_cb *l = arg;
    if (!in->id[0] || !in->vm_name[0])
        return;
    l->cb(in->vm_name, in->id + 2, in->image, strcmp(in->state, "running") == 0, l->arg);
}

int ec2_get_vms(void *vctx, vmms_vm_cb cb, void *arg, char *err, size_t errlen)
{
    struct ec2_ctx *ctx = vctx;
    struct ec2_params p = {0};
    ours_filter(ctx, &p, NOT_ENDED);
    struct list_cb l = {cb, arg};
    int rc = describe(ctx, &p, list_one, &l, err, errlen);
    ec2_params_free(&p);
    return rc;
}
