/* Unit tests for commands (command.h): the method table, the state rule set, the JSON
 * intake bound, and what a request's params become: the store operations themselves.
 *
 * test_api.c sees only the envelope, and with Redis down every valid write answers the
 * same error 100, so it cannot tell clearing the state from keeping it. Here the produced
 * us_op list is read directly. And the in-place fast parser (us_command_parse_plain) is
 * compared body by body with the json-c path (us_command_parse_params): wherever the
 * fast path takes a body, both must produce the same outcome and the same operations. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/buf.h"
#include "ustatus/command.h"
#include "ustatus/config.h"
#include "ustatus/store.h"

static us_config *cfg;
static us_command_rules *rules;

static void teardown(void)
{
    us_command_rules_free(rules);
    us_config_free(cfg);
    rules = NULL;
    cfg = NULL;
}

/* Loads a configuration whose user_status section holds user_status (and a Redis where
 * nothing listens: nothing here talks to it). */
static us_config *load_config(const char *user_status)
{
    return us_test_config("user_status { %s redis { address = {\"127.0.0.1:1\"} } }\n"
                          "log { level = \"error\" }\n",
                          user_status);
}

static void open_rules(const char *user_status)
{
    char err[256] = "";
    cfg = load_config(user_status);
    rules = us_command_rules_create(cfg, err, sizeof err);
    ck_assert_msg(rules != NULL, "rules: %s", err);
}

static us_command fresh_command(us_method m)
{
    us_command c;
    memset(&c, 0, sizeof c);
    c.method = m;
    return c;
}

/* ---- the method table ---- */

START_TEST(test_method_lookup)
{
    static const struct {
        const char *name;
        us_method m;
    } table[] = {
        {"update_user_status", US_METHOD_UPDATE},
        {"get_user_status", US_METHOD_GET},
        {"delete_user_status", US_METHOD_DELETE},
        {"update_user_online", US_METHOD_ONLINE},
    };
    for (int i = 0; i < N_ELEMS(table); i++) {
        const char *name = table[i].name;
        size_t len = strlen(name);
        ck_assert_int_eq(us_method_lookup(name, len, false), table[i].m);
        ck_assert_int_eq(us_method_lookup(name, len, true), table[i].m);
        ck_assert_str_eq(us_method_name(table[i].m), name);

        char upper[64];
        for (size_t k = 0; k <= len; k++)
            upper[k] = (char)(name[k] >= 'a' && name[k] <= 'z' ? name[k] - 32 : name[k]);
        ck_assert_int_eq(us_method_lookup(upper, len, false), US_METHOD_UNKNOWN);
        ck_assert_int_eq(us_method_lookup(upper, len, true), table[i].m);

        /* The length is the name's: a prefix or a longer text is not the method. */
        ck_assert_int_eq(us_method_lookup(name, len - 1, false), US_METHOD_UNKNOWN);
        ck_assert_int_eq(us_method_lookup(name, len - 1, true), US_METHOD_UNKNOWN);
        char longer[64];
        snprintf(longer, sizeof longer, "%sx", name);
        ck_assert_int_eq(us_method_lookup(longer, len + 1, true), US_METHOD_UNKNOWN);
        /* Not NUL-terminated at len: only len bytes count. */
        ck_assert_int_eq(us_method_lookup(longer, len, false), table[i].m);
    }
    ck_assert_int_eq(us_method_lookup("", 0, true), US_METHOD_UNKNOWN);
    ck_assert_int_eq(us_method_lookup(S("batch"), true), US_METHOD_UNKNOWN);
    ck_assert_int_eq(us_method_lookup(S("get_user_statuz"), true), US_METHOD_UNKNOWN);
    ck_assert_str_eq(us_method_name(US_METHOD_UNKNOWN), "");
}
END_TEST

/* ---- the rules ---- */

START_TEST(test_rules_bad_regex)
{
    /* The configuration refuses a bad regex itself, so put one in after loading. */
    cfg = load_config("");
    free(cfg->user_status.state_regex);
    cfg->user_status.state_regex = strdup("(unclosed");
    ck_assert_ptr_nonnull(cfg->user_status.state_regex);
    char err[256] = "";
    us_command_rules *r = us_command_rules_create(cfg, err, sizeof err);
    ck_assert_ptr_null(r);
    ck_assert_msg(strncmp(err, "user_status.state_regex: ", 25) == 0, "err: %s", err);
    ck_assert_uint_gt(strlen(err), 25);
}
END_TEST

START_TEST(test_rules_enabled)
{
    open_rules("");
    ck_assert(us_command_rules_enabled(rules));
    teardown();
    open_rules("enabled = false");
    ck_assert(!us_command_rules_enabled(rules));
}
END_TEST

/* rules_state on [sv, sv+sl): its mode, or its reason. */
static void state_ok(const char *sv, size_t sl, us_state_mode want)
{
    us_state_mode mode = (us_state_mode)77;
    char why[128] = "untouched";
    ck_assert_int_eq(us_command_rules_state(rules, sv, sl, &mode, why, sizeof why), 0);
    ck_assert_int_eq(mode, want);
}

static void state_bad(const char *sv, size_t sl, const char *want)
{
    us_state_mode mode = US_STATE_KEEP;
    char why[128] = "";
    ck_assert_int_eq(us_command_rules_state(rules, sv, sl, &mode, why, sizeof why), -1);
    ck_assert_str_eq(why, want);
}

START_TEST(test_rules_state)
{
    open_rules("");
    char s[US_STATE_MAX_BYTES + 2];
    memset(s, 's', sizeof s);
    ck_assert_int_eq(US_STATE_MAX_BYTES, 256);
    state_ok("", 0, US_STATE_CLEAR);
    state_ok("away", 4, US_STATE_SET);
    state_ok(s, 1, US_STATE_SET);
    state_ok(s, 256, US_STATE_SET);
    state_bad(s, 257, "state is too long");
    state_bad(S("a\0b"), "state contains a NUL character");
    state_bad(S("\0"), "state contains a NUL character");
    state_bad(S("\xfe"), "state is not valid UTF-8");
    state_bad(S("ok\xc3"), "state is not valid UTF-8");
    state_bad(S("\xed\xa0\x80"), "state is not valid UTF-8"); /* a surrogate */
    state_ok(S("日本語 😀"), US_STATE_SET);
}
END_TEST

