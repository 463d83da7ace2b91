/* test_io.c - the I/O thread (runtime/io.c): tasks posted with bc_io_post
 * from many threads run exactly once, on the I/O thread, in per-thread
 * order; a task can start a libev watcher on bc_io_loop() that fires on the
 * I/O thread; closers registered with bc_io_add_closer run exactly once, on
 * the I/O thread, last registered first, at bc_runtime_destroy; and tasks
 * posted just before or during shutdown (from the test thread, from an
 * actor's BC_MSG_STOPPED handler, from a closer) are all run, not lost;
 * messages a task sends to idle actors always get them running. Tasks are
 * embedded in the test's own structs and record what they saw;
 * anything the I/O thread writes is read only after an acquire on a counter
 * it released, or after bc_runtime_destroy joined it.
 */
#include "harness.h"
#include "internal.h"

#include <ev.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 4

/* Poll `counter` until it reaches `want` or `ms` pass; returns the last value. */
static uint64_t wait_count(_Atomic uint64_t *counter, uint64_t want, unsigned ms)
{
    uint64_t deadline = bc_now_ms() + ms;
    uint64_t v;
    while ((v = atomic_load_explicit(counter, memory_order_acquire)) < want &&
           bc_now_ms() < deadline)
        bc_test_sleep_ms(1);
    return v;
}

/* ---------------------------------------------------------------- many posters */

typedef struct post_ctx_s post_ctx_t;

typedef struct {
    bc_io_task_t task;
    post_ctx_t *ctx;
    uint32_t producer;
    uint32_t runs; /* I/O thread only */
    uint64_t seq;
} seq_task_t;

struct post_ctx_s {
    bc_io_t *io;
    uint64_t next[PRODUCERS]; /* I/O thread only */
    uint64_t out_of_order, off_thread, wrong_io;
    _Atomic uint64_t done;
};

static void seq_task_fn(bc_io_t *io, bc_io_task_t *task)
{
    seq_task_t *t = bc_container_of(task, seq_task_t, task);
    post_ctx_t *c = t->ctx;
    if (io != c->io)
        c->wrong_io++;
    if (!bc_io_is_current(io))
        c->off_thread++;
    if (t->producer >= PRODUCERS || t->seq != c->next[t->producer])
        c->out_of_order++;
    else
        c->next[t->producer]++;
    t->runs++;
    /* release: the test thread reads the fields above after its acquire. */
    atomic_fetch_add_explicit(&c->done, 1, memory_order_release);
}

typedef struct {
    bc_runtime_t *rt;
    seq_task_t *tasks;
    uint64_t n;
} poster_arg_t;

static void *poster_main(void *p)
{
    poster_arg_t *a = p;
    for (uint64_t i = 0; i < a->n; i++)
        bc_io_post(a->rt, &a->tasks[i].task);
    return NULL;
}

/* 4 threads x 100,000 (scaled) tasks: each runs exactly once, on the I/O
 * thread, and each thread's tasks run in the order it posted them. */
static void test_post_many_threads(void **state)
{
    (void)state;
    uint64_t n = bc_test_scaled(100000, 5000);
    bc_runtime_t *rt = bc_test_runtime(1);
    post_ctx_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->io = rt->io;
    assert_false(bc_io_is_current(rt->io)); /* not on the test thread */
    pthread_t th[PRODUCERS];
    poster_arg_t args[PRODUCERS];
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        seq_task_t *ts = calloc(n, sizeof *ts);
        assert_non_null(ts);
        for (uint64_t i = 0; i < n; i++) {
            ts[i].task.fn = seq_task_fn;
            ts[i].ctx = c;
            ts[i].producer = p;
            ts[i].seq = i;
        }
        args[p] = (poster_arg_t){rt, ts, n};
    }
    for (uint32_t p = 0; p < PRODUCERS; p++)
        assert_int_equal(pthread_create(&th[p], NULL, poster_main, &args[p]), 0);
    for (uint32_t p = 0; p < PRODUCERS; p++)
        pthread_join(th[p], NULL);
    assert_int_equal(wait_count(&c->done, n * PRODUCERS, 60000), n * PRODUCERS);
    assert_int_equal(c->out_of_order, 0);
    assert_int_equal(c->off_thread, 0);
    assert_int_equal(c->wrong_io, 0);
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        assert_int_equal(c->next[p], n);
        for (uint64_t i = 0; i < n; i++)
            assert_int_equal(args[p].tasks[i].runs, 1);
    }
    bc_test_sleep_ms(20);
    assert_int_equal(atomic_load(&c->done), n * PRODUCERS); /* nothing ran twice */
    bc_runtime_destroy(rt);
    for (uint32_t p = 0; p < PRODUCERS; p++)
        free(args[p].tasks);
    free(c);
}

