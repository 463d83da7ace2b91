/* io.c - the I/O thread: one libev loop that owns every timer, socket and
 * (later) hiredis context of a runtime.
 *
 * Other threads hand work over as tasks through a wait-free MPSC queue. The
 * queue's idle bit says whether the loop has been told: only the push that
 * takes the queue from idle to busy pays for ev_async_send (one eventfd
 * write), every other push is one atomic exchange. The loop drains a bounded
 * number of tasks per wake-up so sockets are never starved by a flood.
 * After an iteration with work, the loop keeps polling without sleeping for
 * io_spin_us (default 100 us): a reply or the next command usually comes
 * within that, and catching it awake saves a thread wake-up each way, the
 * largest part of a signal's latency on a VM.
 *
 * Key decision (direct writes): the loop is guarded by a mutex that the I/O
 * thread holds except while it sleeps in epoll_wait (libev's release/acquire
 * hooks) or yields between spinning passes. A worker that queued Redis commands during an actor
 * turn does not wake the I/O thread at the end of the turn: if the mutex is free (the loop sleeps),
 * the worker drains the task queue itself, in order, and writes the sockets, so a signal leaves on
 * the thread that sent it, as a blocking client's would. Tasks that change what the sleeping loop
 * waits for (new watchers, timers, a partial write, a dropped link) make the worker wake the loop
 * afterwards; plain commands on a ready connection do not, since their replies wake it anyway. If
 * the mutex is busy, the worker wakes the loop as before. BC_IO_DIRECT=0 (or io_direct = -1) turns
 * this off.
 *
 * Key decision (worker reads): each ready Redis socket is also in an edge-triggered epoll set
 * that a spinning worker checks (epoll_wait with a zero timeout) while it looks for work. When
 * it is ready and the loop is free, the worker reads it itself, under the mutex, and runs the
 * actors the messages woke. On a VM the I/O thread sleeps on a CPU that must first be woken
 * (tens of microseconds); the spinning worker's CPU is already awake, as a blocking client's
 * reader would be. What the worker does not read stays readable for the loop's own
 * level-triggered watcher. BC_IO_POLL=0 (or io_poll = -1) turns this off.
 *
 * Key decision (yielding): a spinning thread must not hold a CPU that a runnable thread wants.
 * Linux's EEVDF scheduler lets the running task reach parity before a woken one preempts it,
 * so on a small machine a spinner can keep Redis (woken onto its CPU) or the holder of the
 * loop waiting for most of a slice. Measured on 2 vCPUs at 1,000 coordinators, our spinning
 * threads held Redis to two thirds of a core and sustained round trips fell to ~0.55 of the
 * pipelined ceiling. So the spinning loop calls sched_yield() after each pass (dropping the
 * loop's mutex for that moment), and a spinning worker yields at each of its looks at the
 * sockets (sched.c), also when it found one ready but the loop held. A yield with nobody
 * waiting returns at once.
 */
#include "internal.h"

#include <errno.h>
#include <ev.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define IO_TASKS_PER_WAKE 4096
#define IO_TASKS_PER_COMBINE 512 /* a worker's share before it hands the rest to the loop */
#define IO_DIRECT_MAX_TASKS 64   /* a worker's own tasks beyond which it hands them over */
#define IO_MAX_CLOSERS 16
#define IO_MAX_POLLS BC_IO_MAX_POLLS

