/*
 * metrics: the process-wide Prometheus registry (see metrics.h). One mutex
 * (registry_lock) guards the family list, every family's child table and
 * the collect callbacks; values themselves are C11 atomics so the hot path
 * (metrics_inc and friends on a cached child) never takes a lock.
 *
 * Doubles are stored as their IEEE-754 bit pattern in an atomic uint64 and
 * updated with a compare-and-swap loop, since C11 has no portable atomic
 * double add. Histogram buckets hold per-bucket (not cumulative) counts; the
 * renderer accumulates them, and derives _count from the same snapshot so
 * that the +Inf bucket and _count always agree.
 */
#include "obs/metrics.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define MAX_FAMILIES 256 /* far more than orderd registers */
#define MAX_COLLECT 8
#define CHILD_HASH 64 /* chains per family; children are few */
#define MAX_NAME 128

struct metric {
	metric_family_t *fam;             /* immutable */
	char *values[METRICS_MAX_LABELS]; /* immutable, owned */
	_Atomic uint64_t bits;     /* counter/gauge value as double bits */
	_Atomic uint64_t sum_bits; /* histogram sum as double bits */
	_Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* last is +Inf */
	struct metric *next_hash;                          /* registry_lock */
	struct metric *next_order; /* registry_lock: creation order */
};

struct metric_family {
	metric_type_t type;                  /* immutable */
	char *name;                          /* immutable */
	char *help;                          /* immutable */
	char *labels[METRICS_MAX_LABELS];    /* immutable */
	size_t n_labels;                     /* immutable */
	double buckets[METRICS_MAX_BUCKETS]; /* immutable */
	size_t n_buckets;                    /* immutable */
	metric_t *hash[CHILD_HASH];          /* registry_lock */
	metric_t *first, *last;              /* registry_lock */
	size_t n_children;                   /* registry_lock */
	struct metric_family *next;          /* registry_lock */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static metric_family_t *families_first, *families_last; /* registry_lock */
static size_t n_families;                               /* registry_lock */
static struct {
	metrics_collect_fn fn;
	void *arg;
} collectors[MAX_COLLECT];  /* registry_lock */
static size_t n_collectors; /* registry_lock */

const double metrics_latency_buckets[] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const size_t metrics_latency_n_buckets =
    sizeof metrics_latency_buckets / sizeof metrics_latency_buckets[0];

static uint64_t dbl_bits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
	return b;
}

static double bits_dbl(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof v);
	return v;
}

static void atomic_add_dbl(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(
	    p, &old, dbl_bits(bits_dbl(old) + v), memory_order_relaxed,
	    memory_order_relaxed))
		;
}

static void family_free(metric_family_t *f)
{
	metric_t *m = f->first;
	while (m) {
		metric_t *next = m->next_order;
		for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
			free(m->values[i]);
		free(m);
		m = next;
	}
	for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	free(f);
}

/* Compares an existing family with a new registration of the same name. */
static bool family_matches(const metric_family_t *f, metric_type_t type,
                           const char *const *labels)
{
	if (f->type != type)
		return false;
	size_t n = 0;
	while (labels && labels[n]) {
		if (n >= f->n_labels || strcmp(labels[n], f->labels[n]) != 0)
			return false;
		n++;
	}
	return n == f->n_labels;
}

static uint32_t values_hash(const metric_family_t *f, const char *const *values)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < f->n_labels; i++) {
		for (const char *p = values[i]; *p; p++) {
			h ^= (unsigned char)*p;
			h *= 16777619u;
		}
		h ^= 0xff; /* separator: ("a","b") != ("ab","") */
		h *= 16777619u;
	}
	return h;
}

static metric_t *child_find(metric_family_t *f, const char *const *values,
                            uint32_t h)
{
	for (metric_t *m = f->hash[h % CHILD_HASH]; m; m = m->next_hash) {
		size_t i = 0;
		while (i < f->n_labels && strcmp(m->values[i], values[i]) == 0)
			i++;
		if (i == f->n_labels)
			return m;
	}
	return NULL;
}

