/* actor.c - actors and messages: spawn, send, stop, one turn of a behaviour.
 *
 * An actor is two cache lines from the pool: the first holds what senders
 * touch (mailbox head, refcount, flags), the second what only the running
 * worker touches. Handles are reference counted so a handle outlives its
 * actor: a send to a stopped actor is refused, never a use-after-free.
 *
 * Key decision: stop is a message. bc_stop() pushes an embedded stop request
 * behind whatever is already queued, so the actor handles everything sent
 * before the stop, then sees BC_MSG_STOPPED, then its mailbox is closed in
 * the same atomic word that carries its scheduling state.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* The message being handled on this thread, and whether bc_msg_keep took it. */
static _Thread_local bc_msg_t *tls_current;
static _Thread_local int tls_kept;

/* ---------------------------------------------------------------- messages */

void *bc_msg_alloc(size_t size, uint32_t type)
{
    if (size < sizeof(bc_msg_t))
        return NULL;
    unsigned cls;
    bc_msg_t *m = bc_pool_alloc_size(size, &cls);
    atomic_init(&m->next, NULL);
    m->type = type;
    m->pool = (uint16_t)cls;
    m->flags = 0;
    return m;
}

void bc_msg_free(bc_msg_t *m)
{
    if (m == NULL || (m->flags & BC_MSGF_EMBEDDED))
        return;
    if (m->flags & BC_MSGF_TIMER)
        bc__timer_tick_release(m);
    bc_pool_free_size(m->pool, m);
}

void bc_msg_keep(bc_msg_t *m)
{
    if (m != NULL && m == tls_current)
        tls_kept = 1;
}

/* ---------------------------------------------------------------- live list */

static void live_insert(bc_runtime_t *rt, bc_actor_t *a)
{
    bc_worker_t *w = bc__tls_worker;
    unsigned s = (w && w->rt == rt) ? w->index : rt->nworkers;
    bc_live_shard_t *sh = &rt->shards[s];
    a->shard = (int16_t)s;
    a->live_prev = NULL;
    pthread_mutex_lock(&sh->lock);
    a->live_next = sh->head;
    if (sh->head)
        sh->head->live_prev = a;
    sh->head = a;
    pthread_mutex_unlock(&sh->lock);
}

static void live_remove(bc_runtime_t *rt, bc_actor_t *a)
{
    bc_live_shard_t *sh = &rt->shards[a->shard];
    pthread_mutex_lock(&sh->lock);
    if (a->live_prev)
        a->live_prev->live_next = a->live_next;
    else
        sh->head = a->live_next;
    if (a->live_next)
        a->live_next->live_prev = a->live_prev;
    pthread_mutex_unlock(&sh->lock);
    a->live_prev = a->live_next = NULL;
}

size_t bc__actor_stop_all(bc_runtime_t *rt)
{
    size_t n = 0;
    for (unsigned s = 0; s <= rt->nworkers; s++) {
        bc_live_shard_t *sh = &rt->shards[s];
        pthread_mutex_lock(&sh->lock);
        /* bc_stop only pushes a message: safe under the shard lock, and the
         * actor cannot be freed while listed (removal takes this lock). */
        for (bc_actor_t *a = sh->head; a; a = a->live_next)
            if (bc_stop(a) == 0)
                n++;
        pthread_mutex_unlock(&sh->lock);
    }
    return n;
}

/* ---------------------------------------------------------------- lifecycle */

