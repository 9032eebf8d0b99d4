/*
 * image_push.h: a finished Dockerfile build pushed to config key
 * "build_push_to" (build_push.h) through the Docker Engine API of the
 * dockerd that built it: tagged HOST:PORT/PREFIX/NAME:TAG, then pushed
 * with the registry's credentials in X-Registry-Auth (read for this push,
 * wiped after, never logged); the push's progress stream is read for its
 * first error and its digest. image_push.c owns it; builder.c calls it.
 */
#ifndef TANGO_IMAGE_PUSH_H
#define TANGO_IMAGE_PUSH_H

#include <stdatomic.h>
#include <stddef.h>

#include "common/engine.h"
#include "config.h"

/* Pushes built image (a valid local name on e) to cfg->build_push_to,
 * within timeout_s, ending early when *abort is raised. On VMMS_OK ref
 * (reflen bytes) holds "HOST:PORT/PREFIX/NAME:TAG@sha256:..." (the pushed
 * manifest's digest, what a job may name); otherwise err says why (the
 * registry's own error text when it refused), never the credentials. */
int image_push(struct vmms_engine *e, const struct tango_config *cfg, const char *image,
               int timeout_s, atomic_int *abort, char *ref, size_t reflen, char *err,
               size_t errlen);

#endif
