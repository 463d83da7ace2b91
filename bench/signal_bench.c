/* signal_bench.c - signal latency and throughput of hosted coordinators, against Redis's own
 * floor and ceiling measured in the same run on the same server.
 *
 * For each size N (default 1, 1000, 10000, 100000): one hub hosts N waiting coordinators
 * b-<i> (heartbeats on) and one latency sender bench-tx-<pid>-<n>; each run adds K =
 * min(256, N) round-trip senders rt-<pid>-<n>-<k> for its round-trip phase (sender ids are never
 * reused: next_incarnation). Each run measures, in this order so that drift hits ours and
 * Redis's alike:
 *   1+2. wake and ACK latency: bench-tx sends one signal at a time, round-robin over the b-<i>,
 *        each 200 us after the previous one was received and ACKed; the payload carries
 *        bc_now_ns() taken just before bc_coord_send, the receiver's continuation subtracts
 *        it; the ACK latency runs from that stamp to bc_coord_wait_acks' callback;
 *   4.   the floor, interleaved with 1+2 sample by sample (one floor sample before each signal,
 *        200 us after the previous signal's life ended: its wake, its ACK and the consumption
 *        of its durable copy): raw hiredis PUBLISH -> SUBSCRIBE one-way latency, so that ours
 *        and Redis's see the same moments of a noisy machine;
 *   3.   sustained round trips: every rt sender loops send -> wait for the ACK -> send;
 *   5.   the ceiling: raw hiredis, one connection, ~256 commands in flight, issuing per
 *        iteration the commands one round trip costs (ceiling_run() lists them).
 * Reports medians of --runs runs (ratios: medians of the per-run ratios).
 *
 * Key decision: bc_coord_wait_acks may only be called on the coordinator, so the main thread
 * paces bench-tx with bc_coord_post (run a function on the coordinator), exact to the floor's
 * method, without a busy-waiting worker. (The round-trip senders need no such trigger: each
 * starts from on_start and continues from its ACK callback.)
 */
#include "hub.h"
#include "net.h"
#include "redis_conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_SECRET "5b1e0c9f3a7d2e8b4c6f1a9d3e7b2c8f4a6d1e9b3c7f2a8d4e6b1c9f3a7d2e8b"
#define MAX_RUNS 20
#define MAX_SIZES 16
#define GAP_NS 200000L
#define ACK_TIMEOUT_MS 5000u
#define CEIL_WINDOW 256 /* commands in flight on the ceiling connection */
#define CEIL_CMDS 9     /* commands per ceiling iteration */
#define VALUE_BYTES 300 /* signal and ACK JSON are ~250-300 bytes */
#define NCOL 25         /* figures kept per run */
/* --placement's columns: the wake's share on one CPU, p50 of those, p50 of the others, then
 * the same three for the floor. */
#define COL_PLACE 19

static int g_json;
/* Sender ids carry this process's pid and an incarnation number (bench-tx-<pid>-<n>,
 * rt-<pid>-<n>-<k>): a coordinator id must not be reused by a new incarnation that sends to
 * the same receivers, or its messageIds can repeat (see the note at next_incarnation). */
static unsigned g_incarnation;
static int g_no_ack_wait;    /* --no-ack-wait: diagnostic, wake latency alone */
static int g_layer_floor;    /* --layer-floor: diagnostic, the floor through the Redis layer */
static int g_pfloor;         /* --protocol-floor: diagnostic, our protocol by a minimal client */
static int g_placement;      /* --placement: diagnostic, which CPUs each sample ran on */
static const char *g_secret; /* the HMAC secret the hub uses */
static int g_fanout;         /* --fanout-ceiling: also a ceiling whose publishes reach a reader */
static unsigned g_spin_us;   /* --spin-us: the runtime's idle spin before parking (0: default) */
static unsigned g_scrape_ms; /* --scrape-ms: scrape the hub's /metrics this often meanwhile */
static bc_redis_conf_t g_conf;

/* ---------------------------------------------------------------- small helpers */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("signal_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of the runs' figures v[0..n) that are known: a run marks a figure it has none of
 * (a placement group no sample fell into) with -1, and -1 comes back when no run has one. */
static double median(const double *v, int n)
{
    double s[MAX_RUNS];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0)
            s[k++] = v[i];
    if (k == 0)
        return -1;
    qsort(s, (size_t)k, sizeof *s, cmp_double);
    return k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
}

/* Percentile q (0..1) of v[0..n), which gets sorted; 0 for n == 0. */
static double pct(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)((double)n * q);
    return v[i < n ? i : n - 1];
}

/* ---------------------------------------------------------------- placement (--placement) */

/* Which CPU Redis ran on last: field 39 of /proc/<pid>/stat, read through an fd kept open
 * (pread at 0 re-reads it). Only for a Redis on this host, whose pid INFO gives. */
static int g_redis_stat = -1;

static int redis_cpu(void)
{
    char buf[1024];
    if (g_redis_stat < 0)
        return -1;
    ssize_t n = pread(g_redis_stat, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name (field 2) may hold spaces */
    if (p == NULL)
        return -1;
    for (int field = 2; *p; p++)
        if (*p == ' ' && ++field == 39)
            return atoi(p + 1);
    return -1;
}

/* A sample's placement: 1 when Redis and the receiver ran on one CPU, 0 when not, -1 when
 * unknown. Redis's CPU is read as the receiver gets the message, so it is the CPU Redis ran on
 * (or runs on) when it wrote it. */
static signed char one_cpu(int rx)
{
    int r = redis_cpu();
    if (rx < 0 || r < 0)
        return -1;
    return r == rx;
}

/* The share of samples on one CPU and the p50 of each group; -1 for what no sample gave (a
 * share when Redis's CPU could not be read at all, the p50 of an empty group). */
static void placement_split(const double *lat, const signed char *one, size_t n, double out[3])
{
    double *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
    if (a == NULL || b == NULL)
        die("out of memory");
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        if (one[i] == 1)
            a[na++] = lat[i];
        else if (one[i] == 0)
            b[nb++] = lat[i];
    }
    out[0] = na + nb ? (double)na / (double)(na + nb) : -1;
    out[1] = na ? pct(a, na, 0.50) : -1;
    out[2] = nb ? pct(b, nb, 0.50) : -1;
    free(a);
    free(b);
}

static double rss_mb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* Absolute deadline ms from now for pthread_cond_timedwait (CLOCK_REALTIME). */
static struct timespec deadline_in(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* "...\"t\":123..." -> 123; 0 if absent. */
static uint64_t json_u64(const char *s, const char *member)
{
    const char *p = strstr(s, member);
    return p ? strtoull(p + strlen(member), NULL, 10) : 0;
}

/* ---------------------------------------------------------------- raw hiredis */

static redisContext *raw_connect(void)
{
    struct timeval tv = {5, 0};
    redisContext *c = g_conf.unix_path ? redisConnectUnixWithTimeout(g_conf.unix_path, tv)
                                       : redisConnectWithTimeout(g_conf.host, g_conf.port, tv);
    char d[300];
    if (c == NULL || c->err)
        die("cannot connect to %s: %s", bc_redis_conf_describe(&g_conf, d, sizeof d),
            c ? c->errstr : "out of memory");
    redisReply *r = NULL;
    if (g_conf.password) {
        r = g_conf.username ? redisCommand(c, "AUTH %s %s", g_conf.username, g_conf.password)
                            : redisCommand(c, "AUTH %s", g_conf.password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            die("AUTH failed on %s", bc_redis_conf_describe(&g_conf, d, sizeof d));
        freeReplyObject(r);
    }
    if (g_conf.db) {
        r = redisCommand(c, "SELECT %d", g_conf.db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR)
            die("SELECT %d failed", g_conf.db);
        freeReplyObject(r);
    }
    return c;
}

static void raw_flushdb(void)
{
    redisContext *c = raw_connect();
    redisReply *r = redisCommand(c, "FLUSHDB");
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        die("FLUSHDB failed");
    freeReplyObject(r);
    redisFree(c);
}

/* INFO commandstats: calls per command. */
#define MAX_CMDSTATS 128
typedef struct {
    char name[32];
    uint64_t calls;
} cmdstat_t;

static size_t cmdstats(redisContext *c, cmdstat_t *out)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    size_t n = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        for (const char *p = r->str; (p = strstr(p, "cmdstat_")) && n < MAX_CMDSTATS;) {
            p += 8;
            const char *colon = strchr(p, ':');
            const char *calls = colon ? strstr(colon, "calls=") : NULL;
            if (colon == NULL || calls == NULL)
                break;
            size_t l = (size_t)(colon - p);
            if (l >= sizeof out[n].name)
                l = sizeof out[n].name - 1;
            memcpy(out[n].name, p, l);
            out[n].name[l] = '\0';
            out[n].calls = strtoull(calls + 6, NULL, 10);
            n++;
            p = colon;
        }
    }
    freeReplyObject(r);
    return n;
}

/* after - before, per round trip, as "set 3.00 publish 2.00 ..." (largest first); returns the
 * total per round trip. */
static double cmdstats_diff(const cmdstat_t *b, size_t nb, const cmdstat_t *a, size_t na,
                            uint64_t rts, char *out, size_t len)
{
    cmdstat_t d[MAX_CMDSTATS];
    size_t nd = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < na; i++) {
        uint64_t before = 0;
        for (size_t j = 0; j < nb; j++)
            if (strcmp(a[i].name, b[j].name) == 0)
                before = b[j].calls;
        if (a[i].calls > before && strcmp(a[i].name, "info") != 0) {
            d[nd] = a[i];
            d[nd++].calls = a[i].calls - before;
            total += a[i].calls - before;
        }
    }
    for (size_t i = 0; i < nd; i++)
        for (size_t j = i + 1; j < nd; j++)
            if (d[j].calls > d[i].calls) {
                cmdstat_t t = d[i];
                d[i] = d[j];
                d[j] = t;
            }
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < nd && at + 40 < len; i++)
        at += (size_t)snprintf(out + at, len - at, "%s%s %.2f", i ? " " : "", d[i].name,
                               rts ? (double)d[i].calls / (double)rts : 0.0);
    return rts ? (double)total / (double)rts : 0;
}

