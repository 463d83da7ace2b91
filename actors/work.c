/* work.c - work items (PROTOCOL §4.5): assign, list, move (for the reaper) and fenced
 * completion.
 *
 * An item lives at coordinator:work:<swarmId>:<owner>:<workId>. Every change that must be atomic
 * is one Lua script, so the item exists in exactly one place at every instant:
 *  - assign:   SET the item unless it, or its completion record, already exists;
 *  - move:     compare-and-move: the new value is built here (jansson keeps member order and
 *              64-bit integers exact, which Redis's cjson does not), the script moves it only if
 *              the old value is still the one we read, keeps the remaining TTL, and reports an
 *              item that is already at its destination (a retry after a crash) as done;
 *  - complete: the fence. Only the owner named in the key and in the value, with the epoch it
 *              was given, may complete; the completion record
 *              coordinator:work:done:<swarmId>:<workId> is written with NX, so an item is
 *              completed at most once whoever tries.
 * Replies are handled on the hub's reaper actor (bc__op_*); callbacks run there.
 */
#include "hub.h"
#include "work.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { S_ASSIGN, S_MOVE, S_COMPLETE };

/* KEYS: item, done record. ARGV: the item's value. */
static const char lua_assign[] =
    "if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists', 'already completed'} end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', 'already assigned'} end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', 3600)\n"
    "return {'ok', 'assigned'}\n";

/* KEYS: old, new. ARGV: the old value as read, the new value. */
static const char lua_move[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then\n"
    "  if redis.call('EXISTS', KEYS[2]) == 1 then return {'done', 'already moved'} end\n"
    "  return {'gone', 'no such item'}\n"
    "end\n"
    "if v ~= ARGV[1] then return {'changed', 'the item changed since it was read'} end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  return {'conflict', 'the destination already holds an item with this id'}\n"
    "end\n"
    "local ttl = redis.call('PTTL', KEYS[1])\n"
    "if ttl > 0 then redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)\n"
    "else redis.call('SET', KEYS[2], ARGV[2], 'EX', 3600) end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return {'ok', 'moved'}\n";

/* KEYS: item, done record. ARGV: owner, epoch, the completion record. */
static const char lua_complete[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return {'stale', 'the item is not held by this coordinator (moved or "
    "completed)'} end\n"
    "local ok, it = pcall(cjson.decode, v)\n"
    "if not ok or type(it) ~= 'table' then return {'bad', 'the work item is not JSON'} end\n"
    "if it.assignedTo ~= ARGV[1] then return {'stale', 'the item is assigned to another "
    "coordinator'} end\n"
    "local e = tonumber(it.epoch) or 1\n"
    "if string.format('%.0f', e) ~= ARGV[2] then return {'stale', 'the item\\'s epoch is now ' "
    ".. string.format('%.0f', e)} end\n"
    "if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', 86400) then\n"
    "  return {'exists', 'already completed'}\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return {'ok', 'completed'}\n";

int bc__work_init(bc_hub_t *h)
{
    const char *src[3] = {lua_assign, lua_move, lua_complete};
    for (int i = 0; i < 3; i++) {
        int id = bc_redis_script_register(h->redis, src[i]);
        if (id < 0)
            return id;
        h->work_scripts[i] = id;
    }
    return 0;
}

/* A script's {code, message} answer as a negative errno (0 for "ok") and a message. */
static int script_status(const bc_redis_reply_msg_t *m, const char **why)
{
    static const struct {
        const char *code;
        int rc;
    } map[] = {{"ok", 0},         {"done", 0},          {"exists", -EEXIST},   {"stale", -ESTALE},
               {"gone", -ENOENT}, {"changed", -EAGAIN}, {"conflict", -EEXIST}, {"bad", -EBADMSG}};
    *why = bc_redis_status_name(m->status);
    if (m->status != BC_REDIS_OK && m->status != BC_REDIS_ERROR)
        return -EIO;
    const bc_reply_t *r = m->reply;
    if (r == NULL || r->type == BC_REPLY_ERROR) {
        *why = r ? r->str : "no reply";
        return -EIO;
    }
    if (r->type != BC_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != BC_REPLY_STRING) {
        *why = "unexpected script answer";
        return -EIO;
    }
    *why = r->element[1]->str ? r->element[1]->str : "";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].code, r->element[0]->str) == 0)
            return map[i].rc;
    *why = "unknown script answer";
    return -EIO;
}

int bc__work_key(char *buf, size_t len, const char *swarm, const char *owner, const char *wid)
{
    int n = snprintf(buf, len, "coordinator:work:%s:%s:%s", swarm, owner, wid);
    return n > 0 && (size_t)n < len ? n : -ENAMETOOLONG;
}

