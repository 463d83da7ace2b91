/* chaos_kill_report.c - the verdict of a process-kill run: the last look at the work items, the
 * hosts' work logs, uptime per slot, recovery times, results.json, timeline.html and the
 * summary on stdout.
 *
 * Key decision: an item counts as lost only if two scans, 300 ms apart, both find it neither
 * completed nor held by anyone (a SCAN may miss a key that moves while it runs; a lost item is
 * missing in both). A duplicate is an item whose completion the fence accepted more than once,
 * as the hosts' work logs tell; the done record itself is written with NX and cannot show it.
 */
#include "chaos_kill.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const pk_t *p;
    bool *present, *done;
    size_t dl, il;
    char dprefix[96], iprefix[96];
} final_scan_t;

static void final_key(void *arg, const char *key, size_t len)
{
    final_scan_t *f = arg;
    const char *wid = NULL;
    bool is_done = false;
    (void)len;
    if (strncmp(key, f->dprefix, f->dl) == 0) {
        wid = key + f->dl;
        is_done = true;
    } else if (strncmp(key, f->iprefix, f->il) == 0) {
        wid = strrchr(key + f->il, ':');
        wid = wid ? wid + 1 : NULL;
    }
    char *end;
    unsigned long k = wid && wid[0] == 'w' ? strtoul(wid + 1, &end, 10) : 0;
    if (k == 0 || k > f->p->o.work_items || *end)
        return;
    if (is_done)
        f->done[k - 1] = true;
    else
        f->present[k - 1] = true;
}

/* One look at every item key and done record of the swarm. */
static void mark_items(pk_t *p, bool *present, bool *done)
{
    final_scan_t f = {.p = p, .present = present, .done = done};
    f.dl = (size_t)snprintf(f.dprefix, sizeof f.dprefix, "coordinator:work:done:%s:", p->swarm);
    f.il = (size_t)snprintf(f.iprefix, sizeof f.iprefix, "coordinator:work:%s:", p->swarm);
    if (chaos_redis_scan(&p->redis, "coordinator:work:*", final_key, &f) < 0)
        pk_fail(p, "the final scan of the work items failed: %s", p->redis.last_err);
}

static void read_done_records(pk_t *p)
{
    const size_t batch = 500;
    for (size_t from = 0; from < p->o.work_items; from += batch) {
        size_t n = p->o.work_items - from < batch ? p->o.work_items - from : batch;
        const char **argv = calloc(n + 1, sizeof *argv);
        char(*keys)[128] = calloc(n, sizeof *keys);
        if (argv == NULL || keys == NULL)
            abort();
        argv[0] = "MGET";
        for (size_t i = 0; i < n; i++) {
            snprintf(keys[i], sizeof keys[i], "coordinator:work:done:%s:%s", p->swarm,
                     p->items[from + i].id);
            argv[i + 1] = keys[i];
        }
        redisReply *r = chaos_redis_argv(&p->redis, (int)n + 1, argv, NULL);
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == n) {
            for (size_t i = 0; i < n; i++) {
                if (r->element[i]->type != REDIS_REPLY_STRING)
                    continue;
                json_t *v = json_loadb(r->element[i]->str, r->element[i]->len, 0, NULL);
                const char *by = v ? json_string_value(json_object_get(v, "completedBy")) : NULL;
                snprintf(p->items[from + i].completed_by, sizeof p->items[0].completed_by, "%s",
                         by ? by : "?");
                p->items[from + i].done = true;
                json_decref(v);
            }
        }
        if (r)
            freeReplyObject(r);
        free(argv);
        free(keys);
    }
}

/* The hosts' work logs: "<ms> <coordinator> <workId> <epoch>" per accepted completion. */
static void read_work_logs(pk_t *p)
{
    for (size_t i = 0; i < p->nprocs; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.work", p->logdir, p->procs[i].prefix);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char line[256], coord[80], wid[80];
        unsigned long long ms, epoch;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "%llu %79s %79s %llu", &ms, coord, wid, &epoch) != 4)
                continue;
            char *end;
            unsigned long k = wid[0] == 'w' ? strtoul(wid + 1, &end, 10) : 0;
            if (k >= 1 && k <= p->o.work_items && *end == '\0')
                p->items[k - 1].log_count++;
        }
        fclose(f);
    }
}

