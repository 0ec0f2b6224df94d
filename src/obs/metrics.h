/*
 * metrics: the process-wide Prometheus registry (one of the two allowed
 * globals). Families are registered once at start-up; children (one label
 * value combination) are created on first use and live until exit, so a
 * caller may cache the pointer. Updates are lock-free atomics; creating a
 * child and rendering take the registry mutex. The number of children per
 * family is capped (METRICS_MAX_CHILDREN); past it updates go to a shared
 * overflow child labelled "other" so a label explosion cannot eat memory.
 */
#ifndef ORDERD_OBS_METRICS_H
#define ORDERD_OBS_METRICS_H

#include <stddef.h>

#define METRICS_MAX_LABELS 3
#define METRICS_MAX_CHILDREN 512
#define METRICS_MAX_BUCKETS 16

typedef enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
	METRIC_HISTOGRAM,
} metric_type_t;

typedef struct metric_family metric_family_t;
typedef struct metric metric_t;

/*
 * Registers a family. labels is a NULL-terminated list of label names (or
 * NULL for none); buckets (histograms only) is an ascending list of
 * n_buckets upper bounds, +Inf implied. Returns NULL only on allocation
 * failure. Families live until metrics_reset().
 */
metric_family_t *metrics_family(metric_type_t type, const char *name,
                                const char *help, const char *const *labels,
                                const double *buckets, size_t n_buckets);

/* The child for these label values, one per label of the family. */
metric_t *metrics_child0(metric_family_t *f);
metric_t *metrics_child1(metric_family_t *f, const char *value);
metric_t *metrics_child2(metric_family_t *f, const char *v1, const char *v2);

void metrics_inc(metric_t *m);
void metrics_add(metric_t *m, double v);
void metrics_set(metric_t *m, double v);
void metrics_observe(metric_t *m, double v);
double metrics_value(const metric_t *m); /* counters and gauges */

/* Called at the start of every render, to refresh gauges that are read
 * from elsewhere (e.g. order counts from the store). */
typedef void (*metrics_collect_fn)(void *arg);
void metrics_on_collect(metrics_collect_fn fn, void *arg);

/* Text exposition format 0.0.4. Returns malloc'd text the caller frees. */
char *metrics_render(void);

/* Forgets every family (tests; and at exit for leak checkers). */
void metrics_reset(void);

/* Standard latency buckets in seconds: 1 ms .. 10 s. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_n_buckets;

#endif
