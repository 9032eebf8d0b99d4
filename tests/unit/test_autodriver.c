/* test_autodriver.c: unit tests of the autodriver's command line parsing
 * (args.c), its report lines and capped output (output.c) and its passwd /
 * group reading (user.c). Every output test asserts the exact bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../autodriver/args.h"
#include "../../autodriver/fdio.h"
#include "../../autodriver/output.h"
#include "../../autodriver/user.h"

/* ---------- helpers ---------- */

#define ARGV(...) ((char *[]){"autodriver", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"autodriver", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(a, err, ...) ad_parse_args(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (a), (err), sizeof(err))

/* An anonymous file holding len bytes of data. */
static int file_with(const void *data, size_t len)
{
    char path[] = "/tmp/test_autodriver_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    if (len)
        assert_int_equal(ad_write_all(fd, data, len), 0);
    return fd;
}

/* Everything written to fd (from offset 0); *len set; caller frees. */
static char *contents(int fd, size_t *len)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    *len = (size_t)st.st_size;
    return buf;
}

/* Runs ad_dump_capped(osize) on input and checks the output is expected. */
static void check_dump(const void *input, size_t in_len, unsigned long osize,
                       const void *expected, size_t exp_len)
{
    int in = file_with(input, in_len);
    int out = file_with(NULL, 0);
    ad_err e;
    assert_int_equal(ad_dump_capped(out, in, osize, &e), 0);
    size_t got_len;
    char *got = contents(out, &got_len);
    assert_int_equal(got_len, exp_len);
    assert_memory_equal(got, expected, exp_len);
    free(got);
    close(in);
    close(out);
}

/* ---------- args.c ---------- */

static void test_args_legacy_command_line(void **state)
{
    (void)state;
    struct ad_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, "-u", "100", "-f", "104857600", "-t", "20", "-o",
                           "1024000", "autolab"),
                     AD_ARGS_OK);
    assert_int_equal(a.nproc, 100);
    assert_int_equal(a.fsize, 104857600);
    assert_int_equal(a.timeout, 20);
    assert_int_equal(a.osize, 1024000);
    assert_string_equal(a.dirname, "autolab");
    assert_null(a.timezone);
}

static void test_args_defaults_are_zero(void **state)
{
    (void)state;
    struct ad_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, "autolab"), AD_ARGS_OK);
    assert_int_equal(a.nproc, 0);
    assert_int_equal(a.fsize, 0);
    assert_int_equal(a.timeout, 0);
    assert_int_equal(a.osize, 0);
    assert_int_equal(a.interval, 0);
    assert_null(a.timezone);
    assert_string_equal(a.dirname, "autolab");
}

static void test_args_forms(void **state)
{
    (void)state;
    struct ad_args a;
    char err[256];
    /* attached values, long options, = form, unique prefix, option after the dir */
    assert_int_equal(PARSE(&a, err, "-u5", "--fsize=7", "autolab", "--timeout", "9",
                           "--os=11", "-z", "America/New_York", "-i", "3"),
                     AD_ARGS_OK);
    assert_int_equal(a.nproc, 5);
    assert_int_equal(a.fsize, 7);
    assert_int_equal(a.timeout, 9);
    assert_int_equal(a.osize, 11);
    assert_int_equal(a.interval, 3);
    assert_string_equal(a.timezone, "America/New_York");
    assert_string_equal(a.dirname, "autolab");
    /* trailing slashes are dropped; "--" ends options */
    assert_int_equal(PARSE(&a, err, "-t", "1", "--", "-odd/"), AD_ARGS_OK);
    assert_string_equal(a.dirname, "-odd");
    assert_int_equal(a.timeout, 1);
    /* the largest value */
    assert_int_equal(PARSE(&a, err, "-o", "4294967295", "x"), AD_ARGS_OK);
    assert_int_equal(a.osize, 4294967295UL);
}

static void test_args_help(void **state)
{
    (void)state;
    struct ad_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, "--help"), AD_ARGS_HELP);
    assert_int_equal(PARSE(&a, err, "-h"), AD_ARGS_HELP);
    assert_int_equal(PARSE(&a, err, "autolab", "-?"), AD_ARGS_HELP);
    assert_non_null(strstr(ad_usage(), "Usage: autodriver [-u NPROC] [-f FSIZE] [-t TIMEOUT] "
                                       "[-o OSIZE]"));
}

