/* pool.h - size-class memory pools with per-thread caches.
 *
 * Messages, actors and timers come from here: an allocation or a free is a
 * push or pop on a thread-local free list. Threads that free more than they
 * allocate (a consumer of many producers) hand whole batches to a global depot,
 * from which threads that run dry take batches: one mutex acquisition per
 * BC_POOL_BATCH objects, never on the per-object path.
 */
#ifndef BC_POOL_H
#define BC_POOL_H

#include <stddef.h>
#include <stdint.h>

#define BC_POOL_CLASSES 8   /* 32, 64, ..., 4096 bytes */
#define BC_POOL_MIN_SHIFT 5 /* smallest class: 32 bytes */
#define BC_POOL_LARGE 0xffu /* class of blocks above 4096 bytes (malloc) */
#define BC_POOL_BATCH 256   /* objects moved to/from the depot at once */

/* Size class for `size` bytes, or BC_POOL_LARGE. */
static inline unsigned bc_pool_class(size_t size)
{
    if (size <= 32)
        return 0;
    if (size > ((size_t)1 << (BC_POOL_MIN_SHIFT + BC_POOL_CLASSES - 1)))
        return BC_POOL_LARGE;
    /* ceil(log2(size)) - 5 */
    return (unsigned)(64 - __builtin_clzll((unsigned long long)(size - 1))) - BC_POOL_MIN_SHIFT;
}

/* Allocate from class `cls` (never BC_POOL_LARGE). Any thread. Aborts on
 * out-of-memory. The memory is not zeroed. */
void *bc_pool_alloc(unsigned cls);

/* Return memory to class `cls`. Any thread (not necessarily the allocating
 * one). */
void bc_pool_free(unsigned cls, void *p);

/* Allocate `size` bytes: pooled up to 4096, malloc above. *cls receives the
 * class to pass to bc_pool_free_size. */
void *bc_pool_alloc_size(size_t size, unsigned *cls);
void bc_pool_free_size(unsigned cls, void *p);

/* Bytes currently held by the pools (blocks carved from the system), for
 * footprint measurements. */
size_t bc_pool_bytes_reserved(void);

/* Hand this thread's cached objects back to the depot (called when a
 * runtime thread exits). */
void bc_pool_thread_flush(void);

#endif /* BC_POOL_H */
