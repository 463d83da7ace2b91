/* proto.c - wire codec for the blockcoord protocol: ids, HMAC, signals, ACKs.
 *
 * Key design decision: numbers are read the way JavaScript reads them. Every JSON value is
 * parsed with JSON_DECODE_INT_AS_REAL, so each number is one double, exactly like JSON.parse,
 * and is written back (for signing, messageIds and re-emitted payloads) with the shortest
 * round-trip rendering of JavaScript's String(). A Node peer and this codec therefore always
 * agree on the signed text: 1.76e12 signs as 1760000000000, 2.0 as 2, and an integer beyond
 * 2^53 as the same rounded digits Node prints.
 *
 * The HMAC keeps only the two padded SHA-256 states (key^ipad, key^opad), as plain SHA256_CTX
 * values that each MAC copies by assignment onto its stack: the shared states are only ever
 * read, so many threads can share one bc_hmac_t, and a MAC allocates nothing. Key decision:
 * OpenSSL's low-level SHA256_* calls (deprecated since 3.0, still in its API), not EVP. An
 * EVP_MD_CTX copy goes through the provider (a dupctx allocation, dispatch), and a signal's MAC
 * usually runs with cold caches, after the thread slept: measured here per MAC, 0.14 against
 * 0.32 us warm and 1.7 against 6.9 us with the caches flushed; in signal_bench's per-stage
 * timestamps, signing plus verifying fell by 1.0-1.3 us per signal. RFC 4231 and the seeds'
 * vectors (test_proto) pin the result.
 *
 * Signals on the hot path skip jansson: sig_fast.c recognises compact, canonical values whose
 * general-path result is known without parsing (and payloads that are already compact), and
 * declines everything else, so the jansson code below stays the one source of every decision
 * that can go either way and of every error message. ACK verification works the same way: the
 * ACKs bc_ack_encode writes are verified by sig_fast.c without jansson.
 */
/* SHA256_Init/Update/Final: deprecated since OpenSSL 3.0, still part of its API (see above). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "proto_impl.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#define QUOTE_MAX 48    /* longest part of an id quoted in a message */
#define SHA256_LEN 32   /* digest bytes */
#define SHA256_BLOCK 64 /* block bytes (RFC 2104 B) */
#define NUM_MAX 40      /* longest rendered number, with NUL */
#define TWO64 18446744073709551616.0
#define TWO53 9007199254740992.0
#define JFLAGS JSON_DECODE_INT_AS_REAL /* numbers as JavaScript sees them */

/* ------------------------------------------------------------------ identifiers */

enum charset { CS_ID, CS_SIGID, CS_TYPE };

static int allowed(enum charset cs, unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')
        return 1;
    if (cs == CS_TYPE)
        return 0;
    if ((c >= 'A' && c <= 'Z') || c == '-')
        return 1;
    return cs == CS_SIGID && c == ':';
}

static size_t cs_max(enum charset cs)
{
    return cs == CS_ID ? BC_ID_MAX : cs == CS_TYPE ? BC_TYPE_MAX : BC_SIGID_MAX;
}

static int valid(enum charset cs, const char *s)
{
    size_t i, max = cs_max(cs);

    if (!s || !*s)
        return 0;
    if (cs == CS_TYPE && !(s[0] >= 'a' && s[0] <= 'z'))
        return 0;
    for (i = 0; s[i]; i++)
        if (i >= max || !allowed(cs, (unsigned char)s[i]))
            return 0;
    return 1;
}

int bc_id_valid(const char *s)
{
    return valid(CS_ID, s);
}

int bc_type_valid(const char *s)
{
    return valid(CS_TYPE, s);
}

int bc_sigid_valid(const char *s)
{
    return valid(CS_SIGID, s);
}

/* One byte for a message: 'c' if printable ASCII, else '\xNN'. */
static const char *show_char(char dst[8], unsigned char c)
{
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\')
        snprintf(dst, 8, "'%c'", c);
    else
        snprintf(dst, 8, "'\\x%02x'", c);
    return dst;
}

/* s[0..n) for a message: printable ASCII as is, '"', '\' and other bytes escaped, cut after
 * QUOTE_MAX bytes with "...". dst must hold QUOTE_MAX * 4 + 4 bytes. */
