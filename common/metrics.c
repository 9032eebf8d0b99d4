/*
 * metrics.c: the Prometheus registry and text exposition (metrics.h).
 * A family keeps its series in a singly linked list, found by the rendered
 * label string (`a="x",b="y"`, escaped once when the series is made), which
 * is also what the renderer prints: label escaping happens in one place.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const double metrics_latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                          2.5,   5,    10,    30,   60,  120,  300, 600,
                                          1800,  3600};
const size_t metrics_latency_nbuckets =
    sizeof metrics_latency_buckets / sizeof *metrics_latency_buckets;

struct series {
    char *labels;            /* rendered label pairs, "" for none */
    double value;            /* counter / gauge */
    double sum;              /* histogram */
    unsigned long long count;
    unsigned long long *buckets; /* histogram: per bucket (not cumulative) */
    struct series *next;
};

struct metric {
    struct metrics *reg;
    enum metric_type type;
    char *name, *help;
    char *label_names[METRICS_MAX_LABELS];
    size_t nlabels;
    double bounds[METRICS_MAX_BUCKETS];
    size_t nbounds;
    struct series *series, **tail;
    size_t nseries;
    struct metric *next;
};

struct metrics {
    pthread_mutex_t lock;
    struct metric *families, **tail;
    unsigned long long dropped; /* series refused over METRICS_MAX_SERIES */
};

static const char *const type_names[] = {"counter", "gauge", "histogram"};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->families;
    return m;
}

static void series_free(struct series *s)
{
    while (s) {
        struct series *next = s->next;
        free(s->labels);
        free(s->buckets);
        free(s);
        s = next;
    }
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    for (struct metric *f = m->families, *next; f; f = next) {
        next = f->next;
        series_free(f->series);
        for (size_t i = 0; i < f->nlabels; i++)
            free(f->label_names[i]);
        free(f->name);
        free(f->help);
        free(f);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool name_ok(const char *s, bool colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || (colon && *s == ':')))
            return false;
    return true;
}

