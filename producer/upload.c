/*
 * upload.c: streaming a received file to disk (see upload.h).
 */
#include "upload.h"
#include "handlers_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "text.h"

struct upload {
    int fd;
    int dirfd;
    EVP_MD_CTX *md;
    size_t size;
    char named_tmp[64]; /* fallback when O_TMPFILE is unsupported */
    char dir[PATH_MAX];
};

static void random_name(char *buf, size_t len)
{
    unsigned char rnd[8];
    char hex[17];
    RAND_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, hex);
    snprintf(buf, len, ".upload-%s.tmp", hex);
}

struct upload *upload_begin(const char *dir)
{
    struct upload *up = calloc(1, sizeof *up);
    snprintf(up->dir, sizeof up->dir, "%s", dir);
    up->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (up->dirfd < 0) {
        free(up);
        return NULL;
    }
    up->fd = openat(up->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (up->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        random_name(up->named_tmp, sizeof up->named_tmp);
        up->fd = openat(up->dirfd, up->named_tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    }
    if (up->fd < 0) {
        int e = errno;
        close(up->dirfd);
        free(up);
        errno = e;
        return NULL;
    }
    up->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(up->md, EVP_md5(), NULL);
    return up;
}

int upload_write(struct upload *up, const void *data, size_t len)
{
    const char *p = data;
    EVP_DigestUpdate(up->md, data, len);
    up->size += len;
    producer_metrics_upload_bytes(len);
    while (len > 0) {
        ssize_t w = write(up->fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

void upload_digest(struct upload *up, char md5[33])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(up->md, d, &n);
    hex_encode(d, n, md5);
}

size_t upload_size(const struct upload *up)
{
    return up->size;
}

int upload_commit(struct upload *up, const char *name)
{
    if (fsync(up->fd))
        return -1;
    if (!up->named_tmp[0]) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", up->fd);
        random_name(up->named_tmp, sizeof up->named_tmp);
        if (linkat(AT_FDCWD, proc, up->dirfd, up->named_tmp, AT_SYMLINK_FOLLOW))
            return -1;
    }
    if (renameat(up->dirfd, up->named_tmp, up->dirfd, name)) {
        int e = errno;
        unlinkat(up->dirfd, up->named_tmp, 0);
        up->named_tmp[0] = '\0';
        errno = e;
        return -1;
    }
    up->named_tmp[0] = '\0';
    fsync(up->dirfd);
    return 0;
}

void upload_free(struct upload *up)
{
    if (!up)
        return;
    if (up->named_tmp[0])
        unlinkat(up->dirfd, up->named_tmp, 0);
    close(up->fd);
    close(up->dirfd);
    EVP_MD_CTX_free(up->md);
    free(up);
}
