/*
 * backend_health.h: whether the consumer's VMMS back end can be reached
 * (backend_health.c): the outage decision the workers ask for, the state
 * the dispatcher reads before leasing, and the probe thread that ends an
 * outage.
 */
#ifndef TANGO_BACKEND_HEALTH_H
#define TANGO_BACKEND_HEALTH_H

#include <stdbool.h>
#include <jansson.h>

#include "consumer.h"

/* Starts the probe thread (after vmms_load and metrics_start); -1 if it
 * cannot. stop: after the dispatcher and the workers ended. */
int backend_health_start(struct consumer *c);
void backend_health_stop(struct consumer *c);

/* A VMMS step of a job failed with status (err: the plugin's reason):
 * true when that is the back end's outage, not the job's failure: the
 * status is VMMS_UNAVAILABLE and the ping op (when there is one) confirms
 * it, or the ping op fails now whatever the status. It then marks the back
 * end down (leasing pauses until a probe passes). Any thread; makes one
 * ping call (at most 2 s). */
bool backend_unavailable(struct consumer *c, int status, const char *err);

/* Whether the back end is down now (no leasing). Lock-free. */
bool backend_is_down(struct consumer *c);

/* Adds "backend": {vmms, up, and while down since, reason, consumer} to a
 * heartbeat object. */
void backend_health_info(struct consumer *c, json_t *info);

#endif