static struct metric *family_new(struct metrics *m, enum metric_type type, const char *name,
                                 const char *help, const char *const *labels,
                                 const double *buckets, size_t nbuckets)
{
    if (!m || !name_ok(name, true) || nbuckets > METRICS_MAX_BUCKETS)
        return NULL;
    size_t nlabels = 0;
    for (; labels && labels[nlabels]; nlabels++) {
        const char *l = labels[nlabels];
        if (nlabels == METRICS_MAX_LABELS || !name_ok(l, false) || strncmp(l, "__", 2) == 0 ||
            (type == METRIC_HISTOGRAM && strcmp(l, "le") == 0))
            return NULL;
    }
    for (size_t i = 0; i < nbuckets; i++)
        if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
            return NULL;
    pthread_mutex_lock(&m->lock);
    for (struct metric *f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0) {
            pthread_mutex_unlock(&m->lock);
            return NULL;
        }
    struct metric *f = calloc(1, sizeof *f);
    f->reg = m;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->nlabels = nlabels;
    for (size_t i = 0; i < nlabels; i++)
        f->label_names[i] = strdup(labels[i]);
    if (type == METRIC_HISTOGRAM) {
        memcpy(f->bounds, buckets, nbuckets * sizeof *buckets);
        f->nbounds = nbuckets;
    }
    f->tail = &f->series;
    *m->tail = f;
    m->tail = &f->next;
    pthread_mutex_unlock(&m->lock);
    return f;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *const *labels)
{
    return family_new(m, METRIC_COUNTER, name, help, labels, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *const *labels)
{
    return family_new(m, METRIC_GAUGE, name, help, labels, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *const *labels, const double *buckets,
                                 size_t nbuckets)
{
    return family_new(m, METRIC_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

/* ---------- escaping and sample lines ---------- */

static void escape(FILE *out, const char *s, bool quote)
{
    for (; s && *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

void metrics_escape_label(FILE *out, const char *s) { escape(out, s, true); }
void metrics_escape_help(FILE *out, const char *s) { escape(out, s, false); }

/* name1="v1",name2="v2" (escaped) into out. */
static void write_pairs(FILE *out, const char *const *names, size_t n, const char *const *values)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", names[i]);
        metrics_escape_label(out, values ? values[i] : NULL);
        fputc('"', out);
    }
}

/* The shortest %g form that reads back as v (as Go's client writes). */
static const char *shortest(double v, char *buf, size_t len)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static void write_value(FILE *out, double v)
{
    char buf[40];
    if (isnan(v))
        fputs("NaN", out);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", out);
    else if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
        fprintf(out, "%lld", (long long)v);
    else
        fputs(shortest(v, buf, sizeof buf), out);
}

void metrics_write_header(FILE *out, const char *name, const char *help, enum metric_type type)
{
    fprintf(out, "# HELP %s ", name);
    metrics_escape_help(out, help);
    fprintf(out, "\n# TYPE %s %s\n", name, type_names[type]);
}

void metrics_write_sample(FILE *out, const char *name, const char *const *labels,
                          const char *const *values, double v)
{
    size_t n = 0;
    while (labels && labels[n])
        n++;
    fputs(name, out);
    if (n) {
        fputc('{', out);
        write_pairs(out, labels, n, values);
        fputc('}', out);
    }
    fputc(' ', out);
    write_value(out, v);
    fputc('\n', out);
}

/* ---------- series ---------- */

/* The series for values, made if missing; NULL when over the cap. Lock held. */
static struct series *series_get(struct metric *f, const char *const *values)
{
    char *key = NULL;
    size_t keylen = 0;
    FILE *s = open_memstream(&key, &keylen);
    if (!s)
        return NULL;
    write_pairs(s, (const char *const *)f->label_names, f->nlabels, values);
    fclose(s);
    for (struct series *e = f->series; e; e = e->next)
        if (strcmp(e->labels, key) == 0) {
            free(key);
            return e;
        }
    if (f->nseries >= METRICS_MAX_SERIES) {
        f->reg->dropped++;
        free(key);
        return NULL;
    }
    struct series *e = calloc(1, sizeof *e);
    e->labels = key;
    if (f->type == METRIC_HISTOGRAM)
        e->buckets = calloc(f->nbounds + 1, sizeof *e->buckets);
    *f->tail = e;
    f->tail = &e->next;
    f->nseries++;
    return e;
}

static void update(struct metric *f, const char *const *values, double v, int op)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->reg->lock);
    struct series *e = series_get(f, values);
    if (e) {
        if (op == 0) {
            e->value += v;
        } else if (op == 1) {
            e->value = v;
        } else {
            size_t i = 0;
            while (i < f->nbounds && v > f->bounds[i])
                i++;
            e->buckets[i]++; /* i == nbounds: only +Inf */
            e->sum += v;
            e->count++;
        }
    }
    pthread_mutex_unlock(&f->reg->lock);
}

void metric_add(struct metric *f, const char *const *values, double v)
{
    if (f && (f->type == METRIC_GAUGE || (f->type == METRIC_COUNTER && v >= 0)))
        update(f, values, v, 0);
}

void metric_set(struct metric *f, const char *const *values, double v)
{
    if (f && f->type != METRIC_HISTOGRAM)
        update(f, values, v, 1);
}

void metric_observe(struct metric *f, const char *const *values, double v)
{
    if (f && f->type == METRIC_HISTOGRAM && !isnan(v))
        update(f, values, v, 2);
}

void metric_clear(struct metric *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->reg->lock);
    series_free(f->series);
    f->series = NULL;
    f->tail = &f->series;
    f->nseries = 0;
    pthread_mutex_unlock(&f->reg->lock);
}

double metric_value(struct metric *f, const char *const *values)
{
    if (!f)
        return 0;
    double v = 0;
    pthread_mutex_lock(&f->reg->lock);
    char *key = NULL;
    size_t keylen = 0;
    FILE *s = open_memstream(&key, &keylen);
    if (s) {
        write_pairs(s, (const char *const *)f->label_names, f->nlabels, values);
        fclose(s);
        for (struct series *e = f->series; e; e = e->next)
            if (strcmp(e->labels, key) == 0)
                v = f->type == METRIC_HISTOGRAM ? (double)e->count : e->value;
        free(key);
    }
    pthread_mutex_unlock(&f->reg->lock);
    return v;
}

/* ---------- rendering ---------- */

/* name{labels[,le="x"]} for one sample of a series; suffix: "_bucket" etc. */
static void sample_head(FILE *out, const struct metric *f, const char *suffix,
                        const struct series *e, const char *le)
{
    fprintf(out, "%s%s", f->name, suffix);
    if (!e->labels[0] && !le) {
        fputc(' ', out);
        return;
    }
    fprintf(out, "{%s", e->labels);
    if (le)
        fprintf(out, "%sle=\"%s\"", e->labels[0] ? "," : "", le);
    fputs("} ", out);
}

static void render_family(FILE *out, const struct metric *f)
{
    metrics_write_header(out, f->name, f->help, f->type);
    for (const struct series *e = f->series; e; e = e->next) {
        if (f->type != METRIC_HISTOGRAM) {
            sample_head(out, f, "", e, NULL);
            write_value(out, e->value);
            fputc('\n', out);
            continue;
        }
        unsigned long long cum = 0;
        for (size_t i = 0; i <= f->nbounds; i++) {
            char le[32];
            if (i < f->nbounds)
                snprintf(le, sizeof le, "%g", f->bounds[i]);
            else
                snprintf(le, sizeof le, "+Inf");
            cum += e->buckets[i];
            sample_head(out, f, "_bucket", e, le);
            fprintf(out, "%llu\n", cum);
        }
        sample_head(out, f, "_sum", e, NULL);
        write_value(out, e->sum);
        fputc('\n', out);
        sample_head(out, f, "_count", e, NULL);
        fprintf(out, "%llu\n", e->count);
    }
}

int metrics_render(struct metrics *m, FILE *out)
{
    pthread_mutex_lock(&m->lock);
    for (const struct metric *f = m->families; f; f = f->next)
        render_family(out, f);
    unsigned long long dropped = m->dropped;
    pthread_mutex_unlock(&m->lock);
    metrics_write_header(out, "tango_metrics_series_dropped_total",
                         "Label tuples dropped because a family reached its series cap",
                         METRIC_COUNTER);
    metrics_write_sample(out, "tango_metrics_series_dropped_total", NULL, NULL, (double)dropped);
    return ferror(out) ? -1 : 0;
}

void metrics_instance_label(char *out, size_t len, int port)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "unknown");
    snprintf(out, len, "%s:%d", host, port);
}

char *metrics_render_text(struct metrics *m, void (*extra)(FILE *out, void *arg), void *arg,
                          size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&buf, &n);
    if (!out)
        return NULL;
    int rc = m ? metrics_render(m, out) : 0;
    if (extra)
        extra(out, arg);
    if (ferror(out))
        rc = -1;
    fclose(out);
    if (rc) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}
