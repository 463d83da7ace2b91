/* test_redis_reply.c - unit tests for runtime/redis_reply.c (compact reply copies).
 *
 * Replies are produced by hiredis's own parser (redisReaderCreate + redisReaderFeed on RESP
 * bytes), copied into blocks of exactly bc_reply_size() bytes, and checked after the hiredis
 * reply has been freed, so ASan catches any overrun or pointer back into the original.
 */
#include "harness.h"

#include "redis_reply.h"

#include <hiredis/hiredis.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static redisReply *parse_n(const char *resp, size_t n)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;

    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, n), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

#define PARSE(lit) parse_n((lit), sizeof(lit) - 1)

/* Every pointer of the copy lies inside [base, base + size). */
static void assert_inside(const bc_reply_t *r, const char *base, size_t size)
{
    size_t i;

    assert_true((const char *)r >= base && (const char *)(r + 1) <= base + size);
    if (r->str)
        assert_true(r->str >= base && r->str + r->len + 1 <= base + size);
    if (r->element) {
        assert_true((const char *)r->element >= base &&
                    (const char *)(r->element + r->elements) <= base + size);
        for (i = 0; i < r->elements; i++)
            assert_inside(r->element[i], base, size);
    }
}

/* The copy is structurally identical to the original. */
static void assert_same(const redisReply *a, const bc_reply_t *b)
{
    size_t i;

    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        assert_int_equal(a->len, b->len);
        assert_memory_equal(a->str, b->str, a->len + 1);
        break;
    case REDIS_REPLY_INTEGER:
        assert_true(a->integer == b->integer);
        assert_null(b->str);
        break;
    case REDIS_REPLY_ARRAY:
        assert_int_equal(a->elements, b->elements);
        if (!a->elements)
            assert_null(b->element);
        for (i = 0; i < a->elements; i++)
            assert_same(a->element[i], b->element[i]);
        break;
    default:
        assert_null(b->str);
        assert_int_equal(b->len, 0);
    }
}

/* Copy into a block of exactly bc_reply_size bytes, check, free the original.
 * Returns the copy (free with bc_reply_free). */
static bc_reply_t *exact_copy(redisReply *orig)
{
    size_t size = bc_reply_size(orig);
    void *mem;
    bc_reply_t *c;

    assert_true(size >= sizeof(bc_reply_t));
    mem = malloc(size);
    assert_non_null(mem);
    assert_null(bc_reply_copy_into(mem, size - 1, orig)); /* one byte short */
    c = bc_reply_copy_into(mem, size, orig);
    assert_ptr_equal(c, mem);
    assert_inside(c, mem, size);
    assert_same(orig, c);
    freeReplyObject(orig);
    return c;
}

static const char *dump(const bc_reply_t *r)
{
    static char buf[512];
    return bc_reply_dump(r, buf, sizeof buf);
}

static void test_status_error_integer(void **state)
{
    bc_reply_t *r;
    size_t len;

    r = exact_copy(PARSE("+OK\r\n"));
    assert_int_equal(r->type, BC_REPLY_STATUS);
    assert_string_equal(bc_reply_str(r, &len), "OK");
    assert_int_equal(len, 2);
    assert_false(bc_reply_is_error(r));
    assert_string_equal(dump(r), "OK");
    bc_reply_free(r);

    r = exact_copy(PARSE("-WRONGTYPE Operation against a key\r\n"));
    assert_int_equal(r->type, BC_REPLY_ERROR);
    assert_true(bc_reply_is_error(r));
    assert_string_equal(bc_reply_str(r, NULL), "WRONGTYPE Operation against a key");
    assert_string_equal(dump(r), "(error) WRONGTYPE Operation against a key");
    bc_reply_free(r);

    r = exact_copy(PARSE(":-9223372036854775808\r\n"));
    assert_int_equal(r->type, BC_REPLY_INTEGER);
    assert_true(r->integer == INT64_MIN);
    assert_null(bc_reply_str(r, &len));
    assert_int_equal(len, 0);
    assert_false(bc_reply_is_error(r));
    assert_string_equal(dump(r), "(integer) -9223372036854775808");
    assert_int_equal(bc_reply_size(NULL), 0);
    bc_reply_free(r);

    assert_true(bc_reply_is_error(NULL));
    assert_null(bc_reply_str(NULL, &len));
    assert_string_equal(dump(NULL), "(no reply)");
}

