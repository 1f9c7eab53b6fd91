/* The Centrifugo-compatible envelope and the one error table (SPEC §1.2, §6): every
 * endpoint family writes its errors through here, so a code always has the same message. */
#ifndef USTATUS_ENVELOPE_H
#define USTATUS_ENVELOPE_H

#include "ustatus/buf.h"
#include "ustatus/http.h"

enum {
    US_ERR_INTERNAL = 100,      /* internal server error */
    US_ERR_UNAUTHORIZED = 101,  /* unauthorized (client endpoints) */
    US_ERR_NOT_FOUND = 104,     /* not found */
    US_ERR_BAD_REQUEST = 107,   /* bad request */
    US_ERR_NOT_AVAILABLE = 108, /* not available */
    US_ERR_TOKEN_EXPIRED = 109, /* token expired (client endpoints) */
};

/* The exact message of a code; "internal server error" for a code not in the table. */
const char *us_error_message(int code);

/* Appends {"code":N,"message":"..."} with ,"details":"..." when details is not empty. */
void us_envelope_put_error(us_buf *b, int code, const char *details);

/* Replaces resp's status and body with {"error":{...}} (application/json); headers kept. */
void us_envelope_error(us_http_response *resp, int http_status, int code, const char *details);

/* The transport error mode (SPEC §1.2): the HTTP status of a code (100->500, 104->404,
 * 107/108->400) and the bare body {"code":N,"message":"..."}, without details. */
int us_envelope_transport_status(int code);
void us_envelope_transport_error(us_http_response *resp, int code);

/* Replaces resp's status and body with 200 and the given JSON text (application/json). */
void us_envelope_json(us_http_response *resp, const char *json);

#endif
