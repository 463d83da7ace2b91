/* metrics_expose.c - Prometheus text format 0.0.4 exposition.
 *
 * Key decision: exposition walks the append-only family and child lists
 * without taking any lock that the update or lookup paths take (only the
 * registry's expose_lock, which serialises expositions and their collectors),
 * so a scrape never stalls a worker. Numbers are written in the shortest form
 * that parses back to the same double ("0.1", not "0.10000000000000001"),
 * counters that only ever got integer increments as exact integers.
 */
#include "metrics_impl.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static void bc__fmt_double(char *out, size_t n, double v)
{
    if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(int64_t)v &&
        !(v == 0 && signbit(v))) {
        /* An integer (most samples): exact in a double, and printing it needs no search. */
        char tmp[24], *p = tmp + sizeof tmp;
        int64_t i = (int64_t)v;
        uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
        *--p = '\0';
        do
            *--p = (char)('0' + u % 10);
        while ((u /= 10) != 0);
        if (i < 0)
            *--p = '-';
        snprintf(out, n, "%s", p);
        return;
    }
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* Append s escaped for a HELP line (quote = 0) or a label value (quote = 1). */
static void bc__escape(bc_buf_t *out, const char *s, int quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (quote && *s == '"')
            rep = "\\\"";
        if (!rep)
            continue;
        bc_buf_append(out, run, (size_t)(s - run));
        bc_buf_appends(out, rep);
        run = s + 1;
    }
    bc_buf_append(out, run, (size_t)(s - run));
}

/* One sample line: name[suffix]{labels[,le="le"]} value; values = the
 * family's label values. */
static void bc__sample(bc_buf_t *out, const bc_metric_family_t *f, const char *suffix,
                       const char *const *values, const char *le, const char *value)
{
    bc_buf_appends(out, f->name);
    if (suffix)
        bc_buf_appends(out, suffix);
    if (f->nlabels || le) {
        bc_buf_appendc(out, '{');
        for (unsigned i = 0; i < f->nlabels; i++) {
            if (i)
                bc_buf_appendc(out, ',');
            bc_buf_appends(out, f->labels[i]);
            bc_buf_appends(out, "=\"");
            bc__escape(out, values[i], 1);
            bc_buf_appendc(out, '"');
        }
        if (le) {
            bc_buf_appends(out, f->nlabels ? ",le=\"" : "le=\"");
            bc_buf_appends(out, le);
            bc_buf_appendc(out, '"');
        }
        bc_buf_appendc(out, '}');
    }
    bc_buf_appendc(out, ' ');
    bc_buf_appends(out, value);
    bc_buf_appendc(out, '\n');
}

/* A histogram's samples from per-bucket counts (counts[0..nbounds], not
 * cumulative) and the sum. */
