/* cmd_demo.c - `blockcoord demo` (the CFN Loop at scale) and `blockcoord ring` (the runtime
 * demo: actors passing tokens in a ring, no Redis).
 *
 * demo: P product owners, each with V validators, all hosted as coordinators in one hub of one
 * process. Every round each product owner sends `validate` to its validators; each validator,
 * blocked on `validate`, answers with `validation` (validatorId, confidence, recommendations);
 * the product owner, blocked on `validation`, counts the answers (each validator exactly once),
 * takes the mean confidence as consensus, decides PROCEED / DEFER / ESCALATE and sends `decide`
 * to every validator, which is blocked on `decide`. Every signal goes through Redis, signed, and
 * carries its CLOCK_MONOTONIC send time, so the receiver measures the latency exactly (one
 * process, one clock). Latencies go into per-worker log-linear histograms (no lock per sample).
 *
 * Key decision: the demo is checked, not only timed. Each wait has a timeout; an answer from
 * the wrong round, a second answer from one validator, a missing answer or a signal the hub did
 * not deliver exactly once is an error, counted, named on stderr, and the exit status is 1.
 */
#include "cli.h"

#include "blockcoord_cfn.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ================================================================ latency histogram */

/* Log-linear: values below 2^SUB_BITS exact, above that 2^SUB_BITS buckets per power of two
 * (relative error under 1%). One histogram per worker thread, written only by that worker. */
#define H_SUB_BITS 7
#define H_SUB (1u << H_SUB_BITS)
#define H_BUCKETS ((64u - H_SUB_BITS + 1u) * H_SUB)

typedef struct {
    _Alignas(64) _Atomic uint64_t n;
    _Atomic uint64_t b[H_BUCKETS];
} hist_t;

static unsigned h_index(uint64_t v)
{
    if (v < H_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v), shift = e - H_SUB_BITS;
    return (shift + 1u) * H_SUB + (unsigned)((v >> shift) & (H_SUB - 1u));
}

/* The middle of bucket i, in ns. */
static double h_value(unsigned i)
{
    if (i < H_SUB)
        return (double)i;
    unsigned shift = i / H_SUB - 1u, sub = i % H_SUB;
    double lo = (double)((uint64_t)(H_SUB + sub) << shift);
    return lo + (double)((uint64_t)1 << shift) / 2.0;
}

/* ================================================================ the CFN Loop demo */

#define MAX_ERRS 5

typedef struct demo_s demo_t;

typedef struct {
    demo_t *d;
    uint32_t po; /* product owner index, 0-based */
    int32_t v;   /* -1: the product owner; else the validator index, 0-based */
    char id[BC_COORD_ID_MAX + 1];
    char po_id[BC_COORD_ID_MAX + 1]; /* a validator's product owner */
    /* Touched only by the coordinator's own callbacks (one at a time): */
    uint32_t round;    /* current round, 1-based */
    uint64_t answered; /* product owner: bit j = validator j answered this round */
    uint32_t nanswers;
    uint64_t conf_sum; /* hundredths */
} node_t;

struct demo_s {
    uint32_t P, V, R, timeout_ms;
    uint64_t seed;
    char run[17]; /* this run's nonce: signals of an earlier run in the same Redis are stale */
    node_t *nodes;
    hist_t *hist;
    unsigned nhist; /* workers + 1 (the last one for any other thread) */
    _Atomic uint64_t ready, finished, failed_nodes;
    _Atomic uint64_t decisions, proceed, defer, escalate;
    _Atomic uint64_t *round_done; /* [R]: product owners that decided round r+1 */
    _Atomic uint64_t timeouts, duplicates, unexpected, send_errors, stale;
    _Atomic int stopping;
    pthread_mutex_t err_lock; /* errors only: never on the signal path */
    unsigned nerrs;
    char errs[MAX_ERRS][256];
};

static void count(_Atomic uint64_t *c)
{
    /* relaxed: counters, read after the finished counter's acquire. */
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uint64_t load(_Atomic uint64_t *c)
{
    /* relaxed: progress counters. */
    return atomic_load_explicit(c, memory_order_relaxed);
}

__attribute__((format(printf, 3, 4))) static void demo_error(demo_t *d, _Atomic uint64_t *counter,
                                                             const char *fmt, ...)
{
    count(counter);
    pthread_mutex_lock(&d->err_lock);
    if (d->nerrs < MAX_ERRS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->errs[d->nerrs], sizeof d->errs[0], fmt, ap);
        va_end(ap);
    }
    d->nerrs++;
    pthread_mutex_unlock(&d->err_lock);
}

static void node_finish(node_t *n, bool ok)
{
    if (!ok)
        count(&n->d->failed_nodes);
    /* release: the main thread's acquire then sees everything this coordinator counted. */
    atomic_fetch_add_explicit(&n->d->finished, 1, memory_order_release);
}

