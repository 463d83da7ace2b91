/* chaos_restart_ring.c - the ring of redis-restart: N coordinators in this process, each
 * sending {"seq":n} to the next one at a fixed rate (one driver actor, one periodic timer), each
 * counting what it receives from the previous one: first receipts, repeats, seq going backwards,
 * and the sends the library reported failed.
 *
 * Key decision: a receiver's table of seqs is touched only by that coordinator's callbacks; the
 * main thread reads it only after rr_stop_ring has destroyed the hub, so no lock is needed.
 */
#include "chaos_restart.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the ring */

static void on_ring_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);

static void ring_wait(bc_coord_t *c, ring_node_t *n)
{
    int rc = bc_coord_wait(c, NULL, 600000, on_ring_signal, n);
    if (rc != 0 && rc != -ECANCELED)
        bc_log(BC_LOG_ERROR, "%s: cannot wait: %s", n->id, bc_strerror(rc));
}

static void on_ring_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    ring_node_t *n = arg;
    if (status == -ECANCELED)
        return;
    if (status == 0 && strcmp(s->type, "ring") == 0) {
        double seq = bc_signal_num(s, "seq", -1);
        /* relaxed: counters read by the main thread for progress; exact after the hub stops. */
        if (strcmp(s->sender, n->prev) != 0 || seq < 1 || seq >= (double)n->seen_cap) {
            atomic_fetch_add_explicit(&n->foreign, 1, memory_order_relaxed);
        } else {
            size_t k = (size_t)seq;
            if (n->seen[k] < 255)
                n->seen[k]++;
            if (n->seen[k] == 1)
                atomic_fetch_add_explicit(&n->delivered, 1, memory_order_relaxed);
            else
                atomic_fetch_add_explicit(&n->dups, 1, memory_order_relaxed);
            if (k < n->max_seq)
                atomic_fetch_add_explicit(&n->reordered, 1, memory_order_relaxed);
            else
                n->max_seq = k;
        }
    }
    ring_wait(c, n);
}

static void on_ring_event(bc_coord_t *c, const bc_coord_event_t *ev, void *arg)
{
    ring_node_t *n = arg;
    (void)c;
    if (ev->type == BC_EV_SEND_FAILED)
        atomic_fetch_add_explicit(&n->send_failed, 1, memory_order_relaxed);
}

static void on_ring_start(bc_coord_t *c, void *arg)
{
    ring_node_t *n = arg;
    /* release: the main thread starts the driver after seeing every node ready. */
    atomic_fetch_add_explicit(&n->r->ready, 1, memory_order_release);
    ring_wait(c, n);
}

static void driver(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    rr_t *r = state;
    (void)self;
    /* acquire: a stop request from the main thread ends the sends at once. */
    if (msg->type != RING_TICK || !atomic_load_explicit(&r->sending, memory_order_acquire))
        return;
    for (unsigned i = 0; i < r->ring; i++) {
        ring_node_t *n = &r->nodes[i];
        char payload[48], err[256];
        snprintf(payload, sizeof payload, "{\"seq\":%llu}", (unsigned long long)++n->next_seq);
        if (bc_coord_send(n->c, n->next, "ring", payload, NULL, err, sizeof err) == 0)
            atomic_fetch_add_explicit(&n->sent, 1, memory_order_relaxed);
        else
            bc_log(BC_LOG_ERROR, "%s: send refused: %s", n->id, err);
    }
}

int rr_start_ring(rr_t *r)
{
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.heartbeat_ms = (uint32_t)r->hb_ms;
    ho.stale_ms = 30000;
    ho.scan_ms = 5000;
    if (bc_cli_start_hub("blockcoord chaos redis-restart: ", NULL, &ho, &r->rt, &r->hub) != 0)
        return -1;
    if (bc_hub_wait_ready(r->hub, 10000) != 0) {
        rr_fail(r, "the ring's hub did not connect to %s", r->sock);
        return -1;
    }
    size_t cap = (size_t)(r->duration_s + 120) * r->rate + 1024;
    for (unsigned i = 0; i < r->ring; i++) {
        ring_node_t *n = &r->nodes[i];
        n->r = r;
        snprintf(n->id, sizeof n->id, "%s-ring-%u", r->tag, i);
        snprintf(n->next, sizeof n->next, "%s-ring-%u", r->tag, (i + 1) % r->ring);
        snprintf(n->prev, sizeof n->prev, "%s-ring-%u", r->tag, (i + r->ring - 1) % r->ring);
        n->seen = calloc(cap, 1);
        if (n->seen == NULL)
            abort();
        n->seen_cap = cap;
        bc_coord_opts_t co;
        bc_coord_opts_init(&co);
        co.id = n->id;
        co.swarm_id = r->swarm;
        co.on_start = on_ring_start;
        co.on_event = on_ring_event;
        co.arg = n;
        char err[256];
        if (bc_coord_spawn(r->hub, &co, &n->c, err, sizeof err) != 0) {
            rr_fail(r, "cannot spawn %s: %s", n->id, err);
            return -1;
        }
    }
    uint64_t until = chaos_wall_ms() + 10000;
    while (atomic_load_explicit(&r->ready, memory_order_acquire) < r->ring) {
        if (chaos_wall_ms() > until) {
            rr_fail(r, "the ring coordinators did not start within 10 s");
            return -1;
        }
        chaos_sleep_ms(10);
    }
    r->driver = bc_spawn(r->rt, driver, r);
    atomic_store_explicit(&r->sending, 1, memory_order_release);
    uint64_t period = 1000 / r->rate ? 1000 / r->rate : 1;
    if (r->driver == NULL || bc_timer_start(r->driver, RING_TICK, period, period, NULL) != 0) {
        rr_fail(r, "cannot start the ring's driver");
        return -1;
    }
    return 0;
}

void rr_stop_ring(rr_t *r)
{
    if (r->driver) {
        bc_stop(r->driver);
        bc_actor_release(r->driver);
        r->driver = NULL;
    }
    if (r->hub)
        bc_hub_destroy(r->hub);
    r->hub = NULL;
    for (unsigned i = 0; i < r->ring; i++) {
        bc_coord_release(r->nodes[i].c);
        r->nodes[i].c = NULL;
    }
    if (r->rt)
        bc_runtime_destroy(r->rt);
    r->rt = NULL;
}

void rr_totals(rr_t *r, uint64_t *sent, uint64_t *delivered, uint64_t *failed, uint64_t *dups)
{
    *sent = *delivered = *failed = *dups = 0;
    for (unsigned i = 0; i < r->ring; i++) {
        /* relaxed: progress figures. */
        *sent += atomic_load_explicit(&r->nodes[i].sent, memory_order_relaxed);
        *delivered += atomic_load_explicit(&r->nodes[i].delivered, memory_order_relaxed);
        *failed += atomic_load_explicit(&r->nodes[i].send_failed, memory_order_relaxed);
        *dups += atomic_load_explicit(&r->nodes[i].dups, memory_order_relaxed);
    }
}
