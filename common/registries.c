/*
 * registries.c: config key "registries" (see registries.h): its checks at
 * start and reading a registry's credentials file.
 */
#include "registries.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "image_ref.h"

#define CREDS_FILE_MAX 4096

/* Opens path for reading if it is a regular file of ours that nobody else
 * may read; -1 with err. */
static int open_private(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "credentials file %s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode) || st.st_size > CREDS_FILE_MAX) {
        snprintf(err, errlen, "credentials file %s: not a regular file of at most %d bytes",
                 path, CREDS_FILE_MAX);
    } else if (st.st_uid != geteuid()) {
        snprintf(err, errlen, "credentials file %s: belongs to uid %u, not to the service's "
                 "user (uid %u)", path, (unsigned)st.st_uid, (unsigned)geteuid());
    } else if (st.st_mode & 077) {
        snprintf(err, errlen, "credentials file %s: readable by group or others (mode %04o): "
                 "chmod 600 it", path, (unsigned)(st.st_mode & 07777));
    } else {
        return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

int registries_read_creds(const char *path, char user[REGISTRY_USER_MAX],
                          char pass[REGISTRY_PASS_MAX], char *err, size_t errlen)
{
    int fd = open_private(path, err, errlen);
    if (fd < 0)
        return -1;
    char buf[CREDS_FILE_MAX + 1];
    ssize_t n = read(fd, buf, CREDS_FILE_MAX);
    close(fd);
    int rc = -1;
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    char *colon = strchr(buf, ':');
    size_t ul = colon ? (size_t)(colon - buf) : 0;
    if (colon == NULL || ul == 0 || ul >= REGISTRY_USER_MAX ||
        strlen(colon + 1) >= REGISTRY_PASS_MAX || colon[1] == '\0')
        snprintf(err, errlen, "credentials file %s: not one line USER:PASSWORD", path);
    else {
        memcpy(user, buf, ul);
        user[ul] = '\0';
        strcpy(pass, colon + 1);
        rc = 0;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

/* One registry's entry: an object of the known keys, its files usable. */
static int check_entry(const char *host, const json_t *e, char *err, size_t errlen)
{
    if (!json_is_object(e)) {
        snprintf(err, errlen, "registry \"%s\": must be an object", host);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)e, k, v) {
        bool str = strcmp(k, "credentials") == 0 || strcmp(k, "ca_file") == 0;
        bool num = strcmp(k, "stall_timeout_s") == 0;
        if (!str && !num) {
            snprintf(err, errlen, "registry \"%s\": unknown key \"%.60s\" (known: "
                     "credentials, ca_file, stall_timeout_s)", host, k);
            return -1;
        }
        if ((str && (!json_is_string(v) || json_string_length(v) == 0 ||
                     json_string_length(v) > 4096)) ||
            (num && (!json_is_integer(v) || json_integer_value(v) < 1 ||
                     json_integer_value(v) > 3600))) {
            snprintf(err, errlen, "registry \"%s\": \"%s\" must be %s", host, k,
                     str ? "a file name" : "an integer 1..3600");
            return -1;
        }
    }
    const char *creds = json_string_value(json_object_get(e, "credentials"));
    const char *ca = json_string_value(json_object_get(e, "ca_file"));
    char why[512];
    int fd = creds ? open_private(creds, why, sizeof why) : -2;
    if (fd == -1) {
        snprintf(err, errlen, "registry \"%s\": %s", host, why);
        return -1;
    }
    if (fd >= 0)
        close(fd);
    if (ca && access(ca, R_OK) != 0) {
        snprintf(err, errlen, "registry \"%s\": ca_file %s: %s", host, ca, strerror(errno));
        return -1;
    }
    return 0;
}

int registries_check(const json_t *regs, char *err, size_t errlen)
{
    const char *host;
    json_t *e;
    json_object_foreach((json_t *)regs, host, e) {
        bool lower = true;
        for (const char *p = host; *p; p++)
            lower &= !(*p >= 'A' && *p <= 'Z');
        if (!image_ref_host_ok(host) || !lower) {
            snprintf(err, errlen, "registry \"%.100s\": not a lower-case host[:port]", host);
            return -1;
        }
        if (check_entry(host, e, err, errlen) != 0)
            return -1;
    }
    return 0;
}

const json_t *registries_find(const json_t *regs, const char *host)
{
    return host && host[0] ? json_object_get(regs, host) : NULL;
}