START_TEST(test_rules_state_regex)
{
    open_rules("state_regex = \"^(away|busy)$\"");
    state_ok(S("away"), US_STATE_SET);
    state_ok(S("busy"), US_STATE_SET);
    state_bad(S("sleeping"), "state does not match state_regex");
    state_bad(S("away!"), "state does not match state_regex");
    state_bad(S("Away"), "state does not match state_regex");
    /* Clearing is not a state value: the regex does not apply. */
    state_ok("", 0, US_STATE_CLEAR);
    /* Only sl bytes count, read in place from a body that goes on. */
    state_ok("away\",\"users\":[]}", 4, US_STATE_SET);
    state_bad("awayyy", 5, "state does not match state_regex");
    /* The other rules come first. */
    state_bad(S("aw\xfe"), "state is not valid UTF-8");
}
END_TEST

/* The longest state, matched whole by a regex (the copy made for regexec holds it all). */
START_TEST(test_rules_state_regex_longest)
{
    open_rules("state_regex = \"^(aaaaaaaa){32}$\"");
    char s[US_STATE_MAX_BYTES + 1];
    memset(s, 'a', sizeof s);
    state_ok(s, 256, US_STATE_SET);
    state_bad(s, 255, "state does not match state_regex");
    state_bad(s, 257, "state is too long");
}
END_TEST

/* take_state on the JSON object text. */
static us_state_check take(const char *json, us_state_mode *mode, const char **sv, size_t *sl,
                           char *why, size_t why_len, json_object **keep)
{
    json_object *o = json_tokener_parse(json);
    ck_assert_ptr_nonnull(o);
    *keep = o;
    return us_command_rules_take_state(rules, o, mode, sv, sl, why, why_len);
}

START_TEST(test_rules_take_state)
{
    open_rules("state_regex = \"^[a-z]*$\"");
    static const struct {
        const char *json;
        us_state_check rc;
        us_state_mode mode;
        const char *state; /* with US_STATE_SET */
        const char *why;   /* when not OK */
    } cases[] = {
        {"{}", US_STATE_CHECK_OK, US_STATE_KEEP, NULL, NULL},
        {"{\"other\":\"away\"}", US_STATE_CHECK_OK, US_STATE_KEEP, NULL, NULL},
        {"{\"state\":null}", US_STATE_CHECK_OK, US_STATE_KEEP, NULL, NULL},
        {"{\"state\":\"\"}", US_STATE_CHECK_OK, US_STATE_CLEAR, NULL, NULL},
        {"{\"state\":\"away\"}", US_STATE_CHECK_OK, US_STATE_SET, "away", NULL},
        {"{\"state\":5}", US_STATE_CHECK_WRONG_TYPE, US_STATE_KEEP, NULL, "state must be a string"},
        {"{\"state\":true}", US_STATE_CHECK_WRONG_TYPE, US_STATE_KEEP, NULL,
         "state must be a string"},
        {"{\"state\":{}}", US_STATE_CHECK_WRONG_TYPE, US_STATE_KEEP, NULL,
         "state must be a string"},
        {"{\"state\":[\"away\"]}", US_STATE_CHECK_WRONG_TYPE, US_STATE_KEEP, NULL,
         "state must be a string"},
        {"{\"state\":\"Away\"}", US_STATE_CHECK_INVALID, US_STATE_KEEP, NULL,
         "state does not match state_regex"},
        {"{\"state\":\"a\\u0000\"}", US_STATE_CHECK_INVALID, US_STATE_KEEP, NULL,
         "state contains a NUL character"},
    };
    for (int i = 0; i < N_ELEMS(cases); i++) {
        us_state_mode mode = (us_state_mode)77;
        const char *sv = "garbage";
        size_t sl = 99;
        char why[128] = "";
        json_object *o;
        us_state_check rc = take(cases[i].json, &mode, &sv, &sl, why, sizeof why, &o);
        ck_assert_msg(rc == cases[i].rc, "%s: rc %d", cases[i].json, (int)rc);
        if (rc == US_STATE_CHECK_OK) {
            ck_assert_msg(mode == cases[i].mode, "%s: mode %d", cases[i].json, (int)mode);
            if (cases[i].state) {
                ck_assert_uint_eq(sl, strlen(cases[i].state));
                ck_assert_mem_eq(sv, cases[i].state, sl);
                /* borrowed from the object */
                json_object *st = json_object_object_get(o, "state");
                ck_assert_ptr_eq(sv, json_object_get_string(st));
            } else {
                ck_assert_ptr_null(sv);
                ck_assert_uint_eq(sl, 0);
            }
        } else {
            ck_assert_str_eq(why, cases[i].why);
        }
        json_object_put(o);
    }
}
END_TEST

/* A state longer than the limit, through take_state too. */
START_TEST(test_rules_take_state_too_long)
{
    open_rules("");
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"state\":\"");
    for (int i = 0; i < 257; i++)
        us_buf_putc(&b, 'x');
    us_buf_puts(&b, "\"}");
    us_state_mode mode;
    const char *sv;
    size_t sl;
    char why[128] = "";
    json_object *o;
    ck_assert_int_eq(take(b.data, &mode, &sv, &sl, why, sizeof why, &o), US_STATE_CHECK_INVALID);
    ck_assert_str_eq(why, "state is too long");
    json_object_put(o);
    us_buf_free(&b);
}
END_TEST

/* ---- the JSON intake ---- */

static void intake_refuses(const char *s, size_t n, const char *want)
{
    char why[128] = "";
    json_object *o = us_command_rules_parse_object(rules, s, n, "body", why, sizeof why);
    ck_assert_msg(o == NULL, "accepted: %.*s", (int)n, s);
    ck_assert_msg(why[0] != '\0', "no reason for: %.*s", (int)n, s);
    if (want)
        ck_assert_str_eq(why, want);
}

