/* chaos_restart.c - `blockcoord chaos redis-restart`: SIGKILL and restart a Redis server of its
 * own (AOF, fsync always) every interval while coordinators signal each other in a ring, and
 * check what the protocol promises (PROTOCOL §2.2, §2.3, §6): no signal lost or delivered twice,
 * every coordinator survives, heartbeats resume after each restart.
 *
 * Key decision: the ring runs in this process, on a hub of its own, so that sender and receiver
 * counts are exact: each ring coordinator sends {"seq":n} to the next one at a fixed rate, and
 * each receiver counts every (sender, seq) it is handed. Separate `blockcoord host` processes
 * ride along to show that other processes survive too. A write that the library reports as
 * failed (BC_EV_SEND_FAILED: Redis died with it in flight, so it may or may not have landed) is
 * not a silent loss; a signal that was accepted and never arrives is.
 */
#include "chaos_restart.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DRAIN_TIMEOUT_MS 20000
#define REDIS_START_MS 10000 /* how long a (re)started redis-server may take to answer */
#define STALE_MS "30000"     /* reapers: far above an outage, so a false death shows */

void rr_fail(rr_t *r, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r->failures = realloc(r->failures, (r->nfail + 1) * sizeof *r->failures);
    if (r->failures == NULL || (r->failures[r->nfail] = strdup(buf)) == NULL)
        abort();
    r->nfail++;
    chaos_detail(&r->o, "FAILURE %s", buf);
}

static void rr_usage(FILE *f)
{
    fputs("usage: blockcoord chaos redis-restart --duration S --interval S --out DIR [options]\n"
          "  Start a redis-server of its own (appendonly yes, appendfsync always, on a unix\n"
          "  socket in DIR/redis), a ring of coordinators in this process that signal each\n"
          "  other with sequence numbers, and host processes; every interval SIGKILL Redis\n"
          "  and start it again on the same data. Checks that no signal is lost or delivered\n"
          "  twice, every coordinator survives and heartbeats resume within --max-resume-ms.\n"
          "  Writes DIR/results.json, DIR/timeline.html, DIR/events.log and DIR/logs/.\n"
          "  --duration S       seconds, 1..86400\n"
          "  --interval S       seconds between restarts, 1..86400\n"
          "  --out DIR          output directory (created)\n"
          "  --down-ms N        how long Redis stays down at each restart (default 1000)\n"
          "  --ring N           ring coordinators in this process, 2..1000 (default 8)\n"
          "  --rate N           signals per second each ring coordinator sends, 1..1000\n"
          "                     (default 20)\n"
          "  --hosts N          `blockcoord host` processes riding along, 0..16 (default 2)\n"
          "  --per-host N       coordinators per host, 1..1000 (default 5)\n"
          "  --heartbeat-ms N   heartbeat interval of every coordinator (default 500)\n"
          "  --max-resume-ms N  heartbeats must resume within N ms of Redis answering again\n"
          "                     (default: one --interval)\n"
          "environment: REDIS_SERVER (default redis-server), BLOCKING_COORDINATION_SECRET\n"
          "             (generated for the run when unset); REDIS_URL is ignored: the test\n"
          "             owns its server\n",
          f);
}

