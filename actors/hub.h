/* hub.h - internals shared by the hub (hub.c), the coordinator actor (coord.c), the
 * signal-watcher actor (watcher.c) and the heartbeat actor (heartbeat.c).
 *
 * Ownership: the hub holds the coordinator table (id -> coordinator, under `lock`); each
 * coordinator struct is refcounted (table, actor, user handle, in-flight watcher work). Fields
 * marked "watcher" are touched only by the watcher's behaviour, "coord" only by the
 * coordinator's own behaviour, and the atomics by anyone.
 */
#ifndef BC_HUB_H
#define BC_HUB_H

#include "blockcoord_cfn.h"
#include "proto.h"
#include "redis.h"
#include "seen.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Internal message and timer types (below the runtime's system range). */
enum {
    BC__M_REGISTER = 0xfffe0100u, /* coord -> watcher: host me */
    BC__M_UNREGISTER,             /* coord -> watcher: I stopped */
    BC__M_READY,                  /* watcher -> coord: channels live */
    BC__M_SIGNAL,                 /* watcher -> coord: bc__sig_msg_t */
    BC__M_ACK,                    /* watcher -> coord: bc__ack_msg_t */
    BC__M_EVENT,                  /* watcher -> coord: bc__event_msg_t */
    BC__M_ACKWAIT,                /* coord -> watcher: bc__ackwait_msg_t */
    BC__M_ACKWAIT_END,            /* coord -> watcher: bc__ackwait_msg_t (id only) */
    BC__M_WAIT_TIMER,             /* timer -> coord */
    BC__M_ACK_TIMER,              /* timer -> coord */
    BC__M_POLL_TIMER,             /* timer -> watcher */
    BC__M_FLUSH,                  /* watcher -> itself: deferred re-reads */
    BC__M_BLOCKING_WAIT,          /* embedder thread -> coord */
    BC__M_HB_TIMER,               /* timer -> heartbeat actor */
    BC__M_HB_ADD,                 /* coord -> heartbeat actor */
    BC__M_HB_REMOVE,              /* coord -> heartbeat actor: final write */
    BC__M_POST,                   /* any thread -> coord: run a function */
    BC__M_ACK_LATE,               /* timer -> coord: register an ACK wait with the watcher */
};

typedef struct bc__ackwait_s bc__ackwait_t;

/* ~370 bytes plus the swarm id and phase: 100,000 coordinators are hosted in one process, so
 * every field counts (docs/runtime.md, "Memory per coordinator"). Fields written by different
 * threads never share a bitfield. */
struct bc_coord_s {
    _Atomic int refs;
    _Atomic int state; /* bc_coord_state_t */
    bc_hub_t *hub;
    bc_actor_t *actor;
    const char *swarm; /* "" or in strs[]; immutable */
    const char *phase; /* NULL or in strs[]; immutable */
    bc_coord_start_fn on_start;
    bc_coord_event_fn on_event;
    void *arg;

    _Atomic uint64_t iteration;
    _Atomic uint64_t signals_received, signals_sent;
    pthread_mutex_t lane_lock; /* lanes: senders (any thread) and the coordinator */
    struct bc__lane_s *lanes;  /* per-receiver send order */
    uint64_t lane_floor;       /* the largest stamp of a freed lane (coord.c, lane_free) */
    void *live;                /* coord.c send records awaiting an answer */
    _Atomic int stopping;      /* bc_coord_stop called */

    /* coord */
    bool waiting;
    uint32_t wait_timeout_ms;
    char *wait_types; /* NULL: any type; else the wait's comma-separated list (malloc'd) */
    bc_coord_signal_fn wait_fn;
    void *wait_arg;
    bc_timer_t *wait_timer;
    uint64_t wait_start_ns;
    bc_msg_t *pend_head, *pend_tail; /* accepted signals not yet waited for */
    bc__ackwait_t *ackwaits;
    uint64_t ackwait_seq;

    /* heartbeat actor (heartbeat.c) */
    uint32_t hb_seq;      /* sequence of the last heartbeat written */
    uint32_t hb_index;    /* position in its slice's list (or in the retired list) */
    uint32_t hb_try_ms;   /* low 32 bits of bc_now_ms() at the last write submitted */
    uint32_t hb_ok_ms;    /* ... at the submission of the last write answered OK */
    uint16_t hb_slice;    /* the slice of the interval it is written in */
    uint16_t hb_inflight; /* writes not answered yet */
    uint8_t hb_flags;

