/* The bridge between a web server's request (FastCGI params + stdin, or the CGI
 * environment + stdin) and us_http_request / us_http_response. The I/O is reached
 * through callbacks so the same code serves FastCGI and plain CGI, and the unit tests
 * drive it with callbacks of their own. */
#ifndef USTATUS_FCGI_ADAPTER_H
#define USTATUS_FCGI_ADAPTER_H

#include <stddef.h>

#include "ustatus/app.h"
#include "ustatus/buf.h"
#include "ustatus/http.h"

typedef struct us_cgi_io {
    /* A CGI/FastCGI parameter (REQUEST_METHOD, HTTP_X_API_KEY...), or NULL. The pointer
     * lives until the request is finished. */
    const char *(*getparam)(void *ctx, const char *name);
    /* Reads up to n bytes of the body: count read, 0 at the end, -1 on error. */
    long (*read)(void *ctx, char *buf, size_t n);
    /* Writes all n bytes of the response: 0, or -1 on error. */
    int (*write)(void *ctx, const char *buf, size_t n);
    void *ctx;
} us_cgi_io;

/* Buffers kept across requests by one worker. */
typedef struct us_adapter {
    us_buf path;
    us_buf body;
    us_buf head;
    us_http_response resp;
    /* Optional (NULL after us_adapter_init: not called): called with the io's ctx once
     * the whole request has been read, before it is run, so the FastCGI worker can stop
     * the clock of fcgi.request_timeout, which bounds the delivery of a request, not the
     * work it asks for. */
    void (*request_read)(void *ctx);
} us_adapter;

void us_adapter_init(us_adapter *a);
void us_adapter_free(us_adapter *a);

/* Serves one request: reads it through io, runs us_app_handle, writes the CGI response
 * (Status line, Content-Type, Content-Length, the handler's headers, body). The body is
 * read only for POST and only when it fits in the app's limit: a CONTENT_LENGTH over it
 * (of any size) is answered 413 without reading; one that is not a plain decimal number
 * (a sign, spaces, hex) 400 with error 107, nothing read; a body that ends before its
 * CONTENT_LENGTH 400 with error 107 and nothing run; without CONTENT_LENGTH the body is
 * read to its end (413 past the limit). Whatever the adapter did not read stays unread:
 * a FastCGI caller that keeps the connection drains it.
 * Returns 0, or -1 when the body could not be read (a read error: the request is
 * dropped unanswered and nothing is run) or the response could not be written (the
 * client went away). */
int us_adapter_serve(us_adapter *a, us_app *app, const us_cgi_io *io);

#endif
