/* Client-side status updates (SPEC §6): the JWT-authenticated browser/app endpoints
 *   POST <client.handler_prefix>/update_user_status   active + online (+ state)
 *   POST <client.handler_prefix>/online               online
 * with CORS for client.allowed_origins and a per-user minimum write interval, and the
 * Centrifugo OSS RPC proxy endpoint
 *   POST <centrifugo_proxy.handler_prefix>/rpc        (when centrifugo_proxy.key is set)
 * Like api, it knows nothing of FastCGI: request struct in, response struct out. */
#ifndef USTATUS_CLIENT_H
#define USTATUS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "ustatus/api.h"
#include "ustatus/config.h"
#include "ustatus/store.h"

typedef struct us_client us_client;

/* Creates the client side for a loaded configuration: parses the token keys, compiles
 * state_regex, checks that the client and proxy prefixes do not shadow the server API.
 * Borrows cfg and store: both must outlive the client. NULL with one line in err naming
 * the option (never containing key material). */
us_client *us_client_create(const us_config *cfg, us_store *store, char *err, size_t err_len);

/* When req's path belongs to the client endpoints (always, even when disabled by
 * user_status.disable_for_client: they then answer 404) or to the RPC proxy endpoint
 * (only while centrifugo_proxy.key is set), resets and fills resp and returns true.
 * Otherwise returns false and leaves resp alone: the request is the server API's. */
bool us_client_handle(us_client *c, const us_http_request *req, us_http_response *resp);

void us_client_free(us_client *c);

#endif
