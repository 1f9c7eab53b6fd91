/* Unit tests for the HTTP request/response structs (http.h): what every endpoint writes
 * into, and what the worker reuses from one request to the next. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/http.h"

/* ---- response life cycle ---- */

START_TEST(test_init_is_200_and_empty)
{
    us_http_response r;
    memset(&r, 0xA5, sizeof r); /* init must not rely on zeroed memory */
    us_http_response_init(&r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(r.content_type);
    ck_assert_uint_eq(r.headers.len, 0);
    ck_assert_uint_eq(r.body.len, 0);
    ck_assert_ptr_null(r.headers.data);
    ck_assert_ptr_null(r.body.data);
    us_http_response_free(&r);
}
END_TEST

/* Reset empties everything but keeps the memory, so a worker answering thousands of
 * requests does not allocate per request. */
START_TEST(test_reset_keeps_buffers_and_empties_them)
{
    us_http_response r;
    us_http_response_init(&r);
    r.status = 503;
    r.content_type = "application/json";
    us_buf_puts(&r.headers, "X-One: 1\r\n");
    us_buf_puts(&r.body, "{\"status\":\"unavailable\"}");
    char *hdata = r.headers.data, *bdata = r.body.data;
    size_t hcap = r.headers.cap, bcap = r.body.cap;

    us_http_response_reset(&r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(r.content_type);
    ck_assert_uint_eq(r.headers.len, 0);
    ck_assert_uint_eq(r.body.len, 0);
    ck_assert_ptr_eq(r.headers.data, hdata);
    ck_assert_ptr_eq(r.body.data, bdata);
    ck_assert_uint_eq(r.headers.cap, hcap);
    ck_assert_uint_eq(r.body.cap, bcap);
    ck_assert_str_eq(r.headers.data, "");
    ck_assert_str_eq(r.body.data, "");

    /* What is written after a reset is all there is. */
    us_buf_puts(&r.body, "x");
    ck_assert_str_eq(r.body.data, "x");
    us_http_response_free(&r);
}
END_TEST

START_TEST(test_reset_of_fresh_response)
{
    us_http_response r;
    us_http_response_init(&r);
    r.status = 404;
    us_http_response_reset(&r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body.len, 0);
    us_http_response_free(&r);
}
END_TEST

/* Free releases both buffers (ASan's leak check sees a miss) and leaves them reusable. */
START_TEST(test_free_releases)
{
    us_http_response r;
    us_http_response_init(&r);
    us_buf_puts(&r.headers, "A: b\r\n");
    us_buf_puts(&r.body, "body");
    us_http_response_free(&r);
    ck_assert_ptr_null(r.headers.data);
    ck_assert_ptr_null(r.body.data);
    ck_assert_uint_eq(r.headers.len, 0);
    ck_assert_uint_eq(r.body.len, 0);
    /* A second free (as a teardown may do) is harmless. */
    us_http_response_free(&r);
}
END_TEST

/* ---- canned answers ---- */

START_TEST(test_respond_empty_keeps_headers)
{
    us_http_response r;
    us_http_response_init(&r);
    r.content_type = "application/json";
    us_buf_puts(&r.headers, "Vary: Origin\r\n");
    us_buf_puts(&r.body, "{\"result\":{}}");
    us_http_respond_empty(&r, 401);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_null(r.content_type);
    ck_assert_uint_eq(r.body.len, 0);
    ck_assert_str_eq(r.body.data, "");
    ck_assert_str_eq(r.headers.data, "Vary: Origin\r\n");
    ck_assert_uint_eq(r.headers.len, strlen("Vary: Origin\r\n"));
    us_http_response_free(&r);
}
END_TEST

START_TEST(test_method_not_allowed_adds_exactly_allow)
{
    us_http_response r;
    us_http_response_init(&r);
    us_buf_puts(&r.body, "stale");
    r.content_type = "text/plain";
    us_http_method_not_allowed(&r, "POST");
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_null(r.content_type);
    ck_assert_uint_eq(r.body.len, 0);
    ck_assert_str_eq(r.headers.data, "Allow: POST\r\n");
    ck_assert_uint_eq(r.headers.len, strlen("Allow: POST\r\n"));
    us_http_response_free(&r);

    /* Appended after headers already there (CORS ones, say), not replacing them. */
    us_http_response_init(&r);
    us_buf_puts(&r.headers, "Vary: Origin\r\n");
    us_http_method_not_allowed(&r, "GET");
    ck_assert_str_eq(r.headers.data, "Vary: Origin\r\nAllow: GET\r\n");
    us_http_response_free(&r);
}
END_TEST

START_TEST(test_payload_too_large)
{
    us_http_response r;
    us_http_response_init(&r);
    r.content_type = "application/json";
    us_buf_puts(&r.body, "{}");
    us_http_payload_too_large(&r);
    ck_assert_int_eq(r.status, 413);
    ck_assert_ptr_null(r.content_type);
    ck_assert_uint_eq(r.body.len, 0);
    ck_assert_uint_eq(r.headers.len, 0);
    us_http_response_free(&r);
}
END_TEST

/* ---- paths and methods ---- */

static const char *below(const char *path, const char *prefix)
{
    return us_http_path_below(path, prefix, strlen(prefix));
}

START_TEST(test_path_below)
{
    const char *p = "/api";
    ck_assert_ptr_nonnull(below(p, "/api"));
    ck_assert_str_eq(below(p, "/api"), "");
    ck_assert_ptr_eq(below(p, "/api"), p + 4);

    const char *q = "/api/x";
    ck_assert_str_eq(below(q, "/api"), "/x");
    ck_assert_ptr_eq(below(q, "/api"), q + 4);
    ck_assert_str_eq(below("/api/", "/api"), "/");
    ck_assert_str_eq(below("/api/a/b", "/api"), "/a/b");

    ck_assert_ptr_null(below("/apix", "/api"));
    ck_assert_ptr_null(below("/ap", "/api"));
    ck_assert_ptr_null(below("", "/api"));
    ck_assert_ptr_null(below("/API/x", "/api"));
    ck_assert_ptr_null(below(NULL, "/api"));

    /* A nested prefix. */
    ck_assert_str_eq(below("/centrifugo/rpc", "/centrifugo"), "/rpc");
    ck_assert_ptr_null(below("/centrifugo2/rpc", "/centrifugo"));
    /* Only prefix_len bytes of prefix count. */
    ck_assert_str_eq(us_http_path_below("/api/x", "/apiXYZ", 4), "/x");
}
END_TEST

START_TEST(test_method_is)
{
    us_http_request req = {.method = "POST"};
    ck_assert_int_eq(us_http_method_is(&req, "POST"), 1);
    ck_assert_int_eq(us_http_method_is(&req, "GET"), 0);
    ck_assert_int_eq(us_http_method_is(&req, "post"), 0);
    ck_assert_int_eq(us_http_method_is(&req, "POS"), 0);
    ck_assert_int_eq(us_http_method_is(&req, "POSTX"), 0);
    req.method = "";
    ck_assert_int_eq(us_http_method_is(&req, "GET"), 0);
    ck_assert_int_eq(us_http_method_is(&req, ""), 1);
    req.method = NULL;
    ck_assert_int_eq(us_http_method_is(&req, "GET"), 0);
    ck_assert_int_eq(us_http_method_is(&req, ""), 0); /* NULL never is */
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("response");
    tcase_add_test(tc, test_init_is_200_and_empty);
    tcase_add_test(tc, test_reset_keeps_buffers_and_empties_them);
    tcase_add_test(tc, test_reset_of_fresh_response);
    tcase_add_test(tc, test_free_releases);
    tcase_add_test(tc, test_respond_empty_keeps_headers);
    tcase_add_test(tc, test_method_not_allowed_adds_exactly_allow);
    tcase_add_test(tc, test_payload_too_large);
    suite_add_tcase(s, tc);

    tc = tcase_create("request");
    tcase_add_test(tc, test_path_below);
    tcase_add_test(tc, test_method_is);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(http_suite)
