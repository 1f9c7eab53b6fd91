/* libFuzzer target: one HTTP request through the router (us_app_handle), so the server
 * API in its direct, batch and legacy forms, the client endpoints and the RPC proxy.
 *
 * Input: one flags byte, then the path (up to the first '\n'; a '?' starts the query
 * string), then the body (the rest, handed over in an exact-size heap buffer).
 *   flags bits 0-2  method: POST GET HEAD OPTIONS PUT DELETE "" (none)
 *         bit 3     X-API-Key: the configured key
 *         bit 4     Authorization: bit 5 ? "Bearer <a good token>" : "apikey <the key>"
 *         bit 6     X-Centrifugo-Error-Mode: transport
 *         bit 7     Origin: the allowed origin
 * The store answers every command with error 100 without a network (fuzz_common.h).
 * Checked besides the sanitizers: every response has a valid status and a NUL after its
 * body, and a body sent as application/json is strict JSON in valid UTF-8 (one object per
 * line for the legacy form): a reply a client cannot parse is a finding too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ustatus/http.h"

#include <json-c/json.h>

static us_app *app;
static json_tokener *tok;

/* Whether [s, s+n) is one strict JSON value with nothing after it. */
static int json_ok(const char *s, size_t n)
{
    json_tokener_reset(tok);
    json_object *o = json_tokener_parse_ex(tok, s, (int)n);
    int ok = o && json_tokener_get_error(tok) == json_tokener_success &&
             json_tokener_get_parse_end(tok) == n;
    json_object_put(o);
    return ok;
}

/* Every line of a JSON reply (a legacy reply has one per command) parses. */
static void check_json_body(const us_buf *b)
{
    size_t start = 0;
    while (start < b->len) {
        const char *nl = memchr(b->data + start, '\n', b->len - start);
        size_t end = nl ? (size_t)(nl - b->data) : b->len;
        if (end > start && !json_ok(b->data + start, end - start)) {
            fprintf(stderr, "fuzz_api: response line is not strict JSON: %.*s\n",
                    (int)(end - start > 300 ? 300 : end - start), b->data + start);
            abort();
        }
        start = end + 1;
    }
}

static char *bearer;
static us_http_response resp;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    app = fuzz_app_open();
    bearer = fuzz_bearer();
    us_http_response_init(&resp);
    tok = json_tokener_new();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"POST", "GET",    "HEAD", "OPTIONS",
                                          "PUT",  "DELETE", "",     NULL};
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    data++;
    size--;

    const uint8_t *nl = memchr(data, '\n', size);
    size_t path_len = nl ? (size_t)(nl - data) : size;
    char *path = fuzz_dup_str(data, path_len);
    size_t body_len = nl ? size - path_len - 1 : 0;
    char *body = fuzz_dup_exact(nl ? nl + 1 : data, body_len);

    char *query = strchr(path, '?');
    if (query)
        *query++ = '\0';

    us_http_request req = {
        .method = methods[flags & 7],
        .path = path,
        .query = query,
        .x_api_key = (flags & 8) ? FUZZ_API_KEY : NULL,
        .authorization = (flags & 16) ? ((flags & 32) ? bearer : "apikey " FUZZ_API_KEY) : NULL,
        .error_mode = (flags & 64) ? "transport" : NULL,
        .origin = (flags & 128) ? FUZZ_ORIGIN : NULL,
        .body = body_len ? body : NULL,
        .body_len = body_len,
    };
    us_app_handle(app, &req, &resp);

    if (resp.status < 100 || resp.status > 599)
        abort();
    if (resp.body.len && resp.body.data[resp.body.len] != '\0')
        abort();
    if (resp.content_type && strncmp(resp.content_type, "application/json", 16) == 0)
        check_json_body(&resp.body);

    free(body);
    free(path);
    return 0;
}
