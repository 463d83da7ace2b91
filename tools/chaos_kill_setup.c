/* chaos_kill_setup.c - process-kill's command line and its host processes: starting one
 * (`blockcoord host --work` with the run's liveness settings and a work log), noticing one
 * that ended, and burying the coordinators it took with it.
 */
#include "chaos_kill.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void pk_usage(FILE *f)
{
    fputs("usage: blockcoord chaos process-kill --hosts H --per-host C --duration S\n"
          "                  --kill-interval S --work-items N --out DIR [--fast] [options]\n"
          "  Start H `blockcoord host --work` processes of C coordinators each (one swarm, the\n"
          "  Redis of REDIS_URL), spread N work items over them, and every kill-interval ± 50 %\n"
          "  SIGKILL a random host and start a fresh one in its place. The survivors' reapers\n"
          "  must detect the dead coordinators, replace them and move their work. Measures\n"
          "  uptime, recovery times and whether any work was lost or done twice; writes\n"
          "  DIR/results.json, DIR/timeline.html, DIR/events.log and DIR/logs/.\n"
          "  --hosts H          host processes, 1..64\n"
          "  --per-host C       coordinators per host, 1..10000\n"
          "  --duration S       seconds of chaos, 1..86400 (then a grace period: see --grace)\n"
          "  --kill-interval S  mean seconds between kills, 1..86400 (each gap is uniform in\n"
          "                     0.5 S .. 1.5 S)\n"
          "  --work-items N     work items, 0..1000000: half trickle in over the first 80 % of\n"
          "                     the run, half are given to each victim just before it is killed\n"
          "  --out DIR          output directory (created)\n"
          "  --fast             hosts heartbeat every 250 ms, stale after 1000 ms, scan every\n"
          "                     250 ms; targets uptime >= 99 %, P95 recovery <= 2000 ms\n"
          "                     (default: 1000 / 5000 / 1000 ms; uptime >= 90 %, P95 < 10000 ms)\n"
          "  --heartbeat-ms N, --stale-ms N, --scan-ms N, --warnings N\n"
          "                     override the hosts' liveness settings (see blockcoord host)\n"
          "  --work-ms A-B      time a host takes per item (default 50-500)\n"
          "  --min-uptime PCT   uptime target in percent (default by mode, see --fast)\n"
          "  --max-p95-ms N     P95 recovery target in ms (default by mode)\n"
          "  --grace S          after the chaos, wait up to S seconds for the last recoveries\n"
          "                     and completions (default 30 + 3 x detection time)\n"
          "The run fails (exit 1, status \"failed\") on any lost or duplicated work item, any\n"
          "coordinator not recovered, a coordinator declared dead that was not killed, a host\n"
          "that died on its own, or a missed target.\n"
          "environment: REDIS_URL (scripts/with-redis starts a throwaway Redis),\n"
          "             BLOCKING_COORDINATION_SECRET (generated for the run when unset)\n",
          f);
}

static int parse_pct(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= 0 && d <= 100)) {
        fprintf(stderr,
                "blockcoord chaos process-kill: --min-uptime \"%s\": expected a percentage "
                "0..100\n",
                v);
        return -EINVAL;
    }
    *out = d;
    return 0;
}

