/* Verification of Centrifugo connection JWTs (RFC 7519, JWS compact form RFC 7515) with
 * OpenSSL's libcrypto: HS256/384/512, RS256/384/512 and ES256/384/512, the three key
 * kinds Centrifugo accepts (SPEC §6). A token is checked the way Centrifugo checks it:
 * the header's `alg` picks the key *type*, and only a configured key of that type is
 * ever used, so an HS256 token can never be checked against the RSA or ECDSA key
 * (algorithm confusion) and `none` is never accepted. Pure: no I/O, no logging, the
 * current time is a parameter. */
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
} us_jwt_status;

/* Longest token accepted, in bytes: bounds the work an unauthenticated caller can cause. */
#define US_JWT_MAX_TOKEN_BYTES 16384

typedef struct us_jwt_options {
    const char *hmac_secret; /* bytes, may hold NULs; length 0 = HS* tokens rejected */
    size_t hmac_secret_len;
    const char *rsa_public_pem;   /* NULL or "" = RS* rejected; "PUBLIC KEY" or "CERTIFICATE" PEM */
    const char *ecdsa_public_pem; /* NULL or "" = ES* rejected; P-256, P-384 or P-521 */
    const char *audience;         /* NULL or "" = aud not checked */
    const char *issuer;           /* NULL or "" = iss not checked */
    const char *user_id_claim;    /* NULL or "" = the user is `sub`; else this claim, where
                                     dots name nested objects ("data.user_id") */
} us_jwt_options;

typedef struct us_jwt_verifier us_jwt_verifier;

/* Parses the keys once. Copies what it keeps from opts. NULL with a reason in err that
 * names the option (client.token.rsa_public_key...) but never contains key material. */
us_jwt_verifier *us_jwt_verifier_create(const us_jwt_options *opts, char *err, size_t err_len);

/* Verifies [token, token+len) at time now_s (Unix seconds). Order: structure, alg and
 * signature, then aud and iss, then exp and nbf, so that US_JWT_EXPIRED and
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
