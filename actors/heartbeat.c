/* heartbeat.c - the heartbeat actor: one per hub, writing every hosted coordinator's
 * blocking:heartbeat:<id> (PROTOCOL §4.1) and its blocking:registry score.
 *
 * Key decision: the interval is cut into 20 ms ticks and each tick writes its share of the
 * coordinators, so 100,000 coordinators cost a steady trickle of pipelined writes (400 every
 * 20 ms at 5 s) instead of one burst every five seconds. A coordinator's first heartbeat is written
 * when it is added and its last one (terminal state, short TTL) when it stops.
 */
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLICE_MS 20u /* one tick writes the coordinators due in this slice of the interval */

#define ZADD_MAX 256 /* registry members per ZADD */

/* One ZADD blocking:registry for a whole tick's heartbeats, not one per coordinator. */
typedef struct {
    int n;
    const char *argv[2 + 2 * ZADD_MAX];
    char scores[ZADD_MAX][24];
} zadd_t;

typedef struct {
    bc_hub_t *h;
    bc_actor_t *self;
    zadd_t zadd;
    bc_coord_t **all; /* counted */
    size_t n, cap, cursor;
    unsigned tick, slices; /* tick in 0..slices-1 within the interval */
    bc_timer_t *timer;
} hb_t;

static const char *state_name(int st)
{
    static const char *const names[] = {"waiting", "running", "completed", "timeout", "stopping"};
    return st >= 0 && st <= BC_STATE_STOPPING ? names[st] : "running";
}

/* Append s as a JSON string (quotes included). Returns the new length or 0 if it did not fit. */
static size_t json_str(char *buf, size_t len, size_t at, const char *s)
{
    if (at + 2 >= len)
        return 0;
    buf[at++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t el;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            el = 2;
        } else if (*p < 0x20) {
            el = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p);
        } else {
            esc[0] = (char)*p;
            el = 1;
        }
        if (at + el + 2 >= len)
            return 0;
        memcpy(buf + at, esc, el);
        at += el;
    }
    buf[at++] = '"';
    buf[at] = '\0';
    return at;
}

static void zadd_flush(hb_t *b)
{
    zadd_t *z = &b->zadd;
    if (z->n == 0)
        return;
    z->argv[0] = "ZADD";
    z->argv[1] = "blocking:registry";
    bc_redis_cmd(b->h->redis, NULL, 0, BC_REDIS_CLASS_HEARTBEAT, 2 + 2 * z->n, z->argv, NULL);
    z->n = 0;
}

/* Register c at score ts in the pending ZADD (c's id outlives the flush: b holds c). */
static void zadd_add(hb_t *b, const bc_coord_t *c, uint64_t ts)
{
    zadd_t *z = &b->zadd;
    snprintf(z->scores[z->n], sizeof z->scores[0], "%llu", (unsigned long long)ts);
    z->argv[2 + 2 * z->n] = z->scores[z->n];
    z->argv[3 + 2 * z->n] = c->id;
    if (++z->n == ZADD_MAX)
        zadd_flush(b);
}

/* Write c's heartbeat (SETEX); a live one joins the tick's ZADD, a final one leaves the
 * registry. */
