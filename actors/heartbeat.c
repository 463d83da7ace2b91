/* heartbeat.c - the heartbeat actor: one per hub, writing every hosted coordinator's
 * blocking:heartbeat:<id> (PROTOCOL §4.1) and its blocking:registry score.
 *
 * Key decision: the interval is cut into slices (2 ms each, at most MAX_SLICES) and every
 * coordinator belongs to one slice for life, so it is written at the same phase of every round
 * and a neighbour's departure never moves it. Slices are visited on an absolute schedule
 * (slice k at epoch + k * period / slices), so timer jitter does not accumulate; the period is
 * SLACK_MS short of the interval, so a tick that comes a little late still writes within it.
 * Each visit sends one pipelined batch: a SETEX per coordinator and one ZADD for all of them,
 * so 100,000 coordinators at 5 s are a steady 40 writes every 2 ms instead of a burst. The
 * slices are short because a signal that reaches Redis behind a batch waits for all of it:
 * 400 writes every 20 ms held Redis for about a millisecond, 6 % of the time, and put wake
 * p99 at several milliseconds with 100,000 coordinators. The timer's period follows the
 * population (about TICK_WRITES writes a tick, between SLICE_MS and TICK_MAX_MS; a tick visits
 * every slice that fell due), so a process hosting a few coordinators is not woken 500 times
 * a second.
 *
 * A new coordinator's first heartbeat, and after a reconnect the heartbeats of those that
 * missed some, go through the urgent queue, drained while few writes are unanswered: a mass
 * spawn or a reconnect at 100,000 coordinators catches up as fast as Redis answers, without a
 * burst held in memory. While Redis is away (the Redis layer is not connected after having
 * been), writes are skipped and counted, and the coordinators' next heartbeats say "degraded"
 * until one of theirs is written again. Every write is answered to this actor: a failure is
 * counted once, an OK is counted on time or late (against the previous OK, interval + slice).
 */
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLICE_MS 2u           /* the schedule's granularity */
#define TICK_MAX_MS 20u       /* the timer's period with few coordinators */
#define TICK_WRITES 50u       /* heartbeat writes per tick the period aims at */
#define SLACK_MS 20u          /* the round is this much short of the interval; on-time slack */
#define MAX_SLICES 4096u      /* longer intervals get longer slices */
#define URGENT_PER_TICK 1024u /* first / catch-up heartbeats written per tick, at most */
#define URGENT_INFLIGHT 1024u /* ... and only while fewer writes than this are unanswered */
#define ZADD_MAX 256          /* registry members per ZADD */
#define JSON_MAX 2048         /* fits every field at its bound (phase 128 bytes, escaped) */

/* bc_coord_t.hb_flags */
enum {
    HB_DUE = 1,      /* in the urgent queue */
    HB_TRIED = 2,    /* a write was submitted once (hb_try_ms is valid) */
    HB_OK = 4,       /* a write was answered OK once (hb_ok_ms is valid) */
    HB_DEGRADED = 8, /* ran on while Redis was away: say so until a write succeeds */
    HB_GONE = 16,    /* removed from its slice */
    HB_RETIRED = 32, /* removed, held until its writes are answered (in b->retired) */
};

/* Reply tags: the coordinator pointer (calloc'd, so at least 8-byte aligned) and two bits. */
#define TAG_FINAL 1u
#define TAG_ON_TIME 2u

typedef struct {
    bc_coord_t **v; /* counted references */
    uint32_t n, cap;
} list_t;

