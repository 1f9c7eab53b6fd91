/* Verification of Centrifugo connection JWTs (RFC 7519, JWS compact form RFC 7515) with
 * OpenSSL's libcrypto: HS256/384/512, RS256/384/512 and ES256/384/512, the three key
 * kinds Centrifugo accepts (SPEC §6). A token is checked the way Centrifugo checks it:
 * the header's `alg` picks the key *type*, and only a configured key of that type is
 * ever used, so an HS256 token can never be checked against the RSA or ECDSA key
 * (algorithm confusion) and `none` is never accepted. Keys come from PEM options or,
 * chosen by the token's `kid`, from a key lookup (jwks.h fetches and caches JWKS
 * documents; this module only verifies). No I/O of its own (the key lookup may do some),
 * no logging, the current time is a parameter. */
#ifndef USTATUS_JWT_H
#define USTATUS_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "ustatus/buf.h"

typedef enum {
    US_JWT_OK = 0,
    US_JWT_MALFORMED,       /* not three strict base64url parts of JSON objects, or too long */
    US_JWT_UNSUPPORTED_ALG, /* alg missing, "none", unknown, `crit` present, or no key of
                               that type configured (or an EC key on another curve) */
    US_JWT_BAD_SIGNATURE,
    US_JWT_BAD_CLAIMS, /* a registered claim or the user claim has the wrong type */
    US_JWT_BAD_AUDIENCE,
    US_JWT_BAD_ISSUER,
    US_JWT_EXPIRED,       /* now >= exp */
    US_JWT_NOT_YET_VALID, /* now < nbf */
    US_JWT_UNKNOWN_KEY,   /* key lookup configured: no `kid`, or no usable key with that kid
                             (unknown, or the key set could not be fetched) */
} us_jwt_status;

/* Longest token accepted, in bytes: bounds the work an unauthenticated caller can cause. */
#define US_JWT_MAX_TOKEN_BYTES 16384

/* RSA keys given by their components (JWKS) must have a modulus of this many bits: below
 * is breakable, above costs a verification more than any issuer needs. */
#define US_JWT_RSA_MIN_BITS 2048
#define US_JWT_RSA_MAX_BITS 8192

/* One public verification key: RSA, or EC on P-256/P-384/P-521, optionally tied to one
 * algorithm (a JWK's `alg`). Immutable once made. */
typedef struct us_jwt_key us_jwt_key;

/* An RSA key from a JWK's `n` and `e` (RFC 7518 §6.3.1: unsigned big-endian bytes). alg
 * NULL or "" = any of RS256/384/512; else one of them. NULL with a reason in err when alg
 * is not an RS* name, the modulus is outside US_JWT_RSA_MIN_BITS..US_JWT_RSA_MAX_BITS, or
 * e is not an odd number from 3 to 2^32-1. The caller frees the key (us_jwt_key_free). */
us_jwt_key *us_jwt_key_rsa(const unsigned char *n, size_t n_len, const unsigned char *e,
                           size_t e_len, const char *alg, char *err, size_t err_len);

/* An EC key from a JWK's `crv`, `x` and `y` (RFC 7518 §6.2.1): crv "P-256", "P-384" or
 * "P-521", x and y exactly the curve's coordinate size (32, 48, 66 bytes), the point on
 * the curve. alg NULL or "" = the ES* of that curve; else it must be that one. NULL with a
 * reason in err otherwise. The caller frees the key. */
us_jwt_key *us_jwt_key_ec(const char *crv, const unsigned char *x, size_t x_len,
                          const unsigned char *y, size_t y_len, const char *alg, char *err,
                          size_t err_len);

/* The algorithm a key is tied to ("" when none). */
const char *us_jwt_key_alg(const us_jwt_key *k);

void us_jwt_key_free(us_jwt_key *k);

/* Finds the key named kid ([kid, kid+kid_len), not NUL-terminated) at time now_s, or NULL.
 * The key is borrowed: it stays valid until the next call of the lookup. */
typedef const us_jwt_key *(*us_jwt_key_lookup)(void *ctx, const char *kid, size_t kid_len,
                                               int64_t now_s);

typedef struct us_jwt_options {
    const char *hmac_secret; /* bytes, may hold NULs; length 0 = HS* tokens rejected */
    size_t hmac_secret_len;
    const char *rsa_public_pem;   /* NULL or "" = RS* rejected; "PUBLIC KEY" or "CERTIFICATE" PEM */
    const char *ecdsa_public_pem; /* NULL or "" = ES* rejected; P-256, P-384 or P-521 */
    const char *audience;         /* NULL or "" = aud not checked */
    const char *issuer;           /* NULL or "" = iss not checked */
    const char *audience_regex;   /* NULL or "" = none; POSIX extended, must match the whole
                                     aud (or the whole of one element of an aud array) */
    const char *issuer_regex;     /* NULL or "" = none; must match the whole iss */
    const char *user_id_claim;    /* NULL or "" = the user is `sub`; else this claim, where
                                     dots name nested objects ("data.user_id") */
    /* When set, every token is verified with the key its `kid` names, found by this
     * lookup (a JWKS document), and the PEM and HMAC keys above are not used: Centrifugo
     * verifies with the JWKS alone once jwks_public_endpoint is set. */
    us_jwt_key_lookup key_lookup;
    void *key_lookup_ctx; /* borrowed: outlives the verifier */
} us_jwt_options;

typedef struct us_jwt_verifier us_jwt_verifier;

/* Parses the keys and compiles the regexes once. Copies what it keeps from opts (not the
 * lookup context, which it borrows). NULL with a reason in err that names the option
 * (client.token.rsa_public_key...) but never contains key material; also when audience
 * and audience_regex (or issuer and issuer_regex) are both set, which Centrifugo refuses
 * as well. */
us_jwt_verifier *us_jwt_verifier_create(const us_jwt_options *opts, char *err, size_t err_len);

/* Verifies [token, token+len) at time now_s (Unix seconds). Order: structure, alg and
 * signature (with a key lookup: the kid's key, whose type and curve, and `alg` when the
 * key names one, must be the token's alg), then aud and iss (or their regexes: a missing
 * claim never matches), then exp and nbf, so that US_JWT_EXPIRED and
 * US_JWT_NOT_YET_VALID are only ever reported for a token that is otherwise good (a
 * client may refresh it). exp and nbf are optional; when present they are JSON numbers.
 * On US_JWT_OK, *user holds the user ID (reset first, NUL-terminated, possibly empty: an
 * anonymous token; the caller decides). On any other status *user is empty. */
us_jwt_status us_jwt_verify(const us_jwt_verifier *v, const char *token, size_t len, int64_t now_s,
                            us_buf *user);

/* A short static description of a status, for debug logs (never contains the token). */
const char *us_jwt_status_text(us_jwt_status st);

void us_jwt_verifier_free(us_jwt_verifier *v);

/* Unpadded base64url (RFC 4648 §5) as JWS uses it, exposed for the tests. Decoding is
 * strict: any character outside the alphabet, '=' padding, a length of 4k+1, or non-zero
 * unused bits in the last character -> -1 (so every token has exactly one spelling).
 * Both append to out. */
int us_b64url_decode(const char *s, size_t n, us_buf *out);
void us_b64url_encode(const void *data, size_t n, us_buf *out);

#endif