/* Creates and links a child; the caller holds registry_lock. */
static metric_t *child_create(metric_family_t *f, const char *const *values,
                              uint32_t h)
{
	metric_t *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->fam = f;
	for (size_t i = 0; i < f->n_labels; i++) {
		m->values[i] = strdup(values[i]);
		if (!m->values[i])
			goto fail_values;
	}
	m->next_hash = f->hash[h % CHILD_HASH];
	f->hash[h % CHILD_HASH] = m;
	if (f->last)
		f->last->next_order = m;
	else
		f->first = m;
	f->last = m;
	f->n_children++;
	return m;

fail_values:
	for (size_t i = 0; i < f->n_labels; i++)
		free(m->values[i]);
	free(m);
	return NULL;
}

static metric_t *child_get_locked(metric_family_t *f, const char *const *values)
{
	uint32_t h = values_hash(f, values);
	metric_t *m = child_find(f, values, h);
	if (m)
		return m;
	if (f->n_children >= METRICS_MAX_CHILDREN) {
		/* Past the cap every new combination shares one child whose
		 * values are all "other" (created once, beyond the cap). */
		const char *other[METRICS_MAX_LABELS] = {"other", "other",
		                                         "other"};
		h = values_hash(f, other);
		m = child_find(f, other, h);
		if (m)
			return m;
		return child_create(f, other, h);
	}
	return child_create(f, values, h);
}

metric_family_t *metrics_family(metric_type_t type, const char *name,
                                const char *help, const char *const *labels,
                                const double *buckets, size_t n_buckets)
{
	assert(name && *name && strlen(name) < MAX_NAME);
	size_t n_labels = 0;
	while (labels && labels[n_labels])
		n_labels++;
	assert(n_labels <= METRICS_MAX_LABELS);
	assert(type != METRIC_HISTOGRAM ||
	       (buckets && n_buckets > 0 && n_buckets <= METRICS_MAX_BUCKETS));
	if (n_labels > METRICS_MAX_LABELS)
		return NULL;
	if (type != METRIC_HISTOGRAM)
		n_buckets = 0;
	if (n_buckets > METRICS_MAX_BUCKETS)
		return NULL;

	metric_family_t *f = NULL;
	pthread_mutex_lock(&registry_lock);
	for (metric_family_t *e = families_first; e; e = e->next) {
		if (strcmp(e->name, name) == 0) {
			/* Idempotent: modules each register what they use. A
			 * clash in type or labels is a programming error. */
			f = family_matches(e, type, labels) ? e : NULL;
			goto unlock;
		}
	}
	if (n_families >= MAX_FAMILIES)
		goto unlock;
	f = calloc(1, sizeof *f);
	if (!f)
		goto unlock;
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	if (!f->name || !f->help)
		goto fail_family;
	for (size_t i = 0; i < n_labels; i++) {
		f->labels[i] = strdup(labels[i]);
		if (!f->labels[i])
			goto fail_family;
	}
	f->n_labels = n_labels;
	for (size_t i = 0; i < n_buckets; i++) {
		assert(i == 0 || buckets[i] > buckets[i - 1]);
		f->buckets[i] = buckets[i];
	}
	f->n_buckets = n_buckets;
	/* A family without labels has exactly one child: create it now so
	 * the series shows up (as 0) before its first update. */
	if (n_labels == 0 && !child_get_locked(f, NULL))
		goto fail_family;
	if (families_last)
		families_last->next = f;
	else
		families_first = f;
	families_last = f;
	n_families++;
	goto unlock;

fail_family:
	family_free(f);
	f = NULL;
unlock:
	pthread_mutex_unlock(&registry_lock);
	return f;
}

