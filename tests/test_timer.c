/* test_timer.c - timers delivered to actors (runtime/timer.c): one-shot
 * ordering, cancellation from another thread and from the owning behaviour
 * (including a tick that already sits in the mailbox), -EALREADY after
 * delivery, drift-free periodic timers, skipping instead of bunching when the
 * I/O loop is late, timers of actors that stop (argument errors, reclamation
 * of the timers and actors, checked through the pool's footprint because pool
 * memory is invisible to LeakSanitizer), and large numbers of timers
 * delivered exactly once or cancelled back to zero pending. Every behaviour
 * records into its state; the test thread checks after bc_runtime_wait().
 */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 20000

static bc_runtime_stats_t stats(bc_runtime_t *rt)
{
    bc_runtime_stats_t s;
    bc_runtime_stats(rt, &s);
    return s;
}

/* Poll timers_pending until it equals `want` or `ms` pass; returns the last value. */
static uint64_t wait_pending(bc_runtime_t *rt, uint64_t want, unsigned ms)
{
    uint64_t deadline = bc_now_ms() + ms;
    uint64_t v;
    while ((v = stats(rt).timers_pending) != want && bc_now_ms() < deadline)
        bc_test_sleep_ms(2);
    return v;
}

/* Send an empty message of `type` to `a`. */
static void poke(bc_actor_t *a, uint32_t type)
{
    bc_msg_t *m = bc_msg_alloc(sizeof *m, type);
    assert_int_equal(bc_send(a, m), 0);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- order */

typedef struct {
    uint32_t type[8];
    uint64_t deadline[8], recv[8], seq[8];
    int n;
} order_state_t;

static void order_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    order_state_t *s = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    bc_timer_tick_t *t = (bc_timer_tick_t *)msg;
    if (s->n < 8) {
        s->type[s->n] = msg->type;
        s->deadline[s->n] = t->deadline_ms;
        s->seq[s->n] = t->seq;
        s->recv[s->n] = bc_now_ms();
    }
    if (++s->n == 3)
        bc_stop(self);
}

/* Three one-shot timers (60, 10, 30 ms) arrive in deadline order, each no
 * earlier than its deadline and within a generous bound of it. */
static void test_oneshot_order(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    order_state_t s;
    memset(&s, 0, sizeof s);
    bc_actor_t *a = bc_spawn(rt, order_behaviour, &s);
    assert_non_null(a);
    uint64_t t0 = bc_now_ms();
    assert_int_equal(bc_timer_start(a, 1, 60, 0, NULL), 0);
    assert_int_equal(bc_timer_start(a, 2, 10, 0, NULL), 0);
    assert_int_equal(bc_timer_start(a, 3, 30, 0, NULL), 0);
    assert_int_equal(bc_runtime_wait(rt, WAIT_MS), 0);
    assert_int_equal(s.n, 3);
    const uint32_t want_type[3] = {2, 3, 1};
    const uint64_t want_delay[3] = {10, 30, 60};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s.type[i], want_type[i]);
        assert_int_equal(s.seq[i], 1);
        assert_true(s.deadline[i] >= t0 + want_delay[i]);
        assert_true(s.recv[i] >= s.deadline[i]);        /* never early */
        assert_true(s.recv[i] <= s.deadline[i] + 2000); /* and not lost */
        if (i > 0)
            assert_true(s.deadline[i] > s.deadline[i - 1]);
    }
    assert_int_equal(stats(rt).messages_dead, 0);
    assert_int_equal(wait_pending(rt, 0, 2000), 0);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- cancel from outside */

typedef struct {
    int cancelled_ticks; /* type 1: must never arrive */
    int alive_ticks;     /* type 2: proves the actor was receiving */
    uint64_t alive_recv;
} cancel_state_t;

static void cancel_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    cancel_state_t *s = st;
    if (msg->type == 1)
        s->cancelled_ticks++;
    if (msg->type == 2) {
        s->alive_ticks++;
        s->alive_recv = bc_now_ms();
        bc_stop(self);
    }
}

/* A timer cancelled from the test thread before its deadline never fires;
 * a later timer on the same actor does. Deadlines fire in order on one
 * thread and the mailbox is FIFO, so once the later tick is in, the
 * cancelled one can no longer come. */