static const char *quote(char *dst, const char *s, size_t n)
{
    size_t i, j = 0, m = n > QUOTE_MAX ? QUOTE_MAX : n;

    for (i = 0; i < m; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            j += (size_t)sprintf(dst + j, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            dst[j++] = (char)c;
        else
            j += (size_t)sprintf(dst + j, "\\x%02x", c);
    }
    strcpy(dst + j, n > m ? "..." : "");
    return dst;
}

static const char *explain(enum charset cs, const char *what, const char *s, char *buf, size_t len)
{
    static const char *const set[] = {"A-Z a-z 0-9 _ -", "A-Z a-z 0-9 _ - :", "a-z 0-9 _"};
    char q[QUOTE_MAX * 4 + 4], c[8];
    size_t i, n, max = cs_max(cs);

    if (!buf || !len)
        return buf;
    if (!s) {
        snprintf(buf, len, "%s is missing (NULL)", what);
        return buf;
    }
    n = strlen(s);
    quote(q, s, n);
    if (n == 0) {
        snprintf(buf, len, "%s \"\" is empty", what);
        return buf;
    }
    if (cs == CS_TYPE && !(s[0] >= 'a' && s[0] <= 'z')) {
        snprintf(buf, len, "%s \"%s\": first character %s is not a lowercase letter (a-z)", what, q,
                 show_char(c, (unsigned char)s[0]));
        return buf;
    }
    for (i = 0; i < n; i++)
        if (!allowed(cs, (unsigned char)s[i])) {
            snprintf(buf, len, "%s \"%s\": invalid character %s at offset %zu (allowed: %s)", what,
                     q, show_char(c, (unsigned char)s[i]), i, set[cs]);
            return buf;
        }
    if (n > max)
        snprintf(buf, len, "%s \"%s\" is %zu characters (max %zu)", what, q, n, max);
    else
        snprintf(buf, len, "%s \"%s\" is valid", what, q);
    return buf;
}

const char *bc_id_explain(const char *what, const char *s, char *buf, size_t len)
{
    return explain(CS_ID, what ? what : "id", s, buf, len);
}

const char *bc_type_explain(const char *s, char *buf, size_t len)
{
    return explain(CS_TYPE, "signal type", s, buf, len);
}

/* ------------------------------------------------------------------ HMAC */

struct bc_hmac_s {
    SHA256_CTX inner; /* SHA-256 state after (key ^ ipad); read-only once created */
    SHA256_CTX outer; /* SHA-256 state after (key ^ opad); read-only once created */
};

typedef struct piece {
    const void *p;
    size_t n;
} piece_t;

int bc_hmac_create(const void *key, size_t keylen, bc_hmac_t **out)
{
    unsigned char kb[SHA256_BLOCK] = {0}, pad[SHA256_BLOCK];
    bc_hmac_t *h;
    size_t i;

    if (out)
        *out = NULL;
    if (!key || !keylen || !out)
        return -EINVAL;
    h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    if (keylen > SHA256_BLOCK)
        SHA256(key, keylen, kb);
    else
        memcpy(kb, key, keylen);
    for (i = 0; i < SHA256_BLOCK; i++)
        pad[i] = kb[i] ^ 0x36;
    SHA256_Init(&h->inner);
    SHA256_Update(&h->inner, pad, sizeof pad);
    for (i = 0; i < SHA256_BLOCK; i++)
        pad[i] = kb[i] ^ 0x5c;
    SHA256_Init(&h->outer);
    SHA256_Update(&h->outer, pad, sizeof pad);
    OPENSSL_cleanse(kb, sizeof kb);
    OPENSSL_cleanse(pad, sizeof pad);
    *out = h;
    return 0;
}

void bc_hmac_destroy(bc_hmac_t *h)
{
    if (!h)
        return;
    OPENSSL_cleanse(h, sizeof *h);
    free(h);
}

static void to_hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* HMAC of the concatenation of v[0..cnt), as lowercase hex. */
static void mac(const bc_hmac_t *h, const piece_t *v, size_t cnt, char hex[65])
{
    SHA256_CTX c = h->inner;
    unsigned char ih[SHA256_LEN], d[SHA256_LEN];
    size_t i;

    for (i = 0; i < cnt; i++)
        if (v[i].n)
            SHA256_Update(&c, v[i].p, v[i].n);
    SHA256_Final(ih, &c);
    c = h->outer;
    SHA256_Update(&c, ih, SHA256_LEN);
    SHA256_Final(d, &c);
    OPENSSL_cleanse(&c, sizeof c);
    to_hex(d, SHA256_LEN, hex);
}

void bc_hmac_hex(const bc_hmac_t *h, const char *msg, size_t len, char out[65])
{
    piece_t p = {msg, len};

    mac(h, &p, 1, out);
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* 1 iff s[0..n) is exactly 64 hex digits (format only; not secret, so not constant time). */
static int hex64(const char *s, size_t n)
{
    size_t i;

    if (n != 2 * SHA256_LEN)
        return 0;
    for (i = 0; i < n; i++)
        if (!is_hex((unsigned char)s[i]))
            return 0;
    return 1;
}

int bc_sig_equal(const char *expected, const char *got, size_t got_len)
{
    unsigned bad = 0, diff = 0;
    size_t i;

    if (!expected || !got || got_len != 2 * SHA256_LEN)
        return 0;
    for (i = 0; i < 2 * SHA256_LEN; i++) {
        unsigned c = (unsigned char)got[i], lc = c | 0x20;
        unsigned digit = c - '0' < 10u, af = lc - 'a' < 6u;
        bad |= (digit | af) ^ 1u;
        diff |= lc ^ (unsigned char)expected[i];
    }
    return (bad | diff) == 0;
}

/* ------------------------------------------------------------------ JavaScript numbers */

static size_t u64_dec(uint64_t v, char *out)
{
    char tmp[24];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* Number::toString(d) (ECMA-262, radix 10) into r (NUM_MAX bytes). Returns the length. */
static size_t js_number(double d, char *r)
{
    char tmp[NUM_MAX], dg[24];
    const char *c;
    size_t m = 0;
    int p, k = 0, e, n, i;

    if (d != d)
        return (size_t)sprintf(r, "NaN");
    if (d == 0)
        return (size_t)sprintf(r, "0"); /* also -0 */
    if (d < 0) {
        r[m++] = '-';
        d = -d;
    }
    if (d > DBL_MAX)
        return m + (size_t)sprintf(r + m, "Infinity");
    if (d < TWO53 && d == (double)(uint64_t)d) /* exact integer: its digits are the answer */
        return m + u64_dec((uint64_t)d, r + m);
    for (p = 0; p < 17; p++) { /* shortest digits that read back as d */
        snprintf(tmp, sizeof tmp, "%.*e", p, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    for (c = tmp; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9')
            dg[k++] = *c;
    e = *c ? atoi(c + 1) : 0;
    while (k > 1 && dg[k - 1] == '0')
        k--;
    n = e + 1; /* value = 0.dg * 10^n */
    if (k <= n && n <= 21) {
        for (i = 0; i < n; i++)
            r[m++] = i < k ? dg[i] : '0';
    } else if (0 < n && n <= 21) {
        for (i = 0; i < k; i++) {
            if (i == n)
                r[m++] = '.';
            r[m++] = dg[i];
        }
    } else if (-6 < n && n <= 0) {
        r[m++] = '0';
        r[m++] = '.';
        for (i = 0; i < -n; i++)
            r[m++] = '0';
        for (i = 0; i < k; i++)
            r[m++] = dg[i];
    } else {
        r[m++] = dg[0];
        if (k > 1)
            r[m++] = '.';
        for (i = 1; i < k; i++)
            r[m++] = dg[i];
        m += (size_t)sprintf(r + m, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    r[m] = '\0';
    return m;
}

/* Render a number value (integer or real) into r (NUM_MAX bytes). Returns the length. */
static size_t js_num_value(const json_t *v, char *r)
{
    if (json_is_integer(v))
        return (size_t)sprintf(r, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return js_number(json_real_value(v), r);
}

int bc_js_render(const json_t *v, char *out, size_t len)
{
    char r[NUM_MAX];
    const char *s;
    size_t n;

    if (!v || !out)
        return -EINVAL;
    if (json_is_string(v)) {
        s = json_string_value(v);
        n = json_string_length(v);
    } else if (json_is_number(v)) {
        n = js_num_value(v, r);
        s = r;
    } else
        return -EINVAL;
    if (n >= len || n > INT_MAX)
        return -EINVAL;
    memcpy(out, s, n);
    out[n] = '\0';
    return (int)n;
}

/* A number or string member as the piece of text JavaScript's String() gives (r: NUM_MAX). */
static piece_t js_piece(const json_t *v, char *r)
{
    piece_t p;

    if (json_is_string(v)) {
        p.p = json_string_value(v);
        p.n = json_string_length(v);
    } else {
        p.n = js_num_value(v, r);
        p.p = r;
    }
    return p;
}

/* 1 and *out if v is a number with an integral value in [min, 2^64). */
static int integral(const json_t *v, uint64_t min, uint64_t *out)
{
    double d;

    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min)
            return 0;
        *out = (uint64_t)json_integer_value(v);
        return 1;
    }
    if (!json_is_real(v))
        return 0;
    d = json_real_value(v);
    if (!(d >= (double)min && d < TWO64) || d != (double)(uint64_t)d)
        return 0;
    *out = (uint64_t)d;
    return 1;
}

/* ------------------------------------------------------------------ output buffer */

/* Bounded writer: counts every byte, stores those that fit in p[0..cap). */
typedef struct wbuf {
    char *p;
    size_t cap, len;
} wbuf_t;

static void put(wbuf_t *w, const char *s, size_t n)
{
    if (n && w->len < w->cap) {
        size_t room = w->cap - w->len;
        memcpy(w->p + w->len, s, n < room ? n : room);
    }
    w->len += n;
}

static void puts_(wbuf_t *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_u64(wbuf_t *w, uint64_t v)
{
    char r[24];

    put(w, r, u64_dec(v, r));
}

/* NUL-terminate. Returns the length, or -ENOSPC if it (with the NUL) did not fit. */
static int finish(wbuf_t *w)
{
    if (w->len >= w->cap || w->len > INT_MAX)
        return -ENOSPC;
    w->p[w->len] = '\0';
    return (int)w->len;
}

/* A JSON string literal, escaped as JSON.stringify does. */
static void put_jstr(wbuf_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    put(w, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char u[8];
        const char *e = u;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(w, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        default:
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = '\0';
        }
        puts_(w, e);
    }
    put(w, s + run, n - run);
    put(w, "\"", 1);
}

/* v as compact JSON, as JSON.stringify(JSON.parse(text)) writes it (recursion is bounded by
 * the parser's JSON_PARSER_MAX_DEPTH). */
static void put_json(wbuf_t *w, const json_t *v)
{
    char r[NUM_MAX];
    const char *key;
    size_t klen, i;
    json_t *x;
    int first = 1;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        put(w, "{", 1);
        json_object_keylen_foreach((json_t *)v, key, klen, x)
        {
            if (!first)
                put(w, ",", 1);
            first = 0;
            put_jstr(w, key, klen);
            put(w, ":", 1);
            put_json(w, x);
        }
        put(w, "}", 1);
        break;
    case JSON_ARRAY:
        put(w, "[", 1);
        for (i = 0; i < json_array_size(v); i++) {
            if (i)
                put(w, ",", 1);
            put_json(w, json_array_get(v, i));
        }
        put(w, "]", 1);
        break;
    case JSON_STRING:
        put_jstr(w, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        put(w, r, js_num_value(v, r));
        break;
    case JSON_TRUE:
        puts_(w, "true");
        break;
    case JSON_FALSE:
        puts_(w, "false");
        break;
    default:
        puts_(w, "null");
    }
}

/* 1 iff s is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
static int utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    while (*s) {
        unsigned c = *s++, n, cp, min;
        if (c < 0x80)
            continue;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else
            return 0;
        while (n--) {
            if ((*s & 0xc0) != 0x80) /* also stops at the NUL */
                return 0;
            cp = cp << 6 | (*s++ & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ signals */

/* Write the message to err (if any room) and return rc. */
static PRINTF(4, 5) int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void bc_sig_fields_clear(bc_sig_fields_t *f)
{
    if (!f)
        return;
    free(f->payload);
    memset(f, 0, sizeof *f);
}

/* "<sender>:<receiver>:<type>:<iteration>:<timestamp>" into mid (BC_SIGID_MAX + 1 bytes; the
 * parts are valid ids, so it always fits). */
static void message_id(char *mid, const char *sender, const char *receiver, const char *type,
                       uint64_t iteration, uint64_t timestamp)
{
    snprintf(mid, BC_SIGID_MAX + 1, "%s:%s:%s:%" PRIu64 ":%" PRIu64, sender, receiver, type,
             iteration, timestamp);
}

/* Signature of a signal: HMAC("<sender>:<receiver>:<type>:<ts>"). */
static void sign_signal(const bc_hmac_t *h, const char *sender, const char *receiver,
                        const char *type, const char *ts, size_t tslen, char sig[65])
{
    piece_t v[] = {{sender, strlen(sender)},
                   {":", 1},
                   {receiver, strlen(receiver)},
                   {":", 1},
                   {type, strlen(type)},
                   {":", 1},
                   {ts, tslen}};

    mac(h, v, sizeof v / sizeof v[0], sig);
}

void bc__message_id(char *mid, const char *sender, const char *receiver, const char *type,
                    uint64_t iteration, uint64_t timestamp)
{
    message_id(mid, sender, receiver, type, iteration, timestamp);
}

void bc__sign_signal(const bc_hmac_t *h, const char *sender, const char *receiver, const char *type,
                     const char *ts, size_t tslen, char sig[65])
{
    sign_signal(h, sender, receiver, type, ts, tslen, sig);
}

int bc_sig_encode(const bc_hmac_t *h, uint64_t timestamp, const char *sender, const char *receiver,
                  uint64_t iteration, const char *type, const char *payload_json, char *buf,
                  size_t buflen, char *message_id_out, char *err, size_t errlen)
{
    char ex[QUOTE_MAX * 4 + 160], mid[BC_SIGID_MAX + 1], ts[24], sig[65];
    wbuf_t w = {buf, buf ? buflen : 0, 0};
    json_error_t je;
    json_t *pl = NULL;
    const char *verbatim = NULL; /* payload text that put_json would write back unchanged */
    int rc;

    if (!h)
        return fail(-EINVAL, err, errlen, "no HMAC key");
    if (!bc_id_valid(sender))
        return fail(-EINVAL, err, errlen, "%s", bc_id_explain("sender id", sender, ex, sizeof ex));
    if (!bc_id_valid(receiver))
        return fail(-EINVAL, err, errlen, "%s",
                    bc_id_explain("receiver id", receiver, ex, sizeof ex));
    if (!bc_type_valid(type))
        return fail(-EINVAL, err, errlen, "%s", bc_type_explain(type, ex, sizeof ex));
    if (timestamp == 0)
        return fail(-EINVAL, err, errlen, "signal timestamp is 0 (must be > 0)");
    if (payload_json && bc__json_canon_object(payload_json, strlen(payload_json)))
        verbatim = payload_json; /* already compact: skip the parse and re-emission */
    else if (payload_json) {
        pl = json_loads(payload_json, JFLAGS, &je);
        if (!pl)
            return fail(-EINVAL, err, errlen, "payload is not valid JSON: %s (line %d, column %d)",
                        je.text, je.line, je.column);
        if (!json_is_object(pl)) {
            json_decref(pl);
            return fail(-EINVAL, err, errlen, "payload is not a JSON object");
        }
    }
    message_id(mid, sender, receiver, type, iteration, timestamp);
    sign_signal(h, sender, receiver, type, ts, u64_dec(timestamp, ts), sig);

    puts_(&w, "{\"timestamp\":");
    puts_(&w, ts);
    puts_(&w, ",\"senderId\":\"");
    puts_(&w, sender);
    puts_(&w, "\",\"receiverId\":\"");
    puts_(&w, receiver);
    puts_(&w, "\",\"iteration\":");
    put_u64(&w, iteration);
    puts_(&w, ",\"type\":\"");
    puts_(&w, type);
    put(&w, "\"", 1);
    if (pl) {
        puts_(&w, ",\"payload\":");
        put_json(&w, pl);
        json_decref(pl);
    } else if (verbatim) {
        puts_(&w, ",\"payload\":");
        puts_(&w, verbatim);
    }
    puts_(&w, ",\"messageId\":\"");
    puts_(&w, mid);
    puts_(&w, "\",\"signature\":\"");
    puts_(&w, sig);
    puts_(&w, "\"}");
    rc = finish(&w);
    if (rc < 0)
        return fail(rc, err, errlen, "buffer too small: the signal needs %zu bytes, have %zu",
                    w.len + 1, buflen);
    if (message_id_out)
        memcpy(message_id_out, mid, strlen(mid) + 1);
    return rc;
}

/* Messages for one required string member of a signal. */
typedef struct member {
    const char *name, *missing, *not_string, *invalid;
    enum charset cs;
} member_t;

static const member_t M_SENDER = {"senderId", "missing senderId", "senderId is not a string",
                                  "invalid senderId", CS_ID};
static const member_t M_RECEIVER = {"receiverId", "missing receiverId",
                                    "receiverId is not a string", "invalid receiverId", CS_ID};
static const member_t M_TYPE = {"type", "missing type", "type is not a string", "invalid type",
                                CS_TYPE};

/* Copy the valid string member m of o into dst. Returns NULL or the reason it is refused. */
static const char *get_member(const json_t *o, const member_t *m, char *dst)
{
    const json_t *v = json_object_get(o, m->name);

    if (!v)
        return m->missing;
    if (!json_is_string(v))
        return m->not_string;
    if (!valid(m->cs, json_string_value(v)))
        return m->invalid;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return NULL;
}

/* Member name of o, or NULL when absent or null. */
static const json_t *get_opt(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);

    return v && !json_is_null(v) ? v : NULL;
}

/* Compact JSON of v in a new string (aborts on out-of-memory). */
static char *dump(const json_t *v)
{
    wbuf_t w = {NULL, 0, 0};

    put_json(&w, v);
    w.cap = w.len + 1;
    w.p = malloc(w.cap);
    if (!w.p)
        abort();
    w.len = 0;
    put_json(&w, v);
    w.p[w.len] = '\0';
    return w.p;
}

int bc_sig_decode(const bc_hmac_t *h, const char *json, size_t len, const char *key_receiver,
                  int require_signature, bc_sig_fields_t *out, const char **why)
{
    if (!out)
        return bc__sig_decode_general(h, json, len, key_receiver, require_signature, out, why);
    memset(out, 0, sizeof *out);
    /* The fast path only succeeds where its result is the general one; else it declines. */
    if (bc__sig_decode_fast(h, json, len, key_receiver, require_signature, out)) {
        if (why)
            *why = NULL;
        return 0;
    }
    return bc__sig_decode_general(h, json, len, key_receiver, require_signature, out, why);
}

int bc__sig_decode_general(const bc_hmac_t *h, const char *json, size_t len,
                           const char *key_receiver, int require_signature, bc_sig_fields_t *out,
                           const char **why)
{
    char ts[NUM_MAX], sig[65];
    const json_t *v, *tsv, *pl;
    const char *msg = NULL;
    json_error_t je;
    json_t *root = NULL;
    piece_t tsp;
    int rc = BC_REJ_MALFORMED;

    if (!out) {
        msg = "no output";
        goto err;
    }
    memset(out, 0, sizeof *out);
    root = json ? json_loadb(json, len, JFLAGS, &je) : NULL;
    if (!root) {
        msg = "not JSON";
        goto err;
    }
    if (!json_is_object(root)) {
        msg = "not a JSON object";
        goto err;
    }
    if ((msg = get_member(root, &M_SENDER, out->sender)) ||
        (msg = get_member(root, &M_RECEIVER, out->receiver)))
        goto err;
    if (key_receiver && strcmp(out->receiver, key_receiver) != 0) {
        msg = "receiverId does not match the key";
        goto err;
    }
    if ((msg = get_member(root, &M_TYPE, out->type)))
        goto err;
    tsv = json_object_get(root, "timestamp");
    msg = !tsv                                 ? "missing timestamp"
          : !json_is_number(tsv)               ? "timestamp is not a number"
          : !integral(tsv, 1, &out->timestamp) ? "invalid timestamp"
                                               : NULL;
    if (msg)
        goto err;
    if ((v = get_opt(root, "iteration"))) {
        msg = !json_is_number(v)                 ? "iteration is not a number"
              : !integral(v, 0, &out->iteration) ? "invalid iteration"
                                                 : NULL;
        if (msg)
            goto err;
    }
    if ((pl = get_opt(root, "payload")) && !json_is_object(pl)) {
        msg = "payload is not a JSON object";
        goto err;
    }
    if ((v = get_opt(root, "messageId"))) {
        msg = !json_is_string(v)                       ? "messageId is not a string"
              : !valid(CS_SIGID, json_string_value(v)) ? "invalid messageId"
                                                       : NULL;
        if (msg)
            goto err;
        memcpy(out->message_id, json_string_value(v), json_string_length(v) + 1);
    } else
        message_id(out->message_id, out->sender, out->receiver, out->type, out->iteration,
                   out->timestamp);

    if ((v = get_opt(root, "signature"))) {
        rc = BC_REJ_SIGNATURE;
        msg = "invalid signature";
        if (!h || !json_is_string(v))
            goto err;
        tsp = js_piece(tsv, ts);
        sign_signal(h, out->sender, out->receiver, out->type, tsp.p, tsp.n, sig);
        if (!bc_sig_equal(sig, json_string_value(v), json_string_length(v)))
            goto err;
        out->signature = BC_SIG_VALID;
    } else if (require_signature) {
        rc = BC_REJ_UNSIGNED;
        msg = "missing signature";
        goto err;
    }
    if (pl)
        out->payload = dump(pl);
    json_decref(root);
    if (why)
        *why = NULL;
    return 0;
err:
    json_decref(root);
    bc_sig_fields_clear(out);
    if (why)
        *why = msg;
    return rc;
}

/* ------------------------------------------------------------------ ACKs */

int bc_ack_encode(const bc_hmac_t *h, const char *acker, const char *signal_id, uint64_t timestamp,
                  uint64_t iteration, const char *signal_type, const char *phase, char *buf,
                  size_t buflen, char *sig_out)
{
    char ts[24], it[24], sig[65];
    wbuf_t w = {buf, buf ? buflen : 0, 0};
    int rc;

    if (!h || !bc_id_valid(acker) || !bc_sigid_valid(signal_id) || !bc_type_valid(signal_type) ||
        (phase && !utf8_valid(phase)))
        return -EINVAL;
    {
        piece_t v[] = {
            {acker, strlen(acker)},       {":", 1}, {signal_id, strlen(signal_id)}, {":", 1},
            {ts, u64_dec(timestamp, ts)}, {":", 1}, {it, u64_dec(iteration, it)}};
        mac(h, v, sizeof v / sizeof v[0], sig);
    }
    puts_(&w, "{\"coordinatorId\":\"");
    puts_(&w, acker);
    puts_(&w, "\",\"signalId\":\"");
    puts_(&w, signal_id);
    puts_(&w, "\",\"timestamp\":");
    puts_(&w, ts);
    puts_(&w, ",\"iteration\":");
    puts_(&w, it);
    puts_(&w, ",\"status\":\"received\",\"signature\":\"");
    puts_(&w, sig);
    puts_(&w, "\",\"metadata\":{\"signalType\":\"");
    puts_(&w, signal_type);
    put(&w, "\"", 1);
    if (phase) {
        puts_(&w, ",\"phase\":");
        put_jstr(&w, phase, strlen(phase));
    }
    puts_(&w, "}}");
    rc = finish(&w);
    if (rc >= 0 && sig_out)
        memcpy(sig_out, sig, sizeof sig);
    return rc;
}

int bc_ack_slot_encode(const char *sender, uint64_t timestamp, const char *acker,
                       const char *signal_id, const char *signature, char *buf, size_t buflen)
{
    wbuf_t w = {buf, buf ? buflen : 0, 0};

    if (!bc_id_valid(sender) || !bc_id_valid(acker) || !bc_sigid_valid(signal_id) || !signature ||
        !hex64(signature, strnlen(signature, 2 * SHA256_LEN + 1)))
        return -EINVAL;
    puts_(&w, "{\"receiverId\":\"");
    puts_(&w, sender);
    puts_(&w, "\",\"timestamp\":");
    put_u64(&w, timestamp);
    puts_(&w, ",\"coordinatorId\":\"");
    puts_(&w, acker);
    puts_(&w, "\",\"signalId\":\"");
    puts_(&w, signal_id);
    puts_(&w, "\",\"signature\":\"");
    puts_(&w, signature);
    puts_(&w, "\"}");
    return finish(&w);
}

/* 1 iff v is a JSON string equal to the C string s. */
static int str_is(const json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s) &&
           memcmp(json_string_value(v), s, json_string_length(v)) == 0;
}

/* Timestamp of an ACK for bc_ack_fields_t: integral numbers, strings of decimal digits. */
static uint64_t ack_time(const json_t *v)
{
    uint64_t t = 0;
    const char *s;
    size_t i, n;

    if (json_is_number(v))
        return integral(v, 0, &t) ? t : 0;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > 19)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        t = t * 10 + (uint64_t)(s[i] - '0');
    }
    return t;
}

/* Copy the string member name of o into dst (cap bytes) if it is a string that fits. */
static void copy_str(const json_t *o, const char *name, char *dst, size_t cap)
{
    const json_t *v = json_object_get(o, name);

    if (json_is_string(v) && json_string_length(v) < cap)
        memcpy(dst, json_string_value(v), json_string_length(v) + 1);
}

/* The first §3.1 rule the ACK object o breaks (in the documented order), or NULL. */
static const char *ack_problem(const json_t *o, const char *key_acker, const char *key_signal_id)
{
    const json_t *ts = json_object_get(o, "timestamp"), *it = json_object_get(o, "iteration");
    const json_t *s = json_object_get(o, "signature");

    if (!str_is(json_object_get(o, "coordinatorId"), key_acker))
        return "coordinatorId does not match the key";
    if (!str_is(json_object_get(o, "signalId"), key_signal_id))
        return "signalId does not match the key";
    if (!ts)
        return "missing timestamp";
    if (!json_is_number(ts) && !json_is_string(ts))
        return "timestamp is not a number or string";
    if (!it)
        return "missing iteration";
    if (!json_is_number(it) && !json_is_string(it))
        return "iteration is not a number or string";
    if (!str_is(json_object_get(o, "status"), "received"))
        return "status is not received";
    if (!s || json_is_null(s) || str_is(s, ""))
        return "missing signature";
    if (!json_is_string(s) || !hex64(json_string_value(s), json_string_length(s)))
        return "signature is not 64 hex digits";
    return NULL;
}

void bc__sign_ack(const bc_hmac_t *h, const char *acker, const char *signal_id, const char *ts,
                  size_t tslen, const char *it, size_t itlen, char sig[65])
{
    /* the pieces bc__ack_verify_general signs, with the two numbers already rendered */
    piece_t v[] = {{acker, strlen(acker)},
                   {":", 1},
                   {signal_id, strlen(signal_id)},
                   {":", 1},
                   {ts, tslen},
                   {":", 1},
                   {it, itlen}};

    mac(h, v, sizeof v / sizeof v[0], sig);
}

int bc_ack_verify(const bc_hmac_t *h, const char *json, size_t len, const char *key_acker,
                  const char *key_signal_id, bc_ack_fields_t *out, const char **why)
{
    /* The fast path only succeeds where its result is the general one; else it declines. */
    if (bc__ack_verify_fast(h, json, len, key_acker, key_signal_id, out)) {
        if (why)
            *why = NULL;
        return 0;
    }
    return bc__ack_verify_general(h, json, len, key_acker, key_signal_id, out, why);
}

int bc__ack_verify_general(const bc_hmac_t *h, const char *json, size_t len, const char *key_acker,
                           const char *key_signal_id, bc_ack_fields_t *out, const char **why)
{
    char tsr[NUM_MAX], itr[NUM_MAX], sig[65];
    const json_t *ts, *it, *s, *md;
    const char *msg = NULL;
    json_error_t je;
    json_t *root = NULL;

    if (!key_acker || !key_signal_id || strlen(key_acker) > BC_ID_MAX ||
        strlen(key_signal_id) > BC_SIGID_MAX) {
        msg = "invalid key";
        goto err;
    }
    root = json ? json_loadb(json, len, JFLAGS, &je) : NULL;
    if (!root) {
        msg = "not JSON";
        goto err;
    }
    if (!json_is_object(root)) {
        msg = "not a JSON object";
        goto err;
    }
    if ((msg = ack_problem(root, key_acker, key_signal_id)))
        goto err;
    ts = json_object_get(root, "timestamp");
    it = json_object_get(root, "iteration");
    s = json_object_get(root, "signature");
    {
        piece_t v[] = {{key_acker, strlen(key_acker)},
                       {":", 1},
                       {key_signal_id, strlen(key_signal_id)},
                       {":", 1},
                       js_piece(ts, tsr),
                       {":", 1},
                       js_piece(it, itr)};
        if (h)
            mac(h, v, sizeof v / sizeof v[0], sig);
    }
    if (!h || !bc_sig_equal(sig, json_string_value(s), json_string_length(s))) {
        msg = "invalid signature";
        goto err;
    }
    if (out) {
        memset(out, 0, sizeof *out);
        strcpy(out->acker, key_acker);
        strcpy(out->signal_id, key_signal_id);
        out->timestamp = ack_time(ts);
        md = json_object_get(root, "metadata");
        if (json_is_object(md))
            copy_str(md, "signalType", out->signal_type, sizeof out->signal_type);
    }
    json_decref(root);
    if (why)
        *why = NULL;
    return 0;
err:
    json_decref(root);
    if (why)
        *why = msg;
    return -EINVAL;
}

int bc_ack_slot_decode(const char *json, size_t len, bc_ack_fields_t *out)
{
    json_error_t je;
    json_t *root;
    uint64_t t;

    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    root = json ? json_loadb(json, len, JFLAGS, &je) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return -EINVAL;
    }
    copy_str(root, "coordinatorId", out->acker, sizeof out->acker);
    copy_str(root, "signalId", out->signal_id, sizeof out->signal_id);
    if (integral(json_object_get(root, "timestamp"), 0, &t))
        out->timestamp = t;
    json_decref(root);
    return 0;
}
