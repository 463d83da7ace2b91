/* metrics_impl.h - structures shared by metrics.c, metrics_expose.c and
 * metrics_process.c. Not part of any API; nothing outside runtime/metrics*
 * includes it.
 *
 * Memory layout: counter and histogram values live in "cells" (uint64 words)
 * carved from arena groups. A group is nshards slices of BC__CHUNK_CELLS
 * cells; a child owns the same cell range in every slice, so shard s of a
 * child is at child->cells + s * BC__CHUNK_CELLS. Each slice is written by the
 * threads mapped to its shard only, so threads never share a cache line, and
 * a counter child costs 8 bytes per shard instead of a padded line per shard.
 */
#ifndef BC_METRICS_IMPL_H
#define BC_METRICS_IMPL_H

#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BC__CHUNK_CELLS 512 /* cells per shard slice of a group (4 KiB) */
#define BC__OVERFLOW_FAMILY "bc_metrics_cardinality_overflow_total"

typedef struct bc__mchild_s {
    /* Gauge: the value's bits. Counter: the bits of the fractional part added
     * by bc_counter_add_double / set by bc_counter_set. */
    _Atomic uint64_t value;
    _Atomic uint32_t hidden; /* set by bc_metric_family_clear */
    uint32_t shard_mask;     /* registry nshards - 1 */
    _Atomic uint64_t *cells; /* shard 0's cells (counter: 1; histogram: nb+1 buckets, sum) */
    bc_metric_family_t *fam;
    struct bc__mchild_s *_Atomic next; /* creation order */
    uint64_t hash;
    const char *values[BC_METRIC_MAX_LABELS]; /* point into this allocation */
} bc__mchild_t;

/* Open-addressing table of children. Grown by copying into a new table that
 * is published atomically; old tables are kept (read-only) until the family
 * is freed, so a lock-free reader holding one never sees freed memory. */
typedef struct bc__mtable_s {
    struct bc__mtable_s *retired; /* older tables, freed with the family */
    size_t mask;
    bc__mchild_t *_Atomic slot[];
} bc__mtable_t;

struct bc_metric_family_s {
    bc_metrics_t *reg;
    char *name;
    char *help;
    bc_metric_type_t type;
    unsigned nlabels;
    unsigned nbounds; /* histogram bounds, without +Inf */
    unsigned ncells;  /* cells per shard per child */
    unsigned max_children;
    char *labels[BC_METRIC_MAX_LABELS];
    double *bounds;
    pthread_mutex_t lock;        /* child creation and table growth */
    bc__mtable_t *_Atomic table; /* current lookup table */
    size_t tcount;               /* entries in table; under lock */
    bc__mchild_t *_Atomic first; /* children in creation order */
    bc__mchild_t *last;          /* under lock */
    _Atomic unsigned nchildren;  /* excluding the overflow child */
    bc__mchild_t *_Atomic overflow_child;
    _Atomic uint64_t overflows;
    bc_metric_emit_fn emit_fn; /* bc_metrics_register_fn: samples made at exposition */
    void *emit_arg;
    struct bc_metric_family_s *_Atomic next; /* registration order */
};

typedef struct bc__mcollector_s {
    bc_metrics_collect_fn fn;
    void *arg;
    void (*free_arg)(void *);
    struct bc__mcollector_s *_Atomic next;
} bc__mcollector_t;

struct bc_metrics_s {
    pthread_mutex_t lock;        /* registration: family and collector lists */
    pthread_mutex_t expose_lock; /* one exposition (and its collectors) at a time */
    pthread_mutex_t arena_lock;  /* cell arena; taken inside a family lock */
    unsigned nshards;            /* power of two */
    bc_metric_family_t *_Atomic first;
    bc_metric_family_t *last;
    bc__mcollector_t *_Atomic collectors;
    bc__mcollector_t *last_collector;
    char **groups; /* arena groups, each nshards * BC__CHUNK_CELLS cells */
    size_t ngroups, groups_cap;
    size_t group_used; /* cells used in the newest group's slices */
};

static inline double bc__bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static inline uint64_t bc__double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* Value of cell `i` summed over all shards of child `c`. */
uint64_t bc__mchild_cell_sum(const bc__mchild_t *c, unsigned i);
/* Sum of the double cells `i` over all shards of child `c`. */
double bc__mchild_cell_dsum(const bc__mchild_t *c, unsigned i);

#endif /* BC_METRICS_IMPL_H */
