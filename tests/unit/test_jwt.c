/* Unit tests for the JWT verifier (src/jwt.c). Keys are generated when the program
 * starts (RSA 2048, EC P-256/P-384/P-521, and secp256k1 as a curve JOSE does not allow)
 * and every token is built and signed here with libcrypto's signing side, which the
 * verifier never uses; the one fixed vector is RFC 7515 Appendix A.1 (HS256), so the
 * verifier is also checked against bytes nobody here produced. The current time is a
 * parameter of us_jwt_verify, so expiry is tested without sleeping. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "fixtures.h"
#include "ustatus/buf.h"
#include "ustatus/jwt.h"
#include "ustatus/mem.h"

#define NOW 1700000000LL

static EVP_PKEY *rsa_key, *p256_key, *p384_key, *p521_key, *k256_key;
static char *rsa_pem, *rsa_cert_pem, *p256_pem, *p384_pem, *p521_pem, *k256_pem;

/* ---- fixtures: keys and tokens ---- */

static char *bio_text(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    char *s = us_xstrndup(data, (size_t)n);
    BIO_free(bio);
    return s;
}

static char *public_pem(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_PUBKEY(bio, k) != 1)
        abort();
    return bio_text(bio);
}

/* A self-signed certificate for k: Centrifugo accepts a certificate as the RSA key. */
static char *cert_pem(EVP_PKEY *k)
{
    X509 *x = X509_new();
    if (!x)
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"ustatus-test", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, k, EVP_sha256()))
        abort();
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || PEM_write_bio_X509(bio, x) != 1)
        abort();
    X509_free(x);
    return bio_text(bio);
}

static const EVP_MD *md_for(const char *alg)
{
    if (strstr(alg, "256"))
        return EVP_sha256();
    if (strstr(alg, "384"))
        return EVP_sha384();
    return EVP_sha512();
}

typedef enum { SIG_JOSE, SIG_DER } sig_form;

/* Signs input the way alg says: HMAC with secret, or key (ECDSA as raw r||s unless
 * SIG_DER asks for OpenSSL's own DER form). The signature is appended base64url. */
static void sign(const char *alg, const char *input, const void *secret, size_t secret_len,
                 EVP_PKEY *key, sig_form form, us_buf *out)
{
    unsigned char sig[1024];
    size_t sig_len = sizeof sig;
    if (alg[0] == 'H') {
        unsigned int n = 0;
        if (!HMAC(md_for(alg), secret, (int)secret_len, (const unsigned char *)input, strlen(input),
                  sig, &n))
            abort();
        sig_len = n;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestSignInit(ctx, NULL, md_for(alg), NULL, key) != 1 ||
            EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)input, strlen(input)) != 1)
            abort();
        EVP_MD_CTX_free(ctx);
        if (alg[0] == 'E' && form == SIG_JOSE) {
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
            if (!es)
                abort();
            int half = (EVP_PKEY_bits(key) + 7) / 8;
            unsigned char raw[264];
            if (BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half) != half ||
                BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half) != half)
                abort();
            ECDSA_SIG_free(es);
            memcpy(sig, raw, (size_t)(2 * half));
            sig_len = (size_t)(2 * half);
        }
    }
    us_b64url_encode(sig, sig_len, out);
}

/* header.claims.signature with both JSON texts exactly as given. */
static char *token_raw(const char *alg, const char *header, const char *claims, const void *secret,
                       size_t secret_len, EVP_PKEY *key, sig_form form)
{
    us_buf t = US_BUF_INIT;
    us_b64url_encode(header, strlen(header), &t);
    us_buf_putc(&t, '.');
    us_b64url_encode(claims, strlen(claims), &t);
    char *input = us_xstrndup(t.data, t.len);
    us_buf_putc(&t, '.');
    sign(alg, input, secret, secret_len, key, form, &t);
    free(input);
    return us_buf_steal(&t, NULL);
}

static char *claims_fmt(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *buf = us_xmalloc((size_t)n + 1);
    vsnprintf(buf, (size_t)n + 1, fmt, again);
    va_end(again);
    return buf;
}

static char *hs_token(const char *alg, const char *secret, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *claims = claims_fmt(fmt, ap);
    va_end(ap);
    char header[64];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    char *t = token_raw(alg, header, claims, secret, strlen(secret), NULL, SIG_JOSE);
    free(claims);
    return t;
}

static char *pk_token(const char *alg, EVP_PKEY *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *claims = claims_fmt(fmt, ap);
    va_end(ap);
    char header[64];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    char *t = token_raw(alg, header, claims, NULL, 0, key, SIG_JOSE);
    free(claims);
    return t;
}

static us_jwt_verifier *verifier(const us_jwt_options *o)
{
    char err[256] = "";
    us_jwt_verifier *v = us_jwt_verifier_create(o, err, sizeof err);
    ck_assert_msg(v != NULL, "create failed: %s", err);
    return v;
}

static us_jwt_verifier *hs_verifier(const char *secret)
{
    us_jwt_options o = {.hmac_secret = secret, .hmac_secret_len = strlen(secret)};
    return verifier(&o);
}

/* Status of verifying token at t (and the user, when out_user is given). Frees token. */
static us_jwt_status verify_at(const us_jwt_verifier *v, char *token, int64_t t, char **out_user)
{
    us_buf user = US_BUF_INIT;
    us_jwt_status st = us_jwt_verify(v, token, strlen(token), t, &user);
    if (st != US_JWT_OK)
        ck_assert_uint_eq(user.len, 0);
    if (out_user)
        *out_user = us_xstrndup(user.data ? user.data : "", user.len);
    us_buf_free(&user);
    free(token);
    return st;
}

static us_jwt_status verify(const us_jwt_verifier *v, char *token)
{
    return verify_at(v, token, NOW, NULL);
}

/* ---- base64url ---- */

