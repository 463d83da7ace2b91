/* metrics_update.c - the hot path: counter, gauge and histogram updates.
 *
 * Key decision: each thread gets a small index on its first update (a
 * thread-local, assigned round-robin), and counters and histogram buckets are
 * updated in the shard slice that index maps to, with one relaxed atomic add.
 * Threads that update the same counter therefore write different cache lines;
 * readers sum the shards. Doubles (gauges, histogram sums, fractional counter
 * parts) are uint64 bit patterns updated with a CAS loop, exact to the double.
 */
#include "metrics_impl.h"

/* 0 = not yet assigned; else the thread's index + 1 */
static _Thread_local uint32_t bc__metrics_tid;
static _Atomic uint32_t bc__metrics_next_tid;

static inline _Atomic uint64_t *bc__my_cells(const bc__mchild_t *c)
{
    uint32_t t = bc__metrics_tid;
    if (__builtin_expect(t == 0, 0)) {
        /* relaxed: only distinct, round-robin values matter; nothing is
         * published through this counter */
        t = atomic_fetch_add_explicit(&bc__metrics_next_tid, 1, memory_order_relaxed) + 1;
        bc__metrics_tid = t;
    }
    return c->cells + (size_t)((t - 1) & c->shard_mask) * BC__CHUNK_CELLS;
}

