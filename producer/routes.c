/*
 * routes.c: the one table of every HTTP route the producer answers.
 * Legacy routes are Tango's (docs/api.md) and keep its 200-with-statusId
 * convention; the others are our additive extensions.
 */
#include <string.h>

#include "app.h"
#include "handlers_metrics.h"

static const struct route routes[] = {
    /* method  name                min max key    lab    legacy body       on_head        handler */
    {"GET",  "",                 0, 0, false, false, true,  RB_NONE,   NULL,          h_hello},
    {"GET",  "open",             2, 2, true,  true,  true,  RB_NONE,   NULL,          h_open},
    {"POST", "upload",           2, 2, true,  true,  true,  RB_STREAM, h_upload_head, h_upload},
    {"POST", "addJob",           2, 2, true,  true,  true,  RB_JSON,   NULL,          h_add_job},
    {"GET",  "poll",             3, 3, true,  true,  true,  RB_NONE,   NULL,          h_poll},
    {"GET",  "getPartialOutput", 2, 2, true,  false, true,  RB_NONE,   NULL,          h_partial_output},
    {"GET",  "info",             1, 1, true,  false, true,  RB_NONE,   NULL,          h_info},
    {"GET",  "jobs",             2, 2, true,  false, true,  RB_NONE,   NULL,          h_jobs},
    {"GET",  "pool",             1, 2, true,  false, true,  RB_NONE,   NULL,          h_pool},
    {"POST", "prealloc",         3, 3, true,  false, true,  RB_JSON,   NULL,          h_prealloc},
    /* Autolab's TangoClient.prealloc sends GET with the same JSON body */
    {"GET",  "prealloc",         3, 3, true,  false, true,  RB_JSON,   NULL,          h_prealloc},
    {"POST", "build",            1, 1, true,  false, true,  RB_STREAM, h_build_head,  h_build},
    {"POST", "build_image",      1, 1, true,  false, false, RB_STREAM, h_build_image_head, h_build_image},
    {"GET",  "build_status",     2, 2, true,  false, false, RB_NONE,   NULL,          h_build_status},
    {"GET",  "health",           0, 0, false, false, false, RB_NONE,   NULL,          h_health},
    {"GET",  "metrics",          0, 0, false, false, false, RB_NONE,   NULL,          h_metrics},
    {"GET",  "job",              2, 2, true,  false, false, RB_NONE,   NULL,          h_job},
    {"POST", "cancel",           2, 2, true,  false, false, RB_NONE,   NULL,          h_cancel},
};

const struct route *routes_find(const char *name, const char *method, bool *name_known)
{
    *name_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (strcmp(routes[i].name, name) != 0)
            continue;
        *name_known = true;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
    }
    return NULL;
}
