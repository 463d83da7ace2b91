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
 */
#include "internal.h"

#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IO_TASKS_PER_WAKE 4096
#define IO_MAX_CLOSERS 16

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
    uint64_t busy_at_ns; /* loop thread only: last iteration that had work */
    bool stop;           /* loop thread only */
};

static void run_tasks(bc_io_t *io, unsigned limit)
{
    unsigned n = 0;
    for (;;) {
        bc_msg_t *m = bc_mpscq_pop(&io->tasks);
        if (m == NULL) {
            if (bc_mpscq_mark_idle(&io->tasks, false))
                return;
            continue; /* a push is between its exchange and its link */
        }
        bc_io_task_t *t = bc_container_of(m, bc_io_task_t, node);
        t->fn(io, t);
        if (++n >= limit) {
            /* Still busy: come back after the other watchers had a turn. */
            ev_feed_event(io->loop, &io->wake, EV_ASYNC);
            return;
        }
    }
}

static void on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    bc_io_t *io = w->data;
    (void)loop;
    (void)revents;
    run_tasks(io, IO_TASKS_PER_WAKE);
}

static void on_stop_task(bc_io_t *io, bc_io_task_t *task)
{
    (void)task;
    for (unsigned i = io->nclosers; i-- > 0;)
        io->closers[i].fn(io, io->closers[i].arg);
    io->stop = true;
    ev_break(io->loop, EVBREAK_ALL);
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
    if (io->spin_ns == 0) {
        ev_run(io->loop, 0);
    } else {
        ev_set_userdata(io->loop, io);
        ev_set_invoke_pending_cb(io->loop, invoke_pending);
        while (!io->stop)
            ev_run(io->loop,
                   bc_now_ns() - io->busy_at_ns < io->spin_ns ? EVRUN_NOWAIT : EVRUN_ONCE);
    }
    bc_pool_thread_flush();
    return NULL;
}

void bc_io_post(bc_runtime_t *rt, bc_io_task_t *task)
{
    bc_io_t *io = rt->io;
    task->node.flags = BC_MSGF_EMBEDDED;
    if (bc_mpscq_push(&io->tasks, &task->node) == BC_MPSCQ_WOKE)
        ev_async_send(io->loop, &io->wake);
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

uint64_t bc__io_timers_pending(bc_io_t *io)
{
    return io->timers ? bc__timers_pending(io->timers) : 0;
}

bool bc_io_is_current(bc_io_t *io)
{
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
    if (io->loop == NULL) {
        free(io);
        return -ENOMEM;
    }
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
    if (!bc_mpscq_is_idle(&io->tasks))
        run_tasks(io, UINT32_MAX);
    bc__timers_destroy(io->timers);
    ev_async_stop(io->loop, &io->wake);
    ev_loop_destroy(io->loop);
    rt->io = NULL;
    free(io);
}
