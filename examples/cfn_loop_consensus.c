/* cfn_loop_consensus.c - the CFN Loop's consensus step, with blocking coordinators.
 *
 * One product owner and four validators, each a coordinator hosted in this process. They
 * could as well run in five processes on five machines: every signal goes through Redis,
 * signed with the shared secret.
 *
 *   product-owner  --validate-->    validator-1..4
 *   validator-N    --validation-->  product-owner   {validatorId, confidence, recommendations}
 *   product-owner  computes the consensus and decides PROCEED, DEFER or ESCALATE
 *   product-owner  --decide-->      validator-1..4  {decision, consensus, reasoning}
 *   product-owner  waits for the ACKs of its decide signals
 *
 * The blocking model. A coordinator "blocks" on a signal with
 *     bc_coord_wait(c, "validation", timeout_ms, on_validation, arg);
 * The call returns at once. on_validation runs later, on the coordinator, when a signal of
 * that type arrives (or with -ETIMEDOUT when the timeout passes). A coordinator's logic is
 * therefore a chain of such continuations, and no thread ever sleeps in a wait: a handful of
 * worker threads run thousands of coordinators. Signals that arrive before the wait, or of
 * another type, are kept until a wait takes them; none is lost.
 *
 * Run it:  REDIS_URL=redis://localhost:6379 \
 *          BLOCKING_COORDINATION_SECRET=$(openssl rand -hex 32) build/cfn-loop-consensus
 */
#include <blockcoord.h>
#include <blockcoord_cfn.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define VALIDATORS 4
#define TIMEOUT_MS 10000

static const char *const validator_ids[VALIDATORS] = {"validator-1", "validator-2", "validator-3",
                                                      "validator-4"};
static const double confidences[VALIDATORS] = {0.93, 0.88, 0.95, 0.91};

/* The main thread sleeps here until all five coordinators are done. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int finished, failed;

static void finish(bc_coord_t *c, const char *problem)
{
    pthread_mutex_lock(&done_lock);
    if (problem) {
        fprintf(stderr, "%s: %s\n", bc_coord_id(c), problem);
        failed = 1;
    }
    finished++;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

/* ---------------------------------------------------------------- validators */

static void validator_on_decide(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    if (status != 0) {
        finish(c, status == -ETIMEDOUT ? "no decide signal in time" : "stopped while waiting");
        return;
    }
    char decision[16], reasoning[128];
    printf("%s received decision %s (%s)\n", bc_coord_id(c),
           bc_signal_str(s, "decision", decision, sizeof decision) ? decision : "?",
           bc_signal_str(s, "reasoning", reasoning, sizeof reasoning) ? reasoning : "");
    finish(c, NULL);
}

static void validator_on_validate(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    int i = (int)(intptr_t)arg;
    if (status != 0) {
        finish(c, status == -ETIMEDOUT ? "no validate signal in time" : "stopped while waiting");
        return;
    }
    /* Review the work (here: a fixed confidence) and answer the sender. */
    char payload[256], err[200];
    snprintf(payload, sizeof payload,
             "{\"validatorId\":\"%s\",\"confidence\":%.2f,"
             "\"recommendations\":[\"Add integration tests for token expiry\"]}",
             bc_coord_id(c), confidences[i]);
    if (bc_coord_send(c, s->sender, "validation", payload, NULL, err, sizeof err) != 0) {
        finish(c, err);
        return;
    }
    /* Block until the product owner decides: this returns now, on_decide runs later. */
    bc_coord_wait(c, "decide", TIMEOUT_MS, validator_on_decide, arg);
}

static void validator_on_start(bc_coord_t *c, void *arg)
{
    bc_coord_wait(c, "validate", TIMEOUT_MS, validator_on_validate, arg);
}

/* ---------------------------------------------------------------- the product owner */

static int answered, acks_done;
static double confidence_sum;

static void po_on_ack(bc_coord_t *c, const bc_ack_result_t *r, void *arg)
{
    if (r->status == 0)
        printf("Acknowledged by %s after %llu us\n", r->ids[0], (unsigned long long)r->elapsed_us);
    else
        fprintf(stderr, "product-owner: no ACK from %s\n", r->ids[0]);
    if (++acks_done == VALIDATORS)
        finish(c, r->status == 0 ? NULL : "a decide signal was not acknowledged");
}

