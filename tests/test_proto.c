/* test_proto.c - unit tests for actors/proto.c (ids, HMAC, signals, ACKs).
 *
 * Every HMAC expected here comes from reference/original-implementation.md §10.0 (verified
 * there against Node and `openssl dgst -hmac`), RFC 4231, or Python's hmac module; the
 * JavaScript number renderings come from Node's String(). Signal cases S1-S9 and ACK cases
 * A1-A11 follow §10.1 and §10.2 of that document.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECRET "a3f7e9b2c1d8f4a6e2b9c7d3f8a4e1b6c9d2f7a3e8b1c4d6f9a2e7b3c8d1f4a6"
#define OTHER "other-secret"

/* §10.0 vectors */
#define V_ACK_B1 "f93afe4623d71b048b2dbcf530be0aa3b4a87911a2e84d0583b04b0e004ea2c1"
#define V_ACK_C1 "63be9b997491cc1b3fc545b2171f8bf422915a2ddb551dceda7fc1e9c610a5d4"
#define V_ACK_B2 "7afd83d7fa9827cfd0a2f1767f849774c9b93ff6f545b561ac084c0d22d298d3"
#define V_ACK_B1_OTHER "62959476d23a2102067a8ec298d974cc1432eb1d011db2209a68329aba2d0b9d"
#define V_WAKE "f8932dcfc66f682ccd60a9609eb6940ab2606c57eaad020a32ee0f869ac6a5fa"
#define V_WAKE_OTHER "3fdb3bc0f77b313b06dc188c936147a34143df3e78ae5540648e182db518fa31"
#define V_COMPLETION "ae7445c072d31fa86ab48a55a0bc31080372224af57a4198602ca2ba35276cb4"
/* Python hmac: "coord-b:sig-0002:1760000000000:undefined" with SECRET */
#define V_UNDEFINED "7a71ab9c2bd3824f8a8808ef917ec7f21eeee7e1752eb0305e2ac71e4f40c492"

#define ID64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static bc_hmac_t *mk(const char *key)
{
    bc_hmac_t *h = NULL;

    assert_int_equal(bc_hmac_create(key, strlen(key), &h), 0);
    assert_non_null(h);
    return h;
}

static void assert_hmac(const bc_hmac_t *h, const char *msg, const char *hex)
{
    char out[65];

    memset(out, 'x', sizeof out);
    bc_hmac_hex(h, msg, strlen(msg), out);
    assert_string_equal(out, hex);
}

/* ------------------------------------------------------------------ identifiers */

static void test_id_valid(void **state)
{
    assert_true(bc_id_valid("coord-a"));
    assert_true(bc_id_valid("A_z-0_9"));
    assert_true(bc_id_valid("x"));
    assert_true(bc_id_valid(ID64));
    assert_false(bc_id_valid(ID64 "a")); /* 65 */
    assert_false(bc_id_valid(""));
    assert_false(bc_id_valid(NULL));
    assert_false(bc_id_valid("coord a"));
    assert_false(bc_id_valid("coord:b"));
    assert_false(bc_id_valid("coord.b"));
    assert_false(bc_id_valid("co\xc3\xa9rd")); /* UTF-8 e-acute */
    assert_false(bc_id_valid("coord\n"));
    assert_false(bc_id_valid("../x"));
}

static void test_type_valid(void **state)
{
    assert_true(bc_type_valid("wake"));
    assert_true(bc_type_valid("retry_request"));
    assert_true(bc_type_valid("status_update"));
    assert_true(bc_type_valid("a"));
    assert_true(bc_type_valid("a0_9"));
    assert_true(bc_type_valid("abcdefghijklmnopqrstuvwxyzabcdef"));   /* 32 */
    assert_false(bc_type_valid("abcdefghijklmnopqrstuvwxyzabcdefg")); /* 33 */
    assert_false(bc_type_valid("Wake!"));
    assert_false(bc_type_valid("Wake"));
    assert_false(bc_type_valid("_wake"));
    assert_false(bc_type_valid("0wake"));
    assert_false(bc_type_valid("wa-ke"));
    assert_false(bc_type_valid("wa:ke"));
    assert_false(bc_type_valid(""));
    assert_false(bc_type_valid(NULL));
    assert_false(bc_type_valid("w\xc3\xa4ke"));
}

static void test_sigid_valid(void **state)
{
    char s[300];

    assert_true(bc_sigid_valid("sig-0001"));
    assert_true(bc_sigid_valid("coord-a:coord-b:completion:1:1760000000000"));
    assert_true(bc_sigid_valid("coord:b"));
    assert_false(bc_sigid_valid("coord b"));
    assert_false(bc_sigid_valid(""));
    assert_false(bc_sigid_valid(NULL));
    assert_false(bc_sigid_valid("a/b"));
    assert_false(bc_sigid_valid("\xe2\x82\xac"));
    memset(s, 'z', 255);
    s[255] = '\0';
    assert_true(bc_sigid_valid(s));
    s[255] = 'z';
    s[256] = '\0';
    assert_false(bc_sigid_valid(s));
}

static void test_explain(void **state)
{
    char b[256], small[8];

    assert_string_equal(bc_id_explain("coordinator id", "coord a", b, sizeof b),
                        "coordinator id \"coord a\": invalid character ' ' at offset 5 "
                        "(allowed: A-Z a-z 0-9 _ -)");
    assert_string_equal(bc_id_explain("coordinator id", "coord:b", b, sizeof b),
                        "coordinator id \"coord:b\": invalid character ':' at offset 5 "
                        "(allowed: A-Z a-z 0-9 _ -)");
    assert_string_equal(bc_id_explain("sender id", "", b, sizeof b), "sender id \"\" is empty");
    assert_string_equal(bc_id_explain("sender id", NULL, b, sizeof b),
                        "sender id is missing (NULL)");
    bc_id_explain("coordinator id", ID64 "a", b, sizeof b);
    assert_non_null(strstr(b, "is 65 characters (max 64)"));
    assert_non_null(strstr(b, "...")); /* the long id is quoted cut */
    assert_string_equal(bc_id_explain("swarm id", "s\xc3\xa9", b, sizeof b),
                        "swarm id \"s\\xc3\\xa9\": invalid character '\\xc3' at offset 1 "
                        "(allowed: A-Z a-z 0-9 _ -)");
    assert_string_equal(bc_id_explain("work id", "w-1", b, sizeof b), "work id \"w-1\" is valid");
    assert_string_equal(bc_type_explain("Wake!", b, sizeof b),
                        "signal type \"Wake!\": first character 'W' is not a lowercase letter "
                        "(a-z)");
    assert_string_equal(bc_type_explain("wa-ke", b, sizeof b),
                        "signal type \"wa-ke\": invalid character '-' at offset 2 (allowed: a-z "
                        "0-9 _)");
    bc_type_explain("abcdefghijklmnopqrstuvwxyzabcdefg", b, sizeof b);
    assert_non_null(strstr(b, "is 33 characters (max 32)"));
    assert_string_equal(bc_type_explain("", b, sizeof b), "signal type \"\" is empty");
    /* cut to the buffer, always terminated */
    assert_ptr_equal(bc_id_explain("coordinator id", "coord a", small, sizeof small), small);
    assert_string_equal(small, "coordin");
}

/* ------------------------------------------------------------------ HMAC */

