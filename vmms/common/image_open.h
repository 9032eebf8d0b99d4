/*
 * image_open.h: opening the `docker save` tarball a /build upload gave a
 * back end, checked before anything loads it. One gate for every plugin
 * that loads such a tarball (localDocker, distDocker, localOCI);
 * image_open.c owns it, common/image_tar.h the checks themselves.
 */
#ifndef TANGO_VMMS_IMAGE_OPEN_H
#define TANGO_VMMS_IMAGE_OPEN_H

#include <stddef.h>

#include "vmms.h"

#pragma GCC visibility push(hidden)

/* Opens tar_path for image name: name valid (image_name_is_valid), the file
 * opened read-only without following a link, holding one image and no tag
 * but name (image_tar_check), within lim's bytes and entries and, when
 * free_dir is not NULL, the free space of free_dir's file system
 * (image_tar_admit). Returns the descriptor (the caller closes it; its
 * offset is unspecified), or -1 with err; a tarball that could not be
 * opened or was refused is logged (image_refused). */
int vmms_image_tar_open(const char *tar_path, const char *name,
                        const struct vmms_image_limits *lim, const char *free_dir, char *err,
                        size_t errlen);

#pragma GCC visibility pop

#endif
