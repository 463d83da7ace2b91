/* test_metrics.c - metric registry, lock-free updates and exposition text:
 * exact Prometheus output, escaping, concurrent increments from 8 threads,
 * histogram boundaries, cardinality caps, collectors and process metrics.
 */
#include "harness.h"
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L(...) ((const char *const[]){__VA_ARGS__})

static bc_metric_family_t *reg(bc_metrics_t *m, const bc_metric_opts_t *o)
{
    bc_metric_family_t *f = NULL;
    assert_int_equal(bc_metrics_register(m, o, &f), 0);
    assert_non_null(f);
    return f;
}

static char *expose(bc_metrics_t *m)
{
    bc_buf_t b = BC_BUF_INIT;
    bc_metrics_expose(m, &b);
    return bc_buf_detach(&b, NULL);
}

static void test_exposition_exact(void **state)
{
    bc_metrics_t *m = bc_metrics_create(4);
    bc_metric_family_t *spawns = reg(m, &(bc_metric_opts_t){.name = "coordinator_spawns_total",
                                                            .help = "Coordinators spawned.",
                                                            .type = BC_METRIC_COUNTER});
    bc_metric_family_t *hb =
        reg(m, &(bc_metric_opts_t){.name = "heartbeat_failures_total",
                                   .help = "Total number of heartbeat failures detected",
                                   .type = BC_METRIC_COUNTER,
                                   .labels = {"coordinator_id", "failure_type"}});
    bc_metric_family_t *active = reg(m, &(bc_metric_opts_t){.name = "blocking_coordinators_active",
                                                            .help = "Active.",
                                                            .type = BC_METRIC_GAUGE});
    reg(m, &(bc_metric_opts_t){.name = "unused_total",
                               .help = "Never used.",
                               .type = BC_METRIC_COUNTER,
                               .labels = {"x"}});
    bc_metric_family_t *dur =
        reg(m, &(bc_metric_opts_t){.name = "blocking_duration_seconds",
                                   .help = "Duration of blocking coordination in seconds",
                                   .type = BC_METRIC_HISTOGRAM,
                                   .labels = {"status"},
                                   .buckets = (const double[]){0.1, 1, 5},
                                   .nbuckets = 3});

    bc_counter_add(bc_counter_labels(spawns, NULL), 3);
    bc_counter_inc(bc_counter_labels(hb, L("c2", "stale")));
    bc_counter_add(bc_counter_labels(hb, L("c1", "stale")), 2);
    bc_counter_inc(bc_counter_labels(hb, L("c2", "stale")));
    bc_gauge_set(bc_gauge_labels(active, NULL), 2.5);
    bc_histogram_t *h = bc_histogram_labels(dur, L("completed"));
    bc_histogram_observe(h, 0.05);
    bc_histogram_observe(h, 0.1);
    bc_histogram_observe(h, 3);
    bc_histogram_observe(h, 100);

    char *s = expose(m);
    const char *want = "# HELP coordinator_spawns_total Coordinators spawned.\n"
                       "# TYPE coordinator_spawns_total counter\n"
                       "coordinator_spawns_total 3\n"
                       "# HELP heartbeat_failures_total Total number of heartbeat failures "
                       "detected\n"
                       "# TYPE heartbeat_failures_total counter\n"
                       "heartbeat_failures_total{coordinator_id=\"c2\",failure_type=\"stale\"} 2\n"
                       "heartbeat_failures_total{coordinator_id=\"c1\",failure_type=\"stale\"} 2\n"
                       "# HELP blocking_coordinators_active Active.\n"
                       "# TYPE blocking_coordinators_active gauge\n"
                       "blocking_coordinators_active 2.5\n"
                       "# HELP blocking_duration_seconds Duration of blocking coordination in "
                       "seconds\n"
                       "# TYPE blocking_duration_seconds histogram\n"
                       "blocking_duration_seconds_bucket{status=\"completed\",le=\"0.1\"} 2\n"
                       "blocking_duration_seconds_bucket{status=\"completed\",le=\"1\"} 2\n"
                       "blocking_duration_seconds_bucket{status=\"completed\",le=\"5\"} 3\n"
                       "blocking_duration_seconds_bucket{status=\"completed\",le=\"+Inf\"} 4\n"
                       "blocking_duration_seconds_sum{status=\"completed\"} 103.15\n"
                       "blocking_duration_seconds_count{status=\"completed\"} 4\n";
    assert_string_equal(s, want);
    free(s);
    bc_metrics_destroy(m);
}