static void test_hmac_vectors(void **state)
{
    bc_hmac_t *h = mk(SECRET), *o = mk(OTHER), *k;
    unsigned char big[131];
    char out[65];

    assert_hmac(h, "coord-b:sig-0001:1760000000000:2", V_ACK_B1);
    assert_hmac(h, "coord-c:sig-0001:1760000000500:0", V_ACK_C1);
    assert_hmac(h, "coord-b:sig-0002:1760000000000:0", V_ACK_B2);
    assert_hmac(o, "coord-b:sig-0001:1760000000000:2", V_ACK_B1_OTHER);
    assert_hmac(h, "coord-a:coord-b:wake:1760000000000", V_WAKE);
    assert_hmac(o, "coord-a:coord-b:wake:1760000000000", V_WAKE_OTHER);
    assert_hmac(h, "coord-a:coord-b:completion:1760000000000", V_COMPLETION);
    assert_hmac(h, "", "63f96103eda7dbf112fed15b8a3adc38b15b182a20a0d4666ad69642125a3ae7");
    bc_hmac_hex(h, NULL, 0, out);
    assert_string_equal(out, "63f96103eda7dbf112fed15b8a3adc38b15b182a20a0d4666ad69642125a3ae7");
    /* the secret is the raw string, not hex-decoded: a 32-byte key gives another MAC */
    bc_hmac_destroy(o);
    assert_int_equal(bc_hmac_create("\xa3\xf7\xe9\xb2\xc1\xd8\xf4\xa6\xe2\xb9\xc7\xd3\xf8\xa4\xe1"
                                    "\xb6\xc9\xd2\xf7\xa3\xe8\xb1\xc4\xd6\xf9\xa2\xe7\xb3\xc8\xd1"
                                    "\xf4\xa6",
                                    32, &o),
                     0);
    bc_hmac_hex(o, "coord-b:sig-0001:1760000000000:2", 32, out);
    assert_string_not_equal(out, V_ACK_B1);
    bc_hmac_destroy(o);
    /* RFC 4231 test case 2 */
    k = mk("Jefe");
    assert_hmac(k, "what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    bc_hmac_destroy(k);
    /* RFC 4231 test case 6: a 131-byte key is hashed first */
    memset(big, 0xaa, sizeof big);
    assert_int_equal(bc_hmac_create(big, sizeof big, &k), 0);
    assert_hmac(k, "Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    bc_hmac_destroy(k);
    /* exactly one block (64 bytes, used as is) and one byte more (hashed) */
    k = mk("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
    assert_hmac(k, "abc", "ae0c0e4a2340cf50185eb46aaa8723f4769153661612e212fb0d1fa3170c6202");
    bc_hmac_destroy(k);
    k = mk("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk");
    assert_hmac(k, "abc", "ed378e5dfa30dc98814ba09b2e610d9b6af66054922ceef9480da094a3f11b2d");
    bc_hmac_destroy(k);
    bc_hmac_destroy(h);
}

static void test_hmac_create_errors(void **state)
{
    bc_hmac_t *h = (bc_hmac_t *)&h;

    assert_int_equal(bc_hmac_create("", 0, &h), -EINVAL);
    assert_null(h);
    assert_int_equal(bc_hmac_create(NULL, 5, &h), -EINVAL);
    assert_int_equal(bc_hmac_create("k", 1, NULL), -EINVAL);
    bc_hmac_destroy(NULL);
}

static void test_sig_equal(void **state)
{
    char up[65], buf[80];
    size_t i;

    assert_true(bc_sig_equal(V_ACK_B1, V_ACK_B1, 64));
    for (i = 0; i < 64; i++)
        up[i] = (V_ACK_B1[i] >= 'a' && V_ACK_B1[i] <= 'f') ? (char)(V_ACK_B1[i] - 32) : V_ACK_B1[i];
    up[64] = '\0';
    assert_true(bc_sig_equal(V_ACK_B1, up, 64));
    assert_false(bc_sig_equal(V_ACK_B1, V_ACK_B1, 63));
    snprintf(buf, sizeof buf, "%s0", V_ACK_B1);
    assert_false(bc_sig_equal(V_ACK_B1, buf, 65));
    snprintf(buf, sizeof buf, "%szz", V_ACK_B1);
    assert_false(bc_sig_equal(V_ACK_B1, buf, 66));
    assert_false(bc_sig_equal(V_ACK_B1, V_ACK_B1_OTHER, 64));
    assert_false(bc_sig_equal(V_ACK_B1, "", 0));
    assert_false(bc_sig_equal(V_ACK_B1, NULL, 64));
    assert_false(bc_sig_equal(NULL, V_ACK_B1, 64));
    /* one digit off, at each end */
    memcpy(buf, V_ACK_B1, 65);
    buf[0] = 'e';
    assert_false(bc_sig_equal(V_ACK_B1, buf, 64));
    memcpy(buf, V_ACK_B1, 65);
    buf[63] = '0';
    assert_false(bc_sig_equal(V_ACK_B1, buf, 64));
    /* non-hex bytes that become the right digit when OR-ed with 0x20 */
    memcpy(buf, V_ACK_B1, 65);
    buf[1] = (char)('9' & ~0x20); /* V_ACK_B1[1] is '9' */
    assert_false(bc_sig_equal(V_ACK_B1, buf, 64));
    memcpy(buf, V_ACK_B1, 65);
    buf[10] = 'g';
    assert_false(bc_sig_equal(V_ACK_B1, buf, 64));
    memcpy(buf, V_ACK_B1, 65);
    buf[20] = '\0';
    assert_false(bc_sig_equal(V_ACK_B1, buf, 64));
}

/* ------------------------------------------------------------------ JavaScript numbers */

static void assert_render(json_t *v, const char *want)
{
    char out[64];

    assert_non_null(v);
    assert_int_equal(bc_js_render(v, out, sizeof out), (int)strlen(want));
    assert_string_equal(out, want);
    json_decref(v);
}

static void test_js_render(void **state)
{
    /* expectations printed by Node's String() */
    static const struct {
        double d;
        const char *js;
    } reals[] = {
        {1.76e12, "1760000000000"},
        {2.0, "2"},
        {0.5, "0.5"},
        {1e21, "1e+21"},
        {1e20, "100000000000000000000"},
        {-3.0, "-3"},
        {-0.0, "0"},
        {1e-6, "0.000001"},
        {1e-7, "1e-7"},
        {123.456, "123.456"},
        {0.1 + 0.2, "0.30000000000000004"},
        {-1.5e-10, "-1.5e-10"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {1152921504606846976.0, "1152921504606847000"}, /* 2^60 */
        {12345678901234567890.0, "12345678901234567000"},
        {9007199254740991.0, "9007199254740991"},
        {0.92, "0.92"},
        {1760000000000.5, "1760000000000.5"},
    };
    char out[64], tiny[4];
    json_t *v;
    size_t i;

    assert_render(json_integer(1760000000000LL), "1760000000000");
    assert_render(json_integer(-3), "-3");
    assert_render(json_integer(0), "0");
    for (i = 0; i < sizeof reals / sizeof reals[0]; i++)
        assert_render(json_real(reals[i].d), reals[i].js);
    assert_render(json_string("strings verbatim"), "strings verbatim");
    assert_render(json_string("1.76e12"), "1.76e12");
    assert_render(json_string(""), "");

    v = json_null();
    assert_int_equal(bc_js_render(v, out, sizeof out), -EINVAL);
    assert_int_equal(bc_js_render(json_true(), out, sizeof out), -EINVAL);
    assert_int_equal(bc_js_render(json_false(), out, sizeof out), -EINVAL);
    v = json_object();
    assert_int_equal(bc_js_render(v, out, sizeof out), -EINVAL);
    json_decref(v);
    v = json_array();
    assert_int_equal(bc_js_render(v, out, sizeof out), -EINVAL);
    json_decref(v);
    assert_int_equal(bc_js_render(NULL, out, sizeof out), -EINVAL);
    /* does not fit: 4 digits need 5 bytes */
    v = json_integer(1234);
    assert_int_equal(bc_js_render(v, tiny, sizeof tiny), -EINVAL);
    assert_int_equal(bc_js_render(v, out, 5), 4);
    json_decref(v);
}

/* ------------------------------------------------------------------ signals */

#define S1_JSON                                                                                    \
    "{\"timestamp\":1760000000000,\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\","            \
    "\"iteration\":1,\"type\":\"completion\",\"payload\":{\"status\":\"all-complete\"},"           \
    "\"messageId\":\"coord-a:coord-b:completion:1:1760000000000\"}"
#define S2_JSON                                                                                    \
    "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\",\"timestamp\":"        \
    "1760000000000,\"signature\":\"" V_WAKE "\"}"

static void test_sig_encode_exact(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    char buf[512], mid[BC_SIGID_MAX + 1], err[256];
    static const char want[] =
        "{\"timestamp\":1760000000000,\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\","
        "\"iteration\":1,\"type\":\"completion\",\"payload\":{\"status\":\"all-complete\"},"
        "\"messageId\":\"coord-a:coord-b:completion:1:1760000000000\",\"signature\":"
        "\"" V_COMPLETION "\"}";
    static const char want_nopl[] =
        "{\"timestamp\":1760000000000,\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\","
        "\"iteration\":0,\"type\":\"wake\",\"messageId\":\"coord-a:coord-b:wake:0:1760000000000\","
        "\"signature\":\"" V_WAKE "\"}";
    int n;

    n = bc_sig_encode(h, 1760000000000ULL, "coord-a", "coord-b", 1, "completion",
                      " {\n  \"status\" : \"all-complete\"\n}\n", buf, sizeof buf, mid, err,
                      sizeof err);
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
    assert_string_equal(mid, "coord-a:coord-b:completion:1:1760000000000");

    n = bc_sig_encode(h, 1760000000000ULL, "coord-a", "coord-b", 0, "wake", NULL, buf, sizeof buf,
                      NULL, err, sizeof err);
    assert_int_equal(n, (int)strlen(want_nopl));
    assert_string_equal(buf, want_nopl);

    /* S9: C -> Node send, coord-c to coord-d, completion, iteration 3 */
    n = bc_sig_encode(h, 1760000000123ULL, "coord-c", "coord-d", 3, "completion", "{}", buf,
                      sizeof buf, mid, err, sizeof err);
    assert_true(n > 0);
    assert_string_equal(mid, "coord-c:coord-d:completion:3:1760000000123");
    assert_string_equal(buf,
                        "{\"timestamp\":1760000000123,\"senderId\":\"coord-c\",\"receiverId\":"
                        "\"coord-d\",\"iteration\":3,\"type\":\"completion\",\"payload\":{},"
                        "\"messageId\":\"coord-c:coord-d:completion:3:1760000000123\","
                        "\"signature\":"
                        "\"d86e3a0d18ed010edd40a0f9fab096c8a317763cc019fb14066f1c31597d8742\"}");

    /* exact fit and one byte short */
    n = bc_sig_encode(h, 1760000000000ULL, "coord-a", "coord-b", 0, "wake", NULL, buf,
                      sizeof want_nopl, NULL, err, sizeof err);
    assert_int_equal(n, (int)sizeof want_nopl - 1);
    err[0] = '\0';
    memset(mid, 'q', sizeof mid);
    n = bc_sig_encode(h, 1760000000000ULL, "coord-a", "coord-b", 0, "wake", NULL, buf,
                      sizeof want_nopl - 1, mid, err, sizeof err);
    assert_int_equal(n, -ENOSPC);
    {
        char want_err[64];
        snprintf(want_err, sizeof want_err, "needs %zu bytes, have %zu", sizeof want_nopl,
                 sizeof want_nopl - 1);
        assert_non_null(strstr(err, want_err));
    }
    assert_int_equal(mid[0], 'q'); /* not written on failure */
    assert_int_equal(bc_sig_encode(h, 1760000000000ULL, "coord-a", "coord-b", 0, "wake", NULL, NULL,
                                   0, NULL, NULL, 0),
                     -ENOSPC);
    bc_hmac_destroy(h);
}

static void test_sig_encode_payload(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    char buf[1024], err[256];
    const char *pl, *end;
    int n;

    n = bc_sig_encode(h, 1760000000000ULL, "v1", "po", 7, "validation",
                      "{ \"z\": 1,\n \"a\": {\"y\": [1, 2.5, \"x y\", 2.0, 1e3], \"b\": true},\n"
                      "\t\"c\": null, \"confidence\": 0.92, \"s\": \"q\\\"\\\\\\n\\u0001\\u00e9\xc3"
                      "\xa9\" , \"e\": [ ], \"o\": { } }",
                      buf, sizeof buf, NULL, err, sizeof err);
    assert_true(n > 0);
    pl = strstr(buf, "\"payload\":");
    end = strstr(buf, ",\"messageId\"");
    assert_non_null(pl);
    assert_non_null(end);
    pl += strlen("\"payload\":");
    assert_int_equal((size_t)(end - pl),
                     strlen("{\"z\":1,\"a\":{\"y\":[1,2.5,\"x y\",2,1000],\"b\":true},\"c\":null,"
                            "\"confidence\":0.92,\"s\":\"q\\\"\\\\\\n\\u0001\xc3\xa9\xc3\xa9\","
                            "\"e\":[],\"o\":{}}"));
    assert_memory_equal(pl,
                        "{\"z\":1,\"a\":{\"y\":[1,2.5,\"x y\",2,1000],\"b\":true},\"c\":null,"
                        "\"confidence\":0.92,\"s\":\"q\\\"\\\\\\n\\u0001\xc3\xa9\xc3\xa9\","
                        "\"e\":[],\"o\":{}}",
                        (size_t)(end - pl));
    /* the signature does not cover the payload */
    assert_non_null(strstr(buf, "\"signature\":\""));
    bc_hmac_destroy(h);
}

static void test_sig_encode_errors(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    char buf[512], err[256];
    int n;

#define ENC(ts, s, r, t, pl)                                                                       \
    bc_sig_encode(h, ts, s, r, 0, t, pl, buf, sizeof buf, NULL, err, sizeof err)
    assert_int_equal(ENC(1, "coord a", "coord-b", "wake", NULL), -EINVAL);
    assert_non_null(strstr(err, "sender id \"coord a\""));
    assert_non_null(strstr(err, "offset 5"));
    assert_int_equal(ENC(1, "coord-a", "coord:b", "wake", NULL), -EINVAL);
    assert_non_null(strstr(err, "receiver id \"coord:b\""));
    assert_int_equal(ENC(1, "coord-a", ID64 "a", "wake", NULL), -EINVAL);
    assert_non_null(strstr(err, "65 characters (max 64)"));
    n = ENC(1, "coord-a", ID64, "wake", NULL);
    assert_int_equal(n, (int)strlen(buf));
    assert_non_null(strstr(buf, ",\"receiverId\":\"" ID64 "\","));
    assert_int_equal(ENC(1, "", "coord-b", "wake", NULL), -EINVAL);
    assert_non_null(strstr(err, "is empty"));
    assert_int_equal(ENC(1, NULL, "coord-b", "wake", NULL), -EINVAL);
    assert_int_equal(ENC(1, "coord-a", "coord-b", "Wake!", NULL), -EINVAL);
    assert_non_null(strstr(err, "signal type \"Wake!\""));
    assert_int_equal(ENC(0, "coord-a", "coord-b", "wake", NULL), -EINVAL);
    assert_non_null(strstr(err, "timestamp"));
    assert_int_equal(ENC(1, "coord-a", "coord-b", "wake", "[1,2]"), -EINVAL);
    assert_string_equal(err, "payload is not a JSON object");
    assert_int_equal(ENC(1, "coord-a", "coord-b", "wake", "\"x\""), -EINVAL);
    assert_int_equal(ENC(1, "coord-a", "coord-b", "wake", "{\"a\":"), -EINVAL);
    assert_non_null(strstr(err, "payload is not valid JSON"));
    assert_int_equal(ENC(1, "coord-a", "coord-b", "wake", "{} {}"), -EINVAL);
    assert_int_equal(ENC(1, "coord-a", "coord-b", "wake", ""), -EINVAL);
    assert_int_equal(bc_sig_encode(NULL, 1, "coord-a", "coord-b", 0, "wake", NULL, buf, sizeof buf,
                                   NULL, err, sizeof err),
                     -EINVAL);
#undef ENC
    bc_hmac_destroy(h);
}

static int decode(const bc_hmac_t *h, const char *json, const char *key, int req,
                  bc_sig_fields_t *f, const char **why)
{
    return bc_sig_decode(h, json, strlen(json), key, req, f, why);
}

static void test_sig_decode_s1(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    bc_sig_fields_t f;
    const char *why = "unset";

    assert_int_equal(decode(h, S1_JSON, "coord-b", 0, &f, &why), 0);
    assert_null(why);
    assert_int_equal(f.timestamp, 1760000000000ULL);
    assert_int_equal(f.iteration, 1);
    assert_string_equal(f.sender, "coord-a");
    assert_string_equal(f.receiver, "coord-b");
    assert_string_equal(f.type, "completion");
    assert_string_equal(f.message_id, "coord-a:coord-b:completion:1:1760000000000");
    assert_string_equal(f.payload, "{\"status\":\"all-complete\"}");
    assert_int_equal(f.signature, BC_SIG_NONE);
    bc_sig_fields_clear(&f);
    assert_null(f.payload);
    bc_sig_fields_clear(&f); /* twice is fine */

    /* S4: the same unsigned value with require_signature on */
    assert_int_equal(decode(h, S1_JSON, "coord-b", 1, &f, &why), BC_REJ_UNSIGNED);
    assert_string_equal(why, "missing signature");
    assert_null(f.payload);

    /* messageId given by the value is kept even when it differs from the derived one */
    assert_int_equal(decode(h,
                            "{\"timestamp\":5,\"senderId\":\"a\",\"receiverId\":\"b\",\"type\":"
                            "\"wake\",\"messageId\":\"custom:id-1\"}",
                            "b", 0, &f, &why),
                     0);
    assert_string_equal(f.message_id, "custom:id-1");
    assert_null(f.payload);
    bc_sig_fields_clear(&f);
    bc_hmac_destroy(h);
}

static void test_sig_decode_s2(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    bc_sig_fields_t f;
    const char *why;
    static const char pretty[] = "{\n"
                                 "  \"senderId\": \"coord-a\",\n"
                                 "  \"receiverId\": \"coord-b\",\n"
                                 "  \"type\": \"wake\",\n"
                                 "  \"timestamp\": 1760000000000,\n"
                                 "  \"signature\": \"" V_WAKE "\"\n"
                                 "}\n";

    assert_int_equal(decode(h, S2_JSON, "coord-b", 0, &f, &why), 0);
    assert_int_equal(f.signature, BC_SIG_VALID);
    assert_int_equal(f.iteration, 0);
    assert_int_equal(f.timestamp, 1760000000000ULL);
    assert_string_equal(f.type, "wake");
    assert_string_equal(f.message_id, "coord-a:coord-b:wake:0:1760000000000");
    assert_null(f.payload);
    bc_sig_fields_clear(&f);

    /* pretty-printed (the tutorial's heredoc), and strict mode */
    assert_int_equal(decode(h, pretty, "coord-b", 1, &f, &why), 0);
    assert_int_equal(f.signature, BC_SIG_VALID);
    assert_string_equal(f.message_id, "coord-a:coord-b:wake:0:1760000000000");
    bc_sig_fields_clear(&f);

    /* uppercase hex signature, timestamp as 1.76e12 (signs as 1760000000000) */
    {
        char up[300], *p;
        snprintf(up, sizeof up,
                 "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
                 "\"timestamp\":1.76e12,\"signature\":\"%s\"}",
                 V_WAKE);
        for (p = strstr(up, V_WAKE); *p != '"'; p++)
            if (*p >= 'a' && *p <= 'f')
                *p = (char)(*p - 32);
        assert_int_equal(decode(h, up, "coord-b", 1, &f, &why), 0);
        assert_int_equal(f.timestamp, 1760000000000ULL);
        assert_int_equal(f.signature, BC_SIG_VALID);
        bc_sig_fields_clear(&f);
    }

    /* S3: the other-secret signature */
    {
        char bad[300];
        snprintf(bad, sizeof bad,
                 "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
                 "\"timestamp\":1760000000000,\"signature\":\"%s\"}",
                 V_WAKE_OTHER);
        assert_int_equal(decode(h, bad, "coord-b", 0, &f, &why), BC_REJ_SIGNATURE);
        assert_string_equal(why, "invalid signature");
        /* signed fields changed under a valid signature */
        snprintf(bad, sizeof bad,
                 "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"completion\","
                 "\"timestamp\":1760000000000,\"signature\":\"%s\"}",
                 V_WAKE);
        assert_int_equal(decode(h, bad, "coord-b", 0, &f, &why), BC_REJ_SIGNATURE);
        snprintf(bad, sizeof bad,
                 "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
                 "\"timestamp\":1760000000001,\"signature\":\"%s\"}",
                 V_WAKE);
        assert_int_equal(decode(h, bad, "coord-b", 0, &f, &why), BC_REJ_SIGNATURE);
        /* truncated, extended, non-string, empty signatures */
        snprintf(bad, sizeof bad,
                 "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
                 "\"timestamp\":1760000000000,\"signature\":\"%.32s\"}",
                 V_WAKE);
        assert_int_equal(decode(h, bad, "coord-b", 0, &f, &why), BC_REJ_SIGNATURE);
        snprintf(bad, sizeof bad,
                 "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
                 "\"timestamp\":1760000000000,\"signature\":\"%szz\"}",
                 V_WAKE);
        assert_int_equal(decode(h, bad, "coord-b", 0, &f, &why), BC_REJ_SIGNATURE);
        assert_int_equal(decode(h,
                                "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":"
                                "\"wake\",\"timestamp\":1760000000000,\"signature\":42}",
                                "coord-b", 0, &f, &why),
                         BC_REJ_SIGNATURE);
        assert_int_equal(decode(h,
                                "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":"
                                "\"wake\",\"timestamp\":1760000000000,\"signature\":\"\"}",
                                "coord-b", 0, &f, &why),
                         BC_REJ_SIGNATURE);
        /* another key: the same value is refused by a coordinator with another secret */
        {
            bc_hmac_t *o = mk(OTHER);
            assert_int_equal(decode(o, S2_JSON, "coord-b", 0, &f, &why), BC_REJ_SIGNATURE);
            assert_int_equal(decode(o, bad, "coord-b", 0, &f, &why), BC_REJ_SIGNATURE);
            bc_hmac_destroy(o);
        }
    }
    bc_hmac_destroy(h);
}

static void expect_malformed(const bc_hmac_t *h, const char *json, const char *key,
                             const char *why_want)
{
    bc_sig_fields_t f;
    const char *why = NULL;

    memset(&f, 0x5a, sizeof f);
    assert_int_equal(decode(h, json, key, 0, &f, &why), BC_REJ_MALFORMED);
    assert_non_null(why);
    assert_string_equal(why, why_want);
    assert_null(f.payload); /* zeroed on failure */
    assert_int_equal(f.sender[0], '\0');
}

#define SIG(body) "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\"," body "}"

static void test_sig_decode_malformed(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    const char *why;
    bc_sig_fields_t f;

    expect_malformed(h, "hello", "coord-b", "not JSON"); /* S7 */
    expect_malformed(h, "", "coord-b", "not JSON");
    expect_malformed(h, S1_JSON "x", "coord-b", "not JSON");
    expect_malformed(h, "[1,2]", "coord-b", "not a JSON object");
    expect_malformed(h, "\"x\"", "coord-b", "not JSON"); /* no bare scalars at top level */
    expect_malformed(h, S1_JSON, "coord-c", "receiverId does not match the key");
    expect_malformed(h, "{\"receiverId\":\"coord-b\",\"type\":\"wake\",\"timestamp\":1}", "coord-b",
                     "missing senderId");
    expect_malformed(h, "{\"senderId\":7,\"receiverId\":\"coord-b\",\"type\":\"wake\"}", "coord-b",
                     "senderId is not a string");
    expect_malformed(h,
                     "{\"senderId\":\"coord a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
                     "\"timestamp\":1}",
                     "coord-b", "invalid senderId");
    expect_malformed(h, "{\"senderId\":\"coord-a\",\"type\":\"wake\",\"timestamp\":1}", "coord-b",
                     "missing receiverId");
    expect_malformed(h, SIG("\"type\":\"wake\""), "coord-b", "missing timestamp");
    expect_malformed(h, SIG("\"type\":\"Wake!\",\"timestamp\":1"), "coord-b", "invalid type");
    expect_malformed(h, SIG("\"timestamp\":1"), "coord-b", "missing type");
    expect_malformed(h, SIG("\"type\":null,\"timestamp\":1"), "coord-b", "type is not a string");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":\"1760000000000\""), "coord-b",
                     "timestamp is not a number");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":0"), "coord-b", "invalid timestamp");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":-5"), "coord-b", "invalid timestamp");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":1.5"), "coord-b", "invalid timestamp");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":1e30"), "coord-b",
                     "invalid timestamp");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":1,\"iteration\":\"2\""), "coord-b",
                     "iteration is not a number");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":1,\"iteration\":-1"), "coord-b",
                     "invalid iteration");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":1,\"payload\":[1]"), "coord-b",
                     "payload is not a JSON object");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":1,\"messageId\":\"a b\""), "coord-b",
                     "invalid messageId");
    expect_malformed(h, SIG("\"type\":\"wake\",\"timestamp\":1,\"messageId\":3"), "coord-b",
                     "messageId is not a string");
    /* malformed wins over a bad signature */
    expect_malformed(h, SIG("\"type\":\"Wake!\",\"timestamp\":1,\"signature\":\"00\""), "coord-b",
                     "invalid type");
    /* NUL byte inside the value */
    assert_int_equal(bc_sig_decode(h, S1_JSON "\0", sizeof S1_JSON, "coord-b", 0, &f, &why),
                     BC_REJ_MALFORMED);
    assert_int_equal(bc_sig_decode(h, NULL, 0, "coord-b", 0, &f, &why), BC_REJ_MALFORMED);
    assert_int_equal(bc_sig_decode(h, S1_JSON, strlen(S1_JSON), "coord-b", 0, NULL, &why),
                     BC_REJ_MALFORMED);

    /* accepted variants: null iteration/payload count as absent, 2.0 iteration, no key */
    assert_int_equal(
        decode(h, SIG("\"type\":\"wake\",\"timestamp\":9,\"iteration\":null,\"payload\":null"),
               "coord-b", 0, &f, &why),
        0);
    assert_int_equal(f.iteration, 0);
    assert_null(f.payload);
    assert_string_equal(f.message_id, "coord-a:coord-b:wake:0:9");
    bc_sig_fields_clear(&f);
    assert_int_equal(
        decode(h, SIG("\"type\":\"wake\",\"timestamp\":9,\"iteration\":2.0"), NULL, 0, &f, &why),
        0);
    assert_int_equal(f.iteration, 2);
    assert_string_equal(f.message_id, "coord-a:coord-b:wake:2:9");
    bc_sig_fields_clear(&f);
    bc_hmac_destroy(h);
}

