/* cmd_status.c - `blockcoord status [ID...] [--json]`: coordinators as Redis sees them.
 *
 * Without ids it lists every heartbeat (SCAN MATCH blocking:heartbeat:* with one pipelined MGET
 * per page, so 100,000 coordinators cost about a hundred round trips) plus registered
 * coordinators whose heartbeat key has expired. Ages use Redis's clock (PROTOCOL §4.3).
 * Foreign (Node) heartbeats are shown with what they carry; a value that does not parse is
 * listed as "unreadable" rather than hidden.
 */
#include "cli.h"

#include "redis_conf.h"

#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE "5000"

typedef struct {
    char *id;
    int64_t age_ms; /* -1: no heartbeat key */
    char status[16], state[16], host[64];
    long long pid;
    uint64_t iteration, rx, tx;
    char swarm[65];
    bool registered, present, readable; /* present: a heartbeat key exists */
} row_t;

typedef struct {
    row_t *v;
    size_t n, cap;
} rows_t;

static row_t *add_row(rows_t *r, const char *id)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        row_t *v = realloc(r->v, nc * sizeof *v);
        if (v == NULL)
            abort();
        r->v = v;
        r->cap = nc;
    }
    row_t *x = &r->v[r->n++];
    memset(x, 0, sizeof *x);
    if ((x->id = strdup(id)) == NULL)
        abort();
    x->age_ms = -1;
    return x;
}

static void status_usage(FILE *f)
{
    fputs("usage: blockcoord status [ID...] [--json]\n"
          "  List coordinators as Redis sees them: heartbeat age, status, state, iteration,\n"
          "  signals received/sent, host and swarm. Without ids, every heartbeat and every\n"
          "  registered coordinator whose heartbeat has expired.\n"
          "  --json   one JSON object: {\"now\":ms,\"coordinators\":[...]}\n"
          "environment: REDIS_URL, REDIS_PASSWORD, REDIS_DB\n"
          "exit status: 0 listed, 1 Redis unreachable or an id not found, 2 usage error\n",
          f);
}

static void fill(row_t *x, const char *val, size_t len, uint64_t now)
{
    json_t *j = json_loadb(val, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    json_t *ts = json_object_get(j, "timestamp");
    if (!json_is_integer(ts))
        ts = json_object_get(j, "lastHeartbeat");
    if (json_is_integer(ts)) {
        x->readable = true;
        int64_t t = json_integer_value(ts);
        x->age_ms = (int64_t)now > t ? (int64_t)now - t : 0;
    }
#define STR(name, dst)                                                                             \
    do {                                                                                           \
        const char *s_ = json_string_value(json_object_get(j, name));                              \
        snprintf(dst, sizeof dst, "%s", s_ ? s_ : "");                                             \
    } while (0)
    STR("status", x->status);
    STR("state", x->state);
    STR("hostname", x->host);
    STR("swarmId", x->swarm);
#undef STR
    json_t *p = json_object_get(j, "pid");
    x->pid = json_is_integer(p) ? json_integer_value(p) : 0;
    json_t *it = json_object_get(j, "iteration");
    x->iteration = json_is_integer(it) ? (uint64_t)json_integer_value(it) : 0;
    json_t *rx = json_object_get(j, "signalsReceived"), *tx = json_object_get(j, "signalsSent");
    x->rx = json_is_integer(rx) ? (uint64_t)json_integer_value(rx) : 0;
    x->tx = json_is_integer(tx) ? (uint64_t)json_integer_value(tx) : 0;
    json_decref(j);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const row_t *)a)->id, ((const row_t *)b)->id);
}

