/* metrics.c - metric registry, families and lock-free child lookup.
 *
 * Key decision: a child, once created, is never moved or freed before the
 * registry, so lookups can run without a lock: they probe an open-addressing
 * table published with release/acquire, and only a miss takes the family's
 * mutex to create the child. Growing the table copies it into a new one and
 * retires the old one (kept until destroy), so readers never see freed memory.
 * Updates (metrics_update.c) then touch only the child's own cells.
 */
#include "metrics_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const double bc__default_buckets[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

static void *bc__xaligned(size_t size)
{
    size = (size + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, size);
    if (!p) {
        fputs("blockcoord: out of memory in metrics\n", stderr);
        abort();
    }
    memset(p, 0, size);
    return p;
}

static char *bc__xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = bc__xaligned(n);
    memcpy(p, s, n);
    return p;
}

static int bc__valid_name(const char *s, int allow_colon)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (allow_colon && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* Create a registry. Any thread. Never NULL; see metrics.h. */
bc_metrics_t *bc_metrics_create(unsigned nshards)
{
    bc_metrics_t *m = bc__xaligned(sizeof *m);
    if (nshards == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nshards = n < 4 ? 4 : (unsigned)n;
    }
    if (nshards > BC_METRIC_MAX_SHARDS)
        nshards = BC_METRIC_MAX_SHARDS;
    unsigned p = 1;
    while (p < nshards)
        p <<= 1;
    m->nshards = p;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->expose_lock, NULL);
    pthread_mutex_init(&m->arena_lock, NULL);
    return m;
}

static void bc__family_free(bc_metric_family_t *f)
{
    bc__mchild_t *c = atomic_load_explicit(&f->first, memory_order_relaxed); /* no sharing left */
    while (c) {
        bc__mchild_t *next = atomic_load_explicit(&c->next, memory_order_relaxed); /* idem */
        free(c);
        c = next;
    }
    bc__mtable_t *t = atomic_load_explicit(&f->table, memory_order_relaxed); /* idem */
    while (t) {
        bc__mtable_t *older = t->retired;
        free(t);
        t = older;
    }
    for (unsigned i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* Destroy a registry. No concurrent users. NULL ignored. */
void bc_metrics_destroy(bc_metrics_t *m)
{
    if (!m)
        return;
    /* The caller guarantees no other thread uses m: relaxed loads suffice. */
    bc_metric_family_t *f = atomic_load_explicit(&m->first, memory_order_relaxed);
    while (f) {
        bc_metric_family_t *next = atomic_load_explicit(&f->next, memory_order_relaxed);
        bc__family_free(f);
        f = next;
    }
    bc__mcollector_t *c = atomic_load_explicit(&m->collectors, memory_order_relaxed);
    while (c) {
        bc__mcollector_t *next = atomic_load_explicit(&c->next, memory_order_relaxed);
        if (c->free_arg)
            c->free_arg(c->arg);
        free(c);
        c = next;
    }
    for (size_t i = 0; i < m->ngroups; i++)
        free(m->groups[i]);
    free(m->groups);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->expose_lock);
    pthread_mutex_destroy(&m->arena_lock);
    free(m);
}

/* Carve `n` zeroed cells (same range in every shard slice). */
static _Atomic uint64_t *bc__arena_alloc(bc_metrics_t *m, unsigned n)
{
    pthread_mutex_lock(&m->arena_lock);
    if (m->ngroups == 0 || m->group_used + n > BC__CHUNK_CELLS) {
        if (m->ngroups == m->groups_cap) {
            m->groups_cap = m->groups_cap ? m->groups_cap * 2 : 8;
            m->groups = realloc(m->groups, m->groups_cap * sizeof *m->groups);
            if (!m->groups)
                abort();
        }
        m->groups[m->ngroups++] = bc__xaligned((size_t)m->nshards * BC__CHUNK_CELLS * 8);
        m->group_used = 0;
    }
    _Atomic uint64_t *p = (_Atomic uint64_t *)(void *)m->groups[m->ngroups - 1] + m->group_used;
    m->group_used += n;
    pthread_mutex_unlock(&m->arena_lock);
    return p;
}

static uint64_t bc__hash_values(const char *const *v, unsigned n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (unsigned i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ull;
        h = (h ^ 0xffu) * 1099511628211ull;
    }
    return h;
}

static bc__mchild_t *bc__table_find(bc__mtable_t *t, uint64_t h, const char *const *v, unsigned n)
{
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        /* acquire: pairs with the release in bc__table_put; the child's
         * fields are initialised before it is published. */
        bc__mchild_t *c = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!c)
            return NULL;
        if (c->hash != h)
            continue;
        unsigned k = 0;
        while (k < n && strcmp(c->values[k], v[k]) == 0)
            k++;
        if (k == n)
            return c;
    }
}

