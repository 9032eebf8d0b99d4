/*
 * disk_guard.c: the free-space floor (see disk_guard.h). Owns the watched
 * paths, the last sample's verdict and the sampling thread.
 */
#include "disk_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "clock.h"
#include "consumer.h"
#include "log.h"

#define MAX_PATHS 2

struct disk_guard {
    const char *paths[MAX_PATHS];
    size_t npaths;
    unsigned long long floor_bytes;
    atomic_bool low;        /* the last sample's verdict */
    atomic_bool stop;
    bool running;           /* the sampling thread was started */
    bool lease_paused;      /* dispatcher thread only: what it last logged */
    bool warned[MAX_PATHS]; /* sampling thread: a statvfs failure was logged */
    pthread_t thread;
};

/* Free bytes (for unprivileged writers) of path; -1 when it cannot be read. */
static long long free_bytes(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        return -1;
    return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

/* Samples every path; publishes the figures when publish (the thread).
 * A path that cannot be read does not count as low (logged once). */
static bool sample(struct consumer *c, struct disk_guard *g, bool publish)
{
    bool low = false;
    for (size_t i = 0; i < g->npaths; i++) {
        long long b = free_bytes(g->paths[i]);
        if (b < 0) {
            if (publish && !g->warned[i]) {
                log_warn("disk_check_failed", "path=%s errno=%d", g->paths[i], errno);
                g->warned[i] = true;
            }
            continue;
        }
        if (publish)
            metrics_disk_free(c, g->paths[i], (double)b);
        low |= (unsigned long long)b < g->floor_bytes;
    }
    return low;
}

/* Samples every DISK_GUARD_PERIOD_MS; logs each change of verdict once. */
static void *guard_main(void *arg)
{
    struct consumer *c = arg;
    struct disk_guard *g = c->disk;
    metrics_disk_floor(c, (double)g->floor_bytes);
    while (!atomic_load(&g->stop)) {
        bool low = sample(c, g, true);
        if (low != atomic_exchange(&g->low, low))
            log_info(low ? "disk_low" : "disk_ok", "min_free_mb=%d paths=%zu",
                     c->cfg->min_free_mb, g->npaths);
        for (int i = 0; i < DISK_GUARD_PERIOD_MS / 50 && !atomic_load(&g->stop); i++)
            clock_sleep_ms(50);
    }
    return NULL;
}

int disk_guard_start(struct consumer *c)
{
    struct disk_guard *g = calloc(1, sizeof *g);
    if (!g)
        return -1;
    g->floor_bytes = (unsigned long long)c->cfg->min_free_mb << 20;
    g->paths[g->npaths++] = c->cfg->courselabs;
    const char *data = c->ops && c->ops->data_dir ? c->ops->data_dir(c->vctx) : NULL;
    if (data && data[0])
        g->paths[g->npaths++] = data;
    c->disk = g;
    if (g->floor_bytes == 0)
        return 0; /* off: nothing sampled, never low */
    if (pthread_create(&g->thread, NULL, guard_main, c) != 0) {
        c->disk = NULL;
        free(g);
        return -1;
    }
    g->running = true;
    return 0;
}

void disk_guard_stop(struct consumer *c)
{
    struct disk_guard *g = c->disk;
    if (!g)
        return;
    atomic_store(&g->stop, true);
    if (g->running)
        pthread_join(g->thread, NULL);
    c->disk = NULL;
    free(g);
}

bool disk_guard_low(struct consumer *c)
{
    struct disk_guard *g = c->disk;
    return g && g->floor_bytes > 0 && sample(c, g, false);
}

bool disk_guard_lease_ok(struct consumer *c)
{
    struct disk_guard *g = c->disk;
    if (!g)
        return true;
    bool low = atomic_load(&g->low);
    if (low != g->lease_paused)
        log_info(low ? "disk_leasing_paused" : "disk_leasing_resumed",
                 "min_free_mb=%d reason=\"%s\"", c->cfg->min_free_mb,
                 low ? "a watched disk is below the free-space floor"
                     : "every watched disk is above the floor again");
    g->lease_paused = low;
    return !low;
}