static void test_nil_and_empty(void **state)
{
    bc_reply_t *r;
    redisReply *o;

    o = PARSE("$-1\r\n");
    assert_int_equal(bc_reply_size(o), sizeof(bc_reply_t));
    r = exact_copy(o);
    assert_int_equal(r->type, BC_REPLY_NIL);
    assert_null(r->str);
    assert_string_equal(dump(r), "(nil)");
    bc_reply_free(r);

    r = exact_copy(PARSE("*-1\r\n")); /* nil array */
    assert_int_equal(r->type, BC_REPLY_NIL);
    bc_reply_free(r);

    o = PARSE("*0\r\n");
    assert_int_equal(bc_reply_size(o), sizeof(bc_reply_t));
    r = exact_copy(o);
    assert_int_equal(r->type, BC_REPLY_ARRAY);
    assert_int_equal(r->elements, 0);
    assert_null(r->element);
    assert_string_equal(dump(r), "[]");
    bc_reply_free(r);

    o = PARSE("$0\r\n\r\n");
    assert_int_equal(bc_reply_size(o), sizeof(bc_reply_t) + 1);
    r = exact_copy(o);
    assert_int_equal(r->type, BC_REPLY_STRING);
    assert_int_equal(r->len, 0);
    assert_string_equal(r->str, "");
    assert_string_equal(dump(r), "\"\"");
    bc_reply_free(r);
}

static void test_binary_string(void **state)
{
    static const char resp[] = "$9\r\na\0b\0\"\\\n\xff\0\r\n";
    bc_reply_t *r;
    redisReply *o;
    size_t len;

    o = parse_n(resp, sizeof resp - 1);
    assert_int_equal(bc_reply_size(o), sizeof(bc_reply_t) + 10);
    r = exact_copy(o);
    assert_int_equal(r->type, BC_REPLY_STRING);
    assert_memory_equal(bc_reply_str(r, &len), "a\0b\0\"\\\n\xff\0", 10);
    assert_int_equal(len, 9);
    assert_string_equal(dump(r), "\"a\\x00b\\x00\\\"\\\\\\n\\xff\\x00\"");
    bc_reply_free(r);
}

static void test_nested_arrays(void **state)
{
    static const char resp[] = "*4\r\n"
                               "$7\r\nmessage\r\n"
                               "*3\r\n:1\r\n$-1\r\n*2\r\n+QUEUED\r\n*0\r\n"
                               "-ERR inner\r\n"
                               "$3\r\nend\r\n";
    bc_reply_t *r;
    redisReply *o;
    size_t want;

    o = parse_n(resp, sizeof resp - 1);
    /* 10 nodes; vectors of 4 + 3 + 2 pointers; strings 8 + 7 + 10 + 4 bytes with NULs. */
    want = 10 * sizeof(bc_reply_t) + 9 * sizeof(bc_reply_t *) + 8 + 7 + 10 + 4;
    assert_int_equal(bc_reply_size(o), want);
    r = exact_copy(o);
    assert_int_equal(r->elements, 4);
    assert_string_equal(r->element[0]->str, "message");
    assert_int_equal(r->element[1]->element[0]->integer, 1);
    assert_int_equal(r->element[1]->element[1]->type, BC_REPLY_NIL);
    assert_int_equal(r->element[1]->element[2]->element[1]->elements, 0);
    assert_true(bc_reply_is_error(r->element[2]));
    assert_false(bc_reply_is_error(r)); /* nested errors are not looked at */
    assert_string_equal(dump(r),
                        "[\"message\", [(integer) 1, (nil), [QUEUED, []]], (error) ERR inner, "
                        "\"end\"]");
    bc_reply_free(r);

    /* Deepest nesting hiredis 0.14 accepts. */
    r = exact_copy(PARSE("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n$1\r\nx\r\n"));
    assert_string_equal(dump(r), "[[[[[[[\"x\"]]]]]]]");
    bc_reply_free(r);
}

