/* Unit tests for the one error table and the Centrifugo-compatible envelope (SPEC §1.2,
 * §6). The SDKs read these bytes, so every comparison is exact. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/envelope.h"

/* ---- the table ---- */

START_TEST(test_messages)
{
    ck_assert_str_eq(us_error_message(US_ERR_INTERNAL), "internal server error");
    ck_assert_str_eq(us_error_message(US_ERR_UNAUTHORIZED), "unauthorized");
    ck_assert_str_eq(us_error_message(US_ERR_NOT_FOUND), "not found");
    ck_assert_str_eq(us_error_message(US_ERR_BAD_REQUEST), "bad request");
    ck_assert_str_eq(us_error_message(US_ERR_NOT_AVAILABLE), "not available");
    ck_assert_str_eq(us_error_message(US_ERR_TOKEN_EXPIRED), "token expired");
    /* The codes are Centrifugo's numbers. */
    ck_assert_int_eq(US_ERR_INTERNAL, 100);
    ck_assert_int_eq(US_ERR_UNAUTHORIZED, 101);
    ck_assert_int_eq(US_ERR_NOT_FOUND, 104);
    ck_assert_int_eq(US_ERR_BAD_REQUEST, 107);
    ck_assert_int_eq(US_ERR_NOT_AVAILABLE, 108);
    ck_assert_int_eq(US_ERR_TOKEN_EXPIRED, 109);
}
END_TEST

START_TEST(test_unknown_code_is_internal)
{
    const int unknown[] = {0, -1, 1, 99, 102, 103, 105, 106, 110, 200, 404, 500};
    for (int i = 0; i < N_ELEMS(unknown); i++)
        ck_assert_str_eq(us_error_message(unknown[i]), "internal server error");
}
END_TEST

/* ---- error objects ---- */

static void put_error_is(int code, const char *details, const char *want)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "prefix:"); /* appends, does not replace */
    us_envelope_put_error(&b, code, details);
    ck_assert_str_eq(b.data, want);
    ck_assert_uint_eq(b.len, strlen(want));
    us_buf_free(&b);
}

START_TEST(test_put_error)
{
    put_error_is(107, NULL, "prefix:{\"code\":107,\"message\":\"bad request\"}");
    put_error_is(107, "", "prefix:{\"code\":107,\"message\":\"bad request\"}");
    put_error_is(
        107, "users is required",
        "prefix:{\"code\":107,\"message\":\"bad request\",\"details\":\"users is required\"}");
    put_error_is(42, NULL, "prefix:{\"code\":42,\"message\":\"internal server error\"}");
}
END_TEST

/* The error from us_envelope_error, with headers already on the response. */
static void envelope_is(int http_status, int code, const char *details, const char *want)
{
    us_http_response r;
    us_http_response_init(&r);
    us_buf_puts(&r.headers, "Vary: Origin\r\n");
    us_buf_puts(&r.body, "old body that must go");
    r.status = 204;
    us_envelope_error(&r, http_status, code, details);
    ck_assert_int_eq(r.status, http_status);
    ck_assert_ptr_nonnull(r.content_type);
    ck_assert_str_eq(r.content_type, "application/json");
    ck_assert_str_eq(r.body.data, want);
    ck_assert_uint_eq(r.body.len, strlen(want));
    ck_assert_str_eq(r.headers.data, "Vary: Origin\r\n");
    us_http_response_free(&r);
}

START_TEST(test_envelope_error_bytes)
{
    envelope_is(200, 100, NULL, "{\"error\":{\"code\":100,\"message\":\"internal server error\"}}");
    envelope_is(401, 101, NULL, "{\"error\":{\"code\":101,\"message\":\"unauthorized\"}}");
    envelope_is(404, 104, "", "{\"error\":{\"code\":104,\"message\":\"not found\"}}");
    envelope_is(200, 108, "user status is disabled",
                "{\"error\":{\"code\":108,\"message\":\"not available\",\"details\":"
                "\"user status is disabled\"}}");
    envelope_is(401, 109, NULL, "{\"error\":{\"code\":109,\"message\":\"token expired\"}}");
}
END_TEST

