/* reaper.c - the reaper actor: dead-coordinator detection, escalation, replacement, work
 * transfer and cleanup (PROTOCOL §4.4-4.6). One per hub; every process runs one.
 *
 * A cycle (every scan_ms, or bc_hub_reap_now):
 *  1. ZRANGEBYSCORE blocking:registry -inf <start-1>: coordinators registered before the scan
 *     began, so a key created during the scan cannot look "expired";
 *  2. SCAN MATCH blocking:heartbeat:* with MGET per page, and SCAN MATCH coordinator:activity:*
 *     with MGET per page, both pipelined on the actor's connection. Heartbeats are read with a
 *     fixed-shape scanner (timestamp, else lastHeartbeat: both Node formats), so 100,000 of
 *     them cost tens of milliseconds; a value that does not scan is counted and skipped;
 *  3. stale = heartbeat older than stale_ms (Redis clock), or registered with no key. Each
 *     stale observation is a warning (INCR blocking:warning:<id>, EXPIRE 300) through a script
 *     that lets one warning per scan period through, whichever of the deployment's reapers
 *     sees it first: "the third warning" means three scan periods, however many processes
 *     watch. A fresh heartbeat of a coordinator this reaper saw stale clears its warnings;
 *  4. activity records older than the activity timeout are reported and deleted; the
 *     waits-for graph of the rest is searched for cycles (deadlocks), each reported once
 *     (SET coordinator:deadlock:<smallest id> NX EX 600).
 * A coordinator whose warning count reaches `warnings` is dead and escalated:
 *  E1. one script: SET coordinator:escalation:<id> NX EX 3600 and, if won, the lease
 *      coordinator:reaper-lease:<id> PX lease. Lost, but the lease is gone (neither held nor
 *      marked "done"): the winner died mid-way, so we take the lease and take over. Otherwise
 *      skip, after one round trip;
 *  E2. find the dead coordinator's items (SCAN MATCH coordinator:work:*:<id>:*), which also
 *      gives the swarm when no heartbeat said it (the escalation record is then rewritten);
 *  E3. pick <base>-r<k> with SET coordinator:spawn:<newId> NX EX 3600 and spawn it here (the
 *      hub's replacer);
 *  E4. move the items one by one (work.c's compare-and-move script), renewing the lease, and
 *      tell the replacement (BC_EV_WORK); then SCAN again for items assigned meanwhile;
 *  E5. PUBLISH swarm:<swarmId>:coordinator:dead;
 *  E6. clean up by exact key (bc__cleanup), SET cleanup:stats, mark the lease "done" for an
 *      hour (so that no late reaper takes over a finished escalation).
 * Replies of every command come back to this actor, in submission order, as bc__op_t tags.
 */
#include "hub.h"
#include "work.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCAN_COUNT "2000"
#define WARNING_TTL_S "300"
#define ACTIVITY_TIMEOUT_MS 300000u /* Node's CoordinatorTimeoutHandler threshold */
#define LEASE_MIN_MS 5000u
#define LEASE_MAX_MS 30000u
#define LEASE_DONE_MS "3600000"
#define MAX_REPLACEMENT 1000
#define SUSPECTS_MAX 100000 /* ids remembered as seen stale, to clear their warnings */

enum { BC__M_REAP_TIMER = 0xfffe0180u, BC__M_REAP_NOW };

/* One warning per scan period per coordinator, deployment-wide. KEYS: warning, gate.
 * ARGV: gate ms. Returns the warning count. */
static const char lua_warn[] = "if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then\n"
                               "  local n = redis.call('INCR', KEYS[1])\n"
                               "  redis.call('EXPIRE', KEYS[1], " WARNING_TTL_S ")\n"
                               "  return n\n"
                               "end\n"
                               "return tonumber(redis.call('GET', KEYS[1]) or '0')\n";

/* Claim an escalation, atomically with its lease. KEYS: escalation, lease. ARGV: the escalation
 * record, the lease owner, the lease ms. "won": the escalation is ours. "takeover": it existed
 * but its lease is gone (neither held nor marked done): the winner died mid-way. "lost":
 * someone holds it, or it is finished. One script, so no reaper can slip between the two. */
static const char lua_claim[] = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', 3600) then\n"
                                "  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])\n"
                                "  return 'won'\n"
                                "end\n"
                                "if redis.call('EXISTS', KEYS[2]) == 0 then\n"
                                "  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])\n"
                                "  return 'takeover'\n"
                                "end\n"
                                "return 'lost'\n";

/* Make room for one more element in a growable array (doubling; aborts on out-of-memory, as
 * the runtime's pools do). */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 16;
    void *a = realloc(arr, nc * elem);
    if (a == NULL)
        abort();
    *cap = nc;
    return a;
}

/* ---------------------------------------------------------------- a string map */

typedef struct {
    char **keys;
    uint32_t *vals;
    size_t cap, n;
} smap_t;

static uint64_t fnv(const char *s)
{
    uint64_t x = 1469598103934665603ull;
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 1099511628211ull;
    return x;
}

static void smap_free(smap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint32_t *smap_find(const smap_t *m, const char *k)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = fnv(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == NULL)
            return NULL;
        if (strcmp(m->keys[i], k) == 0)
            return &m->vals[i];
    }
}

static void smap_put(smap_t *m, const char *k, uint32_t v)
{
    if ((m->n + 1) * 2 > m->cap) {
        smap_t g = {.cap = m->cap ? m->cap * 2 : 64};
        g.keys = calloc(g.cap, sizeof *g.keys);
        g.vals = calloc(g.cap, sizeof *g.vals);
        if (g.keys == NULL || g.vals == NULL)
            abort();
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i] == NULL)
                continue;
            size_t j = fnv(m->keys[i]) & (g.cap - 1);
            while (g.keys[j])
                j = (j + 1) & (g.cap - 1);
            g.keys[j] = m->keys[i];
            g.vals[j] = m->vals[i];
            g.n++;
        }
        free(m->keys);
        free(m->vals);
        *m = g;
    }
    size_t i = fnv(k) & (m->cap - 1);
    for (; m->keys[i]; i = (i + 1) & (m->cap - 1))
        if (strcmp(m->keys[i], k) == 0) {
            m->vals[i] = v;
            return;
        }
    if ((m->keys[i] = strdup(k)) == NULL)
        abort();
    m->vals[i] = v;
    m->n++;
}

/* Removal by rebuilding is rare (suspects only): mark with a value instead. */

/* ---------------------------------------------------------------- state */

enum { HB_FRESH = 1, HB_STALE, HB_TERMINAL, HB_BAD };

typedef struct {
    char id[BC_ID_MAX + 1];
    char swarm[BC_ID_MAX + 1];
    char phase[64];
    bool expired; /* registered, no heartbeat key */
    uint64_t age_ms;
} stale_t;

typedef struct {
    char id[BC_ID_MAX + 1];
    char **waits; /* waitingFor */
    size_t nwaits;
} act_t;

typedef struct esc_s esc_t;

typedef struct reaper_s {
    bc_hub_t *h;
    bc_actor_t *self;
    bc_timer_t *timer;
    int warn_script, claim_script;
    uint32_t lease_ms;

    /* the cycle in flight */
    bool in_cycle, reg_done, hb_done, act_done, evaluated, again;
    int pending;
    uint64_t t0_ns, start_ms, keys_seen;
    smap_t seen; /* heartbeat id -> HB_* */
    char **reg;  /* registered before the scan */
    size_t nreg, capreg;
    stale_t *stale;
    size_t nstale, capstale;
    act_t *acts;
    size_t nacts, capacts;

    smap_t suspects; /* ids this reaper saw stale (1) and not fresh since */
    int escalating;  /* escalations in flight */
} reaper_t;

