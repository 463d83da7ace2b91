/* test_sched.c - the scheduler: exclusive execution, no lost wake-ups,
 * fairness, parking, stealing, deterministic mode. */
#include "harness.h"
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- exclusive */

typedef struct {
    _Atomic int inside; /* guard: must never exceed 1 */
    _Atomic int violations;
    _Atomic uint64_t handled;
    uint64_t plain; /* unsynchronised: TSan flags it if two workers run us */
} guard_state_t;

static void guarded(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    guard_state_t *g = st;
    (void)self;
    if (msg->type == BC_MSG_STOPPED)
        return;
    if (atomic_fetch_add_explicit(&g->inside, 1, memory_order_acq_rel) != 0)
        atomic_fetch_add(&g->violations, 1);
    g->plain++;
    for (volatile int i = 0; i < 50; i++) {
    }
    atomic_fetch_sub_explicit(&g->inside, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&g->handled, 1, memory_order_relaxed);
}

#define GUARD_ACTORS 64
#define GUARD_THREADS 4

typedef struct {
    bc_actor_t **actors;
    uint64_t n;
    unsigned seed;
} blaster_t;

static void *blaster_main(void *p)
{
    blaster_t *b = p;
    for (uint64_t i = 0; i < b->n; i++) {
        unsigned k = (unsigned)rand_r(&b->seed) % GUARD_ACTORS;
        bc_msg_t *m = bc_msg_alloc(sizeof(bc_msg_t), 1);
        assert_int_equal(bc_send(b->actors[k], m), 0);
    }
    return NULL;
}

static void test_actor_runs_on_one_worker_at_a_time(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(4); /* more workers than cores: more preemption */
    guard_state_t g[GUARD_ACTORS];
    bc_actor_t *a[GUARD_ACTORS];
    memset(g, 0, sizeof g);
    for (int i = 0; i < GUARD_ACTORS; i++)
        a[i] = bc_spawn(rt, guarded, &g[i]);
    uint64_t per = bc_test_scaled(200000, 5000);
    pthread_t th[GUARD_THREADS];
    blaster_t b[GUARD_THREADS];
    for (unsigned i = 0; i < GUARD_THREADS; i++) {
        b[i] = (blaster_t){a, per, i + 1};
        pthread_create(&th[i], NULL, blaster_main, &b[i]);
    }
    for (int i = 0; i < GUARD_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < GUARD_ACTORS; i++)
        bc_stop(a[i]);
    assert_int_equal(bc_runtime_wait(rt, 60000), 0);
    uint64_t total = 0;
    for (int i = 0; i < GUARD_ACTORS; i++) {
        assert_int_equal(atomic_load(&g[i].violations), 0);
        assert_int_equal(g[i].plain, atomic_load(&g[i].handled));
        total += atomic_load(&g[i].handled);
        bc_actor_release(a[i]);
    }
    assert_int_equal(total, per * GUARD_THREADS);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- lost wake-up */

/* An external thread and an actor bounce one message: every send lands while
 * the actor is idle or being descheduled. A lost wake-up hangs a round. */
typedef struct {
    _Atomic uint64_t seen;
} echo_state_t;

static void echo(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    echo_state_t *e = st;
    (void)self;
    if (msg->type == BC_MSG_STOPPED)
        return;
    atomic_fetch_add_explicit(&e->seen, 1, memory_order_release);
}

static void test_no_lost_wakeup(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    echo_state_t e;
    atomic_init(&e.seen, 0);
    bc_actor_t *a = bc_spawn(rt, echo, &e);
    uint64_t rounds = bc_test_scaled(200000, 5000);
    for (uint64_t i = 1; i <= rounds; i++) {
        assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1)), 0);
        uint64_t t0 = bc_now_ms();
        while (atomic_load_explicit(&e.seen, memory_order_acquire) != i) {
            if (bc_now_ms() - t0 > 10000)
                fail_msg("round %llu: message not handled after 10 s (lost wake-up)",
                         (unsigned long long)i);
        }
    }
    bc_runtime_stats_t s;
    bc_runtime_stats(rt, &s);
    bc_stop(a);
    bc_actor_release(a);
    assert_int_equal(bc_runtime_wait(rt, 10000), 0);
    bc_runtime_destroy(rt);
}

/* Ping-pong between two actors pinned to different workers, with pauses so
 * the other worker parks between messages: each message must wake it. */
typedef struct {
    bc_actor_t *peer;
    uint64_t left;
    _Atomic int done;
} pp_state_t;