START_TEST(test_b64url_round_trip)
{
    unsigned char data[64];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof data; n++) {
        us_buf enc = US_BUF_INIT, dec = US_BUF_INIT;
        us_b64url_encode(data, n, &enc);
        ck_assert_uint_eq(enc.len, (n * 4 + 2) / 3);
        ck_assert_ptr_null(memchr(enc.data, '=', enc.len));
        ck_assert_int_eq(us_b64url_decode(enc.data, enc.len, &dec), 0);
        ck_assert_uint_eq(dec.len, n);
        ck_assert(n == 0 || memcmp(dec.data, data, n) == 0);
        us_buf_free(&enc);
        us_buf_free(&dec);
    }
}
END_TEST

START_TEST(test_b64url_alphabet)
{
    us_buf b = US_BUF_INIT;
    const unsigned char bytes[] = {0xfb, 0xff, 0xbf};
    us_b64url_encode(bytes, 3, &b);
    ck_assert_str_eq(b.data, "-_-_");
    us_buf_free(&b);
}
END_TEST

START_TEST(test_b64url_strict)
{
    static const char *bad[] = {
        "QQ==",  "QQ=",   /* padding */
        "+/8",   "ab/c",  /* the other alphabet */
        "Q",     "QUJDR", /* 4k+1 characters */
        "QR",    "QUJ",   /* non-zero unused bits ("QQ" and "QUI" are the spellings) */
        "QU JD", "QUJD\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        us_buf b = US_BUF_INIT;
        ck_assert_msg(us_b64url_decode(bad[i], strlen(bad[i]), &b) < 0, "accepted %s", bad[i]);
        us_buf_free(&b);
    }
    us_buf b = US_BUF_INIT;
    ck_assert_int_eq(us_b64url_decode("QQ", 2, &b), 0);
    ck_assert_int_eq(us_b64url_decode("QUI", 3, &b), 0);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_int_eq(memcmp(b.data, "AAB", 3), 0);
    us_buf_free(&b);
}
END_TEST

/* ---- valid tokens ---- */

START_TEST(test_hs_valid)
{
    static const char *algs[] = {"HS256", "HS384", "HS512"};
    us_jwt_verifier *v = hs_verifier("secret");
    for (size_t i = 0; i < 3; i++) {
        char *user = NULL;
        ck_assert_status(
            verify_at(v, hs_token(algs[i], "secret", "{\"sub\":\"42\",\"exp\":%lld}", NOW + 60),
                      NOW, &user),
            US_JWT_OK);
        ck_assert_str_eq(user, "42");
        free(user);
    }
    us_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_rs_valid)
{
    static const char *algs[] = {"RS256", "RS384", "RS512"};
    us_jwt_options o = {.rsa_public_pem = rsa_pem};
    us_jwt_verifier *v = verifier(&o);
    for (size_t i = 0; i < 3; i++) {
        char *user = NULL;
        ck_assert_status(
            verify_at(v, pk_token(algs[i], rsa_key, "{\"sub\":\"user-%zu\"}", i), NOW, &user),
            US_JWT_OK);
        ck_assert_str_eq(user, i == 0 ? "user-0" : i == 1 ? "user-1" : "user-2");
        free(user);
    }
    us_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_rs_certificate)
{
    us_jwt_options o = {.rsa_public_pem = rsa_cert_pem};
    us_jwt_verifier *v = verifier(&o);
    ck_assert_status(verify(v, pk_token("RS256", rsa_key, "{\"sub\":\"1\"}")), US_JWT_OK);
    us_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_es_valid)
{
    struct {
        const char *alg;
        EVP_PKEY *key;
        const char *pem;
    } cases[] = {{"ES256", p256_key, p256_pem},
                 {"ES384", p384_key, p384_pem},
                 {"ES512", p521_key, p521_pem}};
    for (size_t i = 0; i < 3; i++) {
        us_jwt_options o = {.ecdsa_public_pem = cases[i].pem};
        us_jwt_verifier *v = verifier(&o);
        /* ECDSA signatures vary; several rounds catch r or s with a leading zero byte. */
        for (int round = 0; round < 8; round++) {
            char *user = NULL;
            ck_assert_status(
                verify_at(v, pk_token(cases[i].alg, cases[i].key, "{\"sub\":\"e\"}"), NOW, &user),
                US_JWT_OK);
            ck_assert_str_eq(user, "e");
            free(user);
        }
        us_jwt_verifier_free(v);
    }
}
END_TEST

START_TEST(test_all_keys_together)
{
    us_jwt_options o = {.hmac_secret = "s",
                        .hmac_secret_len = 1,
                        .rsa_public_pem = rsa_pem,
                        .ecdsa_public_pem = p256_pem};
    us_jwt_verifier *v = verifier(&o);
    ck_assert_status(verify(v, hs_token("HS256", "s", "{\"sub\":\"1\"}")), US_JWT_OK);
    ck_assert_status(verify(v, pk_token("RS512", rsa_key, "{\"sub\":\"1\"}")), US_JWT_OK);
    ck_assert_status(verify(v, pk_token("ES256", p256_key, "{\"sub\":\"1\"}")), US_JWT_OK);
    us_jwt_verifier_free(v);
}
END_TEST