typedef struct {
    bc_hub_t *h;
    bc_actor_t *self;
    list_t *slice;  /* [slices]: the coordinators written at each slice */
    list_t retired; /* removed, writes still unanswered */
    bc_coord_t **urgent;
    size_t uhead, ulen, ucap; /* ring of counted references */
    size_t n;                 /* coordinators in slices */
    size_t inflight;          /* writes submitted and not answered yet */
    uint32_t slices, interval_ms, late_ms;
    uint32_t period_ms;      /* the schedule's round: SLACK_MS short of the interval */
    uint64_t epoch_ms, next; /* absolute index of the next slice to visit */
    bool ever_up;            /* connected once: before that, nothing is "skipped" */
    bool outage;             /* a write was skipped or lost since the last reconnect */
    bc_timer_t *timer;
    uint32_t tick_ms; /* the timer's period (tick_for) */
    int zn;
    const char *zargv[2 + 2 * ZADD_MAX];
    char zscore[ZADD_MAX][24];
    char ttl[12], final_ttl[12];
    size_t host_len;
    char host[800]; /* the hostname as a JSON string, quotes included */
} hb_t;

static void count(_Atomic uint64_t *x)
{
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(x, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- formatting */

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUT_LIT(p, lit) put(p, lit, sizeof lit - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* s as a JSON string, quotes included, escaped as JSON.stringify does; at most
 * 6 * strlen(s) + 2 bytes. */
static char *put_json_str(char *p, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    static const char short_esc[32] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
    *p++ = '"';
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q == '"' || *q == '\\') {
            *p++ = '\\';
            *p++ = (char)*q;
        } else if (*q < 0x20 && short_esc[*q]) {
            *p++ = '\\';
            *p++ = short_esc[*q];
        } else if (*q < 0x20) {
            p = PUT_LIT(p, "\\u00");
            *p++ = hex[*q >> 4];
            *p++ = hex[*q & 15];
        } else {
            *p++ = (char)*q;
        }
    }
    *p++ = '"';
    return p;
}

static const char *state_name(int st, size_t *len)
{
    static const char *const names[] = {"waiting", "running", "completed", "timeout", "stopping"};
    const char *s = st >= 0 && st <= BC_STATE_STOPPING ? names[st] : "running";
    *len = strlen(s);
    return s;
}

/* c's heartbeat value (PROTOCOL §4.1: compact, members in order, timestamp first). Ids and the
 * swarm id are validated ([A-Za-z0-9_-]) and need no escaping. Returns its length. */
static size_t format_hb(const hb_t *b, const bc_coord_t *c, uint64_t ts, int st, char *json)
{
    size_t sl;
    const char *sn = state_name(st, &sl);
    char *p = json;
    p = PUT_LIT(p, "{\"coordinatorId\":\"");
    p = put(p, c->id, c->id_len);
    p = PUT_LIT(p, "\",\"timestamp\":");
    p = put_u64(p, ts);
    p = PUT_LIT(p, ",\"lastHeartbeat\":");
    p = put_u64(p, ts);
    p = PUT_LIT(p, ",\"sequence\":");
    p = put_u64(p, c->hb_seq);
    p = PUT_LIT(p, ",\"iteration\":");
    /* relaxed: independent counters and a state snapshot for reporting. */
    p = put_u64(p, atomic_load_explicit(&c->iteration, memory_order_relaxed));
    if (c->hb_flags & HB_DEGRADED)
        p = PUT_LIT(p, ",\"status\":\"degraded\",\"state\":\"");
    else
        p = PUT_LIT(p, ",\"status\":\"alive\",\"state\":\"");
    p = put(p, sn, sl);
    p = PUT_LIT(p, "\",\"pid\":");
    p = put_u64(p, (uint64_t)b->h->pid);
    p = PUT_LIT(p, ",\"hostname\":");
    p = put(p, b->host, b->host_len);
    p = PUT_LIT(p, ",\"signalsReceived\":");
    p = put_u64(p, atomic_load_explicit(&c->signals_received, memory_order_relaxed));
    p = PUT_LIT(p, ",\"signalsSent\":");
    p = put_u64(p, atomic_load_explicit(&c->signals_sent, memory_order_relaxed));
    if (c->swarm[0]) {
        p = PUT_LIT(p, ",\"swarmId\":\"");
        p = put(p, c->swarm, strlen(c->swarm));
        *p++ = '"';
    }
    if (c->phase) {
        p = PUT_LIT(p, ",\"phase\":");
        p = put_json_str(p, c->phase);
    }
    *p++ = '}';
    return (size_t)(p - json);
}

/* ---------------------------------------------------------------- lists */

static void list_push(list_t *l, bc_coord_t *c)
{
    if (l->n == l->cap) {
        uint32_t ncap = l->cap ? l->cap * 2 : 8;
        bc_coord_t **v = realloc(l->v, ncap * sizeof *v);
        if (v == NULL)
            abort();
        l->v = v;
        l->cap = ncap;
    }
    c->hb_index = l->n;
    l->v[l->n++] = c;
}

static void list_del(list_t *l, bc_coord_t *c)
{
    uint32_t i = c->hb_index;
    if (i >= l->n || l->v[i] != c)
        return;
    l->v[i] = l->v[--l->n];
    l->v[i]->hb_index = i;
    if (l->n == 0) { /* an emptied slice gives its memory back */
        free(l->v);
        l->v = NULL;
        l->cap = 0;
    }
}

static void urgent_push(hb_t *b, bc_coord_t *c)
{
    if (c->hb_flags & HB_DUE)
        return;
    if (b->ulen == b->ucap) {
        size_t ncap = b->ucap ? b->ucap * 2 : 64;
        bc_coord_t **u = malloc(ncap * sizeof *u);
        if (u == NULL)
            abort();
        for (size_t i = 0; i < b->ulen; i++)
            u[i] = b->urgent[(b->uhead + i) % b->ucap];
        free(b->urgent);
        b->urgent = u;
        b->ucap = ncap;
        b->uhead = 0;
    }
    c->hb_flags |= HB_DUE;
    b->urgent[(b->uhead + b->ulen++) % b->ucap] = bc__coord_retain(c);
}

static bc_coord_t *urgent_pop(hb_t *b)
{
    if (b->ulen == 0)
        return NULL;
    bc_coord_t *c = b->urgent[b->uhead];
    b->uhead = (b->uhead + 1) % b->ucap;
    if (--b->ulen == 0) { /* drained: a catch-up of 100,000 does not keep its ring */
        free(b->urgent);
        b->urgent = NULL;
        b->ucap = b->uhead = 0;
    }
    c->hb_flags &= (uint8_t)~HB_DUE;
    return c; /* the caller releases it */
}

/* ---------------------------------------------------------------- writing */

/* 1: connected; 0: not connected yet (the first connect of start-up, not an outage); -1: Redis
 * is away. */
static int redis_state(hb_t *b)
{
    bc_redis_stats_t st;
    bc_redis_stats(b->h->redis, &st);
    if (st.connected) {
        b->ever_up = true;
        return 1;
    }
    return st.breaker.state == BC_BREAKER_STATE_INIT && !b->ever_up ? 0 : -1;
}

/* Redis became unreachable: every coordinator runs on without it. */
static void outage_begins(hb_t *b)
{
    if (b->outage)
        return;
    b->outage = true;
    for (uint32_t s = 0; s < b->slices; s++)
        for (uint32_t i = 0; i < b->slice[s].n; i++)
            b->slice[s].v[i]->hb_flags |= HB_DEGRADED;
}

static void zadd_flush(hb_t *b)
{
    if (b->zn == 0)
        return;
    b->zargv[0] = "ZADD";
    b->zargv[1] = "blocking:registry";
    bc_redis_cmd(b->h->redis, NULL, 0, BC_REDIS_CLASS_HEARTBEAT, 2 + 2 * b->zn, b->zargv, NULL);
    b->zn = 0;
}

/* c (held by the caller until the flush) scores ts in the batch's ZADD. */
static void zadd_add(hb_t *b, const bc_coord_t *c, uint64_t ts)
{
    *put_u64(b->zscore[b->zn], ts) = '\0';
    b->zargv[2 + 2 * b->zn] = b->zscore[b->zn];
    b->zargv[3 + 2 * b->zn] = c->id;
    if (++b->zn == ZADD_MAX)
        zadd_flush(b);
}

/* Write c's heartbeat (up: redis_state()) at now32 (low bits of bc_now_ms()). A live one joins
 * the batch's ZADD; a final one (terminal state or "stopping", short TTL) leaves the registry.
 * Returns true if the write was submitted (and will be answered). */
static bool write_hb(hb_t *b, bc_coord_t *c, bool final, int up, uint32_t now32)
{
    bc_hub_t *h = b->h;
    if (up == 0)
        return false; /* not connected yet: written once the first connect completes */
    if (up < 0) {
        count(&h->n_hb_failures);
        c->hb_flags |= HB_DEGRADED;
        outage_begins(b);
        return false;
    }
    /* relaxed: a state snapshot for reporting. */
    int st = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (final && st != BC_STATE_COMPLETED && st != BC_STATE_TIMEOUT)
        st = BC_STATE_STOPPING;
    bool on_time = !(c->hb_flags & HB_OK) || now32 - c->hb_ok_ms <= b->late_ms;
    uint64_t ts = bc__hub_stamp(h);
    c->hb_seq++;
    char json[JSON_MAX];
    size_t jl = format_hb(b, c, ts, st, json);
    char key[BC_ID_MAX + 24];
    char *k = PUT_LIT(key, "blocking:heartbeat:");
    k = put(k, c->id, c->id_len);
    const char *ttl = final ? b->final_ttl : b->ttl;
    const char *a1[] = {"SETEX", key, ttl, json};
    size_t l1[] = {5, (size_t)(k - key), strlen(ttl), jl};
    c->hb_try_ms = now32;
    c->hb_flags |= HB_TRIED;
    c->hb_inflight++;
    b->inflight++;
    uint64_t tag = (uint64_t)(uintptr_t)c | (final ? TAG_FINAL : 0) | (on_time ? TAG_ON_TIME : 0);
    bc_redis_cmd(h->redis, b->self, tag, BC_REDIS_CLASS_HEARTBEAT, 4, a1, l1);
    if (final) {
        const char *a2[] = {"ZREM", "blocking:registry", c->id};
        bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_HEARTBEAT, 3, a2, NULL);
    } else {
        zadd_add(b, c, ts);
    }
    count(&h->n_heartbeats);
    return true;
}

