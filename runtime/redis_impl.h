/* redis_impl.h - internals shared by redis.c (API, submission, stats, shutdown), redis_conn.c
 * (connections, handshake, breaker, timeouts, replies) and redis_sub.c (subscriptions).
 * Fields marked "I/O" are touched by the I/O thread only.
 */
#ifndef BC_REDIS_IMPL_H
#define BC_REDIS_IMPL_H

#include "internal.h"
#include "redis.h"

#include <ev.h>
#include <hiredis/async.h>
#include <pthread.h>
#include <stdbool.h>

#define BC__REDIS_TIME_REFRESH_S 60.0

/* Request kinds. */
enum {
    BC__RK_USER = 0, /* bc_redis_cmd */
    BC__RK_EVALSHA,  /* bc_redis_evalsha: retried once after NOSCRIPT */
    BC__RK_AUTH,     /* handshake */
    BC__RK_SELECT,   /* handshake */
    BC__RK_TIME,     /* handshake and the 60 s refresh */
    BC__RK_LOAD,     /* SCRIPT LOAD before an EVALSHA retry */
    BC__RK_SUB,      /* bc_redis_subscribe: argv = channels */
    BC__RK_UNSUB,    /* bc_redis_unsubscribe: argv = channels */
    BC__RK_WATCH,    /* bc_redis_watch: reply_to = the listener */
    BC__RK_UNWATCH,  /* bc_redis_unwatch */
};

/* bc__redis_req_t.flags */
#define BC__RF_TIMED_OUT 0x1u /* answered TIMEOUT; hiredis still owns it until its callback */
#define BC__RF_RETRIED 0x2u   /* EVALSHA already retried once */
#define BC__RF_HANDSHAKE 0x4u /* part of a connection's handshake */
#define BC__RF_SYNC 0x8u      /* BC__RK_SUB: answer BC_MSG_REDIS_SYNC once confirmed */

/* A subscriber-connection barrier: `actor` gets a bc_redis_sync_msg_t of `type` once the
 * subscriber connection has confirmed `target` channels (I/O thread only). */
typedef struct bc__redis_barrier_s bc__redis_barrier_t;
struct bc__redis_barrier_s {
    bc__redis_barrier_t *next;
    bc_actor_t *actor; /* counted reference */
    uint64_t tag, target;
    uint32_t type;
};

typedef struct bc__redis_listener_s bc__redis_listener_t;
struct bc__redis_listener_s {
    bc__redis_listener_t *next;
    bc_actor_t *actor; /* counted reference */
};

/* One block: the request, then argv pointers, argv lengths and the bytes (each + NUL). */
typedef struct bc__redis_req_s bc__redis_req_t;
struct bc__redis_req_s {
    bc_io_task_t task; /* carries it to the I/O thread */
    bc__redis_req_t *next;
    bc_redis_t *r;
    bc_actor_t *reply_to; /* counted reference, or NULL */
    uint64_t tag;
    uint64_t submit_ns;
    uint64_t deadline_ms; /* I/O: when in flight */
    const char **argv;
    size_t *argvlen;
    int argc;
    int script_id;
    unsigned pool_cls;
    uint8_t kind, cls, flags;
};

typedef struct bc__redis_conn_s {
    bc_redis_t *r;
    redisAsyncContext *ac;        /* I/O: NULL when down; dropped before hiredis frees it */
    ev_timer timer;               /* I/O: connect timeout, then (always running while ready)
                                     the oldest command's deadline or one timeout from now */
    bc_io_flush_t flush;          /* I/O: write now what the current tasks queued */
    bc_io_poll_t poll;            /* I/O: the socket, also read by spinning workers */
    bc__redis_req_t *head, *tail; /* I/O: in flight, in send order (= reply order) */
    uint64_t inflight;
    unsigned hs_pending; /* handshake replies still expected */
    bool sub;            /* the subscriber connection */
    bool connected;      /* TCP/unix connect completed */
    bool ready;          /* handshake done */
} bc__redis_conn_t;

typedef struct bc__redis_subent_s bc__redis_subent_t;
struct bc__redis_subent_s {
    bc__redis_subent_t *next;
    bc_actor_t *actor; /* counted reference */
    size_t len;
    char name[];
};

typedef struct bc__redis_script_s {
    char sha[41];
    char *lua;
    size_t len;
} bc__redis_script_t;

struct bc_redis_s {
    bc_runtime_t *rt;
    bc_io_t *io;
    bc_redis_conf_t conf; /* deep copy; read-only after create */
    char target[160];     /* bc_redis_conf_describe, for logs */

