/* libFuzzer target: the client endpoints' JWT verification (us_jwt_verify) with an HMAC,
 * an RSA and an ECDSA (P-256) key, and the strict base64url codec under it.
 *
 * Input: one flags byte, then the rest.
 *   flags bit 0     verifier: 0 = keys only; 1 = also audience, issuer and a nested
 *                   user_id_claim ("data.user_id")
 *         bit 1     0 = the rest is the token, as it came;
 *                   1 = the rest is "<header JSON>\n<payload JSON>", signed here with the
 *                   HMAC key (HS256/384/512 by bits 2-3), so that mutations reach the
 *                   header and claim checks behind a good signature
 * Checked besides the sanitizers: a status in range; OK only with a NUL-terminated user;
 * anything but OK leaves the user empty; base64url decoding is strict, so a decoded string
 * encodes back to exactly itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ustatus/jwt.h"

static const char rsa_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA8B5VwJcY3w5gJ4DTWDeR\n"
                              "6Bwy20wWpqbiUNaiJ4CPUTj3gvd4gFSGtelG4tcDoxRPyNIX9a1dEGIqQzc1FhdI\n"
                              "bGo742aIZRebwETIgzkK5Uyksd1ZN+F21+JKOoGX2lLGOMfuk6192aK9W0N0qG8r\n"
                              "WiR3NyeDQ8+MlKBolATGblFt0yjrVAXsE846HXaB4A1fmVj398KJishjV0I7PZzD\n"
                              "+K1z8T+NHW+GoLba4BtPbD/7o/pWkZlZ3cK8MMs1wrHI827xdbLjh+ro598oc3LJ\n"
                              "gdRDPgb7VQiFToaczsdVMPXyWKOVknFVnfZLMY2qziUqVwPfZsSHToNLbg3nKmqu\n"
                              "ZwIDAQAB\n"
                              "-----END PUBLIC KEY-----\n";

static const char ec_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                             "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbMTdrYN8rTsx3WIcHjwtiV/QJPDj\n"
                             "V0JolTZ7ZS+HoBo/jKCGmRuuAj/4WacKg9PRHDE/VaK8CpkI1s7NAnexxA==\n"
                             "-----END PUBLIC KEY-----\n";

static us_jwt_verifier *verifiers[2];
static us_buf user, token, dec, enc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256] = "";
    us_jwt_options o = {
        .hmac_secret = FUZZ_HMAC_SECRET,
        .hmac_secret_len = strlen(FUZZ_HMAC_SECRET),
        .rsa_public_pem = rsa_pem,
        .ecdsa_public_pem = ec_pem,
    };
    verifiers[0] = us_jwt_verifier_create(&o, err, sizeof err);
    o.audience = "aud-1";
    o.issuer = "iss-1";
    o.user_id_claim = "data.user_id";
    verifiers[1] = us_jwt_verifier_create(&o, err, sizeof err);
    if (!verifiers[0] || !verifiers[1]) {
        fprintf(stderr, "fuzz_jwt: verifier: %s\n", err);
        abort();
    }
    return 0;
}

static void check_b64url(const char *s, size_t n)
{
    us_buf_reset(&dec);
    us_buf_reset(&enc);
    if (us_b64url_decode(s, n, &dec) == 0) {
        us_b64url_encode(dec.data, dec.len, &enc);
        if (enc.len != n || memcmp(enc.data, s, n) != 0)
            abort(); /* two spellings of the same bytes were accepted */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const us_jwt_verifier *v = verifiers[flags & 1];
    data++;
    size--;

    us_buf_reset(&token);
    if (flags & 2) {
        static const int bits[] = {256, 384, 512, 256};
        const uint8_t *nl = memchr(data, '\n', size);
        size_t hlen = nl ? (size_t)(nl - data) : size;
        const char *payload = nl ? (const char *)nl + 1 : "";
        size_t plen = nl ? size - hlen - 1 : 0;
        fuzz_sign_hs(&token, (const char *)data, hlen, payload, plen, bits[(flags >> 2) & 3],
                     FUZZ_HMAC_SECRET, strlen(FUZZ_HMAC_SECRET));
    } else {
        us_buf_append(&token, data, size);
        check_b64url((const char *)data, size);
    }

    /* An exact-size copy: a read past the token's end is an ASan report. */
    char *t = fuzz_dup_exact((const uint8_t *)(token.data ? token.data : ""), token.len);
    us_buf_reset(&user);
    us_buf_puts(&user, "stale");
    us_jwt_status st = us_jwt_verify(v, t, token.len, FUZZ_NOW_S, &user);
    free(t);

    if ((int)st < (int)US_JWT_OK || (int)st > (int)US_JWT_UNKNOWN_KEY)
        abort();
    if (!us_jwt_status_text(st))
        abort();
    if (st == US_JWT_OK) {
        if (user.len && (!user.data || user.data[user.len] != '\0'))
            abort();
    } else if (user.len != 0) {
        abort(); /* a rejected token left a user behind */
    }
    return 0;
}