static void test_args_missing_dir(void **state)
{
    (void)state;
    struct ad_args a;
    char err[256];
    char *argv[] = {"autodriver", NULL};
    assert_int_equal(ad_parse_args(1, argv, &a, err, sizeof err), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "Too few arguments"));
    assert_int_equal(PARSE(&a, err, "-u", "10"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "Too few arguments"));
    assert_int_equal(PARSE(&a, err, "-u"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "requires an argument"));
    assert_int_equal(PARSE(&a, err, "autolab", "--timeout"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "requires an argument"));
    assert_int_equal(PARSE(&a, err, "a", "b"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "Too many arguments"));
    assert_int_equal(PARSE(&a, err, "a", "b", "c"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "Too many arguments"));
}

static void test_args_bad_numbers(void **state)
{
    (void)state;
    struct ad_args a;
    char err[256];
    const char *bad[] = {"", "abc", "10x", "x10", " 10", "10 ", "+5", "0x10", "1e3",
                         "-1", "-0", "4294967296", "99999999999999999999999", "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {"autodriver", "-t", (char *)bad[i], "autolab", NULL};
        assert_int_equal(ad_parse_args(4, argv, &a, err, sizeof err), AD_ARGS_ERROR);
        assert_non_null(strstr(err, "The argument to timeout must be a nonnegative integer"));
    }
    assert_int_equal(PARSE(&a, err, "-u", "-5", "autolab"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "nproc"));
    assert_int_equal(PARSE(&a, err, "--fsize=", "autolab"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "fsize"));
    assert_int_equal(PARSE(&a, err, "-o", "18446744073709551616", "autolab"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "osize"));
}

static void test_args_bad_options_and_dirs(void **state)
{
    (void)state;
    struct ad_args a;
    char err[256];
    assert_int_equal(PARSE(&a, err, "-x", "1", "autolab"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "Invalid option"));
    assert_int_equal(PARSE(&a, err, "--bogus=1", "autolab"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "Unrecognized option"));
    assert_int_equal(PARSE(&a, err, "--t=1", "autolab"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "Ambiguous option"));     /* timeout, timestamp-interval, timezone */
    assert_int_equal(PARSE(&a, err, "-z", "bad zone", "autolab"), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "timezone"));
    const char *dirs[] = {"/home/autolab", "a/b", ".", "..", "../x", "//", ""};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char *argv[] = {"autodriver", (char *)dirs[i], NULL};
        assert_int_equal(ad_parse_args(2, argv, &a, err, sizeof err), AD_ARGS_ERROR);
    }
    char longname[NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    char *argv[] = {"autodriver", longname, NULL};
    assert_int_equal(ad_parse_args(2, argv, &a, err, sizeof err), AD_ARGS_ERROR);
    assert_non_null(strstr(err, "too long"));
}

