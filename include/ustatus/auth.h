/* Who may call: the server API key (SPEC §1.1), the RPC proxy key, the client's Bearer
 * token (its verification is jwt.h's). Every comparison of a secret is constant-time
 * (secret.h); nothing here logs. */
#ifndef USTATUS_AUTH_H
#define USTATUS_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "ustatus/http.h"

/* SPEC §1.1, Centrifugo's order: a non-empty X-API-Key header, else "Authorization: apikey
 * KEY" (exactly two fields, the scheme case-insensitive), else the api_key query
 * parameter; the first one present decides. An empty key refuses everything unless
 * insecure, which accepts everything. */
bool us_auth_api_key(const us_http_request *req, const char *key, bool insecure);

/* True when the X-API-Key header equals key (an empty key never matches). */
bool us_auth_header_key(const us_http_request *req, const char *key);

/* The token of "Authorization: Bearer <token>" (scheme case-insensitive, RFC 7235),
 * borrowed from the header; false when the header is absent or has another form. */
bool us_auth_bearer(const char *authorization, const char **tok, size_t *tok_len);

#endif
