/* internal.h - runtime structures shared by the runtime's own modules.
 * Not installed; tests and benchmarks may include it to reach below the API.
 */
#ifndef BC_INTERNAL_H
#define BC_INTERNAL_H

#include "blockcoord.h"
#include "mpscq.h"
#include "pool.h"

#include <assert.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BC_CACHELINE 64
#define BC_MAX_WORKERS 64
#define BC_RQ_SIZE 256 /* per-worker run queue slots, power of two */
#define BC_DEFAULT_BATCH 64
#define BC_DEFAULT_SPIN_US 50
#define BC_DEFAULT_IO_SPIN_US 100
#define BC_IO_MAX_POLLS 8 /* sockets a spinning worker may read (io.c, "worker reads") */
#define BC_DEFAULT_WARM_US 1000
#define BC_DEFAULT_WARM_CPUS 8 /* at most this many CPUs kept warm unless asked (warm.c) */
#define BC_MAX_WARM_CPUS 1024

#define bc_container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* bc_msg_t.flags */
#define BC_MSGF_TIMER 0x1u    /* a bc_timer_tick_t: holds a timer reference */
#define BC_MSGF_EMBEDDED 0x2u /* part of another object: never freed */

/* Internal system message types. */
#define BC_MSG_STOP_REQ 0xffff0100u /* bc_stop()'s request, in the mailbox */

/* bc_actor_t.flags */
#define BC_ACTOR_STOP_REQ 0x1u /* bc_stop() was called */
#define BC_ACTOR_STOPPED 0x2u  /* BC_MSG_STOPPED delivered; mailbox closed */

struct bc_actor_s {
    /* Line 0: written by other threads (senders, retain/release, stop). The
     * mailbox tail is the consumer's, but as in Pony it shares the line with
     * the head: one pop per message touches it. */
    bc_mpscq_t mq;          /* head (producers), sentinel, tail (owner) */
    _Atomic uint32_t rc;    /* references: runtime (until stopped) + handles */
    _Atomic uint32_t flags; /* BC_ACTOR_* */
    bc_msg_t stop_msg;      /* embedded BC_MSG_STOP_REQ: no allocation */
    /* Line 1: the running worker's (and the scheduler's queue link). */
    alignas(BC_CACHELINE) bc_behaviour_fn fn;
    void *state;
    bc_runtime_t *rt;
    bc_actor_t *live_prev, *live_next; /* live list of shard `shard` */
    bc_msg_t sched_node;               /* link in the inject / pinned queues */
    int16_t shard;                     /* live-list shard */
    int16_t pin;                       /* worker it must run on, or -1 */
    uint32_t pad_;
};
_Static_assert(sizeof(struct bc_actor_s) == 2 * BC_CACHELINE, "actor is two cache lines");

typedef struct bc_live_shard_s {
    alignas(BC_CACHELINE) pthread_mutex_t lock;
    bc_actor_t *head;
} bc_live_shard_t;

typedef struct bc_worker_s {
    /* Owner-only. */
    alignas(BC_CACHELINE) bc_runtime_t *rt;
    unsigned index;
    unsigned runnext_streak;
    bc_actor_t *runnext; /* the actor made runnable last: runs next (not stealable) */
    uint64_t rng;
    uint64_t tick;
    pthread_t thread;
    bc_mpscq_t pinned;           /* actors pinned here, pushed by anyone */
    _Atomic uint64_t pinned_len; /* pushed and not yet popped: exact, unlike the queue's head */
    /* Run queue: head moved by the owner and by thieves, tail by the owner. */
    alignas(BC_CACHELINE) _Atomic uint32_t rq_head;
    alignas(BC_CACHELINE) _Atomic uint32_t rq_tail;
    _Atomic(bc_actor_t *) rq[BC_RQ_SIZE];
    /* Parking: 1 = a wake is pending. */
    alignas(BC_CACHELINE) _Atomic uint32_t futex;
    /* Statistics, owner-written, read racily by stats(). */
    _Atomic uint64_t n_parks, n_wakes, n_steals;
    /* I/O tasks queued by this worker's current turn (bc_io_post_direct); io_owes: one of
     * them took the queue from idle, so the loop has not been told yet. */
    unsigned io_pushed; /* how many */
    bool io_owes;
    unsigned io_deferred; /* turns run since the first of those tasks was queued */
    bool io_urgent;       /* one of them should leave at the end of this turn (a signal) */
    /* Ready sockets (slot | generation << 8) this worker left for its next look (io.c). */
    uint64_t io_carry[BC_IO_MAX_POLLS];
    unsigned io_ncarry;
    /* Deterministic mode: the runnable set, picked from at random. */
    bc_actor_t **bag;
    size_t bag_len, bag_cap;
} bc_worker_t;

typedef struct bc_io_s bc_io_t;

