/*
 * fairshare.c: the fair-share scheduler's rules (see fairshare.h): the
 * priority classes, share groups, priority rules and weights, checked at
 * configuration time and applied to a job when it is queued (producer) or
 * migrated from an older queue (consumer). The Lua library gets the class
 * table from fairshare_lua_prelude.
 */
#include "fairshare.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "job.h"

static const char *const class_names[JOB_NCLASSES] = {"high", "normal", "low"};

const char *jobstate_class_name(enum job_class k)
{
    return (unsigned)k < JOB_NCLASSES ? class_names[k] : NULL;
}

int jobstate_class_parse(const char *name)
{
    for (int i = 0; name && i < JOB_NCLASSES; i++)
        if (strcmp(name, class_names[i]) == 0)
            return i;
    return -1;
}

int jobstate_share_group(const char *mode, const char *courselab, const char *key_id, char *out,
                         size_t len)
{
    const char *src = NULL;
    size_t n = 0;
    if (!mode || !out || len == 0)
        return -1;
    out[0] = '\0';
    if (strcmp(mode, "off") == 0) {
        src = JOB_GROUP_ALL;
        n = strlen(JOB_GROUP_ALL);
    } else if (strcmp(mode, "key") == 0) {
        src = key_id;
        n = src ? strlen(src) : 0;
    } else if (strcmp(mode, "lab") == 0 || strcmp(mode, "course") == 0) {
        src = courselab;
        n = src ? strlen(src) : 0;
        const char *dash = src && mode[0] == 'c' ? strrchr(src, '-') : NULL;
        if (dash && dash > src)
            n = (size_t)(dash - src);
    } else {
        return -1;
    }
    if (!src || n == 0)
        return -1;
    if (n >= len)
        n = len - 1;
    memcpy(out, src, n);
    out[n] = '\0';
    return 0;
}

int jobstate_rule_class(const json_t *rules, const char *courselab, const char *key_id)
{
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        const char *lab = json_string_value(json_object_get(r, "lab"));
        const char *key = json_string_value(json_object_get(r, "key"));
        int k = jobstate_class_parse(json_string_value(json_object_get(r, "class")));
        if (k < 0)
            continue;
        if (lab && courselab && fnmatch(lab, courselab, 0) == 0)
            return k;
        if (key && key_id && strcmp(key, key_id) == 0)
            return k;
    }
    return -1;
}

int jobstate_sched_check(const char *fair_share, const json_t *rules, const json_t *weights,
                         char *err, size_t errlen)
{
    char g[8];
    if (jobstate_share_group(fair_share, "x", "x", g, sizeof g)) {
        snprintf(err, errlen, "config key \"fair_share\": must be course, lab, key or off");
        return -1;
    }
    if (rules && !json_is_array(rules)) {
        snprintf(err, errlen, "config key \"priority_rules\": must be a list of "
                              "{\"lab\": GLOB or \"key\": KEYID, \"class\": high|normal|low}");
        return -1;
    }
    size_t i;
    json_t *r;
    json_array_foreach(rules, i, r) {
        json_t *lab = json_object_get(r, "lab"), *key = json_object_get(r, "key");
        if (!json_is_object(r) || json_object_size(r) != 2 || (!lab == !key) ||
            !json_is_string(lab ? lab : key) || json_string_length(lab ? lab : key) == 0 ||
            jobstate_class_parse(json_string_value(json_object_get(r, "class"))) < 0) {
            snprintf(err, errlen, "config key \"priority_rules\": item %zu must be {\"lab\": GLOB "
                                  "or \"key\": KEYID, \"class\": high|normal|low}", i);
            return -1;
        }
    }
    if (weights && !json_is_object(weights)) {
        snprintf(err, errlen, "config key \"course_weights\": must be an object {group: weight}");
        return -1;
    }
    const char *name;
    json_t *w;
    json_object_foreach((json_t *)weights, name, w) {
        if (!json_is_number(w) || json_number_value(w) < FAIRSHARE_WEIGHT_MIN ||
            json_number_value(w) > FAIRSHARE_WEIGHT_MAX ||
            strlen(name) == 0 || strlen(name) >= JOB_GROUP_MAX) {
            snprintf(err, errlen, "config key \"course_weights\": \"%.60s\" must be a number "
                                  "from %d to %d",
                     name, FAIRSHARE_WEIGHT_MIN, FAIRSHARE_WEIGHT_MAX);
            return -1;
        }
    }
    return 0;
}

void fairshare_classify(const struct tango_config *cfg, const struct job *job, char *cls,
                        char *grp)
{
    int k = jobstate_class_parse(job->priority);
    if (k < 0)
        k = jobstate_rule_class(cfg->priority_rules, job->courselab, job->key_id);
    snprintf(cls, JOB_CLASS_NAME_MAX, "%s",
             jobstate_class_name(k < 0 ? JOB_CLASS_DEFAULT : (enum job_class)k));
    if (job->share_group && job->share_group[0])
        snprintf(grp, JOB_GROUP_MAX, "%s", job->share_group);
    else if (jobstate_share_group(cfg->fair_share, job->courselab, job->key_id, grp,
                                  JOB_GROUP_MAX))
        snprintf(grp, JOB_GROUP_MAX, "%s", JOB_GROUP_ALL);
}

size_t fairshare_lua_prelude(char *out, size_t len)
{
    size_t n = 0;
#define PUT(...) \
    n += (size_t)snprintf(out + (n < len ? n : len), n < len ? len - n : 0, __VA_ARGS__)
    PUT("local CLASSES = {");
    for (unsigned k = 0; k < JOB_NCLASSES; k++)
        PUT("%s'%s'", k ? ", " : "", class_names[k]);
    PUT("}\nlocal CLASS_OK = {");
    for (unsigned k = 0; k < JOB_NCLASSES; k++)
        PUT("['%s'] = true, ", class_names[k]);
    PUT("}\nlocal DEFAULT_CLASS = '%s'\n", class_names[JOB_CLASS_DEFAULT]);
#undef PUT
    return n;
}
