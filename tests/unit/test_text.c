/*
 * test_text.c: common/text.c: hex_encode and utf8_sanitize, byte for byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "text.h"

#define FFFD "\xef\xbf\xbd"

static void test_hex_encode(void **state)
{
    (void)state;
    char out[64];
    memset(out, '#', sizeof out);
    hex_encode((const unsigned char *)"", 0, out);
    assert_string_equal(out, "");

    const unsigned char all[] = {0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
    memset(out, '#', sizeof out);
    hex_encode(all, sizeof all, out);
    assert_string_equal(out, "00010f107f80abcdefff");
    assert_int_equal(out[20], '\0');
    assert_int_equal(out[21], '#'); /* writes exactly 2n+1 bytes */

    hex_encode((const unsigned char *)"abc", 3, out);
    assert_string_equal(out, "616263");
}

/* Sanitises len bytes of in and checks the exact output bytes. */
static void check(const char *in, size_t len, const char *want, size_t wantlen)
{
    size_t outlen = 12345;
    char *out = utf8_sanitize(in, len, &outlen);
    assert_non_null(out);
    assert_int_equal(outlen, wantlen);
    assert_memory_equal(out, want, wantlen);
    assert_int_equal(out[outlen], '\0');
    free(out);
}
#define CHECK(in, want) check(in, sizeof(in) - 1, want, sizeof(want) - 1)

static void test_utf8_valid(void **state)
{
    (void)state;
    CHECK("", "");
    CHECK("plain ascii\n\t~", "plain ascii\n\t~");
    CHECK("\x7f", "\x7f");
    CHECK("\xc2\x80", "\xc2\x80");                      /* U+0080, smallest 2-byte */
    CHECK("caf\xc3\xa9", "caf\xc3\xa9");                /* é */
    CHECK("\xdf\xbf", "\xdf\xbf");                      /* U+07FF */
    CHECK("\xe0\xa0\x80", "\xe0\xa0\x80");              /* U+0800, smallest 3-byte */
    CHECK("\xe2\x82\xac", "\xe2\x82\xac");              /* € */
    CHECK("\xed\x9f\xbf", "\xed\x9f\xbf");              /* U+D7FF, below surrogates */
    CHECK("\xee\x80\x80", "\xee\x80\x80");              /* U+E000, above surrogates */
    CHECK("\xef\xbf\xbf", "\xef\xbf\xbf");              /* U+FFFF */
    CHECK("\xf0\x90\x80\x80", "\xf0\x90\x80\x80");      /* U+10000 */
    CHECK("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");      /* 😀 */
    CHECK("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");      /* U+10FFFF */
    CHECK(FFFD, FFFD);
}

static void test_utf8_overlong(void **state)
{
    (void)state;
    CHECK("\xc0\xaf", FFFD FFFD);                        /* overlong '/' */
    CHECK("\xc1\xbf", FFFD FFFD);
    CHECK("\xe0\x80\xaf", FFFD FFFD FFFD);               /* overlong '/' */
    CHECK("\xe0\x9f\xbf", FFFD FFFD FFFD);               /* overlong U+07FF */
    CHECK("\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD);      /* overlong '/' */
    CHECK("\xf0\x8f\xbf\xbf", FFFD FFFD FFFD FFFD);      /* overlong U+FFFF */
    CHECK("\xc0\x80", FFFD FFFD);                        /* "modified UTF-8" NUL */
}

static void test_utf8_surrogates_and_range(void **state)
{
    (void)state;
    CHECK("\xed\xa0\x80", FFFD FFFD FFFD);               /* U+D800 */
    CHECK("\xed\xbf\xbf", FFFD FFFD FFFD);               /* U+DFFF */
    CHECK("\xed\xa0\xbd\xed\xb8\x80", FFFD FFFD FFFD FFFD FFFD FFFD); /* CESU pair */
    CHECK("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);      /* U+110000 */
    CHECK("\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD);
    CHECK("\xf8\x88\x80\x80\x80", FFFD FFFD FFFD FFFD FFFD);
    CHECK("\xfe\xff", FFFD FFFD);
}

static void test_utf8_truncated(void **state)
{
    (void)state;
    CHECK("\xe2\x82", FFFD FFFD);                         /* € cut at the end */
    CHECK("\xe2\x82" "A", FFFD FFFD "A");                 /* € cut before ASCII */
    CHECK("\xf0\x9f\x98", FFFD FFFD FFFD);
    CHECK("\xc3", FFFD);
    CHECK("ok\xc3", "ok" FFFD);
    CHECK("\xc3" "\xc3\xa9", FFFD "\xc3\xa9");           /* cut, then a valid é */
    /* The length bound is respected: a valid sequence cut by len. */
    check("\xc3\xa9", 1, FFFD, 3);
    check("x\xe2\x82\xac", 3, "x" FFFD FFFD, 7);
}

static void test_utf8_stray_bytes(void **state)
{
    (void)state;
    CHECK("\x80", FFFD);
    CHECK("\xbf", FFFD);
    CHECK("\xff", FFFD);
    CHECK("a\x80" "b\xff" "c", "a" FFFD "b" FFFD "c");
    CHECK("\x80\x80\x80", FFFD FFFD FFFD);
    /* Latin-1 text is not UTF-8. */
    CHECK("caf\xe9!", "caf" FFFD "!");
}

static void test_utf8_nul(void **state)
{
    (void)state;
    check("\0", 1, FFFD, 3);
    check("a\0b", 3, "a" FFFD "b", 5);
    check("\0\0", 2, FFFD FFFD, 6);
    /* Worst case: every byte grows to three. */
    char in[64];
    memset(in, 0xff, sizeof in);
    size_t outlen;
    char *out = utf8_sanitize(in, sizeof in, &outlen);
    assert_int_equal(outlen, 3 * sizeof in);
    for (size_t i = 0; i < sizeof in; i++)
        assert_memory_equal(out + 3 * i, FFFD, 3);
    assert_int_equal(out[outlen], '\0');
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_encode),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_overlong),
        cmocka_unit_test(test_utf8_surrogates_and_range),
        cmocka_unit_test(test_utf8_truncated),
        cmocka_unit_test(test_utf8_stray_bytes),
        cmocka_unit_test(test_utf8_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
