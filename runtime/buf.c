/* buf.c - growable append-only byte buffer.
 *
 * Key decision: capacity grows geometrically (x2, at least 64 bytes) and the
 * contents always end with a NUL, so appends are amortised O(1) and text can
 * be handed to C string functions without a copy. Nothing here can fail
 * except allocation, which aborts, so the API has no error returns.
 */
#include "buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bc__buf_oom(void)
{
    fputs("blockcoord: out of memory in bc_buf\n", stderr);
    abort();
}

/* Initialise an empty buffer. Thread: the buffer's owner. */
void bc_buf_init(bc_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Ensure room for `extra` bytes plus the NUL. Thread: the buffer's owner.
 * Aborts on out-of-memory or when the size would overflow. */
void bc_buf_reserve(bc_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1)
        bc__buf_oom();
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        bc__buf_oom();
    b->data = p;
    b->cap = cap;
}

/* Append `n` bytes from `p`. Thread: the buffer's owner. */
void bc_buf_append(bc_buf_t *b, const void *p, size_t n)
{
    bc_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Append a C string. Thread: the buffer's owner. */
void bc_buf_appends(bc_buf_t *b, const char *s)
{
    bc_buf_append(b, s, strlen(s));
}

/* Append one byte. Thread: the buffer's owner. */
void bc_buf_appendc(bc_buf_t *b, char c)
{
    bc_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

/* Append vprintf output; formats straight into the spare capacity and
 * retries once with the exact size when it did not fit. Thread: the buffer's
 * owner. Aborts if the format itself fails (an invalid format string). */
void bc_buf_vappendf(bc_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    bc_buf_reserve(b, 64);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        fputs("blockcoord: bc_buf_appendf: bad format\n", stderr);
        abort();
    }
    if ((size_t)n >= room) {
        bc_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    b->len += (size_t)n;
}

/* Append printf output. Thread: the buffer's owner. */
void bc_buf_appendf(bc_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bc_buf_vappendf(b, fmt, ap);
    va_end(ap);
}

/* Drop the first `n` bytes. Thread: the buffer's owner. */
void bc_buf_consume(bc_buf_t *b, size_t n)
{
    if (n >= b->len) {
        bc_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

/* Empty the buffer, keeping its memory. Thread: the buffer's owner. */
void bc_buf_reset(bc_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Free the memory; the buffer is empty afterwards. Thread: the owner. */
void bc_buf_free(bc_buf_t *b)
{
    free(b->data);
    bc_buf_init(b);
}

/* Give the bytes away as a malloc'd string. Thread: the buffer's owner. */
char *bc_buf_detach(bc_buf_t *b, size_t *len)
{
    if (!b->data)
        bc_buf_reserve(b, 0);
    b->data[b->len] = '\0';
    char *p = b->data;
    if (len)
        *len = b->len;
    bc_buf_init(b);
    return p;
}