/* ---------------------------------------------------------------- the floors */

/* One-way latency samples that a floor's subscriber thread hands to the thread that publishes,
 * one message in flight. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t got; /* last sequence number received */
    double *lat;
    size_t n, cap;
} lat_log_t;

static void lat_log_init(lat_log_t *g, size_t cap)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->cap = cap;
    g->lat = malloc(cap * sizeof *g->lat);
    if (g->lat == NULL)
        die("out of memory");
}

/* Message seq arrived; its latency us is kept if keep. Caller holds g->lock. */
static void lat_log_add(lat_log_t *g, uint64_t seq, double us, int keep)
{
    if (keep && g->n < g->cap)
        g->lat[g->n++] = us;
    g->got = seq;
    pthread_cond_signal(&g->cond);
}

/* Wait (up to 5 s) until message seq has arrived. */
static void lat_log_wait(lat_log_t *g, uint64_t seq)
{
    struct timespec dl = deadline_in(5000);
    pthread_mutex_lock(&g->lock);
    while (g->got < seq)
        if (pthread_cond_timedwait(&g->cond, &g->lock, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&g->lock);
}

static void lat_log_done(lat_log_t *g, double *p50, double *p99)
{
    *p50 = pct(g->lat, g->n, 0.50);
    *p99 = pct(g->lat, g->n, 0.99);
    free(g->lat);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
}

/* A message read from a subscriber connection: (channel, payload), or NULL when it is not one. */
static const redisReply *pubsub_payload(const redisReply *r, const char **channel)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING)
        return NULL;
    *channel = r->element[1]->str;
    return r->element[2];
}

typedef struct {
    redisContext *sub, *pub;
    pthread_t th;
    char chan[64];
    uint64_t seq;     /* last sequence number published */
    signed char *one; /* --placement: sample i's Redis and subscriber on one CPU */
    lat_log_t log;
} floor_t;

/* Read a floor's subscriber connection until its "quit" message or a failure, handing each
 * message to fn with the clock read as it arrived. */
static void sub_read(redisContext *sub,
                     void (*fn)(void *arg, const char *ch, const redisReply *pl, uint64_t now),
                     void *arg)
{
    for (;;) {
        redisReply *r = NULL;
        if (redisGetReply(sub, (void **)&r) != REDIS_OK || r == NULL)
            break;
        uint64_t now = bc_now_ns();
        const char *ch;
        const redisReply *pl = pubsub_payload(r, &ch);
        int quit = pl && strcmp(pl->str, "quit") == 0;
        if (pl && !quit)
            fn(arg, ch, pl, now);
        freeReplyObject(r);
        if (quit)
            break;
    }
}

static void floor_message(void *arg, const char *ch, const redisReply *pl, uint64_t now)
{
    floor_t *f = arg;
    (void)ch;
    char *end;
    uint64_t seq = strtoull(pl->str, &end, 10);
    uint64_t t = strtoull(end + 1, NULL, 10);
    signed char one = g_placement ? one_cpu(sched_getcpu()) : -1;
    pthread_mutex_lock(&f->log.lock);
    if (f->one && f->log.n < f->log.cap)
        f->one[f->log.n] = one;
    lat_log_add(&f->log, seq, (double)(now - t) / 1e3, 1);
    pthread_mutex_unlock(&f->log.lock);
}

static void *floor_subscriber(void *arg)
{
    floor_t *f = arg;
    sub_read(f->sub, floor_message, f);
    return NULL;
}

/* The floor's two raw connections and its subscriber thread, open for a whole run so that its
 * samples can be taken between ours (floor_one). */
static void floor_open(floor_t *f, size_t cap)
{
    memset(f, 0, sizeof *f);
    lat_log_init(&f->log, cap);
    snprintf(f->chan, sizeof f->chan, "bcbench:floor:%d", (int)getpid());
    if (g_placement && (f->one = calloc(cap + 1, 1)) == NULL)
        die("out of memory");
    f->sub = raw_connect();
    f->pub = raw_connect();
    redisReply *r = redisCommand(f->sub, "SUBSCRIBE %s", f->chan);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        die("SUBSCRIBE %s failed", f->chan);
    freeReplyObject(r);
    if (pthread_create(&f->th, NULL, floor_subscriber, f) != 0)
        die("cannot start the floor subscriber thread");
}

/* One PUBLISH -> SUBSCRIBE sample after a GAP_NS pause (environment.md §3.3's method): one
 * message in flight, the publisher's clock read just before the PUBLISH. */
static void floor_one(floor_t *f)
{
    uint64_t seq = ++f->seq;
    sleep_ns(GAP_NS);
    uint64_t t = bc_now_ns();
    redisReply *r = redisCommand(f->pub, "PUBLISH %s %llu:%llu", f->chan, (unsigned long long)seq,
                                 (unsigned long long)t);
    if (r == NULL)
        die("PUBLISH failed: %s", f->pub->errstr);
    freeReplyObject(r);
    lat_log_wait(&f->log, seq);
}

/* Stop a floor's subscriber (a "quit" message on chan) and close its connections. */
static void raw_pair_close(redisContext *pub, redisContext *sub, pthread_t th, const char *chan)
{
    redisReply *r = redisCommand(pub, "PUBLISH %s quit", chan);
    freeReplyObject(r);
    pthread_join(th, NULL);
    redisFree(pub);
    redisFree(sub);
}

/* place (--placement, may be NULL): the floor's share on one CPU and each group's p50. */
static void floor_close(floor_t *f, double *p50, double *p99, double place[3])
{
    raw_pair_close(f->pub, f->sub, f->th, f->chan);
    if (f->one && place)
        placement_split(f->log.lat, f->one, f->log.n, place);
    free(f->one);
    lat_log_done(&f->log, p50, p99);
}

/* PUBLISH -> SUBSCRIBE one-way latency of `n` messages in a row. */
static void floor_run(size_t n, double *p50, double *p99)
{
    floor_t f;
    floor_open(&f, n);
    for (size_t i = 0; i < n; i++)
        floor_one(&f);
    floor_close(&f, p50, p99, NULL);
}

/* The protocol floor: a signal under our wire protocol (docs/protocol.md §2.1-§2.3), sent and
 * received by the smallest client that can speak it: sync hiredis on both sides, no runtime.
 * The sender signs the signal (bc_sig_encode) and sends what a coordinator sends, as a
 * coordinator sends it (the hint alone, then, once it is answered, Node's marker and the SET NX
 * in one write); the receiver, a thread blocked in read on a connection subscribed as the
 * watcher is (the notify channel and the slot's keyspace channel), decodes and verifies the
 * hint (bc_sig_decode) and takes its clock there. Its id pf-<pid> is hosted by nobody, so only
 * this client reads it. What it leaves out of ours: the consumed marker, the ACK and the
 * runtime itself. So wake / protocol floor is what the runtime adds to the protocol, and
 * protocol floor / floor what the protocol costs over one bare PUBLISH. Same method as
 * floor_one: one signal in flight, GAP_NS before each. */
typedef struct {
    redisContext *sub, *pub;
    pthread_t th;
    bc_hmac_t *hmac;
    char id[48], sender[48], notify[96], slot[96];
    uint64_t seq, t_sent; /* under log.lock */
    uint64_t bad;         /* hints that failed verification */
    lat_log_t log;
} pfloor_t;

/* The hint's clock is read once it is decoded and verified, as the watcher would. */
static void pfloor_message(void *arg, const char *ch, const redisReply *pl, uint64_t now)
{
    pfloor_t *f = arg;
    (void)now;
    if (strcmp(ch, f->notify) != 0)
        return; /* the keyspace events: read, as the watcher reads them */
    bc_sig_fields_t sf;
    const char *why = NULL;
    int ok = bc_sig_decode(f->hmac, pl->str, pl->len, f->id, 1, &sf, &why) == 0;
    uint64_t at = bc_now_ns();
    pthread_mutex_lock(&f->log.lock);
    lat_log_add(&f->log, f->seq, (double)(at - f->t_sent) / 1e3, ok);
    if (!ok)
        f->bad++;
    pthread_mutex_unlock(&f->log.lock);
    if (ok)
        bc_sig_fields_clear(&sf);
}

static void *pfloor_subscriber(void *arg)
{
    pfloor_t *f = arg;
    sub_read(f->sub, pfloor_message, f);
    return NULL;
}

static void pfloor_open(pfloor_t *f, size_t cap, const char *secret)
{
    memset(f, 0, sizeof *f);
    lat_log_init(&f->log, cap);
    if (bc_hmac_create(secret, strlen(secret), &f->hmac) != 0)
        die("protocol floor: cannot key HMAC-SHA256");
    snprintf(f->id, sizeof f->id, "pf-%d", (int)getpid());
    snprintf(f->sender, sizeof f->sender, "pf-tx-%d", (int)getpid());
    snprintf(f->notify, sizeof f->notify, "blocking:notify:%s", f->id);
    snprintf(f->slot, sizeof f->slot, "blocking:signal:%s", f->id);
    f->sub = raw_connect();
    f->pub = raw_connect();
    redisReply *r =
        redisCommand(f->sub, "SUBSCRIBE %s __keyspace@%d__:%s", f->notify, g_conf.db, f->slot);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        die("protocol floor: SUBSCRIBE failed");
    freeReplyObject(r);
    r = NULL; /* the second channel's confirmation */
    if (redisGetReply(f->sub, (void **)&r) != REDIS_OK || r == NULL)
        die("protocol floor: SUBSCRIBE failed");
    freeReplyObject(r);
    if (pthread_create(&f->th, NULL, pfloor_subscriber, f) != 0)
        die("cannot start the protocol floor's subscriber thread");
}

/* Read n replies from c, dying on a failure. */
static void raw_replies(redisContext *c, int n)
{
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
            die("protocol floor: write failed: %s", c->errstr);
        freeReplyObject(r);
    }
}

