/*
 * images.c: the images a job may name and loading new ones. get_images
 * answers the images present on every healthy worker host (a job must be
 * able to run wherever it lands), from `docker images` on each. load_image
 * checks the `docker save` tarball (image_tar.h: one image, no tag but the
 * wanted one), streams it to `docker load` on every healthy host over the
 * command's stdin, checks that docker tagged nothing else (a tag it moved
 * anyway is put back and the build fails), then tags the result with the
 * wanted name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/image_open.h"
#include "dd.h"
#include "image_tar.h"
#include "log.h"
#include "names.h"
#include "strvec.h"

/* Adds name's first len bytes to s unless there. 0, or -1 out of memory. */
static int names_add(struct strvec *s, const char *name, size_t len)
{
    return strvec_find(s, name, len) >= 0 ? 0 : strvec_pushn(s, name, len);
}

/* The images of one host ("repo" for repo:latest, else "repo:tag"). */
static int host_images(struct dd_ctx *ctx, struct dd_host *h, struct strvec *out, char *err,
                       size_t errlen)
{
    struct vssh_cmd cmd = {.line = "docker images --format '{{json .}}'", .stdin_fd = -1,
                         .out_max = VSSH_OUT_MAX};
    struct vssh_out o;
    int rc = dd_run(ctx, h, &cmd, &o, err, errlen);
    if (rc == VMMS_OK && o.exit_code != 0)
        rc = vssh_cmd_fail(h->label, &o, "cannot list images", err, errlen);
    for (char *p = o.out, *nl; rc == VMMS_OK && p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        json_t *img = json_loadb(p, nl ? (size_t)(nl - p) : strlen(p), 0, NULL);
        const char *repo = json_string_value(json_object_get(img, "Repository"));
        const char *tag = json_string_value(json_object_get(img, "Tag"));
        if (repo && tag && strcmp(repo, "<none>") != 0 && strcmp(tag, "<none>") != 0) {
            char ref[600];
            int n = strcmp(tag, "latest") == 0 ? snprintf(ref, sizeof ref, "%s", repo)
                                               : snprintf(ref, sizeof ref, "%s:%s", repo, tag);
            if (n > 0 && (size_t)n < sizeof ref && names_add(out, ref, (size_t)n) != 0)
                rc = vmms_fail(err, errlen, VMMS_ERR, "out of memory");
        }
        json_decref(img);
    }
    vssh_out_free(&o);
    return rc;
}

int dd_get_images(void *vctx, char ***names, size_t *count, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    *names = NULL;
    *count = 0;
    struct strvec all = STRVEC_INIT;
    size_t answered = 0;
    int rc = VMMS_OK;
    for (size_t i = 0; i < ctx->nhosts; i++) {
        struct dd_host *h = &ctx->hosts[i];
        if (!dd_host_is_up(ctx, h))
            continue;
        struct strvec mine = STRVEC_INIT;
        char e[512];
        if (host_images(ctx, h, &mine, e, sizeof e) != VMMS_OK) {
            /* A host that cannot answer now is not healthy: it does not count. */
            char q[600];
            log_warn("images_host_failed", "host=%s err=%s", h->label, log_quote(e, q, sizeof q));
            strvec_free(&mine);
            continue;
        }
        if (answered++ == 0) {
            all = mine;
            continue;
        }
        size_t k = 0;
        for (size_t j = 0; j < all.n; j++) {
            if (strvec_find(&mine, all.v[j], strlen(all.v[j])) >= 0)
                all.v[k++] = all.v[j];
            else
                free(all.v[j]);
        }
        all.n = k;
        strvec_free(&mine);
    }
    if (answered == 0) {
        strvec_free(&all);
        return vmms_fail(err, errlen, VMMS_ERR, "no worker host is up to list images");
    }
    *names = strvec_take(&all, count);
    return rc;
}

#define LOADED_MAX 16

/* Runs a short docker command line on h; VMMS_OK only if it exited 0. */
static int run_short(struct dd_ctx *ctx, struct dd_host *h, const char *line, size_t out_max,
                     struct vssh_out *o, const char *what, char *err, size_t errlen)
{
    struct vssh_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = out_max};
    int rc = dd_run(ctx, h, &cmd, o, err, errlen);
    if (rc == VMMS_OK && o->exit_code != 0)
        rc = vssh_cmd_fail(h->label, o, what, err, errlen);
    return rc;
}

/* Puts tag ref back on h where it was before the load (before: lines "REF
 * ID" of `docker images` then), or removes it if it did not exist. */
