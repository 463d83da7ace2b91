/* scrape_bench.c - how long a Prometheus scrape of /metrics takes with many coordinators hosted.
 *
 * One hub (heartbeats on, Redis from REDIS_URL) hosts N coordinators, each blocked in
 * bc_coord_wait, spread over S swarms and 3 phases; the hub serves metrics on an ephemeral
 * port; the bench scrapes GET /metrics K times over a real TCP connection (connect, request,
 * read until the server closes) and reports the latency percentiles, the body size and the
 * number of series. With --per-coordinator the per-coordinator series are on (N x 4 more).
 *
 * Key decision: the timing is the client's wall clock around the whole exchange, so it counts
 * what Prometheus sees: the I/O thread's table walk, the exposition and the transfer.
 */
#include "blockcoord_cfn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_SECRET "5b1e0c9f3a7d2e8b4c6f1a9d3e7b2c8f4a6d1e9b3c7f2a8d4e6b1c9f3a7d2e8b"

static _Atomic uint64_t g_ready;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("scrape_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
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

static void on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    (void)c;
    (void)status;
    (void)s;
    (void)arg;
}

static void on_start(bc_coord_t *c, void *arg)
{
    (void)arg;
    bc_coord_wait(c, "never", 3600000, on_signal, NULL);
    /* relaxed: a progress counter. */
    atomic_fetch_add_explicit(&g_ready, 1, memory_order_relaxed);
}

/* One scrape: returns the body (malloc'd, *len bytes) and the wall time in *ms. */
static char *scrape(int port, size_t *len, double *ms)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect: %s", strerror(errno));
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
        die("send: %s", strerror(errno));
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL)
            die("out of memory");
        if (cap - n < 65536)
            buf = realloc(buf, cap *= 2);
        if (buf == NULL)
            die("out of memory");
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    buf[n] = '\0';
    *ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0)
        die("scrape answered: %.60s", buf);
    char *body = strstr(buf, "\r\n\r\n");
    if (body == NULL)
        die("truncated response");
    body += 4;
    *len = n - (size_t)(body - buf);
    memmove(buf, body, *len + 1);
    return buf;
}