typedef enum {
    K_REG,
    K_SCAN_HB,
    K_SCAN_ACT,
    K_MGET_HB,
    K_MGET_ACT,
    K_WARN,
    K_NOOP,
    K_DEADLOCK,
} kind_t;

typedef struct {
    bc__op_t op;
    reaper_t *r;
    kind_t kind;
    char **ids; /* K_MGET_*: the ids, in MGET order */
    size_t n;
    stale_t st;     /* K_WARN */
    char text[512]; /* K_DEADLOCK: the cycle, for the log */
} cop_t;

static void say(bc_hub_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(bc_hub_t *h, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (h->reap_observer)
        h->reap_observer(h->reap_observer_arg, line);
    bc_log(BC_LOG_DEBUG, "reaper: %s", line);
}

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed); /* relaxed: statistics */
}

/* ---------------------------------------------------------------- ops plumbing */

static int op_submitted(bc_hub_t *h, int rc)
{
    if (rc == 0) /* relaxed: bc_hub_destroy polls it to let answers arrive */
        atomic_fetch_add_explicit(&h->ops_inflight, 1, memory_order_relaxed);
    return rc;
}

int bc__op_cmd(bc_hub_t *h, bc__op_t *op, int argc, const char *const *argv, const size_t *lens)
{
    if (h->reaper == NULL)
        return -ESHUTDOWN;
    return op_submitted(h, bc_redis_cmd(h->redis, h->reaper, (uint64_t)(uintptr_t)op,
                                        BC_REDIS_CLASS_OTHER, argc, argv, lens));
}

int bc__op_evalsha(bc_hub_t *h, bc__op_t *op, int script, int nkeys, int argc,
                   const char *const *argv, const size_t *lens)
{
    if (h->reaper == NULL)
        return -ESHUTDOWN;
    return op_submitted(h, bc_redis_evalsha(h->redis, h->reaper, (uint64_t)(uintptr_t)op,
                                            BC_REDIS_CLASS_OTHER, script, nkeys, argc, argv, lens));
}

static void cycle_reply(bc__op_t *op, const bc_redis_reply_msg_t *m);

static cop_t *cop_new(reaper_t *r, kind_t kind)
{
    cop_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        abort();
    o->op.fn = cycle_reply;
    o->op.h = r->h;
    o->r = r;
    o->kind = kind;
    return o;
}

static void cop_free(cop_t *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->ids[i]);
    free(o->ids);
    free(o);
}

/* Submit a cycle command; a refused submission counts as answered. */
static void cop_cmd(reaper_t *r, cop_t *o, int argc, const char *const *argv)
{
    r->pending++;
    if (bc__op_cmd(r->h, &o->op, argc, argv, NULL) != 0) {
        r->pending--;
        cop_free(o);
    }
}

static void noop_cmd(reaper_t *r, int argc, const char *const *argv)
{
    cop_cmd(r, cop_new(r, K_NOOP), argc, argv);
}

/* ---------------------------------------------------------------- parsing */

static const char *find_member(const char *s, const char *name)
{
    char pat[40];
    snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *p = strstr(s, pat);
    return p ? p + strlen(pat) : NULL;
}

static bool member_u64(const char *s, const char *name, uint64_t *out)
{
    const char *p = find_member(s, name);
    if (p == NULL || *p < '0' || *p > '9')
        return false;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (*end == '.') /* 1.7e12-style floats are not heartbeats we understand */
        return false;
    *out = v;
    return true;
}

static void member_str(const char *s, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    const char *p = find_member(s, name);
    if (p == NULL || *p != '"')
        return;
    p++;
    size_t i = 0;
    while (*p && *p != '"' && *p != '\\' && i + 1 < len)
        buf[i++] = *p++;
    buf[i] = '\0';
    if (*p != '"')
        buf[0] = '\0'; /* escaped or truncated: not an id we can use */
}

/* A heartbeat value: a JSON object with a numeric timestamp (or lastHeartbeat). */
static int parse_hb(const char *v, size_t len, uint64_t *ts, char *state, char *swarm, char *phase)
{
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\n'))
        len--;
    if (len < 2 || v[0] != '{' || v[len - 1] != '}')
        return -EBADMSG;
    if (!member_u64(v, "timestamp", ts) && !member_u64(v, "lastHeartbeat", ts))
        return -EBADMSG;
    member_str(v, "state", state, 16);
    member_str(v, "swarmId", swarm, BC_ID_MAX + 1);
    member_str(v, "phase", phase, 64);
    if (swarm[0] && !bc_coord_id_valid(NULL, swarm, NULL, 0))
        swarm[0] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- the cycle */

static void esc_start(reaper_t *r, const stale_t *st);
static void cycle_maybe_done(reaper_t *r);

static void cycle_reset(reaper_t *r)
{
    smap_free(&r->seen);
    for (size_t i = 0; i < r->nreg; i++)
        free(r->reg[i]);
    free(r->reg);
    r->reg = NULL;
    r->nreg = r->capreg = 0;
    free(r->stale);
    r->stale = NULL;
    r->nstale = r->capstale = 0;
    for (size_t i = 0; i < r->nacts; i++) {
        for (size_t j = 0; j < r->acts[i].nwaits; j++)
            free(r->acts[i].waits[j]);
        free(r->acts[i].waits);
    }
    free(r->acts);
    r->acts = NULL;
    r->nacts = r->capacts = 0;
}

static void busy_update(reaper_t *r)
{
    /* release: a caller polling bc__reap_busy then reads the stats. */
    atomic_store_explicit(&r->h->reap_busy, r->in_cycle || r->escalating > 0, memory_order_release);
}

static void cycle_start(reaper_t *r)
{
    /* acquire: bc_hub_destroy's release store; no new cycle once the hub is closing. */
    if (atomic_load_explicit(&r->h->reap_closing, memory_order_acquire))
        return;
    if (r->in_cycle) {
        r->again = true;
        return;
    }
    r->in_cycle = true;
    busy_update(r);
    r->reg_done = r->hb_done = r->act_done = r->evaluated = false;
    r->pending = 0;
    r->keys_seen = 0;
    r->t0_ns = bc_now_ns();
    r->start_ms = bc_hub_now_ms(r->h);
    say(r->h, "Scanning for stale coordinators...");
    char max[24];
    snprintf(max, sizeof max, "%llu", (unsigned long long)(r->start_ms - 1));
    const char *reg[] = {"ZRANGEBYSCORE", "blocking:registry", "-inf", max};
    cop_cmd(r, cop_new(r, K_REG), 4, reg);
    const char *s1[] = {"SCAN", "0", "MATCH", "blocking:heartbeat:*", "COUNT", SCAN_COUNT};
    cop_cmd(r, cop_new(r, K_SCAN_HB), 6, s1);
    const char *s2[] = {"SCAN", "0", "MATCH", "coordinator:activity:*", "COUNT", SCAN_COUNT};
    cop_cmd(r, cop_new(r, K_SCAN_ACT), 6, s2);
    if (r->pending < 3) { /* the Redis layer refused: nothing to wait for */
        r->reg_done = r->hb_done = r->act_done = true;
        cycle_maybe_done(r);
    }
}

static void add_stale(reaper_t *r, const char *id, const char *swarm, const char *phase,
                      bool expired, uint64_t age)
{
    r->stale = grow(r->stale, r->nstale, &r->capstale, sizeof *r->stale);
    stale_t *s = &r->stale[r->nstale++];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->swarm, sizeof s->swarm, "%s", swarm ? swarm : "");
    snprintf(s->phase, sizeof s->phase, "%s", phase ? phase : "");
    s->expired = expired;
    s->age_ms = age;
}

