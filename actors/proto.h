/* proto.h - wire codec for the blockcoord protocol (docs/protocol.md, PROTOCOL.md v1).
 *
 * Pure functions that turn native values into the exact bytes stored in Redis and back:
 * identifier rules (§1), HMAC-SHA256 signing keyed by the raw shared secret, signals (§2.1),
 * per-signal ACKs and ACK slots (§3.1, §3.2). No Redis, no logging, no allocation visible to
 * the caller except where a function says so. Every function may be called from any thread;
 * a bc_hmac_t is immutable after creation and may be shared by all threads.
 */
#ifndef BC_PROTO_H
#define BC_PROTO_H

#include <stddef.h>
#include <string.h>
#include <stdint.h>

#include <jansson.h>

#define BC_ID_MAX 64     /* coordinator/swarm/work id max length */
#define BC_TYPE_MAX 32   /* signal type max length */
#define BC_SIGID_MAX 255 /* signalId / messageId max length */

/* ------------------------------------------------------------------ identifiers (§1) */

/* 1 iff s matches ^[A-Za-z0-9_-]{1,64}$ (coordinator, swarm and work ids); NULL -> 0. */
int bc_id_valid(const char *s);

/* 1 iff s matches ^[a-z][a-z0-9_]{0,31}$ (signal types); NULL -> 0. */
int bc_type_valid(const char *s);

/* 1 iff s is 1..255 characters of [A-Za-z0-9_:-] (signalId, messageId: the only identifiers
 * in which ':' is allowed); NULL -> 0. */
int bc_sigid_valid(const char *s);

/* Write into buf (len bytes, always NUL-terminated when len > 0; longer text is cut) a
 * message saying what is wrong with id s, prefixed by `what` ("coordinator id", "sender id",
 * ...): `coordinator id "coord a": invalid character ' ' at offset 5 (allowed: A-Z a-z 0-9 _
 * -)`, `coordinator id "" is empty`, `coordinator id "aaa..." is 65 characters (max 64)`,
 * `coordinator id is missing (NULL)`, or `coordinator id "x" is valid`. Offsets count bytes
 * from 0; non-printable and non-ASCII bytes are shown as \xNN, long ids are quoted cut with
 * "...". Returns buf. */
const char *bc_id_explain(const char *what, const char *s, char *buf, size_t len);

/* Same as bc_id_explain for a signal type (prefix "signal type"), also naming a first
 * character that is not a lowercase letter. Returns buf. */
const char *bc_type_explain(const char *s, char *buf, size_t len);

/* ------------------------------------------------------------------ HMAC (§1) */

/* HMAC-SHA256 keyed once. Immutable after bc_hmac_create: any number of threads may use one
 * bc_hmac_t concurrently. */
typedef struct bc_hmac_s bc_hmac_t;

/* Key an HMAC with the raw bytes key[0..keylen) (the bytes of BLOCKING_COORDINATION_SECRET,
 * never hex-decoded; keys longer than 64 bytes are hashed first, per RFC 2104). The key bytes
 * are not kept, only the padded digest states. Returns 0 and *out (release with
 * bc_hmac_destroy), -EINVAL if key or out is NULL or keylen is 0, -ENOMEM if out of
 * memory. */
int bc_hmac_create(const void *key, size_t keylen, bc_hmac_t **out);

/* Release h (NULL allowed). No thread may be using h. */
void bc_hmac_destroy(bc_hmac_t *h);

/* The HMAC of msg[0..len) as 64 lowercase hex digits plus NUL in out. Any thread; each
 * thread keeps one scratch digest context for its lifetime (freed when the thread exits).
 * Aborts if OpenSSL fails (out of memory). */
void bc_hmac_hex(const bc_hmac_t *h, const char *msg, size_t len, char out[65]);

/* 1 iff got (got_len bytes, need not be NUL-terminated) is exactly 64 hex digits, either
 * case, equal to expected (64 lowercase hex digits); 0 otherwise, including NULL arguments,
 * another length or a non-hex byte. The comparison of the 64 digits takes the same time
 * whatever their values. */
int bc_sig_equal(const char *expected, const char *got, size_t got_len);

/* Render JSON value v the way JavaScript's String() prints it, which is what the Node peers
 * sign (§3.1): integer -> decimal digits; real -> the shortest decimal that reads back as the
 * same double, positional unless |x| >= 1e21 or |x| < 1e-6 (1.76e12 -> "1760000000000", 2.0
 * -> "2", 0.5 -> "0.5", 1e21 -> "1e+21", 1e-7 -> "1e-7"); string -> its bytes verbatim.
 * Writes out (len bytes, NUL-terminated). Returns the length written excluding the NUL, or
 * -EINVAL for NULL, null, true, false, an object or an array, or if the text does not fit. */
