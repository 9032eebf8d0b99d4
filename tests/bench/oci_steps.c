/*
 * oci_steps.c: the localOCI back end's own cost per job, step by step, with
 * no consumer, Redis or HTTP around it (make bench, section localoci).
 * dlopen()s build/vmms/localOCI.so and runs N hello jobs one after another
 * through its ops: initialize_vm, wait_vm, copy_in, start_job, attach_job
 * (the grading command itself), job_usage, copy_out, destroy_vm; prints the
 * median and p90 of each step in ms, and the back end's overhead (every
 * step but the run) and the critical path of a warm-pool job (copy_in +
 * start + copy_out, the rest being made ahead or torn down after).
 *
 *   oci_steps PLUGIN.so RUN_DIR STORE_DIR N
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmms.h"

enum { S_INIT, S_WAIT, S_COPYIN, S_START, S_RUN, S_USAGE, S_COPYOUT, S_DESTROY, NSTEPS };
static const char *const step_names[NSTEPS] = {"initialize_vm", "wait_vm", "copy_in",
                                               "start_job", "run (the grading command)",
                                               "job_usage", "copy_out", "destroy_vm"};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    double *c = malloc(sizeof *c * (size_t)n);
    memcpy(c, v, sizeof *c * (size_t)n);
    qsort(c, (size_t)n, sizeof *c, cmp);
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    double r = c[i];
    free(c);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PLUGIN.so RUN_DIR STORE_DIR N\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[4]);
    if (n < 1 || n > 10000)
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    const struct vmms_ops *ops = h ? dlsym(h, "vmms_plugin") : NULL;
    if (ops == NULL) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
        return 1;
    }
    char prefix[32], err[512];
    snprintf(prefix, sizeof prefix, "bs%d-", (int)getpid());
    json_t *cfg = json_pack("{s:s, s:s, s:s}", "run_dir", argv[2], "store_dir", argv[3],
                            "runtime", getenv("BENCH_OCI_RUNTIME") ? getenv("BENCH_OCI_RUNTIME")
                                                                   : "auto");
    void *ctx = NULL;
    if (ops->init(cfg, prefix, &ctx, err, sizeof err) != VMMS_OK) {
        fprintf(stderr, "init: %s\n", err);
        return 1;
    }
    char mk[] = "/tmp/oci-steps-Makefile-XXXXXX";
    int fd = mkstemp(mk);
    const char *recipe = "all:\n\techo hello\n";
    if (fd < 0 || write(fd, recipe, strlen(recipe)) < 0)
        return 1;
    close(fd);
    double *t[NSTEPS];
    for (int s = 0; s < NSTEPS; s++)
        t[s] = calloc((size_t)n, sizeof(double));
    int failed = 0;
    for (int i = 0; i < n; i++) {
        struct vmms_vm vm;
        memset(&vm, 0, sizeof vm);
        snprintf(vm.name, sizeof vm.name, "%sj%d", prefix, i);
        snprintf(vm.image, sizeof vm.image, "autograding_image");
        vm.cores = 1;
        vm.memory_mb = 512;
        vm.pids_limit = 256;
        vm.network = false;
        struct vmms_file f = {.local_path = mk, .dest_name = "Makefile"};
        struct vmms_run run = {.timeout_s = 20, .max_output = 1 << 20, .nproc = 100,
                               .fsize = 1 << 20};
        struct vmms_usage use;
        char handle[128], out[64];
        int status = -1, rc;
        double t0 = now_ms();
        rc = ops->initialize_vm(ctx, &vm, err, sizeof err);
        double t1 = now_ms();
        if (rc == VMMS_OK)
            rc = ops->wait_vm(ctx, &vm, 10, err, sizeof err);
        double t2 = now_ms();
        if (rc == VMMS_OK)
            rc = ops->copy_in(ctx, &vm, &f, 1, 10, err, sizeof err);
        double t3 = now_ms();
        if (rc == VMMS_OK)
            rc = ops->start_job(ctx, &vm, &run, handle, sizeof handle, err, sizeof err);
        double t4 = now_ms();
        if (rc == VMMS_OK)
            rc = ops->attach_job(ctx, &vm, handle, 30000, &status, err, sizeof err);
        double t5 = now_ms();
        if (rc == VMMS_OK && ops->job_usage)
            ops->job_usage(ctx, &vm, &use, err, sizeof err);
        double t6 = now_ms();
        snprintf(out, sizeof out, "/tmp/oci-steps-out-%d-%d", (int)getpid(), i);
        if (rc == VMMS_OK)
            rc = ops->copy_out(ctx, &vm, out, 10, err, sizeof err);
        unlink(out);
        double t7 = now_ms();
        char e2[256];
        ops->destroy_vm(ctx, &vm, e2, sizeof e2);
        double t8 = now_ms();
        if (rc != VMMS_OK || status != 0) {
            fprintf(stderr, "job %d: rc=%d status=%d %s\n", i, rc, status, err);
            failed++;
        }
        double v[NSTEPS] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6,
                            t8 - t7};
        for (int s = 0; s < NSTEPS; s++)
            t[s][i] = v[s];
    }
    unlink(mk);
    double *over = calloc((size_t)n, sizeof(double)), *crit = calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        for (int s = 0; s < NSTEPS; s++)
            if (s != S_RUN)
                over[i] += t[s][i];
        crit[i] = t[S_COPYIN][i] + t[S_START][i] + t[S_COPYOUT][i];
    }
    printf("%-44s | %8s | %8s\n", "localOCI step (ms, one job at a time)", "p50", "p90");
    for (int s = 0; s < NSTEPS; s++)
        printf("%-44s | %8.1f | %8.1f\n", step_names[s], pct(t[s], n, 50), pct(t[s], n, 90));
    printf("%-44s | %8.1f | %8.1f\n", "back-end overhead (all but the run)", pct(over, n, 50),
           pct(over, n, 90));
    printf("%-44s | %8.1f | %8.1f\n", "warm-pool critical path (copy_in+start+copy_out)",
           pct(crit, n, 50), pct(crit, n, 90));
    printf("(%d jobs, %d failed)\n", n, failed);
    ops->shutdown(ctx);
    json_decref(cfg);
    return failed ? 1 : 0;
}
