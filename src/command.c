/* Commands: params -> store operations, with the rules every endpoint shares. */
#include "ustatus/command.h"

#include <regex.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ustatus/clock.h"
#include "ustatus/envelope.h"
#include "ustatus/json.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"
#include "ustatus/text.h"

/* With the users limit, it bounds the JSON values a request may hold (and so the memory
 * json-c takes): users, plus a few per command. */
#define JSON_VALUES_PER_COMMAND 16

static const struct {
    const char *name;
    us_method id;
} methods[] = {
    {"update_user_status", US_METHOD_UPDATE},
    {"get_user_status", US_METHOD_GET},
    {"delete_user_status", US_METHOD_DELETE},
    {"update_user_online", US_METHOD_ONLINE},
};

us_method us_method_lookup(const char *name, size_t len, bool nocase)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strlen(methods[i].name) != len)
            continue;
        if (nocase ? strncasecmp(methods[i].name, name, len) == 0
                   : memcmp(methods[i].name, name, len) == 0)
            return methods[i].id;
    }
    return US_METHOD_UNKNOWN;
}

const char *us_method_name(us_method m)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].id == m)
            return methods[i].name;
    return "";
}

/* ---- the rules ---- */

struct us_command_rules {
    const us_config *cfg;
    regex_t state_re;
    bool has_state_re;
    size_t max_json_values;
};

us_command_rules *us_command_rules_create(const us_config *cfg, char *err, size_t err_len)
{
    us_command_rules *r = us_xcalloc(1, sizeof *r);
    r->cfg = cfg;
    r->max_json_values = cfg->user_status.max_users_per_request +
                         (size_t)US_MAX_COMMANDS_PER_REQUEST * JSON_VALUES_PER_COMMAND + 64;
    if (cfg->user_status.state_regex && cfg->user_status.state_regex[0]) {
        int rc = regcomp(&r->state_re, cfg->user_status.state_regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &r->state_re, msg, sizeof msg);
            us_set_msg(err, err_len, "user_status.state_regex: %s", msg);
            free(r);
            return NULL;
        }
        r->has_state_re = true;
    }
    return r;
}

void us_command_rules_free(us_command_rules *r)
{
    if (!r)
        return;
    if (r->has_state_re)
        regfree(&r->state_re);
    free(r);
}

bool us_command_rules_enabled(const us_command_rules *r)
{
    return r->cfg->user_status.enabled;
}

int us_command_rules_state(const us_command_rules *r, const char *sv, size_t sl,
                           us_state_mode *mode, char *why, size_t why_len)
{
    if (sl == 0) {
        *mode = US_STATE_CLEAR;
        return 0;
    }
    const char *bad = us_text_check(sv, sl, US_STATE_MAX_BYTES);
    if (bad)
        return us_fail(why, why_len, "state %s", bad);
    if (r->has_state_re) {
        /* regexec needs a C string; a state read in place from a body is not one. */
        char z[US_STATE_MAX_BYTES + 1];
        memcpy(z, sv, sl);
        z[sl] = '\0';
        if (regexec(&r->state_re, z, 0, NULL, 0) != 0)
            return us_fail(why, why_len, "state does not match state_regex");
    }
    *mode = US_STATE_SET;
    return 0;
}

us_state_check us_command_rules_take_state(const us_command_rules *r, json_object *obj,
                                           us_state_mode *mode, const char **sv, size_t *sl,
                                           char *why, size_t why_len)
{
    json_object *state = NULL;
    *mode = US_STATE_KEEP;
    *sv = NULL;
    *sl = 0;
    if (!json_object_object_get_ex(obj, "state", &state) || state == NULL)
        return US_STATE_CHECK_OK;
    if (!json_object_is_type(state, json_type_string)) {
        us_set_msg(why, why_len, "state must be a string");
        return US_STATE_CHECK_WRONG_TYPE;
    }
    const char *v = json_object_get_string(state);
    size_t len = (size_t)json_object_get_string_len(state);
    if (us_command_rules_state(r, v, len, mode, why, why_len) < 0)
        return US_STATE_CHECK_INVALID;
    if (*mode == US_STATE_SET) {
        *sv = v;
        *sl = len;
    }
    return US_STATE_CHECK_OK;
}

