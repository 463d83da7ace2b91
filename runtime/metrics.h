/* metrics.h - Prometheus metric primitives: counters, gauges, histograms.
 *
 * A registry (bc_metrics_t) holds metric families. A family has a name, a
 * help text, a type, 0..4 label names and, for histograms, bucket upper
 * bounds. Each distinct tuple of label values is a child, created on first
 * lookup; the handle returned by a lookup stays valid until the registry is
 * destroyed, and updating through it is lock-free and allocation-free. Cache
 * the handle where the labels are fixed; look it up per update where not.
 *
 *     bc_metric_family_t *f;
 *     bc_metrics_register(m, &(bc_metric_opts_t){
 *         .name = "signals_sent_total", .help = "Signals sent.",
 *         .type = BC_METRIC_COUNTER, .labels = {"signal_type"}}, &f);
 *     bc_counter_inc(bc_counter_labels(f, (const char *[]){"wake"}));
 *
 * Every update function accepts a NULL handle and does nothing, so a failed
 * lookup never crashes a hot path. Exposition (bc_metrics_expose) writes the
 * Prometheus text format 0.0.4.
 */
#ifndef BC_METRICS_H
#define BC_METRICS_H

#include "buf.h"

#include <stdint.h>

#define BC_METRIC_MAX_LABELS 4
#define BC_METRIC_MAX_BUCKETS 64
#define BC_METRIC_MAX_SHARDS 64
#define BC_METRIC_OVERFLOW_VALUE "__overflow__"

typedef struct bc_metrics_s bc_metrics_t;
typedef struct bc_metric_family_s bc_metric_family_t;
typedef struct bc_counter_s bc_counter_t;
typedef struct bc_gauge_s bc_gauge_t;
typedef struct bc_histogram_s bc_histogram_t;

typedef enum bc_metric_type_e {
    BC_METRIC_COUNTER = 1,
    BC_METRIC_GAUGE,
    BC_METRIC_HISTOGRAM,
} bc_metric_type_t;

typedef struct bc_metric_opts_s {
    const char *name; /* [a-zA-Z_:][a-zA-Z0-9_:]*; copied */
    const char *help; /* free text; copied; NULL = "" */
    bc_metric_type_t type;
    /* Label names, [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", not "le"
     * for histograms; the list ends at the first NULL. Copied. */
    const char *labels[BC_METRIC_MAX_LABELS];
    /* Histograms: strictly increasing upper bounds, NaN not allowed; a final
     * +Inf is implied (and dropped if given). nbuckets == 0 selects the
     * Prometheus defaults .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10. Copied. */
    const double *buckets;
    unsigned nbuckets;
    /* Maximum number of children (label tuples); 0 = unlimited. Beyond it,
     * lookups of new tuples return the child whose every label value is
     * "__overflow__", and each such lookup is counted (see
     * bc_metric_family_overflows and bc_metrics_cardinality_overflow_total). */
    unsigned max_children;
} bc_metric_opts_t;

/* Called by bc_metrics_expose before any output, on the exposing thread, to
 * set values computed on demand (process metrics, counts over a table). */
typedef void (*bc_metrics_collect_fn)(bc_metrics_t *m, void *arg);

/* A family computed at exposition (bc_metrics_register_fn): the function
 * writes the family's samples through the emitter, valid during the call. */
typedef struct bc_metric_emitter_s bc_metric_emitter_t;
typedef void (*bc_metric_emit_fn)(bc_metric_emitter_t *e, void *arg);

/* ---------------------------------------------------------------- registry */

/* Create an empty registry whose counters and histograms are split into
 * `nshards` per-thread shards (rounded up to a power of two, at most
 * BC_METRIC_MAX_SHARDS; 0 = next power of two >= online CPUs, at least 4).
 * Never returns NULL (out-of-memory aborts). Any thread. The caller owns the
 * registry and frees it with bc_metrics_destroy. */
bc_metrics_t *bc_metrics_create(unsigned nshards);

/* Free the registry, its families, children and collector arguments (through
 * their free_arg). No other thread may use it, or any handle from it, during
 * or after the call. NULL is ignored. */
void bc_metrics_destroy(bc_metrics_t *m);

/* Register a family described by `o`; on success *out (if not NULL) receives
 * it, owned by the registry. A family without labels gets its single child at
 * once, so it is exposed (as 0) before the first update. Any thread.
 * Returns 0, -EINVAL (bad name, label, type, buckets or too many labels), or
 * -EEXIST (the name is taken). */
int bc_metrics_register(bc_metrics_t *m, const bc_metric_opts_t *o, bc_metric_family_t **out);

/* Register a family whose samples are not stored but produced at each
 * exposition: bc_metrics_expose runs the collectors, then, at the family's
 * place in registration order, fn(emitter, arg), which reports every sample
 * with bc_metric_emit / bc_metric_emit_histogram. Nothing is kept between
 * expositions, so a label tuple fn no longer reports is gone at the next
 * scrape; fn bounds its own cardinality (o->max_children must be 0). Child
 * lookups (bc_counter_labels, ...) on such a family return NULL. The family
 * is exposed only when fn emits at least one sample. fn runs on the exposing
 * thread, serialised with other expositions; it must not call
 * bc_metrics_expose. Any thread. Returns 0, -EINVAL (as for
 * bc_metrics_register, or fn NULL, or max_children set) or -EEXIST. */
