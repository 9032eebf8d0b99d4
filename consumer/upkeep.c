/*
 * upkeep.c: the leader's slow, blocking chores, off the dispatch loop:
 * publishing the VMMS's image list to Redis (at start, every 30 s, after a
 * build) so producers validate image names against what can run; loading
 * image tarballs queued by producers' /build; keeping the warm pools.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "consumer.h"
#include "log.h"
#include "pool.h"

#define IMAGES_EVERY_S 30
#define TICK_MS 500

void upkeep_publish_images(struct consumer *c, struct store *st)
{
    char **names = NULL;
    size_t n = 0;
    char err[256] = "";
    int listed = c->ops->get_images(c->vctx, &names, &n, err, sizeof err);
    metrics_vmms_error(c, "get_images", listed);
    if (listed != VMMS_OK) {
        log_warn("images_list_failed", "error=\"%s\"", err);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(names[i]));
    vmms_free_names(names, n);
    if (store_set_images(st, list) == STORE_OK)
        log_debug("images_published", "count=%zu", n);
    json_decref(list);
}

static bool load_build(struct consumer *c, struct store *st)
{
    json_t *b = NULL;
    if (store_next_build(st, &b) != STORE_OK)
        return false;
    json_int_t id = json_integer_value(json_object_get(b, "id"));
    const char *image = json_string_value(json_object_get(b, "image"));
    const char *path = json_string_value(json_object_get(b, "path"));
    char err[256] = "";
    const struct vmms_image_limits lim = {(long long)c->cfg->image_max_unpacked_mb << 20,
                                          c->cfg->image_max_entries};
    int loaded = image && path ? c->ops->load_image(c->vctx, path, image, c->cfg->build_timeout_s,
                                                    &lim, err, sizeof err)
                               : VMMS_ERR;
    if (image && path)
        metrics_vmms_error(c, "load_image", loaded);
    bool ok = loaded == VMMS_OK;
    if (ok) /* before the answer: the build's client may send a job at once */
        pool_image_rebuilt(c->pool, image);
    store_set_build_result(st, id, ok, ok ? "" : err);
    if (ok)
        log_info("image_built", "build_id=%lld image=%s", (long long)id, image);
    else
        log_warn("image_build_failed", "build_id=%lld error=\"%s\"", (long long)id, err);
    if (path)
        unlink(path);
    json_decref(b);
    return true;
}

void *upkeep_main(void *arg)
{
    struct consumer *c = arg;
    struct store *st = store_new(c->cfg);
    time_t last_images = 0;
    bool was_leader_here = false;
    while (!atomic_load(&c->stopping)) {
        if (atomic_load(&c->leader) && !atomic_load(&c->draining)) {
            was_leader_here = true;
            bool built = false;
            while (!atomic_load(&c->stopping) && load_build(c, st))
                built = true;
            if (built || time(NULL) - last_images >= IMAGES_EVERY_S) {
                upkeep_publish_images(c, st);
                last_images = time(NULL);
            }
            pool_tick(c->pool, st);
        }
        usleep(TICK_MS * 1000);
    }
    if (was_leader_here)
        pool_unpublish(c->pool, st);
    store_free(st);
    return NULL;
}