struct bc_io_s {
    bc_runtime_t *rt;
    struct ev_loop *loop;
    ev_async wake;
    bc_mpscq_t tasks;
    pthread_t thread;
    _Atomic int on_thread_set;
    pthread_t owner; /* the thread that runs the loop now */
    bc_timers_t *timers;
    bc_io_task_t stop_task;
    struct {
        void (*fn)(bc_io_t *io, void *arg);
        void *arg;
    } closers[IO_MAX_CLOSERS];
    unsigned nclosers;
    uint64_t spin_ns;    /* keep polling (no sleep) this long after the last work */
    bool may_sleep;      /* the next poll may block: the thread counts as asleep (warm.c) */
    uint64_t busy_at_ns; /* loop thread only: last iteration that had work */
    bool direct;         /* workers may drain tasks and write themselves */
    _Atomic uint64_t n_direct, n_direct_wakes; /* statistics */
    /* Worker reads: an edge-triggered epoll set of the sockets a spinning worker may read
     * itself. A slot's generation changes whenever it is reused, so an event that a worker
     * collected without the loop can be checked against it once the worker has the loop. */
    int pollfd;
    _Atomic unsigned npolls; /* slots in use: a worker skips the syscall while 0 */
    struct {
        bc_io_poll_t *p;
        uint32_t gen;
    } polls[IO_MAX_POLLS];
    _Atomic uint64_t n_polled;      /* statistics: reads made by workers */
    _Atomic uint64_t n_carried;     /* statistics: sockets read from a worker's carry */
    _Atomic uint64_t n_after_write; /* statistics: looks right after an urgent direct write */

    /* Everything below, the loop and every watcher on it: under `lock`, which the I/O thread
     * holds except in epoll_wait and its yields, and a combining worker holds while it runs
     * tasks or reads. */
    pthread_mutex_t lock;
    bool stop;
    bool task_clean;   /* the task running now left nothing the sleeping loop must notice */
    bool combine_wake; /* a combining worker must wake the loop when it is done */
    bool in_tasks;     /* run_tasks is running: flushes queued now run at its end */
    bc_io_flush_t *flush_head;
};

/* The loop this thread holds as a combining worker, or NULL. */
static _Thread_local bc_io_t *tls_combining;

static void flush_writes(bc_io_t *io)
{
    while (io->flush_head) {
        bc_io_flush_t *f = io->flush_head;
        io->flush_head = f->next;
        f->next = NULL;
        f->queued = false;
        f->fn(io, f);
    }
}

/* Run queued tasks, then write what they queued. On a combining worker, any task that does not
 * declare itself clean (bc_io_task_clean) means the loop must be woken afterwards. */
static void run_tasks(bc_io_t *io, unsigned limit, bool combining)
{
    unsigned n = 0;
    /* With direct writes the loop can be woken for a queue that a worker has drained and put to
     * idle meanwhile: nothing to take (and marking it idle again would never succeed). */
    if (bc_mpscq_is_idle(&io->tasks))
        return;
    io->in_tasks = true;
    for (;;) {
        bc_msg_t *m = bc_mpscq_pop(&io->tasks);
        if (m == NULL) {
            if (bc_mpscq_mark_idle(&io->tasks, false))
                break;
            continue; /* a push is between its exchange and its link */
        }
        bc_io_task_t *t = bc_container_of(m, bc_io_task_t, node);
        io->task_clean = false;
        t->fn(io, t);
        if (!io->task_clean)
            io->combine_wake = true;
        if (++n >= limit) {
            /* Still busy: come back after the other watchers had a turn. */
            if (combining)
                io->combine_wake = true;
            else
                ev_feed_event(io->loop, &io->wake, EV_ASYNC);
            break;
        }
    }
    io->in_tasks = false;
    flush_writes(io);
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    bc_io_t *io = w->data;
    (void)loop;
    (void)revents;
    run_tasks(io, IO_TASKS_PER_WAKE, false);
}

static void on_stop_task(bc_io_t *io, bc_io_task_t *task)
{
    (void)task;
    for (unsigned i = io->nclosers; i-- > 0;)
        io->closers[i].fn(io, io->closers[i].arg);
    io->stop = true;
    ev_break(io->loop, EVBREAK_ALL);
}

static void loop_release(struct ev_loop *loop) EV_NOEXCEPT
{
    bc_io_t *io = ev_userdata(loop);
    if (io->may_sleep)
        bc__warm_sleep(io->rt);
    pthread_mutex_unlock(&io->lock);
}

static void loop_acquire(struct ev_loop *loop) EV_NOEXCEPT
{
    bc_io_t *io = ev_userdata(loop);
    pthread_mutex_lock(&io->lock);
    if (io->may_sleep)
        bc__warm_awake(io->rt);
}

