/* Client-side status updates (SPEC §6): the JWT-authenticated endpoints browsers and
 * apps call, CORS, the per-user minimum write interval, and the Centrifugo OSS RPC proxy
 * endpoint.
 *
 * The minimum interval keeps `active` exact to the second. Stored timestamps are whole
 * seconds and writes max-merge, so a second write of the same fields within the same
 * second changes nothing in Redis but the expiry. A call is therefore skipped only when
 * this process already wrote every field it asks for (and the same state) within the
 * same wall-clock second *and* less than min_update_interval ago; the first call of
 * every new second is always written. That bounds the writes a client can cause to one
 * per second per user and process for each kind of call (an /online arriving before an
 * update in a second costs one more; a changed state is always written), and every
 * stored `active`/`online` is the second of the latest call. An interval above 1s
 * therefore acts as 1s: exactness wins. */
#include "ustatus/client.h"

#include <ctype.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <json-c/json.h>

#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/hash.h"
#include "ustatus/json.h"
#include "ustatus/jwt.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"
#include "ustatus/secret.h"
#include "ustatus/text.h"

/* The largest valid client body is {"state":"<256 bytes>"}; anything much bigger is not
 * a client of ours, whatever http_api.max_body_bytes allows the server API. */
#define CLIENT_MAX_BODY_BYTES 4096
#define PREFLIGHT_MAX_AGE_S   600

/* Per-process table of recent writes: fixed size, open addressing with a short probe.
 * Losing an entry only costs one extra write, so a full window evicts its oldest. */
#define THROTTLE_SLOTS 4096u
#define THROTTLE_PROBE 8u

enum {
    E_INTERNAL = 100,
    E_UNAUTHORIZED = 101,
    E_NOT_FOUND = 104,
    E_BAD_REQUEST = 107,
    E_NOT_AVAILABLE = 108,
    E_TOKEN_EXPIRED = 109,
};

typedef struct throttle_entry {
    char *user; /* NULL = free slot */
    size_t user_len;
    uint64_t hash;
    int64_t active_ms; /* Unix ms of the last write of each part; 0 = none */
    int64_t online_ms;
    int64_t state_ms;
    us_state_mode state_mode; /* of the last state write */
    char *state;
    size_t state_len;
} throttle_entry;

struct us_client {
    const us_config *cfg;
    us_store *store;
    us_jwt_verifier *jwt;
    regex_t state_re;
    bool has_state_re;
    size_t client_prefix_len;
    size_t proxy_prefix_len;
    bool proxy_enabled;
    int64_t min_interval_ms;
    throttle_entry *slots; /* NULL when min_interval_ms is 0 */
    us_buf user;           /* scratch: the token's user */
};

/* One write: what it sets, validated, ready for the store. */
typedef struct write_req {
    const char *user;
    size_t user_len;
    unsigned fields; /* US_FIELD_* */
    us_state_mode state_mode;
    const char *state;
    size_t state_len;
} write_req;

/* ---- small helpers ---- */

/* The part of path after prefix when path is prefix itself or below it ("" or "/..."),
 * else NULL. */
static const char *below(const char *path, const char *prefix, size_t prefix_len)
{
    if (strncmp(path, prefix, prefix_len) != 0)
        return NULL;
    const char *rest = path + prefix_len;
    return rest[0] == '\0' || rest[0] == '/' ? rest : NULL;
}

/* Exactly one JSON object (strict syntax), nothing but whitespace after it. */
static json_object *parse_object(const char *s, size_t len, char *why, size_t why_len)
{
    json_tokener *tok = json_tokener_new();
    if (!tok)
        abort();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    const char *problem = NULL;
    if (jerr == json_tokener_continue)
        problem = "truncated JSON";
    else if (jerr != json_tokener_success)
        problem = json_tokener_error_desc(jerr);
    else if (!json_object_is_type(obj, json_type_object))
        problem = "body must be a JSON object";
    for (size_t i = json_tokener_get_parse_end(tok); !problem && i < len; i++)
        if (!isspace((unsigned char)s[i]))
            problem = "unexpected data after the JSON value";
    json_tokener_free(tok);
    if (problem) {
        us_set_msg(why, why_len, "%s", problem);
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i]))
            return false;
    return true;
}

/* ---- responses ---- */

