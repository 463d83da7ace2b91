/* test_pool.c - size-class pools (runtime/pool.c): the size-to-class mapping
 * at its boundaries, round trips in every class with the whole class size
 * written and checked (no two live objects overlap; ASan watches the edges),
 * large blocks through bc_pool_alloc_size, a producer thread whose objects
 * are freed by a consumer thread (the depot must recycle the consumer's
 * frees to the producer: bc_pool_bytes_reserved stays bounded, and a second
 * round carves nothing new), and the cache of an exiting thread being
 * reused by other threads, both with an explicit bc_pool_thread_flush and
 * with the automatic flush at thread exit. No runtime is created here, so
 * this file's threads are the only pool users and footprint deltas are
 * exact.
 */
#include "harness.h"
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static size_t class_bytes(unsigned cls)
{
    return (size_t)1 << (cls + BC_POOL_MIN_SHIFT);
}

/* ---------------------------------------------------------------- classes */

static void test_class_boundaries(void **state)
{
    (void)state;
    for (size_t s = 1; s <= 32; s++)
        assert_int_equal(bc_pool_class(s), 0);
    assert_int_equal(bc_pool_class(33), 1);
    assert_int_equal(bc_pool_class(64), 1);
    assert_int_equal(bc_pool_class(65), 2);
    assert_int_equal(bc_pool_class(128), 2);
    assert_int_equal(bc_pool_class(129), 3);
    assert_int_equal(bc_pool_class(2048), 6);
    assert_int_equal(bc_pool_class(2049), 7);
    assert_int_equal(bc_pool_class(4096), 7);
    assert_int_equal(bc_pool_class(4097), BC_POOL_LARGE);
    assert_int_equal(bc_pool_class((size_t)1 << 20), BC_POOL_LARGE);
    assert_int_equal(bc_pool_class(SIZE_MAX), BC_POOL_LARGE);
    /* Every size gets the smallest class that holds it. */
    for (size_t s = 1; s <= 4096; s++) {
        unsigned c = bc_pool_class(s);
        assert_true(c < BC_POOL_CLASSES);
        assert_true(class_bytes(c) >= s);
        if (c > 0)
            assert_true(class_bytes(c - 1) < s);
    }
}

/* ---------------------------------------------------------------- round trips */

#define RT_OBJS 1000

static uint8_t pattern(unsigned cls, size_t i)
{
    return (uint8_t)(0x5a ^ (cls * 31u) ^ (unsigned)(i * 7u));
}

/* Allocate RT_OBJS objects of `cls`, fill each over its whole class size,
 * check every byte after all are live, free them all. */
static void round_trip(unsigned cls, void **objs)
{
    size_t sz = class_bytes(cls);
    for (size_t i = 0; i < RT_OBJS; i++) {
        objs[i] = bc_pool_alloc(cls);
        assert_non_null(objs[i]);
        assert_int_equal((uintptr_t)objs[i] % 16, 0);
        memset(objs[i], pattern(cls, i), sz);
    }
    for (size_t i = 0; i < RT_OBJS; i++) {
        const uint8_t *p = objs[i];
        uint8_t want = pattern(cls, i);
        for (size_t b = 0; b < sz; b++)
            if (p[b] != want)
                fail_msg("class %u object %zu byte %zu overwritten", cls, i, b);
    }
    for (size_t i = 0; i < RT_OBJS; i++)
        bc_pool_free(cls, objs[i]);
}

/* Every class: objects are writable over the full class size and do not
 * overlap; a second round reuses the freed memory (no new chunks). */
static void test_round_trip_every_class(void **state)
{
    (void)state;
    void **objs = calloc(RT_OBJS, sizeof *objs);
    assert_non_null(objs);
    for (unsigned cls = 0; cls < BC_POOL_CLASSES; cls++) {
        round_trip(cls, objs);
        size_t reserved = bc_pool_bytes_reserved();
        round_trip(cls, objs);
        assert_int_equal(bc_pool_bytes_reserved(), reserved);
    }
    free(objs);
}

/* bc_pool_alloc_size: pooled up to 4096 bytes with the right class, malloc
 * above (BC_POOL_LARGE); every byte of the requested size is writable. */
