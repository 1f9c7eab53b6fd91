/* The HTTP request and response every endpoint sees: plain structs, no FastCGI in them
 * (the adapter in fcgi/ fills a us_http_request from the web server's parameters and
 * writes a us_http_response back), so every layer above can be tested and fuzzed with
 * structs alone. */
#ifndef USTATUS_HTTP_H
#define USTATUS_HTTP_H

#include <stddef.h>

#include "ustatus/buf.h"

typedef struct us_http_request {
    /* Every pointer is borrowed from the caller for the duration of the handling. */
    const char *method;        /* "POST", "GET"... (NULL is treated as "") */
    const char *path;          /* URL path without query string, e.g. "/api/get_user_status" */
    const char *query;         /* text after '?', or NULL */
    const char *x_api_key;     /* header values, NULL when absent */
    const char *authorization;
    const char *error_mode;    /* X-Centrifugo-Error-Mode */
    const char *origin;        /* Origin */
    const char *body;          /* not NUL-terminated; may be NULL when body_len is 0 */
    size_t body_len;
} us_http_request;

typedef struct us_http_response {
    int status;                /* HTTP status */
    const char *content_type;  /* static string, or NULL for no body type */
    us_buf headers;            /* extra header lines, each "Name: value\r\n" */
    us_buf body;
} us_http_response;

void us_http_response_init(us_http_response *r);   /* status 200, empty */
void us_http_response_reset(us_http_response *r);  /* the same, keeping the buffers */
void us_http_response_free(us_http_response *r);

/* Replaces the status and body with an empty answer of that status (headers kept). */
void us_http_respond_empty(us_http_response *r, int status);

/* An empty 405 with "Allow: <allow>". */
void us_http_method_not_allowed(us_http_response *r, const char *allow);

/* An empty 413: the body is larger than a limit (the adapter answers it before reading). */
void us_http_payload_too_large(us_http_response *r);

/* The part of path after prefix when path is the prefix itself or below it ("" or
 * "/..."), else NULL: "/api" is below "/api", "/api/x" too, "/apix" is not. */
const char *us_http_path_below(const char *path, const char *prefix, size_t prefix_len);

/* 1 when the method is exactly `want` (NULL never is). */
int us_http_method_is(const us_http_request *req, const char *want);

#endif
