/* http_conn.c - HTTP connections: accept, read, process, write, time out.
 *
 * Key decision: one ev_timer per connection, armed for the one deadline that
 * matters in its current state (request incomplete after read_timeout, no
 * write progress within write_timeout, idle keep-alive, lingering close) and
 * recomputed after every event. A client that drips bytes, never reads or
 * never sends costs one timer and a bounded buffer; everyone else is served.
 */
#include "http_impl.h"
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    CF_IN_REQ = 1u << 0,      /* a request is under way: read deadline applies */
    CF_CLOSE_AFTER = 1u << 1, /* close once the output is written */
    CF_EOF = 1u << 2,         /* the peer finished sending */
    CF_LINGER = 1u << 3,      /* final response sent; draining input before close */
    CF_PAUSED = 1u << 4,      /* too much output pending: not reading/processing */
    CF_DEFERRED = 1u << 5,    /* the handler answers later: not reading/processing */
};

struct bc__http_conn_s {
    bc_http_server_t *srv;
    bc__http_conn_t *prev, *next;
    int fd;
    unsigned flags;
    ev_io rio, wio;
    ev_timer timer;
    ev_tstamp armed;      /* deadline the timer is set for */
    ev_tstamp req_start;  /* CF_IN_REQ: when the request began */
    ev_tstamp idle_start; /* when the last response was queued */
    ev_tstamp last_write; /* last write progress while output is pending */
    ev_tstamp linger_start;
    ev_tstamp defer_start;        /* CF_DEFERRED: when the handler deferred */
    bc_http_deferred_t *deferred; /* CF_DEFERRED: the answer we wait for */
    size_t lingered;
    bc_buf_t in, out;
    size_t out_off;
    bc__http_pstate_t ps;
    bc_http_req_t req;
    char peer[INET6_ADDRSTRLEN];
};

static ev_tstamp bc__conn_deadline(const bc__http_conn_t *c)
{
    const bc_http_opts_t *o = &c->srv->opts;
    if (c->flags & CF_LINGER)
        return c->linger_start +
               (o->read_timeout < BC__HTTP_LINGER ? o->read_timeout : BC__HTTP_LINGER);
    if (c->out.len > c->out_off)
        return c->last_write + o->write_timeout;
    if (c->flags & CF_DEFERRED)
        return c->defer_start + o->handler_timeout;
    if (c->flags & CF_IN_REQ)
        return c->req_start + o->read_timeout;
    return c->idle_start + o->idle_timeout;
}

static void bc__conn_arm(bc__http_conn_t *c)
{
    struct ev_loop *loop = c->srv->loop;
    ev_tstamp d = bc__conn_deadline(c);
    if (ev_is_active(&c->timer) && d == c->armed)
        return;
    c->armed = d;
    ev_timer_stop(loop, &c->timer);
    ev_tstamp after = d - ev_now(loop);
    ev_timer_set(&c->timer, after > 0 ? after : 0., 0.);
    ev_timer_start(loop, &c->timer);
}

/* Close and free a connection. Loop thread; c must not be used afterwards. */
void bc__http_conn_close(bc__http_conn_t *c)
{
    bc_http_server_t *srv = c->srv;
    ev_io_stop(srv->loop, &c->rio);
    ev_io_stop(srv->loop, &c->wio);
    ev_timer_stop(srv->loop, &c->timer);
    if (c->deferred)
        c->deferred->conn = NULL; /* its owner finishes it later: then only freed */
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    atomic_fetch_sub_explicit(&srv->st.conns_active, 1, memory_order_relaxed); /* a gauge */
    bc_buf_free(&c->in);
    bc_buf_free(&c->out);
    free(c->req.hdrs);
    free(c);
}

static void bc__conn_fail(bc__http_conn_t *c, int status)
{
    bc_http_server_t *srv = c->srv;
    switch (status) {
    case 408:
        BC__HTTP_COUNT(srv, timeouts);
        break;
    case 413:
        BC__HTTP_COUNT(srv, body_too_large);
        break;
    case 414:
        BC__HTTP_COUNT(srv, uri_too_long);
        break;
    case 431:
        BC__HTTP_COUNT(srv, headers_too_large);
        break;
    case 501:
        BC__HTTP_COUNT(srv, not_implemented);
        break;
    case 505:
        BC__HTTP_COUNT(srv, bad_version);
        break;
    default:
        BC__HTTP_COUNT(srv, bad_request);
        break;
    }
    bc__http_error_response(srv, status, &c->out);
    c->flags |= CF_CLOSE_AFTER;
}

