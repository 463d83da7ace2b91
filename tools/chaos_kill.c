/* chaos_kill.c - `blockcoord chaos process-kill`: the seeds' exercise 5. Starts H `blockcoord
 * host --work` processes in one swarm, feeds them work items, SIGKILLs a random one every
 * kill-interval ± 50 % and starts a fresh one in its place, while the survivors' reapers detect
 * the dead coordinators, spawn their replacements and move their work.
 *
 * Key decision: everything is measured from Redis, from the outside, the way an operator would
 * see it: liveness from the registry and the heartbeats (pid tells which process hosts which
 * coordinator, so a kill knows what it took down), replacements from coordinator:spawn:<id>,
 * work from a SCAN of coordinator:work:*, deaths from swarm:<S>:coordinator:dead. The hosts
 * report nothing to the orchestrator except the work log they append to (one line per
 * completion the fence accepted), which is how a completion that happened twice would show.
 */
#include "chaos_kill.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 30000
#define BURST_CONFIRM_MS 1000

uint64_t pk_now(const pk_t *p)
{
    return (uint64_t)((int64_t)chaos_wall_ms() + p->offset_ms);
}

void pk_fail(pk_t *p, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (p->nfail == p->fcap) {
        p->fcap = p->fcap ? p->fcap * 2 : 16;
        p->failures = realloc(p->failures, p->fcap * sizeof *p->failures);
        if (p->failures == NULL)
            abort();
    }
    p->failures[p->nfail] = strdup(buf);
    if (p->failures[p->nfail] == NULL)
        abort();
    p->nfail++;
    chaos_detail(&p->out, "FAILURE %s", buf);
}
/* ---------------------------------------------------------------- work */

static void on_assigned(void *arg, int status, uint64_t epoch, const char *err)
{
    pk_item_t *it = arg;
    (void)epoch;
    (void)err;
    /* release: the main thread reads the item after seeing the state. */
    atomic_store_explicit(&it->state, status == 0 ? PK_ASSIGNED : PK_ASSIGN_FAILED,
                          memory_order_release);
}

static bool eligible(const pk_t *p, const pk_coord_t *c, uint64_t now)
{
    return c->alive_at && !c->killed_at && !c->detected_at && c->proc >= 0 &&
           !p->procs[c->proc].killed && c->last_hb + 3 * p->o.hb_ms >= now;
}

static int pick_owner(pk_t *p)
{
    uint64_t now = pk_now(p);
    size_t n = 0;
    for (size_t i = 0; i < p->ncoords; i++)
        n += eligible(p, &p->coords[i], now);
    if (n == 0)
        return -1;
    size_t want = (size_t)(chaos_rand() % n);
    for (size_t i = 0; i < p->ncoords; i++)
        if (eligible(p, &p->coords[i], now) && want-- == 0)
            return (int)i;
    return -1;
}

static bool assign(pk_t *p, int owner)
{
    if (p->next_item >= p->o.work_items || owner < 0)
        return false;
    pk_item_t *it = &p->items[p->next_item++];
    it->owner = owner;
    atomic_store_explicit(&it->state, PK_ASSIGNING, memory_order_relaxed);
    char data[64], err[256];
    snprintf(data, sizeof data, "{\"n\":%zu}", p->next_item);
    int rc = bc_work_assign(p->hub, p->swarm, p->coords[owner].id, it->id, data, on_assigned, it,
                            err, sizeof err);
    if (rc != 0) {
        atomic_store_explicit(&it->state, PK_ASSIGN_FAILED, memory_order_relaxed);
        pk_fail(p, "cannot assign %s to %s: %s", it->id, p->coords[owner].id, err);
    }
    return true;
}