static void invoke_pending(struct ev_loop *loop)
{
    bc_io_t *io = ev_userdata(loop);
    if (ev_pending_count(loop) > 0)
        io->busy_at_ns = bc_now_ns();
    ev_invoke_pending(loop);
}

static void *io_main(void *arg)
{
    bc_io_t *io = arg;
    pthread_setname_np(pthread_self(), "bc-io");
    /* Every socket write of the runtime (Redis, HTTP) happens on this thread. A write to a peer
     * that just died raises SIGPIPE in the writing thread, whose default action would kill the
     * embedding process; blocked here, it stays pending on this thread and the write fails
     * with EPIPE, which the Redis layer and the HTTP server handle. The process's own
     * disposition is not touched. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    pthread_mutex_lock(&io->lock);
    ev_set_invoke_pending_cb(io->loop, invoke_pending);
    /* The actors this loop's callbacks make runnable are collected for "Turns" (above). */
    bc__tls_io_collect = io->rt->io_worker;
    while (!io->stop) {
        bool spin = io->spin_ns && bc_now_ns() - io->busy_at_ns < io->spin_ns;
        io->may_sleep = !spin;
        ev_run(io->loop, spin ? EVRUN_NOWAIT : EVRUN_ONCE);
        if (bc__sched_io_pending(io->rt)) {
            pthread_mutex_unlock(&io->lock);
            bc__sched_io_run(io->rt, true);
            pthread_mutex_lock(&io->lock);
            io->busy_at_ns = bc_now_ns();
        }
        if (spin) {
            /* A spinning loop gives way (see "Yielding" above) and, unlocked for that
             * moment, lets a worker take the loop for its own writes. */
            pthread_mutex_unlock(&io->lock);
            sched_yield();
            pthread_mutex_lock(&io->lock);
        }
    }
    bc__tls_io_collect = NULL;
    if (bc__sched_io_pending(io->rt))
        bc__sched_io_run(io->rt, false); /* stopping: to the workers' queue */
    pthread_mutex_unlock(&io->lock);
    bc_pool_thread_flush();
    return NULL;
}

void bc_io_post(bc_runtime_t *rt, bc_io_task_t *task)
{
    bc_io_t *io = rt->io;
    task->node.flags = BC_MSGF_EMBEDDED;
    /* A worker that owes the loop a wake-up for tasks it queued earlier in this turn pays it
     * now: whatever it posts here may be waited for before the turn ends. */
    bc_worker_t *w = bc__tls_worker;
    bool owes = w && w->rt == rt && w->io_owes;
    if (owes)
        w->io_owes = false;
    if (bc_mpscq_push(&io->tasks, &task->node) == BC_MPSCQ_WOKE || owes)
        ev_async_send(io->loop, &io->wake);
}

void bc_io_post_direct(bc_runtime_t *rt, bc_io_task_t *task)
{
    bc_io_t *io = rt->io;
    bc_worker_t *w = bc__tls_worker;
    if (!io->direct || w == NULL || w->rt != rt) {
        bc_io_post(rt, task);
        return;
    }
    task->node.flags = BC_MSGF_EMBEDDED;
    w->io_pushed++;
    if (bc_mpscq_push(&io->tasks, &task->node) == BC_MPSCQ_WOKE)
        w->io_owes = true; /* paid by bc__io_turn_end, or by the next bc_io_post */
}

/* A worker takes the loop (direct writes, worker reads): false if the I/O thread or another
 * worker holds it, or it is stopping. On true the caller runs tasks or reads under the loop,
 * then calls combine_end. */
static bool combine_begin(bc_io_t *io)
{
    if (pthread_mutex_trylock(&io->lock) != 0)
        return false;
    if (io->stop) {
        pthread_mutex_unlock(&io->lock);
        return false;
    }
    tls_combining = io;
    ev_now_update(io->loop); /* the loop's clock stopped when it went to sleep */
    io->combine_wake = false;
    return true;
}

/* Give the loop back, and wake it if what ran changed what it must notice. Returns whether
 * it was woken. */
static bool combine_end(bc_io_t *io)
{
    tls_combining = NULL;
    bool wake = io->combine_wake;
    pthread_mutex_unlock(&io->lock);
    if (wake)
        ev_async_send(io->loop, &io->wake);
    return wake;
}

