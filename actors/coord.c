/* coord.c - the coordinator actor: signed sends, waits as continuations, ACK waits.
 *
 * Key decision: a coordinator never talks to the subscriber side itself. The signal-watcher
 * hands it accepted, already-ACKed signals as mailbox messages; the coordinator only keeps
 * them until a wait takes them (by type), so a signal that arrives before the wait is
 * never lost and one of another type never satisfies the wrong wait.
 */
#include "hub.h"
#include "obs.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_WAIT_MS (30u * 60u * 1000u)
#define DEFAULT_ACK_WAIT_MS 30000u
#define WAIT_TYPES_MAX 256 /* a wait's type list: shorter than this */
/* A native acker's ACK comes back on our publish channel, usually well under a millisecond;
 * only a wait still open after this long subscribes to the per-signal keys and reads them. */
#define ACK_LATE_MS 20u
#define SIGNAL_TTL "86400"
#define ACK_TTL "3600"

struct bc__ackwait_s {
    bc__ackwait_t *next;
    uint64_t id;
    bc_timer_t *timer;
    bc_timer_t *late; /* until it fires, the wait is not registered with the watcher */
    bool registered;
    bc_coord_acks_fn fn;
    void *arg;
    uint64_t start_ns;
    size_t n, n_acked;
    char signal_id[BC_SIGID_MAX + 1];
    const char **idv;
    uint8_t *acked;
    char (*ids)[BC_ID_MAX + 1];
};

typedef struct bc__waiter_s bc__waiter_t;
struct bc__waiter_s {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int rc;
    bc_signal_t *sig;
    char types[256];
    uint32_t timeout_ms;
};

typedef struct {
    bc_msg_t hdr;
    bc__waiter_t *w;
} blocking_msg_t;

typedef struct {
    bc_msg_t hdr;
    void (*fn)(bc_coord_t *c, void *arg);
    void *arg;
} post_msg_t;

/* A signal write in flight: the JSON is kept until SET NX answers (nil: append to queue).
 *
 * Key decision (the hint first, hub option hint_first): Redis runs every command of one read
 * before it writes anything out, so with the hint, Node's marker and the durable copy in one
 * write the receiver hears of the signal only after Redis has also stored the copy, set the
 * marker and published the keyspace event. The hint therefore leaves alone (urgent, at the end
 * of the sending turn), and the marker and the durable write are held on the record (`held`)
 * until Redis answers the hint: one round trip later, in the reply's turn. Measured with a
 * minimal blocking client beside the floor, the signal reached the receiver 6-7 us sooner
 * (45-49 against 52-55 us). The lane's state (nx_inflight, pending, the deferred list) is
 * decided at send time as before, so later signals queue exactly as they did. Replies on one
 * connection come back in order, so held writes still go out in send order; a deferred record
 * whose hint is unanswered when its SET NX predecessor settles gets its RPUSH held too. */
typedef struct send_rec_s send_rec_t;
typedef struct bc__lane_s bc__lane_t;
struct send_rec_s {
    send_rec_t *next;          /* in its lane's deferred list */
    send_rec_t *lnext, *lprev; /* in c->live while a write is submitted */
    bc__lane_t *lane;
    size_t len;
    unsigned retries; /* re-sends after a write whose outcome was unknown */
    unsigned held;    /* HELD_*: writes waiting for the hint's answer (hint_first) */
    char mid[BC_SIGID_MAX + 1];
    char to[BC_ID_MAX + 1];
    char json[];
};

/* Per-receiver send order (PROTOCOL §2.2): a SET NX that fails turns into an RPUSH one round
 * trip later, so while a SET NX to a receiver is unanswered, later signals to it wait here, and
 * while any write to it is unanswered, later ones go straight to the queue, behind it. */
struct bc__lane_s {
    bc__lane_t *next;
    uint64_t last_ts; /* the last stamp given to a signal to this receiver */
    unsigned pending; /* writes submitted and unanswered */
    bool nx_inflight;
    send_rec_t *dhead, *dtail;
    char to[BC_ID_MAX + 1];
};

enum { TAG_SETNX = 1, TAG_RPUSH = 2, TAG_HINT = 3 };
enum { HELD_HINT = 1, HELD_MARKER = 2, HELD_SETNX = 4, HELD_RPUSH = 8 };
#define SEND_RETRIES 5 /* re-sends of a write whose outcome is unknown, then it is reported */

