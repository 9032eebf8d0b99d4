/*
 * test_metrics.c: common/metrics.c, the Prometheus text exposition: label
 * and HELP escaping, HELP/TYPE lines, counters and gauges, histogram
 * buckets cumulative with le="+Inf" equal to _count, _sum, refused names,
 * the series cap, and concurrent updates from several threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(struct metrics *m)
{
    size_t len = 0;
    char *text = metrics_render_text(m, NULL, NULL, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void assert_has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing %s in:\n%s", line, text);
}

static void test_escaping(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *c = metrics_counter(m, "t_escape_total", "help with \\ and\nnewline \"q\"",
                                       (const char *const[]){"path", NULL});
    assert_non_null(c);
    metric_add(c, (const char *const[]){"a\"b\\c\nd"}, 3);
    char *text = render(m);
    /* HELP: backslash and newline escaped, quotes kept as they are */
    assert_has(text, "# HELP t_escape_total help with \\\\ and\\nnewline \"q\"\n");
    assert_has(text, "# TYPE t_escape_total counter\n");
    /* label value: backslash, quote and newline escaped */
    assert_has(text, "t_escape_total{path=\"a\\\"b\\\\c\\nd\"} 3\n");
    free(text);

    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    metrics_escape_label(f, "x\\\"\n");
    fclose(f);
    assert_string_equal(buf, "x\\\\\\\"\\n");
    free(buf);
    metrics_free(m);
}

static void test_counter_gauge(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *c = metrics_counter(m, "t_requests_total", "Requests",
                                       (const char *const[]){"route", "code", NULL});
    struct metric *g = metrics_gauge(m, "t_queue", "Queue", NULL);
    metric_add(c, (const char *const[]){"/addJob", "200"}, 1);
    metric_add(c, (const char *const[]){"/addJob", "200"}, 2);
    metric_add(c, (const char *const[]){"/poll", "404"}, 1);
    metric_add(c, (const char *const[]){"/poll", "404"}, -5); /* counters never go down */
    metric_set(g, NULL, 7);
    metric_add(g, NULL, -2.5);
    assert_true(metric_value(c, (const char *const[]){"/addJob", "200"}) == 3);
    char *text = render(m);
    assert_has(text, "t_requests_total{route=\"/addJob\",code=\"200\"} 3\n");
    assert_has(text, "t_requests_total{route=\"/poll\",code=\"404\"} 1\n");
    assert_has(text, "# TYPE t_queue gauge\nt_queue 4.5\n");
    /* registration order */
    assert_true(strstr(text, "t_requests_total") < strstr(text, "t_queue"));
    free(text);
    metric_clear(g);
    text = render(m);
    assert_has(text, "# TYPE t_queue gauge\n");
    assert_null(strstr(text, "t_queue 4.5"));
    free(text);
    metrics_free(m);
}

static void test_histogram(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const double b[] = {0.1, 1, 2.5};
    struct metric *h = metrics_histogram(m, "t_latency_seconds", "Latency",
                                         (const char *const[]){"phase", NULL}, b, 3);
    assert_non_null(h);
    const char *v[] = {"run"};
    metric_observe(h, v, 0.05);  /* <= 0.1 */
    metric_observe(h, v, 0.1);   /* le is inclusive */
    metric_observe(h, v, 2);     /* <= 2.5 */
    metric_observe(h, v, 99);    /* only +Inf */
    char *text = render(m);
    assert_has(text, "# TYPE t_latency_seconds histogram\n");
    assert_has(text, "t_latency_seconds_bucket{phase=\"run\",le=\"0.1\"} 2\n");
    assert_has(text, "t_latency_seconds_bucket{phase=\"run\",le=\"1\"} 2\n");
    assert_has(text, "t_latency_seconds_bucket{phase=\"run\",le=\"2.5\"} 3\n");
    assert_has(text, "t_latency_seconds_bucket{phase=\"run\",le=\"+Inf\"} 4\n");
    assert_has(text, "t_latency_seconds_sum{phase=\"run\"} 101.15\n");
    assert_has(text, "t_latency_seconds_count{phase=\"run\"} 4\n");
    /* buckets in ascending order, +Inf last, then sum and count */
    const char *p1 = strstr(text, "le=\"0.1\""), *p2 = strstr(text, "le=\"+Inf\""),
               *p3 = strstr(text, "_sum"), *p4 = strstr(text, "_count");
    assert_true(p1 < p2 && p2 < p3 && p3 < p4);
    free(text);

    /* without labels: only le */
    struct metric *h2 = metrics_histogram(m, "t_plain_seconds", "Plain", NULL, b, 3);
    metric_observe(h2, NULL, 3);
    text = render(m);
    assert_has(text, "t_plain_seconds_bucket{le=\"2.5\"} 0\n");
    assert_has(text, "t_plain_seconds_bucket{le=\"+Inf\"} 1\n");
    assert_has(text, "t_plain_seconds_sum 3\n");
    free(text);
    metrics_free(m);
}

