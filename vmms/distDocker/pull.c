/*
 * pull.c: distDocker's registry images. Owns resolve_image (a tag pinned
 * to its digest by reg_resolve, as localDocker and localOCI do) and
 * dd_pull_missing: a job's registry reference its worker host lacks is
 * pulled there by the host's docker CLI and dockerd before the container
 * is made. The registry's credentials (config key "registries") go as a
 * docker config.json (registry.h reg_docker_config) on the pull command's
 * stdin, from a memfd: never on a command line, in a log or in a local
 * file. On the host the script writes it into a fresh mktemp -d directory
 * (0700, the file umask 077), runs `docker --config DIR pull REF`, and
 * removes the directory on every way out (a trap on exit and on the
 * signals a dropped session or a timeout brings). The host's dockerd
 * trusts the registry's CA by its certs.d rule, as localDocker's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/registry.h"
#include "dd.h"
#include "image_ref.h"
#include "log.h"

int dd_resolve_image(void *vctx, const char *name, char *out, size_t outlen, char *err,
                     size_t errlen)
{
    struct dd_ctx *ctx = vctx;
    return reg_resolve(ctx->cfg.registries, name, out, outlen, err, errlen);
}

/* Whether h's dockerd holds image qname (sh-quoted): VMMS_OK, VMMS_NOT_FOUND,
 * or the failure of the command. */
static int host_has(struct dd_ctx *ctx, struct dd_host *h, const char *qname, char *err,
                    size_t errlen)
{
    char line[800];
    snprintf(line, sizeof line, "docker image inspect --format '{{.Id}}' %s >/dev/null "
             "2>&1 && echo tango-have || echo tango-missing", qname);
    struct vssh_cmd cmd = {.line = line, .stdin_fd = -1, .out_max = 256};
    struct vssh_out o;
    int rc = dd_run(ctx, h, &cmd, &o, err, errlen);
    if (rc == VMMS_OK && (o.exit_code != 0 || o.out == NULL))
        rc = vssh_cmd_fail(h->label, &o, "cannot look for the image", err, errlen);
    if (rc == VMMS_OK && strncmp(o.out, "tango-have", 10) != 0)
        rc = VMMS_NOT_FOUND;
    vssh_out_free(&o);
    return rc;
}

/* A memfd holding the docker config.json for ref's registry, read from its
 * start; -1 with err on failure. The secret lives only in the memfd. */
static int config_fd(struct dd_ctx *ctx, const struct image_ref *ref, char *err, size_t errlen)
{
    char *conf = NULL;
    if (reg_docker_config(ctx->cfg.registries, ref->registry, &conf, err, errlen) != VMMS_OK)
        return -1;
    size_t n = strlen(conf);
    int fd = memfd_create("tango-docker-config", MFD_CLOEXEC);
    if (fd >= 0 && (write(fd, conf, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET) != 0)) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        vmms_fail(err, errlen, VMMS_ERR, "cannot hold the registry credentials: %s",
                  strerror(errno));
    reg_engine_auth_free(conf);
    return fd;
}

/* Runs the pull of qname (sh-quoted) on h with the config.json on stdin. */
static int host_pull(struct dd_ctx *ctx, struct dd_host *h, const char *qname, int fd,
                     const char *name, char *err, size_t errlen)
{
    char line[1000];
    snprintf(line, sizeof line,
             "umask 077; d=$(mktemp -d \"${TMPDIR:-/tmp}/tango-pull.XXXXXXXX\") || exit 1; trap 'rm -rf \"$d\"' EXIT; "
             "trap 'exit 129' HUP INT TERM PIPE; "
             "cat > \"$d/config.json\" || exit 1; "
             "docker --config \"$d\" pull -q %s >/dev/null", qname);
    struct vssh_cmd cmd = {.line = line, .timeout_ms = 1000 * DD_PULL_TIMEOUT_S, .stdin_fd = fd,
                           .out_max = 4096};
    struct vssh_out o;
    int rc = dd_run(ctx, h, &cmd, &o, err, errlen);
    char what[300];
    snprintf(what, sizeof what, "Docker could not pull %s", name);
    if (rc == VMMS_OK && o.exit_code != 0)
        rc = vssh_cmd_fail(h->label, &o, what, err, errlen);
    vssh_out_free(&o);
    return rc;
}

int dd_pull_missing(struct dd_ctx *ctx, struct dd_host *h, const char *name, char *err,
                    size_t errlen)
{
    struct image_ref ref;
    if (image_ref_parse(name, &ref) != 0 || !ref.remote)
        return VMMS_OK; /* a local name: the host has it or the create says so */
    char qn[2 * IMAGE_REF_MAX + 8];
    if (!vmms_sh_quote(name, qn, sizeof qn)[0])
        return vmms_fail(err, errlen, VMMS_ERR, "image name too long");
    int rc = host_has(ctx, h, qn, err, errlen);
    if (rc != VMMS_NOT_FOUND)
        return rc;
    long t0 = clock_mono_ms();
    int fd = config_fd(ctx, &ref, err, errlen);
    rc = fd >= 0 ? host_pull(ctx, h, qn, fd, name, err, errlen) : VMMS_ERR;
    if (fd >= 0)
        close(fd);
    char q[300], qe[600];
    if (rc != VMMS_OK)
        log_warn("image_pull_failed", "name=%s host=%s reason=%s", log_quote(name, q, sizeof q),
                 h->label, log_quote(err, qe, sizeof qe));
    else
        log_info("image_pulled", "name=%s host=%s via=docker_cli ms=%ld",
                 log_quote(name, q, sizeof q), h->label, (long)(clock_mono_ms() - t0));
    return rc;
}