bc_coord_t *bc__coord_retain(bc_coord_t *c)
{
    /* relaxed: taking a reference needs no ordering (the caller already holds one). */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void bc__coord_release(bc_coord_t *c)
{
    if (c == NULL)
        return;
    /* acq_rel: the last release must see every other holder's writes before freeing. */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    bc_actor_release(c->actor);
    while (c->live) { /* writes never answered: the coordinator stopped first */
        send_rec_t *r = c->live;
        c->live = r->lnext;
        free(r);
    }
    while (c->lanes) {
        bc__lane_t *l = c->lanes;
        c->lanes = l->next;
        while (l->dhead) {
            send_rec_t *d = l->dhead;
            l->dhead = d->next;
            free(d);
        }
        free(l);
    }
    pthread_mutex_destroy(&c->lane_lock);
    free(c->wait_types);
    free(c);
}

void bc_coord_release(bc_coord_t *c)
{
    bc__coord_release(c);
}

void bc_coord_opts_init(bc_coord_opts_t *o)
{
    memset(o, 0, sizeof *o);
}

int bc_coord_id_valid(const char *what, const char *id, char *err, size_t errlen)
{
    if (bc_id_valid(id))
        return 1;
    if (err && errlen)
        bc_id_explain(what ? what : "coordinator id", id, err, errlen);
    return 0;
}

int bc_signal_type_valid(const char *type, char *err, size_t errlen)
{
    if (bc_type_valid(type))
        return 1;
    if (err && errlen)
        bc_type_explain(type, err, errlen);
    return 0;
}

const char *bc_coord_id(const bc_coord_t *c)
{
    return c->id;
}

bc_hub_t *bc_coord_hub(const bc_coord_t *c)
{
    return c->hub;
}

uint64_t bc_coord_iteration(const bc_coord_t *c)
{
    /* relaxed: an independent counter. */
    return atomic_load_explicit(&((bc_coord_t *)c)->iteration, memory_order_relaxed);
}

void bc_coord_set_iteration(bc_coord_t *c, uint64_t it)
{
    /* relaxed: an independent counter, read by heartbeats and ACKs. */
    atomic_store_explicit(&c->iteration, it, memory_order_relaxed);
}

void bc_coord_set_state(bc_coord_t *c, bc_coord_state_t st)
{
    /* relaxed: reported by the next heartbeat; no data hangs on it. */
    atomic_store_explicit(&c->state, (int)st, memory_order_relaxed);
}

static void emit(bc_coord_t *c, bc_coord_event_type_t type, const char *peer, const char *detail,
                 const bc_signal_t *sig)
{
    if (c->on_event == NULL)
        return;
    bc_coord_event_t ev = {type, peer, detail, sig};
    c->on_event(c, &ev, c->arg);
}

/* ---------------------------------------------------------------- sending */

static void submit_rpush(bc_coord_t *c, send_rec_t *rec);
static void submit_setnx(bc_coord_t *c, send_rec_t *rec);
static void submit_marker(bc_coord_t *c, send_rec_t *rec);

/* A record leaves the deferred list for the queue: now, or once its hint is answered. Caller
 * holds c->lane_lock. */
static void submit_deferred(bc_coord_t *c, send_rec_t *d)
{
    if (d->held & HELD_HINT)
        d->held |= HELD_RPUSH;
    else
        submit_rpush(c, d);
}

/* Caller holds c->lane_lock. Records on c->live are freed with the coordinator if their
 * answer never comes (the coordinator stopped first). */
static void live_add(bc_coord_t *c, send_rec_t *rec)
{
    rec->lprev = NULL;
    rec->lnext = c->live;
    if (c->live)
        ((send_rec_t *)c->live)->lprev = rec;
    c->live = rec;
}

static void live_del(bc_coord_t *c, send_rec_t *rec)
{
    if (rec->lprev)
        rec->lprev->lnext = rec->lnext;
    else
        c->live = rec->lnext;
    if (rec->lnext)
        rec->lnext->lprev = rec->lprev;
}

static bool lane_idle(const bc__lane_t *l, uint64_t now)
{
    /* Kept while its last stamp is not in the past: a new lane would start at `now`. */
    return l->pending == 0 && !l->nx_inflight && l->dhead == NULL && l->last_ts < now;
}

bool bc__coord_sends_done(bc_coord_t *c)
{
    pthread_mutex_lock(&c->lane_lock);
    bool done = true;
    for (bc__lane_t *l = c->lanes; l && done; l = l->next)
        done = l->pending == 0 && !l->nx_inflight && l->dhead == NULL;
    pthread_mutex_unlock(&c->lane_lock);
    return done;
}

int bc_coord_flush(bc_coord_t *c, int timeout_ms)
{
    if (c == NULL || timeout_ms < 0)
        return -EINVAL;
    if (bc_worker_id() >= 0)
        return -EDEADLK;
    uint64_t deadline = bc_now_ms() + (uint64_t)timeout_ms;
    struct timespec pause = {0, 1000000};
    while (!bc__coord_sends_done(c)) {
        if (bc_now_ms() >= deadline)
            return -ETIMEDOUT;
        nanosleep(&pause, NULL);
    }
    return 0;
}

/* Free an idle lane, keeping its last stamp as the floor of every later lane: a lane is freed
 * only once its last stamp is in the past, but the Redis clock estimate can step back (a TIME
 * refresh, a failover), and a new lane starting from the clock would then repeat a messageId
 * that the receiver drops as a replay. Caller holds c->lane_lock and has unlinked l. */
static void lane_free(bc_coord_t *c, bc__lane_t *l)
{
    if (l->last_ts > c->lane_floor)
        c->lane_floor = l->last_ts;
    free(l);
}

/* The lane of receiver `to`, created if needed (then at the head of c->lanes, *created set);
 * idle lanes passed on the way are freed. Caller holds c->lane_lock. */
static bc__lane_t *lane_get(bc_coord_t *c, const char *to, uint64_t now, bool *created)
{
    *created = false;
    bc__lane_t **pp = &c->lanes;
    while (*pp) {
        bc__lane_t *l = *pp;
        if (strcmp(l->to, to) == 0)
            return l;
        if (lane_idle(l, now)) {
            *pp = l->next;
            lane_free(c, l);
            continue;
        }
        pp = &l->next;
    }
    bc__lane_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        abort();
    snprintf(l->to, sizeof l->to, "%s", to);
    l->last_ts = c->lane_floor; /* its first stamp is above every stamp this sender gave */
    l->next = c->lanes;
    c->lanes = l;
    *created = true;
    return l;
}

int bc_coord_send(bc_coord_t *c, const char *to, const char *type, const char *payload_json,
                  char *signal_id, char *err, size_t errlen)
{
    char why[160];
    bc__coord_ack_due_flush();
    if (c == NULL || to == NULL || type == NULL) {
        bc__seterr(err, errlen, "bc_coord_send: NULL argument");
        return -EINVAL;
    }
    if (!bc_id_valid(to)) {
        bc__seterr(err, errlen, "%s", bc_id_explain("receiver id", to, why, sizeof why));
        return -EINVAL;
    }
    if (!bc_type_valid(type)) {
        bc__seterr(err, errlen, "%s", bc_type_explain(type, why, sizeof why));
        return -EINVAL;
    }
    bc_hub_t *h = c->hub;
    size_t cap = 1024 + (payload_json ? strlen(payload_json) * 2 : 0);
    send_rec_t *rec = malloc(sizeof *rec + cap);
    if (rec == NULL)
        return -ENOMEM;
    rec->retries = 0;
    rec->held = 0;
    /* On the stack: once the hint is submitted, its answer may settle rec and free it on
     * another thread before this function returns. */
    char mid[BC_SIGID_MAX + 1];
    /* relaxed: an independent counter. */
    uint64_t it = atomic_load_explicit(&c->iteration, memory_order_relaxed);
    uint64_t now = bc__hub_stamp(h);

    pthread_mutex_lock(&c->lane_lock);
    bool created;
    bc__lane_t *l = lane_get(c, to, now, &created);
    /* Stamps strictly increase per receiver, so messageIds never repeat; they run ahead of
     * the clock only for more than one signal per millisecond to one receiver. */
    uint64_t ts = now > l->last_ts ? now : l->last_ts + 1;
    int n = bc_sig_encode(h->hmac, ts, c->id, to, it, type, payload_json, rec->json, cap, mid, err,
                          errlen);
    if (n < 0) {
        if (created) { /* for nothing: still at the head */
            c->lanes = l->next;
            free(l);
        }
        pthread_mutex_unlock(&c->lane_lock);
        free(rec);
        return n == -ENOSPC ? -EINVAL : n;
    }
    l->last_ts = ts;
    memcpy(rec->mid, mid, sizeof rec->mid);
    rec->len = (size_t)n;
    rec->next = NULL;
    snprintf(rec->to, sizeof rec->to, "%s", to);
    char chan[BC_ID_MAX + 32];
    size_t chanl = bc_key(chan, sizeof chan, "blocking:notify:", to, NULL);
    const char *pub[] = {"PUBLISH", chan, rec->json};
    size_t publ[] = {7, chanl, rec->len};
    rec->lane = l;
    /* Node's marker and the hint go before the durable write, on the connection this
     * coordinator's writes use (same reply actor), so the answer to the durable write also
     * means both were executed: bc_coord_flush needs to track that write only. The hint does
     * not wait for the durable copy: a receiver that sees the hint first consumes the copy as
     * a duplicate. With hint_first the marker and the durable write wait for the hint's answer
     * (see send_rec_t). */
    bool first = h->opts.hint_first > 0;
    if (first)
        rec->held = HELD_HINT | (h->opts.node_markers ? HELD_MARKER : 0);
    else if (h->opts.node_markers)
        submit_marker(c, rec);
    bc_redis_cmd(h->redis, c->actor,
                 first ? (uint64_t)(uintptr_t)rec | TAG_HINT : BC_REDIS_TAG_QUIET,
                 BC_REDIS_CLASS_SIGNAL, 3, pub, publ);
    if (l->nx_inflight) {
        if (l->dtail)
            l->dtail->next = rec;
        else
            l->dhead = rec;
        l->dtail = rec;
    } else if (l->pending > 0) {
        l->pending++;
        live_add(c, rec);
        if (first)
            rec->held |= HELD_RPUSH;
        else
            submit_rpush(c, rec);
    } else {
        l->pending++;
        l->nx_inflight = true;
        live_add(c, rec);
        if (first)
            rec->held |= HELD_SETNX;
        else
            submit_setnx(c, rec);
    }
    pthread_mutex_unlock(&c->lane_lock);
    bc_redis_urgent(h->redis); /* the hint leaves when this turn ends */
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(&c->signals_sent, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->n_sent, 1, memory_order_relaxed);
    if (signal_id)
        memcpy(signal_id, mid, strlen(mid) + 1);
    return 0;
}

/* Node's marker for rec (blocking:idempotency:<messageId>). */
static void submit_marker(bc_coord_t *c, send_rec_t *rec)
{
    char mk[BC_SIGID_MAX + 32];
    size_t mkl = bc_key(mk, sizeof mk, "blocking:idempotency:", rec->mid, NULL);
    const char *m[] = {"SET", mk, "1", "EX", SIGNAL_TTL};
    size_t ml[] = {3, mkl, 1, 2, 5};
    bc_redis_cmd(c->hub->redis, c->actor, BC_REDIS_TAG_QUIET, BC_REDIS_CLASS_SIGNAL, 5, m, ml);
}

/* Write rec to its receiver's slot if the slot is free. Caller holds c->lane_lock. */
static void submit_setnx(bc_coord_t *c, send_rec_t *rec)
{
    char key[BC_ID_MAX + 32];
    size_t keyl = bc_key(key, sizeof key, "blocking:signal:", rec->to, NULL);
    const char *set[] = {"SET", key, rec->json, "NX", "EX", SIGNAL_TTL};
    size_t setl[] = {3, keyl, rec->len, 2, 2, 5};
    bc_redis_cmd(c->hub->redis, c->actor, (uint64_t)(uintptr_t)rec | TAG_SETNX,
                 BC_REDIS_CLASS_SIGNAL, 6, set, setl);
}

/* The hint of rec was answered (or will never be: the answer only releases what waited for
 * it, since the durable copy carries the signal either way): the marker, then the durable
 * write it holds, if any. Caller holds c->lane_lock. */
static void submit_held(bc_coord_t *c, send_rec_t *rec)
{
    unsigned held = rec->held;
    rec->held = 0;
    if (held & HELD_MARKER)
        submit_marker(c, rec);
    if (held & HELD_SETNX)
        submit_setnx(c, rec);
    else if (held & HELD_RPUSH)
        submit_rpush(c, rec);
}

/* Append rec to its receiver's queue. Caller holds c->lane_lock (submission order = queue
 * order: one reply actor, one connection). */
static void submit_rpush(bc_coord_t *c, send_rec_t *rec)
{
    bc_hub_t *h = c->hub;
    char key[BC_ID_MAX + 40];
    snprintf(key, sizeof key, "blocking:signal-queue:%s", rec->to);
    const char *rp[] = {"RPUSH", key, rec->json};
    size_t rpl[] = {5, strlen(key), rec->len};
    const char *ex[] = {"EXPIRE", key, SIGNAL_TTL};
    bc_redis_cmd(h->redis, c->actor, (uint64_t)(uintptr_t)rec | TAG_RPUSH, BC_REDIS_CLASS_SIGNAL, 3,
                 rp, rpl);
    bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_SIGNAL, 3, ex, NULL);
}

