/* seen.c - time-bounded key set: linear probing plus an insertion-order ring for expiry.
 *
 * Key decision: expiry is driven by the ring (oldest first), and deletion from the probe table
 * uses backward-shift, so there are no tombstones and lookups stay short at any age.
 */
#include "seen.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t key; /* 0 = empty (key 0 is remapped to 1) */
} slot_t;

typedef struct {
    uint64_t key, at_ms;
} entry_t;

struct bc_seen_s {
    uint64_t horizon_ms;
    slot_t *slots;
    size_t cap; /* power of two */
    entry_t *ring;
    size_t rcap, rhead, rcount; /* rcap == cap / 2: load factor <= 0.5 */
};

static uint64_t fix(uint64_t k)
{
    return k ? k : 1;
}

static size_t home(const bc_seen_t *s, uint64_t k)
{
    return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 17) & (s->cap - 1);
}

static void table_put(slot_t *slots, size_t cap, uint64_t k, size_t h)
{
    size_t i = h;
    while (slots[i].key)
        i = (i + 1) & (cap - 1);
    slots[i].key = k;
}

static void table_del(bc_seen_t *s, uint64_t k)
{
    size_t i = home(s, k);
    while (s->slots[i].key && s->slots[i].key != k)
        i = (i + 1) & (s->cap - 1);
    if (s->slots[i].key == 0)
        return;
    /* Backward-shift deletion. */
    size_t j = i;
    for (;;) {
        s->slots[i].key = 0;
        for (;;) {
            j = (j + 1) & (s->cap - 1);
            if (s->slots[j].key == 0)
                return;
            size_t h = home(s, s->slots[j].key);
            /* Move j back to i unless its home lies cyclically in (i, j]. */
            if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
                continue;
            break;
        }
        s->slots[i] = s->slots[j];
        i = j;
    }
}

static int grow(bc_seen_t *s)
{
    size_t ncap = s->cap * 2;
    slot_t *ns = calloc(ncap, sizeof *ns);
    entry_t *nr = malloc(ncap / 2 * sizeof *nr);
    if (ns == NULL || nr == NULL) {
        free(ns);
        free(nr);
        return -1;
    }
    for (size_t n = 0; n < s->rcount; n++)
        nr[n] = s->ring[(s->rhead + n) % s->rcap];
    free(s->slots);
    free(s->ring);
    s->slots = ns;
    s->ring = nr;
    s->cap = ncap;
    s->rcap = ncap / 2;
    s->rhead = 0;
    for (size_t n = 0; n < s->rcount; n++)
        table_put(s->slots, s->cap, nr[n].key, home(s, nr[n].key));
    return 0;
}

bc_seen_t *bc_seen_create(uint64_t horizon_ms)
{
    bc_seen_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->horizon_ms = horizon_ms;
    s->cap = 1024;
    s->rcap = s->cap / 2;
    s->slots = calloc(s->cap, sizeof *s->slots);
    s->ring = malloc(s->rcap * sizeof *s->ring);
    if (s->slots == NULL || s->ring == NULL) {
        bc_seen_destroy(s);
        return NULL;
    }
    return s;
}

void bc_seen_destroy(bc_seen_t *s)
{
    if (s == NULL)
        return;
    free(s->slots);
    free(s->ring);
    free(s);
}

int bc_seen_has(const bc_seen_t *s, uint64_t key)
{
    uint64_t k = fix(key);
    size_t i = home(s, k);
    while (s->slots[i].key) {
        if (s->slots[i].key == k)
            return 1;
        i = (i + 1) & (s->cap - 1);
    }
    return 0;
}

int bc_seen_add(bc_seen_t *s, uint64_t key, uint64_t now_ms)
{
    uint64_t k = fix(key);
    while (s->rcount > 0) {
        entry_t *e = &s->ring[s->rhead];
        if (e->at_ms + s->horizon_ms > now_ms)
            break;
        table_del(s, e->key);
        s->rhead = (s->rhead + 1) % s->rcap;
        s->rcount--;
    }
    if (bc_seen_has(s, k))
        return 0;
    if (s->rcount == s->rcap && grow(s) != 0)
        abort(); /* out of memory */
    table_put(s->slots, s->cap, k, home(s, k));
    s->ring[(s->rhead + s->rcount) % s->rcap] = (entry_t){k, now_ms};
    s->rcount++;
    return 1;
}

size_t bc_seen_count(const bc_seen_t *s)
{
    return s->rcount;
}

uint64_t bc_seen_key(const char *a, size_t alen, const char *b, size_t blen)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < alen; i++)
        h = (h ^ (unsigned char)a[i]) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;
    for (size_t i = 0; i < blen; i++)
        h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
    return h;
}
