/* sig_fast.c - fixed-shape fast paths for signal values (decode), payloads (encode) and ACK
 * values (verify).
 *
 * Key design decision: the fast path never decides anything the general (jansson) path would
 * decide differently. It only ever *succeeds*, and only on text it can prove the general path
 * turns into the very same result; on any doubt it answers "not handled" and the general path
 * runs, producing every error message. That is why the accepted grammar is so narrow:
 *
 *  - no whitespace outside strings: the general writer emits none, so compact text is already
 *    its own re-emission;
 *  - strings of bytes 0x20..0x7f other than '"' and '\': jansson stores them unchanged and
 *    put_jstr writes them back unchanged (it escapes only '"', '\' and bytes below 0x20), so no
 *    escape decoding and no UTF-8 validation are needed;
 *  - integers -?[1-9][0-9]{0,14} and 0: below 2^53, so the double jansson makes is exact and
 *    js_number prints the same digits ("-0" prints as "0", "1.0" as "1", "1e3" as "1000", so
 *    those are refused);
 *  - no duplicate keys: jansson keeps the last one in the first one's place, which is not the
 *    input text;
 *  - at most 16 members per object and 16 levels, which bounds the duplicate scan (O(n^2) over
 *    key spans held on the stack) and the recursion.
 *
 * With that grammar no number is converted and nothing is allocated but the payload copy.
 *
 * ACKs follow the same rule with the same grammar, narrowed to what bc_ack_encode writes:
 * timestamp and iteration as non-negative integers only (the general path also signs strings
 * and other numbers, and derives the ACK time from them in its own way), status "received",
 * and metadata.signalType, when there, as a string short enough for copy_str to take. out is
 * written only on success, since the general path leaves it untouched when it refuses.
 */
#include "proto_impl.h"

#include <stdlib.h>
#include <string.h>

#define CANON_MAX_DEPTH 16   /* nesting levels accepted, outer object = 1 */
#define CANON_MAX_MEMBERS 16 /* members accepted per object */
#define CANON_MAX_DIGITS 15  /* < 2^53: exact as a double, printed back digit for digit */

static const char *scan_value(const char *s, const char *end, int depth);

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Past the plain string at s (opening quote included), or NULL: no escapes, no byte outside
 * 0x20..0x7f. */
static const char *scan_str(const char *s, const char *end)
{
    if (s >= end || *s != '"')
        return NULL;
    for (s++; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"')
            return s + 1;
        if (c < 0x20 || c > 0x7f || c == '\\')
            return NULL;
    }
    return NULL;
}

/* Past the canonical integer at s, or NULL: 0 or [1-9][0-9]{0,14}, with a '-' first if neg is
 * set (never "-0"). A following digit, '.', 'e' or 'E' means it is not canonical. */
static const char *scan_int(const char *s, const char *end, int neg)
{
    int minus = neg && s < end && *s == '-';
    const char *d = s + minus;

    s = d;
    if (s >= end || !is_digit(*s))
        return NULL;
    if (*s == '0') {
        if (minus) /* -0 is printed back as 0 */
            return NULL;
        s++;
    } else {
        while (s < end && is_digit(*s) && s - d < CANON_MAX_DIGITS)
            s++;
    }
    if (s < end && (is_digit(*s) || *s == '.' || *s == 'e' || *s == 'E'))
        return NULL;
    return s;
}

/* Past the literal word w at s, or NULL. */
static const char *scan_word(const char *s, const char *end, const char *w, size_t n)
{
    return (size_t)(end - s) >= n && memcmp(s, w, n) == 0 ? s + n : NULL;
}

