/* proto_impl.h - internals shared by actors/proto.c and actors/sig_fast.c (and the tests).
 *
 * Not part of the public API. The signal codec has two decoders, and ACK verification two
 * verifiers: the general one in proto.c (jansson, every accepted shape, every error message)
 * and a fixed-shape fast path in sig_fast.c that only ever succeeds on values whose result it
 * can prove is byte-for-byte the general one's, and otherwise declines so the general one runs.
 */
#ifndef BC_PROTO_IMPL_H
#define BC_PROTO_IMPL_H

#include "proto.h"

/* ------------------------------------------------------------------ proto.c */

/* "<sender>:<receiver>:<type>:<iteration>:<timestamp>" into mid (BC_SIGID_MAX + 1 bytes), as
 * bc_sig_encode writes the messageId and bc_sig_decode derives a missing one. */
void bc__message_id(char *mid, const char *sender, const char *receiver, const char *type,
                    uint64_t iteration, uint64_t timestamp);

/* HMAC of "<sender>:<receiver>:<type>:<ts[0..tslen)>" as 64 lowercase hex digits plus NUL. */
void bc__sign_signal(const bc_hmac_t *h, const char *sender, const char *receiver, const char *type,
                     const char *ts, size_t tslen, char sig[65]);

/* HMAC of "<acker>:<signal_id>:<ts[0..tslen)>:<it[0..itlen)>", the text an ACK signs, as 64
 * lowercase hex digits plus NUL. */
void bc__sign_ack(const bc_hmac_t *h, const char *acker, const char *signal_id, const char *ts,
                  size_t tslen, const char *it, size_t itlen, char sig[65]);

/* The jansson verifier behind bc_ack_verify: same contract as bc_ack_verify. */
int bc__ack_verify_general(const bc_hmac_t *h, const char *json, size_t len, const char *key_acker,
                           const char *key_signal_id, bc_ack_fields_t *out, const char **why);

/* The jansson decoder behind bc_sig_decode: same contract as bc_sig_decode. */
int bc__sig_decode_general(const bc_hmac_t *h, const char *json, size_t len,
                           const char *key_receiver, int require_signature, bc_sig_fields_t *out,
                           const char **why);

/* ------------------------------------------------------------------ sig_fast.c */

/* 1 iff p[0..n) is exactly one JSON object that the general path (jansson with
 * JSON_DECODE_INT_AS_REAL, then the JSON.stringify-style writer) re-emits unchanged: no
 * whitespace outside strings; strings of bytes 0x20..0x7f without '"' or '\' (no escapes, no
 * control or non-ASCII bytes); numbers only as -?[1-9][0-9]{0,14} or 0; true, false, null;
 * arrays; objects of at most 16 members with no duplicate key; nesting at most 16 deep (the
 * outer object counts as 1). 0 for anything else, including p NULL. */
int bc__json_canon_object(const char *p, size_t n);

/* Fast decode of the common signal shape: a compact object whose members are only timestamp,
 * senderId, receiverId, iteration, type, payload, messageId and signature, each at most once,
 * none null, numbers canonical and payload accepted by bc__json_canon_object. Returns 1 with
 * *out filled exactly as bc__sig_decode_general fills it on success (payload malloc'd), or 0
 * ("not handled": out holds no allocation but may hold anything else) for every other value,
 * valid or not; the caller then clears out and runs the general decoder. */
int bc__sig_decode_fast(const bc_hmac_t *h, const char *json, size_t len, const char *key_receiver,
                        int require_signature, bc_sig_fields_t *out);

/* Fast verify of the ACK shape bc_ack_encode writes: a compact object whose members are only
 * coordinatorId, signalId, timestamp, iteration, status, signature (all required) and metadata,
 * each at most once; strings plain, timestamp and iteration non-negative canonical integers,
 * status "received", metadata accepted by bc__json_canon_object with signalType, if present, a
 * string of at most BC_TYPE_MAX bytes. Returns 1 when the ACK verifies, with *out (if out is not
 * NULL) filled exactly as bc__ack_verify_general fills it; 0 ("not handled", out untouched) for
 * every other value, valid or not, and when h, a key or json is NULL or a key is too long. */
int bc__ack_verify_fast(const bc_hmac_t *h, const char *json, size_t len, const char *key_acker,
                        const char *key_signal_id, bc_ack_fields_t *out);

#endif
