/* redis.h - the Redis connection layer: pooled, pipelined hiredis async connections owned by
 * the I/O thread, with reconnection, the circuit breaker and a dedicated subscriber connection.
 *
 * Any thread submits commands (argv form, binary-safe); every command gets exactly one
 * bc_redis_reply_msg_t back, carrying the caller's tag and a status: a reply, a Redis error,
 * or one distinct failure (disconnected, timeout, breaker open, queue full, shutdown).
 */
#ifndef BC_REDIS_H
#define BC_REDIS_H

#include "blockcoord.h"
#include "breaker.h"
#include "redis_conf.h"
#include "redis_reply.h"

#include <stddef.h>
#include <stdint.h>

typedef struct bc_redis_s bc_redis_t;

/* Start the layer: copies *conf, registers a runtime closer and connects on the I/O thread;
 * returns at once. A first connect that fails enters the breaker ladder and the layer keeps
 * retrying forever: it never fails this call. conf->breaker.log is ignored (the breaker logs
 * through bc_log). Returns 0 and sets *out, -EINVAL for a bad conf or NULL argument, -ENOSPC
 * if the I/O thread has no closer slot left. Blocks briefly until the I/O thread has
 * registered the closer: call it from any thread except the I/O thread. The handle is freed at
 * bc_runtime_destroy; bc_redis_destroy tears it down earlier. */
int bc_redis_create(bc_runtime_t *rt, const bc_redis_conf_t *conf, bc_redis_t **out);

/* Tear the layer down: answers everything pending with BC_REDIS_SHUTDOWN, releases the
 * subscribers, frees the hiredis contexts and the handle; blocks until the I/O thread has done
 * so. The handle is invalid afterwards: stop the actors that submit before calling it. Any
 * non-I/O thread, before bc_runtime_destroy (which otherwise closes the layer itself). NULL
 * is a no-op. */
void bc_redis_destroy(bc_redis_t *r);

typedef enum bc_redis_status {
    BC_REDIS_OK = 0,
    BC_REDIS_ERROR,        /* Redis error reply, in reply */
    BC_REDIS_DISCONNECTED, /* connection lost before the reply (never resent) */
    BC_REDIS_TIMEOUT,      /* no reply within conf.timeout_ms */
    BC_REDIS_UNAVAILABLE,  /* not connected, fail-fast class */
    BC_REDIS_QUEUE_FULL,   /* not connected, class queue at its bound */
    BC_REDIS_SHUTDOWN,     /* the layer was destroyed */
    BC_REDIS_STATUS_COUNT
} bc_redis_status_t;

/* Static name: "ok", "error", "disconnected", "timeout", "unavailable", "queue_full",
 * "shutdown"; "unknown" otherwise. Any thread. */
const char *bc_redis_status_name(bc_redis_status_t s);

#define BC_MSG_REDIS_REPLY 0xffff0200u /* system range: delivered to behaviours */
typedef struct bc_redis_reply_msg {
    bc_msg_t hdr;
    uint64_t tag;
    bc_redis_status_t status;
    uint32_t latency_us;     /* submission to answer */
    const bc_reply_t *reply; /* inside this message; NULL unless OK/ERROR */
} bc_redis_reply_msg_t;

/* From an actor turn: the commands this turn submitted should be written as soon as the turn
 * ends, before the actors it made runnable run (runtime/io.c, direct writes), because someone
 * waits for them (a signal, an ACK). Without it they leave once the worker has nothing else
 * to run, so a woken coordinator runs before a receiver's bookkeeping is written. */
void bc_redis_urgent(bc_redis_t *r);

/* Tag for a command whose success needs no answer: reply_to only picks the connection (so it
 * stays in order with reply_to's other commands); only a failure is answered. Saves a message
 * and a worker wake-up per command. */
#define BC_REDIS_TAG_QUIET UINT64_MAX

/* Submit one command from any thread. argv/argvlen (argvlen NULL: NUL-terminated strings)
 * are copied into one pooled block that travels to the I/O thread as a task: no other
 * allocation. The answer goes to reply_to (NULL: none wanted; a reference is held meanwhile)
 * as a bc_redis_reply_msg_t with `tag`. Commands with the same reply_to use the same pooled
 * connection, so one actor's replies come back in its submission order. Returns 0 (exactly
 * one answer will follow), or -EINVAL (r/argv NULL, argc < 1, cls out of range: no answer). */
int bc_redis_cmd(bc_redis_t *r, bc_actor_t *reply_to, uint64_t tag, bc_redis_class_t cls, int argc,
                 const char *const *argv, const size_t *argvlen);

#define BC_MSG_REDIS_PUBSUB 0xffff0201u
/* A pub/sub message: channel (channel_len bytes + NUL) then payload (payload_len + NUL). */
typedef struct bc_redis_pubsub_msg {
    bc_msg_t hdr;
    uint32_t channel_len, payload_len;
    char data[];
} bc_redis_pubsub_msg_t;

#define BC_REDIS_SUB_BATCH 512 /* channels per SUBSCRIBE/UNSUBSCRIBE command */

/* Subscribe `to` to n channels (NUL-terminated names, copied) on the subscriber connection;
 * a channel already subscribed moves to `to`. Messages arrive as BC_MSG_REDIS_PUBSUB.
 * Subscriptions survive reconnects (restored automatically). Any thread. Returns 0 or
 * -EINVAL (NULL arguments, n == 0), -ESHUTDOWN after bc_redis_destroy. */
int bc_redis_subscribe(bc_redis_t *r, bc_actor_t *to, const char *const *channels, size_t n);

