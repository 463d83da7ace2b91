/* obs_metrics.c - a hub's metric registry: the series, the collector that mirrors the hub's
 * and the Redis layer's counters into it, and the coordinator-table walk behind
 * blocking_coordinators_total and the per-coordinator series. Runs on the scraper actor
 * (obs.c), one scrape at a time.
 *
 * Key decision: cardinality is bounded by construction. blocking_coordinators_total is counted
 * from the table at each scrape, one series per (swarm, phase, status) present, at most
 * max_label_sets of them (the rest add to the "__overflow__" series); a label set that
 * disappears is exported as 0 for one scrape and then dropped, so stale ones never pile up.
 * No series carries a coordinator id unless per_coordinator is set; signal latency is keyed by
 * signal type with at most OBS_MAX_TYPES series.
 */
#include "obs_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OBS_MAX_TYPES 64
#define PREFETCH 16     /* table slots the snapshot walk prefetches ahead */
#define WALK_CHUNK 2048 /* table slots walked per hold of the hub's lock */
#define WALK_RETRIES 3  /* walks restarted by a growing table before one in one go */
#define OVERFLOW BC_METRIC_OVERFLOW_VALUE

typedef bc__obs_t obs_t;

/* Node's buckets (0.01 .. 10, with 2) merged with the Prometheus defaults and sub-millisecond
 * ones: signals delivered through the fast path take well under a millisecond. */
static const double latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                         0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                         1,      2,       2.5,    5,     10};

/* The Node peers' buckets for how long a coordinator stayed blocked, and the tutorial's. */
static const double blocking_buckets[] = {1, 5, 10, 30, 60, 120, 300, 600, 1800};
static const double coordination_buckets[] = {10, 30, 60, 120, 300, 600, 1800};

enum { FAIL_SIGNATURE, FAIL_MALFORMED, FAIL_REPLAY, FAIL_REDIS, FAIL_COUNT };
static const char *const fail_reasons[FAIL_COUNT] = {"signature", "malformed", "replay", "redis"};
enum { TO_SIGNAL_WAIT, TO_HEARTBEAT, TO_FORCED, TO_COUNT };
static const char *const timeout_types[TO_COUNT] = {"signal_wait", "heartbeat", "forced"};
static const int http_codes[9] = {400, 404, 405, 408, 413, 414, 431, 503, 504};

const char *bc__obs_state_name(int state)
{
    static const char *const names[] = {"waiting", "running", "completed", "timeout", "stopping"};
    return state >= 0 && state <= BC_STATE_STOPPING ? names[state] : "unknown";
}

/* ---------------------------------------------------------------- table snapshot */

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (h ^ 0xffu) * 1099511628211ull;
}

static uint64_t group_hash(const char *swarm, const char *phase, int status)
{
    return fnv(fnv(1469598103934665603ull ^ (uint64_t)(status + 2), swarm), phase);
}

static void groups_clear(bc__obs_groups_t *g)
{
    for (size_t i = 0; i < g->cap; i++)
        if (g->slots[i].swarm) {
            free(g->slots[i].swarm);
            free(g->slots[i].phase);
            g->slots[i].swarm = NULL;
        }
    g->n = 0;
}

void bc__obs_groups_free(bc__obs_groups_t *g)
{
    groups_clear(g);
    free(g->slots);
    memset(g, 0, sizeof *g);
}

static bc__obs_group_t *groups_find(const bc__obs_groups_t *g, uint64_t hash, const char *swarm,
                                    const char *phase, int status)
{
    if (g->cap == 0)
        return NULL;
    for (size_t i = hash & (g->cap - 1);; i = (i + 1) & (g->cap - 1)) {
        bc__obs_group_t *e = &g->slots[i];
        if (e->swarm == NULL)
            return NULL;
        if (e->hash == hash && e->status == status && strcmp(e->swarm, swarm) == 0 &&
            strcmp(e->phase, phase) == 0)
            return e;
    }
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        abort(); /* out of memory */
    return p;
}