static void test_label_escaping(void **state)
{
    bc_metrics_t *m = bc_metrics_create(0);
    bc_metric_family_t *f = reg(m, &(bc_metric_opts_t){.name = "esc_total",
                                                       .help = "back\\slash \"q\"\nline2",
                                                       .type = BC_METRIC_COUNTER,
                                                       .labels = {"v"}});
    bc_counter_inc(bc_counter_labels(f, L("a\\b\"c\nd")));
    bc_counter_inc(bc_counter_labels(f, L("")));
    char *s = expose(m);
    assert_string_equal(s, "# HELP esc_total back\\\\slash \"q\"\\nline2\n"
                           "# TYPE esc_total counter\n"
                           "esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"
                           "esc_total{v=\"\"} 1\n");
    free(s);
    bc_metrics_destroy(m);
}

static void test_float_format(void **state)
{
    bc_metrics_t *m = bc_metrics_create(1);
    bc_metric_family_t *g = reg(
        m, &(bc_metric_opts_t){.name = "g", .help = "h", .type = BC_METRIC_GAUGE, .labels = {"k"}});
    bc_metric_family_t *c =
        reg(m, &(bc_metric_opts_t){.name = "c_total", .help = "h", .type = BC_METRIC_COUNTER});
    bc_gauge_set(bc_gauge_labels(g, L("a")), 0.1);
    bc_gauge_set(bc_gauge_labels(g, L("b")), 1e-7);
    bc_gauge_set(bc_gauge_labels(g, L("c")), 1e21);
    bc_gauge_set(bc_gauge_labels(g, L("d")), INFINITY);
    bc_gauge_set(bc_gauge_labels(g, L("e")), -INFINITY);
    bc_gauge_set(bc_gauge_labels(g, L("f")), NAN);
    bc_gauge_t *x = bc_gauge_labels(g, L("g"));
    bc_gauge_inc(x);
    bc_gauge_add(x, 0.25);
    bc_gauge_sub(x, 2);
    bc_gauge_dec(x);
    assert_true(bc_gauge_value(x) == -1.75);
    bc_counter_t *ct = bc_counter_labels(c, NULL);
    bc_counter_add(ct, 2);
    bc_counter_add_double(ct, 0.5);
    bc_counter_add_double(ct, -7); /* ignored */
    assert_true(bc_counter_value(ct) == 2.5);
    char *s = expose(m);
    assert_string_equal(s, "# HELP g h\n# TYPE g gauge\n"
                           "g{k=\"a\"} 0.1\ng{k=\"b\"} 1e-07\n"
                           "g{k=\"c\"} 1e+21\ng{k=\"d\"} +Inf\ng{k=\"e\"} -Inf\n"
                           "g{k=\"f\"} NaN\ng{k=\"g\"} -1.75\n"
                           "# HELP c_total h\n# TYPE c_total counter\nc_total 2.5\n");
    free(s);
    bc_metrics_destroy(m);
}

typedef struct {
    bc_metric_family_t *cf, *hf;
    uint64_t n;
} inc_arg_t;

static void *inc_thread(void *p)
{
    inc_arg_t *a = p;
    bc_counter_t *c = bc_counter_labels(a->cf, L("shared"));
    bc_histogram_t *h = bc_histogram_labels(a->hf, NULL);
    for (uint64_t i = 0; i < a->n; i++) {
        bc_counter_inc(c);
        if ((i & 63) == 0)
            bc_histogram_observe(h, 0.000001);
    }
    char id[32];
    for (int i = 0; i < 500; i++) { /* concurrent creation of the same children */
        snprintf(id, sizeof id, "c%d", i);
        bc_counter_inc(bc_counter_labels(a->cf, L(id)));
    }
    return NULL;
}