static void test_sig_roundtrip(void **state)
{
    bc_hmac_t *h = mk(SECRET), *o = mk(OTHER);
    char buf[1024], mid[BC_SIGID_MAX + 1], err[128];
    bc_sig_fields_t f;
    const char *why;
    int n;

    n = bc_sig_encode(h, 1760000001234ULL, "validator_7", "product-owner", 42, "validation",
                      "{\"validatorId\":\"v1\",\"confidence\":0.92,\"notes\":[\"a\",{\"b\":null}]}",
                      buf, sizeof buf, mid, err, sizeof err);
    assert_true(n > 0);
    assert_int_equal(bc_sig_decode(h, buf, (size_t)n, "product-owner", 1, &f, &why), 0);
    assert_int_equal(f.timestamp, 1760000001234ULL);
    assert_int_equal(f.iteration, 42);
    assert_string_equal(f.sender, "validator_7");
    assert_string_equal(f.receiver, "product-owner");
    assert_string_equal(f.type, "validation");
    assert_string_equal(f.message_id, mid);
    assert_string_equal(f.message_id, "validator_7:product-owner:validation:42:1760000001234");
    assert_string_equal(
        f.payload, "{\"validatorId\":\"v1\",\"confidence\":0.92,\"notes\":[\"a\",{\"b\":null}]}");
    assert_int_equal(f.signature, BC_SIG_VALID);
    bc_sig_fields_clear(&f);
    /* another secret refuses it; another receiver key refuses it */
    assert_int_equal(bc_sig_decode(o, buf, (size_t)n, "product-owner", 0, &f, &why),
                     BC_REJ_SIGNATURE);
    assert_int_equal(bc_sig_decode(h, buf, (size_t)n, "validator_7", 0, &f, &why),
                     BC_REJ_MALFORMED);
    bc_hmac_destroy(o);
    bc_hmac_destroy(h);
}

/* ------------------------------------------------------------------ ACKs */

/* The §10.2 base body with the given members. */
static const char *ack_body(char *buf, size_t len, const char *coord, const char *sig_id,
                            const char *ts, const char *it, const char *status, const char *sig)
{
    int n = snprintf(buf, len, "{\"coordinatorId\":\"%s\",\"signalId\":\"%s\"", coord, sig_id);

    if (ts)
        n += snprintf(buf + n, len - (size_t)n, ",\"timestamp\":%s", ts);
    if (it)
        n += snprintf(buf + n, len - (size_t)n, ",\"iteration\":%s", it);
    n += snprintf(buf + n, len - (size_t)n, ",\"status\":\"%s\"", status);
    if (sig)
        n += snprintf(buf + n, len - (size_t)n, ",\"signature\":\"%s\"", sig);
    snprintf(buf + n, len - (size_t)n, ",\"metadata\":{\"signalType\":\"completion\"}}");
    return buf;
}

static int verify(const bc_hmac_t *h, const char *json, const char *acker, const char *sid,
                  bc_ack_fields_t *out, const char **why)
{
    return bc_ack_verify(h, json, strlen(json), acker, sid, out, why);
}

static void expect_ack(const bc_hmac_t *h, const char *json, const char *acker, const char *sid,
                       const char *why_want)
{
    bc_ack_fields_t f;
    const char *why = "unset";
    int rc = verify(h, json, acker, sid, &f, &why);

    if (why_want) {
        assert_int_equal(rc, -EINVAL);
        assert_non_null(why);
        assert_string_equal(why, why_want);
    } else {
        if (rc != 0)
            fail_msg("refused (%s): %s", why, json);
        assert_null(why);
        assert_string_equal(f.acker, acker);
        assert_string_equal(f.signal_id, sid);
    }
}

