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
} us_adapter;

void us_adapter_init(us_adapter *a);
void us_adapter_free(us_adapter *a);

/* Serves one request: reads it through io (the body only when it fits in the app's
 * limit — a larger CONTENT_LENGTH is answered 413 without reading; a CONTENT_LENGTH that
 * is not a number is answered 400), runs us_app_handle, writes the CGI response (Status
 * line, Content-Type, Content-Length, the handler's headers, body). Returns 0, or -1 when
 * the body could not be read or the response could not be written (the client went
 * away). */
int us_adapter_serve(us_adapter *a, us_app *app, const us_cgi_io *io);

#endif