void bc_io_urgent(bc_runtime_t *rt)
{
    bc_worker_t *w = bc__tls_worker;
    if (w && w->rt == rt)
        w->io_urgent = true;
}

void bc__io_turn_end(bc_worker_t *w)
{
    bc_io_t *io = w->rt->io;
    bool owes = w->io_owes;
    bool urgent = w->io_urgent;
    unsigned pushed = w->io_pushed;
    w->io_pushed = 0;
    w->io_owes = false;
    w->io_urgent = false;
    if (bc_mpscq_is_idle(&io->tasks))
        return; /* somebody drained it already */
    /* A bulk of commands (a heartbeat slice, a burst of ACKs) gains nothing from leaving a
     * little sooner, and would hold the loop (and this worker) for long: the I/O thread takes
     * it. */
    if (pushed <= IO_DIRECT_MAX_TASKS && combine_begin(io)) {
        run_tasks(io, IO_TASKS_PER_COMBINE, true);
        /* Whatever the tasks posted from here, this drain took or the wake covers. */
        w->io_pushed = 0;
        w->io_owes = false;
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&io->n_direct, 1, memory_order_relaxed);
        if (combine_end(io))
            atomic_fetch_add_explicit(&io->n_direct_wakes, 1, memory_order_relaxed);
        /* Read after an urgent write (see "Worker reads" in docs/runtime.md): Redis, woken onto
         * this CPU by the write, has often answered before write() returned, and the answer
         * (the signal's hint, on the subscriber) is read here rather than by a thread that
         * must be woken for it. */
        if (urgent && w->rt->io_poll) {
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&io->n_after_write, 1, memory_order_relaxed);
            bc__io_poll(w, true);
        }
        return;
    }
    /* The loop is awake (or stopping) and holds the queue, unless we took it from idle. */
    if (owes)
        ev_async_send(io->loop, &io->wake);
}