/* Drop our reference to c: now, or when its last write is answered. */
static void retire(hb_t *b, bc_coord_t *c)
{
    if (c->hb_inflight == 0) {
        bc__coord_release(c);
        return;
    }
    c->hb_flags |= HB_RETIRED;
    list_push(&b->retired, c);
}

static void on_reply(hb_t *b, bc_redis_reply_msg_t *m)
{
    bc_hub_t *h = b->h;
    bc_coord_t *c = (bc_coord_t *)(uintptr_t)(m->tag & ~(uint64_t)3);
    if (m->status == BC_REDIS_OK && !bc_reply_is_error(m->reply)) {
        count(m->tag & TAG_ON_TIME ? &h->n_hb_on_time : &h->n_hb_late);
        c->hb_ok_ms = c->hb_try_ms;
        c->hb_flags = (uint8_t)((c->hb_flags | HB_OK) & ~HB_DEGRADED);
    } else {
        count(&h->n_hb_failures);
        count(&h->n_redis_errors);
        if (m->status != BC_REDIS_OK && m->status != BC_REDIS_ERROR) { /* unreachable */
            c->hb_flags |= HB_DEGRADED;
            outage_begins(b);
        }
    }
    if (m->tag & TAG_FINAL)
        /* release: pairs with bc_hub_destroy's acquire load. */
        atomic_fetch_sub_explicit(&h->hb_pending, 1, memory_order_release);
    b->inflight--;
    if (--c->hb_inflight == 0 && (c->hb_flags & HB_RETIRED)) {
        list_del(&b->retired, c);
        bc__coord_release(c);
    }
}

