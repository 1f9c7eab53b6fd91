/* The application: builds the store and the endpoint families once, and routes. */
#include "ustatus/app.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ustatus/api.h"
#include "ustatus/client.h"
#include "ustatus/command.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"
#include "ustatus/ops.h"
#include "ustatus/rpc_proxy.h"
#include "ustatus/store.h"
#include "ustatus/throttle.h"

struct us_app {
    const us_config *cfg;
    us_store *store;
    us_command_rules *rules;
    us_throttle *throttle; /* shared by the client endpoints and the RPC proxy */
    us_api *api;
    us_client *client;
    us_rpc_proxy *proxy;
    size_t client_prefix_len;
    size_t proxy_prefix_len;
};

/* True when a path under `inner` would also be under `outer` (or they are the same). */
static bool shadows(const char *outer, const char *inner)
{
    return us_http_path_below(inner, outer, strlen(outer)) != NULL;
}

/* The prefixes must not overlap, or one family would answer for another. */
static int check_prefixes(const us_config *cfg, bool proxy_enabled, char *err, size_t err_len)
{
    const char *api = cfg->http_api.handler_prefix;
    const char *cli = cfg->client.handler_prefix;
    const char *proxy = cfg->centrifugo_proxy.handler_prefix;
    if (shadows(cli, api) || shadows(api, cli))
        return us_fail(err, err_len,
                       "client.handler_prefix \"%s\" overlaps http_api.handler_prefix \"%s\"", cli,
                       api);
    if (proxy_enabled &&
        (shadows(proxy, api) || shadows(api, proxy) || shadows(proxy, cli) || shadows(cli, proxy)))
        return us_fail(err, err_len,
                       "centrifugo_proxy.handler_prefix \"%s\" overlaps another handler prefix",
                       proxy);
    return 0;
}

us_app *us_app_create(const us_config *cfg, char *err, size_t err_len)
{
    us_app *app = us_xcalloc(1, sizeof *app);
    app->cfg = cfg;
    app->store = us_store_create(cfg, err, err_len);
    if (!app->store)
        goto fail;
    app->rules = us_command_rules_create(cfg, err, err_len);
    if (!app->rules)
        goto fail;
    app->throttle = us_throttle_create(cfg->client.min_update_interval_ms);
    app->proxy = us_rpc_proxy_create(cfg, app->rules, app->store, app->throttle);
    if (check_prefixes(cfg, us_rpc_proxy_enabled(app->proxy), err, err_len) < 0)
        goto fail;
    app->client = us_client_create(cfg, app->rules, app->store, app->throttle, err, err_len);
    if (!app->client)
        goto fail;
    app->api = us_api_create(cfg, app->rules, app->store);
    app->client_prefix_len = strlen(cfg->client.handler_prefix);
    app->proxy_prefix_len = strlen(cfg->centrifugo_proxy.handler_prefix);
    return app;
fail:
    us_app_free(app);
    return NULL;
}

void us_app_handle(us_app *app, const us_http_request *req, us_http_response *resp)
{
    us_http_response_reset(resp);
    const char *path = req->path ? req->path : "";
    if (us_ops_path(path)) {
        us_ops_handle(app->store, req, resp);
        return;
    }
    /* Before the server API's method and key checks: these endpoints have their own
     * (OPTIONS preflight, Bearer tokens, the proxy key). */
    const char *rest =
        us_http_path_below(path, app->cfg->client.handler_prefix, app->client_prefix_len);
    if (rest) {
        us_client_handle(app->client, req, resp, rest);
        return;
    }
    if (us_rpc_proxy_enabled(app->proxy)) {
        rest = us_http_path_below(path, app->cfg->centrifugo_proxy.handler_prefix,
                                  app->proxy_prefix_len);
        if (rest) {
            us_rpc_proxy_handle(app->proxy, req, resp, rest);
            return;
        }
    }
    us_api_handle(app->api, req, resp);
}

size_t us_app_max_body_bytes(const us_app *app)
{
    return app->cfg->http_api.max_body_bytes;
}

void us_app_free(us_app *app)
{
    if (!app)
        return;
    us_api_free(app->api);
    us_client_free(app->client);
    us_rpc_proxy_free(app->proxy);
    us_throttle_free(app->throttle);
    us_command_rules_free(app->rules);
    us_store_free(app->store);
    free(app);
}
