#include "adapter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ustatus/buf.h"
#include "ustatus/envelope.h"
#include "ustatus/log.h"
#include "ustatus/metrics.h"

void us_adapter_init(us_adapter *a)
{
    memset(a, 0, sizeof *a);
    us_http_response_init(&a->resp);
}

void us_adapter_free(us_adapter *a)
{
    us_buf_free(&a->path);
    us_buf_free(&a->body);
    us_buf_free(&a->head);
    us_http_response_free(&a->resp);
}

static const char *param(const us_cgi_io *io, const char *name)
{
    const char *v = io->getparam(io->ctx, name);
    return v;
}

/* The request path, whichever way the web server passes it (SPEC §1.1): SCRIPT_NAME +
 * PATH_INFO when they say anything, else REQUEST_URI without its query string. */
static void build_path(const us_cgi_io *io, us_buf *path)
{
    const char *script = param(io, "SCRIPT_NAME");
    const char *info = param(io, "PATH_INFO");
    us_buf_reset(path);
    if (script)
        us_buf_puts(path, script);
    if (info)
        us_buf_puts(path, info);
    if (path->len == 0) {
        const char *uri = param(io, "REQUEST_URI");
        if (uri)
            us_buf_append(path, uri, strcspn(uri, "?#"));
    }
    if (path->len == 0)
        us_buf_puts(path, "");
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* CONTENT_LENGTH (RFC 3875 §4.1.2: 1*digit). */
enum { LENGTH_ABSENT = -1, LENGTH_MALFORMED = -2 };
#define LENGTH_HUGE (1LL << 50) /* any length from here on is over every body limit */

/* The declared length; LENGTH_ABSENT when the parameter is missing or empty,
 * LENGTH_MALFORMED for anything but digits (a sign, spaces, hex, a fraction), and
 * LENGTH_HUGE for a number of any size at or above it (no overflow). */
static long long content_length(const char *s)
{
    if (!s || !*s)
        return LENGTH_ABSENT;
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return LENGTH_MALFORMED;
        if (v < LENGTH_HUGE)
            v = v * 10 + (*p - '0');
    }
    return v < LENGTH_HUGE ? v : LENGTH_HUGE;
}

/* Reads the body into a->body. BODY_OK; BODY_TOO_LARGE when it is larger than max (not
 * read further); BODY_SHORT when the stream ended before the declared length; BODY_ERROR
 * on a read error. */
enum { BODY_OK, BODY_TOO_LARGE, BODY_SHORT, BODY_ERROR };
static int read_body(us_adapter *a, const us_cgi_io *io, size_t max, long long declared)
{
    us_buf_reset(&a->body);
    size_t want = declared >= 0 ? (size_t)declared : max + 1;
    us_buf_reserve(&a->body, want < 65536 ? want : 65536);
    while (a->body.len < want) {
        size_t chunk = want - a->body.len;
        if (chunk > 65536)
            chunk = 65536;
        us_buf_reserve(&a->body, chunk);
        long n = io->read(io->ctx, a->body.data + a->body.len, chunk);
        if (n < 0)
            return BODY_ERROR;
        if (n == 0)
            break;
        a->body.len += (size_t)n;
        if (a->body.len > max)
            return BODY_TOO_LARGE;
    }
    if (declared >= 0 && a->body.len < (size_t)declared)
        return BODY_SHORT;
    return BODY_OK;
}

int us_adapter_serve(us_adapter *a, us_app *app, const us_cgi_io *io)
{
    us_http_response *resp = &a->resp;
    us_http_response_reset(resp);
    build_path(io, &a->path);

    us_http_request req = {
        .method = param(io, "REQUEST_METHOD"),
        .path = a->path.data,
        .query = param(io, "QUERY_STRING"),
        .x_api_key = param(io, "HTTP_X_API_KEY"),
        .authorization = param(io, "HTTP_AUTHORIZATION"),
        .error_mode = param(io, "HTTP_X_CENTRIFUGO_ERROR_MODE"),
        .origin = param(io, "HTTP_ORIGIN"),
    };
    size_t max = us_app_max_body_bytes(app);
    long long declared = content_length(param(io, "CONTENT_LENGTH"));
    bool is_post = req.method && strcmp(req.method, "POST") == 0;
    us_buf_reset(&a->body);
    if (declared == LENGTH_MALFORMED) {
        us_envelope_error(resp, 400, US_ERR_BAD_REQUEST, "CONTENT_LENGTH is not a number");
    } else if (is_post && declared > (long long)max) {
        /* Limits before work: a body over the limit is never read. */
        us_http_payload_too_large(resp);
    } else {
        int rb = is_post ? read_body(a, io, max, declared) : BODY_OK;
        if (rb == BODY_ERROR) {
            us_warn("reading the request body failed: the request is dropped");
            return -1;
        }
        if (rb == BODY_TOO_LARGE) {
            us_http_payload_too_large(resp);
        } else if (rb == BODY_SHORT) {
            /* A request that did not arrive whole is never run, even when the part that
             * came parses: it is not what the client sent. */
            us_envelope_error(resp, 400, US_ERR_BAD_REQUEST,
                              "the body ended before CONTENT_LENGTH bytes");
        } else {
            if (a->request_read)
                a->request_read(io->ctx);
            req.body = a->body.data ? a->body.data : "";
            req.body_len = a->body.len;
            us_app_handle(app, &req, resp);
        }
    }

    us_metrics_http_response(resp->status);
    us_buf *h = &a->head;
    us_buf_reset(h);
    /* Every response pays for its head: plain appends, not a vsnprintf (run twice by
     * us_buf_printf) per line. */
    us_buf_append(h, "Status: ", 8);
    us_buf_put_i64(h, resp->status);
    us_buf_putc(h, ' ');
    us_buf_puts(h, reason_phrase(resp->status));
    us_buf_append(h, "\r\n", 2);
    if (resp->content_type) {
        us_buf_append(h, "Content-Type: ", 14);
        us_buf_puts(h, resp->content_type);
        us_buf_append(h, "\r\n", 2);
    }
    us_buf_append(h, "Content-Length: ", 16);
    us_buf_put_i64(h, (int64_t)resp->body.len);
    us_buf_append(h, "\r\n", 2);
    if (resp->headers.len)
        us_buf_append(h, resp->headers.data, resp->headers.len);
    us_buf_puts(h, "\r\n");
    /* A HEAD answer is the head of the GET answer (RFC 9110 §9.3.2), without the body. */
    bool head_only = req.method && strcmp(req.method, "HEAD") == 0;
    if (io->write(io->ctx, h->data, h->len) < 0 ||
        (resp->body.len && !head_only &&
         io->write(io->ctx, resp->body.data, resp->body.len) < 0))
        return -1;
    return 0;
}
