/* cmd_signal.c - `blockcoord signal`: send one signed signal from the command line, and
 * optionally wait for the receiver's ACK.
 *
 * The sender is a send-only coordinator (no heartbeat, it never consumes signals addressed to
 * its id), so it may borrow the id of a coordinator running elsewhere. Everything the user
 * typed is validated before the runtime starts: a bad id, type or payload never reaches Redis.
 *
 * Before the process exits, bc_coord_flush waits until Redis has answered the signal's write
 * (and with it the hint and Node's marker, submitted before it); tearing the hub down earlier
 * would answer them with "shutdown" unsent.
 */
#include "cli.h"

#include "blockcoord_cfn.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define READY_TIMEOUT_MS 10000
#define DRAIN_TIMEOUT_MS 10000

typedef struct {
    const char *from, *to, *type, *payload;
    uint32_t wait_ack_ms; /* 0: do not wait */
    int json;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;   /* the coordinator's part is over */
    int result; /* exit status */
    int send_failed;
    char send_error[256];
    char sid[BC_SIGNAL_ID_MAX + 1];
    double rtt_ms;
} sig_ctx_t;

static void signal_usage(FILE *f)
{
    fputs("usage: blockcoord signal --from ID --to ID --type TYPE [--payload JSON]\n"
          "                         [--wait-ack MS] [--json]\n"
          "  Send one signed signal (PROTOCOL.md §2) from coordinator --from to --to.\n"
          "  --from ID       sender id (^[A-Za-z0-9_-]{1,64}$); may be hosted elsewhere\n"
          "  --to ID         receiver id\n"
          "  --type TYPE     signal type (^[a-z][a-z0-9_]{0,31}$), e.g. wake, completion\n"
          "  --payload JSON  a JSON object carried with the signal\n"
          "  --wait-ack MS   wait up to MS ms for the receiver's valid ACK (exit 1 without)\n"
          "  --json          print one JSON object instead of text\n"
          "environment: REDIS_URL, REDIS_PASSWORD, REDIS_DB, BLOCKING_COORDINATION_SECRET\n"
          "exit status: 0 sent (and acknowledged), 1 failure, 2 usage error\n",
          f);
}

static void ctx_finish(sig_ctx_t *x, int result)
{
    pthread_mutex_lock(&x->lock);
    if (!x->done) {
        x->done = 1;
        x->result = result;
    }
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

static void on_acks(bc_coord_t *c, const bc_ack_result_t *r, void *arg)
{
    sig_ctx_t *x = arg;
    (void)c;
    pthread_mutex_lock(&x->lock);
    x->rtt_ms = (double)r->elapsed_us / 1000.0;
    pthread_mutex_unlock(&x->lock);
    ctx_finish(x, r->status == 0 && r->n_acked == r->n ? 0 : 1);
}

static void on_start(bc_coord_t *c, void *arg)
{
    sig_ctx_t *x = arg;
    char err[256];
    int rc = bc_coord_send(c, x->to, x->type, x->payload, x->sid, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "Error: %s\n", rc == -EINVAL ? err : bc_strerror(rc));
        ctx_finish(x, rc == -EINVAL ? 2 : 1);
        return;
    }
    if (!x->json) {
        printf("Signal sent: %s\n", x->sid);
        fflush(stdout);
    }
    if (x->wait_ack_ms == 0) {
        ctx_finish(x, 0);
        return;
    }
    const char *ids[] = {x->to};
    rc = bc_coord_wait_acks(c, x->sid, ids, 1, x->wait_ack_ms, on_acks, x);
    if (rc != 0) {
        fprintf(stderr, "Error: cannot wait for the ACK: %s\n", bc_strerror(rc));
        ctx_finish(x, 1);
    }
}

static void on_event(bc_coord_t *c, const bc_coord_event_t *ev, void *arg)
{
    sig_ctx_t *x = arg;
    (void)c;
    if (ev->type != BC_EV_SEND_FAILED)
        return;
    pthread_mutex_lock(&x->lock);
    x->send_failed = 1;
    snprintf(x->send_error, sizeof x->send_error, "%s", ev->detail ? ev->detail : "unknown");
    pthread_mutex_unlock(&x->lock);
    ctx_finish(x, 1);
}

