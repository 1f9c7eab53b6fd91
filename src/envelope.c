#include "ustatus/envelope.h"

#include <string.h>

#include "ustatus/json.h"

const char *us_error_message(int code)
{
    switch (code) {
    case US_ERR_UNAUTHORIZED: return "unauthorized";
    case US_ERR_NOT_FOUND: return "not found";
    case US_ERR_BAD_REQUEST: return "bad request";
    case US_ERR_NOT_AVAILABLE: return "not available";
    case US_ERR_TOKEN_EXPIRED: return "token expired";
    default: return "internal server error";
    }
}

void us_envelope_put_error(us_buf *b, int code, const char *details)
{
    US_BUF_LITERAL(b, "{\"code\":");
    us_buf_put_i64(b, code);
    US_BUF_LITERAL(b, ",\"message\":");
    const char *msg = us_error_message(code);
    us_json_put_str(b, msg, strlen(msg));
    if (details && *details) {
        US_BUF_LITERAL(b, ",\"details\":");
        us_json_put_str(b, details, strlen(details));
    }
    us_buf_putc(b, '}');
}

void us_envelope_error(us_http_response *resp, int http_status, int code, const char *details)
{
    resp->status = http_status;
    resp->content_type = "application/json";
    us_buf_reset(&resp->body);
    US_BUF_LITERAL(&resp->body, "{\"error\":");
    us_envelope_put_error(&resp->body, code, details);
    us_buf_putc(&resp->body, '}');
}

int us_envelope_transport_status(int code)
{
    switch (code) {
    case US_ERR_NOT_FOUND: return 404;
    case US_ERR_BAD_REQUEST:
    case US_ERR_NOT_AVAILABLE: return 400;
    default: return 500;
    }
}

void us_envelope_transport_error(us_http_response *resp, int code)
{
    resp->status = us_envelope_transport_status(code);
    resp->content_type = "application/json";
    us_buf_reset(&resp->body);
    us_envelope_put_error(&resp->body, code, NULL);
}

void us_envelope_json(us_http_response *resp, const char *json)
{
    resp->status = 200;
    resp->content_type = "application/json";
    us_buf_reset(&resp->body);
    us_buf_puts(&resp->body, json);
}
