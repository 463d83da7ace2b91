/* test_http.c - the libev HTTP server over real sockets on 127.0.0.1.
 * The loop runs on a background thread; clients are blocking sockets with
 * receive timeouts on the test thread (tests/http_fixture.h). */
#include "http_fixture.h"

#include <errno.h>

static void h_hello(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    bc_http_resp_send(resp, 200, NULL, "hello world\n", 12);
}

static void h_echo(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    size_t n;
    const char *b = bc_http_req_body(req, &n);
    bc_http_resp_send(resp, b[n] == '\0' ? 201 : 500, "application/octet-stream", b, n);
}

static void h_info(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    char v[64];
    int r = bc_http_req_query_param(req, "name", v, sizeof v);
    const char *bearer = bc_http_req_bearer(req), *x = bc_http_req_header(req, "x-test");
    bc_buf_appendf(bc_http_resp_buf(resp), "%s %s ?%s name=%s(%d) peer=%s lo=%d bearer=%s x=%s",
                   bc_http_req_method(req), bc_http_req_path(req), bc_http_req_query(req),
                   r >= 0 ? v : "-", r, bc_http_req_peer(req), bc_http_req_peer_is_loopback(req),
                   bearer ? bearer : "-", x ? x : "-");
    /* (no cmocka asserts on the loop thread: report through the status) */
    if (bc_http_resp_header(resp, "X-Reply", "yes") != 0 ||
        bc_http_resp_header(resp, "Content-Length", "1") != -EPERM ||
        bc_http_resp_header(resp, "X-Bad", "a\r\nb") != -EINVAL)
        bc_http_resp_status(resp, 500);
}

static void h_big(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    static char big[512 * 1024];
    bc_http_resp_body(resp, big, sizeof big);
}

static void h_destroy(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    bc_http_server_destroy(*(bc_http_server_t **)arg); /* deferred until we return */
    bc_http_resp_send(resp, 200, NULL, "bye\n", 4);
}

/* Deferred answers: h_later parks its request; the test thread has them finished on the loop
 * thread through an ev_async (as an I/O-thread task would). */
static struct {
    pthread_mutex_t lock;
    ev_async finish;
    bc_http_deferred_t *pending[8];
    int n, finished, alive_at_finish;
} later = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void h_later(bc_http_req_t *req, bc_http_resp_t *resp, void *arg)
{
    bc_http_resp_send(resp, 500, NULL, "discarded\n", 10); /* replaced by the deferred one */
    bc_http_deferred_t *d = bc_http_resp_defer(resp);
    pthread_mutex_lock(&later.lock);
    if (later.n < 8)
        later.pending[later.n++] = d;
    else
        bc_http_deferred_finish(d); /* never happens in these tests: an empty 200 */
    pthread_mutex_unlock(&later.lock);
}

static void later_finish_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    pthread_mutex_lock(&later.lock);
    for (int i = 0; i < later.n; i++) {
        bc_http_deferred_t *d = later.pending[i];
        bc_http_resp_t *r = bc_http_deferred_resp(d);
        later.alive_at_finish += bc_http_deferred_alive(d);
        bc_http_resp_send(r, 202, "application/json", "{\"done\":true}", 13);
        bc_http_resp_header(r, "X-Later", "1");
        bc_http_deferred_finish(d);
        later.finished++;
    }
    later.n = 0;
    pthread_mutex_unlock(&later.lock);
}

static int later_count(void)
{
    pthread_mutex_lock(&later.lock);
    int n = later.n;
    pthread_mutex_unlock(&later.lock);
    return n;
}

/* A field of `later`, read under its lock. */
static int later_get(const int *field)
{
    pthread_mutex_lock(&later.lock);
    int v = *field;
    pthread_mutex_unlock(&later.lock);
    return v;
}

/* Wait until n requests are parked (10 s at most). */
static void later_wait(int n)
{
    for (int i = 0; i < 1000 && later_count() < n; i++)
        bc_test_sleep_ms(10);
    assert_int_equal(later_count(), n);
}