START_TEST(test_intake)
{
    open_rules("");
    char why[128] = "";
    json_object *o =
        us_command_rules_parse_object(rules, S("{\"users\":[\"a\"]}"), "body", why, sizeof why);
    ck_assert_ptr_nonnull(o);
    ck_assert(json_object_is_type(o, json_type_object));
    json_object_put(o);

    /* json-c alone would take these. */
    intake_refuses(S("{\"users\":[NaN]}"), NULL);
    intake_refuses(S("{\"users\":[],\"x\":NaN}"), NULL);
    intake_refuses(S("{\"x\":Infinity}"), NULL);
    intake_refuses(S("{\"x\":-Infinity}"), NULL);
    intake_refuses(S("{\"users\":[\"a\x01\"]}"), NULL);
    intake_refuses(S("{\"users\":[\"a\tb\"]}"), NULL);
    intake_refuses(S("{\"users\":[\"a\0\"]}"), NULL);
    intake_refuses(S("{\"users\":[]} x"), NULL);
    intake_refuses(S("{\"users\":[]}{}"), NULL);
    intake_refuses(S("{\"users\":[],}"), NULL);
    intake_refuses(S("{'users':[]}"), NULL);
    intake_refuses(S("{\"users\":[]"), "truncated JSON");
    intake_refuses(S(""), "empty body");
    intake_refuses(S("  \n"), "empty body");
    /* Only n bytes count. */
    intake_refuses("{\"users\":[]}", 5, "truncated JSON");
    /* Valid JSON that is not an object. */
    intake_refuses(S("[]"), "body must be a JSON object");
    intake_refuses(S("[{\"users\":[]}]"), "body must be a JSON object");
    intake_refuses(S("null"), "body must be a JSON object");
    intake_refuses(S("42"), "body must be a JSON object");
    intake_refuses(S("\"users\""), "body must be a JSON object");
    intake_refuses(S("true"), "body must be a JSON object");
    /* The name given is the one in the reason. */
    o = us_command_rules_parse_object(rules, S("[]"), "data", why, sizeof why);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(why, "data must be a JSON object");
}
END_TEST

/* The bound: max_users_per_request + 1000 commands * 16 + 64 values. */
START_TEST(test_intake_value_bound)
{
    open_rules("max_users_per_request = 3");
    const size_t max_values = 3 + 1000 * 16 + 64;
    us_buf b = US_BUF_INIT;
    char why[128] = "";
    /* {"users":[...]} holds the object, the array and one value per user. */
    for (int over = 0; over <= 1; over++) {
        us_buf_reset(&b);
        us_buf_puts(&b, "{\"users\":[");
        for (size_t i = 0; i < max_values - 2 + (size_t)over; i++)
            us_buf_puts(&b, i ? ",1" : "1");
        us_buf_puts(&b, "]}");
        json_object *o =
            us_command_rules_parse_object(rules, b.data, b.len, "body", why, sizeof why);
        if (!over) {
            ck_assert_msg(o != NULL, "refused at the bound: %s", why);
            json_object_put(o);
        } else {
            ck_assert_ptr_null(o);
            char want[64];
            snprintf(want, sizeof want, "more than %zu JSON values", max_values);
            ck_assert_str_eq(why, want);
        }
    }
    us_buf_free(&b);
}
END_TEST

/* Several bodies of one request share the bound: each is refused when it holds more
 * values than are left, and what json-c holds of each is taken off. */
START_TEST(test_intake_value_bound_shared)
{
    open_rules("max_users_per_request = 3");
    const size_t max_values = 3 + 1000 * 16 + 64;
    ck_assert_uint_eq(us_command_rules_max_values(rules), max_values);
    size_t left = max_values;
    char why[128] = "";
    /* {"a":[1,2,3],"b":null}: object, array, 3 numbers, null = 6 values */
    json_object *o = us_command_rules_parse_object_shared(
        rules, S("{\"a\":[1,2,3],\"b\":null}"), &left, "a command", why, sizeof why);
    ck_assert_ptr_nonnull(o);
    json_object_put(o);
    ck_assert_uint_eq(left, max_values - 6);
    /* a repeated key: json-c keeps one member, and counts for what it keeps */
    o = us_command_rules_parse_object_shared(rules, S("{\"a\":[1,2],\"a\":1}"), &left,
                                             "a command", why, sizeof why);
    ck_assert_ptr_nonnull(o);
    json_object_put(o);
    ck_assert_uint_eq(left, max_values - 8);
    /* a body holding more than what is left */
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"x\":[");
    for (size_t i = 0; i < left; i++)
        us_buf_puts(&b, i ? ",1" : "1");
    us_buf_puts(&b, "]}");
    o = us_command_rules_parse_object_shared(rules, b.data, b.len, &left, "a command", why,
                                             sizeof why);
    ck_assert_ptr_null(o);
    char want[80];
    snprintf(want, sizeof want, "more than %zu JSON values in this request", max_values);
    ck_assert_str_eq(why, want);
    ck_assert_uint_eq(left, max_values - 8);
    /* exactly what is left: taken, and then nothing more is */
    us_buf_reset(&b);
    us_buf_puts(&b, "{\"x\":[");
    for (size_t i = 0; i < left - 2; i++)
        us_buf_puts(&b, i ? ",1" : "1");
    us_buf_puts(&b, "]}");
    o = us_command_rules_parse_object_shared(rules, b.data, b.len, &left, "a command", why,
                                             sizeof why);
    ck_assert_msg(o != NULL, "%s", why);
    json_object_put(o);
    ck_assert_uint_eq(left, 0);
    o = us_command_rules_parse_object_shared(rules, S("{}"), &left, "a command", why,
                                             sizeof why);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(why, want);
    /* a syntax error keeps its own reason */
    left = 10;
    o = us_command_rules_parse_object_shared(rules, S("{"), &left, "a command", why, sizeof why);
    ck_assert_ptr_null(o);
    ck_assert_str_eq(why, "truncated JSON");
    ck_assert_uint_eq(left, 10);
    us_buf_free(&b);
}
END_TEST

/* ---- params -> operations ---- */

/* Parses body for method m on path 0 (the fast path, which must take it) or 1 (json-c),
 * on a fresh command and list. Returns the json object to put after use (or NULL). */
static json_object *parse_on(int path, us_method m, const char *body, us_command *c,
                             us_op_list *ops)
{
    *c = fresh_command(m);
    memset(ops, 0, sizeof *ops);
    if (path == 0) {
        ck_assert_msg(us_command_parse_plain(rules, c, body, strlen(body), ops),
                      "the fast path declined %s", body);
        return NULL;
    }
    char why[128] = "";
    json_object *o =
        us_command_rules_parse_object(rules, body, strlen(body), "body", why, sizeof why);
    ck_assert_msg(o != NULL, "%s: %s", body, why);
    us_command_parse_params(rules, c, o, ops);
    return o;
}