static void write_hb(hb_t *b, bc_coord_t *c, bool final)
{
    bc_hub_t *h = b->h;
    char json[1024];
    uint64_t ts = bc__hub_stamp(h);
    /* relaxed: independent counters and a state snapshot for reporting. */
    int st = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (final && st != BC_STATE_COMPLETED && st != BC_STATE_TIMEOUT)
        st = BC_STATE_STOPPING;
    int n = snprintf(json, sizeof json,
                     "{\"coordinatorId\":\"%s\",\"timestamp\":%llu,\"lastHeartbeat\":%llu,"
                     "\"sequence\":%llu,\"iteration\":%llu,\"status\":\"alive\",\"state\":\"%s\","
                     "\"pid\":%d,\"hostname\":",
                     c->id, (unsigned long long)ts, (unsigned long long)ts,
                     (unsigned long long)++c->hb_seq,
                     (unsigned long long)atomic_load_explicit(&c->iteration, memory_order_relaxed),
                     state_name(st), h->pid);
    size_t at = json_str(json, sizeof json, (size_t)n, h->hostname);
    if (at == 0)
        return;
    at += (size_t)snprintf(
        json + at, sizeof json - at, ",\"signalsReceived\":%llu,\"signalsSent\":%llu",
        (unsigned long long)atomic_load_explicit(&c->signals_received, memory_order_relaxed),
        (unsigned long long)atomic_load_explicit(&c->signals_sent, memory_order_relaxed));
    if (c->swarm[0])
        at += (size_t)snprintf(json + at, sizeof json - at, ",\"swarmId\":\"%s\"", c->swarm);
    if (c->phase) {
        at += (size_t)snprintf(json + at, sizeof json - at, ",\"phase\":");
        at = json_str(json, sizeof json, at, c->phase);
        if (at == 0)
            return;
    }
    if (at + 2 >= sizeof json)
        return;
    json[at++] = '}';
    json[at] = '\0';
    char key[BC_ID_MAX + 32], ttl[16];
    snprintf(key, sizeof key, "blocking:heartbeat:%s", c->id);
    snprintf(ttl, sizeof ttl, "%u", final ? h->opts.final_ttl_s : h->opts.heartbeat_ttl_s);
    const char *a1[] = {"SETEX", key, ttl, json};
    size_t l1[] = {5, strlen(key), strlen(ttl), at};
    bc_redis_cmd(h->redis, final ? b->self : NULL, final ? 1 : 0, BC_REDIS_CLASS_HEARTBEAT, 4, a1,
                 l1);
    if (final) {
        const char *a2[] = {"ZREM", "blocking:registry", c->id};
        bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_HEARTBEAT, 3, a2, NULL);
    } else {
        zadd_add(b, c, ts);
    }
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(&h->n_heartbeats, 1, memory_order_relaxed);
}

static void add(hb_t *b, bc_coord_t *c)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        bc_coord_t **a = realloc(b->all, ncap * sizeof *a);
        if (a == NULL)
            abort();
        b->all = a;
        b->cap = ncap;
    }
    c->hb_index = b->n;
    b->all[b->n++] = c; /* keeps the message's reference */
    write_hb(b, c, false);
    zadd_flush(b);
}

static void remove_coord(hb_t *b, bc_coord_t *c)
{
    size_t i = c->hb_index;
    if (i < b->n && b->all[i] == c) {
        b->all[i] = b->all[--b->n];
        b->all[i]->hb_index = i;
        if (b->cursor > b->n)
            b->cursor = 0;
        bc__coord_release(c);
    }
    write_hb(b, c, true);
}

/* Tick t of the interval writes coordinators [n*t/S, n*(t+1)/S) of the rotation, so each one is
 * written exactly once per interval whatever n is. */
static void on_tick(hb_t *b)
{
    unsigned t = b->tick;
    b->tick = (b->tick + 1) % b->slices;
    if (b->n == 0)
        return;
    size_t per = b->n * (t + 1) / b->slices - b->n * t / b->slices;
    for (size_t k = 0; k < per && b->n; k++) {
        if (b->cursor >= b->n)
            b->cursor = 0;
        write_hb(b, b->all[b->cursor++], false);
    }
    zadd_flush(b);
}

/* (Re)connected: heartbeats are fail-fast while Redis is away, so write everyone's now. */
static void on_up(hb_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        write_hb(b, b->all[i], false);
    zadd_flush(b);
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
    case BC_MSG_REDIS_REPLY: {
        bc_redis_reply_msg_t *m = (bc_redis_reply_msg_t *)msg;
        if (m->status != BC_REDIS_OK || bc_reply_is_error(m->reply))
            /* relaxed: statistics. */
            atomic_fetch_add_explicit(&b->h->n_redis_errors, 1, memory_order_relaxed);
        /* release: pairs with bc_hub_destroy's acquire load. */
        atomic_fetch_sub_explicit(&b->h->hb_pending, 1, memory_order_release);
        break;
    }
    case BC_MSG_STOPPED:
        bc_redis_unwatch(b->h->redis, b->self);
        if (b->timer)
            bc_timer_cancel(b->timer);
        for (size_t i = 0; i < b->n; i++)
            bc__coord_release(b->all[i]);
        free(b->all);
        free(b);
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
    b->self = bc_spawn(h->rt, behaviour, b);
    if (b->self == NULL) {
        free(b);
        return NULL;
    }
    b->slices = h->opts.heartbeat_ms / SLICE_MS;
    if (b->slices == 0)
        b->slices = 1;
    uint64_t tick = h->opts.heartbeat_ms / b->slices;
    if (h->opts.heartbeats) {
        bc_timer_start(b->self, BC__M_HB_TIMER, tick ? tick : 1, tick ? tick : 1, &b->timer);
        bc_redis_watch(h->redis, b->self);
    }
    return b->self;
}
