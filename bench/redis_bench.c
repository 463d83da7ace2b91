/* redis_bench.c - pipelined throughput of the Redis layer against Redis's own
 * ceiling, measured in the same run on the same server.
 *
 * 8 actors each keep a window of SETEX commands (200-byte values) in flight
 * through one command connection; then redis-benchmark -c 1 -P 64 sends the
 * same command with the same value size. The ratio of the two is the figure.
 * Uses REDIS_URL (scripts/with-redis provides a throwaway server).
 */
#include "internal.h"
#include "redis.h"
#include "redis_conf.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACTORS 8

typedef struct {
    bc_redis_t *redis;
    uint32_t id;
    uint64_t left_to_send, left_to_reply, errors;
    unsigned window;
    const char *value;
    size_t value_len;
} sender_t;

static void submit(bc_actor_t *self, sender_t *s)
{
    char key[32];
    int klen = snprintf(key, sizeof key, "bench:%u:%llu", s->id,
                        (unsigned long long)(s->left_to_send % 100000));
    const char *argv[] = {"SETEX", key, "60", s->value};
    const size_t lens[] = {5, (size_t)klen, 2, s->value_len};
    bc_redis_cmd(s->redis, self, s->left_to_send, BC_REDIS_CLASS_OTHER, 4, argv, lens);
    s->left_to_send--;
}

static void sender(bc_actor_t *self, void *st, bc_msg_t *msg)
{
    sender_t *s = st;
    if (msg->type == BC_MSG_STOPPED)
        return;
    if (msg->type == BC_MSG_REDIS_REPLY) {
        bc_redis_reply_msg_t *r = (bc_redis_reply_msg_t *)msg;
        if (r->status != BC_REDIS_OK)
            s->errors++;
        if (--s->left_to_reply == 0) {
            bc_stop(self);
            return;
        }
        if (s->left_to_send)
            submit(self, s);
        return;
    }
    for (unsigned i = 0; i < s->window && s->left_to_send; i++)
        submit(self, s);
}

static double run_layer(bc_runtime_t *rt, bc_redis_t *redis, uint64_t n, unsigned window,
                        const char *value, uint64_t *errors)
{
    sender_t s[ACTORS];
    bc_actor_t *a[ACTORS];
    for (uint32_t i = 0; i < ACTORS; i++) {
        s[i] = (sender_t){redis, i, n / ACTORS, n / ACTORS, 0, window, value, strlen(value)};
        a[i] = bc_spawn(rt, sender, &s[i]);
    }
    uint64_t t0 = bc_now_ns();
    for (int i = 0; i < ACTORS; i++)
        bc_send(a[i], bc_msg_alloc(sizeof(bc_msg_t), 1));
    if (bc_runtime_wait(rt, 600000) != 0) {
        fprintf(stderr, "redis_bench: commands did not complete within 10 minutes\n");
        exit(1);
    }
    uint64_t t1 = bc_now_ns();
    *errors = 0;
    for (int i = 0; i < ACTORS; i++) {
        *errors += s[i].errors;
        bc_actor_release(a[i]);
    }
    return (double)(n / ACTORS * ACTORS) / ((double)(t1 - t0) / 1e9);
}

/* redis-benchmark -c 1 -P 64 with the same command; returns requests/s or -1. */
static double run_redis_benchmark(const bc_redis_conf_t *c, uint64_t n, const char *value)
{
    char target[600];
    if (c->unix_path)
        snprintf(target, sizeof target, "-s '%s'", c->unix_path);
    else
        snprintf(target, sizeof target, "-h '%s' -p %d", c->host, c->port);
    size_t cmdlen = strlen(value) + 1024;
    char *cmd = malloc(cmdlen);
    snprintf(cmd, cmdlen,
             "redis-benchmark %s %s%s -n %d --dbnum %d -c 1 -P 64 -r 100000 -q "
             "SETEX bench:rb:__rand_int__ 60 %s 2>/dev/null",
             target, c->password ? "-a " : "", c->password ? c->password : "", (int)n, c->db,
             value);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (p == NULL)
        return -1;
    char line[4096];
    double rps = -1;
    while (fgets(line, sizeof line, p)) {
        /* "...: 123456.78 requests per second, p50=..." (may contain \r updates) */
        char *at = strstr(line, " requests per second");
        if (at == NULL)
            continue;
        char *start = at;
        while (start > line && start[-1] != ' ')
            start--;
        rps = strtod(start, NULL);
    }
    pclose(p);
    return rps;
}

