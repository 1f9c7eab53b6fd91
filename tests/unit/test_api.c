/* Unit tests for the API module (SPEC §1) without a Redis server.
 *
 * The store points at 127.0.0.1:1, where nothing listens: a request that passes every
 * check and reaches Redis fails fast with error 100, so which requests touch Redis and
 * which are answered before is observable. Bodies are compared byte for byte because the
 * Centrifugo SDKs depend on the exact envelope. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/api.h"
#include "ustatus/buf.h"
#include "ustatus/command.h"
#include "ustatus/config.h"
#include "ustatus/log.h"
#include "ustatus/store.h"

#define REDIS_DOWN "redis { address = {\"127.0.0.1:1\"} connect_timeout = \"200ms\" }"

#define RESULT_EMPTY "{\"result\":{}}"
#define RESULT_NO_STATUSES "{\"result\":{\"statuses\":[]}}"
#define ERR_INTERNAL "{\"error\":{\"code\":100,\"message\":\"internal server error\"}}"
#define ERR_NOT_FOUND "{\"error\":{\"code\":104,\"message\":\"not found\"}}"
#define ERR_BAD(details) "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"" details "\"}}"

/* The objects of one test; freed by the teardown fixture, also when a test fails. */
static us_config *cfg;
static us_store *store;
static us_command_rules *rules;
static us_api *api;
static us_http_response resp;

static void teardown(void)
{
    us_http_response_free(&resp);
    us_api_free(api);
    us_command_rules_free(rules);
    us_store_free(store);
    us_config_free(cfg);
    api = NULL;
    rules = NULL;
    store = NULL;
    cfg = NULL;
}

/* Builds the api from a libconfuse file with the given http_api and user_status section
 * bodies; user_status always gets the unreachable Redis. */
static void open_api(const char *http_api, const char *user_status)
{
    char err[512] = "";
    cfg = us_test_config("http_api { %s }\nuser_status { %s " REDIS_DOWN " }\n"
                         "log { level = \"error\" }\n",
                         http_api, user_status);
    store = us_store_create(cfg, err, sizeof err);
    ck_assert_msg(store != NULL, "store: %s", err);
    rules = us_command_rules_create(cfg, err, sizeof err);
    ck_assert_msg(rules != NULL, "rules: %s", err);
    api = us_api_create(cfg, rules, store);
    us_http_response_init(&resp);
}

static void open_default(void)
{
    open_api("key = \"secret\"", "");
}