static void fx_start(fx_t *f, const bc_http_opts_t *o)
{
    fx_init(f, o);
    assert_int_equal(bc_http_route(f->srv, "GET", "/hello", BC_HTTP_EXACT, h_hello, NULL), 0);
    assert_int_equal(bc_http_route(f->srv, "POST", "/echo", BC_HTTP_EXACT, h_echo, NULL), 0);
    assert_int_equal(bc_http_route(f->srv, "GET", "/api", BC_HTTP_PREFIX, h_info, NULL), 0);
    assert_int_equal(bc_http_route(f->srv, "GET", "/big", BC_HTTP_EXACT, h_big, NULL), 0);
    assert_int_equal(bc_http_route(f->srv, "POST", "/bye", 0, h_destroy, &f->srv), 0);
    assert_int_equal(bc_http_route(f->srv, NULL, "/later", 0, h_later, NULL), 0);
    later.n = later.finished = later.alive_at_finish = 0;
    ev_async_init(&later.finish, later_finish_cb);
    ev_async_start(f->loop, &later.finish);
    assert_int_equal(bc_http_route(f->srv, "GET", "/hello", 0, h_hello, NULL), -EEXIST);
    assert_int_equal(bc_http_route(f->srv, "GET", "nope", 0, h_hello, NULL), -EINVAL);
    fx_run(f);
}

