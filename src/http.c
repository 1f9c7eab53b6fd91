#include "ustatus/http.h"

#include <string.h>

void us_http_response_init(us_http_response *r)
{
    memset(r, 0, sizeof *r);
    r->status = 200;
}

void us_http_response_reset(us_http_response *r)
{
    r->status = 200;
    r->content_type = NULL;
    us_buf_reset(&r->headers);
    us_buf_reset(&r->body);
}

void us_http_response_free(us_http_response *r)
{
    us_buf_free(&r->headers);
    us_buf_free(&r->body);
}

void us_http_respond_empty(us_http_response *r, int status)
{
    r->status = status;
    r->content_type = NULL;
    us_buf_reset(&r->body);
}

void us_http_method_not_allowed(us_http_response *r, const char *allow)
{
    us_http_respond_empty(r, 405);
    us_buf_puts(&r->headers, "Allow: ");
    us_buf_puts(&r->headers, allow);
    us_buf_puts(&r->headers, "\r\n");
}

void us_http_payload_too_large(us_http_response *r)
{
    us_http_respond_empty(r, 413);
}

const char *us_http_path_below(const char *path, const char *prefix, size_t prefix_len)
{
    if (!path || strncmp(path, prefix, prefix_len) != 0)
        return NULL;
    const char *rest = path + prefix_len;
    return rest[0] == '\0' || rest[0] == '/' ? rest : NULL;
}

int us_http_method_is(const us_http_request *req, const char *want)
{
    return req->method && strcmp(req->method, want) == 0;
}
