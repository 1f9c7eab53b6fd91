/* Verification of Centrifugo connection JWTs with libcrypto (see jwt.h). */
#include "ustatus/jwt.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ustatus/buf.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"

typedef enum { KEY_HMAC, KEY_RSA, KEY_EC } key_type;

static const struct {
    const char *name;
    key_type type;
    const EVP_MD *(*md)(void);
    int ec_bits; /* KEY_EC: the curve RFC 7518 §3.4 ties to the algorithm */
} algorithms[] = {
    {"HS256", KEY_HMAC, EVP_sha256, 0}, {"HS384", KEY_HMAC, EVP_sha384, 0},
    {"HS512", KEY_HMAC, EVP_sha512, 0}, {"RS256", KEY_RSA, EVP_sha256, 0},
    {"RS384", KEY_RSA, EVP_sha384, 0},  {"RS512", KEY_RSA, EVP_sha512, 0},
    {"ES256", KEY_EC, EVP_sha256, 256}, {"ES384", KEY_EC, EVP_sha384, 384},
    {"ES512", KEY_EC, EVP_sha512, 521},
};

struct us_jwt_verifier {
    unsigned char *hmac_secret; /* NULL = no HMAC key */
    size_t hmac_secret_len;
    EVP_PKEY *rsa;
    EVP_PKEY *ec;
    int ec_bits;    /* 256, 384 or 521 */
    char *audience; /* NULL = not checked */
    char *issuer;
    char *user_id_claim; /* NULL = sub */
};

/* ---- base64url ---- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int us_b64url_decode(const char *s, size_t n, us_buf *out)
{
    if (n % 4 == 1)
        return -1;
    us_buf_reserve(out, n / 4 * 3 + 3);
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            us_buf_putc(out, (char)((acc >> bits) & 0xff));
        }
    }
    /* The leftover bits (2 or 4) must be zero: otherwise two spellings decode alike. */
    if (bits && (acc & ((1u << bits) - 1)))
        return -1;
    return 0;
}

void us_b64url_encode(const void *data, size_t n, us_buf *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    uint32_t acc = 0;
    int bits = 0;
    us_buf_reserve(out, (n + 2) / 3 * 4);
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            us_buf_putc(out, alphabet[(acc >> bits) & 63]);
        }
    }
    if (bits)
        us_buf_putc(out, alphabet[(acc << (6 - bits)) & 63]);
    if (out->cap == 0)
        us_buf_puts(out, ""); /* callers may read data even for empty input */
}

/* ---- keys ---- */

/* The curve size of an EC key when it is one of the three JOSE curves, else 0. */
static int jose_curve_bits(EVP_PKEY *pkey)
{
    int nid = NID_undef;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    char name[64];
    size_t name_len = 0;
    if (EVP_PKEY_get_group_name(pkey, name, sizeof name, &name_len) != 1)
        return 0;
    nid = OBJ_sn2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
#else
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pkey);
    if (!ec || !EC_KEY_get0_group(ec))
        return 0;
    nid = EC_GROUP_get_curve_name(EC_KEY_get0_group(ec));
#endif
    switch (nid) {
    case NID_X9_62_prime256v1: return 256;
    case NID_secp384r1: return 384;
    case NID_secp521r1: return 521;
    default: return 0;
    }
}

/* A public key from PEM text: a SubjectPublicKeyInfo ("PUBLIC KEY") block, or the key
 * of a certificate, as Centrifugo accepts both. */
static EVP_PKEY *load_public_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    if (!bio)
        abort();
    EVP_PKEY *pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pkey) {
        (void)BIO_reset(bio);
        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (cert) {
            pkey = X509_get_pubkey(cert);
            X509_free(cert);
        }
    }
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

static bool set(const char *s)
{
    return s && *s;
}

