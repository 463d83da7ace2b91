/* wheel.c - hierarchical timing wheel (4 x 256 slots + overflow list).
 *
 * Key design decision: a node's place is a pure function of its deadline d and
 * `now`: the level is the highest byte in which they differ, the slot is d's
 * byte there. No slot ever wraps, a level-0 slot holds one deadline (a FIFO:
 * insertion order), and a higher slot cascades exactly when `now` enters its
 * block; advance() jumps between such events via the occupancy bitmaps.
 */
#include "wheel.h"

#define WORDS (BC_WHEEL_SLOTS / 64)
/* Sentinel ids, kept in the sentinel's deadline field. */
#define ID_DUE ((uint64_t)(BC_WHEEL_LEVELS * BC_WHEEL_SLOTS))
#define ID_OVERFLOW (ID_DUE + 1)

static void list_init(bc_wheel_node_t *s, uint64_t id)
{
    s->prev = s->next = s;
    s->deadline = id;
}

static int list_empty(const bc_wheel_node_t *s)
{
    return s->next == s;
}

static void list_append(bc_wheel_node_t *s, bc_wheel_node_t *n)
{
    n->prev = s->prev;
    n->next = s;
    s->prev->next = n;
    s->prev = n;
}

static void bit_set(bc_wheel_t *w, unsigned level, unsigned slot)
{
    w->bitmap[level][slot >> 6] |= (uint64_t)1 << (slot & 63);
}

static void bit_clear(bc_wheel_t *w, unsigned level, unsigned slot)
{
    w->bitmap[level][slot >> 6] &= ~((uint64_t)1 << (slot & 63));
}

/* First set bit at index >= from in a level's bitmap, or -1. */
static int bit_find(const bc_wheel_t *w, unsigned level, unsigned from)
{
    if (from >= BC_WHEEL_SLOTS)
        return -1;
    unsigned word = from >> 6;
    uint64_t bits = w->bitmap[level][word] & (~(uint64_t)0 << (from & 63));
    for (;;) {
        if (bits)
            return (int)(word * 64 + (unsigned)__builtin_ctzll(bits));
        if (++word == WORDS)
            return -1;
        bits = w->bitmap[level][word];
    }
}

/* Link n where it belongs relative to w->now (see the file comment). */
static void place(bc_wheel_t *w, bc_wheel_node_t *n)
{
    uint64_t d = n->deadline;
    if (d <= w->now) {
        list_append(&w->due, n);
        return;
    }
    uint64_t x = d ^ w->now;
    if (x >> 32) {
        list_append(&w->overflow, n);
        if (d < w->overflow_min)
            w->overflow_min = d;
        return;
    }
    unsigned level = (unsigned)(63 - __builtin_clzll(x)) / 8;
    unsigned slot = (unsigned)(d >> (8 * level)) & (BC_WHEEL_SLOTS - 1);
    list_append(&w->slots[level][slot], n);
    bit_set(w, level, slot);
}

/* Detach a slot's whole list and re-place its nodes, in order. */
static void cascade(bc_wheel_t *w, unsigned level, unsigned slot)
{
    bc_wheel_node_t *s = &w->slots[level][slot];
    bc_wheel_node_t *n = s->next, *last = s->prev;
    last->next = NULL;
    s->next = s->prev = s;
    bit_clear(w, level, slot);
    while (n) {
        bc_wheel_node_t *next = n->next;
        place(w, n);
        n = next;
    }
}

/* Move the overflow nodes that now fall inside the wheel's 2^32 ms range into
 * it, and recompute the overflow minimum. */
static void cascade_overflow(bc_wheel_t *w)
{
    bc_wheel_node_t *s = &w->overflow;
    bc_wheel_node_t *n = s->next, *last = s->prev;
    last->next = NULL;
    s->next = s->prev = s;
    w->overflow_min = UINT64_MAX;
    while (n) {
        bc_wheel_node_t *next = n->next;
        place(w, n);
        n = next;
    }
}

/* Set *t to the earliest time > w->now at which something happens (a level-0
 * slot fires, a higher slot cascades or the overflow list is rescanned) and
 * return 1, or return 0 when nothing is scheduled past now. Level l's events
 * all lie in later blocks of 2^(8l) ms than level l-1's, so the first level
 * with an occupied slot after now's byte has the answer. */
static int next_event(const bc_wheel_t *w, uint64_t *t)
{
    for (unsigned level = 0; level < BC_WHEEL_LEVELS; level++) {
        unsigned shift = 8 * level;
        unsigned cur = (unsigned)(w->now >> shift) & (BC_WHEEL_SLOTS - 1);
        int slot = bit_find(w, level, cur + 1);
        if (slot >= 0) {
            uint64_t block = ~(uint64_t)0 << (shift + 8);
            *t = (w->now & block) | ((uint64_t)slot << shift);
            return 1;
        }
    }
    if (list_empty(&w->overflow))
        return 0;
    *t = w->overflow_min & ~(uint64_t)0xffffffffu;
    return 1;
}

/* Unlink every node in the due list and hand it to cb, oldest first,
 * including nodes that cb appends to it. */
static void drain_due(bc_wheel_t *w, bc_wheel_cb_t cb, void *arg)
{
    while (!list_empty(&w->due)) {
        bc_wheel_node_t *n = w->due.next;
        bc_wheel_remove(w, n);
        if (cb)
            cb(n, arg);
    }
}

