/* watcher.c - the signal-watcher actor: one per hub, for all of its coordinators.
 *
 * It turns Redis events into coordinator wake-ups: keyspace events on the slots, queues and
 * ACK keys of hosted coordinators, native publish hints that carry the signal or ACK itself
 * (the fast path: one Redis hop), and, where CONFIG is refused, a batched poll. It consumes
 * signals atomically (GETDEL, LPOP), verifies them, drops replays, and verifies incoming ACKs.
 * The ACK of a delivered signal is written by its coordinator (coord.c, write_acks), after the
 * continuation the signal resumed and before any Redis write of that continuation.
 *
 * Key decision: every signal is "claimed" in a time-bounded in-memory set keyed by (receiver,
 * messageId) by whichever path sees it first: the publish hint or the durable copy. The other
 * path then only consumes. Durable copies not claimed yet go through the Redis consumed marker
 * (SET NX), so a replayed slot write is dropped even across processes.
 */
#include "hub.h"
#include "obs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAST_PATH_WINDOW_MS 30000u
#define SEEN_HORIZON_MS 60000u
#define LPOP_COUNT "256"
#define MARKER_TTL "86400"
#define MGET_BATCH 512
#define REG_BATCH 170   /* coordinators per subscription request: 510 channels, one SUBSCRIBE */
#define DRAINS_MAX 1024 /* drain rounds in flight before first reads and re-reads queue up */

/* Reply tags: low 3 bits = kind, the rest a pointer (8-byte aligned). */
enum {
    T_DRAIN_SLOT = 1, /* GETDEL slot: ptr = coord */
    T_DRAIN_QUEUE,    /* LPOP queue: ptr = coord */
    T_MARKER,         /* SET consumed NX: ptr = pending delivery */
    T_ACK_GET,        /* GET per-signal ACK: ptr = ack_get_t */
    T_CONFIG,         /* CONFIG GET / SET: ptr = NULL, low bits only */
    T_MGET,           /* MGET slots: ptr = mget_t */
};
#define TAG(kind, ptr) ((uint64_t)(uintptr_t)(ptr) | (uint64_t)(kind))
#define TAG_KIND(t) ((unsigned)((t)&7u))
#define TAG_PTR(t) ((void *)(uintptr_t)((t) & ~(uint64_t)7u))
#define CONFIG_GET_TAG 8u /* T_CONFIG with a fake pointer: distinguishes GET from SET */
#define CONFIG_SET_TAG 16u

/* One pending ACK expectation: coordinator `coord` wait `wait_id` wants (acker, sid). */
typedef struct expect_s expect_t;
struct expect_s {
    expect_t *next;
    uint64_t key; /* bc_seen_key(acker, sid) */
    bc_coord_t *coord;
    uint64_t wait_id;
    char acker[BC_ID_MAX + 1];
    char sid[BC_SIGID_MAX + 1];
};

typedef struct {
    bc_coord_t *coord; /* counted */
    char acker[BC_ID_MAX + 1];
    char sid[BC_SIGID_MAX + 1];
} ack_get_t;

/* A signal on its way to a coordinator. Deliveries to one coordinator leave in arrival order:
 * one whose consumed-marker check is still out holds back those behind it. */
typedef struct pending_s pending_t;
struct pending_s {
    pending_t *next;
    bc_coord_t *coord; /* counted */
    bc_sig_fields_t f;
    int state; /* P_WAIT (marker check out), P_READY, P_DROP */
    bool fast;
};
enum { P_WAIT = 0, P_READY, P_DROP };

typedef struct {
    size_t n;
    bc_coord_t *coords[MGET_BATCH]; /* counted */
} mget_t;

/* Coordinators whose channels one bc_redis_subscribe_sync made live (the SYNC's tag). */
typedef struct {
    size_t n;
    bc_coord_t *coords[REG_BATCH]; /* counted */
} regbatch_t;

/* A FIFO of counted coordinator references. */
typedef struct {
    bc_coord_t **v;
    size_t head, len, cap;
} ring_t;

typedef struct {
    bc_hub_t *h;
    bc_actor_t *self;
    bc_seen_t *claimed; /* (receiver, messageId) delivered or being delivered */
    bc_seen_t *acks;    /* (acker, sid) verified ACKs */
    bc_seen_t *durable; /* (receiver, messageId) whose durable copy was consumed */
    expect_t **exp;     /* chained hash of expectations */
    size_t exp_cap, exp_count;
    bc_coord_t *flush_head; /* doorbells to re-read, counted */
    bool flush_queued;
    ring_t reg;    /* registered, channels not yet requested (each flush requests them) */
    ring_t reread; /* first reads and post-reconnect re-reads waiting for a drain slot */
    size_t drains; /* drain rounds in flight */
    bc_timer_t *poll;
} watcher_t;