static void test_alloc_size(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 31, 32, 33, 64, 65, 1000, 2048, 4095, 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned cls = 12345;
        uint8_t *p = bc_pool_alloc_size(sizes[i], &cls);
        assert_non_null(p);
        assert_int_equal(cls, bc_pool_class(sizes[i]));
        memset(p, 0xa5, class_bytes(cls));
        bc_pool_free_size(cls, p);
    }
    const size_t large[] = {4097, 10000, (size_t)1 << 20};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
        unsigned cls = 12345;
        size_t before = bc_pool_bytes_reserved();
        uint8_t *p = bc_pool_alloc_size(large[i], &cls);
        assert_non_null(p);
        assert_int_equal(cls, BC_POOL_LARGE);
        memset(p, 0x3c, large[i]);
        assert_int_equal(p[0], 0x3c);
        assert_int_equal(p[large[i] - 1], 0x3c);
        assert_int_equal(bc_pool_bytes_reserved(), before); /* not from the pools */
        bc_pool_free_size(cls, p);
    }
}

/* ---------------------------------------------------------------- cross-thread */

#define XQ_CAP 1024 /* power of two */
#define X_CLS 1     /* 64-byte objects */

typedef struct {
    void *slot[XQ_CAP];
    _Atomic uint64_t head, tail; /* single producer (tail), single consumer (head) */
    _Atomic uint64_t freed;
    uint64_t n;
    uint64_t bad; /* consumer only */
} xq_t;

static void xq_push(xq_t *q, void *p)
{
    uint64_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    while (t - atomic_load_explicit(&q->head, memory_order_acquire) == XQ_CAP)
        sched_yield();
    q->slot[t % XQ_CAP] = p;
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
}

static void *xq_pop(xq_t *q)
{
    uint64_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    while (atomic_load_explicit(&q->tail, memory_order_acquire) == h)
        sched_yield();
    void *p = q->slot[h % XQ_CAP];
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return p;
}

/* Consumer: check and free everything, then hand its cache to the depot. */
static void *x_consumer(void *arg)
{
    xq_t *q = arg;
    for (uint64_t i = 0; i < q->n; i++) {
        uint64_t *o = xq_pop(q);
        if (o[0] != i || ((uint8_t *)o)[class_bytes(X_CLS) - 1] != (uint8_t)i)
            q->bad++;
        bc_pool_free(X_CLS, o);
        atomic_fetch_add_explicit(&q->freed, 1, memory_order_release);
    }
    bc_pool_thread_flush();
    return NULL;
}

typedef struct {
    uint64_t n;
    size_t reserved0, reserved1, reserved2;
    uint64_t peak_live, again;
    uint64_t bad;
    int create_rc;
} x_result_t;

/* Producer: allocate n objects and hand them to the consumer; after it is
 * done, allocate as many objects as round one carved and keep them all. */
static void *x_producer(void *arg)
{
    x_result_t *r = arg;
    xq_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        abort();
    q->n = r->n;
    r->reserved0 = bc_pool_bytes_reserved();
    pthread_t c;
    r->create_rc = pthread_create(&c, NULL, x_consumer, q);
    if (r->create_rc != 0) {
        free(q);
        return NULL;
    }
    size_t sz = class_bytes(X_CLS);
    for (uint64_t i = 0; i < r->n; i++) {
        uint64_t *o = bc_pool_alloc(X_CLS);
        memset(o, (int)(uint8_t)i, sz);
        o[0] = i;
        /* An upper bound of the live objects: our count of frees lags. */
        uint64_t live = i + 1 - atomic_load_explicit(&q->freed, memory_order_acquire);
        if (live > r->peak_live)
            r->peak_live = live;
        xq_push(q, o);
    }
    pthread_join(c, NULL);
    r->bad = q->bad;
    r->reserved1 = bc_pool_bytes_reserved();

    /* Round two: every object carved in round one is free again (in the
     * depot, in our list or in our bump region), so none is carved now. */
    r->again = (r->reserved1 - r->reserved0) / sz;
    void **objs = malloc((r->again + 1) * sizeof *objs);
    if (objs == NULL)
        abort();
    for (uint64_t i = 0; i < r->again; i++) {
        objs[i] = bc_pool_alloc(X_CLS);
        memset(objs[i], 0x77, sz);
    }
    r->reserved2 = bc_pool_bytes_reserved();
    for (uint64_t i = 0; i < r->again; i++)
        bc_pool_free(X_CLS, objs[i]);
    bc_pool_thread_flush();
    free(objs);
    free(q);
    return NULL;
}

/* Thread A allocates 1,000,000 (scaled) objects and passes them to thread B
 * through a bounded queue; B frees them. The footprint stays within a small
 * multiple of the objects live at the peak (without recycling through the
 * depot it would be n * 64 bytes), and a second round on A carves nothing. */