/* Coordinator only. */
static void on_send_reply(bc_coord_t *c, bc_redis_reply_msg_t *m)
{
    bc_hub_t *h = c->hub;
    send_rec_t *rec = (send_rec_t *)(uintptr_t)(m->tag & ~(uint64_t)3);
    unsigned kind = (unsigned)(m->tag & 3);
    bc__lane_t *l = rec->lane;
    bool failed = m->status != BC_REDIS_OK || m->reply->type == BC_REPLY_ERROR;
    char why[160] = "";
    if (kind == TAG_HINT) {
        /* A hint that failed costs only the fast path: the durable copy still goes. */
        if (failed)
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&h->n_redis_errors, 1, memory_order_relaxed);
        pthread_mutex_lock(&c->lane_lock);
        submit_held(c, rec);
        pthread_mutex_unlock(&c->lane_lock);
        return;
    }
    /* The connection dropped (or the command timed out) with the write unanswered: it may or may
     * not have been applied. Sending it again is safe, because a receiver drops a messageId it
     * has consumed (PROTOCOL §2.2). The retry is appended to the queue, so it stays in order:
     * later writes to this receiver are still deferred (behind a SET NX) or were submitted after
     * it on the same connection, and so failed the same way and are retried after it. */
    if ((m->status == BC_REDIS_DISCONNECTED || m->status == BC_REDIS_TIMEOUT) &&
        rec->retries < SEND_RETRIES) {
        rec->retries++;
        bc_log(BC_LOG_WARN, "%s: signal to %s unanswered (%s); sending it again (%u/%u)", c->id,
               rec->to, bc_redis_status_name(m->status), rec->retries, SEND_RETRIES);
        atomic_fetch_add_explicit(&h->n_send_retries, 1, memory_order_relaxed); /* stats */
        pthread_mutex_lock(&c->lane_lock);
        submit_rpush(c, rec); /* still pending, still live */
        if (kind == TAG_SETNX) {
            l->nx_inflight = false;
            while (l->dhead) {
                send_rec_t *d = l->dhead;
                l->dhead = d->next;
                d->next = NULL;
                l->pending++;
                live_add(c, d);
                submit_deferred(c, d);
            }
            l->dtail = NULL;
        }
        pthread_mutex_unlock(&c->lane_lock);
        return;
    }
    if (failed) {
        snprintf(why, sizeof why, "%s%s%s", bc_redis_status_name(m->status), m->reply ? ": " : "",
                 m->reply && m->reply->str ? m->reply->str : "");
        bc_log(BC_LOG_ERROR, "%s: signal to %s not written (%s)", c->id, rec->to, why);
        /* relaxed: statistics. */
        atomic_fetch_add_explicit(&h->n_send_fail, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->n_redis_errors, 1, memory_order_relaxed);
        /* Before the lane is settled: bc_coord_flush returns only after this was seen. */
        emit(c, BC_EV_SEND_FAILED, rec->to, why, NULL);
    }
    pthread_mutex_lock(&c->lane_lock);
    bool keep = false;
    if (kind == TAG_SETNX) {
        l->nx_inflight = false;
        if (!failed && m->reply->type == BC_REPLY_NIL) {
            submit_rpush(c, rec); /* the slot is occupied: queue it (still pending) */
            keep = true;
        } else {
            l->pending--;
        }
        while (l->dhead) { /* the ones that waited go behind it, in order */
            send_rec_t *d = l->dhead;
            l->dhead = d->next;
            d->next = NULL;
            l->pending++;
            live_add(c, d);
            submit_deferred(c, d);
        }
        l->dtail = NULL;
    } else {
        l->pending--;
    }
    if (!keep)
        live_del(c, rec);
    if (lane_idle(l, bc__hub_stamp(h))) {
        bc__lane_t **pp = &c->lanes;
        while (*pp != l)
            pp = &(*pp)->next;
        *pp = l->next;
        lane_free(c, l);
    }
    pthread_mutex_unlock(&c->lane_lock);
    if (!keep)
        free(rec);
}