    /* watcher */
    bool w_registered;
    bool w_draining;             /* a GETDEL/LPOP round is in flight */
    bool w_redrain;              /* another event came meanwhile */
    bool w_flush;                /* queued for a deferred drain */
    bool w_reread;               /* queued for a first read or a re-read (watcher.c) */
    bc_coord_t *w_flush_next;    /* the deferred-flush list */
    bc_msg_t *w_parked;          /* the slot half of a drain, until the queue half arrives */
    void *w_dq_head, *w_dq_tail; /* deliveries in arrival order (watcher.c pending_t) */

    bool send_only;
    uint8_t id_len;
    char id[BC_ID_MAX + 1];
    char strs[]; /* the swarm id and the phase, NUL-terminated, when given */
};
_Static_assert(BC_ID_MAX <= UINT8_MAX, "id_len is a byte");

/* A signal handed to a coordinator; strings live in data[]. */
typedef struct bc__sig_msg_s {
    bc_msg_t hdr;
    bc_signal_t sig; /* pointers into data */
    bool acked;      /* the coordinator must write the ACK (coord.c, write_acks) */
    char data[];
} bc__sig_msg_t;

/* A verified (or refused) ACK for one of a coordinator's waits. */
typedef struct bc__ack_msg_s {
    bc_msg_t hdr;
    uint64_t wait_id; /* 0: any wait of this coordinator on (acker, sid) */
    int valid;
    char acker[BC_ID_MAX + 1];
    char sid[BC_SIGID_MAX + 1];
    char why[64];
} bc__ack_msg_t;

/* An observation for the coordinator's on_event. */
typedef struct bc__event_msg_s {
    bc_msg_t hdr;
    bc_coord_event_type_t type;
    char peer[BC_ID_MAX + 1];
    char detail[BC_SIGID_MAX + 1];
} bc__event_msg_t;

/* coord -> watcher: start (or end) watching the ACKs of one wait. */
typedef struct bc__ackwait_msg_s {
    bc_msg_t hdr;
    bc_coord_t *coord; /* counted reference */
    uint64_t wait_id;
    size_t n;
    char signal_id[BC_SIGID_MAX + 1];
    char ids[][BC_ID_MAX + 1];
} bc__ackwait_msg_t;

typedef struct bc__reg_msg_s {
    bc_msg_t hdr;
    bc_coord_t *coord; /* counted reference */
} bc__reg_msg_t;

struct bc_hub_s {
    bc_runtime_t *rt;
    bc_redis_t *redis;
    bc_hmac_t *hmac;
    bc_hub_opts_t opts;
    int db;
    char ks_prefix[40]; /* "__keyspace@<db>__:" */
    size_t ks_len;
    char hostname[128];
    int pid;

    bc_actor_t *watcher;
    bc_actor_t *heartbeat;
    bc_actor_t *reaper;  /* liveness actor: reaper scans (opts.reaper) and bc__op replies */
    int work_scripts[3]; /* work.c: assign, move, complete (bc_redis_script_register ids) */
    void (*reap_observer)(void *arg, const char *line);
    void *reap_observer_arg;
    _Atomic int reap_busy, reap_now_pending, reap_closing;
    _Atomic int64_t ops_inflight; /* bc__op commands not answered yet */
    _Atomic(bc_replace_fn) replacer;
    void *_Atomic replacer_arg;

    pthread_mutex_t lock; /* table, ready */
    pthread_cond_t cond;
    bc_coord_t **table; /* open addressing by id hash; NULL or tombstone */
    size_t cap, count, used;
    bool ready;
    bool closing;

    _Atomic int mode; /* 0 unknown, 1 keyspace, 2 poll */
    char mode_reason[160];
    _Atomic uint64_t n_waiting;
    _Atomic uint64_t n_sent, n_send_fail, n_delivered, n_fast, n_rej_sig, n_rej_unsigned,
        n_rej_malformed, n_replays, n_durable, n_acks_written, n_acks_ok, n_acks_bad, n_timeouts,
        n_heartbeats, n_redis_errors, n_polls, n_resyncs;
    /* liveness (heartbeat.c, reaper.c, work.c) */
    _Atomic uint64_t n_hb_failures, n_spawns, n_reap_cycles, n_reap_last_ms, n_reap_stale,
        n_reap_bad, n_dead, n_escalations, n_activity_timeouts, n_deadlocks, n_work_moved,
        n_work_done, n_work_refused, n_send_retries;
    _Atomic uint64_t n_hb_on_time, n_hb_late; /* heartbeat.c: written heartbeats, by punctuality */
    _Atomic uint64_t hb_tick_ms;              /* heartbeat.c: the timer's period now */
    /* Signals delivered from their publish hint whose durable copy (slot or queue) is not
     * consumed yet; bc_hub_destroy waits for it to reach 0 so no stale copy outlives us. */
    _Atomic int64_t n_owed;
    _Atomic int hb_pending; /* final heartbeats not yet answered */
    _Atomic(void *) obs;    /* obs.c: metrics and HTTP server, or NULL (see obs.h) */
};