struct bc_runtime_s {
    bc_worker_t *workers;
    unsigned nworkers;
    unsigned batch;
    unsigned spin_us;
    unsigned io_spin_us;       /* 0: the I/O thread never spins */
    bool io_direct;            /* workers write their Redis commands when the loop sleeps */
    bool io_poll;              /* spinning workers read ready Redis sockets (io.c) */
    bc_worker_t *io_worker;    /* the I/O thread's context when it runs actors (io_run), or NULL */
    _Atomic uint64_t io_turns; /* statistics: turns it ran */
    int det;
    uint64_t seed;

    /* Actors made runnable off the workers, or overflow; one consumer at a time. */
    alignas(BC_CACHELINE) bc_mpscq_t inject;
    alignas(BC_CACHELINE) atomic_flag inject_lock;
    _Atomic uint64_t inject_len; /* pushed and not yet popped: exact, unlike the queue's head */
    alignas(BC_CACHELINE) _Atomic uint64_t parked_mask; /* bit i: worker i parked */
    _Atomic int spinning;                               /* workers looking for work */
    _Atomic int stopping;                               /* workers must exit */
    _Atomic int destroying;                             /* no more spawns */

    alignas(BC_CACHELINE) _Atomic uint64_t live; /* actors not yet stopped */
    _Atomic uint64_t spawned, stopped, dead_letters;
    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;

    bc_live_shard_t *shards; /* nworkers + 1 (non-worker threads) */
    bc_io_t *io;

    /* CPU warmers (warm.c): awake counts the runtime threads not asleep (workers not parked,
     * the I/O thread not in a blocking poll) plus holds; warm_until_ns is when the window
     * after the last of them fell asleep ends; warm_gen is the warmers' futex word. */
    alignas(BC_CACHELINE) _Atomic int warm_awake;
    _Atomic uint64_t warm_until_ns;
    _Atomic uint32_t warm_gen;
    _Atomic int warm_parked; /* warmers asleep on warm_gen */
    _Atomic int warm_stop;
    _Atomic uint64_t warm_parks, warm_wakes;
    uint64_t warm_ns; /* 0: no warmers */
    unsigned warm_cpus;
    unsigned nwarm;                /* warmer threads started */
    _Atomic unsigned warm_running; /* ... and running as SCHED_IDLE warmers */
    struct bc_warmer_s *warmers;
};

/* The worker running on this thread, or NULL. */
extern _Thread_local bc_worker_t *bc__tls_worker;
/* On the I/O thread while it runs the loop (io_run): actors made runnable are collected here,
 * for the I/O thread to run them itself afterwards (sched.c, bc__sched_io_run). */
extern _Thread_local bc_worker_t *bc__tls_io_collect;
/* Set around a delivery that should run first among the collected (a pub/sub message: a
 * signal, an ACK), ahead of replies read in the same pass. */
extern _Thread_local bool bc__tls_io_first;
bool bc__sched_io_pending(bc_runtime_t *rt);
void bc__sched_io_run(bc_runtime_t *rt, bool run);

/* Sleep while *addr == val (or until woken, or spuriously: callers re-check). */
static inline void bc__futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

/* Wake up to n threads sleeping on addr. */
static inline void bc__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void bc__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* warm.c */
/* Start the CPU warmers (none when rt->warm_ns is 0). Returns 0 or an errno (negative). */
int bc__warm_start(bc_runtime_t *rt);
/* Stop and join them. */
void bc__warm_stop(bc_runtime_t *rt);
/* 1 if a CPU quota applies to this process: cgroup_file is /proc/self/cgroup, root the
 * cgroup mount point (/sys/fs/cgroup); v1 cpu.cfs_quota_us and v2 cpu.max, on the process's
 * cgroup or any ancestor. 0 when nothing can be read. */
int bc__cpu_quota(const char *root, const char *cgroup_file);
/* A runtime thread is about to sleep / has just woken. */
void bc__warm_sleep(bc_runtime_t *rt);
void bc__warm_awake(bc_runtime_t *rt);

/* sched.c */
int bc__sched_start(bc_runtime_t *rt);
void bc__sched_stop(bc_runtime_t *rt);
/* Make `a` runnable. Called by whoever saw its mailbox leave the idle state. */
void bc__schedule(bc_actor_t *a);

/* actor.c */
/* Run one turn of `a` on worker `w`; returns true if `a` must be queued
 * again (it has more messages), false if it went idle or stopped. */
bool bc__actor_run(bc_worker_t *w, bc_actor_t *a, unsigned batch);
/* Ask every live actor to stop. Returns the number asked. */
size_t bc__actor_stop_all(bc_runtime_t *rt);

/* io.c */
typedef struct bc_io_task_s bc_io_task_t;
typedef void (*bc_io_task_fn)(bc_io_t *io, bc_io_task_t *task);
struct bc_io_task_s {
    bc_msg_t node; /* queue link */
    bc_io_task_fn fn;
};
/* An on/off environment setting (BC_IO_RUN, BC_HINT_FIRST, ...): "0" sets *opt to -1 (off),
 * "1", empty or unset leave it as it is (the default), anything else is ignored with a
 * warning naming the variable and the value. */