static void test_ack_cases(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    char b[512], up[65], sig[80];
    bc_ack_fields_t f;
    const char *why;
    size_t i;

    /* A1 */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1);
    assert_string_equal(b, "{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":"
                           "1760000000000,\"iteration\":2,\"status\":\"received\",\"signature\":"
                           "\"f93afe4623d71b048b2dbcf530be0aa3b4a87911a2e84d0583b04b0e004ea2c1\","
                           "\"metadata\":{\"signalType\":\"completion\"}}");
    assert_int_equal(verify(h, b, "coord-b", "sig-0001", &f, &why), 0);
    assert_null(why);
    assert_string_equal(f.acker, "coord-b");
    assert_string_equal(f.signal_id, "sig-0001");
    assert_int_equal(f.timestamp, 1760000000000ULL);
    assert_string_equal(f.signal_type, "completion");
    assert_int_equal(verify(h, b, "coord-b", "sig-0001", NULL, NULL), 0);
    /* A2 */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1_OTHER);
    expect_ack(h, b, "coord-b", "sig-0001", "invalid signature");
    /* A3 */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", NULL);
    expect_ack(h, b, "coord-b", "sig-0001", "missing signature");
    /* A4 */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "3", "received", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", "invalid signature");
    /* A5 */
    for (i = 0; i < 65; i++)
        up[i] = (V_ACK_B1[i] >= 'a' && V_ACK_B1[i] <= 'f') ? (char)(V_ACK_B1[i] - 32) : V_ACK_B1[i];
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", up);
    expect_ack(h, b, "coord-b", "sig-0001", NULL);
    /* A6 */
    snprintf(sig, sizeof sig, "%szz", V_ACK_B1);
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", sig);
    expect_ack(h, b, "coord-b", "sig-0001", "signature is not 64 hex digits");
    /* A7 */
    snprintf(sig, sizeof sig, "%.32s", V_ACK_B1);
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", sig);
    expect_ack(h, b, "coord-b", "sig-0001", "signature is not 64 hex digits");
    /* A8: coord-c's valid ACK stored under coord-b's key */
    ack_body(b, sizeof b, "coord-c", "sig-0001", "1760000000500", "0", "received", V_ACK_C1);
    expect_ack(h, b, "coord-c", "sig-0001", NULL); /* valid where it belongs */
    expect_ack(h, b, "coord-b", "sig-0001", "coordinatorId does not match the key");
    ack_body(b, sizeof b, "coord-b", "sig-0002", "1760000000000", "0", "received", V_ACK_B2);
    expect_ack(h, b, "coord-b", "sig-0002", NULL);
    expect_ack(h, b, "coord-b", "sig-0001", "signalId does not match the key");
    /* A9: numbers the JavaScript way, or strings verbatim */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1.76e12", "2.0", "received", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", NULL);
    assert_int_equal(verify(h, b, "coord-b", "sig-0001", &f, &why), 0);
    assert_int_equal(f.timestamp, 1760000000000ULL);
    ack_body(b, sizeof b, "coord-b", "sig-0001", "\"1760000000000\"", "\"2\"", "received",
             V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", NULL);
    assert_int_equal(verify(h, b, "coord-b", "sig-0001", &f, &why), 0);
    assert_int_equal(f.timestamp, 1760000000000ULL);
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000.0", "2e0", "received", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", NULL);
    /* ...but a string is verbatim: "2.0" signs as 2.0, not 2 */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "\"2.0\"", "received", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", "invalid signature");
    /* A10 */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "FORGED", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", "status is not received");
    /* A11: iteration missing, signed by Node as "...:undefined" */
    ack_body(b, sizeof b, "coord-b", "sig-0002", "1760000000000", NULL, "received", V_UNDEFINED);
    expect_ack(h, b, "coord-b", "sig-0002", "missing iteration");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", NULL, "received", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", "missing iteration");
    {
        char it[80];
        snprintf(it, sizeof it, "\"undefined\""); /* the same text, but present */
        ack_body(b, sizeof b, "coord-b", "sig-0002", "1760000000000", it, "received", V_UNDEFINED);
        expect_ack(h, b, "coord-b", "sig-0002", NULL);
    }

    /* other refusals */
    ack_body(b, sizeof b, "coord-b", "sig-0001", NULL, "2", "received", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", "missing timestamp");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "true", "2", "received", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", "timestamp is not a number or string");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "null", "received", V_ACK_B1);
    expect_ack(h, b, "coord-b", "sig-0001", "iteration is not a number or string");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", "");
    expect_ack(h, b, "coord-b", "sig-0001", "missing signature");
    expect_ack(h,
               "{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":1,"
               "\"iteration\":2,\"status\":\"received\",\"signature\":12}",
               "coord-b", "sig-0001", "signature is not 64 hex digits");
    expect_ack(h, "hello", "coord-b", "sig-0001", "not JSON");
    expect_ack(h, "\"x\"", "coord-b", "sig-0001", "not JSON");
    expect_ack(h, "[]", "coord-b", "sig-0001", "not a JSON object");
    expect_ack(h, "{}", "coord-b", "sig-0001", "coordinatorId does not match the key");
    expect_ack(h, "{\"coordinatorId\":5}", "coord-b", "sig-0001",
               "coordinatorId does not match the key");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1);
    expect_ack(h, b, NULL, "sig-0001", "invalid key");
    expect_ack(h, b, ID64 "a", "sig-0001", "invalid key");
    assert_int_equal(bc_ack_verify(h, NULL, 0, "coord-b", "sig-0001", &f, &why), -EINVAL);
    assert_int_equal(bc_ack_verify(NULL, b, strlen(b), "coord-b", "sig-0001", &f, &why), -EINVAL);
    assert_string_equal(why, "invalid signature");
    /* the value is length-delimited: a NUL inside makes it unparseable */
    assert_int_equal(bc_ack_verify(h, b, strlen(b) + 1, "coord-b", "sig-0001", &f, &why), -EINVAL);
    assert_string_equal(why, "not JSON");
    /* duplicate member: the last one counts, as in JSON.parse */
    expect_ack(h,
               "{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":"
               "1760000000000,\"iteration\":3,\"iteration\":2,\"status\":\"received\","
               "\"signature\":\"" V_ACK_B1 "\"}",
               "coord-b", "sig-0001", NULL);
    bc_hmac_destroy(h);
}

static void test_ack_encode(void **state)
{
    bc_hmac_t *h = mk(SECRET), *o = mk(OTHER);
    char buf[512], sig[65], want[65], d[256], slot[512];
    bc_ack_fields_t f;
    const char *why;
    json_t *j;
    int n;

    n = bc_ack_encode(h, "coord-b", "sig-0001", 1760000000000ULL, 2, "completion", NULL, buf,
                      sizeof buf, sig);
    assert_string_equal(buf,
                        "{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":"
                        "1760000000000,\"iteration\":2,\"status\":\"received\",\"signature\":"
                        "\"" V_ACK_B1 "\",\"metadata\":{\"signalType\":\"completion\"}}");
    assert_int_equal(n, (int)strlen(buf));
    assert_string_equal(sig, V_ACK_B1);
    assert_int_equal(verify(h, buf, "coord-b", "sig-0001", &f, &why), 0);
    assert_int_equal(verify(o, buf, "coord-b", "sig-0001", &f, &why), -EINVAL);

    /* reverse direction (§10.2): what jq + openssl would check on a C-written ACK */
    n = bc_ack_encode(h, "coord-b", "coord-a:coord-b:completion:1:1760000000000", 1760000000999ULL,
                      4, "completion", "loop \"3\"\n\xc3\xa9", buf, sizeof buf, sig);
    assert_true(n > 0);
    j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    {
        const char *keys[] = {"coordinatorId", "signalId",  "timestamp", "iteration",
                              "status",        "signature", "metadata"};
        const char *k;
        json_t *v;
        size_t i = 0;
        json_object_foreach(j, k, v)
        {
            assert_true(i < 7);
            assert_string_equal(k, keys[i++]);
        }
        assert_int_equal(i, 7);
    }
    snprintf(d, sizeof d, "%s:%s:%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT,
             json_string_value(json_object_get(j, "coordinatorId")),
             json_string_value(json_object_get(j, "signalId")),
             json_integer_value(json_object_get(j, "timestamp")),
             json_integer_value(json_object_get(j, "iteration")));
    assert_string_equal(d, "coord-b:coord-a:coord-b:completion:1:1760000000000:1760000000999:4");
    bc_hmac_hex(h, d, strlen(d), want);
    assert_string_equal(want, "45551d5a47ef28e754059054cbd4a07f7bc36c045ace7a61756c66573cc21843");
    assert_string_equal(json_string_value(json_object_get(j, "signature")), want);
    assert_string_equal(sig, want);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "received");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "metadata"), "phase")),
                        "loop \"3\"\n\xc3\xa9");
    json_decref(j);
    assert_non_null(strstr(buf, ",\"metadata\":{\"signalType\":\"completion\",\"phase\":"
                                "\"loop \\\"3\\\"\\n\xc3\xa9\"}}"));
    assert_int_equal(
        verify(h, buf, "coord-b", "coord-a:coord-b:completion:1:1760000000000", &f, &why), 0);
    assert_int_equal(f.timestamp, 1760000000999ULL);

    /* the ACK slot */
    n = bc_ack_slot_encode("coord-a", 1760000000999ULL, "coord-b",
                           "coord-a:coord-b:completion:1:1760000000000", sig, slot, sizeof slot);
    assert_int_equal(n, (int)strlen(slot));
    snprintf(d, sizeof d,
             "{\"receiverId\":\"coord-a\",\"timestamp\":1760000000999,\"coordinatorId\":"
             "\"coord-b\",\"signalId\":\"coord-a:coord-b:completion:1:1760000000000\","
             "\"signature\":\"%s\"}",
             want);
    assert_string_equal(slot, d);
    memset(&f, 0x5a, sizeof f);
    assert_int_equal(bc_ack_slot_decode(slot, (size_t)n, &f), 0);
    assert_string_equal(f.acker, "coord-b");
    assert_string_equal(f.signal_id, "coord-a:coord-b:completion:1:1760000000000");
    assert_int_equal(f.timestamp, 1760000000999ULL);
    assert_string_equal(f.signal_type, "");
    assert_int_equal(bc_ack_slot_decode("{}", 2, &f), 0);
    assert_string_equal(f.acker, "");
    assert_int_equal(bc_ack_slot_decode("{\"coordinatorId\":[1]}", 21, &f), 0);
    assert_string_equal(f.acker, "");
    assert_int_equal(bc_ack_slot_decode("nope", 4, &f), -EINVAL);
    assert_int_equal(bc_ack_slot_decode("[1]", 3, &f), -EINVAL);
    assert_int_equal(bc_ack_slot_decode(NULL, 0, &f), -EINVAL);

    /* refusals */
    assert_int_equal(bc_ack_encode(h, "coord b", "s", 1, 0, "wake", NULL, buf, sizeof buf, NULL),
                     -EINVAL);
    assert_int_equal(bc_ack_encode(h, "c", "s s", 1, 0, "wake", NULL, buf, sizeof buf, NULL),
                     -EINVAL);
    assert_int_equal(bc_ack_encode(h, "c", "s", 1, 0, "Wake", NULL, buf, sizeof buf, NULL),
                     -EINVAL);
    assert_int_equal(bc_ack_encode(h, "c", "s", 1, 0, "wake", "\xc3", buf, sizeof buf, NULL),
                     -EINVAL);
    assert_int_equal(
        bc_ack_encode(h, "c", "s", 1, 0, "wake", "\xed\xa0\x80", buf, sizeof buf, NULL),
        -EINVAL); /* a UTF-16 surrogate */
    assert_int_equal(bc_ack_encode(h, "c", "s", 1, 0, "wake", "\xc0\xaf", buf, sizeof buf, NULL),
                     -EINVAL); /* overlong */
    assert_int_equal(bc_ack_encode(NULL, "c", "s", 1, 0, "wake", NULL, buf, sizeof buf, NULL),
                     -EINVAL);
    n = bc_ack_encode(h, "c", "s", 1, 0, "wake", NULL, buf, sizeof buf, NULL);
    assert_true(n > 0);
    memset(sig, 'q', sizeof sig);
    assert_int_equal(bc_ack_encode(h, "c", "s", 1, 0, "wake", NULL, buf, (size_t)n, sig), -ENOSPC);
    assert_int_equal(sig[0], 'q');
    assert_int_equal(bc_ack_encode(h, "c", "s", 1, 0, "wake", NULL, buf, (size_t)n + 1, sig), n);
    assert_int_equal(bc_ack_slot_encode("a", 1, "b", "s", "abc", slot, sizeof slot), -EINVAL);
    assert_int_equal(bc_ack_slot_encode("a", 1, "b", "s", NULL, slot, sizeof slot), -EINVAL);
    assert_int_equal(bc_ack_slot_encode("a:b", 1, "b", "s", want, slot, sizeof slot), -EINVAL);
    assert_int_equal(bc_ack_slot_encode("a", 1, "b", "s", want, slot, 20), -ENOSPC);
    bc_hmac_destroy(o);
    bc_hmac_destroy(h);
}