static void *expose_thread(void *p)
{
    bc_metrics_t *m = p;
    for (int i = 0; i < 20; i++) {
        char *s = expose(m);
        free(s);
    }
    return NULL;
}

static void test_concurrent_increments(void **state)
{
    enum { T = 8 };
    bc_metrics_t *m = bc_metrics_create(16);
    inc_arg_t a = {
        .cf =
            reg(m,
                &(bc_metric_opts_t){
                    .name = "inc_total", .help = "h", .type = BC_METRIC_COUNTER, .labels = {"id"}}),
        .hf = reg(
            m,
            &(bc_metric_opts_t){.name = "lat_seconds", .help = "h", .type = BC_METRIC_HISTOGRAM}),
        .n = bc_test_scaled(1000000, 10000),
    };
    pthread_t th[T], ex;
    pthread_create(&ex, NULL, expose_thread, m);
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, inc_thread, &a);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    pthread_join(ex, NULL);
    assert_true(bc_counter_value(bc_counter_labels(a.cf, L("shared"))) == (double)(T * a.n));
    assert_int_equal(bc_metric_family_children(a.cf), 501);
    for (int i = 0; i < 500; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%d", i);
        assert_true(bc_counter_value(bc_counter_labels(a.cf, L(id))) == T);
    }
    bc_histogram_t *h = bc_histogram_labels(a.hf, NULL);
    uint64_t obs = T * ((a.n + 63) / 64);
    assert_int_equal(bc_histogram_count(h), obs);
    assert_true(fabs(bc_histogram_sum(h) - (double)obs * 1e-6) < 1e-9);
    bc_metrics_destroy(m);
}

static void test_histogram_boundaries(void **state)
{
    bc_metrics_t *m = bc_metrics_create(2);
    bc_metric_family_t *f =
        reg(m, &(bc_metric_opts_t){.name = "b",
                                   .help = "h",
                                   .type = BC_METRIC_HISTOGRAM,
                                   .buckets = (const double[]){1, 2, 5, INFINITY},
                                   .nbuckets = 4});
    bc_histogram_t *h = bc_histogram_labels(f, NULL);
    const double obs[] = {-3, 1, 1.0000001, 2, 2.5, 5, 5.000001, 1e300};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        bc_histogram_observe(h, obs[i]);
    char *s = expose(m);
    assert_non_null(strstr(s, "b_bucket{le=\"1\"} 2\n"
                              "b_bucket{le=\"2\"} 4\n"
                              "b_bucket{le=\"5\"} 6\n"
                              "b_bucket{le=\"+Inf\"} 8\n"));
    assert_non_null(strstr(s, "b_count 8\n"));
    free(s);
    bc_histogram_observe(h, NAN); /* +Inf bucket, sum becomes NaN */
    s = expose(m);
    assert_non_null(strstr(s, "b_bucket{le=\"5\"} 6\nb_bucket{le=\"+Inf\"} 9\nb_sum NaN\n"));
    free(s);

    /* sums of microsecond observations stay exact to well below 1 us */
    bc_metric_family_t *us =
        reg(m, &(bc_metric_opts_t){.name = "us", .help = "h", .type = BC_METRIC_HISTOGRAM});
    bc_histogram_t *u = bc_histogram_labels(us, NULL);
    for (int i = 0; i < 100000; i++)
        bc_histogram_observe(u, 0.000123);
    assert_true(fabs(bc_histogram_sum(u) - 12.3) < 1e-7);
    bc_metrics_destroy(m);
}