bc_actor_t *bc_spawn(bc_runtime_t *rt, bc_behaviour_fn fn, void *state)
{
    if (rt == NULL || fn == NULL)
        return NULL;
    /* acquire: pairs with the release store in bc_runtime_destroy. */
    if (atomic_load_explicit(&rt->destroying, memory_order_acquire))
        return NULL;
    bc_actor_t *a = bc_pool_alloc(bc_pool_class(sizeof *a));
    bc_mpscq_init(&a->mq, 1);
    atomic_init(&a->rc, 2); /* the runtime's (until stopped) + the caller's */
    atomic_init(&a->flags, 0);
    atomic_init(&a->stop_msg.next, NULL);
    a->stop_msg.type = BC_MSG_STOP_REQ;
    a->stop_msg.pool = 0;
    a->stop_msg.flags = BC_MSGF_EMBEDDED;
    atomic_init(&a->sched_node.next, NULL);
    a->sched_node.type = 0;
    a->sched_node.pool = 0;
    a->sched_node.flags = BC_MSGF_EMBEDDED;
    a->fn = fn;
    a->state = state;
    a->rt = rt;
    a->pin = -1;
    a->pad_ = 0;
    /* relaxed: counters; bc_runtime_wait synchronises through wait_lock. */
    atomic_fetch_add_explicit(&rt->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&rt->spawned, 1, memory_order_relaxed);
    live_insert(rt, a);
    return a;
}

bc_actor_t *bc_actor_retain(bc_actor_t *a)
{
    /* relaxed: the caller already holds a reference, so the count is >= 1. */
    if (a)
        atomic_fetch_add_explicit(&a->rc, 1, memory_order_relaxed);
    return a;
}

static void actor_free(bc_actor_t *a)
{
    /* No references left: nobody can push any more. Free dead letters. */
    bc_msg_t *m;
    while ((m = bc_mpscq_pop(&a->mq)) != NULL)
        bc_msg_free(m);
    bc_pool_free(bc_pool_class(sizeof *a), a);
}

void bc_actor_release(bc_actor_t *a)
{
    if (a == NULL)
        return;
    /* acq_rel: the last release must see every other holder's writes. */
    if (atomic_fetch_sub_explicit(&a->rc, 1, memory_order_acq_rel) == 1)
        actor_free(a);
}

int bc_actor_alive(const bc_actor_t *a)
{
    /* acquire: a caller that sees "stopped" sees the stop's effects. */
    return a && !(atomic_load_explicit(&a->flags, memory_order_acquire) & BC_ACTOR_STOPPED);
}

bc_runtime_t *bc_actor_runtime(const bc_actor_t *a)
{
    return a ? a->rt : NULL;
}

int bc_actor_set_affinity(bc_actor_t *a, int worker)
{
    if (a == NULL || worker < -1 || worker >= (int)a->rt->nworkers)
        return -EINVAL;
    if (a->rt->det)
        return 0; /* one worker: nothing to pin */
    a->pin = (int16_t)worker;
    return 0;
}

/* ---------------------------------------------------------------- send */

static int push(bc_actor_t *to, bc_msg_t *first, bc_msg_t *last)
{
    switch (bc_mpscq_push_chain(&to->mq, first, last)) {
    case BC_MPSCQ_WOKE:
        bc__schedule(to);
        return 0;
    case BC_MPSCQ_DEAD:
        /* relaxed: a statistic. */
        atomic_fetch_add_explicit(&to->rt->dead_letters, 1, memory_order_relaxed);
        return -ESRCH;
    default:
        return 0;
    }
}

static void free_chain(bc_msg_t *m)
{
    while (m) {
        bc_msg_t *next = atomic_load_explicit(&m->next, memory_order_relaxed);
        bc_msg_free(m);
        m = next;
    }
}

int bc_send(bc_actor_t *to, bc_msg_t *msg)
{
    if (msg == NULL)
        return -EINVAL;
    if (to == NULL) {
        bc_msg_free(msg);
        return -EINVAL;
    }
    /* relaxed: coherence on this one word suffices for "after bc_stop()";
     * a send racing a stop is settled by the mailbox's closed bit. */
    if (atomic_load_explicit(&to->flags, memory_order_relaxed) & BC_ACTOR_STOP_REQ) {
        atomic_fetch_add_explicit(&to->rt->dead_letters, 1, memory_order_relaxed);
        bc_msg_free(msg);
        return -ESRCH;
    }
    return push(to, msg, msg);
}

