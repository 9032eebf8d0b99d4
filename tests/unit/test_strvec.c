/*
 * test_strvec.c: common/strvec.c, the growable string vector: copies are
 * its own, order is kept across growth, pushn cuts (and stops at the
 * string's end), find matches whole strings only, take hands the array
 * over and leaves the vector empty, free leaves it reusable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strvec.h"

static void test_push_copies_and_grows(void **state)
{
    (void)state;
    struct strvec sv = STRVEC_INIT;
    char buf[16];
    for (int i = 0; i < 100; i++) { /* past several doublings */
        snprintf(buf, sizeof buf, "name%d", i);
        assert_int_equal(strvec_push(&sv, buf), 0);
    }
    strcpy(buf, "changed"); /* the vector holds its own copies */
    assert_int_equal(sv.n, 100);
    assert_true(sv.cap >= 100);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "name%d", i);
        assert_string_equal(sv.v[i], buf);
    }
    strvec_free(&sv);
    assert_null(sv.v);
    assert_int_equal(sv.n, 0);
    assert_int_equal(sv.cap, 0);
    assert_int_equal(strvec_push(&sv, "again"), 0); /* reusable after free */
    assert_string_equal(sv.v[0], "again");
    strvec_free(&sv);
}

static void test_pushn(void **state)
{
    (void)state;
    struct strvec sv = STRVEC_INIT;
    assert_int_equal(strvec_pushn(&sv, "ubuntu:latest", 6), 0);
    assert_int_equal(strvec_pushn(&sv, "abc", 10), 0); /* stops at the end of s */
    assert_int_equal(strvec_pushn(&sv, "xyz", 0), 0);
    assert_string_equal(sv.v[0], "ubuntu");
    assert_string_equal(sv.v[1], "abc");
    assert_string_equal(sv.v[2], "");
    strvec_free(&sv);
}

static void test_find_whole_strings(void **state)
{
    (void)state;
    struct strvec sv = STRVEC_INIT;
    assert_int_equal(strvec_find(&sv, "a", 1), -1); /* empty */
    assert_int_equal(strvec_push(&sv, "abc"), 0);
    assert_int_equal(strvec_push(&sv, "ab"), 0);
    assert_int_equal(strvec_push(&sv, "abc"), 0);
    assert_int_equal(strvec_find(&sv, "abc", 3), 0);   /* the first of two */
    assert_int_equal(strvec_find(&sv, "abcd", 2), 1);  /* "ab": not a prefix of "abc" */
    assert_int_equal(strvec_find(&sv, "abc", 99), 0);  /* len past the end of s */
    assert_int_equal(strvec_find(&sv, "a", 1), -1);
    assert_int_equal(strvec_find(&sv, "abcd", 4), -1);
    assert_int_equal(strvec_find(&sv, "", 0), -1);
    strvec_free(&sv);
}

static void test_take(void **state)
{
    (void)state;
    struct strvec sv = STRVEC_INIT;
    size_t n = 99;
    assert_null(strvec_take(&sv, &n)); /* empty: NULL, 0 */
    assert_int_equal(n, 0);
    assert_int_equal(strvec_push(&sv, "one"), 0);
    assert_int_equal(strvec_push(&sv, "two"), 0);
    char **v = strvec_take(&sv, &n);
    assert_int_equal(n, 2);
    assert_string_equal(v[0], "one");
    assert_string_equal(v[1], "two");
    assert_null(sv.v);
    assert_int_equal(sv.n, 0);
    assert_int_equal(sv.cap, 0);
    strvec_free(&sv); /* frees nothing of what was taken */
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_copies_and_grows),
        cmocka_unit_test(test_pushn),
        cmocka_unit_test(test_find_whole_strings),
        cmocka_unit_test(test_take),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
