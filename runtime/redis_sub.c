/* redis_sub.c - subscriptions on the dedicated subscriber connection (I/O thread only).
 *
 * Key decision: the channel -> actor map (a chained hash table holding one actor reference per
 * channel) is the source of truth, not hiredis's callback dict: it survives every reconnect and
 * is replayed as SUBSCRIBE batches of up to BC_REDIS_SUB_BATCH channels on each fresh
 * subscriber connection. Only SUBSCRIBE and UNSUBSCRIBE ever go on that connection (hiredis
 * 0.14 misroutes PING there and kills the context on any other command).
 *
 * Barriers: Redis confirms SUBSCRIBE channels in order, so counting confirmations tells when
 * every channel sent so far is live. A barrier waits for a count; a reconnect re-targets every
 * barrier to the end of the restore, so "confirmed" always means "live on this connection".
 */
#include "redis_impl.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bc__redis_subent_t **find(bc_redis_t *r, const char *name, size_t len)
{
    bc__redis_subent_t **pp = &r->buckets[hash(name, len) & (r->nbuckets - 1)];
    while (*pp && ((*pp)->len != len || memcmp((*pp)->name, name, len) != 0))
        pp = &(*pp)->next;
    return pp;
}

static void grow(bc_redis_t *r)
{
    size_t n = r->nbuckets * 2;
    bc__redis_subent_t **b = calloc(n, sizeof *b);
    if (b == NULL)
        abort();
    for (size_t i = 0; i < r->nbuckets; i++) {
        bc__redis_subent_t *e = r->buckets[i];
        while (e) {
            bc__redis_subent_t *next = e->next;
            bc__redis_subent_t **slot = &b[hash(e->name, e->len) & (n - 1)];
            e->next = *slot;
            *slot = e;
            e = next;
        }
    }
    free(r->buckets);
    r->buckets = b;
    r->nbuckets = n;
}

static bc__redis_conn_t *sub_conn(bc_redis_t *r)
{
    bc__redis_conn_t *c = &r->conns[r->nconns - 1];
    return r->up && c->ac ? c : NULL;
}

static void barrier_send(bc_redis_t *r, bc__redis_barrier_t *b)
{
    bc_redis_sync_msg_t *m = bc_msg_alloc(sizeof *m, b->type);
    m->tag = b->tag;
    m->generation = r->generation;
    bc_send(b->actor, &m->hdr); /* -ESRCH: the actor stopped; the message is freed */
    bc_actor_release(b->actor);
    free(b);
}

/* Answer every barrier whose target the confirmations have reached (targets ascend). */
static void fire_barriers(bc_redis_t *r)
{
    while (r->bar_head && r->bar_head->target <= r->sub_confirmed) {
        bc__redis_barrier_t *b = r->bar_head;
        r->bar_head = b->next;
        if (r->bar_head == NULL)
            r->bar_tail = NULL;
        barrier_send(r, b);
    }
}

static void barrier_append(bc_redis_t *r, bc__redis_barrier_t *b)
{
    b->next = NULL;
    if (r->bar_tail)
        r->bar_tail->next = b;
    else
        r->bar_head = b;
    r->bar_tail = b;
}