int main(int argc, char **argv)
{
    int json = 0, runs = 5;
    uint64_t n = 1000000;
    unsigned window = 64;
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},           {"runs", required_argument, 0, 'r'},
        {"commands", required_argument, 0, 'n'}, {"window", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'j':
            json = 1;
            break;
        case 'r':
            runs = (int)strtol(optarg, &end, 10);
            if (*end || runs < 1 || runs > 20) {
                fprintf(stderr, "redis_bench: --runs \"%s\": expected 1..20\n", optarg);
                return 2;
            }
            break;
        case 'n':
            n = strtoull(optarg, &end, 10);
            if (*end || n < ACTORS || n > 100000000) {
                fprintf(stderr, "redis_bench: --commands \"%s\": expected 8..100000000\n", optarg);
                return 2;
            }
            break;
        case 'w':
            window = (unsigned)strtoul(optarg, &end, 10);
            if (*end || window < 1 || window > 100000) {
                fprintf(stderr, "redis_bench: --window \"%s\": expected 1..100000\n", optarg);
                return 2;
            }
            break;
        case 'h':
            puts("usage: redis_bench [--json] [--runs N] [--commands N] [--window W]\n"
                 "  SETEX with 200-byte values from 8 actors (W in flight each, default 64)\n"
                 "  through one command connection, against redis-benchmark -c 1 -P 64 on\n"
                 "  the same server (REDIS_URL), alternating. Medians of --runs runs (default 5);\n"
                 "  the ratio is the median of the per-run ratios, so drift in a noisy machine\n"
                 "  cancels out.");
            return 0;
        default:
            return 2;
        }
    }
    bc_log_init_from_env();
    bc_redis_conf_t conf;
    char err[256];
    if (bc_redis_conf_from_env(&conf, err, sizeof err) != 0) {
        fprintf(stderr, "redis_bench: %s\n", err);
        return 2;
    }
    conf.pool_size = 1;
    char value[201];
    memset(value, 'v', 200);
    value[200] = '\0';

    bc_runtime_opts_t o;
    bc_runtime_opts_init(&o);
    bc_runtime_t *rt;
    if (bc_runtime_create(&o, &rt) != 0)
        return 1;
    bc_redis_t *redis;
    if (bc_redis_create(rt, &conf, &redis) != 0)
        return 1;
    /* Wait for the connection (the first command would queue anyway). */
    bc_redis_stats_t st;
    for (int i = 0; i < 500; i++) {
        bc_redis_stats(redis, &st);
        if (st.connected)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    if (!st.connected) {
        char d[300];
        fprintf(stderr, "redis_bench: cannot connect to %s\n",
                bc_redis_conf_describe(&conf, d, sizeof d));
        return 1;
    }
    double layer[20], rb[20], ratio[20];
    uint64_t errors = 0;
    for (int i = 0; i < runs; i++) {
        layer[i] = run_layer(rt, redis, n, window, value, &errors);
        if (errors) {
            fprintf(stderr, "redis_bench: %llu commands failed\n", (unsigned long long)errors);
            return 1;
        }
        rb[i] = run_redis_benchmark(&conf, n, value);
        if (rb[i] <= 0) {
            fprintf(stderr, "redis_bench: redis-benchmark did not run (apt-get install "
                            "redis-tools)\n");
            return 1;
        }
        ratio[i] = layer[i] / rb[i];
    }
    /* medians */
    for (int i = 0; i < runs; i++)
        for (int j = i + 1; j < runs; j++) {
            if (layer[j] < layer[i]) {
                double t = layer[i];
                layer[i] = layer[j];
                layer[j] = t;
            }
            if (rb[j] < rb[i]) {
                double t = rb[i];
                rb[i] = rb[j];
                rb[j] = t;
            }
            if (ratio[j] < ratio[i]) {
                double t = ratio[i];
                ratio[i] = ratio[j];
                ratio[j] = t;
            }
        }
    double ml = runs % 2 ? layer[runs / 2] : (layer[runs / 2 - 1] + layer[runs / 2]) / 2;
    double mr = runs % 2 ? rb[runs / 2] : (rb[runs / 2 - 1] + rb[runs / 2]) / 2;
    double mq = runs % 2 ? ratio[runs / 2] : (ratio[runs / 2 - 1] + ratio[runs / 2]) / 2;
    bc_redis_stats(redis, &st);
    if (json)
        printf("{\"bench\":\"redis_pipeline\",\"commands\":%llu,\"value_bytes\":200,"
               "\"cmds_per_s\":%.0f,\"redis_benchmark_cmds_per_s\":%.0f,\"ratio\":%.3f,"
               "\"runs\":%d}\n",
               (unsigned long long)n, ml, mr, mq, runs);
    else
        printf("%-22s %12s\n%-22s %12.0f\n%-22s %12.0f\n%-22s %12.3f  (target >= 0.8)\n"
               "%-22s %12llu\n",
               "redis_pipeline", "median", "blockcoord cmds/s", ml, "redis-benchmark cmds/s", mr,
               "ratio", mq, "max pipeline depth", (unsigned long long)st.max_pipeline);
    bc_redis_destroy(redis);
    bc_runtime_destroy(rt);
    bc_redis_conf_free(&conf);
    return 0;
}
