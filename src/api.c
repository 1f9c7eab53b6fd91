/* Request in, response out (SPEC §1): routing, authentication, envelope and errors,
 * the four user status methods, batch and the legacy newline-separated form.
 *
 * Every request is handled in three steps: parse and validate every command into a
 * list of store operations, run them all in one us_store_exec (one pipeline per Redis
 * node whatever the number of commands), then write each command's reply. */
#include "ustatus/api.h"

#include <ctype.h>
#include <stdarg.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "ustatus/buf.h"
#include "ustatus/client.h"
#include "ustatus/clock.h"
#include "ustatus/json.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/metrics.h"
#include "ustatus/msg.h"
#include "ustatus/secret.h"
#include "ustatus/text.h"


enum {
    E_INTERNAL = 100,
    E_NOT_FOUND = 104,
    E_BAD_REQUEST = 107,
    E_NOT_AVAILABLE = 108,
};

typedef enum { M_UNKNOWN = 0, M_UPDATE, M_GET, M_DELETE, M_ONLINE } method_id;

static const struct {
    const char *name;
    method_id id;
} methods[] = {
    {"update_user_status", M_UPDATE},
    {"get_user_status", M_GET},
    {"delete_user_status", M_DELETE},
    {"update_user_online", M_ONLINE},
};

struct us_api {
    const us_config *cfg;
    us_store *store;
    regex_t state_re;
    bool has_state_re;
    size_t prefix_len;
    size_t max_json_values;    /* bounds what json-c allocates for one request */
    us_client *client;         /* client endpoints and RPC proxy (SPEC §6) */
    int64_t request_start_ns;  /* for the latency histogram (SPEC §7) */
};

/* One command of a request (a direct call, a batch element or a legacy line). */
typedef struct command {
    method_id method;
    int code;                  /* 0 while fine, else the API error code */
    bool type_error;           /* a JSON type error: HTTP 400 for a direct call */
    char details[160];
    size_t op_start, op_count; /* its operations in the request's op list */
    json_object *id;           /* legacy form: the "id" to echo, borrowed */
} command;

typedef struct op_list {
    us_op *v;
    size_t n, cap;
} op_list;

static const char *error_message(int code)
{
    switch (code) {
    case E_INTERNAL: return "internal server error";
    case E_NOT_FOUND: return "not found";
    case E_BAD_REQUEST: return "bad request";
    case E_NOT_AVAILABLE: return "not available";
    default: return "internal server error";
    }
}

static method_id method_lookup(const char *name, size_t len, bool nocase)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strlen(methods[i].name) != len)
            continue;
        if (nocase ? strncasecmp(methods[i].name, name, len) == 0
                   : memcmp(methods[i].name, name, len) == 0)
            return methods[i].id;
    }
    return M_UNKNOWN;
}

static const char *method_name(method_id m)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].id == m)
            return methods[i].name;
    return "";
}

/* Counts one answered command for GET /metrics; `label` overrides the method's name. */
static void count_command(const us_api *api, method_id m, const char *label, int code)
{
    if (!label)
        label = m == M_UNKNOWN ? "unknown" : method_name(m);
    us_metrics_command(label, code, us_clock_mono_ns() - api->request_start_ns);
}

static void command_fail(command *c, int code, bool type_error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void command_fail(command *c, int code, bool type_error, const char *fmt, ...)
{
    if (c->code)
        return; /* the first problem is the one reported */
    c->code = code;
    c->type_error = type_error;
    c->details[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->details, sizeof c->details, fmt, ap);
        va_end(ap);
    }
}

/* ---- response helpers ---- */

void us_http_response_init(us_http_response *r)
{
    memset(r, 0, sizeof *r);
    r->status = 200;
}

void us_http_response_reset(us_http_response *r)
{
    r->status = 200;
    r->content_type = NULL;
    us_buf_reset(&r->headers);
    us_buf_reset(&r->body);
}

void us_http_response_free(us_http_response *r)
{
    us_buf_free(&r->headers);
    us_buf_free(&r->body);
}

