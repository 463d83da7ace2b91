/* test_mailbox.c - the intrusive MPSC mailbox (runtime/mpscq.h) and sending
 * to one actor from many threads. */
#include "harness.h"
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 4

typedef struct {
    bc_msg_t hdr;
    uint32_t producer;
    uint64_t seq;
} seq_msg_t;

typedef struct {
    bc_mpscq_t *q;
    uint32_t id;
    uint64_t n;
    _Atomic uint64_t *woke;
} producer_arg_t;

static void *producer_main(void *p)
{
    producer_arg_t *a = p;
    for (uint64_t i = 0; i < a->n; i++) {
        seq_msg_t *m = bc_msg_alloc(sizeof *m, 1);
        m->producer = a->id;
        m->seq = i;
        if (bc_mpscq_push(a->q, &m->hdr) == BC_MPSCQ_WOKE && a->woke)
            atomic_fetch_add(a->woke, 1);
    }
    return NULL;
}

/* 4 producers x 1,000,000: every message exactly once, per-producer order. */
static void test_mpsc_exactly_once_in_order(void **state)
{
    (void)state;
    uint64_t n = bc_test_scaled(1000000, 10000);
    bc_mpscq_t q;
    bc_mpscq_init(&q, 0);
    pthread_t th[PRODUCERS];
    producer_arg_t args[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        args[i] = (producer_arg_t){&q, i, n, NULL};
        assert_int_equal(pthread_create(&th[i], NULL, producer_main, &args[i]), 0);
    }
    uint64_t next[PRODUCERS] = {0};
    uint64_t total = 0, want = n * PRODUCERS;
    while (total < want) {
        bc_msg_t *m = bc_mpscq_pop(&q);
        if (m == NULL)
            continue;
        seq_msg_t *s = (seq_msg_t *)m;
        assert_true(s->producer < PRODUCERS);
        /* exactly once and in order: the next expected sequence number */
        assert_int_equal(s->seq, next[s->producer]);
        next[s->producer]++;
        total++;
        bc_msg_free(m);
    }
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(next[i], n);
    }
    assert_null(bc_mpscq_pop(&q));
    assert_true(bc_mpscq_mark_idle(&q, false));
}

/* The idle bit: a push reports WOKE exactly when the consumer had gone idle,
 * and a consumer that goes idle never strands a message. */
typedef struct {
    bc_mpscq_t q;
    _Atomic uint64_t woke;
    _Atomic int done;
} idle_ctx_t;

static void test_idle_bit_protocol(void **state)
{
    (void)state;
    uint64_t n = bc_test_scaled(200000, 5000);
    idle_ctx_t c;
    bc_mpscq_init(&c.q, 1);
    atomic_init(&c.woke, 0);
    pthread_t th[PRODUCERS];
    producer_arg_t args[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        args[i] = (producer_arg_t){&c.q, i, n, &c.woke};
        assert_int_equal(pthread_create(&th[i], NULL, producer_main, &args[i]), 0);
    }
    /* Consumer: act as the scheduler. It may only drain after a WOKE it has
     * not yet consumed, then goes idle again. */
    uint64_t consumed_wakes = 0, total = 0, idles = 0, want = n * PRODUCERS;
    uint64_t next[PRODUCERS] = {0};
    while (total < want) {
        if (atomic_load(&c.woke) == consumed_wakes)
            continue; /* idle: nobody scheduled us */
        consumed_wakes++;
        assert_int_equal(atomic_load(&c.woke), consumed_wakes); /* never two at once */
        for (;;) {
            bc_msg_t *m = bc_mpscq_pop(&c.q);
            if (m) {
                seq_msg_t *s = (seq_msg_t *)m;
                assert_int_equal(s->seq, next[s->producer]);
                next[s->producer]++;
                total++;
                bc_msg_free(m);
                continue;
            }
            if (bc_mpscq_mark_idle(&c.q, false)) {
                idles++;
                break;
            }
        }
    }
    for (uint32_t i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(total, want);
    assert_int_equal(atomic_load(&c.woke), consumed_wakes);
    assert_true(idles >= 1);
}

/* A chain of messages is pushed with one exchange and popped in order. */
static void test_chain_push(void **state)
{
    (void)state;
    bc_mpscq_t q;
    bc_mpscq_init(&q, 1);
    seq_msg_t *m[10];
    for (int i = 0; i < 10; i++) {
        m[i] = bc_msg_alloc(sizeof *m[i], 7);
        m[i]->seq = (uint64_t)i;
        if (i > 0)
            atomic_store(&m[i - 1]->hdr.next, &m[i]->hdr);
    }
    assert_int_equal(bc_mpscq_push_chain(&q, &m[0]->hdr, &m[9]->hdr), BC_MPSCQ_WOKE);
    for (int i = 0; i < 10; i++) {
        seq_msg_t *s = (seq_msg_t *)bc_mpscq_pop(&q);
        assert_non_null(s);
        assert_int_equal(s->seq, (uint64_t)i);
        bc_msg_free(&s->hdr);
    }
    assert_null(bc_mpscq_pop(&q));
    assert_true(bc_mpscq_mark_idle(&q, true));
    /* closed: a push reports DEAD and the node stays until drained */
    seq_msg_t *late = bc_msg_alloc(sizeof *late, 7);
    assert_int_equal(bc_mpscq_push(&q, &late->hdr), BC_MPSCQ_DEAD);
    assert_ptr_equal(bc_mpscq_pop(&q), &late->hdr);
    bc_msg_free(&late->hdr);
}

/* Through the actor API: 4 threads send 1,000,000 each to one actor. */
typedef struct {
    uint64_t next[PRODUCERS];
    uint64_t total, want;
    int bad;
} sink_t;

static void sink_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    sink_t *s = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    seq_msg_t *m = (seq_msg_t *)msg;
    if (m->producer >= PRODUCERS || m->seq != s->next[m->producer])
        s->bad++;
    else
        s->next[m->producer]++;
    if (++s->total == s->want)
        bc_stop(self);
}

typedef struct {
    bc_actor_t *to;
    uint32_t id;
    uint64_t n;
} sender_arg_t;

static void *sender_main(void *p)
{
    sender_arg_t *a = p;
    for (uint64_t i = 0; i < a->n; i++) {
        seq_msg_t *m = bc_msg_alloc(sizeof *m, 1);
        m->producer = a->id;
        m->seq = i;
        if (bc_send(a->to, &m->hdr) != 0)
            abort();
    }
    return NULL;
}

static void test_actor_fan_in(void **state)
{
    (void)state;
    uint64_t n = bc_test_scaled(1000000, 10000);
    bc_runtime_t *rt;
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 2;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    sink_t s;
    memset(&s, 0, sizeof s);
    s.want = n * PRODUCERS;
    bc_actor_t *a = bc_spawn(rt, sink_behaviour, &s);
    assert_non_null(a);
    pthread_t th[PRODUCERS];
    sender_arg_t args[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        args[i] = (sender_arg_t){a, i, n};
        assert_int_equal(pthread_create(&th[i], NULL, sender_main, &args[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(bc_runtime_wait(rt, 120000), 0);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.total, s.want);
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(s.next[i], n);
    assert_int_equal(bc_actor_alive(a), 0);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpsc_exactly_once_in_order),
        cmocka_unit_test(test_idle_bit_protocol),
        cmocka_unit_test(test_chain_push),
        cmocka_unit_test(test_actor_fan_in),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