static void test_refused(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const double b[] = {1, 2};
    const double bad[] = {2, 1};
    assert_null(metrics_counter(m, "9starts_with_digit", "", NULL));
    assert_null(metrics_counter(m, "has-dash", "", NULL));
    assert_null(metrics_counter(m, "ok_total", "", (const char *const[]){"__reserved", NULL}));
    assert_null(metrics_counter(m, "ok_total", "", (const char *const[]){"a:b", NULL}));
    assert_null(metrics_histogram(m, "h_seconds", "", (const char *const[]){"le", NULL}, b, 2));
    assert_null(metrics_histogram(m, "h_seconds", "", NULL, bad, 2));
    assert_non_null(metrics_counter(m, "ok_total", "", NULL));
    assert_null(metrics_gauge(m, "ok_total", "", NULL)); /* twice */
    /* wrong kind of call: ignored */
    struct metric *g = metrics_gauge(m, "g", "", NULL);
    metric_observe(g, NULL, 1);
    assert_true(metric_value(g, NULL) == 0);
    metrics_free(m);
}

static void test_series_cap(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    struct metric *c = metrics_counter(m, "t_many_total", "", (const char *const[]){"k", NULL});
    char v[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 5; i++) {
        snprintf(v, sizeof v, "%d", i);
        metric_add(c, (const char *const[]){v}, 1);
    }
    char *text = render(m);
    assert_has(text, "tango_metrics_series_dropped_total 5\n");
    assert_null(strstr(text, "k=\"2004\""));
    free(text);
    metrics_free(m);
}

/* Samples computed at scrape time (the Redis values) and the registry's
 * render callback. */
static void extra(FILE *out, void *arg)
{
    (void)arg;
    metrics_write_header(out, "t_queue_length", "Queued\njobs", METRIC_GAUGE);
    metrics_write_sample(out, "t_queue_length", (const char *const[]){"class", "group", NULL},
                         (const char *const[]){"low", "c\"1"}, 3);
    metrics_write_sample(out, "t_plain", NULL, NULL, 0.25);
    metrics_write_sample(out, "t_inf", NULL, NULL, INFINITY);
}

static void test_one_off(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    metrics_counter(m, "t_first_total", "", NULL);
    size_t len = 0;
    char *text = metrics_render_text(m, extra, NULL, &len);
    assert_non_null(text);
    assert_has(text, "# HELP t_queue_length Queued\\njobs\n# TYPE t_queue_length gauge\n");
    assert_has(text, "t_queue_length{class=\"low\",group=\"c\\\"1\"} 3\n");
    assert_has(text, "\nt_plain 0.25\n");
    assert_has(text, "\nt_inf +Inf\n");
    assert_true(strstr(text, "t_first_total") < strstr(text, "t_queue_length")); /* registry first */
    free(text);
    char inst[300];
    metrics_instance_label(inst, sizeof inst, 9101);
    assert_non_null(strstr(inst, ":9101"));
    assert_true(strlen(inst) > strlen(":9101"));
    metrics_free(m);
}

struct hammer {
    struct metric *c, *h;
};

static void *hammer_main(void *arg)
{
    struct hammer *hm = arg;
    for (int i = 0; i < 10000; i++) {
        metric_add(hm->c, (const char *const[]){i % 2 ? "a" : "b"}, 1);
        metric_observe(hm->h, NULL, 0.5);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct metrics *m = metrics_new();
    const double b[] = {1};
    struct hammer hm = {metrics_counter(m, "t_par_total", "", (const char *const[]){"k", NULL}),
                        metrics_histogram(m, "t_par_seconds", "", NULL, b, 1)};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer_main, &hm);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(metric_value(hm.c, (const char *const[]){"a"}) == 20000);
    assert_true(metric_value(hm.c, (const char *const[]){"b"}) == 20000);
    assert_true(metric_value(hm.h, NULL) == 40000);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),   cmocka_unit_test(test_counter_gauge),
        cmocka_unit_test(test_histogram),  cmocka_unit_test(test_refused),
        cmocka_unit_test(test_series_cap), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_one_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