/* Tell every coordinator that was given an item since the last call (one `work` signal each). */
static void signal_owners(pk_t *p)
{
    for (size_t k = 0; k < p->next_item; k++) {
        pk_item_t *it = &p->items[k];
        if (it->signalled)
            continue;
        /* acquire: pairs with on_assigned. */
        int st = atomic_load_explicit(&it->state, memory_order_acquire);
        if (st == PK_ASSIGN_FAILED) {
            it->signalled = true;
            pk_fail(p, "Redis refused the assignment of %s to %s", it->id, p->coords[it->owner].id);
        } else if (st == PK_ASSIGNED) {
            it->signalled = true;
            p->coords[it->owner].signal_due = true;
        }
    }
    for (size_t i = 0; i < p->ncoords; i++) {
        pk_coord_t *c = &p->coords[i];
        if (!c->signal_due)
            continue;
        c->signal_due = false;
        char err[256];
        if (bc_coord_send(p->sender, c->id, "work", NULL, NULL, err, sizeof err) != 0)
            pk_fail(p, "cannot signal %s: %s", c->id, err);
    }
}

static void drip(pk_t *p, uint64_t now)
{
    uint64_t window = (uint64_t)p->o.duration_s * 800; /* 80 % of the run, in ms */
    while (p->drip_done < p->drip_total) {
        uint64_t due = p->assign_from + window * (p->drip_done + 1) / p->drip_total;
        if (now < due || !assign(p, pick_owner(p)))
            break;
        p->drip_done++;
    }
}

/* ---------------------------------------------------------------- kills */

static void do_kill(pk_t *p)
{
    /* A victim whose coordinators are all up, if there is one. */
    int slot = -1, tries = 0;
    do {
        int s = (int)(chaos_rand() % p->o.hosts);
        int pi = p->slot_proc[s];
        unsigned up = 0;
        for (size_t i = 0; i < p->ncoords; i++)
            up += p->coords[i].proc == pi && p->coords[i].alive_at && !p->coords[i].killed_at;
        if (slot < 0 || up >= p->o.per_host)
            slot = s;
        if (up >= p->o.per_host)
            break;
    } while (++tries < 4 * (int)p->o.hosts);
    int pi = p->slot_proc[slot];
    pk_proc_t *pr = &p->procs[pi];

    /* Work in flight at the moment of death: the victim's share of the reserve. */
    size_t burst = p->burst_left;
    if (p->kills_planned > p->nkills + 1)
        burst =
            (p->burst_left + (p->kills_planned - p->nkills) - 1) / (p->kills_planned - p->nkills);
    size_t first = p->next_item, given = 0;
    int victims[256];
    size_t nv = 0;
    for (size_t i = 0; i < p->ncoords && nv < 256; i++)
        if (p->coords[i].proc == pi && p->coords[i].alive_at && !p->coords[i].killed_at)
            victims[nv++] = (int)i;
    for (size_t b = 0; nv && b < burst && assign(p, victims[b % nv]); b++)
        given++;
    p->burst_left -= given;
    uint64_t until = chaos_wall_ms() + BURST_CONFIRM_MS;
    for (size_t k = first; k < p->next_item; k++)
        while (atomic_load_explicit(&p->items[k].state, memory_order_acquire) == PK_ASSIGNING &&
               chaos_wall_ms() < until)
            chaos_sleep_ms(2);
    signal_owners(p);

    uint64_t t = pk_now(p);
    kill(pr->pid, SIGKILL);
    pr->killed = true;
    pr->killed_at = t;
    int status;
    if (waitpid(pr->pid, &status, 0) == pr->pid) {
        pr->exited = true;
        pr->status = status;
        pr->exited_at = pk_now(p);
    }
    unsigned held = 0;
    for (size_t i = 0; i < p->ncoords; i++)
        if (p->coords[i].proc == pi && !p->coords[i].killed_at)
            held += p->coords[i].items_now;
    int k = pk_new_kill(p, pi, t);
    p->kills[k].coords = pk_bury(p, pi, t, k);
    p->kills[k].items = held + (unsigned)given;
    chaos_event(&p->out, "killed %s (pid %d): %u coordinators, %u work items held", pr->prefix,
                (int)pr->pid, p->kills[k].coords, p->kills[k].items);
    pk_start_host(p, slot, pr->gen + 1);
}