/* ------------------------------------------------------------------ robustness */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* One garbage input into g (returns its length). */
static size_t garbage(char *g, size_t cap, const char *const *seeds, size_t nseeds)
{
    static const char *const frag[] = {"{",
                                       "}",
                                       "[",
                                       "]",
                                       "\"",
                                       ":",
                                       ",",
                                       "\\",
                                       "\\u0000",
                                       "\\ud800",
                                       "1e999",
                                       "-0",
                                       "null",
                                       "true",
                                       "\"timestamp\"",
                                       "\"signature\"",
                                       "\xff",
                                       "\xc3",
                                       " ",
                                       "\n",
                                       "\0"};
    size_t n, i, k, m;
    uint32_t mode = rnd() % 6;

    if (mode == 0) { /* random bytes */
        n = rnd() % 200;
        for (i = 0; i < n; i++)
            g[i] = (char)rnd();
        return n;
    }
    if (mode == 1) { /* deep nesting */
        n = 1 + rnd() % 4000;
        if (n > cap / 2)
            n = cap / 2;
        for (i = 0; i < n; i++)
            g[i] = rnd() % 2 ? '[' : '{';
        return n;
    }
    if (mode == 2) { /* a huge string member */
        m = (size_t)snprintf(g, cap, "{\"coordinatorId\":\"");
        n = 1000 + rnd() % 20000;
        memset(g + m, 'a', n);
        m += n;
        m += (size_t)snprintf(g + m, cap - m, "\",\"signalId\":\"sig-0001\"}");
        return m;
    }
    /* mutate a valid value */
    {
        const char *s = seeds[rnd() % nseeds];
        n = strlen(s);
        memcpy(g, s, n);
        k = 1 + rnd() % 6;
        while (k--) {
            uint32_t op = rnd() % 4;
            size_t at = n ? rnd() % n : 0;
            if (op == 0 && n) {
                g[at] = (char)rnd();
            } else if (op == 1 && n) { /* truncate */
                n = at;
            } else if (op == 2) { /* insert a fragment */
                const char *f = frag[rnd() % (sizeof frag / sizeof frag[0])];
                size_t fl = strlen(f) ? strlen(f) : 1;
                if (n + fl < cap) {
                    memmove(g + at + fl, g + at, n - at);
                    memcpy(g + at, f, fl);
                    n += fl;
                }
            } else if (n) { /* delete a byte */
                memmove(g + at, g + at + 1, n - at - 1);
                n--;
            }
        }
        return n;
    }
}

static void test_garbage(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    static char g[32768];
    char a1[512], ok_sig[512], *copy;
    const char *seeds[4], *why;
    bc_sig_fields_t f;
    bc_ack_fields_t af;
    uint64_t rounds = 4000, r;
    size_t n, accepted = 0;
    int rc;

    ack_body(a1, sizeof a1, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1);
    assert_true(bc_sig_encode(h, 1760000000000ULL, "coord-a", "coord-b", 1, "completion",
                              "{\"p\":[1,{\"q\":\"r\"}]}", ok_sig, sizeof ok_sig, NULL, NULL,
                              0) > 0);
    seeds[0] = S1_JSON;
    seeds[1] = S2_JSON;
    seeds[2] = a1;
    seeds[3] = ok_sig;
    for (r = 0; r < rounds; r++) {
        n = garbage(g, sizeof g, seeds, 4);
        /* exact-size heap copy: ASan sees any read past the end */
        copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, g, n);
        why = NULL;
        rc = bc_sig_decode(h, copy, n, "coord-b", (int)(r & 1), &f, &why);
        if (rc == 0) {
            accepted++;
            assert_true(bc_id_valid(f.sender));
            assert_string_equal(f.receiver, "coord-b");
            assert_true(bc_type_valid(f.type));
            assert_true(bc_sigid_valid(f.message_id));
            assert_true(f.timestamp > 0);
            bc_sig_fields_clear(&f);
        } else {
            assert_true(rc == BC_REJ_MALFORMED || rc == BC_REJ_SIGNATURE || rc == BC_REJ_UNSIGNED);
            assert_non_null(why);
            assert_null(f.payload);
        }
        why = NULL;
        rc = bc_ack_verify(h, copy, n, "coord-b", "sig-0001", &af, &why);
        if (rc == 0) {
            accepted++;
            assert_string_equal(af.acker, "coord-b");
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_non_null(why);
        }
        rc = bc_ack_slot_decode(copy, n, &af);
        assert_true(rc == 0 || rc == -EINVAL);
        assert_true(strlen(af.acker) <= BC_ID_MAX);
        free(copy);
    }
    /* the mutations leave some values intact: the accepting paths ran too */
    assert_true(accepted > 0);
    print_message("garbage: %" PRIu64 " inputs, %zu accepted\n", rounds, accepted);
    bc_hmac_destroy(h);
}

/* ------------------------------------------------------------------ fast path */

/* The fast path (actors/sig_fast.c) may only ever succeed, and only with the general
 * decoder's exact result. These tests decode a corpus of values and mechanical mutations of
 * them both ways and require identical outputs, and check that the common shapes really do
 * take the fast path (otherwise the equivalence would hold vacuously). */

#define NODE_EXAMPLE                                                                               \
    "{\"timestamp\":1760000000000,\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\","            \
    "\"iteration\":1,\"type\":\"completion\",\"payload\":{\"status\":\"all-complete\"},"           \
    "\"messageId\":\"coord-a:coord-b:completion:1:1760000000000\",\"signature\":"                  \
    "\"" V_COMPLETION "\"}"
#define TUTORIAL_UNSIGNED                                                                          \
    "{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\",\"timestamp\":"        \
    "1760000000000}"
/* The unsigned Node shape around a payload text (printf format). */
#define NODE_BODY                                                                                  \
    "{\"timestamp\":1760000000000,\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\","            \
    "\"iteration\":1,\"type\":\"completion\",\"payload\":%s,"                                      \
    "\"messageId\":\"coord-a:coord-b:completion:1:1760000000000\"}"

/* Payloads put_json writes back unchanged (the fast path takes them verbatim). */
static const char *const canon_payloads[] = {
    "{}",
    "{\"t\":1234567890123,\"seq\":42}",
    "{\"status\":\"all-complete\"}",
    "{\"a\":{\"b\":[1,[2,{\"c\":null}],{}],\"d\":[]},\"e\":\"x y\",\"\":0}",
    "{\"s\":\"hello world\",\"p\":\"~!@#$%^&*()[]{}:,/'<>?`|\",\"del\":\"\x7f\"}",
    "{\"n\":-5,\"m\":-123456789012345,\"z\":0,\"big\":999999999999999}",
    "{\"t\":true,\"f\":false,\"z\":null,\"l\":[true,false,null]}",
    "{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,"
    "\"ka\":10,\"kb\":11,\"kc\":12,\"kd\":13,\"ke\":14,\"kf\":15}",
    "{\"a\":{\"a\":1},\"b\":{\"a\":2}}",
};

/* Payloads the fast path declines: the general path parses and re-emits them. */
static const char *const other_payloads[] = {
    "{\"a\": 1}",
    " {}",
    "{}\n",
    "{\"s\":\"a\\nb\"}",
    "{\"s\":\"\\u00e9\"}",
    "{\"s\":\"a\\/b\"}",
    "{\"s\":\"caf\xc3\xa9\"}",
    "{\"x\":1.0}",
    "{\"x\":2e3}",
    "{\"x\":-0}",
    "{\"x\":0123}",
    "{\"x\":1234567890123456}",
    "{\"x\":0.92}",
    "{\"a\":1,\"a\":2}",
    "{\"o\":{\"k\":1,\"k\":2}}",
    "{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,"
    "\"ka\":10,\"kb\":11,\"kc\":12,\"kd\":13,\"ke\":14,\"kf\":15,\"kg\":16}",
};

/* Write into buf a payload nested depth levels deep: objects, with arrays in the middle when
 * arr is set. Returns its length. */
static size_t nested(char *buf, int depth, int arr)
{
    size_t n = 0;
    int i;

    for (i = 1; i < depth; i++)
        n += (size_t)sprintf(buf + n, arr && i > 1 && i % 2 ? "[" : "{\"a\":");
    n += (size_t)sprintf(buf + n, depth > 1 && arr && depth % 2 ? "[]" : "{}");
    for (i = depth - 1; i >= 1; i--)
        buf[n++] = arr && i > 1 && i % 2 ? ']' : '}';
    buf[n] = '\0';
    return n;
}

typedef struct eqstat {
    size_t cases, fast; /* inputs compared; of them, taken by the fast path */
} eqstat_t;

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* 1 iff a and b hold the same decoded signal (payload by content). */
static int same_fields(const bc_sig_fields_t *a, const bc_sig_fields_t *b)
{
    return a->timestamp == b->timestamp && a->iteration == b->iteration &&
           memcmp(a->sender, b->sender, sizeof a->sender) == 0 &&
           memcmp(a->receiver, b->receiver, sizeof a->receiver) == 0 &&
           memcmp(a->type, b->type, sizeof a->type) == 0 &&
           memcmp(a->message_id, b->message_id, sizeof a->message_id) == 0 &&
           same_str(a->payload, b->payload) && a->signature == b->signature;
}

/* Decode json[0..n) with bc_sig_decode and with the general decoder alone, and fail (showing
 * the input) unless the return codes, messages and every field are the same. */
static void same_decode(eqstat_t *st, const bc_hmac_t *h, const char *json, size_t n,
                        const char *key, int req)
{
    bc_sig_fields_t a, b, c;
    const char *wa = "unset", *wb = "unset";
    char *copy = malloc(n ? n : 1); /* exact size: ASan sees any read past the end */
    int ra, rb, fast, ok;

    assert_non_null(copy);
    memcpy(copy, json, n);
    ra = bc_sig_decode(h, copy, n, key, req, &a, &wa);
    rb = bc__sig_decode_general(h, copy, n, key, req, &b, &wb);
    fast = bc__sig_decode_fast(h, copy, n, key, req, &c);
    ok = ra == rb && same_str(wa, wb) && same_fields(&a, &b);
    if (fast) {
        ok = ok && rb == 0 && same_fields(&c, &b);
        bc_sig_fields_clear(&c);
        st->fast++;
    }
    st->cases++;
    if (!ok) {
        print_error("fast/general mismatch (key %s, require %d) on %zu bytes: %.*s\n"
                    "  bc_sig_decode %d (%s), general %d (%s), fast %d\n",
                    key ? key : "NULL", req, n, (int)n, copy, ra, wa ? wa : "NULL", rb,
                    wb ? wb : "NULL", fast);
        fail();
    }
    bc_sig_fields_clear(&a);
    bc_sig_fields_clear(&b);
    free(copy);
}

/* Value spans [v[i][0], v[i][1]) of the top-level members of object text s. Returns the
 * number of members (at most max). */
static int top_values(const char *s, size_t v[][2], int max)
{
    int depth = 0, in_str = 0, n = 0;
    size_t i;

    for (i = 0; s[i]; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\' && s[i + 1])
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && depth-- == 1 && n)
            v[n - 1][1] = i;
        else if (c == ':' && depth == 1 && n < max)
            v[n++][0] = i + 1;
        else if (c == ',' && depth == 1 && n)
            v[n - 1][1] = i;
    }
    return n;
}

/* 1 iff a and b hold the same ACK fields, compared whole (also the bytes past each NUL, so
 * that a field one side left untouched must be untouched on the other). */
static int same_ack(const bc_ack_fields_t *a, const bc_ack_fields_t *b)
{
    return memcmp(a->acker, b->acker, sizeof a->acker) == 0 &&
           memcmp(a->signal_id, b->signal_id, sizeof a->signal_id) == 0 &&
           a->timestamp == b->timestamp &&
           memcmp(a->signal_type, b->signal_type, sizeof a->signal_type) == 0;
}

/* Verify json[0..n) with bc_ack_verify and with the general verifier alone, outputs filled
 * with the same junk first, and fail (showing the input) unless the return codes, messages
 * and every field are the same; the fast path on its own must either succeed with the
 * general result or decline leaving its output untouched. */
static void same_ack_verify(eqstat_t *st, const bc_hmac_t *h, const char *json, size_t n,
                            const char *acker, const char *sid)
{
    bc_ack_fields_t a, b, c, junk;
    const char *wa = "unset", *wb = "unset";
    char *copy = malloc(n ? n : 1); /* exact size: ASan sees any read past the end */
    int ra, rb, rn, fast, ok;

    assert_non_null(copy);
    memcpy(copy, json, n);
    memset(&junk, 0x5a, sizeof junk);
    a = b = c = junk;
    ra = bc_ack_verify(h, copy, n, acker, sid, &a, &wa);
    rb = bc__ack_verify_general(h, copy, n, acker, sid, &b, &wb);
    rn = bc_ack_verify(h, copy, n, acker, sid, NULL, NULL);
    fast = bc__ack_verify_fast(h, copy, n, acker, sid, &c);
    ok = ra == rb && rn == rb && same_str(wa, wb) && same_ack(&a, &b);
    if (fast) {
        ok = ok && rb == 0 && same_ack(&c, &b) && bc__ack_verify_fast(h, copy, n, acker, sid, NULL);
        st->fast++;
    } else
        ok = ok && same_ack(&c, &junk);
    st->cases++;
    if (!ok) {
        print_error("ACK fast/general mismatch (keys %s, %s) on %zu bytes: %.*s\n"
                    "  bc_ack_verify %d (%s), general %d (%s), fast %d\n",
                    acker ? acker : "NULL", sid ? sid : "NULL", n, (int)n, copy, ra,
                    wa ? wa : "NULL", rb, wb ? wb : "NULL", fast);
        fail();
    }
    free(copy);
}