/* An authenticated POST; tests change fields of the copy they get. */
static us_http_request post(const char *path, const char *body)
{
    us_http_request r = {
        .method = "POST",
        .path = path,
        .x_api_key = "secret",
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
    return r;
}

/* As the app calls it: on a response reset for the request. */
static void handle(const us_http_request *r)
{
    us_http_response_reset(&resp);
    us_api_handle(api, r, &resp);
}

/* A JSON answer: exact status, body and type, and no extra headers. */
static void expect_json(int status, const char *body)
{
    ck_assert_int_eq(resp.status, status);
    ck_assert_ptr_nonnull(resp.body.data);
    ck_assert_str_eq(resp.body.data, body);
    ck_assert_uint_eq(resp.body.len, strlen(body));
    ck_assert_ptr_nonnull(resp.content_type);
    ck_assert_str_eq(resp.content_type, "application/json");
    ck_assert_uint_eq(resp.headers.len, 0);
}

/* A bodiless answer (401, 405, 413). */
static void expect_empty(int status)
{
    ck_assert_int_eq(resp.status, status);
    ck_assert_uint_eq(resp.body.len, 0);
    ck_assert_ptr_null(resp.content_type);
}

/* POST path with body and the default key, then expect a JSON answer. */
static void call(const char *path, const char *body, int status, const char *expect)
{
    us_http_request r = post(path, body);
    handle(&r);
    expect_json(status, expect);
}

/* ---- methods and routing ---- */

START_TEST(test_non_post_is_405)
{
    open_default();
    const char *methods[] = {"GET", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "post"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
        r.method = methods[i];
        handle(&r);
        expect_empty(405);
        ck_assert_str_eq(resp.headers.data, "Allow: POST\r\n");
        ck_assert_uint_eq(resp.headers.len, strlen("Allow: POST\r\n"));
    }
    us_http_request r = post("/api/get_user_status", "");
    r.method = NULL;
    handle(&r);
    expect_empty(405);
}
END_TEST

/* The response object is reused across requests by the worker: nothing of a previous
 * answer (the Allow header, a body) may leak into the next. */
START_TEST(test_response_reuse)
{
    open_default();
    us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
    r.method = "GET";
    handle(&r);
    expect_empty(405);
    call("/api/get_user_status", "{\"users\":[]}", 200, RESULT_NO_STATUSES);
    r.x_api_key = "wrong";
    r.method = "POST";
    handle(&r);
    expect_empty(401);
    ck_assert_uint_eq(resp.headers.len, 0);
}
END_TEST

START_TEST(test_unknown_method_404)
{
    open_default();
    call("/api/nope", "{\"users\":[]}", 404, ERR_NOT_FOUND);
    /* Method names in the path are exact (only the legacy form ignores case). */
    call("/api/GET_USER_STATUS", "{\"users\":[]}", 404, ERR_NOT_FOUND);
    call("/api/get_user_status/x", "{\"users\":[]}", 404, ERR_NOT_FOUND);
    call("/apix/get_user_status", "{\"users\":[]}", 404, ERR_NOT_FOUND);
    call("/other/get_user_status", "{\"users\":[]}", 404, ERR_NOT_FOUND);
    call("/", "{\"users\":[]}", 404, ERR_NOT_FOUND);
}
END_TEST

START_TEST(test_handler_prefix)
{
    open_api("key = \"secret\" handler_prefix = \"/v1\"", "");
    call("/v1/get_user_status", "{\"users\":[]}", 200, RESULT_NO_STATUSES);
    call("/v1/update_user_status", "{\"users\":[]}", 200, RESULT_EMPTY);
    call("/api/get_user_status", "{\"users\":[]}", 404, ERR_NOT_FOUND);
    call("/v1/batch", "{\"commands\":[]}", 200, "{\"replies\":[]}");
    call("/v1", "{\"id\":7,\"method\":\"get_user_status\",\"params\":{\"users\":[]}}", 200,
         "{\"id\":7,\"result\":{\"statuses\":[]}}");
    call("/v10/get_user_status", "{\"users\":[]}", 404, ERR_NOT_FOUND);
}
END_TEST

/* ---- authentication ---- */

START_TEST(test_auth_missing_or_wrong_key)
{
    open_default();
    const char *bad[] = {NULL, "", "wrong!", "secre", "secrets", "SECRET", "secret ", " secret"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
        r.x_api_key = bad[i];
        handle(&r);
        ck_assert_msg(resp.status == 401, "X-API-Key \"%s\": status %d", bad[i] ? bad[i] : "(none)",
                      resp.status);
        expect_empty(401);
    }
    us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
    handle(&r);
    expect_json(200, RESULT_NO_STATUSES);
}
END_TEST

/* Unauthenticated callers learn nothing, not even whether a method exists. */
START_TEST(test_auth_before_routing)
{
    open_default();
    us_http_request r = post("/api/nope", "not json");
    r.x_api_key = NULL;
    handle(&r);
    expect_empty(401);
    r.path = "/api/batch";
    handle(&r);
    expect_empty(401);
}
END_TEST

START_TEST(test_auth_authorization_header)
{
    open_default();
    const char *good[] = {"apikey secret", "APIKEY secret", "ApiKey secret", "  apikey   secret  ",
                          "apikey\tsecret"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
        r.x_api_key = NULL;
        r.authorization = good[i];
        handle(&r);
        ck_assert_msg(resp.status == 200, "Authorization \"%s\" rejected", good[i]);
        expect_json(200, RESULT_NO_STATUSES);
    }
    const char *bad[] = {"Bearer secret", "apikey", "apikey ", "apikey secret extra", "apikeysecret",
                         "apikey wrong", "apikey SECRET", "api-key secret", "secret", "apikey secre",
                         "Basic c2VjcmV0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
        r.x_api_key = NULL;
        r.authorization = bad[i];
        handle(&r);
        ck_assert_msg(resp.status == 401, "Authorization \"%s\" accepted", bad[i]);
        expect_empty(401);
    }
}
END_TEST

START_TEST(test_auth_query_parameter)
{
    open_default();
    const char *good[] = {"api_key=secret", "x=1&api_key=secret", "api_key=secret&x=1",
                          "api_key=%73ecret", "api_key=s%65cr%65t", "api_key=%73%65%63%72%65%74"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
        r.x_api_key = NULL;
        r.query = good[i];
        handle(&r);
        ck_assert_msg(resp.status == 200, "query \"%s\" rejected", good[i]);
        expect_json(200, RESULT_NO_STATUSES);
    }
    /* A decoded NUL must not cut the value short: "secret%00x" is not the key. */
    const char *bad[] = {"api_key=wrong", "api_key=", "api_key", "xapi_key=secret", "apikey=secret",
                         "key=secret", "api_key=secre", "api_key=secret1", "",
                         "api_key=secret%00", "api_key=secret%00anything"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
        r.x_api_key = NULL;
        r.query = bad[i];
        handle(&r);
        ck_assert_msg(resp.status == 401, "query \"%s\" accepted", bad[i]);
        expect_empty(401);
    }
}
END_TEST

/* Centrifugo's order: the first credential present decides; a wrong one is not rescued
 * by a right one further down the list. */
START_TEST(test_auth_precedence)
{
    open_default();
    us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
    r.x_api_key = "wrong";
    r.authorization = "apikey secret";
    handle(&r);
    expect_empty(401);

    r.authorization = NULL;
    r.query = "api_key=secret";
    handle(&r);
    expect_empty(401);

    r.x_api_key = NULL;
    r.authorization = "apikey wrong";
    handle(&r);
    expect_empty(401);

    /* A right header with a wrong query parameter: the header decides. */
    r.x_api_key = "secret";
    r.authorization = NULL;
    r.query = "api_key=wrong";
    handle(&r);
    expect_json(200, RESULT_NO_STATUSES);
    r.x_api_key = NULL;
    r.authorization = "apikey secret";
    handle(&r);
    expect_json(200, RESULT_NO_STATUSES);

    /* An empty X-API-Key counts as absent. */
    r.x_api_key = "";
    handle(&r);
    expect_json(200, RESULT_NO_STATUSES);
}
END_TEST

/* No key configured and not insecure: a deployment mistake must not open the API. */
START_TEST(test_auth_empty_configured_key)
{
    open_api("key = \"\"", "");
    us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
    r.x_api_key = NULL;
    handle(&r);
    expect_empty(401);
    r.x_api_key = "";
    r.authorization = "apikey ";
    r.query = "api_key=";
    handle(&r);
    expect_empty(401);
    r.x_api_key = "anything";
    handle(&r);
    expect_empty(401);
}
END_TEST

START_TEST(test_auth_insecure)
{
    open_api("key = \"\" insecure = true", "");
    us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
    r.x_api_key = NULL;
    handle(&r);
    expect_json(200, RESULT_NO_STATUSES);
    r.x_api_key = "whatever";
    handle(&r);
    expect_json(200, RESULT_NO_STATUSES);
}
END_TEST

/* ---- body syntax: HTTP 400 ---- */

START_TEST(test_body_not_an_object)
{
    open_default();
    call("/api/get_user_status", "", 400, ERR_BAD("empty body"));
    call("/api/get_user_status", "{\"users\":[", 400, ERR_BAD("truncated JSON"));
    call("/api/get_user_status", "{\"users\":[]", 400, ERR_BAD("truncated JSON"));
    call("/api/get_user_status", "[]", 400, ERR_BAD("body must be a JSON object"));
    call("/api/get_user_status", "[{\"users\":[]}]", 400, ERR_BAD("body must be a JSON object"));
    call("/api/get_user_status", "42\n", 400, ERR_BAD("body must be a JSON object"));
    call("/api/get_user_status", "true ", 400, ERR_BAD("body must be a JSON object"));
    call("/api/get_user_status", "\"users\"", 400, ERR_BAD("body must be a JSON object"));
    /* Trailing whitespace (a newline from curl -d @file) is not garbage. */
    call("/api/get_user_status", "{\"users\":[]}\n", 200, RESULT_NO_STATUSES);
    call("/api/get_user_status", " \t{\"users\":[]} \r\n", 200, RESULT_NO_STATUSES);
}
END_TEST

/* json-c's wording of a syntax error is its own; what matters is HTTP 400, code 107 and
 * a non-empty details string. */
static void expect_400_with_details(const char *path, const char *const *bodies, size_t n)
{
    const char *head = "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"";
    for (size_t i = 0; i < n; i++) {
        us_http_request r = post(path, bodies[i]);
        handle(&r);
        ck_assert_msg(resp.status == 400, "\"%s\": status %d", bodies[i], resp.status);
        ck_assert_msg(strncmp(resp.body.data, head, strlen(head)) == 0, "\"%s\": %s", bodies[i],
                      resp.body.data);
        ck_assert_uint_gt(resp.body.len, strlen(head) + strlen("\"}}"));
        ck_assert_str_eq(resp.body.data + resp.body.len - 3, "\"}}");
        ck_assert_str_eq(resp.content_type, "application/json");
    }
}

START_TEST(test_body_malformed_json)
{
    open_default();
    const char *bodies[] = {"not json", "{users:[]}", "{\"users\":[],}", "{\"users\":['a']}", "}",
                            "{\"users\":[01]}", "{\"users\":[\"a\\x\"]}"};
    expect_400_with_details("/api/get_user_status", bodies, sizeof bodies / sizeof bodies[0]);
    expect_400_with_details("/api/batch", bodies, sizeof bodies / sizeof bodies[0]);
}
END_TEST

/* One JSON value per body: a second value or stray text is not ignored. */
START_TEST(test_body_trailing_garbage)
{
    open_default();
    const char *bodies[] = {"{\"users\":[]} x", "{\"users\":[]}]", "{\"users\":[]}{}",
                            "{\"users\":[]}\n{\"users\":[]}", "{\"users\":[]}\n\n1"};
    expect_400_with_details("/api/get_user_status", bodies, sizeof bodies / sizeof bodies[0]);
    expect_400_with_details("/api/update_user_status", bodies, sizeof bodies / sizeof bodies[0]);
}
END_TEST

/* json-c parses `null` to no object at all, with success: it is a non-object body like
 * `42`, and the details must say so (not whatever the reason buffer held before). */
START_TEST(test_body_json_null)
{
    open_default();
    call("/api/get_user_status", "null\n", 400, ERR_BAD("body must be a JSON object"));
    call("/api/get_user_status", "null ", 400, ERR_BAD("body must be a JSON object"));
    call("/api/get_user_status", "\tnull\t", 400, ERR_BAD("body must be a JSON object"));
}
END_TEST

/* A scalar that ends the body is complete, not cut short: json-c only reports "continue"
 * because more digits or letters could follow. */
START_TEST(test_body_complete_scalar)
{
    open_default();
    call("/api/get_user_status", "42", 400, ERR_BAD("body must be a JSON object"));
    call("/api/get_user_status", "true", 400, ERR_BAD("body must be a JSON object"));
    call("/api/get_user_status", "null", 400, ERR_BAD("body must be a JSON object"));
}
END_TEST

/* Go's encoding/json (Centrifugo) rejects these; json-c accepts them even with
 * JSON_TOKENER_STRICT. A raw control character would end up inside a stored user ID. */
START_TEST(test_body_lenient_json_rejected)
{
    open_default();
    const char *bodies[] = {"{'users':[]}", "{\"users\":[],\"x\":NaN}",
                            "{\"users\":[],\"x\":Infinity}", "{\"users\":[\"a\tb\"]}"};
    char accepted[512] = "";
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        us_http_request r = post("/api/get_user_status", bodies[i]);
        handle(&r);
        if (resp.status != 400)
            snprintf(accepted + strlen(accepted), sizeof accepted - strlen(accepted),
                     " [%s -> %d %s]", bodies[i], resp.status, resp.body.data);
    }
    ck_assert_msg(accepted[0] == '\0', "malformed JSON accepted:%s", accepted);
}
END_TEST