static void test_cancel_before_firing(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    cancel_state_t s;
    memset(&s, 0, sizeof s);
    bc_actor_t *a = bc_spawn(rt, cancel_behaviour, &s);
    assert_non_null(a);
    uint64_t t0 = bc_now_ms();
    bc_timer_t *h = NULL;
    assert_int_equal(bc_timer_start(a, 1, 300, 0, &h), 0);
    assert_non_null(h);
    assert_int_equal(bc_timer_start(a, 2, 500, 0, NULL), 0);
    assert_int_equal(bc_timer_cancel(h), 0);
    assert_int_equal(bc_runtime_wait(rt, WAIT_MS), 0);
    assert_int_equal(s.alive_ticks, 1);
    assert_true(s.alive_recv >= t0 + 500); /* well past the cancelled deadline */
    assert_int_equal(s.cancelled_ticks, 0);
    assert_int_equal(stats(rt).messages_dead, 0);
    assert_int_equal(wait_pending(rt, 0, 2000), 0);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- cancel from inside */

enum { MSG_START = 100, TYPE_TICK = 1, TYPE_DONE = 2 };

typedef struct {
    _Atomic(bc_timer_t *) h; /* started by the test thread once MSG_START is running */
    int cancel_rc;
    int queued;   /* the tick was in the mailbox when we cancelled */
    int ticks;    /* must stay 0 */
    int done;     /* the liveness timer arrived */
    int start_rc; /* of the liveness timer */
} inside_state_t;

static void inside_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    inside_state_t *s = st;
    switch (msg->type) {
    case MSG_START: {
        /* Busy-wait (behaviours must not block, but this one spins on
         * purpose) at least 30 ms and until the test thread's timer has
         * started and its tick reached our mailbox, with a generous bound. A
         * timer started from a worker would only be armed after this turn
         * (runtime/timer.c), so the test thread starts it. */
        uint64_t t0 = bc_now_ms();
        bc_timer_t *h;
        /* acquire: pairs with the test thread's release store. */
        while (bc_now_ms() < t0 + 30 ||
               (((h = atomic_load_explicit(&s->h, memory_order_acquire)) == NULL ||
                 bc_mpscq_maybe_empty(&self->mq)) &&
                bc_now_ms() < t0 + 5000)) {
        }
        h = atomic_load_explicit(&s->h, memory_order_acquire);
        if (h == NULL)
            break;
        s->queued = !bc_mpscq_maybe_empty(&self->mq);
        s->cancel_rc = bc_timer_cancel(h);
        s->start_rc = bc_timer_start(self, TYPE_DONE, 50, 0, NULL);
        break;
    }
    case TYPE_TICK:
        s->ticks++;
        break;
    case TYPE_DONE:
        s->done++;
        bc_stop(self);
        break;
    default:
        break;
    }
}

/* Cancel from the owning behaviour while the tick is already queued: the
 * cancel succeeds and the queued tick is dropped before the behaviour. */
static void test_cancel_inside_with_tick_queued(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    inside_state_t s;
    memset(&s, 0, sizeof s);
    s.cancel_rc = 1;
    bc_actor_t *a = bc_spawn(rt, inside_behaviour, &s);
    assert_non_null(a);
    poke(a, MSG_START);
    bc_timer_t *h = NULL;
    assert_int_equal(bc_timer_start(a, TYPE_TICK, 1, 0, &h), 0);
    /* release: the behaviour's acquire sees the handle. */
    atomic_store_explicit(&s.h, h, memory_order_release);
    assert_int_equal(bc_runtime_wait(rt, WAIT_MS), 0);
    assert_non_null(h);
    assert_int_equal(s.queued, 1);
    assert_int_equal(s.cancel_rc, 0);
    assert_int_equal(s.start_rc, 0);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.ticks, 0);
    assert_int_equal(stats(rt).messages_dead, 0);
    assert_int_equal(wait_pending(rt, 0, 2000), 0);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- cancel after delivery */

typedef struct {
    bc_timer_t *ha;
    int rc_a; /* cancel of timer A from its own tick handler */
    int got_a, got_b;
} after_state_t;