/* RFC 7515 Appendix A.1: an HS256 JWS with a binary key, CRLFs inside the JSON, no sub. */
START_TEST(test_rfc7515_a1)
{
    static const char token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                                "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcG"
                                "xlLmNvbS9pc19yb290Ijp0cnVlfQ."
                                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const char k[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    us_buf key = US_BUF_INIT;
    ck_assert_int_eq(us_b64url_decode(k, strlen(k), &key), 0);
    ck_assert_uint_eq(key.len, 64);
    us_jwt_options o = {.hmac_secret = key.data, .hmac_secret_len = key.len, .issuer = "joe"};
    us_jwt_verifier *v = verifier(&o);
    char *user = NULL;
    ck_assert_status(verify_at(v, us_xstrdup(token), 1300819379, &user), US_JWT_OK);
    ck_assert_str_eq(user, ""); /* no sub: anonymous */
    free(user);
    ck_assert_status(verify_at(v, us_xstrdup(token), 1300819380, NULL), US_JWT_EXPIRED);
    /* One bit of the signature changed. */
    char *bad = us_xstrdup(token);
    bad[strlen(bad) - 1] = 'g'; /* same unused bits, other value */
    ck_assert_status(verify_at(v, bad, 1300819379, NULL), US_JWT_BAD_SIGNATURE);
    us_jwt_verifier_free(v);
    us_buf_free(&key);
}
END_TEST

/* ---- rejected tokens ---- */

START_TEST(test_wrong_signature)
{
    us_jwt_options o = {.hmac_secret = "secret",
                        .hmac_secret_len = 6,
                        .rsa_public_pem = rsa_pem,
                        .ecdsa_public_pem = p256_pem};
    us_jwt_verifier *v = verifier(&o);
    ck_assert_status(verify(v, hs_token("HS256", "secreT", "{\"sub\":\"1\"}")),
                     US_JWT_BAD_SIGNATURE);
    EVP_PKEY *other_rsa = us_test_gen_key(EVP_PKEY_RSA, 2048);
    EVP_PKEY *other_ec = us_test_gen_key(EVP_PKEY_EC, NID_X9_62_prime256v1);
    ck_assert_status(verify(v, pk_token("RS256", other_rsa, "{\"sub\":\"1\"}")),
                     US_JWT_BAD_SIGNATURE);
    ck_assert_status(verify(v, pk_token("ES256", other_ec, "{\"sub\":\"1\"}")),
                     US_JWT_BAD_SIGNATURE);
    EVP_PKEY_free(other_rsa);
    EVP_PKEY_free(other_ec);

    /* A valid signature over other claims: swap the payload of two good tokens. */
    char *a = hs_token("HS256", "secret", "{\"sub\":\"alice\"}");
    char *b = hs_token("HS256", "secret", "{\"sub\":\"mallory\"}");
    char *a1 = strchr(a, '.'), *a2 = strrchr(a, '.');
    char *b1 = strchr(b, '.'), *b2 = strrchr(b, '.');
    us_buf mix = US_BUF_INIT;
    us_buf_append(&mix, a, (size_t)(a1 - a));
    us_buf_append(&mix, b1, (size_t)(b2 - b1));
    us_buf_puts(&mix, a2);
    ck_assert_status(verify(v, us_buf_steal(&mix, NULL)), US_JWT_BAD_SIGNATURE);
    free(a);
    free(b);

    /* Truncated and extended signatures. */
    char *t = pk_token("ES256", p256_key, "{\"sub\":\"1\"}");
    t[strlen(t) - 2] = '\0';
    ck_assert_status(verify(v, t), US_JWT_BAD_SIGNATURE);
    t = pk_token("RS256", rsa_key, "{\"sub\":\"1\"}");
    char *longer = malloc(strlen(t) + 5);
    sprintf(longer, "%sAAAA", t);
    free(t);
    ck_assert_status(verify(v, longer), US_JWT_BAD_SIGNATURE);
    us_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_alg_none_and_unknown)
{
    us_jwt_options o = {.hmac_secret = "secret", .hmac_secret_len = 6, .rsa_public_pem = rsa_pem};
    us_jwt_verifier *v = verifier(&o);
    static const char *headers[] = {
        "{\"alg\":\"none\"}",
        "{\"alg\":\"None\"}",
        "{\"alg\":\"NONE\"}",
        "{\"alg\":\"\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"PS256\"}",
        "{\"alg\":\"HS256 \"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":null}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
    };
    us_buf t = US_BUF_INIT;
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        us_buf_reset(&t);
        us_b64url_encode(headers[i], strlen(headers[i]), &t);
        us_buf_putc(&t, '.');
        us_b64url_encode("{\"sub\":\"1\"}", 11, &t);
        /* A genuine HMAC, so only the header can be the reason. */
        char *input = us_xstrndup(t.data, t.len);
        us_buf_putc(&t, '.');
        sign("HS256", input, "secret", 6, NULL, SIG_JOSE, &t);
        free(input);
        ck_assert_status(verify(v, us_xstrndup(t.data, t.len)), US_JWT_UNSUPPORTED_ALG);
    }
    /* The classic unsigned form "header.payload." */
    us_buf_reset(&t);
    us_b64url_encode("{\"alg\":\"none\"}", 14, &t);
    us_buf_putc(&t, '.');
    us_b64url_encode("{\"sub\":\"1\"}", 11, &t);
    us_buf_putc(&t, '.');
    ck_assert_status(verify(v, us_xstrndup(t.data, t.len)), US_JWT_MALFORMED);
    us_buf_free(&t);
    us_jwt_verifier_free(v);
}
END_TEST

/* The attack: sign HS256 with the RSA public key's PEM as the HMAC secret, hoping the
 * verifier feeds "the key" to whichever algorithm the header names. */