static void undo_tag(struct dd_ctx *ctx, struct dd_host *h, const char *before,
                     const char *ref)
{
    char prev[300] = "";
    for (const char *p = before; p && *p && !prev[0];) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *sp = memchr(p, ' ', n);
        char r[300];
        if (sp && (size_t)(sp - p) < sizeof r && n - (size_t)(sp - p) - 1 < sizeof prev) {
            snprintf(r, sizeof r, "%.*s", (int)(sp - p), p);
            if (image_ref_same(r, ref))
                snprintf(prev, sizeof prev, "%.*s", (int)(n - (size_t)(sp - p) - 1), sp + 1);
        }
        p = nl ? nl + 1 : NULL;
    }
    char qr[340], qp[340], line[800], e[256], q[300], qe[300];
    vmms_sh_quote(ref, qr, sizeof qr);
    if (prev[0] && strspn(prev, "sha256:0123456789abcdef") == strlen(prev))
        snprintf(line, sizeof line, "docker tag %s %s", vmms_sh_quote(prev, qp, sizeof qp), qr);
    else
        snprintf(line, sizeof line, "docker rmi --no-prune %s", qr);
    struct vssh_out o;
    int rc = run_short(ctx, h, line, 1024, &o, "cannot put the tag back", e, sizeof e);
    vssh_out_free(&o);
    log_error("image_tag_undone", "host=%s tag=%s restored_to=%.19s rc=%d err=%s", h->label,
              log_quote(ref, q, sizeof q), prev[0] ? prev : "(removed)", rc,
              log_quote(rc == VMMS_OK ? "none" : e, qe, sizeof qe));
}

/* Loads the (checked) tarball on h, makes sure docker tagged nothing but
 * name, and tags what it loaded as name. */
static int load_on(struct dd_ctx *ctx, struct dd_host *h, int fd, int timeout_s,
                   const char *name, char *err, size_t errlen)
{
    if (lseek(fd, 0, SEEK_SET) != 0)
        return vmms_fail(err, errlen, VMMS_ERR, "cannot rewind the tarball: %s", strerror(errno));
    struct vssh_out before;
    int rc = run_short(ctx, h, "docker images --no-trunc --format '{{.Repository}}:{{.Tag}} "
                       "{{.ID}}'", VSSH_OUT_MAX, &before, "cannot list images", err, errlen);
    if (rc != VMMS_OK) {
        vssh_out_free(&before);
        return rc;
    }
    struct vssh_cmd cmd = {.line = "docker load", .timeout_ms = 1000 * timeout_s, .stdin_fd = fd,
                         .out_max = 65536};
    struct vssh_out o;
    rc = dd_run(ctx, h, &cmd, &o, err, errlen);
    if (rc == VMMS_OK && o.exit_code != 0)
        rc = vssh_cmd_fail(h->label, &o, "docker load failed", err, errlen);
    char v[300], id[300] = "";
    size_t nids = 0;
    bool named = false;
    for (char *p = o.out; p && *p;) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        int kind = image_load_line(p, n, v, sizeof v);
        if (kind == 1 && image_ref_same(v, name)) {
            named = true;
        } else if (kind == 1) {
            undo_tag(ctx, h, before.out, v);
            if (rc == VMMS_OK)
                rc = vmms_fail(err, errlen, VMMS_ERR, "docker on %s tagged %.100s from the "
                             "tarball, which /build does not allow (only %s); the tag was put "
                             "back", h->label, v, name);
        } else if (kind == 2 && nids++ == 0) {
            strcpy(id, v);
        }
        p = nl ? nl + 1 : NULL;
    }
    vssh_out_free(&o);
    vssh_out_free(&before);
    if (rc != VMMS_OK || named)
        return rc;
    if (nids != 1 || strspn(id, "sha256:0123456789abcdef") != strlen(id))
        return vmms_fail(err, errlen, VMMS_ERR, "docker on %s loaded no single image from the "
                       "tarball (is it a `docker save` archive?)", h->label);
    char want[300], qi[340], qw[340], line[800];
    snprintf(want, sizeof want, "%s%s", name, strchr(name, ':') ? "" : ":latest");
    snprintf(line, sizeof line, "docker tag %s %s", vmms_sh_quote(id, qi, sizeof qi),
             vmms_sh_quote(want, qw, sizeof qw));
    rc = run_short(ctx, h, line, 1024, &o, "cannot tag the loaded image", err, errlen);
    vssh_out_free(&o);
    return rc;
}

int dd_load_image(void *vctx, const char *tar_path, const char *name, int timeout_s,
                  const struct vmms_image_limits *lim, char *err, size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    /* the hosts' free space is theirs to tell (docker load fails there) */
    int fd = vmms_image_tar_open(tar_path, name, lim, NULL, err, errlen);
    if (fd < 0)
        return VMMS_ERR;
    if (timeout_s <= 0)
        timeout_s = ctx->cfg.command_timeout_s;
    long t0 = clock_mono_ms();
    size_t loaded = 0;
    int rc = VMMS_OK;
    for (size_t i = 0; i < ctx->nhosts && rc == VMMS_OK; i++) {
        struct dd_host *h = &ctx->hosts[i];
        if (!dd_host_is_up(ctx, h))
            continue;
        rc = load_on(ctx, h, fd, timeout_s, name, err, errlen);
        loaded += rc == VMMS_OK;
    }
    close(fd);
    if (rc == VMMS_OK && loaded == 0)
        rc = vmms_fail(err, errlen, VMMS_ERR, "no worker host is up to load the image on");
    if (rc == VMMS_OK) {
        char qn[300];
        log_info("image_loaded", "name=%s hosts=%zu ms=%ld", log_quote(name, qn, sizeof qn),
                 loaded, (long)(clock_mono_ms() - t0));
    }
    return rc;
}
