/* The server API (SPEC §1): direct calls, batch and the legacy form, behind the method,
 * body-limit and key checks.
 *
 * Every request is handled in three steps: parse and validate every command into a
 * list of store operations, run them all in one us_store_exec (one pipeline per Redis
 * node whatever the number of commands), then write each command's reply. */
#include "ustatus/api.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ustatus/auth.h"
#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/envelope.h"
#include "ustatus/json.h"
#include "ustatus/mem.h"
#include "ustatus/metrics.h"
#include "ustatus/msg.h"
#include "ustatus/text.h"

struct us_api {
    const us_config *cfg;
    const us_command_rules *rules;
    us_store *store;
    size_t prefix_len;
    int64_t request_start_ns; /* for the latency histogram (SPEC §7) */
};

/* Counts one answered command for GET /metrics; `label` overrides the method's name. */
static void count_command(const us_api *api, us_method m, const char *label, int code)
{
    if (!label)
        label = m == US_METHOD_UNKNOWN ? "unknown" : us_method_name(m);
    us_metrics_command(label, code, us_clock_mono_ns() - api->request_start_ns);
}

static bool transport_mode(const us_api *api, const us_http_request *req)
{
    if (req->error_mode && strcasecmp(req->error_mode, "transport") == 0)
        return true;
    return strcmp(api->cfg->http_api.error_mode, "transport") == 0;
}

/* A whole-request error outside batch: the envelope, or the transport error mode. */
static void respond_error(const us_api *api, const us_http_request *req, us_http_response *resp,
                          int code, int http_status, const char *details)
{
    if (transport_mode(api, req))
        us_envelope_transport_error(resp, code);
    else
        us_envelope_error(resp, http_status, code, details);
}

static void put_command_error(us_buf *b, const us_command *c)
{
    US_BUF_LITERAL(b, "\"error\":");
    us_envelope_put_error(b, c->code, c->details);
}

/* POST <prefix>/<method> */
static void handle_direct(us_api *api, const us_http_request *req, us_http_response *resp,
                          us_method m)
{
    char why[128];
    us_command c = {.method = m};
    us_op_list ops = {0};
    json_object *body = NULL;
    if (!us_command_parse_plain(api->rules, &c, req->body, req->body_len, &ops)) {
        body = us_command_rules_parse_object(api->rules, req->body, req->body_len, "body", why,
                                             sizeof why);
        if (!body) {
            respond_error(api, req, resp, US_ERR_BAD_REQUEST, 400, why);
            count_command(api, m, NULL, US_ERR_BAD_REQUEST);
            free(ops.v);
            return;
        }
        us_command_parse_params(api->rules, &c, body, &ops);
    }
    us_op_list_run(api->store, &ops);
    us_command_settle(&c, ops.v);
    count_command(api, m, NULL, c.code);
    if (c.code) {
        respond_error(api, req, resp, c.code, c.type_error ? 400 : 200, c.details);
    } else {
        resp->status = 200;
        resp->content_type = "application/json";
        us_buf_puts(&resp->body, "{\"result\":");
        us_command_put_result(&resp->body, &c, ops.v);
        us_buf_putc(&resp->body, '}');
    }
    us_op_list_free(api->store, &ops);
    json_object_put(body);
}

/* One batch element: an object with exactly one method key. */
static void parse_batch_command(us_api *api, us_command *c, json_object *elem, us_op_list *ops)
{
    if (!json_object_is_type(elem, json_type_object) || json_object_object_length(elem) != 1) {
        us_command_fail(c, US_ERR_BAD_REQUEST, true,
                        "a command must be an object with one method key");
        return;
    }
    json_object_object_foreach(elem, name, params)
    {
        c->method = us_method_lookup(name, strlen(name), false);
        if (c->method == US_METHOD_UNKNOWN) {
            us_command_fail(c, US_ERR_NOT_FOUND, false, "unknown method");
            return;
        }
        us_command_parse_params(api->rules, c, params, ops);
    }
}