/* The body is not NUL-terminated: the parser must stop at body_len. */
START_TEST(test_body_length_is_respected)
{
    open_default();
    const char buf[] = "{\"users\":[]}GARBAGE";
    us_http_request r = post("/api/get_user_status", buf);
    r.body_len = strlen("{\"users\":[]}");
    handle(&r);
    expect_json(200, RESULT_NO_STATUSES);
    r.body_len = 5;
    handle(&r);
    expect_json(400, ERR_BAD("truncated JSON"));
}
END_TEST

START_TEST(test_field_types)
{
    open_default();
    call("/api/get_user_status", "{\"users\":\"42\"}", 400,
         ERR_BAD("users must be an array of strings"));
    call("/api/get_user_status", "{\"users\":{\"0\":\"42\"}}", 400,
         ERR_BAD("users must be an array of strings"));
    call("/api/get_user_status", "{\"users\":[42]}", 400, ERR_BAD("users[0] is not a string"));
    call("/api/delete_user_status", "{\"users\":[\"a\",null]}", 400,
         ERR_BAD("users[1] is not a string"));
    call("/api/update_user_online", "{\"users\":[\"a\",[\"b\"]]}", 400,
         ERR_BAD("users[1] is not a string"));
    call("/api/update_user_status", "{\"users\":[\"a\"],\"state\":5}", 400,
         ERR_BAD("state must be a string"));
    call("/api/update_user_status", "{\"users\":[\"a\"],\"state\":{}}", 400,
         ERR_BAD("state must be a string"));
}
END_TEST