static int rr_parse(int argc, char **argv, rr_t *r)
{
    enum { O_DUR = 256, O_INT, O_OUT, O_DOWN, O_RING, O_RATE, O_HOSTS, O_PER, O_HB, O_RESUME };
    static const struct option opts[] = {{"duration", required_argument, 0, O_DUR},
                                         {"interval", required_argument, 0, O_INT},
                                         {"out", required_argument, 0, O_OUT},
                                         {"down-ms", required_argument, 0, O_DOWN},
                                         {"ring", required_argument, 0, O_RING},
                                         {"rate", required_argument, 0, O_RATE},
                                         {"hosts", required_argument, 0, O_HOSTS},
                                         {"per-host", required_argument, 0, O_PER},
                                         {"heartbeat-ms", required_argument, 0, O_HB},
                                         {"max-resume-ms", required_argument, 0, O_RESUME},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *cmd = "chaos redis-restart";
    uint64_t dur = 0, ival = 0, down = 1000, ring = 8, rate = 20, hosts = 2, per = 5, hb = 500,
             resume = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case O_DUR:
            rc = bc_cli_parse_u64(cmd, "duration", optarg, 1, 86400, &dur);
            break;
        case O_INT:
            rc = bc_cli_parse_u64(cmd, "interval", optarg, 1, 86400, &ival);
            break;
        case O_OUT:
            r->out = optarg;
            break;
        case O_DOWN:
            rc = bc_cli_parse_u64(cmd, "down-ms", optarg, 0, 600000, &down);
            break;
        case O_RING:
            rc = bc_cli_parse_u64(cmd, "ring", optarg, 2, 1000, &ring);
            break;
        case O_RATE:
            rc = bc_cli_parse_u64(cmd, "rate", optarg, 1, 1000, &rate);
            break;
        case O_HOSTS:
            rc = bc_cli_parse_u64(cmd, "hosts", optarg, 0, 16, &hosts);
            break;
        case O_PER:
            rc = bc_cli_parse_u64(cmd, "per-host", optarg, 1, 1000, &per);
            break;
        case O_HB:
            rc = bc_cli_parse_u64(cmd, "heartbeat-ms", optarg, 1, 3600000, &hb);
            break;
        case O_RESUME:
            rc = bc_cli_parse_u64(cmd, "max-resume-ms", optarg, 1, 86400000, &resume);
            break;
        case 'h':
            rr_usage(stdout);
            return 0;
        default:
            rr_usage(stderr);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord %s: unexpected argument \"%s\"\n", cmd, argv[optind]);
        return 2;
    }
    const char *missing = !dur ? "--duration" : !ival ? "--interval" : !r->out ? "--out" : NULL;
    if (missing) {
        fprintf(stderr, "blockcoord %s: %s is required (see --help)\n", cmd, missing);
        return 2;
    }
    if (dur * 1000 <= ival * 1000 + down + 3000) {
        fprintf(stderr,
                "blockcoord %s: --duration %llu s leaves no room for a restart: it must be "
                "longer than --interval (%llu s) + --down-ms (%llu ms) + 3 s to see the "
                "heartbeats come back\n",
                cmd, (unsigned long long)dur, (unsigned long long)ival, (unsigned long long)down);
        return 2;
    }
    r->duration_s = (unsigned)dur;
    r->interval_s = (unsigned)ival;
    r->down_ms = (unsigned)down;
    r->ring = (unsigned)ring;
    r->rate = (unsigned)rate;
    r->hosts = (unsigned)hosts;
    r->per_host = (unsigned)per;
    r->hb_ms = hb;
    r->max_resume_ms = resume ? resume : ival * 1000;
    return -1;
}

/* ---------------------------------------------------------------- Redis server */

static int redis_start(rr_t *r)
{
    char *argv[] = {(char *)r->server,
                    "--port",
                    "0",
                    "--unixsocket",
                    r->sock,
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    r->redis_dir,
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                    "--logfile",
                    "redis.log",
                    NULL};
    char err[512];
    pid_t pid = chaos_spawn(argv, NULL, NULL, err, sizeof err);
    if (pid < 0) {
        rr_fail(r, "%s", err);
        return -1;
    }
    r->redis_pid = pid;
    uint64_t until = chaos_wall_ms() + REDIS_START_MS;
    while (chaos_wall_ms() < until) {
        redisReply *rep = chaos_redis_cmd(&r->redis, "PING");
        if (rep) {
            freeReplyObject(rep);
            return 0;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            char tail[1200], log[1200];
            snprintf(log, sizeof log, "%s/redis.log", r->redis_dir);
            rr_fail(r, "redis-server exited at start%s", chaos_tail(log, 5, tail, sizeof tail));
            r->redis_pid = 0;
            return -1;
        }
        chaos_sleep_ms(20);
    }
    rr_fail(r, "redis-server did not answer on %s within %d ms", r->sock, REDIS_START_MS);
    return -1;
}