static const char *error_message(int code)
{
    switch (code) {
    case E_UNAUTHORIZED: return "unauthorized";
    case E_NOT_FOUND: return "not found";
    case E_BAD_REQUEST: return "bad request";
    case E_NOT_AVAILABLE: return "not available";
    case E_TOKEN_EXPIRED: return "token expired";
    default: return "internal server error";
    }
}

static void reply_error(us_http_response *resp, int http_status, int code, const char *details)
{
    resp->status = http_status;
    resp->content_type = "application/json";
    us_buf_reset(&resp->body);
    us_buf_printf(&resp->body, "{\"error\":{\"code\":%d,\"message\":\"%s\"", code,
                  error_message(code));
    if (details && *details) {
        us_buf_puts(&resp->body, ",\"details\":");
        us_json_put_str(&resp->body, details, strlen(details));
    }
    us_buf_puts(&resp->body, "}}");
}

static void reply_json(us_http_response *resp, int http_status, const char *body)
{
    resp->status = http_status;
    resp->content_type = "application/json";
    us_buf_reset(&resp->body);
    us_buf_puts(&resp->body, body);
}

static void reply_empty(us_http_response *resp, int http_status)
{
    resp->status = http_status;
    resp->content_type = NULL;
    us_buf_reset(&resp->body);
}

/* ---- CORS ---- */

/* An entry is an exact origin ("https://app.example.com"), "*" for any origin, or a
 * shell-style pattern (fnmatch) where a star stands for any part of a host name. */
static bool origin_allowed(const us_client *c, const char *origin)
{
    if (!origin || !*origin)
        return false;
    for (size_t i = 0; i < c->cfg->client.allowed_origins_count; i++) {
        const char *a = c->cfg->client.allowed_origins[i];
        if (strcmp(a, origin) == 0 || (strchr(a, '*') && fnmatch(a, origin, 0) == 0))
            return true;
    }
    return false;
}

/* The origin goes back as a header value: refuse anything that could split the header. */
static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

static bool add_cors(const us_client *c, const us_http_request *req, us_http_response *resp)
{
    /* Every client answer depends on Origin: caches must key on it. */
    us_buf_puts(&resp->headers, "Vary: Origin\r\n");
    if (!origin_allowed(c, req->origin) || !header_safe(req->origin))
        return false;
    us_buf_printf(&resp->headers, "Access-Control-Allow-Origin: %s\r\n", req->origin);
    return true;
}

/* ---- the minimum interval ---- */

static int64_t entry_last_ms(const throttle_entry *e)
{
    int64_t m = e->active_ms;
    if (e->online_ms > m)
        m = e->online_ms;
    if (e->state_ms > m)
        m = e->state_ms;
    return m;
}

/* True when this process wrote the same thing less than min_update_interval ago
 * (SPEC §6). With an interval of one second or less (the default), a write in a new
 * wall-clock second always goes through: stored timestamps are whole seconds, so then
 * a skipped write changes nothing but the expiry, and `active` stays exact to the second.
 * A longer interval is the operator trading that precision for fewer writes. */
static bool fresh(const us_client *c, int64_t last, int64_t now)
{
    if (last <= 0 || now < last || now - last >= c->min_interval_ms)
        return false;
    return c->min_interval_ms > 1000 || last / 1000 == now / 1000;
}

static throttle_entry *throttle_find(us_client *c, const char *user, size_t len, uint64_t h)
{
    for (unsigned i = 0; i < THROTTLE_PROBE; i++) {
        throttle_entry *e = &c->slots[(h + i) & (THROTTLE_SLOTS - 1)];
        if (e->user && e->hash == h && e->user_len == len && memcmp(e->user, user, len) == 0)
            return e;
    }
    return NULL;
}

/* The entry for user, taking a free slot, one last written in an earlier second (it can
 * no longer cause a skip), or the oldest of the probe window. */
static throttle_entry *throttle_take(us_client *c, const char *user, size_t len, int64_t now)
{
    uint64_t h = us_fnv1a64(user, len);
    throttle_entry *e = throttle_find(c, user, len, h);
    if (e)
        return e;
    throttle_entry *victim = NULL;
    for (unsigned i = 0; i < THROTTLE_PROBE; i++) {
        throttle_entry *s = &c->slots[(h + i) & (THROTTLE_SLOTS - 1)];
        if (!s->user || !fresh(c, entry_last_ms(s), now)) {
            victim = s;
            break;
        }
        if (!victim || entry_last_ms(s) < entry_last_ms(victim))
            victim = s;
    }
    free(victim->user);
    free(victim->state);
    memset(victim, 0, sizeof *victim);
    victim->user = us_xstrndup(user, len);
    victim->user_len = len;
    victim->hash = h;
    return victim;
}