us_jwt_verifier *us_jwt_verifier_create(const us_jwt_options *opts, char *err, size_t err_len)
{
    us_jwt_verifier *v = us_xcalloc(1, sizeof *v);
    if (opts->hmac_secret && opts->hmac_secret_len) {
        v->hmac_secret = us_xmalloc(opts->hmac_secret_len);
        memcpy(v->hmac_secret, opts->hmac_secret, opts->hmac_secret_len);
        v->hmac_secret_len = opts->hmac_secret_len;
    }
    if (set(opts->rsa_public_pem)) {
        v->rsa = load_public_key(opts->rsa_public_pem);
        if (!v->rsa || EVP_PKEY_base_id(v->rsa) != EVP_PKEY_RSA) {
            us_set_msg(err, err_len,
                     "client.token.rsa_public_key: not a PEM RSA public key "
                     "(\"PUBLIC KEY\" or \"CERTIFICATE\" block)");
            goto fail;
        }
    }
    if (set(opts->ecdsa_public_pem)) {
        v->ec = load_public_key(opts->ecdsa_public_pem);
        if (!v->ec || EVP_PKEY_base_id(v->ec) != EVP_PKEY_EC) {
            us_set_msg(err, err_len,
                     "client.token.ecdsa_public_key: not a PEM EC public key "
                     "(\"PUBLIC KEY\" or \"CERTIFICATE\" block)");
            goto fail;
        }
        v->ec_bits = jose_curve_bits(v->ec);
        if (!v->ec_bits) {
            us_set_msg(err, err_len,
                     "client.token.ecdsa_public_key: the curve must be P-256, "
                     "P-384 or P-521 (ES256, ES384, ES512)");
            goto fail;
        }
    }
    if (set(opts->audience))
        v->audience = us_xstrdup(opts->audience);
    if (set(opts->issuer))
        v->issuer = us_xstrdup(opts->issuer);
    if (set(opts->user_id_claim)) {
        const char *c = opts->user_id_claim;
        size_t n = strlen(c);
        if (c[0] == '.' || c[n - 1] == '.' || strstr(c, "..")) {
            us_set_msg(err, err_len, "client.token.user_id_claim: empty name between dots");
            goto fail;
        }
        v->user_id_claim = us_xstrdup(c);
    }
    return v;
fail:
    us_jwt_verifier_free(v);
    return NULL;
}

void us_jwt_verifier_free(us_jwt_verifier *v)
{
    if (!v)
        return;
    if (v->hmac_secret) {
        OPENSSL_cleanse(v->hmac_secret, v->hmac_secret_len);
        free(v->hmac_secret);
    }
    EVP_PKEY_free(v->rsa);
    EVP_PKEY_free(v->ec);
    free(v->audience);
    free(v->issuer);
    free(v->user_id_claim);
    free(v);
}

/* ---- signatures ---- */

static bool verify_hmac(const us_jwt_verifier *v, const EVP_MD *md, const char *input,
                        size_t input_len, const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(md, v->hmac_secret, (int)v->hmac_secret_len, (const unsigned char *)input, input_len,
              mac, &mac_len))
        return false;
    /* The length is public (it follows from alg); the bytes are compared in constant time. */
    bool ok = sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

static bool verify_digest(EVP_PKEY *pkey, const EVP_MD *md, const char *input, size_t input_len,
                          const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        abort();
    bool ok = EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* JWS carries an ECDSA signature as the fixed-width big-endian r || s (RFC 7518 §3.4);
 * OpenSSL verifies the DER SEQUENCE { r, s }. */
static bool verify_ecdsa(const us_jwt_verifier *v, const EVP_MD *md, const char *input,
                         size_t input_len, const unsigned char *sig, size_t sig_len)
{
    size_t half = ((size_t)v->ec_bits + 7) / 8;
    if (sig_len != 2 * half)
        return false;
    bool ok = false;
    unsigned char *der = NULL;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL);
    BIGNUM *s = BN_bin2bn(sig + half, (int)half, NULL);
    if (!es || !r || !s)
        abort();
    if (ECDSA_SIG_set0(es, r, s) != 1)
        abort();
    int der_len = i2d_ECDSA_SIG(es, &der);
    if (der_len > 0)
        ok = verify_digest(v->ec, md, input, input_len, der, (size_t)der_len);
    OPENSSL_free(der);
    ECDSA_SIG_free(es); /* frees r and s */
    return ok;
}

/* ---- JSON ---- */