static void expect_op(const us_op_list *ops, size_t i, us_op_kind kind, unsigned fields,
                      us_state_mode mode, const char *state, const char *user)
{
    ck_assert_uint_lt(i, ops->n);
    const us_op *op = &ops->v[i];
    ck_assert_int_eq(op->kind, kind);
    ck_assert_uint_eq(op->fields, fields);
    ck_assert_int_eq(op->state_mode, mode);
    if (state) {
        ck_assert_ptr_nonnull(op->state);
        ck_assert_uint_eq(op->state_len, strlen(state));
        ck_assert_mem_eq(op->state, state, op->state_len);
    } else {
        ck_assert_ptr_null(op->state);
        ck_assert_uint_eq(op->state_len, 0);
    }
    ck_assert_uint_eq(op->user_len, strlen(user));
    ck_assert_mem_eq(op->user, user, op->user_len);
    ck_assert(!op->failed);
}

static void expect_ok(const us_command *c, const us_op_list *ops, size_t n)
{
    ck_assert_msg(c->code == 0, "failed: %d %s", c->code, c->details);
    ck_assert_uint_eq(c->op_start, 0);
    ck_assert_uint_eq(c->op_count, n);
    ck_assert_uint_eq(ops->n, n);
}

/* The issue: clearing, keeping and setting the state are three different operations. */
START_TEST(test_update_state_modes)
{
    int path = _i;
    open_rules("");
    us_command c;
    us_op_list ops;
    json_object *o;

    o = parse_on(path, US_METHOD_UPDATE, "{\"users\":[\"42\"],\"state\":\"\"}", &c, &ops);
    expect_ok(&c, &ops, 1);
    expect_op(&ops, 0, US_OP_WRITE, US_FIELD_ACTIVE, US_STATE_CLEAR, NULL, "42");
    free(ops.v);
    json_object_put(o);

    o = parse_on(path, US_METHOD_UPDATE, "{\"users\":[\"42\"]}", &c, &ops);
    expect_ok(&c, &ops, 1);
    expect_op(&ops, 0, US_OP_WRITE, US_FIELD_ACTIVE, US_STATE_KEEP, NULL, "42");
    free(ops.v);
    json_object_put(o);

    o = parse_on(path, US_METHOD_UPDATE, "{\"users\":[\"42\",\"43\"],\"state\":\"away\"}", &c,
                 &ops);
    expect_ok(&c, &ops, 2);
    expect_op(&ops, 0, US_OP_WRITE, US_FIELD_ACTIVE, US_STATE_SET, "away", "42");
    expect_op(&ops, 1, US_OP_WRITE, US_FIELD_ACTIVE, US_STATE_SET, "away", "43");
    free(ops.v);
    json_object_put(o);
}
END_TEST

/* A null state is absent (json-c path only: the fast path declines a null). */
START_TEST(test_update_null_state_keeps)
{
    open_rules("");
    us_command c;
    us_op_list ops;
    json_object *o = parse_on(1, US_METHOD_UPDATE, "{\"users\":[\"42\"],\"state\":null}", &c, &ops);
    expect_ok(&c, &ops, 1);
    expect_op(&ops, 0, US_OP_WRITE, US_FIELD_ACTIVE, US_STATE_KEEP, NULL, "42");
    free(ops.v);
    json_object_put(o);
    /* And an escaped state is decoded. */
    o = parse_on(1, US_METHOD_UPDATE, "{\"users\":[\"42\"],\"state\":\"a\\u0077ay\"}", &c, &ops);
    expect_ok(&c, &ops, 1);
    expect_op(&ops, 0, US_OP_WRITE, US_FIELD_ACTIVE, US_STATE_SET, "away", "42");
    free(ops.v);
    json_object_put(o);
}
END_TEST

START_TEST(test_other_methods_ops)
{
    int path = _i;
    open_rules("");
    us_command c;
    us_op_list ops;
    json_object *o;
    /* The state is the update's only: others ignore it, whatever it is. */
    const char *body = "{\"users\":[\"a\",\"b\",\"a\"],\"state\":\"away\"}";

    o = parse_on(path, US_METHOD_ONLINE, body, &c, &ops);
    expect_ok(&c, &ops, 3);
    expect_op(&ops, 0, US_OP_WRITE, US_FIELD_ONLINE, US_STATE_KEEP, NULL, "a");
    expect_op(&ops, 1, US_OP_WRITE, US_FIELD_ONLINE, US_STATE_KEEP, NULL, "b");
    expect_op(&ops, 2, US_OP_WRITE, US_FIELD_ONLINE, US_STATE_KEEP, NULL, "a");
    free(ops.v);
    json_object_put(o);

    o = parse_on(path, US_METHOD_GET, body, &c, &ops);
    expect_ok(&c, &ops, 3);
    expect_op(&ops, 0, US_OP_GET, 0, US_STATE_KEEP, NULL, "a");
    expect_op(&ops, 1, US_OP_GET, 0, US_STATE_KEEP, NULL, "b");
    expect_op(&ops, 2, US_OP_GET, 0, US_STATE_KEEP, NULL, "a");
    free(ops.v);
    json_object_put(o);

    o = parse_on(path, US_METHOD_DELETE, body, &c, &ops);
    expect_ok(&c, &ops, 3);
    expect_op(&ops, 0, US_OP_DELETE, 0, US_STATE_KEEP, NULL, "a");
    expect_op(&ops, 2, US_OP_DELETE, 0, US_STATE_KEEP, NULL, "a");
    free(ops.v);
    json_object_put(o);

    /* An empty users array: success without an operation. */
    o = parse_on(path, US_METHOD_GET, "{\"users\":[]}", &c, &ops);
    expect_ok(&c, &ops, 0);
    free(ops.v);
    json_object_put(o);

    /* With a state the get ignores, even an invalid one. */
    o = parse_on(path, US_METHOD_GET, "{\"users\":[\"x\"],\"state\":\"\xfe\"}", &c, &ops);
    expect_ok(&c, &ops, 1);
    free(ops.v);
    json_object_put(o);
}
END_TEST

/* The failures with their exact code, HTTP class and details, on both paths. */
static void expect_fail(int path, us_method m, const char *body, bool type_error,
                        const char *details)
{
    us_command c;
    us_op_list ops;
    json_object *o = parse_on(path, m, body, &c, &ops);
    ck_assert_msg(c.code == 107, "%s: code %d", body, c.code);
    ck_assert_msg(c.type_error == type_error, "%s: type_error", body);
    ck_assert_str_eq(c.details, details);
    ck_assert_uint_eq(c.op_count, 0);
    ck_assert_uint_eq(ops.n, 0); /* nothing appended */
    free(ops.v);
    json_object_put(o);
}

