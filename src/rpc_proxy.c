/* The Centrifugo OSS RPC proxy endpoint (SPEC §6). */
#include "ustatus/rpc_proxy.h"

#include <stdlib.h>
#include <string.h>

#include "ustatus/auth.h"
#include "ustatus/buf.h"
#include "ustatus/clock.h"
#include "ustatus/envelope.h"
#include "ustatus/mem.h"
#include "ustatus/text.h"

struct us_rpc_proxy {
    const us_config *cfg;
    const us_command_rules *rules;
    us_store *store;
    us_throttle *throttle;
};

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

void us_rpc_proxy_handle(us_rpc_proxy *p, const us_http_request *req, us_http_response *resp,
                         const char *rest)
{
    const us_config *cfg = p->cfg;
    if (strcmp(rest, "/rpc") != 0) {
        us_envelope_error(resp, 404, US_ERR_NOT_FOUND, NULL);
        return;
    }
    if (!us_http_method_is(req, "POST")) {
        us_http_method_not_allowed(resp, "POST");
        return;
    }
    if (req->body_len > cfg->http_api.max_body_bytes) {
        us_http_payload_too_large(resp);
        return;
    }
    if (!us_auth_header_key(req, cfg->centrifugo_proxy.key)) {
        us_http_respond_empty(resp, 401);
        return;
    }
    char why[128];
    json_object *body = us_command_rules_parse_object(p->rules, req->body ? req->body : "",
                                                      req->body_len, "body", why, sizeof why);
    if (!body) {
        us_envelope_error(resp, 400, US_ERR_BAD_REQUEST, why);
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
        us_envelope_error(resp, 400, US_ERR_BAD_REQUEST,
                          "method, user and encoding must be strings");
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
    if (us_user_id_check(u, ulen)) {
        proxy_error(resp, 400, "bad request");
        goto done;
    }
    us_write w = {.user = u, .user_len = ulen, .fields = US_FIELD_ACTIVE | US_FIELD_ONLINE};
    /* The RPC's data may carry {"state": "..."} like the client endpoint's body. */
    if (!binary && data && json_object_is_type(data, json_type_object) &&
        us_command_rules_take_state(p->rules, data, &w.state_mode, &w.state, &w.state_len, why,
                                    sizeof why) != US_STATE_CHECK_OK) {
        proxy_error(resp, 400, "bad request");
        goto done;
    }
    if (!us_command_rules_enabled(p->rules)) {
        proxy_error(resp, 503, "not available");
        goto done;
    }
    if (us_throttle_write(p->throttle, p->store, &w, us_clock_wall_ms()) < 0) {
        /* Not an error object: a failed proxy call makes Centrifugo log it and answer the
         * client with its own internal error. */
        us_envelope_error(resp, 500, US_ERR_INTERNAL, NULL);
        goto done;
    }
    us_envelope_json(resp, binary ? "{\"result\":{}}" : "{\"result\":{\"data\":{}}}");
done:
    json_object_put(body);
}

us_rpc_proxy *us_rpc_proxy_create(const us_config *cfg, const us_command_rules *rules,
                                  us_store *store, us_throttle *throttle)
{
    us_rpc_proxy *p = us_xcalloc(1, sizeof *p);
    p->cfg = cfg;
    p->rules = rules;
    p->store = store;
    p->throttle = throttle;
    return p;
}

bool us_rpc_proxy_enabled(const us_rpc_proxy *p)
{
    return p->cfg->centrifugo_proxy.key && p->cfg->centrifugo_proxy.key[0];
}

void us_rpc_proxy_free(us_rpc_proxy *p)
{
    free(p);
}
