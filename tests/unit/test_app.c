/* Unit tests for the application (app.h): building it from a configuration, and routing
 * each request to one endpoint family (SPEC §1.1, §6, §7), without a Redis server.
 *
 * The store points at 127.0.0.1:1, where nothing listens: /health then answers 503
 * naming that node. Each family is recognised by an answer only it gives (the client's
 * WWW-Authenticate challenge, the proxy's own error objects, the API's 404 envelope). */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/app.h"
#include "ustatus/config.h"
#include "ustatus/http.h"

#define REDIS_DOWN       "redis { address = {\"127.0.0.1:1\"} connect_timeout = \"200ms\" }"
#define ERR_NOT_FOUND    "{\"error\":{\"code\":104,\"message\":\"not found\"}}"
#define ERR_UNAUTHORIZED "{\"error\":{\"code\":101,\"message\":\"unauthorized\"}}"

static us_config *cfg;
static us_app *app;
static us_http_response resp;

static void setup(void)
{
    us_http_response_init(&resp);
}

static void teardown(void)
{
    us_http_response_free(&resp);
    us_app_free(app);
    us_config_free(cfg);
    app = NULL;
    cfg = NULL;
}

/* A configuration with the unreachable Redis, the API key "secret", an HMAC token key,
 * and `extra` sections. */
static us_config *load_config(const char *extra)
{
    return us_test_config("http_api { key = \"secret\" }\n"
                          "user_status { " REDIS_DOWN " }\n"
                          "log { level = \"error\" }\n%s\n",
                          extra);
}

static void open_app(const char *extra)
{
    char err[512] = "";
    cfg = load_config(extra);
    app = us_app_create(cfg, err, sizeof err);
    ck_assert_msg(app != NULL, "app: %s", err);
}

static void handle(const char *method, const char *path, const char *x_api_key,
                   const char *authorization, const char *body)
{
    us_http_request req = {
        .method = method,
        .path = path,
        .x_api_key = x_api_key,
        .authorization = authorization,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    us_app_handle(app, &req, &resp);
}

static void expect(int status, const char *content_type, const char *body, const char *headers)
{
    ck_assert_int_eq(resp.status, status);
    if (content_type) {
        ck_assert_ptr_nonnull(resp.content_type);
        ck_assert_str_eq(resp.content_type, content_type);
    } else {
        ck_assert_ptr_null(resp.content_type);
    }
    ck_assert_uint_eq(resp.body.len, strlen(body));
    if (resp.body.len)
        ck_assert_str_eq(resp.body.data, body);
    ck_assert_uint_eq(resp.headers.len, strlen(headers));
    if (resp.headers.len)
        ck_assert_str_eq(resp.headers.data, headers);
}

/* ---- building ---- */

START_TEST(test_create_and_max_body)
{
    open_app("http_api { max_body_bytes = 4321 }");
    ck_assert_uint_eq(us_app_max_body_bytes(app), 4321);
    ck_assert_uint_eq(us_app_max_body_bytes(app), cfg->http_api.max_body_bytes);
}
END_TEST

START_TEST(test_default_max_body)
{
    open_app("");
    ck_assert_uint_eq(us_app_max_body_bytes(app), 1048576);
}
END_TEST

/* Overlapping prefixes would let one family answer for another: refused, naming the
 * option. */
static void create_fails(const char *extra, const char *option)
{
    char err[512] = "";
    cfg = load_config(extra);
    us_app *a = us_app_create(cfg, err, sizeof err);
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(err, option) != NULL, "err does not name %s: %s", option, err);
    us_config_free(cfg);
    cfg = NULL;
}

START_TEST(test_overlapping_prefixes)
{
    create_fails("client { handler_prefix = \"/api/client\" }", "client.handler_prefix");
    create_fails("client { handler_prefix = \"/api\" }", "client.handler_prefix");
    create_fails("http_api { handler_prefix = \"/client/api\" }", "client.handler_prefix");
    create_fails("centrifugo_proxy { key = \"pk\" handler_prefix = \"/api/proxy\" }",
                 "centrifugo_proxy.handler_prefix");
    create_fails("centrifugo_proxy { key = \"pk\" handler_prefix = \"/client\" }",
                 "centrifugo_proxy.handler_prefix");
    /* A common start is not an overlap. */
    open_app("client { handler_prefix = \"/apiclient\" }");
}
END_TEST