static void put_error_object(us_buf *b, int code, const char *details)
{
    us_buf_puts(b, "{\"code\":");
    us_buf_put_i64(b, code);
    us_buf_puts(b, ",\"message\":");
    const char *msg = error_message(code);
    us_json_put_str(b, msg, strlen(msg));
    if (details && *details) {
        us_buf_puts(b, ",\"details\":");
        us_json_put_str(b, details, strlen(details));
    }
    us_buf_putc(b, '}');
}

static bool transport_mode(const us_api *api, const us_http_request *req)
{
    if (req->error_mode && strcasecmp(req->error_mode, "transport") == 0)
        return true;
    return strcmp(api->cfg->http_api.error_mode, "transport") == 0;
}

static int transport_status(int code)
{
    switch (code) {
    case E_NOT_FOUND: return 404;
    case E_BAD_REQUEST:
    case E_NOT_AVAILABLE: return 400;
    default: return 500;
    }
}

/* A whole-request error outside batch: the envelope, or the transport error mode. */
static void respond_error(const us_api *api, const us_http_request *req, us_http_response *resp,
                          int code, int http_status, const char *details)
{
    resp->content_type = "application/json";
    us_buf_reset(&resp->body);
    if (transport_mode(api, req)) {
        resp->status = transport_status(code);
        put_error_object(&resp->body, code, NULL);
        return;
    }
    resp->status = http_status;
    us_buf_puts(&resp->body, "{\"error\":");
    put_error_object(&resp->body, code, details);
    us_buf_putc(&resp->body, '}');
}

void us_api_payload_too_large(us_http_response *resp)
{
    us_buf_reset(&resp->body);
    resp->content_type = NULL;
    resp->status = 413;
}

/* ---- authentication ---- */

/* The decoded value of query parameter `name` into out (NUL-terminated) and its length
 * into out_len_ret; false when absent, too long, or decoding to a NUL byte (which would
 * make the value look shorter than it is). */
static bool query_param(const char *query, const char *name, char *out, size_t out_len,
                        size_t *out_len_ret)
{
    size_t name_len = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *end = p + strcspn(p, "&");
        if ((size_t)(end - p) > name_len && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            size_t o = 0;
            for (const char *q = p + name_len + 1; q < end; q++) {
                int c = (unsigned char)*q;
                if (c == '+') {
                    c = ' ';
                } else if (c == '%' && end - q > 2 && us_hex_value(q[1]) >= 0 && us_hex_value(q[2]) >= 0) {
                    c = us_hex_value(q[1]) * 16 + us_hex_value(q[2]);
                    q += 2;
                }
                if (c == '\0' || o + 1 >= out_len)
                    return false;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            *out_len_ret = o;
            return true;
        }
        p = *end ? end + 1 : end;
    }
    return false;
}

/* SPEC §1.1, Centrifugo's order: X-API-Key, else "Authorization: apikey KEY", else the
 * api_key query parameter. The first one present decides. */
static bool authorized(const us_api *api, const us_http_request *req)
{
    const char *key = api->cfg->http_api.key;
    size_t key_len = strlen(key);
    if (api->cfg->http_api.insecure)
        return true;
    if (key_len == 0)
        return false;
    if (req->x_api_key && *req->x_api_key)
        return us_secret_equal(req->x_api_key, strlen(req->x_api_key), key, key_len);
    if (req->authorization && *req->authorization) {
        const char *p = req->authorization;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *f1 = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t f1_len = (size_t)(p - f1);
        while (*p == ' ' || *p == '\t')
            p++;
        const char *f2 = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t f2_len = (size_t)(p - f2);
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p || f2_len == 0 || f1_len != 6 || strncasecmp(f1, "apikey", 6) != 0)
            return false;
        return us_secret_equal(f2, f2_len, key, key_len);
    }
    char given[1024];
    size_t given_len;
    if (req->query && query_param(req->query, "api_key", given, sizeof given, &given_len) &&
        given_len)
        return us_secret_equal(given, given_len, key, key_len);
    return false;
}

/* ---- parsing commands ---- */

static void ops_push(op_list *ops, const us_op *op)
{
    if (ops->n == ops->cap) {
        ops->cap = ops->cap ? ops->cap * 2 : 16;
        ops->v = us_xrealloc(ops->v, ops->cap * sizeof *ops->v);
    }
    ops->v[ops->n++] = *op;
}

