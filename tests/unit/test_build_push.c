/* test_build_push.c: config key build_push_to (common/build_push.c): its
 * check, a build's pushed name, and which references stand for a build. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "build_push.h"

static void test_check(void **state)
{
    (void)state;
    json_t *regs = json_pack("{s:{}}", "reg.example.edu:5000");
    char err[512];
    assert_int_equal(build_push_check("", regs, err, sizeof err), 0);
    assert_int_equal(build_push_check("reg.example.edu:5000/courses", regs, err, sizeof err), 0);
    assert_int_equal(build_push_check("reg.example.edu:5000/a/b", regs, err, sizeof err), 0);
    assert_int_equal(build_push_check("other.edu:5000/courses", regs, err, sizeof err), -1);
    assert_non_null(strstr(err, "not listed in config key \"registries\""));
    const char *bad[] = {"courses", "reg.example.edu:5000/Courses", "reg.example.edu:5000/c:v1",
                         "reg.example.edu:5000/c@sha256:00", "reg.example.edu:5000/../x",
                         "reg.example.edu:5000/c/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(build_push_check(bad[i], regs, err, sizeof err), -1);
        assert_non_null(strstr(err, "host[:port]/prefix"));
    }
    json_decref(regs);
}

static void test_target(void **state)
{
    (void)state;
    char repo[256], tag[129];
    assert_int_equal(build_push_target("r.edu:5000/c", "datalab:v3", repo, sizeof repo, tag,
                                       sizeof tag), 0);
    assert_string_equal(repo, "r.edu:5000/c/datalab");
    assert_string_equal(tag, "v3");
    assert_int_equal(build_push_target("r.edu:5000/c", "datalab", repo, sizeof repo, tag,
                                       sizeof tag), 0);
    assert_string_equal(tag, "latest");
    char longname[300];
    memset(longname, 'a', 250);
    longname[250] = '\0';
    assert_int_equal(build_push_target("r.edu:5000/c", longname, repo, sizeof repo, tag,
                                       sizeof tag), -1);
}

static void test_under(void **state)
{
    (void)state;
    struct image_ref ref;
    char local[256];
    assert_int_equal(image_ref_parse("r.edu:5000/c/datalab:v3", &ref), 0);
    assert_true(build_push_under("r.edu:5000/c", &ref, local, sizeof local));
    assert_string_equal(local, "datalab");
    assert_false(build_push_under("", &ref, local, sizeof local));
    assert_false(build_push_under("r.edu:5000/cc", &ref, local, sizeof local));
    assert_false(build_push_under("r.edu:5000/c/datalab", &ref, local, sizeof local));
    assert_int_equal(image_ref_parse("r.edu:5000/cc/datalab", &ref), 0);
    assert_false(build_push_under("r.edu:5000/c", &ref, local, sizeof local));
    assert_int_equal(image_ref_parse("datalab:v3", &ref), 0);
    assert_false(build_push_under("r.edu:5000/c", &ref, local, sizeof local));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_target),
        cmocka_unit_test(test_under),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
