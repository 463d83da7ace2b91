/* blockcoord.h - public API of the blockcoord runtime.
 *
 * blockcoord hosts many actors (later: CFN Loop coordinators) in one process.
 * An actor is a behaviour function, a state pointer and an intrusive lock-free
 * MPSC mailbox. A shared pool of worker threads runs actors; an actor runs on
 * one worker at a time and never blocks. One I/O thread owns a libev loop for
 * timers and, later, Redis and HTTP.
 *
 * Conventions
 *  - Functions that can fail return 0 or a negative errno; bc_strerror() names it.
 *  - Out-of-memory aborts the process (there is no sensible recovery for a runtime).
 *  - Messages are the queue nodes: the caller allocates them with bc_msg_alloc()
 *    (per-thread pools, no lock) and bc_send() takes ownership.
 *  - Actor handles are reference counted: every bc_actor_t * you hold is one
 *    reference; drop it with bc_actor_release(). A handle stays valid after the
 *    actor stopped, so sending to a stopped actor is an error, never a crash.
 */
#ifndef BLOCKCOORD_H
#define BLOCKCOORD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BC_VERSION_MAJOR 0
#define BC_VERSION_MINOR 1
#define BC_VERSION_PATCH 0
#define BC_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- errors */

/* Describe an error code returned by a bc_ function (a negative errno).
 * Never returns NULL; unknown codes get a generic text. */
const char *bc_strerror(int err);

/* ---------------------------------------------------------------- types */

typedef struct bc_runtime_s bc_runtime_t;
typedef struct bc_actor_s bc_actor_t;
typedef struct bc_timer_s bc_timer_t;
typedef struct bc_msg_s bc_msg_t;

/* Message header. Embed it as the first member of your message struct:
 *
 *     typedef struct { bc_msg_t hdr; int value; } my_msg_t;
 *     my_msg_t *m = bc_msg_alloc(sizeof *m, MY_TYPE);
 *
 * `next` is the mailbox link and belongs to the runtime. `type` is yours,
 * except for the range from BC_MSG_SYSTEM upwards. */
struct bc_msg_s {
    bc_msg_t *_Atomic next;
    uint32_t type;
    uint16_t pool;  /* size class, internal */
    uint16_t flags; /* internal */
};

/* Message types at or above BC_MSG_SYSTEM are the runtime's. */
#define BC_MSG_SYSTEM 0xffff0000u
/* Delivered exactly once, as the last message an actor's behaviour sees,
 * when the actor stops: free your state here. */
#define BC_MSG_STOPPED 0xffff0001u

/* A timer tick. Its header's type is the type given to bc_timer_start(). */
typedef struct bc_timer_tick_s {
    bc_msg_t hdr;
    bc_timer_t *timer;    /* borrowed: valid while the tick is being handled */
    uint64_t deadline_ms; /* the scheduled time of this tick, runtime clock */
    uint64_t seq;         /* 1 for the first tick, 2 for the next, ... */
} bc_timer_tick_t;

/* A behaviour runs one message at a time on one worker. It must not block.
 * `msg` belongs to the runtime and is freed when the behaviour returns,
 * unless the behaviour calls bc_msg_keep(msg) (then it is the caller's). */
typedef void (*bc_behaviour_fn)(bc_actor_t *self, void *state, bc_msg_t *msg);

/* ---------------------------------------------------------------- runtime */

typedef struct bc_runtime_opts_s {
    unsigned workers;   /* worker threads; 0 = number of online CPUs */
    unsigned batch;     /* messages per actor turn; 0 = 64 */
    unsigned spin_us;   /* how long an idle worker looks for work before it
                           parks; 0 = default (50 us) */
    int deterministic;  /* nonzero: one worker, seeded interleaving (tests) */
    uint64_t seed;      /* seed for deterministic mode */
    int io_spin_us;     /* how long the I/O thread keeps polling after its last work
                           before it sleeps; -1 = never spin, 0 = default (100 us) */
    int io_direct;      /* 0 = default (on): a worker writes the Redis commands of an
                           actor turn itself while the I/O thread sleeps, instead of
                           waking it; -1 = always hand them to the I/O thread */
    int io_poll;        /* 0 = default (on, with io_direct): a worker that is looking for
                           work reads a readable Redis socket itself, on a CPU that
                           is already awake, instead of waiting for the I/O thread;
                           -1 = only the I/O thread reads */
    int io_run;         /* 0 = default (on): when the I/O thread's reads or timers make
                           actors runnable, no worker is looking for work and one is
                           parked, the I/O thread runs up to 8 of their turns itself
                           instead of waking that worker and waiting for it; -1 = it
                           always hands them to the workers */
    int warm_us;        /* CPU warmers: while a runtime thread is awake and for this long
                           after the last one went to sleep, one SCHED_IDLE thread per CPU
                           spins so that no CPU halts (a wake-up onto a halted vCPU costs
                           tens of microseconds); they yield to any other thread at once.
                           0 = default (1000 us; none under a cgroup CPU quota,
                          which their time would be charged to), -1 = no warmers */
    unsigned warm_cpus; /* at most this many CPUs are kept warm (the first ones the
                           process may run on); 0 = default (up to 8) */
} bc_runtime_opts_t;

