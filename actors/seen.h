/* seen.h - a time-bounded set of 64-bit keys: "was this messageId / ACK already handled?".
 *
 * Single-owner (the signal-watcher's behaviour): no locking. Keys stay at least `horizon_ms`
 * after insertion and then expire in insertion order; the table grows instead of evicting a
 * key that is still young, so membership within the horizon is exact (barring a 64-bit hash
 * collision).
 */
#ifndef BC_SEEN_H
#define BC_SEEN_H

#include <stddef.h>
#include <stdint.h>

typedef struct bc_seen_s bc_seen_t;

/* Create an empty set. Returns NULL only on out-of-memory. */
bc_seen_t *bc_seen_create(uint64_t horizon_ms);
void bc_seen_destroy(bc_seen_t *s);

/* Insert key at time now_ms (also expires old keys). Returns 1 if it was new, 0 if present. */
int bc_seen_add(bc_seen_t *s, uint64_t key, uint64_t now_ms);

/* 1 if key is present (not expired), else 0. */
int bc_seen_has(const bc_seen_t *s, uint64_t key);

/* Number of live keys. */
size_t bc_seen_count(const bc_seen_t *s);

/* FNV-1a over two strings separated by a 0xff byte: the key for (receiver, messageId). */
uint64_t bc_seen_key(const char *a, size_t alen, const char *b, size_t blen);

#endif
