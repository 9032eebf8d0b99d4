/*
 * test_image_ref.c: common/image_ref.c (local names and registry
 * references: host, port, path, tag, digest) and common/registries.c (the
 * "registries" config checks and the credentials file rules).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image_ref.h"
#include "registries.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_local_names(void **state)
{
    (void)state;
    struct image_ref r;
    assert_int_equal(image_ref_parse("autograding_image", &r), 0);
    assert_false(r.remote);
    assert_string_equal(r.path, "autograding_image");
    assert_int_equal(image_ref_parse("img:v2", &r), 0);
    assert_false(r.remote);
    /* a '/' whose first part names no host is not a registry reference */
    assert_int_equal(image_ref_parse("library/ubuntu", &r), -1);
    assert_int_equal(image_ref_parse("", &r), -1);
    assert_int_equal(image_ref_parse(NULL, &r), -1);
}

static void test_remote_forms(void **state)
{
    (void)state;
    struct image_ref r;
    assert_int_equal(image_ref_parse("registry.example.edu:5000/15213/datalab:v3", &r), 0);
    assert_true(r.remote);
    assert_string_equal(r.registry, "registry.example.edu:5000");
    assert_string_equal(r.path, "15213/datalab");
    assert_string_equal(r.tag, "v3");
    assert_string_equal(image_ref_reference(&r), "v3");
    assert_int_equal(image_ref_parse("localhost/img", &r), 0);
    assert_string_equal(image_ref_reference(&r), "latest");
    assert_int_equal(image_ref_parse("Reg.Example.EDU/a/b@sha256:" HEX64, &r), 0);
    assert_string_equal(r.registry, "reg.example.edu");
    assert_string_equal(r.digest, "sha256:" HEX64);
    assert_string_equal(image_ref_reference(&r), "sha256:" HEX64);
    assert_int_equal(image_ref_parse("127.0.0.1:5000/x:t@sha256:" HEX64, &r), 0);
    assert_string_equal(r.tag, "t");
    assert_string_equal(image_ref_reference(&r), r.digest); /* the digest counts */
}

static void test_remote_refused(void **state)
{
    (void)state;
    struct image_ref r;
    const char *bad[] = {
        "reg.edu/",                    /* no path */
        "reg.edu//x",                  /* empty component */
        "reg.edu/a/../b",              /* ".." */
        "reg.edu/A",                   /* upper-case path */
        "reg.edu/a..b",                /* ".." inside */
        "reg.edu/-a",                  /* starts with '-' */
        "reg.edu:0/a", "reg.edu:65536/a", "reg.edu:/a", "reg.edu:5x/a",
        "-reg.edu/a", "reg..edu/a", "reg_x.edu/a",
        "reg.edu/a:", "reg.edu/a:-t", "reg.edu/a:t/u",
        "reg.edu/a@sha256:abc", "reg.edu/a@sha512:" HEX64, "reg.edu/a@sha256:" HEX64 "0",
        "reg.edu/a@SHA256:" HEX64, "reg.edu/a b", "reg.edu/a\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (image_ref_parse(bad[i], &r) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_false(r.remote);
        assert_string_equal(r.registry, "");
    }
    char longname[400];
    memset(longname, 'a', sizeof longname);
    memcpy(longname, "reg.edu/", 8);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(image_ref_parse(longname, &r), -1);
}

/* A credentials file of mode mode holding text; its path into path. */
static void creds_file(char *path, size_t n, mode_t mode, const char *text)
{
    snprintf(path, n, "/tmp/test_image_ref.%d.creds", (int)getpid());
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_registries_check(void **state)
{
    (void)state;
    char path[128], err[512], user[REGISTRY_USER_MAX], pass[REGISTRY_PASS_MAX];
    creds_file(path, sizeof path, 0600, "alice:s3cret\n");
    json_t *regs = json_pack("{s:{s:s}}", "127.0.0.1:5000", "credentials", path);
    assert_int_equal(registries_check(regs, err, sizeof err), 0);
    assert_non_null(registries_find(regs, "127.0.0.1:5000"));
    assert_null(registries_find(regs, "127.0.0.1:5001"));
    assert_int_equal(registries_read_creds(path, user, pass, err, sizeof err), 0);
    assert_string_equal(user, "alice");
    assert_string_equal(pass, "s3cret");
    /* group- or world-readable: refused with a clear error, no secret in it */
    chmod(path, 0640);
    assert_int_equal(registries_check(regs, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable by group or others"));
    assert_null(strstr(err, "s3cret"));
    chmod(path, 0604);
    assert_int_equal(registries_read_creds(path, user, pass, err, sizeof err), -1);
    json_decref(regs);
    /* unknown keys, bad hosts, malformed credentials */
    regs = json_pack("{s:{s:s}}", "reg.edu", "password", "x");
    assert_int_equal(registries_check(regs, err, sizeof err), -1);
    json_decref(regs);
    regs = json_pack("{s:{}}", "Reg.edu");
    assert_int_equal(registries_check(regs, err, sizeof err), -1);
    json_decref(regs);
    creds_file(path, sizeof path, 0600, "no-colon-here\n");
    assert_int_equal(registries_read_creds(path, user, pass, err, sizeof err), -1);
    assert_null(strstr(err, "no-colon-here"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_names),
        cmocka_unit_test(test_remote_forms),
        cmocka_unit_test(test_remote_refused),
        cmocka_unit_test(test_registries_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
