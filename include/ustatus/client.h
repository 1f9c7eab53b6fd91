/* Client-side status updates (SPEC §6): the JWT-authenticated endpoints browsers and
 * apps call, below client.handler_prefix:
 *   POST .../update_user_status   active + online (+ state)
 *   POST .../online               online
 * with CORS for client.allowed_origins (OPTIONS preflight answered for those origins;
 * "*" is any origin, and a '*' inside a pattern matches any run of characters without
 * '/' or ':') and the per-user minimum write interval (throttle.h). Tokens are verified by
 * jwt.h, with the keys of client.token.jwks_public_endpoint when it is set (jwks.h: one
 * cache per process, fetched at the first token). */
#ifndef USTATUS_CLIENT_H
#define USTATUS_CLIENT_H

#include <stddef.h>

#include "ustatus/command.h"
#include "ustatus/config.h"
#include "ustatus/http.h"
#include "ustatus/store.h"
#include "ustatus/throttle.h"

typedef struct us_client us_client;

/* Creates the client endpoints: parses the token keys, compiles audience_regex and
 * issuer_regex, and sets up the JWKS cache (fetching nothing yet). Logs a warning for each
 * PEM or HMAC key configured beside jwks_public_endpoint, which then goes unused (as in
 * Centrifugo). Borrows cfg, rules, store and throttle: all must outlive the client. NULL
 * with one line in err naming the option (never containing key material or the URL). */
us_client *us_client_create(const us_config *cfg, const us_command_rules *rules, us_store *store,
                            us_throttle *throttle, char *err, size_t err_len);

/* Answers a request whose path is below client.handler_prefix; rest is what follows the
 * prefix ("" or "/..."). With user_status.disable_for_client every path answers 404.
 * Fills resp (which the caller has reset). */
void us_client_handle(us_client *c, const us_http_request *req, us_http_response *resp,
                      const char *rest);

void us_client_free(us_client *c);

#endif