/* Fill `opts` with defaults (also read from the environment:
 * BC_WORKERS, BC_IO_SPIN_US, BC_IO_DIRECT=0|1, BC_IO_POLL=0|1, BC_WARM_US (0 = no warmers),
 * BC_WARM_CPUS). Always succeeds. */
void bc_runtime_opts_init(bc_runtime_opts_t *opts);

/* Create a runtime and start its worker threads and its I/O thread.
 * `opts` may be NULL for defaults. Returns 0 and sets *out, or -EINVAL for
 * invalid options, or the errno of a failed thread start. */
int bc_runtime_create(const bc_runtime_opts_t *opts, bc_runtime_t **out);

/* Block the calling thread (which must not be a worker of `rt`) until no
 * actor is alive, or `timeout_ms` passes (negative: forever).
 * Returns 0, -ETIMEDOUT, or -EDEADLK when called from a worker. */
int bc_runtime_wait(bc_runtime_t *rt, int64_t timeout_ms);

/* Stop every actor (each first handles what is already in its mailbox, then
 * sees BC_MSG_STOPPED), stop the threads and free everything. Not callable
 * from a worker or the I/O thread. Handles still held by the caller must be
 * released before this call or not used afterwards. */
void bc_runtime_destroy(bc_runtime_t *rt);

/* Number of worker threads. */
unsigned bc_runtime_workers(const bc_runtime_t *rt);

/* Keep the runtime's CPU warmers (bc_runtime_opts_t.warm_us) running while held, as if a
 * runtime thread were awake; holds nest, each hold(rt, 1) is ended by one hold(rt, 0). For a
 * burst the caller knows is coming, and for benchmarks that measure another client under the
 * CPU conditions the runtime's own threads see. No effect with warmers off. Any thread. */
void bc_runtime_hold_warm(bc_runtime_t *rt, int hold);

/* Runtime clock: milliseconds since an arbitrary start (CLOCK_MONOTONIC). */
uint64_t bc_now_ms(void);
/* Nanoseconds, CLOCK_MONOTONIC. */
uint64_t bc_now_ns(void);

/* Counters kept by the runtime, for tests, benchmarks and metrics. */
typedef struct bc_runtime_stats_s {
    uint64_t actors_live;
    uint64_t actors_spawned;
    uint64_t actors_stopped;
    uint64_t messages_dead; /* sent to an actor that had stopped */
    uint64_t parks;         /* times a worker went to sleep */
    uint64_t wakes;         /* times a worker was woken */
    uint64_t steals;        /* actors taken from another worker */
    uint64_t timers_pending;
    uint64_t io_direct;       /* times a worker wrote its queued Redis commands itself */
    uint64_t io_direct_wakes; /* ... and then had to wake the I/O thread anyway */
    uint64_t io_polled;       /* times a worker read a Redis socket itself */
    uint64_t io_carried;      /* of those, sockets read only after the turn of an actor that the
                                 subscriber's messages woke (worker reads, "subscriber first") */
    uint64_t io_after_write;  /* looks at the Redis sockets right after an urgent direct write
                                 (a signal's hint): Redis often answered within the write */
    uint64_t io_turns;        /* actor turns the I/O thread ran itself (io_run) */
    uint64_t warmers;         /* CPU warmer threads running (SCHED_IDLE, pinned) */
    uint64_t warm_parks;      /* times a warmer went to sleep: nothing awake, window over */
    uint64_t warm_wakes;      /* times a warmer woke again */
} bc_runtime_stats_t;
void bc_runtime_stats(bc_runtime_t *rt, bc_runtime_stats_t *out);

/* ---------------------------------------------------------------- messages */

/* Allocate a message of `size` bytes (at least sizeof(bc_msg_t)) with the
 * given type. The bytes after the header are NOT zeroed. Uses a per-thread
 * pool: no lock and usually no malloc. Callable from any thread. Aborts on
 * out-of-memory; returns NULL only for size < sizeof(bc_msg_t). */
void *bc_msg_alloc(size_t size, uint32_t type);

/* Return a message that was never sent (or one kept with bc_msg_keep). */
void bc_msg_free(bc_msg_t *msg);

/* Inside a behaviour: take ownership of the message being handled, so the
 * runtime does not free it. You may then send it on (zero-copy forward) or
 * free it later. */
void bc_msg_keep(bc_msg_t *msg);