/* ---------------------------------------------------------------- membership */

/* Host c (the message's reference moves to its slice). Its slice is the next one to be
 * visited, or the first after it below the average load, so a lone coordinator is written
 * again one round after its first heartbeat and a mass spawn stays spread out. */
static void add(hb_t *b, bc_coord_t *c)
{
    if (c->hb_flags & HB_GONE) { /* its removal overtook its arrival */
        bc__coord_release(c);
        return;
    }
    uint32_t cap = (uint32_t)((b->n + 1) / b->slices + 1);
    uint32_t s = (uint32_t)(b->next % b->slices);
    for (uint32_t k = 0; k < b->slices && b->slice[s].n >= cap; k++)
        s = (s + 1) % b->slices;
    c->hb_slice = (uint16_t)s;
    list_push(&b->slice[s], c);
    b->n++;
    urgent_push(b, c);
}

static void remove_coord(hb_t *b, bc_coord_t *c)
{
    list_t *l = &b->slice[c->hb_slice];
    bool hosted = !(c->hb_flags & HB_GONE) && c->hb_index < l->n && l->v[c->hb_index] == c;
    c->hb_flags |= HB_GONE;
    if (hosted) { /* the slice's reference is ours now */
        list_del(l, c);
        b->n--;
    } else { /* never added: the final write's answer still needs c */
        bc__coord_retain(c);
    }
    if (!write_hb(b, c, true, redis_state(b), (uint32_t)bc_now_ms()))
        /* release: pairs with bc_hub_destroy's acquire load. */
        atomic_fetch_sub_explicit(&b->h->hb_pending, 1, memory_order_release);
    retire(b, c);
}