/* ---- validation: HTTP 200 with error 107 ---- */

START_TEST(test_users_missing)
{
    open_default();
    call("/api/get_user_status", "{}", 200, ERR_BAD("users is required"));
    call("/api/update_user_status", "{\"state\":\"away\"}", 200, ERR_BAD("users is required"));
    call("/api/delete_user_status", "{\"users\":null}", 200, ERR_BAD("users is required"));
    call("/api/update_user_online", "{\"user\":[\"a\"]}", 200, ERR_BAD("users is required"));
}
END_TEST

START_TEST(test_user_id_rules)
{
    open_default();
    call("/api/get_user_status", "{\"users\":[\"\"]}", 200, ERR_BAD("users[0] is empty"));
    call("/api/get_user_status", "{\"users\":[\"ok\",\"\"]}", 200, ERR_BAD("users[1] is empty"));
    call("/api/update_user_status", "{\"users\":[\"a\\u0000b\"]}", 200,
         ERR_BAD("users[0] contains a NUL character"));
    call("/api/get_user_status", "{\"users\":[\"\xff\"]}", 200,
         ERR_BAD("users[0] is not valid UTF-8"));
    call("/api/get_user_status", "{\"users\":[\"ok\",\"a\xc0\x80\"]}", 200,
         ERR_BAD("users[1] is not valid UTF-8"));
}
END_TEST

/* 1024 bytes is the limit: one byte more is refused, exactly 1024 goes to Redis. */
START_TEST(test_user_id_length)
{
    open_default();
    enum { MAX = 1024 };
    char *body = malloc(MAX + 64);
    strcpy(body, "{\"users\":[\"");
    size_t at = strlen(body);
    memset(body + at, 'u', MAX + 1);
    strcpy(body + at + MAX + 1, "\"]}");
    call("/api/get_user_status", body, 200, ERR_BAD("users[0] is too long"));
    memset(body + at, 'u', MAX);
    strcpy(body + at + MAX, "\"]}");
    call("/api/get_user_status", body, 200, ERR_INTERNAL);
    /* Multi-byte characters count in bytes: 342 x 3 = 1026. */
    strcpy(body, "{\"users\":[\"");
    for (int i = 0; i < 342; i++)
        strcat(body, "\xe4\xb8\xad");
    strcat(body, "\"]}");
    call("/api/get_user_status", body, 200, ERR_BAD("users[0] is too long"));
    free(body);
}
END_TEST

START_TEST(test_too_many_users)
{
    open_api("key = \"secret\"", "max_users_per_request = 3");
    call("/api/get_user_status", "{\"users\":[\"1\",\"2\",\"3\",\"4\"]}", 200,
         ERR_BAD("too many users: 4, at most 3"));
    call("/api/update_user_status", "{\"users\":[\"1\",\"2\",\"3\",\"4\"]}", 200,
         ERR_BAD("too many users: 4, at most 3"));
    /* Three is allowed, so it goes on to Redis. */
    call("/api/get_user_status", "{\"users\":[\"1\",\"2\",\"3\"]}", 200, ERR_INTERNAL);
    /* Duplicates count: the limit is on the request's size. */
    call("/api/delete_user_status", "{\"users\":[\"1\",\"1\",\"1\",\"1\"]}", 200,
         ERR_BAD("too many users: 4, at most 3"));
}
END_TEST

START_TEST(test_too_many_users_in_a_request)
{
    /* A batch or a legacy body cannot multiply the limit: it holds for the request. */
    open_api("key = \"secret\"", "max_users_per_request = 3");
    call("/api/batch",
         "{\"commands\":[{\"get_user_status\":{\"users\":[\"1\",\"2\"]}},"
         "{\"get_user_status\":{\"users\":[\"3\",\"4\"]}},"
         "{\"get_user_status\":{\"users\":[\"5\"]}}]}",
         200,
         "{\"replies\":[{\"error\":{\"code\":100,\"message\":\"internal server error\"}},"
         "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":"
         "\"too many users: 4 in this request, at most 3\"}},"
         "{\"error\":{\"code\":100,\"message\":\"internal server error\"}}]}");
    call("/api",
         "{\"id\":1,\"method\":\"get_user_status\",\"params\":{\"users\":[\"1\",\"2\",\"3\"]}}\n"
         "{\"id\":2,\"method\":\"get_user_status\",\"params\":{\"users\":[\"4\"]}}",
         200,
         "{\"id\":1,\"error\":{\"code\":100,\"message\":\"internal server error\"}}\n"
         "{\"id\":2,\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":"
         "\"too many users: 4 in this request, at most 3\"}}");
}
END_TEST

START_TEST(test_too_many_commands_and_values)
{
    open_default();
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"commands\":[");
    for (int i = 0; i < 1001; i++)
        us_buf_puts(&b, i ? ",{}" : "{}");
    us_buf_puts(&b, "]}");
    call("/api/batch", b.data, 200, ERR_BAD("too many commands: 1001, at most 1000"));
    us_buf_reset(&b);
    for (int i = 0; i < 1001; i++)
        us_buf_puts(&b, "{}\n");
    call("/api", b.data, 200, ERR_BAD("too many commands: 1001, at most 1000"));
    /* Values are counted before json-c builds anything: 10000 users + 16 per command + 64. */
    us_buf_reset(&b);
    us_buf_puts(&b, "{\"users\":[");
    for (int i = 0; i < 26100; i++)
        us_buf_puts(&b, i ? ",0" : "0");
    us_buf_puts(&b, "]}");
    call("/api/get_user_status", b.data, 400, ERR_BAD("more than 26064 JSON values"));
    us_buf_free(&b);
}
END_TEST

/* The plain body most clients send is read in place; anything else takes json-c's path.
 * Both must mean the same thing. */
