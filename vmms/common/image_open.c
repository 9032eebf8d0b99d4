/*
 * image_open.c: the gate every back end passes a `docker save` tarball
 * through before loading it (image_open.h): name, open without links, the
 * image_tar.h checks, one log line when refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "common/grading.h"
#include "common/image_open.h"
#include "image_tar.h"
#include "log.h"
#include "names.h"

int vmms_image_tar_open(const char *tar_path, const char *name,
                        const struct vmms_image_limits *lim, const char *free_dir, char *err,
                        size_t errlen)
{
    if (name == NULL || !image_name_is_valid(name)) {
        vmms_fail(err, errlen, VMMS_ERR,
                  "bad image name \"%s\": use [a-z0-9] then [a-z0-9._-] and an optional "
                  ":tag", name ? name : "(null)");
        return -1;
    }
    int fd = open(tar_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    bool tagged = false;
    if (fd < 0)
        vmms_fail(err, errlen, VMMS_ERR, "cannot open %s: %s", tar_path, strerror(errno));
    else if (image_tar_check(fd, name, &tagged, err, errlen) != 0 ||
             image_tar_admit(fd, lim->max_bytes, lim->max_entries, free_dir, err, errlen) != 0) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        char qn[300], qe[600];
        log_warn("image_refused", "name=%s reason=%s", log_quote(name, qn, sizeof qn),
                 log_quote(err, qe, sizeof qe));
    }
    return fd;
}