    /* I/O thread only. */
    bc__redis_conn_t *conns; /* pool_size command connections, then the subscriber */
    int nconns;
    unsigned rr;
    int nready;
    bool up;          /* every connection ready, breaker closed */
    bool closed_io;   /* shut down */
    bool retry_armed; /* a reconnect is scheduled */
    ev_timer retry;
    ev_timer clock; /* TIME refresh */
    bc__redis_req_t *qhead, *qtail;
    uint32_t qcount[BC_REDIS_CLASS_COUNT];
    bc__redis_subent_t **buckets;
    size_t nbuckets, nsubs;
    uint64_t sub_sent, sub_confirmed;         /* channels on the current subscriber connection */
    uint64_t generation;                      /* completed connects */
    bc__redis_barrier_t *bar_head, *bar_tail; /* targets on the current connection, ascending */
    bc__redis_barrier_t *parked;              /* waiting for the next restore */
    bc__redis_listener_t *listeners;
    const char *batch_argv[BC_REDIS_SUB_BATCH + 1];
    size_t batch_len[BC_REDIS_SUB_BATCH + 1];
    bc_io_task_t start_task, destroy_task;

    /* Shared. */
    pthread_mutex_t lock; /* breaker, done */
    pthread_cond_t cond;
    bc_breaker_t breaker;
    bool done;          /* start or destroy task finished */
    int start_rc;       /* bc_io_add_closer's result */
    _Atomic int closed; /* bc_redis_destroy called */
    _Atomic int64_t offset_ms;
    _Atomic int time_known;
    _Atomic int connected;
    _Atomic uint64_t n_submitted, n_inflight, n_max_pipeline, n_subs, n_pubsub, n_reloads;
    _Atomic uint64_t n_replied[BC_REDIS_STATUS_COUNT];
    _Atomic uint64_t n_queued[BC_REDIS_CLASS_COUNT];
    /* Replies by latency bucket and their total latency (bc_redis_latency). */
    _Atomic uint64_t n_lat[BC_REDIS_LATENCY_BUCKETS + 1], n_lat_ns;
    pthread_mutex_t script_lock; /* serialises registrations */
    _Atomic int nscripts;        /* published entries are immutable */
    bc__redis_script_t scripts[BC_REDIS_MAX_SCRIPTS];
};

/* redis.c */
/* Answer req's caller with status (and reply for OK/ERROR). I/O thread (or the submitting
 * thread before the request was posted). Does not free req. */
void bc__redis_answer(bc_redis_t *r, bc__redis_req_t *req, bc_redis_status_t st,
                      const struct redisReply *reply);
/* Release req's reference and its block. Any thread. */
void bc__redis_req_free(bc__redis_req_t *req);
/* Build a request block from up to two argv arrays (lengths NULL: strlen). Any thread. */
bc__redis_req_t *bc__redis_req_make(bc_redis_t *r, int kind, int n1, const char *const *a1,
                                    const size_t *l1, int n2, const char *const *a2,
                                    const size_t *l2);

/* redis_conn.c (I/O thread) */
/* Initialise the timers (any thread, before the first connect). */
void bc__redis_conn_init(bc_redis_t *r);
/* Begin a connect round on every connection. */
void bc__redis_connect_all(bc_redis_t *r);
/* Send a user/EVALSHA request now if up, else apply its class policy. */
void bc__redis_dispatch(bc_redis_t *r, bc__redis_req_t *req);
/* Free every context (pending callbacks answer SHUTDOWN) and stop the timers. */
void bc__redis_conn_shutdown(bc_redis_t *r);
/* Breaker log callback: routes to bc_log. */
void bc__redis_breaker_log(void *arg, int level, const char *line);

/* redis_sub.c (I/O thread) */
void bc__redis_sub_apply(bc_redis_t *r, bc__redis_req_t *req);
void bc__redis_unsub_apply(bc_redis_t *r, bc__redis_req_t *req);
/* Re-send SUBSCRIBE for every channel of the map on the (fresh) subscriber connection. */
void bc__redis_sub_restore(bc_redis_t *r);
/* Release every subscriber, barrier and listener and free the map. */
void bc__redis_sub_clear(bc_redis_t *r);
/* Add or remove an UP listener (req->reply_to); frees req. */
void bc__redis_watch_apply(bc_redis_t *r, bc__redis_req_t *req, bool add);

#endif