static uint64_t next_gap_ms(const pk_t *p)
{
    return (uint64_t)(p->o.kill_interval_s * 1000.0 * (0.5 + chaos_rand01()));
}

/* ---------------------------------------------------------------- the run */

static void tick(pk_t *p)
{
    pk_reap_children(p);
    chaos_sub_poll(&p->sub, pk_on_dead, p);
    pk_scan_registry(p);
    if (pk_scan_items(p) == 0)
        pk_check_recoveries(p, pk_now(p));
    signal_owners(p);
}

static void progress(pk_t *p, uint64_t now, bool grace)
{
    unsigned alive = 0, down = 0, killed = 0, recovered = 0, done = 0;
    for (size_t i = 0; i < p->ncoords; i++) {
        const pk_coord_t *c = &p->coords[i];
        if (c->killed_at) {
            killed++;
            recovered += c->recovered_at != 0;
            down += c->recovered_at == 0;
        } else {
            alive += c->alive_at != 0;
        }
    }
    for (unsigned k = 0; k < p->o.work_items; k++)
        done += p->items[k].done;
    double frac = grace ? 1.0 : (double)(now - p->t0) / (p->o.duration_s * 1000.0);
    chaos_progress(&p->out, frac,
                   "%s| coordinators %u alive, %u down | kills %zu | recovered %u/%u | "
                   "work %u/%u done",
                   grace ? "grace " : "", alive, down, p->nkills, recovered, killed, done,
                   p->o.work_items);
}

static bool all_settled(const pk_t *p)
{
    for (size_t i = 0; i < p->ncoords; i++)
        if (p->coords[i].killed_at && !p->coords[i].recovered_at)
            return false;
    for (unsigned k = 0; k < p->o.work_items; k++) {
        int st = atomic_load_explicit(&p->items[k].state, memory_order_acquire);
        if (st == PK_ASSIGNING || (st == PK_ASSIGNED && !p->items[k].done))
            return false;
    }
    return true;
}

/* Sleep up to ms on the main thread; a SIGINT/SIGTERM ends the run early. */
static void pause_ms(pk_t *p, const sigset_t *stopset, uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    int s = sigtimedwait(stopset, NULL, &ts);
    if (s > 0 && !p->interrupted) {
        p->interrupted = true;
        chaos_event(&p->out, "%s received: stopping early", s == SIGINT ? "SIGINT" : "SIGTERM");
        pk_fail(p, "interrupted by %s", s == SIGINT ? "SIGINT" : "SIGTERM");
    }
}

static int wait_initial(pk_t *p, const sigset_t *stopset)
{
    size_t want = (size_t)p->o.hosts * p->o.per_host;
    uint64_t until = chaos_wall_ms() + READY_TIMEOUT_MS + want * 5;
    for (;;) {
        pk_reap_children(p);
        pk_scan_registry(p);
        size_t alive = 0;
        for (size_t i = 0; i < p->ncoords; i++)
            alive += p->coords[i].alive_at && !p->coords[i].killed_at;
        if (alive >= want) {
            chaos_event(&p->out, "all %zu coordinators alive", want);
            return 0;
        }
        if (p->nfail || p->interrupted)
            return -1;
        if (chaos_wall_ms() > until) {
            pk_fail(p, "only %zu of %zu coordinators came alive within %llu s (see %s)", alive,
                    want, (unsigned long long)(READY_TIMEOUT_MS + want * 5) / 1000, p->logdir);
            return -1;
        }
        progress(p, pk_now(p), false);
        pause_ms(p, stopset, 100);
    }
}

