/*
 * watch.h: the registry of waits on running jobs that destroy_vm aborts,
 * for every back end (their attach_job blocks): a wait registers itself
 * under its VM's name, destroy_vm marks every wait on that name aborted,
 * the wait sees the flag (the vssh_cmd or Docker call abort pointer, or
 * its own poll) and returns VMMS_ERR promptly. Thread-safe.
 */
#ifndef TANGO_VMMS_WATCH_H
#define TANGO_VMMS_WATCH_H

#include <pthread.h>
#include <stdatomic.h>

#pragma GCC visibility push(hidden)

struct vmms_watch {              /* one wait in progress (the waiter's storage) */
    char name[128];
    atomic_int aborted;
    struct vmms_watch *next;
};

struct vmms_watches {
    pthread_mutex_t lock;
    struct vmms_watch *head;
};

void vmms_watches_init(struct vmms_watches *ws);
void vmms_watches_destroy(struct vmms_watches *ws);
/* Registers w (not aborted) for VM name; remove it before w goes away. */
void vmms_watch_add(struct vmms_watches *ws, struct vmms_watch *w, const char *name);
void vmms_watch_remove(struct vmms_watches *ws, struct vmms_watch *w);
/* Marks every wait registered for name aborted. */
void vmms_watch_abort(struct vmms_watches *ws, const char *name);

#pragma GCC visibility pop

#endif