START_TEST(test_algorithm_confusion)
{
    const char *claims = "{\"sub\":\"admin\"}";
    char *hs_rsa =
        token_raw("HS256", "{\"alg\":\"HS256\"}", claims, rsa_pem, strlen(rsa_pem), NULL, SIG_JOSE);
    char *hs_ec = token_raw("HS256", "{\"alg\":\"HS256\"}", claims, p256_pem, strlen(p256_pem),
                            NULL, SIG_JOSE);
    /* Only public keys configured: no HMAC key exists to check against. */
    us_jwt_options o = {.rsa_public_pem = rsa_pem, .ecdsa_public_pem = p256_pem};
    us_jwt_verifier *v = verifier(&o);
    ck_assert_status(verify(v, us_xstrdup(hs_rsa)), US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify(v, us_xstrdup(hs_ec)), US_JWT_UNSUPPORTED_ALG);
    us_jwt_verifier_free(v);
    /* With an HMAC secret too, the HMAC is checked with that secret only. */
    us_jwt_options o2 = {.hmac_secret = "real-secret",
                         .hmac_secret_len = 11,
                         .rsa_public_pem = rsa_pem,
                         .ecdsa_public_pem = p256_pem};
    v = verifier(&o2);
    ck_assert_status(verify(v, hs_rsa), US_JWT_BAD_SIGNATURE);
    ck_assert_status(verify(v, hs_ec), US_JWT_BAD_SIGNATURE);
    us_jwt_verifier_free(v);

    /* The other direction and across curves: the key type follows alg strictly. */
    v = hs_verifier("secret");
    ck_assert_status(verify(v, pk_token("RS256", rsa_key, claims)), US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify(v, pk_token("ES256", p256_key, claims)), US_JWT_UNSUPPORTED_ALG);
    us_jwt_verifier_free(v);
    us_jwt_options o3 = {.ecdsa_public_pem = p256_pem};
    v = verifier(&o3);
    ck_assert_status(verify(v, pk_token("ES384", p384_key, claims)), US_JWT_UNSUPPORTED_ALG);
    /* An ES256 signature over the right header but labelled ES384. */
    ck_assert_status(
        verify(v, token_raw("ES256", "{\"alg\":\"ES384\"}", claims, NULL, 0, p256_key, SIG_JOSE)),
        US_JWT_UNSUPPORTED_ALG);
    /* OpenSSL's DER signature is not the JWS form. */
    ck_assert_status(
        verify(v, token_raw("ES256", "{\"alg\":\"ES256\"}", claims, NULL, 0, p256_key, SIG_DER)),
        US_JWT_BAD_SIGNATURE);
    us_jwt_verifier_free(v);
    us_jwt_options o4 = {.rsa_public_pem = rsa_pem};
    v = verifier(&o4);
    ck_assert_status(
        verify(v, token_raw("RS256", "{\"alg\":\"RS384\"}", claims, NULL, 0, rsa_key, SIG_JOSE)),
        US_JWT_BAD_SIGNATURE);
    us_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_exp_nbf)
{
    us_jwt_verifier *v = hs_verifier("k");
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"exp\":%lld}", NOW)),
                     US_JWT_EXPIRED);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"exp\":%lld}", NOW - 3600)),
                     US_JWT_EXPIRED);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"exp\":%lld}", NOW + 1)),
                     US_JWT_OK);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"exp\":%lld.5}", NOW)),
                     US_JWT_OK);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"exp\":null}")), US_JWT_OK);
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"exp\":\"%lld\"}", NOW + 60)),
        US_JWT_BAD_CLAIMS);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"nbf\":%lld}", NOW + 1)),
                     US_JWT_NOT_YET_VALID);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"nbf\":%lld}", NOW)),
                     US_JWT_OK);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"nbf\":true}")),
                     US_JWT_BAD_CLAIMS);
    /* The signature is checked before the time: a forged expired token is a forgery. */
    ck_assert_status(verify(v, hs_token("HS256", "x", "{\"sub\":\"1\",\"exp\":1}")),
                     US_JWT_BAD_SIGNATURE);
    us_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_audience_issuer)
{
    us_jwt_options o = {.hmac_secret = "k",
                        .hmac_secret_len = 1,
                        .audience = "chat",
                        .issuer = "https://auth.example"};
    us_jwt_verifier *v = verifier(&o);
    const char *iss = "\"iss\":\"https://auth.example\"";
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"chat\",%s}", iss)),
                     US_JWT_OK);
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":[\"x\",\"chat\"],%s}", iss)),
        US_JWT_OK);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"chat2\",%s}", iss)),
                     US_JWT_BAD_AUDIENCE);
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":[\"CHAT\"],%s}", iss)),
        US_JWT_BAD_AUDIENCE);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",%s}", iss)),
                     US_JWT_BAD_AUDIENCE);
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":[\"chat\",1],%s}", iss)),
        US_JWT_BAD_CLAIMS);
    ck_assert_status(
        verify(v,
               hs_token("HS256", "k",
                        "{\"sub\":\"1\",\"aud\":\"chat\",\"iss\":\"https://auth.example.evil\"}")),
        US_JWT_BAD_ISSUER);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"chat\"}")),
                     US_JWT_BAD_ISSUER);
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"chat\",\"iss\":7}")),
        US_JWT_BAD_CLAIMS);
    /* aud/iss come before the time: "expired" means "refresh it and it will work". */
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"x\",%s,\"exp\":1}", iss)),
        US_JWT_BAD_AUDIENCE);
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"chat\",%s,\"exp\":1}", iss)),
        US_JWT_EXPIRED);
    us_jwt_verifier_free(v);
    /* Not configured: not checked. */
    v = hs_verifier("k");
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"any\",\"iss\":\"any\"}")),
        US_JWT_OK);
    us_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_audience_issuer_regex)
{
    us_jwt_options o = {.hmac_secret = "k",
                        .hmac_secret_len = 1,
                        .audience_regex = "chat-(eu|us)",
                        .issuer_regex = "https://[a-z]+\\.auth\\.example"};
    us_jwt_verifier *v = verifier(&o);
    const char *iss = "\"iss\":\"https://tenant.auth.example\"";
    const char *good[] = {"\"chat-eu\"", "\"chat-us\"", "[\"x\",\"chat-us\"]", "[\"chat-eu\"]"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_status(
            verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":%s,%s}", good[i], iss)),
            US_JWT_OK);
    /* The whole value must match: no prefix, no suffix, no other case. */
    const char *bad[] = {"\"chat-eu2\"",  "\"xchat-eu\"", "\"chat-\"",         "\"CHAT-EU\"",
                         "[\"x\",\"y\"]", "[]",           "\"chat-eu\\u0000\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_status(
            verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":%s,%s}", bad[i], iss)),
            US_JWT_BAD_AUDIENCE);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",%s}", iss)),
                     US_JWT_BAD_AUDIENCE);
    ck_assert_status(
        verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":[\"chat-eu\",2],%s}", iss)),
        US_JWT_BAD_CLAIMS);
    const char *bad_iss[] = {"https://tenant.auth.example/", "https://auth.example",
                             "xhttps://tenant.auth.example", "https://a.auth.example.evil",
                             "https://a.b.auth.example"};
    for (size_t i = 0; i < sizeof bad_iss / sizeof bad_iss[0]; i++)
        ck_assert_status(
            verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"chat-eu\",\"iss\":\"%s\"}",
                               bad_iss[i])),
            US_JWT_BAD_ISSUER);
    /* A missing iss never matches, even a pattern that matches the empty string. */
    us_jwt_verifier_free(v);
    us_jwt_options any = {.hmac_secret = "k", .hmac_secret_len = 1, .issuer_regex = ".*"};
    v = verifier(&any);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\"}")), US_JWT_BAD_ISSUER);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"iss\":\"\"}")), US_JWT_OK);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"iss\":[\"a\"]}")),
                     US_JWT_BAD_CLAIMS);
    us_jwt_verifier_free(v);
    /* Anchors written in the pattern change nothing. */
    us_jwt_options anchored = {.hmac_secret = "k", .hmac_secret_len = 1, .audience_regex = "^a|b$"};
    v = verifier(&anchored);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"a\"}")), US_JWT_OK);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"b\"}")), US_JWT_OK);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"aud\":\"ab\"}")),
                     US_JWT_BAD_AUDIENCE);
    us_jwt_verifier_free(v);
}
END_TEST