static void restart(rr_t *r)
{
    rr_restart_t *x = &r->restarts[r->nrestarts];
    x->killed_at = chaos_wall_ms();
    kill(r->redis_pid, SIGKILL);
    waitpid(r->redis_pid, NULL, 0);
    r->redis_pid = 0;
    chaos_sleep_ms(r->down_ms);
    if (redis_start(r) != 0)
        return;
    x->up_at = chaos_wall_ms();
    r->nrestarts++;
    chaos_event(&r->o, "restart %zu: Redis SIGKILLed, down %.1f s, answering again", r->nrestarts,
                (double)(x->up_at - x->killed_at) / 1000.0);
}

/* ---------------------------------------------------------------- watching heartbeats */

static void watch_tick(rr_t *r)
{
    const char **argv = calloc(r->nwatch + 1, sizeof *argv);
    char(*keys)[96] = calloc(r->nwatch, sizeof *keys);
    if (argv == NULL || keys == NULL)
        abort();
    argv[0] = "MGET";
    for (size_t i = 0; i < r->nwatch; i++) {
        snprintf(keys[i], sizeof keys[i], "blocking:heartbeat:%s", r->watch[i].id);
        argv[i + 1] = keys[i];
    }
    redisReply *rep = chaos_redis_argv(&r->redis, (int)r->nwatch + 1, argv, NULL);
    free(argv);
    free(keys);
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != r->nwatch) {
        if (rep)
            freeReplyObject(rep);
        return;
    }
    for (size_t i = 0; i < r->nwatch; i++) {
        rr_watch_t *w = &r->watch[i];
        if (rep->element[i]->type != REDIS_REPLY_STRING)
            continue;
        json_t *v = json_loadb(rep->element[i]->str, rep->element[i]->len, 0, NULL);
        json_t *ts = v ? json_object_get(v, "timestamp") : NULL;
        if (json_is_integer(ts) && (uint64_t)json_integer_value(ts) > w->last_ts)
            w->last_ts = (uint64_t)json_integer_value(ts);
        json_decref(v);
        for (size_t k = 0; k < r->nrestarts; k++)
            if (w->resume_at[k] == 0 && w->last_ts > r->restarts[k].killed_at)
                w->resume_at[k] = w->last_ts;
    }
    freeReplyObject(rep);
    for (size_t k = 0; k < r->nrestarts; k++) {
        rr_restart_t *x = &r->restarts[k];
        if (x->complete)
            continue;
        size_t n = 0;
        uint64_t worst = 0;
        for (size_t i = 0; i < r->nwatch; i++) {
            uint64_t at = r->watch[i].resume_at[k];
            if (at == 0)
                continue;
            n++;
            uint64_t ms = at > x->up_at ? at - x->up_at : 0;
            worst = ms > worst ? ms : worst;
        }
        x->resumed = n;
        x->resumed_ms = worst;
        if (n == r->nwatch) {
            x->complete = true;
            chaos_event(&r->o,
                        "restart %zu: heartbeats of all %zu coordinators resumed, the "
                        "last %.2f s after Redis came back",
                        k + 1, n, (double)worst / 1000.0);
        }
    }
}

static void rr_progress(rr_t *r)
{
    uint64_t sent, delivered, failed, dups;
    rr_totals(r, &sent, &delivered, &failed, &dups);
    uint64_t worst = 0;
    for (size_t k = 0; k < r->nrestarts; k++)
        worst = r->restarts[k].resumed_ms > worst ? r->restarts[k].resumed_ms : worst;
    chaos_progress(&r->o, (double)(chaos_wall_ms() - r->t0) / (r->duration_s * 1000.0),
                   "| restarts %zu | signals sent %llu delivered %llu failed %llu dup %llu | "
                   "heartbeats resumed within %.1f s",
                   r->nrestarts, (unsigned long long)sent, (unsigned long long)delivered,
                   (unsigned long long)failed, (unsigned long long)dups, (double)worst / 1000.0);
}

