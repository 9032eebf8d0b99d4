/*
 * oci_pull.c: localOCI's pull of one registry image, timed, with no
 * consumer around it (tests/bench/registry_pull.sh). dlopen()s
 * build/vmms/localOCI.so with a config that names no Docker engine and
 * one registry, pins the reference to its digest (resolve_image, as the
 * consumer does) and makes one sandbox of it (initialize_vm: what pulls
 * the image into the store), then destroys it; the plugin's own log line
 * (event=image_pulled ... fetch_ms= unpack_ms= bytes= ms=) gives the pull's
 * figures apart from the sandbox's.
 *
 *   oci_pull PLUGIN.so RUN_DIR STORE_DIR REGISTRIES_JSON IMAGE_REF
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmms.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PLUGIN.so RUN_DIR STORE_DIR REGISTRIES_JSON IMAGE_REF\n",
                argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    const struct vmms_ops *ops = h ? dlsym(h, "vmms_plugin") : NULL;
    json_t *regs = json_loads(argv[4], 0, NULL);
    if (ops == NULL || ops->resolve_image == NULL || regs == NULL) {
        fprintf(stderr, "cannot load %s or parse the registries\n", argv[1]);
        return 1;
    }
    char prefix[32], err[512];
    snprintf(prefix, sizeof prefix, "bp%d-", (int)getpid());
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:[], s:o}", "run_dir", argv[2], "store_dir",
                            argv[3], "docker_socket", "", "import_images", "registries", regs);
    void *ctx = NULL;
    if (ops->init(cfg, prefix, &ctx, err, sizeof err) != VMMS_OK) {
        fprintf(stderr, "init: %s\n", err);
        return 1;
    }
    struct vmms_vm vm;
    memset(&vm, 0, sizeof vm);
    snprintf(vm.name, sizeof vm.name, "%sp", prefix);
    vm.network = false;
    double t0 = now_ms();
    int rc = ops->resolve_image(ctx, argv[5], vm.image, sizeof vm.image, err, sizeof err);
    if (rc == VMMS_OK)
        rc = ops->initialize_vm(ctx, &vm, err, sizeof err);
    double t1 = now_ms();
    char e2[256];
    ops->destroy_vm(ctx, &vm, e2, sizeof e2);
    if (rc != VMMS_OK) {
        fprintf(stderr, "pull: %s\n", err);
        return 1;
    }
    printf("resolve_and_initialize_ms=%.0f image=%s\n", t1 - t0, vm.image);
    ops->shutdown(ctx);
    json_decref(cfg);
    return 0;
}
