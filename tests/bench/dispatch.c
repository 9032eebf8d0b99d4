/*
 * dispatch.c: measures the consumer's Redis cost per job (lease the next
 * job, load its record, end it) with 1,000 and with 100,000 jobs queued, to
 * show it does not grow with the queue. Needs a redis-server: REDIS_URL env
 * (the bench script starts one). Prints microseconds per job for each size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "job.h"
#include "store.h"

#define MEASURED 2000

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static struct job *sample_job(void)
{
    struct job *j = job_new();
    j->name = strdup("bench");
    j->courselab = strdup("lab");
    j->lab_dir = strdup("0000000000000000-lab");
    j->image = strdup("autograding_image");
    j->output_file = strdup("out.txt");
    j->timeout_s = 20;
    j->max_output_bytes = 1024000;
    j->nfiles = 1;
    j->files = calloc(1, sizeof *j->files);
    j->files[0].local_file = strdup("Makefile");
    j->files[0].dest_file = strdup("Makefile");
    job_trace(j, "Added job");
    return j;
}

static int run(const char *url, long queued)
{
    char *env[] = {NULL, NULL, NULL};
    char e1[600], e2[64];
    snprintf(e1, sizeof e1, "TANGO_REDIS_URL=%s", url);
    snprintf(e2, sizeof e2, "TANGO_PREFIX=bench%ld:", queued);
    env[0] = e1;
    env[1] = e2;
    struct tango_config cfg;
    char err[256];
    if (config_load(&cfg, NULL, env, err, sizeof err)) {
        fprintf(stderr, "dispatch: %s\n", err);
        return -1;
    }
    struct store *st = store_new(&cfg);
    struct job *j = sample_job();
    double t0 = now_us();
    for (long i = 0; i < queued + MEASURED; i++)
        if (store_add_job(st, j) != STORE_OK) {
            fprintf(stderr, "dispatch: add failed: %s\n", store_error(st));
            return -1;
        }
    double fill = now_us() - t0;
    t0 = now_us();
    bool leader = false;
    if (store_leader_acquire(st, "benchtoken", 600000, &leader) != STORE_OK || !leader) {
        fprintf(stderr, "dispatch: leader lease: %s\n", store_error(st));
        return -1;
    }
    for (int i = 0; i < MEASURED; i++) {
        int64_t id = 0;
        struct job *got = NULL;
        enum store_lease lease;
        /* A job's whole life in the consumer's Redis calls: lease, start,
         * finish (output accepted), end. */
        if (store_lease_next(st, "benchtoken", 10000, 0, &id, &got, &lease) != STORE_OK ||
            lease != LEASE_TAKEN || store_job_start(st, "benchtoken", got) != STORE_OK) {
            fprintf(stderr, "dispatch: lease failed: %s\n", store_error(st));
            return -1;
        }
        free(got->outcome);
        got->outcome = strdup("Success: Autodriver returned normally");
        if (store_job_finish(st, "benchtoken", got) != STORE_OK ||
            store_job_end(st, "benchtoken", got, false, NULL, 0, NULL) != STORE_OK) {
            fprintf(stderr, "dispatch: finish failed: %s\n", store_error(st));
            return -1;
        }
        job_free(got);
    }
    double per = (now_us() - t0) / MEASURED;
    printf("%-44s | %8.1f us | (queue filled at %.0f addJob/s)\n",
           queued >= 100000 ? "dispatch cost per job, 100k queued" : "dispatch cost per job, 1k queued",
           per, (queued + MEASURED) / (fill / 1e6));
    job_free(j);
    store_free(st);
    config_free(&cfg);
    return 0;
}

int main(void)
{
    const char *url = getenv("REDIS_URL");
    if (!url) {
        fprintf(stderr, "dispatch: set REDIS_URL\n");
        return 2;
    }
    if (run(url, 1000) || run(url, 100000))
        return 1;
    return 0;
}