/* bc_reply_copy_into inside a larger caller block (a message with a header). */
static void test_copy_into_caller_memory(void **state)
{
    union {
        char bytes[1024];
        long long align;
    } msg;
    redisReply *o = PARSE("*2\r\n$5\r\nhello\r\n:7\r\n");
    size_t size = bc_reply_size(o);
    bc_reply_t *r;

    memset(&msg, 0xa5, sizeof msg);
    r = bc_reply_copy_into(msg.bytes + 64, sizeof msg - 64, o);
    assert_ptr_equal(r, msg.bytes + 64);
    assert_inside(r, msg.bytes + 64, size);
    assert_same(o, r);
    assert_int_equal((unsigned char)msg.bytes[64 + size], 0xa5); /* nothing past the end */
    assert_int_equal((unsigned char)msg.bytes[63], 0xa5);

    assert_null(bc_reply_copy_into(msg.bytes + 65, sizeof msg - 65, o)); /* misaligned */
    assert_null(bc_reply_copy_into(NULL, 4096, o));
    assert_null(bc_reply_copy_into(msg.bytes, sizeof msg, NULL));
    freeReplyObject(o);
}

static void test_malloc_copy_and_large_array(void **state)
{
    size_t n = (size_t)bc_test_scaled(20000, 100), i, off = 0, cap = n * 32 + 32;
    char *resp = malloc(cap);
    redisReply *o;
    bc_reply_t *r;

    assert_non_null(resp);
    off += (size_t)snprintf(resp + off, cap - off, "*%zu\r\n", n);
    for (i = 0; i < n; i++) {
        if (i % 3 == 0)
            off += (size_t)snprintf(resp + off, cap - off, ":%zu\r\n", i);
        else
            off += (size_t)snprintf(resp + off, cap - off, "$%d\r\nv%05zu\r\n", 6, i % 100000);
    }
    o = parse_n(resp, off);
    free(resp);
    r = bc_reply_copy(o);
    assert_non_null(r);
    assert_same(o, r);
    assert_inside(r, (const char *)r, bc_reply_size(o));
    freeReplyObject(o);
    assert_int_equal(r->elements, n);
    assert_int_equal(r->element[n - 1]->type,
                     (n - 1) % 3 == 0 ? BC_REPLY_INTEGER : BC_REPLY_STRING);
    bc_reply_free(r);
    bc_reply_free(NULL);
}