/* What mutate_all compares each input with: a signal decode or an ACK verify. */
typedef struct target {
    eqstat_t *st;
    const bc_hmac_t *h;
    const char *key; /* key_receiver of a signal, key_acker of an ACK */
    const char *sid; /* key_signal_id of an ACK */
    int req;         /* require_signature of a signal */
    int ack;
} target_t;

static void check(const target_t *t, const char *json, size_t n)
{
    if (t->ack)
        same_ack_verify(t->st, t->h, json, n, t->key, t->sid);
    else
        same_decode(t->st, t->h, json, n, t->key, t->req);
}

/* base with the value text base[a..b) replaced by r[0..rn), checked. */
static void check_replaced(const target_t *t, char *m, const char *base, size_t a, size_t b,
                           const char *r, size_t rn)
{
    size_t n = strlen(base);

    memcpy(m, base, a);
    memcpy(m + a, r, rn);
    memcpy(m + a + rn, base + b, n - b);
    check(t, m, a + rn + n - b);
}

/* base and its mutations, each checked with t. */
static void mutate_all(const target_t *t, const char *base)
{
    static const char bytes[] = {'"', '\\', '{', '}', ',', ':',        '0',
                                 '9', '-',  '.', 'e', 'x', (char)0x80, 0x01};
    /* values put in place of each member's: other types, and numbers jansson reads the same
     * way as a canonical one but which are not written like one */
    static const char *const values[] = {"null", "true",  "{}",  "[]",   "\"\"", "\"received\"",
                                         "0",    "-0",    "1.0", "0123", "2e3",  "-1",
                                         "1e3",  "\"0\"", "1E0", "0.0",  "\"2\""};
    size_t n = strlen(base), i, k, v[16][2];
    char *m = malloc(2 * n + 64), r[128];
    int cnt, j, rn;

    assert_non_null(m);
    check(t, base, n);
    for (i = 0; i < n; i++) {
        check(t, base, i);  /* truncated to i bytes */
        memcpy(m, base, i); /* byte i deleted */
        memcpy(m + i, base + i + 1, n - i - 1);
        check(t, m, n - 1);
        memcpy(m, base, n);
        for (k = 0; k < sizeof bytes; k++) { /* byte i replaced */
            if (base[i] == bytes[k])
                continue;
            m[i] = bytes[k];
            check(t, m, n);
        }
    }
    for (i = 0; i <= n; i++) { /* a space inserted before byte i */
        memcpy(m, base, i);
        m[i] = ' ';
        memcpy(m + i + 1, base + i, n - i);
        check(t, m, n + 1);
    }
    cnt = top_values(base, v, 16);
    for (j = 0; j < cnt; j++) {
        size_t a = v[j][0], b = v[j][1], start = j ? v[j - 1][1] + 1 : 1;
        const char *val = base + a;
        /* the member twice in a row: same value, so JSON.parse's last-wins changes nothing */
        memcpy(m, base, b);
        m[b] = ',';
        memcpy(m + b + 1, base + start, b - start);
        memcpy(m + 2 * b + 1 - start, base + b, n - b);
        check(t, m, n + b - start + 1);
        for (k = 0; k < sizeof values / sizeof values[0]; k++)
            check_replaced(t, m, base, a, b, values[k], strlen(values[k]));
        if (b - a > 64) /* long strings and objects: only the generic replacements */
            continue;
        if (*val == '-' || (*val >= '0' && *val <= '9')) {
            /* the same number as a string, as a real, with an exponent, negated, zero-led */
            static const char *const fmt[] = {"\"%.*s\"", "%.*s.0", "%.*se0", "-%.*s",
                                              "0%.*s",    "%.*s.5", "%.*sE+0"};
            for (k = 0; k < sizeof fmt / sizeof fmt[0]; k++) {
                rn = snprintf(r, sizeof r, fmt[k], (int)(b - a), val);
                check_replaced(t, m, base, a, b, r, (size_t)rn);
            }
        } else if (*val == '"' && b - a > 2) {
            /* the same string with its first character escaped, then with "\/" in front */
            rn = snprintf(r, sizeof r, "\"\\u%04x%.*s", (unsigned char)val[1], (int)(b - a - 2),
                          val + 2);
            check_replaced(t, m, base, a, b, r, (size_t)rn);
            rn = snprintf(r, sizeof r, "\"\\/%.*s", (int)(b - a - 1), val + 1);
            check_replaced(t, m, base, a, b, r, (size_t)rn);
        }
    }
    free(m);
}

/* bc_sig_encode of a coord-a -> coord-b signal into buf; asserts success. */
static size_t enc(const bc_hmac_t *h, uint64_t it, const char *type, const char *pl, char *buf,
                  size_t len)
{
    char err[256];
    int n = bc_sig_encode(h, 1760000000000ULL + it, "coord-a", "coord-b", it, type, pl, buf, len,
                          NULL, err, sizeof err);

    if (n <= 0)
        print_error("encode failed for payload %s: %s\n", pl ? pl : "NULL", err);
    assert_true(n > 0);
    return (size_t)n;
}

static void test_json_canon(void **state)
{
    static const char *const no[] = {
        "",
        "[]",
        "{",
        "{}}",
        "{} ",
        " {}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\":tru}",
        "{\"a\":-}",
        "{\"a\":01}",
        "{\"a\":-0}",
        "{\"a\":1.5}",
        "{\"a\":1e3}",
        "{\"a\":1E3}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":+1}",
        "{\"a\":[1,]}",
        "{\"a\":[,1]}",
        "{\"a\":\"\t\"}",
        "{\"a\":\"\\\"\"}",
        "{\"\xc3\xa9\":1}",
        "{\"a\":1234567890123456}",
        "{\"a\":[1 ]}",
        "{\"a\":1}{}",
        "{\"a\":nul}",
        "{\"a\":\"x}",
    };
    char deep[128];
    size_t i, n;

    assert_true(bc__json_canon_object("{}", 2));
    for (i = 0; i < sizeof canon_payloads / sizeof canon_payloads[0]; i++)
        assert_true(bc__json_canon_object(canon_payloads[i], strlen(canon_payloads[i])));
    for (i = 0; i < sizeof other_payloads / sizeof other_payloads[0]; i++)
        assert_false(bc__json_canon_object(other_payloads[i], strlen(other_payloads[i])));
    for (i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(bc__json_canon_object(no[i], strlen(no[i])));
    assert_false(bc__json_canon_object(NULL, 0));
    assert_false(bc__json_canon_object("{}", 1)); /* the length counts, not the NUL */
    assert_true(bc__json_canon_object("{}x", 2));
    n = nested(deep, 16, 0);
    assert_true(bc__json_canon_object(deep, n));
    n = nested(deep, 17, 0);
    assert_false(bc__json_canon_object(deep, n));
    n = nested(deep, 16, 1);
    assert_true(bc__json_canon_object(deep, n));
    n = nested(deep, 17, 1);
    assert_false(bc__json_canon_object(deep, n));
}

static void test_sig_fast_taken(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    char buf[1024], body[512], spaced[512];
    bc_sig_fields_t f;
    size_t i, n;

    /* the encoder's own output, signed: taken, with the payload text as is */
    for (i = 0; i < sizeof canon_payloads / sizeof canon_payloads[0]; i++) {
        n = enc(h, i, "completion", canon_payloads[i], buf, sizeof buf);
        assert_int_equal(bc__sig_decode_fast(h, buf, n, "coord-b", 1, &f), 1);
        assert_int_equal(f.signature, BC_SIG_VALID);
        assert_string_equal(f.payload, canon_payloads[i]);
        bc_sig_fields_clear(&f);
    }
    n = enc(h, 0, "wake", NULL, buf, sizeof buf);
    assert_int_equal(bc__sig_decode_fast(h, buf, n, "coord-b", 1, &f), 1);
    assert_null(f.payload);
    bc_sig_fields_clear(&f);
    /* the Node example, the unsigned Node shape (S1), the tutorial shape (S2, no key check) */
    assert_int_equal(bc__sig_decode_fast(h, NODE_EXAMPLE, strlen(NODE_EXAMPLE), "coord-b", 1, &f),
                     1);
    assert_string_equal(f.message_id, "coord-a:coord-b:completion:1:1760000000000");
    assert_int_equal(f.signature, BC_SIG_VALID);
    bc_sig_fields_clear(&f);
    assert_int_equal(bc__sig_decode_fast(h, S1_JSON, strlen(S1_JSON), "coord-b", 0, &f), 1);
    assert_int_equal(f.signature, BC_SIG_NONE);
    bc_sig_fields_clear(&f);
    assert_int_equal(bc__sig_decode_fast(h, S2_JSON, strlen(S2_JSON), NULL, 1, &f), 1);
    assert_string_equal(f.message_id, "coord-a:coord-b:wake:0:1760000000000");
    bc_sig_fields_clear(&f);

    /* declined: whitespace, escapes, duplicates, floats, nulls, unknown members, and every
     * refusal (those the general path reports) */
#define DECLINES(json, key, req)                                                                   \
    assert_int_equal(bc__sig_decode_fast(h, json, strlen(json), key, req, &f), 0)
    for (i = 0; i < sizeof other_payloads / sizeof other_payloads[0]; i++) {
        snprintf(body, sizeof body, NODE_BODY, other_payloads[i]);
        DECLINES(body, "coord-b", 0);
    }
    snprintf(spaced, sizeof spaced, "%s ", S2_JSON);
    DECLINES(spaced, "coord-b", 0);
    DECLINES("{\"senderId\": \"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
             "\"timestamp\":1}",
             "coord-b", 0);
    DECLINES("{\"senderId\":\"coord\\u002da\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
             "\"timestamp\":1}",
             "coord-b", 0);
    DECLINES("{\"senderId\":\"coord-a\",\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\","
             "\"type\":\"wake\",\"timestamp\":1}",
             "coord-b", 0);
    DECLINES("{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
             "\"timestamp\":1.76e12}",
             "coord-b", 0);
    DECLINES("{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
             "\"timestamp\":1,\"iteration\":null}",
             "coord-b", 0);
    DECLINES("{\"senderId\":\"coord-a\",\"receiverId\":\"coord-b\",\"type\":\"wake\","
             "\"timestamp\":1,\"extra\":1}",
             "coord-b", 0);
    DECLINES(S1_JSON, "coord-b", 1); /* unsigned, signature required */
    DECLINES(S1_JSON, "coord-c", 0); /* another receiver's key */
    assert_int_equal(
        bc__sig_decode_fast(NULL, NODE_EXAMPLE, strlen(NODE_EXAMPLE), "coord-b", 0, &f),
        0); /* no key to verify with */
    {
        bc_hmac_t *o = mk(OTHER);
        assert_int_equal(bc__sig_decode_fast(o, NODE_EXAMPLE, strlen(NODE_EXAMPLE), NULL, 0, &f),
                         0); /* bad signature */
        bc_hmac_destroy(o);
    }
#undef DECLINES
    bc_hmac_destroy(h);
}

static void test_sig_fast_equivalence(void **state)
{
    bc_hmac_t *h = mk(SECRET), *o = mk(OTHER);
    static const char *const keys[] = {"coord-b", NULL, "coord-x"};
    char *bases[64], buf[1024], deep[128], body[1024];
    size_t nb = 0, i, k;
    eqstat_t st = {0, 0};
    int req;

#define ADD(s)                                                                                     \
    do {                                                                                           \
        assert_true(nb < sizeof bases / sizeof bases[0]);                                          \
        bases[nb] = strdup(s);                                                                     \
        assert_non_null(bases[nb++]);                                                              \
    } while (0)
    enc(h, 0, "wake", NULL, buf, sizeof buf);
    ADD(buf);
    for (i = 0; i < sizeof canon_payloads / sizeof canon_payloads[0]; i++) {
        enc(h, i + 1, "completion", canon_payloads[i], buf, sizeof buf);
        ADD(buf);
    }
    ADD(NODE_EXAMPLE);
    ADD(S1_JSON);
    ADD(S2_JSON);
    ADD(TUTORIAL_UNSIGNED);
    for (i = 0; i < sizeof other_payloads / sizeof other_payloads[0]; i++) {
        snprintf(body, sizeof body, NODE_BODY, other_payloads[i]);
        ADD(body);
    }
    for (i = 0; i < 4; i++) {
        nested(deep, 16 + (int)(i & 1), (int)(i >> 1));
        snprintf(body, sizeof body, NODE_BODY, deep);
        ADD(body);
    }
    ADD("{\"timestamp\":1,\"senderId\":\"" ID64 "\",\"receiverId\":\"coord-b\",\"type\":"
        "\"abcdefghijklmnopqrstuvwxyzabcdef\",\"iteration\":999999999999999}");
    ADD("{\"timestamp\":1,\"senderId\":\"" ID64 "a\",\"receiverId\":\"coord-b\",\"type\":"
        "\"abcdefghijklmnopqrstuvwxyzabcdefg\",\"iteration\":0}");
    ADD("{\"type\":\"wake\",\"timestamp\":999999999999999,\"receiverId\":\"coord-b\","
        "\"senderId\":\"a\",\"messageId\":\"m:1\",\"payload\":{\"\":\"\"}}");
#undef ADD

    /* each base under every key, strictness and HMAC key (right, other, none) */
    for (i = 0; i < nb; i++)
        for (k = 0; k < sizeof keys / sizeof keys[0]; k++)
            for (req = 0; req <= 1; req++) {
                same_decode(&st, h, bases[i], strlen(bases[i]), keys[k], req);
                same_decode(&st, o, bases[i], strlen(bases[i]), keys[k], req);
                same_decode(&st, NULL, bases[i], strlen(bases[i]), keys[k], req);
            }
    /* and every mutation of each base */
    for (i = 0; i < nb; i++) {
        mutate_all(&(target_t){&st, h, "coord-b", NULL, 0, 0}, bases[i]);
        free(bases[i]);
    }
    print_message("fast path equivalence: %zu cases, %zu taken by the fast path\n", st.cases,
                  st.fast);
    /* the comparison is not vacuous: the fast path ran on a good share of them */
    assert_true(st.fast > 1000);
    bc_hmac_destroy(o);
    bc_hmac_destroy(h);
}