/* MGET the heartbeats of rows [from, r->n). */
static int fetch(redisContext *ctx, rows_t *r, size_t from, uint64_t now, char *why, size_t len)
{
    size_t n = r->n - from;
    if (n == 0)
        return 0;
    const char **argv = calloc(n + 1, sizeof *argv);
    char **keys = calloc(n, sizeof *keys);
    if (argv == NULL || keys == NULL)
        abort();
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        if (asprintf(&keys[i], "blocking:heartbeat:%s", r->v[from + i].id) < 0)
            abort();
        argv[i + 1] = keys[i];
    }
    redisReply *rep = redisCommandArgv(ctx, (int)n + 1, argv, NULL);
    int rc = 0;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        snprintf(why, len, "MGET failed: %s", rep ? rep->str : ctx->errstr);
        rc = -EIO;
    } else {
        for (size_t i = 0; i < rep->elements && i < n; i++)
            if (rep->element[i]->type == REDIS_REPLY_STRING) {
                r->v[from + i].present = true;
                fill(&r->v[from + i], rep->element[i]->str, rep->element[i]->len, now);
            }
    }
    if (rep)
        freeReplyObject(rep);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    return rc;
}

static void print_rows(const rows_t *r, uint64_t now, bool json)
{
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < r->n; i++) {
            const row_t *x = &r->v[i];
            json_t *o = json_object();
            json_object_set_new(o, "coordinatorId", json_string(x->id));
            json_object_set_new(o, "heartbeatAgeMs",
                                x->age_ms >= 0 ? json_integer(x->age_ms) : json_null());
            json_object_set_new(o, "status",
                                json_string(!x->present    ? "expired"
                                            : !x->readable ? "unreadable"
                                                           : (x->status[0] ? x->status : "alive")));
            if (x->state[0])
                json_object_set_new(o, "state", json_string(x->state));
            json_object_set_new(o, "iteration", json_integer((json_int_t)x->iteration));
            json_object_set_new(o, "signalsReceived", json_integer((json_int_t)x->rx));
            json_object_set_new(o, "signalsSent", json_integer((json_int_t)x->tx));
            if (x->host[0])
                json_object_set_new(o, "hostname", json_string(x->host));
            if (x->pid)
                json_object_set_new(o, "pid", json_integer(x->pid));
            if (x->swarm[0])
                json_object_set_new(o, "swarmId", json_string(x->swarm));
            json_object_set_new(o, "registered", json_boolean(x->registered));
            json_array_append_new(arr, o);
        }
        json_t *top = json_object();
        json_object_set_new(top, "now", json_integer((json_int_t)now));
        json_object_set_new(top, "coordinators", arr);
        json_dumpf(top, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(top);
        return;
    }
    printf("%-28s %10s %-10s %-10s %6s %10s %10s  %-24s %s\n", "ID", "AGE", "STATUS", "STATE",
           "ITER", "RECEIVED", "SENT", "HOST:PID", "SWARM");
    for (size_t i = 0; i < r->n; i++) {
        const row_t *x = &r->v[i];
        char age[24], host[96];
        if (x->age_ms < 0)
            snprintf(age, sizeof age, "-");
        else
            snprintf(age, sizeof age, "%.1fs", (double)x->age_ms / 1000.0);
        if (x->host[0])
            snprintf(host, sizeof host, "%s:%lld", x->host, x->pid);
        else
            snprintf(host, sizeof host, "-");
        printf("%-28s %10s %-10s %-10s %6" PRIu64 " %10" PRIu64 " %10" PRIu64 "  %-24s %s\n", x->id,
               age,
               !x->present    ? "expired"
               : !x->readable ? "unreadable"
                              : (x->status[0] ? x->status : "alive"),
               x->state[0] ? x->state : "-", x->iteration, x->rx, x->tx, host,
               x->swarm[0] ? x->swarm : "-");
    }
    printf("%zu coordinator%s\n", r->n, r->n == 1 ? "" : "s");
}