/* Insert a new group (absent), growing the map first. */
static bc__obs_group_t *groups_put(bc__obs_groups_t *g, uint64_t hash, const char *swarm,
                                   const char *phase, int status)
{
    if ((g->n + 1) * 2 > g->cap) {
        bc__obs_groups_t ng = {calloc(g->cap ? g->cap * 2 : 64, sizeof *ng.slots),
                               g->cap ? g->cap * 2 : 64, 0};
        if (ng.slots == NULL)
            abort();
        for (size_t i = 0; i < g->cap; i++) {
            bc__obs_group_t *e = &g->slots[i];
            if (e->swarm == NULL)
                continue;
            size_t k = e->hash & (ng.cap - 1);
            while (ng.slots[k].swarm)
                k = (k + 1) & (ng.cap - 1);
            ng.slots[k] = *e;
            ng.n++;
        }
        free(g->slots);
        *g = ng;
    }
    size_t k = hash & (g->cap - 1);
    while (g->slots[k].swarm)
        k = (k + 1) & (g->cap - 1);
    g->slots[k] = (bc__obs_group_t){xstrdup(swarm), xstrdup(phase), status, hash, 0};
    g->n++;
    return &g->slots[k];
}

/* Count one coordinator under its label set (or the overflow one once the map is full). */
static void count_coord(obs_t *o, const char *swarm, const char *phase, int status)
{
    uint64_t hash = group_hash(swarm, phase, status);
    bc__obs_group_t *e = groups_find(&o->groups, hash, swarm, phase, status);
    if (e == NULL) {
        if (o->groups.n < o->max_label_sets) {
            e = groups_put(&o->groups, hash, swarm, phase, status);
        } else {
            uint64_t oh = group_hash(OVERFLOW, OVERFLOW, -1);
            e = groups_find(&o->groups, oh, OVERFLOW, OVERFLOW, -1);
            if (e == NULL)
                e = groups_put(&o->groups, oh, OVERFLOW, OVERFLOW, -1);
        }
    }
    e->count++;
}

/* Count (and, with per_coordinator, copy) the coordinators in table slots [i, end). h->lock
 * held; o->rows has room for end - i more rows. */
static void walk_slots(obs_t *o, bc_coord_t *const *table, size_t cap, size_t i, size_t end)
{
    for (; i < end; i++) {
        /* The walk is bound by cache misses (the coordinator's state and string pointers, then
         * its swarm and phase strings): ask for the first PREFETCH slots ahead, for the
         * strings half as far ahead, once the pointers have arrived. */
        bc_coord_t *p = i + PREFETCH < cap ? table[i + PREFETCH] : NULL;
        if (p && p != BC__TOMBSTONE) {
            __builtin_prefetch(&p->state);
            __builtin_prefetch(&p->swarm);
            __builtin_prefetch(&p->phase);
        }
        p = i + PREFETCH / 2 < cap ? table[i + PREFETCH / 2] : NULL;
        if (p && p != BC__TOMBSTONE) {
            __builtin_prefetch(p->swarm);
            if (p->phase)
                __builtin_prefetch(p->phase);
        }
        bc_coord_t *c = table[i];
        if (c == NULL || c == BC__TOMBSTONE)
            continue;
        /* relaxed: a statistic; each coordinator's state is read on its own. */
        int st = atomic_load_explicit(&c->state, memory_order_relaxed);
        count_coord(o, c->swarm[0] ? c->swarm : "none", c->phase ? c->phase : "none", st);
        if (o->per_coordinator) {
            bc__obs_coord_row_t *r = &o->rows[o->nrows++];
            memcpy(r->id, c->id, c->id_len + 1);
            r->state = st;
            /* relaxed: statistics. */
            r->iteration = atomic_load_explicit(&c->iteration, memory_order_relaxed);
            r->received = atomic_load_explicit(&c->signals_received, memory_order_relaxed);
            r->sent = atomic_load_explicit(&c->signals_sent, memory_order_relaxed);
        }
    }
}

/* Room for n more rows. No lock held. */
static void rows_reserve(obs_t *o, size_t n)
{
    if (o->nrows + n <= o->rows_cap)
        return;
    size_t want = o->nrows + n + (o->nrows + n) / 4;
    bc__obs_coord_row_t *r = realloc(o->rows, want * sizeof *r);
    if (r == NULL)
        abort(); /* out of memory */
    o->rows = r;
    o->rows_cap = want;
}

/* Walk the coordinator table: counts by label set and, with per_coordinator, one row per
 * coordinator. h->lock is taken per WALK_CHUNK slots, so a scrape of 100,000 coordinators
 * never holds up the watcher's lookups (the signal path) for more than one chunk; if the table
 * is rebuilt meanwhile (it grew), the walk starts over, in one go after WALK_RETRIES tries.
 * Each chunk is consistent; the whole is as of "during the scrape", like any counter.
 * I/O thread, inside bc_metrics_expose. */
