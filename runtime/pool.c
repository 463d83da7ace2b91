/* pool.c - size-class pools: thread-local free lists over a global depot.
 *
 * Each thread keeps, per size class, a LIFO free list and a bump region carved
 * from 64-byte-aligned chunks. A free list that grows past two batches sends
 * one batch (BC_POOL_BATCH objects, pre-linked) to the class's depot; an empty
 * one first takes a batch from the depot, then bumps, then carves a new chunk.
 * The depot is a mutex-protected stack of batches: the lock is taken once per
 * BC_POOL_BATCH objects at most, so it never sits on the per-message path and
 * ThreadSanitizer sees every hand-off. Chunks are kept until process exit.
 */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (64 * 1024)

typedef struct free_obj_s {
    struct free_obj_s *next;       /* next free object in this list */
    struct free_obj_s *next_batch; /* in a depot batch head: the next batch */
    uint64_t n;                    /* in a depot batch head: objects in it */
} free_obj_t;

typedef struct {
    free_obj_t *head;
    uint32_t count;
    char *bump, *bump_end;
} tcache_class_t;

typedef struct {
    tcache_class_t cls[BC_POOL_CLASSES];
    int registered;
} tcache_t;

typedef struct {
    pthread_mutex_t lock;
    free_obj_t *batches; /* stack of full batches linked by next_batch */
} depot_t;

typedef struct chunk_s {
    struct chunk_s *next;
} chunk_hdr_t;

static depot_t depot[BC_POOL_CLASSES] = {
    [0 ... BC_POOL_CLASSES - 1] = {PTHREAD_MUTEX_INITIALIZER, NULL}};
static pthread_mutex_t chunks_lock = PTHREAD_MUTEX_INITIALIZER;
static void **chunks;
static size_t nchunks, chunks_cap;
/* relaxed: a statistic read for footprint reports only. */
static _Atomic size_t reserved_bytes;

static _Thread_local tcache_t tcache;
static pthread_key_t tcache_key;
static pthread_once_t tcache_once = PTHREAD_ONCE_INIT;

static size_t class_size(unsigned cls)
{
    return (size_t)1 << (cls + BC_POOL_MIN_SHIFT);
}

static void tcache_destructor(void *arg)
{
    (void)arg;
    bc_pool_thread_flush();
}

static void tcache_key_init(void)
{
    if (pthread_key_create(&tcache_key, tcache_destructor) != 0)
        abort();
}

static void tcache_register(void)
{
    pthread_once(&tcache_once, tcache_key_init);
    /* Any non-NULL value makes the destructor run at thread exit. */
    pthread_setspecific(tcache_key, &tcache);
    tcache.registered = 1;
}

static void *new_chunk(size_t bytes)
{
    void *p = aligned_alloc(64, bytes);
    if (p == NULL) {
        fputs("blockcoord: out of memory (pool chunk)\n", stderr);
        abort();
    }
    pthread_mutex_lock(&chunks_lock);
    if (nchunks == chunks_cap) {
        size_t ncap = chunks_cap ? chunks_cap * 2 : 64;
        void **n = realloc(chunks, ncap * sizeof *n);
        if (n == NULL) {
            fputs("blockcoord: out of memory (pool chunk table)\n", stderr);
            abort();
        }
        chunks = n;
        chunks_cap = ncap;
    }
    chunks[nchunks++] = p;
    pthread_mutex_unlock(&chunks_lock);
    atomic_fetch_add_explicit(&reserved_bytes, bytes, memory_order_relaxed);
    return p;
}

