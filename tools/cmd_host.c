/* cmd_host.c - `blockcoord host`: host many coordinators in this process until SIGINT/SIGTERM.
 *
 * Each coordinator `<prefix>-<i>` blocks on signals in a loop: after a signal (or a timeout) it
 * waits again. A status line shows what the hub sees; on a terminal it is rewritten in place
 * every second, otherwise a line is printed every 5 s (logs stay readable).
 *
 * SIGINT and SIGTERM are blocked before the runtime starts, so every worker inherits the mask,
 * and taken with sigtimedwait by the main thread, which also drives the status line.
 */
#include "cli.h"

#include "blockcoord_cfn.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 1000000u

typedef struct {
    uint32_t timeout_ms;
    _Atomic uint64_t ready;
} host_t;

static void host_usage(FILE *f)
{
    fputs("usage: blockcoord host --count N [--prefix P] [--swarm S] [--timeout MS]\n"
          "                       [--metrics-port N]\n"
          "  Host N coordinators named <P>-0 .. <P>-<N-1> in this process. Each blocks on\n"
          "  signals in a loop (acknowledging every one) until SIGINT or SIGTERM.\n"
          "  --count N      coordinators to host, 1..1000000\n"
          "  --prefix P     id prefix (default coord); every <P>-<i> must be a valid id\n"
          "  --swarm S      swarm id reported in the heartbeats\n"
          "  --timeout MS   per-wait timeout (default 600000); a timeout just waits again\n"
          "  --metrics-port N  serve /metrics and /health on METRICS_BIND (default\n"
          "                 127.0.0.1) port N; 0 = off (default: METRICS_PORT, else off)\n"
          "environment: REDIS_URL, REDIS_PASSWORD, REDIS_DB, BLOCKING_COORDINATION_SECRET,\n"
          "             HEARTBEAT_INTERVAL_MS, METRICS_PORT, METRICS_BIND\n"
          "exit status: 0 stopped by SIGINT/SIGTERM, 1 failure, 2 usage error\n",
          f);
}

static void on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg);

static void rewait(bc_coord_t *c, host_t *h)
{
    int rc = bc_coord_wait(c, NULL, h->timeout_ms, on_signal, h);
    if (rc != 0 && rc != -ECANCELED)
        bc_log(BC_LOG_ERROR, "%s: cannot wait for a signal: %s", bc_coord_id(c), bc_strerror(rc));
}

static void on_signal(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    (void)s;
    if (status == -ECANCELED)
        return; /* stopping */
    rewait(c, arg);
}

static void on_start(bc_coord_t *c, void *arg)
{
    host_t *h = arg;
    /* relaxed: a progress counter. */
    atomic_fetch_add_explicit(&h->ready, 1, memory_order_relaxed);
    rewait(c, h);
}

static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2)
        return 0;
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static void status_line(bc_hub_t *hub, host_t *h, char *buf, size_t len)
{
    bc_hub_stats_t st;
    bc_hub_stats(hub, &st);
    snprintf(
        buf, len,
        "hosting %llu coordinators | ready %llu | waiting %llu | signals %llu | acks %llu | "
        "rejected %llu | redis %s | rss %.1f MB",
        (unsigned long long)st.coordinators,
        /* relaxed: a progress counter. */
        (unsigned long long)atomic_load_explicit(&h->ready, memory_order_relaxed),
        (unsigned long long)st.waiting, (unsigned long long)st.signals_delivered,
        (unsigned long long)st.acks_written,
        (unsigned long long)(st.rejected_signature + st.rejected_unsigned + st.rejected_malformed),
        bc_hub_notify_mode(hub), rss_mb());
}