int bc_js_render(const json_t *v, char *out, size_t len);

/* ------------------------------------------------------------------ signals (§2.1) */

#define BC_SIG_NONE 0  /* no signature member */
#define BC_SIG_VALID 1 /* signature present and verified */

/* A decoded signal. Fixed-size members are NUL-terminated. */
typedef struct bc_sig_fields {
    uint64_t timestamp; /* ms, > 0 */
    uint64_t iteration; /* 0 when absent */
    char sender[BC_ID_MAX + 1], receiver[BC_ID_MAX + 1], type[BC_TYPE_MAX + 1];
    char message_id[BC_SIGID_MAX + 1]; /* given, or "<sender>:<receiver>:<type>:<it>:<ts>" */
    char *payload; /* compact JSON of the payload object (malloc'd), or NULL when absent */
    int signature; /* BC_SIG_NONE or BC_SIG_VALID */
} bc_sig_fields_t;

/* Free f->payload and zero *f. Safe on a zeroed or already cleared struct; NULL allowed. */
void bc_sig_fields_clear(bc_sig_fields_t *f);

/* Encode a native signal into buf as compact JSON with the members, in order, timestamp,
 * senderId, receiverId, iteration, type, payload (only if payload_json is not NULL),
 * messageId ("<sender>:<receiver>:<type>:<iteration>:<timestamp>") and signature (HMAC of
 * "<sender>:<receiver>:<type>:<timestamp>"). payload_json must be the text of a JSON object
 * (any whitespace); it is re-emitted compact the way JSON.stringify writes it: member order
 * kept, numbers in their shortest form (0.92 stays 0.92, 2.0 becomes 2), non-ASCII UTF-8
 * kept. On success writes the messageId to message_id_out (if not NULL; BC_SIGID_MAX + 1
 * bytes) and returns the length of the NUL-terminated text in buf (excluding the NUL).
 * Errors, with a message in err (if errlen > 0) naming the problem and quoting the value:
 * -EINVAL for an invalid sender or receiver id or type, timestamp 0, or a payload that is
 * not valid JSON or not an object; -ENOSPC if buf is too small (the message says how many
 * bytes are needed). Nothing is kept; any thread. */
int bc_sig_encode(const bc_hmac_t *h, uint64_t timestamp, const char *sender, const char *receiver,
                  uint64_t iteration, const char *type, const char *payload_json, char *buf,
                  size_t buflen, char *message_id_out, char *err, size_t errlen);

/* Why bc_sig_decode refused a value (the negative return values). */
typedef enum {
    BC_REJ_MALFORMED = -1, /* unparseable, wrong shape, invalid id/type, wrong receiver */
    BC_REJ_SIGNATURE = -2, /* signature present but wrong */
    BC_REJ_UNSIGNED = -3,  /* no signature while one is required */
} bc_sig_reject_t;

/* Decode and verify the signal value json[0..len) read from blocking:signal:<key_receiver>
 * (or from the queue or notify copy for that receiver). Accepted shapes, any member order and
 * any whitespace: native/Node {timestamp, senderId, receiverId, iteration, type, payload?,
 * messageId, signature?} and the tutorial's {senderId, receiverId, type, timestamp,
 * signature?}. timestamp (required, > 0) and iteration (optional, >= 0) are JSON integers or
 * integral reals (1.76e12); a member whose value is null counts as absent (JSON.stringify
 * writes NaN as null) except for the four required ones. The signature, when present, must be
 * the HMAC of "<senderId>:<receiverId>:<type>:<timestamp>" with timestamp rendered by
 * bc_js_render (either hex case); with h NULL a present signature is refused. key_receiver
 * NULL skips the receiver check.
 *
 * Returns 0 and fills *out (release with bc_sig_fields_clear; payload malloc'd, aborts on
 * out-of-memory). Otherwise *out is zeroed, *why (if why is not NULL) points to a static
 * message and the return value is a bc_sig_reject_t:
 *   BC_REJ_MALFORMED  "not JSON", "not a JSON object", "missing senderId", "senderId is not a
 *                     string", "invalid senderId" (same three for receiverId, type and
 *                     timestamp: "timestamp is not a number", "invalid timestamp"),
 *                     "receiverId does not match the key", "iteration is not a number",
 *                     "invalid iteration", "payload is not a JSON object", "messageId is not a
 *                     string", "invalid messageId";
 *   BC_REJ_SIGNATURE  "invalid signature" (wrong value, not 64 hex digits, not a string);
 *   BC_REJ_UNSIGNED   "missing signature" (only when require_signature != 0).
 * Malformed values are reported before signature problems. Never crashes on any input. */
int bc_sig_decode(const bc_hmac_t *h, const char *json, size_t len, const char *key_receiver,
                  int require_signature, bc_sig_fields_t *out, const char **why);