START_TEST(test_plain_and_json_c_bodies_agree)
{
    open_default();
    /* a repeated key: the last one counts, as json-c (and Go) read it */
    call("/api/get_user_status", "{\"users\":[\"x\"],\"users\":[]}", 200, RESULT_NO_STATUSES);
    /* an escape in a user ID is decoded: "\u0062" is "b", so this reaches Redis (down) */
    call("/api/get_user_status", "{\"users\":[\"a\\u0062\"]}", 200, ERR_INTERNAL);
    /* state is ignored by get; unknown keys are ignored */
    call("/api/get_user_status", "{\"state\":\"x\",\"users\":[]}", 200, RESULT_NO_STATUSES);
    call("/api/get_user_status", " { \"users\" : [ ] , \"x\" : 1 } ", 200, RESULT_NO_STATUSES);
    /* the state rules hold on both paths */
    call("/api/update_user_status", "{\"users\":[\"1\"],\"state\":\"\"}", 200, ERR_INTERNAL);
    call("/api/update_user_status", "{\"users\":[],\"state\":5}", 400,
         ERR_BAD("state must be a string"));
    call("/api/update_user_status", "{\"users\":[\"\"]}", 200, ERR_BAD("users[0] is empty"));
    call("/api/update_user_status", "{\"users\":[\"1\",2]}", 400,
         ERR_BAD("users[1] is not a string"));
    call("/api/update_user_status", "{\"users\":null}", 200, ERR_BAD("users is required"));
}
END_TEST

START_TEST(test_legacy_id_echoed_as_sent)
{
    open_default();
    call("/api", "{\"id\":\"a/b\",\"method\":\"get_user_status\",\"params\":{\"users\":[]}}", 200,
         "{\"id\":\"a/b\",\"result\":{\"statuses\":[]}}");
}
END_TEST

#define ERR_ID                                                                            \
    "\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"id must be an integer " \
    "of at most 2^53-1 in magnitude or a UTF-8 string\"}}"
#define LEGACY_GET(id) "{\"id\":" id ",\"method\":\"get_user_status\",\"params\":{\"users\":[]}}"

/* An id is echoed only when every client reads it back as sent: an integer in the safe
 * range of a double, or valid UTF-8; any other id makes its line error 107 without one. */
START_TEST(test_legacy_id_rules)
{
    open_default();
    call("/api",
         LEGACY_GET("9007199254740991") "\n" LEGACY_GET("-9007199254740991") "\n" LEGACY_GET(
             "0") "\n" LEGACY_GET("\"\\u00e9t\u00e9 \\\" \\\\\"") "\n" LEGACY_GET("null"),
         200,
         "{\"id\":9007199254740991,\"result\":{\"statuses\":[]}}\n"
         "{\"id\":-9007199254740991,\"result\":{\"statuses\":[]}}\n"
         "{\"id\":0,\"result\":{\"statuses\":[]}}\n"
         "{\"id\":\"\u00e9t\u00e9 \\\" \\\\\",\"result\":{\"statuses\":[]}}\n"
         "{\"result\":{\"statuses\":[]}}");
    /* a lone surrogate escape reads as U+FFFD (as Go's encoding/json reads it): valid */
    call("/api", LEGACY_GET("\"\\ud800\""), 200,
         "{\"id\":\"\xef\xbf\xbd\",\"result\":{\"statuses\":[]}}");
    static const char *const bad[] = {
        "9007199254740992", "-9007199254740992", "18446744073709551616", "1.0", "1e3",
        "true", "{}", "[1]", "\"\xff\"", "\"a\xc3\"", "\"\xed\xa0\x80\""
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256], expect[512];
        snprintf(body, sizeof body,
                 "{\"id\":%s,\"method\":\"update_user_status\",\"params\":{\"users\":[\"x\"]}}\n"
                 "%s",
                 bad[i], LEGACY_GET("2"));
        snprintf(expect, sizeof expect, "{" ERR_ID "\n{\"id\":2,\"result\":{\"statuses\":[]}}");
        us_http_request r = post("/api", body);
        handle(&r);
        ck_assert_msg(resp.status == 200 && strcmp(resp.body.data, expect) == 0,
                      "id %s: %d %s", bad[i], resp.status, resp.body.data);
    }
}
END_TEST

/* The JSON-value bound holds for a whole legacy body, not per line: every line is held at
 * once (before: 1000 lines could hold 1000 times the bound). */
START_TEST(test_legacy_values_per_request)
{
    open_default();
    us_buf b = US_BUF_INIT, want = US_BUF_INIT;
    /* 27 lines of 1006 values each: 25 fit in 26064, the 26th does not */
    for (int i = 0; i < 27; i++) {
        us_buf_printf(&b, "{\"id\":%d,\"method\":\"get_user_status\",\"params\":{\"users\":[],\"x\":[",
                      i);
        for (int k = 0; k < 1000; k++)
            us_buf_puts(&b, k ? ",0" : "0");
        us_buf_puts(&b, "]}}\n");
        if (i)
            us_buf_putc(&want, '\n');
        if (i < 25)
            us_buf_printf(&want, "{\"id\":%d,\"result\":{\"statuses\":[]}}", i);
        else
            us_buf_puts(&want, "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":"
                               "\"more than 26064 JSON values in this request\"}}");
    }
    call("/api", b.data, 200, want.data);
    us_buf_free(&b);
    us_buf_free(&want);
}
END_TEST