/* ---------------------------------------------------------------- ev_timer */

typedef struct {
    bc_io_task_t task;
    ev_timer timer;
    bc_io_t *io;
    uint64_t started_ms, fired_ms;
    int start_on_io, fire_on_io, fires;
    _Atomic uint64_t fired;
} evt_ctx_t;

static void on_ev_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    evt_ctx_t *c = w->data;
    c->fired_ms = bc_now_ms();
    c->fire_on_io =
        bc_io_is_current(c->io) && loop == bc_io_loop(c->io) && (revents & EV_TIMER) != 0;
    c->fires++;
    ev_timer_stop(loop, w);
    atomic_store_explicit(&c->fired, 1, memory_order_release);
}

static void start_ev_timer_task(bc_io_t *io, bc_io_task_t *task)
{
    evt_ctx_t *c = bc_container_of(task, evt_ctx_t, task);
    c->io = io;
    c->start_on_io = bc_io_is_current(io);
    c->started_ms = bc_now_ms();
    ev_timer_init(&c->timer, on_ev_timer, 0.020, 0.0);
    c->timer.data = c;
    ev_timer_start(bc_io_loop(io), &c->timer);
}

/* A task starts a 20 ms ev_timer on the I/O loop: it fires once, on the I/O
 * thread, within 2 s and not much before its time. */
static void test_task_starts_ev_timer(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(1);
    evt_ctx_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->task.fn = start_ev_timer_task;
    bc_io_post(rt, &c->task);
    assert_int_equal(wait_count(&c->fired, 1, 2000), 1);
    assert_int_equal(c->start_on_io, 1);
    assert_int_equal(c->fire_on_io, 1);
    assert_int_equal(c->fires, 1);
    assert_true(c->fired_ms >= c->started_ms + 10);
    assert_true(c->fired_ms <= c->started_ms + 2000);
    bc_runtime_destroy(rt);
    assert_int_equal(c->fires, 1);
    free(c);
}

/* ---------------------------------------------------------------- closers */

typedef struct closer_ctx_s closer_ctx_t;

typedef struct {
    closer_ctx_t *ctx;
    int id;
} closer_arg_t;

struct closer_ctx_s {
    bc_io_task_t task;
    bc_io_t *io;
    closer_arg_t arg[2];
    int add_rc[2];
    _Atomic uint64_t registered;
    _Atomic int runs[2];
    _Atomic int on_io[2];
    int order[4];
    _Atomic int norder;
};

static void closer_fn(bc_io_t *io, void *p)
{
    closer_arg_t *a = p;
    closer_ctx_t *c = a->ctx;
    int i = atomic_fetch_add(&c->norder, 1);
    if (i < 4)
        c->order[i] = a->id;
    atomic_store(&c->on_io[a->id], bc_io_is_current(io) && io == c->io);
    atomic_fetch_add(&c->runs[a->id], 1);
}

static void register_closers_task(bc_io_t *io, bc_io_task_t *task)
{
    closer_ctx_t *c = bc_container_of(task, closer_ctx_t, task);
    c->io = io;
    for (int i = 0; i < 2; i++)
        c->add_rc[i] = bc_io_add_closer(io, closer_fn, &c->arg[i]);
    atomic_store_explicit(&c->registered, 1, memory_order_release);
}

