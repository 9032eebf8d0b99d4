/*
 * app.c: helpers over the producer's shared state used by several handlers.
 */
#include <string.h>

#include "app.h"

int app_known_images(struct app *app, json_t **out)
{
    int status = store_images(app->store, out);
    if (status != STORE_NOT_FOUND)
        return status;
    *out = json_array();
    for (size_t i = 0; i < app->cfg->nimages; i++)
        json_array_append_new(*out, json_string(app->cfg->images[i]));
    return STORE_OK;
}