START_TEST(test_params_failures)
{
    int path = _i;
    open_rules("max_users_per_request = 2 state_regex = \"^[a-z]*$\"");
    expect_fail(path, US_METHOD_UPDATE, "{\"users\":[\"\"]}", false, "users[0] is empty");
    expect_fail(path, US_METHOD_GET, "{\"users\":[\"a\",\"\"]}", false, "users[1] is empty");
    expect_fail(path, US_METHOD_GET, "{\"users\":[\"a\",\"b\",\"c\"]}", false,
                "too many users: 3, at most 2");
    expect_fail(path, US_METHOD_UPDATE, "{\"users\":[\"a\"],\"state\":\"Away\"}", false,
                "state does not match state_regex");
    /* State, then the limit, then each user (Centrifugo's order). */
    expect_fail(path, US_METHOD_UPDATE, "{\"users\":[\"\",\"b\",\"c\"],\"state\":\"\xfe\"}", false,
                "state is not valid UTF-8");
    /* The state is checked even when there is no user to write it for. */
    expect_fail(path, US_METHOD_UPDATE, "{\"users\":[],\"state\":\"\xfe\"}", false,
                "state is not valid UTF-8");
    expect_fail(path, US_METHOD_UPDATE, "{\"users\":[\"\",\"b\",\"c\"],\"state\":\"ok\"}", false,
                "too many users: 3, at most 2");
    expect_fail(path, US_METHOD_DELETE, "{\"users\":[\"\xc3\"]}", false,
                "users[0] is not valid UTF-8");
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"users\":[\"");
    for (int i = 0; i < 1025; i++)
        us_buf_putc(&b, 'u');
    us_buf_puts(&b, "\"]}");
    expect_fail(path, US_METHOD_GET, b.data, false, "users[0] is too long");
    us_buf_free(&b);
}
END_TEST

/* json-c path only: what the fast path declines. */
START_TEST(test_params_type_failures)
{
    open_rules("");
    expect_fail(1, US_METHOD_GET, "{}", false, "users is required");
    expect_fail(1, US_METHOD_GET, "{\"users\":null}", false, "users is required");
    expect_fail(1, US_METHOD_GET, "{\"users\":\"a\"}", true, "users must be an array of strings");
    expect_fail(1, US_METHOD_GET, "{\"users\":[\"a\",2]}", true, "users[1] is not a string");
    expect_fail(1, US_METHOD_UPDATE, "{\"users\":[],\"state\":5}", true, "state must be a string");
    expect_fail(1, US_METHOD_UPDATE, "{\"users\":[\"a\\u0000\"]}", false,
                "users[0] contains a NUL character");
    /* params that are not an object at all (a batch command's). */
    us_command c = fresh_command(US_METHOD_GET);
    us_op_list ops = {0};
    json_object *arr = json_object_new_array();
    us_command_parse_params(rules, &c, arr, &ops);
    ck_assert_int_eq(c.code, 107);
    ck_assert(c.type_error);
    ck_assert_str_eq(c.details, "params must be a JSON object");
    c = fresh_command(US_METHOD_GET);
    us_command_parse_params(rules, &c, NULL, &ops);
    ck_assert_str_eq(c.details, "params must be a JSON object");
    ck_assert_uint_eq(ops.n, 0);
    json_object_put(arr);
    free(ops.v);
}
END_TEST

START_TEST(test_disabled)
{
    open_rules("enabled = false");
    us_command c = fresh_command(US_METHOD_GET);
    us_op_list ops = {0};
    /* The fast path leaves it to the json-c path, which says 108. */
    ck_assert(!us_command_parse_plain(rules, &c, S("{\"users\":[\"a\"]}"), &ops));
    ck_assert_int_eq(c.code, 0);
    ck_assert_uint_eq(ops.n, 0);
    json_object *o =
        us_command_rules_parse_object(rules, S("{\"users\":[\"a\"]}"), "body", NULL, 0);
    ck_assert_ptr_nonnull(o);
    us_command_parse_params(rules, &c, o, &ops);
    ck_assert_int_eq(c.code, 108);
    ck_assert(!c.type_error);
    ck_assert_str_eq(c.details, "user status is disabled");
    ck_assert_uint_eq(ops.n, 0);
    json_object_put(o);
    free(ops.v);
}
END_TEST

/* Commands of one request share a list and the users limit. */
START_TEST(test_shared_list)
{
    open_rules("max_users_per_request = 3");
    us_op_list ops = {0};
    json_object *o1 = json_tokener_parse("{\"users\":[\"a\",\"b\"]}");
    json_object *o2 = json_tokener_parse("{\"users\":[\"c\"]}");
    json_object *o3 = json_tokener_parse("{\"users\":[\"d\"]}");
    us_command c1 = fresh_command(US_METHOD_GET), c2 = fresh_command(US_METHOD_DELETE),
               c3 = fresh_command(US_METHOD_GET);
    us_command_parse_params(rules, &c1, o1, &ops);
    us_command_parse_params(rules, &c2, o2, &ops);
    us_command_parse_params(rules, &c3, o3, &ops);
    ck_assert_int_eq(c1.code, 0);
    ck_assert_uint_eq(c1.op_start, 0);
    ck_assert_uint_eq(c1.op_count, 2);
    ck_assert_int_eq(c2.code, 0);
    ck_assert_uint_eq(c2.op_start, 2);
    ck_assert_uint_eq(c2.op_count, 1);
    ck_assert_int_eq(ops.v[2].kind, US_OP_DELETE);
    ck_assert_int_eq(c3.code, 107);
    ck_assert_str_eq(c3.details, "too many users: 4 in this request, at most 3");
    ck_assert_uint_eq(c3.op_count, 0);
    ck_assert_uint_eq(ops.n, 3);
    json_object_put(o1);
    json_object_put(o2);
    json_object_put(o3);
    free(ops.v);
}
END_TEST

/* ---- the two parsers agree ---- */

typedef struct body {
    char *s;
    size_t n;
    bool plain; /* the fast path is expected to take it */
} body;

typedef struct corpus {
    body v[128];
    int n;
} corpus;

static void add(corpus *c, const char *s, size_t n, bool plain)
{
    ck_assert_int_lt(c->n, N_ELEMS(c->v));
    c->v[c->n].s = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(c->v[c->n].s);
    memcpy(c->v[c->n].s, s, n);
    c->v[c->n].n = n;
    c->v[c->n].plain = plain;
    c->n++;
}