static bc__redis_barrier_t *barrier_new(bc_actor_t *actor, uint64_t tag, uint32_t type)
{
    bc__redis_barrier_t *b = malloc(sizeof *b);
    if (b == NULL)
        abort();
    b->actor = bc_actor_retain(actor);
    b->tag = tag;
    b->type = type;
    b->target = 0;
    b->next = NULL;
    return b;
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
    bc_redis_t *r = priv;
    redisReply *rep = reply;
    bc__redis_conn_t *c = ac->data;
    if (rep == NULL || c->ac != ac || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
        return;
    redisReply *kind = rep->element[0], *ch = rep->element[1], *pl = rep->element[2];
    if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "subscribe") == 0) {
        r->sub_confirmed++;
        fire_barriers(r);
        return;
    }
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
        ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING)
        return; /* subscribe/unsubscribe confirmations */
    bc__redis_subent_t *e = *find(r, ch->str, ch->len);
    if (e == NULL || ch->len > UINT32_MAX || pl->len > UINT32_MAX)
        return;
    bc_redis_pubsub_msg_t *m = bc_msg_alloc(sizeof *m + ch->len + pl->len + 2, BC_MSG_REDIS_PUBSUB);
    m->channel_len = (uint32_t)ch->len;
    m->payload_len = (uint32_t)pl->len;
    memcpy(m->data, ch->str, ch->len);
    m->data[ch->len] = '\0';
    memcpy(m->data + ch->len + 1, pl->str, pl->len);
    m->data[ch->len + 1 + pl->len] = '\0';
    /* relaxed: statistics. */
    atomic_fetch_add_explicit(&r->n_pubsub, 1, memory_order_relaxed);
    bc__tls_io_first = true;    /* on the I/O thread: its turn goes first (sched.c) */
    bc_send(e->actor, &m->hdr); /* -ESRCH: the actor stopped; the message is freed */
    bc__tls_io_first = false;
}

/* Send one SUBSCRIBE/UNSUBSCRIBE with the n names in r->batch_argv[1..n]. */
static void send_batch(bc_redis_t *r, bc__redis_conn_t *c, const char *verb, int n)
{
    if (n == 0 || c == NULL)
        return;
    r->batch_argv[0] = verb;
    r->batch_len[0] = strlen(verb);
    if (verb[0] == 'S')
        r->sub_sent += (uint64_t)n;
    /* Returns REDIS_ERR only for UNSUBSCRIBE on a connection not subscribed: nothing to do. */
    redisAsyncCommandArgv(c->ac, on_message, r, n + 1, r->batch_argv, r->batch_len);
}

static void add_to_batch(bc_redis_t *r, bc__redis_conn_t *c, const char *verb, int *n,
                         const char *name, size_t len)
{
    if (c == NULL)
        return;
    r->batch_argv[1 + *n] = name;
    r->batch_len[1 + *n] = len;
    if (++*n == BC_REDIS_SUB_BATCH) {
        send_batch(r, c, verb, *n);
        *n = 0;
    }
}

void bc__redis_sub_apply(bc_redis_t *r, bc__redis_req_t *req)
{
    bc__redis_conn_t *c = sub_conn(r);
    int n = 0;
    for (int i = 0; i < req->argc; i++) {
        bc__redis_subent_t **pp = find(r, req->argv[i], req->argvlen[i]);
        if (*pp) {
            if ((*pp)->actor != req->reply_to) {
                bc_actor_release((*pp)->actor);
                (*pp)->actor = bc_actor_retain(req->reply_to);
            }
            continue;
        }
        bc__redis_subent_t *e = malloc(sizeof *e + req->argvlen[i] + 1);
        if (e == NULL)
            abort();
        e->len = req->argvlen[i];
        memcpy(e->name, req->argv[i], e->len + 1);
        e->actor = bc_actor_retain(req->reply_to);
        e->next = NULL;
        *pp = e;
        r->nsubs++;
        add_to_batch(r, c, "SUBSCRIBE", &n, e->name, e->len);
    }
    send_batch(r, c, "SUBSCRIBE", n);
    /* relaxed: statistics. */
    atomic_store_explicit(&r->n_subs, r->nsubs, memory_order_relaxed);
    if (r->nsubs > r->nbuckets)
        grow(r);
    if (req->flags & BC__RF_SYNC) {
        bc__redis_barrier_t *b = barrier_new(req->reply_to, req->tag, BC_MSG_REDIS_SYNC);
        if (c) {
            b->target = r->sub_sent;
            barrier_append(r, b);
            fire_barriers(r);
        } else {
            b->next = r->parked;
            r->parked = b;
        }
    }
    bc__redis_req_free(req);
}