static void pfloor_one(pfloor_t *f)
{
    char payload[96], json[1024], mid[BC_SIGID_MAX + 1], err[200], idem[BC_SIGID_MAX + 32];
    uint64_t seq = f->seq + 1, t;
    sleep_ns(GAP_NS);
    pthread_mutex_lock(&f->log.lock);
    f->seq = seq;
    f->t_sent = t = bc_now_ns();
    pthread_mutex_unlock(&f->log.lock);
    uint64_t ts = (uint64_t)time(NULL) * 1000u + seq % 1000u; /* distinct messageIds */
    snprintf(payload, sizeof payload, "{\"t\":%llu,\"seq\":%llu}", (unsigned long long)t,
             (unsigned long long)seq);
    int n = bc_sig_encode(f->hmac, ts, f->sender, f->id, 0, "wake", payload, json, sizeof json, mid,
                          err, sizeof err);
    if (n < 0)
        die("protocol floor: %s", err);
    snprintf(idem, sizeof idem, "blocking:idempotency:%s", mid);
    const char *a1[] = {"SET", idem, "1", "EX", "86400"};
    const char *a2[] = {"PUBLISH", f->notify, json};
    const char *a3[] = {"SET", f->slot, json, "NX", "EX", "86400"};
    size_t l2[] = {7, strlen(f->notify), (size_t)n};
    size_t l3[] = {3, strlen(f->slot), (size_t)n, 2, 2, 5};
    redisAppendCommandArgv(f->pub, 3, a2, l2);
    raw_replies(f->pub, 1);
    redisAppendCommandArgv(f->pub, 5, a1, NULL);
    redisAppendCommandArgv(f->pub, 6, a3, l3);
    raw_replies(f->pub, 2);
    lat_log_wait(&f->log, seq);
    /* The receiver's consume, outside the timed part: the slot must be empty for the next
     * SET NX, as the watcher's GETDEL leaves it. */
    redisReply *r = redisCommand(f->pub, "DEL %s %s", f->slot, idem);
    freeReplyObject(r);
}

static void pfloor_close(pfloor_t *f, double *p50, double *p99)
{
    raw_pair_close(f->pub, f->sub, f->th, f->notify);
    if (f->bad)
        die("protocol floor: %llu signals failed verification", (unsigned long long)f->bad);
    lat_log_done(&f->log, p50, p99);
    bc_hmac_destroy(f->hmac);
}

/* ---------------------------------------------------------------- the ceiling */

/* One signal round trip as observed in INFO commandstats (docs/protocol.md §2.2-§3.3,
 * actors/coord.c, actors/watcher.c), on the command connection:
 *   sender:   SET idempotency 1 EX 86400, PUBLISH notify <signal>, SET signal NX EX 86400
 *   receiver: GETDEL signal, LPOP queue 256 (keyspace "set" event -> drain),
 *             SET consumed 1 NX EX 86400 (fast path), SETEX ack 3600, SETEX ack-slot 3600,
 *             PUBLISH notify <ack>
 *   sender:   nothing more: the ACK's publish resolves the wait (a wait still open after
 *             20 ms would subscribe to the per-signal key and GET it; none does here).
 * Values are VALUE_BYTES long; every key is distinct per iteration except the ACK slot and the
 * ACK channel, which are per sender (256 of them, as with K = 256 senders). Not included: the
 * delivery of the pub/sub and keyspace messages (nobody subscribes here), so the ceiling is
 * generous. */
typedef struct {
    char signal[192], notify[192], idem[192], queue[192], consumed[192], ack[192], slot[192],
        ack_chan[192];
} ceil_keys_t;

/* The keys of ceiling iteration i: receiver b-<i> (b-<i % nrecv> if nrecv), sender
 * rt-<i % 256>; the per-signal keys stay distinct per iteration. */
static void ceil_keys(const char *pfx, uint64_t i, uint64_t nrecv, ceil_keys_t *k)
{
    unsigned long long n = (unsigned long long)i, r = nrecv ? n % nrecv : n, s = n % 256;
    snprintf(k->signal, sizeof k->signal, "%ssignal:b-%llu", pfx, r);
    snprintf(k->notify, sizeof k->notify, "%snotify:b-%llu", pfx, r);
    snprintf(k->idem, sizeof k->idem, "%sidem:rt-%llu:b-%llu:wake:0:%llu", pfx, s, r, n);
    snprintf(k->queue, sizeof k->queue, "%squeue:b-%llu", pfx, r);
    snprintf(k->consumed, sizeof k->consumed, "%sconsumed:b-%llu:rt-%llu:b-%llu:wake:0:%llu", pfx,
             r, s, r, n);
    snprintf(k->ack, sizeof k->ack, "%sack:b-%llu:rt-%llu:b-%llu:wake:0:%llu", pfx, r, s, r, n);
    snprintf(k->slot, sizeof k->slot, "%sack:rt-%llu", pfx, s);
    snprintf(k->ack_chan, sizeof k->ack_chan, "%snotify:rt-%llu", pfx, s);
}

/* --fanout-ceiling: a raw reader subscribed, as the hub is, to every receiver's notify channel
 * and slot keyspace channel and every sender's notify channel, so the ceiling's publishes and
 * slot writes are delivered as the hub's are. It only counts what it reads. */
typedef struct {
    redisContext *c;
    uint64_t msgs;
} fanout_t;

static void *fanout_main(void *arg)
{
    fanout_t *f = arg;
    redisReply *r = NULL;
    while (redisGetReply(f->c, (void **)&r) == REDIS_OK && r) {
        int quit = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                   r->element[2]->type == REDIS_REPLY_STRING &&
                   strcmp(r->element[2]->str, "quit") == 0;
        f->msgs++;
        freeReplyObject(r);
        r = NULL;
        if (quit)
            break;
    }
    return NULL;
}

/* Subscribe f->c to the channels of nrecv receivers and 256 senders, 512 per command. */
static void fanout_subscribe(fanout_t *f, const char *pfx, uint64_t nrecv)
{
    enum { BATCH = 512 };
    char names[BATCH][160];
    const char *argv[BATCH + 1];
    size_t n = 0, total = 0, want = 2 * nrecv + 256;
    argv[0] = "SUBSCRIBE";
    for (uint64_t i = 0; i < want; i++) {
        unsigned long long x = (unsigned long long)(i < 2 * nrecv ? i / 2 : i - 2 * nrecv);
        if (i >= 2 * nrecv)
            snprintf(names[n], sizeof names[n], "%snotify:rt-%llu", pfx, x);
        else if (i % 2)
            snprintf(names[n], sizeof names[n], "__keyspace@%d__:%ssignal:b-%llu", g_conf.db, pfx,
                     x);
        else
            snprintf(names[n], sizeof names[n], "%snotify:b-%llu", pfx, x);
        argv[n + 1] = names[n];
        n++;
        if (n == BATCH || i + 1 == want) {
            redisAppendCommandArgv(f->c, (int)n + 1, argv, NULL);
            total += n;
            n = 0;
        }
    }
    for (size_t got = 0; got < total; got++) {
        redisReply *r = NULL;
        if (redisGetReply(f->c, (void **)&r) != REDIS_OK || r == NULL)
            die("fan-out ceiling: SUBSCRIBE failed: %s", f->c->errstr);
        freeReplyObject(r);
    }
}

/* The ceiling: one raw connection keeps ~CEIL_WINDOW commands of the round-trip mix in flight
 * for secs. nrecv == 0: every iteration its own receiver and nobody subscribed (generous: Redis
 * delivers nothing). nrecv > 0: nrecv receivers in turn, and a reader subscribed as the hub is
 * (fanout_subscribe), so Redis does the same delivery work as for the hub. */
static double ceiling_run(double secs, int run, uint64_t nrecv)
{
    fanout_t fan = {NULL, 0};
    pthread_t fan_th;
    char pfx[48];
    snprintf(pfx, sizeof pfx, "bcbench:%d:%d%s:", (int)getpid(), run, nrecv ? "f" : "");
    if (nrecv) {
        fan.c = raw_connect();
        fanout_subscribe(&fan, pfx, nrecv);
        if (pthread_create(&fan_th, NULL, fanout_main, &fan) != 0)
            die("cannot start the fan-out reader");
    }
    redisContext *c = raw_connect();
    char sig[VALUE_BYTES + 1], ack[VALUE_BYTES + 1];
    memset(sig, 's', VALUE_BYTES);
    memset(ack, 'a', VALUE_BYTES);
    sig[VALUE_BYTES] = ack[VALUE_BYTES] = '\0';
    uint64_t it = 0, errors = 0;
    size_t outstanding = 0;
    uint64_t t0 = bc_now_ns(), stop_at = t0 + (uint64_t)(secs * 1e9);
    int stop = 0;
    ceil_keys_t k;
    while (!stop || outstanding) {
        while (!stop && outstanding + CEIL_CMDS <= CEIL_WINDOW) {
            ceil_keys(pfx, it, nrecv, &k);
            const char *a0[] = {"SET", k.signal, sig, "NX", "EX", "86400"};
            const char *a1[] = {"PUBLISH", k.notify, sig};
            const char *a2[] = {"SET", k.idem, "1", "EX", "86400"};
            const char *a3[] = {"GETDEL", k.signal};
            const char *a4[] = {"LPOP", k.queue, "256"};
            const char *a5[] = {"SET", k.consumed, "1", "NX", "EX", "86400"};
            const char *a6[] = {"SETEX", k.ack, "3600", ack};
            const char *a7[] = {"SETEX", k.slot, "3600", ack};
            const char *a8[] = {"PUBLISH", k.ack_chan, ack};
            redisAppendCommandArgv(c, 6, a0, NULL);
            redisAppendCommandArgv(c, 3, a1, NULL);
            redisAppendCommandArgv(c, 5, a2, NULL);
            redisAppendCommandArgv(c, 2, a3, NULL);
            redisAppendCommandArgv(c, 3, a4, NULL);
            redisAppendCommandArgv(c, 6, a5, NULL);
            redisAppendCommandArgv(c, 4, a6, NULL);
            redisAppendCommandArgv(c, 4, a7, NULL);
            redisAppendCommandArgv(c, 3, a8, NULL);
            outstanding += CEIL_CMDS;
            it++;
        }
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
            die("ceiling: connection failed: %s", c->errstr);
        do {
            errors += r->type == REDIS_REPLY_ERROR;
            freeReplyObject(r);
            outstanding--;
            r = NULL;
        } while (outstanding && redisReaderGetReply(c->reader, (void **)&r) == REDIS_OK && r);
        if (!stop && bc_now_ns() >= stop_at)
            stop = 1;
    }
    double rate = (double)it / ((double)(bc_now_ns() - t0) / 1e9);
    if (nrecv) {
        char ch[96];
        snprintf(ch, sizeof ch, "%snotify:rt-0", pfx);
        redisReply *q = redisCommand(c, "PUBLISH %s quit", ch);
        freeReplyObject(q);
        pthread_join(fan_th, NULL);
        redisFree(fan.c);
    }
    if (errors)
        die("ceiling: %llu commands failed (GETDEL needs Redis >= 6.2)",
            (unsigned long long)errors);
    /* Remove what the ceiling left behind (outside the timed part). */
    size_t pending = 0;
    for (uint64_t i = 0; i < it; i++) {
        ceil_keys(pfx, i, nrecv, &k);
        const char *a[] = {"UNLINK", k.idem, k.consumed, k.ack, k.slot};
        redisAppendCommandArgv(c, 5, a, NULL);
        if (++pending == 256 || i + 1 == it)
            for (; pending; pending--) {
                redisReply *r = NULL;
                if (redisGetReply(c, (void **)&r) != REDIS_OK)
                    die("ceiling cleanup failed: %s", c->errstr);
                freeReplyObject(r);
            }
    }
    redisFree(c);
    return rate;
}

