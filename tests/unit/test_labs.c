/*
 * test_labs.c: common/labs.c: lab directory names (key id prefix, no key in
 * any path), path building, lab_open/lab_exists/lab_has_file on a real
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
#include <sys/stat.h>
#include <unistd.h>

#include "labs.h"
#include "names.h"

static char root[64];

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
    assert_int_equal(lab_dir_name("abc", "lab5", out), 0);
    assert_string_equal(out, "ba7816bf8f01cfea-lab5"); /* sha256("abc")[0:8] */
    char id[17], want[LAB_DIR_MAX];
    key_id("another-client-key", id);
    snprintf(want, sizeof want, "%s-15213-f26_malloclab", id);
    assert_int_equal(lab_dir_name("another-client-key", "15213-f26_malloclab", out), 0);
    assert_string_equal(out, want);
    assert_null(strstr(out, "another-client-key"));
    /* The same lab under two keys: two directories. */
    char other[LAB_DIR_MAX];
    assert_int_equal(lab_dir_name("abd", "lab5", other), 0);
    assert_string_not_equal(out, other);
    assert_true(name_is_safe_str(out));

    /* 16 + 1 + 238 = 255 bytes fits one path component; 239 does not. */
    char lab[300];
    memset(lab, 'l', sizeof lab);
    lab[238] = '\0';
    assert_int_equal(lab_dir_name("abc", lab, out), 0);
    assert_int_equal(strlen(out), 255);
    lab[238] = 'l';
    lab[239] = '\0';
    assert_int_equal(lab_dir_name("abc", lab, out), -1);
    lab[255] = '\0';
    assert_int_equal(lab_dir_name("abc", lab, out), -1);
    lab[256] = '\0';
    assert_int_equal(lab_dir_name("abc", lab, out), -1);

    /* Unsafe courselab names. */
    static const char *const bad[] = {"", ".", "..", "a/b", "../etc", "a\\b", "a\nb",
                                      "x\x7f", NULL};
    for (int i = 0; bad[i]; i++)
        if (lab_dir_name("abc", bad[i], out) != -1)
            fail_msg("courselab \"%s\" accepted", bad[i]);
    assert_int_equal(lab_dir_name("abc", NULL, out), -1);
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
    assert_int_equal(lab_dir_name("k1", "lab5", name), 0);
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
        cmocka_unit_test(test_lab_path),
        cmocka_unit_test(test_lab_open),
        cmocka_unit_test(test_lab_has_file),
        cmocka_unit_test(test_mkdir_p),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