/* Walk one slot (root r) to the window end w: alive and dead time, and its timeline row. */
static void walk_slot(pk_t *p, int r, uint64_t w, uint64_t *alive, uint64_t *total,
                      chaos_row_t *row)
{
    const pk_coord_t *c = &p->coords[r];
    if (c->alive_at == 0 || c->alive_at >= w)
        return;
    *total += w - c->alive_at;
    uint64_t t = c->alive_at;
    for (;;) {
        uint64_t kill_t = c->killed_at ? (c->killed_at > t ? c->killed_at : t) : w;
        if (kill_t > w)
            kill_t = w;
        *alive += kill_t - t;
        char note[192];
        snprintf(note, sizeof note, "%s", c->id);
        chaos_tl_seg(row, t, kill_t, CHAOS_SEG_ALIVE, note);
        if (!c->killed_at || kill_t >= w)
            return;
        uint64_t dead_end = c->recovered_at && c->recovered_at < w ? c->recovered_at : w;
        if (dead_end < kill_t)
            dead_end = kill_t;
        snprintf(note, sizeof note, "%s killed%s%s", c->id, c->succ >= 0 ? ", replaced by " : "",
                 c->succ >= 0 ? p->coords[c->succ].id : "");
        chaos_tl_seg(row, kill_t, dead_end, CHAOS_SEG_DEAD, note);
        if (!c->recovered_at || c->succ < 0 || dead_end >= w)
            return;
        t = dead_end;
        c = &p->coords[c->succ];
    }
}

static const pk_t *sort_p; /* qsort has no argument: the table being sorted */

/* Rows in id order, numbers compared as numbers (h2g0-10 after h2g0-9). */
static int by_id(const void *a, const void *b)
{
    return strverscmp(sort_p->coords[*(const int *)a].id, sort_p->coords[*(const int *)b].id);
}

static const char *mark(bool ok)
{
    return ok ? "✅" : "❌";
}