/* The checks shared by both parsers, on the candidate operations ops[c->op_start..]
 * (one per user, only user and user_len set) and the state when one was given (a
 * string: sv, sl). In the order of SPEC §1.3 as Centrifugo does them: state, the users
 * limit, each user ID. Fills in the operations, or fails c and drops them. */
static void finish_params(us_api *api, command *c, op_list *ops, const char *sv, size_t sl)
{
    const us_config *cfg = api->cfg;
    size_t n = ops->n - c->op_start;
    us_op proto = {0};
    if (c->method == M_UPDATE && sv) {
        if (sl == 0) {
            proto.state_mode = US_STATE_CLEAR;
        } else {
            const char *why = us_text_check(sv, sl, US_STATE_MAX_BYTES);
            if (why) {
                command_fail(c, E_BAD_REQUEST, false, "state %s", why);
                goto fail;
            }
            if (api->has_state_re) {
                /* regexec needs a C string; the fast parser's state is not one. */
                char z[US_STATE_MAX_BYTES + 1];
                memcpy(z, sv, sl);
                z[sl] = '\0';
                if (regexec(&api->state_re, z, 0, NULL, 0) != 0) {
                    command_fail(c, E_BAD_REQUEST, false, "state does not match state_regex");
                    goto fail;
                }
            }
            proto.state_mode = US_STATE_SET;
            proto.state = sv;
            proto.state_len = sl;
        }
    }
    /* The limit holds for a whole request: a batch or legacy body cannot multiply it. */
    if (n > cfg->user_status.max_users_per_request - c->op_start) {
        if (c->op_start)
            command_fail(c, E_BAD_REQUEST, false,
                         "too many users: %zu in this request, at most %zu", c->op_start + n,
                         cfg->user_status.max_users_per_request);
        else
            command_fail(c, E_BAD_REQUEST, false, "too many users: %zu, at most %zu", n,
                         cfg->user_status.max_users_per_request);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const us_op *op = &ops->v[c->op_start + i];
        const char *why = us_text_check(op->user, op->user_len, US_USER_ID_MAX_BYTES);
        if (why) {
            command_fail(c, E_BAD_REQUEST, false, "users[%zu] %s", i, why);
            goto fail;
        }
    }
    switch (c->method) {
    case M_GET: proto.kind = US_OP_GET; break;
    case M_DELETE: proto.kind = US_OP_DELETE; break;
    case M_UPDATE: proto.kind = US_OP_WRITE; proto.fields = US_FIELD_ACTIVE; break;
    case M_ONLINE: proto.kind = US_OP_WRITE; proto.fields = US_FIELD_ONLINE; break;
    case M_UNKNOWN: goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        us_op *op = &ops->v[c->op_start + i];
        proto.user = op->user;
        proto.user_len = op->user_len;
        *op = proto;
    }
    c->op_count = n;
    return;
fail:
    ops->n = c->op_start;
}

/* Validates params for method m and appends its operations. On a problem, c->code is
 * set and nothing is appended. */
