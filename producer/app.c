/*
 * app.c: helpers over the producer's shared state used by several handlers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "text.h"
#include "clock.h"
#include "names.h"

#define IMAGES_CACHE_MS 1000

int app_known_images(struct app *app, json_t **out)
{
    long long now = clock_mono_ms();
    if (app->images && now < app->images_until_ms) {
        *out = json_incref(app->images);
        return STORE_OK;
    }
    json_t *list = NULL;
    int status = store_images(app->store, &list);
    if (status == STORE_NOT_FOUND) {
        list = json_array();
        for (size_t i = 0; i < app->cfg->nimages; i++)
            json_array_append_new(list, json_string(app->cfg->images[i]));
        status = STORE_OK;
    }
    json_t *owners = NULL;
    if (status == STORE_OK)
        status = store_image_owners(app->store, &owners);
    if (status != STORE_OK) {
        json_decref(list);
        return status;
    }
    json_decref(app->owners);
    app->owners = owners;
    json_decref(app->images);
    app->images = json_incref(list);
    app->images_until_ms = now + IMAGES_CACHE_MS;
    *out = list;
    return STORE_OK;
}

bool app_image_is_configured(const struct app *app, const char *image)
{
    char want[NAME_MAX_BYTES + 16], have[NAME_MAX_BYTES + 16];
    if (!image_name_canon(image, want, sizeof want))
        return false;
    for (size_t i = 0; i < app->cfg->nimages; i++)
        if (image_name_canon(app->cfg->images[i], have, sizeof have) && strcmp(have, want) == 0)
            return true;
    return false;
}

bool app_owns_repo(const struct app *app, const char *key_id, const char *image)
{
    char repo[NAME_MAX_BYTES + 1];
    size_t n = image_repo_len(image);
    if (n >= sizeof repo)
        return false;
    memcpy(repo, image, n);
    repo[n] = '\0';
    const char *owner = json_string_value(json_object_get(app->owners, repo));
    if (!owner) /* a claim made before claims named the repository */
        owner = json_string_value(json_object_get(app->owners, image));
    return owner && strcmp(owner, key_id) == 0;
}

json_t *app_owned_repos(const struct app *app, const char *key_id)
{
    json_t *repos = json_array();
    const char *name;
    json_t *v;
    json_object_foreach(app->owners, name, v) {
        const char *owner = json_string_value(v);
        if (owner && strcmp(owner, key_id) == 0)
            json_array_append_new(repos, json_stringn(name, image_repo_len(name)));
    }
    return repos;
}

int app_usable_images(struct app *app, const char *key_id, json_t **out)
{
    json_t *known = NULL;
    int status = app_known_images(app, &known);
    if (status != STORE_OK)
        return status;
    json_t *usable = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(known, i, v) {
        const char *image = json_string_value(v);
        if (image && (app_image_is_configured(app, image) || app_owns_repo(app, key_id, image)))
            json_array_append(usable, v);
    }
    json_decref(known);
    *out = usable;
    return STORE_OK;
}

bool app_job_is_callers(const struct route_ctx *ctx, const json_t *job)
{
    const char *owner = json_string_value(json_object_get(job, "keyId"));
    if (owner)
        return strcmp(owner, ctx->key_id) == 0;
    const char *lab_dir = json_string_value(json_object_get(job, "labDir"));
    return lab_dir && strncmp(lab_dir, ctx->key_id_legacy, KEY_ID_LEN) == 0 &&
           lab_dir[KEY_ID_LEN] == '-';
}

bool app_is_utf8(const char *s)
{
    size_t len = strlen(s), clean_len;
    char *clean = utf8_sanitize(s, len, &clean_len);
    bool same = clean_len == len && memcmp(clean, s, len) == 0;
    free(clean);
    return same;
}

json_t *app_memo_get(struct app *app, enum app_memo which, const char *key)
{
    struct app_memo_slot *m = &app->memo[which];
    struct timeval now;
    event_base_gettimeofday_cached(app->base, &now);
    if (!m->doc || timercmp(&now, &m->turn, !=) || strcmp(m->key, key) != 0)
        return NULL;
    return m->doc;
}

void app_memo_put(struct app *app, enum app_memo which, const char *key, json_t *doc)
{
    struct app_memo_slot *m = &app->memo[which];
    json_decref(m->doc);
    m->doc = doc;
    snprintf(m->key, sizeof m->key, "%s", key);
    event_base_gettimeofday_cached(app->base, &m->turn);
}

void app_memo_drop(struct app *app, enum app_memo which)
{
    json_decref(app->memo[which].doc);
    app->memo[which].doc = NULL;
}

void app_memo_free_all(struct app *app)
{
    for (int i = 0; i < MEMO_COUNT; i++)
        app_memo_drop(app, (enum app_memo)i);
    json_decref(app->images);
    app->images = NULL;
    json_decref(app->owners);
    app->owners = NULL;
}