/* Past the canonical object at s ('{'), or NULL. depth is this object's level. */
static const char *scan_obj(const char *s, const char *end, int depth)
{
    const char *key[CANON_MAX_MEMBERS];
    size_t klen[CANON_MAX_MEMBERS];
    int n = 0, i;

    if (depth > CANON_MAX_DEPTH || s >= end || *s != '{')
        return NULL;
    if (++s < end && *s == '}')
        return s + 1;
    for (;;) {
        const char *k = s;
        if (n == CANON_MAX_MEMBERS || !(s = scan_str(s, end)))
            return NULL;
        /* no escapes, so equal key texts are exactly equal keys */
        for (i = 0; i < n; i++)
            if (klen[i] == (size_t)(s - k) && memcmp(key[i], k, klen[i]) == 0)
                return NULL;
        key[n] = k;
        klen[n++] = (size_t)(s - k);
        if (s >= end || *s++ != ':' || !(s = scan_value(s, end, depth)) || s >= end)
            return NULL;
        if (*s == '}')
            return s + 1;
        if (*s++ != ',')
            return NULL;
    }
}

/* Past the canonical array at s ('['), or NULL. depth is this array's level. */
static const char *scan_arr(const char *s, const char *end, int depth)
{
    if (depth > CANON_MAX_DEPTH || s >= end || *s != '[')
        return NULL;
    if (++s < end && *s == ']')
        return s + 1;
    for (;;) {
        if (!(s = scan_value(s, end, depth)) || s >= end)
            return NULL;
        if (*s == ']')
            return s + 1;
        if (*s++ != ',')
            return NULL;
    }
}

/* Past the canonical value at s, or NULL. depth is the level of the enclosing container. */
static const char *scan_value(const char *s, const char *end, int depth)
{
    if (s >= end)
        return NULL;
    switch (*s) {
    case '{':
        return scan_obj(s, end, depth + 1);
    case '[':
        return scan_arr(s, end, depth + 1);
    case '"':
        return scan_str(s, end);
    case 't':
        return scan_word(s, end, "true", 4);
    case 'f':
        return scan_word(s, end, "false", 5);
    case 'n':
        return scan_word(s, end, "null", 4);
    default:
        return scan_int(s, end, 1);
    }
}

int bc__json_canon_object(const char *p, size_t n)
{
    return p && n && scan_obj(p, p + n, 1) == p + n;
}

/* ------------------------------------------------------------------ signal decode */

/* The members the fast path knows, and how each value is scanned. */
enum { F_TS, F_SENDER, F_RECEIVER, F_ITER, F_TYPE, F_PAYLOAD, F_MID, F_SIG, F_COUNT };
enum kind { K_UINT, K_STR, K_OBJ };

#define QUOTED(s) "\"" s "\"", sizeof(s) + 1 /* the name as the text holds it, and its length */

static const struct field {
    const char *name; /* with its quotes */
    size_t len;
    enum kind kind;
} fields[F_COUNT] = {
    [F_TS] = {QUOTED("timestamp"), K_UINT},       [F_SENDER] = {QUOTED("senderId"), K_STR},
    [F_RECEIVER] = {QUOTED("receiverId"), K_STR}, [F_ITER] = {QUOTED("iteration"), K_UINT},
    [F_TYPE] = {QUOTED("type"), K_STR},           [F_PAYLOAD] = {QUOTED("payload"), K_OBJ},
    [F_MID] = {QUOTED("messageId"), K_STR},       [F_SIG] = {QUOTED("signature"), K_STR},
};

/* A member's value text: string contents without the quotes, digits, or the object. */
typedef struct span {
    const char *p;
    size_t n;
} span_t;

/* Index of the field of tab[0..cnt) whose quoted name is k[0..n), or -1. */
static int field_of(const struct field *tab, int cnt, const char *k, size_t n)
{
    int i;

    for (i = 0; i < cnt; i++)
        if (tab[i].len == n && memcmp(tab[i].name, k, n) == 0)
            return i;
    return -1;
}

/* Split the top-level object json[0..len) into v (one span per field of tab[0..cnt), p NULL
 * when absent). Returns 0 unless it has only known members, each once, with values of their
 * kind. */
