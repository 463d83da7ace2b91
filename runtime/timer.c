/* timer.c - one-shot and periodic timers delivered to actors as messages.
 *
 * All timers of a runtime live in one hierarchical timing wheel (wheel.c) on
 * the I/O thread, driven by a single ev_timer set to the wheel's next
 * deadline: O(1) start and cancel, however many timers are pending. Starting
 * and cancelling from any thread are tasks posted to the I/O thread; the task
 * nodes are embedded in the timer, so no call allocates beyond the timer.
 *
 * Key decision: cancellation is a bit in the timer that the dispatcher checks
 * before a tick reaches the behaviour, so a tick already sitting in the
 * mailbox when its owner cancels is dropped: after bc_timer_cancel() returns
 * in the owning actor, no tick of that timer is ever seen again.
 */
#include "internal.h"
#include "wheel.h"

#include <errno.h>
#include <ev.h>
#include <stdlib.h>

#define T_DELIVERED 0x1u /* the one-shot tick reached the behaviour */
#define T_CANCELLED 0x2u

struct bc_timer_s {
    bc_wheel_node_t wnode;
    bc_io_task_t start_task;
    bc_io_task_t cancel_task;
    bc_actor_t *actor; /* counted reference, held while the I/O side owns the timer */
    bc_runtime_t *rt;
    uint64_t period_ms;
    uint64_t seq;
    uint32_t type;
    _Atomic uint32_t rc;    /* I/O side + handle + one per tick in flight */
    _Atomic uint32_t state; /* T_* */
    bool io_owned;          /* I/O thread only: the I/O side's reference is held */
};

struct bc_timers_s {
    bc_io_t *io;
    ev_timer tick;
    uint64_t armed_at; /* deadline the ev_timer is set for, or UINT64_MAX */
    _Atomic uint64_t pending;
    bc_wheel_t wheel; /* last: large */
};

static void timer_release(bc_timer_t *t)
{
    /* acq_rel: the last release sees every holder's writes before freeing. */
    if (atomic_fetch_sub_explicit(&t->rc, 1, memory_order_acq_rel) == 1)
        bc_pool_free(bc_pool_class(sizeof *t), t);
}

/* I/O thread: drop the I/O side's reference. */
static void io_disown(bc_timers_t *ts, bc_timer_t *t)
{
    if (!t->io_owned)
        return;
    t->io_owned = false;
    if (bc_wheel_linked(&t->wnode)) {
        bc_wheel_remove(&ts->wheel, &t->wnode);
        atomic_fetch_sub_explicit(&ts->pending, 1, memory_order_relaxed);
    }
    /* No more ticks: let go of the actor now, so that a tick stranded in a
     * closed mailbox (timer -> actor -> tick -> timer) cannot keep it alive. */
    bc_actor_release(t->actor);
    t->actor = NULL;
    timer_release(t);
}

static void rearm(bc_timers_t *ts)
{
    struct ev_loop *loop = bc_io_loop(ts->io);
    uint64_t next = bc_wheel_next_deadline(&ts->wheel);
    if (next == ts->armed_at)
        return;
    ev_timer_stop(loop, &ts->tick);
    ts->armed_at = next;
    if (next == UINT64_MAX)
        return;
    uint64_t now = bc_now_ms();
    double delay = next > now ? (double)(next - now) / 1000.0 : 0.0;
    ev_timer_set(&ts->tick, delay, 0.0);
    ev_timer_start(loop, &ts->tick);
}

static void fire(bc_wheel_node_t *n, void *arg)
{
    bc_timers_t *ts = arg;
    bc_timer_t *t = bc_container_of(n, bc_timer_t, wnode);
    atomic_fetch_sub_explicit(&ts->pending, 1, memory_order_relaxed);
    /* acquire: a cancel from another thread is seen with its effects. */
    if (atomic_load_explicit(&t->state, memory_order_acquire) & T_CANCELLED) {
        io_disown(ts, t);
        return;
    }
    bc_timer_tick_t *tick = bc_msg_alloc(sizeof *tick, t->type);
    tick->hdr.flags |= BC_MSGF_TIMER;
    tick->timer = t;
    tick->deadline_ms = n->deadline;
    tick->seq = ++t->seq;
    /* relaxed: we hold the I/O side's reference already. */
    atomic_fetch_add_explicit(&t->rc, 1, memory_order_relaxed);
    /* The time of firing, taken before the send: the actor may receive the tick (and a test
     * may look at the clock) before this thread goes on, which can be preempted here. */
    uint64_t now = bc_now_ms();
    int rc = bc_send(t->actor, &tick->hdr);
    if (rc != 0 || t->period_ms == 0) {
        io_disown(ts, t); /* one-shot done, or its actor stopped */
        return;
    }
    /* Next deadline from the previous one, so drift never accumulates;
     * skip the ticks a late loop missed instead of bunching them. */
    uint64_t next = n->deadline + t->period_ms;
    if (next <= now)
        next += ((now - next) / t->period_ms + 1) * t->period_ms;
    n->deadline = next;
    bc_wheel_add(&ts->wheel, n);
    atomic_fetch_add_explicit(&ts->pending, 1, memory_order_relaxed);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    bc_timers_t *ts = w->data;
    (void)loop;
    (void)revents;
    ts->armed_at = UINT64_MAX;
    bc_wheel_advance(&ts->wheel, bc_now_ms(), fire, ts);
    rearm(ts);
}