static void after_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    after_state_t *s = st;
    switch (msg->type) {
    case MSG_START:
        if (bc_timer_start(self, 1, 5, 0, &s->ha) != 0)
            s->rc_a = -9999;
        break;
    case 1:
        s->got_a++;
        s->rc_a = bc_timer_cancel(s->ha);
        break;
    case 2:
        s->got_b++;
        break;
    default:
        break;
    }
    if (msg->type != BC_MSG_STOPPED && s->got_a && s->got_b)
        bc_stop(self);
}

/* bc_timer_cancel of a one-shot that was delivered returns -EALREADY, both
 * from inside its tick's handler and from another thread afterwards. */
static void test_cancel_after_delivery(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    after_state_t s;
    memset(&s, 0, sizeof s);
    bc_actor_t *a = bc_spawn(rt, after_behaviour, &s);
    assert_non_null(a);
    poke(a, MSG_START);
    bc_timer_t *hb = NULL;
    assert_int_equal(bc_timer_start(a, 2, 5, 0, &hb), 0);
    assert_int_equal(bc_runtime_wait(rt, WAIT_MS), 0);
    assert_int_equal(s.got_a, 1);
    assert_int_equal(s.got_b, 1);
    assert_int_equal(s.rc_a, -EALREADY);
    assert_int_equal(bc_timer_cancel(hb), -EALREADY);
    assert_int_equal(bc_timer_cancel(NULL), -EINVAL);
    assert_int_equal(wait_pending(rt, 0, 2000), 0);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- periodic */

#define DRIFT_TICKS 50
#define PERIOD 10

typedef struct {
    bc_timer_t *h;
    uint64_t deadline[DRIFT_TICKS], seq[DRIFT_TICKS], recv[DRIFT_TICKS];
    int n;
    int cancel_rc, cancelled, after_cancel, done, start_rc;
} drift_state_t;

static void drift_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    drift_state_t *s = st;
    if (msg->type == MSG_START) {
        s->start_rc = bc_timer_start(self, TYPE_TICK, PERIOD, PERIOD, &s->h);
    } else if (msg->type == TYPE_TICK) {
        if (s->cancelled) {
            s->after_cancel++;
            return;
        }
        bc_timer_tick_t *t = (bc_timer_tick_t *)msg;
        s->deadline[s->n] = t->deadline_ms;
        s->seq[s->n] = t->seq;
        s->recv[s->n] = bc_now_ms();
        if (++s->n == DRIFT_TICKS) {
            s->cancel_rc = bc_timer_cancel(s->h);
            s->cancelled = 1;
            /* Ten more periods for a stray tick to show up. */
            if (bc_timer_start(self, TYPE_DONE, 10 * PERIOD, 0, NULL) != 0)
                bc_stop(self);
        }
    } else if (msg->type == TYPE_DONE) {
        s->done++;
        bc_stop(self);
    }
}

/* 50 ticks of a 10 ms periodic timer: seq counts up by one and each deadline
 * is the previous one plus the period, exactly (no drift). A late I/O loop
 * may legitimately skip grid points; a skip can only follow a tick that the
 * loop sent at least one period late, so the exact step is required wherever
 * the previous tick reached the behaviour less than a period after its
 * deadline (which is every tick on an unloaded machine, and at least half of
 * them is required). After a cancel from the behaviour, no tick arrives. */
static void test_periodic_no_drift(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    drift_state_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    bc_actor_t *a = bc_spawn(rt, drift_behaviour, s);
    assert_non_null(a);
    poke(a, MSG_START);
    assert_int_equal(bc_runtime_wait(rt, WAIT_MS), 0);
    assert_int_equal(s->start_rc, 0);
    assert_int_equal(s->n, DRIFT_TICKS);
    assert_int_equal(s->cancel_rc, 0);
    assert_int_equal(s->done, 1);
    assert_int_equal(s->after_cancel, 0);
    int exact_checked = 0;
    for (int k = 0; k < DRIFT_TICKS; k++) {
        assert_int_equal(s->seq[k], (uint64_t)k + 1);
        assert_true(s->recv[k] >= s->deadline[k]);
        assert_int_equal((s->deadline[k] - s->deadline[0]) % PERIOD, 0); /* on the grid */
        if (k == 0)
            continue;
        assert_true(s->deadline[k] > s->deadline[k - 1]);
        if (s->recv[k - 1] < s->deadline[k - 1] + PERIOD) {
            assert_int_equal(s->deadline[k], s->deadline[k - 1] + PERIOD);
            exact_checked++;
        }
    }
    assert_true(exact_checked >= (DRIFT_TICKS - 1) / 2);
    if (exact_checked == DRIFT_TICKS - 1)
        assert_int_equal(s->deadline[DRIFT_TICKS - 1],
                         s->deadline[0] + (uint64_t)(DRIFT_TICKS - 1) * PERIOD);
    assert_int_equal(wait_pending(rt, 0, 2000), 0);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
    free(s);
}

