/* sched.c - the scheduler: worker threads, run queues, stealing, parking.
 *
 * Each worker owns a bounded ring of runnable actors (Go's runq shape: the
 * owner pushes at the tail, the owner and thieves take from the head with a
 * CAS), a `runnext` slot for the actor it just woke (so a message ping-pong
 * stays on one core with no queue traffic), and a queue of actors pinned to
 * it. Actors made runnable off the workers go to the shared inject queue.
 *
 * Key decision: idle workers park on a futex after a short spin, and are
 * woken explicitly (a bit per parked worker, claimed with a CAS) when work is
 * queued - never a polling tick. The waker publishes work then reads the
 * parked mask; the parker sets its bit then re-checks for work; both with
 * sequentially consistent ordering, so one of them always sees the other.
 */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IO_DEFER_TURNS 16 /* turns a worker may hold its Redis commands back (io.c) */

_Thread_local bc_worker_t *bc__tls_worker;
_Thread_local bc_worker_t *bc__tls_io_collect;
_Thread_local bool bc__tls_io_first;

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---------------------------------------------------------------- waking */

/* Wake worker i, which the caller has just removed from the parked mask. */
static void wake_worker(bc_runtime_t *rt, unsigned i)
{
    bc_worker_t *w = &rt->workers[i];
    /* release: the woken worker's acquire load sees the work we queued. */
    atomic_store_explicit(&w->futex, 1, memory_order_release);
    bc__futex_wake(&w->futex, 1);
}

/* Called after queueing work that any worker may take. Wakes one parked
 * worker unless one is already out looking for work. */