/* ---- keys from components and the key lookup (JWKS) ---- */

static us_buf bn_param(EVP_PKEY *k, const char *name)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(k, name, &bn) != 1)
        abort();
    us_buf b = US_BUF_INIT;
    us_buf_reserve(&b, (size_t)BN_num_bytes(bn) + 1);
    b.len = (size_t)BN_bn2bin(bn, (unsigned char *)b.data);
    BN_free(bn);
    return b;
}

/* EC coordinate at its full width. */
static us_buf ec_coord(EVP_PKEY *k, const char *name, size_t width)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(k, name, &bn) != 1)
        abort();
    us_buf b = US_BUF_INIT;
    us_buf_reserve(&b, width + 1);
    if (BN_bn2binpad(bn, (unsigned char *)b.data, (int)width) != (int)width)
        abort();
    b.len = width;
    BN_free(bn);
    return b;
}

static us_jwt_key *rsa_component_key(EVP_PKEY *k, const char *alg)
{
    us_buf n = bn_param(k, OSSL_PKEY_PARAM_RSA_N), e = bn_param(k, OSSL_PKEY_PARAM_RSA_E);
    char err[128] = "";
    us_jwt_key *key = us_jwt_key_rsa((unsigned char *)n.data, n.len, (unsigned char *)e.data, e.len,
                                     alg, err, sizeof err);
    ck_assert_msg(key != NULL, "%s", err);
    us_buf_free(&n);
    us_buf_free(&e);
    return key;
}

static us_jwt_key *ec_component_key(EVP_PKEY *k, const char *crv, size_t width, const char *alg)
{
    us_buf x = ec_coord(k, OSSL_PKEY_PARAM_EC_PUB_X, width);
    us_buf y = ec_coord(k, OSSL_PKEY_PARAM_EC_PUB_Y, width);
    char err[128] = "";
    us_jwt_key *key = us_jwt_key_ec(crv, (unsigned char *)x.data, x.len, (unsigned char *)y.data,
                                    y.len, alg, err, sizeof err);
    ck_assert_msg(key != NULL, "%s", err);
    us_buf_free(&x);
    us_buf_free(&y);
    return key;
}

/* A lookup over a fixed table, counting its calls. */
typedef struct {
    const char *kid[4];
    const us_jwt_key *key[4];
    int calls;
    int64_t last_now;
} table_lookup;

static const us_jwt_key *lookup_table(void *ctx, const char *kid, size_t kid_len, int64_t now_s)
{
    table_lookup *t = ctx;
    t->calls++;
    t->last_now = now_s;
    for (int i = 0; i < 4 && t->kid[i]; i++)
        if (strlen(t->kid[i]) == kid_len && memcmp(t->kid[i], kid, kid_len) == 0)
            return t->key[i];
    return NULL;
}

static char *kid_token(const char *alg, EVP_PKEY *key, const char *kid)
{
    char header[128];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    return token_raw(alg, header, "{\"sub\":\"42\"}", "k", 1, key, SIG_JOSE);
}

