/* Unit tests for src/json.c: the writer of response strings and the one intake of
 * request bodies. The writer's strings are compared byte for byte because SDKs compare
 * against Centrifugo's exact output. The intake must take exactly what Go's
 * encoding/json takes: every case refused by us_json_check is refused by us_json_parse
 * (with the same reason), so the in-place reader and json-c can never disagree. Inputs
 * are run from heap blocks of their exact size, without a terminator, so a read past the
 * length is reported by the sanitizer build. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "fixtures.h"
#include "ustatus/buf.h"
#include "ustatus/json.h"

/* A heap copy of exactly n bytes, no terminator. */
static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(p);
    memcpy(p, s, n);
    return p;
}

#define ck_assert_json_str(input, expect)                                                      \
    do {                                                                                       \
        char *got_ = us_test_json_str(S(input));                                               \
        ck_assert_str_eq(got_, expect);                                                        \
        free(got_);                                                                            \
    } while (0)

/* ---- JSON strings ---- */

START_TEST(test_json_plain)
{
    ck_assert_json_str("", "\"\"");
    ck_assert_json_str("42", "\"42\"");
    ck_assert_json_str("hello world", "\"hello world\"");
    /* '/' needs no escaping and Centrifugo does not escape it. */
    ck_assert_json_str("a/b", "\"a/b\"");
}
END_TEST

START_TEST(test_json_quotes_backslash)
{
    ck_assert_json_str("say \"hi\"", "\"say \\\"hi\\\"\"");
    ck_assert_json_str("C:\\dir", "\"C:\\\\dir\"");
    ck_assert_json_str("\\\"", "\"\\\\\\\"\"");
}
END_TEST

START_TEST(test_json_control_chars)
{
    ck_assert_json_str("a\nb", "\"a\\nb\"");
    ck_assert_json_str("\t", "\"\\t\"");
    ck_assert_json_str("\r", "\"\\r\"");
    ck_assert_json_str("\b\f", "\"\\b\\f\"");
    ck_assert_json_str("\x01", "\"\\u0001\"");
    ck_assert_json_str("\x1f", "\"\\u001f\"");
    ck_assert_json_str("\x1b[0m", "\"\\u001b[0m\"");
    /* NUL is data inside a JSON string. */
    char *got = us_test_json_str("a\0b", 3);
    ck_assert_str_eq(got, "\"a\\u0000b\"");
    free(got);
}
END_TEST

/* RFC 8259 only requires escaping below 0x20: DEL and UTF-8 pass through unchanged. */
START_TEST(test_json_passthrough)
{
    ck_assert_json_str("\x7f", "\"\x7f\"");
    ck_assert_json_str("caf\xc3\xa9", "\"caf\xc3\xa9\"");
    ck_assert_json_str("\xe4\xb8\xad\xe6\x96\x87", "\"\xe4\xb8\xad\xe6\x96\x87\"");
    ck_assert_json_str("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
    /* U+2027 and U+202A are neighbours of the two escaped separators and must not be. */
    ck_assert_json_str("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\"");
}
END_TEST

/* U+2028/U+2029 are legal in JSON but end a line in JavaScript before ES2019. */
START_TEST(test_json_line_separators)
{
    ck_assert_json_str("\xe2\x80\xa8", "\"\\u2028\"");
    ck_assert_json_str("\xe2\x80\xa9", "\"\\u2029\"");
    ck_assert_json_str("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c", "\"a\\u2028b\\u2029c\"");
    /* A sequence cut short at the end of the input is not read past: each of its bytes
     * is invalid UTF-8 and becomes U+FFFD. */
    ck_assert_json_str("x\xe2\x80", "\"x\xef\xbf\xbd\xef\xbf\xbd\"");
}
END_TEST

/* Values written by someone else (a state put in Redis by hand) may not be UTF-8; the
 * answer must stay valid JSON, as Go's encoder keeps it: U+FFFD per invalid byte. */
START_TEST(test_json_invalid_utf8_replaced)
{
    ck_assert_json_str("\xff\xfe", "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    ck_assert_json_str("a\xc0\x80" "b", "\"a\xef\xbf\xbd\xef\xbf\xbd" "b\"");
    ck_assert_json_str("\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    ck_assert_json_str("ok\xc3\xa9\x80", "\"ok\xc3\xa9\xef\xbf\xbd\"");
}
END_TEST

/* The worst case (every byte escaped to six) must fit what was reserved, also when
 * appended to existing content. */
START_TEST(test_json_worst_case_size)
{
    enum { N = 5000 };
    char *in = malloc(N);
    memset(in, 0x01, N);
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "prefix:");
    us_json_put_str(&b, in, N);
    ck_assert_uint_eq(b.len, 7 + 2 + 6 * (size_t)N);
    ck_assert_uint_eq(strlen(b.data), b.len);
    ck_assert_mem_eq(b.data + 7, "\"\\u0001\\u0001", 13);
    ck_assert_mem_eq(b.data + b.len - 7, "\\u0001\"", 7);
    us_buf_free(&b);
    free(in);
}
END_TEST

