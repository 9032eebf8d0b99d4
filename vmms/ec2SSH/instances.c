/*
 * instances.c: ec2SSH's instances and images through the EC2 API.
 * initialize_vm checks the job's instance type against the allowed list,
 * finds the AMI by its image tag, counts this service's pending/running
 * instances (DescribeInstances by our tag: the cap is what EC2 reports, so
 * no slot leaks across crashes), launches one (RunInstances, tagged with
 * Name, our prefix and the VM name on the instance and its volumes, in the
 * configured subnet and security groups, a one-time spot request when
 * configured, the metadata service off unless instance_metadata) and waits
 * until it runs. destroy_vm terminates it and checks
 * EC2 took that (or, with keep_failed_vms and a VM whose operations failed,
 * renames it failed-NAME and drops our tag so it is neither counted nor
 * cleaned up). get_vms lists ours; get_images lists the account's AMIs
 * carrying the image tag. The instance id is kept in vm->id without its
 * "i-" (vm ids are lowercase hex). What is read of a reply goes through the
 * pure readers (describe.c's, and ec2_images_read here), which validate
 * every field where it enters.
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ec2.h"
#include "log.h"
#include "strvec.h"

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

/* ---- images ---- */

struct image_find {
    const char *tag, *want;
    struct strvec names; /* without want: the names found so far */
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
    if (!ec2_tag_name(img, f->tag, v, sizeof v))
        return;
    if (f->want) {
        if (strcmp(v, f->want) == 0 &&
            ec2_id_ok(ec2_text(img, "imageId", id, sizeof id), "ami-"))
            snprintf(f->ami, f->amisz, "%s", id);
        return;
    }
    if (strvec_find(&f->names, v, strlen(v)) < 0 && strvec_push(&f->names, v) != 0)
        f->oom = true;
}

int ec2_images_read(xmlDocPtr doc, const char *tag, const char *want, char *ami, size_t amisz,
                    char ***names, size_t *count)
{
    struct image_find f = {tag, want, STRVEC_INIT, ami, amisz, false};
    if (want && amisz)
        ami[0] = '\0';
    if (!want) /* appended to what the caller holds */
        f.names = (struct strvec){*names, *count, *count};
    ec2_items(xmlDocGetRootElement(doc), "imagesSet", take_image, &f);
    if (!want) {
        *names = f.names.v;
        *count = f.names.n;
    }
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

/* RunInstances of one VM of type from ami (key pair, subnet, groups,
 * metadata, spot, tags); its instance id (without "i-") in vm->id. VMMS_OK,
 * or a VMMS error in err (VMMS_BUSY when EC2 has no capacity now). */
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

/* type is one of allowed_instance_types; else a VMMS error listing them. */
static int check_type(const struct ec2_config *c, const char *type, char *err, size_t errlen)
{
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
    return VMMS_OK;
}

/* The AMI tagged with vm's image in ami. VMMS_OK, or a VMMS error in err
 * (VMMS_NOT_FOUND when no AMI has that tag). */
static int find_ami(struct ec2_ctx *ctx, const struct vmms_vm *vm, char *ami, size_t amisz,
                    char *err, size_t errlen)
{
    int rc = images(ctx, vm->image, ami, amisz, NULL, NULL, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (!ami[0])
        return vmms_fail(err, errlen, VMMS_NOT_FOUND,
                         "no AMI of this account is tagged %s=%s", ctx->cfg.image_tag, vm->image);
    return VMMS_OK;
}

/* Launches vm under max_vms: what EC2 reports as ours, counted and launched
 * one at a time in this process (other consumers may launch in between: each
 * counts what it sees, so the cap can be passed by at most one per
 * consumer). The count in *live, the launch's start in *t0. VMMS_OK, or a
 * VMMS error in err (VMMS_BUSY at the cap). */
static int launch_capped(struct ec2_ctx *ctx, struct vmms_vm *vm, const char *type,
                         const char *ami, int *live, long *t0, char *err, size_t errlen)
{
    const struct ec2_config *c = &ctx->cfg;
    pthread_mutex_lock(&ctx->launch);
    *live = 0;
    struct ec2_params p = {0};
    ours_filter(ctx, &p, LIVE);
    int rc = ec2_describe(ctx, &p, count_one, live, err, errlen);
    ec2_params_free(&p);
    if (rc == VMMS_OK && *live >= c->max_vms)
        rc = vmms_fail(err, errlen, VMMS_BUSY,
                       "max_vms reached: %d of this service's instances are pending or running "
                       "(max_vms %d)", *live, c->max_vms);
    *t0 = clock_mono_ms();
    if (rc == VMMS_OK)
        rc = launch(ctx, vm, type, ami, err, errlen);
    pthread_mutex_unlock(&ctx->launch);
    return rc;
}

/* Polls vm's instance until it runs with an address (vm->host), ends, the
 * initialize timeout from t0 passes or the plugin stops (then marked
 * failed). VMMS_OK or a VMMS error in err. */
static int wait_running(struct ec2_ctx *ctx, struct vmms_vm *vm, long t0, char *err,
                        size_t errlen)
{
    const struct ec2_config *c = &ctx->cfg;
    long deadline = t0 + 1000L * c->initialize_timeout_s;
    char state[32] = "", addr[64] = "";
    for (;;) {
        int rc = ec2_instance_state(ctx, vm->id, state, sizeof state, addr, sizeof addr, err,
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
    rc = check_type(c, type, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    if (ec2_vm_priv(vm) == NULL)
        return vmms_fail(err, errlen, VMMS_ERR, "out of memory");
    char ami[48] = "";
    rc = find_ami(ctx, vm, ami, sizeof ami, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    int live;
    long t0;
    rc = launch_capped(ctx, vm, type, ami, &live, &t0, err, errlen);
    if (rc != VMMS_OK) {
        char q[700];
        log_warn("vm_create_failed", "name=%s type=%s rc=%d err=%s", vm->name, type, rc,
                 log_quote(err, q, sizeof q));
        return rc;
    }
    log_info("vm_created", "name=%s id=i-%s type=%s ami=%s spot=%d live_before=%d", vm->name,
             vm->id, type, ami, (int)c->spot, live);
    /* Until it runs (and has the address we reach it at). */
    rc = wait_running(ctx, vm, t0, err, errlen);
    if (rc != VMMS_OK)
        return rc;
    log_info("vm_running", "name=%s id=i-%s host=%s ms=%ld", vm->name, vm->id, vm->host,
             (long)(clock_mono_ms() - t0));
    return VMMS_OK;
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
        rc = ec2_describe(ctx, &p, take_id, &b, err, errlen);
        ec2_params_free(&p);
        if (rc != VMMS_OK)
            return rc;
        if (!ec2_id_ok(b.id, "i-"))
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
    int rc = ec2_describe(ctx, &p, list_one, &l, err, errlen);
    ec2_params_free(&p);
    return rc;
}