/* ---------------------------------------------------------------- waits */

/* types: NULL (any) or a non-empty comma-separated list. */
static bool type_matches(const char *types, const char *type)
{
    if (types == NULL)
        return true;
    size_t tl = strlen(type);
    const char *p = types;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == tl && memcmp(p, type, l) == 0)
            return true;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return false;
}

static void finish_wait(bc_coord_t *c, int status, const bc_signal_t *sig)
{
    bc_coord_signal_fn fn = c->wait_fn;
    void *arg = c->wait_arg;
    c->waiting = false;
    c->wait_fn = NULL;
    free(c->wait_types); /* fn may wait again */
    c->wait_types = NULL;
    if (c->wait_timer) {
        bc_timer_cancel(c->wait_timer);
        c->wait_timer = NULL;
    }
    /* relaxed: statistics. */
    atomic_fetch_sub_explicit(&c->hub->n_waiting, 1, memory_order_relaxed);
    if (status != -ECANCELED)
        bc__obs_wait_done(c->hub, c->swarm, status == -ETIMEDOUT,
                          (double)(bc_now_ns() - c->wait_start_ns) / 1e9);
    /* relaxed: reported by the next heartbeat. */
    int st = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (st == BC_STATE_WAITING)
        atomic_store_explicit(&c->state, BC_STATE_RUNNING, memory_order_relaxed);
    fn(c, status, sig, arg);
}