int bc_io_poll_add(bc_io_t *io, bc_io_poll_t *p, int fd)
{
    if (io->pollfd < 0 || p->slot >= 0 || fd < 0)
        return -EINVAL;
    for (unsigned i = 0; i < IO_MAX_POLLS; i++) {
        if (io->polls[i].p != NULL)
            continue;
        uint32_t gen = ++io->polls[i].gen;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET,
                                 .data.u64 = (uint64_t)gen << 8 | (uint64_t)i};
        if (epoll_ctl(io->pollfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            return -errno;
        io->polls[i].p = p;
        p->slot = (int)i;
        p->fd = fd;
        /* relaxed: a hint for spinning workers; the table itself is read under the loop. */
        atomic_fetch_add_explicit(&io->npolls, 1, memory_order_relaxed);
        return 0;
    }
    return -ENOSPC;
}

void bc_io_poll_del(bc_io_t *io, bc_io_poll_t *p)
{
    if (p->slot < 0)
        return;
    /* Before the socket is closed: an event already collected by a worker finds the slot's
     * generation changed (or the slot empty) and is dropped. */
    epoll_ctl(io->pollfd, EPOLL_CTL_DEL, p->fd, NULL);
    io->polls[p->slot].p = NULL;
    io->polls[p->slot].gen++;
    p->slot = -1;
    p->fd = -1;
    /* relaxed: as in bc_io_poll_add. */
    atomic_fetch_sub_explicit(&io->npolls, 1, memory_order_relaxed);
}

/* The poll slot an event or a carried entry names, if it still holds the same socket. */
static bc_io_poll_t *poll_of(bc_io_t *io, uint64_t key)
{
    unsigned slot = (unsigned)(key & 0xff);
    uint32_t gen = (uint32_t)(key >> 8);
    if (slot < IO_MAX_POLLS && io->polls[slot].p && io->polls[slot].gen == gen)
        return io->polls[slot].p;
    return NULL;
}

bool bc__io_poll(bc_worker_t *w, bool looking)
{
    bc_io_t *io = w->rt->io;
    /* relaxed: a hint; a socket added a moment ago is read by the loop anyway. */
    if (io == NULL || atomic_load_explicit(&io->npolls, memory_order_relaxed) == 0)
        return false;
    /* What this worker left at its last look first (still readable: level), then new edges. */
    uint64_t keys[2 * IO_MAX_POLLS];
    unsigned n = 0;
    for (unsigned i = 0; i < w->io_ncarry; i++)
        keys[n++] = w->io_carry[i];
    unsigned ncarried = n; /* keys[0..ncarried): carried from the last look */
    w->io_ncarry = 0;
    struct epoll_event ev[IO_MAX_POLLS];
    int got = looking ? epoll_wait(io->pollfd, ev, IO_MAX_POLLS, 0) : 0;
    for (int i = 0; i < got; i++) {
        unsigned j = 0;
        while (j < n && keys[j] != ev[i].data.u64)
            j++;
        if (j == n)
            keys[n++] = ev[i].data.u64;
    }
    if (n == 0)
        return false;
    /* Edge-triggered: what this worker collected and cannot read now (the loop is held: the
     * I/O thread is awake, or another worker writes) stays readable for the loop's own
     * level-triggered watcher, which reads it. */
    if (!combine_begin(io))
        return false; /* the spinning worker yields next (see "Yielding") */
    bool read = false;
    io->in_tasks = true; /* a flush queued by a callback runs below, not later */
    /* A socket marked first (the subscriber) is read first. If that woke an actor here, the
     * others (replies, mostly) wait in w->io_carry for the look that follows that actor's
     * turn (worker_main): a signal's wake-up does not wait for the parsing of unrelated
     * replies. Meanwhile the loop's watcher may read them; a look that finds them drained
     * costs one read that returns EAGAIN. */
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < n; i++) {
            bc_io_poll_t *p = poll_of(io, keys[i]);
            if (p == NULL || p->first != (pass == 0))
                continue;
            /* Valid keys name distinct slots: at most IO_MAX_POLLS are carried. */
            if (pass == 1 && looking && w->runnext != NULL) {
                w->io_carry[w->io_ncarry++] = keys[i];
                continue;
            }
            p->fn(io, p);
            read = true;
            if (i < ncarried)
                /* relaxed: statistics. */
                atomic_fetch_add_explicit(&io->n_carried, 1, memory_order_relaxed);
        }
    }
    io->in_tasks = false;
    flush_writes(io);
    combine_end(io);
    if (read)
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&io->n_polled, 1, memory_order_relaxed);
    return read;
}