static void snapshot(obs_t *o)
{
    bc_hub_t *h = o->h;
    bc__obs_groups_t t = o->prev;
    o->prev = o->groups;
    o->groups = t;
    for (int attempt = 0;; attempt++) {
        size_t chunk = attempt < WALK_RETRIES ? WALK_CHUNK : SIZE_MAX;
        groups_clear(&o->groups);
        o->nrows = 0;
        pthread_mutex_lock(&h->lock);
        bc_coord_t **table = h->table;
        size_t cap = h->cap, i = 0;
        bool moved = false;
        while (i < cap && !moved) {
            size_t end = cap - i > chunk ? i + chunk : cap;
            if (o->per_coordinator && o->nrows + (end - i) > o->rows_cap) {
                pthread_mutex_unlock(&h->lock); /* no allocation under the table lock */
                rows_reserve(o, end - i);
                pthread_mutex_lock(&h->lock);
                moved = h->table != table || h->cap != cap;
                if (moved)
                    break;
            }
            walk_slots(o, table, cap, i, end);
            i = end;
            if (i < cap) {
                pthread_mutex_unlock(&h->lock);
                pthread_mutex_lock(&h->lock);
                moved = h->table != table || h->cap != cap;
            }
        }
        pthread_mutex_unlock(&h->lock);
        if (!moved)
            return;
    }
}

static int group_cmp(const void *a, const void *b)
{
    const bc__obs_group_t *x = *(bc__obs_group_t *const *)a, *y = *(bc__obs_group_t *const *)b;
    int r = strcmp(x->swarm, y->swarm);
    if (r == 0)
        r = strcmp(x->phase, y->phase);
    return r ? r : x->status - y->status;
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xe0) == 0xc0 ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (n == 0 || (n == 2 && s[0] < 0xc2) || (n == 4 && s[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] > 0x9f) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] > 0x8f))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return n;
}

const char *bc__obs_utf8(const char *s, char *buf, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t k;
    while (*p && (k = utf8_len(p)) != 0)
        p += k;
    if (*p == '\0')
        return s;
    size_t o = 0;
    for (p = (const unsigned char *)s; *p && o + 4 < n;) {
        k = utf8_len(p);
        if (k == 0) {
            buf[o++] = '?';
            p++;
        } else {
            memcpy(buf + o, p, k);
            o += k;
            p += k;
        }
    }
    buf[o] = '\0';
    return buf;
}

static void emit_group(bc_metric_emitter_t *e, const bc__obs_group_t *g, double v)
{
    const char *status = g->status < 0 ? OVERFLOW : bc__obs_state_name(g->status);
    char phase[BC__OBS_TEXT_MAX];
    const char *values[] = {g->swarm, bc__obs_utf8(g->phase, phase, sizeof phase), status};
    bc_metric_emit(e, values, v);
}

/* blocking_coordinators_total: this scrape's label sets sorted, then the ones that vanished
 * since the previous scrape, as 0 (once). */
static void emit_blocking(bc_metric_emitter_t *e, void *arg)
{
    obs_t *o = arg;
    size_t n = 0;
    bc__obs_group_t **v = malloc((o->groups.n + 1) * sizeof *v);
    if (v == NULL)
        abort();
    for (size_t i = 0; i < o->groups.cap; i++)
        if (o->groups.slots[i].swarm)
            v[n++] = &o->groups.slots[i];
    qsort(v, n, sizeof *v, group_cmp);
    for (size_t i = 0; i < n; i++)
        emit_group(e, v[i], (double)v[i]->count);
    free(v);
    for (size_t i = 0; i < o->prev.cap; i++) {
        const bc__obs_group_t *p = &o->prev.slots[i];
        if (p->swarm && !groups_find(&o->groups, p->hash, p->swarm, p->phase, p->status))
            emit_group(e, p, 0);
    }
}

static void emit_redis_latency(bc_metric_emitter_t *e, void *arg)
{
    obs_t *o = arg;
    bc_redis_latency_t l;
    bc_redis_latency(o->h->redis, &l);
    bc_metric_emit_histogram(e, NULL, l.counts, l.sum_s);
}

enum { PC_RECEIVED, PC_SENT, PC_STATE, PC_ITERATION };