/* POST <prefix>/batch */
static void handle_batch(us_api *api, const us_http_request *req, us_http_response *resp)
{
    char why[128];
    json_object *body = us_command_rules_parse_object(api->rules, req->body, req->body_len, "body",
                                                      why, sizeof why);
    json_object *list = NULL;
    if (!body) {
        respond_error(api, req, resp, US_ERR_BAD_REQUEST, 400, why);
        count_command(api, US_METHOD_UNKNOWN, "batch", US_ERR_BAD_REQUEST);
        return;
    }
    if (!json_object_object_get_ex(body, "commands", &list) || list == NULL) {
        respond_error(api, req, resp, US_ERR_BAD_REQUEST, 200, "commands is required");
        count_command(api, US_METHOD_UNKNOWN, "batch", US_ERR_BAD_REQUEST);
        json_object_put(body);
        return;
    }
    if (!json_object_is_type(list, json_type_array)) {
        respond_error(api, req, resp, US_ERR_BAD_REQUEST, 400, "commands must be an array");
        count_command(api, US_METHOD_UNKNOWN, "batch", US_ERR_BAD_REQUEST);
        json_object_put(body);
        return;
    }
    size_t n = json_object_array_length(list);
    if (n > US_MAX_COMMANDS_PER_REQUEST) {
        char why_n[64];
        us_set_msg(why_n, sizeof why_n, "too many commands: %zu, at most %d", n,
                   US_MAX_COMMANDS_PER_REQUEST);
        respond_error(api, req, resp, US_ERR_BAD_REQUEST, 200, why_n);
        count_command(api, US_METHOD_UNKNOWN, "batch", US_ERR_BAD_REQUEST);
        json_object_put(body);
        return;
    }
    us_command *cmds = us_xcalloc(n ? n : 1, sizeof *cmds);
    us_op_list ops = {0};
    for (size_t i = 0; i < n; i++)
        parse_batch_command(api, &cmds[i], json_object_array_get_idx(list, i), &ops);
    us_op_list_run(api->store, &ops);
    resp->status = 200;
    resp->content_type = "application/json";
    us_buf_puts(&resp->body, "{\"replies\":[");
    for (size_t i = 0; i < n; i++) {
        us_command_settle(&cmds[i], ops.v);
        count_command(api, cmds[i].method, NULL, cmds[i].code);
        if (i)
            us_buf_putc(&resp->body, ',');
        us_buf_putc(&resp->body, '{');
        if (cmds[i].code) {
            put_command_error(&resp->body, &cmds[i]);
        } else {
            const char *name = us_method_name(cmds[i].method);
            us_json_put_str(&resp->body, name, strlen(name));
            us_buf_putc(&resp->body, ':');
            us_command_put_result(&resp->body, &cmds[i], ops.v);
        }
        us_buf_putc(&resp->body, '}');
    }
    us_buf_puts(&resp->body, "]}");
    us_op_list_free(api->store, &ops);
    free(cmds);
    json_object_put(body);
}

/* The largest integer a JSON reader that holds numbers as doubles (JavaScript, most
 * SDKs) reads exactly: an id beyond it would come back as another number. */
#define LEGACY_ID_MAX 9007199254740991LL /* 2^53 - 1 */

/* A legacy id is echoed as it came only when every client reads it back unchanged: an
 * integer in the safe range, or a string of valid UTF-8 (json-c keeps raw bytes and the
 * bytes of \u escapes as they decode, lone surrogates included). */
