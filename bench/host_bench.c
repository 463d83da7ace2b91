/* host_bench.c - hosting scale: N idle coordinators in one process, heartbeating, against
 * REDIS_URL. Measures the resident memory (total and per coordinator), the share of heartbeats
 * written on time, the process's CPU while idle and the wall time of one reaper cycle.
 *
 *     scripts/with-redis build/bench/host_bench --coordinators 100000 --json
 *
 * Key decision: with --runs K > 1 every run is a fresh child process (forked before any thread
 * exists), so each one measures its RSS from an empty hub rather than from the heap an earlier
 * run left behind; the parent collects the figures through a pipe and prints their medians. A
 * single run measures in this process.
 */
#include "hub.h"
#include "pool.h"

#include <blockcoord.h>
#include <blockcoord_cfn.h>

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_SECRET "5b1e0c9f3a7d2e8b4c6f1a9d3e7b2c8f4a6d1e9b3c7f2a8d4e6b1c9f3a7d2e8b"
#define MAX_RUNS 32
#define WAIT_MS 86400000u /* each coordinator blocks for a day: idle for the whole run */
#define SCAN_MS 3600000u  /* the reaper's own timer stays out of the window: cycles on demand */
#define REAP_CYCLES 3     /* bc_hub_reap_now calls after the window; the median is reported */
#define SPAWN_LIMIT_MS 600000

typedef struct {
    size_t n;
    uint32_t heartbeat_ms;
    unsigned duration_s;
    int runs;
    int json;
    const char *secret;
} conf_t;

typedef struct {
    double rss_mb, bytes_per_coord, on_time_pct, idle_cpu_pct, reaper_ms;
    double spawn_s, hb_per_s;
    double pool_mb, heap_mb; /* runtime pools (messages, actors, timers); malloc in use besides */
    uint64_t on_time, late, failures; /* heartbeats in the window */
    int ok;
    char err[200];
} result_t;

static _Atomic uint64_t g_ready;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "host_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* VmRSS of this process in bytes, from /proc/self/status. */
static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return kb * 1024.0;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    (void)s;
    if (status == 0 || status == -ETIMEDOUT)
        bc_coord_wait(c, NULL, WAIT_MS, on_signal, arg);
}

static void on_start(bc_coord_t *c, void *arg)
{
    /* relaxed: a counter polled by the main thread. */
    atomic_fetch_add_explicit(&g_ready, 1, memory_order_relaxed);
    bc_coord_wait(c, NULL, WAIT_MS, on_signal, arg);
}