START_TEST(test_key_lookup)
{
    us_jwt_key *rsa = rsa_component_key(rsa_key, NULL);
    us_jwt_key *rsa384 = rsa_component_key(rsa_key, "RS384");
    us_jwt_key *p256 = ec_component_key(p256_key, "P-256", 32, NULL);
    us_jwt_key *p521 = ec_component_key(p521_key, "P-521", 66, "ES512");
    ck_assert_str_eq(us_jwt_key_alg(rsa384), "RS384");
    ck_assert_str_eq(us_jwt_key_alg(rsa), "");
    table_lookup t = {.kid = {"r", "r384", "p256", "p521"}, .key = {rsa, rsa384, p256, p521}};
    /* Static keys beside a lookup are not used (Centrifugo: JWKS alone). */
    us_jwt_options o = {.hmac_secret = "k",
                        .hmac_secret_len = 1,
                        .rsa_public_pem = rsa_pem,
                        .key_lookup = lookup_table,
                        .key_lookup_ctx = &t};
    us_jwt_verifier *v = verifier(&o);
    char *user = NULL;
    ck_assert_status(verify_at(v, kid_token("RS256", rsa_key, "r"), NOW, &user), US_JWT_OK);
    ck_assert_str_eq(user, "42");
    free(user);
    ck_assert_int_eq(t.last_now, NOW);
    ck_assert_status(verify(v, kid_token("RS512", rsa_key, "r")), US_JWT_OK);
    ck_assert_status(verify(v, kid_token("ES256", p256_key, "p256")), US_JWT_OK);
    ck_assert_status(verify(v, kid_token("ES512", p521_key, "p521")), US_JWT_OK);
    ck_assert_status(verify(v, kid_token("RS384", rsa_key, "r384")), US_JWT_OK);
    /* The key's alg, type and curve must be the token's. */
    ck_assert_status(verify(v, kid_token("RS256", rsa_key, "r384")), US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify(v, kid_token("ES256", p256_key, "r")), US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify(v, kid_token("ES384", p384_key, "p256")), US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify(v, kid_token("RS256", rsa_key, "p256")), US_JWT_UNSUPPORTED_ALG);
    /* Signed by another key than the kid names. */
    ck_assert_status(verify(v, kid_token("ES256", k256_key, "p256")), US_JWT_BAD_SIGNATURE);
    us_jwt_key *other = ec_component_key(p384_key, "P-384", 48, NULL);
    t.key[2] = other; /* "p256" now names a P-384 key */
    ck_assert_status(verify(v, kid_token("ES256", p256_key, "p256")), US_JWT_UNSUPPORTED_ALG);
    t.key[2] = p256;
    /* Unknown or missing kid. */
    ck_assert_status(verify(v, kid_token("RS256", rsa_key, "nope")), US_JWT_UNKNOWN_KEY);
    ck_assert_status(verify(v, kid_token("RS256", rsa_key, "")), US_JWT_UNKNOWN_KEY);
    ck_assert_status(verify(v, pk_token("RS256", rsa_key, "{\"sub\":\"1\"}")), US_JWT_UNKNOWN_KEY);
    char *num_kid = token_raw("RS256", "{\"alg\":\"RS256\",\"kid\":7}", "{\"sub\":\"1\"}", NULL, 0,
                              rsa_key, SIG_JOSE);
    ck_assert_status(verify(v, num_kid), US_JWT_UNKNOWN_KEY);
    /* HMAC tokens, none and unknown algorithms never reach the lookup (no fetch). */
    int calls = t.calls;
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\"}")), US_JWT_UNSUPPORTED_ALG);
    char *hs_kid = token_raw("HS256", "{\"alg\":\"HS256\",\"kid\":\"r\"}", "{\"sub\":\"1\"}", "k",
                             1, NULL, SIG_JOSE);
    ck_assert_status(verify(v, hs_kid), US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify(v, token_raw("HS256", "{\"alg\":\"none\",\"kid\":\"r\"}",
                                         "{\"sub\":\"1\"}", "k", 1, NULL, SIG_JOSE)),
                     US_JWT_UNSUPPORTED_ALG);
    ck_assert_int_eq(t.calls, calls);
    us_jwt_verifier_free(v);
    us_jwt_key *keys[] = {rsa, rsa384, p256, p521, other};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        us_jwt_key_free(keys[i]);
}
END_TEST

