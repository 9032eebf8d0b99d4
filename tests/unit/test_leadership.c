/*
 * test_leadership.c: consumer/leadership.c: leadership is valid only while
 * now < (when the last successful renewal was sent) + lease - lease/4, and
 * never after it was dropped.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../consumer/consumer.h"
#include "../../consumer/leadership.h"

static void test_valid_window(void **state)
{
    (void)state;
    struct tango_config cfg = {.lease_ms = 2000};
    struct consumer c = {.cfg = &cfg};
    assert_false(leader_valid_now(&c)); /* never renewed */
    long long now = leadership_clock_ms();
    leadership_renewed(&c, now);
    assert_true(leader_valid_now(&c));
    /* sent 1400 ms ago: 1400 < 2000 - 500 still valid */
    leadership_renewed(&c, now - 1400);
    assert_true(leader_valid_now(&c));
    /* sent 1600 ms ago: inside the lease, but past the margin */
    leadership_renewed(&c, now - 1600);
    assert_false(leader_valid_now(&c));
    /* a stalled process: its last renewal is 14 s old */
    leadership_renewed(&c, now - 14000);
    assert_false(leader_valid_now(&c));
    leadership_renewed(&c, leadership_clock_ms());
    leadership_dropped(&c);
    assert_false(leader_valid_now(&c));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