/* ---------------------------------------------------------------- coordinators */

typedef struct bench_s bench_t;

typedef struct {
    bench_t *b;
    bc_coord_t *c;
    char to[24];
} rt_sender_t;

struct bench_s {
    bc_runtime_t *rt;
    bc_hub_t *hub;
    size_t n, k;
    bc_coord_t *tx;
    char tx_id[64];
    rt_sender_t *rts;
    _Atomic uint64_t ready; /* on_start ran */

    /* wake / ACK latency loop: under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t seq;
    size_t target;
    uint64_t t_send;
    int got_wake, got_ack;
    double *wake, *ack;
    size_t nwake, nack, cap;
    signed char *wone; /* --placement only: wake[i]'s Redis and receiver on one CPU */
    uint64_t ack_fail;

    /* round trips */
    _Atomic uint64_t rt_ready;
    _Atomic int rt_stop;
    _Atomic int rt_inflight;
    _Atomic uint64_t rt_done, rt_fail;
};

static void on_ready(bc_coord_t *c, void *arg)
{
    bench_t *b = arg;
    (void)c;
    /* relaxed: a counter polled by the main thread. */
    atomic_fetch_add_explicit(&b->ready, 1, memory_order_relaxed);
}

/* A fresh sender id per run and size: messageIds are
 * <sender>:<receiver>:<type>:<iteration>:<timestamp>, and a run without --flush must not meet
 * the consumed markers and ACKs an earlier run left under the same ids. */
static void next_incarnation(char *id, size_t len, const char *what, int k)
{
    if (k < 0)
        snprintf(id, len, "%s-%d-%u", what, (int)getpid(), g_incarnation++);
    else
        snprintf(id, len, "%s-%d-%u-%d", what, (int)getpid(), g_incarnation, k);
}

static void rx_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);

static void rx_start(bc_coord_t *c, void *arg)
{
    on_ready(c, arg);
    bc_coord_wait(c, NULL, 0, rx_signal, arg);
}

/* A receiver's continuation: the wake latency, then block again. */
static void rx_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    uint64_t now = bc_now_ns();
    bench_t *b = arg;
    if (status == 0 && s->payload && strcmp(s->sender, b->tx_id) == 0) {
        uint64_t t = json_u64(s->payload, "\"t\":"), seq = json_u64(s->payload, "\"seq\":");
        signed char one = g_placement ? one_cpu(sched_getcpu()) : -1;
        pthread_mutex_lock(&b->lock);
        if (seq == b->seq && !b->got_wake) {
            if (b->nwake < b->cap) {
                if (b->wone)
                    b->wone[b->nwake] = one;
                b->wake[b->nwake++] = (double)(now - t) / 1e3;
            }
            b->got_wake = 1;
            if (b->got_ack)
                pthread_cond_signal(&b->cond);
        }
        pthread_mutex_unlock(&b->lock);
    }
    if (status != -ECANCELED)
        bc_coord_wait(c, NULL, 0, rx_signal, arg);
}