/* Wait until the Redis layer has nothing queued or in flight (start-up traffic done). */
static void settle(bc_hub_t *h)
{
    bc_redis_stats_t st;
    for (int i = 0; i < 6000; i++) {
        bc_redis_stats(h->redis, &st);
        uint64_t q = 0;
        for (int c = 0; c < BC_REDIS_CLASS_COUNT; c++)
            q += st.queued[c];
        if (st.in_flight == 0 && q == 0)
            return;
        sleep_ms(10);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One run, in the child: host cf->n coordinators, measure, tear down. */
static void run_one(const conf_t *cf, int k, result_t *r)
{
    memset(r, 0, sizeof *r);
    bc_runtime_t *rt;
    int rc = bc_runtime_create(NULL, &rt);
    if (rc != 0)
        die("bc_runtime_create: %s", bc_strerror(rc));
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.secret = cf->secret;
    ho.heartbeat_ms = cf->heartbeat_ms;
    ho.scan_ms = SCAN_MS;
    bc_hub_t *hub;
    char err[256];
    if ((rc = bc_hub_create(rt, &ho, &hub, err, sizeof err)) != 0)
        die("bc_hub_create: %s", err);
    if (bc_hub_wait_ready(hub, 30000) != 0)
        die("Redis not ready within 30 s (is REDIS_URL set? run under scripts/with-redis)");
    sleep_ms(200);
    double rss0 = rss_bytes();

    uint64_t t0 = bc_now_ms();
    char id[32];
    for (size_t i = 0; i < cf->n; i++) {
        snprintf(id, sizeof id, "host-%zu", i);
        bc_coord_opts_t o;
        bc_coord_opts_init(&o);
        o.id = id;
        o.on_start = on_start;
        if ((rc = bc_coord_spawn(hub, &o, NULL, err, sizeof err)) != 0)
            die("bc_coord_spawn %s: %s", id, err);
    }
    bc_hub_stats_t st0, st1;
    /* relaxed: a counter; nothing else is read through it. */
    while (atomic_load_explicit(&g_ready, memory_order_relaxed) < cf->n) {
        if (bc_now_ms() - t0 > SPAWN_LIMIT_MS)
            die("only %llu of %zu coordinators started within %d s",
                (unsigned long long)atomic_load(&g_ready), cf->n, SPAWN_LIMIT_MS / 1000);
        sleep_ms(5);
    }
    do {
        sleep_ms(5);
        bc_hub_stats(hub, &st0);
    } while (st0.waiting < cf->n && bc_now_ms() - t0 < SPAWN_LIMIT_MS);
    if (st0.waiting < cf->n)
        die("only %llu of %zu coordinators waiting", (unsigned long long)st0.waiting, cf->n);
    r->spawn_s = (double)(bc_now_ms() - t0) / 1e3;
    settle(hub);
    /* One whole interval first: every coordinator has been written by the rotation once. */
    sleep_ms(cf->heartbeat_ms + 100);
    if (!cf->json)
        fprintf(stderr, "host_bench: run %d: %zu coordinators up in %.1f s, measuring %u s...\n",
                k + 1, cf->n, r->spawn_s, cf->duration_s);

    bc_hub_stats(hub, &st0);
    double c0 = cpu_s();
    uint64_t w0 = bc_now_ns();
    sleep_ms(cf->duration_s * 1000u);
    double c1 = cpu_s();
    uint64_t w1 = bc_now_ns();
    bc_hub_stats(hub, &st1);
    double rss1 = rss_bytes();
    struct mallinfo2 mi = mallinfo2();
    r->pool_mb = (double)bc_pool_bytes_reserved() / (1024.0 * 1024.0);
    r->heap_mb = (double)(mi.uordblks + mi.hblkhd) / (1024.0 * 1024.0) - r->pool_mb;
    double wall = (double)(w1 - w0) / 1e9;

    r->rss_mb = rss1 / (1024.0 * 1024.0);
    r->bytes_per_coord = cf->n ? (rss1 - rss0) / (double)cf->n : 0;
    r->idle_cpu_pct = wall > 0 ? (c1 - c0) / wall * 100.0 : 0;
    r->on_time = st1.heartbeats_on_time - st0.heartbeats_on_time;
    r->late = st1.heartbeats_late - st0.heartbeats_late;
    r->failures = st1.heartbeat_failures - st0.heartbeat_failures;
    uint64_t all = r->on_time + r->late + r->failures;
    r->on_time_pct = all ? 100.0 * (double)r->on_time / (double)all : 0;
    r->hb_per_s = wall > 0 ? (double)(st1.heartbeats - st0.heartbeats) / wall : 0;

    double cyc[REAP_CYCLES];
    size_t ncyc = 0;
    for (int i = 0; i < REAP_CYCLES; i++) {
        bc_hub_stats(hub, &st0);
        if ((rc = bc_hub_reap_now(hub)) != 0) {
            snprintf(r->err, sizeof r->err, "bc_hub_reap_now: %s", bc_strerror(rc));
            break;
        }
        uint64_t until = bc_now_ms() + 120000;
        do {
            sleep_ms(5);
            bc_hub_stats(hub, &st1);
        } while (st1.reaper_cycles == st0.reaper_cycles && bc_now_ms() < until);
        if (st1.reaper_cycles == st0.reaper_cycles) {
            snprintf(r->err, sizeof r->err, "no reaper cycle finished within 120 s");
            break;
        }
        cyc[ncyc++] = (double)st1.reaper_last_cycle_ms;
    }
    r->reaper_ms = ncyc ? median(cyc, ncyc) : -1;
    r->ok = 1;
    bc_hub_destroy(hub);
    bc_runtime_destroy(rt);
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: host_bench [--coordinators N] [--heartbeat-ms MS] [--duration S] [--runs K]\n"
           "                  [--json]\n"
           "  Hosts N idle coordinators (default 100000) in one hub, each blocked in\n"
           "  bc_coord_wait, heartbeating every MS ms (default 5000), against REDIS_URL (run it\n"
           "  under scripts/with-redis). After all are up it measures, over S seconds (default\n"
           "  60): RSS, bytes per coordinator (RSS over the empty hub / N), heartbeats written\n"
           "  on time, and the process's CPU as a share of one core; then the wall time of a\n"
           "  reaper cycle (bc_hub_reap_now). K runs (default 1), each in a fresh process;\n"
           "  medians are printed. --json: one line {\"bench\":\"host_scale\",...}. The secret is\n"
           "  BLOCKING_COORDINATION_SECRET, or a fixed bench secret when it is unset.\n");
}

static int parse_num(const char *flag, const char *v, unsigned long long min,
                     unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v ? v : "", &end, 10);
    if (v == NULL || errno || end == v || *end || v[0] == '-' || x < min || x > max) {
        fprintf(stderr, "host_bench: %s \"%s\": expected a number in %llu..%llu\n", flag,
                v ? v : "", min, max);
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv)
{
    conf_t cf = {.n = 100000, .heartbeat_ms = 5000, .duration_s = 60, .runs = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned long long v;
        if (strcmp(a, "--json") == 0) {
            cf.json = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--coordinators") == 0) {
            if (parse_num(a, i + 1 < argc ? argv[++i] : NULL, 1, 10000000, &v) != 0)
                return 2;
            cf.n = (size_t)v;
        } else if (strcmp(a, "--heartbeat-ms") == 0) {
            if (parse_num(a, i + 1 < argc ? argv[++i] : NULL, 20, 3600000, &v) != 0)
                return 2;
            cf.heartbeat_ms = (uint32_t)v;
        } else if (strcmp(a, "--duration") == 0) {
            if (parse_num(a, i + 1 < argc ? argv[++i] : NULL, 1, 86400, &v) != 0)
                return 2;
            cf.duration_s = (unsigned)v;
        } else if (strcmp(a, "--runs") == 0) {
            if (parse_num(a, i + 1 < argc ? argv[++i] : NULL, 1, MAX_RUNS, &v) != 0)
                return 2;
            cf.runs = (int)v;
        } else {
            fprintf(stderr, "host_bench: unknown argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
    }
    bc_log_init_from_env();
    if (getenv("BC_LOG_LEVEL") == NULL)
        bc_log_set_level(BC_LOG_WARN);
    cf.secret = getenv("BLOCKING_COORDINATION_SECRET");
    if (cf.secret == NULL || cf.secret[0] == '\0') {
        cf.secret = BENCH_SECRET;
        if (!cf.json)
            fprintf(stderr, "host_bench: BLOCKING_COORDINATION_SECRET is not set; using a fixed "
                            "64-character bench secret\n");
    }

    result_t res[MAX_RUNS];
    for (int k = 0; k < cf.runs; k++) {
        if (cf.runs == 1) { /* one run: no earlier heap to escape, measure in this process */
            run_one(&cf, k, &res[k]);
            goto report;
        }
        int fd[2];
        if (pipe(fd) != 0)
            die("pipe: %s", strerror(errno));
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0) {
            close(fd[0]);
            result_t r;
            run_one(&cf, k, &r);
            ssize_t w = write(fd[1], &r, sizeof r);
            _exit(w == (ssize_t)sizeof r ? 0 : 1);
        }
        close(fd[1]);
        ssize_t got = read(fd[0], &res[k], sizeof res[k]);
        close(fd[0]);
        int ws = 0;
        waitpid(pid, &ws, 0);
        if (got != (ssize_t)sizeof res[k] || !res[k].ok)
            die("run %d failed (child status %d)", k + 1, WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    report:
        if (res[k].err[0])
            fprintf(stderr, "host_bench: run %d: %s\n", k + 1, res[k].err);
        if (!cf.json)
            fprintf(stderr,
                    "host_bench: run %d: RSS %.1f MB, %.0f B/coordinator, %llu on time, %llu "
                    "late, %llu failed (%.0f heartbeats/s), CPU %.1f %%, reaper %.0f ms\n",
                    k + 1, res[k].rss_mb, res[k].bytes_per_coord,
                    (unsigned long long)res[k].on_time, (unsigned long long)res[k].late,
                    (unsigned long long)res[k].failures, res[k].hb_per_s, res[k].idle_cpu_pct,
                    res[k].reaper_ms);
    }
    double v[9][MAX_RUNS];
    for (int k = 0; k < cf.runs; k++) {
        v[0][k] = res[k].rss_mb;
        v[1][k] = res[k].bytes_per_coord;
        v[2][k] = res[k].on_time_pct;
        v[3][k] = res[k].idle_cpu_pct;
        v[4][k] = res[k].reaper_ms;
        v[5][k] = res[k].spawn_s;
        v[6][k] = res[k].hb_per_s;
        v[7][k] = res[k].pool_mb;
        v[8][k] = res[k].heap_mb;
    }
    double m[9];
    for (int i = 0; i < 9; i++)
        m[i] = median(v[i], (size_t)cf.runs);
    if (cf.json) {
        printf("{\"bench\":\"host_scale\",\"coordinators\":%zu,\"rss_mb\":%.1f,"
               "\"bytes_per_coordinator\":%.0f,\"heartbeats_on_time_pct\":%.3f,"
               "\"idle_cpu_pct\":%.2f,\"reaper_cycle_ms\":%.0f}\n",
               cf.n, m[0], m[1], m[2], m[3], m[4]);
        return 0;
    }
    printf("\nhost_scale: %zu idle coordinators, heartbeat every %u ms, %u s window, %d run%s "
           "(medians)\n",
           cf.n, cf.heartbeat_ms, cf.duration_s, cf.runs, cf.runs == 1 ? "" : "s");
    printf("  %-26s %12s   %s\n", "metric", "value", "target");
    printf("  %-26s %12.1f   %s\n", "RSS (MB)", m[0], "<= 200 at 100,000");
    printf("  %-26s %12.0f   %s\n", "bytes per coordinator", m[1], "<= 2048");
    printf("  %-26s %12.1f\n", "runtime pools (MB)", m[7]);
    if (m[8] > 0) /* mallinfo2 knows glibc's heap only (not a sanitizer's) */
        printf("  %-26s %12.1f\n", "other heap in use (MB)", m[8]);
    printf("  %-26s %12.3f   %s\n", "heartbeats on time (%)", m[2], ">= 99.9");
    printf("  %-26s %12.2f   %s\n", "idle CPU (% of one core)", m[3], "<= 25");
    if (m[4] < 0)
        printf("  %-26s %12s   %s\n", "reaper cycle (ms)", "n/a", "<= 1000");
    else
        printf("  %-26s %12.0f   %s\n", "reaper cycle (ms)", m[4], "<= 1000");
    printf("  %-26s %12.1f\n", "spawn time (s)", m[5]);
    printf("  %-26s %12.0f   (expected %.0f)\n", "heartbeats written per s", m[6],
           (double)cf.n * 1000.0 / cf.heartbeat_ms);
    return 0;
}