static int split(const char *json, size_t len, const struct field *tab, int cnt, span_t *v)
{
    const char *s = json, *end = json + len, *e;
    int f;

    if (len < 2 || *s++ != '{')
        return 0;
    for (;;) {
        if (!(e = scan_str(s, end)) || (f = field_of(tab, cnt, s, (size_t)(e - s))) < 0 || v[f].p ||
            e >= end || *e != ':')
            return 0;
        s = e + 1;
        switch (tab[f].kind) {
        case K_UINT:
            e = scan_int(s, end, 0);
            break;
        case K_STR:
            e = scan_str(s, end);
            break;
        default:
            e = scan_obj(s, end, 1);
        }
        if (!e || e >= end)
            return 0;
        v[f] = tab[f].kind == K_STR ? (span_t){s + 1, (size_t)(e - s) - 2}
                                    : (span_t){s, (size_t)(e - s)};
        s = e + 1;
        if (*e == '}')
            return s == end;
        if (*e != ',')
            return 0;
    }
}

/* Digits of a canonical non-negative integer (at most 15, so no overflow). */
static uint64_t digits(span_t d)
{
    uint64_t x = 0;
    size_t i;

    for (i = 0; i < d.n; i++)
        x = x * 10 + (uint64_t)(d.p[i] - '0');
    return x;
}

/* Copy string s into dst (max + 1 bytes) and check it with ok. Returns 0 if it is absent, too
 * long or refused by ok. */
static int take(span_t s, char *dst, size_t max, int (*ok)(const char *))
{
    if (!s.p || s.n > max)
        return 0;
    memcpy(dst, s.p, s.n);
    dst[s.n] = '\0';
    return ok(dst);
}

int bc__sig_decode_fast(const bc_hmac_t *h, const char *json, size_t len, const char *key_receiver,
                        int require_signature, bc_sig_fields_t *out)
{
    span_t v[F_COUNT] = {{NULL, 0}};
    char sig[65];

    if (!json || !out)
        return 0;
    memset(out, 0, sizeof *out); /* the general path starts from a zeroed struct too */
    if (!split(json, len, fields, F_COUNT, v) || !v[F_TS].p)
        return 0;
    /* Values are canonical integers and escape-free strings: the text is the value. */
    out->timestamp = digits(v[F_TS]);
    out->iteration = v[F_ITER].p ? digits(v[F_ITER]) : 0;
    if (out->timestamp == 0 || !take(v[F_SENDER], out->sender, BC_ID_MAX, bc_id_valid) ||
        !take(v[F_RECEIVER], out->receiver, BC_ID_MAX, bc_id_valid) ||
        !take(v[F_TYPE], out->type, BC_TYPE_MAX, bc_type_valid))
        return 0;
    if (key_receiver && strcmp(out->receiver, key_receiver) != 0)
        return 0;
    if (v[F_MID].p) {
        if (!take(v[F_MID], out->message_id, BC_SIGID_MAX, bc_sigid_valid))
            return 0;
    } else
        bc__message_id(out->message_id, out->sender, out->receiver, out->type, out->iteration,
                       out->timestamp);
    if (v[F_SIG].p) {
        /* the canonical timestamp text is what js_number renders for its value */
        if (!h)
            return 0;
        bc__sign_signal(h, out->sender, out->receiver, out->type, v[F_TS].p, v[F_TS].n, sig);
        if (!bc_sig_equal(sig, v[F_SIG].p, v[F_SIG].n))
            return 0;
        out->signature = BC_SIG_VALID;
    } else if (require_signature)
        return 0;
    if (v[F_PAYLOAD].p) {
        /* last, so that a declined value never holds an allocation */
        if (!(out->payload = malloc(v[F_PAYLOAD].n + 1)))
            return 0;
        memcpy(out->payload, v[F_PAYLOAD].p, v[F_PAYLOAD].n);
        out->payload[v[F_PAYLOAD].n] = '\0';
    }
    return 1;
}

/* ------------------------------------------------------------------ ACK verify */

/* The members of an ACK. timestamp and iteration only as non-negative canonical integers, as
 * bc_ack_encode writes them: the general path also takes strings and other numbers, whose
 * rendering and ack_time() value are left to it. */
