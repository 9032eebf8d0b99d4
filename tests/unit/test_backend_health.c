/*
 * test_backend_health.c: consumer/backend_health.c with a fake back end
 * (its ping answers what the test says) and no Redis (the outage record's
 * writes fail and are only logged): which failed steps count as the back
 * end's outage (the probe decides; without a probe only VMMS_UNAVAILABLE
 * does), that an outage pauses leasing (backend_is_down) and is shown in
 * the heartbeat, and that the probe thread ends it by itself once ping
 * answers again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../consumer/backend_health.h"
#include "clock.h"

static atomic_int ping_answer; /* what the fake ping returns */
static atomic_int pings;

static int fake_ping(void *ctx, int timeout_ms, char *err, size_t errlen)
{
    (void)ctx, (void)timeout_ms;
    atomic_fetch_add(&pings, 1);
    int st = atomic_load(&ping_answer);
    if (st != VMMS_OK)
        snprintf(err, errlen, "fake: no answer");
    return st;
}

static struct vmms_ops ops_with_ping = {.abi = VMMS_ABI_VERSION, .name = "fake",
                                        .ping = fake_ping};
static struct vmms_ops ops_without_ping = {.abi = VMMS_ABI_VERSION, .name = "fake"};

struct fixture {
    struct tango_config cfg;
    struct consumer c;
};

static int setup(void **state, const struct vmms_ops *ops)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    char err[256];
    char *env[] = {"TANGO_REDIS_URL=redis://127.0.0.1:1/0", NULL}; /* nobody listens */
    if (config_load(&f.cfg, NULL, env, err, sizeof err))
        return -1;
    f.cfg.redis_timeout_ms = 100;
    f.c.cfg = &f.cfg;
    f.c.ops = ops;
    atomic_store(&ping_answer, VMMS_OK);
    atomic_store(&pings, 0);
    if (backend_health_start(&f.c))
        return -1;
    *state = &f;
    return 0;
}

static int setup_ping(void **state) { return setup(state, &ops_with_ping); }
static int setup_noping(void **state) { return setup(state, &ops_without_ping); }

static int teardown(void **state)
{
    struct fixture *f = *state;
    backend_health_stop(&f->c);
    config_free(&f->cfg);
    return 0;
}

/* Waits up to ms for the back end to be marked up again. */
static bool wait_up(struct consumer *c, long long ms)
{
    long long end = clock_mono_ms() + ms;
    while (backend_is_down(c) && clock_mono_ms() < end)
        usleep(10 * 1000);
    return !backend_is_down(c);
}

/* With a probe: the probe decides, whatever the step returned. */
static void test_probe_decides(void **state)
{
    struct fixture *f = *state;
    struct consumer *c = &f->c;
    assert_false(backend_unavailable(c, VMMS_OK, ""));
    assert_int_equal(atomic_load(&pings), 0); /* success needs no probe */
    /* ping answers: a 5xx-like VMMS_UNAVAILABLE or any error is the job's */
    assert_false(backend_unavailable(c, VMMS_UNAVAILABLE, "HTTP 503"));
    assert_false(backend_unavailable(c, VMMS_ERR, "bad tarball"));
    assert_false(backend_is_down(c));
    /* ping fails: even a plain VMMS_ERR is the back end's outage */
    atomic_store(&ping_answer, VMMS_UNAVAILABLE);
    assert_true(backend_unavailable(c, VMMS_ERR, "event stream ended"));
    assert_true(backend_is_down(c));
    json_t *info = json_object();
    backend_health_info(c, info);
    json_t *b = json_object_get(info, "backend");
    assert_true(json_is_false(json_object_get(b, "up")));
    assert_string_equal(json_string_value(json_object_get(b, "reason")), "fake: no answer");
    assert_true(json_number_value(json_object_get(b, "since")) > 0);
    json_decref(info);
    /* the probe thread keeps asking, and ends the outage once ping answers */
    int before = atomic_load(&pings);
    long long t0 = clock_mono_ms();
    while (atomic_load(&pings) < before + 2 && clock_mono_ms() - t0 < 5000)
        usleep(10 * 1000);
    assert_true(atomic_load(&pings) >= before + 2);
    assert_true(backend_is_down(c));
    atomic_store(&ping_answer, VMMS_OK);
    assert_true(wait_up(c, 6000)); /* the backoff is at most 5 s */
    info = json_object();
    backend_health_info(c, info);
    assert_true(json_is_true(json_object_get(json_object_get(info, "backend"), "up")));
    json_decref(info);
}

/* Without a probe: only VMMS_UNAVAILABLE means an outage, and the back end
 * is tried again after the backoff's first delay. */
static void test_without_probe(void **state)
{
    struct consumer *c = &((struct fixture *)*state)->c;
    assert_false(backend_unavailable(c, VMMS_ERR, "job's failure"));
    assert_false(backend_unavailable(c, VMMS_NOT_FOUND, "gone"));
    assert_false(backend_is_down(c));
    assert_true(backend_unavailable(c, VMMS_UNAVAILABLE, "EC2 API: couldn't connect"));
    assert_true(backend_is_down(c));
    assert_true(wait_up(c, 2000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe_decides, setup_ping, teardown),
        cmocka_unit_test_setup_teardown(test_without_probe, setup_noping, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