static void tx_acks(bc_coord_t *c, const bc_ack_result_t *r, void *arg)
{
    uint64_t now = bc_now_ns();
    bench_t *b = arg;
    (void)c;
    pthread_mutex_lock(&b->lock);
    if (r->status == 0 && b->nack < b->cap)
        b->ack[b->nack++] = (double)(now - b->t_send) / 1e3;
    else if (r->status != 0)
        b->ack_fail++;
    b->got_ack = 1;
    if (b->got_wake)
        pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* bench-tx: one signal to the current target, then wait for its ACK (run by bc_coord_post). */
static void tx_go(bc_coord_t *c, void *arg)
{
    bench_t *b = arg;
    char to[24], payload[80], sid[BC_SIGNAL_ID_MAX + 1], err[200];
    pthread_mutex_lock(&b->lock);
    snprintf(to, sizeof to, "b-%zu", b->target);
    uint64_t seq = b->seq;
    pthread_mutex_unlock(&b->lock);
    uint64_t t = bc_now_ns();
    snprintf(payload, sizeof payload, "{\"t\":%llu,\"seq\":%llu}", (unsigned long long)t,
             (unsigned long long)seq);
    b->t_send = t; /* read by tx_acks, on this coordinator too */
    if (bc_coord_send(c, to, "wake", payload, sid, err, sizeof err) != 0)
        die("bc_coord_send: %s", err);
    if (g_no_ack_wait)
        return;
    const char *ids[] = {to};
    if (bc_coord_wait_acks(c, sid, ids, 1, ACK_TIMEOUT_MS, tx_acks, b) != 0)
        die("bc_coord_wait_acks failed");
}

static void rt_fire(bc_coord_t *c, rt_sender_t *r);

static void rt_acks(bc_coord_t *c, const bc_ack_result_t *res, void *arg)
{
    rt_sender_t *r = arg;
    bench_t *b = r->b;
    /* relaxed: counters read by the main thread after the in-flight count drops. */
    atomic_fetch_add_explicit(res->status == 0 ? &b->rt_done : &b->rt_fail, 1,
                              memory_order_relaxed);
    /* relaxed: a stop flag; a late look costs one more round trip. */
    if (!atomic_load_explicit(&b->rt_stop, memory_order_relaxed))
        rt_fire(c, r);
    else
        /* release: the counters above are visible once the main thread sees 0. */
        atomic_fetch_sub_explicit(&b->rt_inflight, 1, memory_order_release);
}

static void rt_fire(bc_coord_t *c, rt_sender_t *r)
{
    char payload[80], sid[BC_SIGNAL_ID_MAX + 1], err[200];
    snprintf(payload, sizeof payload, "{\"t\":%llu,\"seq\":0}", (unsigned long long)bc_now_ns());
    if (bc_coord_send(c, r->to, "wake", payload, sid, err, sizeof err) != 0)
        die("bc_coord_send: %s", err);
    const char *ids[] = {r->to};
    if (bc_coord_wait_acks(c, sid, ids, 1, ACK_TIMEOUT_MS, rt_acks, r) != 0)
        die("bc_coord_wait_acks failed");
}

/* A round-trip sender starts looping as soon as it can receive its ACKs. It has no on_event,
 * so the watcher sends it no event messages (as for a user who observes nothing). */
static void rt_start(bc_coord_t *c, void *arg)
{
    rt_sender_t *r = arg;
    /* relaxed: a counter polled by the main thread. */
    atomic_fetch_add_explicit(&r->b->rt_ready, 1, memory_order_relaxed);
    rt_fire(c, r);
}

static bc_coord_t *spawn(bench_t *b, const char *id, bc_coord_start_fn start, void *arg, int keep)
{
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = id;
    o.on_start = start;
    o.arg = arg;
    bc_coord_t *c = NULL;
    char err[256];
    if (bc_coord_spawn(b->hub, &o, keep ? &c : NULL, err, sizeof err) != 0)
        die("bc_coord_spawn %s: %s", id, err);
    return c;
}

static void wait_ready(bench_t *b, uint64_t want, const char *what)
{
    uint64_t until = bc_now_ms() + 600000;
    /* relaxed: a counter; the coordinators' own state is not read here. */
    while (atomic_load_explicit(&b->ready, memory_order_relaxed) < want) {
        if (bc_now_ms() > until)
            die("%s: only %llu of %llu coordinators started within 10 minutes", what,
                (unsigned long long)atomic_load(&b->ready), (unsigned long long)want);
        sleep_ns(1000000);
    }
}

/* Let the start-up traffic (subscriptions, first drains, first heartbeats) drain away. The
 * first heartbeats go out at most 1024 a tick (actors/heartbeat.c), so with a long interval
 * (ticks of up to 20 ms) those of 100,000 coordinators take seconds, with nothing in flight
 * between two ticks: the wait is also for as many heartbeat writes as hosted coordinators. (A
 * count of writes, not of coordinators: it would be met early only if second heartbeats began
 * before the last first ones, which needs a spawn longer than the interval.) */
static void settle(bench_t *b)
{
    bc_redis_stats_t st;
    for (int i = 0; i < 3000; i++) {
        bc_redis_stats(b->hub->redis, &st);
        bc_hub_stats_t hs;
        bc_hub_stats(b->hub, &hs);
        uint64_t q = 0;
        for (int c = 0; c < BC_REDIS_CLASS_COUNT; c++)
            q += st.queued[c];
        if (st.in_flight == 0 && q == 0 && hs.heartbeats >= hs.coordinators)
            break;
        sleep_ns(10000000);
    }
    sleep_ns(200000000);
}

/* ---------------------------------------------------------------- measurements */

/* CPU warmer threads running in the bench's runtime (runtime/warm.c; BC_WARM_US=0: none). */
static unsigned warmers(bench_t *b)
{
    bc_runtime_stats_t st;
    bc_runtime_stats(b->rt, &st);
    return (unsigned)st.warmers;
}

typedef struct {
    double wake50, wake99, wake999, ack50, ack99, rts, floor50, floor99, ceiling, layer50, layer99;
    double ceiling_fan;                   /* --fanout-ceiling */
    double floor_cold50, floor_cold99;    /* the floor with the warmers released */
    double pfloor50, pfloor99;            /* --protocol-floor */
    double wake_place[3], floor_place[3]; /* --placement: share on one CPU, p50 on one, across */
    uint64_t unsettled; /* floor samples taken before the last signal's tail ended */
    double cmds_per_rt, sent_per_rt, hb_per_rt, pubsub_per_rt;
    char cmdmix[512];
    uint64_t ack_fail, rt_fail, lost;
} run_t;

/* Wake and ACK latency of `samples` signals, each followed by one sample of the floor, so that
 * both see the same minute of a noisy machine. The floor's sample is taken with the CPU warmers
 * held on (the raw clients are not runtime threads; ours keep the warmers on by themselves,
 * since the next signal comes well within their linger). */
/* Wait (up to 20 ms) until the hub has consumed the durable copies of `n` signals since `base`
 * (its durable_consumed count): the last step of a signal's life, after its wake and its ACK.
 * Returns 0 when it did, -1 on the time limit. */
static int tail_done(bench_t *b, uint64_t base, uint64_t n)
{
    uint64_t until = bc_now_ns() + 20000000u;
    for (;;) {
        bc_hub_stats_t st;
        bc_hub_stats(b->hub, &st);
        if (st.durable_consumed - base >= n)
            return 0;
        if (bc_now_ns() > until)
            return -1;
        sleep_ns(50000);
    }
}

static void latency_run(bench_t *b, size_t samples, size_t *rr, run_t *out)
{
    b->nwake = b->nack = 0;
    b->ack_fail = 0;
    uint64_t lost = 0;
    floor_t fl;
    pfloor_t pf;
    floor_open(&fl, samples);
    if (g_pfloor)
        pfloor_open(&pf, samples, g_secret);
    bc_hub_stats_t st0;
    bc_hub_stats(b->hub, &st0);
    out->unsettled = 0;
    for (size_t i = 0; i < samples; i++) {
        /* The floor's sample must find our runtime as quiet as our signal will: the previous
         * signal's tail (its durable copy, consumed after the wake and the ACK) would otherwise
         * keep our threads spinning through the sample, and a busy second CPU makes the floor's
         * three parties chain on one CPU, which is faster than the floor our signals see. */
        if (i > 0 && tail_done(b, st0.durable_consumed, i) != 0)
            out->unsettled++;
        bc_runtime_hold_warm(b->rt, 1);
        floor_one(&fl);
        if (g_pfloor)
            pfloor_one(&pf);
        bc_runtime_hold_warm(b->rt, 0);
        pthread_mutex_lock(&b->lock);
        b->seq++;
        b->target = *rr;
        b->got_wake = 0;
        b->got_ack = g_no_ack_wait;
        pthread_mutex_unlock(&b->lock);
        *rr = (*rr + 1) % b->n;
        sleep_ns(GAP_NS);
        if (bc_coord_post(b->tx, tx_go, b) != 0)
            die("coordinator %s is gone", bc_coord_id(b->tx));
        struct timespec dl = deadline_in(ACK_TIMEOUT_MS + 5000);
        pthread_mutex_lock(&b->lock);
        while (!(b->got_wake && b->got_ack))
            if (pthread_cond_timedwait(&b->cond, &b->lock, &dl) == ETIMEDOUT) {
                lost++;
                break;
            }
        pthread_mutex_unlock(&b->lock);
    }
    /* Wait for a straggling ACK so the next phase starts clean. */
    struct timespec dl = deadline_in(ACK_TIMEOUT_MS + 1000);
    pthread_mutex_lock(&b->lock);
    while (!b->got_ack)
        if (pthread_cond_timedwait(&b->cond, &b->lock, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&b->lock);
    if (g_placement)
        placement_split(b->wake, b->wone, b->nwake, out->wake_place);
    floor_close(&fl, &out->floor50, &out->floor99, out->floor_place);
    if (g_pfloor)
        pfloor_close(&pf, &out->pfloor50, &out->pfloor99);
    out->wake50 = pct(b->wake, b->nwake, 0.50);
    out->wake99 = pct(b->wake, b->nwake, 0.99);
    out->wake999 = pct(b->wake, b->nwake, 0.999);
    out->ack50 = pct(b->ack, b->nack, 0.50);
    out->ack99 = pct(b->ack, b->nack, 0.99);
    out->ack_fail = b->ack_fail;
    out->lost = lost;
}

/* Sustained round trips: K fresh senders (spawned per run, stopped after it), each looping
 * send -> ACK -> send to its own receiver b-<k * N / K>. */
static void roundtrip_run(bench_t *b, double secs, run_t *out)
{
    redisContext *info = raw_connect();
    cmdstat_t before[MAX_CMDSTATS], after[MAX_CMDSTATS];
    bc_hub_stats_t h0, h1;
    bc_redis_stats_t r0, r1;
    atomic_store(&b->rt_stop, 0);
    atomic_store(&b->rt_ready, 0);
    atomic_store(&b->rt_fail, 0);
    atomic_store(&b->rt_inflight, (int)b->k);
    size_t stride = b->n / b->k;
    for (size_t k = 0; k < b->k; k++) {
        rt_sender_t *r = &b->rts[k];
        char id[32];
        r->b = b;
        snprintf(r->to, sizeof r->to, "b-%zu", k * stride);
        next_incarnation(id, sizeof id, "rt", (int)k);
        r->c = spawn(b, id, rt_start, r, 1);
    }
    g_incarnation++;
    uint64_t until = bc_now_ms() + 60000;
    /* relaxed: a counter. */
    while (atomic_load_explicit(&b->rt_ready, memory_order_relaxed) < b->k) {
        if (bc_now_ms() > until)
            die("round-trip senders did not start within 60 s");
        sleep_ns(1000000);
    }
    sleep_ns(50000000); /* every sender is looping */
    size_t nb = cmdstats(info, before);
    bc_hub_stats(b->hub, &h0);
    bc_redis_stats(b->hub->redis, &r0);
    /* relaxed: a progress counter, sampled. */
    uint64_t c0 = atomic_load_explicit(&b->rt_done, memory_order_relaxed);
    uint64_t t0 = bc_now_ns();
    sleep_ns((long)(secs * 1e9));
    uint64_t c1 = atomic_load_explicit(&b->rt_done, memory_order_relaxed);
    uint64_t t1 = bc_now_ns();
    bc_redis_stats(b->hub->redis, &r1);
    bc_hub_stats(b->hub, &h1);
    size_t na = cmdstats(info, after);
    atomic_store(&b->rt_stop, 1);
    until = bc_now_ms() + ACK_TIMEOUT_MS + 5000;
    /* acquire: pairs with the senders' release when they stop. */
    while (atomic_load_explicit(&b->rt_inflight, memory_order_acquire) > 0 && bc_now_ms() < until)
        sleep_ns(1000000);
    for (size_t k = 0; k < b->k; k++) {
        bc_coord_stop(b->rts[k].c);
        bc_coord_release(b->rts[k].c);
        b->rts[k].c = NULL;
    }
    /* Let them finish stopping (last heartbeats) before the next phase. */
    bc_hub_stats_t hs;
    do {
        sleep_ns(1000000);
        bc_hub_stats(b->hub, &hs);
    } while (hs.coordinators > b->n + 1 && bc_now_ms() < until + 10000);
    redisFree(info);
    uint64_t rts = c1 - c0;
    out->rts = (double)rts / ((double)(t1 - t0) / 1e9);
    out->cmds_per_rt = cmdstats_diff(before, nb, after, na, rts, out->cmdmix, sizeof out->cmdmix);
    out->sent_per_rt = rts ? (double)(r1.submitted - r0.submitted) / (double)rts : 0;
    out->hb_per_rt = rts ? (double)(h1.heartbeats - h0.heartbeats) / (double)rts : 0;
    out->pubsub_per_rt = rts ? (double)(r1.pubsub_messages - r0.pubsub_messages) / (double)rts : 0;
    out->rt_fail = atomic_load(&b->rt_fail);
}

/* --layer-floor (diagnostic): the same one-way PUBLISH -> SUBSCRIBE latency, but from an actor
 * through the runtime's Redis layer (the I/O thread, the hub's connections) to another actor:
 * what any signal pays for the thread hops before the protocol adds its own work. */
enum { LF_GO = 1 };

typedef struct {
    bc_redis_t *redis;
    char chan[64];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t got; /* sequence number received */
    int synced;
    double *lat;
    size_t n, cap;
} layer_t;

typedef struct {
    bc_msg_t hdr;
    uint64_t seq;
} lf_go_t;

static void lf_publisher(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    layer_t *l = st;
    (void)self;
    if (msg->type != LF_GO)
        return;
    char pl[64];
    snprintf(pl, sizeof pl, "%llu:%llu", (unsigned long long)((lf_go_t *)msg)->seq,
             (unsigned long long)bc_now_ns());
    const char *argv[] = {"PUBLISH", l->chan, pl};
    bc_redis_cmd(l->redis, NULL, 0, BC_REDIS_CLASS_OTHER, 3, argv, NULL);
}

static void lf_subscriber(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    uint64_t now = bc_now_ns();
    layer_t *l = st;
    (void)self;
    if (msg->type == BC_MSG_REDIS_SYNC) {
        pthread_mutex_lock(&l->lock);
        l->synced = 1;
        pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->lock);
    } else if (msg->type == BC_MSG_REDIS_PUBSUB) {
        bc_redis_pubsub_msg_t *m = (bc_redis_pubsub_msg_t *)msg;
        char *end;
        uint64_t seq = strtoull(m->data + m->channel_len + 1, &end, 10);
        uint64_t t = strtoull(end + 1, NULL, 10);
        pthread_mutex_lock(&l->lock);
        if (l->n < l->cap)
            l->lat[l->n++] = (double)(now - t) / 1e3;
        l->got = seq;
        pthread_cond_signal(&l->cond);
        pthread_mutex_unlock(&l->lock);
    }
}

static void layer_floor_run(bench_t *b, size_t n, double *p50, double *p99)
{
    layer_t l;
    memset(&l, 0, sizeof l);
    l.redis = b->hub->redis;
    snprintf(l.chan, sizeof l.chan, "bcbench:layer:%d", (int)getpid());
    pthread_mutex_init(&l.lock, NULL);
    pthread_cond_init(&l.cond, NULL);
    l.cap = n;
    l.lat = malloc(n * sizeof *l.lat);
    if (l.lat == NULL)
        die("out of memory");
    bc_actor_t *pub = bc_spawn(b->rt, lf_publisher, &l), *sub = bc_spawn(b->rt, lf_subscriber, &l);
    const char *ch[] = {l.chan};
    bc_redis_subscribe_sync(l.redis, sub, ch, 1, 1);
    struct timespec dl = deadline_in(10000);
    pthread_mutex_lock(&l.lock);
    while (!l.synced)
        if (pthread_cond_timedwait(&l.cond, &l.lock, &dl) == ETIMEDOUT)
            die("layer floor: subscription not confirmed within 10 s");
    pthread_mutex_unlock(&l.lock);
    for (uint64_t seq = 1; seq <= n; seq++) {
        sleep_ns(GAP_NS);
        lf_go_t *g = bc_msg_alloc(sizeof *g, LF_GO);
        g->seq = seq;
        bc_send(pub, &g->hdr);
        dl = deadline_in(5000);
        pthread_mutex_lock(&l.lock);
        while (l.got < seq)
            if (pthread_cond_timedwait(&l.cond, &l.lock, &dl) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&l.lock);
    }
    bc_redis_unsubscribe(l.redis, ch, 1);
    bc_stop(pub);
    bc_stop(sub);
    while (bc_actor_alive(pub) || bc_actor_alive(sub))
        sleep_ns(1000000);
    bc_actor_release(pub);
    bc_actor_release(sub);
    *p50 = pct(l.lat, l.n, 0.50);
    *p99 = pct(l.lat, l.n, 0.99);
    free(l.lat);
    pthread_mutex_destroy(&l.lock);
    pthread_cond_destroy(&l.cond);
}

/* ---------------------------------------------------------------- --scrape-ms */

/* A Prometheus stand-in: GET /metrics over TCP every g_scrape_ms from its own thread, for as
 * long as the measurement runs, so a run with it can be compared with one without. */
typedef struct {
    pthread_t th;
    int port;
    _Atomic int stop;
    uint64_t scrapes, failures;
    double max_ms;
} scraper_t;

static int scrape_once(int port)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char buf[65536];
    ssize_t k, first = 0;
    int ok = 0;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0) {
        if (first++ == 0)
            ok = k >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0;
    }
    close(fd);
    return ok ? 0 : -1;
}