static void bc__atomic_add_double(_Atomic uint64_t *p, double v)
{
    /* relaxed: a standalone value; readers need no ordering with other data */
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    uint64_t want;
    do {
        want = bc__double_to_bits(bc__bits_to_double(old) + v);
        /* relaxed both ways: same reason; the CAS alone makes the add atomic */
    } while (!atomic_compare_exchange_weak_explicit(p, &old, want, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* Sum of integer cell i over the shards. Any thread. */
uint64_t bc__mchild_cell_sum(const bc__mchild_t *c, unsigned i)
{
    uint64_t sum = 0;
    for (uint32_t s = 0; s <= c->shard_mask; s++)
        /* relaxed: each cell is read atomically; no cross-cell ordering needed */
        sum +=
            atomic_load_explicit(&c->cells[(size_t)s * BC__CHUNK_CELLS + i], memory_order_relaxed);
    return sum;
}

/* Sum of double cell i over the shards. Any thread. */
double bc__mchild_cell_dsum(const bc__mchild_t *c, unsigned i)
{
    double sum = 0;
    for (uint32_t s = 0; s <= c->shard_mask; s++)
        /* relaxed: as above */
        sum += bc__bits_to_double(
            atomic_load_explicit(&c->cells[(size_t)s * BC__CHUNK_CELLS + i], memory_order_relaxed));
    return sum;
}

/* ---------------------------------------------------------------- counters */

/* Add n to a counter. Lock-free, any thread; NULL ignored. */
void bc_counter_add(bc_counter_t *c, uint64_t n)
{
    bc__mchild_t *ch = (bc__mchild_t *)c;
    if (!ch)
        return;
    /* relaxed: a statistic; exposition only needs the eventual sum */
    atomic_fetch_add_explicit(bc__my_cells(ch), n, memory_order_relaxed);
}

/* Add 1 to a counter. Lock-free, any thread; NULL ignored. */
void bc_counter_inc(bc_counter_t *c)
{
    bc_counter_add(c, 1);
}

/* Add a non-negative double to a counter. Lock-free, any thread. */
void bc_counter_add_double(bc_counter_t *c, double v)
{
    bc__mchild_t *ch = (bc__mchild_t *)c;
    if (!ch || !(v >= 0))
        return;
    bc__atomic_add_double(&ch->value, v);
}

/* Set the externally kept part of a counter. Any thread; for collectors. */
void bc_counter_set(bc_counter_t *c, double v)
{
    bc__mchild_t *ch = (bc__mchild_t *)c;
    if (!ch)
        return;
    /* relaxed: a standalone value */
    atomic_store_explicit(&ch->value, bc__double_to_bits(v), memory_order_relaxed);
}

/* Current counter value. Any thread. */
double bc_counter_value(const bc_counter_t *c)
{
    const bc__mchild_t *ch = (const bc__mchild_t *)c;
    if (!ch)
        return 0;
    /* relaxed: a standalone value */
    uint64_t frac = atomic_load_explicit(&ch->value, memory_order_relaxed);
    return (double)bc__mchild_cell_sum(ch, 0) + bc__bits_to_double(frac);
}

/* ---------------------------------------------------------------- gauges */

static inline void bc__unhide(bc__mchild_t *ch)
{
    /* relaxed: only read by the exposition, which tolerates a stale flag */
    if (atomic_load_explicit(&ch->hidden, memory_order_relaxed))
        atomic_store_explicit(&ch->hidden, 0, memory_order_relaxed); /* idem */
}

/* Set a gauge. Lock-free, any thread; NULL ignored. */
void bc_gauge_set(bc_gauge_t *g, double v)
{
    bc__mchild_t *ch = (bc__mchild_t *)g;
    if (!ch)
        return;
    /* relaxed: a standalone value */
    atomic_store_explicit(&ch->value, bc__double_to_bits(v), memory_order_relaxed);
    bc__unhide(ch);
}

/* Add to a gauge. Lock-free, any thread; NULL ignored. */
void bc_gauge_add(bc_gauge_t *g, double v)
{
    bc__mchild_t *ch = (bc__mchild_t *)g;
    if (!ch)
        return;
    bc__atomic_add_double(&ch->value, v);
    bc__unhide(ch);
}

/* Subtract from a gauge. Lock-free, any thread; NULL ignored. */
void bc_gauge_sub(bc_gauge_t *g, double v)
{
    bc_gauge_add(g, -v);
}

/* Gauge += 1. Lock-free, any thread; NULL ignored. */
void bc_gauge_inc(bc_gauge_t *g)
{
    bc_gauge_add(g, 1.0);
}

/* Gauge -= 1. Lock-free, any thread; NULL ignored. */
void bc_gauge_dec(bc_gauge_t *g)
{
    bc_gauge_add(g, -1.0);
}

/* Current gauge value. Any thread. */
double bc_gauge_value(const bc_gauge_t *g)
{
    const bc__mchild_t *ch = (const bc__mchild_t *)g;
    if (!ch)
        return 0;
    /* relaxed: a standalone value */
    return bc__bits_to_double(atomic_load_explicit(&ch->value, memory_order_relaxed));
}

/* ---------------------------------------------------------------- histograms */

/* Record an observation. Lock-free, any thread; NULL ignored. */
void bc_histogram_observe(bc_histogram_t *h, double v)
{
    bc__mchild_t *ch = (bc__mchild_t *)h;
    if (!ch)
        return;
    const bc_metric_family_t *f = ch->fam;
    unsigned lo = 0, hi = f->nbounds; /* first bound >= v; NaN ends at nbounds */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (f->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    _Atomic uint64_t *cells = bc__my_cells(ch);
    /* relaxed: a statistic; _count is derived from the buckets at read time */
    atomic_fetch_add_explicit(&cells[lo], 1, memory_order_relaxed);
    bc__atomic_add_double(&cells[f->nbounds + 1], v);
}

/* Observation count. Any thread. */
uint64_t bc_histogram_count(const bc_histogram_t *h)
{
    const bc__mchild_t *ch = (const bc__mchild_t *)h;
    if (!ch)
        return 0;
    uint64_t n = 0;
    for (unsigned i = 0; i <= ch->fam->nbounds; i++)
        n += bc__mchild_cell_sum(ch, i);
    return n;
}

/* Sum of observations. Any thread. */
double bc_histogram_sum(const bc_histogram_t *h)
{
    const bc__mchild_t *ch = (const bc__mchild_t *)h;
    if (!ch)
        return 0;
    return bc__mchild_cell_dsum(ch, ch->fam->nbounds + 1);
}