/* A SCAN page: MGET the ids found (prefix stripped and validated), then the next page. */
static void on_scan(reaper_t *r, cop_t *o, const bc_reply_t *rep)
{
    bool hb = o->kind == K_SCAN_HB;
    const char *prefix = hb ? "blocking:heartbeat:" : "coordinator:activity:";
    size_t plen = strlen(prefix);
    if (rep == NULL || rep->type != BC_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[1]->type != BC_REPLY_ARRAY) {
        if (hb)
            r->hb_done = true;
        else
            r->act_done = true;
        return;
    }
    const bc_reply_t *ks = rep->element[1];
    cop_t *g = cop_new(r, hb ? K_MGET_HB : K_MGET_ACT);
    g->ids = calloc(ks->elements ? ks->elements : 1, sizeof *g->ids);
    const char **argv = calloc(ks->elements + 1, sizeof *argv);
    if (g->ids == NULL || argv == NULL)
        abort();
    argv[0] = "MGET";
    for (size_t i = 0; i < ks->elements; i++) {
        const char *k = ks->element[i]->str;
        if (k == NULL || strncmp(k, prefix, plen) != 0)
            continue;
        r->keys_seen++;
        if (!bc_coord_id_valid(NULL, k + plen, NULL, 0)) {
            count(&r->h->n_reap_bad, 1);
            say(r->h, "Skipping %s: not a valid coordinator id", k);
            continue;
        }
        if ((g->ids[g->n] = strdup(k + plen)) == NULL)
            abort();
        argv[++g->n] = k;
    }
    if (g->n)
        cop_cmd(r, g, (int)g->n + 1, argv);
    else
        cop_free(g);
    free(argv);
    const char *cur = rep->element[0]->str ? rep->element[0]->str : "0";
    if (strcmp(cur, "0") == 0) {
        if (hb)
            r->hb_done = true;
        else
            r->act_done = true;
        return;
    }
    const char *next[] = {"SCAN",  cur,
                          "MATCH", hb ? "blocking:heartbeat:*" : "coordinator:activity:*",
                          "COUNT", SCAN_COUNT};
    cop_t *n = cop_new(r, o->kind);
    cop_cmd(r, n, 6, next);
}

static void on_mget_hb(reaper_t *r, cop_t *o, const bc_reply_t *rep)
{
    if (rep == NULL || rep->type != BC_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < rep->elements && i < o->n; i++) {
        const bc_reply_t *e = rep->element[i];
        const char *id = o->ids[i];
        if (e->type != BC_REPLY_STRING)
            continue; /* expired between SCAN and MGET: the registry check sees it */
        uint64_t ts = 0;
        char state[16], swarm[BC_ID_MAX + 1], phase[64];
        if (parse_hb(e->str, e->len, &ts, state, swarm, phase) != 0) {
            count(&r->h->n_reap_bad, 1);
            say(r->h, "Skipping heartbeat of %s: not a heartbeat we understand", id);
            smap_put(&r->seen, id, HB_BAD);
            continue;
        }
        if (strcmp(state, "completed") == 0 || strcmp(state, "timeout") == 0 ||
            strcmp(state, "stopping") == 0) {
            smap_put(&r->seen, id, HB_TERMINAL); /* finished, not dead */
            continue;
        }
        uint64_t age = r->start_ms > ts ? r->start_ms - ts : 0;
        if (age > r->h->opts.stale_ms) {
            smap_put(&r->seen, id, HB_STALE);
            say(r->h, "Found heartbeat: %s (stale, %llu ms old)", id, (unsigned long long)age);
            add_stale(r, id, swarm, phase, false, age);
        } else {
            smap_put(&r->seen, id, HB_FRESH);
            uint32_t *sus = smap_find(&r->suspects, id);
            if (sus && *sus) { /* alive again: its warnings go */
                *sus = 0;
                char key[BC_ID_MAX + 32];
                snprintf(key, sizeof key, "blocking:warning:%s", id);
                const char *argv[] = {"DEL", key};
                noop_cmd(r, 2, argv);
            }
        }
    }
}

static void on_mget_act(reaper_t *r, cop_t *o, const bc_reply_t *rep)
{
    if (rep == NULL || rep->type != BC_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < rep->elements && i < o->n; i++) {
        const bc_reply_t *e = rep->element[i];
        const char *id = o->ids[i];
        if (e->type != BC_REPLY_STRING)
            continue;
        json_t *v = json_loadb(e->str, e->len, 0, NULL);
        json_t *la = v ? json_object_get(v, "lastActivity") : NULL;
        if (!json_is_integer(la) || json_integer_value(la) <= 0) {
            count(&r->h->n_reap_bad, 1);
            say(r->h, "Skipping activity record of %s: no numeric lastActivity", id);
            json_decref(v);
            continue;
        }
        uint64_t last = (uint64_t)json_integer_value(la);
        uint64_t age = r->start_ms > last ? r->start_ms - last : 0;
        if (age > ACTIVITY_TIMEOUT_MS) {
            count(&r->h->n_activity_timeouts, 1);
            say(r->h, "Activity timeout: %s inactive for %llus (threshold: %us)", id,
                (unsigned long long)(age / 1000), ACTIVITY_TIMEOUT_MS / 1000);
            bc_log(BC_LOG_WARN, "coordinator %s inactive for %llu s (activity timeout)", id,
                   (unsigned long long)(age / 1000));
            char key[BC_ID_MAX + 32];
            snprintf(key, sizeof key, "coordinator:activity:%s", id);
            const char *argv[] = {"DEL", key};
            noop_cmd(r, 2, argv);
            json_decref(v);
            continue;
        }
        json_t *wf = json_object_get(v, "waitingFor");
        if (json_is_array(wf) && json_array_size(wf) > 0) {
            r->acts = grow(r->acts, r->nacts, &r->capacts, sizeof *r->acts);
            act_t *a = &r->acts[r->nacts++];
            memset(a, 0, sizeof *a);
            snprintf(a->id, sizeof a->id, "%s", id);
            a->waits = calloc(json_array_size(wf), sizeof *a->waits);
            if (a->waits == NULL)
                abort();
            size_t k;
            json_t *x;
            json_array_foreach(wf, k, x)
            {
                const char *s = json_string_value(x);
                if (s && bc_coord_id_valid(NULL, s, NULL, 0) &&
                    (a->waits[a->nwaits] = strdup(s)) != NULL)
                    a->nwaits++;
            }
        }
        json_decref(v);
    }
}

