/* test_wheel.c - tests for the hierarchical timing wheel (runtime/wheel.c).
 *
 * Every callback checks the contract (node unlinked, deadline <= wheel time <=
 * advance target). The randomized test checks every firing, including adds and
 * removes from callbacks, against a brute-force minimum (deadline, insertion). */
#include "harness.h"
#include "wheel.h"

#include <stdlib.h>
#include <string.h>

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

typedef struct {
    bc_wheel_node_t node;
    size_t idx;
    uint64_t period; /* periodic test: re-add with deadline + period */
    uint64_t fires;
} tnode_t;

/* State shared with the callbacks. */
static struct {
    bc_wheel_t *w;
    uint64_t target; /* now_ms of the running advance */
    size_t *order;   /* fired indexes */
    size_t n_order, cap_order;
    tnode_t *nodes;    /* for callbacks that touch other nodes */
    size_t remove_idx; /* remove_cb: node to remove when node 0 fires */
} g;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void check_fire(bc_wheel_node_t *n)
{
    assert_false(bc_wheel_linked(n));
    assert_true(n->deadline <= g.w->now);
    assert_true(g.w->now <= g.target);
}

static void record_cb(bc_wheel_node_t *n, void *arg)
{
    check_fire(n);
    tnode_t *t = container_of(n, tnode_t, node);
    t->fires++;
    assert_true(g.n_order < g.cap_order);
    g.order[g.n_order++] = t->idx;
}

static void advance(bc_wheel_t *w, uint64_t to, bc_wheel_cb_t cb, void *arg)
{
    g.w = w;
    g.target = to < w->now ? w->now : to;
    bc_wheel_advance(w, to, cb, arg);
    assert_int_equal(w->now, g.target);
}

static tnode_t *mk_nodes(size_t n)
{
    tnode_t *v = calloc(n, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i].idx = i;
    g.n_order = 0;
    g.nodes = v;
    g.cap_order = 2 * n + 16; /* no test fires a node more than twice */
    g.order = realloc(g.order, g.cap_order * sizeof *g.order);
    assert_non_null(g.order);
    return v;
}

static void add_at(bc_wheel_t *w, tnode_t *t, uint64_t deadline)
{
    t->node.deadline = deadline;
    bc_wheel_add(w, &t->node);
    assert_true(bc_wheel_linked(&t->node));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Offsets that land on every level, on slot edges and in the overflow list. */
static const uint64_t edge_offsets[] = {
    0x1,       0x2,        0xff,        0x100,       0x101,       0x3e8,
    0xffff,    0x10000,    0x10001,     0x100000,    0xffffff,    0x1000000,
    0x1000001, 0xffffffff, 0x100000000, 0x100000001, 0x200000000, 0x10000003039};
#define N_EDGES (sizeof edge_offsets / sizeof edge_offsets[0])

static void test_order_all_levels(void **state)
{
    static bc_wheel_t w;
    const uint64_t base = 0x1234567ull; /* non-zero bytes at every level */
    size_t n = N_EDGES + 2000;
    tnode_t *v = mk_nodes(n);
    uint64_t *want = malloc(n * sizeof *want);
    assert_non_null(want);
    bc_wheel_init(&w, base);
    for (size_t i = 0; i < n; i++) {
        uint64_t off = i < N_EDGES ? edge_offsets[i] : 1 + rnd() % (1ull << (8 + rnd() % 34));
        add_at(&w, &v[i], base + off);
        want[i] = base + off;
    }
    assert_int_equal(bc_wheel_count(&w), n);
    qsort(want, n, sizeof *want, cmp_u64);
    /* Advance in uneven steps; every node fires in the step that covers it. */
    uint64_t now = base;
    while (bc_wheel_count(&w)) {
        now += 1 + rnd() % (1ull << (rnd() % 36));
        advance(&w, now, record_cb, NULL);
    }
    assert_int_equal(g.n_order, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[g.order[i]].node.deadline, want[i]);
        assert_int_equal(v[i].fires, 1);
    }
    free(want);
    free(v);
}