/* The proxy prefix only matters while the proxy is on. */
START_TEST(test_proxy_prefix_overlap_ignored_while_off)
{
    open_app("centrifugo_proxy { handler_prefix = \"/api/proxy\" }");
}
END_TEST

/* ---- operations ---- */

START_TEST(test_health)
{
    open_app("");
    handle("GET", "/health", NULL, NULL, NULL);
    ck_assert_int_eq(resp.status, 503);
    ck_assert_str_eq(resp.content_type, "application/json");
    ck_assert_ptr_nonnull(strstr(resp.body.data, "127.0.0.1:1"));
    json_object *o = json_tokener_parse(resp.body.data);
    ck_assert_msg(o != NULL, "not JSON: %s", resp.body.data);
    ck_assert(json_object_is_type(o, json_type_object));
    json_object_put(o);
    ck_assert_uint_eq(resp.headers.len, 0);

    /* No key needed, and not the API's prefix. */
    handle("POST", "/health", NULL, NULL, NULL);
    expect(405, NULL, "", "Allow: GET, HEAD\r\n");
    /* Exact paths only. */
    handle("GET", "/health/", "secret", NULL, NULL);
    expect(405, NULL, "", "Allow: POST\r\n"); /* the API's answer */
}
END_TEST

/* app.h and SPEC §7: GET|HEAD /health. A HEAD is answered like the GET (the web server
 * drops the body), not refused. */
START_TEST(test_health_head)
{
    open_app("");
    handle("HEAD", "/health", NULL, NULL, NULL);
    ck_assert_msg(resp.status == 503, "HEAD /health answered %d (headers: %s)", resp.status,
                  resp.headers.data ? resp.headers.data : "");
    ck_assert_uint_eq(resp.headers.len, 0);
}
END_TEST

START_TEST(test_metrics)
{
    open_app("");
    handle("GET", "/metrics", NULL, NULL, NULL);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_ptr_nonnull(resp.content_type);
    ck_assert(strncmp(resp.content_type, "text/plain", 10) == 0);
    ck_assert_ptr_nonnull(resp.body.data);
    ck_assert_ptr_nonnull(strstr(resp.body.data, "ustatus_"));
    ck_assert_uint_eq(resp.headers.len, 0);
    handle("PUT", "/metrics", NULL, NULL, NULL);
    expect(405, NULL, "", "Allow: GET\r\n");
}
END_TEST

/* ---- the client endpoints ---- */

