/* cmd_demo.c - `blockcoord demo`: the runtime demo.
 *
 * Spawns a ring of actors and sends tokens around it; every hop is a
 * message from one actor to the next, run by the shared worker pool. Shows
 * a progress bar on a terminal and ends with a table. No Redis is involved:
 * the coordinator layer replaces this with the CFN Loop demo.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    bc_msg_t hdr;
    uint64_t hops_left;
} token_t;

typedef struct demo_s demo_t;
typedef struct {
    bc_actor_t *next;
    demo_t *demo;
} ring_node_t;

struct demo_s {
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
    atomic_fetch_add_explicit(&n->demo->hops, 1, memory_order_relaxed);
    if (t->hops_left == 0) {
        atomic_fetch_add_explicit(&n->demo->tokens_done, 1, memory_order_release);
        return;
    }
    t->hops_left--;
    bc_msg_keep(msg);
    bc_send(n->next, msg); /* zero-copy forward */
}

static void demo_usage(FILE *f)
{
    fputs("usage: blockcoord demo [--actors N] [--tokens N] [--hops N] [--workers N]\n"
          "  Runtime demo: N actors in a ring pass tokens; each token makes --hops hops.\n"
          "  --actors N    actors in the ring (default 100000)\n"
          "  --tokens N    tokens travelling at once (default 1000)\n"
          "  --hops N      hops per token (default 100000)\n"
          "  --workers N   worker threads (default: number of CPUs)\n",
          f);
}

int bc_cli_parse_u64(const char *cmd, const char *opt, const char *val, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (errno || end == val || *end || val[0] == '-' || v < min || v > max) {
        fprintf(stderr, "blockcoord %s: --%s \"%s\": expected an integer in %llu..%llu\n", cmd, opt,
                val, (unsigned long long)min, (unsigned long long)max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static void progress(uint64_t done, uint64_t total, double rate)
{
    int width = 40, fill = total ? (int)((double)done / (double)total * width) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %3.0f%%  %.2fM hops/s ", bar,
            total ? 100.0 * (double)done / (double)total : 100.0, rate / 1e6);
}

int bc_cli_demo(int argc, char **argv)
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
            rc = bc_cli_parse_u64("demo", "actors", optarg, 1, 10000000, &actors);
            break;
        case 't':
            rc = bc_cli_parse_u64("demo", "tokens", optarg, 1, 1000000, &tokens);
            break;
        case 'n':
            rc = bc_cli_parse_u64("demo", "hops", optarg, 1, 1000000000, &hops);
            break;
        case 'w':
            rc = bc_cli_parse_u64("demo", "workers", optarg, 1, 64, &workers);
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

    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    o.workers = (unsigned)workers;
    bc_runtime_t *rt;
    int rc = bc_runtime_create(&o, &rt);
    if (rc) {
        fprintf(stderr, "blockcoord demo: cannot start the runtime: %s\n", bc_strerror(rc));
        return 1;
    }
    demo_t d;
    atomic_init(&d.hops, 0);
    atomic_init(&d.tokens_done, 0);
    ring_node_t *nodes = calloc(actors, sizeof *nodes);
    bc_actor_t **ring = calloc(actors, sizeof *ring);
    if (nodes == NULL || ring == NULL) {
        fprintf(stderr, "blockcoord demo: out of memory for %llu actors\n",
                (unsigned long long)actors);
        return 1;
    }
    uint64_t t0 = bc_now_ns();
    for (uint64_t i = 0; i < actors; i++) {
        nodes[i].demo = &d;
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
    int tty = isatty(2);
    uint64_t total = tokens * hops, last_hops = 0, last_t = bc_now_ns();
    while (atomic_load_explicit(&d.tokens_done, memory_order_acquire) < tokens) {
        usleep(100000);
        uint64_t h = atomic_load_explicit(&d.hops, memory_order_relaxed), now = bc_now_ns();
        if (tty)
            progress(h, total, (double)(h - last_hops) / ((double)(now - last_t) / 1e9));
        last_hops = h;
        last_t = now;
    }
    uint64_t t_done = bc_now_ns();
    if (tty) {
        progress(total, total, 0);
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