static bool throttle_skip(us_client *c, const write_req *w, int64_t now)
{
    if (!c->slots)
        return false;
    const throttle_entry *e =
        throttle_find(c, w->user, w->user_len, us_fnv1a64(w->user, w->user_len));
    if (!e)
        return false;
    if ((w->fields & US_FIELD_ACTIVE) && !fresh(c, e->active_ms, now))
        return false;
    if ((w->fields & US_FIELD_ONLINE) && !fresh(c, e->online_ms, now))
        return false;
    if (w->state_mode != US_STATE_KEEP &&
        (!fresh(c, e->state_ms, now) || e->state_mode != w->state_mode ||
         (w->state_mode == US_STATE_SET &&
          (e->state_len != w->state_len || memcmp(e->state, w->state, w->state_len) != 0))))
        return false;
    return true;
}

static void throttle_record(us_client *c, const write_req *w, int64_t now)
{
    if (!c->slots)
        return;
    throttle_entry *e = throttle_take(c, w->user, w->user_len, now);
    if (w->fields & US_FIELD_ACTIVE)
        e->active_ms = now;
    if (w->fields & US_FIELD_ONLINE)
        e->online_ms = now;
    if (w->state_mode != US_STATE_KEEP) {
        e->state_ms = now;
        e->state_mode = w->state_mode;
        free(e->state);
        e->state = w->state_mode == US_STATE_SET ? us_xstrndup(w->state, w->state_len) : NULL;
        e->state_len = w->state_mode == US_STATE_SET ? w->state_len : 0;
    }
}

/* Writes unless the minimum interval says the write would change nothing. 0, or -1 when
 * Redis failed (nothing recorded then, so the next call tries again). */
static int write_status(us_client *c, const write_req *w, int64_t now)
{
    if (throttle_skip(c, w, now))
        return 0;
    us_op op = {
        .kind = US_OP_WRITE,
        .user = w->user,
        .user_len = w->user_len,
        .fields = w->fields,
        .state_mode = w->state_mode,
        .state = w->state,
        .state_len = w->state_len,
    };
    int rc = us_store_exec(c->store, &op, 1, now / 1000);
    us_store_ops_clear(c->store, &op, 1);
    if (rc != 0 || op.failed)
        return -1;
    throttle_record(c, w, now);
    return 0;
}

typedef enum { STATE_OK = 0, STATE_INVALID, STATE_WRONG_TYPE } state_check;

/* Validates an optional "state" member with the SPEC §1.3 rules into w; on a problem,
 * says what is wrong in why. */
static state_check take_state(const us_client *c, json_object *obj, write_req *w, char *why,
                              size_t why_len)
{
    json_object *state = NULL;
    if (!json_object_object_get_ex(obj, "state", &state) || state == NULL)
        return STATE_OK;
    if (!json_object_is_type(state, json_type_string)) {
        us_set_msg(why, why_len, "state must be a string");
        return STATE_WRONG_TYPE;
    }
    const char *sv = json_object_get_string(state);
    size_t sl = (size_t)json_object_get_string_len(state);
    if (sl == 0) {
        w->state_mode = US_STATE_CLEAR;
        return STATE_OK;
    }
    const char *bad = us_text_check(sv, sl, US_STATE_MAX_BYTES);
    if (bad) {
        us_set_msg(why, why_len, "state %s", bad);
        return STATE_INVALID;
    }
    if (c->has_state_re && regexec(&c->state_re, sv, 0, NULL, 0) != 0) {
        us_set_msg(why, why_len, "state does not match state_regex");
        return STATE_INVALID;
    }
    w->state_mode = US_STATE_SET;
    w->state = sv;
    w->state_len = sl;
    return STATE_OK;
}

/* ---- POST <client.handler_prefix>/... ---- */

typedef enum { EP_NONE = 0, EP_UPDATE, EP_ONLINE } endpoint;