static void record_latency(demo_t *d, uint64_t sent_ns)
{
    uint64_t now = bc_now_ns(), lat = now > sent_ns ? now - sent_ns : 0;
    int w = bc_worker_id();
    hist_t *h = &d->hist[w >= 0 && (unsigned)w + 1 < d->nhist ? (unsigned)w : d->nhist - 1];
    /* relaxed: one writer per histogram (a worker); merged after the run. */
    atomic_fetch_add_explicit(&h->b[h_index(lat)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- deterministic choices */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    return mix64(seed ^ mix64(a ^ mix64(b ^ mix64(c))));
}

static double u01(uint64_t h)
{
    return (double)(h >> 11) * 0x1.0p-53;
}

/* A validator's confidence in hundredths (35..100). Mostly 0.85-1.00; a validator sometimes
 * dissents (0.35-0.80), more often on a contentious task, so all three decisions occur. */
static unsigned confidence(const demo_t *d, uint32_t po, uint32_t v, uint32_t round)
{
    bool contentious = u01(rnd(d->seed, po, UINT32_MAX, round)) < 0.07;
    uint64_t h = rnd(d->seed, po, v, round);
    double u = u01(h), u2 = u01(mix64(h));
    double x = u < (contentious ? 0.6 : 0.09) ? 0.35 + 0.45 * u2 : 0.85 + 0.15 * u2;
    unsigned c = (unsigned)(x * 100.0 + 0.5);
    return c > 100 ? 100 : c;
}

static const char *const tasks[] = {
    "implement JWT authentication middleware",
    "add rate limiting to the public API",
    "migrate sessions to Redis",
    "refactor the billing module",
    "add OpenTelemetry tracing",
    "harden input validation on uploads",
    "split the monolith's user service",
    "add a retry policy to the payment client",
};

static const char *const recs_high[] = {
    "Add a regression test for the edge case",
    "Document the new configuration option",
    "Ship it behind a feature flag",
};
static const char *const recs_mid[] = {
    "Tighten error handling on the failure path",
    "Add integration tests against a real Redis",
    "Review the timeout values",
};
static const char *const recs_low[] = {
    "Rework the design before merging",
    "Cover the concurrency cases with tests",
    "Escalate the security concerns to the architect",
};

/* ---------------------------------------------------------------- payloads */

typedef struct {
    bool stale; /* not this run's */
    bool ok;    /* round and sentNs present */
    uint64_t round, sent_ns;
    int conf; /* hundredths, or -1 */
    char vid[BC_COORD_ID_MAX + 1];
} payload_t;

static void parse_payload(const demo_t *d, const bc_signal_t *s, payload_t *p)
{
    memset(p, 0, sizeof *p);
    p->conf = -1;
    json_t *root = s->payload ? json_loads(s->payload, 0, NULL) : NULL;
    if (root == NULL)
        return;
    const char *run = json_string_value(json_object_get(root, "run"));
    if (run == NULL || strcmp(run, d->run) != 0) {
        p->stale = true;
        json_decref(root);
        return;
    }
    json_t *r = json_object_get(root, "round"), *t = json_object_get(root, "sentNs");
    json_t *c = json_object_get(root, "confidence"), *v = json_object_get(root, "validatorId");
    if (json_is_integer(r) && json_is_integer(t) && json_integer_value(r) > 0 &&
        json_integer_value(t) > 0) {
        p->ok = true;
        p->round = (uint64_t)json_integer_value(r);
        p->sent_ns = (uint64_t)json_integer_value(t);
    }
    if (json_is_number(c) && json_number_value(c) >= 0 && json_number_value(c) <= 1)
        p->conf = (int)(json_number_value(c) * 100.0 + 0.5);
    if (json_is_string(v))
        snprintf(p->vid, sizeof p->vid, "%s", json_string_value(v));
    json_decref(root);
}

/* Send round `round`'s validate to every validator of product owner n. Reads only n's constant
 * fields, so the main thread may do it for round 1. Returns false if a send was refused. */
static bool send_validates(demo_t *d, bc_coord_t *c, const node_t *n, uint32_t round)
{
    const char *task = tasks[rnd(d->seed, n->po, round, 7) % (sizeof tasks / sizeof tasks[0])];
    bool ok = true;
    for (uint32_t j = 0; j < d->V; j++) {
        char to[BC_COORD_ID_MAX + 24], pl[256], err[200];
        snprintf(to, sizeof to, "%s-v%u", n->id, j + 1);
        snprintf(pl, sizeof pl, "{\"round\":%u,\"task\":\"%s\",\"run\":\"%s\",\"sentNs\":%llu}",
                 round, task, d->run, (unsigned long long)bc_now_ns());
        int rc = bc_coord_send(c, to, "validate", pl, NULL, err, sizeof err);
        if (rc != 0) {
            demo_error(d, &d->send_errors, "%s: validate to %s refused: %s", n->id, to, err);
            ok = false;
        }
    }
    return ok;
}

static void po_on_validation(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);
static void v_on_validate(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);
static void v_on_decide(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);

static void wait_ms(bc_coord_t *c, node_t *n, const char *type, bc_coord_signal_fn fn,
                    uint32_t timeout_ms)
{
    int rc = bc_coord_wait(c, type, timeout_ms, fn, n);
    if (rc != 0) {
        /* relaxed: a flag set once by the main thread after the run. */
        if (!atomic_load_explicit(&n->d->stopping, memory_order_relaxed))
            demo_error(n->d, &n->d->unexpected, "%s: cannot wait for %s: %s", n->id, type,
                       bc_strerror(rc));
        node_finish(n, false);
    }
}

static void wait_or_fail(bc_coord_t *c, node_t *n, const char *type, bc_coord_signal_fn fn)
{
    wait_ms(c, n, type, fn, n->d->timeout_ms);
}

/* The first wait starts when the coordinator is hosted, before the main thread has seen every
 * coordinator ready (which it waits for up to --timeout + 10 s): allow for that. */
static uint32_t first_wait_ms(const demo_t *d)
{
    uint64_t ms = 2ull * d->timeout_ms + 10000;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/* A wait ended without a signal. Returns true (the caller returns). */
static bool wait_failed(node_t *n, int status, const char *type, const char *from)
{
    demo_t *d = n->d;
    /* relaxed: a flag set once by the main thread after the run. */
    if (status == -ECANCELED && atomic_load_explicit(&d->stopping, memory_order_relaxed))
        return true; /* the demo is over: coordinators are being stopped */
    if (status == -ETIMEDOUT)
        demo_error(d, &d->timeouts, "%s: no %s from %s within %u ms (round %u)", n->id, type, from,
                   d->timeout_ms, n->round);
    else
        demo_error(d, &d->unexpected, "%s: wait for %s ended: %s", n->id, type,
                   bc_strerror(status));
    node_finish(n, false);
    return true;
}

/* ---------------------------------------------------------------- product owner */

static void po_on_start(bc_coord_t *c, void *arg)
{
    node_t *n = arg;
    n->round = 1;
    bc_coord_set_iteration(c, 1);
    count(&n->d->ready);
    wait_ms(c, n, "validation", po_on_validation, first_wait_ms(n->d));
}

/* The validator index of `sender` if it is one of n's validators, else -1. */
static int validator_of(const demo_t *d, const node_t *n, const char *sender)
{
    size_t l = strlen(n->id);
    if (strncmp(sender, n->id, l) != 0 || sender[l] != '-' || sender[l + 1] != 'v')
        return -1;
    char *end;
    errno = 0;
    unsigned long j = strtoul(sender + l + 2, &end, 10);
    if (errno || *end || j < 1 || j > d->V || sender[l + 2] == '0')
        return -1;
    return (int)j - 1;
}

static void po_decide(bc_coord_t *c, node_t *n)
{
    demo_t *d = n->d;
    /* Thresholds on exact hundredths: floor(mean) >= 90 <=> sum >= 90 V. */
    uint64_t pct = n->conf_sum / d->V;
    const char *decision = pct >= 90 ? "PROCEED" : pct >= 75 ? "DEFER" : "ESCALATE";
    count(pct >= 90 ? &d->proceed : pct >= 75 ? &d->defer : &d->escalate);
    double consensus = (double)n->conf_sum / (double)d->V / 100.0;
    for (uint32_t j = 0; j < d->V; j++) {
        char to[BC_COORD_ID_MAX + 24], pl[400], err[200];
        snprintf(to, sizeof to, "%s-v%u", n->id, j + 1);
        snprintf(pl, sizeof pl,
                 "{\"decision\":\"%s\",\"consensus\":%.4f,\"reasoning\":\"Consensus %u.%02u from "
                 "%u validators\",\"round\":%u,\"run\":\"%s\",\"sentNs\":%llu}",
                 decision, consensus, (unsigned)(pct / 100), (unsigned)(pct % 100), d->V, n->round,
                 d->run, (unsigned long long)bc_now_ns());
        if (bc_coord_send(c, to, "decide", pl, NULL, err, sizeof err) != 0)
            demo_error(d, &d->send_errors, "%s: decide to %s refused: %s", n->id, to, err);
    }
    count(&d->decisions);
    count(&d->round_done[n->round - 1]);
}

static void po_on_validation(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    node_t *n = arg;
    demo_t *d = n->d;
    if (status != 0) {
        char from[BC_COORD_ID_MAX + 16] = "any validator";
        for (uint32_t j = 0; j < d->V; j++)
            if (!(n->answered & (1ull << j))) {
                snprintf(from, sizeof from, "%s-v%u", n->id, j + 1);
                break;
            }
        wait_failed(n, status, "validation", from);
        return;
    }
    payload_t p;
    parse_payload(d, s, &p);
    if (p.stale) {
        count(&d->stale);
        wait_or_fail(c, n, "validation", po_on_validation);
        return;
    }
    if (p.ok)
        record_latency(d, p.sent_ns);
    int j = validator_of(d, n, s->sender);
    if (!p.ok || p.conf < 0 || j < 0 || strcmp(p.vid, s->sender) != 0) {
        demo_error(d, &d->unexpected, "%s: malformed or foreign validation from %s: %s", n->id,
                   s->sender, s->payload ? s->payload : "(no payload)");
    } else if (p.round != n->round) {
        demo_error(d, &d->unexpected, "%s: validation from %s is for round %llu, not %u", n->id,
                   s->sender, (unsigned long long)p.round, n->round);
    } else if (n->answered & (1ull << j)) {
        demo_error(d, &d->duplicates, "%s: %s answered round %u twice", n->id, s->sender, n->round);
    } else {
        n->answered |= 1ull << j;
        n->nanswers++;
        n->conf_sum += (uint64_t)p.conf;
    }
    if (n->nanswers < d->V) {
        wait_or_fail(c, n, "validation", po_on_validation);
        return;
    }
    po_decide(c, n);
    if (n->round == d->R) {
        node_finish(n, true);
        return;
    }
    n->round++;
    n->answered = 0;
    n->nanswers = 0;
    n->conf_sum = 0;
    bc_coord_set_iteration(c, n->round);
    send_validates(d, c, n, n->round);
    wait_or_fail(c, n, "validation", po_on_validation);
}

/* ---------------------------------------------------------------- validator */

static void v_on_start(bc_coord_t *c, void *arg)
{
    node_t *n = arg;
    n->round = 1;
    bc_coord_set_iteration(c, 1);
    count(&n->d->ready);
    wait_ms(c, n, "validate", v_on_validate, first_wait_ms(n->d));
}

/* Parse and check a signal from the validator's product owner; false: ignore it and re-wait. */
static bool v_accept(node_t *n, const bc_signal_t *s, const char *type)
{
    demo_t *d = n->d;
    payload_t p;
    parse_payload(d, s, &p);
    if (p.stale) {
        count(&d->stale);
        return false;
    }
    if (p.ok)
        record_latency(d, p.sent_ns);
    if (!p.ok || strcmp(s->sender, n->po_id) != 0) {
        demo_error(d, &d->unexpected, "%s: malformed or foreign %s from %s", n->id, type,
                   s->sender);
        return false;
    }
    if (p.round != n->round) {
        demo_error(d, p.round < n->round ? &d->duplicates : &d->unexpected,
                   "%s: %s for round %llu while in round %u", n->id, type,
                   (unsigned long long)p.round, n->round);
        return false;
    }
    return true;
}

static void v_on_validate(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    node_t *n = arg;
    demo_t *d = n->d;
    if (status != 0) {
        wait_failed(n, status, "validate", n->po_id);
        return;
    }
    if (!v_accept(n, s, "validate")) {
        wait_or_fail(c, n, "validate", v_on_validate);
        return;
    }
    unsigned conf = confidence(d, n->po, (uint32_t)n->v, n->round);
    uint64_t h = rnd(d->seed, n->po, (uint64_t)n->v + 1000, n->round);
    const char *const *recs = conf >= 90 ? recs_high : conf >= 80 ? recs_mid : recs_low;
    char pl[600], err[200];
    snprintf(pl, sizeof pl,
             "{\"validatorId\":\"%s\",\"confidence\":%u.%02u,\"recommendations\":[\"%s\",\"%s\"],"
             "\"round\":%u,\"run\":\"%s\",\"sentNs\":%llu}",
             n->id, conf / 100, conf % 100, recs[h % 3], recs[(h / 3 + 1 + h % 3) % 3], n->round,
             d->run, (unsigned long long)bc_now_ns());
    if (bc_coord_send(c, n->po_id, "validation", pl, NULL, err, sizeof err) != 0)
        demo_error(d, &d->send_errors, "%s: validation to %s refused: %s", n->id, n->po_id, err);
    wait_or_fail(c, n, "decide", v_on_decide);
}

static void v_on_decide(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    node_t *n = arg;
    demo_t *d = n->d;
    if (status != 0) {
        wait_failed(n, status, "decide", n->po_id);
        return;
    }
    if (!v_accept(n, s, "decide")) {
        wait_or_fail(c, n, "decide", v_on_decide);
        return;
    }
    if (n->round == d->R) {
        node_finish(n, true);
        return;
    }
    n->round++;
    bc_coord_set_iteration(c, n->round);
    wait_or_fail(c, n, "validate", v_on_validate);
}

/* ---------------------------------------------------------------- reporting */

static uint32_t rounds_complete(demo_t *d)
{
    uint32_t r = 0;
    while (r < d->R && load(&d->round_done[r]) == d->P)
        r++;
    return r;
}

static void demo_bar(demo_t *d, uint64_t signals, uint64_t expected)
{
    uint64_t dec = load(&d->decisions), total = (uint64_t)d->P * d->R;
    int width = 30, fill = total ? (int)((double)dec / (double)total * width) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] rounds %u/%u  decisions %llu/%llu  signals %llu/%llu ", bar,
            rounds_complete(d), d->R, (unsigned long long)dec, (unsigned long long)total,
            (unsigned long long)signals, (unsigned long long)expected);
}

static void fmt_us(char *buf, size_t len, double ns)
{
    double us = ns / 1000.0;
    if (us < 1000.0)
        snprintf(buf, len, "%.0f us", us);
    else if (us < 10000.0)
        snprintf(buf, len, "%.1f ms", us / 1000.0);
    else if (us < 1e6)
        snprintf(buf, len, "%.0f ms", us / 1000.0);
    else
        snprintf(buf, len, "%.2f s", us / 1e6);
}

static uint64_t hist_total(demo_t *d)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < d->nhist; i++)
        t += load(&d->hist[i].n);
    return t;
}