static void po_decide(bc_coord_t *c)
{
    double consensus = confidence_sum / VALIDATORS;
    const char *decision = consensus >= 0.90 ? "PROCEED" : consensus >= 0.75 ? "DEFER" : "ESCALATE";
    char reasoning[128], payload[256], err[200];
    snprintf(reasoning, sizeof reasoning, "Consensus %.2f from %d validators", consensus,
             VALIDATORS);
    printf("Decision: %s\nReasoning: %s\n", decision, reasoning);
    snprintf(payload, sizeof payload,
             "{\"decision\":\"%s\",\"consensus\":%.4f,\"reasoning\":\"%s\"}", decision, consensus,
             reasoning);
    for (int i = 0; i < VALIDATORS; i++) {
        char sid[BC_SIGNAL_ID_MAX + 1];
        if (bc_coord_send(c, validator_ids[i], "decide", payload, sid, err, sizeof err) != 0) {
            finish(c, err);
            return;
        }
        /* The validator's hub writes an ACK when it takes the signal; wait for it. */
        bc_coord_wait_acks(c, sid, &validator_ids[i], 1, TIMEOUT_MS, po_on_ack, NULL);
    }
}

static void po_on_validation(bc_coord_t *c, int status, const bc_signal_t *s, void *arg)
{
    if (status != 0) {
        finish(c, status == -ETIMEDOUT ? "not every validator answered in time"
                                       : "stopped while waiting");
        return;
    }
    double confidence = bc_signal_num(s, "confidence", 0);
    printf("Validation signal from %s (confidence %.2f)\n", s->sender, confidence);
    confidence_sum += confidence;
    if (++answered < VALIDATORS)
        bc_coord_wait(c, "validation", TIMEOUT_MS, po_on_validation, arg); /* block again */
    else
        po_decide(c);
}

static void po_on_start(bc_coord_t *c, void *arg)
{
    char err[200];
    for (int i = 0; i < VALIDATORS; i++)
        if (bc_coord_send(c, validator_ids[i], "validate",
                          "{\"task\":\"implement JWT authentication middleware\"}", NULL, err,
                          sizeof err) != 0) {
            finish(c, err);
            return;
        }
    bc_coord_wait(c, "validation", TIMEOUT_MS, po_on_validation, arg);
}

/* ---------------------------------------------------------------- main */

int main(void)
{
    const char *need[] = {"REDIS_URL", "BLOCKING_COORDINATION_SECRET"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(need[i]);
        if (v == NULL || *v == '\0') {
            fprintf(stderr,
                    "cfn-loop-consensus: %s is not set (REDIS_URL=redis://localhost:6379, "
                    "BLOCKING_COORDINATION_SECRET=$(openssl rand -hex 32))\n",
                    need[i]);
            return 2;
        }
    }
    bc_runtime_t *rt;
    bc_hub_t *hub;
    char err[512];
    if (bc_runtime_create(NULL, &rt) != 0)
        return 1;
    if (bc_hub_create(rt, NULL, &hub, err, sizeof err) != 0) {
        fprintf(stderr, "cfn-loop-consensus: %s\n", err);
        bc_runtime_destroy(rt);
        return 1;
    }
    int rc = bc_hub_wait_ready(hub, 10000) == 0 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "cfn-loop-consensus: Redis did not answer within 10 s\n");
    /* Host the four validators, then the product owner. Each one's on_start runs on the
     * coordinator once it can receive; a signal sent to it earlier waits in Redis. */
    for (int i = 0; i <= VALIDATORS && rc == 0; i++) {
        bc_coord_opts_t o;
        bc_coord_opts_init(&o);
        o.id = i < VALIDATORS ? validator_ids[i] : "product-owner";
        o.on_start = i < VALIDATORS ? validator_on_start : po_on_start;
        o.arg = (void *)(intptr_t)i;
        if ((rc = bc_coord_spawn(hub, &o, NULL, err, sizeof err)) != 0)
            fprintf(stderr, "cfn-loop-consensus: cannot host %s: %s\n", o.id, err);
    }

    if (rc == 0) { /* wait (this thread really sleeps) until all five are done */
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 3 * TIMEOUT_MS / 1000;
        pthread_mutex_lock(&done_lock);
        while (finished < VALIDATORS + 1 && rc == 0)
            rc = pthread_cond_timedwait(&done_cond, &done_lock, &deadline);
        if (rc != 0 || failed)
            rc = -1;
        pthread_mutex_unlock(&done_lock);
    }
    bc_hub_destroy(hub);
    bc_runtime_destroy(rt);
    if (rc != 0)
        fprintf(stderr, "cfn-loop-consensus: the consensus round did not complete\n");
    return rc == 0 ? 0 : 1;
}