#define LATE_TICKS 15

typedef struct {
    bc_io_task_t block; /* late-loop variant: blocks the I/O thread */
    _Atomic uint64_t block_start, block_end;
    int block_loop; /* which variant */
    bc_timer_t *h;
    uint64_t deadline[LATE_TICKS], seq[LATE_TICKS], recv[LATE_TICKS];
    int n, start_rc, cancel_rc;
} late_state_t;

static void block_io_task(bc_io_t *io, bc_io_task_t *task)
{
    late_state_t *s = bc_container_of(task, late_state_t, block);
    (void)io;
    atomic_store(&s->block_start, bc_now_ms());
    uint64_t t0 = bc_now_ms();
    while (bc_now_ms() < t0 + 60)
        bc_test_sleep_ms(5);
    atomic_store(&s->block_end, bc_now_ms());
}

static void late_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    late_state_t *s = st;
    if (msg->type == MSG_START) {
        s->start_rc = bc_timer_start(self, TYPE_TICK, PERIOD, PERIOD, &s->h);
        return;
    }
    if (msg->type != TYPE_TICK || s->n == LATE_TICKS)
        return;
    bc_timer_tick_t *t = (bc_timer_tick_t *)msg;
    s->deadline[s->n] = t->deadline_ms;
    s->seq[s->n] = t->seq;
    s->recv[s->n] = bc_now_ms();
    s->n++;
    if (!s->block_loop && t->seq == 1) {
        /* The behaviour is late: spin ~55 ms on the first tick. */
        uint64_t t0 = bc_now_ms();
        while (bc_now_ms() < t0 + 55) {
        }
    }
    if (s->block_loop && t->seq == 3) {
        s->block.fn = block_io_task;
        bc_io_post(bc_actor_runtime(self), &s->block);
    }
    if (s->n == LATE_TICKS) {
        s->cancel_rc = bc_timer_cancel(s->h);
        bc_stop(self);
    }
}

static late_state_t *run_late(int block_loop)
{
    bc_runtime_t *rt = bc_test_runtime(2);
    late_state_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->block_loop = block_loop;
    s->cancel_rc = 1;
    bc_actor_t *a = bc_spawn(rt, late_behaviour, s);
    assert_non_null(a);
    poke(a, MSG_START);
    assert_int_equal(bc_runtime_wait(rt, WAIT_MS), 0);
    assert_int_equal(s->start_rc, 0);
    assert_int_equal(s->n, LATE_TICKS);
    assert_int_equal(s->cancel_rc, 0);
    for (int k = 0; k < LATE_TICKS; k++) {
        assert_int_equal(s->seq[k], (uint64_t)k + 1);
        assert_true(s->recv[k] >= s->deadline[k]);
        assert_int_equal((s->deadline[k] - s->deadline[0]) % PERIOD, 0); /* on the grid */
        for (int j = 0; j < k; j++)
            assert_true(s->deadline[j] != s->deadline[k]); /* never two on one deadline */
        if (k > 0)
            assert_true(s->deadline[k] > s->deadline[k - 1]);
    }
    assert_int_equal(wait_pending(rt, 0, 2000), 0);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
    return s;
}

/* The behaviour blocks ~55 ms on the first tick of a 10 ms periodic timer:
 * later deadlines stay on the 10 ms grid, strictly increasing, never two
 * ticks for one deadline. */