/* Wait cycles among activity records: iterative DFS, each back edge is a cycle. */
static void find_deadlocks(reaper_t *r)
{
    size_t n = r->nacts;
    if (n == 0)
        return;
    smap_t idx = {0};
    for (size_t i = 0; i < n; i++)
        smap_put(&idx, r->acts[i].id, (uint32_t)i);
    uint8_t *color = calloc(n, 1); /* 0 white, 1 on stack, 2 done */
    size_t *stack = calloc(n, sizeof *stack), *edge = calloc(n, sizeof *edge);
    if (color == NULL || stack == NULL || edge == NULL)
        abort();
    for (size_t root = 0; root < n; root++) {
        if (color[root])
            continue;
        size_t sp = 0;
        stack[sp] = root;
        edge[sp] = 0;
        color[root] = 1;
        sp++;
        while (sp) {
            size_t u = stack[sp - 1];
            if (edge[sp - 1] >= r->acts[u].nwaits) {
                color[u] = 2;
                sp--;
                continue;
            }
            uint32_t *vp = smap_find(&idx, r->acts[u].waits[edge[sp - 1]++]);
            if (vp == NULL)
                continue;
            size_t v = *vp;
            if (color[v] == 0) {
                color[v] = 1;
                stack[sp] = v;
                edge[sp] = 0;
                sp++;
            } else if (color[v] == 1) { /* back edge: stack from v to u is a cycle */
                size_t from = sp - 1;
                while (stack[from] != v)
                    from--;
                const char *least = r->acts[v].id;
                cop_t *o = cop_new(r, K_DEADLOCK);
                size_t at = 0;
                for (size_t k = from; k < sp; k++) {
                    const char *id = r->acts[stack[k]].id;
                    if (strcmp(id, least) < 0)
                        least = id;
                    at += (size_t)snprintf(o->text + at, sizeof o->text - at, "%s%s",
                                           k == from ? "" : " -> ", id);
                    if (at >= sizeof o->text)
                        at = sizeof o->text - 1;
                }
                snprintf(o->text + at, sizeof o->text - at, " -> %s", r->acts[v].id);
                char key[BC_ID_MAX + 32], val[768];
                snprintf(key, sizeof key, "coordinator:deadlock:%s", least);
                snprintf(val, sizeof val,
                         "{\"coordinatorId\":\"%s\",\"cycle\":\"%s\",\"detectedAt\":%llu}", least,
                         o->text, (unsigned long long)r->start_ms);
                const char *argv[] = {"SET", key, val, "NX", "EX", "600"};
                cop_cmd(r, o, 6, argv);
            }
        }
    }
    free(color);
    free(stack);
    free(edge);
    smap_free(&idx);
}

/* Everything collected: registry check, warnings, deadlocks. */
static void evaluate(reaper_t *r)
{
    r->evaluated = true;
    for (size_t i = 0; i < r->nreg; i++) {
        if (smap_find(&r->seen, r->reg[i]) != NULL)
            continue;
        say(r->h, "Found heartbeat: %s (expired)", r->reg[i]);
        add_stale(r, r->reg[i], NULL, NULL, true, 0);
    }
    char gate_ms[24];
    snprintf(gate_ms, sizeof gate_ms, "%u",
             r->h->opts.scan_ms * 4 / 5 ? r->h->opts.scan_ms * 4 / 5 : 1);
    for (size_t i = 0; i < r->nstale; i++) {
        count(&r->h->n_reap_stale, 1);
        if (r->suspects.n >= SUSPECTS_MAX) /* bounded: a forgotten suspect's warnings expire */
            smap_free(&r->suspects);
        smap_put(&r->suspects, r->stale[i].id, 1);
        char k1[BC_ID_MAX + 32], k2[BC_ID_MAX + 40];
        snprintf(k1, sizeof k1, "blocking:warning:%s", r->stale[i].id);
        snprintf(k2, sizeof k2, "blocking:warning-gate:%s", r->stale[i].id);
        cop_t *o = cop_new(r, K_WARN);
        o->st = r->stale[i];
        const char *argv[] = {k1, k2, gate_ms};
        r->pending++;
        if (bc__op_evalsha(r->h, &o->op, r->warn_script, 2, 3, argv, NULL) != 0) {
            r->pending--;
            cop_free(o);
        }
    }
    find_deadlocks(r);
}

static void cycle_maybe_done(reaper_t *r)
{
    if (!r->in_cycle || r->pending > 0 || !r->reg_done || !r->hb_done || !r->act_done)
        return;
    if (!r->evaluated) {
        evaluate(r);
        if (r->pending > 0)
            return;
    }
    uint64_t ms = (bc_now_ns() - r->t0_ns) / 1000000u;
    atomic_store_explicit(&r->h->n_reap_last_ms, ms, memory_order_relaxed); /* relaxed: stats */
    count(&r->h->n_reap_cycles, 1);
    bc_log(BC_LOG_DEBUG, "reaper: cycle over %llu heartbeat/activity keys in %llu ms",
           (unsigned long long)r->keys_seen, (unsigned long long)ms);
    cycle_reset(r);
    r->in_cycle = false;
    busy_update(r);
    if (r->again) {
        r->again = false;
        cycle_start(r);
    }
}

static void cycle_reply(bc__op_t *op, const bc_redis_reply_msg_t *m)
{
    cop_t *o = (cop_t *)op;
    reaper_t *r = o->r;
    const bc_reply_t *rep = m->status == BC_REDIS_OK ? m->reply : NULL;
    if (m->status != BC_REDIS_OK && o->kind != K_NOOP)
        bc_log(BC_LOG_DEBUG, "reaper: command failed: %s",
               m->reply && m->reply->str ? m->reply->str : bc_redis_status_name(m->status));
    r->pending--;
    switch (o->kind) {
    case K_REG:
        if (rep && rep->type == BC_REPLY_ARRAY) {
            r->reg = calloc(rep->elements ? rep->elements : 1, sizeof *r->reg);
            if (r->reg == NULL)
                abort();
            for (size_t i = 0; i < rep->elements; i++)
                if (rep->element[i]->str && bc_coord_id_valid(NULL, rep->element[i]->str, NULL, 0))
                    r->reg[r->nreg++] = strdup(rep->element[i]->str);
        }
        r->reg_done = true;
        break;
    case K_SCAN_HB:
    case K_SCAN_ACT:
        on_scan(r, o, rep);
        break;
    case K_MGET_HB:
        on_mget_hb(r, o, rep);
        break;
    case K_MGET_ACT:
        on_mget_act(r, o, rep);
        break;
    case K_WARN:
        if (rep && rep->type == BC_REPLY_INTEGER) {
            long long n = rep->integer;
            bc_coord_t *mine = bc__hub_lookup(r->h, o->st.id, strlen(o->st.id));
            if (mine) { /* hosted here and running: late heartbeats, not death */
                bc__coord_release(mine);
                bc_log(BC_LOG_WARN,
                       "reaper: %s is hosted by this process but its heartbeat is "
                       "stale (warning %lld)",
                       o->st.id, n);
            } else if (n >= (long long)r->h->opts.warnings) {
                say(r->h, "Dead coordinator detected: %s", o->st.id);
                count(&r->h->n_dead, 1);
                esc_start(r, &o->st);
            } else {
                say(r->h, "Warning %lld/%u for %s", n, r->h->opts.warnings, o->st.id);
            }
        }
        break;
    case K_DEADLOCK:
        if (rep && rep->type == BC_REPLY_STATUS) {
            count(&r->h->n_deadlocks, 1);
            say(r->h, "Deadlock detected: %s", o->text);
            bc_log(BC_LOG_WARN, "deadlock: wait cycle %s", o->text);
        }
        break;
    case K_NOOP:
        break;
    }
    cop_free(o);
    cycle_maybe_done(r);
}

/* ---------------------------------------------------------------- escalation */

struct esc_s {
    bc__op_t op;
    reaper_t *r;
    enum { E_CLAIM, E_FIND, E_SPAWN_ID, E_GET_ITEM, E_MOVE, E_PUBLISH, E_FINISH } step;
    stale_t st;
    bool takeover;
    bool claimed, swarm_known;
    char new_id[BC_ID_MAX + 1];
    char base[BC_ID_MAX + 1];
    unsigned k;   /* replacement counter */
    char **items; /* work keys of the dead coordinator */
    size_t nitems, capitems, cur;
    unsigned rescans;
    char *item_val; /* E_MOVE: the value read */
    size_t item_len;
    uint64_t moved, keys_removed;
    char owner[160]; /* lease value */
};