int pk_parse(int argc, char **argv, pk_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->min_uptime = -1;
    o->max_p95_ms = UINT64_MAX;
    o->grace_s = UINT32_MAX;
    snprintf(o->work_ms, sizeof o->work_ms, "50-500");
    enum {
        O_HOSTS = 256,
        O_PER,
        O_DUR,
        O_INT,
        O_ITEMS,
        O_OUT,
        O_FAST,
        O_HB,
        O_STALE,
        O_SCAN,
        O_WARN,
        O_WORKMS,
        O_UPTIME,
        O_P95,
        O_GRACE
    };
    static const struct option opts[] = {{"hosts", required_argument, 0, O_HOSTS},
                                         {"per-host", required_argument, 0, O_PER},
                                         {"duration", required_argument, 0, O_DUR},
                                         {"kill-interval", required_argument, 0, O_INT},
                                         {"work-items", required_argument, 0, O_ITEMS},
                                         {"out", required_argument, 0, O_OUT},
                                         {"fast", no_argument, 0, O_FAST},
                                         {"heartbeat-ms", required_argument, 0, O_HB},
                                         {"stale-ms", required_argument, 0, O_STALE},
                                         {"scan-ms", required_argument, 0, O_SCAN},
                                         {"warnings", required_argument, 0, O_WARN},
                                         {"work-ms", required_argument, 0, O_WORKMS},
                                         {"min-uptime", required_argument, 0, O_UPTIME},
                                         {"max-p95-ms", required_argument, 0, O_P95},
                                         {"grace", required_argument, 0, O_GRACE},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *cmd = "chaos process-kill";
    uint64_t v, hosts = 0, per = 0, dur = 0, ival = 0, items = UINT64_MAX;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case O_HOSTS:
            rc = bc_cli_parse_u64(cmd, "hosts", optarg, 1, 64, &hosts);
            break;
        case O_PER:
            rc = bc_cli_parse_u64(cmd, "per-host", optarg, 1, 10000, &per);
            break;
        case O_DUR:
            rc = bc_cli_parse_u64(cmd, "duration", optarg, 1, 86400, &dur);
            break;
        case O_INT:
            rc = bc_cli_parse_u64(cmd, "kill-interval", optarg, 1, 86400, &ival);
            break;
        case O_ITEMS:
            rc = bc_cli_parse_u64(cmd, "work-items", optarg, 0, 1000000, &items);
            break;
        case O_OUT:
            o->out = optarg;
            break;
        case O_FAST:
            o->fast = true;
            break;
        case O_HB:
            rc = bc_cli_parse_u64(cmd, "heartbeat-ms", optarg, 1, 3600000, &o->hb_ms);
            break;
        case O_STALE:
            rc = bc_cli_parse_u64(cmd, "stale-ms", optarg, 1, 86400000, &o->stale_ms);
            break;
        case O_SCAN:
            rc = bc_cli_parse_u64(cmd, "scan-ms", optarg, 1, 3600000, &o->scan_ms);
            break;
        case O_WARN:
            rc = bc_cli_parse_u64(cmd, "warnings", optarg, 1, 100, &o->warnings);
            break;
        case O_WORKMS: {
            unsigned a, b;
            char extra;
            int n = sscanf(optarg, "%u-%u%c", &a, &b, &extra);
            if (n == 1 && sscanf(optarg, "%u%c", &a, &extra) == 1)
                b = a, n = 2;
            if (n != 2 || optarg[0] == '-' || a > b || b > 3600000) {
                fprintf(stderr,
                        "blockcoord %s: --work-ms \"%s\": expected MS or MIN-MAX, milliseconds "
                        "in 0..3600000 with MIN <= MAX\n",
                        cmd, optarg);
                rc = -EINVAL;
            } else {
                snprintf(o->work_ms, sizeof o->work_ms, "%u-%u", a, b);
            }
            break;
        }
        case O_UPTIME:
            rc = parse_pct(optarg, &o->min_uptime);
            break;
        case O_P95:
            rc = bc_cli_parse_u64(cmd, "max-p95-ms", optarg, 1, 86400000, &o->max_p95_ms);
            break;
        case O_GRACE:
            rc = bc_cli_parse_u64(cmd, "grace", optarg, 1, 86400, &v);
            o->grace_s = (unsigned)v;
            break;
        case 'h':
            pk_usage(stdout);
            return 0;
        default:
            pk_usage(stderr);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    const char *missing = !hosts                ? "--hosts"
                          : !per                ? "--per-host"
                          : !dur                ? "--duration"
                          : !ival               ? "--kill-interval"
                          : items == UINT64_MAX ? "--work-items"
                          : !o->out             ? "--out"
                                                : NULL;
    if (missing) {
        fprintf(stderr, "blockcoord %s: %s is required (see --help)\n", cmd, missing);
        return 2;
    }
    if (dur * 2 < ival * 3) {
        fprintf(stderr,
                "blockcoord %s: --duration %llu s is too short for --kill-interval %llu s: the "
                "first kill may come as late as 1.5 x the interval; use at least %llu s\n",
                cmd, (unsigned long long)dur, (unsigned long long)ival,
                (unsigned long long)((ival * 3 + 1) / 2));
        return 2;
    }
    o->hosts = (unsigned)hosts;
    o->per_host = (unsigned)per;
    o->duration_s = (unsigned)dur;
    o->kill_interval_s = (unsigned)ival;
    o->work_items = (unsigned)items;
    if (!o->hb_ms)
        o->hb_ms = o->fast ? 250 : 1000;
    if (!o->stale_ms)
        o->stale_ms = o->fast ? 1000 : 5000;
    if (!o->scan_ms)
        o->scan_ms = o->fast ? 250 : 1000;
    if (!o->warnings)
        o->warnings = 3;
    if (o->min_uptime < 0)
        o->min_uptime = o->fast ? 99.0 : 90.0;
    if (o->max_p95_ms == UINT64_MAX)
        o->max_p95_ms = o->fast ? 2000 : 9999;
    if (o->grace_s == UINT32_MAX)
        o->grace_s = 30 + (unsigned)(3 * (o->stale_ms + o->warnings * o->scan_ms) / 1000);
    o->poll_ms = o->fast ? 50 : 100;
    if (o->stale_ms <= o->hb_ms)
        fprintf(stderr,
                "warning: --stale-ms %llu is not above --heartbeat-ms %llu: live coordinators "
                "will be declared dead\n",
                (unsigned long long)o->stale_ms, (unsigned long long)o->hb_ms);
    return -1;
}

/* ---------------------------------------------------------------- processes */

int pk_start_host(pk_t *p, int slot, int gen)
{
    if (p->nprocs == p->pcap) {
        p->pcap = p->pcap ? p->pcap * 2 : 32;
        p->procs = realloc(p->procs, p->pcap * sizeof *p->procs);
        if (p->procs == NULL)
            abort();
    }
    pk_proc_t *pr = &p->procs[p->nprocs];
    memset(pr, 0, sizeof *pr);
    pr->slot = slot;
    pr->gen = gen;
    snprintf(pr->prefix, sizeof pr->prefix, "%s-h%dg%d", p->tag, slot, gen);
    char count[16], hb[24], stale[24], scan[24], warn[24], wlog[1200], out[1200], err[1200];
    snprintf(count, sizeof count, "%u", p->o.per_host);
    snprintf(hb, sizeof hb, "%llu", (unsigned long long)p->o.hb_ms);
    snprintf(stale, sizeof stale, "%llu", (unsigned long long)p->o.stale_ms);
    snprintf(scan, sizeof scan, "%llu", (unsigned long long)p->o.scan_ms);
    snprintf(warn, sizeof warn, "%llu", (unsigned long long)p->o.warnings);
    snprintf(wlog, sizeof wlog, "%s/%s.work", p->logdir, pr->prefix);
    snprintf(out, sizeof out, "%s/%s.out", p->logdir, pr->prefix);
    snprintf(err, sizeof err, "%s/%s.err", p->logdir, pr->prefix);
    char *argv[] = {(char *)chaos_self_exe(),
                    "host",
                    "--count",
                    count,
                    "--prefix",
                    pr->prefix,
                    "--swarm",
                    p->swarm,
                    "--work",
                    "--work-ms",
                    p->o.work_ms,
                    "--work-log",
                    wlog,
                    "--heartbeat-ms",
                    hb,
                    "--stale-ms",
                    stale,
                    "--scan-ms",
                    scan,
                    "--warnings",
                    warn,
                    NULL};
    char why[512];
    pid_t pid = chaos_spawn(argv, out, err, why, sizeof why);
    if (pid < 0) {
        pk_fail(p, "cannot start host %s: %s", pr->prefix, why);
        return -1;
    }
    pr->pid = pid;
    pr->started_at = pk_now(p);
    p->slot_proc[slot] = (int)p->nprocs++;
    chaos_detail(&p->out, "started %s (pid %d)", pr->prefix, (int)pid);
    return 0;
}

/* A process ended: the coordinators it hosted are dead from `at`. Returns how many. */
unsigned pk_bury(pk_t *p, int pi, uint64_t at, int kill)
{
    unsigned n = 0;
    for (size_t i = 0; i < p->ncoords; i++) {
        pk_coord_t *c = &p->coords[i];
        if (c->proc == pi && c->killed_at == 0) {
            c->killed_at = at;
            c->kill = kill;
            n++;
        }
    }
    return n;
}

int pk_new_kill(pk_t *p, int pi, uint64_t t)
{
    if (p->nkills == p->kcap) {
        p->kcap = p->kcap ? p->kcap * 2 : 32;
        p->kills = realloc(p->kills, p->kcap * sizeof *p->kills);
        if (p->kills == NULL)
            abort();
    }
    pk_kill_t *k = &p->kills[p->nkills];
    memset(k, 0, sizeof *k);
    k->t = t;
    k->proc = pi;
    return (int)p->nkills++;
}

void pk_reap_children(pk_t *p)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int pi = pk_proc_by_pid(p, pid);
        if (pi < 0)
            continue;
        pk_proc_t *pr = &p->procs[pi];
        pr->exited = true;
        pr->status = status;
        pr->exited_at = pk_now(p);
        if (pr->killed)
            continue;
        char how[96], tail[1200], path[1200];
        snprintf(path, sizeof path, "%s/%s.err", p->logdir, pr->prefix);
        pr->unexpected = true;
        pr->killed_at = pr->exited_at;
        int k = pk_new_kill(p, pi, pr->exited_at);
        p->kills[k].coords = pk_bury(p, pi, pr->exited_at, k);
        pk_fail(p, "host %s (pid %d) %s on its own%s", pr->prefix, (int)pid,
                chaos_describe_status(status, how, sizeof how),
                chaos_tail(path, 5, tail, sizeof tail));
        chaos_event(&p->out, "host %s (pid %d) %s on its own", pr->prefix, (int)pid, how);
        for (size_t i = 0; i < p->ncoords; i++)
            if (p->coords[i].kill == k)
                p->coords[i].unexpected = true;
    }
}
