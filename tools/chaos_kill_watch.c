/* chaos_kill_watch.c - what process-kill sees in Redis, one tick at a time: the registry (a
 * new coordinator's heartbeat names its process; its coordinator:spawn:<id> record names the
 * coordinator it replaces), the dead channel, and every work item and done record of the swarm.
 * From those it decides when a killed coordinator has recovered: its replacement is alive and
 * no item is left under its id.
 *
 * Key decision: a coordinator table with an id hash (the registry is read every 50 ms and may
 * hold thousands of ids) and slot chains through pred/succ indexes, so a replacement of a
 * replacement stays in its slot.
 */
#include "chaos_kill.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- tables */

static uint64_t id_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int pk_coord_find(const pk_t *p, const char *id)
{
    if (p->map_cap == 0)
        return -1;
    for (size_t i = id_hash(id) & (p->map_cap - 1);; i = (i + 1) & (p->map_cap - 1)) {
        int v = p->map[i];
        if (v == 0)
            return -1;
        if (strcmp(p->coords[v - 1].id, id) == 0)
            return v - 1;
    }
}

static void map_put(pk_t *p, int idx)
{
    for (size_t i = id_hash(p->coords[idx].id) & (p->map_cap - 1);; i = (i + 1) & (p->map_cap - 1))
        if (p->map[i] == 0) {
            p->map[i] = idx + 1;
            return;
        }
}

static int coord_add(pk_t *p, const char *id)
{
    if ((p->ncoords + 1) * 2 > p->map_cap) {
        free(p->map);
        p->map_cap = p->map_cap ? p->map_cap * 2 : 1024;
        p->map = calloc(p->map_cap, sizeof *p->map);
        if (p->map == NULL)
            abort();
        for (size_t i = 0; i < p->ncoords; i++)
            map_put(p, (int)i);
    }
    if (p->ncoords == p->ccap) {
        p->ccap = p->ccap ? p->ccap * 2 : 256;
        p->coords = realloc(p->coords, p->ccap * sizeof *p->coords);
        if (p->coords == NULL)
            abort();
    }
    int i = (int)p->ncoords++;
    pk_coord_t *c = &p->coords[i];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    c->root = i;
    c->pred = c->succ = c->proc = c->kill = -1;
    map_put(p, i);
    return i;
}

int pk_proc_by_pid(const pk_t *p, long pid)
{
    for (size_t i = 0; i < p->nprocs; i++)
        if (p->procs[i].pid == pid)
            return (int)i;
    return -1;
}

/* ---------------------------------------------------------------- observing Redis */