static void bc__table_put(bc__mtable_t *t, bc__mchild_t *c)
{
    size_t i = c->hash & t->mask;
    /* relaxed: only the lock holder writes slots, it needs no ordering to
     * see its own stores */
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    /* release: publish the fully initialised child to lock-free readers */
    atomic_store_explicit(&t->slot[i], c, memory_order_release);
}

static bc__mtable_t *bc__table_new(size_t cap)
{
    bc__mtable_t *t = bc__xaligned(sizeof *t + cap * sizeof t->slot[0]);
    t->mask = cap - 1;
    return t;
}

/* Insert c into the family's table, growing it first if needed. Lock held. */
static void bc__family_index(bc_metric_family_t *f, bc__mchild_t *c)
{
    /* relaxed: the table pointer is only replaced under f->lock, held here */
    bc__mtable_t *t = atomic_load_explicit(&f->table, memory_order_relaxed);
    if ((f->tcount + 1) * 2 > t->mask + 1) {
        bc__mtable_t *nt = bc__table_new((t->mask + 1) * 2);
        for (size_t i = 0; i <= t->mask; i++) {
            /* relaxed: we are the only writer (lock held) */
            bc__mchild_t *old = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
            if (old)
                bc__table_put(nt, old);
        }
        nt->retired = t;
        /* release: readers that load the new table see its filled slots */
        atomic_store_explicit(&f->table, nt, memory_order_release);
        t = nt;
    }
    bc__table_put(t, c);
    f->tcount++;
}

/* Allocate a child with label values v and append it to the family.
 * f->lock held (or f not yet published). */
static bc__mchild_t *bc__child_new(bc_metric_family_t *f, const char *const *v, uint64_t h,
                                   int index)
{
    size_t extra = 0;
    for (unsigned i = 0; i < f->nlabels; i++)
        extra += strlen(v[i]) + 1;
    bc__mchild_t *c = bc__xaligned(sizeof *c + extra);
    char *p = (char *)(c + 1);
    for (unsigned i = 0; i < f->nlabels; i++) {
        size_t n = strlen(v[i]) + 1;
        memcpy(p, v[i], n);
        c->values[i] = p;
        p += n;
    }
    c->fam = f;
    c->hash = h;
    c->shard_mask = f->reg->nshards - 1;
    if (f->ncells)
        c->cells = bc__arena_alloc(f->reg, f->ncells);
    if (index)
        bc__family_index(f, c);
    /* release: list walkers (exposition) see the initialised child */
    if (f->last)
        atomic_store_explicit(&f->last->next, c, memory_order_release);
    else
        atomic_store_explicit(&f->first, c, memory_order_release);
    f->last = c;
    return c;
}

static int bc__check_opts(const bc_metric_opts_t *o, unsigned *nlabels, const double **b,
                          unsigned *nb)
{
    if (!o || !bc__valid_name(o->name, 1) || o->type < BC_METRIC_COUNTER ||
        o->type > BC_METRIC_HISTOGRAM)
        return -EINVAL;
    unsigned n = 0;
    while (n < BC_METRIC_MAX_LABELS && o->labels[n])
        n++;
    for (unsigned i = 0; i < n; i++) {
        const char *l = o->labels[i];
        if (!bc__valid_name(l, 0) || strncmp(l, "__", 2) == 0 ||
            (o->type == BC_METRIC_HISTOGRAM && strcmp(l, "le") == 0))
            return -EINVAL;
        for (unsigned k = 0; k < i; k++)
            if (strcmp(l, o->labels[k]) == 0)
                return -EINVAL;
    }
    *nlabels = n;
    *b = NULL;
    *nb = 0;
    if (o->type != BC_METRIC_HISTOGRAM)
        return (o->buckets || o->nbuckets) ? -EINVAL : 0;
    if (o->nbuckets == 0) {
        *b = bc__default_buckets;
        *nb = sizeof bc__default_buckets / sizeof bc__default_buckets[0];
        return 0;
    }
    if (!o->buckets)
        return -EINVAL;
    unsigned cnt = o->nbuckets;
    if (isinf(o->buckets[cnt - 1]) && o->buckets[cnt - 1] > 0)
        cnt--; /* the implicit +Inf */
    if (cnt > BC_METRIC_MAX_BUCKETS)
        return -EINVAL;
    for (unsigned i = 0; i < cnt; i++)
        if (!isfinite(o->buckets[i]) || (i > 0 && !(o->buckets[i] > o->buckets[i - 1])))
            return -EINVAL;
    *b = o->buckets;
    *nb = cnt;
    return 0;
}