static void test_cross_thread_recycling(void **state)
{
    (void)state;
    x_result_t r;
    memset(&r, 0, sizeof r);
    r.n = bc_test_scaled(1000000, 200000);
    pthread_t a;
    assert_int_equal(pthread_create(&a, NULL, x_producer, &r), 0);
    pthread_join(a, NULL);
    assert_int_equal(r.create_rc, 0);
    assert_int_equal(r.bad, 0);
    assert_true(r.peak_live >= 1 && r.peak_live <= XQ_CAP + 2);
    size_t sz = class_bytes(X_CLS);
    size_t grown = r.reserved1 - r.reserved0;
    assert_true(grown < 4 * r.peak_live * sz + ((size_t)4 << 20));
    assert_true(grown < r.n * sz / 2); /* far below no recycling at all */
    assert_int_equal(r.reserved2, r.reserved1);
}

/* ---------------------------------------------------------------- thread flush */

#define FL_CLS 3 /* 256-byte objects */

typedef struct {
    uint64_t n;
    int flush; /* call bc_pool_thread_flush explicitly before exiting */
} fl_arg_t;

/* Allocate n objects, hold them all, free them all, flush, exit. */
static void *fl_thread(void *p)
{
    fl_arg_t *a = p;
    void **objs = malloc(a->n * sizeof *objs);
    if (objs == NULL)
        abort();
    for (uint64_t i = 0; i < a->n; i++) {
        objs[i] = bc_pool_alloc(FL_CLS);
        memset(objs[i], (int)(i & 0xff), class_bytes(FL_CLS));
    }
    for (uint64_t i = 0; i < a->n; i++)
        bc_pool_free(FL_CLS, objs[i]);
    if (a->flush)
        bc_pool_thread_flush();
    free(objs);
    return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fn, arg), 0);
    pthread_join(t, NULL);
}

/* Threads in turn allocate n objects, free them and flush before exiting:
 * from the second thread on, everything comes from what the previous thread
 * flushed, so the footprint does not grow. */
static void test_thread_flush_reused(void **state)
{
    (void)state;
    fl_arg_t a = {bc_test_scaled(100000, 20000), 1};
    run_thread(fl_thread, &a);
    size_t r1 = bc_pool_bytes_reserved();
    run_thread(fl_thread, &a);
    size_t r2 = bc_pool_bytes_reserved();
    run_thread(fl_thread, &a);
    size_t r3 = bc_pool_bytes_reserved();
    assert_int_equal(r2, r1);
    assert_int_equal(r3, r1);
}

#define EXIT_CLS 5 /* 1024-byte objects */
#define EXIT_OBJS 300
#define EXIT_ROUNDS 20

typedef struct {
    void *objs[EXIT_OBJS];
} exit_batch_t;

/* Free objects another thread allocated, then exit without flushing. */
static void *free_and_exit(void *p)
{
    exit_batch_t *b = p;
    for (size_t i = 0; i < EXIT_OBJS; i++)
        bc_pool_free(EXIT_CLS, b->objs[i]);
    return NULL;
}

/* The automatic flush at thread exit (pool.c registers a thread-specific
 * destructor for it): each round, this thread allocates 300 objects and a
 * short-lived thread frees them and exits without calling
 * bc_pool_thread_flush. If the exiting thread's cache reaches the depot,
 * the next round reuses it and the footprint stays flat; if it is stranded,
 * every round carves 300 KiB anew.
 *
 * Regression test for a runtime bug (seen while writing these tests, fixed
 * in the tree since): bc_pool_free() installed the thread-exit destructor
 * only once a thread's list reached 2 * BC_POOL_BATCH objects, so a thread
 * that only freed fewer than that stranded them when it exited. */
static void test_exit_flush_without_explicit_call(void **state)
{
    (void)state;
    exit_batch_t *b = calloc(1, sizeof *b);
    assert_non_null(b);
    size_t reserved_after[EXIT_ROUNDS];
    for (int r = 0; r < EXIT_ROUNDS; r++) {
        for (size_t i = 0; i < EXIT_OBJS; i++) {
            b->objs[i] = bc_pool_alloc(EXIT_CLS);
            memset(b->objs[i], 0x11, class_bytes(EXIT_CLS));
        }
        run_thread(free_and_exit, b);
        reserved_after[r] = bc_pool_bytes_reserved();
    }
    /* After a few rounds of warm-up (leftovers of earlier tests in the depot
     * and in this thread's list are used up), no round may carve. Stranding
     * would add about 15 rounds * 300 KiB here. */
    size_t growth = reserved_after[EXIT_ROUNDS - 1] - reserved_after[4];
    free(b);
    assert_true(growth < ((size_t)1 << 20));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_boundaries),
        cmocka_unit_test(test_round_trip_every_class),
        cmocka_unit_test(test_alloc_size),
        cmocka_unit_test(test_cross_thread_recycling),
        cmocka_unit_test(test_thread_flush_reused),
        cmocka_unit_test(test_exit_flush_without_explicit_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