/* Drain input after the final response, then close. Returns -1 if closed. */
static int bc__conn_begin_linger(bc__http_conn_t *c)
{
    if (c->flags & CF_EOF) {
        bc__http_conn_close(c);
        return -1;
    }
    shutdown(c->fd, SHUT_WR);
    c->flags |= CF_LINGER;
    c->linger_start = ev_now(c->srv->loop);
    bc_buf_free(&c->in);
    ev_io_start(c->srv->loop, &c->rio);
    bc__conn_arm(c);
    return 0;
}

/* Write what is pending; wait for EV_WRITE on a full socket. Afterwards:
 * close (CF_CLOSE_AFTER), keep reading, and re-arm the timer. Returns -1 when
 * the connection was closed. */
static int bc__conn_flush(bc__http_conn_t *c)
{
    struct ev_loop *loop = c->srv->loop;
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_write = ev_now(loop);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!ev_is_active(&c->wio)) {
                c->last_write = ev_now(loop);
                ev_io_start(loop, &c->wio);
            }
            bc__conn_arm(c);
            return 0;
        } else {
            BC__HTTP_COUNT(c->srv, io_errors);
            bc__http_conn_close(c);
            return -1;
        }
    }
    bc_buf_reset(&c->out);
    c->out_off = 0;
    ev_io_stop(loop, &c->wio);
    if (c->flags & CF_CLOSE_AFTER)
        return (c->flags & CF_LINGER) ? 0 : bc__conn_begin_linger(c);
    if (!(c->flags & (CF_EOF | CF_PAUSED | CF_DEFERRED)))
        ev_io_start(loop, &c->rio);
    bc__conn_arm(c);
    return 0;
}

/* Body of the request at pos: 1 complete (*end = its end), 0 more, -status. */
static int bc__conn_body(bc__http_conn_t *c, size_t pos, size_t *end)
{
    bc__http_pstate_t *ps = &c->ps;
    size_t avail = c->in.len - pos;
    c->req.body_off = ps->head_len;
    switch (ps->body_mode) {
    case BC__BODY_NONE:
        c->req.body_len = 0;
        *end = pos + ps->head_len;
        return 1;
    case BC__BODY_LENGTH:
        if (avail - ps->head_len < ps->content_length)
            return 0;
        c->req.body_len = ps->content_length;
        *end = pos + ps->head_len + ps->content_length;
        return 1;
    default: {
        int r = bc__http_chunked(c->in.data + pos, avail, &c->srv->lim, ps);
        c->req.body_len = ps->dec;
        *end = pos + ps->raw;
        return r;
    }
    }
}

/* Run the handler for the complete request at pos, body NUL-terminated. */
static void bc__conn_dispatch(bc__http_conn_t *c, size_t pos)
{
    bc_http_server_t *srv = c->srv;
    char *base = c->in.data + pos, *body_end = base + c->req.body_off + c->req.body_len;
    char saved = *body_end;
    int ka = !srv->opts.no_keep_alive && c->ps.keep_alive ? (c->req.minor ? 1 : 2) : 0;
    c->req.base = base;
    *body_end = '\0';
    bc_http_deferred_t *d = NULL;
    int r = bc__http_dispatch(srv, &c->req, ka, &c->out, &d);
    if (r == 2)
        bc__http_conn_defer(c, d);
    else if (r)
        c->flags |= CF_CLOSE_AFTER;
    *body_end = saved;
}

