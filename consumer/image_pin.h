/*
 * image_pin.h: a job's registry image pinned to a digest before its first
 * run: the back end's resolve_image turns "host/path:tag" into
 * "host/path@sha256:...", and the job's record keeps that from its next
 * write on, so a retried or re-attached job runs exactly the same image.
 * image_pin.c owns it.
 */
#ifndef TANGO_IMAGE_PIN_H
#define TANGO_IMAGE_PIN_H

#include <stdbool.h>
#include <stddef.h>

struct consumer;
struct job;

/* Replaces job->image by its digest form when it is a registry reference
 * by tag and the back end can resolve it (*pinned then true); else leaves
 * it. A vmms_status: VMMS_OK, or the back end's failure with err. */
int image_pin(struct consumer *c, struct job *job, bool *pinned, char *err, size_t errlen);

#endif