static void test_periodic_late_behaviour(void **state)
{
    (void)state;
    late_state_t *s = run_late(0);
    assert_true(s->recv[0] + 55 <= s->recv[1]); /* the behaviour really was late */
    free(s);
}

/* The I/O loop itself is late (a posted task holds it ~60 ms): the ticks it
 * missed are skipped, not sent in a burst. A deadline strictly inside the
 * blocked window can only be fired after the window, and after one such
 * late tick the next deadline is placed past the current time, so at most
 * one delivered tick has its deadline inside the window (a bunching timer
 * would deliver about five). */
static void test_periodic_late_loop_skips(void **state)
{
    (void)state;
    late_state_t *s = run_late(1);
    uint64_t b0 = atomic_load(&s->block_start), b1 = atomic_load(&s->block_end);
    assert_true(b0 != 0 && b1 >= b0 + 55);
    int inside = 0, after = 0;
    for (int k = 0; k < LATE_TICKS; k++) {
        if (s->deadline[k] > b0 && s->deadline[k] < b1)
            inside++;
        if (s->deadline[k] >= b1)
            after++;
    }
    assert_true(inside <= 1);
    assert_true(after >= 1); /* the timer went on after the block */
    free(s);
}

/* ---------------------------------------------------------------- stopping actors */

typedef struct {
    int ticks;
    int stopped;
} stopper_state_t;

static void stopper_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    stopper_state_t *s = st;
    if (msg->type == BC_MSG_STOPPED) {
        s->stopped++;
        return;
    }
    if (msg->type == TYPE_TICK && ++s->ticks == 3)
        bc_stop(self);
}

static void idle_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    (void)self;
    (void)st;
    (void)msg;
}

/* An actor that stops with timers pending: its periodic timers are dropped
 * at their next tick (timers_pending falls to what remains), a start on it
 * returns -ESRCH, argument errors return -EINVAL, and the runtime is
 * destroyed with a long one-shot still pending (ASan: no leak, no UAF). */
static void test_timers_of_stopping_actor(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    stopper_state_t s;
    memset(&s, 0, sizeof s);
    bc_actor_t *x = bc_spawn(rt, stopper_behaviour, &s);
    bc_actor_t *y = bc_spawn(rt, idle_behaviour, NULL);
    assert_non_null(x);
    assert_non_null(y);
    bc_timer_t *hx = NULL;
    assert_int_equal(bc_timer_start(x, TYPE_TICK, 5, 5, &hx), 0);
    assert_int_equal(bc_timer_start(x, 7, 3, 7, NULL), 0);      /* periodic, no handle */
    assert_int_equal(bc_timer_start(x, 8, 600000, 0, NULL), 0); /* stays until destroy */
    assert_int_equal(bc_timer_start(y, 9, 600000, 0, NULL), 0); /* stays until destroy */
    /* x stops itself; y lives on, so wait on x's flag, not on the runtime. */
    uint64_t t0 = bc_now_ms();
    while (bc_actor_alive(x) && bc_now_ms() < t0 + WAIT_MS)
        bc_test_sleep_ms(2);
    assert_int_equal(bc_actor_alive(x), 0);
    assert_int_equal(s.ticks, 3);
    /* Both periodic timers of x go at their next tick. */
    assert_int_equal(wait_pending(rt, 2, 5000), 2);

    bc_timer_t *h = (bc_timer_t *)&h;
    assert_int_equal(bc_timer_start(x, 1, 10, 0, &h), -ESRCH);
    assert_null(h);
    assert_int_equal(bc_timer_start(x, 1, 10, 10, NULL), -ESRCH);
    h = (bc_timer_t *)&h;
    assert_int_equal(bc_timer_start(y, BC_MSG_SYSTEM, 10, 0, &h), -EINVAL);
    assert_null(h);
    assert_int_equal(bc_timer_start(y, BC_MSG_STOPPED, 10, 0, NULL), -EINVAL);
    assert_int_equal(bc_timer_start(y, 0xffffffffu, 10, 0, NULL), -EINVAL);
    h = (bc_timer_t *)&h;
    assert_int_equal(bc_timer_start(NULL, 1, 10, 0, &h), -EINVAL);
    assert_null(h);
    assert_int_equal(bc_timer_start(y, BC_MSG_SYSTEM - 1, 600000, 0, NULL), 0);
    assert_int_equal(wait_pending(rt, 3, 2000), 3);

    bc_timer_release(hx);
    bc_actor_release(x);
    bc_actor_release(y);
    bc_runtime_destroy(rt);
    assert_int_equal(s.stopped, 1);
}