/* bc_sig_encode's output for payload pl and for pl behind a space (which always takes the
 * jansson path) must be the same; so must its return code, and for mutations of pl too. */
static void same_encode(const bc_hmac_t *h, const char *pl, size_t n)
{
    char a[1024], b[1024], *spaced = malloc(n + 2);
    int ra, rb;

    assert_non_null(spaced);
    spaced[0] = ' ';
    memcpy(spaced + 1, pl, n);
    spaced[n + 1] = '\0';
    ra = bc_sig_encode(h, 1760000000000ULL, "coord-a", "coord-b", 3, "completion", spaced + 1, a,
                       sizeof a, NULL, NULL, 0);
    rb = bc_sig_encode(h, 1760000000000ULL, "coord-a", "coord-b", 3, "completion", spaced, b,
                       sizeof b, NULL, NULL, 0);
    if (ra != rb || (ra > 0 && strcmp(a, b) != 0)) {
        print_error("encode mismatch for payload %s: %d %s / %d %s\n", spaced + 1, ra,
                    ra > 0 ? a : "", rb, rb > 0 ? b : "");
        fail();
    }
    free(spaced);
}

static void test_sig_fast_encode(void **state)
{
    static const char bytes[] = {'"', '\\', '{', '}', ',', ':', '0', '9', '-', '.', 'e', 'x', ' '};
    bc_hmac_t *h = mk(SECRET);
    char m[512], deep[128];
    size_t i, j, k, n;

    for (i = 0; i < sizeof other_payloads / sizeof other_payloads[0]; i++) {
        assert_false(bc__json_canon_object(other_payloads[i], strlen(other_payloads[i])));
        same_encode(h, other_payloads[i], strlen(other_payloads[i]));
    }
    n = nested(deep, 16, 1);
    same_encode(h, deep, n);
    n = nested(deep, 17, 1);
    same_encode(h, deep, n);
    for (i = 0; i < sizeof canon_payloads / sizeof canon_payloads[0]; i++) {
        const char *p = canon_payloads[i];
        n = strlen(p);
        assert_true(bc__json_canon_object(p, n));
        same_encode(h, p, n);
        /* mutations: whatever the scanner accepts must be what jansson writes back */
        for (j = 0; j < n; j++) {
            memcpy(m, p, j);
            memcpy(m + j, p + j + 1, n - j - 1);
            same_encode(h, m, n - 1);
            memcpy(m, p, n);
            for (k = 0; k < sizeof bytes; k++) {
                m[j] = bytes[k];
                same_encode(h, m, n);
            }
        }
    }
    bc_hmac_destroy(h);
}

/* ------------------------------------------------------------------ ACK fast path */

/* The §3.1 example of docs/protocol.md and the signalId it acknowledges. */
#define V_ACK_B1_UP "F93AFE4623D71B048B2DBCF530BE0AA3B4A87911A2E84D0583B04B0E004EA2C1"
#define DOC_ACK_SID "coord-a:coord-b:completion:1:1760000000000"
#define DOC_ACK                                                                                    \
    "{\"coordinatorId\":\"coord-b\",\"signalId\":\"" DOC_ACK_SID "\",\"timestamp\":"               \
    "1760000000042,\"iteration\":0,\"status\":\"received\",\"signature\":"                         \
    "\"f0e8a097ff55e150e3c2539eaa93c3a3be14fcda42223998128bcf2de2b59a0b\",\"metadata\":"           \
    "{\"signalType\":\"completion\"}}"
/* A §10.2 (Node) ACK around metadata and signature texts (printf format). */
#define ACK_META                                                                                   \
    "{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":1760000000000,"        \
    "\"iteration\":2,\"status\":\"received\",\"signature\":\"%s\"%s}"

/* An ACK value and the keys it is read under. */
typedef struct ack_case {
    char *json;
    const char *acker, *sid;
} ack_case_t;

/* bc_ack_encode's ACK into buf; asserts success. */
static size_t ack_enc(const bc_hmac_t *h, const char *acker, const char *sid, uint64_t ts,
                      uint64_t it, const char *type, const char *phase, char *buf, size_t len)
{
    int n = bc_ack_encode(h, acker, sid, ts, it, type, phase, buf, len, NULL);

    assert_true(n > 0);
    return (size_t)n;
}

static void test_ack_fast_taken(void **state)
{
    bc_hmac_t *h = mk(SECRET), *o = mk(OTHER);
    char buf[1024], b[1024];
    bc_ack_fields_t f, junk;
    size_t n;

    /* the encoder's own output, with and without phase: taken, fields as the general path's */
    n = ack_enc(h, "coord-b", "sig-0001", 1760000000000ULL, 2, "completion", NULL, buf, sizeof buf);
    memset(&f, 0x5a, sizeof f);
    assert_int_equal(bc__ack_verify_fast(h, buf, n, "coord-b", "sig-0001", &f), 1);
    assert_string_equal(f.acker, "coord-b");
    assert_string_equal(f.signal_id, "sig-0001");
    assert_int_equal(f.timestamp, 1760000000000ULL);
    assert_string_equal(f.signal_type, "completion");
    assert_int_equal(bc__ack_verify_fast(h, buf, n, "coord-b", "sig-0001", NULL), 1);
    n = ack_enc(h, "coord-b", DOC_ACK_SID, 1760000000999ULL, 4, "wake", "loop 3 (p/1)", buf,
                sizeof buf);
    assert_int_equal(bc__ack_verify_fast(h, buf, n, "coord-b", DOC_ACK_SID, &f), 1);
    assert_string_equal(f.signal_id, DOC_ACK_SID);
    assert_int_equal(f.timestamp, 1760000000999ULL);
    assert_string_equal(f.signal_type, "wake");
    n = ack_enc(h, ID64, "s", 0, 999999999999999ULL, "abcdefghijklmnopqrstuvwxyzabcdef", "", buf,
                sizeof buf);
    assert_int_equal(bc__ack_verify_fast(h, buf, n, ID64, "s", &f), 1);
    assert_int_equal(f.timestamp, 0);
    assert_string_equal(f.signal_type, "abcdefghijklmnopqrstuvwxyzabcdef");
    /* the docs/protocol.md example and the Node ACK of §10.2 (A1), also signed in upper case */
    assert_int_equal(bc__ack_verify_fast(h, DOC_ACK, strlen(DOC_ACK), "coord-b", DOC_ACK_SID, &f),
                     1);
    assert_int_equal(f.timestamp, 1760000000042ULL);
    assert_string_equal(f.signal_type, "completion");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1);
    assert_int_equal(bc__ack_verify_fast(h, b, strlen(b), "coord-b", "sig-0001", &f), 1);
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1_UP);
    assert_int_equal(bc__ack_verify_fast(h, b, strlen(b), "coord-b", "sig-0001", &f), 1);
    /* metadata absent, empty, without signalType, or with other members around it */
    snprintf(b, sizeof b, ACK_META, V_ACK_B1, "");
    assert_int_equal(bc__ack_verify_fast(h, b, strlen(b), "coord-b", "sig-0001", &f), 1);
    assert_string_equal(f.signal_type, "");
    snprintf(b, sizeof b, ACK_META, V_ACK_B1, ",\"metadata\":{}");
    assert_int_equal(bc__ack_verify_fast(h, b, strlen(b), "coord-b", "sig-0001", &f), 1);
    assert_string_equal(f.signal_type, "");
    snprintf(b, sizeof b, ACK_META, V_ACK_B1,
             ",\"metadata\":{\"x\":{\"signalType\":\"no\"},\"signalType\":\"wake\",\"y\":[1]}");
    assert_int_equal(bc__ack_verify_fast(h, b, strlen(b), "coord-b", "sig-0001", &f), 1);
    assert_string_equal(f.signal_type, "wake");

    /* declined, with the output left alone: shapes the encoder never writes, and refusals */
    memset(&junk, 0x5a, sizeof junk);
#define DECLINES(json, acker, sid)                                                                 \
    do {                                                                                           \
        f = junk;                                                                                  \
        assert_int_equal(bc__ack_verify_fast(h, json, strlen(json), acker, sid, &f), 0);           \
        assert_memory_equal(&f, &junk, sizeof f);                                                  \
    } while (0)
    n = ack_enc(h, "coord-b", "sig-0001", 1760000000000ULL, 2, "completion", "caf\xc3\xa9", buf,
                sizeof buf);
    DECLINES(buf, "coord-b", "sig-0001"); /* non-ASCII phase */
    ack_enc(h, "coord-b", "sig-0001", 1760000000000ULL, 2, "completion", "a\"b", buf, sizeof buf);
    DECLINES(buf, "coord-b", "sig-0001"); /* escaped phase */
    ack_enc(h, "coord-b", "sig-0001", 1760000000000000ULL, 2, "completion", NULL, buf, sizeof buf);
    DECLINES(buf, "coord-b", "sig-0001"); /* 16 digits */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1.76e12", "2.0", "received", V_ACK_B1);
    DECLINES(b, "coord-b", "sig-0001");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "\"1760000000000\"", "\"2\"", "received",
             V_ACK_B1);
    DECLINES(b, "coord-b", "sig-0001");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "FORGED", V_ACK_B1);
    DECLINES(b, "coord-b", "sig-0001");
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", NULL, "received", V_ACK_B1);
    DECLINES(b, "coord-b", "sig-0001"); /* missing iteration */
    ack_body(b, sizeof b, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1);
    DECLINES(b, "coord-x", "sig-0001");
    DECLINES(b, "coord-b", "sig-0002");
    DECLINES(b, NULL, "sig-0001");
    DECLINES(b, "coord-b", NULL);
    DECLINES(b, ID64 "a", "sig-0001");
    f = junk;
    assert_int_equal(bc__ack_verify_fast(NULL, b, strlen(b), "coord-b", "sig-0001", &f), 0);
    assert_int_equal(bc__ack_verify_fast(o, b, strlen(b), "coord-b", "sig-0001", &f), 0);
    assert_int_equal(bc__ack_verify_fast(h, NULL, 0, "coord-b", "sig-0001", &f), 0);
    assert_int_equal(bc__ack_verify_fast(h, b, strlen(b) - 1, "coord-b", "sig-0001", &f), 0);
    assert_memory_equal(&f, &junk, sizeof f);
    n = strlen(b);
    b[n] = ' ';
    b[n + 1] = '\0';
    DECLINES(b, "coord-b", "sig-0001"); /* trailing whitespace */
    snprintf(b, sizeof b, ACK_META, V_ACK_B1,
             ",\"metadata\":{\"signalType\":\"completion\"},"
             "\"metadata\":{\"signalType\":\"completion\"}");
    DECLINES(b, "coord-b", "sig-0001"); /* duplicate member */
    snprintf(b, sizeof b, ACK_META, V_ACK_B1, ",\"extra\":1");
    DECLINES(b, "coord-b", "sig-0001"); /* unknown member */
    snprintf(b, sizeof b, ACK_META, V_ACK_B1, ",\"metadata\":null");
    DECLINES(b, "coord-b", "sig-0001");
    snprintf(b, sizeof b, ACK_META, V_ACK_B1, ",\"metadata\":{\"signalType\":7}");
    DECLINES(b, "coord-b", "sig-0001");
    snprintf(b, sizeof b, ACK_META, V_ACK_B1,
             ",\"metadata\":{\"signalType\":\"abcdefghijklmnopqrstuvwxyzabcdefg\"}");
    DECLINES(b, "coord-b", "sig-0001"); /* 33 bytes: copy_str leaves it out */
    snprintf(b, sizeof b, ACK_META, V_ACK_B1, ",\"metadata\":{\"signalType\":\"\\u0077ake\"}");
    DECLINES(b, "coord-b", "sig-0001");
#undef DECLINES
    bc_hmac_destroy(o);
    bc_hmac_destroy(h);
}

