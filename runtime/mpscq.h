/* mpscq.h - intrusive multi-producer single-consumer queue (Vyukov), with the
 * "idle" state of the owner folded into the head pointer (Pony's messageq).
 *
 * Nodes are bc_msg_t (any struct whose first word is the atomic `next`).
 * Producers do one atomic exchange on `head` and one release store: wait-free.
 * The consumer walks `tail` with no read-modify-write on the fast path; a sentinel
 * node embedded in the queue keeps head and tail non-NULL.
 *
 * Key decision: bit 0 of `head` means "empty and nobody is scheduled to drain
 * me". A push whose exchange returns a tagged head knows it woke the queue and
 * must schedule its owner; the owner goes idle with a CAS that only succeeds
 * when the queue is really empty (head == sentinel). So "scheduled exactly once"
 * is a property of one atomic word (no separate flag to race against).
 * Bit 1 ("closed") marks a queue whose owner has stopped: pushes still link
 * (the node is freed when the queue is destroyed) but never schedule.
 */
#ifndef BC_MPSCQ_H
#define BC_MPSCQ_H

#include "blockcoord.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define BC_MPSCQ_IDLE ((uintptr_t)1)
#define BC_MPSCQ_CLOSED ((uintptr_t)2)
#define BC_MPSCQ_TAGS (BC_MPSCQ_IDLE | BC_MPSCQ_CLOSED)

typedef struct bc_mpscq_s {
    _Atomic uintptr_t head; /* producers: last node pushed, | tag bits */
    bc_msg_t sentinel;      /* linked in whenever the queue runs empty */
    bc_msg_t *tail;         /* consumer only: oldest node (or the sentinel) */
} bc_mpscq_t;

/* Result of a push. */
typedef enum {
    BC_MPSCQ_PUSHED = 0, /* queue was busy or non-empty: nothing to do */
    BC_MPSCQ_WOKE = 1,   /* queue was idle: the caller must schedule its owner */
    BC_MPSCQ_DEAD = 2    /* queue is closed: the node sits there until destroy */
} bc_mpscq_push_t;

/* Initialise an empty queue. `idle` nonzero: start in the idle state (the
 * first push reports BC_MPSCQ_WOKE); zero: start busy (no push reports it). */
static inline void bc_mpscq_init(bc_mpscq_t *q, int idle)
{
    atomic_init(&q->sentinel.next, NULL);
    q->sentinel.type = 0;
    q->sentinel.pool = 0;
    q->sentinel.flags = 0;
    q->tail = &q->sentinel;
    atomic_init(&q->head, (uintptr_t)&q->sentinel | (idle ? BC_MPSCQ_IDLE : 0));
}

/* Push the chain first..last (already linked through `next`), any thread.
 * Wait-free: one exchange. */
static inline bc_mpscq_push_t bc_mpscq_push_chain(bc_mpscq_t *q, bc_msg_t *first, bc_msg_t *last)
{
    /* relaxed: published by the release exchange below. */
    atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
    /* acq_rel: release publishes last->next = NULL and the payloads of our
     * nodes to whoever follows us; acquire orders our later store into the
     * previous node after that node's own initialisation by its producer. */
    uintptr_t prev = atomic_exchange_explicit(&q->head, (uintptr_t)last, memory_order_acq_rel);
    bc_msg_t *p = (bc_msg_t *)(prev & ~BC_MPSCQ_TAGS);
    /* release: the consumer's acquire load of p->next must see our payload. */
    atomic_store_explicit(&p->next, first, memory_order_release);
    if (prev & BC_MPSCQ_CLOSED)
        return BC_MPSCQ_DEAD;
    return (prev & BC_MPSCQ_IDLE) ? BC_MPSCQ_WOKE : BC_MPSCQ_PUSHED;
}

static inline bc_mpscq_push_t bc_mpscq_push(bc_mpscq_t *q, bc_msg_t *n)
{
    return bc_mpscq_push_chain(q, n, n);
}

/* Pop the oldest node, consumer only. Returns NULL when the queue is empty
 * or when a producer is between its exchange and its link (the node will be
 * visible shortly). The returned node is fully
 * detached: the caller owns it. */
static inline bc_msg_t *bc_mpscq_pop(bc_mpscq_t *q)
{
    bc_msg_t *tail = q->tail;
    /* acquire: pairs with the producer's release link store. */
    bc_msg_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->sentinel) {
        if (next == NULL)
            return NULL;
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        q->tail = next;
        return tail;
    }
    /* tail is the last linked node. If it is also the head, put the sentinel back
     * behind it so tail can be handed out; otherwise a push is in flight. */
    /* acquire: if head moved on, we must not hand out tail yet. */
    uintptr_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if ((bc_msg_t *)(head & ~BC_MPSCQ_TAGS) != tail)
        return NULL;
    bc_mpscq_push(q, &q->sentinel);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        q->tail = next;
        return tail;
    }
    return NULL;
}

/* Consumer only: try to go idle. Succeeds (returns true) only if the queue is
 * empty: head is the sentinel. On failure a push has slipped in (or is in
 * flight) and the consumer must stay scheduled. `closed` additionally marks
 * the queue closed, forever. */
static inline bool bc_mpscq_mark_idle(bc_mpscq_t *q, bool closed)
{
    uintptr_t expect = (uintptr_t)&q->sentinel;
    if (q->tail != &q->sentinel)
        return false;
    uintptr_t want = expect | BC_MPSCQ_IDLE | (closed ? BC_MPSCQ_CLOSED : 0);
    /* acq_rel: release makes our consumption visible before a producer that
     * sees the tag schedules us elsewhere; acquire on failure is harmless. */
    return atomic_compare_exchange_strong_explicit(&q->head, &expect, want, memory_order_acq_rel,
                                                   memory_order_acquire);
}

/* Consumer only: true if the queue is empty, with no push in flight. (Another
 * thread cannot tell: when the consumer re-links the sentinel behind its last node
 * while a push races it, head is the sentinel although a node is still unread.
 * Shared queues keep a counter of their own for that.) */
static inline bool bc_mpscq_maybe_empty(bc_mpscq_t *q)
{
    /* acquire: pairs with the producers' release link and exchange. */
    return q->tail == &q->sentinel &&
           atomic_load_explicit(&q->sentinel.next, memory_order_acquire) == NULL &&
           (bc_msg_t *)(atomic_load_explicit(&q->head, memory_order_acquire) & ~BC_MPSCQ_TAGS) ==
               &q->sentinel;
}

/* Any thread: true if the queue is in the idle state (its consumer went idle
 * and no push has come since). */
static inline bool bc_mpscq_is_idle(bc_mpscq_t *q)
{
    /* acquire: a caller that sees idle sees the consumer's last writes. */
    return (atomic_load_explicit(&q->head, memory_order_acquire) & BC_MPSCQ_IDLE) != 0;
}

#endif /* BC_MPSCQ_H */