static void *scraper_main(void *arg)
{
    scraper_t *s = arg;
    /* relaxed: a stop flag polled between scrapes. */
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        uint64_t t0 = bc_now_ns();
        if (scrape_once(s->port) != 0)
            s->failures++;
        double ms = (double)(bc_now_ns() - t0) / 1e6;
        if (ms > s->max_ms)
            s->max_ms = ms;
        s->scrapes++;
        sleep_ns((long)g_scrape_ms * 1000000L);
    }
    return NULL;
}

static void scraper_start(scraper_t *s, bc_hub_t *hub)
{
    memset(s, 0, sizeof *s);
    char err[256];
    int rc = bc_hub_serve_http(hub, NULL, 0, &s->port, err, sizeof err);
    if (rc != 0)
        die("--scrape-ms: %s", err);
    if (pthread_create(&s->th, NULL, scraper_main, s) != 0)
        die("--scrape-ms: cannot start the scraper thread");
}

static void scraper_stop(scraper_t *s)
{
    atomic_store_explicit(&s->stop, 1, memory_order_relaxed); /* relaxed: joined below */
    pthread_join(s->th, NULL);
}

/* ---------------------------------------------------------------- one size */

typedef struct {
    size_t n;
    int runs;
    size_t samples;
    double rt_secs, ceil_secs;
    const char *secret;
} conf_t;

