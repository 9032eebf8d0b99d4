/*
 * metrics.h: the one Prometheus exposition module (text format 0.0.4) both
 * processes use. It owns a registry of metric families (counters, gauges,
 * histograms with fixed buckets), each with a fixed list of label names and
 * one series per distinct tuple of label values, and the rendering of a
 * registry (or of one-off samples computed at scrape time, such as values
 * read from Redis) into a stdio stream: HELP and TYPE lines, label values
 * escaped as the format says (\\, \", \n), histograms as cumulative
 * _bucket{le=...} series ending with le="+Inf", then _sum and _count.
 *
 * Thread-safety: every call on a registry and its families may be made from
 * any thread (one mutex per registry); rendering takes the same mutex, so a
 * scrape sees each family as of one instant.
 *
 * Cardinality: a family holds at most METRICS_MAX_SERIES series; values for
 * a new tuple beyond that are dropped (counted in the registry's
 * tango_metrics_series_dropped_total, rendered with the registry).
 */
#ifndef TANGO_METRICS_H
#define TANGO_METRICS_H

#include <stddef.h>
#include <stdio.h>

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_BUCKETS 24
#define METRICS_MAX_SERIES 2000

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;
struct metric;

/* Bucket bounds (seconds) shared by the latency histograms: 5 ms .. 1 h. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_nbuckets;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* Registers a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]* (checked:
 * NULL otherwise, as for a name registered twice or too many labels);
 * labels is a NULL-terminated list of label names (NULL: none), each
 * [a-zA-Z_][a-zA-Z0-9_]* and not starting with "__", and never "le" for a
 * histogram. buckets: strictly ascending finite upper bounds (the +Inf
 * bucket is implicit), at most METRICS_MAX_BUCKETS. The family lives as
 * long as the registry. */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *const *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *const *labels);
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *const *labels, const double *buckets,
                                 size_t nbuckets);

/* values: one per label name, in order (NULL when the family has none; a
 * NULL value counts as ""). add: counters (v >= 0; a negative v is ignored)
 * and gauges; set: gauges, and counters mirrored from an outside source
 * (the Redis counters hash); observe: histograms. A call of the wrong kind
 * for the family is ignored. f NULL: ignored. */
void metric_add(struct metric *f, const char *const *values, double v);
void metric_set(struct metric *f, const char *const *values, double v);
void metric_observe(struct metric *f, const char *const *values, double v);
/* Drops every series of f (a gauge recomputed at each scrape). */
void metric_clear(struct metric *f);
/* The value of a counter or gauge series, or a histogram's count; 0 if the
 * series does not exist. For tests. */
double metric_value(struct metric *f, const char *const *values);

/* Writes every family of m, in registration order, to out. A family with
 * no series is written with HELP and TYPE only. Returns 0, -1 on a write
 * error. */
int metrics_render(struct metrics *m, FILE *out);

/* One-off samples written straight to a stream (values computed at scrape
 * time). Write a family's header once, then its samples; labels/values as
 * above (names not checked here: callers pass literals). */
void metrics_write_header(FILE *out, const char *name, const char *help, enum metric_type type);
void metrics_write_sample(FILE *out, const char *name, const char *const *labels,
                          const char *const *values, double v);

/* The format's escapes, for tests and callers: writes s to out escaped as a
 * label value (\\ \" \n) or as HELP text (\\ \n). */
void metrics_escape_label(FILE *out, const char *s);
void metrics_escape_help(FILE *out, const char *s);

/* Renders a registry plus extra (may be NULL: called with the stream after
 * the registry, e.g. to add values from Redis) into a malloc'd buffer
 * (*len bytes, NUL-terminated). NULL on allocation failure. */
char *metrics_render_text(struct metrics *m, void (*extra)(FILE *out, void *arg), void *arg,
                          size_t *len);

/* The instance label of this process's own series: "<hostname>:<port>". */
void metrics_instance_label(char *out, size_t len, int port);

/* The exposition format's Content-Type. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