static void parse_params(us_api *api, command *c, json_object *params, op_list *ops)
{
    const us_config *cfg = api->cfg;
    c->op_start = ops->n;
    c->op_count = 0;
    if (!cfg->user_status.enabled) {
        command_fail(c, E_NOT_AVAILABLE, false, "user status is disabled");
        return;
    }
    if (!params || !json_object_is_type(params, json_type_object)) {
        command_fail(c, E_BAD_REQUEST, true, "params must be a JSON object");
        return;
    }
    json_object *users = NULL;
    if (!json_object_object_get_ex(params, "users", &users) || users == NULL) {
        command_fail(c, E_BAD_REQUEST, false, "users is required");
        return;
    }
    if (!json_object_is_type(users, json_type_array)) {
        command_fail(c, E_BAD_REQUEST, true, "users must be an array of strings");
        return;
    }
    size_t n = json_object_array_length(users);
    for (size_t i = 0; i < n; i++)
        if (!json_object_is_type(json_object_array_get_idx(users, i), json_type_string)) {
            command_fail(c, E_BAD_REQUEST, true, "users[%zu] is not a string", i);
            return;
        }
    const char *sv = NULL;
    size_t sl = 0;
    if (c->method == M_UPDATE) {
        json_object *state = NULL;
        if (json_object_object_get_ex(params, "state", &state) && state != NULL) {
            if (!json_object_is_type(state, json_type_string)) {
                command_fail(c, E_BAD_REQUEST, true, "state must be a string");
                return;
            }
            sv = json_object_get_string(state);
            sl = (size_t)json_object_get_string_len(state);
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_object *u = json_object_array_get_idx(users, i);
        us_op op = {.user = json_object_get_string(u),
                    .user_len = (size_t)json_object_get_string_len(u)};
        ops_push(ops, &op);
    }
    finish_params(api, c, ops, sv, sl);
}

/* ---- the common direct call without json-c ---- */

static size_t ws_skip(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* A string at s[*i] == '"' with no escape in it: its bytes are the value, and can be
 * borrowed from the body. False for anything else. */
static bool plain_string(const char *s, size_t n, size_t *i, const char **p, size_t *len)
{
    if (*i >= n || s[*i] != '"')
        return false;
    const char *start = s + *i + 1;
    const char *q = memchr(start, '"', n - *i - 1);
    if (!q || memchr(start, '\\', (size_t)(q - start)))
        return false;
    *p = start;
    *len = (size_t)(q - start);
    *i = (size_t)(q - s) + 1;
    return true;
}

/* Parses the body of a direct call when it has the plain shape nearly every client sends:
 * {"users":["..."...], "state":"..."} with each key at most once, no other key and no
 * escapes in any string. Pushes one candidate operation per user (user bytes borrowed
 * from the body) and returns true; returns false, having pushed nothing, for any other
 * body, which then takes the json-c path with all its checks and messages. The body has
 * passed us_json_check: its syntax is known to be right. */
static bool parse_plain_direct(command *c, const char *s, size_t n, op_list *ops,
                               const char **sv, size_t *sl)
{
    bool have_users = false, have_state = false;
    size_t i = ws_skip(s, n, 0);
    c->op_start = ops->n;
    c->op_count = 0;
    *sv = NULL;
    *sl = 0;
    if (i >= n || s[i] != '{')
        goto other;
    i = ws_skip(s, n, i + 1);
    if (i < n && s[i] == '}')
        goto other; /* no users: json-c's path says so */
    for (;;) {
        const char *key;
        size_t key_len;
        if (!plain_string(s, n, &i, &key, &key_len))
            goto other;
        i = ws_skip(s, n, i);
        i = ws_skip(s, n, i + 1); /* the ':' */
        if (key_len == 5 && memcmp(key, "users", 5) == 0 && !have_users) {
            have_users = true;
            if (i >= n || s[i] != '[')
                goto other;
            i = ws_skip(s, n, i + 1);
            if (i < n && s[i] == ']') {
                i++;
            } else {
                for (;;) {
                    us_op op = {0};
                    if (!plain_string(s, n, &i, &op.user, &op.user_len))
                        goto other;
                    ops_push(ops, &op);
                    i = ws_skip(s, n, i);
                    if (i < n && s[i] == ',') {
                        i = ws_skip(s, n, i + 1);
                        continue;
                    }
                    i++; /* the ']' */
                    break;
                }
            }
        } else if (key_len == 5 && memcmp(key, "state", 5) == 0 && !have_state) {
            have_state = true;
            if (!plain_string(s, n, &i, sv, sl))
                goto other;
        } else {
            goto other;
        }
        i = ws_skip(s, n, i);
        if (i < n && s[i] == ',') {
            i = ws_skip(s, n, i + 1);
            continue;
        }
        break; /* the '}' */
    }
    if (!have_users)
        goto other;
    return true;
other:
    ops->n = c->op_start;
    *sv = NULL;
    *sl = 0;
    return false;
}

/* ---- writing replies ---- */

/* Fixed text without a strlen per call: put_result runs these once per status. */
#define PUT_LITERAL(b, lit) us_buf_append((b), (lit), sizeof(lit) - 1)

/* The result object of a command that succeeded, e.g. {"statuses":[...]} or {}. */
static void put_result(us_buf *b, const command *c, const us_op *ops)
{
    if (c->method != M_GET) {
        us_buf_puts(b, "{}");
        return;
    }
    PUT_LITERAL(b, "{\"statuses\":[");
    for (size_t i = 0; i < c->op_count; i++) {
        const us_op *op = &ops[c->op_start + i];
        if (i)
            us_buf_putc(b, ',');
        PUT_LITERAL(b, "{\"user\":");
        us_json_put_str(b, op->user, op->user_len);
        if (op->status.active) {
            PUT_LITERAL(b, ",\"active\":");
            us_buf_append(b, op->status.active, op->status.active_len);
        }
        if (op->status.online) {
            PUT_LITERAL(b, ",\"online\":");
            us_buf_append(b, op->status.online, op->status.online_len);
        }
        if (op->status.state) {
            PUT_LITERAL(b, ",\"state\":");
            us_json_put_str(b, op->status.state, op->status.state_len);
        }
        us_buf_putc(b, '}');
    }
    us_buf_puts(b, "]}");
}

/* A command whose Redis work failed fails whole: never a partial success. */
static void settle(command *c, const us_op *ops)
{
    if (c->code)
        return;
    for (size_t i = 0; i < c->op_count; i++)
        if (ops[c->op_start + i].failed) {
            command_fail(c, E_INTERNAL, false, NULL);
            return;
        }
}

static void run_ops(us_api *api, op_list *ops)
{
    if (ops->n)
        us_store_exec(api->store, ops->v, ops->n, us_clock_wall_s());
}

static void free_ops(us_api *api, op_list *ops)
{
    us_store_ops_clear(api->store, ops->v, ops->n);
    free(ops->v);
}

/* JSON nesting accepted in a request; json-c's own limit is 32 as well. */
#define JSON_MAX_DEPTH 32

/* Commands in one batch or legacy body. With the users limit, it bounds the JSON values a
 * request may hold (and so the memory json-c takes): users, plus a few per command. */
#define MAX_COMMANDS_PER_REQUEST 1000
#define JSON_VALUES_PER_COMMAND 16

/* Parses a whole buffer as one strict JSON value into *out (NULL for a JSON null).
 * Returns 0, or -1 with a reason in why. */
static int parse_json(const char *s, size_t len, size_t max_values, json_object **out,
                      char *why, size_t why_len)
{
    *out = NULL;
    if (us_json_check(s, len, JSON_MAX_DEPTH, max_values, why, why_len) < 0)
        return -1;
    json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH + 1);
    if (!tok)
        abort();
    json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr == json_tokener_continue) {
        /* A bare number at the very end may still continue: end the input. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        /* us_json_check accepted it: only an allocation failure gets here. */
        json_object_put(obj);
        us_set_msg(why, why_len, "invalid JSON: %s", json_tokener_error_desc(jerr));
        return -1;
    }
    *out = obj;
    return 0;
}