static int done_key(char *buf, size_t len, const char *swarm, const char *wid)
{
    int n = snprintf(buf, len, "coordinator:work:done:%s:%s", swarm, wid);
    return n > 0 && (size_t)n < len ? n : -ENAMETOOLONG;
}

/* ---------------------------------------------------------------- assign and complete */

typedef struct {
    bc__op_t op;
    bc_work_done_fn done;
    void *arg;
    uint64_t epoch;
    int script;
} simple_op_t;

static void simple_reply(bc__op_t *op, const bc_redis_reply_msg_t *m)
{
    simple_op_t *o = (simple_op_t *)op;
    const char *why;
    int rc = script_status(m, &why);
    if (o->script == S_COMPLETE) {
        /* relaxed: statistics. */
        if (rc == 0)
            atomic_fetch_add_explicit(&op->h->n_work_done, 1, memory_order_relaxed);
        else if (rc == -ESTALE || rc == -EEXIST)
            atomic_fetch_add_explicit(&op->h->n_work_refused, 1, memory_order_relaxed);
    }
    if (o->done)
        o->done(o->arg, rc, o->epoch, rc == 0 ? NULL : why);
    free(o);
}

static int submit_simple(bc_hub_t *h, int script, const char *k1, const char *k2, int nargs,
                         const char *const *args, uint64_t epoch, bc_work_done_fn done, void *arg,
                         char *err, size_t errlen)
{
    simple_op_t *o = calloc(1, sizeof *o);
    if (o == NULL) {
        bc__seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    o->op.fn = simple_reply;
    o->op.h = h;
    o->done = done;
    o->arg = arg;
    o->epoch = epoch;
    o->script = script;
    const char *argv[8] = {k1, k2};
    for (int i = 0; i < nargs; i++)
        argv[2 + i] = args[i];
    int rc = bc__op_evalsha(h, &o->op, h->work_scripts[script], 2, 2 + nargs, argv, NULL);
    if (rc != 0) {
        free(o);
        bc__seterr(err, errlen, "cannot submit the work script: %s", bc_strerror(rc));
    }
    return rc;
}

/* Parse the caller's data (any JSON value); NULL with err set when it is not JSON. */
static json_t *parse_data(const char *text, char *err, size_t errlen)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (v == NULL)
        bc__seterr(err, errlen, "work data is not valid JSON: %s (at %d)", je.text, je.position);
    return v;
}

int bc_work_assign(bc_hub_t *h, const char *swarm, const char *owner, const char *work_id,
                   const char *data_json, bc_work_done_fn done, void *arg, char *err, size_t errlen)
{
    bc__coord_ack_due_flush();
    if (h == NULL) {
        bc__seterr(err, errlen, "bc_work_assign: NULL hub");
        return -EINVAL;
    }
    if (!bc_coord_id_valid("swarm id", swarm, err, errlen) ||
        !bc_coord_id_valid("owner", owner, err, errlen) ||
        !bc_coord_id_valid("work id", work_id, err, errlen))
        return -EINVAL;
    json_t *data = NULL;
    if (data_json != NULL && (data = parse_data(data_json, err, errlen)) == NULL)
        return -EINVAL;
    json_t *v = json_object();
    json_object_set_new(v, "workId", json_string(work_id));
    json_object_set_new(v, "assignedTo", json_string(owner));
    json_object_set_new(v, "status", json_string("in-progress"));
    if (data)
        json_object_set_new(v, "data", data); /* written compact by the dump below */
    json_object_set_new(v, "startedAt", json_integer((json_int_t)bc_hub_now_ms(h)));
    json_object_set_new(v, "epoch", json_integer(1));
    char *val = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(v);
    char k1[256], k2[256];
    int rc = -ENOMEM;
    if (val && bc__work_key(k1, sizeof k1, swarm, owner, work_id) > 0 &&
        done_key(k2, sizeof k2, swarm, work_id) > 0) {
        const char *args[] = {val};
        rc = submit_simple(h, S_ASSIGN, k1, k2, 1, args, 1, done, arg, err, errlen);
    } else {
        bc__seterr(err, errlen, "out of memory");
    }
    free(val);
    return rc;
}

int bc_work_complete(bc_coord_t *c, const char *work_id, uint64_t epoch, bc_work_done_fn done,
                     void *arg, char *err, size_t errlen)
{
    bc__coord_ack_due_flush();
    if (c == NULL) {
        bc__seterr(err, errlen, "bc_work_complete: NULL coordinator");
        return -EINVAL;
    }
    if (!bc_coord_id_valid("work id", work_id, err, errlen))
        return -EINVAL;
    if (c->swarm[0] == '\0') {
        bc__seterr(err, errlen, "coordinator %s has no swarm id, so it holds no work", c->id);
        return -EINVAL;
    }
    bc_hub_t *h = c->hub;
    char k1[256], k2[256], ep[24], rec[512];
    snprintf(ep, sizeof ep, "%llu", (unsigned long long)epoch);
    snprintf(rec, sizeof rec,
             "{\"workId\":\"%s\",\"completedBy\":\"%s\",\"epoch\":%llu,\"completedAt\":%llu}",
             work_id, c->id, (unsigned long long)epoch, (unsigned long long)bc_hub_now_ms(h));
    bc__work_key(k1, sizeof k1, c->swarm, c->id, work_id);
    done_key(k2, sizeof k2, c->swarm, work_id);
    const char *args[] = {c->id, ep, rec};
    return submit_simple(h, S_COMPLETE, k1, k2, 3, args, epoch, done, arg, err, errlen);
}