/* Slow path: refill the thread's list for `cls` or bump-allocate. */
static void *alloc_slow(unsigned cls)
{
    tcache_class_t *tc = &tcache.cls[cls];
    depot_t *d = &depot[cls];
    size_t sz = class_size(cls);

    if (!tcache.registered)
        tcache_register();
    pthread_mutex_lock(&d->lock);
    free_obj_t *b = d->batches;
    if (b)
        d->batches = b->next_batch;
    pthread_mutex_unlock(&d->lock);
    if (b) {
        tc->head = b->next;
        tc->count = (uint32_t)b->n - 1;
        return b;
    }
    if (tc->bump + sz > tc->bump_end) {
        size_t bytes = CHUNK_BYTES;
        if (bytes < sz * 16)
            bytes = sz * 16;
        tc->bump = new_chunk(bytes);
        tc->bump_end = tc->bump + bytes;
    }
    void *p = tc->bump;
    tc->bump += sz;
    return p;
}

void *bc_pool_alloc(unsigned cls)
{
    tcache_class_t *tc = &tcache.cls[cls];
    free_obj_t *o = tc->head;
    if (o) {
        tc->head = o->next;
        tc->count--;
        return o;
    }
    return alloc_slow(cls);
}

/* Move the first BC_POOL_BATCH objects of the thread list to the depot. */
static void give_batch(unsigned cls)
{
    tcache_class_t *tc = &tcache.cls[cls];
    free_obj_t *first = tc->head, *last = first;
    for (unsigned i = 1; i < BC_POOL_BATCH; i++)
        last = last->next;
    tc->head = last->next;
    tc->count -= BC_POOL_BATCH;
    last->next = NULL;
    depot_t *d = &depot[cls];
    pthread_mutex_lock(&d->lock);
    first->next_batch = d->batches;
    first->n = BC_POOL_BATCH;
    d->batches = first;
    pthread_mutex_unlock(&d->lock);
}

void bc_pool_free(unsigned cls, void *p)
{
    tcache_class_t *tc = &tcache.cls[cls];
    free_obj_t *o = p;
    /* A thread that only frees must still hand its list back when it exits. */
    if (__builtin_expect(!tcache.registered, 0))
        tcache_register();
    o->next = tc->head;
    tc->head = o;
    if (++tc->count >= 2 * BC_POOL_BATCH)
        give_batch(cls);
}

void *bc_pool_alloc_size(size_t size, unsigned *cls)
{
    unsigned c = bc_pool_class(size);
    *cls = c;
    if (c != BC_POOL_LARGE)
        return bc_pool_alloc(c);
    void *p = malloc(size);
    if (p == NULL) {
        fputs("blockcoord: out of memory\n", stderr);
        abort();
    }
    return p;
}

void bc_pool_free_size(unsigned cls, void *p)
{
    if (cls == BC_POOL_LARGE)
        free(p);
    else
        bc_pool_free(cls, p);
}

size_t bc_pool_bytes_reserved(void)
{
    return atomic_load_explicit(&reserved_bytes, memory_order_relaxed);
}

void bc_pool_thread_flush(void)
{
    for (unsigned cls = 0; cls < BC_POOL_CLASSES; cls++) {
        tcache_class_t *tc = &tcache.cls[cls];
        while (tc->count >= BC_POOL_BATCH)
            give_batch(cls);
        if (tc->count == 0)
            continue;
        /* The rest goes over as one short batch. */
        depot_t *d = &depot[cls];
        free_obj_t *first = tc->head;
        first->n = tc->count;
        pthread_mutex_lock(&d->lock);
        first->next_batch = d->batches;
        d->batches = first;
        pthread_mutex_unlock(&d->lock);
        tc->head = NULL;
        tc->count = 0;
    }
}

/* At exit every chunk goes back to the system, so leak checkers see none. */
__attribute__((destructor)) static void pool_release_all(void)
{
    pthread_mutex_lock(&chunks_lock);
    for (size_t i = 0; i < nchunks; i++)
        free(chunks[i]);
    free(chunks);
    chunks = NULL;
    nchunks = chunks_cap = 0;
    pthread_mutex_unlock(&chunks_lock);
    memset(&tcache, 0, sizeof tcache);
    for (unsigned cls = 0; cls < BC_POOL_CLASSES; cls++)
        depot[cls].batches = NULL;
}