static void stop_on_tick_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    (void)st;
    if (msg->type == TYPE_TICK)
        bc_stop(self);
}

/* Rounds of actors that each stop on the first tick of their own periodic
 * timer (due after 1 ms, then every 50 ms: the period only has to come
 * round once more for the timer to notice the stop, and is long enough that
 * ticks do not pile up in slow mailboxes and blur the footprint). Actors,
 * timers and ticks come from the pools, which LeakSanitizer cannot see into,
 * so a leak shows as the pools' footprint growing from round to round;
 * reclaimed memory is reused and the footprint stays flat after a warm-up.
 * Ticks sent from the I/O thread schedule idle actors through the inject
 * queue: this test also caught actors stranded there at the end of a burst
 * (see test_io_thread_sends_wake_idle_actors in test_io.c). */
static void test_stopped_actor_timers_reclaimed(void **state)
{
    (void)state;
    enum { rounds = 10, warmup = 3 };
    uint64_t n = bc_test_scaled(20000, 4000);
    bc_runtime_t *rt = bc_test_runtime(2);
    bc_actor_t **as = malloc(n * sizeof *as);
    assert_non_null(as);
    size_t reserved_after[rounds] = {0};
    int wait_rc = 0;
    uint64_t pending = 0;
    for (int r = 0; r < rounds && wait_rc == 0 && pending == 0; r++) {
        for (uint64_t i = 0; i < n; i++) {
            as[i] = bc_spawn(rt, stop_on_tick_behaviour, NULL);
            assert_non_null(as[i]);
            assert_int_equal(bc_timer_start(as[i], TYPE_TICK, 1, 50, NULL), 0);
        }
        wait_rc = bc_runtime_wait(rt, 20000);
        pending = wait_pending(rt, 0, 20000);
        for (uint64_t i = 0; i < n; i++)
            bc_actor_release(as[i]);
        reserved_after[r] = bc_pool_bytes_reserved();
    }
    bc_runtime_stats_t st = stats(rt);
    free(as);
    bc_runtime_destroy(rt);
    assert_int_equal(wait_rc, 0);
    assert_int_equal(pending, 0);
    assert_int_equal(st.actors_live, 0);
    assert_int_equal(st.actors_stopped, (uint64_t)rounds * n);
    /* A leak of the actor (128 B) or of the timer (128 B) alone would grow
     * the footprint by n * 128 B in each round after the warm-up. */
    size_t growth = reserved_after[rounds - 1] - reserved_after[warmup - 1];
    assert_true(growth < 2 * n * 128);
}

/* ---------------------------------------------------------------- many timers */

#define MANY_ACTORS 4

typedef struct {
    unsigned id;
    uint8_t *seen; /* per timer index / MANY_ACTORS */
    uint64_t want, got, dup, wrong, early, badseq;
} many_state_t;

static void many_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    many_state_t *s = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    bc_timer_tick_t *t = (bc_timer_tick_t *)msg;
    uint64_t idx = msg->type - 1;
    if (idx % MANY_ACTORS != s->id) {
        s->wrong++;
        return;
    }
    if (s->seen[idx / MANY_ACTORS]++)
        s->dup++;
    if (bc_now_ms() < t->deadline_ms)
        s->early++;
    if (t->seq != 1)
        s->badseq++;
    if (++s->got == s->want)
        bc_stop(self);
}

/* 1,000,000 (scaled) one-shot timers, random delays 0..500 ms, on four
 * actors. Each timer's index is its tick type, so every single timer is
 * checked to be delivered exactly once, to the right actor, never early. */