START_TEST(test_key_components_refused)
{
    char err[128];
    us_buf n = bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_N);
    const unsigned char e3[] = {3}, e2[] = {2}, e1[] = {1}, e_big[] = {1, 0, 0, 0, 1};
    const unsigned char e65537[] = {0, 1, 0, 1}; /* a leading zero is harmless */
    us_jwt_key *k =
        us_jwt_key_rsa((unsigned char *)n.data, n.len, e65537, sizeof e65537, "", err, sizeof err);
    ck_assert_ptr_nonnull(k);
    us_jwt_key_free(k);
    k = us_jwt_key_rsa((unsigned char *)n.data, n.len, e3, 1, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(k);
    us_jwt_key_free(k);
    ck_assert_ptr_null(
        us_jwt_key_rsa((unsigned char *)n.data, n.len, e2, 1, NULL, err, sizeof err));
    ck_assert_ptr_null(
        us_jwt_key_rsa((unsigned char *)n.data, n.len, e1, 1, NULL, err, sizeof err));
    ck_assert_ptr_null(
        us_jwt_key_rsa((unsigned char *)n.data, n.len, e_big, sizeof e_big, NULL, err, sizeof err));
    ck_assert_ptr_null(
        us_jwt_key_rsa((unsigned char *)n.data, n.len, e3, 0, NULL, err, sizeof err));
    /* 1024 bits: too small; 8200 bits: too big. */
    ck_assert_ptr_null(us_jwt_key_rsa((unsigned char *)n.data, 128, e3, 1, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "1024 bits"));
    unsigned char big[1025];
    memset(big, 0xc5, sizeof big);
    ck_assert_ptr_null(us_jwt_key_rsa(big, sizeof big, e3, 1, NULL, err, sizeof err));
    /* alg of another family or unknown. */
    ck_assert_ptr_null(
        us_jwt_key_rsa((unsigned char *)n.data, n.len, e3, 1, "ES256", err, sizeof err));
    ck_assert_ptr_null(
        us_jwt_key_rsa((unsigned char *)n.data, n.len, e3, 1, "PS256", err, sizeof err));
    ck_assert_ptr_null(
        us_jwt_key_rsa((unsigned char *)n.data, n.len, e3, 1, "HS256", err, sizeof err));
    us_buf_free(&n);

    us_buf x = ec_coord(p256_key, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    us_buf y = ec_coord(p256_key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    const unsigned char *xp = (unsigned char *)x.data, *yp = (unsigned char *)y.data;
    k = us_jwt_key_ec("P-256", xp, 32, yp, 32, "ES256", err, sizeof err);
    ck_assert_ptr_nonnull(k);
    us_jwt_key_free(k);
    ck_assert_ptr_null(us_jwt_key_ec("P-256", xp, 32, yp, 32, "ES384", err, sizeof err));
    ck_assert_ptr_null(us_jwt_key_ec("P-256", xp, 32, yp, 32, "RS256", err, sizeof err));
    ck_assert_ptr_null(us_jwt_key_ec("P-384", xp, 32, yp, 32, NULL, err, sizeof err));
    ck_assert_ptr_null(us_jwt_key_ec("secp256k1", xp, 32, yp, 32, NULL, err, sizeof err));
    ck_assert_ptr_null(us_jwt_key_ec("p-256", xp, 32, yp, 32, NULL, err, sizeof err));
    ck_assert_ptr_null(us_jwt_key_ec(NULL, xp, 32, yp, 32, NULL, err, sizeof err));
    ck_assert_ptr_null(us_jwt_key_ec("P-256", xp, 31, yp, 32, NULL, err, sizeof err));
    ck_assert_ptr_null(us_jwt_key_ec("P-256", xp, 32, yp, 33, NULL, err, sizeof err));
    /* A point off the curve. */
    unsigned char bent[32];
    memcpy(bent, yp, 32);
    bent[31] ^= 1;
    ck_assert_ptr_null(us_jwt_key_ec("P-256", xp, 32, bent, 32, NULL, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "not on curve"));
    us_buf_free(&x);
    us_buf_free(&y);
    us_jwt_key_free(NULL);
}
END_TEST

START_TEST(test_user_claims)
{
    us_jwt_verifier *v = hs_verifier("k");
    char *user = NULL;
    ck_assert_status(verify_at(v, hs_token("HS256", "k", "{\"exp\":%lld}", NOW + 5), NOW, &user),
                     US_JWT_OK);
    ck_assert_str_eq(user, "");
    free(user);
    ck_assert_status(verify_at(v, hs_token("HS256", "k", "{\"sub\":\"\"}"), NOW, &user), US_JWT_OK);
    ck_assert_str_eq(user, "");
    free(user);
    ck_assert_status(
        verify_at(v, hs_token("HS256", "k", "{\"sub\":\"\\u00e9l\\u00e8ve\"}"), NOW, &user),
        US_JWT_OK);
    ck_assert_str_eq(user, "\xc3\xa9l\xc3\xa8ve");
    free(user);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":42}")), US_JWT_BAD_CLAIMS);
    us_jwt_verifier_free(v);

    us_jwt_options o = {.hmac_secret = "k", .hmac_secret_len = 1, .user_id_claim = "uid"};
    v = verifier(&o);
    ck_assert_status(
        verify_at(v, hs_token("HS256", "k", "{\"sub\":\"s\",\"uid\":\"u7\"}"), NOW, &user),
        US_JWT_OK);
    ck_assert_str_eq(user, "u7");
    free(user);
    ck_assert_status(
        verify_at(v, hs_token("HS256", "k", "{\"sub\":\"s\",\"uid\":123456789012}"), NOW, &user),
        US_JWT_OK);
    ck_assert_str_eq(user, "123456789012");
    free(user);
    ck_assert_status(verify_at(v, hs_token("HS256", "k", "{\"sub\":\"s\"}"), NOW, &user),
                     US_JWT_OK);
    ck_assert_str_eq(user, ""); /* sub is not a fallback */
    free(user);
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"uid\":{\"a\":1}}")), US_JWT_BAD_CLAIMS);
    us_jwt_verifier_free(v);

    us_jwt_options o2 = {.hmac_secret = "k", .hmac_secret_len = 1, .user_id_claim = "data.user.id"};
    v = verifier(&o2);
    ck_assert_status(
        verify_at(v, hs_token("HS256", "k", "{\"data\":{\"user\":{\"id\":\"n1\"}}}"), NOW, &user),
        US_JWT_OK);
    ck_assert_str_eq(user, "n1");
    free(user);
    ck_assert_status(
        verify_at(v, hs_token("HS256", "k", "{\"data\":{\"user\":\"flat\"}}"), NOW, &user),
        US_JWT_OK);
    ck_assert_str_eq(user, "");
    free(user);
    us_jwt_verifier_free(v);
}
END_TEST

START_TEST(test_malformed)
{
    us_jwt_verifier *v = hs_verifier("k");
    static const char *tokens[] = {"", ".", "..", "a.b", "a.b.c.d", "abc", "e30.e30.", "e30..c2ln"};
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++)
        ck_assert_status(verify(v, us_xstrdup(tokens[i])), US_JWT_MALFORMED);

    /* Signed correctly, but the JSON is not one strict object. */
    static const char *claims[] = {
        "[\"sub\"]",   "\"sub\"",        "{\"sub\":\"1\"} x",  "{\"sub\":\"1\",}",
        "{'sub':'1'}", "{\"sub\":\"1\"", "{\"sub\":\"\xff\"}", "",
    };
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++)
        ck_assert_status(
            verify(v, token_raw("HS256", "{\"alg\":\"HS256\"}", claims[i], "k", 1, NULL, SIG_JOSE)),
            US_JWT_MALFORMED);
    ck_assert_status(
        verify(v, token_raw("HS256", "{\"alg\":\"HS256\"", "{}", "k", 1, NULL, SIG_JOSE)),
        US_JWT_MALFORMED);
    /* A NUL inside the decoded JSON text. */
    us_buf t = US_BUF_INIT;
    us_b64url_encode("{\"alg\":\"HS256\"}", 15, &t);
    us_buf_putc(&t, '.');
    us_b64url_encode("{\"sub\":\"1\"}\0 ", 13, &t);
    char *input = us_xstrndup(t.data, t.len);
    us_buf_putc(&t, '.');
    sign("HS256", input, "k", 1, NULL, SIG_JOSE, &t);
    free(input);
    ck_assert_status(verify(v, us_buf_steal(&t, NULL)), US_JWT_MALFORMED);

    /* Padding or the standard alphabet in an otherwise good token. */
    char *good = hs_token("HS256", "k", "{\"sub\":\"1\"}");
    char *padded = malloc(strlen(good) + 3);
    sprintf(padded, "%s==", good);
    ck_assert_status(verify(v, padded), US_JWT_MALFORMED);
    char *plus = us_xstrdup(good);
    plus[1] = '+';
    ck_assert_status(verify(v, plus), US_JWT_MALFORMED);
    ck_assert_status(verify(v, good), US_JWT_OK);

    /* Longer than US_JWT_MAX_TOKEN_BYTES, even if correctly signed. */
    char big[US_JWT_MAX_TOKEN_BYTES];
    memset(big, 'a', sizeof big);
    big[sizeof big - 1] = '\0';
    ck_assert_status(verify(v, hs_token("HS256", "k", "{\"sub\":\"1\",\"pad\":\"%s\"}", big)),
                     US_JWT_MALFORMED);
    us_jwt_verifier_free(v);
}
END_TEST