/* A request body that must be a JSON object: the object, or NULL with a reason. */
static json_object *parse_json_object(const us_api *api, const char *s, size_t len,
                                      const char *what, char *why, size_t why_len)
{
    json_object *obj;
    if (parse_json(s, len, api->max_json_values, &obj, why, why_len) < 0)
        return NULL;
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        us_set_msg(why, why_len, "%s must be a JSON object", what);
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

/* POST <prefix>/<method> */
static void handle_direct(us_api *api, const us_http_request *req, us_http_response *resp,
                          method_id m)
{
    char why[128];
    command c = {.method = m};
    op_list ops = {0};
    json_object *body = NULL;
    const char *sv;
    size_t sl;
    /* json-c builds an object per user that is thrown away at once; the plain body most
     * clients send is read in place. Only a well-formed body with every field of the
     * right type goes that way, so errors keep json-c's path and wording. */
    if (api->cfg->user_status.enabled &&
        us_json_check(req->body, req->body_len, JSON_MAX_DEPTH, api->max_json_values, NULL,
                      0) == 0 &&
        parse_plain_direct(&c, req->body, req->body_len, &ops, &sv, &sl)) {
        finish_params(api, &c, &ops, m == M_UPDATE ? sv : NULL, sl);
    } else {
        body = parse_json_object(api, req->body, req->body_len, "body", why, sizeof why);
        if (!body) {
            respond_error(api, req, resp, E_BAD_REQUEST, 400, why);
            count_command(api, m, NULL, E_BAD_REQUEST);
            free(ops.v);
            return;
        }
        parse_params(api, &c, body, &ops);
    }
    run_ops(api, &ops);
    settle(&c, ops.v);
    count_command(api, m, NULL, c.code);
    if (c.code) {
        respond_error(api, req, resp, c.code, c.type_error ? 400 : 200, c.details);
    } else {
        resp->status = 200;
        resp->content_type = "application/json";
        us_buf_puts(&resp->body, "{\"result\":");
        put_result(&resp->body, &c, ops.v);
        us_buf_putc(&resp->body, '}');
    }
    free_ops(api, &ops);
    json_object_put(body);
}

/* One batch element: an object with exactly one method key. */
static void parse_batch_command(us_api *api, command *c, json_object *elem, op_list *ops)
{
    if (!json_object_is_type(elem, json_type_object) || json_object_object_length(elem) != 1) {
        command_fail(c, E_BAD_REQUEST, true, "a command must be an object with one method key");
        return;
    }
    json_object_object_foreach(elem, name, params)
    {
        c->method = method_lookup(name, strlen(name), false);
        if (c->method == M_UNKNOWN) {
            command_fail(c, E_NOT_FOUND, false, "unknown method");
            return;
        }
        parse_params(api, c, params, ops);
    }
}

static void put_command_error(us_buf *b, const command *c)
{
    us_buf_puts(b, "\"error\":");
    put_error_object(b, c->code, c->details);
}

/* POST <prefix>/batch */
static void handle_batch(us_api *api, const us_http_request *req, us_http_response *resp)
{
    char why[128];
    json_object *body = parse_json_object(api, req->body, req->body_len, "body", why, sizeof why);
    json_object *list = NULL;
    if (!body) {
        respond_error(api, req, resp, E_BAD_REQUEST, 400, why);
        count_command(api, M_UNKNOWN, "batch", E_BAD_REQUEST);
        return;
    }
    if (!json_object_object_get_ex(body, "commands", &list) || list == NULL) {
        respond_error(api, req, resp, E_BAD_REQUEST, 200, "commands is required");
        count_command(api, M_UNKNOWN, "batch", E_BAD_REQUEST);
        json_object_put(body);
        return;
    }
    if (!json_object_is_type(list, json_type_array)) {
        respond_error(api, req, resp, E_BAD_REQUEST, 400, "commands must be an array");
        count_command(api, M_UNKNOWN, "batch", E_BAD_REQUEST);
        json_object_put(body);
        return;
    }
    size_t n = json_object_array_length(list);
    if (n > MAX_COMMANDS_PER_REQUEST) {
        char why_n[64];
        us_set_msg(why_n, sizeof why_n, "too many commands: %zu, at most %d", n,
                 MAX_COMMANDS_PER_REQUEST);
        respond_error(api, req, resp, E_BAD_REQUEST, 200, why_n);
        count_command(api, M_UNKNOWN, "batch", E_BAD_REQUEST);
        json_object_put(body);
        return;
    }
    command *cmds = us_xcalloc(n ? n : 1, sizeof *cmds);
    op_list ops = {0};
    for (size_t i = 0; i < n; i++)
        parse_batch_command(api, &cmds[i], json_object_array_get_idx(list, i), &ops);
    run_ops(api, &ops);
    resp->status = 200;
    resp->content_type = "application/json";
    us_buf_puts(&resp->body, "{\"replies\":[");
    for (size_t i = 0; i < n; i++) {
        settle(&cmds[i], ops.v);
        count_command(api, cmds[i].method, NULL, cmds[i].code);
        if (i)
            us_buf_putc(&resp->body, ',');
        us_buf_putc(&resp->body, '{');
        if (cmds[i].code) {
            put_command_error(&resp->body, &cmds[i]);
        } else {
            const char *name = method_name(cmds[i].method);
            us_json_put_str(&resp->body, name, strlen(name));
            us_buf_putc(&resp->body, ':');
            put_result(&resp->body, &cmds[i], ops.v);
        }
        us_buf_putc(&resp->body, '}');
    }
    us_buf_puts(&resp->body, "]}");
    free_ops(api, &ops);
    free(cmds);
    json_object_put(body);
}

/* POST <prefix> with {"id":1,"method":"...","params":{...}} lines. */
static void handle_legacy(us_api *api, const us_http_request *req, us_http_response *resp)
{
    /* Count the non-blank lines first: every line is one command. */
    size_t n = 0;
    const char *end = req->body + req->body_len;
    for (const char *p = req->body; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        for (const char *q = p; q < le; q++)
            if (!isspace((unsigned char)*q)) {
                n++;
                break;
            }
        p = nl ? nl + 1 : end;
    }
    if (n == 0) {
        respond_error(api, req, resp, E_BAD_REQUEST, 400, "empty body");
        count_command(api, M_UNKNOWN, NULL, E_BAD_REQUEST);
        return;
    }
    if (n > MAX_COMMANDS_PER_REQUEST) {
        char why_n[64];
        us_set_msg(why_n, sizeof why_n, "too many commands: %zu, at most %d", n,
                 MAX_COMMANDS_PER_REQUEST);
        respond_error(api, req, resp, E_BAD_REQUEST, 200, why_n);
        count_command(api, M_UNKNOWN, NULL, E_BAD_REQUEST);
        return;
    }
    command *cmds = us_xcalloc(n, sizeof *cmds);
    json_object **lines = us_xcalloc(n, sizeof *lines);
    op_list ops = {0};
    size_t k = 0;
    for (const char *p = req->body; p < end && k < n;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *q = p;
        while (q < le && isspace((unsigned char)*q))
            q++;
        p = nl ? nl + 1 : end;
        if (q == le)
            continue;
        command *c = &cmds[k];
        char why[128];
        json_object *obj = parse_json_object(api, q, (size_t)(le - q), "a command", why, sizeof why);
        lines[k++] = obj;
        if (!obj) {
            command_fail(c, E_BAD_REQUEST, true, "%s", why);
            continue;
        }
        json_object *id = NULL, *method = NULL, *params = NULL;
        if (json_object_object_get_ex(obj, "id", &id) && id)
            c->id = id;
        if (!json_object_object_get_ex(obj, "method", &method) ||
            !json_object_is_type(method, json_type_string)) {
            command_fail(c, E_BAD_REQUEST, true, "method must be a string");
            continue;
        }
        c->method = method_lookup(json_object_get_string(method),
                                  (size_t)json_object_get_string_len(method), true);
        if (c->method == M_UNKNOWN) {
            command_fail(c, E_NOT_FOUND, false, "unknown method");
            continue;
        }
        json_object_object_get_ex(obj, "params", &params);
        parse_params(api, c, params, &ops);
    }
    run_ops(api, &ops);
    resp->status = 200;
    resp->content_type = "application/json";
    for (size_t i = 0; i < n; i++) {
        command *c = &cmds[i];
        settle(c, ops.v);
        count_command(api, c->method, NULL, c->code);
        if (i)
            us_buf_putc(&resp->body, '\n');
        us_buf_putc(&resp->body, '{');
        if (c->id) {
            us_buf_puts(&resp->body, "\"id\":");
            us_buf_puts(&resp->body, json_object_to_json_string_ext(c->id, JSON_C_TO_STRING_PLAIN |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
            us_buf_putc(&resp->body, ',');
        }
        if (c->code) {
            put_command_error(&resp->body, c);
        } else {
            us_buf_puts(&resp->body, "\"result\":");
            put_result(&resp->body, c, ops.v);
        }
        us_buf_putc(&resp->body, '}');
    }
    free_ops(api, &ops);
    for (size_t i = 0; i < n; i++)
        json_object_put(lines[i]);
    free(lines);
    free(cmds);
}

/* ---- entry points ---- */

us_api *us_api_create(const us_config *cfg, us_store *store, char *err, size_t err_len)
{
    us_api *api = us_xcalloc(1, sizeof *api);
    api->cfg = cfg;
    api->store = store;
    api->prefix_len = strlen(cfg->http_api.handler_prefix);
    api->max_json_values = cfg->user_status.max_users_per_request +
                           (size_t)MAX_COMMANDS_PER_REQUEST * JSON_VALUES_PER_COMMAND + 64;
    if (cfg->user_status.state_regex && cfg->user_status.state_regex[0]) {
        int rc = regcomp(&api->state_re, cfg->user_status.state_regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &api->state_re, msg, sizeof msg);
            us_set_msg(err, err_len, "user_status.state_regex: %s", msg);
            free(api);
            return NULL;
        }
        api->has_state_re = true;
    }
    api->client = us_client_create(cfg, store, err, err_len);
    if (!api->client) {
        us_api_free(api);
        return NULL;
    }
    return api;
}

void us_api_free(us_api *api)
{
    if (!api)
        return;
    if (api->has_state_re)
        regfree(&api->state_re);
    us_client_free(api->client);
    free(api);
}

size_t us_api_max_body_bytes(const us_api *api)
{
    return api->cfg->http_api.max_body_bytes;
}

/* ---- operations endpoints (SPEC §7) ---- */

/* GET /health and GET /metrics: recognised by the exact path whatever the API prefix,
 * without a key — the web server decides who reaches them (deploy/ shows how). Exact
 * paths only, so a web server that maps just the API prefix never exposes them by
 * accident. Returns false when the path is neither. */
static bool handle_operations(us_api *api, const us_http_request *req, us_http_response *resp)
{
    const char *path = req->path ? req->path : "";
    bool health = strcmp(path, "/health") == 0;
    if (!health && strcmp(path, "/metrics") != 0)
        return false;
    if (!req->method || strcmp(req->method, "GET") != 0) {
        resp->status = 405;
        us_buf_puts(&resp->headers, "Allow: GET\r\n");
        return true;
    }
    resp->status = 200;
    if (!health) {
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        us_metrics_render(&resp->body);
        return true;
    }
    us_buf report = US_BUF_INIT;
    resp->content_type = "application/json";
    if (us_store_ping(api->store, &report) == 0) {
        us_buf_puts(&resp->body, "{\"status\":\"ok\"}");
    } else {
        resp->status = 503;
        us_buf_puts(&resp->body, "{\"status\":\"unavailable\",\"nodes\":");
        us_buf_append(&resp->body, report.data, report.len);
        us_buf_putc(&resp->body, '}');
    }
    us_buf_free(&report);
    return true;
}

void us_api_handle(us_api *api, const us_http_request *req, us_http_response *resp)
{
    us_http_response_reset(resp);
    api->request_start_ns = us_clock_mono_ns();
    if (handle_operations(api, req, resp))
        return;
    /* Before the server API's method and key checks: these endpoints have their own
     * (OPTIONS preflight, Bearer tokens, the proxy key). */
    if (us_client_handle(api->client, req, resp))
        return;
    if (!req->method || strcmp(req->method, "POST") != 0) {
        resp->status = 405;
        us_buf_puts(&resp->headers, "Allow: POST\r\n");
        return;
    }
    if (req->body_len > api->cfg->http_api.max_body_bytes) {
        us_api_payload_too_large(resp);
        return;
    }
    if (!authorized(api, req)) {
        resp->status = 401;
        return;
    }
    const char *path = req->path ? req->path : "";
    const char *prefix = api->cfg->http_api.handler_prefix;
    if (strncmp(path, prefix, api->prefix_len) != 0) {
        respond_error(api, req, resp, E_NOT_FOUND, 404, NULL);
        return;
    }
    const char *rest = path + api->prefix_len;
    if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
        handle_legacy(api, req, resp);
        return;
    }
    if (rest[0] != '/') {
        respond_error(api, req, resp, E_NOT_FOUND, 404, NULL);
        return;
    }
    rest++;
    if (strcmp(rest, "batch") == 0) {
        handle_batch(api, req, resp);
        return;
    }
    method_id m = method_lookup(rest, strlen(rest), false);
    if (m == M_UNKNOWN) {
        respond_error(api, req, resp, E_NOT_FOUND, 404, NULL);
        count_command(api, M_UNKNOWN, NULL, E_NOT_FOUND);
        return;
    }
    handle_direct(api, req, resp, m);
}
