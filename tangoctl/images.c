/*
 * images.c: tangoctl images [prune [--dry-run]]: what each back end holds
 * (images_docker.c, images_oci.c), who owns it (the course of the key in
 * images:owners, never the key) and what uses it: queued and running jobs'
 * records, warm pools (pools:wanted, pools:state) and the config's
 * "images". Prune removes only what the back ends call ours and nothing
 * uses. Owns the command's options, gathering the uses and the output
 * (the rows and their actions: images_rows.c).
 */
#include <stdio.h>
#include <string.h>

#include "images.h"

#define LIVE_MAX 1000000 /* live jobs read; more and prune refuses */

static void use(json_t *uses, const char *name)
{
    char c[512];
    if (!name || !*name)
        return;
    img_canon(name, c, sizeof c);
    json_object_set_new(uses, c, json_integer(json_integer_value(json_object_get(uses, c)) + 1));
}

/* Every user of an image into r->uses; a CTL_ code. */
static int gather_uses(struct img_run *r)
{
    struct ctl *x = r->x;
    json_t *jobs = NULL, *pools = NULL, *job;
    int status = store_list_jobs(x->st, false, LIVE_MAX, &jobs);
    if (status != STORE_OK)
        return ctl_store_fail(x, status, "listing the live jobs");
    size_t i;
    json_array_foreach(jobs, i, job) /* the record's image is vm.image (job.c) */
        use(r->uses, json_string_value(json_object_get(json_object_get(job, "vm"), "image")));
    bool full = json_array_size(jobs) >= LIVE_MAX;
    json_decref(jobs);
    if (full && r->prune)
        return ctl_fail(x, CTL_REFUSED, "more than %d live jobs: cannot tell what is unused",
                        LIVE_MAX);
    /* every wanted or published pool, warm containers or not */
    if ((status = store_pools(x->st, &pools)) != STORE_OK)
        return ctl_store_fail(x, status, "reading the pools");
    const char *k;
    json_t *v;
    json_object_foreach(pools, k, v)
        use(r->uses, k);
    json_decref(pools);
    for (size_t j = 0; j < x->cfg.nimages; j++)
        use(r->uses, x->cfg.images[j]);
    return CTL_OK;
}

/* The course of each owned image ({image: course}; "?" when no job of
 * its key is on record). */
static json_t *owner_courses(struct ctl *x)
{
    json_t *owners = NULL, *out = json_object(), *jobs = NULL;
    if (store_image_owners(x->st, &owners) != STORE_OK)
        return out;
    json_t *seen = json_object(); /* keyId -> course, from jobs */
    for (int dead = 0; dead < 2; dead++) {
        if (store_list_jobs(x->st, dead, 10000, &jobs) != STORE_OK)
            continue;
        size_t i;
        json_t *job;
        char c[256];
        json_array_foreach(jobs, i, job) {
            const char *kid = json_string_value(json_object_get(job, "keyId"));
            const char *lab = json_string_value(json_object_get(job, "courselab"));
            if (kid && lab && !json_object_get(seen, kid))
                json_object_set_new(seen, kid, json_string(ctl_course(lab, c, sizeof c)));
        }
        json_decref(jobs);
    }
    const char *img;
    json_t *kid;
    json_object_foreach(owners, img, kid) {
        json_t *c = json_object_get(seen, json_string_value(kid) ?: "");
        json_object_set_new(out, img, c ? json_incref(c) : json_string("?"));
    }
    json_decref(seen);
    json_decref(owners);
    return out;
}

static void print_rows(const struct img_run *r)
{
    printf("%-11s %-44s %-5s %-6s %-10s %s\n", "BACKEND", "NAME", "OURS", "IN_USE", "COURSE",
           "ACTION");
    size_t i;
    json_t *row;
    json_array_foreach(r->rows, i, row) {
        const char *name = json_string_value(json_object_get(row, "name"));
        const char *course = json_string_value(json_object_get(row, "course"));
        printf("%-11s %-44s %-5s %-6lld %-10s %s\n",
               json_string_value(json_object_get(row, "backend")), name,
               json_is_true(json_object_get(row, "ours")) ? "yes" : "no",
               (long long)json_integer_value(json_object_get(row, "in_use")), course ?: "-",
               json_string_value(json_object_get(row, "action")));
    }
}

static int images_run(struct img_run *r)
{
    int rc = gather_uses(r);
    if (rc != CTL_OK)
        return rc;
    img_docker(r);
    img_oci(r);
    json_t *courses = owner_courses(r->x);
    size_t i;
    json_t *row;
    json_array_foreach(r->rows, i, row) {
        char c[512];
        json_t *course = json_object_get(
            courses, img_canon(json_string_value(json_object_get(row, "name")), c, sizeof c));
        if (course)
            json_object_set(row, "course", course);
    }
    if (!ctl_emit_json(r->x, json_pack("{s:O, s:b, s:b}", "images", r->rows, "prune", r->prune,
                                       "dry_run", r->dry)))
        print_rows(r);
    json_decref(courses);
    return r->failed ? CTL_REFUSED : CTL_OK;
}

/* prune's options into r; false on a bad one. */
static bool prune_options(struct img_run *r, int argc, char **argv)
{
    r->prune = true;
    r->match = argv; /* globs are gathered in place */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0)
            r->dry = true;
        else if (strcmp(argv[i], "--match") == 0 && i + 1 < argc && argv[i + 1][0])
            r->match[r->nmatch++] = argv[++i];
        else
            return false;
    }
    return true;
}

int cmd_images(struct ctl *x, int argc, char **argv)
{
    struct img_run r = {.x = x, .uses = json_object(), .rows = json_array()};
    bool ok = argc == 1;
    if (argc >= 2 && strcmp(argv[1], "prune") == 0)
        ok = prune_options(&r, argc, argv);
    int rc = ok ? images_run(&r)
                : ctl_fail(x, CTL_USAGE,
                           "usage: images | images prune [--dry-run] [--match GLOB]...");
    json_decref(r.uses);
    json_decref(r.rows);
    return rc;
}
