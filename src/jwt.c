/* Verification of Centrifugo connection JWTs with libcrypto (see jwt.h). */
#include "ustatus/jwt.h"

#include <math.h>
#include <regex.h>
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
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#else
#include <openssl/rsa.h>
#endif

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

struct us_jwt_key {
    EVP_PKEY *pkey;
    key_type type; /* KEY_RSA or KEY_EC */
    int ec_bits;   /* KEY_EC: 256, 384 or 521 */
    char alg[8];   /* "" = any algorithm of the type (and curve) */
};

struct us_jwt_verifier {
    unsigned char *hmac_secret; /* NULL = no HMAC key */
    size_t hmac_secret_len;
    us_jwt_key *rsa;
    us_jwt_key *ec;
    char *audience; /* NULL = not checked */
    char *issuer;
    regex_t audience_re;
    regex_t issuer_re;
    bool has_audience_re;
    bool has_issuer_re;
    char *user_id_claim; /* NULL = sub */
    us_jwt_key_lookup key_lookup;
    void *key_lookup_ctx;
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

static const char *curve_group(int bits)
{
    switch (bits) {
    case 256: return "prime256v1";
    case 384: return "secp384r1";
    case 521: return "secp521r1";
    default: return NULL;
    }
}

/* The algorithms table entry named name, or NULL. */
static int algorithm_index(const char *name)
{
    for (size_t i = 0; i < sizeof algorithms / sizeof algorithms[0]; i++)
        if (strcmp(algorithms[i].name, name) == 0)
            return (int)i;
    return -1;
}

static us_jwt_key *key_wrap(EVP_PKEY *pkey, key_type type, int ec_bits, const char *alg)
{
    us_jwt_key *k = us_xcalloc(1, sizeof *k);
    k->pkey = pkey;
    k->type = type;
    k->ec_bits = ec_bits;
    if (set(alg))
        snprintf(k->alg, sizeof k->alg, "%s", alg);
    return k;
}

/* alg must be empty or an algorithm of the type (and curve). */
static int check_key_alg(const char *alg, key_type type, int ec_bits, char *err, size_t err_len)
{
    if (!set(alg))
        return 0;
    int i = algorithm_index(alg);
    if (i < 0 || algorithms[i].type != type ||
        (type == KEY_EC && algorithms[i].ec_bits != ec_bits)) {
        us_set_msg(err, err_len, "alg %.16s does not fit the key type%s", alg,
                   type == KEY_EC ? " and curve" : "");
        return -1;
    }
    return 0;
}

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
/* check_point: also checks that the public point is on the curve (EC). Not done for RSA:
 * OpenSSL's RSA public check runs a primality test on n that costs more than the whole
 * document, and a malformed modulus can only make its own signatures fail. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld, bool check_point)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!params || !ctx)
        abort();
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (pkey && check_point) {
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!check)
            abort();
        if (EVP_PKEY_public_check(check) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(check);
    }
    ERR_clear_error();
    return pkey;
}
#endif

us_jwt_key *us_jwt_key_rsa(const unsigned char *n, size_t n_len, const unsigned char *e,
                           size_t e_len, const char *alg, char *err, size_t err_len)
{
    if (check_key_alg(alg, KEY_RSA, 0, err, err_len) < 0)
        return NULL;
    while (n_len && n[0] == 0) {
        n++;
        n_len--;
    }
    while (e_len && e[0] == 0) {
        e++;
        e_len--;
    }
    size_t bits = n_len * 8;
    for (unsigned char top = n_len ? n[0] : 0; n_len && !(top & 0x80); top <<= 1)
        bits--;
    if (bits < US_JWT_RSA_MIN_BITS || bits > US_JWT_RSA_MAX_BITS) {
        us_set_msg(err, err_len, "RSA modulus of %zu bits (%d to %d accepted)", bits,
                   US_JWT_RSA_MIN_BITS, US_JWT_RSA_MAX_BITS);
        return NULL;
    }
    if (e_len == 0 || e_len > 4 || !(e[e_len - 1] & 1) || (e_len == 1 && e[0] < 3)) {
        us_set_msg(err, err_len, "RSA exponent is not an odd number from 3 to 2^32-1");
        return NULL;
    }
    BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)e_len, NULL);
    if (!bn_n || !bn_e)
        abort();
    EVP_PKEY *pkey = NULL;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!bld || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1)
        abort();
    pkey = pkey_from_params("RSA", bld, false);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
#else
    RSA *rsa = RSA_new();
    if (!rsa || RSA_set0_key(rsa, bn_n, bn_e, NULL) != 1) /* takes bn_n and bn_e */
        abort();
    pkey = EVP_PKEY_new();
    if (!pkey || EVP_PKEY_assign_RSA(pkey, rsa) != 1) /* takes rsa */
        abort();
#endif
    if (!pkey) {
        us_set_msg(err, err_len, "not a usable RSA public key");
        return NULL;
    }
    return key_wrap(pkey, KEY_RSA, 0, alg);
}