static void pinger(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    pp_state_t *p = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    if (p->left == 0) {
        atomic_store(&p->done, 1);
        return;
    }
    p->left--;
    bc_msg_keep(msg);
    assert_int_equal(bc_send(p->peer, msg), 0);
}

static void test_parked_worker_is_woken(void **state)
{
    (void)state;
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 2;
    o.spin_us = 1; /* park almost at once */
    bc_runtime_t *rt;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    pp_state_t pa = {0}, pb = {0};
    bc_actor_t *a = bc_spawn(rt, pinger, &pa);
    bc_actor_t *b = bc_spawn(rt, pinger, &pb);
    assert_int_equal(bc_actor_set_affinity(a, 0), 0);
    assert_int_equal(bc_actor_set_affinity(b, 1), 0);
    pa.peer = b;
    pb.peer = a;
    uint64_t rounds = bc_test_scaled(20000, 1000);
    pa.left = pb.left = rounds;
    assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1)), 0);
    uint64_t t0 = bc_now_ms();
    while (!atomic_load(&pa.done) && !atomic_load(&pb.done)) {
        if (bc_now_ms() - t0 > 60000)
            fail_msg("ping-pong stalled");
        bc_test_sleep_ms(1);
    }
    bc_runtime_stats_t s;
    bc_runtime_stats(rt, &s);
    assert_true(s.parks > 0); /* the workers really slept */
    assert_true(s.wakes > 0);
    bc_actor_release(a);
    bc_actor_release(b);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- giving way */

/* A worker that spins while it looks for work must give way to a thread that wants its CPU.
 * Redis, woken by the worker's own write at the end of a turn, is the case that matters: the
 * scheduler may queue it on the worker's CPU and, depending on how much CPU it used before, let
 * the worker run on until the spin ends (seen as 60 us stalls in signal_bench). The weakest
 * such thread is a SCHED_IDLE one (our CPU warmers), which gets the CPU only when nobody else
 * wants it. Everything here shares one CPU. With the worker's yields it ran 400-500 times in
 * 100 ms on the development VM; without them, not once. */

typedef struct {
    _Atomic int stop;
    _Atomic uint64_t iterations;
} gw_idle_t;

static void *gw_idle_main(void *arg)
{
    gw_idle_t *g = arg;
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
        return (void *)1;
    while (!atomic_load(&g->stop)) {
        atomic_fetch_add(&g->iterations, 1);
        sched_yield();
    }
    return NULL;
}

static _Atomic int gw_ran;

static void gw_actor(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    (void)self;
    (void)st;
    if (msg->type != BC_MSG_STOPPED)
        atomic_store(&gw_ran, 1);
}

static void test_spinning_worker_gives_way(void **state)
{
    (void)state;
    cpu_set_t saved, one;
    assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &saved)) {
            CPU_SET(c, &one);
            break;
        }
    /* Inherited by the threads created below. */
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    gw_idle_t g = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, gw_idle_main, &g), 0);
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 1;
    o.spin_us = 1000000; /* a second of looking for work after its turn */
    o.io_spin_us = -1;
    o.warm_us = -1;
    bc_runtime_t *rt;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    atomic_store(&gw_ran, 0);
    bc_actor_t *a = bc_spawn(rt, gw_actor, NULL);
    assert_int_equal(bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1)), 0);
    while (!atomic_load(&gw_ran))
        bc_test_sleep_ms(1);
    /* The worker spins now, with nothing to do. */
    uint64_t c0 = atomic_load(&g.iterations);
    bc_test_sleep_ms(100);
    uint64_t n = atomic_load(&g.iterations) - c0;
    bc_actor_release(a);
    bc_runtime_destroy(rt);
    atomic_store(&g.stop, 1);
    void *rc;
    assert_int_equal(pthread_join(th, &rc), 0);
    assert_null(rc);
    assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
    print_message("  a SCHED_IDLE thread beside a spinning worker ran %llu times in 100 ms\n",
                  (unsigned long long)n);
    if (n < 10)
        fail_msg("a spinning worker kept its CPU: a SCHED_IDLE thread beside it ran only %llu "
                 "times in 100 ms",
                 (unsigned long long)n);
}

/* ---------------------------------------------------------------- fairness */

/* On one worker, an actor that floods itself cannot starve another actor:
 * the victim runs within a bounded number of the flooder's messages. */
typedef struct {
    uint64_t sent, handled, at_victim;
    uint64_t limit;
    bc_actor_t *victim;
    _Atomic int victim_ran;
} flood_state_t;

#define POKE_AT 1000