/* Two closers registered from a task run exactly once each at
 * bc_runtime_destroy (not before), on the I/O thread, last registered
 * first. */
static void test_closers_run_once_at_destroy(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(1);
    closer_ctx_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    for (int i = 0; i < 2; i++)
        c->arg[i] = (closer_arg_t){c, i};
    c->task.fn = register_closers_task;
    bc_io_post(rt, &c->task);
    assert_int_equal(wait_count(&c->registered, 1, 5000), 1);
    assert_int_equal(c->add_rc[0], 0);
    assert_int_equal(c->add_rc[1], 0);
    bc_test_sleep_ms(20);
    assert_int_equal(atomic_load(&c->runs[0]), 0);
    assert_int_equal(atomic_load(&c->runs[1]), 0);
    bc_runtime_destroy(rt);
    assert_int_equal(atomic_load(&c->runs[0]), 1);
    assert_int_equal(atomic_load(&c->runs[1]), 1);
    assert_int_equal(atomic_load(&c->on_io[0]), 1);
    assert_int_equal(atomic_load(&c->on_io[1]), 1);
    assert_int_equal(atomic_load(&c->norder), 2);
    assert_int_equal(c->order[0], 1);
    assert_int_equal(c->order[1], 0);
    free(c);
}

/* ---------------------------------------------------------------- shutdown */

typedef struct {
    bc_io_task_t task;
    _Atomic uint64_t *counter;
    _Atomic int runs;
} count_task_t;

static void count_task_fn(bc_io_t *io, bc_io_task_t *task)
{
    count_task_t *t = bc_container_of(task, count_task_t, task);
    (void)io;
    atomic_fetch_add(&t->runs, 1);
    atomic_fetch_add(t->counter, 1);
}

static void init_count_tasks(count_task_t *ts, uint64_t n, _Atomic uint64_t *counter)
{
    for (uint64_t i = 0; i < n; i++) {
        ts[i].task.fn = count_task_fn;
        ts[i].counter = counter;
        atomic_init(&ts[i].runs, 0);
    }
}

static void block_task_fn(bc_io_t *io, bc_io_task_t *task)
{
    (void)io;
    (void)task;
    bc_test_sleep_ms(50);
}

typedef struct {
    bc_io_task_t register_task;
    bc_runtime_t *rt;
    int add_rc;
    _Atomic uint64_t registered;
    /* posted by the closer at shutdown */
    count_task_t *closer_tasks;
    uint64_t n_closer;
    _Atomic uint64_t closer_count;
    _Atomic int closer_runs;
    /* posted by an actor's BC_MSG_STOPPED handler */
    count_task_t *stopped_tasks;
    uint64_t n_stopped;
    _Atomic uint64_t stopped_count;
    int stopped_seen;
} shutdown_ctx_t;

static void posting_closer(bc_io_t *io, void *p)
{
    shutdown_ctx_t *c = p;
    (void)io;
    atomic_fetch_add(&c->closer_runs, 1);
    for (uint64_t i = 0; i < c->n_closer; i++)
        bc_io_post(c->rt, &c->closer_tasks[i].task);
}

static void register_posting_closer(bc_io_t *io, bc_io_task_t *task)
{
    shutdown_ctx_t *c = bc_container_of(task, shutdown_ctx_t, register_task);
    c->add_rc = bc_io_add_closer(io, posting_closer, c);
    atomic_store_explicit(&c->registered, 1, memory_order_release);
}

static void posting_on_stop_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    shutdown_ctx_t *c = st;
    if (msg->type != BC_MSG_STOPPED)
        return;
    c->stopped_seen++;
    for (uint64_t i = 0; i < c->n_stopped; i++)
        bc_io_post(bc_actor_runtime(self), &c->stopped_tasks[i].task);
}