/* ---------------------------------------------------------------- parsing */

void bc__work_item_free(bc__work_parsed_t *p)
{
    if (p == NULL)
        return;
    json_decref((json_t *)p->json);
    free(p->data);
    memset(p, 0, sizeof *p);
}

int bc__work_item_parse(const char *text, size_t len, bc__work_parsed_t *out)
{
    memset(out, 0, sizeof *out);
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    if (v == NULL || !json_is_object(v)) {
        json_decref(v);
        return -EBADMSG;
    }
    out->json = v;
    bc_work_item_t *it = &out->item;
    it->work_id = json_string_value(json_object_get(v, "workId"));
    it->assigned_to = json_string_value(json_object_get(v, "assignedTo"));
    it->status = json_string_value(json_object_get(v, "status"));
    it->transferred_from = json_string_value(json_object_get(v, "transferredFrom"));
    json_t *d = json_object_get(v, "data");
    if (d)
        out->data = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    it->data = out->data;
    json_t *s = json_object_get(v, "startedAt");
    it->started_at_ms =
        json_is_integer(s) && json_integer_value(s) > 0 ? (uint64_t)json_integer_value(s) : 0;
    json_t *e = json_object_get(v, "epoch");
    it->epoch =
        json_is_integer(e) && json_integer_value(e) > 0 ? (uint64_t)json_integer_value(e) : 1;
    return 0;
}

char *bc__work_moved_value(const bc__work_parsed_t *p, const char *new_owner, const char *dead,
                           const char *work_id, uint64_t now_ms)
{
    json_t *v = json_deep_copy((json_t *)p->json);
    if (v == NULL)
        return NULL;
    if (!json_is_string(json_object_get(v, "workId")))
        json_object_set_new(v, "workId", json_string(work_id));
    json_object_set_new(v, "assignedTo", json_string(new_owner));
    json_object_set_new(v, "status", json_string("transferred"));
    json_object_set_new(v, "epoch", json_integer((json_int_t)(p->item.epoch + 1)));
    json_object_set_new(v, "transferredFrom", json_string(dead));
    json_object_set_new(v, "transferredAt", json_integer((json_int_t)now_ms));
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(v);
    return s;
}

int bc__work_move(bc_hub_t *h, bc__op_t *op, const char *old_key, const char *new_key,
                  const char *old_val, size_t old_len, const char *new_val)
{
    const char *argv[] = {old_key, new_key, old_val, new_val};
    size_t lens[] = {strlen(old_key), strlen(new_key), old_len, strlen(new_val)};
    return bc__op_evalsha(h, op, h->work_scripts[S_MOVE], 2, 4, argv, lens);
}

int bc__work_move_status(const bc_redis_reply_msg_t *m, const char **why)
{
    return script_status(m, why);
}

/* ---------------------------------------------------------------- list */

typedef struct {
    bc__op_t op;
    bc_coord_t *c; /* counted */
    bc_work_list_fn fn;
    void *arg;
    char pattern[200];
    char **keys;
    size_t nkeys, cap;
    bool fetching;
} list_op_t;

static void list_finish(list_op_t *o, int rc, const bc_work_item_t *items, size_t n,
                        const char *why)
{
    o->fn(o->arg, rc, items, n, why);
    for (size_t i = 0; i < o->nkeys; i++)
        free(o->keys[i]);
    free(o->keys);
    bc__coord_release(o->c);
    free(o);
}