/* Take the first pending signal matching the current wait, if any. */
static bool take_pending(bc_coord_t *c)
{
    bc_msg_t **pp = &c->pend_head, *prev = NULL;
    while (*pp) {
        bc__sig_msg_t *m = (bc__sig_msg_t *)*pp;
        if (type_matches(c->wait_types, m->sig.type)) {
            bc_msg_t *node = *pp;
            *pp = atomic_load_explicit(&node->next, memory_order_relaxed);
            if (c->pend_tail == node)
                c->pend_tail = prev;
            finish_wait(c, 0, &m->sig);
            bc_msg_free(node);
            return true;
        }
        prev = *pp;
        pp = (bc_msg_t **)&(*pp)->next;
    }
    return false;
}

int bc_coord_wait(bc_coord_t *c, const char *types, uint32_t timeout_ms, bc_coord_signal_fn fn,
                  void *arg)
{
    if (c == NULL || fn == NULL || (types && strlen(types) >= WAIT_TYPES_MAX))
        return -EINVAL;
    if (c->waiting)
        return -EBUSY;
    /* relaxed: a flag checked by the coordinator only; set from any thread by bc_coord_stop. */
    if (atomic_load_explicit(&c->stopping, memory_order_relaxed))
        return -ECANCELED;
    /* Most waits take any type: only a list costs memory, and only while waiting. */
    c->wait_types = NULL;
    if (types && types[0] && (c->wait_types = strdup(types)) == NULL)
        return -ENOMEM;
    c->waiting = true;
    c->wait_fn = fn;
    c->wait_arg = arg;
    c->wait_timeout_ms = timeout_ms ? timeout_ms : DEFAULT_WAIT_MS;
    c->wait_start_ns = bc_now_ns();
    /* relaxed: statistics and heartbeat state. */
    atomic_fetch_add_explicit(&c->hub->n_waiting, 1, memory_order_relaxed);
    int st = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (st == BC_STATE_RUNNING)
        atomic_store_explicit(&c->state, BC_STATE_WAITING, memory_order_relaxed);
    if (take_pending(c))
        return 0;
    if (bc_timer_start(c->actor, BC__M_WAIT_TIMER, c->wait_timeout_ms, 0, &c->wait_timer) != 0)
        c->wait_timer = NULL;
    return 0;
}

static void on_wait_timer(bc_coord_t *c, bc_timer_tick_t *t)
{
    if (!c->waiting || t->timer != c->wait_timer)
        return;
    bc_timer_release(c->wait_timer);
    c->wait_timer = NULL;
    char ms[24];
    snprintf(ms, sizeof ms, "%u", c->wait_timeout_ms);
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(&c->hub->n_timeouts, 1, memory_order_relaxed);
    emit(c, BC_EV_TIMEOUT, NULL, ms, NULL);
    finish_wait(c, -ETIMEDOUT, NULL);
}

/* The ACK of a delivered signal (§3.1, §3.2): the per-signal key, the sender's ACK slot and the
 * publish hint on the sender's channel. Written by the coordinator rather than the watcher that
 * consumed the signal, after the continuation the signal resumed: the continuation runs
 * without waiting for the ACK's encoding and commands, and the ACK still leaves in the same
 * write (io.c, direct writes). */
static void write_acks(bc_coord_t *c, const bc_signal_t *s)
{
    bc_hub_t *h = c->hub;
    char ack[1024], slot[1024], sig[65];
    uint64_t ts = bc__hub_stamp(h);
    /* relaxed: an independent counter. */
    uint64_t it = atomic_load_explicit(&c->iteration, memory_order_relaxed);
    int n = bc_ack_encode(h->hmac, c->id, s->message_id, ts, it, s->type, c->phase, ack, sizeof ack,
                          sig);
    int ns = n > 0 ? bc_ack_slot_encode(s->sender, ts, c->id, s->message_id, sig, slot, sizeof slot)
                   : -1;
    if (n < 0 || ns < 0) {
        bc_log(BC_LOG_ERROR, "%s: cannot encode the ACK of %s", c->id, s->message_id);
        return;
    }
    char k1[BC_ID_MAX + BC_SIGID_MAX + 32], k2[BC_ID_MAX + 32], ch[BC_ID_MAX + 32];
    size_t k1l = bc_key(k1, sizeof k1, "blocking:ack:", c->id, s->message_id);
    size_t k2l = bc_key(k2, sizeof k2, "blocking:ack:", s->sender, NULL);
    size_t chl = bc_key(ch, sizeof ch, "blocking:notify:", s->sender, NULL);
    const char *a1[] = {"SETEX", k1, ACK_TTL, ack};
    size_t l1[] = {5, k1l, 4, (size_t)n};
    const char *a2[] = {"SETEX", k2, ACK_TTL, slot};
    size_t l2[] = {5, k2l, 4, (size_t)ns};
    const char *a3[] = {"PUBLISH", ch, ack};
    size_t l3[] = {7, chl, (size_t)n};
    /* On this coordinator's connection (reply_to picks it; only failures are answered, and
     * counted as Redis errors): Redis runs them before any write the continuation queues. */
    bc_redis_cmd(h->redis, c->actor, BC_REDIS_TAG_QUIET, BC_REDIS_CLASS_ACK, 4, a1, l1);
    bc_redis_cmd(h->redis, c->actor, BC_REDIS_TAG_QUIET, BC_REDIS_CLASS_ACK, 4, a2, l2);
    bc_redis_cmd(h->redis, c->actor, BC_REDIS_TAG_QUIET, BC_REDIS_CLASS_ACK, 3, a3, l3);
    bc_redis_urgent(h->redis);
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(&h->n_acks_written, 1, memory_order_relaxed);
}

static void on_blocking_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);

/* The ACK that the continuation running on this thread owes (on_signal), or NULL. */
static _Thread_local struct {
    bc_coord_t *c;
    const bc_signal_t *s;
} tls_ack_due;

void bc__coord_ack_due_flush(void)
{
    if (tls_ack_due.c == NULL)
        return;
    bc_coord_t *c = tls_ack_due.c;
    tls_ack_due.c = NULL;
    write_acks(c, tls_ack_due.s);
}