/* Tasks posted right before bc_runtime_destroy (queued behind a task that
 * holds the I/O thread), tasks posted by an actor as it is stopped by the
 * destroy, and tasks posted by a closer during shutdown (more than one
 * wake-up's worth) all run, each exactly once. */
static void test_tasks_before_destroy_not_lost(void **state)
{
    (void)state;
    uint64_t n = bc_test_scaled(100000, 10000);
    bc_runtime_t *rt = bc_test_runtime(2);
    shutdown_ctx_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->rt = rt;
    c->n_closer = 5000; /* more than the 4096 tasks run per wake-up */
    c->n_stopped = 1000;
    c->closer_tasks = calloc(c->n_closer, sizeof *c->closer_tasks);
    c->stopped_tasks = calloc(c->n_stopped, sizeof *c->stopped_tasks);
    count_task_t *ts = calloc(n, sizeof *ts);
    assert_non_null(c->closer_tasks);
    assert_non_null(c->stopped_tasks);
    assert_non_null(ts);
    init_count_tasks(c->closer_tasks, c->n_closer, &c->closer_count);
    init_count_tasks(c->stopped_tasks, c->n_stopped, &c->stopped_count);
    _Atomic uint64_t count;
    atomic_init(&count, 0);
    init_count_tasks(ts, n, &count);

    c->register_task.fn = register_posting_closer;
    bc_io_post(rt, &c->register_task);
    assert_int_equal(wait_count(&c->registered, 1, 5000), 1);
    assert_int_equal(c->add_rc, 0);
    bc_actor_t *a = bc_spawn(rt, posting_on_stop_behaviour, c);
    assert_non_null(a);

    bc_io_task_t block = {.fn = block_task_fn};
    bc_io_post(rt, &block);
    for (uint64_t i = 0; i < n; i++)
        bc_io_post(rt, &ts[i].task);
    bc_actor_release(a);
    bc_runtime_destroy(rt);

    assert_int_equal(atomic_load(&count), n);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(atomic_load(&ts[i].runs), 1);
    assert_int_equal(c->stopped_seen, 1);
    assert_int_equal(atomic_load(&c->stopped_count), c->n_stopped);
    for (uint64_t i = 0; i < c->n_stopped; i++)
        assert_int_equal(atomic_load(&c->stopped_tasks[i].runs), 1);
    assert_int_equal(atomic_load(&c->closer_runs), 1);
    assert_int_equal(atomic_load(&c->closer_count), c->n_closer);
    for (uint64_t i = 0; i < c->n_closer; i++)
        assert_int_equal(atomic_load(&c->closer_tasks[i].runs), 1);
    free(ts);
    free(c->closer_tasks);
    free(c->stopped_tasks);
    free(c);
}

/* ---------------------------------------------------------------- sends from the I/O thread */

typedef struct {
    _Atomic uint64_t handled;
} wake_state_t;

static void wake_count_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    wake_state_t *s = st;
    (void)self;
    if (msg->type == 1)
        atomic_fetch_add_explicit(&s->handled, 1, memory_order_release);
}

typedef struct {
    bc_io_task_t task;
    bc_actor_t *to[2];
    uint64_t send_errors; /* I/O thread only */
    _Atomic uint64_t ran;
} send_task_t;

static void send_two_task(bc_io_t *io, bc_io_task_t *task)
{
    send_task_t *t = bc_container_of(task, send_task_t, task);
    (void)io;
    for (int i = 0; i < 2; i++) {
        bc_msg_t *m = bc_msg_alloc(sizeof *m, 1);
        if (bc_send(t->to[i], m) != 0)
            t->send_errors++;
    }
    atomic_fetch_add_explicit(&t->ran, 1, memory_order_release);
}

/* Wait until `counter` reaches `want`, for at most `ms`; true if it did. */
static bool reached(_Atomic uint64_t *counter, uint64_t want, unsigned ms)
{
    uint64_t deadline = bc_now_ms() + ms;
    while (atomic_load_explicit(counter, memory_order_acquire) < want) {
        if (bc_now_ms() > deadline)
            return false;
    }
    return true;
}