static void run_size(const conf_t *cf)
{
    bench_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        die("out of memory");
    b->n = cf->n;
    b->k = cf->n < 256 ? cf->n : 256;
    b->cap = cf->samples;
    b->wake = malloc(cf->samples * sizeof *b->wake);
    b->wone = g_placement ? calloc(cf->samples + 1, 1) : NULL;
    b->ack = malloc(cf->samples * sizeof *b->ack);
    b->rts = calloc(b->k, sizeof *b->rts);
    if (b->wake == NULL || (g_placement && b->wone == NULL) || b->ack == NULL || b->rts == NULL)
        die("out of memory");
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);

    bc_runtime_opts_t ro;
    bc_runtime_opts_init(&ro);
    ro.spin_us = g_spin_us;
    int rc = bc_runtime_create(&ro, &b->rt);
    if (rc != 0)
        die("bc_runtime_create: %s", bc_strerror(rc));
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.secret = cf->secret;
    char err[256];
    if ((rc = bc_hub_create(b->rt, &ho, &b->hub, err, sizeof err)) != 0)
        die("bc_hub_create: %s", err);
    if (bc_hub_wait_ready(b->hub, 10000) != 0)
        die("Redis not ready within 10 s");

    double rss0 = rss_mb();
    uint64_t t0 = bc_now_ns();
    char id[32];
    for (size_t i = 0; i < cf->n; i++) {
        snprintf(id, sizeof id, "b-%zu", i);
        spawn(b, id, rx_start, b, 0);
    }
    wait_ready(b, cf->n, "spawn");
    double spawn_s = (double)(bc_now_ns() - t0) / 1e9;
    double rss1 = rss_mb();
    next_incarnation(b->tx_id, sizeof b->tx_id, "bench-tx", -1);
    b->tx = spawn(b, b->tx_id, on_ready, b, 1);
    wait_ready(b, cf->n + 1, "spawn of the sender");
    settle(b);
    if (!g_json)
        fprintf(stderr, "signal_bench: %zu coordinators up in %.2f s, measuring...\n", cf->n,
                spawn_s);

    scraper_t scr;
    if (g_scrape_ms)
        scraper_start(&scr, b->hub);
    run_t runs[MAX_RUNS];
    memset(runs, 0, sizeof runs);
    size_t rr = 0;
    for (int i = 0; i < cf->runs; i++) {
        run_t *r = &runs[i];
        /* The floor is measured under the CPU conditions our signals see: with the runtime's
         * CPU warmers running (runtime/warm.c). The floor with them released is reported too,
         * for comparison. */
        latency_run(b, cf->samples, &rr, r);
        if (warmers(b))
            floor_run(cf->samples, &r->floor_cold50, &r->floor_cold99);
        if (g_layer_floor)
            layer_floor_run(b, cf->samples, &r->layer50, &r->layer99);
        roundtrip_run(b, cf->rt_secs, r);
        bc_runtime_hold_warm(b->rt, 1);
        r->ceiling = ceiling_run(cf->ceil_secs, i, 0);
        bc_runtime_hold_warm(b->rt, 0);
        if (g_fanout)
            r->ceiling_fan = ceiling_run(cf->ceil_secs, i, cf->n > 1024 ? cf->n : 1024);
    }
    if (g_scrape_ms)
        scraper_stop(&scr);
    unsigned nwarm = warmers(b);
    bc_hub_stats_t hs;
    bc_hub_stats(b->hub, &hs);
    const char *mode = bc_hub_notify_mode(b->hub);
    char mode_s[16];
    snprintf(mode_s, sizeof mode_s, "%s", mode);

    bc_coord_release(b->tx);
    uint64_t td = bc_now_ns();
    bc_hub_destroy(b->hub);
    bc_runtime_destroy(b->rt);
    double teardown_s = (double)(bc_now_ns() - td) / 1e9;

    /* medians */
    double v[NCOL][MAX_RUNS];
    uint64_t ack_fail = 0, rt_fail = 0, lost = 0, unsettled = 0;
    for (int i = 0; i < cf->runs; i++) {
        run_t *r = &runs[i];
        double row[NCOL] = {r->wake50,
                            r->wake99,
                            r->wake999,
                            r->ack50,
                            r->ack99,
                            r->rts,
                            r->floor50,
                            r->floor99,
                            r->ceiling,
                            r->floor50 > 0 ? r->wake50 / r->floor50 : 0,
                            r->ceiling > 0 ? r->rts / r->ceiling : 0,
                            r->layer50,
                            r->layer99,
                            r->ceiling_fan,
                            r->ceiling_fan > 0 ? r->rts / r->ceiling_fan : 0,
                            r->floor_cold50,
                            r->floor_cold99,
                            r->pfloor50,
                            r->pfloor99,
                            r->wake_place[0],
                            r->wake_place[1],
                            r->wake_place[2],
                            r->floor_place[0],
                            r->floor_place[1],
                            r->floor_place[2]};
        for (int j = 0; j < NCOL; j++)
            v[j][i] = row[j];
        ack_fail += r->ack_fail;
        rt_fail += r->rt_fail;
        lost += r->lost;
        unsettled += r->unsettled;
    }
    double m[NCOL];
    for (int j = 0; j < NCOL; j++)
        m[j] = median(v[j], cf->runs);
    /* The command mix of the run with the median round-trip rate. */
    int mid = 0;
    for (int i = 0; i < cf->runs; i++)
        if (runs[i].rts == m[5])
            mid = i;
    run_t *mr = &runs[mid];
    double per_coord_kb = cf->n ? (rss1 - rss0) * 1024.0 / (double)cf->n : 0;

    char extra[1024] = "";
    if (g_layer_floor)
        snprintf(extra, sizeof extra, "\"layer_floor_p50_us\":%.1f,\"layer_floor_p99_us\":%.1f,",
                 m[11], m[12]);
    if (unsettled)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "\"unsettled\":%llu,",
                 (unsigned long long)unsettled);
    if (g_pfloor)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                 "\"floor_protocol_p50_us\":%.1f,\"floor_protocol_p99_us\":%.1f,", m[17], m[18]);
    if (g_placement) {
        /* What no sample gave (-1) is null. */
        static const char *const key[6] = {"wake_one_cpu_share",   "wake_one_cpu_p50_us",
                                           "wake_across_p50_us",   "floor_one_cpu_share",
                                           "floor_one_cpu_p50_us", "floor_across_p50_us"};
        for (int i = 0; i < 6; i++) {
            double x = m[COL_PLACE + i];
            size_t at = strlen(extra);
            if (x < 0)
                snprintf(extra + at, sizeof extra - at, "\"%s\":null,", key[i]);
            else
                snprintf(extra + at, sizeof extra - at, i % 3 ? "\"%s\":%.1f," : "\"%s\":%.3f,",
                         key[i], x);
        }
    }
    if (g_no_ack_wait)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "\"no_ack_wait\":1,");
    if (g_fanout)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                 "\"ceiling_fanout_round_trips_per_s\":%.0f,\"rt_fanout_ratio\":%.3f,", m[13],
                 m[14]);
    if (nwarm)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                 "\"floor_cold_pubsub_p50_us\":%.1f,\"floor_cold_pubsub_p99_us\":%.1f,", m[15],
                 m[16]);
    if (g_scrape_ms)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                 "\"scrape_ms\":%u,\"scrapes\":%llu,\"scrape_max_ms\":%.1f,", g_scrape_ms,
                 (unsigned long long)scr.scrapes, scr.max_ms);
    if (g_json) {
        printf("{\"bench\":\"signal_latency\",\"coordinators\":%zu,\"wake_p50_us\":%.1f,"
               "\"wake_p99_us\":%.1f,\"wake_p999_us\":%.1f,\"ack_p50_us\":%.1f,"
               "\"ack_p99_us\":%.1f,\"round_trips_per_s\":%.0f,\"floor_pubsub_p50_us\":%.1f,"
               "\"floor_pubsub_p99_us\":%.1f,\"ceiling_round_trips_per_s\":%.0f,"
               "\"wake_floor_ratio\":%.3f,\"rt_ceiling_ratio\":%.3f,\"rss_mb\":%.1f,"
               "\"spawn_s\":%.3f,\"redis_cmds_per_rt\":%.2f,\"notify\":\"%s\",\"senders\":%zu,"
               "\"samples\":%zu,\"errors\":%llu,\"warmers\":%u,%s\"runs\":%d}\n",
               cf->n, m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], rss1,
               spawn_s, mr->cmds_per_rt, mode_s, b->k, cf->samples,
               (unsigned long long)(ack_fail + rt_fail + lost), nwarm, extra, cf->runs);
    } else {
        const char *ok = "\xe2\x9c\x93", *ko = "\xe2\x9c\x97";
        printf("\nsignal_latency: %zu coordinators + 1 latency sender + %zu round-trip senders, "
               "heartbeats on, notify %s\n",
               cf->n, b->k, mode_s);
        printf("  spawned %zu in %.2f s (%.0f/s); RSS after spawn %.1f MB", cf->n, spawn_s,
               (double)cf->n / spawn_s, rss1);
        if (cf->n >= 1000)
            printf(" (%+.2f KB per coordinator; design target <= 2 KB)", per_coord_kb);
        printf("; teardown %.2f s\n", teardown_s);
        printf("  medians of %d run%s, %zu samples each   %12s %12s %8s  %s\n", cf->runs,
               cf->runs == 1 ? "" : "s", cf->samples, "blockcoord", "Redis", "ratio", "target");
        printf("  %-40s %9.1f us %9.1f us %8.2f  <= 1.3 x floor p50   %s\n",
               "wake p50 (floor: PUBLISH->SUBSCRIBE)", m[0], m[6], m[9], m[9] <= 1.3 ? ok : ko);
        printf("  %-40s %9.1f us %9.1f us %8s  <= 1000 us            %s\n", "wake p99", m[1], m[7],
               "", m[1] <= 1000 ? ok : ko);
        printf("  %-40s %9.1f us %12s %8s\n", "wake p99.9", m[2], "", "");
        if (nwarm)
            printf("  %-40s %12s %9.1f us %8.2f  (CPU warmers: %u; floor above: held on)\n",
                   "floor with the CPU warmers released", "", m[15], m[15] > 0 ? m[0] / m[15] : 0,
                   nwarm);
        else
            printf("  %-40s\n", "CPU warmers off (BC_WARM_US=0): both floors with idle CPUs");
        if (g_pfloor)
            printf("  %-40s %12s %9.1f us %8.2f  wake p50 / this (p99 %.1f us; / floor %.2f)\n",
                   "protocol floor: minimal client, our wire", "", m[17],
                   m[17] > 0 ? m[0] / m[17] : 0, m[18], m[6] > 0 ? m[17] / m[6] : 0);
        if (g_placement) {
            char sh[2][16];
            for (int i = 0; i < 2; i++) {
                double x = m[COL_PLACE + 3 * i];
                snprintf(sh[i], sizeof sh[i], x < 0 ? "-" : "%.0f %%", 100 * x);
            }
            printf("  %-40s %12s %12s\n", "Redis and receiver on one CPU: samples", sh[0], sh[1]);
            const char *what[2] = {"  p50 of those", "  p50 of the others"};
            for (int i = 0; i < 2; i++) {
                double w = m[COL_PLACE + 1 + i], f = m[COL_PLACE + 4 + i];
                char ws[16] = "-", fs[16] = "-", rs[16] = "";
                if (w >= 0)
                    snprintf(ws, sizeof ws, "%.1f us", w);
                if (f >= 0)
                    snprintf(fs, sizeof fs, "%.1f us", f);
                if (w >= 0 && f > 0)
                    snprintf(rs, sizeof rs, "%.2f", w / f);
                printf("  %-40s %12s %12s %8s\n", what[i], ws, fs, rs);
            }
        }
        if (g_layer_floor)
            printf("  %-40s %12s %9.1f us %8.2f  wake p50 / this (p99 %.1f us)\n",
                   "layer floor: actor->I/O->Redis->actor", "", m[11], m[11] > 0 ? m[0] / m[11] : 0,
                   m[12]);
        if (g_no_ack_wait) {
            printf("  %-40s %12s\n", "ACK p50 / p99", "not measured (--no-ack-wait)");
        } else {
            printf("  %-40s %9.1f us %12s %8s  <= 500 us             %s\n",
                   "ACK p50 (send -> ACK seen)", m[3], "", "", m[3] <= 500 ? ok : ko);
            printf("  %-40s %9.1f us %12s %8s  <= 2000 us            %s\n", "ACK p99", m[4], "", "",
                   m[4] <= 2000 ? ok : ko);
        }
        printf("  %-40s %12.0f %12.0f %8.2f  >= 0.70 x ceiling    %s%s\n",
               "round trips/s (ceiling: pipelined mix)", m[5], m[8], m[10], m[10] >= 0.70 ? ok : ko,
               b->k < 256 ? "  (few senders: bound by latency, not throughput)" : "");
        if (g_fanout)
            printf("  %-40s %12s %12.0f %8.2f  (diagnostic)\n",
                   "  ceiling with its messages delivered", "", m[13], m[14]);
        printf("  per round trip: %.2f Redis commands [%s];\n"
               "    %.2f submitted by the hub, %.2f pub/sub messages received, %.2f heartbeat "
               "writes\n",
               mr->cmds_per_rt, mr->cmdmix, mr->sent_per_rt, mr->pubsub_per_rt, mr->hb_per_rt);
        printf("  hub totals: %llu sent, %llu delivered (%llu fast path), %llu durable copies, "
               "%llu ACKs verified, %llu heartbeats, %llu Redis errors\n",
               (unsigned long long)hs.signals_sent, (unsigned long long)hs.signals_delivered,
               (unsigned long long)hs.fast_path, (unsigned long long)hs.durable_consumed,
               (unsigned long long)hs.acks_verified, (unsigned long long)hs.heartbeats,
               (unsigned long long)hs.redis_errors);
        if (g_scrape_ms)
            printf("  scraped /metrics every %u ms meanwhile: %llu scrapes (%llu failed), slowest "
                   "%.1f ms\n",
                   g_scrape_ms, (unsigned long long)scr.scrapes, (unsigned long long)scr.failures,
                   scr.max_ms);
        if (unsettled)
            printf("  note: %llu floor samples were taken before the previous signal's durable "
                   "copy was consumed (20 ms limit)\n",
                   (unsigned long long)unsettled);
        if (ack_fail + rt_fail + lost)
            printf("  WARNING: %llu ACK waits failed, %llu signals not received in time\n",
                   (unsigned long long)(ack_fail + rt_fail), (unsigned long long)lost);
    }
    fflush(stdout);
    free(b->wake);
    free(b->wone);
    free(b->ack);
    free(b->rts);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}

/* ---------------------------------------------------------------- main */

/* --placement: find the Redis process on this host and keep its /proc stat open. INFO's
 * process_id names it; since a pid taken from a Redis on another host could name an unrelated
 * local process, the pid must also be the unix socket's peer (SO_PEERCRED), or, over TCP, the
 * connection's peer a loopback address and the process a redis-server. 0, or -1 with why. */
