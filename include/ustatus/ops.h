/* Operations endpoints (SPEC §7): GET or HEAD /health (every Redis shard or node answers
 * PING) and GET /metrics (Prometheus text). Recognised by the exact path whatever the API
 * prefix, without a key: the web server decides who reaches them (deploy/ shows how).
 * Exact paths only, so a web server that maps just the API prefix never exposes them by
 * accident. */
#ifndef USTATUS_OPS_H
#define USTATUS_OPS_H

#include <stdbool.h>

#include "ustatus/http.h"
#include "ustatus/store.h"

/* True when path is an operations path (the app then calls us_ops_handle). */
bool us_ops_path(const char *path);

/* Answers /health (pinging through store; GET or HEAD) or /metrics (GET); another method
 * is 405 with the Allow header.
 * Fills resp (which the caller has reset). */
void us_ops_handle(us_store *store, const us_http_request *req, us_http_response *resp);

#endif
