/* cmd_reap.c - `blockcoord reap`: run the reaper alone (the seeds' checkCoordinatorActivity()).
 *
 * It hosts no coordinator: a hub whose reaper scans for stale coordinators, declares the dead
 * ones, escalates them (one winner across every process), moves their work to a replacement
 * spawned here, and cleans up. Its progress lines are the tutorial's:
 *
 *     [00:00:00] Scanning for stale coordinators...
 *     [00:00:00] Found heartbeat: coord-crash (expired)
 *     [00:00:00] Dead coordinator detected: coord-crash
 *     [00:00:00] Escalating to dead coordinator handler
 *     [00:00:00] Cleaning up coordinator state
 *     [00:00:00] Dead coordinator keys removed: 3
 *
 * --once runs one cycle and waits for its escalations, then exits. One cycle is one warning,
 * so --once declares a stale coordinator dead at once unless --warnings says otherwise. A
 * process that exits at once cannot host the replacement: --once registers the replacement id
 * (its spawn request is in coordinator:spawn:<newId>, its work already moved to it) without
 * hosting it, so a running host's reaper finds it stale and hands the work on to a live
 * replacement; a long-running `blockcoord reap` hosts its replacements itself.
 */
#include "cli.h"

#include "hub.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t g_start_ms;

static void reap_usage(FILE *f)
{
    fputs("usage: blockcoord reap [--once] [--stale-ms N] [--scan-ms N] [--warnings N]\n"
          "  Run the reaper alone: find coordinators whose heartbeat is stale or gone, warn,\n"
          "  declare them dead, replace them here, move their work and clean up their keys.\n"
          "  --once         one scan, wait for its escalations, exit (a stale coordinator is\n"
          "                 dead after 1 warning unless --warnings is given)\n"
          "  --stale-ms N   a heartbeat older than N ms is stale (default REAPER_STALE_MS,\n"
          "                 else 120000)\n"
          "  --scan-ms N    scan every N ms (default REAPER_SCAN_MS, else 30000)\n"
          "  --warnings N   warnings that declare a coordinator dead (default REAPER_WARNINGS,\n"
          "                 else 3; warnings last 5 minutes)\n"
          "environment: REDIS_URL, REDIS_PASSWORD, REDIS_DB, BLOCKING_COORDINATION_SECRET,\n"
          "             REAPER_STALE_MS, REAPER_SCAN_MS, REAPER_WARNINGS\n"
          "exit status: 0 done (or stopped by SIGINT/SIGTERM), 1 failure, 2 usage error\n",
          f);
}

static void print_line(void *arg, const char *line)
{
    (void)arg;
    uint64_t s = (bc_now_ms() - g_start_ms) / 1000;
    printf("[%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 "] %s\n", s / 3600, s / 60 % 60, s % 60, line);
    fflush(stdout);
}

int bc_cli_reap(int argc, char **argv)
{
    static const struct option opts[] = {
        {"once", no_argument, 0, 'o'},          {"stale-ms", required_argument, 0, 's'},
        {"scan-ms", required_argument, 0, 'c'}, {"warnings", required_argument, 0, 'w'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.heartbeats = 0;
    bool once = false;
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            once = true;
            break;
        case 's':
            if (bc_cli_parse_u64("reap", "stale-ms", optarg, 1, 86400000, &v) != 0)
                return 2;
            ho.stale_ms = (uint32_t)v;
            break;
        case 'c':
            if (bc_cli_parse_u64("reap", "scan-ms", optarg, 1, 3600000, &v) != 0)
                return 2;
            ho.scan_ms = (uint32_t)v;
            break;
        case 'w':
            if (bc_cli_parse_u64("reap", "warnings", optarg, 1, 100, &v) != 0)
                return 2;
            ho.warnings = (uint32_t)v;
            break;
        case 'h':
            reap_usage(stdout);
            return 0;
        default:
            reap_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord reap: unexpected argument \"%s\"\n", argv[optind]);
        reap_usage(stderr);
        return 2;
    }
    if (once && ho.warnings == 0)
        ho.warnings = 1;
    if (once && ho.scan_ms == 0)
        ho.scan_ms = 1250; /* sets the lease (5 s) and the warning gate, not a second scan */

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    bc_runtime_t *rt;
    bc_hub_t *hub;
    int rc = bc_cli_start_hub("blockcoord reap: ", NULL, &ho, &rt, &hub);
    if (rc != 0)
        return rc;
    g_start_ms = bc_now_ms();
    bc__hub_set_reap_observer(hub, print_line, NULL);
    if (once)
        bc_hub_set_replacer(hub, bc_replace_handoff, NULL);
    int status = 0;
    if (bc_hub_wait_ready(hub, 10000) != 0) {
        fprintf(stderr, "blockcoord reap: Redis is not reachable (REDIS_URL)\n");
        status = 1;
    } else if (once) {
        /* The Redis clock is sampled right after connecting: wait for it (PROTOCOL §4.3). */
        for (int i = 0; i < 200 && !bc_redis_time_known(hub->redis); i++)
            nanosleep(&(struct timespec){0, 10000000}, NULL);
        bc_hub_reap_now(hub);
        struct timespec ts = {0, 10000000};
        uint64_t deadline = bc_now_ms() + 120000;
        while (bc__reap_busy(hub) && bc_now_ms() < deadline) {
            struct timespec zero = {0, 0};
            if (sigtimedwait(&set, NULL, &zero) > 0)
                break;
            nanosleep(&ts, NULL);
        }
        bc_hub_stats_t st;
        bc_hub_stats(hub, &st);
        if (st.reaper_cycles == 0) {
            fprintf(stderr, "blockcoord reap: the scan did not finish (Redis unreachable?)\n");
            status = 1;
        } else {
            printf("Scan done in %" PRIu64 " ms: %" PRIu64 " stale, %" PRIu64 " dead, %" PRIu64
                   " escalated, %" PRIu64 " work items moved, %" PRIu64 " bad keys skipped\n",
                   st.reaper_last_cycle_ms, st.reaper_stale, st.dead_detected, st.escalations,
                   st.work_transferred, st.reaper_bad_keys);
        }
    } else {
        int sig;
        while ((sig = sigwaitinfo(&set, NULL)) < 0 && errno == EINTR)
            ;
    }
    bc_hub_destroy(hub);
    bc_runtime_destroy(rt);
    return status;
}
