/* runtime_bench.c - benchmarks of the actor runtime (no Redis).
 *
 * Six measurements, each run --runs times (default 3) and reported as the
 * median: idle actor footprint, spawn+destroy, skynet 1M, ping-pong, wake
 * latency across parked workers, 4->1 fan-in. Prints a table, or with
 * --json one JSON object per line.
 */
#include "internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_json;
static unsigned g_workers = 2;

static bc_runtime_t *mkrt(unsigned spin_us)
{
    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = g_workers;
    o.spin_us = spin_us;
    bc_runtime_t *rt;
    int rc = bc_runtime_create(&o, &rt);
    if (rc != 0) {
        fprintf(stderr, "runtime_bench: bc_runtime_create: %s\n", bc_strerror(rc));
        exit(1);
    }
    return rt;
}

static void wait_all(bc_runtime_t *rt)
{
    if (bc_runtime_wait(rt, 600000) != 0) {
        fprintf(stderr, "runtime_bench: actors did not finish within 10 minutes\n");
        exit(1);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void nop(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    (void)self;
    (void)st;
    (void)msg;
}

/* ---------------------------------------------------------------- footprint */

static long rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

/* Each run spawns n more idle actors while the previous runs' actors stay
 * alive, so no run can reuse freed pool memory: the growth of the pools (and
 * of RSS, as a cross-check) is what n idle actors cost. */
static void bench_footprint(uint64_t n, int runs, double *pool_b, double *rss_b)
{
    bc_runtime_t *rt = mkrt(0);
    bc_actor_t **v = malloc(n * (uint64_t)runs * sizeof *v);
    memset(v, 0, n * (uint64_t)runs * sizeof *v); /* fault the handle array in first */
    for (int r = 0; r < runs; r++) {
        size_t before = bc_pool_bytes_reserved();
        long rss0 = rss_bytes();
        for (uint64_t i = 0; i < n; i++)
            v[(uint64_t)r * n + i] = bc_spawn(rt, nop, NULL);
        pool_b[r] = (double)(bc_pool_bytes_reserved() - before) / (double)n;
        rss_b[r] = (double)(rss_bytes() - rss0) / (double)n;
    }
    for (uint64_t i = 0; i < n * (uint64_t)runs; i++) {
        bc_stop(v[i]);
        bc_actor_release(v[i]);
    }
    wait_all(rt);
    bc_runtime_destroy(rt);
    free(v);
}

/* ---------------------------------------------------------------- spawn */

typedef struct {
    uint64_t n;
    uint64_t t0, t1;
} spawn_state_t;

static void spawner(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    spawn_state_t *s = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    bc_runtime_t *rt = bc_actor_runtime(self);
    s->t0 = bc_now_ns();
    for (uint64_t i = 0; i < s->n; i++) {
        bc_actor_t *a = bc_spawn(rt, nop, NULL);
        bc_stop(a);
        bc_actor_release(a);
    }
    bc_stop(self);
}

static double bench_spawn(uint64_t n)
{
    bc_runtime_t *rt = mkrt(0);
    spawn_state_t s = {n, 0, 0};
    bc_actor_t *a = bc_spawn(rt, spawner, &s);
    bc_send(a, bc_msg_alloc(sizeof(bc_msg_t), 1));
    wait_all(rt); /* every spawned actor has stopped and been freed */
    uint64_t t1 = bc_now_ns();
    bc_actor_release(a);
    bc_runtime_destroy(rt);
    return (double)(t1 - s.t0) / (double)n;
}

/* ---------------------------------------------------------------- skynet */

typedef struct {
    bc_msg_t hdr;
    uint64_t num;
} sky_msg_t;

typedef struct {
    bc_actor_t *parent;
    uint64_t num, size, sum;
    int pending;
    uint64_t *result;
} sky_state_t;

enum { SKY_GO = 1, SKY_SUM = 2 };

static void sky(bc_actor_t *self, void *st, bc_msg_t *msg);

static void sky_done(bc_actor_t *self, sky_state_t *s, uint64_t v)
{
    if (s->parent) {
        sky_msg_t *r = bc_msg_alloc(sizeof *r, SKY_SUM);
        r->num = v;
        bc_send(s->parent, &r->hdr);
        bc_actor_release(s->parent);
    } else {
        *s->result = v;
    }
    bc_stop(self);
}

static void sky(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    sky_state_t *s = st;
    if (msg->type == BC_MSG_STOPPED) {
        bc_pool_free(bc_pool_class(sizeof *s), s);
        return;
    }
    if (msg->type == SKY_GO) {
        if (s->size == 1) {
            sky_done(self, s, s->num);
            return;
        }
        uint64_t child = s->size / 10;
        s->pending = 10;
        bc_runtime_t *rt = bc_actor_runtime(self);
        for (uint64_t i = 0; i < 10; i++) {
            sky_state_t *cs = bc_pool_alloc(bc_pool_class(sizeof *cs));
            cs->parent = bc_actor_retain(self);
            cs->num = s->num + i * child;
            cs->size = child;
            cs->sum = 0;
            cs->pending = 0;
            cs->result = NULL;
            bc_actor_t *c = bc_spawn(rt, sky, cs);
            bc_send(c, bc_msg_alloc(sizeof(bc_msg_t), SKY_GO));
            bc_actor_release(c);
        }
        return;
    }
    s->sum += ((sky_msg_t *)msg)->num;
    if (--s->pending == 0)
        sky_done(self, s, s->sum);
}

static double bench_skynet(uint64_t leaves, uint64_t *sum)
{
    bc_runtime_t *rt = mkrt(0);
    sky_state_t *root = bc_pool_alloc(bc_pool_class(sizeof *root));
    memset(root, 0, sizeof *root);
    root->size = leaves;
    root->result = sum;
    uint64_t t0 = bc_now_ns();
    bc_actor_t *r = bc_spawn(rt, sky, root);
    bc_send(r, bc_msg_alloc(sizeof(bc_msg_t), SKY_GO));
    wait_all(rt);
    uint64_t t1 = bc_now_ns();
    bc_actor_release(r);
    bc_runtime_destroy(rt);
    return (double)(t1 - t0) / 1e6;
}

/* ---------------------------------------------------------------- ping-pong */

typedef struct {
    bc_actor_t *peer;
    uint64_t left;
    uint64_t t_sent; /* wake bench: when the message was sent */
    uint64_t pause_ns;
    double *lat;
    uint64_t nlat;
} pp_state_t;

static void ponger(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    pp_state_t *p = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    if (p->left == 0) {
        bc_stop(p->peer);
        bc_stop(self);
        return;
    }
    p->left--;
    bc_msg_keep(msg);
    bc_send(p->peer, msg);
}

static double bench_pingpong(uint64_t rounds)
{
    bc_runtime_t *rt = mkrt(0);
    pp_state_t a = {0}, b = {0};
    bc_actor_t *pa = bc_spawn(rt, ponger, &a);
    bc_actor_t *pb = bc_spawn(rt, ponger, &b);
    a.peer = pb;
    b.peer = pa;
    a.left = rounds; /* a counts round trips; b just bounces */
    b.left = UINT64_MAX;
    uint64_t t0 = bc_now_ns();
    bc_send(pa, bc_msg_alloc(sizeof(bc_msg_t), 1));
    wait_all(rt);
    uint64_t t1 = bc_now_ns();
    bc_actor_release(pa);
    bc_actor_release(pb);
    bc_runtime_destroy(rt);
    return (double)(t1 - t0) / 1e3 / (double)rounds;
}

/* Wake: a on worker 0, b on worker 1. a pauses before each send so that
 * worker 1 parks; b measures send->run latency. */
typedef struct {
    bc_msg_t hdr;
    uint64_t t_sent;
} wake_msg_t;

static void wake_a(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    pp_state_t *p = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    if (p->left == 0) {
        bc_stop(p->peer);
        bc_stop(self);
        return;
    }
    p->left--;
    uint64_t until = bc_now_ns() + p->pause_ns; /* let the other worker park */
    while (bc_now_ns() < until)
        ;
    wake_msg_t *m = (wake_msg_t *)msg;
    bc_msg_keep(msg);
    m->t_sent = bc_now_ns();
    bc_send(p->peer, msg);
}

static void wake_b(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    pp_state_t *p = st;
    (void)self;
    if (msg->type == BC_MSG_STOPPED)
        return;
    wake_msg_t *m = (wake_msg_t *)msg;
    if (p->nlat < p->left)
        p->lat[p->nlat++] = (double)(bc_now_ns() - m->t_sent) / 1e3;
    bc_msg_keep(msg);
    bc_send(p->peer, msg);
}

static void bench_wake(uint64_t rounds, double *p50, double *p99, uint64_t *parks)
{
    bc_runtime_t *rt = mkrt(5);
    pp_state_t a = {0}, b = {0};
    b.lat = malloc(rounds * sizeof(double));
    b.left = rounds;
    a.left = rounds;
    a.pause_ns = 100000;
    bc_actor_t *pa = bc_spawn(rt, wake_a, &a);
    bc_actor_t *pb = bc_spawn(rt, wake_b, &b);
    bc_actor_set_affinity(pa, 0);
    bc_actor_set_affinity(pb, 1);
    a.peer = pb;
    b.peer = pa;
    wake_msg_t *m = bc_msg_alloc(sizeof *m, 1);
    bc_send(pa, &m->hdr);
    wait_all(rt);
    bc_runtime_stats_t s;
    bc_runtime_stats(rt, &s);
    *parks = s.parks;
    *p50 = median(b.lat, (int)b.nlat); /* sorts */
    *p99 = b.lat[(size_t)((double)b.nlat * 0.99)];
    free(b.lat);
    bc_actor_release(pa);
    bc_actor_release(pb);
    bc_runtime_destroy(rt);
}

/* The OS floor for the same thing: one thread futex-wakes another that is
 * asleep, after the same pause, no runtime involved. */
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>

typedef struct {
    _Atomic uint32_t word;
    _Atomic uint64_t t_sent;
    double *lat;
    uint64_t n;
} floor_t;

static void *floor_sleeper(void *p)
{
    floor_t *f = p;
    for (uint64_t i = 0; i < f->n; i++) {
        while (atomic_load_explicit(&f->word, memory_order_acquire) == 0)
            syscall(SYS_futex, &f->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        f->lat[i] = (double)(bc_now_ns() - atomic_load(&f->t_sent)) / 1e3;
        atomic_store_explicit(&f->word, 0, memory_order_release);
    }
    return NULL;
}

static double bench_futex_floor(uint64_t rounds)
{
    floor_t f;
    atomic_init(&f.word, 0);
    atomic_init(&f.t_sent, 0);
    f.lat = malloc(rounds * sizeof(double));
    f.n = rounds;
    pthread_t th;
    pthread_create(&th, NULL, floor_sleeper, &f);
    for (uint64_t i = 0; i < rounds; i++) {
        uint64_t until = bc_now_ns() + 100000;
        while (bc_now_ns() < until)
            ;
        while (atomic_load_explicit(&f.word, memory_order_acquire) != 0)
            ;
        atomic_store(&f.t_sent, bc_now_ns());
        atomic_store_explicit(&f.word, 1, memory_order_release);
        syscall(SYS_futex, &f.word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    pthread_join(th, NULL);
    double m = median(f.lat, (int)rounds);
    free(f.lat);
    return m;
}

/* ---------------------------------------------------------------- fan-in */

#define FAN_WINDOW 8192 /* messages a sender may have in flight */
#define FAN_CREDIT 2048 /* the receiver returns credit in chunks this big */
#define FAN_CHUNK 256   /* messages a sender sends per turn */

typedef struct {
    bc_msg_t hdr;
    uint32_t sender;
} fan_msg_t;

typedef struct {
    bc_actor_t *receiver, *self;
    uint32_t id;
    uint64_t left, credit;
    int chain;
} fan_sender_t;

typedef struct {
    fan_sender_t *senders;
    uint64_t got, want;
    uint64_t pending[8];
} fan_recv_t;

enum { FAN_DATA = 1, FAN_GO = 2, FAN_CREDITS = 3 };

static void fan_send_some(bc_actor_t *self, fan_sender_t *s)
{
    uint64_t n = s->left < s->credit ? s->left : s->credit;
    if (n > FAN_CHUNK)
        n = FAN_CHUNK;
    if (n == 0)
        return;
    if (s->chain) {
        fan_msg_t *first = NULL, *prev = NULL;
        for (uint64_t i = 0; i < n; i++) {
            fan_msg_t *m = bc_msg_alloc(sizeof *m, FAN_DATA);
            m->sender = s->id;
            if (prev)
                atomic_store_explicit(&prev->hdr.next, &m->hdr, memory_order_relaxed);
            else
                first = m;
            prev = m;
        }
        bc_send_chain(s->receiver, &first->hdr, &prev->hdr);
    } else {
        for (uint64_t i = 0; i < n; i++) {
            fan_msg_t *m = bc_msg_alloc(sizeof *m, FAN_DATA);
            m->sender = s->id;
            bc_send(s->receiver, &m->hdr);
        }
    }
    s->left -= n;
    s->credit -= n;
    if (s->left && s->credit) /* yield, then continue */
        bc_send(self, bc_msg_alloc(sizeof(bc_msg_t), FAN_GO));
}

static void fan_sender(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    fan_sender_t *s = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    if (msg->type == FAN_CREDITS) {
        int resume = s->credit == 0;
        s->credit += FAN_CREDIT;
        if (!resume)
            return;
    }
    fan_send_some(self, s);
}

static void fan_receiver(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    fan_recv_t *r = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    uint32_t id = ((fan_msg_t *)msg)->sender;
    if (++r->pending[id] == FAN_CREDIT) {
        r->pending[id] = 0;
        bc_send(r->senders[id].self, bc_msg_alloc(sizeof(bc_msg_t), FAN_CREDITS));
    }
    if (++r->got == r->want) {
        for (int i = 0; i < 4; i++)
            bc_stop(r->senders[i].self);
        bc_stop(self);
    }
}

static double bench_fanin(uint64_t total, int chain)
{
    bc_runtime_t *rt = mkrt(0);
    fan_sender_t s[4];
    fan_recv_t r;
    memset(&r, 0, sizeof r);
    r.senders = s;
    r.want = total;
    bc_actor_t *recv = bc_spawn(rt, fan_receiver, &r);
    for (uint32_t i = 0; i < 4; i++) {
        s[i] = (fan_sender_t){recv, NULL, i, total / 4, FAN_WINDOW, chain};
        s[i].self = bc_spawn(rt, fan_sender, &s[i]);
    }
    uint64_t t0 = bc_now_ns();
    for (int i = 0; i < 4; i++)
        bc_send(s[i].self, bc_msg_alloc(sizeof(bc_msg_t), FAN_GO));
    wait_all(rt);
    uint64_t t1 = bc_now_ns();
    for (int i = 0; i < 4; i++)
        bc_actor_release(s[i].self);
    bc_actor_release(recv);
    bc_runtime_destroy(rt);
    if (r.got != total) {
        fprintf(stderr, "runtime_bench: fan-in lost messages: %llu of %llu\n",
                (unsigned long long)r.got, (unsigned long long)total);
        exit(1);
    }
    return (double)total / ((double)(t1 - t0) / 1e9);
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fputs("usage: runtime_bench [--json] [--runs N] [--workers N] [--only NAME] [--quick]\n"
          "  Benchmarks of the actor runtime: actor_footprint, spawn, skynet, pingpong,\n"
          "  wake, fanin (and fanin_chain). Each figure is the median of --runs runs\n"
          "  (default 3). --quick shrinks every size tenfold (a smoke run).\n",
          f);
}

static int want(const char *only, const char *name)
{
    return only == NULL || strcmp(only, name) == 0;
}

int main(int argc, char **argv)
{
    int runs = 3, quick = 0;
    const char *only = NULL;
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                         {"runs", required_argument, 0, 'r'},
                                         {"workers", required_argument, 0, 'w'},
                                         {"only", required_argument, 0, 'o'},
                                         {"quick", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'j':
            g_json = 1;
            break;
        case 'r':
            runs = (int)strtol(optarg, &end, 10);
            if (*end || runs < 1 || runs > 100) {
                fprintf(stderr, "runtime_bench: --runs \"%s\": expected 1..100\n", optarg);
                return 2;
            }
            break;
        case 'w':
            g_workers = (unsigned)strtoul(optarg, &end, 10);
            if (*end || g_workers < 1 || g_workers > BC_MAX_WORKERS) {
                fprintf(stderr, "runtime_bench: --workers \"%s\": expected 1..%d\n", optarg,
                        BC_MAX_WORKERS);
                return 2;
            }
            break;
        case 'o':
            only = optarg;
            break;
        case 'q':
            quick = 1;
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
        fprintf(stderr, "runtime_bench: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    uint64_t div = quick ? 10 : 1;
    double v[100];

    if (!g_json)
        printf("%-16s %14s  %s\n", "bench", "median", "target (issue 2)");
    if (want(only, "actor_footprint")) {
        uint64_t n = 1000000 / div;
        double rss[100];
        bench_footprint(n, runs, v, rss);
        double m = median(v, runs), mr = median(rss, runs);
        if (g_json)
            printf("{\"bench\":\"actor_footprint\",\"actors\":%llu,\"bytes\":%.0f,"
                   "\"rss_bytes\":%.0f}\n",
                   (unsigned long long)n, m, mr);
        else
            printf("%-16s %12.0f B  <= 256 B per idle actor (RSS growth %.0f B)\n",
                   "actor_footprint", m, mr);
        fflush(stdout);
    }
    if (want(only, "spawn")) {
        uint64_t n = 1000000 / div;
        for (int i = 0; i < runs; i++)
            v[i] = bench_spawn(n);
        double m = median(v, runs);
        if (g_json)
            printf("{\"bench\":\"spawn\",\"actors\":%llu,\"ns_per_actor\":%.1f}\n",
                   (unsigned long long)n, m);
        else
            printf("%-16s %11.1f ns  <= 1000 ns spawn+destroy\n", "spawn", m);
        fflush(stdout);
    }
    if (want(only, "skynet")) {
        uint64_t n = 1000000 / div, sum = 0;
        for (int i = 0; i < runs; i++)
            v[i] = bench_skynet(n, &sum);
        double m = median(v, runs);
        if (sum != n * (n - 1) / 2) {
            fprintf(stderr, "runtime_bench: skynet sum %llu is wrong\n", (unsigned long long)sum);
            return 1;
        }
        if (g_json)
            printf("{\"bench\":\"skynet\",\"actors\":%llu,\"ms\":%.1f,\"sum\":%llu}\n",
                   (unsigned long long)n, m, (unsigned long long)sum);
        else
            printf("%-16s %11.1f ms  < 735 ms (Go 1.19)\n", "skynet", m);
        fflush(stdout);
    }
    if (want(only, "pingpong")) {
        uint64_t n = 1000000 / div;
        for (int i = 0; i < runs; i++)
            v[i] = bench_pingpong(n);
        double m = median(v, runs);
        if (g_json)
            printf("{\"bench\":\"pingpong\",\"round_trips\":%llu,\"mean_us\":%.3f}\n",
                   (unsigned long long)n, m);
        else
            printf("%-16s %11.3f us  < 0.29 us mean round trip (Go)\n", "pingpong", m);
        fflush(stdout);
    }
    if (want(only, "wake")) {
        uint64_t n = 10000 / div, parks = 0;
        double p50[100], p99[100], fl[100];
        for (int i = 0; i < runs; i++) {
            bench_wake(n, &p50[i], &p99[i], &parks);
            fl[i] = bench_futex_floor(n);
        }
        double m50 = median(p50, runs), m99 = median(p99, runs), mfl = median(fl, runs);
        if (g_json)
            printf("{\"bench\":\"wake\",\"round_trips\":%llu,\"p50_us\":%.2f,\"p99_us\":%.2f,"
                   "\"floor_futex_p50_us\":%.2f,\"parks\":%llu}\n",
                   (unsigned long long)n, m50, m99, mfl, (unsigned long long)parks);
        else
            printf("%-16s %11.2f us  p50 <= 10 us (p99 %.2f us; OS futex-wake floor in this run "
                   "%.2f us)\n",
                   "wake", m50, m99, mfl);
        fflush(stdout);
    }
    for (int chain = 0; chain <= 1; chain++) {
        const char *name = chain ? "fanin_chain" : "fanin";
        if (!want(only, name) && !(only && chain == 0 && strcmp(only, "fanin") == 0))
            continue;
        uint64_t n = 10000000 / div;
        for (int i = 0; i < runs; i++)
            v[i] = bench_fanin(n, chain);
        double m = median(v, runs);
        if (g_json)
            printf("{\"bench\":\"%s\",\"senders\":4,\"messages\":%llu,\"msgs_per_s\":%.0f}\n", name,
                   (unsigned long long)n, m);
        else
            printf("%-16s %9.2f M/s  > 34.8 M/s (Go, bounded channel)%s\n", name, m / 1e6,
                   chain ? " - chained sends" : "");
        fflush(stdout);
    }
    return 0;
}