static void run(pk_t *p, const sigset_t *stopset)
{
    uint64_t now = pk_now(p);
    p->chaos_end = p->t0 + (uint64_t)p->o.duration_s * 1000;
    p->assign_from = now;
    p->kills_planned = p->o.duration_s / p->o.kill_interval_s;
    p->burst_left = p->kills_planned ? p->o.work_items / 2 : 0;
    p->drip_total = p->o.work_items - p->burst_left;
    p->next_kill = now + next_gap_ms(p);
    chaos_event(&p->out,
                "chaos: a kill every %u s ± 50 %% for %u s; %u work items (%zu before "
                "kills, %zu trickling in)",
                p->o.kill_interval_s, p->o.duration_s, p->o.work_items, p->burst_left,
                p->drip_total);
    while (!p->interrupted && (now = pk_now(p)) < p->chaos_end) {
        tick(p);
        drip(p, now);
        if (now >= p->next_kill) {
            do_kill(p);
            p->next_kill = pk_now(p) + next_gap_ms(p);
        }
        progress(p, now, false);
        pause_ms(p, stopset, p->o.poll_ms);
    }
    /* Whatever was not handed out yet goes to the coordinators alive now. */
    tick(p);
    while (!p->interrupted && p->next_item < p->o.work_items && assign(p, pick_owner(p)))
        continue;
    if (p->next_item < p->o.work_items)
        pk_fail(p, "%zu work items could not be assigned (no live coordinator)",
                (size_t)p->o.work_items - p->next_item);
    uint64_t grace_end = pk_now(p) + (uint64_t)p->o.grace_s * 1000;
    chaos_event(&p->out,
                "chaos over after %zu kills; waiting up to %u s for the last recoveries "
                "and work items",
                p->nkills, p->o.grace_s);
    while (!p->interrupted && pk_now(p) < grace_end) {
        tick(p);
        if (all_settled(p))
            break;
        progress(p, pk_now(p), true);
        pause_ms(p, stopset, p->o.poll_ms);
    }
    tick(p);
    p->end = pk_now(p);
    chaos_progress_end(&p->out);
}

static void stop_hosts(pk_t *p)
{
    for (size_t i = 0; i < p->nprocs; i++)
        if (!p->procs[i].exited)
            kill(p->procs[i].pid, SIGTERM);
    for (size_t i = 0; i < p->nprocs; i++) {
        pk_proc_t *pr = &p->procs[i];
        if (pr->exited)
            continue;
        int st = chaos_stop_child(pr->pid, 0, 5000);
        pr->exited = true;
        pr->status = st;
        char how[96], tail[1200], path[1200];
        snprintf(path, sizeof path, "%s/%s.err", p->logdir, pr->prefix);
        if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
            pk_fail(p, "host %s %s when stopped with SIGTERM%s", pr->prefix,
                    chaos_describe_status(st, how, sizeof how),
                    chaos_tail(path, 5, tail, sizeof tail));
    }
}

static void pk_free(pk_t *p)
{
    for (size_t i = 0; i < p->nfail; i++)
        free(p->failures[i]);
    free(p->failures);
    free(p->coords);
    free(p->map);
    free(p->procs);
    free(p->slot_proc);
    free(p->kills);
    free(p->items);
    free(p);
}