#define PLAIN(lit) add(c, S(lit), true)
#define OTHER(lit) add(c, S(lit), false)

/* {"users":["<user>"]} with a user of len bytes of 'u' (and a state of state_len bytes
 * when state_len >= 0). */
static void add_long(corpus *c, size_t user_len, int state_len)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"users\":[\"");
    for (size_t i = 0; i < user_len; i++)
        us_buf_putc(&b, (char)('a' + i % 26));
    us_buf_puts(&b, "\"]");
    if (state_len >= 0) {
        us_buf_puts(&b, ",\"state\":\"");
        for (int i = 0; i < state_len; i++)
            us_buf_putc(&b, 'a');
        us_buf_putc(&b, '"');
    }
    us_buf_putc(&b, '}');
    add(c, b.data, b.len, true);
    us_buf_free(&b);
}

static void build_corpus(corpus *c)
{
    c->n = 0;
    /* 0..3 users (and 4: over a small limit), with and without state */
    PLAIN("{\"users\":[]}");
    PLAIN("{\"users\":[\"42\"]}");
    PLAIN("{\"users\":[\"1\",\"2\"]}");
    PLAIN("{\"users\":[\"1\",\"2\",\"3\"]}");
    PLAIN("{\"users\":[\"1\",\"2\",\"3\",\"4\"]}");
    PLAIN("{\"users\":[\"1\",\"2\",\"3\",\"4\",\"\"]}");
    PLAIN("{\"users\":[],\"state\":\"x\"}");
    PLAIN("{\"users\":[\"42\"],\"state\":\"away\"}");
    PLAIN("{\"users\":[\"42\"],\"state\":\"Away\"}");
    PLAIN("{\"users\":[\"1\",\"2\",\"3\"],\"state\":\"busy\"}");
    PLAIN("{\"state\":\"busy\",\"users\":[\"a\",\"b\"]}");
    /* the empty state clears */
    PLAIN("{\"users\":[\"42\"],\"state\":\"\"}");
    PLAIN("{\"users\":[],\"state\":\"\"}");
    PLAIN("{\"users\":[\"\",\"\"],\"state\":\"\"}");
    /* unicode */
    PLAIN("{\"users\":[\"ünï\",\"日本語\",\"😀\"]}");
    PLAIN("{\"users\":[\"42\"],\"state\":\"😀 en réunion\"}");
    PLAIN("{\"users\":[\"a b\",\"/x\",\"<>&'\",\"\x7f\"]}");
    /* invalid UTF-8, raw: accepted by the JSON check, refused by the rules */
    PLAIN("{\"users\":[\"\xfe\"]}");
    PLAIN("{\"users\":[\"ok\",\"\xc3\"]}");
    PLAIN("{\"users\":[\"a\"],\"state\":\"\xc3\"}");
    PLAIN("{\"users\":[\"1\",\"2\",\"3\",\"4\"],\"state\":\"\xfe\"}");
    /* empty user IDs */
    PLAIN("{\"users\":[\"\"]}");
    PLAIN("{\"users\":[\"a\",\"\"]}");
    /* duplicates are repeated */
    PLAIN("{\"users\":[\"a\",\"a\"]}");
    /* whitespace everywhere JSON allows it */
    PLAIN(" \t\r\n{ \"users\" :\n[ \"a\" ,\t\"b\" ] ,\r\n \"state\" : \"z\" }\n ");
    PLAIN("{\"users\" : [ ] }");
    PLAIN("{\"users\":[\n]\n}");
    PLAIN("{ \"state\":\"\" , \"users\":[ \"x\" ] }");
    /* long IDs and states around the limits */
    add_long(c, 1024, -1);
    add_long(c, 1025, -1);
    add_long(c, 1, 256);
    add_long(c, 1, 257);
    add_long(c, 1024, 256);

    /* Bodies the fast path must leave to json-c. */
    OTHER("{}");
    OTHER("{\"state\":\"\"}");
    OTHER("{\"users\":[\"a\\u0062\"]}");
    OTHER("{\"users\":[\"a\\\"b\"]}");
    OTHER("{\"users\":[\"a\\/b\"]}");
    OTHER("{\"users\":[\"a\"],\"state\":\"a\\nb\"}");
    OTHER("{\"users\":[\"a\"],\"state\":\"\\u0000\"}");
    OTHER("{\"users\\u0073\":[\"a\"]}");
    OTHER("{\"users\":[\"a\"],\"x\":1}");
    OTHER("{\"x\":1,\"users\":[\"a\"]}");
    OTHER("{\"users\":[\"a\"],\"extra\":{\"users\":[\"b\"]}}");
    OTHER("{\"Users\":[\"a\"]}");
    OTHER("{\"user\":[\"a\"]}");
    OTHER("{\"users\":[1]}");
    OTHER("{\"users\":[\"a\",2]}");
    OTHER("{\"users\":[true]}");
    OTHER("{\"users\":[null]}");
    OTHER("{\"users\":[[\"a\"]]}");
    OTHER("{\"users\":[{\"a\":1}]}");
    OTHER("{\"users\":null}");
    OTHER("{\"users\":\"a\"}");
    OTHER("{\"users\":{\"a\":1}}");
    OTHER("{\"users\":[\"a\"],\"state\":5}");
    OTHER("{\"users\":[\"a\"],\"state\":null}");
    OTHER("{\"users\":[\"a\"],\"state\":[\"x\"]}");
    OTHER("{\"users\":[\"x\"],\"users\":[]}");
    OTHER("{\"users\":[],\"users\":[\"x\"]}");
    OTHER("{\"state\":\"a\",\"state\":\"b\",\"users\":[]}");
    OTHER("{\"users\":[\"a\"],\"state\":\"a\",\"state\":\"\"}");
    /* invalid JSON: both refuse it */
    OTHER("{\"users\":[NaN]}");
    OTHER("{\"users\":[\"a\"],\"state\":Infinity}");
    OTHER("{\"users\":[\"a\"]} x");
    OTHER("{\"users\":[\"a\"]}{}");
    OTHER("{\"users\":[\"a\"],}");
    OTHER("{\"users\":[\"a\",]}");
    OTHER("{\"users\":[\"a\"]");
    OTHER("{\"users\":[\"a\x01\"]}");
    OTHER("{\"users\":[\"a\0\"]}");
    OTHER("{\"users\" [\"a\"]}");
    OTHER("{users:[\"a\"]}");
    /* not objects */
    OTHER("[{\"users\":[\"a\"]}]");
    OTHER("[]");
    OTHER("\"users\"");
    OTHER("null");
    OTHER("42");
    OTHER("");
    OTHER("   ");
}

