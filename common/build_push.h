/*
 * build_push.h: config key "build_push_to" ("host[:port]/prefix", a
 * registry listed in "registries"): where finished /build_image builds are
 * pushed, and what a registry reference under it stands for. Build NAME
 * (NAME[:TAG], names.h) is pushed as build_push_to/NAME:TAG (TAG "latest"
 * when NAME has none); such a reference belongs to the key that owns the
 * build NAME (images:owners). build_push.c owns the check and both
 * mappings; the consumer's builder pushes, addJob checks ownership.
 */
#ifndef TANGO_BUILD_PUSH_H
#define TANGO_BUILD_PUSH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "image_ref.h"

/* Checks build_push_to (to; "" means builds stay local): a registry
 * reference's "host[:port]/path" with no tag nor digest whose host regs
 * lists. 0, or -1 with err saying what is wrong. */
int build_push_check(const char *to, const json_t *regs, char *err, size_t errlen);

/* The pushed repository of build image (a valid local name) under to
 * ("host:port/prefix/NAME" into repo) and its tag (into tag, "latest" when
 * image has none). 0, or -1 when it does not fit (repo is then no
 * reference a job could name). */
int build_push_target(const char *to, const char *image, char *repo, size_t repolen,
                      char *tag, size_t taglen);

/* Whether ref (parsed) names a repository under to; if so the build name's
 * repository part (after "to/") into local. False when to is "". */
bool build_push_under(const char *to, const struct image_ref *ref, char *local, size_t len);

#endif