/* The per-coordinator families: one emitter per field over the same rows. */
static void emit_per_coord(bc_metric_emitter_t *e, obs_t *o, int field)
{
    for (size_t i = 0; i < o->nrows; i++) {
        const bc__obs_coord_row_t *r = &o->rows[i];
        double v = field == PC_RECEIVED ? (double)r->received
                   : field == PC_SENT   ? (double)r->sent
                   : field == PC_STATE  ? (double)r->state
                                        : (double)r->iteration;
        bc_metric_emit(e, (const char *const[]){r->id}, v);
    }
}

static void emit_pc_received(bc_metric_emitter_t *e, void *arg)
{
    emit_per_coord(e, arg, PC_RECEIVED);
}

static void emit_pc_sent(bc_metric_emitter_t *e, void *arg)
{
    emit_per_coord(e, arg, PC_SENT);
}

static void emit_pc_state(bc_metric_emitter_t *e, void *arg)
{
    emit_per_coord(e, arg, PC_STATE);
}

static void emit_pc_iteration(bc_metric_emitter_t *e, void *arg)
{
    emit_per_coord(e, arg, PC_ITERATION);
}

/* ---------------------------------------------------------------- registry */

static bc_metric_family_t *reg(obs_t *o, const char *name, const char *help, bc_metric_type_t type,
                               const char *label)
{
    bc_metric_family_t *f = NULL;
    bc_metric_opts_t mo = {.name = name, .help = help, .type = type, .labels = {label}};
    if (type == BC_METRIC_HISTOGRAM) {
        mo.buckets = latency_buckets;
        mo.nbuckets = sizeof latency_buckets / sizeof latency_buckets[0];
        mo.max_children = OBS_MAX_TYPES;
    }
    if (bc_metrics_register(o->m, &mo, &f) != 0)
        abort(); /* fixed, valid names: cannot fail */
    return f;
}

static void reg_fn(obs_t *o, const bc_metric_opts_t *mo, bc_metric_emit_fn fn)
{
    if (bc_metrics_register_fn(o->m, mo, fn, o, NULL) != 0)
        abort(); /* fixed, valid names: cannot fail */
}

static bc_counter_t *counter(obs_t *o, const char *name, const char *help, const char *label,
                             const char *value)
{
    bc_metric_family_t *f = reg(o, name, help, BC_METRIC_COUNTER, label);
    return bc_counter_labels(f, (const char *const[]){value});
}

static bc_gauge_t *gauge(obs_t *o, const char *name, const char *help)
{
    return bc_gauge_labels(reg(o, name, help, BC_METRIC_GAUGE, NULL), NULL);
}

/* Breaker state as Node reports it: 0 closed, 1 open, 2 half-open (a reconnect attempt is
 * pending, or the first connect is under way). */
int bc__obs_breaker_code(bc_breaker_state_t s)
{
    switch (s) {
    case BC_BREAKER_STATE_CLOSED:
        return 0;
    case BC_BREAKER_STATE_OPEN:
        return 1;
    default:
        return 2;
    }
}