/* Handle every complete request in the input, queueing the responses. */
static void bc__conn_process(bc__http_conn_t *c)
{
    bc_http_server_t *srv = c->srv;
    ev_tstamp now = ev_now(srv->loop);
    size_t pos = 0;
    while (!(c->flags & (CF_CLOSE_AFTER | CF_LINGER | CF_DEFERRED)) && !srv->destroy_pending) {
        if (c->out.len - c->out_off > BC__HTTP_OUT_HIGH) {
            c->flags |= CF_PAUSED;
            break;
        }
        int r;
        if (!c->ps.head_len) {
            while (pos < c->in.len && !c->ps.seen &&
                   (c->in.data[pos] == '\r' || c->in.data[pos] == '\n'))
                pos++; /* empty lines before a request are allowed */
            if (pos == c->in.len)
                break;
            r = bc__http_parse_head(c->in.data + pos, c->in.len - pos, &srv->lim, &c->ps, &c->req);
            if (r == 0)
                break;
            if (r > 0)
                r = bc__http_check_head(c->in.data + pos, &srv->lim, &c->ps, &c->req);
            if (r < 0) {
                bc__conn_fail(c, -r);
                break;
            }
        }
        size_t end = 0;
        r = bc__conn_body(c, pos, &end);
        if (r < 0) {
            bc__conn_fail(c, -r);
            break;
        }
        if (r == 0) {
            if (c->ps.head_len && c->ps.expect_continue && !c->ps.continue_sent &&
                c->req.minor >= 1 && c->in.len - pos == c->ps.head_len) {
                bc_buf_appends(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                c->ps.continue_sent = 1;
            }
            break;
        }
        bc__conn_dispatch(c, pos);
        pos = end;
        memset(&c->ps, 0, sizeof c->ps);
        c->flags &= ~(unsigned)CF_IN_REQ;
        c->idle_start = now;
    }
    if (c->flags & CF_CLOSE_AFTER)
        bc_buf_reset(&c->in);
    else
        bc_buf_consume(&c->in, pos);
    if ((c->in.len || c->ps.head_len) && !(c->flags & CF_IN_REQ)) {
        c->flags |= CF_IN_REQ;
        c->req_start = now;
    }
    if ((c->flags & CF_EOF) && !(c->flags & (CF_PAUSED | CF_DEFERRED)))
        c->flags |= CF_CLOSE_AFTER; /* a partial request is dropped */
    if (c->flags & (CF_CLOSE_AFTER | CF_PAUSED | CF_DEFERRED))
        ev_io_stop(srv->loop, &c->rio);
}

/* Process and flush; while output drains at once, go on with requests held
 * back by CF_PAUSED (a few rounds, then yield to other connections through an
 * EV_WRITE callback). */
static void bc__conn_run(bc__http_conn_t *c)
{
    for (int round = 0;; round++) {
        bc__conn_process(c);
        if (bc__conn_flush(c) < 0 || !(c->flags & CF_PAUSED) || c->out.len)
            return;
        if (round == 8) {
            ev_io_start(c->srv->loop, &c->wio);
            return;
        }
        c->flags &= ~(unsigned)CF_PAUSED;
    }
}

static void bc__conn_readable(bc__http_conn_t *c)
{
    if (c->flags & CF_LINGER) {
        char scratch[4096];
        for (;;) {
            ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
            if (n > 0 && (c->lingered += (size_t)n) < BC__HTTP_LINGER_BYTES)
                continue;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            bc__http_conn_close(c); /* EOF, error, or drained enough */
            return;
        }
    }
    for (int i = 0; i < 4; i++) {
        bc_buf_reserve(&c->in, BC__HTTP_READ_CHUNK);
        size_t room = c->in.cap - c->in.len - 1;
        ssize_t n = recv(c->fd, c->in.data + c->in.len, room, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = '\0';
            if ((size_t)n < room)
                break;
        } else if (n == 0) {
            c->flags |= CF_EOF;
            break;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            BC__HTTP_COUNT(c->srv, io_errors);
            bc__http_conn_close(c);
            return;
        }
    }
    bc__conn_run(c);
}

static void bc__conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    bc__http_conn_t *c = w->data;
    bc_http_server_t *srv = c->srv;
    srv->busy++;
    bc__conn_readable(c);
    bc__http_server_leave(srv);
}

static void bc__conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    bc__http_conn_t *c = w->data;
    bc_http_server_t *srv = c->srv;
    srv->busy++;
    if (bc__conn_flush(c) == 0 && (c->flags & CF_PAUSED) && c->out.len == 0) {
        c->flags &= ~(unsigned)CF_PAUSED;
        bc__conn_run(c); /* the pipelined requests still buffered */
    }
    bc__http_server_leave(srv);
}