/* Register a stored family (fn NULL) or one computed at exposition. */
static int bc__register(bc_metrics_t *m, const bc_metric_opts_t *o, bc_metric_emit_fn fn, void *arg,
                        bc_metric_family_t **out)
{
    unsigned nlabels, nb;
    const double *b;
    int rc = bc__check_opts(o, &nlabels, &b, &nb);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&m->lock);
    if (bc_metrics_find(m, o->name) || strcmp(o->name, BC__OVERFLOW_FAMILY) == 0) {
        pthread_mutex_unlock(&m->lock);
        return -EEXIST;
    }
    bc_metric_family_t *f = bc__xaligned(sizeof *f);
    f->reg = m;
    f->name = bc__xstrdup(o->name);
    f->help = bc__xstrdup(o->help ? o->help : "");
    f->type = o->type;
    f->nlabels = nlabels;
    for (unsigned i = 0; i < nlabels; i++)
        f->labels[i] = bc__xstrdup(o->labels[i]);
    f->nbounds = nb;
    if (nb) {
        f->bounds = bc__xaligned(nb * sizeof(double));
        memcpy(f->bounds, b, nb * sizeof(double));
    }
    f->ncells = o->type == BC_METRIC_COUNTER ? 1 : o->type == BC_METRIC_HISTOGRAM ? nb + 2 : 0;
    f->max_children = o->max_children;
    f->emit_fn = fn;
    f->emit_arg = arg;
    pthread_mutex_init(&f->lock, NULL);
    /* relaxed: f is not yet visible to any other thread */
    atomic_store_explicit(&f->table, bc__table_new(16), memory_order_relaxed);
    if (nlabels == 0 && fn == NULL) {
        bc__child_new(f, NULL, bc__hash_values(NULL, 0), 1);
        atomic_store_explicit(&f->nchildren, 1, memory_order_relaxed); /* unpublished */
    }
    /* release: publish the initialised family to lock-free list walkers */
    if (m->last)
        atomic_store_explicit(&m->last->next, f, memory_order_release);
    else
        atomic_store_explicit(&m->first, f, memory_order_release);
    m->last = f;
    pthread_mutex_unlock(&m->lock);
    if (out)
        *out = f;
    return 0;
}

/* Register a family. Any thread. 0, -EINVAL or -EEXIST; see metrics.h. */
int bc_metrics_register(bc_metrics_t *m, const bc_metric_opts_t *o, bc_metric_family_t **out)
{
    return bc__register(m, o, NULL, NULL, out);
}

/* Register a family computed at exposition. Any thread. 0, -EINVAL or -EEXIST. */
int bc_metrics_register_fn(bc_metrics_t *m, const bc_metric_opts_t *o, bc_metric_emit_fn fn,
                           void *arg, bc_metric_family_t **out)
{
    if (!fn || (o && o->max_children))
        return -EINVAL;
    return bc__register(m, o, fn, arg, out);
}