static int placement_open(char *why, size_t len)
{
    redisContext *c = raw_connect();
    redisReply *r = redisCommand(c, "INFO server");
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        snprintf(why, len, "INFO server failed");
        freeReplyObject(r);
        redisFree(c);
        return -1;
    }
    const char *p = strstr(r->str, "process_id:");
    long pid = p ? strtol(p + 11, NULL, 10) : 0;
    freeReplyObject(r);
    bool local;
    if (g_conf.unix_path) {
        struct ucred cred;
        socklen_t cl = sizeof cred;
        local = getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid == pid;
    } else {
        char path[64], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%ld/comm", pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        if (f) {
            if (fgets(comm, sizeof comm, f) == NULL)
                comm[0] = '\0';
            fclose(f);
        }
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        local = getpeername(c->fd, (struct sockaddr *)&peer, &pl) == 0 &&
                bc_net_is_loopback(&peer) && strncmp(comm, "redis-server", 12) == 0;
    }
    redisFree(c);
    if (pid <= 0 || !local) {
        snprintf(why, len,
                 "Redis (pid %ld) is not a process on this host: placement needs a local Redis, "
                 "over a unix socket or a loopback address (scripts/with-redis), and /proc",
                 pid);
        return -1;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    g_redis_stat = open(path, O_RDONLY | O_CLOEXEC);
    if (g_redis_stat < 0 || redis_cpu() < 0) {
        snprintf(why, len, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fputs(
        "usage: signal_bench [--json] [--runs R] [--quick] [--sizes N,N,...] [--samples S]\n"
        "                    [--rt-seconds S] [--flush] [--spin-us N] [--no-ack-wait] "
        "[--layer-floor]\n"
        "                    [--protocol-floor] [--placement] [--scrape-ms N] [--fanout-ceiling]\n"
        "  Hosts N waiting coordinators in one hub (heartbeats on) and measures, against\n"
        "  Redis in the same run (REDIS_URL): wake latency and ACK latency of one signal at a\n"
        "  time (p50/p99/p99.9 vs a raw PUBLISH->SUBSCRIBE floor), and sustained round trips\n"
        "  from min(256, N) senders (vs a pipelined raw-hiredis ceiling of the same command\n"
        "  mix). Medians of --runs runs (default 3). Sizes default to 1,1000,10000,100000.\n"
        "  --samples: latency samples per run (default 5000); --rt-seconds: length of the\n"
        "  round-trip phase (default 2). --quick = sizes 1,1000, 1000 samples, 1 s phases,\n"
        "  1 run. --flush runs FLUSHDB before each size: only for a throwaway server\n"
        "  (scripts/with-redis). The secret is BLOCKING_COORDINATION_SECRET, or a fixed\n"
        "  bench secret when it is unset. --no-ack-wait (diagnostic): the latency sender\n"
        "  does not wait for ACKs, so the wake latency is measured without the ACK wait's\n"
        "  subscription traffic running beside it (the ACK columns are then empty).\n"
        "  --spin-us N: how long an idle worker spins before parking (runtime default 50):\n"
        "  less spin leaves more CPU to Redis (throughput), more spin wakes faster (latency).\n"
        "  --layer-floor (diagnostic): also measure the floor through the runtime's Redis\n"
        "  layer (actor -> I/O thread -> PUBLISH -> subscriber -> I/O thread -> actor).\n"
        "  --protocol-floor (diagnostic): also measure one signal of our wire protocol sent\n"
        "  and received by a minimal blocking client (sync hiredis, no runtime): signed,\n"
        "  the coordinator's three commands in one write, the hint verified on receipt.\n"
        "  wake / this is what the runtime adds; this / floor what the protocol costs.\n"
        "  --placement (diagnostic): record, for every wake and floor sample, whether Redis\n"
        "  and the receiver ran on one CPU (Redis's CPU from /proc: a Redis on this host\n"
        "  only), and report the share of samples that did and the p50 of each group (null\n"
        "  in --json for a figure no sample gave). The floor is fastest when its parties\n"
        "  chain on one CPU, and its p50 follows the mode most of its samples fall into.\n"
        "  --fanout-ceiling (diagnostic): also measure the ceiling with a raw reader\n"
        "  subscribed to max(N, 1024) receivers' and 256 senders' channels, as the hub is,\n"
        "  so Redis delivers the mix's publishes and slot events as it does for the hub\n"
        "  (the main ceiling has nobody subscribed, which spares Redis that work).\n"
        "  --scrape-ms N: serve the hub's metrics and scrape GET /metrics every N ms from\n"
        "  another thread during the measurement (compare with a run without it).\n"
        "  The floor is sampled between our signals (one PUBLISH before each signal, once\n"
        "  the previous signal's durable copy was consumed), so that both see the same\n"
        "  moments of a noisy machine and a quiet runtime. The floor and the ceiling are\n"
        "  measured with the runtime's CPU warmers held on (the CPU conditions our signals\n"
        "  see); the floor with them released is reported too (floor_cold_pubsub_p50_us),\n"
        "  from a run of its own.\n"
        "  The runtime reads BC_WORKERS, BC_IO_SPIN_US, BC_IO_DIRECT=0|1 (direct writes),\n"
        "  BC_IO_POLL=0|1 (worker reads), BC_IO_RUN=0|1 (the I/O thread runs turns) and\n"
        "  BC_WARM_US (CPU warmers, 0 = off); docs/runtime.md. The hub reads\n"
        "  BC_HINT_FIRST=0|1 (the publish hint in a write of its own; docs/protocol.md\n"
        "  §2.2). Run the same binary with each to compare them.\n",
        f);
}

int main(int argc, char **argv)
{
    int runs = 3, quick = 0, flush = 0, runs_set = 0;
    long samples = 0;
    double rt_secs = 0;
    size_t sizes[MAX_SIZES] = {1, 1000, 10000, 100000};
    int nsizes = 4, sizes_set = 0;
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                         {"runs", required_argument, 0, 'r'},
                                         {"quick", no_argument, 0, 'q'},
                                         {"sizes", required_argument, 0, 's'},
                                         {"samples", required_argument, 0, 'n'},
                                         {"flush", no_argument, 0, 'f'},
                                         {"rt-seconds", required_argument, 0, 't'},
                                         {"no-ack-wait", no_argument, 0, 'a'},
                                         {"spin-us", required_argument, NULL, 'S'},
                                         {"layer-floor", no_argument, 0, 'L'},
                                         {"protocol-floor", no_argument, 0, 'P'},
                                         {"placement", no_argument, 0, 'C'},
                                         {"fanout-ceiling", no_argument, 0, 'F'},
                                         {"scrape-ms", required_argument, 0, 'M'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'j':
            g_json = 1;
            break;
        case 'r':
            runs = (int)strtol(optarg, &end, 10);
            if (*end || runs < 1 || runs > MAX_RUNS) {
                fprintf(stderr, "signal_bench: --runs \"%s\": expected 1..%d\n", optarg, MAX_RUNS);
                return 2;
            }
            runs_set = 1;
            break;
        case 'q':
            quick = 1;
            break;
        case 's': {
            nsizes = 0;
            sizes_set = 1;
            const char *p = optarg;
            for (;;) {
                long v = strtol(p, &end, 10);
                if (end == p || v < 1 || v > 1000000 || nsizes == MAX_SIZES ||
                    (*end != ',' && *end != '\0')) {
                    fprintf(stderr,
                            "signal_bench: --sizes \"%s\": expected up to %d comma-separated "
                            "counts 1..1000000\n",
                            optarg, MAX_SIZES);
                    return 2;
                }
                sizes[nsizes++] = (size_t)v;
                if (*end == '\0')
                    break;
                p = end + 1;
            }
            break;
        }
        case 'n':
            samples = strtol(optarg, &end, 10);
            if (*end || samples < 10 || samples > 1000000) {
                fprintf(stderr, "signal_bench: --samples \"%s\": expected 10..1000000\n", optarg);
                return 2;
            }
            break;
        case 'f':
            flush = 1;
            break;
        case 'a':
            g_no_ack_wait = 1;
            break;
        case 'P':
            g_pfloor = 1;
            break;
        case 'C':
            g_placement = 1;
            break;
        case 'L':
            g_layer_floor = 1;
            break;
        case 'F':
            g_fanout = 1;
            break;
        case 'S': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || optarg[0] == '-' || v < 1 || v > 100000) {
                fprintf(stderr, "signal_bench: --spin-us \"%s\": expected 1..100000\n", optarg);
                return 2;
            }
            g_spin_us = (unsigned)v;
            break;
        }
        case 'M': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || optarg[0] == '-' || v < 1 || v > 3600000) {
                fprintf(stderr, "signal_bench: --scrape-ms \"%s\": expected 1..3600000\n", optarg);
                return 2;
            }
            g_scrape_ms = (unsigned)v;
            break;
        }
        case 't':
            rt_secs = strtod(optarg, &end);
            if (*end || rt_secs < 0.1 || rt_secs > 3600) {
                fprintf(stderr, "signal_bench: --rt-seconds \"%s\": expected 0.1..3600\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "signal_bench: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (quick) {
        if (!sizes_set) {
            sizes[0] = 1;
            sizes[1] = 1000;
            nsizes = 2;
        }
        if (!runs_set)
            runs = 1;
    }
    bc_log_init_from_env();
    if (getenv("BC_LOG_LEVEL") == NULL)
        bc_log_set_level(BC_LOG_WARN);
    char err[256];
    if (bc_redis_conf_from_env(&g_conf, err, sizeof err) != 0) {
        fprintf(stderr, "signal_bench: %s\n", err);
        return 2;
    }
    const char *secret = getenv("BLOCKING_COORDINATION_SECRET");
    if (secret == NULL || secret[0] == '\0') {
        secret = BENCH_SECRET;
        fprintf(stderr, "signal_bench: BLOCKING_COORDINATION_SECRET is not set; using a fixed "
                        "64-character bench secret\n");
    }
    g_secret = secret;
    if (g_placement) {
        char why[300];
        if (placement_open(why, sizeof why) != 0) {
            fprintf(stderr, "signal_bench: --placement: %s\n", why);
            return 2;
        }
    }
    if (samples == 0)
        samples = quick ? 1000 : 5000;
    if (rt_secs == 0)
        rt_secs = quick ? 1.0 : 2.0;
    conf_t cf = {.runs = runs,
                 .samples = (size_t)samples,
                 .rt_secs = rt_secs,
                 .ceil_secs = 1.0,
                 .secret = secret};
    for (int i = 0; i < nsizes; i++) {
        if (flush)
            raw_flushdb();
        cf.n = sizes[i];
        run_size(&cf);
    }
    if (g_redis_stat >= 0)
        close(g_redis_stat);
    bc_redis_conf_free(&g_conf);
    return 0;
}