/* Percentiles (ns) from the merged histograms. */
static void percentiles(demo_t *d, const double *q, double *out, int nq)
{
    uint64_t *m = calloc(H_BUCKETS, sizeof *m), total = 0;
    if (m == NULL)
        abort();
    for (unsigned i = 0; i < d->nhist; i++)
        for (unsigned b = 0; b < H_BUCKETS; b++)
            m[b] += load(&d->hist[i].b[b]);
    for (unsigned b = 0; b < H_BUCKETS; b++)
        total += m[b];
    for (int k = 0; k < nq; k++) {
        out[k] = 0;
        if (total == 0)
            continue;
        uint64_t rank = (uint64_t)(q[k] * (double)total + 0.999999), acc = 0;
        if (rank < 1)
            rank = 1;
        for (unsigned b = 0; b < H_BUCKETS; b++) {
            acc += m[b];
            if (acc >= rank) {
                out[k] = h_value(b);
                break;
            }
        }
    }
    free(m);
}

static void demo_usage(FILE *f)
{
    fputs("usage: blockcoord demo [--product-owners P] [--validators V] [--rounds R]\n"
          "                       [--seed S] [--timeout MS] [--json] [--metrics-port N]\n"
          "                       [--metrics-per-coordinator]\n"
          "  The CFN Loop at scale in one process: P product owners, each with V validators,\n"
          "  every one a coordinator blocked on signals from its peers through Redis. Each\n"
          "  round a product owner sends `validate` to its validators, waits for a `validation`\n"
          "  from each (validatorId, confidence, recommendations), decides PROCEED (consensus\n"
          "  >= 0.90), DEFER (>= 0.75) or ESCALATE, and sends `decide` to each validator.\n"
          "  --product-owners P  product owners (default 1000)\n"
          "  --validators V      validators per product owner, 1..64 (default 4)\n"
          "  --rounds R          rounds (default 3)\n"
          "  --seed S            seed of the validators' confidences (default 1)\n"
          "  --timeout MS        limit of every wait for a signal once the loop runs\n"
          "                      (default 30000)\n"
          "  --json              print one JSON object instead of the table\n"
          "  --metrics-port N    serve /metrics, /health and the admin API on METRICS_BIND\n"
          "                      (default 127.0.0.1) port N while the demo runs; 0 = off\n"
          "                      (default: METRICS_PORT, else off)\n"
          "  --metrics-per-coordinator  also export one series per coordinator (N x 4 more)\n"
          "  Needs REDIS_URL (scripts/with-redis starts a throwaway Redis). Uses\n"
          "  BLOCKING_COORDINATION_SECRET, or a random secret for this run if it is unset.\n"
          "  Exit status: 0 every round completed with every signal delivered exactly once,\n"
          "  1 a round failed (timeout, duplicate or missing answer, lost signal), 2 usage.\n",
          f);
}