static void esc_reply(bc__op_t *op, const bc_redis_reply_msg_t *m);

static void esc_free(esc_t *e);

/* Submit e's next command; e is freed if that fails, so callers never touch e afterwards. */
static void esc_cmd(esc_t *e, int argc, const char *const *argv, const size_t *lens)
{
    if (bc__op_cmd(e->r->h, &e->op, argc, argv, lens) != 0) {
        bc_log(BC_LOG_ERROR,
               "reaper: cannot submit a command for %s; another reaper will retry "
               "when the lease expires",
               e->st.id);
        esc_free(e);
    }
}

static void esc_free(esc_t *e)
{
    reaper_t *r = e->r;
    for (size_t i = 0; i < e->nitems; i++)
        free(e->items[i]);
    free(e->items);
    free(e->item_val);
    free(e);
    r->escalating--;
    busy_update(r);
}

static void lease_key(char *buf, size_t len, const char *id)
{
    snprintf(buf, len, "coordinator:reaper-lease:%s", id);
}

static void find_items(esc_t *e, const char *cursor);
static void claim(esc_t *e);

static void esc_start(reaper_t *r, const stale_t *st)
{
    esc_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        abort();
    e->op.fn = esc_reply;
    e->op.h = r->h;
    e->r = r;
    e->st = *st;
    r->escalating++;
    busy_update(r);
    snprintf(e->owner, sizeof e->owner, "%s:%d", r->h->hostname, r->h->pid);
    claim(e); /* first, so losers cost one round trip and no scan */
}

static void claim(esc_t *e)
{
    char k1[BC_ID_MAX + 40], k2[BC_ID_MAX + 40], val[512], px[16];
    snprintf(k1, sizeof k1, "coordinator:escalation:%s", e->st.id);
    lease_key(k2, sizeof k2, e->st.id);
    snprintf(val, sizeof val,
             "{\"deadCoordinatorId\":\"%s\",\"swarmId\":\"%s\",\"timestamp\":%llu,"
             "\"reason\":\"coordinator_timeout\",\"status\":\"escalated\"}",
             e->st.id, e->st.swarm, (unsigned long long)bc_hub_now_ms(e->r->h));
    snprintf(px, sizeof px, "%u", e->r->lease_ms);
    e->swarm_known = e->st.swarm[0] != '\0';
    e->step = E_CLAIM;
    const char *argv[] = {k1, k2, val, e->owner, px};
    if (bc__op_evalsha(e->r->h, &e->op, e->r->claim_script, 2, 5, argv, NULL) != 0) {
        bc_log(BC_LOG_ERROR, "reaper: cannot submit the claim of %s", e->st.id);
        esc_free(e);
    }
}

static void find_items(esc_t *e, const char *cursor)
{
    char pat[BC_ID_MAX + 40];
    snprintf(pat, sizeof pat, "coordinator:work:*:%s:*", e->st.id);
    e->step = E_FIND;
    const char *argv[] = {"SCAN", cursor, "MATCH", pat, "COUNT", SCAN_COUNT};
    esc_cmd(e, 6, argv, NULL);
}

/* coordinator:work:<swarm>:<owner>:<workId> with owner == id: the swarm and work id. */
static bool split_work_key(const char *k, const char *id, char *swarm, char *wid)
{
    static const char pre[] = "coordinator:work:";
    if (strncmp(k, pre, sizeof pre - 1) != 0)
        return false;
    const char *s = k + sizeof pre - 1;
    const char *c1 = strchr(s, ':');
    if (c1 == NULL || (size_t)(c1 - s) > BC_ID_MAX)
        return false;
    const char *o = c1 + 1;
    const char *c2 = strchr(o, ':');
    if (c2 == NULL || (size_t)(c2 - o) != strlen(id) || strncmp(o, id, strlen(id)) != 0)
        return false;
    const char *w = c2 + 1;
    if (strchr(w, ':') != NULL || !bc_coord_id_valid(NULL, w, NULL, 0))
        return false;
    memcpy(swarm, s, (size_t)(c1 - s));
    swarm[c1 - s] = '\0';
    if (strcmp(swarm, "done") == 0 || !bc_coord_id_valid(NULL, swarm, NULL, 0))
        return false;
    strcpy(wid, w);
    return true;
}

static void next_replacement(esc_t *e)
{
    e->k++;
    snprintf(e->new_id, sizeof e->new_id, "%.*s-r%u", (int)(BC_ID_MAX - 8), e->base, e->k);
    char key[BC_ID_MAX + 40], val[512];
    snprintf(key, sizeof key, "coordinator:spawn:%s", e->new_id);
    snprintf(val, sizeof val,
             "{\"newCoordinatorId\":\"%s\",\"replacesCoordinatorId\":\"%s\",\"swarmId\":\"%s\","
             "\"timestamp\":%llu,\"status\":\"pending\",\"priority\":\"high\"}",
             e->new_id, e->st.id, e->st.swarm, (unsigned long long)bc_hub_now_ms(e->r->h));
    e->step = E_SPAWN_ID;
    const char *argv[] = {"SET", key, val, "NX", "EX", "3600"};
    esc_cmd(e, 6, argv, NULL);
}

/* <base>-r<k>: the base drops an existing -r<k> suffix, so c-3-r1 is followed by c-3-r2. */
static void pick_replacement(esc_t *e)
{
    snprintf(e->base, sizeof e->base, "%s", e->st.id);
    e->k = 0;
    char *dash = strrchr(e->base, '-');
    if (dash && dash[1] == 'r' && dash[2]) {
        char *end;
        unsigned long k = strtoul(dash + 2, &end, 10);
        if (*end == '\0' && k < MAX_REPLACEMENT) {
            *dash = '\0';
            e->k = (unsigned)k;
        }
    }
    next_replacement(e);
}

static int default_replacer(bc_hub_t *h, const char *dead, const char *new_id, const char *swarm,
                            const char *phase, void *arg)
{
    (void)dead;
    (void)arg;
    bc_coord_opts_t o;
    bc_coord_opts_init(&o);
    o.id = new_id;
    o.swarm_id = swarm[0] ? swarm : NULL;
    o.phase = phase[0] ? phase : NULL;
    char err[160];
    return bc_coord_spawn(h, &o, NULL, err, sizeof err);
}

static void move_next(esc_t *e);

static void spawn_replacement(esc_t *e)
{
    bc_hub_t *h = e->r->h;
    /* acquire: pairs with bc_hub_set_replacer's release stores. */
    bc_replace_fn fn = atomic_load_explicit(&h->replacer, memory_order_acquire);
    void *arg = atomic_load_explicit(&h->replacer_arg, memory_order_acquire);
    if (fn == NULL)
        fn = default_replacer;
    int rc = fn(h, e->st.id, e->new_id, e->st.swarm, e->st.phase, arg);
    if (rc != 0 && rc != -EEXIST)
        bc_log(BC_LOG_ERROR, "reaper: replacement %s for %s not spawned: %s", e->new_id, e->st.id,
               bc_strerror(rc));
    else
        bc_log(BC_LOG_INFO, "reaper: %s replaces dead coordinator %s (%zu work items)", e->new_id,
               e->st.id, e->nitems);
    e->cur = 0;
    move_next(e);
}