/* The child for these label values (as many as the family has labels). */
static metric_t *metrics_child(metric_family_t *f, const char *const *values)
{
	if (!f)
		return NULL;
	const char *v[METRICS_MAX_LABELS] = {"", "", ""};
	for (size_t i = 0; i < f->n_labels; i++)
		if (values && values[i])
			v[i] = values[i];
	pthread_mutex_lock(&registry_lock);
	metric_t *m = child_get_locked(f, v);
	pthread_mutex_unlock(&registry_lock);
	return m;
}

metric_t *metrics_child0(metric_family_t *f)
{
	return metrics_child(f, NULL);
}

metric_t *metrics_child1(metric_family_t *f, const char *value)
{
	const char *v[1] = {value};
	return metrics_child(f, v);
}

metric_t *metrics_child2(metric_family_t *f, const char *v1, const char *v2)
{
	const char *v[2] = {v1, v2};
	return metrics_child(f, v);
}

/* Updates accept NULL (a failed registration) so callers need no checks. */
void metrics_inc(metric_t *m)
{
	metrics_add(m, 1);
}

void metrics_add(metric_t *m, double v)
{
	if (m)
		atomic_add_dbl(&m->bits, v);
}

void metrics_set(metric_t *m, double v)
{
	if (m)
		atomic_store_explicit(&m->bits, dbl_bits(v),
		                      memory_order_relaxed);
}

void metrics_observe(metric_t *m, double v)
{
	if (!m || m->fam->type != METRIC_HISTOGRAM)
		return;
	const metric_family_t *f = m->fam;
	size_t i = 0;
	while (i < f->n_buckets && !(v <= f->buckets[i]))
		i++;
	atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
	atomic_add_dbl(&m->sum_bits, v);
}

double metrics_value(const metric_t *m)
{
	if (!m)
		return 0;
	if (m->fam->type == METRIC_HISTOGRAM) {
		uint64_t n = 0;
		for (size_t i = 0; i <= m->fam->n_buckets; i++)
			n += atomic_load_explicit(&m->buckets[i],
			                          memory_order_relaxed);
		return (double)n;
	}
	return bits_dbl(atomic_load_explicit(&m->bits, memory_order_relaxed));
}

void metrics_on_collect(metrics_collect_fn fn, void *arg)
{
	pthread_mutex_lock(&registry_lock);
	assert(n_collectors < MAX_COLLECT);
	if (n_collectors < MAX_COLLECT) {
		collectors[n_collectors].fn = fn;
		collectors[n_collectors].arg = arg;
		n_collectors++;
	}
	pthread_mutex_unlock(&registry_lock);
}

/* The exposition being written; ok turns false on the first failed
 * allocation, and every later write is skipped. */
struct out {
	buf_t b;
	bool ok;
};

static void out_mem(struct out *o, const char *s, size_t n)
{
	if (o->ok && buf_append(&o->b, s, n) < 0)
		o->ok = false;
}

static void out_str(struct out *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

/* Escapes backslash and newline, and the double quote when quoted. */
static void out_escaped(struct out *o, const char *s, bool quoted)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			out_mem(o, "\\\\", 2);
		else if (*p == '\n')
			out_mem(o, "\\n", 2);
		else if (*p == '"' && quoted)
			out_mem(o, "\\\"", 2);
		else
			out_mem(o, p, 1);
	}
}

/* The shortest decimal that reads back as v, as Prometheus clients print. */
static void fmt_double(double v, char *buf, size_t len)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

static void out_double(struct out *o, double v)
{
	char num[40];
	fmt_double(v, num, sizeof num);
	out_str(o, num);
}

