/*
 * test_build_log.c: common/build_log.c: Docker's build answer read into a
 * bounded log and a verdict, whatever the chunking.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "build_log.h"

static const char OK[] =
    "{\"stream\":\"Step 1/2 : FROM autograding_image\\n\"}\r\n"
    "{\"stream\":\"Step 2/2 : RUN echo hi\\n\"}\n"
    "{\"stream\":\"hi\\n\"}\n"
    "{\"aux\":{\"ID\":\"sha256:abcd\"}}\n"
    "{\"stream\":\"Successfully built abcd\\n\"}\n";

static const char FAIL[] =
    "{\"stream\":\"Step 2/2 : RUN false\\n\"}\n"
    "{\"errorDetail\":{\"code\":1,\"message\":\"x\"},\"error\":\"The command '/bin/sh -c false' "
    "returned a non-zero code: 1\\n\\u001b[31m\"}";

/* Feeds text in chunks of step bytes into a fresh log of limit max. */
static void feed(struct build_log *bl, const char *text, size_t step, size_t max)
{
    assert_int_equal(build_log_init(bl, max), 0);
    size_t n = strlen(text);
    for (size_t at = 0; at < n; at += step)
        build_log_feed(bl, text + at, n - at < step ? n - at : step);
    build_log_end(bl);
}

static void test_success_any_chunking(void **state)
{
    (void)state;
    for (size_t step = 1; step < sizeof OK; step += 7) {
        struct build_log bl;
        feed(&bl, OK, step, 4096);
        assert_false(bl.failed);
        assert_true(bl.got_id);
        assert_non_null(strstr(bl.text, "Step 2/2 : RUN echo hi\nhi\n"));
        build_log_free(&bl);
    }
}

static void test_failure_message_printable(void **state)
{
    (void)state;
    struct build_log bl;
    feed(&bl, FAIL, 5, 4096); /* the last line has no newline */
    assert_true(bl.failed);
    assert_false(bl.got_id);
    assert_non_null(strstr(bl.error, "returned a non-zero code: 1"));
    for (const char *p = bl.error; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    assert_non_null(strstr(bl.text, "ERROR: The command"));
    build_log_free(&bl);
}

static void test_log_limit_and_long_line(void **state)
{
    (void)state;
    size_t big = BUILD_LOG_LINE_MAX + 100;
    char *text = malloc(big + 64);
    strcpy(text, "{\"stream\":\"");
    memset(text + 11, 'a', big);
    strcpy(text + 11 + big, "\"}\n{\"stream\":\"after\\n\"}\n");
    struct build_log bl;
    feed(&bl, text, 4096, 1024);
    /* the overlong line is dropped whole, and that is said */
    assert_int_equal(strncmp(bl.text, "after\n\n[log cut", 15), 0);
    build_log_free(&bl);

    char *many = malloc(100 * 24 + 1);
    many[0] = '\0';
    for (int i = 0; i < 100; i++)
        strcat(many, "{\"stream\":\"0123456789\"}\n");
    feed(&bl, many, 13, 100);
    assert_int_equal(strncmp(bl.text, "0123456789", 10), 0);
    assert_non_null(strstr(bl.text, "[log cut"));
    assert_true(bl.len < 100 + 64);
    build_log_free(&bl);
    free(many);
    free(text);
}

static void test_not_json_kept_as_text(void **state)
{
    (void)state;
    struct build_log bl;
    feed(&bl, "plain\x01text\n", 3, 64);
    assert_string_equal(bl.text, "plain?text\n");
    assert_false(bl.failed);
    build_log_free(&bl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_any_chunking),
        cmocka_unit_test(test_failure_message_printable),
        cmocka_unit_test(test_log_limit_and_long_line),
        cmocka_unit_test(test_not_json_kept_as_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
