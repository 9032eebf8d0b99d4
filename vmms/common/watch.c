/*
 * watch.c: the registry of waits destroy_vm aborts (watch.h).
 */
#include <stdio.h>
#include <string.h>

#include "common/watch.h"

void vmms_watches_init(struct vmms_watches *ws)
{
    pthread_mutex_init(&ws->lock, NULL);
    ws->head = NULL;
}

void vmms_watches_destroy(struct vmms_watches *ws)
{
    pthread_mutex_destroy(&ws->lock);
}

void vmms_watch_add(struct vmms_watches *ws, struct vmms_watch *w, const char *name)
{
    snprintf(w->name, sizeof w->name, "%s", name);
    atomic_init(&w->aborted, 0);
    pthread_mutex_lock(&ws->lock);
    w->next = ws->head;
    ws->head = w;
    pthread_mutex_unlock(&ws->lock);
}

void vmms_watch_remove(struct vmms_watches *ws, struct vmms_watch *w)
{
    pthread_mutex_lock(&ws->lock);
    for (struct vmms_watch **p = &ws->head; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&ws->lock);
}

void vmms_watch_abort(struct vmms_watches *ws, const char *name)
{
    pthread_mutex_lock(&ws->lock);
    for (struct vmms_watch *w = ws->head; w; w = w->next)
        if (strcmp(w->name, name) == 0)
            atomic_store(&w->aborted, 1);
    pthread_mutex_unlock(&ws->lock);
}