/* ---------------------------------------------------------------- actors */

/* Spawn an actor. It starts idle: it runs when it gets a message. Returns a
 * handle holding one reference (release it with bc_actor_release; the actor
 * keeps running without it). Callable from any thread. Returns NULL only
 * for fn == NULL or a runtime being destroyed. */
bc_actor_t *bc_spawn(bc_runtime_t *rt, bc_behaviour_fn fn, void *state);

/* Send `msg` to `to`. Takes ownership of msg in every case. Lock-free and
 * wait-free for the sender; callable from any thread. Returns 0, -ESRCH if
 * the actor has stopped or is stopping (msg is freed), -EINVAL for NULL. */
int bc_send(bc_actor_t *to, bc_msg_t *msg);

/* Send a pre-linked chain first..last of n messages (linked through
 * `next`) with one atomic exchange. Same ownership and errors as bc_send. */
int bc_send_chain(bc_actor_t *to, bc_msg_t *first, bc_msg_t *last);

/* Ask an actor (another one or self) to stop. Messages already in its
 * mailbox are handled first, then its behaviour gets BC_MSG_STOPPED and
 * nothing more. Sends after this call return -ESRCH. Returns 0, -EALREADY
 * if a stop was already requested, -EINVAL for NULL. */
int bc_stop(bc_actor_t *a);

/* Reference counting on handles. Any thread. */
bc_actor_t *bc_actor_retain(bc_actor_t *a);
void bc_actor_release(bc_actor_t *a);

/* Run `a` only on worker `worker` (0..workers-1), or anywhere (-1, the
 * default). Call it before the actor's first message, or from its own
 * behaviour. Returns 0 or -EINVAL. */
int bc_actor_set_affinity(bc_actor_t *a, int worker);

/* 1 while the actor has not stopped (a stop may be pending), else 0: once it returns 0 the
 * behaviour has returned from its BC_MSG_STOPPED turn and runs no more. */
int bc_actor_alive(const bc_actor_t *a);

/* The runtime an actor belongs to. */
bc_runtime_t *bc_actor_runtime(const bc_actor_t *a);

/* Worker index (0..workers-1) of the calling thread, or -1 if it is not a
 * worker. An actor turn that the I/O thread runs itself (io_run) sees `workers`. */
int bc_worker_id(void);

/* ---------------------------------------------------------------- timers */

/* Deliver a bc_timer_tick_t of `type` to `to` after `delay_ms`, and then,
 * if period_ms > 0, every period_ms (scheduled from the previous deadline,
 * so drift does not accumulate; ticks missed while late are skipped, never
 * bunched). If `out` is non-NULL it receives a handle that must later be
 * given to bc_timer_cancel() or bc_timer_release(). Callable from any
 * thread. Returns 0, -EINVAL (NULL actor, type in the system range),
 * -ESRCH if the actor has stopped. */
int bc_timer_start(bc_actor_t *to, uint32_t type, uint64_t delay_ms, uint64_t period_ms,
                   bc_timer_t **out);

/* Cancel a timer and release the handle. After the call returns, the owning
 * actor's behaviour never sees another tick of this timer when the call was
 * made from that behaviour. Returns 0, or -EALREADY when the timer had
 * already fired (one-shot) or been cancelled. The handle is released either
 * way. */
int bc_timer_cancel(bc_timer_t *t);

/* Release a handle without cancelling the timer. */
void bc_timer_release(bc_timer_t *t);

/* ---------------------------------------------------------------- logging */

typedef enum {
    BC_LOG_DEBUG = 0,
    BC_LOG_INFO = 1,
    BC_LOG_WARN = 2,
    BC_LOG_ERROR = 3,
    BC_LOG_OFF = 4
} bc_log_level_t;

/* Log a line to stderr: "2026-11-22T10:00:00.123Z INFO  message", or one JSON
 * object per line ({"ts":...,"level":"info","msg":"..."}) when JSON output
 * is on. Thread-safe; each line is written with one write(2). */
void bc_log(bc_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bc_log_set_level(bc_log_level_t level);
bc_log_level_t bc_log_get_level(void);
void bc_log_set_json(int on);
/* Read BC_LOG_LEVEL (debug|info|warn|error|off) and BC_LOG_FORMAT
 * (text|json). Returns 0, or -EINVAL naming the bad variable on stderr. */
int bc_log_init_from_env(void);
/* Parse "debug", "info", ... Returns 0 or -EINVAL. */
int bc_log_parse_level(const char *s, bc_log_level_t *out);

#ifdef __cplusplus
}
#endif

/* The coordinator layer (hubs, coordinators, liveness and the work API) builds on the runtime
 * above; one #include <blockcoord.h> gives both. */
#include "blockcoord_cfn.h"

#endif /* BLOCKCOORD_H */
