/*
 * files.h: the local file work the host-side back ends (localDocker,
 * localOCI) share: a job's input files copied into its directory on this
 * host, its feedback file copied back out, and the one-read of a small state
 * file (/proc, cgroup files, a bundle's own notes) or of a file inside a
 * job's root, resolved there. files.c owns it. Every
 * file made here is created O_EXCL|O_NOFOLLOW under a name unlinked first;
 * nothing is read through a symbolic link the job could have planted.
 */
#ifndef TANGO_VMMS_FILES_H
#define TANGO_VMMS_FILES_H

#include <stddef.h>
#include <sys/types.h>

#include "vmms.h"

#pragma GCC visibility push(hidden)

/* Opens path (relative to dirfd, or AT_FDCWD) with O_RDONLY | O_CLOEXEC |
 * flags (O_NOFOLLOW etc. as the caller needs), reads it once into buf
 * (bufsz >= 2; at most bufsz - 1 bytes) and NUL-ends it. The bytes read
 * (> 0), or -1: it cannot be opened or read, or is empty. */
ssize_t vmms_read_small(int dirfd, const char *path, int flags, char *buf, size_t bufsz);

/* Opens path inside the tree whose root directory is open at rootfd (a
 * job's or an image's file system): every component, symbolic links
 * included, resolved within that root (openat2 RESOLVE_IN_ROOT |
 * RESOLVE_NO_MAGICLINKS | resolve, e.g. RESOLVE_NO_SYMLINKS), so no link
 * the job or image planted reaches a file of the host; a regular file only
 * (a FIFO, device or directory is refused, EINVAL, before it is opened for
 * reading), opened O_RDONLY | O_NONBLOCK | O_CLOEXEC. The fd, or -1 with
 * errno. */
int vmms_open_in_root(int rootfd, const char *path, unsigned long long resolve);

/* Reads fd from its offset until EOF or bufsz - 1 bytes, whichever comes
 * first, into buf and NUL-ends it: never more, whatever the file is. The
 * bytes read, or -1 on a read error. */
ssize_t vmms_read_bounded(int fd, char *buf, size_t bufsz);

/* Copies in to out from their offsets: a reflink (FICLONE) where the file
 * system has them, else in-kernel copies; more than max bytes is -EFBIG,
 * going on past deadline_ms (clock_mono_ms) -ETIMEDOUT. The bytes copied
 * (0 for a reflink), or -errno. */
long long vmms_copy_fd(int in, int out, long long max, long long deadline_ms);

/* Copies every file into the directory open at dfd as its dest_name (the
 * names checked first with vmms_check_files), in order: a name given twice
 * is replaced (the last file listed wins); each is a file of its own (mode
 * 0644), never a link to the host's file, and its source must be a regular
 * file; all within timeout_ms. vm_name is for messages. VMMS_OK,
 * VMMS_TIMEOUT, or VMMS_ERR. */
int vmms_put_files(int dfd, const struct vmms_file *files, size_t nfiles, long timeout_ms,
                   const char *vm_name, char *err, size_t errlen);

/* Copies the job's "feedback" in the directory open at dfd (not a symbolic
 * link, a regular file of at most max bytes, checked before it is opened:
 * vmms_open_in_root) to dest_path, a file the
 * caller names that must not exist yet, within timeout_ms. vm_name is for
 * messages. *bytes (may be NULL) gets the size copied. VMMS_OK,
 * VMMS_TIMEOUT, or VMMS_ERR. */
int vmms_take_feedback(int dfd, const char *vm_name, const char *dest_path, long long max,
                       long timeout_ms, long long *bytes, char *err, size_t errlen);

#pragma GCC visibility pop

#endif