us_jwt_key *us_jwt_key_ec(const char *crv, const unsigned char *x, size_t x_len,
                          const unsigned char *y, size_t y_len, const char *alg, char *err,
                          size_t err_len)
{
    int bits = !crv                        ? 0
               : strcmp(crv, "P-256") == 0 ? 256
               : strcmp(crv, "P-384") == 0 ? 384
               : strcmp(crv, "P-521") == 0 ? 521
                                           : 0;
    if (!bits) {
        us_set_msg(err, err_len, "curve is not P-256, P-384 or P-521");
        return NULL;
    }
    if (check_key_alg(alg, KEY_EC, bits, err, err_len) < 0)
        return NULL;
    size_t size = ((size_t)bits + 7) / 8;
    if (x_len != size || y_len != size) {
        us_set_msg(err, err_len, "EC coordinates must be %zu bytes each for %s", size, crv);
        return NULL;
    }
    EVP_PKEY *pkey = NULL;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    unsigned char point[1 + 2 * 66];
    point[0] = 0x04; /* uncompressed: 04 || x || y */
    memcpy(point + 1, x, size);
    memcpy(point + 1 + size, y, size);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve_group(bits), 0) !=
            1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size) != 1)
        abort();
    pkey = pkey_from_params("EC", bld, true);
    OSSL_PARAM_BLD_free(bld);
#else
    EC_KEY *ec = EC_KEY_new_by_curve_name(OBJ_sn2nid(curve_group(bits)));
    BIGNUM *bx = BN_bin2bn(x, (int)size, NULL), *by = BN_bin2bn(y, (int)size, NULL);
    if (!ec || !bx || !by)
        abort();
    /* Checks that the point is on the curve. */
    if (EC_KEY_set_public_key_affine_coordinates(ec, bx, by) == 1) {
        pkey = EVP_PKEY_new();
        if (!pkey || EVP_PKEY_assign_EC_KEY(pkey, ec) != 1) /* takes ec */
            abort();
        ec = NULL;
    }
    EC_KEY_free(ec);
    BN_free(bx);
    BN_free(by);
    ERR_clear_error();
#endif
    if (!pkey) {
        us_set_msg(err, err_len, "the point is not on curve %s", crv);
        return NULL;
    }
    return key_wrap(pkey, KEY_EC, bits, alg);
}

const char *us_jwt_key_alg(const us_jwt_key *k)
{
    return k->alg;
}