static json_t *get_json(pk_t *p, const char *fmt, const char *id)
{
    redisReply *r = chaos_redis_cmd(&p->redis, fmt, id);
    json_t *v = NULL;
    if (r && r->type == REDIS_REPLY_STRING)
        v = json_loadb(r->str, r->len, 0, NULL);
    if (r)
        freeReplyObject(r);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static uint64_t json_u64(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* Put coordinator i in the slot of pi, which it replaces. A coordinator is replaced once: a
 * second replacement while the first is alive means two reapers escalated the same death
 * (PROTOCOL §4.5: exactly one handles it), a failure. After the first replacement died with
 * its host, a reaper that takes over the unfinished escalation may legitimately spawn another;
 * that one starts a slot of its own here. */
static void link_slot(pk_t *p, int pi, int i)
{
    pk_coord_t *pred = &p->coords[pi], *c = &p->coords[i];
    if (pred->succ < 0) {
        c->pred = pi;
        c->root = pred->root;
        pred->succ = i;
        return;
    }
    const pk_coord_t *first = &p->coords[pred->succ];
    if (first->killed_at == 0)
        pk_fail(p, "%s was replaced twice, by %s and by %s: two reapers escalated its death",
                pred->id, first->id, c->id);
    else
        chaos_detail(&p->out, "%s replaces %s again (its first replacement %s died)", c->id,
                     pred->id, first->id);
}

/* The coordinator that a spawn record says was replaced, as a table index. Usually it is
 * known. If not, it was a replacement that came and died between two polls (spawned in a
 * process killed before its first heartbeat was read): it is made up from its own spawn record
 * as a *ghost*, alive from its spawn until its successor `next_alive`, so that the slot's chain
 * stays whole. -1 if the id is no replacement at all. */
static int resolve_pred(pk_t *p, const char *id, uint64_t next_alive, int depth)
{
    int i = pk_coord_find(p, id);
    if (i >= 0 || depth > 32)
        return i;
    json_t *sp = get_json(p, "GET coordinator:spawn:%s", id);
    if (sp == NULL)
        return -1;
    uint64_t ts = json_u64(sp, "timestamp");
    const char *pred = json_string_value(json_object_get(sp, "replacesCoordinatorId"));
    char pbuf[BC_COORD_ID_MAX + 1] = "";
    if (pred && strlen(pred) <= BC_COORD_ID_MAX)
        strcpy(pbuf, pred);
    json_decref(sp);
    int pi = pbuf[0] ? resolve_pred(p, pbuf, ts ? ts : next_alive, depth + 1) : -1;
    i = coord_add(p, id);
    pk_coord_t *c = &p->coords[i];
    c->ghost = true;
    c->alive_at = ts && ts < next_alive ? ts : next_alive;
    c->killed_at = next_alive;
    if (pi >= 0)
        link_slot(p, pi, i);
    chaos_detail(&p->out, "ghost %s: replaced %s, died before its heartbeat was read", id,
                 pbuf[0] ? pbuf : "?");
    return i;
}

/* A coordinator of ours appeared in the registry: learn its process and its place in a slot. */
static int discover(pk_t *p, const char *id)
{
    json_t *hb = get_json(p, "GET blocking:heartbeat:%s", id);
    if (hb == NULL)
        return -1; /* no heartbeat to read yet (or any more): try again next tick */
    uint64_t ts = json_u64(hb, "timestamp"), seq = json_u64(hb, "sequence");
    long pid = (long)json_u64(hb, "pid");
    json_decref(hb);
    uint64_t back = seq > 1 ? (seq - 1) * p->o.hb_ms : 0; /* heartbeats we did not see */
    uint64_t alive_at = ts > back ? ts - back : ts;
    int proc = pk_proc_by_pid(p, pid);
    if (proc >= 0 && alive_at < p->procs[proc].started_at)
        alive_at = p->procs[proc].started_at;
    char pred[BC_COORD_ID_MAX + 1] = "";
    json_t *sp = get_json(p, "GET coordinator:spawn:%s", id);
    if (sp) {
        const char *s = json_string_value(json_object_get(sp, "replacesCoordinatorId"));
        if (s && strlen(s) <= BC_COORD_ID_MAX)
            strcpy(pred, s);
        json_decref(sp);
    }
    int pi = pred[0] ? resolve_pred(p, pred, alive_at, 0) : -1;
    int i = coord_add(p, id);
    pk_coord_t *c = &p->coords[i];
    c->alive_at = alive_at;
    c->proc = proc;
    if (pi >= 0)
        link_slot(p, pi, i);
    else if (pred[0])
        chaos_detail(&p->out, "%s replaces %s, which is not in a slot of this run", id, pred);
    c = &p->coords[i];
    if (c->proc >= 0 && p->procs[c->proc].killed_at) {
        /* Spawned in a process that has died since: it died with it. */
        pk_proc_t *pr = &p->procs[c->proc];
        c->killed_at = pr->killed_at;
        for (size_t k = 0; k < p->nkills; k++)
            if (p->kills[k].proc == c->proc) {
                c->kill = (int)k;
                p->kills[k].coords++;
            }
        c->unexpected = pr->unexpected;
    }
    chaos_detail(&p->out, "alive %s (pid %ld)%s%s", id, pid, c->pred >= 0 ? ", replaces " : "",
                 c->pred >= 0 ? p->coords[c->pred].id : "");
    return i;
}

void pk_scan_registry(pk_t *p)
{
    redisReply *r = chaos_redis_cmd(&p->redis, "ZRANGE blocking:registry 0 -1 WITHSCORES");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return;
    }
    size_t tl = strlen(p->tag);
    for (size_t k = 0; k + 1 < r->elements; k += 2) {
        const char *id = r->element[k]->str;
        if (id == NULL || strncmp(id, p->tag, tl) != 0 || id[tl] != '-' ||
            strlen(id) > BC_COORD_ID_MAX)
            continue;
        int i = pk_coord_find(p, id);
        if (i < 0)
            i = discover(p, id);
        if (i >= 0)
            p->coords[i].last_hb = strtoull(r->element[k + 1]->str, NULL, 10);
    }
    freeReplyObject(r);
}

void pk_on_dead(void *arg, const char *channel, const char *payload, size_t len)
{
    pk_t *p = arg;
    (void)channel;
    json_t *v = json_loadb(payload, len, 0, NULL);
    const char *id = v ? json_string_value(json_object_get(v, "deadCoordinatorId")) : NULL;
    int i = id ? pk_coord_find(p, id) : -1;
    if (i >= 0) {
        pk_coord_t *c = &p->coords[i];
        uint64_t ts = json_u64(v, "timestamp");
        c->detected_at = ts ? ts : pk_now(p);
        if (c->killed_at == 0 && !c->false_death) {
            c->false_death = true;
            pk_fail(p, "%s was declared dead while its process was running", c->id);
            chaos_event(&p->out, "FALSE DEATH: %s declared dead while its process ran", c->id);
        } else {
            chaos_detail(&p->out, "dead detected: %s, %.2f s after its kill", c->id,
                         (double)(c->detected_at - c->killed_at) / 1000.0);
        }
    } else if (id) {
        chaos_detail(&p->out, "dead detected: %s (not one of ours, or never seen alive)", id);
    }
    json_decref(v);
}

typedef struct {
    pk_t *p;
    size_t done_len, item_len;
    char done_prefix[96], item_prefix[96];
} scan_ctx_t;

static int item_index(const pk_t *p, const char *wid)
{
    if (wid[0] != 'w' || wid[1] < '0' || wid[1] > '9')
        return -1;
    char *end;
    unsigned long k = strtoul(wid + 1, &end, 10);
    return *end == '\0' && k >= 1 && k <= p->o.work_items ? (int)k - 1 : -1;
}

static void on_work_key(void *arg, const char *key, size_t len)
{
    scan_ctx_t *s = arg;
    pk_t *p = s->p;
    if (len > s->done_len && strncmp(key, s->done_prefix, s->done_len) == 0) {
        int k = item_index(p, key + s->done_len);
        if (k >= 0)
            p->items[k].done = true;
        return;
    }
    if (len <= s->item_len || strncmp(key, s->item_prefix, s->item_len) != 0)
        return;
    const char *rest = key + s->item_len, *colon = strrchr(rest, ':');
    if (colon == NULL || (size_t)(colon - rest) > BC_COORD_ID_MAX)
        return;
    char owner[BC_COORD_ID_MAX + 1];
    memcpy(owner, rest, (size_t)(colon - rest));
    owner[colon - rest] = '\0';
    int k = item_index(p, colon + 1), o = pk_coord_find(p, owner);
    if (k >= 0) {
        p->items[k].present = true;
        p->items[k].seen_owner = o;
    }
    if (o >= 0)
        p->coords[o].items_now++;
}

/* One SCAN of coordinator:work:*. Returns 0 with every item's present/done and every
 * coordinator's items_now refreshed, or -EIO (then nothing is trusted this tick). */
int pk_scan_items(pk_t *p)
{
    scan_ctx_t s = {.p = p};
    s.done_len = (size_t)snprintf(s.done_prefix, sizeof s.done_prefix,
                                  "coordinator:work:done:%s:", p->swarm);
    s.item_len =
        (size_t)snprintf(s.item_prefix, sizeof s.item_prefix, "coordinator:work:%s:", p->swarm);
    for (size_t i = 0; i < p->ncoords; i++)
        p->coords[i].items_now = 0;
    for (unsigned k = 0; k < p->o.work_items; k++)
        p->items[k].present = false, p->items[k].seen_owner = -1;
    if (chaos_redis_scan(&p->redis, "coordinator:work:*", on_work_key, &s) < 0)
        return -EIO;
    return 0;
}

void pk_check_recoveries(pk_t *p, uint64_t scanned_at)
{
    for (size_t i = 0; i < p->ncoords; i++) {
        pk_coord_t *c = &p->coords[i];
        if (c->killed_at == 0 || c->recovered_at)
            continue;
        if (c->items_now == 0 && c->clear_at == 0 && scanned_at > c->killed_at)
            c->clear_at = scanned_at;
        if (c->clear_at == 0 || c->succ < 0 || p->coords[c->succ].alive_at == 0)
            continue;
        uint64_t a = p->coords[c->succ].alive_at;
        c->recovered_at = a > c->clear_at ? a : c->clear_at;
        uint64_t ms = c->recovered_at - c->killed_at;
        chaos_detail(&p->out, "recovered %s -> %s in %llu ms", c->id, p->coords[c->succ].id,
                     (unsigned long long)ms);
        if (c->kill >= 0) {
            pk_kill_t *k = &p->kills[c->kill];
            k->recovered++;
            if (ms > k->max_recovery_ms)
                k->max_recovery_ms = ms;
        }
    }
    for (size_t k = 0; k < p->nkills; k++) {
        pk_kill_t *kl = &p->kills[k];
        if (kl->announced || kl->recovered < kl->coords || kl->coords == 0)
            continue;
        kl->announced = true;
        chaos_event(&p->out, "%s: %u/%u coordinators replaced, their work moved (slowest %.1f s)",
                    p->procs[kl->proc].prefix, kl->recovered, kl->coords,
                    (double)kl->max_recovery_ms / 1000.0);
    }
}