int bc_cli_host(int argc, char **argv)
{
    uint64_t count = 0, timeout = 600000, metrics_port = 0;
    const char *env_port = getenv("METRICS_PORT");
    if (env_port && *env_port &&
        bc_cli_parse_u64("host", "METRICS_PORT", env_port, 0, 65535, &metrics_port) != 0)
        return 2;
    const char *prefix = "coord", *swarm = NULL;
    static const struct option opts[] = {{"count", required_argument, 0, 'n'},
                                         {"prefix", required_argument, 0, 'p'},
                                         {"swarm", required_argument, 0, 's'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"metrics-port", required_argument, 0, 'm'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'n':
            rc = bc_cli_parse_u64("host", "count", optarg, 1, MAX_COUNT, &count);
            break;
        case 'p':
            prefix = optarg;
            break;
        case 's':
            swarm = optarg;
            break;
        case 't':
            rc = bc_cli_parse_u64("host", "timeout", optarg, 1, UINT32_MAX, &timeout);
            break;
        case 'm':
            rc = bc_cli_parse_u64("host", "metrics-port", optarg, 0, 65535, &metrics_port);
            break;
        case 'h':
            host_usage(stdout);
            return 0;
        default:
            host_usage(stderr);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord host: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (count == 0) {
        fprintf(stderr, "Error: --count is required (see blockcoord host --help)\n");
        return 2;
    }
    char err[256];
    if (!bc_coord_id_valid("--prefix", prefix, err, sizeof err)) {
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }
    char longest[BC_COORD_ID_MAX * 2];
    snprintf(longest, sizeof longest, "%s-%llu", prefix, (unsigned long long)(count - 1));
    if (strlen(longest) > BC_COORD_ID_MAX) {
        fprintf(stderr,
                "Error: --prefix \"%s\" is too long for --count %llu: the id \"%s\" would be "
                "%zu characters (max %d)\n",
                prefix, (unsigned long long)count, longest, strlen(longest), BC_COORD_ID_MAX);
        return 2;
    }
    if (swarm && !bc_coord_id_valid("--swarm", swarm, err, sizeof err)) {
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }

    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);

    bc_runtime_t *rt;
    bc_hub_t *hub = NULL;
    int rc = bc_cli_start_hub("Error: ", NULL, NULL, &rt, &hub);
    if (rc != 0)
        return rc;
    char herr[512];
    if (metrics_port) {
        int bound = 0;
        rc = bc_hub_serve_http(hub, getenv("METRICS_BIND"), (int)metrics_port, &bound, herr,
                               sizeof herr);
        if (rc != 0) {
            fprintf(stderr, "Error: %s\n", herr);
            bc_hub_destroy(hub);
            bc_runtime_destroy(rt);
            return 2;
        }
        printf("Metrics server listening on :%d\n", bound);
        fflush(stdout);
    }
    host_t h;
    h.timeout_ms = (uint32_t)timeout;
    atomic_init(&h.ready, 0);

    int tty = isatty(STDOUT_FILENO);
    int result = 0, stop_sig = 0;
    for (uint64_t i = 0; i < count; i++) {
        char id[BC_COORD_ID_MAX + 1];
        snprintf(id, sizeof id, "%s-%llu", prefix, (unsigned long long)i);
        bc_coord_opts_t co;
        bc_coord_opts_init(&co);
        co.id = id;
        co.swarm_id = swarm;
        co.on_start = on_start;
        co.arg = &h;
        rc = bc_coord_spawn(hub, &co, NULL, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "Error: %s\n", err);
            result = 1;
            break;
        }
        /* Let a stop request through during a long spawn. */
        if ((i & 4095) == 4095) {
            struct timespec zero = {0, 0};
            int s = sigtimedwait(&stopset, NULL, &zero);
            if (s > 0) {
                stop_sig = s;
                break;
            }
        }
    }
    if (result == 0 && stop_sig == 0) {
        printf("hosting %llu coordinators %s-0 .. %s-%llu (Ctrl-C to stop)\n",
               (unsigned long long)count, prefix, prefix, (unsigned long long)(count - 1));
        fflush(stdout);
    }
    char line[256];
    uint64_t last_print = 0;
    while (result == 0 && stop_sig == 0) {
        struct timespec one = {1, 0};
        int s = sigtimedwait(&stopset, NULL, &one);
        if (s > 0) {
            stop_sig = s;
            break;
        }
        if (s < 0 && errno != EAGAIN && errno != EINTR) {
            fprintf(stderr, "Error: sigtimedwait: %s\n", strerror(errno));
            result = 1;
            break;
        }
        status_line(hub, &h, line, sizeof line);
        uint64_t now = bc_now_ms();
        if (tty) {
            printf("\r%s\033[K", line);
            fflush(stdout);
        } else if (now - last_print >= 5000) {
            printf("%s\n", line);
            fflush(stdout);
            last_print = now;
        }
    }
    if (tty)
        putchar('\n');
    if (stop_sig) {
        status_line(hub, &h, line, sizeof line);
        printf("%s\n%s received, stopping %llu coordinators\n", line,
               stop_sig == SIGINT ? "SIGINT" : "SIGTERM", (unsigned long long)count);
    }
    fflush(stdout);
    bc_hub_destroy(hub);
    bc_runtime_destroy(rt);
    return result;
}