static bool stop_requested(rr_t *r, const sigset_t *stopset, uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    int s = sigtimedwait(stopset, NULL, &ts);
    if (s > 0 && !r->interrupted) {
        r->interrupted = true;
        chaos_event(&r->o, "%s received: stopping early", s == SIGINT ? "SIGINT" : "SIGTERM");
        rr_fail(r, "interrupted by %s", s == SIGINT ? "SIGINT" : "SIGTERM");
    }
    return r->interrupted;
}

/* ---------------------------------------------------------------- set-up */

static int start_hosts(rr_t *r)
{
    char logdir[1100];
    snprintf(logdir, sizeof logdir, "%s/logs", r->out);
    char count[16], hb[24];
    snprintf(count, sizeof count, "%u", r->per_host);
    snprintf(hb, sizeof hb, "%llu", (unsigned long long)r->hb_ms);
    for (unsigned h = 0; h < r->hosts; h++) {
        char prefix[48], out[1200], err[1200], why[512];
        snprintf(prefix, sizeof prefix, "%s-h%u", r->tag, h);
        snprintf(out, sizeof out, "%s/%s.out", logdir, prefix);
        snprintf(err, sizeof err, "%s/%s.err", logdir, prefix);
        char *argv[] = {(char *)chaos_self_exe(),
                        "host",
                        "--count",
                        count,
                        "--prefix",
                        prefix,
                        "--swarm",
                        r->swarm,
                        "--heartbeat-ms",
                        hb,
                        "--stale-ms",
                        STALE_MS,
                        "--scan-ms",
                        "5000",
                        NULL};
        pid_t pid = chaos_spawn(argv, out, err, why, sizeof why);
        if (pid < 0) {
            rr_fail(r, "cannot start host %s: %s", prefix, why);
            return -1;
        }
        r->host_pids[h] = pid;
        for (unsigned i = 0; i < r->per_host; i++)
            snprintf(r->watch[r->nwatch++].id, sizeof r->watch[0].id, "%s-%u", prefix, i);
    }
    return 0;
}

/* Wait until every watched coordinator has a heartbeat. */
static int wait_heartbeats(rr_t *r, const sigset_t *stopset)
{
    uint64_t until = chaos_wall_ms() + 20000;
    for (;;) {
        watch_tick(r);
        size_t n = 0;
        for (size_t i = 0; i < r->nwatch; i++)
            n += r->watch[i].last_ts != 0;
        if (n == r->nwatch)
            return 0;
        if (chaos_wall_ms() > until) {
            rr_fail(r, "only %zu of %zu coordinators heartbeat within 20 s", n, r->nwatch);
            return -1;
        }
        if (stop_requested(r, stopset, 50))
            return -1;
    }
}

/* Stop the driver and the ring's hub; afterwards no callback touches the nodes. */
/* ---------------------------------------------------------------- the run */

static void run(rr_t *r, const sigset_t *stopset)
{
    uint64_t end = r->t0 + (uint64_t)r->duration_s * 1000;
    uint64_t next = r->t0 + (uint64_t)r->interval_s * 1000;
    while (chaos_wall_ms() < end) {
        watch_tick(r);
        uint64_t now = chaos_wall_ms();
        /* A restart needs room after it to see the heartbeats come back. */
        if (now >= next && now + r->down_ms + 3000 < end && r->nrestarts < r->max_restarts) {
            restart(r);
            if (r->redis_pid == 0)
                break;
            next = r->restarts[r->nrestarts - 1].killed_at + (uint64_t)r->interval_s * 1000;
        }
        rr_progress(r);
        if (stop_requested(r, stopset, 100))
            break;
    }
    atomic_store_explicit(&r->sending, 0, memory_order_release);
    chaos_progress_end(&r->o);
    /* Drain: everything accepted must arrive (or have been reported failed). */
    uint64_t until = chaos_wall_ms() + DRAIN_TIMEOUT_MS;
    for (;;) {
        watch_tick(r);
        uint64_t sent, delivered, failed, dups;
        rr_totals(r, &sent, &delivered, &failed, &dups);
        bool resumed = true;
        for (size_t k = 0; k < r->nrestarts; k++)
            resumed = resumed && r->restarts[k].complete;
        if ((delivered + failed >= sent && resumed) || chaos_wall_ms() > until || r->redis_pid == 0)
            break;
        if (stop_requested(r, stopset, 100))
            break;
    }
    chaos_sleep_ms(500); /* a duplicate would show up now */
    watch_tick(r);
    r->end = chaos_wall_ms();
}