START_TEST(test_client_routes)
{
    open_app("client { token { hmac_secret_key = \"0123456789abcdef0123456789abcdef\" } }");
    handle("POST", "/client/update_user_status", NULL, NULL, "{}");
    expect(401, "application/json", ERR_UNAUTHORIZED,
           "Vary: Origin\r\nWWW-Authenticate: Bearer\r\n");
    /* The API key is not a client credential. */
    handle("POST", "/client/online", "secret", "apikey secret", NULL);
    expect(401, "application/json", ERR_UNAUTHORIZED,
           "Vary: Origin\r\nWWW-Authenticate: Bearer\r\n");
    handle("POST", "/client/online", NULL, "Bearer not.a.token", NULL);
    expect(401, "application/json", ERR_UNAUTHORIZED,
           "Vary: Origin\r\nWWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
    handle("POST", "/client/x", NULL, NULL, "{}");
    expect(404, "application/json", ERR_NOT_FOUND, "Vary: Origin\r\n");
    handle("POST", "/client", NULL, NULL, "{}");
    expect(404, "application/json", ERR_NOT_FOUND, "Vary: Origin\r\n");
    /* Not below the client prefix: the API's, which wants its key. */
    handle("POST", "/clientx/online", NULL, NULL, "{}");
    expect(401, NULL, "", "");
}
END_TEST

/* ---- the RPC proxy ---- */

START_TEST(test_rpc_goes_to_api_while_proxy_off)
{
    open_app("");
    const char *body = "{\"method\":\"other\",\"user\":\"42\"}";
    handle("POST", "/centrifugo/rpc", NULL, NULL, body);
    expect(401, NULL, "", "");
    /* With the API key: the API's 404 (the path is outside its prefix). */
    handle("POST", "/centrifugo/rpc", "secret", NULL, body);
    expect(404, "application/json", ERR_NOT_FOUND, "");
    handle("GET", "/centrifugo/rpc", "secret", NULL, NULL);
    expect(405, NULL, "", "Allow: POST\r\n");
}
END_TEST

START_TEST(test_rpc_goes_to_proxy_when_keyed)
{
    open_app("centrifugo_proxy { key = \"proxy-key\" }");
    const char *body = "{\"method\":\"other\",\"user\":\"42\"}";
    handle("POST", "/centrifugo/rpc", NULL, NULL, body);
    expect(401, NULL, "", "");
    /* The API key is not the proxy's: the API would have answered 404. */
    handle("POST", "/centrifugo/rpc", "secret", NULL, body);
    expect(401, NULL, "", "");
    /* The proxy's own answer, in the proxy protocol. */
    handle("POST", "/centrifugo/rpc", "proxy-key", NULL, body);
    expect(200, "application/json", "{\"error\":{\"code\":404,\"message\":\"method not found\"}}",
           "");
    handle("POST", "/centrifugo/other", "proxy-key", NULL, body);
    expect(404, "application/json", ERR_NOT_FOUND, "");
    /* And the API itself still works. */
    handle("POST", "/api/nope", "secret", NULL, "{}");
    expect(404, "application/json", ERR_NOT_FOUND, "");
}
END_TEST

/* ---- the server API ---- */

START_TEST(test_api_routes)
{
    open_app("");
    handle("POST", "/api/get_user_status", NULL, NULL, "{\"users\":[]}");
    expect(401, NULL, "", "");
    handle("POST", "/api/get_user_status", "secret", NULL, "{\"users\":[]}");
    expect(200, "application/json", "{\"result\":{\"statuses\":[]}}", "");
    handle("POST", "/api/get_user_status", "secret", NULL, "{\"users\":[\"42\"]}");
    expect(200, "application/json",
           "{\"error\":{\"code\":100,\"message\":\"internal server error\"}}", "");
    handle("POST", NULL, "secret", NULL, "{}");
    expect(404, "application/json", ERR_NOT_FOUND, "");
    handle(NULL, "/api/get_user_status", "secret", NULL, NULL);
    expect(405, NULL, "", "Allow: POST\r\n");
}
END_TEST

/* The worker reuses one response: nothing of an answer may leak into the next. */
START_TEST(test_response_reuse)
{
    open_app("");
    handle("POST", "/health", NULL, NULL, NULL);
    expect(405, NULL, "", "Allow: GET, HEAD\r\n");
    handle("POST", "/api/get_user_status", "secret", NULL, "{\"users\":[]}");
    expect(200, "application/json", "{\"result\":{\"statuses\":[]}}", "");
    handle("POST", "/client/update_user_status", NULL, NULL, NULL);
    expect(401, "application/json", ERR_UNAUTHORIZED,
           "Vary: Origin\r\nWWW-Authenticate: Bearer\r\n");
    handle("POST", "/api/get_user_status", NULL, NULL, NULL);
    expect(401, NULL, "", "");
    handle("GET", "/metrics", NULL, NULL, NULL);
    ck_assert_int_eq(resp.status, 200);
    ck_assert_uint_eq(resp.headers.len, 0);
    handle("POST", "/metrics", NULL, NULL, NULL);
    expect(405, NULL, "", "Allow: GET\r\n");

    /* Even what a caller left in it before the first request. */
    us_buf_puts(&resp.headers, "X-Stale: 1\r\n");
    us_buf_puts(&resp.body, "stale");
    resp.status = 599;
    resp.content_type = "text/stale";
    handle("POST", "/api/get_user_status", NULL, NULL, NULL);
    expect(401, NULL, "", "");
}
END_TEST

static Suite *app_suite(void)
{
    Suite *s = suite_create("app");
    TCase *tc = tcase_create("create");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_create_and_max_body);
    tcase_add_test(tc, test_default_max_body);
    tcase_add_test(tc, test_overlapping_prefixes);
    tcase_add_test(tc, test_proxy_prefix_overlap_ignored_while_off);
    suite_add_tcase(s, tc);

    tc = tcase_create("routing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_health);
    tcase_add_test(tc, test_health_head);
    tcase_add_test(tc, test_metrics);
    tcase_add_test(tc, test_client_routes);
    tcase_add_test(tc, test_rpc_goes_to_api_while_proxy_off);
    tcase_add_test(tc, test_rpc_goes_to_proxy_when_keyed);
    tcase_add_test(tc, test_api_routes);
    tcase_add_test(tc, test_response_reuse);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(app_suite)