/* When node 0 fires, add nodes 360..399 with the same (now current) deadline. */
static void fifo_cb(bc_wheel_node_t *n, void *arg)
{
    record_cb(n, arg);
    if (container_of(n, tnode_t, node)->idx == 0)
        for (size_t i = 360; i < 400; i++)
            add_at(g.w, &g.nodes[i], n->deadline);
}

static void test_equal_deadlines_fifo(void **state)
{
    static bc_wheel_t w;
    const uint64_t d = (1ull << 33) + 77; /* starts in the overflow list */
    tnode_t *v = mk_nodes(400);
    bc_wheel_init(&w, 5);
    /* Add in batches from ever closer times, so the batches meet in one slot
     * through different cascade paths; the last ones join via the due list. */
    const uint64_t from[] = {5, 1ull << 32, d - 100000, d - 20000, d - 200, d - 1};
    size_t k = 0;
    for (size_t b = 0; b < sizeof from / sizeof from[0]; b++) {
        advance(&w, from[b], record_cb, NULL);
        assert_int_equal(g.n_order, 0);
        for (size_t i = 0; i < 60; i++)
            add_at(&w, &v[k++], d);
    }
    advance(&w, d + 10, fifo_cb, NULL);
    assert_int_equal(g.n_order, 400);
    for (size_t i = 0; i < 400; i++)
        assert_int_equal(g.order[i], i);
    free(v);
}

static void test_remove_every_level(void **state)
{
    static bc_wheel_t w;
    const uint64_t base = 1000;
    tnode_t *v = mk_nodes(2 * N_EDGES + 2);
    bc_wheel_init(&w, base);
    for (size_t i = 0; i < N_EDGES; i++) {
        add_at(&w, &v[2 * i], base + edge_offsets[i]);
        add_at(&w, &v[2 * i + 1], base + edge_offsets[i]);
    }
    add_at(&w, &v[2 * N_EDGES], base - 5); /* due list */
    add_at(&w, &v[2 * N_EDGES + 1], base);
    /* Remove every odd node and the due ones; removing twice is a no-op. */
    for (size_t i = 1; i < 2 * N_EDGES + 2; i += 2) {
        bc_wheel_remove(&w, &v[i].node);
        bc_wheel_remove(&w, &v[i].node);
        assert_false(bc_wheel_linked(&v[i].node));
    }
    bc_wheel_remove(&w, &v[2 * N_EDGES].node);
    assert_int_equal(bc_wheel_count(&w), N_EDGES);
    assert_int_equal(bc_wheel_next_deadline(&w), base + 1);
    advance(&w, UINT64_MAX - 1, record_cb, NULL);
    assert_int_equal(g.n_order, N_EDGES);
    for (size_t i = 0; i < N_EDGES; i++)
        assert_int_equal(g.order[i], 2 * i);
    /* Removing the last node of every list leaves all bitmaps empty. */
    bc_wheel_init(&w, base);
    for (size_t i = 0; i < N_EDGES; i++)
        add_at(&w, &v[i], base + edge_offsets[i]);
    for (size_t i = 0; i < N_EDGES; i++)
        bc_wheel_remove(&w, &v[i].node);
    assert_int_equal(bc_wheel_count(&w), 0);
    assert_int_equal(bc_wheel_next_deadline(&w), UINT64_MAX);
    for (int l = 0; l < BC_WHEEL_LEVELS; l++)
        for (int i = 0; i < BC_WHEEL_SLOTS / 64; i++)
            assert_int_equal(w.bitmap[l][i], 0);
    free(v);
}

/* Node 0's callback removes g.remove_idx (same deadline, later in line). */
static void remove_cb(bc_wheel_node_t *n, void *arg)
{
    record_cb(n, arg);
    if (container_of(n, tnode_t, node)->idx == 0)
        bc_wheel_remove(g.w, &g.nodes[g.remove_idx].node);
}

