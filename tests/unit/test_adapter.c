/* Unit tests for the FastCGI/CGI adapter (fcgi/adapter.c), driven through a us_cgi_io of
 * our own: parameters from a table, the body from memory (whole, or a few bytes per
 * read, or failing), the response into a us_buf (or failing). The app is the real one,
 * built from the environment with a Redis address where nothing listens; every request
 * here is answered before any Redis command (routing, method, key, body size, JSON), so
 * what is checked is what the adapter hands the app and how it writes the answer back:
 * the path it builds, which CONTENT_LENGTH values it refuses, that a body over the limit
 * is never read, that a body in pieces arrives whole, that the CGI head matches the body,
 * and that a failed read or write is reported as -1. */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../fcgi/adapter.h"
#include "fixtures.h"
#include "ustatus/app.h"
#include "ustatus/buf.h"
#include "ustatus/config.h"

#define KEY      "adapter-test-key"
#define MAX_BODY 64

#define ERR_NOT_FOUND  "{\"error\":{\"code\":104,\"message\":\"not found\"}}"
#define ERR_BAD_PREFIX "{\"error\":{\"code\":107,\"message\":\"bad request\",\"details\":\""

/* A JSON value followed by " x": 17 bytes, refused by the one JSON intake at byte 16.
 * The byte offset in the answer shows the app saw the whole body. */
#define BODY_TRAILING "{\"users\":[\"a\"]} x"

/* ---- the I/O of a fake web server ---- */

typedef struct fake_io {
    const char *params[32]; /* name, value, name, value, ..., NULL */
    const char *body;
    size_t body_len;
    size_t pos;        /* bytes of the body handed out so far */
    size_t chunk;      /* the most bytes one read hands out; 0 = as many as asked */
    int fail_read_at;  /* the read call (1-based) that fails; 0 = none */
    int fail_write_at; /* the same for writes */
    int reads, writes;
    us_buf out;
} fake_io;

static const char *fake_getparam(void *ctx, const char *name)
{
    fake_io *f = ctx;
    for (size_t i = 0; f->params[i]; i += 2)
        if (strcmp(f->params[i], name) == 0)
            return f->params[i + 1];
    return NULL;
}

static long fake_read(void *ctx, char *buf, size_t n)
{
    fake_io *f = ctx;
    ck_assert_uint_gt(n, 0);
    if (++f->reads == f->fail_read_at)
        return -1;
    size_t left = f->body_len - f->pos;
    if (n > left)
        n = left;
    if (f->chunk && n > f->chunk)
        n = f->chunk;
    memcpy(buf, f->body + f->pos, n);
    f->pos += n;
    return (long)n;
}

static int fake_write(void *ctx, const char *buf, size_t n)
{
    fake_io *f = ctx;
    if (++f->writes == f->fail_write_at)
        return -1;
    us_buf_append(&f->out, buf, n);
    return 0;
}

/* ---- fixture: one app and one adapter per test ---- */

static us_config *cfg;
static us_app *app;
static us_adapter adapter;
static fake_io io;

static void setup(void)
{
    char err[512] = "";
    us_test_clear_env();
    us_test_env("USTATUS_HTTP_API_KEY", KEY);
    us_test_env("USTATUS_HTTP_API_MAX_BODY_BYTES", "64");
    us_test_env("USTATUS_USER_STATUS_REDIS_ADDRESS", "127.0.0.1:1");
    cfg = us_config_load(NULL, err, sizeof err);
    ck_assert_msg(cfg != NULL, "config: %s", err);
    ck_assert_uint_eq(cfg->http_api.max_body_bytes, MAX_BODY);
    app = us_app_create(cfg, err, sizeof err);
    ck_assert_msg(app != NULL, "app: %s", err);
    ck_assert_uint_eq(us_app_max_body_bytes(app), MAX_BODY);
    us_adapter_init(&adapter);
    memset(&io, 0, sizeof io);
}

static void teardown(void)
{
    us_buf_free(&io.out);
    us_adapter_free(&adapter);
    us_app_free(app);
    us_config_free(cfg);
    app = NULL;
    cfg = NULL;
}

/* Sets the request: parameters (name/value pairs ending in NULL) and body (NULL: none).
 * Keeps the counters and failure settings of io apart from the output. */