static void announce(bc_hub_t *h, const char *to, const char *dead, const char *wid)
{
    bc_coord_t *c = bc__hub_lookup(h, to, strlen(to));
    if (c == NULL)
        return;
    if (c->on_event) {
        bc__event_msg_t *ev = bc_msg_alloc(sizeof *ev, BC__M_EVENT);
        ev->type = BC_EV_WORK;
        snprintf(ev->peer, sizeof ev->peer, "%s", dead);
        snprintf(ev->detail, sizeof ev->detail, "%s", wid);
        bc_send(c->actor, &ev->hdr);
    }
    bc__coord_release(c);
}

static void publish_dead(esc_t *e)
{
    char ch[BC_ID_MAX + 40], msg[512];
    snprintf(ch, sizeof ch, "swarm:%s:coordinator:dead", e->st.swarm[0] ? e->st.swarm : "default");
    snprintf(msg, sizeof msg,
             "{\"deadCoordinatorId\":\"%s\",\"swarmId\":\"%s\",\"timestamp\":%llu,"
             "\"action\":\"spawn_replacement\"}",
             e->st.id, e->st.swarm, (unsigned long long)bc_hub_now_ms(e->r->h));
    e->step = E_PUBLISH;
    const char *argv[] = {"PUBLISH", ch, msg};
    esc_cmd(e, 3, argv, NULL);
}

static void move_next(esc_t *e)
{
    if (e->cur >= e->nitems) {
        if (e->rescans++ < 2 && e->nitems > 0) { /* items assigned while we moved */
            for (size_t i = 0; i < e->nitems; i++)
                free(e->items[i]);
            e->nitems = 0;
            find_items(e, "0");
            return;
        }
        publish_dead(e);
        return;
    }
    e->step = E_GET_ITEM;
    const char *argv[] = {"GET", e->items[e->cur]};
    esc_cmd(e, 2, argv, NULL);
}

static void cleanup_done(void *arg, int status, uint64_t keys, const char *err)
{
    esc_t *e = arg;
    bc_hub_t *h = e->r->h;
    if (status != 0)
        bc_log(BC_LOG_ERROR, "reaper: cleanup of %s failed: %s", e->st.id, err ? err : "?");
    e->keys_removed = keys;
    say(h, "Dead coordinator keys removed: %llu", (unsigned long long)keys);
    char stats[512], lk[BC_ID_MAX + 40];
    snprintf(stats, sizeof stats,
             "{\"lastRun\":%llu,\"cleanedCoordinators\":[\"%s\"],\"keysRemoved\":%llu}",
             (unsigned long long)bc_hub_now_ms(h), e->st.id, (unsigned long long)keys);
    lease_key(lk, sizeof lk, e->st.id);
    e->step = E_FINISH;
    const char *a1[] = {"SET", "cleanup:stats", stats};
    const char *a2[] = {"SET", lk, "done", "PX", LEASE_DONE_MS};
    bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_OTHER, 3, a1, NULL);
    esc_cmd(e, 5, a2, NULL);
}

static const char *crash_after(void)
{
    return getenv("BC_REAPER_CRASH_AFTER_ITEMS"); /* test hook: see tests/test_reaper.c */
}

static void esc_reply(bc__op_t *op, const bc_redis_reply_msg_t *m)
{
    esc_t *e = (esc_t *)op;
    bc_hub_t *h = e->r->h;
    const bc_reply_t *rep = m->status == BC_REDIS_OK ? m->reply : NULL;
    switch (e->step) {
    case E_CLAIM: {
        const char *v = rep && rep->type == BC_REPLY_STRING ? rep->str : "";
        if (strcmp(v, "won") != 0 && strcmp(v, "takeover") != 0) {
            if (rep == NULL || rep->type == BC_REPLY_ERROR)
                bc_log(BC_LOG_ERROR, "reaper: claim of %s failed: %s", e->st.id,
                       m->reply && m->reply->str ? m->reply->str : bc_redis_status_name(m->status));
            else
                say(h, "Escalation of %s already handled by another reaper", e->st.id);
            esc_free(e);
            return;
        }
        e->takeover = strcmp(v, "takeover") == 0;
        if (!e->takeover)
            count(&h->n_escalations, 1);
        e->claimed = true;
        say(h, "Escalating to dead coordinator handler");
        if (e->takeover)
            bc_log(BC_LOG_WARN, "reaper: taking over the unfinished escalation of %s", e->st.id);
        find_items(e, "0");
        return;
    }
    case E_FIND: {
        if (rep == NULL || rep->type != BC_REPLY_ARRAY || rep->elements != 2) {
            bc_log(BC_LOG_ERROR,
                   "reaper: cannot list the work of %s; its lease will expire and "
                   "another reaper will retry",
                   e->st.id);
            esc_free(e);
            return;
        }
        const bc_reply_t *ks = rep->element[1];
        for (size_t i = 0; i < ks->elements; i++) {
            char swarm[BC_ID_MAX + 1], wid[BC_ID_MAX + 1];
            const char *k = ks->element[i]->str;
            if (k == NULL || !split_work_key(k, e->st.id, swarm, wid))
                continue;
            if (e->st.swarm[0] == '\0')
                snprintf(e->st.swarm, sizeof e->st.swarm, "%s", swarm);
            e->items = grow(e->items, e->nitems, &e->capitems, sizeof *e->items);
            if ((e->items[e->nitems] = strdup(k)) == NULL)
                abort();
            e->nitems++;
        }
        const char *cur = rep->element[0]->str ? rep->element[0]->str : "0";
        if (strcmp(cur, "0") != 0) {
            find_items(e, cur);
            return;
        }
        if (e->new_id[0] == '\0') {
            if (!e->swarm_known && e->st.swarm[0]) { /* the work keys named the swarm */
                char k[BC_ID_MAX + 40], val[512];
                snprintf(k, sizeof k, "coordinator:escalation:%s", e->st.id);
                snprintf(val, sizeof val,
                         "{\"deadCoordinatorId\":\"%s\",\"swarmId\":\"%s\",\"timestamp\":%llu,"
                         "\"reason\":\"coordinator_timeout\",\"status\":\"escalated\"}",
                         e->st.id, e->st.swarm, (unsigned long long)bc_hub_now_ms(h));
                const char *argv[] = {"SET", k, val, "XX", "KEEPTTL"};
                bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_OTHER, 5, argv, NULL);
                e->swarm_known = true;
            }
            pick_replacement(e);
            return;
        }
        e->cur = 0;
        if (e->nitems == 0) {
            publish_dead(e);
            return;
        }
        move_next(e);
        return;
    }
    case E_SPAWN_ID:
        if (rep && rep->type == BC_REPLY_STATUS) {
            spawn_replacement(e);
        } else if (rep && rep->type == BC_REPLY_NIL && e->k < MAX_REPLACEMENT) {
            next_replacement(e);
        } else {
            bc_log(BC_LOG_ERROR, "reaper: no replacement id for %s", e->st.id);
            esc_free(e);
        }
        return;
    case E_GET_ITEM: {
        free(e->item_val);
        e->item_val = NULL;
        if (rep == NULL || rep->type != BC_REPLY_STRING) {
            e->cur++; /* gone: completed or moved by someone else */
            move_next(e);
            return;
        }
        char swarm[BC_ID_MAX + 1], wid[BC_ID_MAX + 1];
        bc__work_parsed_t p;
        const char *k = e->items[e->cur];
        if (!split_work_key(k, e->st.id, swarm, wid) ||
            bc__work_item_parse(rep->str, rep->len, &p) != 0) {
            count(&h->n_reap_bad, 1);
            bc_log(BC_LOG_WARN, "reaper: work item %s is not JSON; left in place", k);
            e->cur++;
            move_next(e);
            return;
        }
        char *nv = bc__work_moved_value(&p, e->new_id, e->st.id, wid, bc_hub_now_ms(h));
        bc__work_item_free(&p);
        char nk[256];
        if (nv == NULL || bc__work_key(nk, sizeof nk, swarm, e->new_id, wid) < 0) {
            free(nv);
            e->cur++;
            move_next(e);
            return;
        }
        e->item_val = malloc(rep->len + 1);
        if (e->item_val == NULL)
            abort();
        memcpy(e->item_val, rep->str, rep->len + 1);
        e->item_len = rep->len;
        /* Keep the lease while we work. */
        char lk[BC_ID_MAX + 40], px[16];
        lease_key(lk, sizeof lk, e->st.id);
        snprintf(px, sizeof px, "%u", e->r->lease_ms);
        const char *argv[] = {"PEXPIRE", lk, px};
        bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_OTHER, 3, argv, NULL);
        e->step = E_MOVE;
        int rc = bc__work_move(h, &e->op, k, nk, e->item_val, e->item_len, nv);
        free(nv);
        if (rc != 0) {
            bc_log(BC_LOG_ERROR, "reaper: cannot submit the move of %s", k);
            esc_free(e);
        }
        return;
    }
    case E_MOVE: {
        const char *why;
        int rc = bc__work_move_status(m, &why);
        char swarm[BC_ID_MAX + 1], wid[BC_ID_MAX + 1];
        split_work_key(e->items[e->cur], e->st.id, swarm, wid);
        if (rc == -EAGAIN) { /* changed between GET and move: read it again */
            move_next(e);
            return;
        }
        if (rc == 0) {
            e->moved++;
            count(&h->n_work_moved, 1);
            announce(h, e->new_id, e->st.id, wid);
            const char *ca = crash_after();
            if (ca && (uint64_t)strtoull(ca, NULL, 10) == e->moved) {
                bc_log(BC_LOG_WARN, "reaper: BC_REAPER_CRASH_AFTER_ITEMS=%s: exiting now", ca);
                _exit(137);
            }
        } else if (rc != -ENOENT) {
            bc_log(BC_LOG_ERROR, "reaper: work item %s not moved: %s", e->items[e->cur], why);
        }
        e->cur++;
        move_next(e);
        return;
    }
    case E_PUBLISH:
        say(h, "Cleaning up coordinator state");
        if (bc__cleanup(h, e->st.id, cleanup_done, e) != 0)
            cleanup_done(e, -EINVAL, 0, "invalid id");
        return;
    case E_FINISH:
        bc_log(BC_LOG_INFO,
               "reaper: dead coordinator %s handled: %llu work items moved to %s, %llu "
               "keys removed",
               e->st.id, (unsigned long long)e->moved, e->new_id,
               (unsigned long long)e->keys_removed);
        esc_free(e);
        return;
    }
}