void bc__env_switch(const char *name, int *opt);

int bc__io_start(bc_runtime_t *rt);
void bc__io_stop(bc_runtime_t *rt);
/* Run task->fn on the I/O thread, soon. Any thread. Wait-free. */
void bc_io_post(bc_runtime_t *rt, bc_io_task_t *task);
/* The same for a task that a worker may run itself at the end of its actor turn, holding the
 * loop (io.c, "direct writes"); off a worker, or with direct writes off, bc_io_post. The task
 * runs under the loop either way, in queue order. */
void bc_io_post_direct(bc_runtime_t *rt, bc_io_task_t *task);
/* From an actor turn: the direct tasks it queued should be written when the turn ends rather
 * than after the actors it made runnable (a signal's send, not a receiver's bookkeeping). */
void bc_io_urgent(bc_runtime_t *rt);
/* Workers: after an actor turn that used bc_io_post_direct. */
void bc__io_turn_end(bc_worker_t *w);
/* Called by the running task: it changed nothing that a sleeping loop must notice (no watcher
 * or timer started, or whatever it started is flushed by a bc_io_flush_t). */
void bc_io_task_clean(bc_io_t *io);
/* Called by a flush: the loop must be woken to notice what it changed. */
void bc_io_need_wake(bc_io_t *io);
/* A write to make once the current batch of tasks has run (under the loop). */
typedef struct bc_io_flush_s bc_io_flush_t;
struct bc_io_flush_s {
    bc_io_flush_t *next;
    void (*fn)(bc_io_t *io, bc_io_flush_t *f);
    bool queued;
};
void bc_io_defer_flush(bc_io_t *io, bc_io_flush_t *f);
/* Forget a queued flush (its owner goes away). Under the loop. */
void bc_io_cancel_flush(bc_io_t *io, bc_io_flush_t *f);
/* The I/O thread's libev loop (I/O thread only, or before start). */
struct ev_loop *bc_io_loop(bc_io_t *io);
bc_runtime_t *bc_io_runtime(bc_io_t *io);
/* True on the I/O thread, and on a worker while it runs I/O tasks holding the loop. */
bool bc_io_is_current(bc_io_t *io);
/* Register fn to run on the I/O thread when the runtime shuts down, before
 * the loop stops (last registered runs first). Before start or on the I/O
 * thread only. Returns 0 or -ENOSPC. */
int bc_io_add_closer(bc_io_t *io, void (*fn)(bc_io_t *io, void *arg), void *arg);
/* Unregister a closer (same fn and arg). I/O thread only. Returns 0 or
 * -ENOENT. */
int bc_io_remove_closer(bc_io_t *io, void (*fn)(bc_io_t *io, void *arg), void *arg);
uint64_t bc__io_timers_pending(bc_io_t *io);
void bc__io_stats(bc_io_t *io, uint64_t *direct, uint64_t *wakes, uint64_t *polled,
                  uint64_t *carried, uint64_t *after_write);
/* Worker reads (io.c): a socket that a worker looking for work may read itself, holding the
 * loop, when it is ready; fn does what the loop's read watcher would (it runs under the loop,
 * and calls bc_io_need_wake if it changed what the sleeping loop must notice). */
typedef struct bc_io_poll_s bc_io_poll_t;
struct bc_io_poll_s {
    void (*fn)(bc_io_t *io, bc_io_poll_t *p);
    int slot; /* -1: not watched (initialise so) */
    int fd;
    bool first; /* read before the others; if that made work for this worker, the others wait
                   until after that work's turn (a subscriber: what it reads wakes someone) */
};
/* Watch fd for p (under the loop). 0, -EINVAL (worker reads off, or p watched already),
 * -ENOSPC (all slots taken: the loop alone reads it) or an epoll_ctl errno. */
int bc_io_poll_add(bc_io_t *io, bc_io_poll_t *p, int fd);
/* Stop watching (under the loop, before fd is closed). No-op if p is not watched. */
void bc_io_poll_del(bc_io_t *io, bc_io_poll_t *p);
/* Workers looking for work (looking): read the watched sockets that became ready, if the loop
 * is free. True if something was read (actors it made runnable are on this worker). Sockets
 * after a `first` one that woke an actor here are left in w->io_carry; a call with !looking
 * reads just those, once this worker has nothing more urgent (worker_main). */
bool bc__io_poll(bc_worker_t *w, bool looking);

/* timer.c (runs on the I/O thread) */
typedef struct bc_timers_s bc_timers_t;
bc_timers_t *bc__timers_create(bc_io_t *io);
bc_timers_t *bc__io_timers(bc_io_t *io);
void bc__timers_destroy(bc_timers_t *t);
uint64_t bc__timers_pending(bc_timers_t *t);
/* Drop a timer reference carried by a tick message. */
void bc__timer_tick_release(bc_msg_t *tick);
/* True if the tick's timer has been cancelled. */
bool bc__timer_tick_cancelled(bc_msg_t *tick);

#endif /* BC_INTERNAL_H */
