#include "ustatus/ops.h"

#include <string.h>

#include "ustatus/buf.h"
#include "ustatus/metrics.h"

bool us_ops_path(const char *path)
{
    return path && (strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0);
}

void us_ops_handle(us_store *store, const us_http_request *req, us_http_response *resp)
{
    bool health = strcmp(req->path, "/health") == 0;
    /* Load balancers probe with HEAD: the adapter sends the head of the GET answer. */
    if (!us_http_method_is(req, "GET") && !(health && us_http_method_is(req, "HEAD"))) {
        us_http_method_not_allowed(resp, health ? "GET, HEAD" : "GET");
        return;
    }
    resp->status = 200;
    if (!health) {
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        us_metrics_render(&resp->body);
        return;
    }
    us_buf report = US_BUF_INIT;
    resp->content_type = "application/json";
    if (us_store_ping(store, &report) == 0) {
        us_buf_puts(&resp->body, "{\"status\":\"ok\"}");
    } else {
        resp->status = 503;
        us_buf_puts(&resp->body, "{\"status\":\"unavailable\",\"nodes\":");
        us_buf_append(&resp->body, report.data, report.len);
        us_buf_putc(&resp->body, '}');
    }
    us_buf_free(&report);
}