static void on_signal(bc_coord_t *c, bc_msg_t *msg)
{
    bc__sig_msg_t *m = (bc__sig_msg_t *)msg;
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(&c->signals_received, 1, memory_order_relaxed);
    emit(c, BC_EV_SIGNAL, m->sig.sender, NULL, &m->sig);
    if (m->acked)
        emit(c, BC_EV_ACK_SENT, m->sig.sender, m->sig.message_id, &m->sig);
    if (c->waiting && type_matches(c->wait_types, m->sig.type)) {
        /* The ACK is written before acting on the signal (PROTOCOL §3.1) as far as Redis can
         * tell: the continuation's first write (bc_coord_send, the work API, ...) queues the
         * ACK ahead of itself, and otherwise it is queued once the continuation returns. A
         * blocking wait hands the signal to another thread, which may act at once: its ACK
         * is queued first. */
        if (m->acked && c->wait_fn == on_blocking_signal) {
            write_acks(c, &m->sig);
        } else if (m->acked) {
            tls_ack_due.c = c;
            tls_ack_due.s = &m->sig;
        }
        finish_wait(c, 0, &m->sig);
        bc__coord_ack_due_flush();
        return;
    }
    if (m->acked)
        write_acks(c, &m->sig);
    bc_msg_keep(msg);
    atomic_store_explicit(&msg->next, NULL, memory_order_relaxed); /* owner-only list */
    if (c->pend_tail)
        atomic_store_explicit(&c->pend_tail->next, msg, memory_order_relaxed);
    else
        c->pend_head = msg;
    c->pend_tail = msg;
}

/* ---------------------------------------------------------------- ACK waits */

static void ackwait_post(bc_coord_t *c, bc__ackwait_t *w, uint32_t type)
{
    bc__ackwait_msg_t *m = bc_msg_alloc(sizeof *m + w->n * sizeof m->ids[0], type);
    m->coord = bc__coord_retain(c);
    m->wait_id = w->id;
    m->n = w->n;
    memcpy(m->signal_id, w->signal_id, sizeof m->signal_id);
    memcpy(m->ids, w->ids, w->n * sizeof m->ids[0]);
    if (bc_send(c->hub->watcher, &m->hdr) != 0)
        bc__coord_release(c);
}

static void ackwait_end(bc_coord_t *c, bc__ackwait_t *w, int status)
{
    bc__ackwait_t **pp = &c->ackwaits;
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
    if (w->timer)
        bc_timer_cancel(w->timer);
    if (w->late)
        bc_timer_cancel(w->late);
    if (w->registered)
        ackwait_post(c, w, BC__M_ACKWAIT_END);
    bc_ack_result_t r = {w->signal_id,
                         w->n,
                         w->idv,
                         w->acked,
                         w->n_acked,
                         status,
                         (bc_now_ns() - w->start_ns) / 1000};
    w->fn(c, &r, w->arg);
    free(w->idv);
    free(w->acked);
    free(w->ids);
    free(w);
}

int bc_coord_wait_acks(bc_coord_t *c, const char *signal_id, const char *const *ids, size_t n,
                       uint32_t timeout_ms, bc_coord_acks_fn fn, void *arg)
{
    if (c == NULL || fn == NULL || ids == NULL || n == 0 || !bc_sigid_valid(signal_id))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!bc_id_valid(ids[i]))
            return -EINVAL;
    bc__ackwait_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->ids = calloc(n, sizeof w->ids[0]);
    w->idv = calloc(n, sizeof *w->idv);
    w->acked = calloc(n, 1);
    if (w->ids == NULL || w->idv == NULL || w->acked == NULL) {
        free(w->ids);
        free(w->idv);
        free(w->acked);
        free(w);
        return -ENOMEM;
    }
    w->id = ++c->ackwait_seq;
    w->fn = fn;
    w->arg = arg;
    w->n = n;
    w->start_ns = bc_now_ns();
    snprintf(w->signal_id, sizeof w->signal_id, "%s", signal_id);
    for (size_t i = 0; i < n; i++) {
        snprintf(w->ids[i], sizeof w->ids[i], "%s", ids[i]);
        w->idv[i] = w->ids[i];
    }
    w->next = c->ackwaits;
    c->ackwaits = w;
    if (bc_timer_start(c->actor, BC__M_ACK_LATE, ACK_LATE_MS, 0, &w->late) != 0) {
        w->late = NULL;
        w->registered = true;
        ackwait_post(c, w, BC__M_ACKWAIT);
    }
    if (bc_timer_start(c->actor, BC__M_ACK_TIMER, timeout_ms ? timeout_ms : DEFAULT_ACK_WAIT_MS, 0,
                       &w->timer) != 0)
        w->timer = NULL;
    return 0;
}

static void ack_mark(bc_coord_t *c, bc__ackwait_t *w, const char *acker)
{
    for (size_t i = 0; i < w->n; i++)
        if (!w->acked[i] && strcmp(w->ids[i], acker) == 0) {
            w->acked[i] = 1;
            w->n_acked++;
        }
    if (w->n_acked == w->n)
        ackwait_end(c, w, 0);
}

static void on_ack(bc_coord_t *c, bc__ack_msg_t *a)
{
    if (!a->valid)
        return;
    bc__ackwait_t *w = c->ackwaits, *next;
    for (; w; w = next) {
        next = w->next; /* ack_mark may end (and free) w */
        if (a->wait_id ? w->id == a->wait_id : strcmp(w->signal_id, a->sid) == 0)
            ack_mark(c, w, a->acker);
    }
}

static void on_ack_late(bc_coord_t *c, bc_timer_tick_t *t)
{
    for (bc__ackwait_t *w = c->ackwaits; w; w = w->next)
        if (w->late == t->timer) {
            bc_timer_release(w->late);
            w->late = NULL;
            w->registered = true;
            ackwait_post(c, w, BC__M_ACKWAIT);
            return;
        }
}