static void test_remove_in_callback(void **state)
{
    static bc_wheel_t w;
    tnode_t *v = mk_nodes(4);
    bc_wheel_init(&w, 0);
    for (size_t i = 0; i < 3; i++)
        add_at(&w, &v[i], 70000);
    add_at(&w, &v[3], 1ull << 34); /* overflow: removed from a callback below */
    g.remove_idx = 1;
    advance(&w, 70000, remove_cb, NULL);
    assert_int_equal(g.n_order, 2);
    assert_int_equal(g.order[0], 0);
    assert_int_equal(g.order[1], 2);
    add_at(&w, &v[0], 80000);
    g.remove_idx = 3;
    advance(&w, 80000, remove_cb, NULL);
    assert_int_equal(bc_wheel_count(&w), 0);
    advance(&w, UINT64_MAX, remove_cb, NULL);
    assert_int_equal(g.n_order, 3);
    free(v);
}

/* Periodic pattern: re-add with deadline + period, never from "now". */
static void periodic_cb(bc_wheel_node_t *n, void *arg)
{
    check_fire(n);
    tnode_t *t = container_of(n, tnode_t, node);
    t->fires++;
    assert_int_equal(n->deadline, t->fires * t->period);
    n->deadline += t->period;
    bc_wheel_add(g.w, n);
}

static void test_periodic_no_drift(void **state)
{
    static bc_wheel_t w;
    const uint64_t periods[] = {1, 7, 256, 1000, 65536, 100003, 1u << 20};
    const size_t np = sizeof periods / sizeof periods[0];
    tnode_t *v = mk_nodes(np);
    bc_wheel_init(&w, 0);
    for (size_t i = 0; i < np; i++) {
        v[i].period = periods[i];
        add_at(&w, &v[i], periods[i]);
    }
    const uint64_t end = bc_test_scaled(5000000, 1000000);
    uint64_t now = 0;
    while (now < end) {
        now += rnd() % 5 ? rnd() % 300 : rnd() % 200000;
        now = now > end ? end : now;
        advance(&w, now, periodic_cb, NULL);
        for (size_t i = 0; i < np; i++)
            assert_int_equal(v[i].fires, now / periods[i]);
    }
    assert_int_equal(bc_wheel_count(&w), np);
    free(v);
}

static void test_advance_past(void **state)
{
    static bc_wheel_t w;
    tnode_t *v = mk_nodes(3);
    bc_wheel_init(&w, 1000);
    advance(&w, 500, record_cb, NULL); /* checks that the time stays 1000 */
    add_at(&w, &v[0], 1001);
    add_at(&w, &v[1], 999); /* already past: fires at the next advance */
    add_at(&w, &v[2], 1000);
    assert_int_equal(bc_wheel_next_deadline(&w), 1000);
    advance(&w, 0, record_cb, NULL);
    assert_int_equal(g.n_order, 2);
    assert_int_equal(g.order[0], 1);
    assert_int_equal(g.order[1], 2);
    assert_int_equal(bc_wheel_next_deadline(&w), 1001);
    advance(&w, 1000, record_cb, NULL);
    assert_int_equal(g.n_order, 2);
    advance(&w, 1001, record_cb, NULL);
    assert_int_equal(g.n_order, 3);
    /* A far jump on an empty wheel and the very end of time. */
    advance(&w, 1ull << 50, record_cb, NULL);
    add_at(&w, &v[0], UINT64_MAX);
    advance(&w, UINT64_MAX - 1, record_cb, NULL);
    assert_int_equal(g.n_order, 3);
    advance(&w, UINT64_MAX, record_cb, NULL);
    assert_int_equal(g.n_order, 4);
    advance(&w, UINT64_MAX, record_cb, NULL);
    free(v);
}