/* ---------------------------------------------------------------- cleanup */

typedef struct {
    bc__op_t op;
    char id[BC_ID_MAX + 1];
    bc__cleanup_fn done;
    void *arg;
    int pending;
    uint64_t removed;
    int status;
    char err[160];
} clean_t;

static void clean_reply(bc__op_t *op, const bc_redis_reply_msg_t *m);

static void clean_cmd(clean_t *c, int argc, const char *const *argv)
{
    c->pending++;
    if (bc__op_cmd(c->op.h, &c->op, argc, argv, NULL) != 0)
        c->pending--;
}

/* A key under blocking:* that belongs to id: its per-signal ACKs, consumed markers, and Node
 * idempotency markers naming it as sender or receiver (split on ':', never by substring). */
static bool owned_key(const char *k, const char *id)
{
    size_t il = strlen(id);
    static const char ack[] = "blocking:ack:", con[] = "blocking:consumed:",
                      idem[] = "blocking:idempotency:";
    if (strncmp(k, ack, sizeof ack - 1) == 0)
        return strncmp(k + sizeof ack - 1, id, il) == 0 && k[sizeof ack - 1 + il] == ':';
    if (strncmp(k, con, sizeof con - 1) == 0)
        return strncmp(k + sizeof con - 1, id, il) == 0 && k[sizeof con - 1 + il] == ':';
    if (strncmp(k, idem, sizeof idem - 1) == 0) {
        const char *s = k + sizeof idem - 1; /* <sender>:<receiver>:... */
        const char *c1 = strchr(s, ':');
        if (c1 == NULL)
            return false;
        if ((size_t)(c1 - s) == il && strncmp(s, id, il) == 0)
            return true;
        const char *r = c1 + 1;
        const char *c2 = strchr(r, ':');
        size_t rl = c2 ? (size_t)(c2 - r) : strlen(r);
        return rl == il && strncmp(r, id, il) == 0;
    }
    return false;
}

/* One keyspace pass whose answers carry only keys naming the id (ids hold no glob characters);
 * owned_key() then decides by exact fields. MATCH "blocking:*" would ship every consumed
 * marker of the deployment to us. */
static void clean_scan(clean_t *c, const char *cursor)
{
    char pat[BC_ID_MAX + 16];
    snprintf(pat, sizeof pat, "blocking:*%s*", c->id);
    const char *argv[] = {"SCAN", cursor, "MATCH", pat, "COUNT", SCAN_COUNT};
    clean_cmd(c, 6, argv);
}

static void clean_reply(bc__op_t *op, const bc_redis_reply_msg_t *m)
{
    clean_t *c = (clean_t *)op;
    c->pending--;
    const bc_reply_t *rep = m->status == BC_REDIS_OK ? m->reply : NULL;
    if (rep == NULL && c->status == 0) {
        c->status = -EIO;
        snprintf(c->err, sizeof c->err, "Redis: %s",
                 m->reply && m->reply->str ? m->reply->str : bc_redis_status_name(m->status));
    }
    if (rep && rep->type == BC_REPLY_INTEGER) { /* a DEL */
        c->removed += (uint64_t)rep->integer;
    } else if (rep && rep->type == BC_REPLY_ARRAY && rep->elements == 2 &&
               rep->element[1]->type == BC_REPLY_ARRAY) { /* a SCAN page */
        const bc_reply_t *ks = rep->element[1];
        for (size_t i = 0; i < ks->elements; i++)
            if (ks->element[i]->str && owned_key(ks->element[i]->str, c->id)) {
                const char *argv[] = {"DEL", ks->element[i]->str};
                clean_cmd(c, 2, argv);
            }
        const char *cur = rep->element[0]->str ? rep->element[0]->str : "0";
        if (strcmp(cur, "0") != 0)
            clean_scan(c, cur);
    }
    if (c->pending == 0) {
        c->done(c->arg, c->status, c->removed, c->status ? c->err : NULL);
        free(c);
    }
}