enum { A_ACKER, A_SIGID, A_TS, A_ITER, A_STATUS, A_SIG, A_META, A_COUNT };

static const struct field ack_fields[A_COUNT] = {
    [A_ACKER] = {QUOTED("coordinatorId"), K_STR}, [A_SIGID] = {QUOTED("signalId"), K_STR},
    [A_TS] = {QUOTED("timestamp"), K_UINT},       [A_ITER] = {QUOTED("iteration"), K_UINT},
    [A_STATUS] = {QUOTED("status"), K_STR},       [A_SIG] = {QUOTED("signature"), K_STR},
    [A_META] = {QUOTED("metadata"), K_OBJ},
};

/* 1 iff the string contents s are the n bytes c. */
static int span_is(span_t s, const char *c, size_t n)
{
    return s.n == n && memcmp(s.p, c, n) == 0;
}

/* The value text of the member whose quoted name is k[0..n) in the canonical object o, into
 * *val (p NULL when absent). Returns 0 if o does not scan, which cannot happen once split()
 * has accepted it; checked anyway so that a mistake declines instead of reading garbage. */
static int member_of(span_t o, const char *k, size_t n, span_t *val)
{
    const char *s = o.p + 1, *end = o.p + o.n, *key, *v;

    val->p = NULL;
    if (s < end && *s == '}')
        return 1;
    for (;;) {
        key = s;
        if (!(s = scan_str(s, end)) || s >= end || *s != ':')
            return 0;
        v = s + 1;
        if (!(s = scan_value(v, end, 1)) || s >= end)
            return 0;
        /* the scan refused duplicate keys: this is the member json_object_get finds */
        if ((size_t)(v - 1 - key) == n && memcmp(key, k, n) == 0)
            *val = (span_t){v, (size_t)(s - v)};
        if (*s == '}')
            return 1;
        if (*s++ != ',')
            return 0;
    }
}

int bc__ack_verify_fast(const bc_hmac_t *h, const char *json, size_t len, const char *key_acker,
                        const char *key_signal_id, bc_ack_fields_t *out)
{
    span_t v[A_COUNT] = {{NULL, 0}}, type = {NULL, 0};
    size_t na, ns;
    char sig[65];
    int i;

    if (!h || !json || !key_acker || !key_signal_id)
        return 0;
    na = strnlen(key_acker, BC_ID_MAX + 1);
    ns = strnlen(key_signal_id, BC_SIGID_MAX + 1);
    if (na > BC_ID_MAX || ns > BC_SIGID_MAX || !split(json, len, ack_fields, A_COUNT, v))
        return 0;
    for (i = 0; i < A_META; i++) /* every member but metadata is required */
        if (!v[i].p)
            return 0;
    if (!span_is(v[A_ACKER], key_acker, na) || !span_is(v[A_SIGID], key_signal_id, ns) ||
        !span_is(v[A_STATUS], "received", 8))
        return 0;
    /* copy_str takes metadata.signalType only as a string shorter than the buffer; a plain
     * string is its own value, anything else is left to the general path */
    if (v[A_META].p && (!member_of(v[A_META], QUOTED("signalType"), &type) ||
                        (type.p && (*type.p != '"' || type.n - 2 > BC_TYPE_MAX))))
        return 0;
    /* canonical integers are the text js_piece renders for their value */
    bc__sign_ack(h, key_acker, key_signal_id, v[A_TS].p, v[A_TS].n, v[A_ITER].p, v[A_ITER].n, sig);
    if (!bc_sig_equal(sig, v[A_SIG].p, v[A_SIG].n))
        return 0;
    /* only now: the general path leaves out untouched when it refuses */
    if (out) {
        memset(out, 0, sizeof *out);
        memcpy(out->acker, key_acker, na);
        memcpy(out->signal_id, key_signal_id, ns);
        out->timestamp = digits(v[A_TS]);
        if (type.p)
            memcpy(out->signal_type, type.p + 1, type.n - 2);
    }
    return 1;
}