#define BC_MSG_REDIS_SYNC 0xffff0202u /* bc_redis_subscribe_sync: channels are live */
#define BC_MSG_REDIS_UP 0xffff0203u   /* bc_redis_watch: (re)connected, subscriptions live */
typedef struct bc_redis_sync_msg {
    bc_msg_t hdr;
    uint64_t tag;        /* the subscribe_sync tag; 0 for UP */
    uint64_t generation; /* connects completed so far (1 after the first) */
} bc_redis_sync_msg_t;

/* bc_redis_subscribe, and then `to` gets one BC_MSG_REDIS_SYNC with `tag` once Redis has
 * confirmed every channel of this call (and every one subscribed before it): a write made
 * after that message is seen by the subscription. While disconnected it waits for the
 * restore. n may be 0 (a pure barrier). Returns 0, -EINVAL, -ESHUTDOWN. Any thread. */
int bc_redis_subscribe_sync(bc_redis_t *r, bc_actor_t *to, const char *const *channels, size_t n,
                            uint64_t tag);

/* Register `listener` for BC_MSG_REDIS_UP (a bc_redis_sync_msg_t): one after every completed
 * (re)connect, sent once all subscriptions have been restored and confirmed, so a listener
 * that re-reads state on UP misses no write made during an outage. If the layer is up at
 * registration, one UP follows at once. Holds a reference until bc_redis_unwatch or
 * destroy. Returns 0, -EINVAL, -ESHUTDOWN. Any thread. */
int bc_redis_watch(bc_redis_t *r, bc_actor_t *listener);
int bc_redis_unwatch(bc_redis_t *r, bc_actor_t *listener);

/* Unsubscribe n channels (unknown ones are ignored). Any thread. Returns 0, -EINVAL,
 * -ESHUTDOWN. */
int bc_redis_unsubscribe(bc_redis_t *r, const char *const *channels, size_t n);

#define BC_REDIS_MAX_SCRIPTS 64

/* Register a Lua script: its SHA1 is computed here, so EVALSHA can go out at once. Any thread.
 * Returns a script id >= 0, -EINVAL (NULL), -ENOSPC (more than BC_REDIS_MAX_SCRIPTS). */
int bc_redis_script_register(bc_redis_t *r, const char *lua);

/* Call a registered script with EVALSHA sha nkeys argv...; on a NOSCRIPT error the I/O thread
 * sends SCRIPT LOAD and retries once on the same connection, so the caller only sees the final
 * answer. Otherwise like bc_redis_cmd (argc may be 0). Returns 0 or -EINVAL. Any thread. */
int bc_redis_evalsha(bc_redis_t *r, bc_actor_t *reply_to, uint64_t tag, bc_redis_class_t cls,
                     int script_id, int nkeys, int argc, const char *const *argv,
                     const size_t *argvlen);

/* Redis time (PROTOCOL §4.3): offset sampled with TIME at every connect and refreshed every
 * 60 s. Any thread (atomics). Before the first sample the offset is 0 (local clock). */
uint64_t bc_redis_now_ms(const bc_redis_t *r);         /* Unix ms per Redis's clock */
int64_t bc_redis_clock_offset_ms(const bc_redis_t *r); /* Redis clock - local CLOCK_REALTIME */
int bc_redis_time_known(const bc_redis_t *r);          /* 1 once a TIME sample arrived */
/* Tests only: move the clock estimate by delta_ms, as a TIME refresh that re-bases it (or a
 * failover) would. The next refresh sets it from TIME again. */
void bc__redis_clock_step(bc_redis_t *r, int64_t delta_ms);

typedef struct bc_redis_stats {
    bc_breaker_snapshot_t breaker;
    int connected; /* every connection up and commands flowing */
    int time_known;
    int64_t clock_offset_ms;
    uint64_t submitted;                      /* commands accepted (cmd + evalsha) */
    uint64_t replied[BC_REDIS_STATUS_COUNT]; /* answers, by status */
    uint64_t replied_total;                  /* sum of replied[] */
    uint64_t in_flight;                      /* sent, reply not yet seen */
    uint64_t queued[BC_REDIS_CLASS_COUNT];   /* waiting for a connection */
    uint64_t max_pipeline;                   /* deepest per-connection pipeline seen */
    uint64_t subscriptions;                  /* channels in the subscription map */
    uint64_t pubsub_messages;                /* delivered to actors */
    uint64_t noscript_reloads;               /* SCRIPT LOAD + retry after NOSCRIPT */
} bc_redis_stats_t;

/* Copy the layer's state into *out. Any thread: counters are atomics; the breaker snapshot is
 * taken under the mutex the I/O thread holds while driving the breaker. */
void bc_redis_stats(bc_redis_t *r, bc_redis_stats_t *out);

/* Command latency, submission to reply (OK or ERROR answers only: a command that timed out,
 * was refused or lost its connection has no reply time), as a histogram with these upper
 * bounds in seconds: 50 us, 100 us, 250 us, ... 1 s. */
#define BC_REDIS_LATENCY_BUCKETS 14
extern const double bc_redis_latency_bounds[BC_REDIS_LATENCY_BUCKETS];
typedef struct bc_redis_latency {
    uint64_t counts[BC_REDIS_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative; last: > 1 s */
    uint64_t count;                                /* sum of counts[] */
    double sum_s;                                  /* total latency */
} bc_redis_latency_t;

/* Copy the latency histogram. Recording it costs the I/O thread one clock read and two
 * relaxed atomic adds per reply, no lock. Any thread. */
void bc_redis_latency(bc_redis_t *r, bc_redis_latency_t *out);

#endif