/* Initialise an empty wheel whose current time is now_ms. */
void bc_wheel_init(bc_wheel_t *w, uint64_t now_ms)
{
    w->now = now_ms;
    w->count = 0;
    w->overflow_min = UINT64_MAX;
    list_init(&w->due, ID_DUE);
    list_init(&w->overflow, ID_OVERFLOW);
    for (unsigned l = 0; l < BC_WHEEL_LEVELS; l++) {
        for (unsigned i = 0; i < WORDS; i++)
            w->bitmap[l][i] = 0;
        for (unsigned s = 0; s < BC_WHEEL_SLOTS; s++)
            list_init(&w->slots[l][s], (uint64_t)l * BC_WHEEL_SLOTS + s);
    }
}

/* Schedule n at n->deadline; reschedules n if it is already linked. O(1).
 * The wheel borrows n until it is removed, fired or cleared. */
void bc_wheel_add(bc_wheel_t *w, bc_wheel_node_t *n)
{
    if (n->next)
        bc_wheel_remove(w, n);
    place(w, n);
    w->count++;
}

/* Unlink n. O(1): when n was the last node of its list, the sentinel it
 * leaves behind says (by its id) which bitmap bit to clear. No-op if n is not
 * linked. */
void bc_wheel_remove(bc_wheel_t *w, bc_wheel_node_t *n)
{
    if (!n->next)
        return;
    bc_wheel_node_t *prev = n->prev, *next = n->next;
    prev->next = next;
    next->prev = prev;
    n->prev = n->next = NULL;
    w->count--;
    if (prev != next)
        return;
    /* Only the sentinel is left. */
    uint64_t id = prev->deadline;
    if (id < ID_DUE)
        bit_clear(w, (unsigned)(id / BC_WHEEL_SLOTS), (unsigned)(id % BC_WHEEL_SLOTS));
    else if (id == ID_OVERFLOW)
        w->overflow_min = UINT64_MAX;
}

/* 1 if n is linked in a wheel, else 0. */
int bc_wheel_linked(const bc_wheel_node_t *n)
{
    return n->next != NULL;
}

/* Number of linked nodes. */
size_t bc_wheel_count(const bc_wheel_t *w)
{
    return w->count;
}

/* Advance to now_ms, firing due nodes in deadline order. Each step drains the
 * due list at the current time, then jumps to the next event: cascades the
 * overflow list and the slots of levels 3..1 that the new time has entered,
 * and moves the level-0 slot of the new time, whose nodes all have exactly
 * that deadline, to the due list. One pass is enough: place() puts a node
 * straight at its final level and never into the slot matching the current
 * time at that level. */
void bc_wheel_advance(bc_wheel_t *w, uint64_t now_ms, bc_wheel_cb_t cb, void *arg)
{
    if (now_ms < w->now)
        now_ms = w->now;
    for (;;) {
        drain_due(w, cb, arg);
        uint64_t t;
        if (!next_event(w, &t) || t > now_ms)
            break;
        w->now = t;
        if (!list_empty(&w->overflow) && t >= (w->overflow_min & ~(uint64_t)0xffffffffu))
            cascade_overflow(w);
        for (unsigned level = BC_WHEEL_LEVELS - 1; level > 0; level--) {
            unsigned slot = (unsigned)(t >> (8 * level)) & (BC_WHEEL_SLOTS - 1);
            if (!list_empty(&w->slots[level][slot]))
                cascade(w, level, slot);
        }
        bc_wheel_node_t *s = &w->slots[0][t & (BC_WHEEL_SLOTS - 1)];
        if (!list_empty(s)) {
            /* Splice the whole slot onto the (empty) due list, in order. */
            bc_wheel_node_t *first = s->next, *last = s->prev;
            first->prev = w->due.prev;
            w->due.prev->next = first;
            last->next = &w->due;
            w->due.prev = last;
            s->next = s->prev = s;
            bit_clear(w, 0, (unsigned)(t & (BC_WHEEL_SLOTS - 1)));
        }
    }
    /* Nothing happens in (w->now, now_ms], so every node stays where it is. */
    w->now = now_ms;
}

/* Earliest time at which advance() has work: w->now when something is due,
 * else the next event; UINT64_MAX when empty. Never later than the earliest
 * pending deadline. */
uint64_t bc_wheel_next_deadline(const bc_wheel_t *w)
{
    uint64_t t;
    if (!list_empty(&w->due))
        return w->now;
    return next_event(w, &t) ? t : UINT64_MAX;
}

/* Empty one list, handing each node to cb. */
static void clear_list(bc_wheel_t *w, bc_wheel_node_t *s, bc_wheel_cb_t cb, void *arg)
{
    while (!list_empty(s)) {
        bc_wheel_node_t *n = s->next;
        bc_wheel_remove(w, n);
        if (cb)
            cb(n, arg);
    }
}

/* Unlink every node, calling cb (may be NULL) on each, in no particular
 * order. Only occupied slots are visited. The current time is kept. */
void bc_wheel_clear(bc_wheel_t *w, bc_wheel_cb_t cb, void *arg)
{
    clear_list(w, &w->due, cb, arg);
    clear_list(w, &w->overflow, cb, arg);
    for (unsigned level = 0; level < BC_WHEEL_LEVELS; level++) {
        int slot;
        while ((slot = bit_find(w, level, 0)) >= 0)
            clear_list(w, &w->slots[level][slot], cb, arg);
    }
    w->overflow_min = UINT64_MAX;
}