static void request(const char *body, ...)
{
    va_list ap;
    va_start(ap, body);
    size_t i = 0;
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL) {
        ck_assert_uint_lt(i + 2, sizeof io.params / sizeof io.params[0]);
        io.params[i++] = s;
        io.params[i++] = va_arg(ap, const char *);
    }
    va_end(ap);
    io.params[i] = NULL;
    io.body = body ? body : "";
    io.body_len = body ? strlen(body) : 0;
    io.pos = 0;
    io.reads = io.writes = 0;
    us_buf_reset(&io.out);
}

/* A POST to path with the key and body, CONTENT_LENGTH set to the body's length. */
static char content_length_text[32];
static void post(const char *path, const char *body)
{
    snprintf(content_length_text, sizeof content_length_text, "%zu", strlen(body));
    request(body, "REQUEST_METHOD", "POST", "SCRIPT_NAME", path, "HTTP_X_API_KEY", KEY,
            "CONTENT_LENGTH", content_length_text, NULL);
}

static int serve(void)
{
    us_cgi_io cgi = {fake_getparam, fake_read, fake_write, &io};
    return us_adapter_serve(&adapter, app, &cgi);
}

/* ---- reading what was written ---- */

typedef struct answer {
    char status_line[128]; /* "404 Not Found" */
    int status;
    char head[2048];  /* the header lines after the Status line, each ending "\r\n" */
    const char *body; /* into io.out */
    size_t body_len;
} answer;

/* Splits io.out into head and body and checks the CGI form: a Status line first, lines
 * ending in CRLF, an empty line, and a Content-Length equal to what follows. */
static answer parse_answer(void)
{
    answer a;
    memset(&a, 0, sizeof a);
    ck_assert_ptr_nonnull(io.out.data);
    const char *out = io.out.data;
    const char *end = strstr(out, "\r\n\r\n");
    ck_assert_msg(end != NULL, "no end of head in \"%s\"", out);
    ck_assert_msg(strncmp(out, "Status: ", 8) == 0, "head starts \"%.20s\"", out);
    const char *eol = strstr(out, "\r\n");
    size_t sl = (size_t)(eol - out - 8);
    ck_assert_uint_lt(sl, sizeof a.status_line);
    memcpy(a.status_line, out + 8, sl);
    a.status = atoi(a.status_line);
    size_t hl = (size_t)(end + 2 - (eol + 2));
    ck_assert_uint_lt(hl, sizeof a.head);
    memcpy(a.head, eol + 2, hl);
    /* every header line is "Name: value" and no bare LF hides in the head */
    for (const char *p = out; p < end; p++)
        if (*p == '\n')
            ck_assert_msg(p > out && p[-1] == '\r', "bare LF in the head");
    a.body = end + 4;
    a.body_len = io.out.len - (size_t)(a.body - out);
    const char *cl = strstr(a.head, "Content-Length: ");
    ck_assert_msg(cl != NULL, "no Content-Length in \"%s\"", a.head);
    ck_assert_msg(strstr(cl + 1, "Content-Length: ") == NULL, "two Content-Length headers");
    ck_assert_msg(cl == a.head || cl[-1] == '\n', "Content-Length not at a line start");
    ck_assert_uint_eq(strtoull(cl + 16, NULL, 10), a.body_len);
    return a;
}

/* The value of header name in a ("" when absent, so it can be compared). */
static const char *header(const answer *a, const char *name, char *val, size_t len)
{
    char want[64];
    snprintf(want, sizeof want, "%s: ", name);
    val[0] = '\0';
    for (const char *p = a->head; *p;) {
        const char *e = strstr(p, "\r\n");
        if (!e)
            break;
        if (strncmp(p, want, strlen(want)) == 0) {
            size_t n = (size_t)(e - p) - strlen(want);
            ck_assert_uint_lt(n, len);
            memcpy(val, p + strlen(want), n);
            val[n] = '\0';
            return val;
        }
        p = e + 2;
    }
    return val;
}

/* serve() returned 0 and the answer has this status line and exactly this body. */
static answer expect_answer(const char *status_line, const char *body)
{
    ck_assert_int_eq(serve(), 0);
    answer a = parse_answer();
    ck_assert_str_eq(a.status_line, status_line);
    if (body) {
        ck_assert_uint_eq(a.body_len, strlen(body));
        ck_assert_mem_eq(a.body, body, a.body_len);
    }
    return a;
}

