/*
 * builds.c: tangoctl builds: the Dockerfile builds of /build_image
 * (store_builds.c): list them, approve or reject one waiting for review
 * (config build_approval: required), print one's log.
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int builds_list(struct ctl *x)
{
    json_t *all = NULL;
    int status = store_build_all(x->st, &all);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "reading the builds");
    if (ctl_emit_json(x, json_pack("{s:O}", "builds", all))) {
        json_decref(all);
        return CTL_OK;
    }
    printf("%-8s %-10s %-8s %-30s %s\n", "ID", "STATE", "STATUS", "IMAGE", "MESSAGE");
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r) {
        printf("%-8lld %-10s %-8lld %-30s %s\n",
               (long long)json_integer_value(json_object_get(r, "id")),
               json_string_value(json_object_get(r, "state")) ?: "?",
               (long long)json_integer_value(json_object_get(r, "statusId")),
               json_string_value(json_object_get(r, "image")) ?: "?",
               json_string_value(json_object_get(r, "message")) ?: "");
    }
    json_decref(all);
    return CTL_OK;
}

/* approve or reject ID. */
static int builds_decide(struct ctl *x, int argc, char **argv, bool approve)
{
    int64_t id;
    int rc = ctl_job_id(x, argc, argv, &id);
    if (rc != CTL_OK)
        return rc;
    long long result = 0;
    int status = store_build_decide(x->st, id, approve, &result);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "deciding the build");
    if (result == 0)
        return ctl_fail(x, CTL_REFUSED, "no build %lld", (long long)id);
    if (result < 0)
        return ctl_fail(x, CTL_REFUSED, "build %lld is not waiting for approval", (long long)id);
    if (!ctl_emit_json(x, json_pack("{s:I, s:s}", "id", (json_int_t)id, "decision",
                                    approve ? "approved" : "rejected")))
        printf("Build %lld %s\n", (long long)id, approve ? "approved: queued for a builder"
                                                         : "rejected: it fails with statusId -2");
    return CTL_OK;
}

static int builds_log(struct ctl *x, int argc, char **argv)
{
    int64_t id;
    int rc = ctl_job_id(x, argc, argv, &id);
    if (rc != CTL_OK)
        return rc;
    json_t *rec = NULL;
    int status = store_build_get(x->st, id, &rec);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "reading the build");
    const char *pushed = json_string_value(json_object_get(rec, "imageRef"));
    if (!ctl_emit_json(x, json_incref(rec)))
        printf("build %lld: %s (statusId %lld): %s\n%s%s%s%s", (long long)id,
               json_string_value(json_object_get(rec, "state")) ?: "?",
               (long long)json_integer_value(json_object_get(rec, "statusId")),
               json_string_value(json_object_get(rec, "message")) ?: "",
               pushed ? "pushed: " : "", pushed ? pushed : "", pushed ? "\n" : "",
               json_string_value(json_object_get(rec, "log")) ?: "");
    json_decref(rec);
    return CTL_OK;
}

int cmd_builds(struct ctl *x, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0 && argc == 2)
        return builds_list(x);
    if (argc >= 2 && strcmp(argv[1], "approve") == 0)
        return builds_decide(x, argc - 1, argv + 1, true);
    if (argc >= 2 && strcmp(argv[1], "reject") == 0)
        return builds_decide(x, argc - 1, argv + 1, false);
    if (argc >= 2 && strcmp(argv[1], "log") == 0)
        return builds_log(x, argc - 1, argv + 1);
    return ctl_fail(x, CTL_USAGE, "usage: builds list | approve ID | reject ID | log ID");
}
