/* JSON Web Key Sets (RFC 7517) for client tokens (SPEC §6): client.token.jwks_public_endpoint.
 *
 * Two parts. A key set parser (us_jwks_set_*) that turns a JWKS document into verification
 * keys (jwt.h's us_jwt_key): RSA (`n`, `e`) and EC (`crv` P-256/P-384/P-521, `x`, `y`)
 * keys named by `kid`; pure, no I/O. And a per-process cache (us_jwks_*) that fetches the
 * document with libcurl over HTTP or HTTPS and answers key lookups by kid, refreshing
 * lazily: the first lookup fetches, an unknown kid refetches at most once per
 * US_JWKS_REFRESH_INTERVAL_S, and a set older than US_JWKS_MAX_AGE_S is refetched at the
 * next lookup. A fetch never takes longer than US_JWKS_FETCH_TIMEOUT_MS, connection
 * included; a failed fetch keeps the set in hand (build, validate, then swap). The current
 * time is a parameter, so the rules are tested with a moving clock.
 *
 * Layering: below client.c, beside jwt.c (it makes keys with jwt.h; jwt.c only calls it
 * through the us_jwt_key_lookup pointer). The only module that knows libcurl. */
#ifndef USTATUS_JWKS_H
#define USTATUS_JWKS_H

#include <stddef.h>
#include <stdint.h>

#include "ustatus/jwt.h"

/* A document larger than this is refused (the transfer is cut off there). */
#define US_JWKS_MAX_DOCUMENT_BYTES (1024 * 1024)
/* A document with more keys than this is refused; also bounds the JSON values read. */
#define US_JWKS_MAX_KEYS 100
/* Longest `kid` kept; a longer one makes its key unusable. */
#define US_JWKS_MAX_KID_BYTES 256
/* Whole fetch (DNS, connect, TLS handshake, transfer): the bound on how long a JWKS
 * server that is down or slow can hold a request. */
#define US_JWKS_FETCH_TIMEOUT_MS 1000
/* An unknown kid (or a failed fetch) refetches at most this often. */
#define US_JWKS_REFRESH_INTERVAL_S 60
/* A set this old is refetched at the next lookup, so a key removed from the document
 * stops being accepted without waiting for an unknown kid. */
#define US_JWKS_MAX_AGE_S 3600

/* ---- key sets ---- */

typedef struct us_jwks_set us_jwks_set;

/* Parses [doc, doc+len): a JSON object whose `keys` is an array of at most
 * US_JWKS_MAX_KEYS objects. Returns the set (caller frees), or NULL with a reason in err
 * when the document as a whole is unusable: over US_JWKS_MAX_DOCUMENT_BYTES, not strict
 * JSON (json.h's one intake), not an object, `keys` missing or not an array, too many
 * keys. A key the set cannot use is skipped, as RFC 7517 §5 asks, and the rest stay
 * usable: `kty` other than "RSA"/"EC", `use` other than "sig", no `kid` (or one longer
 * than US_JWKS_MAX_KID_BYTES), a missing or non-string member, bad base64url (strict, as
 * in tokens), an `alg` that does not fit the key, anything us_jwt_key_rsa/_ec refuse. A
 * kid that two usable keys share is ambiguous: both are skipped. */
us_jwks_set *us_jwks_set_parse(const char *doc, size_t len, char *err, size_t err_len);

/* The usable key named [kid, kid+kid_len), borrowed from the set, or NULL. */
const us_jwt_key *us_jwks_set_find(const us_jwks_set *s, const char *kid, size_t kid_len);

/* How many keys are usable, and how many were skipped. */
size_t us_jwks_set_count(const us_jwks_set *s);
size_t us_jwks_set_skipped(const us_jwks_set *s);

/* Why the first skipped key was skipped ("" when none was): for one log line per fetch. */
const char *us_jwks_set_skip_reason(const us_jwks_set *s);

void us_jwks_set_free(us_jwks_set *s);

/* ---- the cache ---- */

typedef struct us_jwks us_jwks;

/* A cache for the document at url, which must start with http:// or https:// (HTTPS is
 * verified against the system's CAs). Fetches nothing yet. NULL with a reason in err
 * naming client.token.jwks_public_endpoint (never the URL, which may hold credentials). */
us_jwks *us_jwks_create(const char *url, char *err, size_t err_len);

/* The key named [kid, kid+kid_len) at time now_s (Unix seconds), fetching the document
 * first when the rules above allow (which blocks for at most US_JWKS_FETCH_TIMEOUT_MS); NULL
 * when there is no such usable key or no document could be had. A failed fetch or a
 * refused document logs one warning line (without the URL). The key is borrowed: valid
 * until the next call. jwks is an us_jwks *; the signature is jwt.h's us_jwt_key_lookup,
 * so the cache can be handed to the verifier as it is. */
const us_jwt_key *us_jwks_lookup(void *jwks, const char *kid, size_t kid_len, int64_t now_s);

/* How many fetches were attempted so far (for tests and debugging). */
unsigned long us_jwks_fetches(const us_jwks *c);

void us_jwks_free(us_jwks *c);

#endif
