/*
 * test_vm_spec.c: consumer/vm_spec.c, what instance a job needs and
 * whether a ready (warm) instance fits it: a job without limits gets the
 * config's defaults, each limit it names is its own; the record's instance
 * (name, id, host) is added only by vm_spec_of_record; an instance fits
 * only when the image and every limit are equal (a warm pool instance made
 * with the defaults must not serve a job asking for other cores, memory,
 * disk, network or VM type), and names, ids, hosts do not matter.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../consumer/vm_spec.h"

static struct tango_config cfg = {
    .default_cores = 1, .default_memory_mb = 512, .disk_limit_mb = 1024, .pids_limit = 256,
};

static void test_defaults(void **state)
{
    (void)state;
    struct job job = {.image = "img"};
    struct vmms_vm vm;
    memset(&vm, 0x5a, sizeof vm); /* zeroed by the call */
    vm_spec_of_job(&cfg, &job, &vm);
    assert_string_equal(vm.image, "img");
    assert_int_equal(vm.cores, 1);
    assert_int_equal(vm.memory_mb, 512);
    assert_int_equal(vm.disk_mb, 1024);
    assert_int_equal(vm.pids_limit, 256);
    assert_true(vm.network);
    assert_string_equal(vm.instance_type, "");
    assert_string_equal(vm.name, "");
    assert_string_equal(vm.id, "");
    assert_null(vm.priv);
}

static void test_job_limits(void **state)
{
    (void)state;
    struct job job = {.image = "img", .cores = 2, .memory_mb = 300, .disk_mb = 200,
                      .disable_network = true, .instance_type = "t3.small",
                      .vm_name = "prefix-j1-1", .vm_id = "abc"};
    struct vmms_vm vm;
    vm_spec_of_job(&cfg, &job, &vm);
    assert_int_equal(vm.cores, 2);
    assert_int_equal(vm.memory_mb, 300);
    assert_int_equal(vm.disk_mb, 200);
    assert_int_equal(vm.pids_limit, 256);
    assert_false(vm.network);
    assert_string_equal(vm.instance_type, "t3.small");
    assert_string_equal(vm.name, ""); /* a new instance is named by the worker */

    struct vmms_vm rec;
    vm_spec_of_record(&cfg, &job, &rec);
    assert_string_equal(rec.name, "prefix-j1-1");
    assert_string_equal(rec.id, "abc");
    assert_string_equal(rec.host, "");
    assert_int_equal(rec.disk_mb, 200);
    assert_int_equal(rec.memory_mb, 300);
}

static void test_fits_every_limit(void **state)
{
    (void)state;
    struct job plain = {.image = "img"};
    struct vmms_vm warm, want;
    vm_spec_of_job(&cfg, &plain, &warm);
    snprintf(warm.name, sizeof warm.name, "prefix-p-1");
    snprintf(warm.id, sizeof warm.id, "ff00");
    snprintf(warm.host, sizeof warm.host, "h1");
    vm_spec_of_job(&cfg, &plain, &want);
    assert_true(vm_spec_fits(&warm, &want)); /* names, ids, hosts do not matter */

    struct job other[] = {
        {.image = "img2"},
        {.image = "img", .cores = 2},
        {.image = "img", .memory_mb = 300},
        {.image = "img", .disk_mb = 200},
        {.image = "img", .disable_network = true},
        {.image = "img", .instance_type = "t3.small"},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        vm_spec_of_job(&cfg, &other[i], &want);
        if (vm_spec_fits(&warm, &want))
            fail_msg("job %zu's spec fits an instance with other limits", i);
    }
    /* a job naming the defaults is the same as one naming none */
    struct job same = {.image = "img", .cores = 1, .memory_mb = 512, .disk_mb = 1024};
    vm_spec_of_job(&cfg, &same, &want);
    assert_true(vm_spec_fits(&warm, &want));
    want.pids_limit = 128;
    assert_false(vm_spec_fits(&warm, &want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_job_limits),
        cmocka_unit_test(test_fits_every_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