static void on_ack_timer(bc_coord_t *c, bc_timer_tick_t *t)
{
    for (bc__ackwait_t *w = c->ackwaits; w; w = w->next)
        if (w->timer == t->timer) {
            bc_timer_release(w->timer);
            w->timer = NULL;
            ackwait_end(c, w, -ETIMEDOUT);
            return;
        }
}

/* ---------------------------------------------------------------- blocking wait */

static bc_signal_t *signal_copy(const bc_signal_t *s)
{
    const char *strs[5] = {s->sender, s->receiver, s->type, s->message_id, s->payload};
    size_t total = sizeof(bc_signal_t);
    for (int i = 0; i < 5; i++)
        total += strs[i] ? strlen(strs[i]) + 1 : 0;
    bc_signal_t *o = malloc(total);
    if (o == NULL)
        abort();
    *o = *s;
    char *p = (char *)(o + 1);
    const char **dst[5] = {&o->sender, &o->receiver, &o->type, &o->message_id, &o->payload};
    for (int i = 0; i < 5; i++) {
        if (strs[i] == NULL) {
            *dst[i] = NULL;
            continue;
        }
        size_t l = strlen(strs[i]) + 1;
        memcpy(p, strs[i], l);
        *dst[i] = p;
        p += l;
    }
    return o;
}

void bc_signal_free(bc_signal_t *s)
{
    free(s);
}

static void waiter_done(bc__waiter_t *w, int rc, const bc_signal_t *s)
{
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->sig = s ? signal_copy(s) : NULL;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void on_blocking_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    waiter_done(arg, status, s);
}

int bc_coord_wait_blocking(bc_coord_t *c, const char *types, uint32_t timeout_ms, bc_signal_t **out)
{
    if (c == NULL || out == NULL || (types && strlen(types) >= 256))
        return -EINVAL;
    if (bc_worker_id() >= 0)
        return -EDEADLK;
    bc__waiter_t w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    snprintf(w.types, sizeof w.types, "%s", types ? types : "");
    w.timeout_ms = timeout_ms;
    blocking_msg_t *m = bc_msg_alloc(sizeof *m, BC__M_BLOCKING_WAIT);
    m->w = &w;
    int rc;
    if (bc_send(c->actor, &m->hdr) != 0) {
        rc = -ECANCELED;
    } else {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        pthread_mutex_unlock(&w.lock);
        rc = w.rc;
        *out = w.sig;
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}

/* ---------------------------------------------------------------- behaviour */

static void on_stopped(bc_coord_t *c)
{
    bc_hub_t *h = c->hub;
    /* relaxed: a flag; the stop itself is ordered by the mailbox. */
    atomic_store_explicit(&c->stopping, 1, memory_order_relaxed);
    if (c->waiting)
        finish_wait(c, -ECANCELED, NULL);
    while (c->ackwaits)
        ackwait_end(c, c->ackwaits, -ECANCELED);
    while (c->pend_head) {
        bc_msg_t *m = c->pend_head;
        c->pend_head = atomic_load_explicit(&m->next, memory_order_relaxed);
        bc_msg_free(m);
    }
    c->pend_tail = NULL;
    bc__reg_msg_t *u = bc_msg_alloc(sizeof *u, BC__M_UNREGISTER);
    u->coord = bc__coord_retain(c);
    if (bc_send(h->watcher, &u->hdr) != 0)
        bc__coord_release(c);
    if (h->opts.heartbeats && !c->send_only) {
        bc__reg_msg_t *r = bc_msg_alloc(sizeof *r, BC__M_HB_REMOVE);
        r->coord = bc__coord_retain(c);
        /* release: the destroyer's acquire load then sees a final write outstanding. */
        atomic_fetch_add_explicit(&h->hb_pending, 1, memory_order_release);
        if (bc_send(h->heartbeat, &r->hdr) != 0) {
            atomic_fetch_sub_explicit(&h->hb_pending, 1, memory_order_release);
            bc__coord_release(c);
        }
    }
    bc__hub_remove(h, c);
    bc__coord_release(c); /* the actor's reference */
}

static void behaviour(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    bc_coord_t *c = state;
    (void)self;
    switch (msg->type) {
    case BC__M_READY:
        emit(c, BC_EV_READY, NULL, NULL, NULL);
        if (c->on_start)
            c->on_start(c, c->arg);
        break;
    case BC__M_SIGNAL:
        on_signal(c, msg);
        break;
    case BC__M_EVENT: {
        bc__event_msg_t *e = (bc__event_msg_t *)msg;
        emit(c, e->type, e->peer[0] ? e->peer : NULL, e->detail[0] ? e->detail : NULL, NULL);
        break;
    }
    case BC__M_ACK:
        on_ack(c, (bc__ack_msg_t *)msg);
        break;
    case BC__M_WAIT_TIMER:
        on_wait_timer(c, (bc_timer_tick_t *)msg);
        break;
    case BC__M_ACK_TIMER:
        on_ack_timer(c, (bc_timer_tick_t *)msg);
        break;
    case BC__M_ACK_LATE:
        on_ack_late(c, (bc_timer_tick_t *)msg);
        break;
    case BC__M_POST: {
        post_msg_t *p = (post_msg_t *)msg;
        p->fn(c, p->arg);
        break;
    }
    case BC__M_BLOCKING_WAIT: {
        bc__waiter_t *w = ((blocking_msg_t *)msg)->w;
        int rc =
            c->waiting ? -EBUSY : bc_coord_wait(c, w->types, w->timeout_ms, on_blocking_signal, w);
        if (rc != 0)
            waiter_done(w, rc, NULL);
        break;
    }
    case BC_MSG_REDIS_REPLY: {
        bc_redis_reply_msg_t *m = (bc_redis_reply_msg_t *)msg;
        if (m->tag && m->tag != BC_REDIS_TAG_QUIET)
            on_send_reply(c, m);
        else if (m->status != BC_REDIS_OK || bc_reply_is_error(m->reply))
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&c->hub->n_redis_errors, 1, memory_order_relaxed);
        break;
    }
    case BC_MSG_STOPPED:
        on_stopped(c);
        break;
    default:
        break;
    }
}

