/* Client-side status updates (SPEC §6): Bearer JWT, CORS, then one write through the
 * throttle. */
#include "ustatus/client.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ustatus/auth.h"
#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/envelope.h"
#include "ustatus/jwks.h"
#include "ustatus/jwt.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/text.h"

/* The largest valid client body is {"state":"<256 bytes>"}; anything much bigger is not
 * a client of ours, whatever http_api.max_body_bytes allows the server API. */
#define CLIENT_MAX_BODY_BYTES 4096
#define PREFLIGHT_MAX_AGE_S   600
/* Longer Origin values are never allowed (browsers send scheme://host[:port]); bounds the
 * pattern matcher's work. */
#define ORIGIN_MAX_BYTES 1024

struct us_client {
    const us_config *cfg;
    const us_command_rules *rules;
    us_store *store;
    us_throttle *throttle;
    us_jwt_verifier *jwt;
    us_jwks *jwks; /* NULL without client.token.jwks_public_endpoint */
    us_buf user;   /* scratch: the token's user */
};

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i]))
            return false;
    return true;
}

/* ---- CORS ---- */

/* [s, s+n) matches pattern p, ASCII case-insensitively, where each '*' stands for any
 * run of characters without '/' or ':' (so a star stays inside one part of an origin:
 * it never reaches across the scheme separator, into a path, or onto a port). Every
 * other character is literal. Dynamic programming over the pattern, O(len(p) * n): no
 * backtracking blow-up whatever the input. */
static bool pattern_matches(const char *p, const char *s, size_t n)
{
    size_t m = strlen(p);
    bool *row = us_xcalloc(2 * (m + 1), sizeof *row);
    bool *cur = row, *next = row + m + 1;
    cur[0] = true; /* the empty pattern prefix matches the empty text prefix */
    for (size_t j = 1; j <= m; j++)
        cur[j] = cur[j - 1] && p[j - 1] == '*';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        next[0] = false;
        for (size_t j = 1; j <= m; j++) {
            if (p[j - 1] == '*')
                next[j] = next[j - 1] || (cur[j] && ch != '/' && ch != ':');
            else
                next[j] = cur[j - 1] && tolower((unsigned char)p[j - 1]) == tolower(ch);
        }
        bool *t = cur;
        cur = next;
        next = t;
    }
    bool ok = cur[m];
    free(row);
    return ok;
}

/* An entry is "*" (any origin), an exact origin ("https://app.example.com", compared
 * without regard to ASCII case), or a pattern with stars (pattern_matches). A pattern
 * without "://" ("*.example.com", as Centrifugo's examples write them) is matched
 * against what follows the origin's "scheme://", whatever the scheme. */