/* The token of "Authorization: Bearer <token>" (scheme case-insensitive, RFC 7235). */
static bool bearer_token(const char *h, const char **tok, size_t *tok_len)
{
    if (!h)
        return false;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return false;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strcspn(h, " \t");
    const char *after = h + n;
    while (*after == ' ' || *after == '\t')
        after++;
    if (n == 0 || *after)
        return false;
    *tok = h;
    *tok_len = n;
    return true;
}

static void handle_client(us_client *c, const us_http_request *req, us_http_response *resp,
                          const char *rest)
{
    const us_config *cfg = c->cfg;
    bool cors = add_cors(c, req, resp);
    endpoint ep = strcmp(rest, "/update_user_status") == 0 ? EP_UPDATE
                  : strcmp(rest, "/online") == 0           ? EP_ONLINE
                                                           : EP_NONE;
    if (ep == EP_NONE || cfg->user_status.disable_for_client) {
        reply_error(resp, 404, E_NOT_FOUND, NULL);
        return;
    }
    const char *method = req->method ? req->method : "";
    if (strcmp(method, "OPTIONS") == 0) {
        /* A preflight from an origin we do not serve gets a plain refusal: the browser
         * fails it either way, and 403 tells whoever debugs it why. */
        if (!cors) {
            reply_empty(resp, 403);
            return;
        }
        reply_empty(resp, 204);
        us_buf_printf(&resp->headers,
                      "Access-Control-Allow-Methods: POST\r\n"
                      "Access-Control-Allow-Headers: Authorization, Content-Type\r\n"
                      "Access-Control-Max-Age: %d\r\n",
                      PREFLIGHT_MAX_AGE_S);
        return;
    }
    if (strcmp(method, "POST") != 0) {
        reply_empty(resp, 405);
        us_buf_puts(&resp->headers, "Allow: POST, OPTIONS\r\n");
        return;
    }
    if (req->body_len > cfg->http_api.max_body_bytes || req->body_len > CLIENT_MAX_BODY_BYTES) {
        reply_empty(resp, 413);
        return;
    }

    int64_t now = us_clock_wall_ms();
    const char *tok = NULL;
    size_t tok_len = 0;
    /* RFC 6750 §3: a 401 names the scheme it wants. */
    if (!bearer_token(req->authorization, &tok, &tok_len)) {
        reply_error(resp, 401, E_UNAUTHORIZED, NULL);
        us_buf_puts(&resp->headers, "WWW-Authenticate: Bearer\r\n");
        return;
    }
    us_jwt_status st = us_jwt_verify(c->jwt, tok, tok_len, now / 1000, &c->user);
    if (st != US_JWT_OK) {
        us_debug("client: token rejected: %s", us_jwt_status_text(st));
        bool expired = st == US_JWT_EXPIRED || st == US_JWT_NOT_YET_VALID;
        reply_error(resp, 401, expired ? E_TOKEN_EXPIRED : E_UNAUTHORIZED, NULL);
        us_buf_puts(&resp->headers, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
        return;
    }
    /* Anonymous, or a user ID that could never be stored: no status for it. */
    if (us_text_check(c->user.data, c->user.len, US_USER_ID_MAX_BYTES)) {
        us_debug("client: token rejected: no usable user");
        reply_error(resp, 401, E_UNAUTHORIZED, NULL);
        us_buf_puts(&resp->headers, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
        return;
    }

    write_req w = {
        .user = c->user.data,
        .user_len = c->user.len,
        .fields = ep == EP_UPDATE ? US_FIELD_ACTIVE | US_FIELD_ONLINE : US_FIELD_ONLINE,
    };
    json_object *body = NULL;
    const char *b = req->body ? req->body : "";
    /* No body at all reads as {}: a bare fetch(url, {method: "POST"}) is a fine heartbeat. */
    if (!blank(b, req->body_len)) {
        char why[128];
        body = parse_object(b, req->body_len, why, sizeof why);
        if (!body) {
            reply_error(resp, 400, E_BAD_REQUEST, why);
            return;
        }
        state_check sc = ep == EP_UPDATE ? take_state(c, body, &w, why, sizeof why) : STATE_OK;
        if (sc != STATE_OK) {
            /* As the server API: a wrong JSON type is a 400, a rejected value a 200. */
            reply_error(resp, sc == STATE_WRONG_TYPE ? 400 : 200, E_BAD_REQUEST, why);
            json_object_put(body);
            return;
        }
    }
    if (!cfg->user_status.enabled) {
        reply_error(resp, 200, E_NOT_AVAILABLE, "user status is disabled");
    } else if (write_status(c, &w, now) < 0) {
        reply_error(resp, 200, E_INTERNAL, NULL);
    } else {
        reply_json(resp, 200, "{\"result\":{}}");
    }
    json_object_put(body);
}

/* ---- POST <centrifugo_proxy.handler_prefix>/rpc ---- */

/* Centrifugo relays `error` objects to the client; codes in [400, 1999] are the
 * application's own, outside the range of Centrifugo's built-in client errors. */
static void proxy_error(us_http_response *resp, int code, const char *message)
{
    resp->status = 200;
    resp->content_type = "application/json";
    us_buf_reset(&resp->body);
    us_buf_printf(&resp->body, "{\"error\":{\"code\":%d,\"message\":\"%s\"}}", code, message);
}

/* "update_user_status", bare or in an RPC namespace ("status:update_user_status"), so
 * that ustatus can be one named proxy among others in Centrifugo's rpc.namespaces. */
static bool is_update_method(const char *m)
{
    static const char name[] = "update_user_status";
    const char *colon = strrchr(m, ':');
    return strcmp(colon ? colon + 1 : m, name) == 0;
}

static void handle_proxy(us_client *c, const us_http_request *req, us_http_response *resp,
                         const char *rest)
{
    const us_config *cfg = c->cfg;
    if (strcmp(rest, "/rpc") != 0) {
        reply_error(resp, 404, E_NOT_FOUND, NULL);
        return;
    }
    if (!req->method || strcmp(req->method, "POST") != 0) {
        reply_empty(resp, 405);
        us_buf_puts(&resp->headers, "Allow: POST\r\n");
        return;
    }
    if (req->body_len > cfg->http_api.max_body_bytes) {
        reply_empty(resp, 413);
        return;
    }
    if (!req->x_api_key ||
        !us_secret_equal(req->x_api_key, strlen(req->x_api_key), cfg->centrifugo_proxy.key,
                         strlen(cfg->centrifugo_proxy.key))) {
        reply_empty(resp, 401);
        return;
    }
    char why[128];
    json_object *body = parse_object(req->body ? req->body : "", req->body_len, why, sizeof why);
    if (!body) {
        reply_error(resp, 400, E_BAD_REQUEST, why);
        return;
    }
    json_object *method = NULL, *user = NULL, *encoding = NULL, *data = NULL;
    json_object_object_get_ex(body, "method", &method);
    json_object_object_get_ex(body, "user", &user);
    json_object_object_get_ex(body, "encoding", &encoding);
    json_object_object_get_ex(body, "data", &data);
    if ((method && !json_object_is_type(method, json_type_string)) ||
        (user && !json_object_is_type(user, json_type_string)) ||
        (encoding && !json_object_is_type(encoding, json_type_string))) {
        reply_error(resp, 400, E_BAD_REQUEST, "method, user and encoding must be strings");
        goto done;
    }
    /* With binary_encoding Centrifugo sends b64data and relays the answer's b64data (or
     * nothing) to a binary client; data is never looked at then. */
    bool binary = encoding && strcmp(json_object_get_string(encoding), "binary") == 0;
    if (!method || !is_update_method(json_object_get_string(method)) ||
        cfg->user_status.disable_for_client) {
        proxy_error(resp, 404, "method not found");
        goto done;
    }
    const char *u = user ? json_object_get_string(user) : "";
    size_t ulen = user ? (size_t)json_object_get_string_len(user) : 0;
    if (ulen == 0) {
        proxy_error(resp, 403, "permission denied");
        goto done;
    }
    if (us_text_check(u, ulen, US_USER_ID_MAX_BYTES)) {
        proxy_error(resp, 400, "bad request");
        goto done;
    }
    write_req w = {.user = u, .user_len = ulen, .fields = US_FIELD_ACTIVE | US_FIELD_ONLINE};
    /* The RPC's data may carry {"state": "..."} like the client endpoint's body. */
    if (!binary && data && json_object_is_type(data, json_type_object) &&
        take_state(c, data, &w, why, sizeof why) != STATE_OK) {
        proxy_error(resp, 400, "bad request");
        goto done;
    }
    if (!cfg->user_status.enabled) {
        proxy_error(resp, 503, "not available");
        goto done;
    }
    if (write_status(c, &w, us_clock_wall_ms()) < 0) {
        /* Not an error object: a failed proxy call makes Centrifugo log it and answer the
         * client with its own internal error. */
        reply_error(resp, 500, E_INTERNAL, NULL);
        goto done;
    }
    reply_json(resp, 200, binary ? "{\"result\":{}}" : "{\"result\":{\"data\":{}}}");
done:
    json_object_put(body);
}

/* ---- entry points ---- */

/* True when a path under `inner` would also be under `outer` (or they are the same). */
static bool shadows(const char *outer, const char *inner)
{
    return below(inner, outer, strlen(outer)) != NULL;
}

us_client *us_client_create(const us_config *cfg, us_store *store, char *err, size_t err_len)
{
    us_client *c = us_xcalloc(1, sizeof *c);
    c->cfg = cfg;
    c->store = store;
    const char *api = cfg->http_api.handler_prefix;
    const char *cli = cfg->client.handler_prefix;
    const char *proxy = cfg->centrifugo_proxy.handler_prefix;
    c->proxy_enabled = cfg->centrifugo_proxy.key && cfg->centrifugo_proxy.key[0];
    if (shadows(cli, api) || shadows(api, cli)) {
        us_set_msg(err, err_len,
                 "client.handler_prefix \"%s\" overlaps http_api.handler_prefix \"%s\"", cli, api);
        goto fail;
    }
    if (c->proxy_enabled && (shadows(proxy, api) || shadows(api, proxy) || shadows(proxy, cli) ||
                             shadows(cli, proxy))) {
        us_set_msg(err, err_len,
                 "centrifugo_proxy.handler_prefix \"%s\" overlaps another handler prefix", proxy);
        goto fail;
    }
    c->client_prefix_len = strlen(cli);
    c->proxy_prefix_len = strlen(proxy);

    const char *secret = cfg->client.token.hmac_secret_key;
    us_jwt_options o = {
        .hmac_secret = secret,
        .hmac_secret_len = secret ? strlen(secret) : 0,
        .rsa_public_pem = cfg->client.token.rsa_public_key,
        .ecdsa_public_pem = cfg->client.token.ecdsa_public_key,
        .audience = cfg->client.token.audience,
        .issuer = cfg->client.token.issuer,
        .user_id_claim = cfg->client.token.user_id_claim,
    };
    c->jwt = us_jwt_verifier_create(&o, err, err_len);
    if (!c->jwt)
        goto fail;
    if (cfg->user_status.state_regex && cfg->user_status.state_regex[0]) {
        int rc = regcomp(&c->state_re, cfg->user_status.state_regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &c->state_re, msg, sizeof msg);
            us_set_msg(err, err_len, "user_status.state_regex: %s", msg);
            goto fail;
        }
        c->has_state_re = true;
    }
    c->min_interval_ms = cfg->client.min_update_interval_ms;
    if (c->min_interval_ms > 0)
        c->slots = us_xcalloc(THROTTLE_SLOTS, sizeof *c->slots);
    return c;
fail:
    us_client_free(c);
    return NULL;
}

bool us_client_handle(us_client *c, const us_http_request *req, us_http_response *resp)
{
    const char *path = req->path ? req->path : "";
    const char *rest = below(path, c->cfg->client.handler_prefix, c->client_prefix_len);
    if (rest) {
        us_http_response_reset(resp);
        handle_client(c, req, resp, rest);
        return true;
    }
    if (c->proxy_enabled) {
        rest = below(path, c->cfg->centrifugo_proxy.handler_prefix, c->proxy_prefix_len);
        if (rest) {
            us_http_response_reset(resp);
            handle_proxy(c, req, resp, rest);
            return true;
        }
    }
    return false;
}

void us_client_free(us_client *c)
{
    if (!c)
        return;
    us_jwt_verifier_free(c->jwt);
    if (c->has_state_re)
        regfree(&c->state_re);
    if (c->slots) {
        for (unsigned i = 0; i < THROTTLE_SLOTS; i++) {
            free(c->slots[i].user);
            free(c->slots[i].state);
        }
        free(c->slots);
    }
    us_buf_free(&c->user);
    free(c);
}