static void list_reply(bc__op_t *op, const bc_redis_reply_msg_t *m)
{
    list_op_t *o = (list_op_t *)op;
    const bc_reply_t *r = m->reply;
    if (m->status != BC_REDIS_OK || r == NULL || r->type != BC_REPLY_ARRAY) {
        list_finish(o, -EIO, NULL, 0,
                    r && r->type == BC_REPLY_ERROR ? r->str : bc_redis_status_name(m->status));
        return;
    }
    if (!o->fetching) { /* SCAN page: [cursor, [keys]] */
        if (r->elements != 2 || r->element[1]->type != BC_REPLY_ARRAY) {
            list_finish(o, -EIO, NULL, 0, "unexpected SCAN answer");
            return;
        }
        const bc_reply_t *ks = r->element[1];
        for (size_t i = 0; i < ks->elements; i++) {
            if (o->nkeys == o->cap) {
                size_t nc = o->cap ? o->cap * 2 : 16;
                char **k = realloc(o->keys, nc * sizeof *k);
                if (k == NULL)
                    abort();
                o->keys = k;
                o->cap = nc;
            }
            o->keys[o->nkeys] = strdup(ks->element[i]->str ? ks->element[i]->str : "");
            if (o->keys[o->nkeys] == NULL)
                abort();
            o->nkeys++;
        }
        const char *cur = r->element[0]->str ? r->element[0]->str : "0";
        if (strcmp(cur, "0") != 0) {
            const char *argv[] = {"SCAN", cur, "MATCH", o->pattern, "COUNT", "1000"};
            if (bc__op_cmd(op->h, op, 6, argv, NULL) != 0)
                list_finish(o, -EIO, NULL, 0, "cannot submit SCAN");
            return;
        }
        if (o->nkeys == 0) {
            list_finish(o, 0, NULL, 0, NULL);
            return;
        }
        o->fetching = true;
        const char **argv = malloc((o->nkeys + 1) * sizeof *argv);
        if (argv == NULL)
            abort();
        argv[0] = "MGET";
        for (size_t i = 0; i < o->nkeys; i++)
            argv[i + 1] = o->keys[i];
        int rc = bc__op_cmd(op->h, op, (int)o->nkeys + 1, argv, NULL);
        free(argv);
        if (rc != 0)
            list_finish(o, -EIO, NULL, 0, "cannot submit MGET");
        return;
    }
    /* MGET answer: parse what is still there (an item may have moved meanwhile). */
    bc__work_parsed_t *ps = calloc(r->elements ? r->elements : 1, sizeof *ps);
    bc_work_item_t *items = calloc(r->elements ? r->elements : 1, sizeof *items);
    if (ps == NULL || items == NULL)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const bc_reply_t *e = r->element[i];
        if (e->type != BC_REPLY_STRING || bc__work_item_parse(e->str, e->len, &ps[n]) != 0)
            continue;
        if (ps[n].item.work_id == NULL || ps[n].item.assigned_to == NULL ||
            strcmp(ps[n].item.assigned_to, o->c->id) != 0) {
            bc__work_item_free(&ps[n]);
            continue;
        }
        items[n] = ps[n].item;
        n++;
    }
    list_finish(o, 0, items, n, NULL);
    for (size_t i = 0; i < n; i++)
        bc__work_item_free(&ps[i]);
    free(ps);
    free(items);
}

int bc_work_list(bc_coord_t *c, bc_work_list_fn fn, void *arg)
{
    bc__coord_ack_due_flush();
    if (c == NULL || fn == NULL || c->swarm[0] == '\0')
        return -EINVAL;
    list_op_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return -ENOMEM;
    o->op.fn = list_reply;
    o->op.h = c->hub;
    o->c = bc__coord_retain(c);
    o->fn = fn;
    o->arg = arg;
    snprintf(o->pattern, sizeof o->pattern, "coordinator:work:%s:%s:*", c->swarm, c->id);
    const char *argv[] = {"SCAN", "0", "MATCH", o->pattern, "COUNT", "1000"};
    int rc = bc__op_cmd(c->hub, &o->op, 6, argv, NULL);
    if (rc != 0) {
        bc__coord_release(o->c);
        free(o);
    }
    return rc;
}

/* ---------------------------------------------------------------- activity (§4.6) */

int bc_coord_set_waiting_for(bc_coord_t *c, const char *const *ids, size_t n)
{
    bc__coord_ack_due_flush();
    if (c == NULL || (n > 0 && ids == NULL) || n > 1024)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!bc_coord_id_valid(NULL, ids[i], NULL, 0))
            return -EINVAL;
    bc_hub_t *h = c->hub;
    json_t *v = json_object();
    json_object_set_new(v, "coordinatorId", json_string(c->id));
    json_object_set_new(v, "lastActivity", json_integer((json_int_t)bc_hub_now_ms(h)));
    json_object_set_new(v, "iteration", json_integer((json_int_t)bc_coord_iteration(c)));
    if (c->phase)
        json_object_set_new(v, "phase", json_string(c->phase));
    json_t *wf = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(wf, json_string(ids[i]));
    json_object_set_new(v, "waitingFor", wf);
    char *val = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(v);
    if (val == NULL)
        return -ENOMEM;
    char key[BC_ID_MAX + 32];
    snprintf(key, sizeof key, "coordinator:activity:%s", c->id);
    const char *argv[] = {"SETEX", key, "600", val};
    int rc = bc_redis_cmd(h->redis, NULL, 0, BC_REDIS_CLASS_OTHER, 4, argv, NULL);
    free(val);
    return rc;
}
