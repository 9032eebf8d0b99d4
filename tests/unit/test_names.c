/*
 * test_names.c: common/names.c: safe path components, image names, job ids
 * in URLs, constant-time key matching and key ids.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "names.h"

static void test_name_empty_and_dots(void **state)
{
    (void)state;
    assert_false(name_is_safe("", 0));
    assert_false(name_is_safe_str(""));
    assert_false(name_is_safe_str(NULL));
    assert_false(name_is_safe(NULL, 3));
    assert_false(name_is_safe_str("."));
    assert_false(name_is_safe_str(".."));
    /* Names that merely contain or start with dots are fine. */
    assert_true(name_is_safe_str("..."));
    assert_true(name_is_safe_str(".hidden"));
    assert_true(name_is_safe_str("a..b"));
    assert_true(name_is_safe_str("handin.py"));
    assert_true(name_is_safe_str("a"));
}

static void test_name_separators(void **state)
{
    (void)state;
    assert_false(name_is_safe_str("a/b"));
    assert_false(name_is_safe_str("/"));
    assert_false(name_is_safe_str("../x"));
    assert_false(name_is_safe_str("x/"));
    assert_false(name_is_safe_str("a\\b"));
    assert_false(name_is_safe_str("\\"));
}

static void test_name_nul_inside(void **state)
{
    (void)state;
    const char s[] = "abc\0def";
    /* len counts past the NUL: the name is not what strlen sees. */
    assert_false(name_is_safe(s, 7));
    assert_false(name_is_safe(s, 4));
    assert_true(name_is_safe(s, 3));
    /* len shorter than the string is a mismatch too. */
    assert_false(name_is_safe("abcdef", 3));
}

static void test_name_control_chars(void **state)
{
    (void)state;
    char buf[4] = "a?b";
    for (int c = 1; c < 0x20; c++) {
        buf[1] = (char)c;
        assert_false(name_is_safe(buf, 3));
    }
    buf[1] = 0x7f;
    assert_false(name_is_safe(buf, 3));
    assert_false(name_is_safe_str("tab\there"));
    assert_false(name_is_safe_str("nl\n"));
    assert_false(name_is_safe_str("\x1b[31m"));
    /* Printable punctuation and spaces are allowed. */
    assert_true(name_is_safe_str("a b"));
    assert_true(name_is_safe_str("x~!@#$%^&*()_+-=:;,<>?'\""));
}

static void test_name_length(void **state)
{
    (void)state;
    char buf[300];
    memset(buf, 'x', sizeof buf);
    buf[255] = '\0';
    assert_true(name_is_safe(buf, 255));
    assert_true(name_is_safe_str(buf));
    buf[255] = 'x';
    buf[256] = '\0';
    assert_false(name_is_safe(buf, 256));
    assert_false(name_is_safe_str(buf));
}

static void test_name_utf8(void **state)
{
    (void)state;
    assert_true(name_is_safe_str("r\xc3\xa9sum\xc3\xa9.txt"));           /* résumé.txt */
    assert_true(name_is_safe_str("\xe6\x97\xa5\xe6\x9c\xac"));           /* 日本 */
    assert_true(name_is_safe_str("\xf0\x9f\x98\x80.c"));                 /* emoji */
    assert_true(name_is_safe_str("\x80\xff"));  /* high bytes are not control chars */
}

static void test_image_names(void **state)
{
    (void)state;
    assert_true(image_name_is_valid("autograding_image"));
    assert_true(image_name_is_valid("rhel"));
    assert_true(image_name_is_valid("0abc"));
    assert_true(image_name_is_valid("a.b-c_d"));
    assert_true(image_name_is_valid("name:tag"));
    assert_true(image_name_is_valid("name:Latest-1.2_3"));
    assert_true(image_name_is_valid("a:B"));

    assert_false(image_name_is_valid(NULL));
    assert_false(image_name_is_valid(""));
    assert_false(image_name_is_valid("Autograding"));
    assert_false(image_name_is_valid("autoGrading"));
    assert_false(image_name_is_valid(".hidden"));
    assert_false(image_name_is_valid("-x"));
    assert_false(image_name_is_valid("_x"));
    assert_false(image_name_is_valid("name:"));
    assert_false(image_name_is_valid(":tag"));
    assert_false(image_name_is_valid("a:b:c"));
    assert_false(image_name_is_valid("library/ubuntu"));
    assert_false(image_name_is_valid("a/b:c"));
    assert_false(image_name_is_valid("name:t/g"));
    /* a key owns a repository: every tag of it (image_repo_len) */
    assert_int_equal(image_repo_len("datalab"), 7);
    assert_int_equal(image_repo_len("datalab:v3"), 7);
    assert_int_equal(image_repo_len("host:5000/x/y:t"), 13);
    assert_int_equal(image_repo_len("host:5000/x/y@sha256:ab"), 13);
    char canon[32];
    assert_true(image_name_canon("datalab", canon, sizeof canon));
    assert_string_equal(canon, "datalab:latest");
    assert_true(image_name_canon("datalab:v3", canon, sizeof canon));
    assert_string_equal(canon, "datalab:v3");
    assert_false(image_name_canon("datalab", canon, 10));
    assert_false(image_name_is_valid("a b"));
    assert_false(image_name_is_valid("a\tb"));
    assert_false(image_name_is_valid("name:t@g"));
    assert_false(image_name_is_valid(".."));
}