json_object *us_command_rules_parse_object(const us_command_rules *r, const char *s, size_t len,
                                           const char *what, char *why, size_t why_len)
{
    return us_json_parse_object(s, len, r->max_json_values, what, why, why_len);
}

size_t us_command_rules_max_values(const us_command_rules *r)
{
    return r->max_json_values;
}

/* The values json-c holds for o (a JSON null is a NULL object): as us_json_check counts
 * them in the text, less any member an object key repeated away. */
static size_t count_values(json_object *o)
{
    size_t n = 1;
    if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, key, member)
        {
            (void)key;
            n += count_values(member);
        }
    } else if (json_object_is_type(o, json_type_array)) {
        size_t len = json_object_array_length(o);
        for (size_t i = 0; i < len; i++)
            n += count_values(json_object_array_get_idx(o, i));
    }
    return n;
}

json_object *us_command_rules_parse_object_shared(const us_command_rules *r, const char *s,
                                                  size_t len, size_t *values_left,
                                                  const char *what, char *why, size_t why_len)
{
    if (*values_left == 0) {
        /* (us_json_check's 0 would mean no bound at all) */
        us_set_msg(why, why_len, "more than %zu JSON values in this request",
                   r->max_json_values);
        return NULL;
    }
    json_object *obj = us_json_parse_object(s, len, *values_left, what, why, why_len);
    if (!obj) {
        if (why && strncmp(why, "more than ", 10) == 0)
            us_set_msg(why, why_len, "more than %zu JSON values in this request",
                       r->max_json_values);
        return NULL;
    }
    size_t n = count_values(obj);
    *values_left -= n < *values_left ? n : *values_left;
    return obj;
}

/* ---- commands ---- */

void us_command_fail(us_command *c, int code, bool type_error, const char *fmt, ...)
{
    if (c->code)
        return; /* the first problem is the one reported */
    c->code = code;
    c->type_error = type_error;
    c->details[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        us_vset_msg(c->details, sizeof c->details, fmt, ap);
        va_end(ap);
    }
}