static void test_invalid_trees(void **state)
{
    redisReply leaf = {.type = REDIS_REPLY_STRING, .len = 1, .str = "x"};
    redisReply *vec[2] = {&leaf, NULL};
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = vec};
    redisReply bad = {.type = 99};
    redisReply chain[BC_REPLY_MAX_DEPTH + 1];
    redisReply *links[BC_REPLY_MAX_DEPTH + 1];
    redisReply huge = {.type = REDIS_REPLY_STRING, .len = SIZE_MAX - 8, .str = "x"};
    redisReply max = {.type = REDIS_REPLY_STRING, .len = SIZE_MAX, .str = "x"};
    redisReply nostr = {.type = REDIS_REPLY_ERROR, .len = 3, .str = NULL};
    redisReply novec = {.type = REDIS_REPLY_ARRAY, .elements = 3, .element = NULL};
    redisReply manyvec = {.type = REDIS_REPLY_ARRAY, .elements = SIZE_MAX / 4, .element = vec};
    char mem[256] __attribute__((aligned(16)));
    int i;

    assert_int_equal(bc_reply_size(&arr), 0); /* NULL element */
    assert_null(bc_reply_copy(&arr));
    assert_null(bc_reply_copy_into(mem, sizeof mem, &arr));
    assert_int_equal(bc_reply_size(&bad), 0);
    assert_int_equal(bc_reply_size(&huge), 0);
    assert_int_equal(bc_reply_size(&max), 0);
    assert_int_equal(bc_reply_size(&nostr), 0);
    assert_int_equal(bc_reply_size(&novec), 0);
    assert_int_equal(bc_reply_size(&manyvec), 0);

    /* Hand-built chains: BC_REPLY_MAX_DEPTH levels are fine, one more is refused. */
    for (i = 0; i <= BC_REPLY_MAX_DEPTH; i++) {
        links[i] = &chain[i];
        chain[i] = (redisReply){.type = REDIS_REPLY_ARRAY, .elements = 1};
        if (i > 0)
            chain[i - 1].element = &links[i];
    }
    chain[BC_REPLY_MAX_DEPTH] = (redisReply){.type = REDIS_REPLY_NIL};
    assert_int_equal(bc_reply_size(&chain[0]), 0);
    assert_int_not_equal(bc_reply_size(&chain[1]), 0);
    bc_reply_free(bc_reply_copy(&chain[1]));

    /* A hand-built STRING with len 0 and str NULL is accepted and copied as "". */
    leaf = (redisReply){.type = REDIS_REPLY_STRING, .len = 0, .str = NULL};
    assert_int_equal(bc_reply_size(&leaf), sizeof(bc_reply_t) + 1);
    assert_string_equal(bc_reply_copy_into(mem, sizeof mem, &leaf)->str, "");
}

static void test_dump_truncation(void **state)
{
    bc_reply_t *r = exact_copy(PARSE("*3\r\n$10\r\n0123456789\r\n:12345\r\n$-1\r\n"));
    char buf[64];
    char tiny[4];

    assert_string_equal(bc_reply_dump(r, buf, sizeof buf),
                        "[\"0123456789\", (integer) 12345, (nil)]");
    assert_string_equal(bc_reply_dump(r, buf, 10), "[\"0123...");
    assert_string_equal(bc_reply_dump(r, tiny, sizeof tiny), "...");
    assert_string_equal(bc_reply_dump(r, tiny, 3), "[\"");
    assert_string_equal(bc_reply_dump(r, tiny, 1), "");
    tiny[0] = 'z';
    assert_ptr_equal(bc_reply_dump(r, tiny, 0), tiny);
    assert_int_equal(tiny[0], 'z');
    /* Exactly fitting output is not marked as cut. */
    assert_string_equal(
        bc_reply_dump(r, buf, strlen("[\"0123456789\", (integer) 12345, (nil)]") + 1),
        "[\"0123456789\", (integer) 12345, (nil)]");
    bc_reply_free(r);
}