/* A previous run's data in DIR/redis would be loaded by our server: start from nothing. Only
 * what redis-server itself writes there is removed. */
static void clear_redis_dir(const char *dir)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/appendonlydir", dir);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, "appendonly.aof", 14) != 0)
                continue;
            char f[1600];
            snprintf(f, sizeof f, "%s/%s", path, e->d_name);
            unlink(f);
        }
        closedir(d);
        rmdir(path);
    }
    static const char *const files[] = {"dump.rdb", "redis.log", "appendonly.aof"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
}

/* The socket path must fit sun_path: use DIR/redis/redis.sock, or a fresh /tmp directory. */
static int pick_socket(rr_t *r, char *err, size_t errlen)
{
    snprintf(r->redis_dir, sizeof r->redis_dir, "%s/redis", r->out);
    if (chaos_mkdirs(r->redis_dir, err, errlen) != 0)
        return -1;
    clear_redis_dir(r->redis_dir);
    char abs[1100];
    if (realpath(r->redis_dir, abs) == NULL) {
        snprintf(err, errlen, "%s: %s", r->redis_dir, strerror(errno));
        return -1;
    }
    snprintf(r->redis_dir, sizeof r->redis_dir, "%s", abs);
    if (strlen(abs) + sizeof "/redis.sock" <= 100) {
        snprintf(r->sock, sizeof r->sock, "%s/redis.sock", abs);
        return 0;
    }
    snprintf(r->sock_dir, sizeof r->sock_dir, "/tmp/bc-chaos-XXXXXX");
    if (mkdtemp(r->sock_dir) == NULL) {
        snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
        r->sock_dir[0] = '\0';
        return -1;
    }
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->sock_dir);
    return 0;
}