static void test_parse_uint(void **state)
{
    (void)state;
    unsigned long v = 42;
    assert_int_equal(ad_parse_uint("0", 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ad_parse_uint("10", 10, &v), 0);
    assert_int_equal(v, 10);
    v = 42;
    assert_int_equal(ad_parse_uint("11", 10, &v), -1);
    assert_int_equal(v, 42); /* untouched on failure */
    assert_int_equal(ad_parse_uint(NULL, 10, &v), -1);
    assert_int_equal(ad_parse_uint("007", 10, &v), 0); /* decimal, not octal */
    assert_int_equal(v, 7);
}

/* ---------- output.c ---------- */

static void test_dump_shorter_than_cap(void **state)
{
    (void)state;
    check_dump("hello\n", 6, 100, "hello\n", 6);
}

static void test_dump_equal_to_cap(void **state)
{
    (void)state;
    check_dump("0123456789", 10, 10, "0123456789", 10);
}

static void test_dump_no_cap(void **state)
{
    (void)state;
    check_dump("0123456789", 10, 0, "0123456789", 10);
}

static void test_dump_longer_than_cap(void **state)
{
    (void)state;
    static const char want[] = "0123" "\n...[excess bytes elided]...\n" "6789";
    check_dump("0123456789", 10, 8, want, sizeof want - 1);
    /* one byte over */
    static const char want3[] = "01234" "\n...[excess bytes elided]...\n" "6789A";
    check_dump("0123456789A", 11, 10, want3, sizeof want3 - 1);
}

static void test_dump_odd_cap(void **state)
{
    (void)state;
    /* osize 7: 3 bytes each side, as the original (osize/2) */
    static const char want[] = "abc" "\n...[excess bytes elided]...\n" "xyz";
    check_dump("abcdefghijklmnopqrstuvwxyz", 26, 7, want, sizeof want - 1);
    /* osize 1: nothing but the elision line */
    static const char want1[] = "\n...[excess bytes elided]...\n";
    check_dump("ab", 2, 1, want1, sizeof want1 - 1);
}

static void test_dump_empty(void **state)
{
    (void)state;
    check_dump("", 0, 0, "", 0);
    check_dump("", 0, 10, "", 0);
    check_dump("", 0, 1, "", 0);
}

static void test_dump_binary_bytes(void **state)
{
    (void)state;
    /* NUL, invalid UTF-8, a lone continuation byte, CR, 0xff: copied as they are */
    static const char in[] = "\x00\xff\xfe\xc3\x28\x80\r\n\xed\xa0\x80\x00Z";
    size_t n = sizeof in - 1;
    check_dump(in, n, 0, in, n);
    check_dump(in, n, (unsigned long)n, in, n);
    static const char want[] = "\x00\xff\xfe" "\n...[excess bytes elided]...\n" "\x80\x00Z";
    check_dump(in, n, 6, want, sizeof want - 1);
}

static void test_dump_large_file(void **state)
{
    (void)state;
    /* 3 MiB of a pattern, capped at 1000: head and tail exact */
    size_t n = 3u << 20;
    char *in = malloc(n);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)('a' + i % 26);
    size_t exp_len = 500 + strlen(AD_ELISION_LINE) + 500;
    char *want = malloc(exp_len);
    assert_non_null(want);
    memcpy(want, in, 500);
    memcpy(want + 500, AD_ELISION_LINE, strlen(AD_ELISION_LINE));
    memcpy(want + 500 + strlen(AD_ELISION_LINE), in + n - 500, 500);
    check_dump(in, n, 1000, want, exp_len);
    /* uncapped: everything, through several buffers */
    check_dump(in, n, 0, in, n);
    free(in);
    free(want);
}

