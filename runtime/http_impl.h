/* http_impl.h - structures shared by http.c, http_conn.c and http_parse.c.
 * Not part of any API; nothing outside runtime/http* includes it.
 *
 * Offsets, not pointers: a request's strings are stored as offsets from the
 * start of the request in the connection's input buffer, because that buffer
 * may be reallocated while the body is still arriving. req->base is set just
 * before the handler runs.
 */
#ifndef BC_HTTP_IMPL_H
#define BC_HTTP_IMPL_H

#include "http.h"

#include <ev.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>

#define BC__HTTP_READ_CHUNK 16384
#define BC__HTTP_OUT_HIGH (256 * 1024) /* stop reading/processing above this */
#define BC__HTTP_LINGER 2.0            /* s to drain input after a final response */
#define BC__HTTP_LINGER_BYTES (1 << 20)

typedef struct bc__http_limits_s {
    size_t max_line, max_header_bytes, max_body;
    unsigned max_headers;
} bc__http_limits_t;

typedef struct bc__http_hdr_s {
    uint32_t name, value; /* offsets of NUL-terminated strings */
} bc__http_hdr_t;

enum { BC__BODY_NONE, BC__BODY_LENGTH, BC__BODY_CHUNKED };
enum { BC__CH_SIZE, BC__CH_DATA, BC__CH_DATA_END, BC__CH_TRAILER };

/* Parse state of the request at the front of the input. Zeroed per request. */
typedef struct bc__http_pstate_s {
    size_t line_end; /* offset after the request line's LF; 0 = not found yet */
    size_t scan;     /* start of the first header line not yet complete */
    size_t seen;     /* bytes already searched for a LF */
    unsigned nlines; /* header lines seen */
    size_t head_len; /* head length incl. blank line; 0 = incomplete */
    int body_mode;
    size_t content_length;
    int keep_alive, expect_continue, continue_sent;
    /* chunked decoding, in place: raw = next raw byte, dec = decoded bytes
     * stored at head_len, left = bytes left in the current chunk */
    int ch_phase;
    size_t raw, dec, left, ch_line_start, trailer_bytes;
} bc__http_pstate_t;

struct bc_http_req_s {
    const char *base; /* request start in the input buffer, during dispatch */
    uint32_t method, path, query;
    int minor;
    bc__http_hdr_t *hdrs;
    unsigned nhdrs;
    size_t body_off, body_len;
    const char *peer;
    uint16_t peer_port;
    int peer_loopback;
};

struct bc_http_resp_s {
    int status;
    int close;
    bc_http_deferred_t *deferred; /* set by bc_http_resp_defer during dispatch */
    bc_buf_t ctype;               /* Content-Type value; empty = text/plain */
    bc_buf_t headers;             /* "Name: value\r\n"... */
    bc_buf_t body;
};

typedef struct bc__http_route_s {
    char *method; /* NULL = any */
    char *path;
    size_t plen;
    unsigned flags;
    bc_http_handler_fn fn;
    void *arg;
} bc__http_route_t;

typedef struct bc__http_conn_s bc__http_conn_t;

/* A request answered later. Owned by whoever got it from bc_http_resp_defer;
 * conn is cleared when the connection goes away first. */
struct bc_http_deferred_s {
    bc__http_conn_t *conn; /* NULL once the client is gone */
    bc_http_resp_t resp;
    int keep_alive; /* as for bc__http_serialise, decided at dispatch */
    int head_only;
};

typedef struct bc__http_atomic_stats_s {
    _Atomic uint64_t conns_accepted, conns_rejected, conns_active, requests, responses[6];
    _Atomic uint64_t bad_request, not_found, bad_method, timeouts, body_too_large, uri_too_long,
        headers_too_large, not_implemented, bad_version, idle_closed, write_timeouts,
        handler_timeouts, deferred, io_errors, accept_errors;
} bc__http_atomic_stats_t;

struct bc_http_server_s {
    struct ev_loop *loop;
    int fd;
    uint16_t port;
    ev_io accept_io;
    ev_timer accept_backoff; /* accept paused after EMFILE and the like */
    bc_http_opts_t opts;     /* with defaults filled in */
    bc__http_limits_t lim;
    bc__http_route_t *routes;
    size_t nroutes;
    bc__http_conn_t *conns; /* doubly linked list of open connections */
    unsigned nconns;
    unsigned busy;       /* callback nesting depth */
    int destroy_pending; /* bc_http_server_destroy called inside a callback */
    bc_http_resp_t resp; /* reused for every dispatch */
    char date[40];       /* cached Date header value */
    long date_sec;
    bc__http_atomic_stats_t st;
};

/* Count one event in a stats field: loop thread writes, any thread reads. */
#define BC__HTTP_COUNT(srv, field)                                                                 \
    atomic_fetch_add_explicit(&(srv)->st.field, 1, memory_order_relaxed) /* a statistic */

/* http_parse.c */
int bc__http_parse_head(char *b, size_t len, const bc__http_limits_t *lim, bc__http_pstate_t *ps,
                        bc_http_req_t *req);
int bc__http_check_head(const char *b, const bc__http_limits_t *lim, bc__http_pstate_t *ps,
                        const bc_http_req_t *req);
int bc__http_chunked(char *b, size_t len, const bc__http_limits_t *lim, bc__http_pstate_t *ps);
int bc__http_token_in_list(const char *list, const char *token);
const char *bc__http_reason(int status);

/* http_conn.c */
void bc__http_accept_cb(struct ev_loop *loop, ev_io *w, int revents);
void bc__http_conn_close(bc__http_conn_t *c);
/* Park c on deferred response d (just returned by dispatch). */
void bc__http_conn_defer(bc__http_conn_t *c, bc_http_deferred_t *d);
/* Write d's response on its connection and resume it. */
void bc__http_conn_resume(bc__http_conn_t *c, bc_http_deferred_t *d);

/* http.c */
/* Route and run the handler; see http.c. Returns 1 (close after), 0, or 2 when
 * the handler deferred its answer (*deferred set, nothing appended). */
int bc__http_dispatch(bc_http_server_t *srv, bc_http_req_t *req, int keep_alive, bc_buf_t *out,
                      bc_http_deferred_t **deferred);
void bc__http_error_response(bc_http_server_t *srv, int status, bc_buf_t *out);
/* Serialise resp; keep_alive as for bc__http_dispatch. */
void bc__http_serialise(bc_http_server_t *srv, bc_http_resp_t *resp, int head_only, int keep_alive,
                        bc_buf_t *out);
void bc__http_server_leave(bc_http_server_t *srv);

#endif /* BC_HTTP_IMPL_H */
