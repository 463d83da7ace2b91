/* http.h - a small HTTP/1.1 server on a libev loop (metrics, admin API).
 *
 * The server lives on one ev_loop and every call into it, and every handler
 * call, happens on that loop's thread (bc_http_server_stats excepted). It
 * serves GET/POST-style request/response exchanges: requests are read in full
 * (Content-Length or chunked bodies, within the configured limits), handed to
 * a route's handler synchronously, and the response is buffered and written
 * without blocking. Keep-alive, pipelining, HTTP/1.0, Expect: 100-continue
 * and HEAD (served by the GET handler, body dropped) are supported. Bad or
 * slow clients get a short plain-text error (400, 404, 405, 408, 413, 414,
 * 431, 501, 505), are counted in bc_http_stats_t, and never stall others.
 * A handler may also answer later (bc_http_resp_defer): the response is
 * then completed on the loop thread by whoever holds the handle, e.g. from a
 * task another thread posted to that loop.
 */
#ifndef BC_HTTP_H
#define BC_HTTP_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

struct ev_loop;

typedef struct bc_http_server_s bc_http_server_t;
typedef struct bc_http_req_s bc_http_req_t;
typedef struct bc_http_resp_s bc_http_resp_t;
typedef struct bc_http_deferred_s bc_http_deferred_t;

/* Runs on the loop thread. Set the response through `resp` (default: 200,
 * empty body, text/plain); `req` and its strings are valid only during the
 * call. A handler must not block. */
typedef void (*bc_http_handler_fn)(bc_http_req_t *req, bc_http_resp_t *resp, void *arg);

typedef struct bc_http_opts_s {
    const char *bind_addr;    /* numeric IPv4 or IPv6 address; NULL = "127.0.0.1" */
    uint16_t port;            /* 0 = ephemeral (see bc_http_server_port) */
    int backlog;              /* listen backlog; 0 = 128 */
    size_t max_request_line;  /* bytes, without CRLF; 0 = 8 KiB; longer: 414 */
    size_t max_header_bytes;  /* bytes after the request line; 0 = 16 KiB; more: 431 */
    unsigned max_headers;     /* 0 = 64; more: 431 */
    size_t max_body;          /* decoded body bytes; 0 = 1 MiB; more: 413 */
    unsigned max_connections; /* 0 = 256; more are answered 503 and closed */
    double read_timeout;      /* s from a request's first byte to its end; 0 = 10; then 408 */
    double idle_timeout;      /* s a kept-alive connection may sit idle; 0 = 10 */
    double write_timeout;     /* s without write progress before closing; 0 = 10 */
    double handler_timeout;   /* s a deferred response may take; 0 = 30; then 504 */
    int no_keep_alive;        /* nonzero: close after every response */
} bc_http_opts_t;

/* Counters since creation. Every field counts events except conns_active. */
typedef struct bc_http_stats_s {
    uint64_t conns_accepted;
    uint64_t conns_rejected; /* over max_connections (503) */
    uint64_t conns_active;
    uint64_t requests;          /* complete requests routed (incl. 404/405) */
    uint64_t responses[6];      /* by status class: [2] = 2xx ... [5] = 5xx; [0] unused */
    uint64_t bad_request;       /* 400: malformed request line, header, framing */
    uint64_t not_found;         /* 404 */
    uint64_t bad_method;        /* 405 */
    uint64_t timeouts;          /* 408: request not complete within read_timeout */
    uint64_t body_too_large;    /* 413 */
    uint64_t uri_too_long;      /* 414 */
    uint64_t headers_too_large; /* 431: too many header bytes or lines */
    uint64_t not_implemented;   /* 501: unsupported Transfer-Encoding */
    uint64_t bad_version;       /* 505 */
    uint64_t idle_closed;       /* idle keep-alive connections closed */
    uint64_t write_timeouts;    /* closed: client did not read the response */
    uint64_t handler_timeouts;  /* 504: a deferred response not given in handler_timeout */
    uint64_t deferred;          /* requests answered later (bc_http_resp_defer) */
    uint64_t io_errors;         /* resets and other socket errors */
    uint64_t accept_errors;     /* accept() failures (e.g. EMFILE) */
} bc_http_stats_t;

/* Route flags */
#define BC_HTTP_EXACT 0u  /* path must equal the route path */
#define BC_HTTP_PREFIX 1u /* the route path is a prefix ending at a '/' boundary */

/* ---------------------------------------------------------------- server */

/* Fill `opts` with the defaults (same as zero-initialising it). */
void bc_http_opts_init(bc_http_opts_t *opts);

/* Create a server listening on opts->bind_addr:opts->port (opts may be NULL)
 * and register its watchers on `loop`. Call on the loop's thread, or before
 * the loop runs on another thread. Returns 0 and sets *out (owned by the
 * caller, freed with bc_http_server_destroy), -EINVAL for a bad address or
 * option, or the negative errno of socket/bind/listen (e.g. -EADDRINUSE). */
int bc_http_server_create(struct ev_loop *loop, const bc_http_opts_t *opts, bc_http_server_t **out);

/* Close the listener and every connection (pending output is dropped) and
 * free the server. Loop thread only (or after the loop stopped for good).
 * From inside a handler the work is deferred until the handler's callback
 * returns. NULL is ignored. */
void bc_http_server_destroy(bc_http_server_t *srv);