static void test_dump_ignores_file_offset(void **state)
{
    (void)state;
    int in = file_with("abcdef", 6); /* offset is at the end after writing */
    int out = file_with(NULL, 0);
    ad_err e;
    assert_int_equal(ad_dump_capped(out, in, 0, &e), 0);
    size_t len;
    char *got = contents(out, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(got, "abcdef", 6);
    free(got);
    close(in);
    close(out);
}

static void test_dump_bad_fd(void **state)
{
    (void)state;
    ad_err e;
    int out = file_with(NULL, 0);
    assert_int_equal(ad_dump_capped(out, -1, 0, &e), -1);
    assert_non_null(strstr(e.msg, "output file"));
    close(out);
}

static void test_status_lines(void **state)
{
    (void)state;
    char buf[128];
    int n = ad_format_status(buf, sizeof buf, 0, 20, 0);
    assert_string_equal(buf, "Autodriver: Job exited with status 0\n");
    assert_int_equal(n, (int)strlen(buf));
    ad_format_status(buf, sizeof buf, 0, 20, 2);
    assert_string_equal(buf, "Autodriver: Job exited with status 2\n");
    ad_format_status(buf, sizeof buf, 1, 20, 0);
    assert_string_equal(buf, "Autodriver: Job timed out after 20 seconds\n");
    n = ad_format_usage(buf, sizeof buf, 1.2344, 5120);
    assert_string_equal(buf, "Autodriver: wall_time=1.234s peak_memory_kb=5120\n");
    assert_int_equal(n, (int)strlen(buf));
    ad_format_usage(buf, sizeof buf, -1, -1);
    assert_string_equal(buf, "Autodriver: wall_time=0.000s peak_memory_kb=0\n");
}

/* ---------- user.c ---------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_lookup_user(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_autodriver_user_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char passwd[128], group[128];
    snprintf(passwd, sizeof passwd, "%s/passwd", dir);
    snprintf(group, sizeof group, "%s/group", dir);
    write_file(passwd,
               "root:x:0:0:root:/root:/bin/bash\n"
               "# a comment line\n"
               "autogradex:x:7:7::/nope:/bin/sh\n"
               "broken line without fields\n"
               "autograde:x:1001:1002:Grader:/home/autograde:/bin/bash\n"
               "badid:x:12a:1::/h:/bin/sh\n"
               "relhome:x:5:5::home/x:/bin/sh\n"
               "last:x:9:9::/home/last:/bin/sh"); /* no final newline */
    write_file(group,
               "root:x:0:\n"
               "autograde:x:1002:\n"
               "video:x:44:alice,autograde\n"
               "audio:x:29:autogradex\n"
               "dup:x:1002:autograde\n"
               "users:x:100:bob,autograde,carol\n");
    struct ad_user u;
    ad_err e;
    assert_int_equal(ad_lookup_user(passwd, "autograde", &u, &e), 1);
    assert_int_equal(u.uid, 1001);
    assert_int_equal(u.gid, 1002);
    assert_string_equal(u.home, "/home/autograde");
    assert_string_equal(u.name, "autograde");
    assert_int_equal(ad_lookup_groups(group, &u, &e), 0);
    assert_int_equal(u.ngroups, 3);
    assert_int_equal(u.groups[0], 1002);
    assert_int_equal(u.groups[1], 44);
    assert_int_equal(u.groups[2], 100);

    assert_int_equal(ad_lookup_user(passwd, "last", &u, &e), 1);
    assert_string_equal(u.home, "/home/last");
    assert_int_equal(ad_lookup_user(passwd, "nobody", &u, &e), 0);
    assert_int_equal(ad_lookup_user(passwd, "autograd", &u, &e), 0);
    assert_int_equal(ad_lookup_user(passwd, "badid", &u, &e), -1);
    assert_non_null(strstr(e.msg, "Invalid uid"));
    assert_int_equal(ad_lookup_user(passwd, "relhome", &u, &e), -1);
    assert_non_null(strstr(e.msg, "home"));
    assert_int_equal(ad_lookup_user("/nonexistent/passwd", "x", &u, &e), -1);
    assert_non_null(strstr(e.msg, "/nonexistent/passwd"));

    /* a missing group file leaves the primary group only */
    assert_int_equal(ad_lookup_user(passwd, "autograde", &u, &e), 1);
    assert_int_equal(ad_lookup_groups("/nonexistent/group", &u, &e), 0);
    assert_int_equal(u.ngroups, 1);
    assert_int_equal(u.groups[0], 1002);

    unlink(passwd);
    unlink(group);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_legacy_command_line),
        cmocka_unit_test(test_args_defaults_are_zero),
        cmocka_unit_test(test_args_forms),
        cmocka_unit_test(test_args_help),
        cmocka_unit_test(test_args_missing_dir),
        cmocka_unit_test(test_args_bad_numbers),
        cmocka_unit_test(test_args_bad_options_and_dirs),
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_dump_shorter_than_cap),
        cmocka_unit_test(test_dump_equal_to_cap),
        cmocka_unit_test(test_dump_no_cap),
        cmocka_unit_test(test_dump_longer_than_cap),
        cmocka_unit_test(test_dump_odd_cap),
        cmocka_unit_test(test_dump_empty),
        cmocka_unit_test(test_dump_binary_bytes),
        cmocka_unit_test(test_dump_large_file),
        cmocka_unit_test(test_dump_ignores_file_offset),
        cmocka_unit_test(test_dump_bad_fd),
        cmocka_unit_test(test_status_lines),
        cmocka_unit_test(test_lookup_user),
    };
    return cmocka_run_group_tests_name("autodriver", tests, NULL, NULL);
}