/* ------------------------------------------------------------------ ACKs (§3.1, §3.2) */

/* Encode the per-signal ACK stored at blocking:ack:<acker>:<signal_id>: compact JSON with
 * members coordinatorId, signalId, timestamp, iteration, status ("received"), signature (HMAC
 * of "<acker>:<signal_id>:<timestamp>:<iteration>") and metadata {"signalType":signal_type,
 * "phase":phase} (phase omitted when NULL; any UTF-8 text, escaped as JSON.stringify does).
 * On success writes the signature to sig_out (if not NULL; 65 bytes) and returns the length
 * of the NUL-terminated text in buf (excluding the NUL). Returns -EINVAL for an invalid acker
 * id, signal_id or signal_type, or a phase that is not valid UTF-8; -ENOSPC if buf is too
 * small. Any thread. */
int bc_ack_encode(const bc_hmac_t *h, const char *acker, const char *signal_id, uint64_t timestamp,
                  uint64_t iteration, const char *signal_type, const char *phase, char *buf,
                  size_t buflen, char *sig_out);

/* Encode the ACK slot stored at blocking:ack:<sender>: compact JSON with members receiverId
 * (= sender, the one the ACK is for), timestamp, coordinatorId (= acker), signalId and
 * signature (the per-signal ACK's, as written by bc_ack_encode). Returns the length written
 * (excluding the NUL), -EINVAL for an invalid sender or acker id, signal_id, or a signature
 * that is not 64 hex digits, -ENOSPC if buf is too small. Any thread. */
int bc_ack_slot_encode(const char *sender, uint64_t timestamp, const char *acker,
                       const char *signal_id, const char *signature, char *buf, size_t buflen);

/* What a verified ACK (or an ACK slot doorbell) says. Strings are NUL-terminated. */
typedef struct bc_ack_fields {
    char acker[BC_ID_MAX + 1];
    char signal_id[BC_SIGID_MAX + 1];
    uint64_t timestamp; /* 0 if absent, negative, fractional or a non-numeric string */
    char signal_type[BC_TYPE_MAX + 1]; /* metadata.signalType if a short string, else "" */
} bc_ack_fields_t;

/* Verify the ACK value json[0..len) read from blocking:ack:<key_acker>:<key_signal_id>, per
 * §3.1: it parses as an object; coordinatorId == key_acker and signalId == key_signal_id (JSON
 * strings); timestamp and iteration are present as integer, real or string (rendered with
 * bc_js_render for the HMAC, strings verbatim); status == "received"; signature is exactly 64
 * hex digits (either case) equal to the HMAC of "<coordinatorId>:<signalId>:<timestamp>:
 * <iteration>". Duplicate members: the last one counts, as in JSON.parse.
 * Returns 0 (and fills *out if not NULL) or -EINVAL with *why (if why is not NULL) a static
 * message: "not JSON", "not a JSON object", "invalid key" (key_acker or key_signal_id NULL or
 * longer than BC_ID_MAX / BC_SIGID_MAX), "coordinatorId does not match the key", "signalId
 * does not match the key", "missing timestamp", "timestamp is not a number or string",
 * "missing iteration", "iteration is not a number or string", "status is not received",
 * "missing signature" (absent, null or ""), "signature is not 64 hex digits", "invalid
 * signature" (also when h is NULL). Never crashes on any input (garbage, NUL bytes, deep
 * nesting, huge strings). */
int bc_ack_verify(const bc_hmac_t *h, const char *json, size_t len, const char *key_acker,
                  const char *key_signal_id, bc_ack_fields_t *out, const char **why);

/* Read the ACK slot value json[0..len) (blocking:ack:<sender>) as a doorbell: nothing in it is
 * trusted. Zeroes *out, then fills acker from coordinatorId and signal_id from signalId when
 * they are strings that fit, and timestamp when it is a non-negative integral number. Returns
 * 0, or -EINVAL if the value is not a JSON object (or out is NULL). */
int bc_ack_slot_decode(const char *json, size_t len, bc_ack_fields_t *out);

/* A Redis key or channel: dst = prefix a, or prefix a ":" b when b is not NULL, cut to cap - 1
 * bytes like snprintf (callers size dst for validated ids, so nothing is cut). Returns the
 * length written. On the signal path instead of snprintf, which parses its format each time. */
static inline size_t bc_key(char *dst, size_t cap, const char *prefix, const char *a, const char *b)
{
    const char *part[4] = {prefix, a, b ? ":" : "", b ? b : ""};
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(part[i]);
        if (l > cap - 1 - n)
            l = cap - 1 - n;
        memcpy(dst + n, part[i], l);
        n += l;
    }
    dst[n] = '\0';
    return n;
}

#endif
