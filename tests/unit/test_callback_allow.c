/*
 * test_callback_allow.c: common/callback_allow.c: the default refusals
 * (loopback, link-local, unspecified, localhost, in every spelling the
 * resolver accepts), allowlists of hosts, domains, addresses and networks,
 * bad entries, and the send-time resolution with its pinned address.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "callback_allow.h"

static struct callback_policy *policy(char **entries, size_t n)
{
    struct callback_policy *p = NULL;
    char err[256];
    if (callback_policy_new(entries, n, &p, err, sizeof err))
        fail_msg("policy refused: %s", err);
    return p;
}

static void expect(const struct callback_policy *p, const char *url, int want)
{
    char why[300] = "";
    int got = callback_check_url(p, url, why, sizeof why);
    if (got != want)
        fail_msg("%s: got %d (%s), want %d", url, got, why, want);
    if (got && !strstr(why, "callback_allow") && !strstr(why, "host"))
        fail_msg("%s: reason \"%s\" says neither what nor how to allow it", url, why);
}

static void test_default_refusals(void **state)
{
    (void)state;
    struct callback_policy *p = policy(NULL, 0);
    static const char *const refused[] = {
        "http://127.0.0.1/cb", "http://127.0.0.1:8080/cb", "http://127.9.9.9/", "http://127.1/",
        "http://2130706433/", "http://0x7f000001/", "http://[::1]:3000/", "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://0.0.0.0:3000/",
        "http://0/", "http://[::]/", "http://localhost:3000/", "http://LOCALHOST./",
        "http://api.localhost/", "https://127.0.0.1/", NULL};
    for (int i = 0; refused[i]; i++)
        expect(p, refused[i], -1);
    static const char *const allowed[] = {
        "https://autolab.example.edu/courses/x?key=1", "http://10.1.2.3/cb", "http://172.17.0.1/",
        "http://[2001:db8::1]:8443/", "http://128.0.0.1/", "http://169.255.0.1/", NULL};
    for (int i = 0; allowed[i]; i++)
        expect(p, allowed[i], 0);
    expect(p, "http://", -1);
    callback_policy_free(p);
}

static void test_allowlist(void **state)
{
    (void)state;
    char *entries[] = {"127.0.0.1", "10.0.0.0/8", "Autolab.Example.EDU", ".cs.example.org",
                       "fd00::/8"};
    struct callback_policy *p = policy(entries, 5);
    expect(p, "http://127.0.0.1:9000/cb", 0);     /* named */
    expect(p, "http://127.0.0.2/cb", -1);         /* loopback, not named */
    expect(p, "http://10.200.3.4/", 0);
    expect(p, "http://11.0.0.1/", -1);
    expect(p, "http://169.254.169.254/", -1);
    expect(p, "https://autolab.example.edu/x", 0);
    expect(p, "https://grader.cs.example.org/", 0);
    expect(p, "https://cs.example.org/", 0 /* a name: its address decides later */);
    expect(p, "http://[fd12::1]/", 0);
    expect(p, "http://[fe80::1]/", -1);
    callback_policy_free(p);

    /* Names only: any other name is refused at once. */
    char *names[] = {"autolab.example.edu", ".example.org"};
    p = policy(names, 2);
    expect(p, "https://autolab.example.edu/", 0);
    expect(p, "https://a.b.example.org/", 0);
    expect(p, "https://example.org/", -1);
    expect(p, "https://evil.example/", -1);
    expect(p, "http://127.0.0.1/", -1);
    expect(p, "http://localhost/", -1);
    callback_policy_free(p);
}

static void test_bad_entries(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "a b", "host/8",
                                      "http://x/", "10.0.0.0/8x", NULL};
    for (int i = 0; bad[i]; i++) {
        char *e[] = {(char *)bad[i]};
        struct callback_policy *p = NULL;
        char err[256] = "";
        if (callback_policy_new(e, 1, &p, err, sizeof err) != -1)
            fail_msg("entry \"%s\" accepted", bad[i]);
        assert_non_null(strstr(err, "callback_allow"));
    }
}

static void test_resolve_and_pin(void **state)
{
    (void)state;
    char pin[CALLBACK_PIN_MAX], why[300];
    /* Default policy: "localhost" is refused before any lookup. */
    struct callback_policy *p = policy(NULL, 0);
    assert_int_equal(callback_resolve(p, "http://localhost:3000/", pin, why, sizeof why), -1);
    /* An IP literal needs no pin. */
    assert_int_equal(callback_resolve(p, "http://10.1.2.3:81/", pin, why, sizeof why), 0);
    assert_string_equal(pin, "");
    callback_policy_free(p);

    /* A name allowed by address is judged on what it resolves to: with only
     * 10/8 allowed, localhost (127.0.0.1 / ::1) is refused at send time,
     * even though addJob could not tell. */
    char *nets[] = {"10.0.0.0/8"};
    p = policy(nets, 1);
    assert_int_equal(callback_check_url(p, "http://localhost:3000/", why, sizeof why), 0);
    assert_int_equal(callback_resolve(p, "http://localhost:3000/", pin, why, sizeof why), -1);
    assert_non_null(strstr(why, "refused addresses"));
    callback_policy_free(p);

    /* Allowed: the pin names the address that was judged. */
    char *local[] = {"127.0.0.1"};
    p = policy(local, 1);
    assert_int_equal(callback_resolve(p, "http://localhost:3000/cb", pin, why, sizeof why), 0);
    assert_string_equal(pin, "localhost:3000:127.0.0.1");
    assert_int_equal(callback_resolve(p, "https://localhost/cb", pin, why, sizeof why), 0);
    assert_string_equal(pin, "localhost:443:127.0.0.1");
    /* A name that does not resolve: try again later. */
    assert_int_equal(callback_resolve(p, "http://no-such-host.invalid/", pin, why, sizeof why), 1);
    callback_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_refusals),
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_resolve_and_pin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