/* ---------------------------------------------------------------- schedule */

static void visit(hb_t *b, uint32_t s, int up, uint32_t now32)
{
    list_t *l = &b->slice[s];
    for (uint32_t i = 0; i < l->n; i++) {
        bc_coord_t *c = l->v[i];
        if (c->hb_inflight == 0) /* else its last write is still on its way: one at a time */
            write_hb(b, c, false, up, now32);
    }
}

/* The timer period for b->n coordinators: about TICK_WRITES heartbeats a tick. */
static uint32_t tick_for(const hb_t *b)
{
    uint64_t t = b->n ? (uint64_t)b->interval_ms * TICK_WRITES / b->n : TICK_MAX_MS;
    if (t < SLICE_MS)
        t = SLICE_MS;
    if (t > TICK_MAX_MS)
        t = TICK_MAX_MS;
    if (t > b->interval_ms)
        t = b->interval_ms;
    return (uint32_t)t;
}

/* Start the timer with a period of ms, reported in bc_hub_stats; a timer running before is
 * cancelled only once the new one runs, so a failed start leaves the old period in place. */
static void tick_start(hb_t *b, uint32_t ms)
{
    bc_timer_t *t = NULL;
    if (bc_timer_start(b->self, BC__M_HB_TIMER, ms, ms, &t) != 0)
        return;
    if (b->timer)
        bc_timer_cancel(b->timer);
    b->timer = t;
    b->tick_ms = ms;
    /* relaxed: a statistic. */
    atomic_store_explicit(&b->h->hb_tick_ms, ms, memory_order_relaxed);
}

static void on_tick(hb_t *b)
{
    uint64_t now = bc_now_ms();
    uint32_t now32 = (uint32_t)now;
    int up = redis_state(b);
    /* Self-clocked: a catch-up goes as fast as Redis answers, never as one burst held in
     * memory (each write is a ~500-byte request until the I/O thread sends it). */
    for (unsigned k = 0;
         k < URGENT_PER_TICK && b->ulen && (up <= 0 || b->inflight < URGENT_INFLIGHT); k++) {
        bc_coord_t *c = urgent_pop(b);
        if (!(c->hb_flags & HB_GONE) && c->hb_inflight == 0)
            write_hb(b, c, false, up, now32);
        bc__coord_release(c);
    }
    uint64_t due = (now - b->epoch_ms) * b->slices / b->period_ms;
    if (due >= b->next + b->slices) /* stalled for an interval or more: visit each once */
        b->next = due + 1 - b->slices;
    for (; b->next <= due; b->next++)
        visit(b, (uint32_t)(b->next % b->slices), up, now32);
    zadd_flush(b);
    /* Follow the population, with a third of slack either way so that it does not flap. */
    uint32_t want = tick_for(b);
    if (b->timer && (want * 4 < b->tick_ms * 3 || want * 3 > b->tick_ms * 4))
        tick_start(b, want);
}