static void collect(bc_metrics_t *m, void *arg)
{
    (void)m;
    obs_t *o = arg;
    bc_hub_stats_t hs;
    bc_redis_stats_t rs;
    bc_hub_stats(o->h, &hs);
    bc_redis_stats(o->h->redis, &rs);
    snapshot(o);
    bc_gauge_set(o->active, (double)hs.coordinators);
    bc_counter_set(o->sent, (double)hs.signals_sent);
    bc_counter_set(o->received, (double)hs.signals_delivered);
    bc_counter_set(o->failures[FAIL_SIGNATURE],
                   (double)(hs.rejected_signature + hs.rejected_unsigned));
    bc_counter_set(o->failures[FAIL_MALFORMED], (double)hs.rejected_malformed);
    bc_counter_set(o->failures[FAIL_REPLAY], (double)hs.replays);
    bc_counter_set(o->failures[FAIL_REDIS], (double)hs.send_failures);
    bc_counter_set(o->timeouts[TO_SIGNAL_WAIT], (double)hs.timeouts);
    bc_counter_set(o->timeouts[TO_HEARTBEAT], (double)hs.activity_timeouts);
    /* relaxed: a statistic. */
    bc_counter_set(o->timeouts[TO_FORCED],
                   (double)atomic_load_explicit(&o->n_forced, memory_order_relaxed));
    bc_counter_set(o->hb_failures[0], (double)hs.heartbeat_failures);
    bc_counter_set(o->hb_failures[1], (double)(hs.reaper_stale + hs.activity_timeouts));
    bc_counter_set(o->escalations, (double)hs.escalations);
    bc_counter_set(o->spawns, (double)hs.spawns);
    bc_counter_set(o->deadlocks, (double)hs.deadlocks);
    bc_gauge_set(o->breaker_state, bc__obs_breaker_code(rs.breaker.state));
    bc_gauge_set(o->breaker_open_s, (double)rs.breaker.open_ms_total / 1000.0);
    bc_counter_set(o->reconnections, (double)rs.breaker.reconnections);
    for (int i = 0; i < BC_BREAKER_REASON_COUNT; i++)
        bc_counter_set(o->triggers[i], (double)rs.breaker.triggers[i]);
    bc_gauge_set(o->redis_connected, rs.connected ? 1 : 0);
    bc_counter_set(o->redis_commands, (double)rs.submitted);
    bc_gauge_set(o->pipeline_depth, (double)rs.max_pipeline);
    /* relaxed: a statistic. */
    bc_counter_set(o->admin_refused,
                   (double)atomic_load_explicit(&o->n_admin_refused, memory_order_relaxed));
    {
        const bc_http_stats_t s = o->http_now;
        const uint64_t v[9] = {s.bad_request,       s.not_found,      s.bad_method,
                               s.timeouts,          s.body_too_large, s.uri_too_long,
                               s.headers_too_large, s.conns_rejected, s.handler_timeouts};
        for (int i = 0; i < 9; i++)
            bc_counter_set(o->http_errors[i], (double)v[i]);
    }
}