static void test_many_timers_exactly_once(void **state)
{
    (void)state;
    uint64_t n = bc_test_scaled(1000000, 20000);
    bc_runtime_t *rt = bc_test_runtime(2);
    many_state_t s[MANY_ACTORS];
    bc_actor_t *a[MANY_ACTORS];
    for (unsigned i = 0; i < MANY_ACTORS; i++) {
        memset(&s[i], 0, sizeof s[i]);
        s[i].id = i;
        s[i].want = n / MANY_ACTORS + (i < n % MANY_ACTORS);
        s[i].seen = calloc(n / MANY_ACTORS + 1, 1);
        assert_non_null(s[i].seen);
        a[i] = bc_spawn(rt, many_behaviour, &s[i]);
        assert_non_null(a[i]);
    }
    for (uint64_t k = 0; k < n; k++)
        assert_int_equal(
            bc_timer_start(a[k % MANY_ACTORS], (uint32_t)(k + 1), rnd() % 501, 0, NULL), 0);
    assert_int_equal(bc_runtime_wait(rt, 120000), 0);
    for (unsigned i = 0; i < MANY_ACTORS; i++) {
        assert_int_equal(s[i].got, s[i].want);
        assert_int_equal(s[i].dup, 0);
        assert_int_equal(s[i].wrong, 0);
        assert_int_equal(s[i].early, 0);
        assert_int_equal(s[i].badseq, 0);
        for (uint64_t j = 0; j < s[i].want; j++)
            assert_int_equal(s[i].seen[j], 1);
    }
    assert_int_equal(wait_pending(rt, 0, 5000), 0);
    bc_test_sleep_ms(50);
    assert_int_equal(stats(rt).messages_dead, 0); /* no second tick of any timer */
    for (unsigned i = 0; i < MANY_ACTORS; i++) {
        bc_actor_release(a[i]);
        free(s[i].seen);
    }
    bc_runtime_destroy(rt);
}

enum { TYPE_SHORT = 1, TYPE_LONG = 2, TYPE_FINISH = 3 };

typedef struct {
    uint64_t shorts, longs;
    int finished;
} pairs_state_t;

static void pairs_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    pairs_state_t *s = st;
    if (msg->type == TYPE_SHORT)
        s->shorts++;
    else if (msg->type == TYPE_LONG)
        s->longs++;
    else if (msg->type == TYPE_FINISH) {
        s->finished++;
        bc_stop(self);
    }
}

/* Cancel one start+cancel pair's timer and classify the result. */
typedef struct {
    uint64_t zero, already, bad, long_not_zero;
} pairs_count_t;

static void cancel_pair(bc_timer_t *h, int is_long, pairs_count_t *c)
{
    int rc = bc_timer_cancel(h);
    if (rc == 0)
        c->zero++;
    else if (rc == -EALREADY)
        c->already++;
    else
        c->bad++;
    if (is_long && rc != 0)
        c->long_not_zero++;
}

#define PAIRS_LAG 16384

/* 1,000,000 (scaled) start+cancel pairs, each timer cancelled PAIRS_LAG
 * starts after its own start. Half the timers are due within 0..5 ms, so
 * some fire before their cancel and some do not: for a one-shot, cancel
 * returns 0 exactly when the tick will not reach the behaviour, so the ticks
 * seen must equal the -EALREADY results. The other half are due in 10
 * minutes and only go away if cancel removes them: timers_pending returns
 * to 0. A final timer due after all of them closes the count (the loop fires
 * in deadline order and the mailbox is FIFO). */