int pk_report(pk_t *p)
{
    size_t n = p->o.work_items;
    bool *present1 = calloc(n + 1, 1), *present2 = calloc(n + 1, 1), *done1 = calloc(n + 1, 1),
         *done2 = calloc(n + 1, 1);
    if (!present1 || !present2 || !done1 || !done2)
        abort();
    mark_items(p, present1, done1);
    chaos_sleep_ms(300);
    mark_items(p, present2, done2);
    read_done_records(p);
    read_work_logs(p);

    size_t completed = 0, lost = 0, dup = 0, pending = 0, unassigned = 0, unlogged = 0;
    for (size_t k = 0; k < n; k++) {
        pk_item_t *it = &p->items[k];
        int st = atomic_load_explicit(&it->state, memory_order_acquire);
        bool done = it->done || done1[k] || done2[k];
        if (st != PK_ASSIGNED) {
            unassigned++;
            continue;
        }
        if (done)
            completed++;
        if (it->log_count > 1) {
            dup++;
            pk_fail(p, "%s was completed %u times (work logs)", it->id, it->log_count);
        }
        if (done && it->log_count == 0)
            unlogged++; /* accepted just before its host was killed, before the log line */
        if (!done && it->log_count > 0)
            pk_fail(p, "%s: a completion was accepted (work log) but there is no done record",
                    it->id);
        if (!done && !present1[k] && !present2[k]) {
            lost++;
            pk_fail(p, "%s is lost: neither completed nor held by any coordinator (given to %s)",
                    it->id, it->owner >= 0 ? p->coords[it->owner].id : "?");
        } else if (!done) {
            pending++;
        }
    }
    if (pending)
        pk_fail(p, "%zu work items were still held, not completed, after the grace period",
                pending);
    if (unlogged)
        chaos_detail(&p->out,
                     "%zu completions have a done record but no work-log line (their "
                     "host was killed in between)",
                     unlogged);
    free(present1);
    free(present2);
    free(done1);
    free(done2);

    /* Recoveries, in ms. */
    uint64_t *rec = calloc(p->ncoords + 1, sizeof *rec);
    if (rec == NULL)
        abort();
    size_t nrec = 0, killed = 0, spawned = 0, unrecovered = 0;
    uint64_t last_rec = 0;
    for (size_t i = 0; i < p->ncoords; i++) {
        pk_coord_t *c = &p->coords[i];
        spawned += c->alive_at != 0;
        if (!c->killed_at)
            continue;
        if (c->ghost) { /* its kill is its predecessor's; only its recovery must happen */
            if (!c->recovered_at && ++unrecovered <= 5)
                pk_fail(p, "%s (a replacement that died at once) was not recovered", c->id);
            continue;
        }
        killed++;
        if (c->recovered_at) {
            rec[nrec++] = c->recovered_at - c->killed_at;
            if (c->recovered_at > last_rec)
                last_rec = c->recovered_at;
        } else if (++unrecovered <= 5) {
            pk_fail(p, "%s (killed at %.1f s) was not recovered: %s", c->id,
                    (double)(c->killed_at - p->t0) / 1000.0,
                    c->succ < 0        ? "no replacement came alive"
                    : c->clear_at == 0 ? "work items are still held under its id"
                                       : "its replacement never came alive");
        }
    }
    if (unrecovered > 5)
        pk_fail(p, "... and %zu more coordinators were not recovered", unrecovered - 5);
    uint64_t max_rec = 0;
    for (size_t i = 0; i < nrec; i++)
        max_rec = rec[i] > max_rec ? rec[i] : max_rec;
    uint64_t p95 = chaos_percentile(rec, nrec, 95), p50 = chaos_percentile(rec, nrec, 50);
    free(rec);

    /* Uptime over the slots, to the end of the chaos or the last recovery, whichever is later. */
    uint64_t w = p->chaos_end > last_rec ? p->chaos_end : last_rec;
    if (unrecovered || w > p->end || w == 0)
        w = p->end;
    chaos_timeline_t tl;
    memset(&tl, 0, sizeof tl);
    snprintf(tl.title, sizeof tl.title, "blockcoord chaos process-kill: %u hosts x %u, %u s",
             p->o.hosts, p->o.per_host, p->o.duration_s);
    tl.t0 = p->t0;
    tl.t1 = w > p->t0 ? w : p->t0 + 1;
    uint64_t alive = 0, total = 0;
    int *roots = calloc(p->ncoords + 1, sizeof *roots);
    size_t nroots = 0;
    if (roots == NULL)
        abort();
    for (size_t i = 0; i < p->ncoords; i++)
        if (p->coords[i].pred < 0 && p->coords[i].alive_at)
            roots[nroots++] = (int)i;
    sort_p = p;
    qsort(roots, nroots, sizeof *roots, by_id);
    for (size_t ri = 0; ri < nroots; ri++) {
        size_t i = (size_t)roots[ri];
        char label[160];
        size_t at = (size_t)snprintf(label, sizeof label, "%s", p->coords[i].id);
        for (int s = p->coords[i].succ; s >= 0 && at < sizeof label; s = p->coords[s].succ) {
            const char *suffix = p->coords[s].id + strlen(p->coords[i].id);
            at += (size_t)snprintf(
                label + at, sizeof label - at, " → %s",
                strncmp(p->coords[s].id, p->coords[i].id, strlen(p->coords[i].id)) == 0
                    ? suffix
                    : p->coords[s].id);
        }
        walk_slot(p, (int)i, w, &alive, &total, chaos_tl_row(&tl, label));
    }
    free(roots);
    double uptime = total ? 100.0 * (double)alive / (double)total : 0;
    uptime = floor(uptime * 100.0) / 100.0; /* never round up to a target */
    size_t kills = 0;
    for (size_t k = 0; k < p->nkills; k++) {
        const pk_proc_t *pr = &p->procs[p->kills[k].proc];
        char label[96];
        snprintf(label, sizeof label, "%s %s", pr->unexpected ? "died" : "kill", pr->prefix);
        chaos_tl_mark(&tl, p->kills[k].t, label);
        kills += !pr->unexpected;
    }
    if (kills == 0 && !p->interrupted && p->nfail == 0)
        pk_fail(p,
                "no kill happened: the run (%u s) ended before the first kill (every %u s "
                "± 50 %%)",
                p->o.duration_s, p->o.kill_interval_s);
    bool up_ok = uptime >= p->o.min_uptime, p95_ok = p95 <= p->o.max_p95_ms;
    if (!up_ok)
        pk_fail(p, "uptime %.2f %% is below the target %.2f %%", uptime, p->o.min_uptime);
    if (!p95_ok)
        pk_fail(p, "P95 recovery time %llu ms is above the target %llu ms", (unsigned long long)p95,
                (unsigned long long)p->o.max_p95_ms);
    bool passed = p->nfail == 0;

    uint64_t chaos_len = (p->end < p->chaos_end ? p->end : p->chaos_end) - p->t0;
    json_t *res = json_object();
    json_object_set_new(res, "test", json_string("process-kill"));
    json_object_set_new(res, "duration_seconds",
                        json_integer((json_int_t)((chaos_len + 500) / 1000)));
    json_object_set_new(res, "coordinators_spawned", json_integer((json_int_t)spawned));
    json_object_set_new(res, "kills", json_integer((json_int_t)kills));
    json_object_set_new(res, "recoveries", json_integer((json_int_t)nrec));
    json_object_set_new(res, "uptime_percentage", json_real(uptime));
    json_object_set_new(res, "max_recovery_time_ms", json_integer((json_int_t)max_rec));
    json_object_set_new(res, "p95_recovery_time_ms", json_integer((json_int_t)p95));
    json_object_set_new(res, "p50_recovery_time_ms", json_integer((json_int_t)p50));
    json_object_set_new(res, "work_items", json_integer((json_int_t)n));
    json_object_set_new(res, "work_completed", json_integer((json_int_t)completed));
    json_object_set_new(res, "work_lost", json_integer((json_int_t)lost));
    json_object_set_new(res, "work_duplicated", json_integer((json_int_t)dup));
    json_t *fl = json_array();
    for (size_t i = 0; i < p->nfail; i++)
        json_array_append_new(fl, json_string(p->failures[i]));
    json_object_set_new(res, "failures", fl);
    json_object_set_new(res, "status", json_string(passed ? "passed" : "failed"));
    char *text = json_dumps(res, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(res);
    if (text == NULL)
        abort();
    char path[1200], err[1300];
    snprintf(path, sizeof path, "%s/results.json", p->o.out);
    size_t tlen = strlen(text);
    char *withnl = malloc(tlen + 2);
    if (withnl == NULL)
        abort();
    memcpy(withnl, text, tlen);
    memcpy(withnl + tlen, "\n", 2);
    int wrc = chaos_write_file(path, withnl, err, sizeof err);
    free(withnl);
    if (wrc != 0) {
        fprintf(stderr, "blockcoord chaos process-kill: %s\n", err);
        passed = false;
    }
    snprintf(path, sizeof path, "%s/timeline.html", p->o.out);
    if (chaos_tl_write(&tl, path, text, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord chaos process-kill: %s\n", err);
        passed = false;
    }
    chaos_tl_free(&tl);

    chaos_event(&p->out, "Chaos test complete");
    printf("Results:\n"
           "  - Total coordinators spawned: %zu\n"
           "  - Total kills: %zu (%zu coordinators taken down)\n"
           "  - Total recoveries: %zu\n"
           "  - Uptime: %.2f%% (target: >=%.2f%%) %s\n"
           "  - Max recovery time: %.1fs\n"
           "  - P95 recovery time: %.1fs (target: <=%.1fs) %s\n"
           "  - P50 recovery time: %.1fs\n"
           "  - Work items: %zu, completed %zu, lost %zu, duplicated %zu %s\n",
           spawned, kills, killed, nrec, uptime, p->o.min_uptime, mark(up_ok),
           (double)max_rec / 1000.0, (double)p95 / 1000.0, (double)p->o.max_p95_ms / 1000.0,
           mark(p95_ok), (double)p50 / 1000.0, n, completed, lost, dup,
           mark(lost == 0 && dup == 0 && completed + unassigned == n));
    for (size_t i = 0; i < p->nfail && i < 20; i++)
        printf("  FAILURE: %s\n", p->failures[i]);
    if (p->nfail > 20)
        printf("  ... %zu more failures in %s/results.json\n", p->nfail - 20, p->o.out);
    printf("  - Status: %s\n  results: %s/results.json\n  timeline: %s/timeline.html\n",
           passed ? "passed" : "FAILED", p->o.out, p->o.out);
    fflush(stdout);
    free(text);
    return passed ? 0 : 1;
}