/* The I/O thread delivers results to actors (timer ticks, later Redis and
 * HTTP replies) with bc_send from outside the workers. Rounds: a task sends
 * one message to each of two idle actors; both must be handled. Up to
 * 40,000 rounds, at most ~3 s.
 *
 * Regression test for a runtime bug (seen while writing these tests, fixed
 * in the tree since): runtime/mpscq.h bc_mpscq_pop() re-links the sentinel with
 * bc_mpscq_push() after checking that tail is the last node, so a producer
 * whose exchange lands in between leaves the queue as [node, sentinel] with
 * head == sentinel. runtime/sched.c used bc_mpscq_maybe_empty() (head == sentinel)
 * on the shared inject queue, in inject_pop() and in work_visible() (the
 * re-check in park()), so an actor scheduled from a non-worker thread could
 * stay stranded there, every worker parked, until another actor was
 * scheduled from outside. With that bug this test failed within its ~3 s in
 * each of the three builds.
 * After a stuck round the test schedules both actors from this thread,
 * which shows whether the message was stranded or lost and lets the
 * runtime shut down. */
static void test_io_thread_sends_wake_idle_actors(void **state)
{
    (void)state;
    const uint64_t rounds = 40000; /* cheap rounds: not scaled, time-capped */
    bc_runtime_t *rt = bc_test_runtime(2);
    wake_state_t *ws = calloc(1, sizeof *ws);
    send_task_t *t = calloc(1, sizeof *t);
    assert_non_null(ws);
    assert_non_null(t);
    t->task.fn = send_two_task;
    for (int i = 0; i < 2; i++) {
        t->to[i] = bc_spawn(rt, wake_count_behaviour, ws);
        assert_non_null(t->to[i]);
    }
    uint64_t t0 = bc_now_ms(), done = 0;
    int64_t stuck = -1;
    for (uint64_t r = 0; r < rounds && bc_now_ms() < t0 + 3000; r++) {
        bc_io_post(rt, &t->task);
        if (!reached(&t->ran, r + 1, 5000) || !reached(&ws->handled, 2 * (r + 1), 2000)) {
            stuck = (int64_t)r;
            break;
        }
        done++;
    }
    uint64_t handled_when_stuck = atomic_load(&ws->handled);
    bool rescued = false;
    if (stuck >= 0) {
        /* Schedule the actors from this (non-worker) thread: the idle one
         * goes through the inject queue and unblocks the stranded one. */
        for (int i = 0; i < 2; i++) {
            bc_msg_t *m = bc_msg_alloc(sizeof *m, 2);
            bc_send(t->to[i], m);
        }
        rescued = reached(&ws->handled, 2 * ((uint64_t)stuck + 1), 2000);
    }
    for (int i = 0; i < 2; i++)
        bc_actor_release(t->to[i]);
    bc_runtime_destroy(rt); /* joins the I/O thread: its writes are visible */
    uint64_t send_errors = t->send_errors;
    free(t);
    free(ws);
    if (stuck >= 0)
        fail_msg("round %lld of %llu: a message sent from the I/O thread to an idle actor was "
                 "not handled within 2 s (handled %llu of %llu); %s",
                 (long long)stuck, (unsigned long long)rounds,
                 (unsigned long long)handled_when_stuck,
                 (unsigned long long)(2 * ((uint64_t)stuck + 1)),
                 rescued ? "it ran as soon as another actor was scheduled from outside: "
                           "stranded in the inject queue"
                         : "it never ran");
    assert_int_equal(send_errors, 0);
    assert_true(done >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_many_threads),
        cmocka_unit_test(test_task_starts_ev_timer),
        cmocka_unit_test(test_closers_run_once_at_destroy),
        cmocka_unit_test(test_tasks_before_destroy_not_lost),
        cmocka_unit_test(test_io_thread_sends_wake_idle_actors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
