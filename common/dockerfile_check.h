/*
 * dockerfile_check.h: the producer's check of a Dockerfile sent to
 * POST /build_image before it is stored (docs/images-build.md). dockerd
 * runs ADD <url> fetches and FROM / COPY --from / RUN --mount=from image
 * look-ups itself, on the host's network and with every image of its
 * store, outside any build sandbox, so those are refused unless they are
 * provably harmless. dockerfile_check.c owns the parse (Docker's rules:
 * `\` continuations joined as is, `#` comment lines, case-insensitive
 * instructions, leading --flags, JSON-array arguments) and the rules:
 * - no parser directive (`# syntax=` makes BuildKit fetch a frontend
 *   image, `# escape=` changes how the text parses);
 * - only known instructions; ONBUILD's instruction is checked as well;
 * - ADD: no URL source (`scheme://`, git@, github.com/), no `$` nor `\`
 *   (substitution and escapes could assemble one after this check);
 * - FROM, COPY --from= and RUN --mount=...,from=: an earlier stage (its
 *   name or index), "scratch", or an image allow() accepts; `$` refused.
 */
#ifndef TANGO_DOCKERFILE_CHECK_H
#define TANGO_DOCKERFILE_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Whether image (as written in the Dockerfile) may be built upon. */
typedef bool (*dockerfile_allow_fn)(const char *image, void *arg);

/* Checks Dockerfile text (len bytes, no NUL needed). 0 when it may be
 * built; -1 with err ("Dockerfile line N: ...") naming the first refused
 * line and why. allow(image, arg) decides images; never NULL. */
int dockerfile_check(const char *text, size_t len, dockerfile_allow_fn allow, void *arg,
                     char *err, size_t errlen);

/* Checks the Dockerfile inside a plain (uncompressed) build context tar
 * (len bytes in memory): every entry whose path, after dropping "." parts
 * and leading '/', is "Dockerfile" in any case must be a regular file of
 * at most DOCKERFILE_MAX bytes and pass dockerfile_check; there must be
 * one, and no entry may have a ".." part. 0, or -1 with err. */
int dockerfile_check_tar(const void *tar, size_t len, dockerfile_allow_fn allow, void *arg,
                         char *err, size_t errlen);

#define DOCKERFILE_MAX (1024 * 1024)

#endif