/* (Re)connected: the heartbeat of everyone who missed one (never written, or degraded and not
 * rewritten by its slice since) is rewritten now, through the urgent queue. */
static void on_up(hb_t *b)
{
    b->ever_up = true;
    b->outage = false;
    for (uint32_t s = 0; s < b->slices; s++)
        for (uint32_t i = 0; i < b->slice[s].n; i++) {
            bc_coord_t *c = b->slice[s].v[i];
            if ((c->hb_flags & HB_DEGRADED) || !(c->hb_flags & HB_TRIED))
                urgent_push(b, c);
        }
}

static void on_stopped(hb_t *b)
{
    bc_redis_unwatch(b->h->redis, b->self);
    if (b->timer)
        bc_timer_cancel(b->timer);
    bc_coord_t *c;
    while ((c = urgent_pop(b)) != NULL)
        bc__coord_release(c);
    for (uint32_t s = 0; s < b->slices; s++) {
        for (uint32_t i = 0; i < b->slice[s].n; i++)
            bc__coord_release(b->slice[s].v[i]);
        free(b->slice[s].v);
    }
    /* Replies still on their way are dropped with this actor: nothing touches these again. */
    for (uint32_t i = 0; i < b->retired.n; i++)
        bc__coord_release(b->retired.v[i]);
    free(b->retired.v);
    free(b->slice);
    free(b);
}

static void behaviour(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    hb_t *b = state;
    (void)self;
    switch (msg->type) {
    case BC__M_HB_ADD:
        add(b, ((bc__reg_msg_t *)msg)->coord);
        break;
    case BC__M_HB_REMOVE: {
        bc_coord_t *c = ((bc__reg_msg_t *)msg)->coord;
        remove_coord(b, c);
        bc__coord_release(c);
        break;
    }
    case BC__M_HB_TIMER:
        on_tick(b);
        break;
    case BC_MSG_REDIS_UP:
        on_up(b);
        break;
    case BC_MSG_REDIS_REPLY:
        on_reply(b, (bc_redis_reply_msg_t *)msg);
        break;
    case BC_MSG_STOPPED:
        on_stopped(b);
        break;
    default:
        break;
    }
}

bc_actor_t *bc__heartbeat_spawn(bc_hub_t *h)
{
    hb_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->h = h;
    b->interval_ms = h->opts.heartbeat_ms ? h->opts.heartbeat_ms : 5000;
    b->slices = b->interval_ms / SLICE_MS;
    if (b->slices == 0)
        b->slices = 1;
    if (b->slices > MAX_SLICES)
        b->slices = MAX_SLICES;
    b->late_ms = b->interval_ms + SLACK_MS;
    /* Aim SLACK_MS early: a tick up to twice SLACK_MS late (a busy machine) still writes within
     * the interval plus the slack. 0.4 % more writes at 5 s. */
    b->period_ms = b->interval_ms >= 4 * SLACK_MS ? b->interval_ms - SLACK_MS : b->interval_ms;
    b->slice = calloc(b->slices, sizeof *b->slice);
    if (b->slice == NULL) {
        free(b);
        return NULL;
    }
    snprintf(b->ttl, sizeof b->ttl, "%u", h->opts.heartbeat_ttl_s);
    snprintf(b->final_ttl, sizeof b->final_ttl, "%u", h->opts.final_ttl_s);
    b->host_len = (size_t)(put_json_str(b->host, h->hostname) - b->host);
    b->tick_ms = tick_for(b);
    b->self = bc_spawn(h->rt, behaviour, b);
    if (b->self == NULL) {
        free(b->slice);
        free(b);
        return NULL;
    }
    b->epoch_ms = bc_now_ms();
    if (h->opts.heartbeats) {
        tick_start(b, b->tick_ms);
        bc_redis_watch(h->redis, b->self);
    }
    return b->self;
}