static void test_cardinality_cap(void **state)
{
    bc_metrics_t *m = bc_metrics_create(2);
    bc_metric_family_t *f = reg(m, &(bc_metric_opts_t){.name = "capped_total",
                                                       .help = "h",
                                                       .type = BC_METRIC_COUNTER,
                                                       .labels = {"a", "b"},
                                                       .max_children = 2});
    bc_counter_inc(bc_counter_labels(f, L("1", "x")));
    bc_counter_inc(bc_counter_labels(f, L("2", "x")));
    bc_counter_t *o1 = bc_counter_labels(f, L("3", "x"));
    bc_counter_t *o2 = bc_counter_labels(f, L("4", "x"));
    assert_ptr_equal(o1, o2);
    bc_counter_inc(o1);
    bc_counter_inc(o2);
    bc_counter_inc(bc_counter_labels(f, L("1", "x"))); /* existing: not redirected */
    assert_ptr_equal(bc_counter_labels(f, L("__overflow__", "__overflow__")), o1);
    assert_int_equal(bc_metric_family_children(f), 2);
    assert_int_equal(bc_metric_family_overflows(f), 2);
    char *s = expose(m);
    assert_string_equal(s, "# HELP capped_total h\n# TYPE capped_total counter\n"
                           "capped_total{a=\"1\",b=\"x\"} 2\n"
                           "capped_total{a=\"2\",b=\"x\"} 1\n"
                           "capped_total{a=\"__overflow__\",b=\"__overflow__\"} 2\n"
                           "# HELP bc_metrics_cardinality_overflow_total Label lookups "
                           "redirected to the __overflow__ series because the family reached "
                           "its maximum number of series.\n"
                           "# TYPE bc_metrics_cardinality_overflow_total counter\n"
                           "bc_metrics_cardinality_overflow_total{family=\"capped_total\"} 2\n");
    free(s);
    bc_metrics_destroy(m);
}

static void test_registration_errors(void **state)
{
    bc_metrics_t *m = bc_metrics_create(0);
    bc_metric_family_t *f;
    assert_int_equal(bc_metrics_register(m, &(bc_metric_opts_t){.name = "9bad", .type = 1}, &f),
                     -EINVAL);
    assert_int_equal(
        bc_metrics_register(m, &(bc_metric_opts_t){.name = "ok", .type = 1, .labels = {"a-b"}}, &f),
        -EINVAL);
    assert_int_equal(
        bc_metrics_register(m, &(bc_metric_opts_t){.name = "ok", .type = 1, .labels = {"__x"}}, &f),
        -EINVAL);
    assert_int_equal(bc_metrics_register(
                         m, &(bc_metric_opts_t){.name = "ok", .type = 1, .labels = {"a", "a"}}, &f),
                     -EINVAL);
    assert_int_equal(
        bc_metrics_register(
            m, &(bc_metric_opts_t){.name = "h", .type = BC_METRIC_HISTOGRAM, .labels = {"le"}}, &f),
        -EINVAL);
    assert_int_equal(bc_metrics_register(m,
                                         &(bc_metric_opts_t){.name = "h",
                                                             .type = BC_METRIC_HISTOGRAM,
                                                             .buckets = (const double[]){1, 1},
                                                             .nbuckets = 2},
                                         &f),
                     -EINVAL);
    assert_int_equal(bc_metrics_register(m, &(bc_metric_opts_t){.name = "t", .type = 9}, &f),
                     -EINVAL);
    assert_int_equal(
        bc_metrics_register(m, &(bc_metric_opts_t){.name = "ns:ok_total", .type = 1}, &f), 0);
    assert_ptr_equal(bc_metrics_find(m, "ns:ok_total"), f);
    assert_int_equal(
        bc_metrics_register(m, &(bc_metric_opts_t){.name = "ns:ok_total", .type = 2}, NULL),
        -EEXIST);
    /* wrong type and NULL handles are harmless */
    assert_null(bc_gauge_labels(f, NULL));
    assert_null(bc_histogram_labels(f, NULL));
    bc_gauge_set(NULL, 1);
    bc_counter_inc(NULL);
    bc_histogram_observe(NULL, 1);
    bc_metric_family_t *l = reg(m, &(bc_metric_opts_t){.name = "l", .type = 1, .labels = {"a"}});
    assert_null(bc_counter_labels(l, NULL));
    assert_null(bc_counter_labels(l, L(NULL)));
    assert_int_equal(bc_metric_family_clear(l), -EINVAL);
    bc_metrics_destroy(m);
}