int bc__cleanup(bc_hub_t *h, const char *id, bc__cleanup_fn done, void *arg)
{
    if (h == NULL || done == NULL || !bc_coord_id_valid(NULL, id, NULL, 0))
        return -EINVAL;
    clean_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->op.fn = clean_reply;
    c->op.h = h;
    snprintf(c->id, sizeof c->id, "%s", id);
    c->done = done;
    c->arg = arg;
    static const char *const fmt[] = {"blocking:heartbeat:%s",    "blocking:signal:%s",
                                      "blocking:signal-queue:%s", "blocking:ack:%s",
                                      "blocking:warning:%s",      "blocking:warning-gate:%s",
                                      "coordinator:activity:%s",  "coordinator:circuit:%s"};
    /* Every command touches one key (PROTOCOL §7). */
    for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
        char key[BC_ID_MAX + 40];
        snprintf(key, sizeof key, fmt[i], id);
        const char *argv[] = {"DEL", key};
        clean_cmd(c, 2, argv);
    }
    const char *z[] = {"ZREM", "blocking:registry", id}; /* not a key: not counted */
    bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_OTHER, 3, z, NULL);
    clean_scan(c, "0");
    if (c->pending == 0) { /* nothing could be submitted */
        free(c);
        return -ESHUTDOWN;
    }
    return 0;
}

/* ---------------------------------------------------------------- circuit keys */

/* After every (re)connect: coordinator:circuit:<id> = "closed" (TTL 300, Node's) for every
 * coordinator hosted here, so a peer or an operator sees the breaker closed again within one
 * heartbeat interval of Redis's return (original-implementation.md §10.3 H7). The writes go
 * out CIRCUIT_BATCH at a time, the next batch when the last of the previous one is answered,
 * so 100,000 coordinators do not queue 100,000 commands at once. */
#define CIRCUIT_BATCH 1024

typedef struct {
    bc__op_t op;
    char (*ids)[BC_ID_MAX + 1];
    size_t n, next;
} circuit_t;

static void circuits_next(circuit_t *c);

static void circuit_reply(bc__op_t *op, const bc_redis_reply_msg_t *m)
{
    (void)m;
    circuits_next((circuit_t *)op);
}

static void circuits_next(circuit_t *c)
{
    bc_hub_t *h = c->op.h;
    size_t end = c->next + CIRCUIT_BATCH < c->n ? c->next + CIRCUIT_BATCH : c->n;
    for (; c->next < end; c->next++) {
        char key[BC_ID_MAX + 32];
        snprintf(key, sizeof key, "coordinator:circuit:%s", c->ids[c->next]);
        const char *argv[] = {"SETEX", key, "300", "closed"};
        if (c->next + 1 == end && end < c->n) { /* the batch's last: its answer sends more */
            if (bc__op_cmd(h, &c->op, 4, argv, NULL) == 0) {
                c->next++;
                return;
            }
        } else {
            bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_HEARTBEAT, 4, argv, NULL);
        }
    }
    free(c->ids);
    free(c);
}

static void circuits_closed(reaper_t *r)
{
    bc_hub_t *h = r->h;
    circuit_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return;
    c->op.fn = circuit_reply;
    c->op.h = h;
    pthread_mutex_lock(&h->lock);
    c->ids = malloc((h->count + 1) * sizeof *c->ids);
    if (c->ids == NULL) {
        pthread_mutex_unlock(&h->lock);
        free(c);
        return;
    }
    for (size_t i = 0; i < h->cap; i++)
        if (h->table[i] && h->table[i] != BC__TOMBSTONE && !h->table[i]->send_only)
            snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", h->table[i]->id);
    pthread_mutex_unlock(&h->lock);
    circuits_next(c);
}

/* ---------------------------------------------------------------- the actor */

static void behaviour(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    reaper_t *r = state;
    (void)self;
    switch (msg->type) {
    case BC__M_REAP_TIMER:
        cycle_start(r);
        break;
    case BC__M_REAP_NOW:
        cycle_start(r);
        /* release: bc__reap_busy sees the cycle busy before this request is dropped. */
        atomic_fetch_sub_explicit(&r->h->reap_now_pending, 1, memory_order_release);
        break;
    case BC_MSG_REDIS_REPLY: {
        bc_redis_reply_msg_t *m = (bc_redis_reply_msg_t *)msg;
        bc__op_t *op = (bc__op_t *)(uintptr_t)m->tag;
        if (op) {
            atomic_fetch_sub_explicit(&r->h->ops_inflight, 1, memory_order_relaxed); /* stats */
            op->fn(op, m);
        }
        break;
    }
    case BC_MSG_REDIS_UP:
        circuits_closed(r);
        break;
    case BC_MSG_STOPPED:
        bc_redis_unwatch(r->h->redis, r->self);
        if (r->timer)
            bc_timer_cancel(r->timer);
        cycle_reset(r);
        smap_free(&r->suspects);
        free(r);
        break;
    default:
        break;
    }
}

bc_actor_t *bc__reaper_spawn(bc_hub_t *h)
{
    reaper_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->h = h;
    r->warn_script = bc_redis_script_register(h->redis, lua_warn);
    r->claim_script = bc_redis_script_register(h->redis, lua_claim);
    /* Long enough for several scans of ours, short enough that a crash is taken over soon. */
    uint64_t lease = (uint64_t)h->opts.scan_ms * 4;
    r->lease_ms = lease < LEASE_MIN_MS   ? LEASE_MIN_MS
                  : lease > LEASE_MAX_MS ? LEASE_MAX_MS
                                         : (uint32_t)lease;
    r->self = bc_spawn(h->rt, behaviour, r);
    if (r->self == NULL || r->warn_script < 0 || r->claim_script < 0) {
        free(r);
        return NULL;
    }
    /* Before anything can make it run (its timer, a reconnect): its turns read h->reaper
     * (bc__op_cmd), which the hub would otherwise set only once this returns. */
    h->reaper = r->self;
    bc_redis_watch(h->redis, r->self);
    if (h->opts.reaper)
        bc_timer_start(r->self, BC__M_REAP_TIMER, h->opts.scan_ms, h->opts.scan_ms, &r->timer);
    return r->self;
}

int bc_hub_reap_now(bc_hub_t *h)
{
    if (h == NULL || h->reaper == NULL)
        return -EINVAL;
    if (!h->opts.reaper)
        return -ENOTSUP;
    bc_msg_t *m = bc_msg_alloc(sizeof *m, BC__M_REAP_NOW);
    /* Busy from now on, so a caller polling bc__reap_busy sees this cycle. */
    atomic_fetch_add_explicit(&h->reap_now_pending, 1, memory_order_release);
    int rc = bc_send(h->reaper, m);
    if (rc != 0)
        atomic_fetch_sub_explicit(&h->reap_now_pending, 1, memory_order_release);
    return rc;
}

int bc__reap_busy(bc_hub_t *h)
{
    /* acquire: pairs with the actor's release stores; the stats read next are current. */
    return atomic_load_explicit(&h->reap_now_pending, memory_order_acquire) > 0 ||
           atomic_load_explicit(&h->reap_busy, memory_order_acquire);
}

void bc__hub_set_reap_observer(bc_hub_t *h, void (*fn)(void *arg, const char *line), void *arg)
{
    h->reap_observer = fn;
    h->reap_observer_arg = arg;
}

int bc_replace_handoff(bc_hub_t *h, const char *dead, const char *new_id, const char *swarm,
                       const char *phase, void *arg)
{
    (void)dead;
    (void)swarm;
    (void)phase;
    (void)arg;
    char now[24];
    snprintf(now, sizeof now, "%llu", (unsigned long long)bc_hub_now_ms(h));
    const char *argv[] = {"ZADD", "blocking:registry", now, new_id};
    return bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_OTHER, 4, argv, NULL);
}

void bc_hub_set_replacer(bc_hub_t *h, bc_replace_fn fn, void *arg)
{
    if (h == NULL)
        return;
    /* release: pairs with the reaper's acquire loads. */
    atomic_store_explicit(&h->replacer_arg, arg, memory_order_release);
    atomic_store_explicit(&h->replacer, fn, memory_order_release);
}