/* Find a family by name. Any thread. */
bc_metric_family_t *bc_metrics_find(bc_metrics_t *m, const char *name)
{
    /* acquire: pairs with the release that appended each family */
    bc_metric_family_t *f = atomic_load_explicit(&m->first, memory_order_acquire);
    for (; f; f = atomic_load_explicit(&f->next, memory_order_acquire)) /* idem */
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* Add a collect callback. Any thread. 0 or -EINVAL. */
int bc_metrics_add_collector(bc_metrics_t *m, bc_metrics_collect_fn fn, void *arg,
                             void (*free_arg)(void *))
{
    if (!fn)
        return -EINVAL;
    bc__mcollector_t *c = bc__xaligned(sizeof *c);
    c->fn = fn;
    c->arg = arg;
    c->free_arg = free_arg;
    pthread_mutex_lock(&m->lock);
    /* release: bc_metrics_expose walks the list without m->lock */
    if (m->last_collector)
        atomic_store_explicit(&m->last_collector->next, c, memory_order_release);
    else
        atomic_store_explicit(&m->collectors, c, memory_order_release);
    m->last_collector = c;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* The overflow child (created on first need). f->lock held. */
static bc__mchild_t *bc__overflow_child(bc_metric_family_t *f)
{
    /* relaxed: written only under f->lock, which we hold */
    bc__mchild_t *c = atomic_load_explicit(&f->overflow_child, memory_order_relaxed);
    if (c)
        return c;
    const char *v[BC_METRIC_MAX_LABELS];
    for (unsigned i = 0; i < f->nlabels; i++)
        v[i] = BC_METRIC_OVERFLOW_VALUE;
    uint64_t h = bc__hash_values(v, f->nlabels);
    /* relaxed: lock held, see above */
    c = bc__table_find(atomic_load_explicit(&f->table, memory_order_relaxed), h, v, f->nlabels);
    if (!c)
        c = bc__child_new(f, v, h, 1);
    /* release: the lock-free fast path in bc__lookup reads it with acquire */
    atomic_store_explicit(&f->overflow_child, c, memory_order_release);
    return c;
}

static bc__mchild_t *bc__lookup(bc_metric_family_t *f, bc_metric_type_t type, const char *const *v)
{
    if (!f || f->type != type || f->emit_fn)
        return NULL;
    if (f->nlabels == 0)
        return atomic_load_explicit(&f->first, memory_order_acquire); /* published child */
    if (!v)
        return NULL;
    for (unsigned i = 0; i < f->nlabels; i++)
        if (!v[i])
            return NULL;
    uint64_t h = bc__hash_values(v, f->nlabels);
    /* acquire: see the slots of the table as they were when published */
    bc__mchild_t *c =
        bc__table_find(atomic_load_explicit(&f->table, memory_order_acquire), h, v, f->nlabels);
    if (c)
        return c;
    /* relaxed: a stale count only sends us to the locked path below */
    if (f->max_children &&
        atomic_load_explicit(&f->nchildren, memory_order_relaxed) >= f->max_children) {
        /* acquire: the overflow child was published with release */
        c = atomic_load_explicit(&f->overflow_child, memory_order_acquire);
        if (c) {
            /* relaxed: a statistic */
            atomic_fetch_add_explicit(&f->overflows, 1, memory_order_relaxed);
            return c;
        }
    }
    pthread_mutex_lock(&f->lock);
    /* relaxed: the table is replaced only under f->lock, held now */
    c = bc__table_find(atomic_load_explicit(&f->table, memory_order_relaxed), h, v, f->nlabels);
    if (!c) {
        /* relaxed: nchildren is written only under f->lock */
        unsigned n = atomic_load_explicit(&f->nchildren, memory_order_relaxed);
        if (f->max_children && n >= f->max_children) {
            c = bc__overflow_child(f);
            /* relaxed: a statistic */
            atomic_fetch_add_explicit(&f->overflows, 1, memory_order_relaxed);
        } else {
            c = bc__child_new(f, v, h, 1);
            /* relaxed: readers use it only as a hint for the fast path */
            atomic_store_explicit(&f->nchildren, n + 1, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&f->lock);
    return c;
}

/* Counter child for `values`. Any thread; NULL on type mismatch. */
bc_counter_t *bc_counter_labels(bc_metric_family_t *f, const char *const *values)
{
    return (bc_counter_t *)bc__lookup(f, BC_METRIC_COUNTER, values);
}

/* Gauge child for `values`. Any thread; NULL on type mismatch. */
bc_gauge_t *bc_gauge_labels(bc_metric_family_t *f, const char *const *values)
{
    return (bc_gauge_t *)bc__lookup(f, BC_METRIC_GAUGE, values);
}

/* Histogram child for `values`. Any thread; NULL on type mismatch. */
bc_histogram_t *bc_histogram_labels(bc_metric_family_t *f, const char *const *values)
{
    return (bc_histogram_t *)bc__lookup(f, BC_METRIC_HISTOGRAM, values);
}

/* Hide and zero every gauge child. Any thread. 0 or -EINVAL. */
int bc_metric_family_clear(bc_metric_family_t *f)
{
    if (!f || f->type != BC_METRIC_GAUGE || f->emit_fn)
        return -EINVAL;
    /* acquire: pairs with the release that appended each child */
    bc__mchild_t *c = atomic_load_explicit(&f->first, memory_order_acquire);
    for (; c; c = atomic_load_explicit(&c->next, memory_order_acquire)) { /* idem */
        /* relaxed: independent values; the exposition tolerates any mix */
        atomic_store_explicit(&c->value, bc__double_to_bits(0.0), memory_order_relaxed);
        atomic_store_explicit(&c->hidden, 1, memory_order_relaxed); /* idem */
    }
    return 0;
}

/* Overflow count. Any thread. */
uint64_t bc_metric_family_overflows(const bc_metric_family_t *f)
{
    /* relaxed: a statistic */
    return atomic_load_explicit(&f->overflows, memory_order_relaxed);
}

/* Child count. Any thread. */
unsigned bc_metric_family_children(const bc_metric_family_t *f)
{
    /* relaxed: a statistic */
    return atomic_load_explicit(&f->nchildren, memory_order_relaxed);
}