typedef struct {
    bc_metric_family_t *f;
    int calls;
} table_arg_t;

static void table_collect(bc_metrics_t *m, void *p)
{
    table_arg_t *t = p;
    bc_metric_family_clear(t->f);
    t->calls++;
    bc_gauge_set(bc_gauge_labels(t->f, L("s1")), 1);
    if (t->calls == 1)
        bc_gauge_set(bc_gauge_labels(t->f, L("s2")), 1);
}

static void test_collector_and_clear(void **state)
{
    bc_metrics_t *m = bc_metrics_create(0);
    table_arg_t *t = calloc(1, sizeof *t);
    t->f = reg(m, &(bc_metric_opts_t){.name = "blocking_coordinators_total",
                                      .help = "h",
                                      .type = BC_METRIC_GAUGE,
                                      .labels = {"swarm_id"}});
    assert_int_equal(bc_metrics_add_collector(m, table_collect, t, free), 0);
    assert_int_equal(bc_metrics_add_collector(m, NULL, NULL, NULL), -EINVAL);
    char *s = expose(m);
    assert_non_null(strstr(s, "{swarm_id=\"s2\"} 1\n"));
    free(s);
    s = expose(m); /* s2 not set again: hidden */
    assert_string_equal(s, "# HELP blocking_coordinators_total h\n"
                           "# TYPE blocking_coordinators_total gauge\n"
                           "blocking_coordinators_total{swarm_id=\"s1\"} 1\n");
    free(s);
    assert_int_equal(t->calls, 2);
    bc_metrics_destroy(m); /* frees t */
}

typedef struct {
    int round;
    int calls;
} fn_arg_t;

/* Round 1: two swarms; round 2: only s1 (s2 must vanish, not linger at 0). */
static void fn_gauge(bc_metric_emitter_t *e, void *p)
{
    fn_arg_t *a = p;
    a->calls++;
    if (a->round == 0)
        return; /* nothing emitted: no header either */
    bc_metric_emit(e, L("s1", "a\"b"), 3);
    if (a->round == 1)
        bc_metric_emit(e, L("s2", "x"), 1);
    bc_metric_emit(e, L("s3", NULL), 7); /* a NULL value: skipped */
}

static void fn_hist(bc_metric_emitter_t *e, void *p)
{
    bc_metric_emit(e, NULL, 1); /* wrong type: ignored */
    bc_metric_emit_histogram(e, NULL, (const uint64_t[]){2, 0, 1}, 0.75);
}

static void fn_counter(bc_metric_emitter_t *e, void *p)
{
    bc_metric_emit(e, NULL, 12345678901.0);
}

