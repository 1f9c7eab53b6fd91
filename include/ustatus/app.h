/* The application: built once from a loaded configuration, it owns the store and every
 * endpoint family, and routes each request to one of them (SPEC §1.1, §6, §7):
 *   GET|HEAD /health, GET /metrics           ops        (exact paths, no key)
 *   <client.handler_prefix>/...              client     (Bearer JWT, CORS)
 *   <centrifugo_proxy.handler_prefix>/rpc    rpc_proxy  (while centrifugo_proxy.key is set)
 *   everything else                          api        (the server API: method, body
 *                                                        limit and key checks, then
 *                                                        <http_api.handler_prefix>/...)
 * The only entry point the FastCGI adapter knows. */
#ifndef USTATUS_APP_H
#define USTATUS_APP_H

#include <stddef.h>

#include "ustatus/config.h"
#include "ustatus/http.h"

typedef struct us_app us_app;

/* Builds the store (connecting to nothing yet: connections open on first use) and the
 * endpoints for cfg, which it borrows: cfg must outlive the app. NULL with one line in
 * err naming the option at fault (never a secret). */
us_app *us_app_create(const us_config *cfg, char *err, size_t err_len);

/* Handles one request: always resets and fills resp (status, headers, body). */
void us_app_handle(us_app *app, const us_http_request *req, us_http_response *resp);

/* The largest body any endpoint accepts (http_api.max_body_bytes): the adapter answers a
 * larger CONTENT_LENGTH with 413 without reading it. */
size_t us_app_max_body_bytes(const us_app *app);

void us_app_free(us_app *app);

#endif