static void flooder(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    flood_state_t *f = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    f->handled++;
    if (f->handled == POKE_AT) /* wake the victim in the middle of the flood */
        bc_send(f->victim, bc_msg_alloc(sizeof(bc_msg_t), 2));
    /* Keep the mailbox full: two more for each one handled, up to limit. */
    for (int i = 0; i < 2 && f->sent < f->limit; i++, f->sent++)
        bc_send(self, bc_msg_alloc(sizeof(bc_msg_t), 1));
    if (f->handled == f->sent)
        bc_stop(self);
}

static void victim(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    flood_state_t *f = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    f->at_victim = f->handled; /* same worker: no race */
    atomic_store(&f->victim_ran, 1);
    bc_stop(self);
}

static void test_fairness_flooded_actor(void **state)
{
    (void)state;
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = 1;
    o.batch = 64;
    bc_runtime_t *rt;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    flood_state_t f;
    memset(&f, 0, sizeof f);
    f.limit = bc_test_scaled(1000000, 100000);
    bc_actor_t *fa = bc_spawn(rt, flooder, &f);
    bc_actor_t *va = bc_spawn(rt, victim, &f);
    f.victim = va;
    f.sent = 1;
    bc_send(fa, bc_msg_alloc(sizeof(bc_msg_t), 1));
    assert_int_equal(bc_runtime_wait(rt, 60000), 0);
    assert_true(atomic_load(&f.victim_ran));
    assert_int_equal(f.handled, f.limit);
    /* The victim ran within one turn of the flooder after it was woken,
     * not after the flood. */
    assert_true(f.at_victim >= POKE_AT);
    assert_true(f.at_victim <= POKE_AT + 2 * o.batch);
    bc_actor_release(fa);
    bc_actor_release(va);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- skynet */

typedef struct sky_msg_s {
    bc_msg_t hdr;
    uint64_t num;
    uint64_t size;
    bc_actor_t *parent;
} sky_msg_t;

typedef struct {
    bc_actor_t *parent;
    uint64_t sum;
    int pending;
    _Atomic uint64_t *result;
} sky_state_t;

enum { SKY_START = 1, SKY_RESULT = 2 };

static void sky(bc_actor_t *self, void *st, bc_msg_t *msg);

static void sky_reply(sky_state_t *s, bc_actor_t *self, uint64_t v)
{
    if (s->parent) {
        sky_msg_t *r = bc_msg_alloc(sizeof *r, SKY_RESULT);
        r->num = v;
        bc_send(s->parent, &r->hdr);
        bc_actor_release(s->parent);
    } else {
        atomic_store(s->result, v + 1); /* +1: 0 means "not yet" */
    }
    bc_stop(self);
}

static void sky(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    sky_state_t *s = st;
    sky_msg_t *m = (sky_msg_t *)msg;
    if (msg->type == BC_MSG_STOPPED) {
        free(s);
        return;
    }
    if (msg->type == SKY_START) {
        s->parent = m->parent;
        if (m->size == 1) {
            sky_reply(s, self, m->num);
            return;
        }
        uint64_t child = m->size / 10;
        s->pending = 10;
        for (uint64_t i = 0; i < 10; i++) {
            sky_state_t *cs = calloc(1, sizeof *cs);
            bc_actor_t *c = bc_spawn(bc_actor_runtime(self), sky, cs);
            sky_msg_t *sm = bc_msg_alloc(sizeof *sm, SKY_START);
            sm->num = m->num + i * child;
            sm->size = child;
            sm->parent = bc_actor_retain(self);
            bc_send(c, &sm->hdr);
            bc_actor_release(c);
        }
        return;
    }
    s->sum += m->num;
    if (--s->pending == 0)
        sky_reply(s, self, s->sum);
}

static void test_skynet_small(void **state)
{
    (void)state;
    bc_runtime_t *rt = bc_test_runtime(2);
    _Atomic uint64_t result;
    atomic_init(&result, 0);
    uint64_t leaves = bc_test_tsan() ? 10000 : 100000;
    sky_state_t *root = calloc(1, sizeof *root);
    root->result = &result;
    bc_actor_t *r = bc_spawn(rt, sky, root);
    sky_msg_t *m = bc_msg_alloc(sizeof *m, SKY_START);
    m->num = 0;
    m->size = leaves;
    m->parent = NULL;
    bc_send(r, &m->hdr);
    assert_int_equal(bc_runtime_wait(rt, 60000), 0);
    assert_int_equal(atomic_load(&result) - 1, leaves * (leaves - 1) / 2);
    bc_runtime_stats_t s;
    bc_runtime_stats(rt, &s);
    assert_int_equal(s.actors_spawned, s.actors_stopped);
    assert_int_equal(s.actors_live, 0);
    bc_actor_release(r);
    bc_runtime_destroy(rt);
}

/* ---------------------------------------------------------------- deterministic */

#define DET_ACTORS 8
typedef struct {
    int id;
    int *trace;
    _Atomic size_t *ntrace;
    size_t cap;
    bc_actor_t **all;
    unsigned hops;
} det_state_t;

static void det_actor(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    det_state_t *d = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    size_t n = atomic_load(d->ntrace);
    if (n < d->cap) {
        d->trace[n] = d->id * 1000 + (int)msg->type;
        atomic_store(d->ntrace, n + 1);
    }
    if (msg->type < d->hops) {
        /* fan out to two others: many actors runnable at once */
        for (int k = 1; k <= 2; k++) {
            bc_actor_t *to = d->all[(d->id + k * (int)msg->type + k) % DET_ACTORS];
            bc_send(to, bc_msg_alloc(sizeof(bc_msg_t), msg->type + 1));
        }
    }
    (void)self;
}

static size_t det_run(uint64_t seed, int *trace, size_t cap)
{
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.deterministic = 1;
    o.seed = seed;
    o.batch = 4;
    bc_runtime_t *rt;
    assert_int_equal(bc_runtime_create(&o, &rt), 0);
    assert_int_equal(bc_runtime_workers(rt), 1);
    _Atomic size_t n;
    atomic_init(&n, 0);
    bc_actor_t *all[DET_ACTORS];
    det_state_t ds[DET_ACTORS];
    for (int i = 0; i < DET_ACTORS; i++) {
        ds[i] = (det_state_t){i, trace, &n, cap, all, 9};
        all[i] = bc_spawn(rt, det_actor, &ds[i]);
    }
    /* One seed message from inside the runtime would need an actor; from
     * outside, a single message keeps the run deterministic. */
    bc_send(all[0], bc_msg_alloc(sizeof(bc_msg_t), 0));
    uint64_t t0 = bc_now_ms();
    while (atomic_load(&n) < (size_t)((1 << 10) - 1) && bc_now_ms() - t0 < 30000)
        bc_test_sleep_ms(1);
    for (int i = 0; i < DET_ACTORS; i++) {
        bc_stop(all[i]);
        bc_actor_release(all[i]);
    }
    assert_int_equal(bc_runtime_wait(rt, 10000), 0);
    bc_runtime_destroy(rt);
    return atomic_load(&n);
}

static void test_deterministic_replay(void **state)
{
    (void)state;
    enum { CAP = 2048 };
    int *t1 = calloc(CAP, sizeof(int)), *t2 = calloc(CAP, sizeof(int)),
        *t3 = calloc(CAP, sizeof(int));
    size_t n1 = det_run(42, t1, CAP);
    size_t n2 = det_run(42, t2, CAP);
    size_t n3 = det_run(7, t3, CAP);
    assert_int_equal(n1, 1023); /* 1 + 2 + 4 + ... + 512 */
    assert_int_equal(n1, n2);
    assert_int_equal(n1, n3);
    assert_memory_equal(t1, t2, n1 * sizeof(int));      /* same seed: same interleaving */
    assert_true(memcmp(t1, t3, n1 * sizeof(int)) != 0); /* other seed: another one */
    free(t1);
    free(t2);
    free(t3);
}

/* bc__env_switch, behind BC_IO_DIRECT/POLL/RUN and BC_HINT_FIRST: "0" turns off, "1" and
 * unset keep the caller's value, anything else is ignored (with a warning) and keeps it. */
static void test_env_switch(void **state)
{
    (void)state;
    static const struct {
        const char *value; /* NULL: unset */
        int from, want;
    } cases[] = {{NULL, 0, 0}, {"", 0, 0},    {"0", 0, -1},  {"0", 1, -1},
                 {"1", 0, 0},  {"1", -1, -1}, {"yes", 0, 0}, {"00", 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].value)
            setenv("BC_TEST_SWITCH", cases[i].value, 1);
        else
            unsetenv("BC_TEST_SWITCH");
        int opt = cases[i].from;
        bc__env_switch("BC_TEST_SWITCH", &opt);
        assert_int_equal(opt, cases[i].want);
    }
    unsetenv("BC_TEST_SWITCH");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_actor_runs_on_one_worker_at_a_time),
        cmocka_unit_test(test_no_lost_wakeup),
        cmocka_unit_test(test_parked_worker_is_woken),
        cmocka_unit_test(test_spinning_worker_gives_way),
        cmocka_unit_test(test_fairness_flooded_actor),
        cmocka_unit_test(test_skynet_small),
        cmocka_unit_test(test_deterministic_replay),
        cmocka_unit_test(test_env_switch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
