/*
 * test_callback_breaker.c: consumer/callback_breaker.c: the per-host cap,
 * the breaker opening after the threshold of failures in a row, holding
 * for the open time, one probe when half-open (its success closes, its
 * failure reopens), a success resetting the count, hosts kept apart, and
 * the growing wait a full host answers with.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "../../consumer/callback_breaker.h"

static enum breaker_verdict admit(struct breakers *b, const char *host, long long now,
                                  long long *until)
{
    long long u = -1;
    enum breaker_verdict v = breakers_admit(b, host, now, &u);
    if (until)
        *until = u;
    return v;
}

static void test_per_host_cap(void **state)
{
    (void)state;
    struct breakers *b = breakers_new(2, 5, 30000);
    long long until;
    assert_int_equal(admit(b, "a:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(admit(b, "a:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(admit(b, "a:80", 100, &until), BREAKER_FULL);
    assert_true(until > 100 && until <= 100 + 2000);
    assert_int_equal(admit(b, "b:80", 0, NULL), BREAKER_SEND); /* another host is not held */
    assert_int_equal(breakers_in_flight(b), 3);
    assert_int_equal(breakers_finish(b, "a:80", true, 200), 0);
    assert_int_equal(admit(b, "a:80", 200, NULL), BREAKER_SEND);
    breakers_release(b, "a:80");
    assert_int_equal(breakers_in_flight(b), 2);
    breakers_free(b);
}

static void test_full_wait_grows(void **state)
{
    (void)state;
    struct breakers *b = breakers_new(1, 5, 30000);
    long long first, later = 0;
    assert_int_equal(admit(b, "a:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(admit(b, "a:80", 0, &first), BREAKER_FULL);
    for (int i = 0; i < 50; i++)
        assert_int_equal(admit(b, "a:80", 0, &later), BREAKER_FULL);
    assert_true(later > first);
    assert_true(later <= 2000);
    /* idle again: the wait starts short */
    breakers_finish(b, "a:80", true, 0);
    assert_int_equal(admit(b, "a:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(admit(b, "a:80", 0, &later), BREAKER_FULL);
    assert_int_equal(later, first);
    breakers_free(b);
}

static void test_opens_and_probes(void **state)
{
    (void)state;
    struct breakers *b = breakers_new(8, 3, 30000);
    long long until;
    for (int i = 0; i < 4; i++)
        assert_int_equal(admit(b, "h:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(breakers_finish(b, "h:80", false, 1000), 0);
    assert_int_equal(breakers_finish(b, "h:80", false, 1000), 0);
    assert_int_equal(breakers_finish(b, "h:80", false, 1000), 1); /* the third opens it */
    assert_int_equal(breakers_open_hosts(b, 1000), 1);
    assert_int_equal(admit(b, "h:80", 2000, &until), BREAKER_OPEN);
    assert_int_equal(until, 31000);
    assert_int_equal(admit(b, "other:80", 2000, NULL), BREAKER_SEND);
    /* a request sent before it opened fails while open: still open, no new opening */
    assert_int_equal(breakers_finish(b, "h:80", false, 5000), 0);
    assert_int_equal(admit(b, "h:80", 30999, NULL), BREAKER_OPEN);
    /* half-open: one probe, the rest wait */
    assert_int_equal(admit(b, "h:80", 31000, NULL), BREAKER_SEND);
    assert_int_equal(admit(b, "h:80", 31000, &until), BREAKER_WAIT);
    assert_true(until > 31000);
    assert_int_equal(breakers_open_hosts(b, 31000), 0);
    /* the probe fails: open again for the whole open time */
    assert_int_equal(breakers_finish(b, "h:80", false, 32000), 1);
    assert_int_equal(admit(b, "h:80", 33000, &until), BREAKER_OPEN);
    assert_int_equal(until, 62000);
    /* the next probe succeeds: closed, the cap applies again */
    assert_int_equal(admit(b, "h:80", 62000, NULL), BREAKER_SEND);
    assert_int_equal(breakers_finish(b, "h:80", true, 62500), -1);
    assert_int_equal(breakers_open_hosts(b, 62500), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(admit(b, "h:80", 63000, NULL), BREAKER_SEND);
    assert_int_equal(admit(b, "h:80", 63000, NULL), BREAKER_FULL);
    breakers_free(b);
}

static void test_success_resets(void **state)
{
    (void)state;
    struct breakers *b = breakers_new(8, 2, 30000);
    assert_int_equal(admit(b, "h:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(breakers_finish(b, "h:80", false, 0), 0);
    assert_int_equal(admit(b, "h:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(breakers_finish(b, "h:80", true, 0), 0);
    assert_int_equal(admit(b, "h:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(breakers_finish(b, "h:80", false, 0), 0); /* one in a row, not two */
    assert_int_equal(admit(b, "h:80", 0, NULL), BREAKER_SEND);
    assert_int_equal(breakers_finish(b, "h:80", false, 0), 1);
    breakers_free(b);
}

static void test_many_hosts(void **state)
{
    (void)state;
    struct breakers *b = breakers_new(1, 1, 30000);
    char host[32];
    /* hosts that come and go leave nothing behind: the table never fills */
    for (int i = 0; i < 5000; i++) {
        snprintf(host, sizeof host, "h%d:80", i);
        assert_int_equal(admit(b, host, 0, NULL), BREAKER_SEND);
        assert_int_equal(breakers_finish(b, host, true, 0), 0);
    }
    assert_int_equal(breakers_in_flight(b), 0);
    /* a full table of busy hosts makes a new one wait, never crash */
    int sent = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(host, sizeof host, "busy%d:80", i);
        long long until;
        enum breaker_verdict v = admit(b, host, 0, &until);
        sent += v == BREAKER_SEND;
        if (v != BREAKER_SEND)
            assert_true(v == BREAKER_WAIT && until > 0);
    }
    assert_true(sent >= 100 && sent < 5000);
    assert_int_equal(breakers_finish(b, "unknown:80", false, 0), 0);
    breakers_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_host_cap),
        cmocka_unit_test(test_full_wait_grows),
        cmocka_unit_test(test_opens_and_probes),
        cmocka_unit_test(test_success_resets),
        cmocka_unit_test(test_many_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
