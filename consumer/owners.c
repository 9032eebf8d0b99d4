/*
 * owners.c: who owns an instance, for one clean-up pass (see owners.h).
 */
#include "owners.h"

#include <stdio.h>
#include <string.h>

#define LIVE_SCAN_MAX 100000

/* Reads the heartbeating consumers' token prefixes (o->tokens_ok: done). */
static void load_tokens(struct owners *o, struct store *st)
{
    o->tokens_loaded = true;
    json_t *list = NULL;
    if (store_consumers(st, &list) != STORE_OK)
        return;
    o->tokens = json_object();
    size_t i;
    json_t *info;
    json_array_foreach(list, i, info) {
        char t[9];
        snprintf(t, sizeof t, "%s", json_string_value(json_object_get(info, "token")) ?: "");
        json_object_set_new(o->tokens, t, json_true());
    }
    json_decref(list);
    o->tokens_ok = true;
}

/* Reads the instance names of every live record (o->names_ok: all of them
 * were read). */
static void load_names(struct owners *o, struct store *st)
{
    o->names_loaded = true;
    json_t *jobs = NULL;
    if (store_list_jobs(st, false, LIVE_SCAN_MAX, &jobs) != STORE_OK)
        return;
    if (json_array_size(jobs) < LIVE_SCAN_MAX) { /* else some may be missing */
        o->names = json_object();
        size_t i;
        json_t *rec;
        json_array_foreach(jobs, i, rec) {
            json_t *vm = json_object_get(json_object_get(rec, "vm"), "name");
            if (json_is_string(vm))
                json_object_set_new(o->names, json_string_value(vm), json_true());
        }
        o->names_ok = true;
    }
    json_decref(jobs);
}

bool owners_heartbeats(struct owners *o, struct store *st, const char *name)
{
    if (!o->tokens_loaded)
        load_tokens(o, st);
    const char *dash = strrchr(name, '-');
    return !o->tokens_ok || (dash && json_object_get(o->tokens, dash + 1));
}

bool owners_record_names(struct owners *o, struct store *st, const char *name)
{
    if (!o->names_loaded)
        load_names(o, st);
    return !o->names_ok || json_object_get(o->names, name);
}

void owners_free(struct owners *o)
{
    json_decref(o->tokens);
    json_decref(o->names);
    memset(o, 0, sizeof *o);
}