static void test_next_deadline(void **state)
{
    static bc_wheel_t w;
    size_t n = bc_test_scaled(20000, 2000), steps = 0;
    tnode_t *v = mk_nodes(n);
    uint64_t *want = malloc(n * sizeof *want);
    assert_non_null(want);
    bc_wheel_init(&w, 123456789);
    for (size_t i = 0; i < n; i++) {
        want[i] = w.now + rnd() % (1ull << (rnd() % 40));
        add_at(&w, &v[i], want[i]);
    }
    qsort(want, n, sizeof *want, cmp_u64);
    /* Loop advance(next_deadline) until empty: each call makes progress and
     * never passes the earliest pending deadline, want[fired so far]. */
    while (bc_wheel_count(&w)) {
        uint64_t nd = bc_wheel_next_deadline(&w), before = w.now;
        size_t fired = g.n_order;
        assert_true(nd <= want[fired]);
        advance(&w, nd, record_cb, NULL);
        assert_true(g.n_order > fired || w.now > before);
        assert_true(++steps <= 8 * n);
    }
    assert_int_equal(bc_wheel_next_deadline(&w), UINT64_MAX);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i].fires, 1);
    free(want);
    free(v);
}

/* ---- randomized test against a reference ---- */

#define REF_N 1000
static struct {
    int linked[REF_N];
    uint64_t eff[REF_N], seq[REF_N], next_seq, now, fired;
} ref;

static uint64_t rnd_delta(void)
{
    static const unsigned bits[] = {0, 4, 8, 9, 16, 17, 24, 25, 32, 33, 36};
    return rnd() % (1ull << bits[rnd() % (sizeof bits / sizeof bits[0])]);
}

static void ref_add(bc_wheel_t *w, size_t i, uint64_t deadline)
{
    add_at(w, &g.nodes[i], deadline);
    ref.linked[i] = 1;
    ref.eff[i] = deadline > ref.now ? deadline : ref.now;
    ref.seq[i] = ref.next_seq++;
}

static void ref_remove(bc_wheel_t *w, size_t i)
{
    bc_wheel_remove(w, &g.nodes[i].node);
    ref.linked[i] = 0;
}

/* Index of the next node the reference fires by `limit`, or REF_N. */
static size_t ref_next(uint64_t limit)
{
    size_t best = REF_N;
    for (size_t i = 0; i < REF_N; i++)
        if (ref.linked[i] && ref.eff[i] <= limit &&
            (best == REF_N || ref.eff[i] < ref.eff[best] ||
             (ref.eff[i] == ref.eff[best] && ref.seq[i] < ref.seq[best])))
            best = i;
    return best;
}

static void ref_cb(bc_wheel_node_t *n, void *arg)
{
    check_fire(n);
    size_t i = container_of(n, tnode_t, node)->idx;
    assert_int_equal(ref_next(g.target), i);
    ref.linked[i] = 0;
    ref.now = ref.eff[i];
    assert_int_equal(g.w->now, ref.now);
    ref.fired++;
    uint64_t r = rnd() % 10;
    if (r < 2)
        ref_add(g.w, i, n->deadline + 1 + rnd_delta());
    else if (r == 2)
        ref_remove(g.w, rnd() % REF_N);
    else if (r == 3)
        ref_add(g.w, rnd() % REF_N, ref.now - rnd() % 3 + rnd_delta());
}