static void on_start_task(bc_io_t *io, bc_io_task_t *task)
{
    bc_timer_t *t = bc_container_of(task, bc_timer_t, start_task);
    bc_timers_t *ts = bc__io_timers(io);
    t->io_owned = true;
    if (atomic_load_explicit(&t->state, memory_order_acquire) & T_CANCELLED) {
        io_disown(ts, t);
        return;
    }
    bc_wheel_add(&ts->wheel, &t->wnode);
    atomic_fetch_add_explicit(&ts->pending, 1, memory_order_relaxed);
    if (t->wnode.deadline < ts->armed_at)
        rearm(ts); /* the sleeping loop must see its new deadline */
    else
        bc_io_task_clean(io); /* the loop wakes for an earlier deadline, then re-arms */
}

static void on_cancel_task(bc_io_t *io, bc_io_task_t *task)
{
    bc_timer_t *t = bc_container_of(task, bc_timer_t, cancel_task);
    io_disown(bc__io_timers(io), t);
    timer_release(t);     /* the handle's reference, carried by this task */
    bc_io_task_clean(io); /* at worst the loop wakes once for a deadline that is gone */
}

bc_timers_t *bc__timers_create(bc_io_t *io)
{
    bc_timers_t *ts = malloc(sizeof *ts);
    if (ts == NULL)
        abort();
    ts->io = io;
    ts->armed_at = UINT64_MAX;
    atomic_init(&ts->pending, 0);
    bc_wheel_init(&ts->wheel, bc_now_ms());
    ev_timer_init(&ts->tick, on_tick, 0.0, 0.0);
    ts->tick.data = ts;
    return ts;
}

static void clear_one(bc_wheel_node_t *n, void *arg)
{
    bc_timer_t *t = bc_container_of(n, bc_timer_t, wnode);
    (void)arg;
    t->io_owned = false;
    bc_actor_release(t->actor);
    t->actor = NULL;
    timer_release(t);
}

void bc__timers_destroy(bc_timers_t *ts)
{
    if (ts == NULL)
        return;
    ev_timer_stop(bc_io_loop(ts->io), &ts->tick);
    bc_wheel_clear(&ts->wheel, clear_one, ts);
    free(ts);
}

uint64_t bc__timers_pending(bc_timers_t *ts)
{
    /* relaxed: a statistic. */
    return atomic_load_explicit(&ts->pending, memory_order_relaxed);
}

void bc__timer_tick_release(bc_msg_t *m)
{
    timer_release(((bc_timer_tick_t *)m)->timer);
}

bool bc__timer_tick_cancelled(bc_msg_t *m)
{
    bc_timer_t *t = ((bc_timer_tick_t *)m)->timer;
    if (t->period_ms == 0) {
        /* acq_rel: settles the race with bc_timer_cancel() on one word. */
        uint32_t prev = atomic_fetch_or_explicit(&t->state, T_DELIVERED, memory_order_acq_rel);
        return (prev & T_CANCELLED) != 0;
    }
    return (atomic_load_explicit(&t->state, memory_order_acquire) & T_CANCELLED) != 0;
}

int bc_timer_start(bc_actor_t *to, uint32_t type, uint64_t delay_ms, uint64_t period_ms,
                   bc_timer_t **out)
{
    if (out)
        *out = NULL;
    if (to == NULL || type >= BC_MSG_SYSTEM || delay_ms > UINT64_MAX / 4 ||
        period_ms > UINT64_MAX / 4)
        return -EINVAL;
    if (atomic_load_explicit(&to->flags, memory_order_relaxed) &
        (BC_ACTOR_STOP_REQ | BC_ACTOR_STOPPED))
        return -ESRCH;
    bc_runtime_t *rt = to->rt;
    if (rt->io == NULL)
        return -ESRCH;
    bc_timer_t *t = bc_pool_alloc(bc_pool_class(sizeof *t));
    t->wnode.prev = t->wnode.next = NULL;
    t->wnode.deadline = bc_now_ms() + delay_ms;
    t->start_task.fn = on_start_task;
    t->cancel_task.fn = on_cancel_task;
    t->actor = bc_actor_retain(to);
    t->rt = rt;
    t->period_ms = period_ms;
    t->seq = 0;
    t->type = type;
    atomic_init(&t->rc, out ? 2u : 1u);
    atomic_init(&t->state, 0);
    t->io_owned = false;
    if (out)
        *out = t;
    /* Direct (io.c): a worker adds it at the end of the turn with the turn's Redis commands,
     * and wakes the loop only if it must re-arm. The deadline is fixed above. */
    bc_io_post_direct(rt, &t->start_task);
    return 0;
}

int bc_timer_cancel(bc_timer_t *t)
{
    if (t == NULL)
        return -EINVAL;
    /* acq_rel: pairs with the dispatcher's fetch_or in tick_cancelled. */
    uint32_t prev = atomic_fetch_or_explicit(&t->state, T_CANCELLED, memory_order_acq_rel);
    /* The task carries the handle's reference and drops it on the I/O thread. */
    bc_io_post_direct(t->rt, &t->cancel_task);
    return (prev & (T_CANCELLED | T_DELIVERED)) ? -EALREADY : 0;
}

void bc_timer_release(bc_timer_t *t)
{
    if (t)
        timer_release(t);
}