int bc_coord_spawn(bc_hub_t *h, const bc_coord_opts_t *o, bc_coord_t **out, char *err,
                   size_t errlen)
{
    char why[160];
    bc__coord_ack_due_flush();
    if (h == NULL || o == NULL) {
        bc__seterr(err, errlen, "bc_coord_spawn: NULL argument");
        return -EINVAL;
    }
    if (!bc_id_valid(o->id)) {
        bc__seterr(err, errlen, "%s", bc_id_explain("coordinator id", o->id, why, sizeof why));
        return -EINVAL;
    }
    if (o->swarm_id && !bc_id_valid(o->swarm_id)) {
        bc__seterr(err, errlen, "%s", bc_id_explain("swarm id", o->swarm_id, why, sizeof why));
        return -EINVAL;
    }
    if (o->phase && strlen(o->phase) > 128) {
        bc__seterr(err, errlen, "phase is %zu bytes (max 128)", strlen(o->phase));
        return -EINVAL;
    }
    /* The swarm id and the phase live behind the struct: one allocation, no unused bytes. */
    size_t sl = o->swarm_id ? strlen(o->swarm_id) + 1 : 0, pl = o->phase ? strlen(o->phase) + 1 : 0;
    bc_coord_t *c = calloc(1, sizeof *c + sl + pl);
    if (c == NULL)
        return -ENOMEM;
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->lane_lock, NULL);
    c->hub = h;
    c->id_len = (uint8_t)strlen(o->id);
    memcpy(c->id, o->id, c->id_len + 1u);
    c->swarm = sl ? memcpy(c->strs, o->swarm_id, sl) : "";
    c->phase = pl ? memcpy(c->strs + sl, o->phase, pl) : NULL;
    c->on_start = o->on_start;
    c->on_event = o->on_event;
    c->arg = o->arg;
    c->send_only = o->send_only != 0;
    atomic_init(&c->iteration, o->iteration);
    atomic_init(&c->state, BC_STATE_RUNNING);
    int rc = bc__hub_insert(h, c);
    if (rc != 0) {
        bc__seterr(err, errlen,
                   rc == -EEXIST ? "coordinator id \"%s\" is already hosted by this process"
                                 : "hub is shutting down (coordinator \"%s\")",
                   c->id);
        pthread_mutex_destroy(&c->lane_lock);
        free(c);
        return rc;
    }
    c->actor = bc_spawn(h->rt, behaviour, c);
    if (c->actor == NULL) {
        bc__seterr(err, errlen, "runtime is shutting down");
        bc__hub_remove(h, c);
        bc__coord_release(c);
        return -ESHUTDOWN;
    }
    bc__coord_retain(c); /* the actor's reference, dropped at BC_MSG_STOPPED */
    if (h->opts.heartbeats && !c->send_only) {
        bc__reg_msg_t *hb = bc_msg_alloc(sizeof *hb, BC__M_HB_ADD);
        hb->coord = bc__coord_retain(c);
        if (bc_send(h->heartbeat, &hb->hdr) != 0)
            bc__coord_release(c);
    }
    bc__reg_msg_t *reg = bc_msg_alloc(sizeof *reg, BC__M_REGISTER);
    reg->coord = bc__coord_retain(c);
    if (bc_send(h->watcher, &reg->hdr) != 0)
        bc__coord_release(c);
    atomic_fetch_add_explicit(&h->n_spawns, 1, memory_order_relaxed); /* relaxed: statistics */
    if (out)
        *out = c;
    else
        bc__coord_release(c);
    return 0;
}

int bc_coord_post(bc_coord_t *c, void (*fn)(bc_coord_t *c, void *arg), void *arg)
{
    bc__coord_ack_due_flush(); /* whatever fn does comes after the ACK */
    if (c == NULL || fn == NULL)
        return -EINVAL;
    post_msg_t *m = bc_msg_alloc(sizeof *m, BC__M_POST);
    m->fn = fn;
    m->arg = arg;
    return bc_send(c->actor, &m->hdr) == 0 ? 0 : -ESRCH;
}

int bc_coord_stop(bc_coord_t *c)
{
    bc__coord_ack_due_flush();
    if (c == NULL)
        return -EINVAL;
    /* relaxed: the flag only short-circuits new waits; the stop message orders the rest. */
    atomic_store_explicit(&c->stopping, 1, memory_order_relaxed);
    return bc_stop(c->actor);
}

/* ---------------------------------------------------------------- payload helpers */

static json_t *payload_member(const bc_signal_t *s, const char *member, json_t **root)
{
    *root = NULL;
    if (s == NULL || s->payload == NULL || member == NULL)
        return NULL;
    *root = json_loads(s->payload, 0, NULL);
    return *root ? json_object_get(*root, member) : NULL;
}

double bc_signal_num(const bc_signal_t *s, const char *member, double dflt)
{
    json_t *root, *v = payload_member(s, member, &root);
    double d = v && json_is_number(v) ? json_number_value(v) : dflt;
    json_decref(root);
    return d;
}

const char *bc_signal_str(const bc_signal_t *s, const char *member, char *buf, size_t len)
{
    json_t *root, *v = payload_member(s, member, &root);
    const char *r = NULL;
    if (v && json_is_string(v) && buf && len) {
        snprintf(buf, len, "%s", json_string_value(v));
        r = buf;
    }
    json_decref(root);
    return r;
}

/* ---------------------------------------------------------------- operator actions */

int bc__coord_force_unblock(bc_coord_t *c)
{
    if (!c->waiting)
        return 0;
    finish_wait(c, -EINTR, NULL);
    return 1;
}
