/* test_actor.c - actor lifecycle and misuse: stop semantics, handles that
 * outlive their actor, invalid arguments, kept and large messages. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <string.h>

typedef struct {
    uint64_t handled;
    uint64_t at_stop; /* handled when BC_MSG_STOPPED arrived */
    int stopped_calls;
    int wait_rc;
    bc_actor_t *spawned_late;
} count_state_t;

static void counter(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    count_state_t *c = st;
    (void)self;
    if (msg->type == BC_MSG_STOPPED) {
        c->at_stop = c->handled;
        c->stopped_calls++;
        return;
    }
    c->handled++;
}

/* Everything sent before bc_stop is handled before BC_MSG_STOPPED; sends after
 * it are refused; nothing leaks (ASan build). */
static void test_stop_with_messages_in_flight(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    count_state_t c;
    memset(&c, 0, sizeof c);
    bc_actor_t *a = bc_spawn(rt, counter, &c);
    uint64_t n = bc_test_scaled(100000, 1000);
    for (uint64_t i = 0; i < n; i++)
        assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1)), 0);
    assert_int_equal(bc_stop(a), 0);
    assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1)), -ESRCH);
    assert_int_equal(bc_runtime_wait(rt, 30000), 0);
    assert_int_equal(c.at_stop, n);
    assert_int_equal(c.handled, n);
    assert_int_equal(c.stopped_calls, 1);
    bc_runtime_stats_t s;
    bc_runtime_stats(rt, &s);
    assert_int_equal(s.messages_dead, 1);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

/* The handle outlives the actor: sends and stops are refused, not crashes. */
/* bc_actor_alive() turns 0 only once the BC_MSG_STOPPED turn has returned, so a waiter may free
 * what that turn reads (bc_hub_destroy does): the turn here takes 50 ms before it finishes. */
static void slow_stop(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    (void)self;
    if (msg->type == BC_MSG_STOPPED) {
        bc_test_sleep_ms(50);
        /* release: pairs with the test thread's acquire. */
        atomic_store_explicit((_Atomic int *)st, 1, memory_order_release);
    }
}

static void test_alive_until_last_turn_returns(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    _Atomic int done = 0;
    bc_actor_t *a = bc_spawn(rt, slow_stop, &done);
    assert_int_equal(bc_stop(a), 0);
    while (bc_actor_alive(a))
        bc_test_sleep_ms(1);
    assert_int_equal(atomic_load_explicit(&done, memory_order_acquire), 1);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

static void test_handle_outlives_actor(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    count_state_t c;
    memset(&c, 0, sizeof c);
    bc_actor_t *a = bc_spawn(rt, counter, &c);
    bc_actor_t *extra = bc_actor_retain(a);
    assert_int_equal(bc_actor_alive(a), 1);
    assert_int_equal(bc_stop(a), 0);
    assert_int_equal(bc_stop(a), -EALREADY); /* stopping twice */
    assert_int_equal(bc_runtime_wait(rt, 10000), 0);
    assert_int_equal(bc_actor_alive(a), 0);
    assert_int_equal(bc_stop(a), -EALREADY); /* stopping a stopped actor */
    assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1)), -ESRCH);
    assert_int_equal(bc_timer_start(a, 1, 10, 0, NULL), -ESRCH);
    assert_int_equal(c.stopped_calls, 1);
    bc_actor_release(a);
    assert_int_equal(bc_send(extra, bc_msg_alloc(sizeof(bc_msg_t), 1)), -ESRCH);
    bc_actor_release(extra);
    bc_runtime_destroy(rt);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    bc_runtime_t *rt;
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 1000;
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    bc_runtime_opts_init(&o);
    o.io_direct = 2; /* -1, 0 or 1 */
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    o.io_direct = -2;
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    bc_runtime_opts_init(&o);
    o.io_poll = 2; /* -1, 0 or 1 */
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    o.io_poll = -2;
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    bc_runtime_opts_init(&o);
    o.io_run = 2; /* -1, 0 or 1 */
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    o.io_run = -2;
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    bc_runtime_opts_init(&o);
    o.io_spin_us = -2;
    assert_int_equal(bc_runtime_create(&o, &rt), -EINVAL);
    assert_int_equal(bc_runtime_create(NULL, NULL), -EINVAL);
    rt = bc_test_runtime(1);
    count_state_t c;
    memset(&c, 0, sizeof c);
    assert_null(bc_spawn(rt, NULL, NULL));
    assert_null(bc_spawn(NULL, counter, &c));
    assert_null(bc_msg_alloc(4, 1)); /* smaller than a header */
    assert_int_equal(bc_send(NULL, bc_msg_alloc(sizeof(bc_msg_t), 1)), -EINVAL); /* freed */
    bc_actor_t *a = bc_spawn(rt, counter, &c);
    assert_int_equal(bc_send(a, NULL), -EINVAL);
    assert_int_equal(bc_send_chain(a, NULL, NULL), -EINVAL);
    assert_int_equal(bc_stop(NULL), -EINVAL);
    assert_int_equal(bc_actor_set_affinity(a, 5), -EINVAL);
    assert_int_equal(bc_actor_set_affinity(a, -2), -EINVAL);
    assert_int_equal(bc_actor_set_affinity(NULL, 0), -EINVAL);
    assert_int_equal(bc_timer_start(NULL, 1, 1, 0, NULL), -EINVAL);
    assert_int_equal(bc_timer_start(a, BC_MSG_STOPPED, 1, 0, NULL), -EINVAL);
    assert_int_equal(bc_timer_cancel(NULL), -EINVAL);
    bc_actor_release(NULL); /* no-op */
    bc_msg_free(NULL);      /* no-op */
    assert_string_equal(bc_strerror(-ESRCH), "No such process");
    assert_non_null(bc_strerror(-99999));
    bc_actor_release(a);
    bc_runtime_destroy(rt);
    bc_runtime_destroy(NULL); /* no-op */
}

