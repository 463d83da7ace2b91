/* wheel.h - hierarchical timing wheel with millisecond resolution.
 *
 * Four levels of 256 slots (level l holds deadlines that differ from the
 * current time first in byte l, so together they cover 2^32 ms) plus an
 * overflow list for anything further out. Each slot is a circular list with a
 * sentinel; per-level 256-bit occupancy bitmaps find the next non-empty slot
 * with a few count-trailing-zeros. Nodes are intrusive: embed a
 * bc_wheel_node_t in your own struct. Single-threaded: one owner thread.
 *
 * The wheel holds self-referencing sentinels: never copy or move a
 * bc_wheel_t after bc_wheel_init(). Remove a linked node (or clear the wheel)
 * before freeing it.
 *
 * Costs: add and remove are O(1); a node is moved at most once per level on
 * its way down (plus one overflow rescan per 2^32 ms epoch it waits through),
 * so each expiry is amortized O(1); advance() visits only occupied slots.
 *
 * Usage (a periodic timer without drift):
 *
 *     typedef struct { bc_wheel_node_t node; uint64_t period; } tick_t;
 *
 *     static void on_expire(bc_wheel_node_t *n, void *arg)
 *     {
 *         tick_t *t = (tick_t *)((char *)n - offsetof(tick_t, node));
 *         n->deadline += t->period;       // from the deadline, not from now
 *         bc_wheel_add(arg, n);
 *     }
 *
 *     bc_wheel_init(&w, now_ms());
 *     t.node.deadline = now_ms() + t.period;
 *     bc_wheel_add(&w, &t.node);
 *     for (;;) {
 *         sleep_until(bc_wheel_next_deadline(&w));
 *         bc_wheel_advance(&w, now_ms(), on_expire, &w);
 *     }
 */
#ifndef BC_WHEEL_H
#define BC_WHEEL_H

#include <stddef.h>
#include <stdint.h>

#define BC_WHEEL_LEVELS 4
#define BC_WHEEL_SLOTS 256

typedef struct bc_wheel_node_s {
    struct bc_wheel_node_s *prev, *next; /* NULL/NULL when not linked */
    uint64_t deadline;                   /* absolute ms, set by caller before add */
} bc_wheel_node_t;

typedef struct bc_wheel_s {
    uint64_t now;             /* current time: every deadline <= now has fired */
    size_t count;             /* linked nodes */
    uint64_t overflow_min;    /* lower bound of the overflow deadlines, or UINT64_MAX */
    bc_wheel_node_t due;      /* sentinel: deadline <= now, fire at the next advance */
    bc_wheel_node_t overflow; /* sentinel: deadline in a later 2^32 ms epoch */
    uint64_t bitmap[BC_WHEEL_LEVELS][BC_WHEEL_SLOTS / 64];
    bc_wheel_node_t slots[BC_WHEEL_LEVELS][BC_WHEEL_SLOTS]; /* sentinels */
} bc_wheel_t;

typedef void (*bc_wheel_cb_t)(bc_wheel_node_t *n, void *arg);

/* Initialise an empty wheel whose current time is now_ms. */
void bc_wheel_init(bc_wheel_t *w, uint64_t now_ms);

/* Schedule n at n->deadline (absolute ms). O(1). A deadline at or before the
 * current time fires at the next advance, before any later deadline. If n is
 * already linked in w it is rescheduled. The wheel borrows n until it is
 * removed, fired or cleared. */
void bc_wheel_add(bc_wheel_t *w, bc_wheel_node_t *n);

/* Unlink n from w. O(1); no-op if n is not linked. */
void bc_wheel_remove(bc_wheel_t *w, bc_wheel_node_t *n);

/* 1 if n is linked in a wheel, else 0. */
int bc_wheel_linked(const bc_wheel_node_t *n);

/* Number of linked nodes. */
size_t bc_wheel_count(const bc_wheel_t *w);

/* Move time forward to now_ms and call cb for each node with deadline <=
 * now_ms, in deadline order (equal deadlines: insertion order; deadlines that
 * were already past when added count as the time they were added at). Each
 * node is unlinked before cb runs; cb may add or remove any nodes, including
 * re-adding n with a later deadline (added deadlines <= now_ms fire in this
 * same call), but must not call bc_wheel_advance or bc_wheel_clear. A now_ms
 * earlier than the current time is treated as the current time. Empty
 * stretches are skipped with the bitmaps, so long jumps are cheap. */
void bc_wheel_advance(bc_wheel_t *w, uint64_t now_ms, bc_wheel_cb_t cb, void *arg);

/* A time at or before the earliest pending deadline at which advance() has
 * work to do (a cascade point may come before the true deadline, never after
 * it). The current time if something is due; UINT64_MAX when empty. */
uint64_t bc_wheel_next_deadline(const bc_wheel_t *w);

/* Unlink every node, calling cb (may be NULL) on each, in unspecified order.
 * cb may free the node but must not add nodes to w. The current time is kept. */
void bc_wheel_clear(bc_wheel_t *w, bc_wheel_cb_t cb, void *arg);

#endif /* BC_WHEEL_H */