static bool origin_allowed(const us_client *c, const char *origin)
{
    if (!origin || !*origin)
        return false;
    size_t len = strlen(origin);
    if (len > ORIGIN_MAX_BYTES)
        return false;
    const char *sep = strstr(origin, "://");
    for (size_t i = 0; i < c->cfg->client.allowed_origins_count; i++) {
        const char *a = c->cfg->client.allowed_origins[i];
        if (strcmp(a, "*") == 0 || strcasecmp(a, origin) == 0)
            return true;
        if (!strchr(a, '*'))
            continue;
        if (strstr(a, "://")) {
            if (pattern_matches(a, origin, len))
                return true;
        } else if (sep && pattern_matches(a, sep + 3, len - (size_t)(sep + 3 - origin))) {
            return true;
        }
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

/* ---- POST <client.handler_prefix>/... ---- */

typedef enum { EP_NONE = 0, EP_UPDATE, EP_ONLINE } endpoint;

static void unauthorized(us_http_response *resp, int code, const char *challenge)
{
    us_envelope_error(resp, 401, code, NULL);
    /* RFC 6750 §3: a 401 names the scheme it wants. */
    us_buf_puts(&resp->headers, challenge);
}

void us_client_handle(us_client *c, const us_http_request *req, us_http_response *resp,
                      const char *rest)
{
    const us_config *cfg = c->cfg;
    bool cors = add_cors(c, req, resp);
    endpoint ep = strcmp(rest, "/update_user_status") == 0 ? EP_UPDATE
                  : strcmp(rest, "/online") == 0           ? EP_ONLINE
                                                           : EP_NONE;
    if (ep == EP_NONE || cfg->user_status.disable_for_client) {
        us_envelope_error(resp, 404, US_ERR_NOT_FOUND, NULL);
        return;
    }
    if (us_http_method_is(req, "OPTIONS")) {
        /* A preflight from an origin we do not serve gets a plain refusal: the browser
         * fails it either way, and 403 tells whoever debugs it why. */
        if (!cors) {
            us_http_respond_empty(resp, 403);
            return;
        }
        us_http_respond_empty(resp, 204);
        us_buf_printf(&resp->headers,
                      "Access-Control-Allow-Methods: POST\r\n"
                      "Access-Control-Allow-Headers: Authorization, Content-Type\r\n"
                      "Access-Control-Max-Age: %d\r\n",
                      PREFLIGHT_MAX_AGE_S);
        return;
    }
    if (!us_http_method_is(req, "POST")) {
        us_http_method_not_allowed(resp, "POST, OPTIONS");
        return;
    }
    if (req->body_len > cfg->http_api.max_body_bytes || req->body_len > CLIENT_MAX_BODY_BYTES) {
        us_http_payload_too_large(resp);
        return;
    }

    int64_t now = us_clock_wall_ms();
    const char *tok = NULL;
    size_t tok_len = 0;
    if (!us_auth_bearer(req->authorization, &tok, &tok_len)) {
        unauthorized(resp, US_ERR_UNAUTHORIZED, "WWW-Authenticate: Bearer\r\n");
        return;
    }
    us_jwt_status st = us_jwt_verify(c->jwt, tok, tok_len, now / 1000, &c->user);
    if (st != US_JWT_OK) {
        us_debug("client: token rejected: %s", us_jwt_status_text(st));
        bool expired = st == US_JWT_EXPIRED || st == US_JWT_NOT_YET_VALID;
        unauthorized(resp, expired ? US_ERR_TOKEN_EXPIRED : US_ERR_UNAUTHORIZED,
                     "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
        return;
    }
    /* Anonymous, or a user ID that could never be stored: no status for it. */
    if (us_user_id_check(c->user.data, c->user.len)) {
        us_debug("client: token rejected: no usable user");
        unauthorized(resp, US_ERR_UNAUTHORIZED,
                     "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n");
        return;
    }

    us_write w = {
        .user = c->user.data,
        .user_len = c->user.len,
        .fields = ep == EP_UPDATE ? US_FIELD_ACTIVE | US_FIELD_ONLINE : US_FIELD_ONLINE,
    };
    json_object *body = NULL;
    const char *b = req->body ? req->body : "";
    /* No body at all reads as {}: a bare fetch(url, {method: "POST"}) is a fine heartbeat. */
    if (!blank(b, req->body_len)) {
        char why[128];
        body = us_command_rules_parse_object(c->rules, b, req->body_len, "body", why, sizeof why);
        if (!body) {
            us_envelope_error(resp, 400, US_ERR_BAD_REQUEST, why);
            return;
        }
        us_state_check sc =
            ep == EP_UPDATE ? us_command_rules_take_state(c->rules, body, &w.state_mode, &w.state,
                                                          &w.state_len, why, sizeof why)
                            : US_STATE_CHECK_OK;
        if (sc != US_STATE_CHECK_OK) {
            /* As the server API: a wrong JSON type is a 400, a rejected value a 200. */
            us_envelope_error(resp, sc == US_STATE_CHECK_WRONG_TYPE ? 400 : 200, US_ERR_BAD_REQUEST,
                              why);
            json_object_put(body);
            return;
        }
    }
    if (!us_command_rules_enabled(c->rules))
        us_envelope_error(resp, 200, US_ERR_NOT_AVAILABLE, "user status is disabled");
    else if (us_throttle_write(c->throttle, c->store, &w, now) < 0)
        us_envelope_error(resp, 200, US_ERR_INTERNAL, NULL);
    else
        us_envelope_json(resp, "{\"result\":{}}");
    json_object_put(body);
}

/* ---- life cycle ---- */

us_client *us_client_create(const us_config *cfg, const us_command_rules *rules, us_store *store,
                            us_throttle *throttle, char *err, size_t err_len)
{
    us_client *c = us_xcalloc(1, sizeof *c);
    c->cfg = cfg;
    c->rules = rules;
    c->store = store;
    c->throttle = throttle;
    const char *jwks_url = cfg->client.token.jwks_public_endpoint;
    if (jwks_url && *jwks_url) {
        c->jwks = us_jwks_create(jwks_url, err, err_len);
        if (!c->jwks) {
            us_client_free(c);
            return NULL;
        }
    }
    const char *secret = cfg->client.token.hmac_secret_key;
    us_jwt_options o = {
        .hmac_secret = secret,
        .hmac_secret_len = secret ? strlen(secret) : 0,
        .rsa_public_pem = cfg->client.token.rsa_public_key,
        .ecdsa_public_pem = cfg->client.token.ecdsa_public_key,
        .audience = cfg->client.token.audience,
        .issuer = cfg->client.token.issuer,
        .audience_regex = cfg->client.token.audience_regex,
        .issuer_regex = cfg->client.token.issuer_regex,
        .user_id_claim = cfg->client.token.user_id_claim,
        .key_lookup = c->jwks ? us_jwks_lookup : NULL,
        .key_lookup_ctx = c->jwks,
    };
    c->jwt = us_jwt_verifier_create(&o, err, err_len);
    if (!c->jwt) {
        us_client_free(c);
        return NULL;
    }
    /* Centrifugo verifies with the JWKS alone once it is set; say so rather than let a
     * configured key look used. Once per process that builds the endpoints. */
    if (c->jwks) {
        static const char *const unused[] = {"hmac_secret_key", "rsa_public_key",
                                             "ecdsa_public_key"};
        const char *values[] = {secret, o.rsa_public_pem, o.ecdsa_public_pem};
        for (size_t i = 0; i < sizeof unused / sizeof unused[0]; i++)
            if (values[i] && *values[i])
                us_warn("client.token.%s is not used: tokens are verified with the keys of "
                        "client.token.jwks_public_endpoint (as Centrifugo does)",
                        unused[i]);
    }
    return c;
}

void us_client_free(us_client *c)
{
    if (!c)
        return;
    us_jwt_verifier_free(c->jwt);
    us_jwks_free(c->jwks);
    us_buf_free(&c->user);
    free(c);
}
