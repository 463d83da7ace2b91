/* redis_reply.c - copy a hiredis reply tree into one contiguous block; format a request.
 *
 * Key design decision: two regions in one block. All nodes and element vectors come first
 * (pointer-aligned, depth-first: node, its vector, then its children), and all string bytes
 * (each with a trailing NUL) follow. One measuring pass gives both region sizes, so the copy
 * is exactly bc_reply_size(r) bytes and fits in memory the caller owns (a pool message).
 */
#include "redis_reply.h"

#include <hiredis/hiredis.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(BC_REPLY_STRING == REDIS_REPLY_STRING, "reply type values");
_Static_assert(BC_REPLY_ARRAY == REDIS_REPLY_ARRAY, "reply type values");
_Static_assert(BC_REPLY_INTEGER == REDIS_REPLY_INTEGER, "reply type values");
_Static_assert(BC_REPLY_NIL == REDIS_REPLY_NIL, "reply type values");
_Static_assert(BC_REPLY_STATUS == REDIS_REPLY_STATUS, "reply type values");
_Static_assert(BC_REPLY_ERROR == REDIS_REPLY_ERROR, "reply type values");

#define NODE_ALIGN _Alignof(bc_reply_t)

static int has_str(int type)
{
    return type == REDIS_REPLY_STRING || type == REDIS_REPLY_STATUS || type == REDIS_REPLY_ERROR;
}

static int add(size_t *acc, size_t n)
{
    if (n > SIZE_MAX - *acc)
        return -1;
    *acc += n;
    return 0;
}

/* Size of an element vector, rounded up so that the node after it stays aligned. */
static int vector_size(size_t elements, size_t *out)
{
    size_t v;

    if (elements > (SIZE_MAX - NODE_ALIGN) / sizeof(bc_reply_t *))
        return -1;
    v = elements * sizeof(bc_reply_t *);
    *out = (v + NODE_ALIGN - 1) / NODE_ALIGN * NODE_ALIGN;
    return 0;
}

/* Add r's node/vector bytes to *fixed and string bytes to *strs; -1 if r is invalid. */
static int measure(const redisReply *r, size_t *fixed, size_t *strs, int depth)
{
    size_t i, vec;

    if (!r || depth > BC_REPLY_MAX_DEPTH || add(fixed, sizeof(bc_reply_t)) < 0)
        return -1;
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        if ((!r->str && r->len) || r->len == SIZE_MAX)
            return -1;
        return add(strs, r->len + 1);
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL:
        return 0;
    case REDIS_REPLY_ARRAY:
        if (r->elements && !r->element)
            return -1;
        if (vector_size(r->elements, &vec) < 0 || add(fixed, vec) < 0)
            return -1;
        for (i = 0; i < r->elements; i++)
            if (measure(r->element[i], fixed, strs, depth + 1) < 0)
                return -1;
        return 0;
    default:
        return -1;
    }
}

static int sizes(const redisReply *r, size_t *fixed, size_t *total)
{
    size_t strs = 0;

    *fixed = 0;
    if (measure(r, fixed, &strs, 1) < 0)
        return -1;
    *total = *fixed;
    return add(total, strs);
}

/* Copy r at *fix (node, then vector), its strings at *str; advance both cursors. */
static bc_reply_t *lay(const redisReply *r, char **fix, char **str)
{
    bc_reply_t *n = (bc_reply_t *)(void *)*fix;
    size_t i, vec = 0;

    *fix += sizeof *n;
    memset(n, 0, sizeof *n);
    n->type = (bc_reply_type_t)r->type;
    if (r->type == REDIS_REPLY_INTEGER)
        n->integer = r->integer;
    if (has_str(r->type)) {
        n->str = *str;
        n->len = r->len;
        if (r->len)
            memcpy(n->str, r->str, r->len);
        n->str[r->len] = '\0';
        *str += r->len + 1;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements) {
        vector_size(r->elements, &vec); /* cannot fail: measured before */
        n->element = (bc_reply_t **)(void *)*fix;
        n->elements = r->elements;
        *fix += vec;
        for (i = 0; i < r->elements; i++)
            n->element[i] = lay(r->element[i], fix, str);
    }
    return n;
}

size_t bc_reply_size(const struct redisReply *r)
{
    size_t fixed, total;

    return sizes(r, &fixed, &total) < 0 ? 0 : total;
}