static void test_random_vs_reference(void **state)
{
    static bc_wheel_t w;
    size_t ops = bc_test_scaled(100000, 10000);
    tnode_t *v = mk_nodes(REF_N);
    memset(&ref, 0, sizeof ref);
    ref.now = 1ull << 20;
    bc_wheel_init(&w, ref.now);
    g.w = &w;
    g.target = ref.now;
    for (size_t op = 0; op < ops; op++) {
        uint64_t r = rnd() % 100;
        if (r < 50) {
            uint64_t d = rnd() % 8 ? ref.now + rnd_delta() : ref.now - rnd() % 1000;
            ref_add(&w, rnd() % REF_N, d);
        } else if (r < 65) {
            ref_remove(&w, rnd() % REF_N);
        } else {
            uint64_t to = ref.now + rnd_delta();
            advance(&w, to, ref_cb, NULL);
            ref.now = to;
            assert_int_equal(ref_next(to), REF_N);
        }
        size_t cnt = 0;
        uint64_t earliest = UINT64_MAX;
        for (size_t i = 0; i < REF_N; i++) {
            assert_int_equal(bc_wheel_linked(&v[i].node), ref.linked[i]);
            if (ref.linked[i]) {
                cnt++;
                earliest = ref.eff[i] < earliest ? ref.eff[i] : earliest;
            }
        }
        assert_int_equal(bc_wheel_count(&w), cnt);
        assert_true(bc_wheel_next_deadline(&w) <= earliest);
    }
    assert_true(ref.fired > ops / 10);
    free(v);
}

static size_t cleared;
static void clear_cb(bc_wheel_node_t *n, void *arg)
{
    assert_false(bc_wheel_linked(n));
    cleared++;
}

static void test_clear(void **state)
{
    static bc_wheel_t w;
    size_t n = 5000;
    tnode_t *v = mk_nodes(n);
    bc_wheel_init(&w, 42);
    for (size_t i = 0; i < n; i++)
        add_at(&w, &v[i], i % 10 == 0 ? 40 : 42 + rnd_delta());
    add_at(&w, &v[0], 99); /* rescheduling keeps one link */
    assert_int_equal(bc_wheel_count(&w), n);
    cleared = 0;
    bc_wheel_clear(&w, clear_cb, NULL);
    assert_int_equal(cleared, n);
    assert_int_equal(bc_wheel_count(&w), 0);
    assert_int_equal(bc_wheel_next_deadline(&w), UINT64_MAX);
    /* Still usable afterwards. */
    add_at(&w, &v[1], 50);
    bc_wheel_clear(&w, NULL, NULL);
    assert_false(bc_wheel_linked(&v[1].node));
    add_at(&w, &v[1], 50);
    advance(&w, 50, record_cb, NULL);
    assert_int_equal(g.n_order, 1);
    free(v);
}

static uint64_t million_last, million_fired;
static void million_cb(bc_wheel_node_t *n, void *arg)
{
    assert_true(n->deadline >= million_last);
    million_last = n->deadline;
    million_fired++;
}

/* 1,000,000 timers: add, remove a tenth, fire the rest in a few jumps. */
static void test_million(void **state)
{
    static bc_wheel_t w;
    size_t n = bc_test_scaled(1000000, 50000);
    bc_wheel_node_t *v = calloc(n, sizeof *v);
    assert_non_null(v);
    bc_wheel_init(&w, 1000);
    for (size_t i = 0; i < n; i++) {
        v[i].deadline = 1000 + rnd() % (i % 2 ? 3600000 : 1ull << 34);
        bc_wheel_add(&w, &v[i]);
    }
    for (size_t i = 0; i < n; i += 10)
        bc_wheel_remove(&w, &v[i]);
    assert_int_equal(bc_wheel_count(&w), n - (n + 9) / 10);
    million_last = million_fired = 0;
    for (uint64_t t = 1000; bc_wheel_count(&w); t += 1ull << 28)
        bc_wheel_advance(&w, t, million_cb, NULL);
    assert_int_equal(million_fired, n - (n + 9) / 10);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_order_all_levels),
                                       cmocka_unit_test(test_equal_deadlines_fifo),
                                       cmocka_unit_test(test_remove_every_level),
                                       cmocka_unit_test(test_remove_in_callback),
                                       cmocka_unit_test(test_periodic_no_drift),
                                       cmocka_unit_test(test_advance_past),
                                       cmocka_unit_test(test_next_deadline),
                                       cmocka_unit_test(test_random_vs_reference),
                                       cmocka_unit_test(test_clear),
                                       cmocka_unit_test(test_million)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g.order);
    return rc;
}