static void count(_Atomic uint64_t *c)
{
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void ring_push(ring_t *r, bc_coord_t *c)
{
    if (r->len == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        bc_coord_t **v = malloc(ncap * sizeof *v);
        if (v == NULL)
            abort();
        for (size_t i = 0; i < r->len; i++)
            v[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = v;
        r->cap = ncap;
        r->head = 0;
    }
    r->v[(r->head + r->len++) % r->cap] = c;
}

/* The oldest entry (its reference passes to the caller), or NULL. An emptied ring frees its
 * array: a spawn or reconnect of 100,000 coordinators does not keep it. */
static bc_coord_t *ring_pop(ring_t *r)
{
    if (r->len == 0)
        return NULL;
    bc_coord_t *c = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    if (--r->len == 0) {
        free(r->v);
        r->v = NULL;
        r->head = r->cap = 0;
    }
    return c;
}

/* Copy the string member `"name":"..."` of compact JSON into out (no escapes allowed). Used
 * only to pick a key or skip a known copy cheaply: anything it accepts is still verified by a
 * full parse before it can wake anyone. Returns 1 if found and it fits. */
static int quick_str(const char *json, size_t len, const char *pat, size_t plen, char *out,
                     size_t outlen)
{
    const char *p = memmem(json, len, pat, plen);
    if (p == NULL)
        return 0;
    p += plen;
    const char *end = json + len;
    size_t n = 0;
    while (p < end && *p != '"' && *p != '\\' && n + 1 < outlen)
        out[n++] = *p++;
    if (p >= end || *p != '"')
        return 0;
    out[n] = '\0';
    return n > 0;
}

/* The durable copy of a signal delivered from its hint was consumed. */
static void owed_paid(bc_hub_t *h)
{
    /* release: pairs with bc_hub_destroy's acquire load. */
    atomic_fetch_sub_explicit(&h->n_owed, 1, memory_order_release);
}

static int mode(const bc_hub_t *h)
{
    /* acquire: pairs with bc__hub_set_mode. */
    return atomic_load_explicit(&((bc_hub_t *)h)->mode, memory_order_acquire);
}

static void cmd(watcher_t *w, uint64_t tag, bc_redis_class_t cls, int argc, const char *const *argv,
                const size_t *lens)
{
    bc_redis_cmd(w->h->redis, tag ? w->self : NULL, tag, cls, argc, argv, lens);
}

static void send_event(bc_coord_t *c, bc_coord_event_type_t type, const char *peer,
                       const char *detail)
{
    if (c->on_event == NULL)
        return;
    bc__event_msg_t *e = bc_msg_alloc(sizeof *e, BC__M_EVENT);
    e->type = type;
    snprintf(e->peer, sizeof e->peer, "%s", peer ? peer : "");
    snprintf(e->detail, sizeof e->detail, "%s", detail ? detail : "");
    bc_send(c->actor, &e->hdr);
}

/* ---------------------------------------------------------------- expectations */

static size_t exp_slot(watcher_t *w, uint64_t key)
{
    return (size_t)(key * 0x9e3779b97f4a7c15ull >> 20) & (w->exp_cap - 1);
}

static void exp_add(watcher_t *w, bc_coord_t *c, uint64_t wait_id, const char *acker,
                    const char *sid)
{
    if (w->exp_count + 1 > w->exp_cap) {
        size_t ncap = w->exp_cap * 2;
        expect_t **n = calloc(ncap, sizeof *n);
        if (n == NULL)
            abort();
        size_t ocap = w->exp_cap;
        expect_t **o = w->exp;
        w->exp = n;
        w->exp_cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            while (o[i]) {
                expect_t *e = o[i];
                o[i] = e->next;
                size_t s = exp_slot(w, e->key);
                e->next = w->exp[s];
                w->exp[s] = e;
            }
        free(o);
    }
    expect_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        abort();
    snprintf(e->acker, sizeof e->acker, "%s", acker);
    snprintf(e->sid, sizeof e->sid, "%s", sid);
    e->key = bc_seen_key(acker, strlen(acker), sid, strlen(sid));
    e->coord = bc__coord_retain(c);
    e->wait_id = wait_id;
    size_t s = exp_slot(w, e->key);
    e->next = w->exp[s];
    w->exp[s] = e;
    w->exp_count++;
}

static bool exp_match(const expect_t *e, uint64_t key, const char *acker, const char *sid)
{
    return e->key == key && strcmp(e->acker, acker) == 0 && strcmp(e->sid, sid) == 0;
}

static bool exp_any(watcher_t *w, const char *acker, const char *sid)
{
    uint64_t key = bc_seen_key(acker, strlen(acker), sid, strlen(sid));
    for (expect_t *e = w->exp[exp_slot(w, key)]; e; e = e->next)
        if (exp_match(e, key, acker, sid))
            return true;
    return false;
}

/* Remove the expectations of one wait; returns how many (acker, sid) pairs became unwatched. */
static void exp_remove_wait(watcher_t *w, const bc__ackwait_msg_t *m)
{
    const char *chans[64];
    char buf[64][BC_ID_MAX + BC_SIGID_MAX + 64];
    size_t nch = 0;
    for (size_t i = 0; i < m->n; i++) {
        uint64_t key =
            bc_seen_key(m->ids[i], strlen(m->ids[i]), m->signal_id, strlen(m->signal_id));
        expect_t **pp = &w->exp[exp_slot(w, key)];
        while (*pp) {
            expect_t *e = *pp;
            if (e->coord == m->coord && e->wait_id == m->wait_id &&
                exp_match(e, key, m->ids[i], m->signal_id)) {
                *pp = e->next;
                bc__coord_release(e->coord);
                free(e);
                w->exp_count--;
            } else {
                pp = &e->next;
            }
        }
        if (!exp_any(w, m->ids[i], m->signal_id)) {
            snprintf(buf[nch], sizeof buf[nch], "%sblocking:ack:%s:%s", w->h->ks_prefix, m->ids[i],
                     m->signal_id);
            chans[nch] = buf[nch];
            if (++nch == 64) {
                bc_redis_unsubscribe(w->h->redis, chans, nch);
                nch = 0;
            }
        }
    }
    if (nch)
        bc_redis_unsubscribe(w->h->redis, chans, nch);
}

/* A valid ACK (acker, sid) arrived: tell every waiting coordinator. */
static void ack_resolved(watcher_t *w, const char *acker, const char *sid)
{
    uint64_t key = bc_seen_key(acker, strlen(acker), sid, strlen(sid));
    for (expect_t *e = w->exp[exp_slot(w, key)]; e; e = e->next) {
        if (!exp_match(e, key, acker, sid))
            continue;
        bc__ack_msg_t *a = bc_msg_alloc(sizeof *a, BC__M_ACK);
        a->wait_id = e->wait_id;
        a->valid = 1;
        snprintf(a->acker, sizeof a->acker, "%s", acker);
        snprintf(a->sid, sizeof a->sid, "%s", sid);
        a->why[0] = '\0';
        bc_send(e->coord->actor, &a->hdr);
    }
}

static void ack_invalid(watcher_t *w, bc_coord_t *to, const char *acker, const char *sid,
                        const char *why)
{
    bc_hub_t *h = w->h;
    count(&h->n_acks_bad);
    bc_log(BC_LOG_WARN, "ACK from %s for %s ignored: %s", acker, sid, why);
    uint64_t key = bc_seen_key(acker, strlen(acker), sid, strlen(sid));
    bool told = false;
    for (expect_t *e = w->exp[exp_slot(w, key)]; e; e = e->next)
        if (exp_match(e, key, acker, sid)) {
            send_event(e->coord, BC_EV_ACK_INVALID, acker, why);
            told |= e->coord == to;
        }
    if (to && !told)
        send_event(to, BC_EV_ACK_INVALID, acker, why);
}

/* Handle an ACK value for (acker, sid), read from its per-signal key or a publish hint.
 * `to` is the coordinator it is addressed to (for the log lines), or NULL. */
static void ack_value(watcher_t *w, bc_coord_t *to, const char *acker, const char *sid,
                      const char *json, size_t len)
{
    bc_hub_t *h = w->h;
    const char *why = NULL;
    uint64_t key = bc_seen_key(acker, strlen(acker), sid, strlen(sid));
    if (bc_seen_has(w->acks, key))
        return; /* a valid ACK for this pair was already seen and reported */
    if (bc_ack_verify(h->hmac, json, len, acker, sid, NULL, &why) != 0) {
        ack_invalid(w, to, acker, sid, why);
        return;
    }
    bc_seen_add(w->acks, key, bc_now_ms());
    count(&h->n_acks_ok);
    if (to) {
        /* The ACK names its addressee: resolve its waits directly. */
        bc__ack_msg_t *a = bc_msg_alloc(sizeof *a, BC__M_ACK);
        a->wait_id = 0;
        a->valid = 1;
        snprintf(a->acker, sizeof a->acker, "%s", acker);
        snprintf(a->sid, sizeof a->sid, "%s", sid);
        a->why[0] = '\0';
        bc_send(to->actor, &a->hdr);
        send_event(to, BC_EV_ACK_RECEIVED, acker, sid);
        send_event(to, BC_EV_ACK_VERIFIED, acker, sid);
    } else { /* read from its key for a waiter: the waiters are the ones it is for */
        for (expect_t *e = w->exp[exp_slot(w, key)]; e; e = e->next) {
            if (!exp_match(e, key, acker, sid))
                continue;
            bool dup = false;
            for (expect_t *f = w->exp[exp_slot(w, key)]; f != e; f = f->next)
                dup |= exp_match(f, key, acker, sid) && f->coord == e->coord;
            if (!dup) {
                send_event(e->coord, BC_EV_ACK_RECEIVED, acker, sid);
                send_event(e->coord, BC_EV_ACK_VERIFIED, acker, sid);
            }
        }
    }
    ack_resolved(w, acker, sid);
}

static void ack_get(watcher_t *w, bc_coord_t *to, const char *acker, const char *sid)
{
    ack_get_t *g = malloc(sizeof *g);
    if (g == NULL)
        abort();
    g->coord = to ? bc__coord_retain(to) : NULL;
    snprintf(g->acker, sizeof g->acker, "%s", acker);
    snprintf(g->sid, sizeof g->sid, "%s", sid);
    char key[BC_ID_MAX + BC_SIGID_MAX + 32];
    snprintf(key, sizeof key, "blocking:ack:%s:%s", acker, sid);
    const char *argv[] = {"GET", key};
    cmd(w, TAG(T_ACK_GET, g), BC_REDIS_CLASS_ACK, 2, argv, NULL);
}

static void on_ack_get(watcher_t *w, ack_get_t *g, const bc_redis_reply_msg_t *m)
{
    if (m->status == BC_REDIS_OK && m->reply->type == BC_REPLY_STRING)
        ack_value(w, g->coord, g->acker, g->sid, m->reply->str, m->reply->len);
    else if (m->status != BC_REDIS_OK || m->reply->type == BC_REPLY_ERROR)
        count(&w->h->n_redis_errors);
    bc__coord_release(g->coord);
    free(g);
}

/* ---------------------------------------------------------------- delivering */

static void requeue(watcher_t *w, bc_coord_t *c, const bc_sig_fields_t *f);
static void enqueue(bc_coord_t *c, pending_t *p);
static void flush_deliveries(watcher_t *w, bc_coord_t *c);
static void drain(watcher_t *w, bc_coord_t *c);
static void pump_rereads(watcher_t *w);

/* Accepted and claimed: wake the coordinator, which writes the ACK once its continuation has
 * run (coord.c, write_acks), so the ACK's encoding and commands are not on the wake's path. */
static void deliver(watcher_t *w, bc_coord_t *c, bc_sig_fields_t *f, bool fast)
{
    bc_hub_t *h = w->h;
    size_t ls = strlen(f->sender) + 1, lr = strlen(f->receiver) + 1, lt = strlen(f->type) + 1,
           lm = strlen(f->message_id) + 1, lp = f->payload ? strlen(f->payload) + 1 : 0;
    bc__sig_msg_t *m = bc_msg_alloc(sizeof *m + ls + lr + lt + lm + lp, BC__M_SIGNAL);
    char *p = m->data;
    memcpy(p, f->sender, ls);
    m->sig.sender = p;
    p += ls;
    memcpy(p, f->receiver, lr);
    m->sig.receiver = p;
    p += lr;
    memcpy(p, f->type, lt);
    m->sig.type = p;
    p += lt;
    memcpy(p, f->message_id, lm);
    m->sig.message_id = p;
    p += lm;
    if (lp) {
        memcpy(p, f->payload, lp);
        m->sig.payload = p;
    } else {
        m->sig.payload = NULL;
    }
    m->sig.timestamp_ms = f->timestamp;
    m->sig.iteration = f->iteration;
    m->sig.verified = f->signature == BC_SIG_VALID;
    int64_t lat = (int64_t)bc_redis_now_ms(h->redis) - (int64_t)f->timestamp;
    m->sig.latency_s = (double)lat / 1000.0;
    bc__obs_signal_latency(h, f->type, m->sig.latency_s);
    m->acked = true;
    /* Counted before the hand-over, so a reader that has seen the coordinator act on the signal
     * also sees it counted; taken back if the coordinator stopped meanwhile. */
    count(&h->n_delivered);
    if (fast)
        count(&h->n_fast);
    if (bc_send(c->actor, &m->hdr) != 0) {
        /* relaxed: statistics. */
        atomic_fetch_sub_explicit(&h->n_delivered, 1, memory_order_relaxed);
        if (fast)
            atomic_fetch_sub_explicit(&h->n_fast, 1, memory_order_relaxed);
        requeue(w, c, f);
    }
}

/* The coordinator stopped between consuming and delivering: give the signal back. */
static void requeue(watcher_t *w, bc_coord_t *c, const bc_sig_fields_t *f)
{
    char json[8192], err[128];
    int n = bc_sig_encode(w->h->hmac, f->timestamp, f->sender, f->receiver, f->iteration, f->type,
                          f->payload, json, sizeof json, NULL, err, sizeof err);
    bc_log(BC_LOG_WARN, "%s stopped before signal %s was delivered; returned to its queue", c->id,
           f->message_id);
    if (n < 0)
        return;
    char key[BC_ID_MAX + 40];
    snprintf(key, sizeof key, "blocking:signal-queue:%s", c->id);
    const char *argv[] = {"LPUSH", key, json};
    size_t lens[] = {5, strlen(key), (size_t)n};
    cmd(w, 0, BC_REDIS_CLASS_SIGNAL, 3, argv, lens);
}

static void reject(watcher_t *w, bc_coord_t *c, int code, const char *why, const char *json,
                   size_t len)
{
    bc_hub_t *h = w->h;
    count(code == BC_REJ_SIGNATURE  ? &h->n_rej_sig
          : code == BC_REJ_UNSIGNED ? &h->n_rej_unsigned
                                    : &h->n_rej_malformed);
    bc_log(BC_LOG_WARN, "%s: signal rejected: %s (%.*s)", c->id, why, (int)(len > 200 ? 200 : len),
           json);
    send_event(c, BC_EV_REJECTED, NULL, why);
}

/* A durable copy (slot or queue), already removed from Redis. */
static void durable_value(watcher_t *w, bc_coord_t *c, const char *json, size_t len)
{
    bc_hub_t *h = w->h;
    const char *why = NULL;
    char qmid[BC_SIGID_MAX + 1];
    if (quick_str(json, len, "\"messageId\":\"", 13, qmid, sizeof qmid) && bc_sigid_valid(qmid)) {
        /* The durable copy of a signal the publish hint already delivered: consume it without
         * parsing it again. */
        uint64_t k = bc_seen_key(c->id, c->id_len, qmid, strlen(qmid));
        if (bc_seen_has(w->claimed, k) && !bc_seen_has(w->durable, k)) {
            bc_seen_add(w->durable, k, bc_now_ms());
            count(&h->n_durable);
            owed_paid(h);
            return;
        }
    }
    pending_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    int rc = bc_sig_decode(h->hmac, json, len, c->id, h->opts.require_signature, &p->f, &why);
    if (rc != 0) {
        reject(w, c, rc, why, json, len);
        free(p);
        return;
    }
    count(&h->n_durable);
    uint64_t key = bc_seen_key(c->id, c->id_len, p->f.message_id, strlen(p->f.message_id));
    if (!bc_seen_add(w->durable, key, bc_now_ms())) {
        /* Its durable copy was consumed before: a replayed write. */
        count(&h->n_replays);
        bc_log(BC_LOG_WARN, "%s: signal %s dropped: already consumed (replay)", c->id,
               p->f.message_id);
        send_event(c, BC_EV_REJECTED, p->f.sender, "replay");
        bc_sig_fields_clear(&p->f);
        free(p);
        return;
    }
    if (!bc_seen_add(w->claimed, key, bc_now_ms())) {
        owed_paid(h);
        bc_sig_fields_clear(&p->f); /* the copy of a signal already delivered */
        free(p);
        return;
    }
    p->coord = bc__coord_retain(c);
    p->state = P_WAIT;
    enqueue(c, p);
    char mk[BC_ID_MAX + BC_SIGID_MAX + 32];
    bc_key(mk, sizeof mk, "blocking:consumed:", c->id, p->f.message_id);
    const char *argv[] = {"SET", mk, "1", "NX", "EX", MARKER_TTL};
    cmd(w, TAG(T_MARKER, p), BC_REDIS_CLASS_SIGNAL, 6, argv, NULL);
}

static void enqueue(bc_coord_t *c, pending_t *p)
{
    p->next = NULL;
    if (c->w_dq_tail)
        ((pending_t *)c->w_dq_tail)->next = p;
    else
        c->w_dq_head = p;
    c->w_dq_tail = p;
}

/* Deliver from the head of c's queue while nothing ahead waits for Redis. */
static void flush_deliveries(watcher_t *w, bc_coord_t *c)
{
    pending_t *p;
    while ((p = c->w_dq_head) != NULL && p->state != P_WAIT) {
        c->w_dq_head = p->next;
        if (c->w_dq_head == NULL)
            c->w_dq_tail = NULL;
        if (p->state == P_READY)
            deliver(w, c, &p->f, p->fast);
        bc_sig_fields_clear(&p->f);
        bc__coord_release(p->coord);
        free(p);
    }
}

static void on_marker(watcher_t *w, pending_t *p, const bc_redis_reply_msg_t *m)
{
    bc_hub_t *h = w->h;
    if (m->status == BC_REDIS_OK && m->reply->type == BC_REPLY_NIL) {
        count(&h->n_replays);
        bc_log(BC_LOG_WARN, "%s: signal %s dropped: already consumed (replay)", p->coord->id,
               p->f.message_id);
        send_event(p->coord, BC_EV_REJECTED, p->f.sender, "replay");
        p->state = P_DROP;
    } else {
        if (m->status != BC_REDIS_OK || m->reply->type == BC_REPLY_ERROR)
            count(&h->n_redis_errors); /* consumed already: deliver rather than lose it */
        p->state = P_READY;
    }
    flush_deliveries(w, p->coord);
}

/* A publish hint on blocking:notify:<id>: a signal or an ACK, carried whole. */
static void notify_value(watcher_t *w, bc_coord_t *c, const char *json, size_t len)
{
    bc_hub_t *h = w->h;
    char acker[BC_ID_MAX + 1], sid[BC_SIGID_MAX + 1];
    if (memmem(json, len, "\"signalId\"", 10)) {
        /* An ACK: its own members name the key it stands for; bc_ack_verify checks them. */
        if (quick_str(json, len, "\"coordinatorId\":\"", 17, acker, sizeof acker) &&
            quick_str(json, len, "\"signalId\":\"", 12, sid, sizeof sid) && bc_id_valid(acker) &&
            bc_sigid_valid(sid)) {
            ack_value(w, c, acker, sid, json, len);
        }
        return;
    }
    bc_sig_fields_t f;
    const char *why = NULL;
    if (c->send_only || !h->opts.fast_path)
        return; /* signals for this id belong to whoever hosts it / durable path only */
    if (bc_sig_decode(h->hmac, json, len, c->id, h->opts.require_signature, &f, &why) != 0)
        return; /* a hint only: the durable copy is judged (and counted) when consumed */
    int64_t age = (int64_t)bc_redis_now_ms(h->redis) - (int64_t)f.timestamp;
    if (age > (int64_t)FAST_PATH_WINDOW_MS || age < -(int64_t)FAST_PATH_WINDOW_MS) {
        bc_sig_fields_clear(&f);
        return;
    }
    uint64_t key = bc_seen_key(c->id, c->id_len, f.message_id, strlen(f.message_id));
    if (!bc_seen_add(w->claimed, key, bc_now_ms())) {
        bc_sig_fields_clear(&f);
        return;
    }
    /* release: pairs with bc_hub_destroy's acquire load. */
    atomic_fetch_add_explicit(&h->n_owed, 1, memory_order_release);
    char mk[BC_ID_MAX + BC_SIGID_MAX + 32];
    bc_key(mk, sizeof mk, "blocking:consumed:", c->id, f.message_id);
    const char *argv[] = {"SET", mk, "1", "NX", "EX", MARKER_TTL};
    cmd(w, 0, BC_REDIS_CLASS_SIGNAL, 6, argv, NULL);
    pending_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    p->f = f; /* moves the payload */
    p->coord = bc__coord_retain(c);
    p->state = P_READY;
    p->fast = true;
    enqueue(c, p);
    flush_deliveries(w, c);
}

/* ---------------------------------------------------------------- draining */

static void drain(watcher_t *w, bc_coord_t *c)
{
    if (c->send_only)
        return;
    if (c->w_draining) {
        c->w_redrain = true;
        return;
    }
    c->w_draining = true;
    w->drains++;
    char k1[BC_ID_MAX + 32], k2[BC_ID_MAX + 40];
    bc_key(k1, sizeof k1, "blocking:signal:", c->id, NULL);
    bc_key(k2, sizeof k2, "blocking:signal-queue:", c->id, NULL);
    const char *a1[] = {"GETDEL", k1};
    const char *a2[] = {"LPOP", k2, LPOP_COUNT};
    /* Two references: one per reply. */
    cmd(w, TAG(T_DRAIN_SLOT, bc__coord_retain(c)), BC_REDIS_CLASS_SIGNAL, 2, a1, NULL);
    cmd(w, TAG(T_DRAIN_QUEUE, bc__coord_retain(c)), BC_REDIS_CLASS_SIGNAL, 3, a2, NULL);
}

typedef struct {
    const char *json;
    size_t len;
    uint64_t ts;
} item_t;

static uint64_t quick_ts(const char *json, size_t len)
{
    const char *p = memmem(json, len, "\"timestamp\"", 11);
    if (p == NULL)
        return 0;
    p += 11;
    while (p < json + len && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    uint64_t v = 0;
    while (p < json + len && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

static int item_cmp(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x < y ? -1 : 1; /* stable: keep slot-then-queue order */
}

/* Both halves of a drain are in: deliver the batch in timestamp order. */
static void drain_done(watcher_t *w, bc_coord_t *c, bc_reply_t *slot, const bc_reply_t *queue)
{
    size_t n = (slot && slot->type == BC_REPLY_STRING ? 1 : 0) +
               (queue && queue->type == BC_REPLY_ARRAY ? queue->elements : 0);
    if (n) {
        item_t *items = malloc(n * sizeof *items);
        if (items == NULL)
            abort();
        size_t k = 0;
        if (slot && slot->type == BC_REPLY_STRING)
            items[k++] = (item_t){slot->str, slot->len, quick_ts(slot->str, slot->len)};
        if (queue && queue->type == BC_REPLY_ARRAY)
            for (size_t i = 0; i < queue->elements; i++)
                if (queue->element[i]->type == BC_REPLY_STRING)
                    items[k++] = (item_t){queue->element[i]->str, queue->element[i]->len,
                                          quick_ts(queue->element[i]->str, queue->element[i]->len)};
        qsort(items, k, sizeof *items, item_cmp);
        for (size_t i = 0; i < k; i++)
            durable_value(w, c, items[i].json, items[i].len);
        free(items);
    }
    bool more = queue && queue->type == BC_REPLY_ARRAY && queue->elements >= 256;
    c->w_draining = false;
    if (c->w_redrain || more) {
        c->w_redrain = false;
        if (c->w_registered)
            drain(w, c);
    }
}

/* The slot half waits on the coordinator until the queue half arrives (same connection, so it
 * always comes next). */
static void on_drain_reply(watcher_t *w, unsigned kind, bc_coord_t *c, bc_redis_reply_msg_t *m)
{
    bc_hub_t *h = w->h;
    bool ok = m->status == BC_REDIS_OK && m->reply->type != BC_REPLY_ERROR;
    if (!ok) {
        count(&h->n_redis_errors);
        bc_log(BC_LOG_WARN, "%s: reading the signal %s failed: %s%s%s", c->id,
               kind == T_DRAIN_SLOT ? "slot" : "queue", bc_redis_status_name(m->status),
               m->reply && m->reply->str ? ": " : "",
               m->reply && m->reply->str ? m->reply->str : "");
    }
    if (kind == T_DRAIN_SLOT) {
        if (ok) {
            bc_msg_keep(&m->hdr);
            c->w_parked = &m->hdr;
        }
        return;
    }
    bc_redis_reply_msg_t *sm = (bc_redis_reply_msg_t *)c->w_parked;
    c->w_parked = NULL;
    w->drains--;
    drain_done(w, c, sm ? (bc_reply_t *)sm->reply : NULL, ok ? m->reply : NULL);
    if (sm)
        bc_msg_free(&sm->hdr);
    pump_rereads(w);
}

/* Queue c for a read of its slot and queue that waits its turn (first reads, re-reads). */
static void reread_later(watcher_t *w, bc_coord_t *c)
{
    if (c->w_reread)
        return;
    c->w_reread = true;
    ring_push(&w->reread, bc__coord_retain(c));
}

/* Start queued reads while fewer than DRAINS_MAX drain rounds are in flight, so that the first
 * reads of a mass spawn, or the re-reads after a reconnect at 100,000 coordinators, go out as
 * fast as Redis answers instead of as one burst of 200,000 commands held in memory. */
static void pump_rereads(watcher_t *w)
{
    while (w->drains < DRAINS_MAX && w->reread.len) {
        bc_coord_t *c = ring_pop(&w->reread);
        c->w_reread = false;
        if (c->w_registered)
            drain(w, c);
        bc__coord_release(c);
    }
}

/* ---------------------------------------------------------------- doorbells and flush */

/* Run on_flush once the messages already in the mailbox are handled. */
static void flush_soon(watcher_t *w)
{
    if (!w->flush_queued) {
        w->flush_queued = true;
        bc_msg_t *m = bc_msg_alloc(sizeof *m, BC__M_FLUSH);
        bc_send(w->self, m);
    }
}

/* A keyspace event asks for a drain; it is deferred behind whatever the I/O thread has
 * already queued for the watcher, usually the publish hint of the same signal, so the
 * coordinator is woken before the durable copy is fetched. */
static void schedule_drain(watcher_t *w, bc_coord_t *c)
{
    if (c->w_flush)
        return;
    c->w_flush = true;
    c->w_flush_next = w->flush_head;
    w->flush_head = bc__coord_retain(c);
    flush_soon(w);
}

static void subscribe_registered(watcher_t *w);

static void on_flush(watcher_t *w)
{
    bc_coord_t *c = w->flush_head;
    w->flush_head = NULL;
    w->flush_queued = false;
    subscribe_registered(w);
    while (c) {
        bc_coord_t *next = c->w_flush_next;
        c->w_flush_next = NULL;
        c->w_flush = false;
        if (c->w_registered)
            drain(w, c);
        bc__coord_release(c);
        c = next;
    }
}

/* ---------------------------------------------------------------- pub/sub */

static bool has_prefix(const char *s, size_t len, const char *p, size_t plen)
{
    return len >= plen && memcmp(s, p, plen) == 0;
}

static bc_coord_t *lookup(watcher_t *w, const char *id, size_t len)
{
    if (len == 0 || len > BC_ID_MAX)
        return NULL;
    return bc__hub_lookup(w->h, id, len);
}

static void on_pubsub(watcher_t *w, bc_redis_pubsub_msg_t *m)
{
    bc_hub_t *h = w->h;
    const char *ch = m->data, *pl = m->data + m->channel_len + 1;
    size_t cl = m->channel_len, plen = m->payload_len;
    if (has_prefix(ch, cl, "blocking:notify:", 16)) {
        bc_coord_t *c = lookup(w, ch + 16, cl - 16);
        if (c && c->w_registered)
            notify_value(w, c, pl, plen);
        bc__coord_release(c);
        return;
    }
    if (!has_prefix(ch, cl, h->ks_prefix, h->ks_len))
        return;
    const char *k = ch + h->ks_len;
    size_t kl = cl - h->ks_len;
    if (has_prefix(k, kl, "blocking:signal:", 16)) {
        if (!(plen == 3 && memcmp(pl, "set", 3) == 0))
            return; /* our own GETDEL's "del", expiries, ... */
        bc_coord_t *c = lookup(w, k + 16, kl - 16);
        if (c && c->w_registered)
            schedule_drain(w, c);
        bc__coord_release(c);
    } else if (has_prefix(k, kl, "blocking:signal-queue:", 22)) {
        if (!(plen == 5 && (memcmp(pl, "rpush", 5) == 0 || memcmp(pl, "lpush", 5) == 0)))
            return;
        bc_coord_t *c = lookup(w, k + 22, kl - 22);
        if (c && c->w_registered)
            schedule_drain(w, c);
        bc__coord_release(c);
    } else if (has_prefix(k, kl, "blocking:ack:", 13)) {
        if (!(plen == 3 && memcmp(pl, "set", 3) == 0))
            return;
        const char *rest = k + 13;
        size_t rl = kl - 13;
        const char *colon = memchr(rest, ':', rl);
        if (colon == NULL)
            return; /* an ACK slot: a doorbell for operators; waiters read per-signal keys */
        char acker[BC_ID_MAX + 1], sid[BC_SIGID_MAX + 1];
        size_t al = (size_t)(colon - rest), sl = rl - al - 1;
        if (al == 0 || al > BC_ID_MAX || sl == 0 || sl > BC_SIGID_MAX)
            return;
        memcpy(acker, rest, al);
        acker[al] = '\0';
        memcpy(sid, colon + 1, sl);
        sid[sl] = '\0';
        uint64_t key = bc_seen_key(acker, al, sid, sl);
        if (!bc_seen_has(w->acks, key) && exp_any(w, acker, sid))
            ack_get(w, NULL, acker, sid);
    }
}

/* ---------------------------------------------------------------- registration */

/* The channels of a coordinator; a send-only one listens to its publish hints only (ACKs). */
static size_t channels_of(const bc_hub_t *h, const bc_coord_t *c, char buf[3][160],
                          const char *out[3])
{
    snprintf(buf[0], 160, "blocking:notify:%s", c->id);
    snprintf(buf[1], 160, "%sblocking:signal:%s", h->ks_prefix, c->id);
    snprintf(buf[2], 160, "%sblocking:signal-queue:%s", h->ks_prefix, c->id);
    for (int i = 0; i < 3; i++)
        out[i] = buf[i];
    return c->send_only ? 1 : 3;
}

/* c (the message's reference moves here) is subscribed with the others registered in the same
 * turn, at the flush: one request and one SUBSCRIBE per REG_BATCH coordinators instead of one
 * request per coordinator. */
static void on_register(watcher_t *w, bc_coord_t *c)
{
    c->w_registered = true;
    ring_push(&w->reg, c);
    flush_soon(w);
}

static void subscribe_registered(watcher_t *w)
{
    if (w->reg.len == 0)
        return;
    char(*buf)[160] = malloc(3 * REG_BATCH * sizeof *buf);
    const char **ch = malloc(3 * REG_BATCH * sizeof *ch);
    if (buf == NULL || ch == NULL)
        abort();
    while (w->reg.len) {
        regbatch_t *g = malloc(sizeof *g);
        if (g == NULL)
            abort();
        size_t nch = 0;
        g->n = 0;
        while (g->n < REG_BATCH && w->reg.len) {
            bc_coord_t *c = ring_pop(&w->reg);
            if (!c->w_registered) { /* unregistered before its channels were requested */
                bc__coord_release(c);
                continue;
            }
            nch += channels_of(w->h, c, &buf[nch], &ch[nch]);
            g->coords[g->n++] = c;
        }
        /* The references travel in the tag until the SYNC arrives. */
        if (g->n == 0 ||
            bc_redis_subscribe_sync(w->h->redis, w->self, ch, nch, (uint64_t)(uintptr_t)g) != 0) {
            for (size_t i = 0; i < g->n; i++)
                bc__coord_release(g->coords[i]);
            free(g);
        }
    }
    free(buf);
    free(ch);
}

static void on_sync(watcher_t *w, bc_redis_sync_msg_t *m)
{
    if (m->tag & 1u) { /* an ACK wait's channels: read the keys once */
        bc__ackwait_msg_t *a = (bc__ackwait_msg_t *)(uintptr_t)(m->tag & ~(uint64_t)1);
        for (size_t i = 0; i < a->n; i++) {
            uint64_t key =
                bc_seen_key(a->ids[i], strlen(a->ids[i]), a->signal_id, strlen(a->signal_id));
            if (!bc_seen_has(w->acks, key) && exp_any(w, a->ids[i], a->signal_id))
                ack_get(w, NULL, a->ids[i], a->signal_id);
        }
        bc__coord_release(a->coord);
        bc_msg_free(&a->hdr);
        return;
    }
    regbatch_t *g = (regbatch_t *)(uintptr_t)m->tag;
    for (size_t i = 0; i < g->n; i++) {
        bc_coord_t *c = g->coords[i];
        if (c->w_registered) {
            bc_msg_t *r = bc_msg_alloc(sizeof *r, BC__M_READY);
            bc_send(c->actor, r);
            if (!c->send_only)
                reread_later(w, c); /* signals written before it started */
        }
        bc__coord_release(c);
    }
    free(g);
    pump_rereads(w);
}

static void on_unregister(watcher_t *w, bc_coord_t *c)
{
    char buf[3][160];
    const char *ch[3];
    size_t n = channels_of(w->h, c, buf, ch);
    c->w_registered = false;
    bc_redis_unsubscribe(w->h->redis, ch, n);
}

static void on_ackwait(watcher_t *w, bc__ackwait_msg_t *a)
{
    const char *chans[64];
    char buf[64][BC_ID_MAX + BC_SIGID_MAX + 64];
    size_t nch = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t key =
            bc_seen_key(a->ids[i], strlen(a->ids[i]), a->signal_id, strlen(a->signal_id));
        exp_add(w, a->coord, a->wait_id, a->ids[i], a->signal_id);
        if (bc_seen_has(w->acks, key)) { /* it came before the wait */
            ack_resolved(w, a->ids[i], a->signal_id);
            continue;
        }
        snprintf(buf[nch], sizeof buf[nch], "%sblocking:ack:%s:%s", w->h->ks_prefix, a->ids[i],
                 a->signal_id);
        chans[nch] = buf[nch];
        if (++nch == 64) {
            bc_redis_subscribe(w->h->redis, w->self, chans, nch);
            nch = 0;
        }
    }
    /* Keep the message (and its coordinator reference) as the SYNC tag. */
    bc_msg_keep(&a->hdr);
    if (bc_redis_subscribe_sync(w->h->redis, w->self, chans, nch, (uint64_t)(uintptr_t)a | 1u) !=
        0) {
        bc__coord_release(a->coord);
        bc_msg_free(&a->hdr);
    }
}

/* ---------------------------------------------------------------- connect, config, poll */

static bool flags_cover(const char *f)
{
    bool k = strchr(f, 'K') != NULL, all = strchr(f, 'A') != NULL;
    return k && (all || (strchr(f, '$') && strchr(f, 'l')));
}

static void check_config(watcher_t *w)
{
    if (w->h->opts.notify == BC_NOTIFY_POLL) {
        bc__hub_set_mode(w->h, 2, "keyspace notifications disabled by configuration");
        return;
    }
    const char *argv[] = {"CONFIG", "GET", "notify-keyspace-events"};
    cmd(w, CONFIG_GET_TAG | T_CONFIG, BC_REDIS_CLASS_OTHER, 3, argv, NULL);
}

static void on_config(watcher_t *w, uint64_t tag, const bc_redis_reply_msg_t *m)
{
    bc_hub_t *h = w->h;
    char why[160];
    bool err = m->status != BC_REDIS_OK || m->reply->type == BC_REPLY_ERROR;
    if (tag & CONFIG_SET_TAG) {
        if (err) {
            snprintf(why, sizeof why, "CONFIG SET notify-keyspace-events refused: %s",
                     m->reply && m->reply->str ? m->reply->str : bc_redis_status_name(m->status));
            bc_log(BC_LOG_WARN, "%s; falling back to publish hints and a %ums poll", why,
                   h->opts.poll_ms);
            bc__hub_set_mode(h, 2, why);
        } else {
            bc__hub_set_mode(h, 1, "enabled K$l");
        }
        return;
    }
    if (err || m->reply->type != BC_REPLY_ARRAY || m->reply->elements != 2 ||
        m->reply->element[1]->type != BC_REPLY_STRING) {
        snprintf(why, sizeof why, "CONFIG GET notify-keyspace-events refused: %s",
                 m->reply && m->reply->str ? m->reply->str : bc_redis_status_name(m->status));
        bc_log(BC_LOG_WARN, "%s; falling back to publish hints and a %ums poll", why,
               h->opts.poll_ms);
        bc__hub_set_mode(h, 2, why);
        return;
    }
    const char *cur = m->reply->element[1]->str;
    if (flags_cover(cur)) {
        bc__hub_set_mode(h, 1, "already enabled");
        return;
    }
    char want[64];
    snprintf(want, sizeof want, "%.40s%s%s%s", cur, strchr(cur, 'K') ? "" : "K",
             strchr(cur, '$') || strchr(cur, 'A') ? "" : "$",
             strchr(cur, 'l') || strchr(cur, 'A') ? "" : "l");
    bc_log(BC_LOG_INFO, "enabling keyspace notifications: notify-keyspace-events \"%s\" -> \"%s\"",
           cur, want);
    const char *argv[] = {"CONFIG", "SET", "notify-keyspace-events", want};
    cmd(w, CONFIG_SET_TAG | T_CONFIG, BC_REDIS_CLASS_OTHER, 4, argv, NULL);
}

/* Every hosted coordinator (registered), each with a reference. Caller frees. */
static bc_coord_t **snapshot(watcher_t *w, size_t *n)
{
    bc_hub_t *h = w->h;
    pthread_mutex_lock(&h->lock);
    bc_coord_t **all = malloc((h->count + 1) * sizeof *all);
    if (all == NULL)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < h->cap; i++)
        if (h->table[i] && h->table[i] != BC__TOMBSTONE)
            all[k++] = bc__coord_retain(h->table[i]);
    pthread_mutex_unlock(&h->lock);
    *n = k;
    return all;
}

static void reread_ack_waits(watcher_t *w)
{
    for (size_t i = 0; i < w->exp_cap; i++)
        for (expect_t *e = w->exp[i]; e; e = e->next)
            if (!bc_seen_has(w->acks, e->key))
                ack_get(w, NULL, e->acker, e->sid);
}

static void on_up(watcher_t *w, bc_redis_sync_msg_t *m)
{
    check_config(w);
    if (m->generation <= 1)
        return; /* first connect: each coordinator drains at its own SYNC */
    count(&w->h->n_resyncs);
    bc_log(BC_LOG_INFO, "Redis reconnected: re-reading every hosted coordinator's signals");
    size_t n;
    bc_coord_t **all = snapshot(w, &n);
    for (size_t i = 0; i < n; i++) {
        if (all[i]->w_registered && !all[i]->send_only)
            reread_later(w, all[i]);
        bc__coord_release(all[i]);
    }
    free(all);
    pump_rereads(w);
    reread_ack_waits(w);
}

static void on_poll(watcher_t *w)
{
    if (mode(w->h) != 2)
        return;
    count(&w->h->n_polls);
    size_t n;
    bc_coord_t **all = snapshot(w, &n);
    for (size_t i = 0; i < n;) {
        mget_t *g = malloc(sizeof *g);
        if (g == NULL)
            abort();
        const char *argv[MGET_BATCH + 1];
        char(*keys)[BC_ID_MAX + 32] = malloc(MGET_BATCH * sizeof *keys);
        if (keys == NULL)
            abort();
        argv[0] = "MGET";
        g->n = 0;
        for (; i < n && g->n < MGET_BATCH; i++) {
            if (!all[i]->w_registered) {
                bc__coord_release(all[i]);
                continue;
            }
            snprintf(keys[g->n], sizeof keys[0], "blocking:signal:%s", all[i]->id);
            argv[1 + g->n] = keys[g->n];
            g->coords[g->n++] = all[i];
        }
        if (g->n)
            cmd(w, TAG(T_MGET, g), BC_REDIS_CLASS_OTHER, (int)g->n + 1, argv, NULL);
        else
            free(g);
        free(keys);
    }
    free(all);
    reread_ack_waits(w);
}

static void on_mget(watcher_t *w, mget_t *g, const bc_redis_reply_msg_t *m)
{
    bool ok =
        m->status == BC_REDIS_OK && m->reply->type == BC_REPLY_ARRAY && m->reply->elements == g->n;
    for (size_t i = 0; i < g->n; i++) {
        if (ok && m->reply->element[i]->type == BC_REPLY_STRING && g->coords[i]->w_registered)
            drain(w, g->coords[i]);
        bc__coord_release(g->coords[i]);
    }
    if (!ok)
        count(&w->h->n_redis_errors);
    free(g);
}

/* ---------------------------------------------------------------- behaviour */

static void on_reply(watcher_t *w, bc_redis_reply_msg_t *m)
{
    unsigned kind = TAG_KIND(m->tag);
    void *ptr = TAG_PTR(m->tag);
    switch (kind) {
    case T_DRAIN_SLOT:
    case T_DRAIN_QUEUE: {
        bc_coord_t *c = ptr;
        on_drain_reply(w, kind, c, m);
        bc__coord_release(c);
        break;
    }
    case T_MARKER:
        on_marker(w, ptr, m);
        break;
    case T_ACK_GET:
        on_ack_get(w, ptr, m);
        break;
    case T_CONFIG:
        on_config(w, m->tag, m);
        break;
    case T_MGET:
        on_mget(w, ptr, m);
        break;
    default:
        break;
    }
}

static void on_stopped(watcher_t *w)
{
    if (w->poll)
        bc_timer_cancel(w->poll);
    bc_redis_unwatch(w->h->redis, w->self);
    for (size_t i = 0; i < w->exp_cap; i++)
        while (w->exp[i]) {
            expect_t *e = w->exp[i];
            w->exp[i] = e->next;
            bc__coord_release(e->coord);
            free(e);
        }
    bc_coord_t *q;
    while ((q = ring_pop(&w->reg)) != NULL)
        bc__coord_release(q);
    while ((q = ring_pop(&w->reread)) != NULL) {
        q->w_reread = false;
        bc__coord_release(q);
    }
    while (w->flush_head) {
        bc_coord_t *c = w->flush_head;
        w->flush_head = c->w_flush_next;
        c->w_flush_next = NULL;
        c->w_flush = false;
        bc__coord_release(c);
    }
    free(w->exp);
    bc_seen_destroy(w->claimed);
    bc_seen_destroy(w->acks);
    bc_seen_destroy(w->durable);
    free(w);
}

static void behaviour(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    watcher_t *w = state;
    (void)self;
    switch (msg->type) {
    case BC_MSG_REDIS_PUBSUB:
        on_pubsub(w, (bc_redis_pubsub_msg_t *)msg);
        break;
    case BC_MSG_REDIS_REPLY:
        on_reply(w, (bc_redis_reply_msg_t *)msg);
        break;
    case BC_MSG_REDIS_SYNC:
        on_sync(w, (bc_redis_sync_msg_t *)msg);
        break;
    case BC_MSG_REDIS_UP:
        on_up(w, (bc_redis_sync_msg_t *)msg);
        break;
    case BC__M_REGISTER:
        on_register(w, ((bc__reg_msg_t *)msg)->coord); /* the reference moves to the tag */
        break;
    case BC__M_UNREGISTER: {
        bc_coord_t *c = ((bc__reg_msg_t *)msg)->coord;
        on_unregister(w, c);
        bc__coord_release(c);
        break;
    }
    case BC__M_ACKWAIT:
        on_ackwait(w, (bc__ackwait_msg_t *)msg);
        break;
    case BC__M_ACKWAIT_END: {
        bc__ackwait_msg_t *a = (bc__ackwait_msg_t *)msg;
        exp_remove_wait(w, a);
        bc__coord_release(a->coord);
        break;
    }
    case BC__M_FLUSH:
        on_flush(w);
        break;
    case BC__M_POLL_TIMER:
        on_poll(w);
        break;
    case BC_MSG_STOPPED:
        on_stopped(w);
        break;
    default:
        break;
    }
}

bc_actor_t *bc__watcher_spawn(bc_hub_t *h)
{
    watcher_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->h = h;
    w->claimed = bc_seen_create(SEEN_HORIZON_MS);
    w->acks = bc_seen_create(SEEN_HORIZON_MS);
    w->durable = bc_seen_create(SEEN_HORIZON_MS);
    w->exp_cap = 256;
    w->exp = calloc(w->exp_cap, sizeof *w->exp);
    if (w->claimed == NULL || w->acks == NULL || w->durable == NULL || w->exp == NULL)
        goto err;
    w->self = bc_spawn(h->rt, behaviour, w);
    if (w->self == NULL)
        goto err;
    bc_timer_start(w->self, BC__M_POLL_TIMER, h->opts.poll_ms, h->opts.poll_ms, &w->poll);
    bc_redis_watch(h->redis, w->self);
    return w->self; /* the spawn reference goes to the hub; w->self borrows it */
err:
    bc_seen_destroy(w->claimed);
    bc_seen_destroy(w->acks);
    bc_seen_destroy(w->durable);
    free(w->exp);
    free(w);
    return NULL;
}
