/* JSON: the one intake for request bodies, and the writer of response strings.
 *
 * Intake. Every JSON body any endpoint reads (server API direct calls, batch, legacy
 * lines, client endpoints, the RPC proxy) goes through us_json_check: RFC 8259 exactly,
 * as Go's encoding/json reads it. json-c alone is laxer even in its strict mode (NaN,
 * Infinity, raw control characters in strings, trailing data), and the value count
 * bounds the memory json-c will take, so json-c only ever sees checked text
 * (us_json_parse). A caller that reads a body in place without json-c (the server API's
 * fast path) checks it with us_json_check first, so both paths accept the same bodies. */
#ifndef USTATUS_JSON_H
#define USTATUS_JSON_H

#include <stddef.h>

#include <json-c/json.h>

#include "ustatus/buf.h"

/* Nesting accepted in a request; json-c's own limit is 32 as well. */
#define US_JSON_MAX_DEPTH 32

/* 0 when [s, s+n) is exactly one JSON value, with optional surrounding whitespace, at most
 * max_depth nested arrays/objects and at most max_values values in all (0 = no limit);
 * -1 with a reason in why otherwise (why may be NULL). */
int us_json_check(const char *s, size_t n, unsigned max_depth, size_t max_values, char *why,
                  size_t why_len);

/* Checks [s, s+len) with us_json_check (depth US_JSON_MAX_DEPTH), then parses it with
 * json-c into *out, a new reference the caller puts (NULL for a JSON null). Returns 0, or
 * -1 with *out NULL and a reason in why. */
int us_json_parse(const char *s, size_t len, size_t max_values, json_object **out, char *why,
                  size_t why_len);

/* us_json_parse for a body that must be an object: the object (caller puts it), or NULL
 * with a reason in why ("<what> must be a JSON object" for another value). */
json_object *us_json_parse_object(const char *s, size_t len, size_t max_values,
                                  const char *what, char *why, size_t why_len);

/* Appends a JSON string literal (with the quotes) for the bytes [s, s+n). Sequences of
 * valid UTF-8 are copied as they are, each byte of an invalid sequence becomes U+FFFD (as
 * Go's encoder does); control characters, '"' and '\\' are escaped; U+2028/U+2029 are
 * escaped too so the output is safe as JavaScript. */
void us_json_put_str(us_buf *b, const char *s, size_t n);

#endif