int bc_cli_demo(int argc, char **argv)
{
    uint64_t P = 1000, V = 4, R = 3, seed = 1, timeout = 30000, metrics_port = 0;
    int json = 0, per_coord = 0;
    const char *env_port = getenv("METRICS_PORT");
    if (env_port && *env_port) {
        char *end;
        errno = 0;
        metrics_port = strtoull(env_port, &end, 10);
        if (errno || *end || env_port[0] < '0' || env_port[0] > '9' || metrics_port > 65535) {
            fprintf(stderr, "blockcoord demo: METRICS_PORT \"%s\": expected a port in 0..65535\n",
                    env_port);
            return 2;
        }
    }
    static const struct option opts[] = {{"product-owners", required_argument, 0, 'p'},
                                         {"validators", required_argument, 0, 'v'},
                                         {"rounds", required_argument, 0, 'r'},
                                         {"seed", required_argument, 0, 's'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"metrics-port", required_argument, 0, 'm'},
                                         {"metrics-per-coordinator", no_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        switch (ch) {
        case 'p':
            rc = bc_cli_parse_u64("demo", "product-owners", optarg, 1, 100000, &P);
            break;
        case 'v':
            rc = bc_cli_parse_u64("demo", "validators", optarg, 1, 64, &V);
            break;
        case 'r':
            rc = bc_cli_parse_u64("demo", "rounds", optarg, 1, 1000000, &R);
            break;
        case 's':
            rc = bc_cli_parse_u64("demo", "seed", optarg, 0, UINT64_MAX, &seed);
            break;
        case 't':
            rc = bc_cli_parse_u64("demo", "timeout", optarg, 1, 3600000, &timeout);
            break;
        case 'j':
            json = 1;
            break;
        case 'm':
            rc = bc_cli_parse_u64("demo", "metrics-port", optarg, 0, 65535, &metrics_port);
            break;
        case 'c':
            per_coord = 1;
            break;
        case 'h':
            demo_usage(stdout);
            return 0;
        default:
            demo_usage(stderr);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord demo: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    uint64_t ncoord = P * (V + 1);
    if (ncoord > 1000000) {
        fprintf(stderr,
                "blockcoord demo: %llu product owners x (1 + %llu validators) is %llu "
                "coordinators; the demo hosts at most 1000000\n",
                (unsigned long long)P, (unsigned long long)V, (unsigned long long)ncoord);
        return 2;
    }

    /* The demo (and only the demo) makes up a secret when none is configured. */
    char secret_buf[65];
    const char *secret = getenv("BLOCKING_COORDINATION_SECRET");
    bool own_secret = secret == NULL || secret[0] == '\0';
    uint8_t raw[32];
    if (own_secret) {
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            fprintf(stderr, "blockcoord demo: cannot read random bytes for a secret: %s\n",
                    strerror(errno));
            return 1;
        }
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(secret_buf + 2 * i, 3, "%02x", raw[i]);
        secret = secret_buf;
        fprintf(stderr, "blockcoord demo: BLOCKING_COORDINATION_SECRET is not set; using a random "
                        "32-byte secret for this run only\n");
    }
    uint64_t nonce;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        nonce = bc_now_ns() ^ ((uint64_t)getpid() << 32);

    bc_runtime_t *rt;
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.secret = own_secret ? secret : NULL;
    bc_hub_t *hub = NULL;
    int rc = bc_cli_start_hub("blockcoord demo: ", NULL, &ho, &rt, &hub);
    if (rc != 0)
        return rc;
    char err[512];
    if (bc_hub_wait_ready(hub, 10000) != 0) {
        const char *url = getenv("REDIS_URL");
        fprintf(stderr,
                "blockcoord demo: Redis at %s did not answer within 10 s (set REDIS_URL, or run "
                "under scripts/with-redis)\n",
                url && *url ? url : "the default address");
        bc_hub_destroy(hub);
        bc_runtime_destroy(rt);
        return 1;
    }
    if (metrics_port) {
        bc_hub_http_opts_t mo;
        bc_hub_http_opts_init(&mo);
        mo.bind = getenv("METRICS_BIND");
        mo.port = (int)metrics_port;
        mo.per_coordinator = per_coord;
        int bound = 0;
        if ((rc = bc_hub_serve_http_opts(hub, &mo, &bound, err, sizeof err)) != 0) {
            fprintf(stderr, "blockcoord demo: %s\n", err);
            bc_hub_destroy(hub);
            bc_runtime_destroy(rt);
            return 1;
        }
        fprintf(stderr, "blockcoord demo: metrics server listening on %s:%d\n",
                mo.bind && *mo.bind ? mo.bind : "127.0.0.1", bound);
    }

    demo_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        abort();
    d->P = (uint32_t)P;
    d->V = (uint32_t)V;
    d->R = (uint32_t)R;
    d->timeout_ms = (uint32_t)timeout;
    d->seed = seed;
    snprintf(d->run, sizeof d->run, "%016llx", (unsigned long long)nonce);
    pthread_mutex_init(&d->err_lock, NULL);
    d->nhist = bc_runtime_workers(rt) + 1;
    d->hist = aligned_alloc(64, d->nhist * sizeof *d->hist);
    d->round_done = calloc(R, sizeof *d->round_done);
    d->nodes = calloc(ncoord, sizeof *d->nodes);
    bc_coord_t **po_h = calloc(P, sizeof *po_h);
    if (d->hist == NULL || d->round_done == NULL || d->nodes == NULL || po_h == NULL) {
        fprintf(stderr, "blockcoord demo: out of memory for %llu coordinators\n",
                (unsigned long long)ncoord);
        abort();
    }
    memset(d->hist, 0, d->nhist * sizeof *d->hist);

    /* Host every coordinator: validators first, then their product owners. */
    uint64_t t_spawn = bc_now_ns(), spawned = 0;
    for (uint32_t i = 0; i < d->P && rc == 0; i++) {
        node_t *po = &d->nodes[(size_t)i * (d->V + 1)];
        for (int32_t j = -1; j < (int32_t)d->V && rc == 0; j++) {
            node_t *n = &po[j + 1];
            n->d = d;
            n->po = i;
            n->v = j;
            if (j < 0)
                snprintf(n->id, sizeof n->id, "po-%u", i + 1);
            else
                snprintf(n->id, sizeof n->id, "po-%u-v%d", i + 1, j + 1);
            snprintf(n->po_id, sizeof n->po_id, "po-%u", i + 1);
            if (!bc_coord_id_valid("coordinator id", n->id, err, sizeof err)) {
                fprintf(stderr, "blockcoord demo: %s\n", err);
                rc = -EINVAL;
                break;
            }
        }
        for (int32_t j = 0; j <= (int32_t)d->V && rc == 0; j++) {
            node_t *n = &po[j == (int32_t)d->V ? 0 : j + 1];
            bc_coord_opts_t co;
            bc_coord_opts_init(&co);
            co.id = n->id;
            co.phase = n->v < 0 ? "product-owner" : "validator";
            co.iteration = 1;
            co.on_start = n->v < 0 ? po_on_start : v_on_start;
            co.arg = n;
            rc = bc_coord_spawn(hub, &co, n->v < 0 ? &po_h[i] : NULL, err, sizeof err);
            if (rc)
                fprintf(stderr, "blockcoord demo: cannot host %s: %s\n", n->id, err);
            else
                spawned++;
        }
    }
    int tty = isatty(STDERR_FILENO);
    uint64_t expected = 3ull * P * V * R;
    bool failed = rc != 0;
    uint64_t ready_deadline = bc_now_ms() + timeout + 10000;
    while (!failed && load(&d->ready) < ncoord) {
        if (bc_now_ms() > ready_deadline) {
            fprintf(stderr, "\nblockcoord demo: only %llu of %llu coordinators became ready\n",
                    (unsigned long long)load(&d->ready), (unsigned long long)ncoord);
            failed = true;
            break;
        }
        if (tty)
            fprintf(stderr, "\rstarting coordinators %llu/%llu ",
                    (unsigned long long)load(&d->ready), (unsigned long long)ncoord);
        sleep_ms(20);
    }
    double ready_s = (double)(bc_now_ns() - t_spawn) / 1e9;

    /* Kick off round 1 on behalf of every product owner (bc_coord_send works from any thread);
     * from then on the coordinators drive the loop themselves. */
    uint64_t t0 = bc_now_ns(), t1 = t0;
    if (!failed) {
        for (uint32_t i = 0; i < d->P; i++)
            send_validates(d, po_h[i], &d->nodes[(size_t)i * (d->V + 1)], 1);
        uint64_t last_progress = bc_now_ms(), last_mark = UINT64_MAX;
        /* acquire: pairs with node_finish's release. */
        while (atomic_load_explicit(&d->finished, memory_order_acquire) < ncoord) {
            sleep_ms(100);
            uint64_t sig = hist_total(d), mark = sig + load(&d->finished) * 3;
            if (tty)
                demo_bar(d, sig, expected);
            if (mark != last_mark) {
                last_mark = mark;
                last_progress = bc_now_ms();
            } else if (bc_now_ms() - last_progress > timeout + 10000) {
                fprintf(stderr, "%sblockcoord demo: no progress for %llu s; giving up\n",
                        tty ? "\n" : "",
                        (unsigned long long)((bc_now_ms() - last_progress) / 1000));
                failed = true;
                break;
            }
        }
        t1 = bc_now_ns();
        if (tty) {
            demo_bar(d, hist_total(d), expected);
            fputc('\n', stderr);
        }
    } else if (tty) {
        fputc('\n', stderr);
    }

    /* The hub counts a delivery before handing it over, so the counters are complete now. */
    sleep_ms(20); /* a stray duplicate would show up here */
    bc_hub_stats_t st;
    bc_hub_stats(hub, &st);
    /* relaxed: callbacks only compare it to ignore the cancellations that follow. */
    atomic_store_explicit(&d->stopping, 1, memory_order_relaxed);

    /* ---- report */
    uint64_t got = hist_total(d), stale = load(&d->stale);
    uint64_t hub_expected = expected + stale;
    uint64_t rejected = st.rejected_signature + st.rejected_unsigned + st.rejected_malformed;
    bool exact = got == expected && st.signals_delivered == hub_expected && st.replays == 0 &&
                 rejected == 0 && st.send_failures == 0 && load(&d->duplicates) == 0;
    uint32_t rounds = rounds_complete(d);
    uint64_t errors = load(&d->timeouts) + load(&d->duplicates) + load(&d->unexpected) +
                      load(&d->send_errors) + load(&d->failed_nodes);
    bool ok =
        !failed && errors == 0 && exact && rounds == d->R && load(&d->decisions) == (uint64_t)P * R;
    double elapsed = (double)(t1 - t0) / 1e9;
    static const double qs[3] = {0.50, 0.99, 0.999};
    double pv[3];
    percentiles(d, qs, pv, 3);
    const char *mode = bc_hub_notify_mode(hub);

    if (json) {
        printf("{\"bench\":\"cfn_demo\",\"product_owners\":%llu,\"validators\":%llu,\"rounds\":%"
               "llu,\"rounds_completed\":%u,\"coordinators\":%llu,\"decisions\":%llu,\"proceed\":%"
               "llu,\"defer\":%llu,\"escalate\":%llu,\"signals\":%llu,\"signals_expected\":%llu,"
               "\"latency_p50_us\":%.1f,\"latency_p99_us\":%.1f,\"latency_p999_us\":%.1f,"
               "\"elapsed_s\":%.3f,\"signals_per_s\":%.0f,\"notify\":\"%s\",\"errors\":%llu,"
               "\"ok\":%s}\n",
               (unsigned long long)P, (unsigned long long)V, (unsigned long long)R, rounds,
               (unsigned long long)ncoord, (unsigned long long)load(&d->decisions),
               (unsigned long long)load(&d->proceed), (unsigned long long)load(&d->defer),
               (unsigned long long)load(&d->escalate), (unsigned long long)got,
               (unsigned long long)expected, pv[0] / 1000.0, pv[1] / 1000.0, pv[2] / 1000.0,
               elapsed, elapsed > 0 ? (double)got / elapsed : 0.0, mode, (unsigned long long)errors,
               ok ? "true" : "false");
    } else {
        char l50[32], l99[32], l999[32];
        fmt_us(l50, sizeof l50, pv[0]);
        fmt_us(l99, sizeof l99, pv[1]);
        fmt_us(l999, sizeof l999, pv[2]);
        printf("CFN Loop demo: %llu product owner%s x %llu validator%s, %llu round%s (%llu "
               "coordinators in one hub, %u workers)\n",
               (unsigned long long)P, P == 1 ? "" : "s", (unsigned long long)V, V == 1 ? "" : "s",
               (unsigned long long)R, R == 1 ? "" : "s", (unsigned long long)ncoord,
               bc_runtime_workers(rt));
        printf("  %-22s %llu ready in %.2f s\n", "coordinators", (unsigned long long)spawned,
               ready_s);
        printf("  %-22s %u / %llu\n", "rounds completed", rounds, (unsigned long long)R);
        printf("  %-22s %llu  (PROCEED %llu, DEFER %llu, ESCALATE %llu)\n", "decisions",
               (unsigned long long)load(&d->decisions), (unsigned long long)load(&d->proceed),
               (unsigned long long)load(&d->defer), (unsigned long long)load(&d->escalate));
        if (exact)
            printf("  %-22s %llu  (each exactly once)\n", "signals delivered",
                   (unsigned long long)got);
        else
            printf("  %-22s %llu of %llu expected  (hub delivered %llu, %llu replays)\n",
                   "signals delivered", (unsigned long long)got, (unsigned long long)expected,
                   (unsigned long long)st.signals_delivered, (unsigned long long)st.replays);
        printf("  %-22s %s\n", "signal latency p50", l50);
        printf("  %-22s %s\n", "signal latency p99", l99);
        printf("  %-22s %s\n", "signal latency p999", l999);
        printf("  %-22s %.2f s   (%.0f signals/s)\n", "elapsed", elapsed,
               elapsed > 0 ? (double)got / elapsed : 0.0);
        if (strcmp(mode, "poll") == 0)
            printf("  %-22s poll fallback (%s); ", "redis", bc_hub_notify_reason(hub));
        else
            printf("  %-22s %s notifications; ", "redis", mode);
        printf("%llu send failures; %llu rejected\n", (unsigned long long)st.send_failures,
               (unsigned long long)rejected);
        if (stale)
            printf("  %-22s %llu signals left in Redis by an earlier run, ignored\n", "stale",
                   (unsigned long long)stale);
    }
    fflush(stdout);
    if (!ok) {
        fprintf(stderr,
                "blockcoord demo: FAILED: %u of %llu rounds completed; %llu timeouts, %llu "
                "duplicate answers, %llu unexpected signals, %llu send errors; hub: %llu sent, "
                "%llu delivered (expected %llu), %llu send failures, %llu rejected, %llu "
                "replays\n",
                rounds, (unsigned long long)R, (unsigned long long)load(&d->timeouts),
                (unsigned long long)load(&d->duplicates), (unsigned long long)load(&d->unexpected),
                (unsigned long long)load(&d->send_errors), (unsigned long long)st.signals_sent,
                (unsigned long long)st.signals_delivered, (unsigned long long)hub_expected,
                (unsigned long long)st.send_failures, (unsigned long long)rejected,
                (unsigned long long)st.replays);
        pthread_mutex_lock(&d->err_lock);
        for (unsigned i = 0; i < d->nerrs && i < MAX_ERRS; i++)
            fprintf(stderr, "  %s\n", d->errs[i]);
        if (d->nerrs > MAX_ERRS)
            fprintf(stderr, "  ... and %u more\n", d->nerrs - MAX_ERRS);
        pthread_mutex_unlock(&d->err_lock);
    }

    for (uint64_t i = 0; i < P; i++)
        bc_coord_release(po_h[i]);
    bc_hub_destroy(hub);
    bc_runtime_destroy(rt);
    pthread_mutex_destroy(&d->err_lock);
    free(po_h);
    free(d->nodes);
    free(d->round_done);
    free(d->hist);
    free(d);
    return ok ? 0 : 1;
}

/* ================================================================ the ring demo */

typedef struct {
    bc_msg_t hdr;
    uint64_t hops_left;
} token_t;

typedef struct ring_s ring_t;
typedef struct {
    bc_actor_t *next;
    ring_t *ring;
} ring_node_t;

struct ring_s {
    _Atomic uint64_t hops;
    _Atomic uint64_t tokens_done;
};

static void ring_behaviour(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    ring_node_t *n = st;
    (void)self;
    if (msg->type == BC_MSG_STOPPED)
        return;
    token_t *t = (token_t *)msg;
    /* relaxed: a progress counter. */
    atomic_fetch_add_explicit(&n->ring->hops, 1, memory_order_relaxed);
    if (t->hops_left == 0) {
        atomic_fetch_add_explicit(&n->ring->tokens_done, 1, memory_order_release);
        return;
    }
    t->hops_left--;
    bc_msg_keep(msg);
    bc_send(n->next, msg); /* zero-copy forward */
}

static void ring_usage(FILE *f)
{
    fputs("usage: blockcoord ring [--actors N] [--tokens N] [--hops N] [--workers N]\n"
          "  Runtime demo (no Redis): N actors in a ring pass tokens; each token makes --hops\n"
          "  hops.\n"
          "  --actors N    actors in the ring (default 100000)\n"
          "  --tokens N    tokens travelling at once (default 1000)\n"
          "  --hops N      hops per token (default 100000)\n"
          "  --workers N   worker threads (default: number of CPUs)\n",
          f);
}

static void ring_progress(uint64_t done, uint64_t total, double rate)
{
    int width = 40, fill = total ? (int)((double)done / (double)total * width) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %3.0f%%  %.2fM hops/s ", bar,
            total ? 100.0 * (double)done / (double)total : 100.0, rate / 1e6);
}

int bc_cli_ring(int argc, char **argv)
{
    uint64_t actors = 100000, tokens = 1000, hops = 100000, workers = 0;
    static const struct option opts[] = {
        {"actors", required_argument, 0, 'a'}, {"tokens", required_argument, 0, 't'},
        {"hops", required_argument, 0, 'n'},   {"workers", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'a':
            rc = bc_cli_parse_u64("ring", "actors", optarg, 1, 10000000, &actors);
            break;
        case 't':
            rc = bc_cli_parse_u64("ring", "tokens", optarg, 1, 1000000, &tokens);
            break;
        case 'n':
            rc = bc_cli_parse_u64("ring", "hops", optarg, 1, 1000000000, &hops);
            break;
        case 'w':
            rc = bc_cli_parse_u64("ring", "workers", optarg, 1, 64, &workers);
            break;
        case 'h':
            ring_usage(stdout);
            return 0;
        default:
            ring_usage(stderr);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord ring: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }

    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = (unsigned)workers;
    bc_runtime_t *rt;
    int rc = bc_runtime_create(&o, &rt);
    if (rc) {
        fprintf(stderr, "blockcoord ring: cannot start the runtime: %s\n", bc_strerror(rc));
        return 1;
    }
    ring_t d;
    atomic_init(&d.hops, 0);
    atomic_init(&d.tokens_done, 0);
    ring_node_t *nodes = calloc(actors, sizeof *nodes);
    bc_actor_t **ring = calloc(actors, sizeof *ring);
    if (nodes == NULL || ring == NULL) {
        fprintf(stderr, "blockcoord ring: out of memory for %llu actors\n",
                (unsigned long long)actors);
        return 1;
    }
    uint64_t t0 = bc_now_ns();
    for (uint64_t i = 0; i < actors; i++) {
        nodes[i].ring = &d;
        ring[i] = bc_spawn(rt, ring_behaviour, &nodes[i]);
    }
    for (uint64_t i = 0; i < actors; i++)
        nodes[i].next = ring[(i + 1) % actors];
    uint64_t t_spawned = bc_now_ns();

    printf("blockcoord %s runtime demo: %llu actors on %u workers, %llu tokens x %llu hops\n",
           BC_VERSION_STRING, (unsigned long long)actors, bc_runtime_workers(rt),
           (unsigned long long)tokens, (unsigned long long)hops);
    fflush(stdout);
    for (uint64_t i = 0; i < tokens; i++) {
        token_t *t = bc_msg_alloc(sizeof *t, 1);
        t->hops_left = hops - 1;
        bc_send(ring[(i * actors) / tokens], &t->hdr);
    }
    int tty = isatty(STDERR_FILENO);
    uint64_t total = tokens * hops, last_hops = 0, last_t = bc_now_ns();
    while (atomic_load_explicit(&d.tokens_done, memory_order_acquire) < tokens) {
        sleep_ms(100);
        uint64_t h = atomic_load_explicit(&d.hops, memory_order_relaxed), now = bc_now_ns();
        if (tty)
            ring_progress(h, total, (double)(h - last_hops) / ((double)(now - last_t) / 1e9));
        last_hops = h;
        last_t = now;
    }
    uint64_t t_done = bc_now_ns();
    if (tty) {
        ring_progress(total, total, 0);
        fputc('\n', stderr);
    }
    bc_runtime_stats_t st;
    bc_runtime_stats(rt, &st);
    for (uint64_t i = 0; i < actors; i++)
        bc_actor_release(ring[i]);
    bc_runtime_destroy(rt);
    uint64_t t_end = bc_now_ns();

    double run_s = (double)(t_done - t_spawned) / 1e9;
    printf("\n%-28s %s\n", "what", "value");
    printf("%-28s %llu\n", "actors", (unsigned long long)actors);
    printf("%-28s %.1f ns/actor\n", "spawn", (double)(t_spawned - t0) / (double)actors);
    printf("%-28s %llu\n", "messages (hops)", (unsigned long long)total);
    printf("%-28s %.2f s\n", "run time", run_s);
    printf("%-28s %.2f M msg/s\n", "throughput", (double)total / run_s / 1e6);
    printf("%-28s %llu / %llu / %llu\n", "worker parks / wakes / steals",
           (unsigned long long)st.parks, (unsigned long long)st.wakes,
           (unsigned long long)st.steals);
    printf("%-28s %llu\n", "hops counted", (unsigned long long)atomic_load(&d.hops));
    printf("%-28s %llu\n", "dead letters", (unsigned long long)st.messages_dead);
    printf("%-28s %.2f s\n", "stop + free everything", (double)(t_end - t_done) / 1e9);
    free(nodes);
    free(ring);
    return 0;
}
