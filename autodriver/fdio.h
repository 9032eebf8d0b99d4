/* fdio.h: writing to a file descriptor, the one primitive that both the
 * error reports (errors.c) and the printed output (output.c) stand on. It
 * depends on nothing else of the autodriver, so neither of those two
 * depends on the other through it. */
#ifndef AD_FDIO_H
#define AD_FDIO_H

#include <stddef.h>

/* Writes all n bytes of buf to fd, retrying short writes and EINTR.
 * 0, or -1 with errno set (EIO if write made no progress). */
int ad_write_all(int fd, const void *buf, size_t n);

#endif
