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

/* One sample line: name[suffix]{labels[,le="le"]} value */
static void bc__sample(bc_buf_t *out, const bc_metric_family_t *f, const char *suffix,
                       const bc__mchild_t *c, const char *le, const char *value)
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
            bc__escape(out, c->values[i], 1);
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

static void bc__expose_histogram(bc_buf_t *out, const bc_metric_family_t *f, const bc__mchild_t *c)
{
    char le[40], val[40];
    uint64_t cum = 0;
    for (unsigned i = 0; i <= f->nbounds; i++) {
        cum += bc__mchild_cell_sum(c, i);
        if (i < f->nbounds)
            bc__fmt_double(le, sizeof le, f->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(val, sizeof val, "%" PRIu64, cum);
        bc__sample(out, f, "_bucket", c, le, val);
    }
    bc__fmt_double(val, sizeof val, bc__mchild_cell_dsum(c, f->nbounds + 1));
    bc__sample(out, f, "_sum", c, NULL, val);
    snprintf(val, sizeof val, "%" PRIu64, cum);
    bc__sample(out, f, "_count", c, NULL, val);
}

static void bc__expose_family(bc_buf_t *out, const bc_metric_family_t *f)
{
    static const char *const type_names[] = {"", "counter", "gauge", "histogram"};
    int header = 0;
    char val[40];
    /* acquire: pairs with the release that appended each child */
    const bc__mchild_t *c = atomic_load_explicit(&f->first, memory_order_acquire);
    for (; c; c = atomic_load_explicit(&c->next, memory_order_acquire)) { /* idem */
        /* relaxed: a hint; a child unhidden a moment late shows next scrape */
        if (atomic_load_explicit(&c->hidden, memory_order_relaxed))
            continue;
        if (!header) {
            bc_buf_appendf(out, "# HELP %s ", f->name);
            bc__escape(out, f->help, 0);
            bc_buf_appendf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
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
            bc__sample(out, f, NULL, c, NULL, val);
            break;
        case BC_METRIC_GAUGE:
            bc__fmt_double(val, sizeof val, bc__bits_to_double(bits));
            bc__sample(out, f, NULL, c, NULL, val);
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