/* The 400/107 answer to BODY_TRAILING: the JSON intake saw all 17 bytes. */
static void expect_trailing_refused(void)
{
    answer a = expect_answer("400 Bad Request", NULL);
    char v[128];
    ck_assert_str_eq(header(&a, "Content-Type", v, sizeof v), "application/json");
    ck_assert_msg(a.body_len > strlen(ERR_BAD_PREFIX) &&
                      memcmp(a.body, ERR_BAD_PREFIX, strlen(ERR_BAD_PREFIX)) == 0,
                  "body \"%s\"", a.body);
    ck_assert_msg(strstr(a.body, "byte 16") != NULL, "body \"%s\" does not point at byte 16",
                  a.body);
}

/* ---- the path ---- */

/* SCRIPT_NAME + PATH_INFO, concatenated: "/api" alone is the legacy endpoint and
 * "/get_user_status" alone is outside the prefix; only both reach the method. */
START_TEST(test_path_script_name_plus_path_info)
{
    request(BODY_TRAILING, "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api", "PATH_INFO",
            "/get_user_status", "HTTP_X_API_KEY", KEY, "CONTENT_LENGTH", "17", "REQUEST_URI",
            "/elsewhere", NULL);
    expect_trailing_refused();
}
END_TEST

/* Either part alone is the path too. */
START_TEST(test_path_either_part)
{
    request(NULL, "REQUEST_METHOD", "GET", "SCRIPT_NAME", "/metrics", NULL);
    answer a = expect_answer("200 OK", NULL);
    char v[128];
    ck_assert_str_eq(header(&a, "Content-Type", v, sizeof v),
                     "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_uint_gt(a.body_len, 0);
    request(NULL, "REQUEST_METHOD", "GET", "SCRIPT_NAME", "", "PATH_INFO", "/metrics", NULL);
    expect_answer("200 OK", NULL);
    /* Not the ops path: a GET elsewhere is refused by the server API. */
    request(NULL, "REQUEST_METHOD", "GET", "SCRIPT_NAME", "/metrics", "PATH_INFO", "/x", NULL);
    expect_answer("405 Method Not Allowed", "");
}
END_TEST

/* With SCRIPT_NAME and PATH_INFO empty or absent, REQUEST_URI without its query string. */
START_TEST(test_path_from_request_uri)
{
    request(NULL, "REQUEST_METHOD", "GET", "SCRIPT_NAME", "", "PATH_INFO", "", "REQUEST_URI",
            "/metrics?format=text", NULL);
    expect_answer("200 OK", NULL);
    request(NULL, "REQUEST_METHOD", "GET", "REQUEST_URI", "/metrics", NULL);
    expect_answer("200 OK", NULL);
    request(NULL, "REQUEST_METHOD", "GET", "REQUEST_URI", "/metrics#top", NULL);
    expect_answer("200 OK", NULL);
    request(BODY_TRAILING, "REQUEST_METHOD", "POST", "REQUEST_URI",
            "/api/get_user_status?api_key=" KEY, "QUERY_STRING", "api_key=" KEY, "CONTENT_LENGTH",
            "17", NULL);
    expect_trailing_refused();
}
END_TEST

/* No path at all: not the ops endpoints, not the API's methods. */
START_TEST(test_path_absent)
{
    request(NULL, "REQUEST_METHOD", "GET", NULL);
    expect_answer("405 Method Not Allowed", "");
    request("{}", "REQUEST_METHOD", "POST", "HTTP_X_API_KEY", KEY, "CONTENT_LENGTH", "2", NULL);
    expect_answer("404 Not Found", ERR_NOT_FOUND);
}
END_TEST

/* ---- what the app answers, as the adapter writes it ---- */

START_TEST(test_get_is_405_with_allow)
{
    /* A GET with a declared body: the body is not read for a method that has none. */
    request("{}", "REQUEST_METHOD", "GET", "SCRIPT_NAME", "/api/get_user_status", "HTTP_X_API_KEY",
            KEY, "CONTENT_LENGTH", "2", NULL);
    answer a = expect_answer("405 Method Not Allowed", "");
    char v[128];
    ck_assert_str_eq(header(&a, "Allow", v, sizeof v), "POST");
    ck_assert_str_eq(header(&a, "Content-Type", v, sizeof v), "");
    ck_assert_int_eq(io.reads, 0);
    /* The whole head, byte for byte. */
    ck_assert_str_eq(io.out.data, "Status: 405 Method Not Allowed\r\n"
                                  "Content-Length: 0\r\n"
                                  "Allow: POST\r\n"
                                  "\r\n");
}
END_TEST

START_TEST(test_wrong_or_missing_key_is_401)
{
    request("{}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status", "HTTP_X_API_KEY",
            KEY "x", "CONTENT_LENGTH", "2", NULL);
    expect_answer("401 Unauthorized", "");
    request("{}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status", "CONTENT_LENGTH",
            "2", NULL);
    expect_answer("401 Unauthorized", "");
    /* The other two places a key may come from are passed through: Authorization and
     * the query string. */
    request("{}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/nope", "HTTP_AUTHORIZATION",
            "apikey " KEY, "CONTENT_LENGTH", "2", NULL);
    expect_answer("404 Not Found", ERR_NOT_FOUND);
    request("{}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/nope", "QUERY_STRING",
            "api_key=" KEY, "CONTENT_LENGTH", "2", NULL);
    expect_answer("404 Not Found", ERR_NOT_FOUND);
}
END_TEST

START_TEST(test_unknown_method_is_404)
{
    post("/api/nope", "{}");
    answer a = expect_answer("404 Not Found", ERR_NOT_FOUND);
    char v[128];
    ck_assert_str_eq(header(&a, "Content-Type", v, sizeof v), "application/json");
    char want[256];
    snprintf(want, sizeof want,
             "Status: 404 Not Found\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(ERR_NOT_FOUND), ERR_NOT_FOUND);
    ck_assert_str_eq(io.out.data, want);
    ck_assert_uint_eq(io.pos, 2); /* the body was read */
}
END_TEST

/* ---- CONTENT_LENGTH and the body ---- */

/* Over the limit: 413, and not one byte read. */
START_TEST(test_too_large_is_413_unread)
{
    char big[200];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    request(big, "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status", "HTTP_X_API_KEY",
            KEY, "CONTENT_LENGTH", "65", NULL);
    expect_answer("413 Payload Too Large", "");
    ck_assert_int_eq(io.reads, 0);
    ck_assert_uint_eq(io.pos, 0);
    /* a declared length far beyond any limit */
    request(big, "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status", "HTTP_X_API_KEY",
            KEY, "CONTENT_LENGTH", "1099511627776", NULL);
    expect_answer("413 Payload Too Large", "");
    ck_assert_int_eq(io.reads, 0);
    /* beyond what any integer type holds: still a number, still too large */
    request(big, "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status", "HTTP_X_API_KEY",
            KEY, "CONTENT_LENGTH", "99999999999999999999999999999999999999", NULL);
    expect_answer("413 Payload Too Large", "");
    ck_assert_int_eq(io.reads, 0);
    /* also without the key: limits before work */
    request(big, "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status", "CONTENT_LENGTH",
            "65", NULL);
    expect_answer("413 Payload Too Large", "");
    ck_assert_int_eq(io.reads, 0);
}
END_TEST

/* At the limit exactly, the body is read and handled. */
START_TEST(test_at_the_limit_is_read)
{
    char body[MAX_BODY + 1];
    memset(body, ' ', MAX_BODY);
    memcpy(body, "{\"users\":[\"a\"]}", 15);
    body[MAX_BODY - 1] = 'x'; /* after the value: refused at byte 63 */
    body[MAX_BODY] = '\0';
    post("/api/get_user_status", body);
    answer a = expect_answer("400 Bad Request", NULL);
    ck_assert_uint_eq(io.pos, MAX_BODY);
    ck_assert_msg(strstr(a.body, "byte 63") != NULL, "body \"%s\"", a.body);
}
END_TEST

/* Without CONTENT_LENGTH the body is read to its end, but never more than one byte past
 * the limit: then 413. */
START_TEST(test_no_content_length)
{
    request(BODY_TRAILING, "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status",
            "HTTP_X_API_KEY", KEY, NULL);
    expect_trailing_refused();
    ck_assert_uint_eq(io.pos, strlen(BODY_TRAILING));
    char big[1000];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    request(big, "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status", "HTTP_X_API_KEY",
            KEY, "CONTENT_LENGTH", "", NULL);
    expect_answer("413 Payload Too Large", "");
    ck_assert_uint_le(io.pos, MAX_BODY + 1);
    ck_assert_uint_gt(io.pos, MAX_BODY);
}
END_TEST

/* A declared length shorter than what the client sends: only the declared bytes. */
START_TEST(test_reads_only_the_declared_length)
{
    request("{}garbage", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/nope", "HTTP_X_API_KEY",
            KEY, "CONTENT_LENGTH", "2", NULL);
    expect_answer("404 Not Found", ERR_NOT_FOUND);
    ck_assert_uint_eq(io.pos, 2);
}
END_TEST

static const char *const bad_lengths[] = {"12x", "-1", "+2", " 2", "2 ", "0x10", "1.0", "x"};

/* Not a number: 400 with error 107, nothing read. */
START_TEST(test_malformed_content_length_is_400)
{
    request("{}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/nope", "HTTP_X_API_KEY", KEY,
            "CONTENT_LENGTH", bad_lengths[_i], NULL);
    expect_answer("400 Bad Request", ERR_BAD_PREFIX "CONTENT_LENGTH is not a number\"}}");
    ck_assert_int_eq(io.reads, 0);
}
END_TEST

/* The body one byte per read (a slow client, FastCGI records split anywhere). */
START_TEST(test_body_one_byte_per_read)
{
    post("/api/get_user_status", BODY_TRAILING);
    io.chunk = 1;
    expect_trailing_refused();
    ck_assert_int_ge(io.reads, (int)strlen(BODY_TRAILING));
    ck_assert_uint_eq(io.pos, strlen(BODY_TRAILING));
    /* the same without a declared length: read until the end */
    request(BODY_TRAILING, "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status",
            "HTTP_X_API_KEY", KEY, NULL);
    io.chunk = 3;
    expect_trailing_refused();
    ck_assert_uint_eq(io.pos, strlen(BODY_TRAILING));
}
END_TEST

/* A body shorter than its CONTENT_LENGTH (the stream ended early): 400, never run, even
 * when the part that came is a whole request (before: {"users":["short1"]} under a
 * CONTENT_LENGTH of 1000 was run). The app is not reached: a 404 path answers 400. */
START_TEST(test_body_shorter_than_declared)
{
    static const char *const paths[] = {"/api/get_user_status", "/api/nope"};
    for (size_t i = 0; i < 2; i++) {
        request("{\"users\":[\"short1\"]}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", paths[i],
                "HTTP_X_API_KEY", KEY, "CONTENT_LENGTH", "40", NULL);
        expect_answer("400 Bad Request",
                      ERR_BAD_PREFIX "the body ended before CONTENT_LENGTH bytes\"}}");
        ck_assert_uint_eq(io.pos, strlen("{\"users\":[\"short1\"]}"));
    }
}
END_TEST

/* The worker's request_read hook: called once the whole request is in and before it
 * runs (the end of fcgi.request_timeout's clock), never for a request refused unread or
 * cut short. */
static int request_read_calls;
static size_t pos_at_request_read;
static void on_request_read(void *ctx)
{
    ck_assert_ptr_eq(ctx, &io);
    request_read_calls++;
    pos_at_request_read = io.pos;
}

START_TEST(test_request_read_hook)
{
    adapter.request_read = on_request_read;
    request_read_calls = 0;
    post("/api/nope", "{}");
    expect_answer("404 Not Found", ERR_NOT_FOUND);
    ck_assert_int_eq(request_read_calls, 1);
    ck_assert_uint_eq(pos_at_request_read, 2);
    request(NULL, "REQUEST_METHOD", "GET", "SCRIPT_NAME", "/api/nope", NULL);
    expect_answer("405 Method Not Allowed", "");
    ck_assert_int_eq(request_read_calls, 2);
    request("{}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/nope", "CONTENT_LENGTH", "65",
            NULL);
    expect_answer("413 Payload Too Large", "");
    request("{}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/nope", "CONTENT_LENGTH", "-2",
            NULL);
    expect_answer("400 Bad Request", NULL);
    request("{}", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/nope", "CONTENT_LENGTH", "3",
            NULL);
    expect_answer("400 Bad Request", NULL);
    ck_assert_int_eq(request_read_calls, 2);
}
END_TEST

/* ---- failures of the web server's side ---- */

START_TEST(test_read_failure_is_minus_one)
{
    us_test_stderr cap;
    char line[2048];
    post("/api/get_user_status", BODY_TRAILING);
    io.fail_read_at = 1;
    us_test_stderr_begin(&cap);
    ck_assert_int_eq(serve(), -1);
    ck_assert_int_eq(io.writes, 0); /* no answer to a request that was not read */
    /* a failure after some bytes came */
    post("/api/get_user_status", BODY_TRAILING);
    io.chunk = 1;
    io.fail_read_at = 5;
    ck_assert_int_eq(serve(), -1);
    ck_assert_int_eq(io.writes, 0);
    ck_assert_int_eq(io.reads, 5);
    /* it is logged, once per failure */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_ge(us_test_stderr_next(&cap, line, sizeof line), 0);
        ck_assert_msg(strstr(line, "reading the request body failed") != NULL, "logged \"%s\"",
                      line);
    }
    ck_assert_int_lt(us_test_stderr_next(&cap, line, sizeof line), 0);
    us_test_stderr_end(&cap);
}
END_TEST

START_TEST(test_write_failure_is_minus_one)
{
    /* the head */
    post("/api/nope", "{}");
    io.fail_write_at = 1;
    ck_assert_int_eq(serve(), -1);
    ck_assert_int_eq(io.writes, 1);
    /* the body */
    post("/api/nope", "{}");
    io.fail_write_at = 2;
    ck_assert_int_eq(serve(), -1);
    ck_assert_int_eq(io.writes, 2);
    /* a bodiless answer is one write: failing a second one changes nothing */
    request(NULL, "REQUEST_METHOD", "GET", "SCRIPT_NAME", "/api/x", NULL);
    io.fail_write_at = 2;
    expect_answer("405 Method Not Allowed", "");
    ck_assert_int_eq(io.writes, 1);
}
END_TEST

/* ---- one adapter, many requests ---- */

/* The adapter keeps its buffers across requests: nothing of one answer may show in the
 * next (the 405's Allow header, a longer body, a longer path). */
START_TEST(test_requests_in_a_row)
{
    request(NULL, "REQUEST_METHOD", "GET", "SCRIPT_NAME", "/api/some/long/path/here", NULL);
    expect_answer("405 Method Not Allowed", "");
    post("/api/nope", "{}");
    answer a = expect_answer("404 Not Found", ERR_NOT_FOUND);
    char v[128];
    ck_assert_str_eq(header(&a, "Allow", v, sizeof v), "");
    post("/api/get_user_status", BODY_TRAILING);
    expect_trailing_refused();
    request(NULL, "REQUEST_METHOD", "GET", "SCRIPT_NAME", "/metrics", NULL);
    expect_answer("200 OK", NULL);
    /* a shorter body after a longer one is not padded with the old bytes */
    post("/api/nope", "{}");
    expect_answer("404 Not Found", ERR_NOT_FOUND);
    request("{\"users\":[", "REQUEST_METHOD", "POST", "SCRIPT_NAME", "/api/get_user_status",
            "HTTP_X_API_KEY", KEY, NULL);
    a = expect_answer("400 Bad Request", NULL);
    ck_assert_msg(strstr(a.body, "truncated JSON") != NULL, "body \"%s\"", a.body);
}
END_TEST

static Suite *adapter_suite(void)
{
    Suite *s = suite_create("adapter");
    TCase *tc = tcase_create("path");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_path_script_name_plus_path_info);
    tcase_add_test(tc, test_path_either_part);
    tcase_add_test(tc, test_path_from_request_uri);
    tcase_add_test(tc, test_path_absent);
    suite_add_tcase(s, tc);

    tc = tcase_create("answers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_get_is_405_with_allow);
    tcase_add_test(tc, test_wrong_or_missing_key_is_401);
    tcase_add_test(tc, test_unknown_method_is_404);
    suite_add_tcase(s, tc);

    tc = tcase_create("body");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_too_large_is_413_unread);
    tcase_add_test(tc, test_at_the_limit_is_read);
    tcase_add_test(tc, test_no_content_length);
    tcase_add_test(tc, test_reads_only_the_declared_length);
    tcase_add_loop_test(tc, test_malformed_content_length_is_400, 0, N_ELEMS(bad_lengths));
    tcase_add_test(tc, test_body_one_byte_per_read);
    tcase_add_test(tc, test_body_shorter_than_declared);
    tcase_add_test(tc, test_request_read_hook);
    suite_add_tcase(s, tc);

    tc = tcase_create("io_failures");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_read_failure_is_minus_one);
    tcase_add_test(tc, test_write_failure_is_minus_one);
    tcase_add_test(tc, test_requests_in_a_row);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(adapter_suite)
