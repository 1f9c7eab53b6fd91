/* Request in, response out: routing, authentication, the Centrifugo-compatible
 * envelope and error codes, batch and the legacy form (SPEC §1). Knows nothing of
 * FastCGI; the adapter in fcgi/ fills a us_http_request and writes the response. */
#ifndef USTATUS_API_H
#define USTATUS_API_H

#include <stddef.h>

#include "ustatus/buf.h"
#include "ustatus/config.h"
#include "ustatus/store.h"

typedef struct us_http_request {
    const char *method;        /* "POST", "GET"... */
    const char *path;          /* URL path without query string, e.g. "/api/get_user_status" */
    const char *query;         /* text after '?', or NULL */
    const char *x_api_key;     /* header values, NULL when absent */
    const char *authorization;
    const char *error_mode;    /* X-Centrifugo-Error-Mode */
    const char *origin;        /* Origin */
    const char *body;          /* not NUL-terminated */
    size_t body_len;
} us_http_request;

typedef struct us_http_response {
    int status;                /* HTTP status */
    const char *content_type;  /* static string, or NULL for no body type */
    us_buf headers;            /* extra header lines, each "Name: value\r\n" */
    us_buf body;
} us_http_response;

void us_http_response_init(us_http_response *r);
void us_http_response_reset(us_http_response *r);  /* keeps buffers for reuse */
void us_http_response_free(us_http_response *r);

typedef struct us_api us_api;

/* Creates the API for a loaded configuration. Borrows cfg and store: both must outlive
 * the api. Compiles state_regex. NULL with a reason in err. */
us_api *us_api_create(const us_config *cfg, us_store *store, char *err, size_t err_len);

/* Handles one request. Always fills resp (status, body, headers). */
void us_api_handle(us_api *api, const us_http_request *req, us_http_response *resp);

/* Fills resp with the 413 answer (used by the adapter before reading the body). */
void us_api_payload_too_large(us_http_response *resp);

/* The configured body limit, for the adapter. */
size_t us_api_max_body_bytes(const us_api *api);

void us_api_free(us_api *api);

#endif