static void test_many_start_cancel_pairs(void **state)
{
    (void)state;
    uint64_t n = bc_test_scaled(1000000, 20000);
    bc_runtime_t *rt = bc_test_runtime(2);
    pairs_state_t s;
    memset(&s, 0, sizeof s);
    bc_actor_t *a = bc_spawn(rt, pairs_behaviour, &s);
    assert_non_null(a);
    pairs_count_t c;
    memset(&c, 0, sizeof c);
    bc_timer_t **ring = calloc(PAIRS_LAG, sizeof *ring);
    assert_non_null(ring);
    for (uint64_t k = 0; k < n + PAIRS_LAG; k++) {
        bc_timer_t **slot = &ring[k % PAIRS_LAG];
        if (k >= PAIRS_LAG)
            cancel_pair(*slot, (k - PAIRS_LAG) & 1, &c);
        if (k >= n)
            continue;
        int is_long = k & 1;
        assert_int_equal(bc_timer_start(a, is_long ? TYPE_LONG : TYPE_SHORT,
                                        is_long ? 600000 : rnd() % 6, 0, slot),
                         0);
        assert_non_null(*slot);
    }
    assert_int_equal(bc_timer_start(a, TYPE_FINISH, 100, 0, NULL), 0);
    assert_int_equal(bc_runtime_wait(rt, 120000), 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.long_not_zero, 0);
    assert_int_equal(c.zero + c.already, n);
    assert_int_equal(s.finished, 1);
    assert_int_equal(s.longs, 0);
    assert_int_equal(s.shorts, c.already);
    assert_int_equal(wait_pending(rt, 0, 20000), 0);
    free(ring);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- the I/O thread's turns */

/* Where each tick ran: bc_worker_id() is the worker's index, or `workers` on the I/O thread. */
typedef struct {
    int nworkers;
    _Atomic int ticks, on_io, on_worker, elsewhere;
} where_t;

static void where_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    where_t *s = st;
    (void)self;
    if (msg->type != TYPE_TICK)
        return;
    int id = bc_worker_id();
    atomic_fetch_add(id == s->nworkers             ? &s->on_io
                     : id >= 0 && id < s->nworkers ? &s->on_worker
                                                   : &s->elsewhere,
                     1);
    atomic_fetch_add(&s->ticks, 1);
}

/* 100 ticks 2 ms apart to one actor; workers that park at once (spin 1 us). */
static void run_where(int io_run, where_t *s, bc_runtime_stats_t *rs)
{
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 2;
    o.spin_us = 1;
    o.io_run = io_run;
    bc_runtime_t *rt = NULL;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    s->nworkers = (int)bc_runtime_workers(rt);
    bc_actor_t *a = bc_spawn(rt, where_behaviour, s);
    assert_non_null(a);
    bc_timer_t *h = NULL;
    assert_int_equal(bc_timer_start(a, TYPE_TICK, 2, 2, &h), 0);
    for (unsigned t = 0; t < WAIT_MS && atomic_load(&s->ticks) < 100; t += 2)
        bc_test_sleep_ms(2);
    bc_timer_cancel(h);
    *rs = stats(rt);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

/* io_run (the default): a tick that finds every worker parked runs on the I/O thread that
 * fired it, instead of waking a worker (how often: timing; at least once in 100). Off: never.
 * Every tick runs on a runtime thread either way, exactly once. */
static void test_io_thread_turns(void **state)
{
    (void)state;
    where_t on = {0}, off = {0};
    bc_runtime_stats_t rs_on, rs_off;
    run_where(0, &on, &rs_on);
    run_where(-1, &off, &rs_off);
    fprintf(stderr, "io_run on: %d of %d ticks on the I/O thread (%llu turns); off: %d\n",
            atomic_load(&on.on_io), atomic_load(&on.ticks), (unsigned long long)rs_on.io_turns,
            atomic_load(&off.on_io));
    assert_true(atomic_load(&on.ticks) >= 100);
    assert_true(atomic_load(&off.ticks) >= 100);
    assert_int_equal(atomic_load(&on.elsewhere), 0);
    assert_int_equal(atomic_load(&off.elsewhere), 0);
    assert_true(atomic_load(&on.on_io) >= 1);
    assert_true(rs_on.io_turns >= 1);
    assert_int_equal(atomic_load(&off.on_io), 0);
    assert_int_equal(rs_off.io_turns, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oneshot_order),
        cmocka_unit_test(test_cancel_before_firing),
        cmocka_unit_test(test_cancel_inside_with_tick_queued),
        cmocka_unit_test(test_cancel_after_delivery),
        cmocka_unit_test(test_periodic_no_drift),
        cmocka_unit_test(test_periodic_late_behaviour),
        cmocka_unit_test(test_periodic_late_loop_skips),
        cmocka_unit_test(test_timers_of_stopping_actor),
        cmocka_unit_test(test_stopped_actor_timers_reclaimed),
        cmocka_unit_test(test_many_timers_exactly_once),
        cmocka_unit_test(test_many_start_cancel_pairs),
        cmocka_unit_test(test_io_thread_turns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