START_TEST(test_json_appends)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"user\":");
    us_json_put_str(&b, S("4\"2"));
    us_buf_putc(&b, '}');
    ck_assert_str_eq(b.data, "{\"user\":\"4\\\"2\"}");
    us_buf_free(&b);
}
END_TEST

/* ---- strict JSON check: what Go's encoding/json accepts, nothing more ---- */

/* us_json_check of s run from a heap block of exactly strlen(s) bytes: a check that read
 * past its length would be reported by the sanitizer build. */
static int json_ok(const char *s)
{
    char why[128] = "";
    size_t n = strlen(s);
    char *p = exact(s, n);
    int rc = us_json_check(p, n, 32, 0, why, sizeof why);
    free(p);
    return rc == 0;
}

START_TEST(test_json_check_valid)
{
    static const char *const valid[] = {
        "{}", "[]", " {\"a\":1} ", "\n\t{\"users\":[\"1\",\"2\"]}\r\n", "null", "true",
        "false", "0", "-0", "12.5e-3", "1E+2", "\"s\"", "\"\\u00e9\\n\\\"\\/\"",
        "{\"a\":{\"b\":[1,[2,{}]]}}", "[null,true,false,\"x\",-1.0]", "\"\xc3\xa9\"",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        ck_assert_msg(json_ok(valid[i]), "rejected valid JSON %s", valid[i]);
}
END_TEST

START_TEST(test_json_check_invalid)
{
    static const char *const invalid[] = {
        "", "   ", "{", "[", "{\"a\"", "{\"a\":", "{\"a\":1", "{\"a\":1,}", "[1,]", "[1 2]",
        "{'a':1}", "{a:1}", "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", "1e",
        "\"tab\there\"", "\"nl\nhere\"", "\"\\x41\"", "\"\\u12\"", "\"open", "tru", "nul",
        "{} {}", "{}x", "[1]]", "{\"a\" 1}", "{1:2}", "/* c */ {}", "{\"a\":1}//",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        ck_assert_msg(!json_ok(invalid[i]), "accepted invalid JSON %s", invalid[i]);
}
END_TEST

START_TEST(test_json_check_depth_and_reasons)
{
    char deep[80];
    char why[128];
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    ck_assert_int_eq(us_json_check(deep, 66, 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "invalid JSON at byte 32: JSON nested too deeply");
    ck_assert_int_eq(us_json_check(deep + 1, 64, 32, 0, why, sizeof why), 0);
    ck_assert_int_eq(us_json_check("", 0, 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "empty body");
    ck_assert_int_eq(us_json_check("{\"a\":[1", 7, 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "truncated JSON");
    ck_assert_int_eq(us_json_check("{\"a\":1}x", 8, 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "invalid JSON at byte 7: unexpected data after the JSON value");
    /* every value counts, containers and keys' values alike; keys do not */
    ck_assert_int_eq(us_json_check("{\"a\":[1,2]}", 11, 32, 4, why, sizeof why), 0);
    ck_assert_int_eq(us_json_check("{\"a\":[1,2,3]}", 13, 32, 4, why, sizeof why), -1);
    ck_assert_str_eq(why, "more than 4 JSON values");
    /* the length is respected: what follows is not looked at */
    ck_assert_int_eq(us_json_check("{}garbage", 2, 32, 0, why, sizeof why), 0);
}
END_TEST

/* ---- one intake: us_json_check and us_json_parse agree ---- */

/* A body given with its exact length (embedded NULs allowed). */
typedef struct {
    const char *s;
    size_t n;
} body;

#define B(lit) {(lit), sizeof(lit) - 1}

/* 0 or -1 from us_json_check (depth 32, max_values) on a heap copy; reason into why. */
static int check_body(body b, size_t max_values, char *why, size_t why_len)
{
    char *p = exact(b.s, b.n);
    int rc = us_json_check(p, b.n, US_JSON_MAX_DEPTH, max_values, why, why_len);
    free(p);
    return rc;
}

/* us_json_parse on a heap copy. *out is set to a non-NULL marker first, so a failure
 * that leaves it alone is seen. */
static int parse_body(body b, size_t max_values, json_object **out, char *why, size_t why_len)
{
    static json_object *const marker = (json_object *)&marker;
    char *p = exact(b.s, b.n);
    *out = marker;
    int rc = us_json_parse(p, b.n, max_values, out, why, why_len);
    free(p);
    return rc;
}

/* Refused by both entry points, with the same reason; parse leaves *out NULL. */
static void expect_refused(body b, size_t max_values, const char *reason)
{
    char why_check[160] = "", why_parse[160] = "";
    json_object *obj;
    ck_assert_msg(check_body(b, max_values, why_check, sizeof why_check) == -1,
                  "us_json_check accepted \"%.*s\"", (int)b.n, b.s);
    int rc = parse_body(b, max_values, &obj, why_parse, sizeof why_parse);
    ck_assert_msg(rc == -1, "us_json_parse accepted \"%.*s\"", (int)b.n, b.s);
    ck_assert_ptr_null(obj);
    ck_assert_msg(why_check[0] != '\0', "no reason for \"%.*s\"", (int)b.n, b.s);
    ck_assert_str_eq(why_parse, why_check);
    if (reason)
        ck_assert_msg(strstr(why_check, reason) != NULL, "\"%.*s\": reason \"%s\", want \"%s\"",
                      (int)b.n, b.s, why_check, reason);
    /* parse_object is the same intake */
    char why_obj[160] = "";
    char *p = exact(b.s, b.n);
    json_object *o = us_json_parse_object(p, b.n, max_values, "body", why_obj, sizeof why_obj);
    free(p);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(why_obj, why_check);
}

/* Accepted by both; returns what json-c built (the caller puts it). */
static json_object *expect_accepted(body b, size_t max_values)
{
    char why[160] = "";
    json_object *obj;
    ck_assert_msg(check_body(b, max_values, why, sizeof why) == 0,
                  "us_json_check refused \"%.*s\": %s", (int)b.n, b.s, why);
    ck_assert_msg(parse_body(b, max_values, &obj, why, sizeof why) == 0,
                  "us_json_parse refused \"%.*s\": %s", (int)b.n, b.s, why);
    return obj;
}

static const struct {
    body b;
    const char *reason; /* a part of the reason, or NULL when any reason will do */
} refused[] = {
    /* not JSON numbers: json-c takes some of these, Go does not */
    {B("NaN"), NULL},
    {B("nan"), NULL},
    {B("Infinity"), NULL},
    {B("-Infinity"), NULL},
    {B("inf"), NULL},
    {B("[NaN]"), NULL},
    {B("{\"a\":Infinity}"), NULL},
    {B("{\"a\":-Infinity}"), NULL},
    {B("+1"), "bad number"},
    {B("01"), "unexpected data after the JSON value"},
    {B("0x10"), "unexpected data after the JSON value"},
    {B(".5"), "bad number"},
    {B("1."), "bad number"},
    {B("1e"), "bad number"},
    {B("-"), "bad number"},
    /* raw control characters inside a string */
    {B("\"a\x01" "b\""), "control character in a string"},
    {B("\"a\nb\""), "control character in a string"},
    {B("\"a\tb\""), "control character in a string"},
    {B("\"a\rb\""), "control character in a string"},
    {B("\"\x1f\""), "control character in a string"},
    {B("\"a\0b\""), "control character in a string"},
    {B("{\"us\x01" "er\":1}"), "control character in a string"},
    /* single quotes and other JavaScript */
    {B("'a'"), NULL},
    {B("{'a':1}"), NULL},
    {B("{\"a\":'b'}"), NULL},
    {B("{a:1}"), "object key is not a string"},
    {B("[1,]"), NULL},
    {B("{\"a\":1,}"), NULL},
    {B("/* c */ {}"), NULL},
    {B("{}//"), "unexpected data after the JSON value"},
    /* trailing garbage after the value */
    {B("{} x"), "invalid JSON at byte 3: unexpected data after the JSON value"},
    {B("{}x"), "invalid JSON at byte 2: unexpected data after the JSON value"},
    {B("{} {}"), "unexpected data after the JSON value"},
    {B("[1]]"), "unexpected data after the JSON value"},
    {B("1 2"), "unexpected data after the JSON value"},
    {B("null null"), "unexpected data after the JSON value"},
    {B("{}\0"), "unexpected data after the JSON value"},
    {B("\"a\"\0\"b\""), "unexpected data after the JSON value"},
    /* truncated bodies */
    {B(""), "empty body"},
    {B(" \t\r\n"), "empty body"},
    {B("{"), "truncated JSON"},
    {B("["), "truncated JSON"},
    {B("{\"a\""), "truncated JSON"},
    {B("{\"a\":"), "truncated JSON"},
    {B("{\"a\":1"), "truncated JSON"},
    {B("{\"users\":[\"1\",\"2\""), "truncated JSON"},
    {B("\"open"), "truncated JSON"},
    {B("\"\\"), "truncated JSON"},
    {B("\"\\u12"), "truncated JSON"},
    {B("tru"), "invalid literal"},
    {B("nul"), "invalid literal"},
    {B("fals"), "invalid literal"},
    /* escapes */
    {B("\"\\x41\""), "bad escape in a string"},
    {B("\"\\u12g4\""), "bad \\u escape"},
    {B("\"\\'\""), "bad escape in a string"},
    /* whitespace is space, tab, CR and LF only */
    {B("\f{}"), NULL},
    {B("\v{}"), NULL},
    {B("{}\f"), "unexpected data after the JSON value"},
    {B("\xc2\xa0{}"), NULL},
    {B("\xef\xbb\xbf{}"), NULL}, /* a byte order mark */
};

START_TEST(test_intake_refuses)
{
    expect_refused(refused[_i].b, 0, refused[_i].reason);
}
END_TEST

static const struct {
    body b;
    json_type type;
} accepted[] = {
    {B("{}"), json_type_object},
    {B("[]"), json_type_array},
    {B("null"), json_type_null},
    {B("true"), json_type_boolean},
    {B("false"), json_type_boolean},
    {B("0"), json_type_int},
    {B("-0"), json_type_int},
    {B("12"), json_type_int},
    {B("-12.5e-3"), json_type_double},
    {B("1E+2"), json_type_double},
    {B("0.5"), json_type_double},
    {B("\"s\""), json_type_string},
    {B("\"\""), json_type_string},
    {B("\"\\u00e9\\u00E9\\n\\\"\\/\\\\\\b\\f\\r\\t\""), json_type_string},
    {B("\"\xc3\xa9\x7f\""), json_type_string},
    {B("{\"a\":{\"b\":[1,[2,{}]]}}"), json_type_object},
    {B("[null,true,false,\"x\",-1.0,{}]"), json_type_array},
    {B("{\"users\":[\"1\",\"2\"],\"state\":\"online\"}"), json_type_object},
    /* whitespace around and inside the value */
    {B(" {} "), json_type_object},
    {B("\n\t{\"users\":[\"1\",\"2\"]}\r\n"), json_type_object},
    {B(" \t\r\n{ \"a\" : [ 1 , 2 ] }\n "), json_type_object},
    {B("  42  "), json_type_int},
    {B("\r\nnull\r\n"), json_type_null},
};

START_TEST(test_intake_accepts)
{
    json_object *obj = expect_accepted(accepted[_i].b, 0);
    if (accepted[_i].type == json_type_null)
        ck_assert_ptr_null(obj); /* json-c's null is the NULL object */
    else
        ck_assert_msg(json_object_is_type(obj, accepted[_i].type), "\"%.*s\": type %s",
                      (int)accepted[_i].b.n, accepted[_i].b.s,
                      json_type_to_name(json_object_get_type(obj)));
    json_object_put(obj);
}
END_TEST

/* What json-c builds from checked text is the value that was sent. */
START_TEST(test_parse_values)
{
    json_object *o = expect_accepted((body)B("12"), 0); /* a number at the very end */
    ck_assert_int_eq(json_object_get_int64(o), 12);
    json_object_put(o);
    o = expect_accepted((body)B("-9223372036854775808"), 0);
    ck_assert(json_object_get_int64(o) == INT64_MIN);
    json_object_put(o);
    o = expect_accepted((body)B("\"caf\\u00e9\""), 0);
    ck_assert_str_eq(json_object_get_string(o), "caf\xc3\xa9");
    json_object_put(o);
    /* an escaped NUL is data, and the length says so */
    o = expect_accepted((body)B("\"a\\u0000b\""), 0);
    ck_assert_int_eq(json_object_get_string_len(o), 3);
    ck_assert_mem_eq(json_object_get_string(o), "a\0b", 3);
    json_object_put(o);
    o = expect_accepted((body)B(" {\"users\":[\"1\",\"2\"],\"n\":true} "), 0);
    json_object *users;
    ck_assert(json_object_object_get_ex(o, "users", &users));
    ck_assert_uint_eq(json_object_array_length(users), 2);
    ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(users, 1)), "2");
    json_object_put(o);
}
END_TEST

/* n brackets deep, or n objects deep ({"a":{"a":...1...}}). */
static char *nested(unsigned n, int objects, size_t *len)
{
    us_buf b = US_BUF_INIT;
    for (unsigned i = 0; i < n; i++) {
        if (objects)
            us_buf_puts(&b, "{\"a\":");
        else
            us_buf_putc(&b, '[');
    }
    us_buf_putc(&b, '1');
    for (unsigned i = 0; i < n; i++)
        us_buf_putc(&b, objects ? '}' : ']');
    return us_buf_steal(&b, len);
}

START_TEST(test_intake_depth)
{
    for (int objects = 0; objects <= 1; objects++) {
        size_t len;
        char *s = nested(US_JSON_MAX_DEPTH, objects, &len);
        json_object *o = expect_accepted((body){s, len}, 0);
        ck_assert_ptr_nonnull(o);
        json_object_put(o);
        free(s);
        s = nested(US_JSON_MAX_DEPTH + 1, objects, &len);
        expect_refused((body){s, len}, 0, "JSON nested too deeply");
        free(s);
        s = nested(200, objects, &len);
        expect_refused((body){s, len}, 0, "JSON nested too deeply");
        free(s);
    }
    ck_assert_int_eq(US_JSON_MAX_DEPTH, 32);
}
END_TEST

START_TEST(test_intake_max_values)
{
    /* the array and its three elements are four values */
    json_object *o = expect_accepted((body)B("[1,2,3]"), 4);
    ck_assert_uint_eq(json_object_array_length(o), 3);
    json_object_put(o);
    expect_refused((body)B("[1,2,3]"), 3, "more than 3 JSON values");
    /* keys are not values, what they hold is */
    o = expect_accepted((body)B("{\"a\":1,\"b\":2}"), 3);
    json_object_put(o);
    expect_refused((body)B("{\"a\":1,\"b\":2}"), 2, "more than 2 JSON values");
    expect_refused((body)B("{\"users\":[\"1\",\"2\",\"3\",\"4\"]}"), 5, "more than 5 JSON values");
    /* 0 is no limit */
    us_buf b = US_BUF_INIT;
    us_buf_putc(&b, '[');
    for (int i = 0; i < 10000; i++)
        us_buf_puts(&b, i ? ",0" : "0");
    us_buf_putc(&b, ']');
    o = expect_accepted((body){b.data, b.len}, 0);
    ck_assert_uint_eq(json_object_array_length(o), 10000);
    json_object_put(o);
    expect_refused((body){b.data, b.len}, 10000, "more than 10000 JSON values");
    us_buf_free(&b);
}
END_TEST

START_TEST(test_parse_object)
{
    char why[128];
    json_object *o = us_json_parse_object(S(" {\"a\":1} "), 0, "body", why, sizeof why);
    ck_assert_ptr_nonnull(o);
    ck_assert(json_object_is_type(o, json_type_object));
    json_object_put(o);
    static const char *const not_objects[] = {"[]", "null", "1", "\"{}\"", "true"};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
        why[0] = '\0';
        o = us_json_parse_object(not_objects[i], strlen(not_objects[i]), 0, "params", why,
                                 sizeof why);
        ck_assert_ptr_null(o);
        ck_assert_str_eq(why, "params must be a JSON object");
    }
    /* an intake refusal keeps the intake's reason */
    o = us_json_parse_object(S("{\"a\":1}x"), 0, "body", why, sizeof why);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(why, "invalid JSON at byte 7: unexpected data after the JSON value");
}
END_TEST

/* why may be NULL, and a short why is cut, still terminated. */
START_TEST(test_reason_buffers)
{
    json_object *o;
    ck_assert_int_eq(us_json_check(S("{"), 32, 0, NULL, 0), -1);
    ck_assert_int_eq(us_json_parse(S("{"), 0, &o, NULL, 0), -1);
    ck_assert_ptr_null(o);
    ck_assert_ptr_null(us_json_parse_object(S("[]"), 0, "body", NULL, 0));
    char why[8];
    memset(why, 'x', sizeof why);
    ck_assert_int_eq(us_json_check(S("{} x"), 32, 0, why, sizeof why), -1);
    ck_assert_str_eq(why, "invalid");
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("write");
    tcase_add_test(tc, test_json_plain);
    tcase_add_test(tc, test_json_quotes_backslash);
    tcase_add_test(tc, test_json_control_chars);
    tcase_add_test(tc, test_json_passthrough);
    tcase_add_test(tc, test_json_line_separators);
    tcase_add_test(tc, test_json_invalid_utf8_replaced);
    tcase_add_test(tc, test_json_worst_case_size);
    tcase_add_test(tc, test_json_appends);
    suite_add_tcase(s, tc);

    tc = tcase_create("check");
    tcase_add_test(tc, test_json_check_valid);
    tcase_add_test(tc, test_json_check_invalid);
    tcase_add_test(tc, test_json_check_depth_and_reasons);
    suite_add_tcase(s, tc);

    tc = tcase_create("intake");
    tcase_add_loop_test(tc, test_intake_refuses, 0, N_ELEMS(refused));
    tcase_add_loop_test(tc, test_intake_accepts, 0, N_ELEMS(accepted));
    tcase_add_test(tc, test_parse_values);
    tcase_add_test(tc, test_intake_depth);
    tcase_add_test(tc, test_intake_max_values);
    tcase_add_test(tc, test_parse_object);
    tcase_add_test(tc, test_reason_buffers);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(json_suite)