/* Calling the blocking wait from a worker would deadlock: refused. */
static void waiter(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    count_state_t *c = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    c->wait_rc = bc_runtime_wait(bc_actor_runtime(self), 0);
    bc_stop(self);
}

static void test_wait_from_worker_refused(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(1);
    count_state_t c;
    memset(&c, 0, sizeof c);
    bc_actor_t *a = bc_spawn(rt, waiter, &c);
    bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1));
    assert_int_equal(bc_runtime_wait(rt, 10000), 0);
    assert_int_equal(c.wait_rc, -EDEADLK);
    assert_int_equal(bc_runtime_wait(rt, 0), 0); /* nothing alive: returns at once */
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

/* Destroy with live actors and messages queued: each actor handles its queue,
 * then BC_MSG_STOPPED; a spawn attempted during destruction is refused. */
static void late_spawner(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    count_state_t *c = st;
    if (msg->type == BC_MSG_STOPPED) {
        c->at_stop = c->handled;
        c->stopped_calls++;
        c->spawned_late = bc_spawn(bc_actor_runtime(self), counter, NULL);
        return;
    }
    c->handled++;
}

static void test_destroy_drains_everything(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    enum { N = 100 };
    count_state_t c[N];
    memset(c, 0, sizeof c);
    for (int i = 0; i < N; i++) {
        bc_actor_t *a = bc_spawn(rt, late_spawner, &c[i]);
        for (int k = 0; k < 100; k++)
            bc_send(a, bc_msg_alloc(sizeof(bc_msg_t) + (size_t)k * 64, 1));
        bc_timer_start(a, 2, 3600 * 1000, 0, NULL); /* pending for an hour */
        bc_actor_release(a);
    }
    bc_runtime_destroy(rt); /* must not hang, crash or leak */
    for (int i = 0; i < N; i++) {
        assert_int_equal(c[i].stopped_calls, 1);
        assert_int_equal(c[i].at_stop, 100);
        assert_null(c[i].spawned_late);
    }
}

/* A kept message is forwarded without copying; a large message works. */
typedef struct {
    bc_actor_t *next;
    bc_msg_t *seen;
    int hops;
} fwd_state_t;

static void forwarder(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    fwd_state_t *f = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    f->seen = msg;
    f->hops++;
    if (f->next) {
        bc_msg_keep(msg);
        bc_send(f->next, msg);
    } else {
        unsigned char *body = (unsigned char *)msg + sizeof(bc_msg_t);
        for (size_t i = 0; i < 100000 - sizeof(bc_msg_t); i++)
            if (body[i] != (unsigned char)i)
                f->hops = -1000;
        bc_stop(self);
    }
}

static void test_keep_and_large_messages(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    fwd_state_t f[3];
    memset(f, 0, sizeof f);
    bc_actor_t *a[3];
    for (int i = 2; i >= 0; i--) {
        f[i].next = i < 2 ? a[i + 1] : NULL;
        a[i] = bc_spawn(rt, forwarder, &f[i]);
    }
    unsigned char *m = bc_msg_alloc(100000, 9);
    for (size_t i = 0; i < 100000 - sizeof(bc_msg_t); i++)
        m[sizeof(bc_msg_t) + i] = (unsigned char)i;
    assert_int_equal(bc_send(a[0], (bc_msg_t *)m), 0);
    /* The last actor stops itself once the message arrived; only then stop
     * the forwarders (stopping them earlier would refuse the forward). */
    uint64_t t0 = bc_now_ms();
    while (bc_actor_alive(a[2]) && bc_now_ms() - t0 < 30000)
        bc_test_sleep_ms(1);
    assert_int_equal(bc_actor_alive(a[2]), 0);
    assert_int_equal(bc_runtime_wait(rt, 0), -ETIMEDOUT); /* a[0], a[1] still alive */
    for (int i = 0; i < 2; i++)
        bc_stop(a[i]);
    assert_int_equal(bc_runtime_wait(rt, 10000), 0);
    assert_int_equal(f[0].hops, 1);
    assert_int_equal(f[1].hops, 1);
    assert_int_equal(f[2].hops, 1);         /* and the payload arrived intact */
    assert_ptr_equal(f[0].seen, f[2].seen); /* the same message, not a copy */
    for (int i = 0; i < 3; i++)
        bc_actor_release(a[i]);
    bc_runtime_destroy(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_with_messages_in_flight),
        cmocka_unit_test(test_handle_outlives_actor),
        cmocka_unit_test(test_alive_until_last_turn_returns),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_wait_from_worker_refused),
        cmocka_unit_test(test_destroy_drains_everything),
        cmocka_unit_test(test_keep_and_large_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