static size_t count_series(const char *body)
{
    size_t n = 0;
    for (const char *p = body; *p; p = strchr(p, '\n'), p = p ? p + 1 : "")
        if (*p != '#' && *p != '\n')
            n++;
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
    int i = (int)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void usage(FILE *f)
{
    fputs("usage: scrape_bench [--json] [--coordinators N] [--scrapes K] [--swarms S]\n"
          "                    [--per-coordinator]\n"
          "  Hosts N coordinators (default 100000), each blocked in a wait, heartbeats on,\n"
          "  spread over S swarms (default 100) and 3 phases, in one hub against REDIS_URL\n"
          "  (scripts/with-redis), serves metrics on an ephemeral port and scrapes GET /metrics\n"
          "  K times (default 20) over TCP: scrape p50/p99/max in ms, body bytes, series.\n"
          "  --per-coordinator: with the per-coordinator series (4 per coordinator).\n"
          "  The secret is BLOCKING_COORDINATION_SECRET, or a fixed bench secret.\n",
          f);
}

int main(int argc, char **argv)
{
    long n = 100000, k = 20, swarms = 100;
    int json = 0, per_coord = 0;
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                         {"coordinators", required_argument, 0, 'n'},
                                         {"scrapes", required_argument, 0, 'k'},
                                         {"swarms", required_argument, 0, 's'},
                                         {"per-coordinator", no_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end = NULL;
        long *dst = ch == 'n' ? &n : ch == 'k' ? &k : ch == 's' ? &swarms : NULL;
        long lo = ch == 'n' ? 0 : 1, hi = ch == 'n' ? 1000000 : ch == 'k' ? 100000 : 100000;
        switch (ch) {
        case 'j':
            json = 1;
            break;
        case 'p':
            per_coord = 1;
            break;
        case 'n':
        case 'k':
        case 's':
            *dst = strtol(optarg, &end, 10);
            if (*end || end == optarg || *dst < lo || *dst > hi) {
                fprintf(stderr, "scrape_bench: --%s \"%s\": expected %ld..%ld\n",
                        ch == 'n'   ? "coordinators"
                        : ch == 'k' ? "scrapes"
                                    : "swarms",
                        optarg, lo, hi);
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
        fprintf(stderr, "scrape_bench: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    bc_log_init_from_env();
    if (getenv("BC_LOG_LEVEL") == NULL)
        bc_log_set_level(BC_LOG_WARN);
    const char *secret = getenv("BLOCKING_COORDINATION_SECRET");
    if (secret == NULL || secret[0] == '\0')
        secret = BENCH_SECRET;

    bc_runtime_t *rt = NULL;
    int rc = bc_runtime_create(NULL, &rt);
    if (rc != 0)
        die("bc_runtime_create: %s", bc_strerror(rc));
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.secret = secret;
    bc_hub_t *hub = NULL;
    char err[256];
    if ((rc = bc_hub_create(rt, &ho, &hub, err, sizeof err)) != 0)
        die("bc_hub_create: %s", err);
    if (bc_hub_wait_ready(hub, 10000) != 0)
        die("Redis not ready within 10 s (REDIS_URL)");

    double rss0 = rss_mb();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    static const char *const phases[] = {"validation", "consensus", "decision"};
    for (long i = 0; i < n; i++) {
        char id[40], swarm[40];
        snprintf(id, sizeof id, "scrape-%d-%ld", (int)getpid(), i);
        snprintf(swarm, sizeof swarm, "swarm-%ld", i % swarms);
        bc_coord_opts_t o;
        bc_coord_opts_init(&o);
        o.id = id;
        o.swarm_id = swarm;
        o.phase = phases[i % 3];
        o.on_start = on_start;
        if ((rc = bc_coord_spawn(hub, &o, NULL, err, sizeof err)) != 0)
            die("bc_coord_spawn %s: %s", id, err);
    }
    /* relaxed: a progress counter. */
    for (int i = 0; atomic_load_explicit(&g_ready, memory_order_relaxed) < (uint64_t)n; i++) {
        if (i > 600000)
            die("only %llu of %ld coordinators started within 10 minutes",
                (unsigned long long)atomic_load(&g_ready), n);
        sleep_ms(1);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double spawn_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double rss1 = rss_mb();
    sleep_ms(500); /* let the start-up traffic settle */

    bc_hub_http_opts_t hop;
    bc_hub_http_opts_init(&hop);
    hop.per_coordinator = per_coord;
    int port = 0;
    if ((rc = bc_hub_serve_http_opts(hub, &hop, &port, err, sizeof err)) != 0)
        die("serve: %s", err);

    size_t bytes = 0, series = 0;
    double ms;
    free(scrape(port, &bytes, &ms)); /* warm-up: buffers grown, pages touched */
    double *lat = malloc((size_t)k * sizeof *lat);
    if (lat == NULL)
        die("out of memory");
    for (long i = 0; i < k; i++) {
        char *body = scrape(port, &bytes, &lat[i]);
        if (i == 0)
            series = count_series(body);
        free(body);
    }
    qsort(lat, (size_t)k, sizeof *lat, cmp_double);
    double p50 = pct(lat, (int)k, 0.50), p99 = pct(lat, (int)k, 0.99), max = lat[k - 1];
    double rss2 = rss_mb();
    if (json) {
        printf("{\"bench\":\"scrape\",\"coordinators\":%ld,\"per_coordinator\":%d,\"swarms\":%ld,"
               "\"scrapes\":%ld,\"scrape_p50_ms\":%.2f,\"scrape_p99_ms\":%.2f,"
               "\"scrape_max_ms\":%.2f,\"bytes\":%zu,\"series\":%zu,\"spawn_s\":%.2f,"
               "\"rss_mb\":%.1f}\n",
               n, per_coord, swarms, k, p50, p99, max, bytes, series, spawn_s, rss2);
    } else {
        printf("\nscrape: %ld coordinators (%ld swarms x 3 phases, all waiting, heartbeats on)%s\n",
               n, swarms, per_coord ? ", per-coordinator series on" : "");
        printf("  spawned in %.2f s; RSS %.1f MB before, %.1f MB after spawn, %.1f MB after "
               "scraping\n",
               spawn_s, rss0, rss1, rss2);
        printf("  %-14s %10s %10s %10s %12s %9s   %s\n", "coordinators", "p50 ms", "p99 ms",
               "max ms", "body bytes", "series", "target");
        printf("  %-14ld %10.2f %10.2f %10.2f %12zu %9zu   p99 <= 50 ms %s\n", n, p50, p99, max,
               bytes, series, p99 <= 50 ? "\xe2\x9c\x93" : "\xe2\x9c\x97");
    }
    fflush(stdout);
    free(lat);
    bc_hub_destroy(hub);
    bc_runtime_destroy(rt);
    return 0;
}