int bc_chaos_redis_restart(int argc, char **argv)
{
    rr_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        abort();
    int rc = rr_parse(argc, argv, r);
    if (rc >= 0) {
        free(r);
        return rc;
    }
    char err[1300], logdir[1100];
    snprintf(logdir, sizeof logdir, "%s/logs", r->out);
    if (chaos_mkdirs(logdir, err, sizeof err) != 0 || pick_socket(r, err, sizeof err) != 0 ||
        chaos_out_open(&r->o, r->out, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord chaos redis-restart: %s\n", err);
        free(r);
        return 2;
    }
    r->server =
        getenv("REDIS_SERVER") && *getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "redis-server";
    /* Everything below talks to our own server; the environment must not say otherwise. */
    char url[1300];
    snprintf(url, sizeof url, "unix://%s", r->sock);
    setenv("REDIS_URL", url, 1);
    unsetenv("REDIS_PASSWORD");
    unsetenv("REDIS_DB");
    int result = 1;
    if (chaos_ensure_secret() != 0) {
        fprintf(stderr,
                "blockcoord chaos redis-restart: cannot set BLOCKING_COORDINATION_SECRET\n");
        chaos_out_close(&r->o);
        free(r);
        return 1;
    }
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);

    chaos_tag(r->tag);
    snprintf(r->swarm, sizeof r->swarm, "chaos-%s", r->tag);
    r->max_restarts = r->duration_s / r->interval_s + 1;
    r->restarts = calloc(r->max_restarts, sizeof *r->restarts);
    r->nodes = calloc(r->ring, sizeof *r->nodes);
    r->host_pids = calloc(r->hosts + 1, sizeof *r->host_pids);
    r->watch = calloc(r->ring + (size_t)r->hosts * r->per_host, sizeof *r->watch);
    if (!r->restarts || !r->nodes || !r->host_pids || !r->watch)
        abort();
    for (unsigned i = 0; i < r->ring; i++) {
        atomic_init(&r->nodes[i].sent, 0);
        atomic_init(&r->nodes[i].send_failed, 0);
        atomic_init(&r->nodes[i].delivered, 0);
        atomic_init(&r->nodes[i].dups, 0);
        atomic_init(&r->nodes[i].reordered, 0);
        atomic_init(&r->nodes[i].foreign, 0);
        snprintf(r->watch[r->nwatch++].id, sizeof r->watch[0].id, "%s-ring-%u", r->tag, i);
    }
    if (chaos_redis_init(&r->redis, url, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord chaos redis-restart: %s\n", err);
        goto out;
    }
    redisReply *probe = chaos_redis_cmd(&r->redis, "PING");
    if (probe) {
        freeReplyObject(probe);
        fprintf(stderr, "blockcoord chaos redis-restart: something already answers on %s\n",
                r->sock);
        goto out;
    }
    r->o.t0 = r->t0 = chaos_wall_ms();
    chaos_event(&r->o,
                "redis-restart: Redis on %s (AOF, fsync always), a restart every %u s "
                "(down %u ms), ring of %u x %u signals/s, %u hosts x %u",
                r->sock, r->interval_s, r->down_ms, r->ring, r->rate, r->hosts, r->per_host);
    if (redis_start(r) != 0)
        goto report;
    if (start_hosts(r) != 0 || rr_start_ring(r) != 0)
        goto report;
    /* This thread's own connection writes to a Redis that was just killed: block SIGPIPE here
     * (the write fails with EPIPE), but only here. The ring's runtime threads were created
     * before and keep the default, so the library itself is tested as an application runs it. */
    sigset_t pipeset;
    sigemptyset(&pipeset);
    sigaddset(&pipeset, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipeset, NULL);
    for (size_t i = 0; i < r->nwatch; i++)
        if ((r->watch[i].resume_at = calloc(r->max_restarts, sizeof(uint64_t))) == NULL)
            abort();
    if (wait_heartbeats(r, &stopset) != 0)
        goto report;
    chaos_event(&r->o, "all %zu coordinators heartbeating, the ring is signalling", r->nwatch);
    run(r, &stopset);
report:
    if (r->end == 0)
        r->end = chaos_wall_ms();
    atomic_store_explicit(&r->sending, 0, memory_order_release);
    rr_stop_ring(r); /* the ring's counts are final from here on */
    for (size_t i = 0; i < r->nwatch; i++)
        if (r->watch[i].resume_at == NULL &&
            (r->watch[i].resume_at = calloc(r->max_restarts, sizeof(uint64_t))) == NULL)
            abort();
    result = rr_report(r);
out:
    rr_stop_ring(r);
    for (unsigned h = 0; h < r->hosts; h++)
        if (r->host_pids[h] > 0)
            chaos_stop_child(r->host_pids[h], SIGTERM, 5000);
    if (r->redis_pid > 0)
        chaos_stop_child(r->redis_pid, SIGTERM, 5000);
    chaos_redis_close(&r->redis);
    if (r->sock_dir[0]) {
        unlink(r->sock);
        rmdir(r->sock_dir);
    }
    chaos_out_close(&r->o);
    for (unsigned i = 0; i < r->ring; i++)
        free(r->nodes[i].seen);
    for (size_t i = 0; i < r->nwatch; i++)
        free(r->watch[i].resume_at);
    for (size_t i = 0; i < r->nfail; i++)
        free(r->failures[i]);
    free(r->failures);
    free(r->nodes);
    free(r->watch);
    free(r->restarts);
    free(r->host_pids);
    free(r);
    return result;
}