int bc_cli_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'h':
            status_usage(stdout);
            return 0;
        default:
            status_usage(stderr);
            return 2;
        }
    }
    char err[256];
    for (int i = optind; i < argc; i++)
        if (!bc_coord_id_valid("coordinator id", argv[i], err, sizeof err)) {
            fprintf(stderr, "blockcoord status: %s\n", err);
            return 2;
        }
    bc_redis_conf_t conf;
    if (bc_redis_conf_from_env(&conf, err, sizeof err) != 0) {
        fprintf(stderr, "blockcoord status: %s\n", err);
        return 2;
    }
    redisContext *ctx = bc_cli_redis_connect(&conf, err, sizeof err);
    bc_redis_conf_free(&conf);
    if (ctx == NULL) {
        fprintf(stderr, "blockcoord status: cannot reach Redis: %s\n", err);
        return 1;
    }
    int status = 0;
    rows_t rows = {0};
    redisReply *t = bc_cli_redis_cmd(ctx, err, sizeof err, "TIME");
    uint64_t now = 0;
    if (t && t->type == REDIS_REPLY_ARRAY && t->elements == 2)
        now = strtoull(t->element[0]->str, NULL, 10) * 1000 +
              strtoull(t->element[1]->str, NULL, 10) / 1000;
    if (t)
        freeReplyObject(t);
    if (now == 0) {
        fprintf(stderr, "blockcoord status: TIME failed: %s\n", err);
        redisFree(ctx);
        return 1;
    }
    if (optind < argc) {
        for (int i = optind; i < argc; i++)
            add_row(&rows, argv[i]);
        if (fetch(ctx, &rows, 0, now, err, sizeof err) != 0)
            status = 1;
        /* One pipelined batch of ZSCOREs, not a round trip per id. */
        for (size_t i = 0; i < rows.n; i++)
            redisAppendCommand(ctx, "ZSCORE blocking:registry %s", rows.v[i].id);
        for (size_t i = 0; i < rows.n; i++) {
            void *rep = NULL;
            redisReply *z = redisGetReply(ctx, &rep) == REDIS_OK ? rep : NULL;
            rows.v[i].registered = z && z->type == REDIS_REPLY_STRING;
            if (z)
                freeReplyObject(z);
            if (!rows.v[i].present && !rows.v[i].registered) {
                fprintf(stderr, "blockcoord status: %s: no heartbeat and not registered\n",
                        rows.v[i].id);
                status = 1;
            }
        }
    } else {
        /* Every heartbeat, page by page. */
        char cursor[32] = "0";
        do {
            redisReply *s = bc_cli_redis_cmd(
                ctx, err, sizeof err, "SCAN %s MATCH blocking:heartbeat:* COUNT " PAGE, cursor);
            if (s == NULL || s->type != REDIS_REPLY_ARRAY || s->elements != 2) {
                fprintf(stderr, "blockcoord status: SCAN failed: %s\n", err);
                status = 1;
                if (s)
                    freeReplyObject(s);
                break;
            }
            snprintf(cursor, sizeof cursor, "%s", s->element[0]->str);
            size_t from = rows.n;
            for (size_t i = 0; i < s->element[1]->elements; i++)
                add_row(&rows, s->element[1]->element[i]->str + strlen("blocking:heartbeat:"));
            freeReplyObject(s);
            if (fetch(ctx, &rows, from, now, err, sizeof err) != 0) {
                fprintf(stderr, "blockcoord status: %s\n", err);
                status = 1;
                break;
            }
        } while (strcmp(cursor, "0") != 0);
        /* Registered ones: mark them, and add those whose key has expired. */
        redisReply *z = bc_cli_redis_cmd(ctx, err, sizeof err, "ZRANGE blocking:registry 0 -1");
        if (z && z->type == REDIS_REPLY_ARRAY) {
            qsort(rows.v, rows.n, sizeof *rows.v, by_id);
            size_t known = rows.n;
            for (size_t i = 0; i < z->elements; i++) {
                row_t key = {.id = z->element[i]->str};
                row_t *hit = bsearch(&key, rows.v, known, sizeof *rows.v, by_id);
                if (hit)
                    hit->registered = true;
                else
                    add_row(&rows, z->element[i]->str)->registered = true;
            }
        }
        if (z)
            freeReplyObject(z);
    }
    qsort(rows.v, rows.n, sizeof *rows.v, by_id);
    print_rows(&rows, now, json);
    for (size_t i = 0; i < rows.n; i++)
        free(rows.v[i].id);
    free(rows.v);
    redisFree(ctx);
    return status;
}