static void bc__conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    bc__http_conn_t *c = w->data;
    bc_http_server_t *srv = c->srv;
    srv->busy++;
    if (bc__conn_deadline(c) - ev_now(loop) > 1e-3) {
        bc__conn_arm(c); /* the state changed since the timer was set */
    } else if (c->flags & CF_LINGER) {
        bc__http_conn_close(c);
    } else if (c->out.len > c->out_off) {
        BC__HTTP_COUNT(srv, write_timeouts);
        bc__http_conn_close(c);
    } else if (c->flags & CF_DEFERRED) {
        BC__HTTP_COUNT(srv, handler_timeouts);
        c->deferred->conn = NULL; /* the late answer is dropped */
        c->deferred = NULL;
        c->flags = (c->flags & ~(unsigned)CF_DEFERRED) | CF_CLOSE_AFTER;
        bc_buf_reset(&c->in);
        bc__http_error_response(srv, 504, &c->out);
        ev_io_stop(loop, &c->rio);
        bc__conn_flush(c);
    } else if ((c->flags & CF_IN_REQ) && !(c->flags & CF_CLOSE_AFTER)) {
        bc_buf_reset(&c->in);
        bc__conn_fail(c, 408);
        ev_io_stop(loop, &c->rio);
        bc__conn_flush(c);
    } else {
        BC__HTTP_COUNT(srv, idle_closed);
        bc__http_conn_close(c);
    }
    bc__http_server_leave(srv);
}

/* Park c until d is finished: no reading, no processing; the handler
 * deadline applies. Loop thread, in dispatch. */
void bc__http_conn_defer(bc__http_conn_t *c, bc_http_deferred_t *d)
{
    d->conn = c;
    c->deferred = d;
    c->flags |= CF_DEFERRED;
    c->defer_start = ev_now(c->srv->loop);
}

/* Queue d's response on c, then serve what was pipelined behind it. Loop
 * thread, from bc_http_deferred_finish. */
void bc__http_conn_resume(bc__http_conn_t *c, bc_http_deferred_t *d)
{
    bc_http_server_t *srv = c->srv;
    srv->busy++;
    d->conn = NULL;
    c->deferred = NULL;
    c->flags &= ~(unsigned)CF_DEFERRED;
    int ka = d->resp.close ? 0 : d->keep_alive;
    bc__http_serialise(srv, &d->resp, d->head_only, ka, &c->out);
    if (!ka)
        c->flags |= CF_CLOSE_AFTER;
    c->idle_start = ev_now(srv->loop);
    bc__conn_run(c);
    bc__http_server_leave(srv);
}

static void bc__conn_new(bc_http_server_t *srv, int fd, const struct sockaddr_storage *ss)
{
    int one = 1;
    bc__http_conn_t *c = calloc(1, sizeof *c);
    if (!c || !(c->req.hdrs = calloc(srv->opts.max_headers, sizeof *c->req.hdrs)))
        abort();
    c->srv = srv;
    c->fd = fd;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof c->peer);
        c->req.peer_port = ntohs(a->sin_port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof c->peer);
        c->req.peer_port = ntohs(a->sin6_port);
    }
    c->req.peer_loopback = bc_net_is_loopback(ss);
    c->req.peer = c->peer;
    ev_io_init(&c->rio, bc__conn_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, bc__conn_write_cb, fd, EV_WRITE);
    ev_init(&c->timer, bc__conn_timer_cb);
    c->rio.data = c->wio.data = c->timer.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    atomic_fetch_add_explicit(&srv->st.conns_active, 1, memory_order_relaxed); /* a gauge */
    c->flags = CF_IN_REQ; /* the first request is due within read_timeout */
    c->req_start = c->idle_start = ev_now(srv->loop);
    ev_io_start(srv->loop, &c->rio);
    bc__conn_arm(c);
}

/* The listener's callback: accept what is pending (bounded per call), refuse
 * connections over the limit with a 503, back off on EMFILE and the like.
 * Loop thread. */
void bc__http_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 20\r\nConnection: close\r\n\r\n"
                               "service unavailable\n";
    bc_http_server_t *srv = w->data;
    srv->busy++;
    for (int i = 0; i < 64 && !srv->destroy_pending; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(srv->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                BC__HTTP_COUNT(srv, accept_errors);
                ev_io_stop(loop, &srv->accept_io);
                ev_timer_set(&srv->accept_backoff, 0.1, 0.);
                ev_timer_start(loop, &srv->accept_backoff);
            }
            break;
        }
        BC__HTTP_COUNT(srv, conns_accepted);
        if (srv->nconns >= srv->opts.max_connections) {
            BC__HTTP_COUNT(srv, conns_rejected); /* counted before the peer can see it */
            BC__HTTP_COUNT(srv, responses[5]);
            ssize_t n = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)n; /* best effort */
            close(fd);
            continue;
        }
        bc__conn_new(srv, fd, &ss);
    }
    bc__http_server_leave(srv);
}