static void free_corpus(corpus *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->v[i].s);
    c->n = 0;
}

static bool within(const char *p, size_t n, const char *s, size_t len)
{
    return p >= s && p + n <= s + len;
}

static const char *const corpus_configs[] = {
    "max_users_per_request = 3",
    "max_users_per_request = 3 state_regex = \"^[a-z]*$\"",
    "",
};

/* For every body and method: when the fast path takes it, the json-c path says the same;
 * when it declines, nothing was changed. */
START_TEST(test_plain_and_json_c_agree)
{
    open_rules(corpus_configs[_i]);
    static const us_method methods[] = {US_METHOD_UPDATE, US_METHOD_GET, US_METHOD_DELETE,
                                        US_METHOD_ONLINE};
    static corpus c;
    build_corpus(&c);
    int plain_bodies = 0, compared = 0, compared_ops = 0, compared_failures = 0;
    for (int b = 0; b < c.n; b++)
        plain_bodies += c.v[b].plain;
    ck_assert_int_ge(plain_bodies, 30);

    for (int b = 0; b < c.n; b++) {
        const body *bd = &c.v[b];
        for (int mi = 0; mi < N_ELEMS(methods); mi++) {
            us_method m = methods[mi];
            us_command cp = fresh_command(m), before = cp;
            us_op_list lp = {0};
            bool took = us_command_parse_plain(rules, &cp, bd->s, bd->n, &lp);
            ck_assert_msg(took == bd->plain, "body %d (%.*s), %s: the fast path %s it", b,
                          (int)bd->n, bd->s, us_method_name(m), took ? "took" : "declined");

            char why[128] = "";
            json_object *o =
                us_command_rules_parse_object(rules, bd->s, bd->n, "body", why, sizeof why);
            us_command cj = fresh_command(m);
            us_op_list lj = {0};
            if (o)
                us_command_parse_params(rules, &cj, o, &lj);

            if (!took) {
                ck_assert_msg(memcmp(&cp, &before, sizeof cp) == 0,
                              "body %d: a declined body changed the command", b);
                ck_assert_uint_eq(lp.n, 0);
            } else {
                ck_assert_msg(o != NULL, "body %d: the fast path took what the intake refuses (%s)",
                              b, why);
                ck_assert_msg(cp.code == cj.code, "body %d (%.*s), %s: code %d vs %d", b,
                              (int)bd->n, bd->s, us_method_name(m), cp.code, cj.code);
                ck_assert_msg(cp.type_error == cj.type_error, "body %d: type_error", b);
                ck_assert_msg(strcmp(cp.details, cj.details) == 0,
                              "body %d, %s: details \"%s\" vs \"%s\"", b, us_method_name(m),
                              cp.details, cj.details);
                ck_assert_uint_eq(cp.op_start, cj.op_start);
                ck_assert_uint_eq(cp.op_count, cj.op_count);
                ck_assert_uint_eq(lp.n, lj.n);
                ck_assert_uint_eq(lp.n, cp.op_count);
                ck_assert_ptr_eq(cp.id, cj.id);
                for (size_t k = 0; k < lp.n; k++) {
                    const us_op *a = &lp.v[k], *j = &lj.v[k];
                    ck_assert_int_eq(a->kind, j->kind);
                    ck_assert_uint_eq(a->fields, j->fields);
                    ck_assert_int_eq(a->state_mode, j->state_mode);
                    ck_assert_uint_eq(a->state_len, j->state_len);
                    ck_assert((a->state == NULL) == (j->state == NULL));
                    if (a->state) {
                        ck_assert_mem_eq(a->state, j->state, a->state_len);
                        ck_assert(within(a->state, a->state_len, bd->s, bd->n));
                    }
                    ck_assert_uint_eq(a->user_len, j->user_len);
                    ck_assert_mem_eq(a->user, j->user, a->user_len);
                    /* borrowed from the body, not copied */
                    ck_assert(within(a->user, a->user_len, bd->s, bd->n));
                    ck_assert(!a->failed && !j->failed);
                    compared_ops++;
                }
                compared_failures += cp.code != 0;
                compared++;
            }
            json_object_put(o);
            free(lp.v);
            free(lj.v);
        }
    }
    /* Not vacuous: every plain body, for every method, was compared, and both outcomes
     * (operations and failures) were among them. */
    ck_assert_int_eq(compared, plain_bodies * N_ELEMS(methods));
    ck_assert_int_ge(compared_ops, 100);
    ck_assert_int_ge(compared_failures, 20);
    free_corpus(&c);
}
END_TEST

/* The contract: a declined body changes nothing, also in a list other commands already
 * use and a command that was already set up. */
START_TEST(test_plain_decline_changes_nothing)
{
    open_rules("");
    static const char *const declined[] = {
        "{\"users\":[\"a\",\"b\",\"c\\u0064\"]}", /* declined after pushing three users */
        "{\"users\":[\"a\"],\"x\":1}",
        "{\"users\":[\"a\",1]}",
        "[]",
    };
    for (int i = 0; i < N_ELEMS(declined); i++) {
        us_op_list ops = {0};
        us_op seed[2] = {
            {.kind = US_OP_GET, .user = "s1", .user_len = 2},
            {.kind = US_OP_WRITE, .user = "s2", .user_len = 2, .fields = US_FIELD_ONLINE},
        };
        ops.v = malloc(sizeof seed);
        ck_assert_ptr_nonnull(ops.v);
        memcpy(ops.v, seed, sizeof seed);
        ops.n = ops.cap = 2;
        us_command c = fresh_command(US_METHOD_UPDATE);
        c.op_start = 7;
        c.op_count = 1;
        us_command before = c;
        ck_assert(!us_command_parse_plain(rules, &c, declined[i], strlen(declined[i]), &ops));
        ck_assert_uint_eq(ops.n, 2);
        ck_assert_mem_eq(ops.v, seed, sizeof seed);
        ck_assert_msg(c.op_start == before.op_start && c.op_count == before.op_count,
                      "%s: op_start %zu op_count %zu after a decline (were %zu, %zu)", declined[i],
                      c.op_start, c.op_count, before.op_start, before.op_count);
        ck_assert(memcmp(&c, &before, sizeof c) == 0);
        free(ops.v);
    }
}
END_TEST