/* Writes {a="x",b="y"[,le="..."]}; nothing when there are no labels. */
static void out_labels(struct out *o, const metric_t *m, const char *le)
{
	const metric_family_t *f = m->fam;
	if (f->n_labels == 0 && !le)
		return;
	out_str(o, "{");
	for (size_t i = 0; i < f->n_labels; i++) {
		if (i > 0)
			out_str(o, ",");
		out_str(o, f->labels[i]);
		out_str(o, "=\"");
		out_escaped(o, m->values[i], true);
		out_str(o, "\"");
	}
	if (le) {
		if (f->n_labels > 0)
			out_str(o, ",");
		out_str(o, "le=\"");
		out_str(o, le);
		out_str(o, "\"");
	}
	out_str(o, "}");
}

static void render_histogram(struct out *o, const metric_t *m)
{
	const metric_family_t *f = m->fam;
	uint64_t cum = 0;
	char le[40];
	for (size_t i = 0; i <= f->n_buckets; i++) {
		cum +=
		    atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
		if (i < f->n_buckets)
			fmt_double(f->buckets[i], le, sizeof le);
		else
			snprintf(le, sizeof le, "+Inf");
		out_str(o, f->name);
		out_str(o, "_bucket");
		out_labels(o, m, le);
		char num[32];
		snprintf(num, sizeof num, " %llu\n", (unsigned long long)cum);
		out_str(o, num);
	}
	out_str(o, f->name);
	out_str(o, "_sum");
	out_labels(o, m, NULL);
	out_str(o, " ");
	out_double(o, bits_dbl(atomic_load_explicit(&m->sum_bits,
	                                            memory_order_relaxed)));
	out_str(o, "\n");
	out_str(o, f->name);
	out_str(o, "_count");
	out_labels(o, m, NULL);
	char num[32];
	snprintf(num, sizeof num, " %llu\n", (unsigned long long)cum);
	out_str(o, num);
}

static const char *type_name(metric_type_t t)
{
	switch (t) {
	case METRIC_COUNTER:
		return "counter";
	case METRIC_GAUGE:
		return "gauge";
	case METRIC_HISTOGRAM:
		return "histogram";
	}
	return "untyped";
}

char *metrics_render(void)
{
	/* Callbacks run outside the lock: they may create children. */
	struct {
		metrics_collect_fn fn;
		void *arg;
	} cbs[MAX_COLLECT];
	pthread_mutex_lock(&registry_lock);
	size_t n_cbs = n_collectors;
	memcpy(cbs, collectors, sizeof cbs);
	pthread_mutex_unlock(&registry_lock);
	for (size_t i = 0; i < n_cbs; i++)
		cbs[i].fn(cbs[i].arg);

	struct out o = {.ok = true};
	buf_init(&o.b, SIZE_MAX);
	o.ok = buf_reserve(&o.b, 0) == 0; /* "" when nothing is registered */
	pthread_mutex_lock(&registry_lock);
	for (const metric_family_t *f = families_first; f; f = f->next) {
		out_str(&o, "# HELP ");
		out_str(&o, f->name);
		out_str(&o, " ");
		out_escaped(&o, f->help, false);
		out_str(&o, "\n# TYPE ");
		out_str(&o, f->name);
		out_str(&o, " ");
		out_str(&o, type_name(f->type));
		out_str(&o, "\n");
		for (const metric_t *m = f->first; m; m = m->next_order) {
			if (f->type == METRIC_HISTOGRAM) {
				render_histogram(&o, m);
				continue;
			}
			out_str(&o, f->name);
			out_labels(&o, m, NULL);
			out_str(&o, " ");
			out_double(&o, metrics_value(m));
			out_str(&o, "\n");
		}
	}
	pthread_mutex_unlock(&registry_lock);
	if (!o.ok) {
		buf_free(&o.b);
		return NULL;
	}
	return o.b.data; /* the caller's, to free() */
}

void metrics_reset(void)
{
	pthread_mutex_lock(&registry_lock);
	metric_family_t *f = families_first;
	families_first = families_last = NULL;
	n_families = 0;
	n_collectors = 0;
	pthread_mutex_unlock(&registry_lock);
	while (f) {
		metric_family_t *next = f->next;
		family_free(f);
		f = next;
	}
}