int bc_metrics_register_fn(bc_metrics_t *m, const bc_metric_opts_t *o, bc_metric_emit_fn fn,
                           void *arg, bc_metric_family_t **out);

/* From a bc_metric_emit_fn: one counter or gauge sample with the family's
 * label values (NULL for a family without labels; a NULL value skips the
 * sample). A family's fn should emit each label tuple once. */
void bc_metric_emit(bc_metric_emitter_t *e, const char *const *values, double v);
/* From a bc_metric_emit_fn of a histogram family: one histogram with
 * counts[0..nbounds] observations per bucket (not cumulative; the last one
 * holds those above the last bound) and their sum. */
void bc_metric_emit_histogram(bc_metric_emitter_t *e, const char *const *values,
                              const uint64_t *counts, double sum);

/* The family called `name`, or NULL. Any thread. */
bc_metric_family_t *bc_metrics_find(bc_metrics_t *m, const char *name);

/* Add a collect callback, run by every later bc_metrics_expose in the order
 * added. `free_arg` (may be NULL) is called on `arg` by bc_metrics_destroy.
 * Callbacks may update metrics and register families, but must not call
 * bc_metrics_expose. Any thread. Returns 0 or -EINVAL (fn NULL). */
int bc_metrics_add_collector(bc_metrics_t *m, bc_metrics_collect_fn fn, void *arg,
                             void (*free_arg)(void *));

/* Run the collectors, then append every family in registration order (its
 * children in creation order) to `out` in Prometheus text format 0.0.4.
 * Families without a visible child are skipped. Any thread; concurrent calls
 * are serialised; updates from other threads proceed meanwhile (each value is
 * read atomically, a histogram's _count always equals its +Inf bucket). */
void bc_metrics_expose(bc_metrics_t *m, bc_buf_t *out);

/* Register the standard process_* metrics (resident and virtual memory,
 * CPU seconds, open and max fds, start time) and a collector that refreshes
 * them from /proc/self at each exposition. Any thread. Returns 0, -EEXIST if
 * already registered, or -ENOENT when /proc/self/stat is unreadable. */
int bc_metrics_register_process(bc_metrics_t *m);

/* ---------------------------------------------------------------- families */

/* Children of `f`: the child for `values` (f's label count of them; NULL or
 * ignored for a family without labels), created on first use, or the
 * "__overflow__" child when f is at max_children. Returns NULL when the
 * family has another type or a value is NULL. The handle is owned by the
 * registry. Lock-free when the child exists; takes the family's mutex to
 * create one. Any thread. */
bc_counter_t *bc_counter_labels(bc_metric_family_t *f, const char *const *values);
bc_gauge_t *bc_gauge_labels(bc_metric_family_t *f, const char *const *values);
bc_histogram_t *bc_histogram_labels(bc_metric_family_t *f, const char *const *values);

/* Gauge families only: hide every child and set it to 0; a child reappears
 * in the exposition at its next update. For collectors that rebuild a gauge
 * family from scratch at each scrape. Any thread. Returns 0 or -EINVAL (not a
 * gauge family). */
int bc_metric_family_clear(bc_metric_family_t *f);

/* Number of lookups redirected to the "__overflow__" child so far. Any
 * thread. */
uint64_t bc_metric_family_overflows(const bc_metric_family_t *f);

/* Number of children, excluding the "__overflow__" child. Any thread. */
unsigned bc_metric_family_children(const bc_metric_family_t *f);

/* ---------------------------------------------------------------- updates */
/* All lock-free, any thread; a NULL handle is ignored. */

/* Add 1 / n to a counter (per-thread shard, one relaxed atomic add). */
void bc_counter_inc(bc_counter_t *c);
void bc_counter_add(bc_counter_t *c, uint64_t n);
/* Add a non-negative fraction (CAS loop on one shared word: slower than
 * bc_counter_add; negative or NaN values are ignored). */
void bc_counter_add_double(bc_counter_t *c, double v);
/* For collectors mirroring a total kept elsewhere (e.g. CPU seconds): set the
 * value exported for c to v plus whatever bc_counter_add added. */
void bc_counter_set(bc_counter_t *c, double v);
/* Current value (sum of shards plus the fractional part). */
double bc_counter_value(const bc_counter_t *c);

/* Gauges: one atomic word holding the double. */
void bc_gauge_set(bc_gauge_t *g, double v);
void bc_gauge_add(bc_gauge_t *g, double v);
void bc_gauge_sub(bc_gauge_t *g, double v);
void bc_gauge_inc(bc_gauge_t *g);
void bc_gauge_dec(bc_gauge_t *g);
double bc_gauge_value(const bc_gauge_t *g);

/* Record one observation: the first bucket whose bound is >= v (le is
 * inclusive; NaN and values above the last bound go to +Inf) and the sum. */
void bc_histogram_observe(bc_histogram_t *h, double v);
/* Observations so far, and their sum. */
uint64_t bc_histogram_count(const bc_histogram_t *h);
double bc_histogram_sum(const bc_histogram_t *h);

#endif /* BC_METRICS_H */