START_TEST(test_state_rules)
{
    open_default();
    enum { MAX = 256 };
    char body[512];
    char state[MAX + 2];
    memset(state, 's', MAX + 1);
    state[MAX + 1] = '\0';
    snprintf(body, sizeof body, "{\"users\":[\"42\"],\"state\":\"%s\"}", state);
    call("/api/update_user_status", body, 200, ERR_BAD("state is too long"));
    state[MAX] = '\0';
    snprintf(body, sizeof body, "{\"users\":[\"42\"],\"state\":\"%s\"}", state);
    call("/api/update_user_status", body, 200, ERR_INTERNAL);
    call("/api/update_user_status", "{\"users\":[\"42\"],\"state\":\"a\\u0000\"}", 200,
         ERR_BAD("state contains a NUL character"));
    call("/api/update_user_status", "{\"users\":[\"42\"],\"state\":\"\xfe\"}", 200,
         ERR_BAD("state is not valid UTF-8"));
    /* "" clears the state: valid, so it reaches Redis. */
    call("/api/update_user_status", "{\"users\":[\"42\"],\"state\":\"\"}", 200, ERR_INTERNAL);
    call("/api/update_user_status", "{\"users\":[\"42\"],\"state\":null}", 200, ERR_INTERNAL);
}
END_TEST

START_TEST(test_state_regex)
{
    open_api("key = \"secret\"", "state_regex = \"^(away|busy)$\"");
    call("/api/update_user_status", "{\"users\":[\"42\"],\"state\":\"sleeping\"}", 200,
         ERR_BAD("state does not match state_regex"));
    call("/api/update_user_status", "{\"users\":[\"42\"],\"state\":\"away!\"}", 200,
         ERR_BAD("state does not match state_regex"));
    call("/api/update_user_status", "{\"users\":[\"42\"],\"state\":\"away\"}", 200, ERR_INTERNAL);
    /* Clearing the state is not a state value: the regex does not apply. */
    call("/api/update_user_status", "{\"users\":[\"42\"],\"state\":\"\"}", 200, ERR_INTERNAL);
    /* Methods without state ignore a state field. */
    call("/api/update_user_online", "{\"users\":[\"42\"],\"state\":\"sleeping\"}", 200,
         ERR_INTERNAL);
}
END_TEST

/* ---- success without Redis, failure with it ---- */

START_TEST(test_empty_users_no_redis)
{
    open_default();
    call("/api/update_user_status", "{\"users\":[]}", 200, RESULT_EMPTY);
    call("/api/update_user_status", "{\"users\":[],\"state\":\"x\"}", 200, RESULT_EMPTY);
    call("/api/delete_user_status", "{\"users\":[]}", 200, RESULT_EMPTY);
    call("/api/update_user_online", "{\"users\":[]}", 200, RESULT_EMPTY);
    call("/api/get_user_status", "{\"users\":[]}", 200, RESULT_NO_STATUSES);
    /* Unknown fields are ignored. */
    call("/api/get_user_status", "{\"users\":[],\"extra\":{\"a\":[1]}}", 200, RESULT_NO_STATUSES);
}
END_TEST

/* Redis unreachable is error 100 for every method, never a partial or empty success. */
START_TEST(test_redis_down_is_100)
{
    open_default();
    call("/api/get_user_status", "{\"users\":[\"42\"]}", 200, ERR_INTERNAL);
    call("/api/update_user_status", "{\"users\":[\"42\",\"43\"],\"state\":\"away\"}", 200,
         ERR_INTERNAL);
    call("/api/delete_user_status", "{\"users\":[\"42\"]}", 200, ERR_INTERNAL);
    call("/api/update_user_online", "{\"users\":[\"42\"]}", 200, ERR_INTERNAL);
    /* Again, now inside the connection back-off. */
    call("/api/get_user_status", "{\"users\":[\"42\"]}", 200, ERR_INTERNAL);
}
END_TEST

START_TEST(test_disabled_108)
{
    open_api("key = \"secret\"", "enabled = false");
    const char *e = "{\"error\":{\"code\":108,\"message\":\"not available\",\"details\":"
                    "\"user status is disabled\"}}";
    call("/api/get_user_status", "{\"users\":[]}", 200, e);
    call("/api/update_user_status", "{\"users\":[\"42\"]}", 200, e);
    call("/api/delete_user_status", "{\"users\":[\"42\"]}", 200, e);
    call("/api/update_user_online", "{\"users\":[\"42\"]}", 200, e);
    /* Still authenticated and routed as usual. */
    call("/api/nope", "{}", 404, ERR_NOT_FOUND);
    us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
    r.x_api_key = "wrong";
    handle(&r);
    expect_empty(401);
}
END_TEST

/* ---- transport error mode ---- */