/* ---- configuration ---- */

static void expect_create_error(const us_jwt_options *o, const char *option)
{
    char err[256] = "";
    us_jwt_verifier *v = us_jwt_verifier_create(o, err, sizeof err);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(err, option) != NULL, "error %s does not name %s", err, option);
    ck_assert_ptr_null(strstr(err, "BEGIN"));
    ck_assert_ptr_null(strstr(err, "MII"));
}

START_TEST(test_bad_keys)
{
    us_jwt_options o = {.rsa_public_pem = "not a pem"};
    expect_create_error(&o, "client.token.rsa_public_key");
    o.rsa_public_pem = p256_pem;
    expect_create_error(&o, "client.token.rsa_public_key");
    us_jwt_options e = {.ecdsa_public_pem = rsa_pem};
    expect_create_error(&e, "client.token.ecdsa_public_key");
    e.ecdsa_public_pem = k256_pem;
    expect_create_error(&e, "client.token.ecdsa_public_key");
    /* A truncated PEM. */
    char *cut = us_xstrndup(rsa_pem, strlen(rsa_pem) / 2);
    us_jwt_options c = {.rsa_public_pem = cut};
    expect_create_error(&c, "client.token.rsa_public_key");
    free(cut);
    us_jwt_options u = {.user_id_claim = "a..b"};
    expect_create_error(&u, "client.token.user_id_claim");
    /* Both forms of one check: refused, as Centrifugo refuses them. */
    us_jwt_options a = {.audience = "chat", .audience_regex = "chat.*"};
    expect_create_error(&a, "client.token.audience_regex");
    us_jwt_options i = {.issuer = "x", .issuer_regex = "x"};
    expect_create_error(&i, "client.token.issuer_regex");
    us_jwt_options r = {.audience_regex = "a(b"};
    expect_create_error(&r, "client.token.audience_regex");
    us_jwt_options q = {.issuer_regex = "[z-a]"};
    expect_create_error(&q, "client.token.issuer_regex");
}
END_TEST

START_TEST(test_no_keys)
{
    us_jwt_options o = {0};
    us_jwt_verifier *v = verifier(&o);
    ck_assert_status(verify(v, hs_token("HS256", "", "{\"sub\":\"1\"}")), US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify(v, pk_token("RS256", rsa_key, "{\"sub\":\"1\"}")),
                     US_JWT_UNSUPPORTED_ALG);
    us_jwt_verifier_free(v);
}
END_TEST

static Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("base64url");
    tcase_add_test(tc, test_b64url_round_trip);
    tcase_add_test(tc, test_b64url_alphabet);
    tcase_add_test(tc, test_b64url_strict);
    suite_add_tcase(s, tc);

    tc = tcase_create("valid");
    tcase_add_test(tc, test_hs_valid);
    tcase_add_test(tc, test_rs_valid);
    tcase_add_test(tc, test_rs_certificate);
    tcase_add_test(tc, test_es_valid);
    tcase_add_test(tc, test_all_keys_together);
    tcase_add_test(tc, test_rfc7515_a1);
    suite_add_tcase(s, tc);

    tc = tcase_create("rejected");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_wrong_signature);
    tcase_add_test(tc, test_alg_none_and_unknown);
    tcase_add_test(tc, test_algorithm_confusion);
    tcase_add_test(tc, test_exp_nbf);
    tcase_add_test(tc, test_audience_issuer);
    tcase_add_test(tc, test_audience_issuer_regex);
    tcase_add_test(tc, test_key_lookup);
    tcase_add_test(tc, test_key_components_refused);
    tcase_add_test(tc, test_user_claims);
    tcase_add_test(tc, test_malformed);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_test(tc, test_bad_keys);
    tcase_add_test(tc, test_no_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Generated once and inherited by every forked test. */
    rsa_key = us_test_gen_key(EVP_PKEY_RSA, 2048);
    p256_key = us_test_gen_key(EVP_PKEY_EC, NID_X9_62_prime256v1);
    p384_key = us_test_gen_key(EVP_PKEY_EC, NID_secp384r1);
    p521_key = us_test_gen_key(EVP_PKEY_EC, NID_secp521r1);
    k256_key = us_test_gen_key(EVP_PKEY_EC, NID_secp256k1);
    rsa_pem = public_pem(rsa_key);
    rsa_cert_pem = cert_pem(rsa_key);
    p256_pem = public_pem(p256_key);
    p384_pem = public_pem(p384_key);
    p521_pem = public_pem(p521_key);
    k256_pem = public_pem(k256_key);

    int status = us_test_run(jwt_suite());

    EVP_PKEY *keys[] = {rsa_key, p256_key, p384_key, p521_key, k256_key};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
    char *pems[] = {rsa_pem, rsa_cert_pem, p256_pem, p384_pem, p521_pem, k256_pem};
    for (size_t i = 0; i < sizeof pems / sizeof pems[0]; i++)
        free(pems[i]);
    return status;
}