static bool legacy_id_echoable(json_object *id)
{
    if (json_object_is_type(id, json_type_int)) {
        /* json-c clamps what int64 cannot hold, far beyond the safe range either way */
        int64_t v = json_object_get_int64(id);
        return v >= -LEGACY_ID_MAX && v <= LEGACY_ID_MAX;
    }
    if (json_object_is_type(id, json_type_string))
        return us_utf8_valid(json_object_get_string(id),
                             (size_t)json_object_get_string_len(id)) != 0;
    return false;
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
        respond_error(api, req, resp, US_ERR_BAD_REQUEST, 400, "empty body");
        count_command(api, US_METHOD_UNKNOWN, NULL, US_ERR_BAD_REQUEST);
        return;
    }
    if (n > US_MAX_COMMANDS_PER_REQUEST) {
        char why_n[64];
        us_set_msg(why_n, sizeof why_n, "too many commands: %zu, at most %d", n,
                   US_MAX_COMMANDS_PER_REQUEST);
        respond_error(api, req, resp, US_ERR_BAD_REQUEST, 200, why_n);
        count_command(api, US_METHOD_UNKNOWN, NULL, US_ERR_BAD_REQUEST);
        return;
    }
    us_command *cmds = us_xcalloc(n, sizeof *cmds);
    json_object **lines = us_xcalloc(n, sizeof *lines);
    us_op_list ops = {0};
    size_t k = 0;
    /* Every line is held until the replies are written: the JSON-value bound is the
     * request's, shared by its lines, as the users limit is. */
    size_t values_left = us_command_rules_max_values(api->rules);
    for (const char *p = req->body; p < end && k < n;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *q = p;
        while (q < le && isspace((unsigned char)*q))
            q++;
        p = nl ? nl + 1 : end;
        if (q == le)
            continue;
        us_command *c = &cmds[k];
        char why[128];
        json_object *obj = us_command_rules_parse_object_shared(
            api->rules, q, (size_t)(le - q), &values_left, "a command", why, sizeof why);
        lines[k++] = obj;
        if (!obj) {
            us_command_fail(c, US_ERR_BAD_REQUEST, true, "%s", why);
            continue;
        }
        json_object *id = NULL, *method = NULL, *params = NULL;
        if (json_object_object_get_ex(obj, "id", &id) && id) {
            if (!legacy_id_echoable(id)) {
                us_command_fail(c, US_ERR_BAD_REQUEST, false,
                                "id must be an integer of at most 2^53-1 in magnitude or a "
                                "UTF-8 string");
                continue;
            }
            c->id = id;
        }
        if (!json_object_object_get_ex(obj, "method", &method) ||
            !json_object_is_type(method, json_type_string)) {
            us_command_fail(c, US_ERR_BAD_REQUEST, true, "method must be a string");
            continue;
        }
        c->method = us_method_lookup(json_object_get_string(method),
                                     (size_t)json_object_get_string_len(method), true);
        if (c->method == US_METHOD_UNKNOWN) {
            us_command_fail(c, US_ERR_NOT_FOUND, false, "unknown method");
            continue;
        }
        json_object_object_get_ex(obj, "params", &params);
        us_command_parse_params(api->rules, c, params, &ops);
    }
    us_op_list_run(api->store, &ops);
    resp->status = 200;
    resp->content_type = "application/json";
    for (size_t i = 0; i < n; i++) {
        us_command *c = &cmds[i];
        us_command_settle(c, ops.v);
        count_command(api, c->method, NULL, c->code);
        if (i)
            us_buf_putc(&resp->body, '\n');
        us_buf_putc(&resp->body, '{');
        if (c->id) {
            US_BUF_LITERAL(&resp->body, "\"id\":");
            if (json_object_is_type(c->id, json_type_string))
                us_json_put_str(&resp->body, json_object_get_string(c->id),
                                (size_t)json_object_get_string_len(c->id));
            else
                us_buf_put_i64(&resp->body, json_object_get_int64(c->id));
            us_buf_putc(&resp->body, ',');
        }
        if (c->code) {
            put_command_error(&resp->body, c);
        } else {
            us_buf_puts(&resp->body, "\"result\":");
            us_command_put_result(&resp->body, c, ops.v);
        }
        us_buf_putc(&resp->body, '}');
    }
    us_op_list_free(api->store, &ops);
    for (size_t i = 0; i < n; i++)
        json_object_put(lines[i]);
    free(lines);
    free(cmds);
}

void us_api_handle(us_api *api, const us_http_request *req, us_http_response *resp)
{
    /* http.h allows a NULL body of length 0; every handler below reads bytes from it. */
    us_http_request with_body;
    if (!req->body) {
        with_body = *req;
        with_body.body = "";
        with_body.body_len = 0;
        req = &with_body;
    }
    api->request_start_ns = us_clock_mono_ns();
    if (!us_http_method_is(req, "POST")) {
        us_http_method_not_allowed(resp, "POST");
        return;
    }
    if (req->body_len > api->cfg->http_api.max_body_bytes) {
        us_http_payload_too_large(resp);
        return;
    }
    if (!us_auth_api_key(req, api->cfg->http_api.key, api->cfg->http_api.insecure)) {
        us_http_respond_empty(resp, 401);
        return;
    }
    const char *path = req->path ? req->path : "";
    const char *prefix = api->cfg->http_api.handler_prefix;
    if (strncmp(path, prefix, api->prefix_len) != 0) {
        respond_error(api, req, resp, US_ERR_NOT_FOUND, 404, NULL);
        return;
    }
    const char *rest = path + api->prefix_len;
    if (rest[0] == '\0' || strcmp(rest, "/") == 0) {
        handle_legacy(api, req, resp);
        return;
    }
    if (rest[0] != '/') {
        respond_error(api, req, resp, US_ERR_NOT_FOUND, 404, NULL);
        return;
    }
    rest++;
    if (strcmp(rest, "batch") == 0) {
        handle_batch(api, req, resp);
        return;
    }
    us_method m = us_method_lookup(rest, strlen(rest), false);
    if (m == US_METHOD_UNKNOWN) {
        respond_error(api, req, resp, US_ERR_NOT_FOUND, 404, NULL);
        count_command(api, US_METHOD_UNKNOWN, NULL, US_ERR_NOT_FOUND);
        return;
    }
    handle_direct(api, req, resp, m);
}

us_api *us_api_create(const us_config *cfg, const us_command_rules *rules, us_store *store)
{
    us_api *api = us_xcalloc(1, sizeof *api);
    api->cfg = cfg;
    api->rules = rules;
    api->store = store;
    api->prefix_len = strlen(cfg->http_api.handler_prefix);
    return api;
}

void us_api_free(us_api *api)
{
    free(api);
}
