/* The server API (SPEC §1): POST <http_api.handler_prefix>/<method>, /batch, and the
 * legacy newline-separated form on the prefix itself; the method, body-limit and key
 * checks in front of them; the Centrifugo-compatible envelope and the transport error
 * mode. Request struct in, response struct out. */
#ifndef USTATUS_API_H
#define USTATUS_API_H

#include "ustatus/command.h"
#include "ustatus/config.h"
#include "ustatus/http.h"
#include "ustatus/store.h"

typedef struct us_api us_api;

/* Borrows cfg, rules and store: all must outlive the api. Never fails. */
us_api *us_api_create(const us_config *cfg, const us_command_rules *rules, us_store *store);

/* Answers any request the other endpoint families did not take: 405 for a method other
 * than POST, 413 over the body limit, 401 without the key, 404 outside the prefix or for
 * an unknown method, else the call. Fills resp (which the caller has reset). */
void us_api_handle(us_api *api, const us_http_request *req, us_http_response *resp);

void us_api_free(us_api *api);

#endif