static void test_parse_job_id(void **state)
{
    (void)state;
    long long id = -7;
    assert_int_equal(parse_job_id("1", &id), 0);
    assert_int_equal(id, 1);
    assert_int_equal(parse_job_id("42", &id), 0);
    assert_int_equal(id, 42);
    /* Leading zeros are still a decimal number > 0. */
    assert_int_equal(parse_job_id("01", &id), 0);
    assert_int_equal(id, 1);
    assert_int_equal(parse_job_id("4294967297", &id), 0);
    assert_int_equal(id, 4294967297LL);
    assert_int_equal(parse_job_id("9223372036854775807", &id), 0); /* 19 digits */
    assert_true(id == 9223372036854775807LL);
    assert_int_equal(parse_job_id("1000000000000000000", &id), 0); /* 19 digits */
    assert_true(id == 1000000000000000000LL);

    id = -7;
    assert_int_equal(parse_job_id("0", &id), -1);
    assert_int_equal(parse_job_id("0000000000000000000", &id), -1);
    assert_int_equal(parse_job_id("-1", &id), -1);
    assert_int_equal(parse_job_id("+1", &id), -1);
    assert_int_equal(parse_job_id(" 1", &id), -1);
    assert_int_equal(parse_job_id("1 ", &id), -1);
    assert_int_equal(parse_job_id("1a", &id), -1);
    assert_int_equal(parse_job_id("0x10", &id), -1);
    assert_int_equal(parse_job_id("", &id), -1);
    assert_int_equal(parse_job_id(NULL, &id), -1);
    assert_int_equal(parse_job_id("9223372036854775808", &id), -1); /* 19 digits, > max */
    assert_int_equal(parse_job_id("9999999999999999999", &id), -1);
    assert_int_equal(parse_job_id("10000000000000000000", &id), -1); /* 20 digits */
    assert_int_equal(parse_job_id("00000000000000000001", &id), -1); /* 20 digits */
    /* Failures leave *id alone. */
    assert_int_equal(id, -7);
}

static void test_key_matches(void **state)
{
    (void)state;
    char *keys[] = {"alpha-key-1", "beta", "gamma-longer-key"};
    assert_true(key_matches("alpha-key-1", keys, 3));
    assert_true(key_matches("beta", keys, 3));
    assert_true(key_matches("gamma-longer-key", keys, 3));
    /* A prefix of a key, a key plus more, a near miss, the empty key. */
    assert_false(key_matches("bet", keys, 3));
    assert_false(key_matches("alpha-key-", keys, 3));
    assert_false(key_matches("betaa", keys, 3));
    assert_false(key_matches("alpha-key-12", keys, 3));
    assert_false(key_matches("alpha-key-2", keys, 3));
    assert_false(key_matches("Beta", keys, 3));
    assert_false(key_matches("", keys, 3));
    /* Only the first nkeys count; no keys matches nothing. */
    assert_false(key_matches("gamma-longer-key", keys, 2));
    assert_false(key_matches("alpha-key-1", keys, 0));
    assert_false(key_matches("", keys, 0));
}

static void test_key_id(void **state)
{
    (void)state;
    static const unsigned char secret[] = "test-secret-0123456789abcdef0123";
    char a[KEY_ID_LEN + 1], b[KEY_ID_LEN + 1], c[KEY_ID_LEN + 1];
    memset(a, '#', sizeof a);
    /* First 16 hex digits of HMAC-SHA256(secret, key). */
    key_id(secret, 32, "abc", a);
    assert_string_equal(a, "e7365cdb2fcdde94");
    /* Another secret, another id: an id tells nothing without the secret. */
    key_id((const unsigned char *)"other-secret-0123456789abcdef012", 32, "abc", b);
    assert_string_equal(b, "0c7c794eac57a728");
    /* Stable. */
    key_id(secret, 32, "abc", c);
    assert_string_equal(a, c);
    /* The legacy id is the bare SHA-256 (what old lab directories carry). */
    key_id_legacy("abc", b);
    assert_string_equal(b, "ba7816bf8f01cfea");
    assert_string_not_equal(a, b);
    key_id_legacy("", b);
    assert_string_equal(b, "e3b0c44298fc1c14");
    /* 16 lower-case hex digits. */
    key_id(secret, 32, "some client key", a);
    assert_int_equal(strlen(a), 16);
    for (int i = 0; i < 16; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    /* Different keys, different ids; the key itself never shows. */
    key_id(secret, 32, "some client key2", b);
    assert_string_not_equal(a, b);
    key_id(secret, 32, "abcdef0123456789", c);
    assert_string_not_equal(c, "abcdef0123456789");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_empty_and_dots),
        cmocka_unit_test(test_name_separators),
        cmocka_unit_test(test_name_nul_inside),
        cmocka_unit_test(test_name_control_chars),
        cmocka_unit_test(test_name_length),
        cmocka_unit_test(test_name_utf8),
        cmocka_unit_test(test_image_names),
        cmocka_unit_test(test_parse_job_id),
        cmocka_unit_test(test_key_matches),
        cmocka_unit_test(test_key_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
