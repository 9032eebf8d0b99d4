/*
 * test_labs.c: common/labs.c: lab directory names (HMAC key id prefix, no
 * key in any path), finding labs named the old way, the installation secret
 * (created once, 0600, never through a symlink, the same for racing
 * starters), path building, lab_open/lab_exists/lab_has_file on a real
 * temporary directory, and mkdir_p.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "labs.h"
#include "names.h"

static char root[64];

/* A fixed secret, so names are known values. */
static struct install_secret S = {.bytes = "test-secret-0123456789abcdef0123", .len = 32};

static int setup(void **state)
{
    (void)state;
    umask(022);
    snprintf(root, sizeof root, "/tmp/test_labs.XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static void test_lab_dir_name(void **state)
{
    (void)state;
    char out[LAB_DIR_MAX];
    assert_int_equal(lab_dir_name(&S, "abc", "lab5", out), 0);
    /* HMAC-SHA256(secret, "abc")[0:8], not a bare SHA-256 of the key */
    assert_string_equal(out, "e7365cdb2fcdde94-lab5");
    assert_int_equal(lab_dir_name_legacy("abc", "lab5", out), 0);
    assert_string_equal(out, "ba7816bf8f01cfea-lab5"); /* sha256("abc")[0:8] */
    /* Another installation's secret: another name for the same key and lab. */
    struct install_secret other_secret = {.bytes = "other-secret-0123456789abcdef012", .len = 32};
    assert_int_equal(lab_dir_name(&other_secret, "abc", "lab5", out), 0);
    assert_string_equal(out, "0c7c794eac57a728-lab5");
    char id[KEY_ID_LEN + 1], want[LAB_DIR_MAX];
    key_id(S.bytes, S.len, "another-client-key", id);
    snprintf(want, sizeof want, "%s-15213-f26_malloclab", id);
    assert_int_equal(lab_dir_name(&S, "another-client-key", "15213-f26_malloclab", out), 0);
    assert_string_equal(out, want);
    assert_null(strstr(out, "another-client-key"));
    /* The same lab under two keys: two directories. */
    char other[LAB_DIR_MAX];
    assert_int_equal(lab_dir_name(&S, "abd", "lab5", other), 0);
    assert_string_not_equal(out, other);
    assert_true(name_is_safe_str(out));

    /* 16 + 1 + 238 = 255 bytes fits one path component; 239 does not. */
    char lab[300];
    memset(lab, 'l', sizeof lab);
    lab[238] = '\0';
    assert_int_equal(lab_dir_name(&S, "abc", lab, out), 0);
    assert_int_equal(strlen(out), 255);
    lab[238] = 'l';
    lab[239] = '\0';
    assert_int_equal(lab_dir_name(&S, "abc", lab, out), -1);
    lab[255] = '\0';
    assert_int_equal(lab_dir_name(&S, "abc", lab, out), -1);
    lab[256] = '\0';
    assert_int_equal(lab_dir_name(&S, "abc", lab, out), -1);

    /* Unsafe courselab names. */
    static const char *const bad[] = {"", ".", "..", "a/b", "../etc", "a\\b", "a\nb",
                                      "x\x7f", NULL};
    for (int i = 0; bad[i]; i++)
        if (lab_dir_name(&S, "abc", bad[i], out) != -1 ||
            lab_dir_find(root, &S, "abc", bad[i], out) != -1)
            fail_msg("courselab \"%s\" accepted", bad[i]);
    assert_int_equal(lab_dir_name(&S, "abc", NULL, out), -1);
}

/* A lab made under the old naming is still found, in place; a new lab gets
 * the new name; when both exist the new one wins. */
static void test_lab_dir_find_legacy(void **state)
{
    (void)state;
    char labs[128], out[LAB_DIR_MAX], old[LAB_DIR_MAX], fresh[LAB_DIR_MAX];
    snprintf(labs, sizeof labs, "%s/legacy", root);
    bool created;
    assert_int_equal(lab_dir_name_legacy("k1", "lab5", old), 0);
    assert_int_equal(lab_dir_name(&S, "k1", "lab5", fresh), 0);
    /* Nothing there: the new name. */
    assert_int_equal(lab_dir_find(labs, &S, "k1", "lab5", out), 0);
    assert_string_equal(out, fresh);
    /* Only the old one: found. */
    assert_int_equal(lab_open(labs, old, &created), 0);
    assert_int_equal(lab_dir_find(labs, &S, "k1", "lab5", out), 0);
    assert_string_equal(out, old);
    /* Another key's lookup never lands in k1's old lab. */
    assert_int_equal(lab_dir_find(labs, &S, "k2", "lab5", out), 0);
    assert_string_not_equal(out, old);
    /* Both: the new one. */
    assert_int_equal(lab_open(labs, fresh, &created), 0);
    assert_int_equal(lab_dir_find(labs, &S, "k1", "lab5", out), 0);
    assert_string_equal(out, fresh);
}

static void test_install_secret(void **state)
{
    (void)state;
    char labs[128], path[PATH_MAX], err[256];
    snprintf(labs, sizeof labs, "%s/secret", root);
    assert_int_equal(mkdir(labs, 0755), 0);
    struct install_secret a, b;
    /* "" means <courselabs>/.tango-secret, created at first use: 32 bytes, 0600. */
    assert_int_equal(install_secret_load(labs, "", &a, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/.tango-secret", labs);
    struct stat sb;
    assert_int_equal(lstat(path, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, INSTALL_SECRET_BYTES);
    assert_int_equal(a.len, INSTALL_SECRET_BYTES);
    /* Read back the same; NULL means the default too. */
    assert_int_equal(install_secret_load(labs, NULL, &b, err, sizeof err), 0);
    assert_int_equal(b.len, a.len);
    assert_memory_equal(a.bytes, b.bytes, a.len);
    /* Nothing but the secret is left in the directory (no temporaries). */
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = .tango-secret", labs);
    assert_int_equal(system(cmd), 0);
    /* Another installation: another secret. */
    char labs2[128];
    snprintf(labs2, sizeof labs2, "%s/secret2", root);
    assert_int_equal(mkdir(labs2, 0755), 0);
    assert_int_equal(install_secret_load(labs2, "", &b, err, sizeof err), 0);
    assert_memory_not_equal(a.bytes, b.bytes, a.len);

    /* Many processes starting at once all end up with one secret. */
    char labs3[128];
    snprintf(labs3, sizeof labs3, "%s/secret3", root);
    assert_int_equal(mkdir(labs3, 0755), 0);
    int pipes[8][2];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pipe(pipes[i]), 0);
        if (fork() == 0) {
            struct install_secret c;
            char e[256];
            int rc = install_secret_load(labs3, "", &c, e, sizeof e);
            if (rc == 0 && write(pipes[i][1], c.bytes, c.len) != (ssize_t)c.len)
                rc = -1;
            _exit(rc ? 1 : 0);
        }
        close(pipes[i][1]);
    }
    unsigned char first[INSTALL_SECRET_BYTES];
    for (int i = 0; i < 8; i++) {
        unsigned char got[INSTALL_SECRET_BYTES];
        ssize_t n = 0, r;
        while (n < (ssize_t)sizeof got && (r = read(pipes[i][0], got + n, sizeof got - (size_t)n)) > 0)
            n += r;
        close(pipes[i][0]);
        assert_int_equal(n, sizeof got);
        if (i == 0)
            memcpy(first, got, sizeof got);
        assert_memory_equal(first, got, sizeof got);
    }
    while (wait(NULL) > 0)
        ;

    /* A symlink is never followed; a readable-by-others or too short file is refused. */
    char target[PATH_MAX], link_path[PATH_MAX];
    snprintf(target, sizeof target, "%s/target", labs2);
    snprintf(link_path, sizeof link_path, "%s/link", labs2);
    assert_int_equal(symlink(target, link_path), 0);
    assert_int_equal(install_secret_load(labs2, link_path, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "symlink"));
    assert_int_equal(lstat(target, &sb), -1); /* nothing made through the link */
    snprintf(path, sizeof path, "%s/loose", labs2);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789abcdef0123", 20), 20);
    close(fd);
    chmod(path, 0644);
    assert_int_equal(install_secret_load(labs2, path, &b, err, sizeof err), -1);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(install_secret_load(labs2, path, &b, err, sizeof err), 0);
    assert_int_equal(b.len, 20);
    assert_int_equal(truncate(path, 8), 0);
    assert_int_equal(install_secret_load(labs2, path, &b, err, sizeof err), -1);
    /* An explicit path that does not exist yet is created. */
    snprintf(path, sizeof path, "%s/explicit", labs2);
    assert_int_equal(install_secret_load(labs2, path, &b, err, sizeof err), 0);
    assert_int_equal(b.len, INSTALL_SECRET_BYTES);
    /* The secret is never in the message. */
    snprintf(path, sizeof path, "%s/none/x", labs2);
    assert_int_equal(install_secret_load(labs2, path, &b, err, sizeof err), -1);
}

static void test_lab_path(void **state)
{
    (void)state;
    char out[PATH_MAX];
    assert_int_equal(lab_path("/srv/labs", "id-lab", NULL, NULL, out), 0);
    assert_string_equal(out, "/srv/labs/id-lab");
    assert_int_equal(lab_path("/srv/labs", "id-lab", "output", NULL, out), 0);
    assert_string_equal(out, "/srv/labs/id-lab/output");
    assert_int_equal(lab_path("/srv/labs", "id-lab", NULL, "handin.py", out), 0);
    assert_string_equal(out, "/srv/labs/id-lab/handin.py");
    assert_int_equal(lab_path("labs", "id-lab", "output", "f.txt", out), 0);
    assert_string_equal(out, "labs/id-lab/output/f.txt");

    /* Every part is checked. */
    assert_int_equal(lab_path("/srv", "..", NULL, NULL, out), -1);
    assert_int_equal(lab_path("/srv", "", NULL, NULL, out), -1);
    assert_int_equal(lab_path("/srv", NULL, NULL, NULL, out), -1);
    assert_int_equal(lab_path("/srv", "a/b", NULL, NULL, out), -1);
    assert_int_equal(lab_path("/srv", "lab", "..", NULL, out), -1);
    assert_int_equal(lab_path("/srv", "lab", "", NULL, out), -1);
    assert_int_equal(lab_path("/srv", "lab", "out/put", NULL, out), -1);
    assert_int_equal(lab_path("/srv", "lab", NULL, "../../etc/passwd", out), -1);
    assert_int_equal(lab_path("/srv", "lab", NULL, ".", out), -1);
    assert_int_equal(lab_path("/srv", "lab", "output", "a\tb", out), -1);

    /* Length: exactly PATH_MAX - 1 fits, PATH_MAX does not. */
    static char base[PATH_MAX + 8];
    size_t blen = PATH_MAX - 1 - strlen("/lab/f");
    memset(base, 'b', blen);
    base[0] = '/';
    base[blen] = '\0';
    assert_int_equal(lab_path(base, "lab", NULL, "f", out), 0);
    assert_int_equal(strlen(out), PATH_MAX - 1);
    assert_int_equal(lab_path(base, "lab", NULL, "fg", out), -1);
    assert_int_equal(lab_path(base, "lab", "output", "f", out), -1);
    base[blen] = 'b';
    base[blen + 1] = '\0';
    assert_int_equal(lab_path(base, "lab", NULL, "f", out), -1);
}

static void test_lab_open(void **state)
{
    (void)state;
    char labs[128], dir[PATH_MAX], out[PATH_MAX];
    /* courselabs itself does not exist yet (nested). */
    snprintf(labs, sizeof labs, "%s/srv/courselabs", root);
    char name[LAB_DIR_MAX];
    assert_int_equal(lab_dir_name(&S, "k1", "lab5", name), 0);
    assert_false(lab_exists(labs, name));

    bool created = false;
    assert_int_equal(lab_open(labs, name, &created), 0);
    assert_true(created);
    assert_int_equal(lab_path(labs, name, NULL, NULL, dir), 0);
    assert_int_equal(lab_path(labs, name, "output", NULL, out), 0);
    assert_true(is_dir(dir));
    assert_true(is_dir(out));
    assert_true(lab_exists(labs, name));

    created = true;
    assert_int_equal(lab_open(labs, name, &created), 0);
    assert_false(created);

    /* A missing output/ is recreated; the lab was not new. */
    assert_int_equal(rmdir(out), 0);
    created = true;
    assert_int_equal(lab_open(labs, name, &created), 0);
    assert_false(created);
    assert_true(is_dir(out));

    /* Unsafe names create nothing. */
    assert_int_equal(lab_open(labs, "..", &created), -1);
    assert_int_equal(lab_open(labs, "a/b", &created), -1);
    char p[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s/a", labs);
    assert_false(is_dir(p));

    /* lab_exists: only directories count. */
    snprintf(p, sizeof p, "%s/plainfile", labs);
    touch(p);
    assert_false(lab_exists(labs, "plainfile"));
    assert_false(lab_exists(labs, "missing"));
    assert_false(lab_exists(labs, ".."));
    /* A regular file where the lab should be: lab_open fails. */
    assert_int_equal(lab_open(labs, "plainfile", &created), -1);
}

static void test_lab_has_file(void **state)
{
    (void)state;
    char labs[128], p[PATH_MAX], q[PATH_MAX];
    snprintf(labs, sizeof labs, "%s/hasfile", root);
    bool created;
    assert_int_equal(lab_open(labs, "lab", &created), 0);

    assert_int_equal(lab_path(labs, "lab", NULL, "handin.py", p), 0);
    assert_false(lab_has_file(labs, "lab", "handin.py"));
    touch(p);
    assert_true(lab_has_file(labs, "lab", "handin.py"));

    /* A symlink, even to a regular file, is not a lab file. */
    assert_int_equal(lab_path(labs, "lab", NULL, "link.py", q), 0);
    assert_int_equal(symlink(p, q), 0);
    assert_false(lab_has_file(labs, "lab", "link.py"));
    assert_int_equal(lab_path(labs, "lab", NULL, "dangling", q), 0);
    assert_int_equal(symlink("/nonexistent/x", q), 0);
    assert_false(lab_has_file(labs, "lab", "dangling"));
    /* A directory is not a file. */
    assert_false(lab_has_file(labs, "lab", "output"));
    /* Unsafe names never reach the disk. */
    assert_false(lab_has_file(labs, "lab", "../lab/handin.py"));
    assert_false(lab_has_file(labs, "lab", ""));
    assert_false(lab_has_file(labs, "..", "handin.py"));
    assert_false(lab_has_file(labs, "other", "handin.py"));
}

static void test_mkdir_p(void **state)
{
    (void)state;
    char p[PATH_MAX];
    struct stat sb;
    snprintf(p, sizeof p, "%s/m/a/b/c", root);
    assert_int_equal(mkdir_p(p, 0700), 0);
    assert_true(is_dir(p));
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(p, sizeof p, "%s/m/a", root);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* Existing paths are fine; so are trailing and doubled slashes. */
    snprintf(p, sizeof p, "%s/m/a/b/c", root);
    assert_int_equal(mkdir_p(p, 0755), 0);
    snprintf(p, sizeof p, "%s/m//d/e/", root);
    assert_int_equal(mkdir_p(p, 0755), 0);
    snprintf(p, sizeof p, "%s/m/d/e", root);
    assert_true(is_dir(p));
    assert_int_equal(mkdir_p("/", 0755), 0);
    assert_int_equal(mkdir_p(root, 0755), 0);

    /* A regular file in the way, in the middle or at the end. */
    snprintf(p, sizeof p, "%s/m/file", root);
    touch(p);
    errno = 0;
    assert_int_equal(mkdir_p(p, 0755), -1);
    assert_int_equal(errno, ENOTDIR);
    snprintf(p, sizeof p, "%s/m/file/sub", root);
    errno = 0;
    assert_int_equal(mkdir_p(p, 0755), -1);
    assert_int_equal(errno, ENOTDIR);

    /* Empty and over-long paths. */
    errno = 0;
    assert_int_equal(mkdir_p("", 0755), -1);
    assert_int_equal(errno, ENOENT);
    static char longp[PATH_MAX + 10];
    memset(longp, 'x', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    errno = 0;
    assert_int_equal(mkdir_p(longp, 0755), -1);
    assert_int_equal(errno, ENAMETOOLONG);

    /* Relative paths work from the current directory. */
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(root), 0);
    assert_int_equal(mkdir_p("rel/x/y", 0755), 0);
    assert_true(is_dir("rel/x/y"));
    assert_int_equal(chdir(cwd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lab_dir_name),
        cmocka_unit_test(test_lab_dir_find_legacy),
        cmocka_unit_test(test_install_secret),
        cmocka_unit_test(test_lab_path),
        cmocka_unit_test(test_lab_open),
        cmocka_unit_test(test_lab_has_file),
        cmocka_unit_test(test_mkdir_p),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
