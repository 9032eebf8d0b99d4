/*
 * test_dockerfile_check.c: common/dockerfile_check.c, the check of a
 * Dockerfile sent to /build_image: URL sources of ADD, images of FROM,
 * COPY --from and RUN --mount, parser directives, continuations, and the
 * Dockerfile inside a context tar. Allowed images here: "base" and "mine".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dockerfile_check.h"

static bool allow(const char *image, void *arg)
{
    (void)arg;
    return strcmp(image, "base") == 0 || strcmp(image, "mine") == 0;
}

static char err[640];

static int check(const char *text)
{
    err[0] = '\0';
    return dockerfile_check(text, strlen(text), allow, NULL, err, sizeof err);
}

static void test_accepted(void **state)
{
    (void)state;
    assert_int_equal(check("FROM base\nRUN echo hi > /x\nCOPY a /a\nADD local.tar /t\n"), 0);
    assert_int_equal(check("# a comment\n\nfrom base as build\nRUN make \\\n  all\n"
                           "FROM mine\nCOPY --from=build /o /o\nCOPY --from=0 /o /p\n"), 0);
    assert_int_equal(check("FROM scratch\nCOPY x /x\n"), 0);
    assert_int_equal(check("\xef\xbb\xbf" "FROM base\r\nRUN --mount=type=cache,target=/c true\r\n"),
                     0);
    assert_int_equal(check("FROM base\nADD [\"a.txt\", \"/a\"]\nRUN echo $HOME\n"), 0);
}

static void refused(const char *text, const char *why)
{
    assert_int_equal(check(text), -1);
    if (!strstr(err, why))
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", text, err, why);
}

static void test_add_url(void **state)
{
    (void)state;
    refused("FROM base\nADD http://169.254.169.254/latest/meta-data/ /x\n",
            "line 2: ADD of a URL");
    refused("FROM base\nadd HTTPS://h/x /x\n", "ADD of a URL");
    refused("FROM base\nADD [\"http://h/x\", \"/x\"]\n", "ADD of a URL");
    refused("FROM base\nADD --chmod=644 git@github.com:a/b.git /x\n", "ADD of a URL");
    refused("FROM base\nADD github.com/a/b /x\n", "ADD of a URL");
    refused("FROM base\nADD --x=http://h/ /x\n", "ADD of a URL"); /* found by fuzz_dockerfile */
    refused("FROM base\nADD \"http\"://h/x /x\n", "ADD of a URL");
    refused("FROM base\nA\\\nDD ht\\\ntp://h/x /x\n", "line 2: ADD of a URL");
    refused("FROM base\nADD \\\n# comment inside\n\n http://h/ /x\n", "line 2: ADD of a URL");
    refused("FROM base\nARG U=http://h/\nADD $U /x\n", "variable");
    refused("FROM base\nADD [\"http:\\u002f\\u002fh\", \"/x\"]\n", "escape");
    refused("FROM base\nONBUILD ADD http://h/ /x\n", "ADD of a URL");
    refused("FROM base\nADD http://h/x", "ADD of a URL"); /* no final newline */
}

static void test_images(void **state)
{
    (void)state;
    refused("FROM other\n", "line 1: FROM \"other\" is not an image");
    refused("FROM base:latest\n", "not an image");
    refused("FROM base\nCOPY --from=other /grader /g\n", "line 2: --from \"other\"");
    refused("FROM base\nCOPY --FROM=\"other\" /g /g\n", "--from \"other\"");
    refused("FROM base\nCOPY --from=1 /g /g\n", "--from \"1\"");
    refused("FROM base\nRUN --mount=type=bind,from=other,target=/o cat /o/x\n",
            "RUN --mount from \"other\"");
    refused("FROM base\nRUN --mount=\"type=bind, FROM=other\" true\n", "mount from \"other\"");
    refused("ARG B=other\nFROM $B\n", "variable");
    refused("FROM ${B:-base}\n", "variable");
    refused("FROM base AS x\nFROM other AS base\n", "line 2: FROM \"other\"");
    refused("FROM base junk\n", "FROM must be");
    refused("FROM base\nONBUILD FROM other\n", "ONBUILD FROM");
    refused("FROM\n", "FROM needs");
    assert_int_equal(check("FROM base AS Stage1\nFROM stage1\n"), 0);
}

static void test_directives_and_junk(void **state)
{
    (void)state;
    refused("# syntax=docker/dockerfile:1\nFROM base\n", "line 1: parser directives");
    refused("#SYNTAX = evil/frontend\nFROM base\n", "parser directives");
    refused("# escape=`\nFROM base\n", "parser directives");
    refused("FROM base\n\xc2\xa0" "ADD http://h/ /x\n", "unknown instruction");
    refused("FROM base\nFETCH x\n", "unknown instruction");
    assert_int_equal(dockerfile_check("FROM base\n\0ADD http://h/ /x\n", 28, allow, NULL, err,
                                      sizeof err), -1);
    assert_non_null(strstr(err, "NUL"));
    assert_int_equal(check(""), 0);
}

/* A one-file ustar archive (name, body, type) into buf; its size. */
static size_t tar_of(char *buf, const char *name, const char *body, char type)
{
    memset(buf, 0, 2048 + 1024);
    size_t n = strlen(body);
    snprintf(buf, 100, "%s", name);
    snprintf(buf + 100, 8, "0000644");
    snprintf(buf + 108, 8, "0000000");
    snprintf(buf + 116, 8, "0000000");
    snprintf(buf + 124, 12, "%011o", (unsigned)n);
    snprintf(buf + 136, 12, "%011o", 0);
    buf[156] = type;
    memcpy(buf + 257, "ustar", 6);
    memcpy(buf + 263, "00", 2);
    memset(buf + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)buf[i];
    snprintf(buf + 148, 8, "%06o", sum);
    memcpy(buf + 512, body, n);
    return 512 + ((n + 511) / 512) * 512 + 1024;
}

static int check_tar(const char *name, const char *body, char type)
{
    static char buf[2048 + 1024];
    size_t n = tar_of(buf, name, body, type);
    err[0] = '\0';
    return dockerfile_check_tar(buf, n, allow, NULL, err, sizeof err);
}

static void test_tar(void **state)
{
    (void)state;
    assert_int_equal(check_tar("Dockerfile", "FROM base\nRUN true\n", '0'), 0);
    assert_int_equal(check_tar("./Dockerfile", "FROM other\n", '0'), -1);
    assert_non_null(strstr(err, "FROM \"other\""));
    assert_int_equal(check_tar("dockerfile", "FROM base\nADD http://h/ /x\n", '0'), -1);
    assert_non_null(strstr(err, "ADD of a URL"));
    assert_int_equal(check_tar("Dockerfile", "x", '2'), -1); /* a symlink */
    assert_non_null(strstr(err, "regular file"));
    assert_int_equal(check_tar("a/../Dockerfile", "FROM base\n", '0'), -1);
    assert_int_equal(check_tar("data.txt", "FROM base\n", '0'), -1);
    assert_non_null(strstr(err, "no Dockerfile"));
    assert_int_equal(dockerfile_check_tar("junk", 4, allow, NULL, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_add_url),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_directives_and_junk),
        cmocka_unit_test(test_tar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