/* The bound TCP port (useful with port 0). Loop thread, or any thread after
 * create returned. */
uint16_t bc_http_server_port(const bc_http_server_t *srv);

/* Register a handler for `method` (NULL = any; "GET" also serves HEAD) and
 * `path` (starts with '/'; with BC_HTTP_PREFIX, matches path itself and
 * everything below it). The most specific match wins: an exact route over a
 * prefix, a longer prefix over a shorter one. A path matched only with
 * other methods is answered 405 with Allow. Strings are copied. Loop thread
 * (or before the loop runs). Returns 0, or -EINVAL (bad method, path, flags,
 * fn NULL), or -EEXIST (same method, path and flags already registered). */
int bc_http_route(bc_http_server_t *srv, const char *method, const char *path, unsigned flags,
                  bc_http_handler_fn fn, void *arg);

/* Copy the counters into *out. Any thread (each field is read atomically). */
void bc_http_server_stats(const bc_http_server_t *srv, bc_http_stats_t *out);

/* ---------------------------------------------------------------- request */
/* Accessors, valid during the handler call only; loop thread. */

const char *bc_http_req_method(const bc_http_req_t *req);
/* The path as sent (not percent-decoded), without the query string. */
const char *bc_http_req_path(const bc_http_req_t *req);
/* The query string after '?' (not decoded), or "" when there is none. */
const char *bc_http_req_query(const bc_http_req_t *req);
/* Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1. */
int bc_http_req_version(const bc_http_req_t *req);
/* Value of the first header called `name` (case-insensitive), trimmed, or
 * NULL when absent. */
const char *bc_http_req_header(const bc_http_req_t *req, const char *name);
/* The body (NUL-terminated for convenience; may contain NULs) and its
 * length in *len (when len is not NULL). Never NULL. */
const char *bc_http_req_body(const bc_http_req_t *req, size_t *len);
/* The peer's numeric address, its port, and whether it is a loopback
 * address (127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104). */
const char *bc_http_req_peer(const bc_http_req_t *req);
uint16_t bc_http_req_peer_port(const bc_http_req_t *req);
int bc_http_req_peer_is_loopback(const bc_http_req_t *req);
/* The token of "Authorization: Bearer <token>" (scheme case-insensitive),
 * or NULL when the header is absent, has another scheme or an empty token. */
const char *bc_http_req_bearer(const bc_http_req_t *req);
/* Copy the percent-decoded ('+' = space) value of query parameter `name`
 * into out[0..n) with a NUL. Returns its length, -ENOENT (absent), -ENOSPC
 * (does not fit) or -EINVAL (bad %-escape). A key without '=' has value "". */
int bc_http_req_query_param(const bc_http_req_t *req, const char *name, char *out, size_t n);

/* ---------------------------------------------------------------- response */
/* Valid during the handler call only; loop thread. */

/* Set the status (100-199 and outside 200..599 are turned into 500). */
void bc_http_resp_status(bc_http_resp_t *resp, int status);
/* Add a header. Content-Type replaces the default; Content-Length,
 * Connection, Transfer-Encoding and Date are managed by the server and
 * refused. Returns 0, -EINVAL (invalid name, CR/LF or control characters in
 * the value), or -EPERM (a managed header). */
int bc_http_resp_header(bc_http_resp_t *resp, const char *name, const char *value);
/* Replace the body with a copy of data[0..len). */
void bc_http_resp_body(bc_http_resp_t *resp, const void *data, size_t len);
/* The body buffer, to append to directly (e.g. bc_metrics_expose). */
bc_buf_t *bc_http_resp_buf(bc_http_resp_t *resp);
/* Status, Content-Type (NULL = text/plain; charset=utf-8) and body at once. */
void bc_http_resp_send(bc_http_resp_t *resp, int status, const char *content_type, const void *data,
                       size_t len);
/* Close the connection after this response. */
void bc_http_resp_close(bc_http_resp_t *resp);

/* ---------------------------------------------------------------- deferred responses */

/* In a handler: answer this request later instead of on return. Whatever was
 * set on resp is discarded. The connection reads and serves nothing more
 * (pipelined requests wait their turn) until the answer is given with
 * bc_http_deferred_finish, or, after opts.handler_timeout, the client gets a
 * 504 and the connection closes. The caller owns the handle and must finish
 * it exactly once, whatever happens to the connection or the server
 * meanwhile (then finishing only frees it). Never NULL (out-of-memory
 * aborts). Loop thread, in a handler; at most once per request. */
bc_http_deferred_t *bc_http_resp_defer(bc_http_resp_t *resp);

/* The response to fill (status 200, empty body, text/plain until set), with
 * the usual bc_http_resp_* setters. Valid until bc_http_deferred_finish.
 * Loop thread. */
bc_http_resp_t *bc_http_deferred_resp(bc_http_deferred_t *d);

/* 1 while the client still waits for the answer, 0 once its connection is
 * gone (closed, timed out, server destroyed). Loop thread. */
int bc_http_deferred_alive(const bc_http_deferred_t *d);

/* Send the response filled in bc_http_deferred_resp(d) (if the client still
 * waits), resume the connection, and free d. Loop thread, outside any handler
 * of the same server. */
void bc_http_deferred_finish(bc_http_deferred_t *d);

#endif /* BC_HTTP_H */