/* ---- after the store ---- */

START_TEST(test_settle)
{
    us_op ops[4] = {{.failed = true}, {0}, {0}, {.failed = true}};
    us_command c = fresh_command(US_METHOD_GET);
    c.op_start = 1;
    c.op_count = 2;
    /* failures outside its run are not its own */
    us_command_settle(&c, ops);
    ck_assert_int_eq(c.code, 0);

    ops[2].failed = true;
    us_command_settle(&c, ops);
    ck_assert_int_eq(c.code, 100);
    ck_assert(!c.type_error);
    ck_assert_str_eq(c.details, "");

    /* A command that failed before keeps its problem. */
    c = fresh_command(US_METHOD_GET);
    c.op_start = 1;
    c.op_count = 2;
    us_command_fail(&c, 107, false, "users[0] is empty");
    us_command_settle(&c, ops);
    ck_assert_int_eq(c.code, 107);
    ck_assert_str_eq(c.details, "users[0] is empty");
}
END_TEST

static void result_is(const us_command *c, const us_op *ops, const char *want)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, ">");
    us_command_put_result(&b, c, ops);
    ck_assert_str_eq(b.data + 1, want);
    ck_assert_uint_eq(b.len, strlen(want) + 1);
    us_buf_free(&b);
}

START_TEST(test_put_result)
{
    us_op ops[5];
    memset(ops, 0, sizeof ops);
    ops[0].user = "skipped";
    ops[0].user_len = 7;
    /* every field, read by length from bytes that go on */
    ops[1].user = "42";
    ops[1].user_len = 2;
    ops[1].status.active = "1627107289XX";
    ops[1].status.active_len = 10;
    ops[1].status.online = "1627107290";
    ops[1].status.online_len = 10;
    ops[1].status.state = "awayXX";
    ops[1].status.state_len = 4;
    /* nothing known */
    ops[2].user = "b\"q\\";
    ops[2].user_len = 4;
    /* active only, then state only, escaped */
    ops[3].user = "c";
    ops[3].user_len = 1;
    ops[3].status.active = "7";
    ops[3].status.active_len = 1;
    ops[4].user = "d";
    ops[4].user_len = 1;
    ops[4].status.state = "x\"\n\\\x01</";
    ops[4].status.state_len = 7;

    us_command c = fresh_command(US_METHOD_GET);
    c.op_start = 1;
    c.op_count = 4;
    result_is(&c, ops,
              "{\"statuses\":["
              "{\"user\":\"42\",\"active\":1627107289,\"online\":1627107290,\"state\":\"away\"},"
              "{\"user\":\"b\\\"q\\\\\"},"
              "{\"user\":\"c\",\"active\":7},"
              "{\"user\":\"d\",\"state\":\"x\\\"\\n\\\\\\u0001</\"}"
              "]}");

    c.op_count = 0;
    result_is(&c, ops, "{\"statuses\":[]}");

    static const us_method others[] = {US_METHOD_UPDATE, US_METHOD_DELETE, US_METHOD_ONLINE};
    for (int i = 0; i < N_ELEMS(others); i++) {
        c = fresh_command(others[i]);
        c.op_start = 1;
        c.op_count = 4;
        result_is(&c, ops, "{}");
    }
}
END_TEST

START_TEST(test_fail_keeps_first)
{
    us_command c = fresh_command(US_METHOD_GET);
    us_command_fail(&c, 107, false, "users[%d] is empty", 3);
    ck_assert_int_eq(c.code, 107);
    ck_assert(!c.type_error);
    ck_assert_str_eq(c.details, "users[3] is empty");
    us_command_fail(&c, 100, true, "second");
    us_command_fail(&c, 107, true, NULL);
    ck_assert_int_eq(c.code, 107);
    ck_assert(!c.type_error);
    ck_assert_str_eq(c.details, "users[3] is empty");

    /* Without details: none, whatever was in the buffer. */
    c = fresh_command(US_METHOD_GET);
    strcpy(c.details, "stale");
    us_command_fail(&c, 100, false, NULL);
    ck_assert_int_eq(c.code, 100);
    ck_assert_str_eq(c.details, "");

    /* Long details are cut to the buffer, still terminated. */
    c = fresh_command(US_METHOD_GET);
    char longer[400];
    memset(longer, 'd', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    us_command_fail(&c, 107, true, "%s", longer);
    ck_assert(c.type_error);
    ck_assert_uint_eq(strlen(c.details), sizeof c.details - 1);
    ck_assert(strncmp(c.details, longer, sizeof c.details - 1) == 0);
}
END_TEST

static Suite *command_suite(void)
{
    Suite *s = suite_create("command");
    TCase *tc = tcase_create("methods");
    tcase_add_test(tc, test_method_lookup);
    suite_add_tcase(s, tc);

    tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_rules_bad_regex);
    tcase_add_test(tc, test_rules_enabled);
    tcase_add_test(tc, test_rules_state);
    tcase_add_test(tc, test_rules_state_regex);
    tcase_add_test(tc, test_rules_state_regex_longest);
    tcase_add_test(tc, test_rules_take_state);
    tcase_add_test(tc, test_rules_take_state_too_long);
    tcase_add_test(tc, test_intake);
    tcase_add_test(tc, test_intake_value_bound);
    tcase_add_test(tc, test_intake_value_bound_shared);
    suite_add_tcase(s, tc);

    tc = tcase_create("params");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, test_update_state_modes, 0, 2);
    tcase_add_test(tc, test_update_null_state_keeps);
    tcase_add_loop_test(tc, test_other_methods_ops, 0, 2);
    tcase_add_loop_test(tc, test_params_failures, 0, 2);
    tcase_add_test(tc, test_params_type_failures);
    tcase_add_test(tc, test_disabled);
    tcase_add_test(tc, test_shared_list);
    suite_add_tcase(s, tc);

    tc = tcase_create("parsers_agree");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, test_plain_and_json_c_agree, 0, N_ELEMS(corpus_configs));
    tcase_add_test(tc, test_plain_decline_changes_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("results");
    tcase_add_test(tc, test_settle);
    tcase_add_test(tc, test_put_result);
    tcase_add_test(tc, test_fail_keeps_first);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(command_suite)