static void transport_cases(bool by_header)
{
    const struct {
        const char *path, *body;
        int status;
        const char *expect;
    } cases[] = {
        {"/api/get_user_status", "{\"users\":[\"\"]}", 400, "{\"code\":107,\"message\":\"bad request\"}"},
        {"/api/get_user_status", "{\"users\":5}", 400, "{\"code\":107,\"message\":\"bad request\"}"},
        {"/api/get_user_status", "{}", 400, "{\"code\":107,\"message\":\"bad request\"}"},
        {"/api/get_user_status", "nope", 400, "{\"code\":107,\"message\":\"bad request\"}"},
        {"/api/get_user_status", "{\"users\":[\"42\"]}", 500,
         "{\"code\":100,\"message\":\"internal server error\"}"},
        {"/api/nope", "{}", 404, "{\"code\":104,\"message\":\"not found\"}"},
        {"/other", "{}", 404, "{\"code\":104,\"message\":\"not found\"}"},
        {"/api/get_user_status", "{\"users\":[]}", 200, RESULT_NO_STATUSES},
        {"/api/update_user_status", "{\"users\":[]}", 200, RESULT_EMPTY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        us_http_request r = post(cases[i].path, cases[i].body);
        if (by_header)
            r.error_mode = "transport";
        handle(&r);
        ck_assert_msg(resp.status == cases[i].status, "%s %s: status %d", cases[i].path,
                      cases[i].body, resp.status);
        expect_json(cases[i].status, cases[i].expect);
    }
}

START_TEST(test_transport_mode_config)
{
    open_api("key = \"secret\" error_mode = \"transport\"", "");
    transport_cases(false);
}
END_TEST

START_TEST(test_transport_mode_header)
{
    open_default();
    transport_cases(true);
    /* Without the header the same request is back to the envelope. */
    call("/api/get_user_status", "{\"users\":[\"\"]}", 200, ERR_BAD("users[0] is empty"));
}
END_TEST

START_TEST(test_transport_mode_disabled_108)
{
    open_api("key = \"secret\" error_mode = \"transport\"", "enabled = false");
    call("/api/get_user_status", "{\"users\":[\"42\"]}", 400,
         "{\"code\":108,\"message\":\"not available\"}");
}
END_TEST

/* Authentication failures stay bodiless 401 whatever the error mode. */
START_TEST(test_transport_mode_auth)
{
    open_api("key = \"secret\" error_mode = \"transport\"", "");
    us_http_request r = post("/api/get_user_status", "{\"users\":[]}");
    r.x_api_key = "wrong";
    handle(&r);
    expect_empty(401);
}
END_TEST

/* Batch replies are per command: transport mode does not turn one failing command into an
 * HTTP error for all. */
START_TEST(test_transport_mode_not_in_batch)
{
    open_default();
    us_http_request r = post("/api/batch", "{\"commands\":[{\"nope\":{}},"
                                           "{\"get_user_status\":{\"users\":[]}}]}");
    r.error_mode = "transport";
    handle(&r);
    expect_json(200, "{\"replies\":[{\"error\":{\"code\":104,\"message\":\"not found\","
                     "\"details\":\"unknown method\"}},{\"get_user_status\":{\"statuses\":[]}}]}");
}
END_TEST

/* ---- body size ---- */

START_TEST(test_max_body_bytes)
{
    open_api("key = \"secret\" max_body_bytes = 100", "");
    ck_assert_uint_eq(cfg->http_api.max_body_bytes, 100);
    char body[128];
    /* Exactly the limit is accepted (padding is trailing whitespace). */
    snprintf(body, sizeof body, "%-100s", "{\"users\":[]}");
    ck_assert_uint_eq(strlen(body), 100);
    call("/api/get_user_status", body, 200, RESULT_NO_STATUSES);
    snprintf(body, sizeof body, "%-101s", "{\"users\":[]}");
    us_http_request r = post("/api/get_user_status", body);
    handle(&r);
    expect_empty(413);
    ck_assert_uint_eq(resp.headers.len, 0);
    r.path = "/api/batch";
    handle(&r);
    expect_empty(413);
}
END_TEST

/* ---- batch ---- */

START_TEST(test_batch_mixed)
{
    open_default();
    call("/api/batch",
         "{\"commands\":["
         "{\"get_user_status\":{\"users\":[]}},"
         "{\"nope\":{\"users\":[]}},"
         "{\"get_user_status\":{\"users\":[]},\"delete_user_status\":{\"users\":[]}},"
         "{\"update_user_status\":{\"users\":[]}},"
         "{},"
         "[1],"
         "{\"delete_user_status\":{\"users\":[\"\"]}},"
         "{\"update_user_online\":{\"users\":[]}}"
         "],\"parallel\":true}",
         200,
         "{\"replies\":["
         "{\"get_user_status\":{\"statuses\":[]}},"
         "{\"error\":{\"code\":104,\"message\":\"not found\",\"details\":\"unknown method\"}},"
         "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":"
         "\"a command must be an object with one method key\"}},"
         "{\"update_user_status\":{}},"
         "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":"
         "\"a command must be an object with one method key\"}},"
         "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":"
         "\"a command must be an object with one method key\"}},"
         "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"users[0] is empty\"}},"
         "{\"update_user_online\":{}}"
         "]}");
}
END_TEST

/* A command whose Redis work fails fails alone; its neighbours keep their answers. */
START_TEST(test_batch_redis_down)
{
    open_default();
    call("/api/batch",
         "{\"commands\":["
         "{\"get_user_status\":{\"users\":[\"42\"]}},"
         "{\"get_user_status\":{\"users\":[]}},"
         "{\"update_user_status\":{\"users\":[\"42\"],\"state\":7}},"
         "{\"delete_user_status\":{\"users\":[\"1\",\"2\"]}}"
         "]}",
         200,
         "{\"replies\":["
         "{\"error\":{\"code\":100,\"message\":\"internal server error\"}},"
         "{\"get_user_status\":{\"statuses\":[]}},"
         "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"state must be a string\"}},"
         "{\"error\":{\"code\":100,\"message\":\"internal server error\"}}"
         "]}");
}
END_TEST

START_TEST(test_batch_envelope_errors)
{
    open_default();
    call("/api/batch", "{\"commands\":{}}", 400, ERR_BAD("commands must be an array"));
    call("/api/batch", "{\"commands\":\"get_user_status\"}", 400, ERR_BAD("commands must be an array"));
    call("/api/batch", "[]", 400, ERR_BAD("body must be a JSON object"));
    call("/api/batch", "", 400, ERR_BAD("empty body"));
    call("/api/batch", "{\"commands\":[", 400, ERR_BAD("truncated JSON"));
    call("/api/batch", "{}", 200, ERR_BAD("commands is required"));
    call("/api/batch", "{\"commands\":[]}", 200, "{\"replies\":[]}");
}
END_TEST

START_TEST(test_batch_disabled)
{
    open_api("key = \"secret\"", "enabled = false");
    call("/api/batch", "{\"commands\":[{\"get_user_status\":{\"users\":[]}},{\"nope\":{}}]}", 200,
         "{\"replies\":["
         "{\"error\":{\"code\":108,\"message\":\"not available\",\"details\":\"user status is disabled\"}},"
         "{\"error\":{\"code\":104,\"message\":\"not found\",\"details\":\"unknown method\"}}"
         "]}");
}
END_TEST

START_TEST(test_batch_json_null)
{
    open_default();
    call("/api/batch", "null\n", 400, ERR_BAD("body must be a JSON object"));
}
END_TEST

/* ---- legacy form ---- */

START_TEST(test_legacy_two_lines)
{
    open_default();
    call("/api",
         "{\"id\":1,\"method\":\"GET_USER_STATUS\",\"params\":{\"users\":[]}}\n"
         "{\"id\":2,\"method\":\"nope\",\"params\":{}}",
         200,
         "{\"id\":1,\"result\":{\"statuses\":[]}}\n"
         "{\"id\":2,\"error\":{\"code\":104,\"message\":\"not found\",\"details\":\"unknown method\"}}");
}
END_TEST

START_TEST(test_legacy_variants)
{
    open_default();
    /* Trailing slash, CRLF, blank lines, string ids, no id, and a Redis failure. */
    call("/api/",
         "\r\n{\"id\":\"a\",\"method\":\"update_user_status\",\"params\":{\"users\":[]}}\r\n"
         "\n   \n"
         "{\"method\":\"Delete_User_Status\",\"params\":{\"users\":[]}}\n"
         "{\"id\":3,\"method\":\"get_user_status\",\"params\":{\"users\":[\"42\"]}}\n"
         "{\"id\":4,\"method\":\"get_user_status\",\"params\":{\"users\":[\"\"]}}\n",
         200,
         "{\"id\":\"a\",\"result\":{}}\n"
         "{\"result\":{}}\n"
         "{\"id\":3,\"error\":{\"code\":100,\"message\":\"internal server error\"}}\n"
         "{\"id\":4,\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"users[0] is empty\"}}");
}
END_TEST

START_TEST(test_legacy_bad_lines)
{
    open_default();
    call("/api",
         "{\"id\":1,\"params\":{\"users\":[]}}\n"
         "{\"id\":2,\"method\":5}\n"
         "[1]\n"
         "{\"id\":4,\"method\":\"get_user_status\",\"params\":[]}\n"
         "{\"id\":5,\"method\":\"get_user_status\"}\n"
         "{\"id\":6,\"method\":\"get_user_status\",\"params\":{\"users\":[]}}",
         200,
         "{\"id\":1,\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"method must be a string\"}}\n"
         "{\"id\":2,\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"method must be a string\"}}\n"
         "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"a command must be a JSON object\"}}\n"
         "{\"id\":4,\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"params must be a JSON object\"}}\n"
         "{\"id\":5,\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"params must be a JSON object\"}}\n"
         "{\"id\":6,\"result\":{\"statuses\":[]}}");
    call("/api", "", 400, ERR_BAD("empty body"));
    call("/api", " \n\r\n", 400, ERR_BAD("empty body"));
}
END_TEST

/* A `null` line is not an object either, like `[1]`. */
START_TEST(test_legacy_null_line)
{
    open_default();
    call("/api", "null \n{\"id\":2,\"method\":\"get_user_status\",\"params\":{\"users\":[]}}", 200,
         "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\"a command must be a JSON object\"}}\n"
         "{\"id\":2,\"result\":{\"statuses\":[]}}");
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("routing");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_non_post_is_405);
    tcase_add_test(tc, test_response_reuse);
    tcase_add_test(tc, test_unknown_method_404);
    tcase_add_test(tc, test_handler_prefix);
    suite_add_tcase(s, tc);

    tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_auth_missing_or_wrong_key);
    tcase_add_test(tc, test_auth_before_routing);
    tcase_add_test(tc, test_auth_authorization_header);
    tcase_add_test(tc, test_auth_query_parameter);
    tcase_add_test(tc, test_auth_precedence);
    tcase_add_test(tc, test_auth_empty_configured_key);
    tcase_add_test(tc, test_auth_insecure);
    suite_add_tcase(s, tc);

    tc = tcase_create("body");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_body_not_an_object);
    tcase_add_test(tc, test_body_malformed_json);
    tcase_add_test(tc, test_body_trailing_garbage);
    tcase_add_test(tc, test_body_json_null);
    tcase_add_test(tc, test_body_complete_scalar);
    tcase_add_test(tc, test_body_lenient_json_rejected);
    tcase_add_test(tc, test_body_length_is_respected);
    tcase_add_test(tc, test_field_types);
    suite_add_tcase(s, tc);

    tc = tcase_create("validation");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_users_missing);
    tcase_add_test(tc, test_user_id_rules);
    tcase_add_test(tc, test_user_id_length);
    tcase_add_test(tc, test_too_many_users);
    tcase_add_test(tc, test_too_many_users_in_a_request);
    tcase_add_test(tc, test_too_many_commands_and_values);
    tcase_add_test(tc, test_legacy_id_echoed_as_sent);
    tcase_add_test(tc, test_legacy_id_rules);
    tcase_add_test(tc, test_legacy_values_per_request);
    tcase_add_test(tc, test_plain_and_json_c_bodies_agree);
    tcase_add_test(tc, test_state_rules);
    tcase_add_test(tc, test_state_regex);
    suite_add_tcase(s, tc);

    tc = tcase_create("results");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_empty_users_no_redis);
    tcase_add_test(tc, test_redis_down_is_100);
    tcase_add_test(tc, test_disabled_108);
    suite_add_tcase(s, tc);

    tc = tcase_create("transport");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_transport_mode_config);
    tcase_add_test(tc, test_transport_mode_header);
    tcase_add_test(tc, test_transport_mode_disabled_108);
    tcase_add_test(tc, test_transport_mode_auth);
    tcase_add_test(tc, test_transport_mode_not_in_batch);
    suite_add_tcase(s, tc);

    tc = tcase_create("size");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_max_body_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("batch");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_batch_mixed);
    tcase_add_test(tc, test_batch_redis_down);
    tcase_add_test(tc, test_batch_envelope_errors);
    tcase_add_test(tc, test_batch_disabled);
    tcase_add_test(tc, test_batch_json_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("legacy");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_legacy_two_lines);
    tcase_add_test(tc, test_legacy_variants);
    tcase_add_test(tc, test_legacy_bad_lines);
    tcase_add_test(tc, test_legacy_null_line);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    us_log_set_level(US_LOG_ERROR);
    return us_test_run(api_suite());
}