static void bc__write_histogram(bc_buf_t *out, const bc_metric_family_t *f,
                                const char *const *values, const uint64_t *counts, double sum)
{
    char le[40], val[40];
    uint64_t cum = 0;
    for (unsigned i = 0; i <= f->nbounds; i++) {
        cum += counts[i];
        if (i < f->nbounds)
            bc__fmt_double(le, sizeof le, f->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(val, sizeof val, "%" PRIu64, cum);
        bc__sample(out, f, "_bucket", values, le, val);
    }
    bc__fmt_double(val, sizeof val, sum);
    bc__sample(out, f, "_sum", values, NULL, val);
    snprintf(val, sizeof val, "%" PRIu64, cum);
    bc__sample(out, f, "_count", values, NULL, val);
}

static void bc__expose_histogram(bc_buf_t *out, const bc_metric_family_t *f, const bc__mchild_t *c)
{
    uint64_t counts[BC_METRIC_MAX_BUCKETS + 1];
    for (unsigned i = 0; i <= f->nbounds; i++)
        counts[i] = bc__mchild_cell_sum(c, i);
    bc__write_histogram(out, f, c->values, counts, bc__mchild_cell_dsum(c, f->nbounds + 1));
}

static void bc__family_header(bc_buf_t *out, const bc_metric_family_t *f)
{
    static const char *const type_names[] = {"", "counter", "gauge", "histogram"};
    bc_buf_appendf(out, "# HELP %s ", f->name);
    bc__escape(out, f->help, 0);
    bc_buf_appendf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
}

/* What a bc_metric_emit_fn writes through: the family's header comes with
 * the first sample. */
struct bc_metric_emitter_s {
    bc_buf_t *out;
    const bc_metric_family_t *f;
    int header;
};

static int bc__emit_begin(bc_metric_emitter_t *e, const char *const *values)
{
    for (unsigned i = 0; i < e->f->nlabels; i++)
        if (!values || !values[i])
            return 0;
    if (!e->header) {
        bc__family_header(e->out, e->f);
        e->header = 1;
    }
    return 1;
}

/* One counter or gauge sample. The exposing thread, inside the family's fn. */
void bc_metric_emit(bc_metric_emitter_t *e, const char *const *values, double v)
{
    if (!e || e->f->type == BC_METRIC_HISTOGRAM || !bc__emit_begin(e, values))
        return;
    char val[40];
    bc__fmt_double(val, sizeof val, v);
    bc__sample(e->out, e->f, NULL, values, NULL, val);
}

/* One histogram. The exposing thread, inside the family's fn. */
void bc_metric_emit_histogram(bc_metric_emitter_t *e, const char *const *values,
                              const uint64_t *counts, double sum)
{
    if (!e || !counts || e->f->type != BC_METRIC_HISTOGRAM || !bc__emit_begin(e, values))
        return;
    bc__write_histogram(e->out, e->f, values, counts, sum);
}

static void bc__expose_family(bc_buf_t *out, const bc_metric_family_t *f)
{
    int header = 0;
    char val[40];
    if (f->emit_fn) {
        bc_metric_emitter_t e = {out, f, 0};
        f->emit_fn(&e, f->emit_arg);
        return;
    }
    /* acquire: pairs with the release that appended each child */
    const bc__mchild_t *c = atomic_load_explicit(&f->first, memory_order_acquire);
    for (; c; c = atomic_load_explicit(&c->next, memory_order_acquire)) { /* idem */
        /* relaxed: a hint; a child unhidden a moment late shows next scrape */
        if (atomic_load_explicit(&c->hidden, memory_order_relaxed))
            continue;
        if (!header) {
            bc__family_header(out, f);
            header = 1;
        }
        /* relaxed: a standalone value */
        uint64_t bits = atomic_load_explicit(&c->value, memory_order_relaxed);
        switch (f->type) {
        case BC_METRIC_COUNTER:
            if (bits == 0) /* +0.0: integer increments only, print exactly */
                snprintf(val, sizeof val, "%" PRIu64, bc__mchild_cell_sum(c, 0));
            else
                bc__fmt_double(val, sizeof val,
                               (double)bc__mchild_cell_sum(c, 0) + bc__bits_to_double(bits));
            bc__sample(out, f, NULL, c->values, NULL, val);
            break;
        case BC_METRIC_GAUGE:
            bc__fmt_double(val, sizeof val, bc__bits_to_double(bits));
            bc__sample(out, f, NULL, c->values, NULL, val);
            break;
        case BC_METRIC_HISTOGRAM:
            bc__expose_histogram(out, f, c);
            break;
        }
    }
}

/* The synthetic family counting cardinality overflows, if any happened. */
static void bc__expose_overflows(bc_metrics_t *m, bc_buf_t *out)
{
    int header = 0;
    /* acquire: pairs with the release that appended each family */
    bc_metric_family_t *f = atomic_load_explicit(&m->first, memory_order_acquire);
    for (; f; f = atomic_load_explicit(&f->next, memory_order_acquire)) { /* idem */
        uint64_t n = bc_metric_family_overflows(f);
        if (n == 0)
            continue;
        if (!header) {
            bc_buf_appends(out, "# HELP " BC__OVERFLOW_FAMILY
                                " Label lookups redirected to the __overflow__ series "
                                "because the family reached its maximum number of series.\n"
                                "# TYPE " BC__OVERFLOW_FAMILY " counter\n");
            header = 1;
        }
        bc_buf_appendf(out, BC__OVERFLOW_FAMILY "{family=\"%s\"} %" PRIu64 "\n", f->name, n);
    }
}

/* Run collectors, then write every family. Any thread; serialised with
 * other expositions. See metrics.h. */
void bc_metrics_expose(bc_metrics_t *m, bc_buf_t *out)
{
    pthread_mutex_lock(&m->expose_lock);
    /* acquire: pairs with the release in bc_metrics_add_collector */
    bc__mcollector_t *c = atomic_load_explicit(&m->collectors, memory_order_acquire);
    for (; c; c = atomic_load_explicit(&c->next, memory_order_acquire)) /* idem */
        c->fn(m, c->arg);
    /* acquire: pairs with the release that appended each family */
    bc_metric_family_t *f = atomic_load_explicit(&m->first, memory_order_acquire);
    for (; f; f = atomic_load_explicit(&f->next, memory_order_acquire)) /* idem */
        bc__expose_family(out, f);
    bc__expose_overflows(m, out);
    pthread_mutex_unlock(&m->expose_lock);
}