void bc__obs_build_registry(obs_t *o)
{
    o->m = bc_metrics_create(0);
    o->active = gauge(o, "active_coordinators", "Number of active coordinators");
    reg_fn(o,
           &(bc_metric_opts_t){.name = "blocking_coordinators_total",
                               .help = "Coordinators hosted here, by swarm, phase and state "
                                       "(counted from the coordinator table at each scrape)",
                               .type = BC_METRIC_GAUGE,
                               .labels = {"swarm_id", "phase", "status"}},
           emit_blocking);
    o->sent = counter(o, "signals_sent_total", "Total signals sent", NULL, NULL);
    o->received =
        counter(o, "signals_received_total", "Total signals received (delivered)", NULL, NULL);
    bc_metric_family_t *f =
        reg(o, "signal_delivery_failures_total", "Total signals that could not be delivered",
            BC_METRIC_COUNTER, "reason");
    for (int i = 0; i < FAIL_COUNT; i++)
        o->failures[i] = bc_counter_labels(f, (const char *const[]){fail_reasons[i]});
    o->latency = reg(o, "signal_delivery_latency_seconds",
                     "Latency of signal delivery from send to receipt in seconds",
                     BC_METRIC_HISTOGRAM, "signal_type");
    bc_metric_opts_t ho = {.name = "blocking_duration_seconds",
                           .help = "Time a coordinator spent blocked waiting for a signal",
                           .type = BC_METRIC_HISTOGRAM,
                           .labels = {"swarm_id", "status"},
                           .buckets = blocking_buckets,
                           .nbuckets = sizeof blocking_buckets / sizeof blocking_buckets[0],
                           .max_children = OBS_MAX_TYPES};
    if (bc_metrics_register(o->m, &ho, &o->blocking_dur) != 0)
        abort();
    bc_metric_opts_t co = {.name = "blocking_coordination_duration_seconds",
                           .help = "Duration of blocking coordination waits (the tutorial's name)",
                           .type = BC_METRIC_HISTOGRAM,
                           .buckets = coordination_buckets,
                           .nbuckets =
                               sizeof coordination_buckets / sizeof coordination_buckets[0]};
    bc_metric_family_t *cf = NULL;
    if (bc_metrics_register(o->m, &co, &cf) != 0)
        abort();
    o->coordination_dur = bc_histogram_labels(cf, NULL);
    f = reg(o, "timeout_events_total",
            "Total number of timeout events triggered (signal_wait: a wait timed out; heartbeat: "
            "a coordinator's activity record went stale; forced: a wait ended by force-unblock)",
            BC_METRIC_COUNTER, "timeout_type");
    for (int i = 0; i < TO_COUNT; i++)
        o->timeouts[i] = bc_counter_labels(f, (const char *const[]){timeout_types[i]});
    f = reg(o, "heartbeat_failures_total",
            "Total number of heartbeat failures detected (write: a heartbeat not written; stale: "
            "a stale heartbeat or activity record seen by the reaper)",
            BC_METRIC_COUNTER, "failure_type");
    o->hb_failures[0] = bc_counter_labels(f, (const char *const[]){"write"});
    o->hb_failures[1] = bc_counter_labels(f, (const char *const[]){"stale"});
    o->escalations =
        counter(o, "dead_coordinator_escalations_total",
                "Dead coordinators whose escalation this process won (replaced here)", NULL, NULL);
    o->spawns = counter(o, "coordinator_spawns_total",
                        "Coordinators spawned by this hub, replacements included", NULL, NULL);
    o->deadlocks = counter(o, "coordinator_deadlocks_total", "Wait cycles reported", NULL, NULL);
    o->breaker_state = gauge(o, "circuit_breaker_state",
                             "Redis circuit breaker state (0 closed, 1 open, 2 half-open)");
    f = reg(o, "circuit_breaker_triggers_total", "Redis failures acted upon by the circuit breaker",
            BC_METRIC_COUNTER, "reason");
    for (int i = 0; i < BC_BREAKER_REASON_COUNT; i++)
        o->triggers[i] = bc_counter_labels(
            f, (const char *const[]){bc_breaker_reason_name((bc_breaker_reason_t)i)});
    o->reconnections = counter(o, "circuit_breaker_reconnections_total",
                               "Successful Redis reconnections after a failure", NULL, NULL);
    o->breaker_open_s = gauge(o, "circuit_breaker_open_duration_seconds",
                              "Cumulative time the Redis circuit breaker has been open in seconds");
    o->redis_connected = gauge(o, "redis_connected", "1 when every Redis connection is up");
    o->redis_commands = counter(o, "redis_commands_total", "Redis commands submitted", NULL, NULL);
    o->pipeline_depth =
        gauge(o, "redis_pipeline_depth", "Deepest per-connection Redis pipeline seen");
    reg_fn(o,
           &(bc_metric_opts_t){.name = "redis_command_latency_seconds",
                               .help = "Redis command latency from submission to reply",
                               .type = BC_METRIC_HISTOGRAM,
                               .buckets = bc_redis_latency_bounds,
                               .nbuckets = BC_REDIS_LATENCY_BUCKETS},
           emit_redis_latency);
    o->admin_refused =
        counter(o, "admin_requests_refused_total",
                "Admin API requests refused (not loopback, no valid bearer token)", NULL, NULL);
    f = reg(o, "http_request_errors_total",
            "HTTP requests of the metrics server answered with an error, by status code",
            BC_METRIC_COUNTER, "code");
    for (int i = 0; i < 9; i++) {
        char code[8];
        snprintf(code, sizeof code, "%d", http_codes[i]);
        o->http_errors[i] = bc_counter_labels(f, (const char *const[]){code});
    }
    if (o->per_coordinator) {
        static const struct {
            const char *name, *help;
            bc_metric_type_t type;
            bc_metric_emit_fn fn;
        } pc[] = {
            {"coordinator_signals_received_total", "Signals delivered to this coordinator",
             BC_METRIC_COUNTER, emit_pc_received},
            {"coordinator_signals_sent_total", "Signals this coordinator sent", BC_METRIC_COUNTER,
             emit_pc_sent},
            {"coordinator_state",
             "Coordinator state (0 waiting, 1 running, 2 completed, 3 timeout, 4 stopping)",
             BC_METRIC_GAUGE, emit_pc_state},
            {"coordinator_iteration", "Coordinator iteration counter", BC_METRIC_GAUGE,
             emit_pc_iteration},
        };
        for (size_t i = 0; i < sizeof pc / sizeof pc[0]; i++)
            reg_fn(o,
                   &(bc_metric_opts_t){.name = pc[i].name,
                                       .help = pc[i].help,
                                       .type = pc[i].type,
                                       .labels = {"coordinator_id"}},
                   pc[i].fn);
    }
    bc_metrics_register_process(o->m); /* -ENOENT without /proc: no process_* series */
    bc_metrics_add_collector(o->m, collect, o, NULL);
}
