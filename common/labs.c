/*
 * labs.c: courselab directory names and paths, and the installation secret
 * (see labs.h).
 */
#include "labs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "names.h"

/* Reads an existing secret file. 0, 1 if it does not exist, -1 on error. */
static int secret_read(const char *path, struct install_secret *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        return 1;
    if (fd < 0) {
        snprintf(err, errlen, "secret_file %s: cannot open (%s)%s", path, strerror(errno),
                 errno == ELOOP ? ": a symlink is not accepted" : "");
        return -1;
    }
    struct stat sb;
    const char *bad = NULL;
    if (fstat(fd, &sb))
        bad = "cannot stat";
    else if (!S_ISREG(sb.st_mode))
        bad = "not a regular file";
    else if (sb.st_mode & 077)
        bad = "readable or writable by group or others (chmod 600 it)";
    else if (sb.st_size < INSTALL_SECRET_MIN || sb.st_size > INSTALL_SECRET_MAX)
        bad = "must hold 16 to 1024 bytes";
    ssize_t n = bad ? -1 : read(fd, out->bytes, sizeof out->bytes);
    close(fd);
    if (!bad && n != sb.st_size)
        bad = "short read";
    if (bad) {
        OPENSSL_cleanse(out->bytes, sizeof out->bytes);
        snprintf(err, errlen, "secret_file %s: %s", path, bad);
        return -1;
    }
    out->len = (size_t)n;
    return 0;
}

/* Creates path with fresh random bytes unless it exists already. */
static int secret_create(const char *path, char *err, size_t errlen)
{
    unsigned char fresh[INSTALL_SECRET_BYTES];
    if (RAND_bytes(fresh, sizeof fresh) != 1) {
        snprintf(err, errlen, "secret_file %s: no random bytes from OpenSSL", path);
        return -1;
    }
    char tmp[PATH_MAX];
    unsigned char tag[8];
    RAND_bytes(tag, sizeof tag);
    if (snprintf(tmp, sizeof tmp, "%s.new-%d-%02x%02x%02x%02x%02x%02x%02x%02x", path, (int)getpid(),
                 tag[0], tag[1], tag[2], tag[3], tag[4], tag[5], tag[6], tag[7]) >= (int)sizeof tmp) {
        snprintf(err, errlen, "secret_file: path too long");
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -1 : 0;
    if (rc == 0 && (write(fd, fresh, sizeof fresh) != (ssize_t)sizeof fresh || fsync(fd)))
        rc = -1;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    OPENSSL_cleanse(fresh, sizeof fresh);
    /* link() never replaces: the first service to get here wins, the others read its file. */
    if (rc == 0 && link(tmp, path) && errno != EEXIST) {
        saved = errno;
        rc = -1;
    }
    if (fd >= 0)
        unlink(tmp);
    if (rc)
        snprintf(err, errlen, "secret_file %s: cannot create (%s)", path, strerror(saved));
    return rc;
}

int install_secret_load(const char *courselabs, const char *path, struct install_secret *out,
                        char *err, size_t errlen)
{
    char def[PATH_MAX];
    if (!path || !*path) {
        if (snprintf(def, sizeof def, "%s/%s", courselabs, INSTALL_SECRET_NAME) >= (int)sizeof def) {
            snprintf(err, errlen, "secret_file: courselabs path too long");
            return -1;
        }
        path = def;
    }
    int rc = secret_read(path, out, err, errlen);
    if (rc == 1) {
        if (secret_create(path, err, errlen))
            return -1;
        rc = secret_read(path, out, err, errlen);
    }
    if (rc == 1)
        snprintf(err, errlen, "secret_file %s: vanished after it was created", path);
    return rc == 0 ? 0 : -1;
}

static int dir_name_of(const char *id, const char *courselab, char out[LAB_DIR_MAX])
{
    if (!name_is_safe_str(courselab))
        return -1;
    int n = snprintf(out, LAB_DIR_MAX, "%s-%s", id, courselab);
    return n > 0 && n <= NAME_MAX_BYTES ? 0 : -1;
}

int lab_dir_name(const struct install_secret *secret, const char *key, const char *courselab,
                 char out[LAB_DIR_MAX])
{
    char id[KEY_ID_LEN + 1];
    key_id(secret->bytes, secret->len, key, id);
    return dir_name_of(id, courselab, out);
}

int lab_dir_name_legacy(const char *key, const char *courselab, char out[LAB_DIR_MAX])
{
    char id[KEY_ID_LEN + 1];
    key_id_legacy(key, id);
    return dir_name_of(id, courselab, out);
}

int lab_dir_find(const char *courselabs, const struct install_secret *secret, const char *key,
                 const char *courselab, char out[LAB_DIR_MAX])
{
    if (lab_dir_name(secret, key, courselab, out))
        return -1;
    char old[LAB_DIR_MAX];
    if (!lab_exists(courselabs, out) && lab_dir_name_legacy(key, courselab, old) == 0 &&
        lab_exists(courselabs, old))
        memcpy(out, old, LAB_DIR_MAX);
    return 0;
}

int lab_path(const char *courselabs, const char *lab_dir, const char *sub, const char *name,
             char out[PATH_MAX])
{
    if (!name_is_safe_str(lab_dir) || (sub && !name_is_safe_str(sub)) ||
        (name && !name_is_safe_str(name)))
        return -1;
    int n = snprintf(out, PATH_MAX, "%s/%s%s%s%s%s", courselabs, lab_dir, sub ? "/" : "",
                     sub ? sub : "", name ? "/" : "", name ? name : "");
    return n > 0 && n < PATH_MAX ? 0 : -1;
}

int mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    if (!*path) {
        errno = ENOENT;
        return -1;
    }
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) == 0)
        return 0;
    struct stat sb;
    if (errno != EEXIST || stat(buf, &sb))
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR; /* exists, but is not a directory */
        return -1;
    }
    return 0;
}

int lab_open(const char *courselabs, const char *lab_dir, bool *created)
{
    char dir[PATH_MAX], out[PATH_MAX];
    if (lab_path(courselabs, lab_dir, NULL, NULL, dir) ||
        lab_path(courselabs, lab_dir, "output", NULL, out))
        return -1;
    if (mkdir_p(courselabs, 0755))
        return -1;
    *created = mkdir(dir, 0755) == 0;
    if (!*created && errno != EEXIST)
        return -1;
    if (mkdir(out, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

bool lab_exists(const char *courselabs, const char *lab_dir)
{
    char dir[PATH_MAX];
    struct stat sb;
    return lab_path(courselabs, lab_dir, NULL, NULL, dir) == 0 && stat(dir, &sb) == 0 &&
           S_ISDIR(sb.st_mode);
}

bool lab_has_file(const char *courselabs, const char *lab_dir, const char *name)
{
    char path[PATH_MAX];
    struct stat sb;
    return lab_path(courselabs, lab_dir, NULL, name, path) == 0 && lstat(path, &sb) == 0 &&
           S_ISREG(sb.st_mode);
}