static void test_fn_family(void **state)
{
    bc_metrics_t *m = bc_metrics_create(0);
    fn_arg_t a = {0, 0};
    bc_metric_family_t *g = NULL;
    assert_int_equal(bc_metrics_register_fn(m,
                                            &(bc_metric_opts_t){.name = "g",
                                                                .help = "by swarm",
                                                                .type = BC_METRIC_GAUGE,
                                                                .labels = {"swarm", "phase"}},
                                            fn_gauge, &a, &g),
                     0);
    assert_int_equal(
        bc_metrics_register_fn(m,
                               &(bc_metric_opts_t){.name = "lat_seconds",
                                                   .help = "h",
                                                   .type = BC_METRIC_HISTOGRAM,
                                                   .buckets = (const double[]){0.001, 0.5},
                                                   .nbuckets = 2},
                               fn_hist, NULL, NULL),
        0);
    assert_int_equal(
        bc_metrics_register_fn(
            m, &(bc_metric_opts_t){.name = "c_total", .help = "c", .type = BC_METRIC_COUNTER},
            fn_counter, NULL, NULL),
        0);
    /* errors: no fn, a cap, a taken name; no stored children */
    assert_int_equal(
        bc_metrics_register_fn(m, &(bc_metric_opts_t){.name = "x", .type = BC_METRIC_GAUGE}, NULL,
                               NULL, NULL),
        -EINVAL);
    assert_int_equal(
        bc_metrics_register_fn(
            m, &(bc_metric_opts_t){.name = "x", .type = BC_METRIC_GAUGE, .max_children = 3},
            fn_counter, NULL, NULL),
        -EINVAL);
    assert_int_equal(
        bc_metrics_register_fn(m, &(bc_metric_opts_t){.name = "g", .type = BC_METRIC_GAUGE},
                               fn_counter, NULL, NULL),
        -EEXIST);
    assert_null(bc_gauge_labels(g, L("s1", "p")));
    assert_int_equal(bc_metric_family_clear(g), -EINVAL);

    const char *tail = "# HELP lat_seconds h\n"
                       "# TYPE lat_seconds histogram\n"
                       "lat_seconds_bucket{le=\"0.001\"} 2\n"
                       "lat_seconds_bucket{le=\"0.5\"} 2\n"
                       "lat_seconds_bucket{le=\"+Inf\"} 3\n"
                       "lat_seconds_sum 0.75\n"
                       "lat_seconds_count 3\n"
                       "# HELP c_total c\n"
                       "# TYPE c_total counter\n"
                       "c_total 12345678901\n";
    char *s = expose(m);
    assert_string_equal(s, tail);
    free(s);
    a.round = 1;
    s = expose(m);
    char want[2048];
    snprintf(want, sizeof want,
             "# HELP g by swarm\n# TYPE g gauge\n"
             "g{swarm=\"s1\",phase=\"a\\\"b\"} 3\n"
             "g{swarm=\"s2\",phase=\"x\"} 1\n%s",
             tail);
    assert_string_equal(s, want);
    free(s);
    a.round = 2;
    s = expose(m);
    snprintf(want, sizeof want,
             "# HELP g by swarm\n# TYPE g gauge\n"
             "g{swarm=\"s1\",phase=\"a\\\"b\"} 3\n%s",
             tail);
    assert_string_equal(s, want);
    free(s);
    assert_int_equal(a.calls, 3);
    bc_metrics_destroy(m);
}

static int is_number(const char *v)
{
    char *end;
    if (strcmp(v, "+Inf") == 0 || strcmp(v, "-Inf") == 0 || strcmp(v, "NaN") == 0)
        return 1;
    strtod(v, &end);
    return end != v && *end == '\0';
}

static void test_process_metrics(void **state)
{
    bc_metrics_t *m = bc_metrics_create(0);
    assert_int_equal(bc_metrics_register_process(m), 0);
    assert_int_equal(bc_metrics_register_process(m), -EEXIST);
    char *s = expose(m);
    const char *names[] = {"process_cpu_seconds_total",  "process_max_fds",
                           "process_open_fds",           "process_resident_memory_bytes",
                           "process_start_time_seconds", "process_virtual_memory_bytes"};
    double vals[6] = {0};
    int seen = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        assert_non_null(sp);
        *sp = '\0';
        assert_true(is_number(sp + 1));
        for (int i = 0; i < 6; i++)
            if (strcmp(line, names[i]) == 0) {
                vals[i] = strtod(sp + 1, NULL);
                seen |= 1 << i;
            }
    }
    assert_int_equal(seen, 0x3f);
    assert_true(vals[0] >= 0);
    assert_true(vals[1] >= 16);
    assert_true(vals[2] >= 3 && vals[2] <= vals[1]);
    assert_true(vals[3] > 1 << 20);
    assert_true(vals[4] > 1.5e9);
    assert_true(vals[5] >= vals[3]);
    free(s);
    bc_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition_exact),     cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_float_format),         cmocka_unit_test(test_concurrent_increments),
        cmocka_unit_test(test_histogram_boundaries), cmocka_unit_test(test_cardinality_cap),
        cmocka_unit_test(test_registration_errors),  cmocka_unit_test(test_collector_and_clear),
        cmocka_unit_test(test_process_metrics),      cmocka_unit_test(test_fn_family),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