int bc_chaos_process_kill(int argc, char **argv)
{
    pk_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    int rc = pk_parse(argc, argv, &p->o);
    if (rc >= 0) {
        free(p);
        return rc;
    }
    char err[1200];
    snprintf(p->logdir, sizeof p->logdir, "%s/logs", p->o.out);
    if (chaos_mkdirs(p->logdir, err, sizeof err) != 0 ||
        chaos_out_open(&p->out, p->o.out, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord chaos process-kill: %s\n", err);
        free(p);
        return 2;
    }
    if (chaos_ensure_secret() != 0) {
        fprintf(stderr, "blockcoord chaos process-kill: cannot set BLOCKING_COORDINATION_SECRET\n");
        chaos_out_close(&p->out);
        free(p);
        return 1;
    }
    /* The observer must outlive a Redis that goes away under it: EPIPE, not death. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGINT);
    sigaddset(&stopset, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopset, NULL);

    int result = 1;
    if (chaos_redis_open(&p->redis, NULL, err, sizeof err) != 0) {
        fprintf(stderr,
                "blockcoord chaos process-kill: %s\n  (set REDIS_URL, or run it under "
                "scripts/with-redis, which starts a throwaway Redis)\n",
                err);
        chaos_out_close(&p->out);
        free(p);
        return 1;
    }
    p->offset_ms = chaos_redis_offset_ms(&p->redis);
    chaos_tag(p->tag);
    snprintf(p->swarm, sizeof p->swarm, "chaos-%s", p->tag);
    char channel[96];
    snprintf(channel, sizeof channel, "swarm:%s:coordinator:dead", p->swarm);
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.reaper = 0; /* the orchestrator watches; the hosts' reapers do the work */
    p->items = calloc(p->o.work_items ? p->o.work_items : 1, sizeof *p->items);
    p->slot_proc = calloc(p->o.hosts, sizeof *p->slot_proc);
    if (p->items == NULL || p->slot_proc == NULL)
        abort();
    for (unsigned k = 0; k < p->o.work_items; k++) {
        snprintf(p->items[k].id, sizeof p->items[k].id, "w%u", k + 1);
        atomic_init(&p->items[k].state, PK_UNASSIGNED);
        p->items[k].owner = p->items[k].seen_owner = -1;
    }
    if (chaos_sub_open(&p->sub, &p->redis, channel, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord chaos process-kill: %s\n", err);
        goto out;
    }
    if ((rc = bc_cli_start_hub("blockcoord chaos process-kill: ", NULL, &ho, &p->rt, &p->hub)) !=
        0) {
        result = rc;
        goto out;
    }
    if (bc_hub_wait_ready(p->hub, 10000) != 0) {
        fprintf(stderr, "blockcoord chaos process-kill: the hub did not connect to %s\n",
                p->redis.target);
        goto out;
    }
    bc_coord_opts_t co;
    bc_coord_opts_init(&co);
    char sender_id[48];
    snprintf(sender_id, sizeof sender_id, "%s-orchestrator", p->tag);
    co.id = sender_id;
    co.send_only = 1;
    if (bc_coord_spawn(p->hub, &co, &p->sender, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord chaos process-kill: %s\n", err);
        goto out;
    }
    p->out.t0 = chaos_wall_ms();
    p->t0 = pk_now(p);
    chaos_event(&p->out,
                "process-kill: %u hosts x %u coordinators, swarm %s, Redis %s; hosts heartbeat "
                "every %llu ms, stale after %llu ms, scan every %llu ms, %llu warnings",
                p->o.hosts, p->o.per_host, p->swarm, p->redis.target,
                (unsigned long long)p->o.hb_ms, (unsigned long long)p->o.stale_ms,
                (unsigned long long)p->o.scan_ms, (unsigned long long)p->o.warnings);
    for (unsigned s = 0; s < p->o.hosts; s++)
        if (pk_start_host(p, (int)s, 0) != 0)
            break;
    if (p->nfail == 0 && wait_initial(p, &stopset) == 0)
        run(p, &stopset);
    else
        p->end = pk_now(p);
    stop_hosts(p);
    result = pk_report(p);
out:
    if (p->sender) {
        bc_coord_flush(p->sender, 2000);
        bc_coord_release(p->sender);
    }
    if (p->hub)
        bc_hub_destroy(p->hub);
    if (p->rt)
        bc_runtime_destroy(p->rt);
    for (size_t i = 0; i < p->nprocs; i++)
        if (!p->procs[i].exited)
            chaos_stop_child(p->procs[i].pid, SIGKILL, 1000);
    chaos_sub_close(&p->sub);
    chaos_redis_close(&p->redis);
    chaos_out_close(&p->out);
    pk_free(p);
    return result;
}