static void wake_one(bc_runtime_t *rt)
{
    /* seq_cst: orders our queue store before the loads below (Dekker with
     * park(): it sets its bit, then re-checks the queues). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rt->spinning, memory_order_seq_cst) > 0)
        return;
    uint64_t mask = atomic_load_explicit(&rt->parked_mask, memory_order_seq_cst);
    while (mask) {
        unsigned i = (unsigned)__builtin_ctzll(mask);
        if (atomic_compare_exchange_weak_explicit(&rt->parked_mask, &mask, mask & ~(1ULL << i),
                                                  memory_order_seq_cst, memory_order_seq_cst)) {
            wake_worker(rt, i);
            return;
        }
    }
}

/* Wake worker i specifically if it is parked (pinned work for it). */
static void wake_worker_if_parked(bc_runtime_t *rt, unsigned i)
{
    /* seq_cst: as in wake_one. */
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t bit = 1ULL << i;
    uint64_t mask = atomic_load_explicit(&rt->parked_mask, memory_order_seq_cst);
    while (mask & bit) {
        if (atomic_compare_exchange_weak_explicit(&rt->parked_mask, &mask, mask & ~bit,
                                                  memory_order_seq_cst, memory_order_seq_cst)) {
            wake_worker(rt, i);
            return;
        }
    }
}

/* ---------------------------------------------------------------- run queue */

static unsigned rq_len(bc_worker_t *w)
{
    /* acquire on both: a consistent-enough snapshot for a hint. */
    uint32_t h = atomic_load_explicit(&w->rq_head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&w->rq_tail, memory_order_acquire);
    return t - h;
}

/* The shared queues count their nodes: only the consumer can tell from the
 * queue itself whether it is empty, and parking workers must know. The count
 * goes up before the node is linked, so a parker that reads it sees the work
 * (and retries until the link lands) rather than sleeping on it. */
static void inject_push(bc_runtime_t *rt, bc_actor_t *a)
{
    /* seq_cst: read by park() in its Dekker re-check. */
    atomic_fetch_add_explicit(&rt->inject_len, 1, memory_order_seq_cst);
    bc_mpscq_push(&rt->inject, &a->sched_node);
}

static void pinned_push(bc_worker_t *t, bc_actor_t *a)
{
    /* seq_cst: as in inject_push. */
    atomic_fetch_add_explicit(&t->pinned_len, 1, memory_order_seq_cst);
    bc_mpscq_push(&t->pinned, &a->sched_node);
}

/* Owner only. */
static bc_actor_t *pinned_pop(bc_worker_t *w)
{
    /* relaxed: a hint; the pop below decides. */
    if (atomic_load_explicit(&w->pinned_len, memory_order_relaxed) == 0)
        return NULL;
    bc_msg_t *n = bc_mpscq_pop(&w->pinned);
    if (n == NULL)
        return NULL;
    atomic_fetch_sub_explicit(&w->pinned_len, 1, memory_order_relaxed);
    return bc_container_of(n, bc_actor_t, sched_node);
}

/* Owner only: queue `a` at the tail; on overflow, half the ring (and a)
 * moves to the inject queue. */
static void rq_push(bc_worker_t *w, bc_actor_t *a)
{
    for (;;) {
        /* acquire: thieves' head CAS releases the slots they took. */
        uint32_t h = atomic_load_explicit(&w->rq_head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&w->rq_tail, memory_order_relaxed);
        if (t - h < BC_RQ_SIZE) {
            /* relaxed: published by the release store of the tail. */
            atomic_store_explicit(&w->rq[t & (BC_RQ_SIZE - 1)], a, memory_order_relaxed);
            atomic_store_explicit(&w->rq_tail, t + 1, memory_order_release);
            return;
        }
        uint32_t n = BC_RQ_SIZE / 2;
        bc_actor_t *batch[BC_RQ_SIZE / 2];
        for (uint32_t i = 0; i < n; i++)
            batch[i] =
                atomic_load_explicit(&w->rq[(h + i) & (BC_RQ_SIZE - 1)], memory_order_relaxed);
        /* acq_rel: claims the slots against thieves. */
        if (!atomic_compare_exchange_strong_explicit(&w->rq_head, &h, h + n, memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue;
        for (uint32_t i = 0; i < n; i++)
            inject_push(w->rt, batch[i]);
        inject_push(w->rt, a);
        return;
    }
}

/* Owner only. */
static bc_actor_t *rq_pop(bc_worker_t *w)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&w->rq_head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&w->rq_tail, memory_order_relaxed);
        if (t == h)
            return NULL;
        bc_actor_t *a = atomic_load_explicit(&w->rq[h & (BC_RQ_SIZE - 1)], memory_order_relaxed);
        /* acq_rel: against thieves taking the same slot. */
        if (atomic_compare_exchange_weak_explicit(&w->rq_head, &h, h + 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return a;
    }
}

/* Thief: move half of victim's queue into w's (w's must be empty) and return
 * one of them, or NULL. */
static bc_actor_t *rq_steal(bc_worker_t *w, bc_worker_t *victim)
{
    bc_actor_t *batch[BC_RQ_SIZE / 2];
    uint32_t n;
    for (;;) {
        uint32_t h = atomic_load_explicit(&victim->rq_head, memory_order_acquire);
        /* acquire: the slots up to tail were published by the owner. */
        uint32_t t = atomic_load_explicit(&victim->rq_tail, memory_order_acquire);
        n = t - h;
        n -= n / 2;
        if (n == 0)
            return NULL;
        if (n > BC_RQ_SIZE / 2)
            continue; /* inconsistent snapshot: head moved under us */
        for (uint32_t i = 0; i < n; i++)
            batch[i] =
                atomic_load_explicit(&victim->rq[(h + i) & (BC_RQ_SIZE - 1)], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&victim->rq_head, &h, h + n, memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    for (uint32_t i = 1; i < n; i++)
        rq_push(w, batch[i]);
    atomic_fetch_add_explicit(&w->n_steals, n, memory_order_relaxed);
    return batch[0];
}

static bc_actor_t *inject_pop(bc_runtime_t *rt)
{
    /* relaxed: a hint; the pop below decides. */
    if (atomic_load_explicit(&rt->inject_len, memory_order_relaxed) == 0)
        return NULL;
    /* acquire: the previous consumer's queue state happens-before ours. */
    if (atomic_flag_test_and_set_explicit(&rt->inject_lock, memory_order_acquire))
        return NULL;
    bc_msg_t *n = bc_mpscq_pop(&rt->inject);
    /* release: hand the consumer side to the next holder. */
    atomic_flag_clear_explicit(&rt->inject_lock, memory_order_release);
    if (n == NULL)
        return NULL;
    atomic_fetch_sub_explicit(&rt->inject_len, 1, memory_order_relaxed);
    return bc_container_of(n, bc_actor_t, sched_node);
}

/* ---------------------------------------------------------------- scheduling */

/* Queue `a`, which has more to do, behind w's other work. Pinned actors
 * never enter a ring, where thieves could take them. */
static void requeue(bc_worker_t *w, bc_actor_t *a)
{
    if (a->pin < 0) {
        rq_push(w, a);
        return;
    }
    pinned_push(&w->rt->workers[a->pin], a);
    if (a->pin != (int)w->index)
        wake_worker_if_parked(w->rt, (unsigned)a->pin);
}

static void bag_add(bc_worker_t *w, bc_actor_t *a)
{
    if (w->bag_len == w->bag_cap) {
        size_t ncap = w->bag_cap ? w->bag_cap * 2 : 64;
        bc_actor_t **n = realloc(w->bag, ncap * sizeof *n);
        if (n == NULL) {
            fputs("blockcoord: out of memory (scheduler)\n", stderr);
            abort();
        }
        w->bag = n;
        w->bag_cap = ncap;
    }
    w->bag[w->bag_len++] = a;
}

void bc__schedule(bc_actor_t *a)
{
    bc_runtime_t *rt = a->rt;
    bc_worker_t *w = bc__tls_worker;
    if (w && w->rt != rt)
        w = NULL;
    if (a->pin >= 0 && (w == NULL || (int)w->index != a->pin)) {
        pinned_push(&rt->workers[a->pin], a);
        wake_worker_if_parked(rt, (unsigned)a->pin);
        return;
    }
    if (w == NULL) {
        bc_worker_t *iw = bc__tls_io_collect;
        if (iw && iw->rt == rt) {
            /* In the order they were made runnable, pub/sub deliveries first (the bag: the
             * I/O thread's context has no deterministic mode). */
            if (bc__tls_io_first)
                bag_add(iw, a);
            else
                rq_push(iw, a);
            return;
        }
        inject_push(rt, a);
        wake_one(rt);
        return;
    }
    if (rt->det) {
        bag_add(w, a);
        return;
    }
    bc_actor_t *old = w->runnext;
    w->runnext = a;
    if (old) {
        requeue(w, old);
        if (old->pin < 0 && w != rt->io_worker)
            wake_one(rt);
    }
}

/* ---------------------------------------------------------------- a turn's writes */

/* Write what w's turns queued for Redis (io.c, direct writes). */
static void writes_flush(bc_worker_t *w)
{
    if (w->io_pushed) {
        w->io_deferred = 0;
        bc__io_turn_end(w);
    }
}

/* After a turn: write once w has nothing else to run (`more`: an actor is runnable here),
 * after IO_DEFER_TURNS turns, or at once if the turn asked for it (bc_redis_urgent: a signal,
 * an ACK). Otherwise an actor made runnable here runs first (a woken coordinator before the
 * watcher's bookkeeping writes), and under load the commands of many turns leave in one write,
 * as the I/O thread would batch them. */
static void writes_after_turn(bc_worker_t *w, bool more)
{
    if (w->io_pushed && (++w->io_deferred >= IO_DEFER_TURNS || w->io_urgent || !more))
        writes_flush(w);
}

/* ---------------------------------------------------------------- the I/O thread's turns */

#define IO_RUN_TURNS 8 /* turns the I/O thread runs before it hands the rest to the workers */

bool bc__sched_io_pending(bc_runtime_t *rt)
{
    bc_worker_t *iw = rt->io_worker;
    return iw && (iw->bag_len || iw->runnext || rq_len(iw) > 0);
}

/* The actors that the I/O thread's last loop iteration made runnable (a reply, a signal, a
 * timer): if no worker is looking for work, the I/O thread runs a few turns itself, on a CPU
 * that is awake, instead of waking a parked worker (a futex call and, on a VM, often an
 * inter-processor interrupt) and waiting for it. Whatever is left goes to the workers. Called
 * by the I/O thread without the loop's mutex, so that the turns' own writes (direct writes)
 * can take it. */
void bc__sched_io_run(bc_runtime_t *rt, bool run)
{
    bc_worker_t *iw = rt->io_worker;
    bc_worker_t *collect = bc__tls_io_collect;
    bc__tls_io_collect = NULL;
    size_t first = 0; /* iw->bag[0..first) ran here */
    /* seq_cst: as in wake_one (a worker that parks or starts looking meanwhile is either seen
     * here or sees the actors we hand over below). */
    if (run && atomic_load_explicit(&rt->spinning, memory_order_seq_cst) == 0 &&
        atomic_load_explicit(&rt->parked_mask, memory_order_seq_cst) != 0 &&
        !atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
        bc__tls_worker = iw;
        for (unsigned k = 0; k < IO_RUN_TURNS; k++) {
            bc_actor_t *a;
            if (first < iw->bag_len)
                a = iw->bag[first++];
            else if ((a = iw->runnext) != NULL)
                iw->runnext = NULL;
            else if ((a = rq_pop(iw)) == NULL)
                break;
            bool again = bc__actor_run(iw, a, rt->batch);
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&rt->io_turns, 1, memory_order_relaxed);
            writes_after_turn(iw, first < iw->bag_len || iw->runnext || rq_len(iw) > 0);
            if (again)
                rq_push(iw, a);
        }
        writes_flush(iw);
        bc__tls_worker = NULL;
    }
    /* The rest, in the same order, to the workers. (An rq_push that overflowed moved half the
     * ring to the inject queue already; the half it left brings the wake-up below.) */
    size_t moved = iw->bag_len - first;
    for (size_t i = first; i < iw->bag_len; i++)
        inject_push(rt, iw->bag[i]);
    iw->bag_len = 0;
    if (iw->runnext) {
        inject_push(rt, iw->runnext);
        iw->runnext = NULL;
        moved++;
    }
    for (bc_actor_t *a; (a = rq_pop(iw)) != NULL; moved++)
        inject_push(rt, a);
    if (moved)
        wake_one(rt);
    bc__tls_io_collect = collect;
}

/* Find the next actor for w, without waiting. */
static bc_actor_t *next_actor(bc_worker_t *w)
{
    bc_runtime_t *rt = w->rt;
    bc_actor_t *a;

    if (rt->det) {
        while ((a = inject_pop(rt)) != NULL)
            bag_add(w, a);
        while ((a = pinned_pop(w)) != NULL)
            bag_add(w, a);
        if (w->bag_len == 0)
            return NULL;
        size_t i = (size_t)(rng_next(&w->rng) % w->bag_len);
        a = w->bag[i];
        w->bag[i] = w->bag[--w->bag_len];
        return a;
    }
    /* Now and then look at the shared queues first, so they never starve. */
    if ((++w->tick & 63) == 0) {
        if ((a = pinned_pop(w)) != NULL)
            return a;
        if ((a = inject_pop(rt)) != NULL)
            return a;
    }
    if (w->runnext) {
        /* A ping-pong pair would own runnext forever: after a streak, let
         * the run queue go first. */
        if (++w->runnext_streak < 32 || rq_len(w) == 0) {
            a = w->runnext;
            w->runnext = NULL;
            return a;
        }
        w->runnext_streak = 0;
        requeue(w, w->runnext);
        w->runnext = NULL;
    }
    if ((a = rq_pop(w)) != NULL)
        return a;
    if ((a = pinned_pop(w)) != NULL)
        return a;
    if ((a = inject_pop(rt)) != NULL)
        return a;
    if (rt->nworkers > 1) {
        unsigned start = (unsigned)(rng_next(&w->rng) % rt->nworkers);
        for (unsigned k = 0; k < rt->nworkers; k++) {
            unsigned v = (start + k) % rt->nworkers;
            if (v != w->index && (a = rq_steal(w, &rt->workers[v])) != NULL)
                return a;
        }
    }
    return NULL;
}

/* Anything runnable that w could take? (a hint, racy by nature) */
static bool work_visible(bc_worker_t *w)
{
    bc_runtime_t *rt = w->rt;
    /* seq_cst: the Dekker re-check against inject_push/pinned_push. */
    if (atomic_load_explicit(&rt->inject_len, memory_order_seq_cst) ||
        atomic_load_explicit(&w->pinned_len, memory_order_seq_cst))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (rq_len(&rt->workers[i]) > 0)
            return true;
    return false;
}

static void park(bc_worker_t *w)
{
    bc_runtime_t *rt = w->rt;
    uint64_t bit = 1ULL << w->index;
    /* seq_cst: Dekker with wake_one(): set our bit, then re-check queues. */
    atomic_fetch_or_explicit(&rt->parked_mask, bit, memory_order_seq_cst);
    if (work_visible(w) || atomic_load_explicit(&rt->stopping, memory_order_seq_cst)) {
        uint64_t prev = atomic_fetch_and_explicit(&rt->parked_mask, ~bit, memory_order_seq_cst);
        if (prev & bit)
            return; /* nobody claimed us */
        /* A waker claimed us concurrently: consume its wake below. */
    } else {
        atomic_fetch_add_explicit(&w->n_parks, 1, memory_order_relaxed);
    }
    bc__warm_sleep(rt);
    /* acquire: pairs with wake_worker()'s release store. */
    while (atomic_load_explicit(&w->futex, memory_order_acquire) == 0)
        bc__futex_wait(&w->futex, 0);
    bc__warm_awake(rt);
    atomic_store_explicit(&w->futex, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->n_wakes, 1, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
    bc_worker_t *w = arg;
    bc_runtime_t *rt = w->rt;
    char name[16];
    snprintf(name, sizeof name, "bc-worker-%u", w->index);
    pthread_setname_np(pthread_self(), name);
    bc__tls_worker = w;
    /* Workers write to sockets too (io.c, direct writes): a peer that just died must fail the
     * write with EPIPE, not kill the process with SIGPIPE (see io_main). */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);

    for (;;) {
        bool help = false;
        bc_actor_t *a = next_actor(w);
        if (a == NULL)
            writes_flush(w);
        if (a == NULL) {
            /* Spin a little: work often arrives within microseconds. At most half the workers
             * (at least one) spin at once, as in Go's scheduler: one spinner keeps wake-ups
             * fast, more only burn CPU that Redis and the I/O thread need. */
            unsigned max_spinning = rt->nworkers > 1 ? rt->nworkers / 2 : 1;
            int prev = atomic_fetch_add_explicit(&rt->spinning, 1, memory_order_seq_cst);
            uint64_t deadline = bc_now_ns() + (uint64_t)rt->spin_us * 1000u;
            unsigned k = 0;
            if ((unsigned)prev >= max_spinning)
                deadline = 0; /* one last look, then park */
            /* A spinner also reads a Redis socket that became readable (io.c, "worker
             * reads"): this CPU is awake, the I/O thread's may have to be woken first. */
            bool poll = deadline != 0 && rt->io_poll;
            while ((a = next_actor(w)) == NULL) {
                if ((k++ & 15) == 0) {
                    if (poll && bc__io_poll(w, true))
                        continue;
                    if (k > 1 && bc_now_ns() > deadline)
                        break;
                    /* Give way (io.c, "Yielding"): a thread woken onto this CPU runs now, not
                     * when the spin ends. Above all Redis, woken by the write this worker made
                     * at the end of its turn: while the warmers keep every CPU busy, the
                     * scheduler often queues it here rather than on the other CPU. So does
                     * the loop's holder, when the look above found a socket ready but could
                     * not take the loop. */
                    sched_yield();
                }
                bc__cpu_relax();
            }
            int left = atomic_fetch_sub_explicit(&rt->spinning, 1, memory_order_seq_cst) - 1;
            if (a == NULL) {
                if (atomic_load_explicit(&rt->stopping, memory_order_acquire) && !work_visible(w))
                    break;
                park(w);
                continue;
            }
            /* We were the last one looking: if there is more, get help, once the actor
             * found has had its turn. The wake-up (a futex call, on a VM often an
             * inter-processor interrupt) would otherwise delay the turn that is usually the
             * one somebody waits for, such as the watcher's with a signal that just arrived;
             * a turn is at most `batch` messages of one actor. */
            help = left == 0;
        }
        unsigned batch = rt->batch;
        if (rt->det)
            batch = 1 + (unsigned)(rng_next(&w->rng) % rt->batch);
        bool again = bc__actor_run(w, a, batch);
        writes_after_turn(w, w->runnext || rq_len(w) > 0);
        if (help && work_visible(w))
            wake_one(rt);
        /* Sockets a look left for after the actors it woke (io.c), unless another actor was
         * just made runnable here: it goes first (the loop reads them meanwhile). */
        if (w->io_ncarry && w->runnext == NULL)
            bc__io_poll(w, false);
        if (again) {
            if (rt->det)
                bag_add(w, a);
            else
                requeue(w, a);
        }
    }
    bc_pool_thread_flush();
    bc__tls_worker = NULL;
    return NULL;
}

int bc__sched_start(bc_runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        bc_worker_t *w = &rt->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            atomic_store_explicit(&rt->stopping, 1, memory_order_seq_cst);
            for (unsigned j = 0; j < i; j++)
                wake_worker(rt, j);
            for (unsigned j = 0; j < i; j++)
                pthread_join(rt->workers[j].thread, NULL);
            return -rc;
        }
    }
    return 0;
}

void bc__sched_stop(bc_runtime_t *rt)
{
    atomic_store_explicit(&rt->stopping, 1, memory_order_seq_cst);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        uint64_t bit = 1ULL << i;
        uint64_t prev = atomic_fetch_and_explicit(&rt->parked_mask, ~bit, memory_order_seq_cst);
        if (prev & bit)
            wake_worker(rt, i);
    }
    for (unsigned i = 0; i < rt->nworkers; i++)
        pthread_join(rt->workers[i].thread, NULL);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        free(rt->workers[i].bag);
        rt->workers[i].bag = NULL;
    }
}

int bc_worker_id(void)
{
    return bc__tls_worker ? (int)bc__tls_worker->index : -1;
}