static void test_ack_fast_equivalence(void **state)
{
    bc_hmac_t *h = mk(SECRET), *o = mk(OTHER);
    static const uint64_t nums[][2] = {{1760000000000ULL, 2},
                                       {0, 0},
                                       {1, 1},
                                       {999999999999999ULL, 999999999999999ULL},
                                       {1000000000000000ULL, 7},
                                       {9007199254740993ULL, 0},
                                       {UINT64_MAX, UINT64_MAX}};
    static const char *const metas[] = {
        "",
        ",\"metadata\":{}",
        ",\"metadata\":{\"signalType\":\"wake\",\"phase\":\"p\"}",
        ",\"metadata\":{\"phase\":\"p\",\"signalType\":\"wake\"}",
        ",\"metadata\":{\"signalType\":\"\"}",
        ",\"metadata\":{\"signalType\":\"abcdefghijklmnopqrstuvwxyzabcdef\"}",
        ",\"metadata\":{\"signalType\":\"abcdefghijklmnopqrstuvwxyzabcdefg\"}",
        ",\"metadata\":{\"signalType\":\"Not A Type!\"}",
        ",\"metadata\":{\"signalType\":7}",
        ",\"metadata\":{\"signalType\":null}",
        ",\"metadata\":{\"signalType\":{\"signalType\":\"x\"}}",
        ",\"metadata\":{\"signalType\":\"w\\u0061ke\"}",
        ",\"metadata\":{\"signalType\":\"caf\xc3\xa9\"}",
        ",\"metadata\":{\"a\":{\"b\":[1,-2,{\"c\":null}],\"signalType\":\"no\"},\"signalType\":"
        "\"yes\"}",
        ",\"metadata\":{\"signalType\":\"a\",\"signalType\":\"b\"}",
        ",\"metadata\":null",
        ",\"metadata\":\"wake\"",
        ",\"metadata\":[]",
        ",\"metadata\":{\"signalType\":\"completion\"},\"extra\":true",
    };
    ack_case_t cs[96];
    char buf[1024], sig[65];
    size_t nc = 0, i, k;
    eqstat_t st = {0, 0};

#define ADD(s, a, id)                                                                              \
    do {                                                                                           \
        assert_true(nc < sizeof cs / sizeof cs[0]);                                                \
        cs[nc].json = strdup(s);                                                                   \
        assert_non_null(cs[nc].json);                                                              \
        cs[nc].acker = (a);                                                                        \
        cs[nc++].sid = (id);                                                                       \
    } while (0)
    /* the encoder's output: phases plain, empty, escaped, non-ASCII; several numbers */
    for (i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        ack_enc(h, "coord-b", "sig-0001", nums[i][0], nums[i][1], "completion", NULL, buf,
                sizeof buf);
        ADD(buf, "coord-b", "sig-0001");
    }
    ack_enc(h, "coord-b", DOC_ACK_SID, 1760000000999ULL, 4, "wake", "loop 3", buf, sizeof buf);
    ADD(buf, "coord-b", DOC_ACK_SID);
    ack_enc(h, "coord-b", DOC_ACK_SID, 1760000000999ULL, 4, "wake", "", buf, sizeof buf);
    ADD(buf, "coord-b", DOC_ACK_SID);
    ack_enc(h, "coord-b", DOC_ACK_SID, 1760000000999ULL, 4, "completion", "loop \"3\"\n\xc3\xa9",
            buf, sizeof buf);
    ADD(buf, "coord-b", DOC_ACK_SID);
    ack_enc(h, ID64, "a:b:c", 5, 6, "abcdefghijklmnopqrstuvwxyzabcdef", "~!@#$%^&*()", buf,
            sizeof buf);
    ADD(buf, ID64, "a:b:c");
    /* the docs example; the Node ACKs of §10.2 (A1, A5, A8, A9, A11, A10, A3, duplicates) */
    ADD(DOC_ACK, "coord-b", DOC_ACK_SID);
    ack_body(buf, sizeof buf, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1);
    ADD(buf, "coord-b", "sig-0001");
    ack_body(buf, sizeof buf, "coord-b", "sig-0001", "1760000000000", "2", "received", V_ACK_B1_UP);
    ADD(buf, "coord-b", "sig-0001");
    ack_body(buf, sizeof buf, "coord-c", "sig-0001", "1760000000500", "0", "received", V_ACK_C1);
    ADD(buf, "coord-c", "sig-0001");
    ack_body(buf, sizeof buf, "coord-b", "sig-0002", "1760000000000", "0", "received", V_ACK_B2);
    ADD(buf, "coord-b", "sig-0002");
    ack_body(buf, sizeof buf, "coord-b", "sig-0001", "1.76e12", "2.0", "received", V_ACK_B1);
    ADD(buf, "coord-b", "sig-0001");
    ack_body(buf, sizeof buf, "coord-b", "sig-0001", "\"1760000000000\"", "\"2\"", "received",
             V_ACK_B1);
    ADD(buf, "coord-b", "sig-0001");
    ack_body(buf, sizeof buf, "coord-b", "sig-0002", "1760000000000", "\"undefined\"", "received",
             V_UNDEFINED);
    ADD(buf, "coord-b", "sig-0002");
    ack_body(buf, sizeof buf, "coord-b", "sig-0001", "1760000000000", "2", "FORGED", V_ACK_B1);
    ADD(buf, "coord-b", "sig-0001");
    ack_body(buf, sizeof buf, "coord-b", "sig-0001", "1760000000000", "2", "received", NULL);
    ADD(buf, "coord-b", "sig-0001");
    ADD("{\"coordinatorId\":\"coord-b\",\"signalId\":\"sig-0001\",\"timestamp\":1760000000000,"
        "\"iteration\":3,\"iteration\":2,\"status\":\"received\",\"signature\":\"" V_ACK_B1 "\"}",
        "coord-b", "sig-0001");
    /* members in another order, escapes in the ids, and metadata of every sort */
    ADD("{\"signature\":\"" V_ACK_B1 "\",\"status\":\"received\",\"iteration\":2,\"timestamp\":"
        "1760000000000,\"signalId\":\"sig-0001\",\"coordinatorId\":\"coord-b\"}",
        "coord-b", "sig-0001");
    ADD("{\"coordinatorId\":\"coord\\u002db\",\"signalId\":\"sig-0001\",\"timestamp\":"
        "1760000000000,\"iteration\":2,\"status\":\"rec\\u0065ived\",\"signature\":\"" V_ACK_B1
        "\"}",
        "coord-b", "sig-0001");
    for (i = 0; i < sizeof metas / sizeof metas[0]; i++) {
        snprintf(buf, sizeof buf, ACK_META, V_ACK_B1, metas[i]);
        ADD(buf, "coord-b", "sig-0001");
    }
    /* keys the encoder refuses but the verifier compares as bytes: empty, quoted */
    bc_hmac_hex(h, ":s:1:2", 6, sig);
    snprintf(buf, sizeof buf,
             "{\"coordinatorId\":\"\",\"signalId\":\"s\",\"timestamp\":1,\"iteration\":2,"
             "\"status\":\"received\",\"signature\":\"%s\"}",
             sig);
    ADD(buf, "", "s");
    bc_hmac_hex(h, "a\"b:s:1:2", 9, sig);
    snprintf(buf, sizeof buf,
             "{\"coordinatorId\":\"a\\\"b\",\"signalId\":\"s\",\"timestamp\":1,\"iteration\":2,"
             "\"status\":\"received\",\"signature\":\"%s\"}",
             sig);
    ADD(buf, "a\"b", "s");
#undef ADD

    /* each case under its keys, wrong and invalid keys, and every HMAC key (right, other, none) */
    for (i = 0; i < nc; i++) {
        const char *keys[][2] = {{cs[i].acker, cs[i].sid}, {"coord-x", cs[i].sid},
                                 {cs[i].acker, "sig-x"},   {NULL, cs[i].sid},
                                 {cs[i].acker, NULL},      {ID64 "a", cs[i].sid}};
        size_t n = strlen(cs[i].json);
        for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            same_ack_verify(&st, h, cs[i].json, n, keys[k][0], keys[k][1]);
            same_ack_verify(&st, o, cs[i].json, n, keys[k][0], keys[k][1]);
            same_ack_verify(&st, NULL, cs[i].json, n, keys[k][0], keys[k][1]);
        }
    }
    /* and every mutation of each */
    for (i = 0; i < nc; i++) {
        mutate_all(&(target_t){&st, h, cs[i].acker, cs[i].sid, 0, 1}, cs[i].json);
        free(cs[i].json);
    }
    print_message("ACK fast path equivalence: %zu cases, %zu taken by the fast path\n", st.cases,
                  st.fast);
    /* the comparison is not vacuous: the fast path ran on a good share of them */
    assert_true(st.fast > 1000);
    bc_hmac_destroy(o);
    bc_hmac_destroy(h);
}

/* ------------------------------------------------------------------ threads and speed */

#define NMSG 64

typedef struct hmac_job {
    const bc_hmac_t *h;
    char (*want)[65];
    int mismatches;
} hmac_job_t;

static void msg_of(int i, char *m, size_t len)
{
    snprintf(m, len, "coord-%d:sig-%04d:17600000%05d:%d", i, i * 7, i * 13, i % 5);
}

static void *hmac_thread(void *arg)
{
    hmac_job_t *j = arg;
    char m[80], out[65];
    int r, i;

    for (r = 0; r < 500; r++)
        for (i = 0; i < NMSG; i++) {
            msg_of((i + r) % NMSG, m, sizeof m);
            bc_hmac_hex(j->h, m, strlen(m), out);
            if (strcmp(out, j->want[(i + r) % NMSG]) != 0)
                j->mismatches++;
        }
    return NULL;
}

static void test_hmac_threads(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    char want[NMSG][65], m[80];
    pthread_t t[4];
    hmac_job_t jobs[4];
    int i;

    for (i = 0; i < NMSG; i++) {
        msg_of(i, m, sizeof m);
        bc_hmac_hex(h, m, strlen(m), want[i]);
    }
    assert_string_not_equal(want[0], want[1]);
    for (i = 0; i < 4; i++) {
        jobs[i] = (hmac_job_t){h, want, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hmac_thread, &jobs[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(jobs[i].mismatches, 0);
    }
    /* still right in this thread, and a known vector */
    assert_hmac(h, "coord-b:sig-0001:1760000000000:2", V_ACK_B1);
    bc_hmac_destroy(h);
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void test_hmac_speed(void **state)
{
    bc_hmac_t *h = mk(SECRET);
    const char *m = "coord-b:coord-a:coord-b:completion:1:1760000000000:1760000000999:4";
    char out[65], buf[512];
    bc_ack_fields_t f;
    const char *why;
    double t0, t1, t2;
    int i, n, iters = 100000;

    bc_hmac_hex(h, m, strlen(m), out); /* warm up */
    t0 = now_ns();
    for (i = 0; i < iters; i++)
        bc_hmac_hex(h, m, strlen(m), out);
    t1 = now_ns();
    assert_string_equal(out, "45551d5a47ef28e754059054cbd4a07f7bc36c045ace7a61756c66573cc21843");
    n = bc_ack_encode(h, "coord-b", "coord-a:coord-b:completion:1:1760000000000", 1760000000999ULL,
                      4, "completion", NULL, buf, sizeof buf, NULL);
    assert_true(n > 0);
    for (i = 0; i < iters / 10; i++)
        assert_int_equal(bc_ack_verify(h, buf, (size_t)n, "coord-b",
                                       "coord-a:coord-b:completion:1:1760000000000", &f, &why),
                         0);
    t2 = now_ns();
    print_message("bc_hmac_hex: %.0f ns per HMAC (%d iterations); bc_ack_verify: %.0f ns\n",
                  (t1 - t0) / iters, iters, (t2 - t1) / (iters / 10));
    bc_hmac_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_type_valid),
        cmocka_unit_test(test_sigid_valid),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_hmac_vectors),
        cmocka_unit_test(test_hmac_create_errors),
        cmocka_unit_test(test_sig_equal),
        cmocka_unit_test(test_js_render),
        cmocka_unit_test(test_sig_encode_exact),
        cmocka_unit_test(test_sig_encode_payload),
        cmocka_unit_test(test_sig_encode_errors),
        cmocka_unit_test(test_sig_decode_s1),
        cmocka_unit_test(test_sig_decode_s2),
        cmocka_unit_test(test_sig_decode_malformed),
        cmocka_unit_test(test_sig_roundtrip),
        cmocka_unit_test(test_ack_cases),
        cmocka_unit_test(test_ack_encode),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_hmac_threads),
        cmocka_unit_test(test_hmac_speed),
        cmocka_unit_test(test_json_canon),
        cmocka_unit_test(test_sig_fast_taken),
        cmocka_unit_test(test_sig_fast_equivalence),
        cmocka_unit_test(test_sig_fast_encode),
        cmocka_unit_test(test_ack_fast_taken),
        cmocka_unit_test(test_ack_fast_equivalence),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
