/*
 * pool.h: warm pools of ready instances per image, sized by prealloc
 * (pools:wanted in Redis) or automatically from recent demand (jobs started
 * per minute, bounded by auto_pool_max), whichever is larger. An instance is created ahead of time, handed to
 * exactly one job, destroyed after it, and replaced off the job's path. The
 * pool's state is published for /pool. A pool whose instances cannot be
 * made backs off and warns once (pool.c).
 */
#ifndef TANGO_CONSUMER_POOL_H
#define TANGO_CONSUMER_POOL_H

#include <stdbool.h>

#include "consumer.h"

struct pool *pool_new(struct consumer *c);
/* Destroys every free instance. */
void pool_free(struct pool *p);
/* Takes a ready instance matching the job's limits and made from the
 * image's current id (the plugin's image_id, looked up only when a match
 * is free; instances of an older id are left to the keeper to destroy);
 * false if none. */
bool pool_take(struct pool *p, const struct vmms_vm *want, struct vmms_vm *out);
/* A job for image is starting: feeds the automatic pool size. */
void pool_note_job(struct pool *p, const char *image);
/* The job is done with a pool instance (already destroyed by the worker). */
void pool_release(struct pool *p, const char *name);
/* One keeper step (called by the upkeep thread): reads the wanted sizes,
 * creates or destroys instances to match, publishes the state. */
void pool_tick(struct pool *p, struct store *st);
/* Publishes every pool as empty (this consumer's instances are going away),
 * so /pool never lists instances that no longer exist. */
void pool_unpublish(struct pool *p, struct store *st);
/* image was just rebuilt: its free instances are stale (never handed out,
 * replaced by the next keeper step), without waiting for a job to find
 * out through the image's id. */
void pool_image_rebuilt(struct pool *p, const char *image);
/* Whether name is an instance the pool owns (free or in use). */
bool pool_owns(struct pool *p, const char *name);

#endif