static int parse_args(int argc, char **argv, sig_ctx_t *x)
{
    static const struct option opts[] = {
        {"from", required_argument, 0, 'f'},     {"to", required_argument, 0, 't'},
        {"type", required_argument, 0, 'y'},     {"payload", required_argument, 0, 'p'},
        {"wait-ack", required_argument, 0, 'w'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        uint64_t v;
        switch (c) {
        case 'f':
            x->from = optarg;
            break;
        case 't':
            x->to = optarg;
            break;
        case 'y':
            x->type = optarg;
            break;
        case 'p':
            x->payload = optarg;
            break;
        case 'w':
            if (bc_cli_parse_u64("signal", "wait-ack", optarg, 1, UINT32_MAX, &v) != 0)
                return 2;
            x->wait_ack_ms = (uint32_t)v;
            break;
        case 'j':
            x->json = 1;
            break;
        case 'h':
            signal_usage(stdout);
            return 1;
        default:
            signal_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "blockcoord signal: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    const char *missing = !x->from ? "--from" : !x->to ? "--to" : !x->type ? "--type" : NULL;
    if (missing) {
        fprintf(stderr, "Error: %s is required (see blockcoord signal --help)\n", missing);
        return 2;
    }
    char err[256];
    if (!bc_coord_id_valid("--from", x->from, err, sizeof err) ||
        !bc_coord_id_valid("--to", x->to, err, sizeof err) ||
        !bc_signal_type_valid(x->type, err, sizeof err)) {
        fprintf(stderr, "Error: %s\n", err);
        return 2;
    }
    if (x->payload) {
        json_error_t je;
        json_t *p = json_loads(x->payload, JSON_REJECT_DUPLICATES, &je);
        int ok = p && json_is_object(p);
        json_decref(p);
        if (!ok) {
            fprintf(stderr, "Error: --payload must be a JSON object%s%s\n", p ? "" : ": ",
                    p ? "" : je.text);
            return 2;
        }
    }
    return 0;
}

static void print_json_result(const sig_ctx_t *x, int rc)
{
    json_t *o = json_object();
    json_object_set_new(o, "messageId", json_string(x->sid));
    json_object_set_new(o, "from", json_string(x->from));
    json_object_set_new(o, "to", json_string(x->to));
    json_object_set_new(o, "type", json_string(x->type));
    json_object_set_new(o, "sent", json_boolean(x->sid[0] && !x->send_failed));
    if (x->wait_ack_ms) {
        json_object_set_new(o, "acked", json_boolean(rc == 0));
        if (rc == 0)
            json_object_set_new(o, "roundTripMs", json_real(x->rtt_ms));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(o);
}

int bc_cli_signal(int argc, char **argv)
{
    sig_ctx_t x;
    memset(&x, 0, sizeof x);
    int prc = parse_args(argc, argv, &x);
    if (prc == 1)
        return 0;
    if (prc != 0)
        return 2;
    pthread_mutex_init(&x.lock, NULL);
    pthread_cond_init(&x.cond, NULL);

    bc_runtime_opts_t ro;
    bc_runtime_opts_init(&ro);
    if (ro.workers == 0 || ro.workers > 2)
        ro.workers = 2; /* one coordinator: more workers only cost start-up time */
    bc_runtime_t *rt;
    bc_hub_opts_t ho;
    bc_hub_opts_init(&ho);
    ho.heartbeats = 0; /* a send-only coordinator has none; no heartbeat actor traffic either */
    bc_hub_t *hub = NULL;
    int rc = bc_cli_start_hub("Error: ", &ro, &ho, &rt, &hub);
    if (rc != 0)
        return rc;
    char err[512];
    int result = 1;
    bc_coord_t *coord = NULL;
    if (bc_hub_wait_ready(hub, READY_TIMEOUT_MS) != 0) {
        fprintf(stderr, "Error: Redis not reachable within %d s (check REDIS_URL)\n",
                READY_TIMEOUT_MS / 1000);
        goto out;
    }
    bc_coord_opts_t co;
    bc_coord_opts_init(&co);
    co.id = x.from;
    co.send_only = 1;
    co.on_start = on_start;
    co.on_event = on_event;
    co.arg = &x;
    rc = bc_coord_spawn(hub, &co, &coord, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "Error: %s\n", err);
        result = rc == -EINVAL ? 2 : 1;
        goto out;
    }

    /* The ACK wait has its own timeout; give the start-up its own allowance on top. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += READY_TIMEOUT_MS / 1000 + x.wait_ack_ms / 1000 + 1;
    pthread_mutex_lock(&x.lock);
    while (!x.done)
        if (pthread_cond_timedwait(&x.cond, &x.lock, &dl) != 0)
            break;
    int done = x.done;
    result = x.result;
    pthread_mutex_unlock(&x.lock);
    if (!done) {
        fprintf(stderr, "Error: the coordinator %s did not start (Redis unreachable?)\n", x.from);
        result = 1;
        goto out;
    }

    if (x.sid[0]) {
        /* Everything the send submitted must reach Redis before the layer is torn down. */
        int drained = bc_coord_flush(coord, DRAIN_TIMEOUT_MS);
        pthread_mutex_lock(&x.lock);
        int failed = x.send_failed;
        pthread_mutex_unlock(&x.lock);
        if (failed) {
            fprintf(stderr, "Error: signal %s was not written: %s\n", x.sid, x.send_error);
            result = 1;
        } else if (drained != 0) {
            fprintf(stderr, "Error: Redis did not confirm signal %s within %d s\n", x.sid,
                    DRAIN_TIMEOUT_MS / 1000);
            result = 1;
        } else if (x.wait_ack_ms && !x.json) {
            if (result == 0)
                printf("ACK received from %s (round trip %.3f ms)\n", x.to, x.rtt_ms);
            else
                fprintf(stderr, "Error: no ACK from %s within %u ms\n", x.to, x.wait_ack_ms);
        }
        if (x.json)
            print_json_result(&x, result);
    }
out:
    bc_hub_destroy(hub);
    bc_coord_release(coord);
    bc_runtime_destroy(rt);
    pthread_mutex_destroy(&x.lock);
    pthread_cond_destroy(&x.cond);
    return result;
}
