/* chaos_restart_report.c - the verdict of a redis-restart run: per ring link, what was
 * accepted, delivered, reported failed, repeated; heartbeat resumption per restart; survivors;
 * then results.json, timeline.html (a row for Redis itself, one per coordinator) and the
 * summary on stdout.
 */
#include "chaos_restart.h"

#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ---------------------------------------------------------------- the verdict */

int rr_report(rr_t *r)
{
    uint64_t sent = 0, delivered = 0, failed = 0, dups = 0, lost = 0, reordered = 0, foreign = 0;
    for (unsigned i = 0; i < r->ring; i++) {
        ring_node_t *n = &r->nodes[i], *to = &r->nodes[(i + 1) % r->ring];
        uint64_t s = atomic_load_explicit(&n->sent, memory_order_relaxed),
                 f = atomic_load_explicit(&n->send_failed, memory_order_relaxed),
                 d = atomic_load_explicit(&to->delivered, memory_order_relaxed);
        sent += s;
        failed += f;
        delivered += d;
        dups += atomic_load_explicit(&to->dups, memory_order_relaxed);
        reordered += atomic_load_explicit(&to->reordered, memory_order_relaxed);
        foreign += atomic_load_explicit(&to->foreign, memory_order_relaxed);
        uint64_t missing = s > d ? s - d : 0, link_lost = missing > f ? missing - f : 0;
        if (link_lost) {
            size_t shown = 0;
            char list[200] = "";
            for (uint64_t k = 1; k <= s && k < to->seen_cap && shown < 8; k++)
                if (to->seen[k] == 0)
                    shown +=
                        (size_t)snprintf(list + strlen(list), sizeof list - strlen(list), "%s%llu",
                                         shown ? "," : "", (unsigned long long)k) > 0;
            rr_fail(r,
                    "%s -> %s: %llu signals lost (accepted, not reported failed, never "
                    "delivered; missing seq %s%s)",
                    n->id, to->id, (unsigned long long)link_lost, list,
                    missing > shown ? ",..." : "");
        }
        lost += link_lost;
    }
    if (dups)
        rr_fail(r, "%llu signals were delivered twice", (unsigned long long)dups);
    if (foreign)
        rr_fail(r, "%llu ring signals came from the wrong sender or out of range",
                (unsigned long long)foreign);
    uint64_t worst = 0;
    for (size_t k = 0; k < r->nrestarts; k++) {
        rr_restart_t *x = &r->restarts[k];
        if (!x->complete) {
            for (size_t i = 0; i < r->nwatch; i++)
                if (r->watch[i].resume_at[k] == 0) {
                    rr_fail(r, "restart %zu: %s never heartbeat again", k + 1, r->watch[i].id);
                    break;
                }
        } else if (k + 1 < r->nrestarts &&
                   x->up_at + x->resumed_ms > r->restarts[k + 1].killed_at) {
            rr_fail(r, "restart %zu: heartbeats resumed only after the next restart", k + 1);
        }
        worst = x->resumed_ms > worst ? x->resumed_ms : worst;
    }
    if (worst > r->max_resume_ms)
        rr_fail(r, "heartbeats resumed %llu ms after Redis came back (limit %llu ms)",
                (unsigned long long)worst, (unsigned long long)r->max_resume_ms);
    uint64_t now = chaos_wall_ms();
    for (size_t i = 0; i < r->nwatch; i++) {
        rr_watch_t *w = &r->watch[i];
        if (w->last_ts + 5 * r->hb_ms + 2000 < now)
            rr_fail(r, "%s did not survive: its last heartbeat is %.1f s old", w->id,
                    (double)(now - w->last_ts) / 1000.0);
        redisReply *e = chaos_redis_cmd(&r->redis, "EXISTS coordinator:escalation:%s", w->id);
        if (e && e->type == REDIS_REPLY_INTEGER && e->integer == 1)
            rr_fail(r, "%s was declared dead by a reaper", w->id);
        if (e)
            freeReplyObject(e);
    }
    for (unsigned h = 0; h < r->hosts; h++) {
        int st;
        if (waitpid(r->host_pids[h], &st, WNOHANG) == r->host_pids[h]) {
            char how[96];
            rr_fail(r, "host %s-h%u %s during the run", r->tag, h,
                    chaos_describe_status(st, how, sizeof how));
            r->host_pids[h] = 0;
        }
    }
    for (unsigned h = 0; h < r->hosts; h++) {
        if (r->host_pids[h] <= 0)
            continue;
        int st = chaos_stop_child(r->host_pids[h], SIGTERM, 5000);
        r->host_pids[h] = 0;
        char how[96], tail[1200], path[1200];
        snprintf(path, sizeof path, "%s/logs/%s-h%u.err", r->out, r->tag, h);
        if (!(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0))
            rr_fail(r, "host %s-h%u %s when stopped with SIGTERM%s", r->tag, h,
                    chaos_describe_status(st, how, sizeof how),
                    chaos_tail(path, 5, tail, sizeof tail));
    }
    if (r->nrestarts == 0 && !r->interrupted && r->nfail == 0)
        rr_fail(r, "no restart happened: --duration %u s is too short for --interval %u s",
                r->duration_s, r->interval_s);
    bool passed = r->nfail == 0;

    uint64_t max_down = 0;
    for (size_t k = 0; k < r->nrestarts; k++) {
        uint64_t d = r->restarts[k].up_at - r->restarts[k].killed_at;
        max_down = d > max_down ? d : max_down;
    }
    json_t *res = json_object();
    json_object_set_new(res, "test", json_string("redis-restart"));
    json_object_set_new(res, "duration_seconds",
                        json_integer((json_int_t)((r->end - r->t0 + 500) / 1000)));
    json_object_set_new(res, "restarts", json_integer((json_int_t)r->nrestarts));
    json_object_set_new(res, "coordinators", json_integer((json_int_t)r->nwatch));
    json_object_set_new(res, "signals_sent", json_integer((json_int_t)sent));
    json_object_set_new(res, "signals_delivered", json_integer((json_int_t)delivered));
    json_object_set_new(res, "signals_lost", json_integer((json_int_t)lost));
    json_object_set_new(res, "signals_duplicated", json_integer((json_int_t)dups));
    json_object_set_new(res, "send_failures", json_integer((json_int_t)failed));
    json_object_set_new(res, "signals_out_of_order", json_integer((json_int_t)reordered));
    json_object_set_new(res, "max_heartbeat_resume_ms", json_integer((json_int_t)worst));
    json_object_set_new(res, "max_redis_down_ms", json_integer((json_int_t)max_down));
    json_t *fl = json_array();
    for (size_t i = 0; i < r->nfail; i++)
        json_array_append_new(fl, json_string(r->failures[i]));
    json_object_set_new(res, "failures", fl);
    json_object_set_new(res, "status", json_string(passed ? "passed" : "failed"));
    char *text = json_dumps(res, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(res);
    if (text == NULL)
        abort();
    char path[1200], err[1300], *withnl = malloc(strlen(text) + 2);
    if (withnl == NULL)
        abort();
    sprintf(withnl, "%s\n", text);
    snprintf(path, sizeof path, "%s/results.json", r->out);
    if (chaos_write_file(path, withnl, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord chaos redis-restart: %s\n", err);
        passed = false;
    }
    free(withnl);

    chaos_timeline_t tl;
    memset(&tl, 0, sizeof tl);
    snprintf(tl.title, sizeof tl.title, "blockcoord chaos redis-restart: %u s, every %u s",
             r->duration_s, r->interval_s);
    tl.t0 = r->t0;
    tl.t1 = r->end > r->t0 ? r->end : r->t0 + 1;
    chaos_row_t *row = chaos_tl_row(&tl, "redis-server");
    uint64_t t = r->t0;
    for (size_t k = 0; k < r->nrestarts; k++) {
        rr_restart_t *x = &r->restarts[k];
        chaos_tl_seg(row, t, x->killed_at, CHAOS_SEG_ALIVE, "up");
        chaos_tl_seg(row, x->killed_at, x->up_at, CHAOS_SEG_DOWN, "SIGKILLed");
        t = x->up_at;
        char label[64];
        snprintf(label, sizeof label, "restart %zu", k + 1);
        chaos_tl_mark(&tl, x->killed_at, label);
    }
    chaos_tl_seg(row, t, tl.t1, CHAOS_SEG_ALIVE, "up");
    for (size_t i = 0; i < r->nwatch; i++) {
        row = chaos_tl_row(&tl, r->watch[i].id);
        t = r->t0;
        for (size_t k = 0; k < r->nrestarts; k++) {
            rr_restart_t *x = &r->restarts[k];
            uint64_t back = r->watch[i].resume_at[k] ? r->watch[i].resume_at[k] : tl.t1;
            char note[96];
            snprintf(note, sizeof note, "no heartbeat until %.2f s after Redis was back",
                     back > x->up_at ? (double)(back - x->up_at) / 1000.0 : 0.0);
            chaos_tl_seg(row, t, x->killed_at, CHAOS_SEG_ALIVE, "heartbeating");
            chaos_tl_seg(row, x->killed_at, back, CHAOS_SEG_DEAD, note);
            t = back;
        }
        chaos_tl_seg(row, t, tl.t1, CHAOS_SEG_ALIVE, "heartbeating");
    }
    snprintf(path, sizeof path, "%s/timeline.html", r->out);
    if (chaos_tl_write(&tl, path, text, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord chaos redis-restart: %s\n", err);
        passed = false;
    }
    chaos_tl_free(&tl);
    free(text);

    chaos_event(&r->o, "Chaos test complete");
    printf("Results:\n"
           "  - Redis restarts: %zu (down up to %.1fs each)\n"
           "  - Coordinators: %zu (%u in the ring, %u hosts x %u)\n"
           "  - Signals: %llu sent, %llu delivered, %llu lost, %llu duplicated, %llu send "
           "failures reported %s\n"
           "  - Heartbeats resumed within %.2fs of Redis answering (limit %.1fs) %s\n",
           r->nrestarts, (double)max_down / 1000.0, r->nwatch, r->ring, r->hosts, r->per_host,
           (unsigned long long)sent, (unsigned long long)delivered, (unsigned long long)lost,
           (unsigned long long)dups, (unsigned long long)failed, lost == 0 && dups == 0 ? "✅" : "❌",
           (double)worst / 1000.0, (double)r->max_resume_ms / 1000.0,
           worst <= r->max_resume_ms ? "✅" : "❌");
    for (size_t i = 0; i < r->nfail && i < 20; i++)
        printf("  FAILURE: %s\n", r->failures[i]);
    printf("  - Status: %s\n  results: %s/results.json\n  timeline: %s/timeline.html\n",
           passed ? "passed" : "FAILED", r->out, r->out);
    fflush(stdout);
    return passed ? 0 : 1;
}