bc_reply_t *bc_reply_copy_into(void *mem, size_t size, const struct redisReply *r)
{
    size_t fixed, total;
    char *fix, *str;

    if (!mem || (uintptr_t)mem % NODE_ALIGN != 0)
        return NULL;
    if (sizes(r, &fixed, &total) < 0 || size < total)
        return NULL;
    fix = mem;
    str = fix + fixed;
    return lay(r, &fix, &str);
}

bc_reply_t *bc_reply_copy(const struct redisReply *r)
{
    size_t size = bc_reply_size(r);
    void *mem;

    if (!size)
        return NULL;
    mem = malloc(size);
    if (!mem)
        abort();
    return bc_reply_copy_into(mem, size, r);
}

void bc_reply_free(bc_reply_t *r)
{
    free(r);
}

int bc_reply_is_error(const bc_reply_t *r)
{
    return !r || r->type == BC_REPLY_ERROR;
}

const char *bc_reply_str(const bc_reply_t *r, size_t *len)
{
    if (!r || !has_str((int)r->type)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = r->len;
    return r->str;
}

/* ---- dump ---- */

typedef struct out {
    char *buf;
    size_t len, pos;
    int cut;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    size_t room = o->len - 1 - o->pos; /* o->len >= 1, pos <= len - 1 */

    if (n > room) {
        n = room;
        o->cut = 1;
    }
    memcpy(o->buf + o->pos, s, n);
    o->pos += n;
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_escaped(out_t *o, const char *s, size_t n)
{
    size_t i;
    char esc[8];

    for (i = 0; i < n && !o->cut; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(o, esc, 2);
        } else if (c == '\n') {
            puts_(o, "\\n");
        } else if (c == '\r') {
            puts_(o, "\\r");
        } else if (c == '\t') {
            puts_(o, "\\t");
        } else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            puts_(o, esc);
        } else {
            put(o, (const char *)&s[i], 1);
        }
    }
}

static void dump(out_t *o, const bc_reply_t *r)
{
    char num[32];
    size_t i;

    switch (r->type) {
    case BC_REPLY_STRING:
        puts_(o, "\"");
        put_escaped(o, r->str, r->len);
        puts_(o, "\"");
        break;
    case BC_REPLY_STATUS:
        put_escaped(o, r->str, r->len);
        break;
    case BC_REPLY_ERROR:
        puts_(o, "(error) ");
        put_escaped(o, r->str, r->len);
        break;
    case BC_REPLY_INTEGER:
        snprintf(num, sizeof num, "(integer) %lld", r->integer);
        puts_(o, num);
        break;
    case BC_REPLY_NIL:
        puts_(o, "(nil)");
        break;
    case BC_REPLY_ARRAY:
        puts_(o, "[");
        for (i = 0; i < r->elements && !o->cut; i++) {
            if (i)
                puts_(o, ", ");
            dump(o, r->element[i]);
        }
        puts_(o, "]");
        break;
    default:
        snprintf(num, sizeof num, "(type %d)", (int)r->type);
        puts_(o, num);
        break;
    }
}

const char *bc_reply_dump(const bc_reply_t *r, char *buf, size_t len)
{
    out_t o = {buf, len, 0, 0};

    if (!buf || !len)
        return buf;
    if (r)
        dump(&o, r);
    else
        puts_(&o, "(no reply)");
    if (o.cut && len >= 4) /* a cut leaves the buffer full: pos == len - 1 */
        memcpy(buf + len - 4, "...", 3);
    buf[o.pos] = '\0';
    return buf;
}

/* ---------------------------------------------------------------- requests */

static size_t dec_len(size_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* v in decimal at p; returns the digit count. */
static size_t dec_put(char *p, size_t v)
{
    size_t n = dec_len(v);
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    return n;
}

size_t bc_resp_len(int argc, const size_t *argvlen)
{
    size_t n = 1 + dec_len((size_t)argc) + 2;
    for (int i = 0; i < argc; i++)
        n += 1 + dec_len(argvlen[i]) + 2 + argvlen[i] + 2;
    return n;
}

size_t bc_resp_write(char *out, int argc, const char *const *argv, const size_t *argvlen)
{
    char *p = out;
    *p++ = '*';
    p += dec_put(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        *p++ = '$';
        p += dec_put(p, argvlen[i]);
        *p++ = '\r';
        *p++ = '\n';
        if (argvlen[i])
            memcpy(p, argv[i], argvlen[i]);
        p += argvlen[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - out);
}