/* Details may quote what the client sent: escaped as JSON, never raw. */
START_TEST(test_details_escaped)
{
    envelope_is(400, 107, "a \"quoted\" \\ back\nslash\t\x01",
                "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":"
                "\"a \\\"quoted\\\" \\\\ back\\nslash\\t\\u0001\"}}");
    /* Invalid UTF-8 becomes U+FFFD (as us_json_put_str writes it), never raw bytes. */
    char *fffd = us_test_json_str(S("\xff"));
    us_buf want = US_BUF_INIT;
    us_buf_puts(&want, "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":");
    us_buf_puts(&want, fffd);
    us_buf_puts(&want, "}}");
    envelope_is(400, 107, "\xff", want.data);
    ck_assert_ptr_null(strchr(want.data, '\xff'));
    us_buf_free(&want);
    free(fffd);
}
END_TEST

/* ---- transport mode ---- */

START_TEST(test_transport_status)
{
    ck_assert_int_eq(us_envelope_transport_status(100), 500);
    ck_assert_int_eq(us_envelope_transport_status(104), 404);
    ck_assert_int_eq(us_envelope_transport_status(107), 400);
    ck_assert_int_eq(us_envelope_transport_status(108), 400);
    ck_assert_int_eq(us_envelope_transport_status(12345), 500);
}
END_TEST

static void transport_is(int code, int status, const char *want)
{
    us_http_response r;
    us_http_response_init(&r);
    us_buf_puts(&r.headers, "X-Keep: 1\r\n");
    us_buf_puts(&r.body, "{\"result\":{}}");
    us_envelope_transport_error(&r, code);
    ck_assert_int_eq(r.status, status);
    ck_assert_str_eq(r.content_type, "application/json");
    ck_assert_str_eq(r.body.data, want);
    ck_assert_uint_eq(r.body.len, strlen(want));
    ck_assert_str_eq(r.headers.data, "X-Keep: 1\r\n");
    us_http_response_free(&r);
}

START_TEST(test_transport_bare_body)
{
    transport_is(100, 500, "{\"code\":100,\"message\":\"internal server error\"}");
    transport_is(104, 404, "{\"code\":104,\"message\":\"not found\"}");
    transport_is(107, 400, "{\"code\":107,\"message\":\"bad request\"}");
    transport_is(108, 400, "{\"code\":108,\"message\":\"not available\"}");
}
END_TEST

/* ---- success ---- */

START_TEST(test_envelope_json)
{
    us_http_response r;
    us_http_response_init(&r);
    r.status = 500;
    us_buf_puts(&r.headers, "Vary: Origin\r\n");
    us_buf_puts(&r.body, "{\"error\":{\"code\":100,\"message\":\"internal server error\"}}");
    us_envelope_json(&r, "{\"result\":{}}");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.content_type, "application/json");
    ck_assert_str_eq(r.body.data, "{\"result\":{}}");
    ck_assert_uint_eq(r.body.len, strlen("{\"result\":{}}"));
    ck_assert_str_eq(r.headers.data, "Vary: Origin\r\n");
    us_http_response_free(&r);
}
END_TEST

static Suite *envelope_suite(void)
{
    Suite *s = suite_create("envelope");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_unknown_code_is_internal);
    suite_add_tcase(s, tc);

    tc = tcase_create("envelope");
    tcase_add_test(tc, test_put_error);
    tcase_add_test(tc, test_envelope_error_bytes);
    tcase_add_test(tc, test_details_escaped);
    tcase_add_test(tc, test_transport_status);
    tcase_add_test(tc, test_transport_bare_body);
    tcase_add_test(tc, test_envelope_json);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(envelope_suite)
