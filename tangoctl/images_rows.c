/*
 * images_rows.c: the rows of tangoctl images (images.h): a name's
 * canonical form and its users, each row's action from the run's mode and
 * --match globs, and a removal's outcome. Shared by images.c and the back
 * end files; calls none of them.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "image_ref.h"
#include "images.h"

const char *img_canon(const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    if (n > 7 && strcmp(name + n - 7, ":latest") == 0)
        n -= 7;
    snprintf(buf, len, "%.*s", (int)n, name);
    return buf;
}

long long img_use_count(const json_t *uses, const char *name)
{
    char c[512];
    long long n = json_integer_value(json_object_get(uses, img_canon(name, c, sizeof c)));
    if (strncmp(name, "reg-", 4) == 0 && strlen(name) == 68) {
        const char *k;
        json_t *v;
        struct image_ref ref;
        char rec[69];
        json_object_foreach((json_t *)uses, k, v) {
            if (image_ref_parse(k, &ref) != 0 || !ref.remote || !ref.digest[0])
                continue;
            image_ref_record_name(&ref, ref.digest, rec); /* localOCI's record of k */
            if (strcmp(rec, name) == 0)
                n += json_integer_value(v);
        }
    }
    return n;
}

/* Whether --match lets prune touch name. */
static bool matched(const struct img_run *r, const char *name)
{
    for (int i = 0; i < r->nmatch; i++)
        if (fnmatch(r->match[i], name, 0) == 0)
            return true;
    return r->nmatch == 0;
}

bool img_row(struct img_run *r, const char *backend, const char *name, bool ours,
             long long in_use)
{
    bool go = r->prune && ours && in_use == 0 && matched(r, name);
    const char *action = !go ? "keep" : r->dry ? "remove" : "removed";
    json_array_append_new(r->rows, json_pack("{s:s, s:s, s:b, s:I, s:s}", "backend", backend,
                                             "name", name, "ours", ours, "in_use",
                                             (json_int_t)in_use, "action", action));
    return go && !r->dry;
}

bool img_row_goes(const struct img_run *r)
{
    json_t *row = json_array_get(r->rows, json_array_size(r->rows) - 1);
    const char *a = json_string_value(json_object_get(row, "action"));
    return a && (strcmp(a, "remove") == 0 || strcmp(a, "removed") == 0);
}

void img_removed(struct img_run *r, bool ok, const char *why)
{
    if (ok)
        return;
    json_t *row = json_array_get(r->rows, json_array_size(r->rows) - 1);
    json_object_set_new(row, "action", json_string("failed"));
    fprintf(stderr, "tangoctl: removing %s: %s\n",
            json_string_value(json_object_get(row, "name")), why);
    r->failed = 1;
}
