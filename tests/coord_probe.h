/* coord_probe.h - test support for coordinator suites: a coordinator that records every
 * signal and event it sees, and helpers to wait for them (header-only; include once per test).
 */
#ifndef BC_TEST_COORD_PROBE_H
#define BC_TEST_COORD_PROBE_H

#include "blockcoord_cfn.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROBE_MAX 256

typedef struct {
    char sender[65], type[33], message_id[256], payload[512];
    uint64_t timestamp, iteration;
    int verified;
} probe_sig_t;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const char *types;   /* wait filter */
    uint32_t timeout_ms; /* per wait */
    int ready;
    int nsig, ntimeouts, ncanceled;
    probe_sig_t sig[PROBE_MAX];
    int nev;
    char ev[PROBE_MAX][160]; /* "signal coord-a", "rejected invalid signature", ... */
    bc_coord_t *coord;
    /* ACK wait results */
    int nack_results;
    int ack_status;
    size_t ack_n_acked;
    uint8_t ack_acked[16];
} probe_t;

static inline void probe_init(probe_t *p, const char *types, uint32_t timeout_ms)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->types = types;
    p->timeout_ms = timeout_ms;
}

static inline void probe_on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);

static inline void probe_rewait(bc_coord_t *c, probe_t *p)
{
    bc_coord_wait(c, p->types, p->timeout_ms, probe_on_signal, p);
}

static inline void probe_on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    probe_t *p = arg;
    pthread_mutex_lock(&p->lock);
    if (status == 0 && p->nsig < PROBE_MAX) {
        probe_sig_t *r = &p->sig[p->nsig++];
        snprintf(r->sender, sizeof r->sender, "%s", s->sender);
        snprintf(r->type, sizeof r->type, "%s", s->type);
        snprintf(r->message_id, sizeof r->message_id, "%s", s->message_id);
        snprintf(r->payload, sizeof r->payload, "%s", s->payload ? s->payload : "");
        r->timestamp = s->timestamp_ms;
        r->iteration = s->iteration;
        r->verified = s->verified;
    } else if (status == -ETIMEDOUT) {
        p->ntimeouts++;
    } else if (status == -ECANCELED) {
        p->ncanceled++;
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (status != -ECANCELED)
        probe_rewait(c, p);
}

static inline void probe_on_start(bc_coord_t *c, void *arg)
{
    probe_t *p = arg;
    pthread_mutex_lock(&p->lock);
    p->ready = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    probe_rewait(c, p);
}

static inline const char *probe_ev_name(bc_coord_event_type_t t)
{
    switch (t) {
    case BC_EV_READY:
        return "ready";
    case BC_EV_SIGNAL:
        return "signal";
    case BC_EV_ACK_SENT:
        return "ack_sent";
    case BC_EV_REJECTED:
        return "rejected";
    case BC_EV_ACK_RECEIVED:
        return "ack_received";
    case BC_EV_ACK_VERIFIED:
        return "ack_verified";
    case BC_EV_ACK_INVALID:
        return "ack_invalid";
    case BC_EV_TIMEOUT:
        return "timeout";
    case BC_EV_SEND_FAILED:
        return "send_failed";
    case BC_EV_WORK:
        return "work";
    }
    return "?";
}

static inline void probe_on_event(bc_coord_t *c, const bc_coord_event_t *ev, void *arg)
{
    probe_t *p = arg;
    pthread_mutex_lock(&p->lock);
    if (p->nev < PROBE_MAX)
        snprintf(p->ev[p->nev++], sizeof p->ev[0], "%s %s %s", probe_ev_name(ev->type),
                 ev->peer ? ev->peer : "-", ev->detail ? ev->detail : "-");
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Wait (up to ms) until pred(p) holds; returns 1 if it did. */
static inline int probe_until(probe_t *p, int (*pred)(probe_t *, const void *), const void *arg,
                              unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    int ok;
    while (!(ok = pred(p, arg)))
        if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) != 0) {
            ok = pred(p, arg);
            break;
        }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

static inline int pred_ready(probe_t *p, const void *arg)
{
    (void)arg;
    return p->ready;
}

static inline int pred_nsig(probe_t *p, const void *arg)
{
    return p->nsig >= *(const int *)arg;
}

static inline int pred_event(probe_t *p, const void *arg)
{
    for (int i = 0; i < p->nev; i++)
        if (strstr(p->ev[i], (const char *)arg))
            return 1;
    return 0;
}

static inline int pred_ack_result(probe_t *p, const void *arg)
{
    (void)arg;
    return p->nack_results > 0;
}

static inline int probe_count_events(probe_t *p, const char *needle)
{
    int n = 0;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nev; i++)
        if (strstr(p->ev[i], needle))
            n++;
    pthread_mutex_unlock(&p->lock);
    return n;
}

static inline void probe_on_acks(bc_coord_t *c, const bc_ack_result_t *r, void *arg)
{
    probe_t *p = arg;
    pthread_mutex_lock(&p->lock);
    p->nack_results++;
    p->ack_status = r->status;
    p->ack_n_acked = r->n_acked;
    for (size_t i = 0; i < r->n && i < 16; i++)
        p->ack_acked[i] = r->acked[i];
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Spawn a probe coordinator with id on hub h. */
static inline bc_coord_t *probe_spawn(bc_hub_t *h, const char *id, probe_t *p)
{
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = id;
    o.on_start = probe_on_start;
    o.on_event = probe_on_event;
    o.arg = p;
    char err[256];
    bc_coord_t *c = NULL;
    int rc = bc_coord_spawn(h, &o, &c, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "spawn %s: %s\n", id, err);
        return NULL;
    }
    p->coord = c;
    return c;
}

/* probe_init + probe_spawn, then wait (10 s at most) until it can receive; fails the test
 * otherwise. Needs cmocka (include harness.h first). */
static inline bc_coord_t *probe_start(bc_hub_t *h, const char *id, probe_t *p, const char *types)
{
    probe_init(p, types, 60000);
    bc_coord_t *c = probe_spawn(h, id, p);
    assert_non_null(c);
    assert_true(probe_until(p, pred_ready, NULL, 10000));
    return c;
}

#endif
