/* The Centrifugo OSS RPC proxy endpoint (SPEC §6):
 *   POST <centrifugo_proxy.handler_prefix>/rpc
 * authenticated by centrifugo_proxy.key in X-API-Key, taking Centrifugo's RPC proxy
 * request and answering in the proxy protocol ({"result":{"data":{}}} or an error object
 * with HTTP 200). Writes go through the same rules and throttle as the client endpoints. */
#ifndef USTATUS_RPC_PROXY_H
#define USTATUS_RPC_PROXY_H

#include <stdbool.h>

#include "ustatus/command.h"
#include "ustatus/config.h"
#include "ustatus/http.h"
#include "ustatus/store.h"
#include "ustatus/throttle.h"

typedef struct us_rpc_proxy us_rpc_proxy;

/* Borrows everything it is given: all must outlive the proxy. Never fails. */
us_rpc_proxy *us_rpc_proxy_create(const us_config *cfg, const us_command_rules *rules,
                                  us_store *store, us_throttle *throttle);

/* True while centrifugo_proxy.key is set: only then does the prefix belong to the proxy. */
bool us_rpc_proxy_enabled(const us_rpc_proxy *p);

/* Answers a request whose path is below the proxy prefix; rest is what follows it. Fills
 * resp (which the caller has reset). */
void us_rpc_proxy_handle(us_rpc_proxy *p, const us_http_request *req, us_http_response *resp,
                         const char *rest);

void us_rpc_proxy_free(us_rpc_proxy *p);

#endif