/* Deterministic random RESP trees through the real parser. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned next(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void gen(char *buf, size_t cap, size_t *off, int depth)
{
    unsigned kind = next(depth >= 6 ? 5 : 6), i, n;

    assert_true(*off + 64 < cap);
    switch (kind) {
    case 0:
        *off += (size_t)snprintf(buf + *off, cap - *off, ":%d\r\n", (int)next(2000000) - 1000000);
        break;
    case 1:
        *off += (size_t)snprintf(buf + *off, cap - *off, "$-1\r\n");
        break;
    case 2:
        *off += (size_t)snprintf(buf + *off, cap - *off, "+st%u\r\n", next(100));
        break;
    case 3:
        *off += (size_t)snprintf(buf + *off, cap - *off, "-ERR e%u\r\n", next(100));
        break;
    case 4:
        n = next(40);
        *off += (size_t)snprintf(buf + *off, cap - *off, "$%u\r\n", n);
        for (i = 0; i < n; i++)
            buf[(*off)++] = (char)next(256);
        memcpy(buf + *off, "\r\n", 2);
        *off += 2;
        break;
    default:
        n = next(5);
        *off += (size_t)snprintf(buf + *off, cap - *off, "*%u\r\n", n);
        for (i = 0; i < n; i++)
            gen(buf, cap, off, depth + 1);
    }
}

static void test_random_trees(void **state)
{
    static char buf[1 << 20];
    uint64_t rounds = bc_test_scaled(2000, 100), k;
    char out[128];

    for (k = 0; k < rounds; k++) {
        size_t off = 0;
        bc_reply_t *r;
        gen(buf, sizeof buf, &off, 1);
        r = exact_copy(parse_n(buf, off));
        bc_reply_dump(r, out, sizeof out);
        assert_true(strlen(out) < sizeof out);
        bc_reply_free(r);
    }
}

/* bc_resp_write produces byte for byte what hiredis's redisFormatCommandArgv does, for empty,
 * binary and long arguments and lengths at every digit boundary; and hiredis's reader reads it
 * back as the same arguments. */
static void check_resp(int argc, const char **argv, const size_t *lens)
{
    char *want = NULL;
    int wn = redisFormatCommandArgv(&want, argc, argv, lens);
    assert_true(wn > 0);
    size_t n = bc_resp_len(argc, lens);
    assert_int_equal(n, (size_t)wn);
    char *got = malloc(n + 1);
    assert_non_null(got);
    got[n] = 0x5a; /* a canary: nothing past the length */
    assert_int_equal(bc_resp_write(got, argc, argv, lens), n);
    assert_memory_equal(got, want, n);
    assert_int_equal(got[n], 0x5a);
    free(got);
    redisFreeCommand(want);
}

static void test_request_format(void **state)
{
    (void)state;
    const char *a1[] = {"SET", "blocking:signal:b", "{\"x\":1}", "NX", "EX", "86400"};
    size_t l1[] = {3, 17, 7, 2, 2, 5};
    check_resp(6, a1, l1);
    const char *a2[] = {"PING"};
    size_t l2[] = {4};
    check_resp(1, a2, l2);
    const char bin[] = {'a', 0, '\r', '\n', (char)0xff};
    const char *a3[] = {"SET", "", bin};
    size_t l3[] = {3, 0, sizeof bin};
    check_resp(3, a3, l3);
    /* argument lengths 0..12000 across the digit boundaries, and 10/100 arguments */
    char *big = malloc(12001);
    assert_non_null(big);
    for (size_t i = 0; i < 12001; i++)
        big[i] = (char)(i * 31);
    static const size_t sizes[] = {0,   1,   9,    10,   11,   99,    100,
                                   101, 999, 1000, 1001, 9999, 10000, 12000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const char *a[] = {"SET", "k", big};
        size_t l[] = {3, 1, sizes[k]};
        check_resp(3, a, l);
    }
    const char *many[100];
    size_t ml[100];
    for (int i = 0; i < 100; i++) {
        many[i] = big + i;
        ml[i] = (size_t)i;
    }
    check_resp(10, many, ml);
    check_resp(100, many, ml);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_error_integer),
        cmocka_unit_test(test_nil_and_empty),
        cmocka_unit_test(test_binary_string),
        cmocka_unit_test(test_nested_arrays),
        cmocka_unit_test(test_copy_into_caller_memory),
        cmocka_unit_test(test_malloc_copy_and_large_array),
        cmocka_unit_test(test_invalid_trees),
        cmocka_unit_test(test_dump_truncation),
        cmocka_unit_test(test_random_trees),
        cmocka_unit_test(test_request_format),
    };
    return cmocka_run_group_tests_name("redis_reply", tests, NULL, NULL);
}