void bc_io_cancel_flush(bc_io_t *io, bc_io_flush_t *f)
{
    if (!f->queued)
        return;
    for (bc_io_flush_t **pp = &io->flush_head; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->next = NULL;
    f->queued = false;
}

void bc_io_task_clean(bc_io_t *io)
{
    io->task_clean = true;
}

void bc_io_need_wake(bc_io_t *io)
{
    io->combine_wake = true;
}

void bc_io_defer_flush(bc_io_t *io, bc_io_flush_t *f)
{
    /* Outside run_tasks (a watcher's callback) the write watcher that hiredis started does it,
     * and the list never outlives one batch of tasks. */
    if (f->queued || !io->in_tasks)
        return;
    f->queued = true;
    f->next = io->flush_head;
    io->flush_head = f;
}

struct ev_loop *bc_io_loop(bc_io_t *io)
{
    return io->loop;
}

bc_runtime_t *bc_io_runtime(bc_io_t *io)
{
    return io->rt;
}

bc_timers_t *bc__io_timers(bc_io_t *io)
{
    return io->timers;
}

void bc__io_stats(bc_io_t *io, uint64_t *direct, uint64_t *wakes, uint64_t *polled,
                  uint64_t *carried, uint64_t *after_write)
{
    /* relaxed: statistics. */
    *direct = atomic_load_explicit(&io->n_direct, memory_order_relaxed);
    *wakes = atomic_load_explicit(&io->n_direct_wakes, memory_order_relaxed);
    *polled = atomic_load_explicit(&io->n_polled, memory_order_relaxed);
    *carried = atomic_load_explicit(&io->n_carried, memory_order_relaxed);
    *after_write = atomic_load_explicit(&io->n_after_write, memory_order_relaxed);
}

uint64_t bc__io_timers_pending(bc_io_t *io)
{
    return io->timers ? bc__timers_pending(io->timers) : 0;
}

bool bc_io_is_current(bc_io_t *io)
{
    if (tls_combining == io)
        return true;
    /* acquire: owner is written before the flag is set. */
    return atomic_load_explicit(&io->on_thread_set, memory_order_acquire) &&
           pthread_equal(io->owner, pthread_self());
}

int bc_io_add_closer(bc_io_t *io, void (*fn)(bc_io_t *io, void *arg), void *arg)
{
    if (io->nclosers == IO_MAX_CLOSERS)
        return -ENOSPC;
    io->closers[io->nclosers].fn = fn;
    io->closers[io->nclosers].arg = arg;
    io->nclosers++;
    return 0;
}

int bc_io_remove_closer(bc_io_t *io, void (*fn)(bc_io_t *io, void *arg), void *arg)
{
    for (unsigned i = 0; i < io->nclosers; i++) {
        if (io->closers[i].fn == fn && io->closers[i].arg == arg) {
            for (unsigned j = i + 1; j < io->nclosers; j++)
                io->closers[j - 1] = io->closers[j];
            io->nclosers--;
            return 0;
        }
    }
    return -ENOENT;
}

int bc__io_start(bc_runtime_t *rt)
{
    bc_io_t *io = calloc(1, sizeof *io);
    if (io == NULL)
        return -ENOMEM;
    io->rt = rt;
    io->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV);
    io->spin_ns = (uint64_t)rt->io_spin_us * 1000u;
    io->direct = rt->io_direct;
    if (io->loop == NULL) {
        free(io);
        return -ENOMEM;
    }
    /* Worker reads need direct writes' locking; without an epoll set the loop reads alone. */
    io->pollfd = io->direct && rt->io_poll ? epoll_create1(EPOLL_CLOEXEC) : -1;
    /* Adaptive: the I/O thread that finds a worker writing spins the few microseconds that
     * takes instead of going to sleep on the mutex (a second wake-up on its path). */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&io->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    ev_set_userdata(io->loop, io);
    ev_set_loop_release_cb(io->loop, loop_release, loop_acquire);
    bc_mpscq_init(&io->tasks, 1);
    ev_async_init(&io->wake, on_wake);
    io->wake.data = io;
    ev_async_start(io->loop, &io->wake);
    rt->io = io;
    io->timers = bc__timers_create(io);
    int rc = pthread_create(&io->thread, NULL, io_main, io);
    if (rc != 0) {
        bc__timers_destroy(io->timers);
        ev_loop_destroy(io->loop);
        pthread_mutex_destroy(&io->lock);
        if (io->pollfd >= 0)
            close(io->pollfd);
        free(io);
        rt->io = NULL;
        return -rc;
    }
    io->owner = io->thread;
    /* release: publishes owner to bc_io_is_current. */
    atomic_store_explicit(&io->on_thread_set, 1, memory_order_release);
    return 0;
}

void bc__io_stop(bc_runtime_t *rt)
{
    bc_io_t *io = rt->io;
    if (io == NULL)
        return;
    io->stop_task.fn = on_stop_task;
    bc_io_post(rt, &io->stop_task);
    pthread_join(io->thread, NULL);
    /* The loop is ours now: finish what was posted, then tear down. */
    atomic_store_explicit(&io->on_thread_set, 0, memory_order_relaxed);
    io->owner = pthread_self();
    atomic_store_explicit(&io->on_thread_set, 1, memory_order_release);
    pthread_mutex_lock(&io->lock);
    if (!bc_mpscq_is_idle(&io->tasks))
        run_tasks(io, UINT32_MAX, false);
    bc__timers_destroy(io->timers);
    ev_async_stop(io->loop, &io->wake);
    ev_loop_destroy(io->loop);
    pthread_mutex_unlock(&io->lock);
    pthread_mutex_destroy(&io->lock);
    if (io->pollfd >= 0)
        close(io->pollfd);
    rt->io = NULL;
    free(io);
}