static void test_get_and_accessors(void **state)
{
    fx_t f;
    fx_start(&f, NULL);
    cl_t c = cl_open(&f, 0);
    resp_t r;
    cl_sends(&c, GET_HELLO);
    const char *head = expect(&c, 200, "hello world\n");
    assert_non_null(strstr(head, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(head, "\r\nDate: "));
    cl_sends(&c, "GET /api/v1/x?name=a%20b+c&z HTTP/1.1\r\nHost: t\r\nX-Test:  v  \r\n"
                 "Authorization: bearer tok123\r\n\r\n");
    head = expect(&c, 200,
                  "GET /api/v1/x ?name=a%20b+c&z name=a b c(5) peer=127.0.0.1 lo=1 "
                  "bearer=tok123 x=v");
    assert_non_null(strstr(head, "X-Reply: yes\r\n"));
    cl_sends(&c, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n" GET_HELLO);
    assert_int_equal(cl_resp_ex(&c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Length: 12\r\n"));
    free(r.body);
    expect(&c, 200, "hello world\n"); /* the GET right after the bodiless HEAD */
    cl_close(&c);
    fx_stop(&f, 0);
}

static void test_404_405(void **state)
{
    fx_t f;
    fx_start(&f, NULL);
    cl_t c = cl_open(&f, 0);
    cl_sends(&c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    expect(&c, 404, "Not Found\n");
    cl_sends(&c, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_non_null(strstr(expect(&c, 405, NULL), "\r\nAllow: POST\r\n"));
    cl_sends(&c, "GET /apix HTTP/1.1\r\nHost: t\r\n\r\n"); /* prefix stops at '/' */
    expect(&c, 404, NULL);
    cl_sends(&c, GET_HELLO); /* still open: keep-alive */
    expect(&c, 200, NULL);
    cl_close(&c);
    bc_http_stats_t s = stats(&f);
    assert_int_equal(s.not_found, 2);
    assert_int_equal(s.bad_method, 1);
    assert_int_equal(s.responses[4], 3);
    fx_stop(&f, 0);
}

static void test_bad_requests(void **state)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET /hello\r\nHost: t\r\n\r\n", 400},
        {"GET  /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"GET /hello HTTP/1.1\r\nNoColon\r\n\r\n", 400},
        {"GET /hello HTTP/1.1\r\nHost : t\r\n\r\n", 400},
        {"GET /hello HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400},
        {"GET /hello HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n", 400},
        {"GET /hello HTTP/1.1\r\n\r\n", 400}, /* no Host */
        {"GET hello HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"GET /hello HTTP/2.0\r\nHost: t\r\n\r\n", 505},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         400},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
    };
    fx_t f;
    fx_start(&f, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(one_shot(&f, cases[i].req, 1), cases[i].status);
        assert_int_equal(get_hello(&f), 200); /* and the server still answers */
    }
    bc_http_stats_t s = stats(&f);
    assert_int_equal(s.bad_request, 13);
    assert_int_equal(s.bad_version, 1);
    assert_int_equal(s.not_implemented, 1);
    assert_int_equal(s.responses[2], 15);
    fx_stop(&f, 0);
}

static void test_limits(void **state)
{
    fx_t f;
    fx_start(&f, NULL);
    bc_buf_t b = BC_BUF_INIT;
    bc_buf_appends(&b, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Huge: ");
    for (int i = 0; i < 20000; i++)
        bc_buf_appendc(&b, 'a');
    bc_buf_appends(&b, "\r\n\r\n");
    assert_int_equal(one_shot(&f, b.data, 1), 431);
    assert_int_equal(get_hello(&f), 200);
    bc_buf_reset(&b);
    bc_buf_appends(&b, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 70; i++)
        bc_buf_appendf(&b, "X-H%d: v\r\n", i);
    bc_buf_appends(&b, "\r\n");
    assert_int_equal(one_shot(&f, b.data, 1), 431);
    bc_buf_reset(&b);
    bc_buf_appends(&b, "GET /");
    for (int i = 0; i < 9000; i++)
        bc_buf_appendc(&b, 'p');
    bc_buf_appends(&b, " HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(one_shot(&f, b.data, 1), 414);
    assert_int_equal(get_hello(&f), 200);
    /* 413 from the declared length, before the body is read... */
    assert_int_equal(one_shot(&f,
                              "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n"
                              "partial body",
                              1),
                     413);
    /* ...and from a chunked body that grows too big */
    cl_t c = cl_open(&f, 0);
    cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[65536 + 16];
    int n = snprintf(chunk, sizeof chunk, "10000\r\n");
    memset(chunk + n, 'z', 65536);
    memcpy(chunk + n + 65536, "\r\n", 2);
    for (int i = 0; i < 17; i++)
        cl_send(&c, chunk, (size_t)n + 65538);
    expect(&c, 413, "Content Too Large\n");
    cl_close(&c);
    assert_int_equal(get_hello(&f), 200);
    bc_http_stats_t s = stats(&f);
    assert_int_equal(s.headers_too_large, 2);
    assert_int_equal(s.uri_too_long, 1);
    assert_int_equal(s.body_too_large, 2);
    bc_buf_free(&b);
    fx_stop(&f, 0);
}

static void test_slow_client(void **state)
{
    fx_t f;
    bc_http_opts_t o;
    bc_http_opts_init(&o);
    o.read_timeout = 0.4;
    o.idle_timeout = 0.4;
    fx_start(&f, &o);
    double t0 = now_s();
    cl_t slow = cl_open(&f, 0), quiet = cl_open(&f, 0);
    cl_sends(&slow, "GET /hello HTTP/1.1\r\nHost: t\r\n"); /* and nothing more */
    assert_int_equal(get_hello(&f), 200);                  /* others are served meanwhile */
    expect(&slow, 408, "Request Timeout\n");
    assert_true(now_s() - t0 >= 0.35);
    assert_false(cl_fill(&slow)); /* closed */
    expect(&quiet, 408, NULL);    /* never sent a byte: 408 too */
    cl_close(&slow);
    cl_close(&quiet);
    /* a byte every 100 ms never completes the request either */
    cl_t drip = cl_open(&f, 0);
    for (int i = 0; i < 7; i++) {
        cl_send(&drip, &GET_HELLO[i], 1);
        bc_test_sleep_ms(100);
    }
    expect(&drip, 408, NULL);
    cl_close(&drip);
    /* an idle kept-alive connection is closed without a response */
    cl_t idle = cl_open(&f, 0);
    cl_sends(&idle, GET_HELLO);
    expect(&idle, 200, NULL);
    assert_false(cl_fill(&idle));
    assert_int_equal(idle.buf.len, 0);
    cl_close(&idle);
    bc_http_stats_t s = stats(&f);
    assert_int_equal(s.timeouts, 3);
    assert_true(s.idle_closed >= 1);
    assert_int_equal(get_hello(&f), 200);
    fx_stop(&f, 0);
}

static void test_keep_alive_and_pipelining(void **state)
{
    fx_t f;
    fx_start(&f, NULL);
    cl_t c = cl_open(&f, 0);
    for (int i = 0; i < 2; i++) {
        cl_sends(&c, GET_HELLO);
        expect(&c, 200, "hello world\n");
    }
    /* pipelined: three requests in one write, one with a chunked body, sent
     * after a blank line, then Connection: close */
    cl_sends(&c,
             "\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
             "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n"
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    expect(&c, 200, "hello world\n");
    expect(&c, 201, "abcde");
    assert_non_null(strstr(expect(&c, 201, "hi"), "Connection: close\r\n"));
    assert_false(cl_fill(&c));
    cl_close(&c);
    /* HTTP/1.0: closes by default, keeps alive on request */
    assert_int_equal(one_shot(&f, "GET /hello HTTP/1.0\r\n\r\n", 1), 200);
    c = cl_open(&f, 0);
    cl_sends(&c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_non_null(strstr(expect(&c, 200, NULL), "Connection: keep-alive\r\n"));
    /* Expect: 100-continue, and a request dripped byte by byte */
    cl_sends(&c,
             "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    bc_test_sleep_ms(50);
    assert_true(cl_fill(&c));
    assert_non_null(strstr(c.buf.data, "HTTP/1.1 100 Continue\r\n\r\n"));
    const char *rest = "12345" GET_HELLO;
    for (const char *p = rest; *p; p++) {
        cl_send(&c, p, 1);
        if (p - rest < 8)
            bc_test_sleep_ms(2);
    }
    expect(&c, 201, "12345");
    expect(&c, 200, "hello world\n");
    cl_close(&c);
    fx_stop(&f, 0);
}

static void test_backpressure(void **state)
{
    fx_t f;
    bc_http_opts_t o;
    bc_http_opts_init(&o);
    o.write_timeout = 0.5;
    fx_start(&f, &o);
    /* 8 x 512 KiB pipelined, read only after they are all queued */
    cl_t c = cl_open(&f, 0);
    for (int i = 0; i < 8; i++)
        cl_sends(&c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    bc_test_sleep_ms(100); /* the server fills the socket, then waits */
    for (int i = 0; i < 8; i++) {
        resp_t r;
        assert_int_equal(cl_resp(&c, &r), 0);
        assert_int_equal(r.len, 512 * 1024);
        free(r.body);
    }
    cl_close(&c);
    /* a client that never reads is dropped after write_timeout */
    cl_t lazy = cl_open(&f, 4096);
    for (int i = 0; i < 16; i++)
        cl_sends(&lazy, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 100 && stats(&f).write_timeouts == 0; i++)
        bc_test_sleep_ms(50);
    assert_int_equal(stats(&f).write_timeouts, 1);
    assert_int_equal(get_hello(&f), 200);
    cl_close(&lazy);
    fx_stop(&f, 0);
}

static void test_many_connections(void **state)
{
    enum { N = 200 };
    fx_t f;
    fx_start(&f, NULL);
    cl_t *c = calloc(N, sizeof *c);
    for (int i = 0; i < N; i++)
        c[i] = cl_open(&f, 0);
    for (int i = 0; i < N; i++)
        cl_sends(&c[i], GET_HELLO);
    for (int i = N - 1; i >= 0; i--) {
        expect(&c[i], 200, "hello world\n");
        cl_close(&c[i]);
    }
    free(c);
    fx_stop(&f, 0);

    bc_http_opts_t o;
    bc_http_opts_init(&o);
    o.max_connections = 4;
    fx_start(&f, &o);
    cl_t k[4];
    for (int i = 0; i < 4; i++) {
        k[i] = cl_open(&f, 0);
        cl_sends(&k[i], GET_HELLO);
        expect(&k[i], 200, NULL);
    }
    cl_t extra = cl_open(&f, 0); /* over the limit: 503, closed */
    expect(&extra, 503, "service unavailable\n");
    assert_false(cl_fill(&extra));
    cl_close(&extra);
    assert_int_equal(stats(&f).conns_rejected, 1);
    assert_int_equal(stats(&f).conns_active, 4);
    cl_close(&k[0]);
    for (int i = 0; i < 100 && stats(&f).conns_active == 4; i++)
        bc_test_sleep_ms(10);
    assert_int_equal(get_hello(&f), 200);
    for (int i = 1; i < 4; i++)
        cl_close(&k[i]);
    fx_stop(&f, 0);
}

static void test_destroy_in_handler(void **state)
{
    fx_t f;
    fx_start(&f, NULL);
    cl_t other = cl_open(&f, 0);
    /* the response may or may not make it out before the connection closes */
    int st = one_shot(&f, "POST /bye HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 0);
    assert_true(st == 200 || st == -1);
    assert_false(cl_fill(&other)); /* other connections are closed too */
    cl_close(&other);
    fx_stop(&f, 1);
}

/* A deferred answer: the connection waits for it (a request pipelined behind it is answered
 * after it, in order), other clients are served meanwhile; HEAD drops its body. */
static void test_deferred_response(void **state)
{
    fx_t f;
    fx_start(&f, NULL);
    cl_t c = cl_open(&f, 0);
    cl_sends(&c, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n" GET_HELLO);
    later_wait(1);
    assert_int_equal(get_hello(&f), 200); /* the server is not blocked */
    struct timeval tv = {0, 200000};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_false(cl_fill(&c)); /* nothing yet: neither the answer nor the pipelined one */
    tv.tv_sec = 5;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ev_async_send(f.loop, &later.finish);
    const char *head = expect(&c, 202, "{\"done\":true}");
    assert_non_null(strstr(head, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(head, "X-Later: 1\r\n"));
    expect(&c, 200, "hello world\n"); /* then the pipelined request */
    cl_sends(&c, "HEAD /later HTTP/1.1\r\nHost: t\r\n\r\n");
    later_wait(1);
    ev_async_send(f.loop, &later.finish);
    resp_t r;
    assert_int_equal(cl_resp_ex(&c, &r, 1), 0);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.head, "Content-Length: 13\r\n"));
    free(r.body);
    /* keep-alive survives a deferred answer; Connection: close is honoured */
    cl_sends(&c, "POST /later HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
                 "Connection: close\r\n\r\n");
    later_wait(1);
    ev_async_send(f.loop, &later.finish);
    assert_non_null(strstr(expect(&c, 202, NULL), "Connection: close\r\n"));
    assert_false(cl_fill(&c));
    cl_close(&c);
    assert_int_equal(later_get(&later.alive_at_finish), 3);
    bc_http_stats_t s = stats(&f);
    assert_int_equal(s.deferred, 3);
    assert_int_equal(s.handler_timeouts, 0);
    fx_stop(&f, 0);
}

/* No answer within handler_timeout: 504 and close, the late answer is dropped; a client that
 * leaves, and a server destroyed, with an answer pending: finishing only frees the handle. */
static void test_deferred_timeout_and_gone(void **state)
{
    fx_t f;
    bc_http_opts_t o;
    bc_http_opts_init(&o);
    o.handler_timeout = 0.3;
    fx_start(&f, &o);
    cl_t c = cl_open(&f, 0);
    cl_sends(&c, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
    expect(&c, 504, "Gateway Timeout\n");
    assert_false(cl_fill(&c));
    cl_close(&c);
    later_wait(1);
    ev_async_send(f.loop, &later.finish);
    for (int i = 0; i < 500 && later_get(&later.finished) < 1; i++)
        bc_test_sleep_ms(10);
    assert_int_equal(later_get(&later.finished), 1);
    assert_int_equal(later_get(&later.alive_at_finish), 0);
    assert_int_equal(stats(&f).handler_timeouts, 1);
    assert_int_equal(get_hello(&f), 200);

    /* the client goes away first */
    c = cl_open(&f, 0);
    cl_sends(&c, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
    later_wait(1);
    cl_close(&c);
    ev_async_send(f.loop, &later.finish);
    for (int i = 0; i < 500 && later_get(&later.finished) < 2; i++)
        bc_test_sleep_ms(10);
    assert_int_equal(later_get(&later.finished), 2);
    assert_int_equal(get_hello(&f), 200);

    /* the server is destroyed first */
    c = cl_open(&f, 0);
    cl_sends(&c, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
    later_wait(1);
    fx_stop(&f, 0);
    assert_false(cl_fill(&c)); /* closed without an answer */
    cl_close(&c);
    assert_false(bc_http_deferred_alive(later.pending[0]));
    bc_http_deferred_finish(later.pending[0]); /* frees it (ASan checks) */
    later.n = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_accessors),
        cmocka_unit_test(test_404_405),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_slow_client),
        cmocka_unit_test(test_keep_alive_and_pipelining),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_destroy_in_handler),
        cmocka_unit_test(test_deferred_response),
        cmocka_unit_test(test_deferred_timeout_and_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