static void ops_push(us_op_list *ops, const us_op *op)
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
static void finish_params(const us_command_rules *r, us_command *c, us_op_list *ops, const char *sv,
                          size_t sl)
{
    const us_config *cfg = r->cfg;
    size_t n = ops->n - c->op_start;
    us_op proto = {0};
    if (c->method == US_METHOD_UPDATE && sv) {
        char why[128];
        if (us_command_rules_state(r, sv, sl, &proto.state_mode, why, sizeof why) < 0) {
            us_command_fail(c, US_ERR_BAD_REQUEST, false, "%s", why);
            goto fail;
        }
        if (proto.state_mode == US_STATE_SET) {
            proto.state = sv;
            proto.state_len = sl;
        }
    }
    /* The limit holds for a whole request: a batch or legacy body cannot multiply it. */
    if (n > cfg->user_status.max_users_per_request - c->op_start) {
        if (c->op_start)
            us_command_fail(c, US_ERR_BAD_REQUEST, false,
                            "too many users: %zu in this request, at most %zu", c->op_start + n,
                            cfg->user_status.max_users_per_request);
        else
            us_command_fail(c, US_ERR_BAD_REQUEST, false, "too many users: %zu, at most %zu", n,
                            cfg->user_status.max_users_per_request);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const us_op *op = &ops->v[c->op_start + i];
        const char *why = us_user_id_check(op->user, op->user_len);
        if (why) {
            us_command_fail(c, US_ERR_BAD_REQUEST, false, "users[%zu] %s", i, why);
            goto fail;
        }
    }
    switch (c->method) {
    case US_METHOD_GET: proto.kind = US_OP_GET; break;
    case US_METHOD_DELETE: proto.kind = US_OP_DELETE; break;
    case US_METHOD_UPDATE:
        proto.kind = US_OP_WRITE;
        proto.fields = US_FIELD_ACTIVE;
        break;
    case US_METHOD_ONLINE:
        proto.kind = US_OP_WRITE;
        proto.fields = US_FIELD_ONLINE;
        break;
    case US_METHOD_UNKNOWN: goto fail;
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
void us_command_parse_params(const us_command_rules *r, us_command *c, json_object *params,
                             us_op_list *ops)
{
    const us_config *cfg = r->cfg;
    c->op_start = ops->n;
    c->op_count = 0;
    if (!cfg->user_status.enabled) {
        us_command_fail(c, US_ERR_NOT_AVAILABLE, false, "user status is disabled");
        return;
    }
    if (!params || !json_object_is_type(params, json_type_object)) {
        us_command_fail(c, US_ERR_BAD_REQUEST, true, "params must be a JSON object");
        return;
    }
    json_object *users = NULL;
    if (!json_object_object_get_ex(params, "users", &users) || users == NULL) {
        us_command_fail(c, US_ERR_BAD_REQUEST, false, "users is required");
        return;
    }
    if (!json_object_is_type(users, json_type_array)) {
        us_command_fail(c, US_ERR_BAD_REQUEST, true, "users must be an array of strings");
        return;
    }
    size_t n = json_object_array_length(users);
    for (size_t i = 0; i < n; i++)
        if (!json_object_is_type(json_object_array_get_idx(users, i), json_type_string)) {
            us_command_fail(c, US_ERR_BAD_REQUEST, true, "users[%zu] is not a string", i);
            return;
        }
    const char *sv = NULL;
    size_t sl = 0;
    if (c->method == US_METHOD_UPDATE) {
        json_object *state = NULL;
        if (json_object_object_get_ex(params, "state", &state) && state != NULL) {
            if (!json_object_is_type(state, json_type_string)) {
                us_command_fail(c, US_ERR_BAD_REQUEST, true, "state must be a string");
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
    finish_params(r, c, ops, sv, sl);
}

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
static bool parse_plain_direct(us_command *c, const char *s, size_t n, us_op_list *ops,
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

/* The result object of a command that succeeded, e.g. {"statuses":[...]} or {}. */
void us_command_put_result(us_buf *b, const us_command *c, const us_op *ops)
{
    if (c->method != US_METHOD_GET) {
        us_buf_puts(b, "{}");
        return;
    }
    US_BUF_LITERAL(b, "{\"statuses\":[");
    for (size_t i = 0; i < c->op_count; i++) {
        const us_op *op = &ops[c->op_start + i];
        if (i)
            us_buf_putc(b, ',');
        US_BUF_LITERAL(b, "{\"user\":");
        us_json_put_str(b, op->user, op->user_len);
        if (op->status.active) {
            US_BUF_LITERAL(b, ",\"active\":");
            us_buf_append(b, op->status.active, op->status.active_len);
        }
        if (op->status.online) {
            US_BUF_LITERAL(b, ",\"online\":");
            us_buf_append(b, op->status.online, op->status.online_len);
        }
        if (op->status.state) {
            US_BUF_LITERAL(b, ",\"state\":");
            us_json_put_str(b, op->status.state, op->status.state_len);
        }
        us_buf_putc(b, '}');
    }
    us_buf_puts(b, "]}");
}

/* A command whose Redis work failed fails whole: never a partial success. */
void us_command_settle(us_command *c, const us_op *ops)
{
    if (c->code)
        return;
    for (size_t i = 0; i < c->op_count; i++)
        if (ops[c->op_start + i].failed) {
            us_command_fail(c, US_ERR_INTERNAL, false, NULL);
            return;
        }
}

void us_op_list_run(us_store *store, us_op_list *ops)
{
    if (ops->n)
        us_store_exec(store, ops->v, ops->n, us_clock_wall_s());
}

void us_op_list_free(us_store *store, us_op_list *ops)
{
    us_store_ops_clear(store, ops->v, ops->n);
    free(ops->v);
    *ops = (us_op_list){0};
}

bool us_command_parse_plain(const us_command_rules *r, us_command *c, const char *s, size_t n,
                            us_op_list *ops)
{
    const char *sv;
    size_t sl;
    /* json-c builds an object per user that is thrown away at once, so the plain body is
     * read in place; only a checked body, as json-c's path would see it. */
    size_t op_start = c->op_start, op_count = c->op_count;
    if (!r->cfg->user_status.enabled ||
        us_json_check(s, n, US_JSON_MAX_DEPTH, r->max_json_values, NULL, 0) < 0 ||
        !parse_plain_direct(c, s, n, ops, &sv, &sl)) {
        c->op_start = op_start;
        c->op_count = op_count;
        return false;
    }
    finish_params(r, c, ops, c->method == US_METHOD_UPDATE ? sv : NULL, sl);
    return true;
}
