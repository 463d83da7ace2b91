/* buf.h - bc_buf_t, a growable append-only byte buffer.
 *
 * Used for metrics exposition, HTTP input/output and anything else that
 * builds bytes piece by piece. The bytes are always followed by a NUL (not
 * counted in `len`), so a buffer holding text can be used as a C string.
 * Out-of-memory aborts. A bc_buf_t is not thread-safe: one owner at a time.
 */
#ifndef BC_BUF_H
#define BC_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct bc_buf_s {
    char *data; /* NULL until the first append; else len bytes + NUL */
    size_t len; /* bytes held, excluding the trailing NUL */
    size_t cap; /* bytes allocated at data (> len once allocated) */
} bc_buf_t;

#define BC_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Initialise an empty buffer (same as BC_BUF_INIT). Allocates nothing. */
void bc_buf_init(bc_buf_t *b);

/* Make room for `extra` more bytes (plus the NUL) without a later
 * reallocation. Aborts on out-of-memory or size overflow. */
void bc_buf_reserve(bc_buf_t *b, size_t extra);

/* Append `n` bytes copied from `p` (which may be NULL when n == 0). */
void bc_buf_append(bc_buf_t *b, const void *p, size_t n);

/* Append the C string `s` (without its NUL). */
void bc_buf_appends(bc_buf_t *b, const char *s);

/* Append one byte. */
void bc_buf_appendc(bc_buf_t *b, char c);

/* Append printf-formatted text. */
void bc_buf_appendf(bc_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append vprintf-formatted text. `ap` is consumed. */
void bc_buf_vappendf(bc_buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Drop the first `n` bytes (n > len drops all), moving the rest to the front.
 * Keeps the allocation. */
void bc_buf_consume(bc_buf_t *b, size_t n);

/* Set the length to 0, keeping the allocation for reuse. */
void bc_buf_reset(bc_buf_t *b);

/* Release the memory and leave the buffer empty and reusable. */
void bc_buf_free(bc_buf_t *b);

/* Hand the bytes to the caller: returns a malloc'd NUL-terminated string
 * (never NULL; "" for an empty buffer) that the caller frees with free(), and
 * stores its length in *len when len is not NULL. The buffer becomes empty. */
char *bc_buf_detach(bc_buf_t *b, size_t *len);

#endif /* BC_BUF_H */
