/* redis_reply.h - compact, self-contained copies of hiredis replies, and the RESP form of a
 * request (bc_resp_write).
 *
 * hiredis 0.14 frees each redisReply when its callback returns, so the I/O thread copies the
 * reply into ONE contiguous block (nodes, element vectors and string bytes) that can travel
 * inside a mailbox message and be released with a single free. Actors read bc_reply_t and
 * never see hiredis types.
 */
#ifndef BC_REDIS_REPLY_H
#define BC_REDIS_REPLY_H

#include <stddef.h>

struct redisReply; /* <hiredis/hiredis.h>; only the copying side needs it */

/* Same values as hiredis's REDIS_REPLY_* (RESP2 only). */
typedef enum bc_reply_type {
    BC_REPLY_STRING = 1,
    BC_REPLY_ARRAY = 2,
    BC_REPLY_INTEGER = 3,
    BC_REPLY_NIL = 4,
    BC_REPLY_STATUS = 5,
    BC_REPLY_ERROR = 6,
} bc_reply_type_t;

typedef struct bc_reply {
    bc_reply_type_t type;
    long long integer;         /* INTEGER only, else 0 */
    size_t len;                /* STRING/STATUS/ERROR: byte length, else 0 */
    char *str;                 /* STRING/STATUS/ERROR: len bytes + NUL (binary-safe), else NULL */
    size_t elements;           /* ARRAY: number of elements, else 0 */
    struct bc_reply **element; /* ARRAY: elements (none NULL), NULL when elements == 0 */
} bc_reply_t;

#define BC_REPLY_MAX_DEPTH 64 /* deeper trees are refused (hiredis itself stops at 7) */

/* Bytes needed to copy reply tree r with bc_reply_copy_into (exact: the layout uses every
 * byte). Returns 0 if r is NULL, contains a NULL element or an unknown type, is nested more
 * than BC_REPLY_MAX_DEPTH levels, or its size overflows size_t. Pure; any thread (r must not
 * change meanwhile). */
size_t bc_reply_size(const struct redisReply *r);

/* Lay out a copy of r in caller memory mem[0..size). mem must be aligned for bc_reply_t
 * (malloc and the message pool give that); size must be at least bc_reply_size(r). Returns
 * the root node (== mem), or NULL (nothing written) if r is invalid, mem is NULL or
 * misaligned, or size is too small. The copy has no pointer into r or outside mem; it stays
 * valid as long as mem does, and any thread may read it. */
bc_reply_t *bc_reply_copy_into(void *mem, size_t size, const struct redisReply *r);

/* Same as bc_reply_copy_into into a fresh malloc'd block; release it with bc_reply_free (or
 * free). Returns NULL only if r is invalid (see bc_reply_size); aborts on out-of-memory. */
bc_reply_t *bc_reply_copy(const struct redisReply *r);

/* Free a copy made by bc_reply_copy (one free()). NULL is allowed. */
void bc_reply_free(bc_reply_t *r);

/* 1 if r is NULL (no reply: the connection dropped before it arrived) or an ERROR reply,
 * 0 otherwise. Nested error elements of an array (EXEC) are not looked at. */
int bc_reply_is_error(const bc_reply_t *r);

/* The bytes of a STRING, STATUS or ERROR reply (NUL-terminated; *len, if len is not NULL,
 * receives the length, which counts embedded NULs). Returns NULL (and *len = 0) for NULL r
 * and for the other types. */
const char *bc_reply_str(const bc_reply_t *r, size_t *len);

/* Render r on one line for logs and test failures, e.g. `[OK, (integer) 5, (nil),
 * (error) ERR x, "a\x00b", []]`: STRING quoted, STATUS bare, non-printable bytes, quotes
 * and backslashes as C escapes. A NULL r renders as
 * "(no reply)". Output longer than len-1 is cut and ends with "...". Returns buf (always
 * NUL-terminated when len > 0). Any thread. */
const char *bc_reply_dump(const bc_reply_t *r, char *buf, size_t len);

/* The RESP request for argv[0..argc) with byte lengths argvlen: "*<argc>\r\n", then
 * "$<len>\r\n<bytes>\r\n" per argument, exactly what hiredis's redisFormatCommandArgv
 * produces, without its per-argument sds growth and format parsing. bc_resp_len gives the
 * length; bc_resp_write writes that many bytes to out and returns the count. */
size_t bc_resp_len(int argc, const size_t *argvlen);
size_t bc_resp_write(char *out, int argc, const char *const *argv, const size_t *argvlen);

#endif