void us_jwt_key_free(us_jwt_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

static int compile_regex(regex_t *re, const char *pattern, const char *option, char *err,
                         size_t err_len)
{
    if (regcomp(re, pattern, REG_EXTENDED) != 0) {
        us_set_msg(err, err_len, "%s: not a valid POSIX extended regular expression", option);
        return -1;
    }
    return 0;
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
        EVP_PKEY *pkey = load_public_key(opts->rsa_public_pem);
        if (pkey)
            v->rsa = key_wrap(pkey, KEY_RSA, 0, NULL);
        if (!pkey || EVP_PKEY_base_id(pkey) != EVP_PKEY_RSA) {
            us_set_msg(err, err_len,
                       "client.token.rsa_public_key: not a PEM RSA public key "
                       "(\"PUBLIC KEY\" or \"CERTIFICATE\" block)");
            goto fail;
        }
    }
    if (set(opts->ecdsa_public_pem)) {
        EVP_PKEY *pkey = load_public_key(opts->ecdsa_public_pem);
        if (pkey)
            v->ec = key_wrap(pkey, KEY_EC, 0, NULL);
        if (!pkey || EVP_PKEY_base_id(pkey) != EVP_PKEY_EC) {
            us_set_msg(err, err_len,
                       "client.token.ecdsa_public_key: not a PEM EC public key "
                       "(\"PUBLIC KEY\" or \"CERTIFICATE\" block)");
            goto fail;
        }
        v->ec->ec_bits = jose_curve_bits(pkey);
        if (!v->ec->ec_bits) {
            us_set_msg(err, err_len,
                       "client.token.ecdsa_public_key: the curve must be P-256, "
                       "P-384 or P-521 (ES256, ES384, ES512)");
            goto fail;
        }
    }
    /* Centrifugo refuses both forms of one check ("configure only one of them"): with
     * both, which one wins would be a guess. */
    if (set(opts->audience) && set(opts->audience_regex)) {
        us_set_msg(err, err_len,
                   "client.token.audience_regex: cannot be used together with "
                   "client.token.audience; configure only one of them");
        goto fail;
    }
    if (set(opts->issuer) && set(opts->issuer_regex)) {
        us_set_msg(err, err_len,
                   "client.token.issuer_regex: cannot be used together with "
                   "client.token.issuer; configure only one of them");
        goto fail;
    }
    if (set(opts->audience))
        v->audience = us_xstrdup(opts->audience);
    if (set(opts->issuer))
        v->issuer = us_xstrdup(opts->issuer);
    if (set(opts->audience_regex)) {
        if (compile_regex(&v->audience_re, opts->audience_regex, "client.token.audience_regex", err,
                          err_len) < 0)
            goto fail;
        v->has_audience_re = true;
    }
    if (set(opts->issuer_regex)) {
        if (compile_regex(&v->issuer_re, opts->issuer_regex, "client.token.issuer_regex", err,
                          err_len) < 0)
            goto fail;
        v->has_issuer_re = true;
    }
    v->key_lookup = opts->key_lookup;
    v->key_lookup_ctx = opts->key_lookup_ctx;
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
    us_jwt_key_free(v->rsa);
    us_jwt_key_free(v->ec);
    free(v->audience);
    free(v->issuer);
    if (v->has_audience_re)
        regfree(&v->audience_re);
    if (v->has_issuer_re)
        regfree(&v->issuer_re);
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
static bool verify_ecdsa(const us_jwt_key *k, const EVP_MD *md, const char *input, size_t input_len,
                         const unsigned char *sig, size_t sig_len)
{
    size_t half = ((size_t)k->ec_bits + 7) / 8;
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
        ok = verify_digest(k->pkey, md, input, input_len, der, (size_t)der_len);
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

/* The whole of the string o matches re (a NUL inside it never matches). POSIX regexec
 * reports the leftmost-longest match, so a whole match exists exactly when that one spans
 * the string. */
static bool regex_whole(const regex_t *re, json_object *o)
{
    const char *s = json_object_get_string(o);
    size_t n = (size_t)json_object_get_string_len(o);
    regmatch_t m;
    return strlen(s) == n && regexec(re, s, 1, &m, 0) == 0 && m.rm_so == 0 && (size_t)m.rm_eo == n;
}

/* One element of aud is `want`, or matches re (exactly one of the two is set). */
static bool audience_element_matches(json_object *e, const char *want, const regex_t *re)
{
    return want ? string_equals(e, want) : regex_whole(re, e);
}

/* aud is a string or an array of strings (RFC 7519 §4.1.3). -1 on a wrong type. */
static int audience_matches(json_object *aud, const char *want, const regex_t *re)
{
    if (!aud)
        return 0;
    if (json_object_is_type(aud, json_type_string))
        return audience_element_matches(aud, want, re);
    if (!json_object_is_type(aud, json_type_array))
        return -1;
    int found = 0;
    for (size_t i = 0; i < json_object_array_length(aud); i++) {
        json_object *e = json_object_array_get_idx(aud, i);
        if (!json_object_is_type(e, json_type_string))
            return -1;
        if (audience_element_matches(e, want, re))
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

/* The key can verify algorithm i: its type, its curve, and its own alg when it has one. */
static bool key_fits(const us_jwt_key *k, size_t i)
{
    return k && k->type == algorithms[i].type &&
           (k->type != KEY_EC || k->ec_bits == algorithms[i].ec_bits) &&
           (!k->alg[0] || strcmp(k->alg, algorithms[i].name) == 0);
}

/* The key for algorithm i: the kid's (with a key lookup) or the configured one of its
 * type. *st says why there is none. */
static const us_jwt_key *choose_key(const us_jwt_verifier *v, json_object *header, size_t i,
                                    int64_t now_s, us_jwt_status *st)
{
    *st = US_JWT_UNSUPPORTED_ALG;
    if (v->key_lookup) {
        /* JWKS documents carry public keys only: an HMAC token has no key here. Checked
         * before the lookup so that such tokens never cause a fetch. */
        if (algorithms[i].type == KEY_HMAC)
            return NULL;
        json_object *kid = member(header, "kid");
        if (!kid || !json_object_is_type(kid, json_type_string) ||
            json_object_get_string_len(kid) == 0) {
            *st = US_JWT_UNKNOWN_KEY;
            return NULL;
        }
        const us_jwt_key *k = v->key_lookup(v->key_lookup_ctx, json_object_get_string(kid),
                                            (size_t)json_object_get_string_len(kid), now_s);
        if (!k) {
            *st = US_JWT_UNKNOWN_KEY;
            return NULL;
        }
        return key_fits(k, i) ? k : NULL;
    }
    const us_jwt_key *k = algorithms[i].type == KEY_RSA  ? v->rsa
                          : algorithms[i].type == KEY_EC ? v->ec
                                                         : NULL;
    return key_fits(k, i) ? k : NULL;
}

static us_jwt_status check_signature(const us_jwt_verifier *v, json_object *header,
                                     const char *input, size_t input_len, const us_buf *sig,
                                     int64_t now_s)
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
        us_jwt_status st = US_JWT_UNSUPPORTED_ALG;
        if (algorithms[i].type == KEY_HMAC && !v->key_lookup) {
            if (!v->hmac_secret)
                return US_JWT_UNSUPPORTED_ALG;
            ok = verify_hmac(v, md, input, input_len, s, sig->len);
            return ok ? US_JWT_OK : US_JWT_BAD_SIGNATURE;
        }
        const us_jwt_key *k = choose_key(v, header, i, now_s, &st);
        if (!k)
            return st;
        if (k->type == KEY_RSA)
            ok = verify_digest(k->pkey, md, input, input_len, s, sig->len);
        else
            ok = verify_ecdsa(k, md, input, input_len, s, sig->len);
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

    st = check_signature(v, header, token, (size_t)(dot2 - token), &sig, now_s);
    if (st != US_JWT_OK)
        goto done;

    if (v->audience || v->has_audience_re) {
        int m = audience_matches(member(claims, "aud"), v->audience,
                                 v->has_audience_re ? &v->audience_re : NULL);
        if (m <= 0) {
            st = m < 0 ? US_JWT_BAD_CLAIMS : US_JWT_BAD_AUDIENCE;
            goto done;
        }
    }
    if (v->issuer || v->has_issuer_re) {
        json_object *iss = member(claims, "iss");
        if (iss && !json_object_is_type(iss, json_type_string)) {
            st = US_JWT_BAD_CLAIMS;
            goto done;
        }
        bool ok =
            iss && (v->issuer ? string_equals(iss, v->issuer) : regex_whole(&v->issuer_re, iss));
        if (!ok) {
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
    case US_JWT_UNKNOWN_KEY: return "no key for the token's kid";
    }
    return "unknown";
}
