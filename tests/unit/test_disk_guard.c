/*
 * test_disk_guard.c: consumer/disk_guard.c: a path below min_free_mb is
 * low (and leasing waits) until the floor is met again; 0 turns it off; a
 * path that cannot be read does not count as low. (That leasing resumes
 * by itself when space comes back: tests/integration/test_fault_disk_full.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../consumer/consumer.h"
#include "../../consumer/disk_guard.h"
#include "clock.h"

/* Starts a guard on courselabs with floor mb, lets it sample once. */
static void start(struct consumer *c, struct tango_config *cfg, const char *dir, int mb)
{
    cfg->courselabs = (char *)dir;
    cfg->min_free_mb = mb;
    c->cfg = cfg;
    assert_int_equal(disk_guard_start(c), 0);
    clock_sleep_ms(DISK_GUARD_PERIOD_MS / 5);
}

static void test_floor(void **state)
{
    (void)state;
    struct tango_config cfg = {0};
    struct consumer c = {0};
    start(&c, &cfg, "/tmp", 1048576); /* 1 TiB: surely below */
    assert_true(disk_guard_low(&c));
    assert_false(disk_guard_lease_ok(&c));
    disk_guard_stop(&c);

    start(&c, &cfg, "/tmp", 1); /* 1 MiB: surely met */
    assert_false(disk_guard_low(&c));
    assert_true(disk_guard_lease_ok(&c));
    disk_guard_stop(&c);

    start(&c, &cfg, "/tmp", 0); /* off */
    assert_false(disk_guard_low(&c));
    assert_true(disk_guard_lease_ok(&c));
    disk_guard_stop(&c);

    start(&c, &cfg, "/nonexistent/tango-disk-guard", 1048576);
    assert_false(disk_guard_low(&c));
    assert_true(disk_guard_lease_ok(&c));
    disk_guard_stop(&c);
    disk_guard_stop(&c); /* stopping twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_floor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