#define BC__TOMBSTONE ((bc_coord_t *)1)

/* hub.c */
/* snprintf into err[len] when err is non-NULL and len > 0: the error-message convention. */
void bc__seterr(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int bc__hub_insert(bc_hub_t *h, bc_coord_t *c);                      /* 0, -EEXIST, -ESHUTDOWN */
bc_coord_t *bc__hub_lookup(bc_hub_t *h, const char *id, size_t len); /* +1 ref, or NULL */
void bc__hub_remove(bc_hub_t *h, bc_coord_t *c);
uint64_t bc__hub_stamp(bc_hub_t *h); /* Redis-clock ms plus the configured skew */
void bc__hub_set_mode(bc_hub_t *h, int mode, const char *reason);

/* coord.c */
bc_coord_t *bc__coord_retain(bc_coord_t *c);
/* Queue the ACK that the signal continuation running on this thread still owes, if any: every
 * API that writes to Redis calls it first, so the ACK precedes the continuation's writes. */
void bc__coord_ack_due_flush(void);
bool bc__coord_sends_done(bc_coord_t *c); /* no signal write unanswered (any thread) */
void bc__coord_release(bc_coord_t *c);
/* An operator's force-unblock: complete c's pending bc_coord_wait, if any, with -EINTR through
 * the path a timed-out wait takes (its timer cancelled, the wait's statistics kept). Returns 1
 * if a wait was pending, else 0. On the coordinator only (a function run by bc_coord_post). */
int bc__coord_force_unblock(bc_coord_t *c);

/* watcher.c */
bc_actor_t *bc__watcher_spawn(bc_hub_t *h);
/* heartbeat.c */
bc_actor_t *bc__heartbeat_spawn(bc_hub_t *h);
/* reaper.c: spawn the reaper and set h->reaper (before it can run), or leave it NULL. */
bc_actor_t *bc__reaper_spawn(bc_hub_t *h);
/* Delete coordinator id's state by exact key (PROTOCOL §4.5 step 4: heartbeat, signal slot and
 * queue, ACK slot, per-signal ACKs, warning, activity, registry entry, consumed markers, Node
 * idempotency markers naming id as sender or receiver). done runs once, on a runtime worker,
 * with 0 and the number of keys removed, or a negative errno and a message. Any thread.
 * Returns 0 or -EINVAL (bad id). */
typedef void (*bc__cleanup_fn)(void *arg, int status, uint64_t keys_removed, const char *err);
int bc__cleanup(bc_hub_t *h, const char *id, bc__cleanup_fn done, void *arg);
/* Asynchronous Redis operations of the liveness layer. A command submitted with bc__op_cmd /
 * bc__op_evalsha is answered on the hub's reaper actor, which calls op->fn(op, reply); the
 * reply is valid only during that call. fn owns op from then on (frees it or submits it
 * again). The reaper actor runs even when opts.reaper is 0 (only its scans are off). */
typedef struct bc__op_s bc__op_t;
typedef void (*bc__op_fn)(bc__op_t *op, const bc_redis_reply_msg_t *m);
struct bc__op_s {
    bc__op_fn fn;
    bc_hub_t *h;
};
int bc__op_cmd(bc_hub_t *h, bc__op_t *op, int argc, const char *const *argv, const size_t *lens);
int bc__op_evalsha(bc_hub_t *h, bc__op_t *op, int script, int nkeys, int argc,
                   const char *const *argv, const size_t *lens);
/* An internal observer of the reaper's progress lines ("Scanning for stale coordinators...");
 * `blockcoord reap` prints them. Set before the first cycle. */
void bc__hub_set_reap_observer(bc_hub_t *h, void (*fn)(void *arg, const char *line), void *arg);
/* 1 while a reaper cycle or an escalation is in flight (any thread). */
int bc__reap_busy(bc_hub_t *h);
/* work.c: register the work scripts with the Redis layer (at hub creation). */
int bc__work_init(bc_hub_t *h);

#endif