/* Exactly one JSON object, strict syntax, valid UTF-8, nothing after it. */
static json_object *parse_object(const char *s, size_t len)
{
    if (len == 0 || len > US_JWT_MAX_TOKEN_BYTES || memchr(s, '\0', len))
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        abort();
    int flags = JSON_TOKENER_STRICT;
#ifdef JSON_TOKENER_VALIDATE_UTF8
    flags |= JSON_TOKENER_VALIDATE_UTF8;
#endif
    json_tokener_set_flags(tok, flags);
    json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
    bool ok = obj && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(obj, json_type_object);
    for (size_t i = json_tokener_get_parse_end(tok); ok && i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            ok = false;
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

/* The member `name` of obj when present and not null, else NULL. */
static json_object *member(json_object *obj, const char *name)
{
    json_object *m = NULL;
    if (!json_object_object_get_ex(obj, name, &m))
        return NULL;
    return m;
}

static bool is_number(json_object *o)
{
    return json_object_is_type(o, json_type_int) || json_object_is_type(o, json_type_double);
}

static bool string_equals(json_object *o, const char *want)
{
    size_t n = strlen(want);
    return json_object_is_type(o, json_type_string) && (size_t)json_object_get_string_len(o) == n &&
           memcmp(json_object_get_string(o), want, n) == 0;
}

/* aud is a string or an array of strings (RFC 7519 §4.1.3). -1 on a wrong type. */
static int audience_matches(json_object *aud, const char *want)
{
    if (!aud)
        return 0;
    if (json_object_is_type(aud, json_type_string))
        return string_equals(aud, want);
    if (!json_object_is_type(aud, json_type_array))
        return -1;
    int found = 0;
    for (size_t i = 0; i < json_object_array_length(aud); i++) {
        json_object *e = json_object_array_get_idx(aud, i);
        if (!json_object_is_type(e, json_type_string))
            return -1;
        if (string_equals(e, want))
            found = 1;
    }
    return found;
}

/* Follows a dotted path through nested objects; NULL when any step is missing. */
static json_object *claim_at(json_object *claims, const char *path)
{
    char name[256];
    json_object *cur = claims;
    const char *p = path;
    for (;;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof name || !json_object_is_type(cur, json_type_object))
            return NULL;
        memcpy(name, p, n);
        name[n] = '\0';
        cur = member(cur, name);
        if (!cur || p[n] == '\0')
            return cur;
        p += n + 1;
    }
}

/* Puts the user into *user: a string, or an integer claim written in decimal as
 * Centrifugo does; null or absent is the anonymous (empty) user. */
static us_jwt_status extract_user(const us_jwt_verifier *v, json_object *claims, us_buf *user)
{
    json_object *u = v->user_id_claim ? claim_at(claims, v->user_id_claim) : member(claims, "sub");
    if (!u)
        return US_JWT_OK;
    if (json_object_is_type(u, json_type_string)) {
        us_buf_append(user, json_object_get_string(u), (size_t)json_object_get_string_len(u));
        return US_JWT_OK;
    }
    if (v->user_id_claim && json_object_is_type(u, json_type_int)) {
        us_buf_printf(user, "%lld", (long long)json_object_get_int64(u));
        return US_JWT_OK;
    }
    return US_JWT_BAD_CLAIMS;
}

/* ---- verification ---- */

static us_jwt_status check_signature(const us_jwt_verifier *v, json_object *header,
                                     const char *input, size_t input_len, const us_buf *sig)
{
    json_object *alg = member(header, "alg");
    /* An extension we would have to understand (RFC 7515 §4.1.11): we understand none. */
    if (member(header, "crit") || !alg || !json_object_is_type(alg, json_type_string))
        return US_JWT_UNSUPPORTED_ALG;
    for (size_t i = 0; i < sizeof algorithms / sizeof algorithms[0]; i++) {
        if (!string_equals(alg, algorithms[i].name))
            continue;
        const EVP_MD *md = algorithms[i].md();
        const unsigned char *s = (const unsigned char *)sig->data;
        bool ok = false;
        switch (algorithms[i].type) {
        case KEY_HMAC:
            if (!v->hmac_secret)
                return US_JWT_UNSUPPORTED_ALG;
            ok = verify_hmac(v, md, input, input_len, s, sig->len);
            break;
        case KEY_RSA:
            if (!v->rsa)
                return US_JWT_UNSUPPORTED_ALG;
            ok = verify_digest(v->rsa, md, input, input_len, s, sig->len);
            break;
        case KEY_EC:
            if (!v->ec || v->ec_bits != algorithms[i].ec_bits)
                return US_JWT_UNSUPPORTED_ALG;
            ok = verify_ecdsa(v, md, input, input_len, s, sig->len);
            break;
        }
        return ok ? US_JWT_OK : US_JWT_BAD_SIGNATURE;
    }
    return US_JWT_UNSUPPORTED_ALG; /* "none" and everything else */
}

static us_jwt_status check_time(json_object *claims, int64_t now_s)
{
    json_object *exp = member(claims, "exp");
    json_object *nbf = member(claims, "nbf");
    if ((exp && !is_number(exp)) || (nbf && !is_number(nbf)))
        return US_JWT_BAD_CLAIMS;
    double now = (double)now_s;
    if (exp) {
        double e = json_object_get_double(exp);
        if (!isfinite(e))
            return US_JWT_BAD_CLAIMS;
        if (now >= e)
            return US_JWT_EXPIRED;
    }
    if (nbf) {
        double b = json_object_get_double(nbf);
        if (!isfinite(b))
            return US_JWT_BAD_CLAIMS;
        if (now < b)
            return US_JWT_NOT_YET_VALID;
    }
    return US_JWT_OK;
}

us_jwt_status us_jwt_verify(const us_jwt_verifier *v, const char *token, size_t len, int64_t now_s,
                            us_buf *user)
{
    us_jwt_status st = US_JWT_MALFORMED;
    us_buf part = US_BUF_INIT, sig = US_BUF_INIT;
    json_object *header = NULL, *claims = NULL;
    us_buf_reset(user);
    us_buf_puts(user, "");

    if (len == 0 || len > US_JWT_MAX_TOKEN_BYTES)
        goto done;
    const char *dot1 = memchr(token, '.', len);
    if (!dot1)
        goto done;
    const char *end = token + len;
    const char *dot2 = memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1));
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        goto done;

    if (us_b64url_decode(token, (size_t)(dot1 - token), &part) < 0 ||
        !(header = parse_object(part.data, part.len)))
        goto done;
    us_buf_reset(&part);
    if (us_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &part) < 0 ||
        !(claims = parse_object(part.data, part.len)))
        goto done;
    if (us_b64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), &sig) < 0 || sig.len == 0)
        goto done;

    st = check_signature(v, header, token, (size_t)(dot2 - token), &sig);
    if (st != US_JWT_OK)
        goto done;

    if (v->audience) {
        int m = audience_matches(member(claims, "aud"), v->audience);
        if (m <= 0) {
            st = m < 0 ? US_JWT_BAD_CLAIMS : US_JWT_BAD_AUDIENCE;
            goto done;
        }
    }
    if (v->issuer) {
        json_object *iss = member(claims, "iss");
        if (iss && !json_object_is_type(iss, json_type_string)) {
            st = US_JWT_BAD_CLAIMS;
            goto done;
        }
        if (!iss || !string_equals(iss, v->issuer)) {
            st = US_JWT_BAD_ISSUER;
            goto done;
        }
    }
    st = check_time(claims, now_s);
    if (st != US_JWT_OK)
        goto done;
    st = extract_user(v, claims, user);
done:
    if (st != US_JWT_OK) {
        us_buf_reset(user);
        us_buf_puts(user, "");
    }
    json_object_put(header);
    json_object_put(claims);
    us_buf_free(&part);
    us_buf_free(&sig);
    return st;
}

const char *us_jwt_status_text(us_jwt_status st)
{
    switch (st) {
    case US_JWT_OK: return "valid";
    case US_JWT_MALFORMED: return "malformed token";
    case US_JWT_UNSUPPORTED_ALG: return "algorithm not accepted";
    case US_JWT_BAD_SIGNATURE: return "bad signature";
    case US_JWT_BAD_CLAIMS: return "claim of the wrong type";
    case US_JWT_BAD_AUDIENCE: return "audience does not match";
    case US_JWT_BAD_ISSUER: return "issuer does not match";
    case US_JWT_EXPIRED: return "token expired";
    case US_JWT_NOT_YET_VALID: return "token not yet valid";
    }
    return "unknown";
}