int bc_send_chain(bc_actor_t *to, bc_msg_t *first, bc_msg_t *last)
{
    if (first == NULL || last == NULL)
        return -EINVAL;
    /* relaxed: the chain's links are ours until the push publishes them. */
    atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
    if (to == NULL) {
        free_chain(first);
        return -EINVAL;
    }
    if (atomic_load_explicit(&to->flags, memory_order_relaxed) & BC_ACTOR_STOP_REQ) {
        atomic_fetch_add_explicit(&to->rt->dead_letters, 1, memory_order_relaxed);
        free_chain(first);
        return -ESRCH;
    }
    return push(to, first, last);
}

int bc_stop(bc_actor_t *a)
{
    if (a == NULL)
        return -EINVAL;
    /* acq_rel: exactly one caller wins the request; it publishes the flag
     * before the stop message can be seen. */
    uint32_t prev = atomic_fetch_or_explicit(&a->flags, BC_ACTOR_STOP_REQ, memory_order_acq_rel);
    if (prev & (BC_ACTOR_STOP_REQ | BC_ACTOR_STOPPED))
        return -EALREADY;
    if (bc_mpscq_push(&a->mq, &a->stop_msg) == BC_MPSCQ_WOKE)
        bc__schedule(a);
    return 0;
}

/* ---------------------------------------------------------------- a turn */

/* The stop request reached the front of the mailbox: tell the behaviour,
 * close the mailbox, drop the runtime's reference. */
static void finalize(bc_worker_t *w, bc_actor_t *a)
{
    bc_runtime_t *rt = a->rt;
    bc_msg_t stopped = {.type = BC_MSG_STOPPED, .flags = BC_MSGF_EMBEDDED};
    atomic_init(&stopped.next, NULL);

    tls_current = &stopped;
    a->fn(a, a->state, &stopped);
    tls_current = NULL;
    /* After the behaviour's last turn, not before: whoever waits for bc_actor_alive() to turn
     * 0 may free what that turn reads (bc_hub_destroy frees the hub its actors' STOPPED turns
     * use). release: those readers see the state the behaviour left. */
    atomic_fetch_or_explicit(&a->flags, BC_ACTOR_STOPPED, memory_order_release);
    live_remove(rt, a);

    /* Messages that raced the stop are dead letters. */
    for (;;) {
        bc_msg_t *m = bc_mpscq_pop(&a->mq);
        if (m) {
            atomic_fetch_add_explicit(&rt->dead_letters, 1, memory_order_relaxed);
            bc_msg_free(m);
            continue;
        }
        if (bc_mpscq_mark_idle(&a->mq, true))
            break;
    }
    atomic_fetch_add_explicit(&rt->stopped, 1, memory_order_relaxed);
    /* acq_rel: the waiter that reads 0 must see all the stopped actors' work. */
    if (atomic_fetch_sub_explicit(&rt->live, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&rt->wait_lock);
        pthread_cond_broadcast(&rt->wait_cond);
        pthread_mutex_unlock(&rt->wait_lock);
    }
    (void)w;
    bc_actor_release(a);
}

bool bc__actor_run(bc_worker_t *w, bc_actor_t *a, unsigned batch)
{
    unsigned n = 0;
    while (n < batch) {
        bc_msg_t *m = bc_mpscq_pop(&a->mq);
        if (m == NULL)
            break;
        n++;
        if (m->type == BC_MSG_STOP_REQ && m == &a->stop_msg) {
            finalize(w, a);
            return false;
        }
        if ((m->flags & BC_MSGF_TIMER) && bc__timer_tick_cancelled(m)) {
            bc_msg_free(m);
            continue;
        }
        tls_current = m;
        tls_kept = 0;
        a->fn(a, a->state, m);
        tls_current = NULL;
        if (!tls_kept)
            bc_msg_free(m);
    }
    if (n < batch && bc_mpscq_mark_idle(&a->mq, false))
        return false; /* idle: the next push schedules it again */
    return true;
}