void bc__redis_unsub_apply(bc_redis_t *r, bc__redis_req_t *req)
{
    bc__redis_conn_t *c = sub_conn(r);
    int n = 0;
    for (int i = 0; i < req->argc; i++) {
        bc__redis_subent_t **pp = find(r, req->argv[i], req->argvlen[i]);
        bc__redis_subent_t *e = *pp;
        if (e == NULL)
            continue;
        *pp = e->next;
        r->nsubs--;
        bc_actor_release(e->actor);
        free(e);
        /* The request block still holds the name. */
        add_to_batch(r, c, "UNSUBSCRIBE", &n, req->argv[i], req->argvlen[i]);
    }
    send_batch(r, c, "UNSUBSCRIBE", n);
    /* relaxed: statistics. */
    atomic_store_explicit(&r->n_subs, r->nsubs, memory_order_relaxed);
    bc__redis_req_free(req);
}

void bc__redis_sub_restore(bc_redis_t *r)
{
    bc__redis_conn_t *c = sub_conn(r);
    int n = 0;
    r->sub_sent = r->sub_confirmed = 0; /* a fresh connection */
    r->generation++;
    for (size_t i = 0; i < r->nbuckets && c; i++)
        for (bc__redis_subent_t *e = r->buckets[i]; e; e = e->next)
            add_to_batch(r, c, "SUBSCRIBE", &n, e->name, e->len);
    send_batch(r, c, "SUBSCRIBE", n);
    /* Every barrier now waits for the whole restore; parked ones (in LIFO order) join them. */
    for (bc__redis_barrier_t *b = r->bar_head; b; b = b->next)
        b->target = r->sub_sent;
    bc__redis_barrier_t *p = r->parked, *rev = NULL;
    r->parked = NULL;
    while (p) {
        bc__redis_barrier_t *next = p->next;
        p->next = rev;
        rev = p;
        p = next;
    }
    while (rev) {
        bc__redis_barrier_t *next = rev->next;
        rev->target = r->sub_sent;
        barrier_append(r, rev);
        rev = next;
    }
    for (bc__redis_listener_t *l = r->listeners; l; l = l->next) {
        bc__redis_barrier_t *b = barrier_new(l->actor, 0, BC_MSG_REDIS_UP);
        b->target = r->sub_sent;
        barrier_append(r, b);
    }
    fire_barriers(r);
}

void bc__redis_watch_apply(bc_redis_t *r, bc__redis_req_t *req, bool add)
{
    bc__redis_listener_t **pp = &r->listeners;
    while (*pp && (*pp)->actor != req->reply_to)
        pp = &(*pp)->next;
    if (add && *pp == NULL) {
        bc__redis_listener_t *l = malloc(sizeof *l);
        if (l == NULL)
            abort();
        l->actor = bc_actor_retain(req->reply_to);
        l->next = NULL;
        *pp = l;
        if (sub_conn(r)) { /* already up: tell it once the current channels are live */
            bc__redis_barrier_t *b = barrier_new(l->actor, 0, BC_MSG_REDIS_UP);
            b->target = r->sub_sent;
            barrier_append(r, b);
            fire_barriers(r);
        }
    } else if (!add && *pp) {
        bc__redis_listener_t *l = *pp;
        *pp = l->next;
        bc_actor_release(l->actor);
        free(l);
    }
    bc__redis_req_free(req);
}

void bc__redis_sub_clear(bc_redis_t *r)
{
    for (size_t i = 0; i < r->nbuckets; i++) {
        bc__redis_subent_t *e = r->buckets[i];
        while (e) {
            bc__redis_subent_t *next = e->next;
            bc_actor_release(e->actor);
            free(e);
            e = next;
        }
        r->buckets[i] = NULL;
    }
    r->nsubs = 0;
    /* relaxed: statistics. */
    atomic_store_explicit(&r->n_subs, 0, memory_order_relaxed);
    bc__redis_barrier_t *lists[2] = {r->bar_head, r->parked};
    for (int i = 0; i < 2; i++)
        while (lists[i]) {
            bc__redis_barrier_t *b = lists[i];
            lists[i] = b->next;
            bc_actor_release(b->actor);
            free(b);
        }
    r->bar_head = r->bar_tail = r->parked = NULL;
    while (r->listeners) {
        bc__redis_listener_t *l = r->listeners;
        r->listeners = l->next;
        bc_actor_release(l->actor);
        free(l);
    }
}
