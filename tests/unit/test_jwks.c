/* Unit tests for JWKS documents and their cache (src/jwks.c).
 *
 * Keys are generated when the program starts (RSA 2048, EC P-256/P-384/P-521, and
 * secp256k1 as a curve JOSE does not allow); JWKs are written from their public
 * components and tokens are signed here with libcrypto's signing side. The cache is
 * tested against a real HTTP server on loopback (a thread of the test, one connection at
 * a time, whose answer the test changes), with the current time as a parameter, so the
 * once-a-minute and the maximum-age rules are tested with a moving clock and no sleep. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "fixtures.h"
#include "ustatus/buf.h"
#include "ustatus/jwks.h"
#include "ustatus/jwt.h"
#include "ustatus/mem.h"

#define T0 1700000000LL

static EVP_PKEY *rsa_key, *rsa2_key, *p256_key, *p384_key, *p521_key, *k256_key;

/* ---- keys, JWKs and tokens ---- */

/* The base64url of a big-number parameter, at width bytes (0 = its own length). */
static void put_param(us_buf *out, EVP_PKEY *k, const char *name, int width)
{
    BIGNUM *bn = NULL;
    unsigned char raw[1100];
    if (EVP_PKEY_get_bn_param(k, name, &bn) != 1)
        abort();
    int n = width ? BN_bn2binpad(bn, raw, width) : BN_bn2bin(bn, raw);
    if (n <= 0)
        abort();
    BN_free(bn);
    us_b64url_encode(raw, (size_t)n, out);
}

/* extra: more members, written as they are (with a leading comma), or "". */
static char *jwk_rsa(const char *kid, EVP_PKEY *k, const char *extra)
{
    us_buf b = US_BUF_INIT;
    us_buf_printf(&b, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"", kid);
    put_param(&b, k, OSSL_PKEY_PARAM_RSA_N, 0);
    us_buf_puts(&b, "\",\"e\":\"");
    put_param(&b, k, OSSL_PKEY_PARAM_RSA_E, 0);
    us_buf_printf(&b, "\"%s}", extra);
    return us_buf_steal(&b, NULL);
}

static char *jwk_ec(const char *kid, EVP_PKEY *k, const char *crv, int width, const char *extra)
{
    us_buf b = US_BUF_INIT;
    us_buf_printf(&b, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"%s\",\"x\":\"", kid, crv);
    put_param(&b, k, OSSL_PKEY_PARAM_EC_PUB_X, width);
    us_buf_puts(&b, "\",\"y\":\"");
    put_param(&b, k, OSSL_PKEY_PARAM_EC_PUB_Y, width);
    us_buf_printf(&b, "\"%s}", extra);
    return us_buf_steal(&b, NULL);
}

/* {"keys":[a, b, ...]} from JWK texts (NULL-terminated list); frees them. */
static char *doc_of(char *first, ...)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"keys\":[");
    va_list ap;
    va_start(ap, first);
    for (char *k = first; k; k = va_arg(ap, char *)) {
        if (k != first)
            us_buf_putc(&b, ',');
        us_buf_puts(&b, k);
        free(k);
    }
    va_end(ap);
    us_buf_puts(&b, "]}");
    return us_buf_steal(&b, NULL);
}

static const EVP_MD *md_for(const char *alg)
{
    if (strstr(alg, "256"))
        return EVP_sha256();
    if (strstr(alg, "384"))
        return EVP_sha384();
    return EVP_sha512();
}

/* A token {"alg":alg,"kid":kid}.{"sub":"42"} signed by key (ECDSA as JWS r||s). */
static char *token(const char *alg, const char *kid, EVP_PKEY *key)
{
    us_buf t = US_BUF_INIT;
    char header[160];
    snprintf(header, sizeof header, "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    us_b64url_encode(header, strlen(header), &t);
    us_buf_putc(&t, '.');
    us_b64url_encode("{\"sub\":\"42\"}", 12, &t);
    char *input = us_xstrndup(t.data, t.len);
    unsigned char sig[1024];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, md_for(alg), NULL, key) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (unsigned char *)input, strlen(input)) != 1)
        abort();
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'E') {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        int half = (EVP_PKEY_bits(key) + 7) / 8;
        unsigned char raw[264];
        if (!es || BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half) != half ||
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half) != half)
            abort();
        ECDSA_SIG_free(es);
        memcpy(sig, raw, (size_t)(2 * half));
        sig_len = (size_t)(2 * half);
    }
    us_buf_putc(&t, '.');
    us_b64url_encode(sig, sig_len, &t);
    free(input);
    return us_buf_steal(&t, NULL);
}

static us_jwks_set *parse_ok(const char *doc)
{
    char err[200] = "";
    us_jwks_set *s = us_jwks_set_parse(doc, strlen(doc), err, sizeof err);
    ck_assert_msg(s != NULL, "parse failed: %s", err);
    return s;
}

static void parse_refused(const char *doc, size_t len, const char *why_part)
{
    char err[200] = "";
    us_jwks_set *s = us_jwks_set_parse(doc, len, err, sizeof err);
    ck_assert_msg(s == NULL, "accepted: %.80s", doc);
    ck_assert_msg(strstr(err, why_part) != NULL, "reason \"%s\" lacks \"%s\"", err, why_part);
}

static const us_jwt_key *find(const us_jwks_set *s, const char *kid)
{
    return us_jwks_set_find(s, kid, strlen(kid));
}

static const us_jwt_key *set_lookup(void *set, const char *kid, size_t kid_len, int64_t now_s)
{
    (void)now_s;
    return us_jwks_set_find(set, kid, kid_len);
}

static us_jwt_status verify_with(us_jwt_key_lookup lookup, void *ctx, char *tok, int64_t now_s)
{
    us_jwt_options o = {.key_lookup = lookup, .key_lookup_ctx = ctx};
    char err[128];
    us_jwt_verifier *v = us_jwt_verifier_create(&o, err, sizeof err);
    ck_assert_ptr_nonnull(v);
    us_buf user = US_BUF_INIT;
    us_jwt_status st = us_jwt_verify(v, tok, strlen(tok), now_s, &user);
    if (st == US_JWT_OK)
        ck_assert_str_eq(user.data, "42");
    us_buf_free(&user);
    us_jwt_verifier_free(v);
    free(tok);
    return st;
}

/* ---- parsing ---- */

START_TEST(test_parse_each_key_type)
{
    char *doc = doc_of(jwk_rsa("r", rsa_key, ""), jwk_rsa("r512", rsa2_key, ",\"alg\":\"RS512\""),
                       jwk_ec("p256", p256_key, "P-256", 32, ",\"use\":\"sig\""),
                       jwk_ec("p384", p384_key, "P-384", 48, ",\"alg\":\"ES384\""),
                       jwk_ec("p521", p521_key, "P-521", 66, ",\"x5t\":\"ignored\""), NULL);
    us_jwks_set *s = parse_ok(doc);
    ck_assert_uint_eq(us_jwks_set_count(s), 5);
    ck_assert_uint_eq(us_jwks_set_skipped(s), 0);
    ck_assert_str_eq(us_jwks_set_skip_reason(s), "");
    ck_assert_str_eq(us_jwt_key_alg(find(s, "r512")), "RS512");
    ck_assert_str_eq(us_jwt_key_alg(find(s, "r")), "");
    ck_assert_ptr_null(find(s, "R"));
    ck_assert_ptr_null(find(s, "p25"));
    ck_assert_ptr_null(find(s, ""));
    /* Each key verifies its own tokens, chosen by kid. */
    ck_assert_status(verify_with(set_lookup, s, token("RS256", "r", rsa_key), T0), US_JWT_OK);
    ck_assert_status(verify_with(set_lookup, s, token("RS384", "r", rsa_key), T0), US_JWT_OK);
    ck_assert_status(verify_with(set_lookup, s, token("RS512", "r512", rsa2_key), T0), US_JWT_OK);
    ck_assert_status(verify_with(set_lookup, s, token("ES256", "p256", p256_key), T0), US_JWT_OK);
    ck_assert_status(verify_with(set_lookup, s, token("ES384", "p384", p384_key), T0), US_JWT_OK);
    ck_assert_status(verify_with(set_lookup, s, token("ES512", "p521", p521_key), T0), US_JWT_OK);
    /* The key's alg, its type and its curve must fit the token's alg. */
    ck_assert_status(verify_with(set_lookup, s, token("RS256", "r512", rsa2_key), T0),
                     US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify_with(set_lookup, s, token("ES256", "r", p256_key), T0),
                     US_JWT_UNSUPPORTED_ALG);
    ck_assert_status(verify_with(set_lookup, s, token("ES384", "p256", p384_key), T0),
                     US_JWT_UNSUPPORTED_ALG);
    /* The kid names another key than the one that signed. */
    ck_assert_status(verify_with(set_lookup, s, token("RS256", "r", rsa2_key), T0),
                     US_JWT_BAD_SIGNATURE);
    ck_assert_status(verify_with(set_lookup, s, token("RS256", "nope", rsa_key), T0),
                     US_JWT_UNKNOWN_KEY);
    us_jwks_set_free(s);
    free(doc);
    us_jwks_set_free(NULL);
}
END_TEST

/* Each case is one JWK the set cannot use, next to a good one: it is skipped with a
 * reason, and the good key stays usable (RFC 7517 §5). */
static const struct {
    const char *name;
    const char *jwk; /* "%s" = a good P-256 key's x and y members */
} unusable[] = {
    {"oct", "{\"kty\":\"oct\",\"kid\":\"bad\",\"k\":\"AAAA\"}"},
    {"OKP", "{\"kty\":\"OKP\",\"kid\":\"bad\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}"},
    {"no kty", "{\"kid\":\"bad\",\"crv\":\"P-256\",%s}"},
    {"kty not a string", "{\"kty\":2,\"kid\":\"bad\",\"crv\":\"P-256\",%s}"},
    {"kty lower case", "{\"kty\":\"ec\",\"kid\":\"bad\",\"crv\":\"P-256\",%s}"},
    {"crv secp256k1", "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"secp256k1\",%s}"},
    {"crv P-192", "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-192\",%s}"},
    {"crv of another size", "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-384\",%s}"},
    {"no crv", "{\"kty\":\"EC\",\"kid\":\"bad\",%s}"},
    {"no x", "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"y\":\"AAAA\"}"},
    {"x not a string", "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":1,\"y\":\"AAAA\"}"},
    {"no n", "{\"kty\":\"RSA\",\"kid\":\"bad\",\"e\":\"AQAB\"}"},
    {"no e", "{\"kty\":\"RSA\",\"kid\":\"bad\",\"n\":\"AQAB\"}"},
    {"small n", "{\"kty\":\"RSA\",\"kid\":\"bad\",\"n\":\"AQAB\",\"e\":\"AQAB\"}"},
    {"padded base64url",
     "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"AA==\",\"y\":\"AA\"}"},
    {"base64 '+'",
     "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"A+AA\",\"y\":\"AAAA\"}"},
    {"base64 '/'",
     "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"A/AA\",\"y\":\"AAAA\"}"},
    {"base64 one char",
     "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"A\",\"y\":\"AAAA\"}"},
    {"short x", "{\"kty\":\"EC\",\"kid\":\"bad\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}"},
    {"use enc", "{\"kty\":\"EC\",\"kid\":\"bad\",\"use\":\"enc\",\"crv\":\"P-256\",%s}"},
    {"use not a string", "{\"kty\":\"EC\",\"kid\":\"bad\",\"use\":1,\"crv\":\"P-256\",%s}"},
    {"alg of RSA", "{\"kty\":\"EC\",\"kid\":\"bad\",\"alg\":\"RS256\",\"crv\":\"P-256\",%s}"},
    {"alg of other curve",
     "{\"kty\":\"EC\",\"kid\":\"bad\",\"alg\":\"ES512\",\"crv\":\"P-256\",%s}"},
    {"alg none", "{\"kty\":\"EC\",\"kid\":\"bad\",\"alg\":\"none\",\"crv\":\"P-256\",%s}"},
    {"alg not a string", "{\"kty\":\"EC\",\"kid\":\"bad\",\"alg\":null,\"crv\":\"P-256\",%s}"},
    {"no kid", "{\"kty\":\"EC\",\"crv\":\"P-256\",%s}"},
    {"kid not a string", "{\"kty\":\"EC\",\"kid\":5,\"crv\":\"P-256\",%s}"},
    {"kid empty", "{\"kty\":\"EC\",\"kid\":\"\",\"crv\":\"P-256\",%s}"},
    {"not an object", "\"bad\""},
    {"null", "null"},
};

START_TEST(test_unusable_key_skipped)
{
    const char *jwk_fmt = unusable[_i].jwk;
    /* The x and y of a real P-256 point, so that only the named fault is wrong. */
    char *ref = jwk_ec("ref", p256_key, "P-256", 32, "");
    char *xy = strstr(ref, "\"x\":");
    xy[strlen(xy) - 1] = '\0'; /* drop the closing brace */
    us_buf bad = US_BUF_INIT;
    const char *hole = strstr(jwk_fmt, "%s");
    if (hole) {
        us_buf_append(&bad, jwk_fmt, (size_t)(hole - jwk_fmt));
        us_buf_puts(&bad, xy);
        us_buf_puts(&bad, hole + 2);
    } else {
        us_buf_puts(&bad, jwk_fmt);
    }
    free(ref);
    char *doc = doc_of(us_buf_steal(&bad, NULL), jwk_rsa("good", rsa_key, ""), NULL);
    us_jwks_set *s = parse_ok(doc);
    ck_assert_msg(us_jwks_set_count(s) == 1, "%s: %zu usable", unusable[_i].name,
                  us_jwks_set_count(s));
    ck_assert_uint_eq(us_jwks_set_skipped(s), 1);
    ck_assert_ptr_null(find(s, "bad"));
    ck_assert_ptr_nonnull(find(s, "good"));
    ck_assert_msg(strncmp(us_jwks_set_skip_reason(s), "key 0: ", 7) == 0, "%s",
                  us_jwks_set_skip_reason(s));
    us_jwks_set_free(s);
    free(doc);
}
END_TEST

START_TEST(test_kid_bounds)
{
    char kid[US_JWKS_MAX_KID_BYTES + 2];
    memset(kid, 'k', sizeof kid - 1);
    kid[sizeof kid - 1] = '\0';
    char *doc = doc_of(jwk_rsa(kid, rsa_key, ""), NULL); /* one byte over */
    us_jwks_set *s = parse_ok(doc);
    ck_assert_uint_eq(us_jwks_set_count(s), 0);
    us_jwks_set_free(s);
    free(doc);
    kid[US_JWKS_MAX_KID_BYTES] = '\0';
    doc = doc_of(jwk_rsa(kid, rsa_key, ""), NULL);
    s = parse_ok(doc);
    ck_assert_ptr_nonnull(find(s, kid));
    us_jwks_set_free(s);
    free(doc);
    /* A kid is compared byte for byte, escapes decoded. */
    doc = doc_of(jwk_rsa("a\\u00e9\\/b", rsa_key, ""), NULL);
    s = parse_ok(doc);
    ck_assert_ptr_nonnull(find(s, "a\xc3\xa9/b"));
    us_jwks_set_free(s);
    free(doc);
}
END_TEST

START_TEST(test_duplicate_kids)
{
    char *doc = doc_of(jwk_rsa("dup", rsa_key, ""), jwk_ec("dup", p256_key, "P-256", 32, ""),
                       jwk_rsa("ok", rsa2_key, ""), NULL);
    us_jwks_set *s = parse_ok(doc);
    ck_assert_ptr_null(find(s, "dup"));
    ck_assert_ptr_nonnull(find(s, "ok"));
    ck_assert_uint_eq(us_jwks_set_count(s), 1);
    ck_assert_uint_eq(us_jwks_set_skipped(s), 2);
    ck_assert_ptr_nonnull(strstr(us_jwks_set_skip_reason(s), "duplicate kid"));
    ck_assert_status(verify_with(set_lookup, s, token("RS256", "dup", rsa_key), T0),
                     US_JWT_UNKNOWN_KEY);
    us_jwks_set_free(s);
    free(doc);
    /* An unusable key does not make a usable one with its kid ambiguous. */
    doc = doc_of(jwk_rsa("same", rsa_key, ""),
                 us_xstrdup("{\"kty\":\"oct\",\"kid\":\"same\",\"k\":\"AAAA\"}"), NULL);
    s = parse_ok(doc);
    ck_assert_ptr_nonnull(find(s, "same"));
    us_jwks_set_free(s);
    free(doc);
}
END_TEST

START_TEST(test_document_refused)
{
    parse_refused(S(""), "");
    parse_refused(S("not json"), "");
    parse_refused(S("[]"), "object");
    parse_refused(S("{}"), "\"keys\"");
    parse_refused(S("{\"keys\":{}}"), "\"keys\"");
    parse_refused(S("{\"keys\":\"x\"}"), "\"keys\"");
    parse_refused(S("{\"keys\":null}"), "\"keys\"");
    parse_refused(S("{\"keys\":[]} x"), "");
    parse_refused(S("{\"keys\":[],\"n\":NaN}"), "");
    parse_refused(S("{\"keys\":[]}\0"), "");
    parse_refused(S("{\"keys\":[{\"kid\":\"a\",\"kty\":\"EC\",\"x\":\"\x01\"}]}"), "");
    /* An empty set is a document, just one without keys. */
    us_jwks_set *s = parse_ok("{\"keys\":[]}");
    ck_assert_uint_eq(us_jwks_set_count(s), 0);
    us_jwks_set_free(s);

    /* Too many keys. */
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "{\"keys\":[");
    for (int i = 0; i <= US_JWKS_MAX_KEYS; i++)
        us_buf_printf(&b, "%s{\"kty\":\"oct\",\"kid\":\"%d\"}", i ? "," : "", i);
    us_buf_puts(&b, "]}");
    parse_refused(b.data, b.len, "keys (at most");
    us_buf_free(&b);

    /* Exactly the bound is read; one byte more is refused before any parsing. */
    char *doc = doc_of(jwk_rsa("big", rsa_key, ""), NULL);
    size_t len = strlen(doc);
    char *padded = us_xmalloc(US_JWKS_MAX_DOCUMENT_BYTES + 2);
    memcpy(padded, doc, len);
    memset(padded + len, ' ', US_JWKS_MAX_DOCUMENT_BYTES + 1 - len);
    padded[US_JWKS_MAX_DOCUMENT_BYTES + 1] = '\0';
    parse_refused(padded, US_JWKS_MAX_DOCUMENT_BYTES + 1, "over");
    char err[200] = "";
    s = us_jwks_set_parse(padded, US_JWKS_MAX_DOCUMENT_BYTES, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_ptr_nonnull(find(s, "big"));
    us_jwks_set_free(s);
    free(padded);
    free(doc);
}
END_TEST

/* ---- a JWKS server on loopback ---- */

#define MAX_CONNECTIONS 256

typedef struct {
    int fd;
    int port;
    pthread_t thread;
    pthread_t conns[MAX_CONNECTIONS]; /* one thread per connection: a slow answer holds
                                         only its own */
    int nconns;
    pthread_mutex_t mu;
    char *response; /* the whole HTTP answer */
    size_t response_len;
    int delay_ms; /* before answering */
    int requests;
    volatile int stop;
} server;

typedef struct {
    server *sv;
    int conn;
} connection;

static void *answer(void *arg)
{
    connection *cn = arg;
    server *sv = cn->sv;
    int conn = cn->conn;
    free(cn);
    {
        char req[8192];
        size_t got = 0;
        while (got < sizeof req - 1) {
            ssize_t n = recv(conn, req + got, sizeof req - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        pthread_mutex_lock(&sv->mu);
        sv->requests++;
        int delay = sv->delay_ms;
        char *resp = us_xstrndup(sv->response, sv->response_len);
        size_t resp_len = sv->response_len;
        pthread_mutex_unlock(&sv->mu);
        if (delay) {
            struct timespec ts = {delay / 1000, (long)(delay % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        for (size_t off = 0; off < resp_len;) {
            ssize_t n = send(conn, resp + off, resp_len - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        free(resp);
        close(conn);
    }
    return NULL;
}

static void *serve(void *arg)
{
    server *sv = arg;
    while (!sv->stop) {
        struct pollfd p = {.fd = sv->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int conn = accept(sv->fd, NULL, NULL);
        if (conn < 0)
            continue;
        if (sv->nconns == MAX_CONNECTIONS) {
            close(conn);
            continue;
        }
        connection *cn = us_xcalloc(1, sizeof *cn);
        cn->sv = sv;
        cn->conn = conn;
        if (pthread_create(&sv->conns[sv->nconns++], NULL, answer, cn) != 0)
            abort();
    }
    for (int i = 0; i < sv->nconns; i++)
        pthread_join(sv->conns[i], NULL);
    return NULL;
}

static void server_answer_raw(server *sv, const char *raw, size_t len, int delay_ms)
{
    pthread_mutex_lock(&sv->mu);
    free(sv->response);
    sv->response = us_xstrndup(raw, len);
    sv->response_len = len;
    sv->delay_ms = delay_ms;
    pthread_mutex_unlock(&sv->mu);
}

static void server_answer(server *sv, int status, const char *body)
{
    us_buf b = US_BUF_INIT;
    us_buf_printf(&b,
                  "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                  "Connection: close\r\n\r\n%s",
                  status, strlen(body), body);
    server_answer_raw(sv, b.data, b.len, 0);
    us_buf_free(&b);
}

static int server_requests(server *sv)
{
    pthread_mutex_lock(&sv->mu);
    int n = sv->requests;
    pthread_mutex_unlock(&sv->mu);
    return n;
}

static server *server_start(void)
{
    server *sv = us_xcalloc(1, sizeof *sv);
    pthread_mutex_init(&sv->mu, NULL);
    sv->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(sv->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(sv->fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(sv->fd, 16), 0);
    ck_assert_int_eq(getsockname(sv->fd, (struct sockaddr *)&a, &alen), 0);
    sv->port = ntohs(a.sin_port);
    server_answer(sv, 200, "{\"keys\":[]}");
    ck_assert_int_eq(pthread_create(&sv->thread, NULL, serve, sv), 0);
    return sv;
}

static void server_stop(server *sv)
{
    sv->stop = 1;
    pthread_join(sv->thread, NULL);
    close(sv->fd);
    pthread_mutex_destroy(&sv->mu);
    free(sv->response);
    free(sv);
}

static us_jwks *cache_for(int port, const char *path)
{
    char url[128], err[160] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    us_jwks *c = us_jwks_create(url, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    return c;
}

static const us_jwt_key *lookup(us_jwks *c, const char *kid, int64_t now_s)
{
    return us_jwks_lookup(c, kid, strlen(kid), now_s);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the cache ---- */

START_TEST(test_create)
{
    const char *bad[] = {"", "ftp://127.0.0.1/jwks", "file:///etc/passwd", "127.0.0.1/jwks",
                         "gopher://x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[160] = "";
        ck_assert_ptr_null(us_jwks_create(bad[i], err, sizeof err));
        ck_assert_ptr_nonnull(strstr(err, "client.token.jwks_public_endpoint"));
        ck_assert(bad[i][0] == '\0' || strstr(err, bad[i]) == NULL);
    }
    ck_assert_ptr_null(us_jwks_create(NULL, NULL, 0));
    char err[160];
    us_jwks *c = us_jwks_create("HTTPS://auth.example/.well-known/jwks.json", err, sizeof err);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(us_jwks_fetches(c), 0); /* lazily: nothing fetched yet */
    us_jwks_free(c);
    us_jwks_free(NULL);
}
END_TEST

START_TEST(test_refresh_at_most_once_a_minute)
{
    server *sv = server_start();
    char *doc_a = doc_of(jwk_rsa("a", rsa_key, ""), NULL);
    server_answer(sv, 200, doc_a);
    us_jwks *c = cache_for(sv->port, "/jwks.json");

    /* The first lookup fetches; a known kid never fetches again. */
    ck_assert_ptr_nonnull(lookup(c, "a", T0));
    ck_assert_uint_eq(us_jwks_fetches(c), 1);
    ck_assert_ptr_nonnull(lookup(c, "a", T0 + 30));
    ck_assert_uint_eq(us_jwks_fetches(c), 1);

    /* The key rotates: "b" is published. Unknown kids within the minute fetch nothing,
     * however many arrive. */
    char *doc_b = doc_of(jwk_rsa("a", rsa_key, ""), jwk_ec("b", p256_key, "P-256", 32, ""), NULL);
    server_answer(sv, 200, doc_b);
    for (int i = 0; i < 200; i++) {
        char kid[16];
        snprintf(kid, sizeof kid, "x%d", i);
        ck_assert_ptr_null(lookup(c, kid, T0 + i % 60));
    }
    ck_assert_ptr_null(lookup(c, "b", T0 + 59));
    ck_assert_uint_eq(us_jwks_fetches(c), 1);
    ck_assert_int_eq(server_requests(sv), 1);

    /* A minute after the last fetch, an unknown kid fetches once: "b" is there. */
    ck_assert_ptr_nonnull(lookup(c, "b", T0 + 60));
    ck_assert_uint_eq(us_jwks_fetches(c), 2);
    ck_assert_ptr_nonnull(lookup(c, "b", T0 + 61));
    ck_assert_ptr_nonnull(lookup(c, "a", T0 + 61));
    ck_assert_ptr_null(lookup(c, "zz", T0 + 61));
    ck_assert_uint_eq(us_jwks_fetches(c), 2);
    ck_assert_status(verify_with(us_jwks_lookup, c, token("ES256", "b", p256_key), T0 + 62),
                     US_JWT_OK);
    ck_assert_status(verify_with(us_jwks_lookup, c, token("RS256", "a", rsa_key), T0 + 62),
                     US_JWT_OK);
    ck_assert_status(verify_with(us_jwks_lookup, c, token("RS256", "q", rsa_key), T0 + 62),
                     US_JWT_UNKNOWN_KEY);
    ck_assert_int_eq(server_requests(sv), 2);

    /* A clock that went back does not stretch the wait. */
    ck_assert_ptr_null(lookup(c, "zz", T0 - 3600));
    ck_assert_uint_eq(us_jwks_fetches(c), 3);

    us_jwks_free(c);
    server_stop(sv);
    free(doc_a);
    free(doc_b);
}
END_TEST

START_TEST(test_max_age)
{
    server *sv = server_start();
    char *doc_a = doc_of(jwk_rsa("a", rsa_key, ""), jwk_rsa("b", rsa2_key, ""), NULL);
    char *doc_b = doc_of(jwk_rsa("b", rsa2_key, ""), NULL); /* "a" withdrawn */
    server_answer(sv, 200, doc_a);
    us_jwks *c = cache_for(sv->port, "/");
    ck_assert_ptr_nonnull(lookup(c, "a", T0));
    server_answer(sv, 200, doc_b);
    ck_assert_ptr_nonnull(lookup(c, "a", T0 + US_JWKS_MAX_AGE_S - 1));
    ck_assert_uint_eq(us_jwks_fetches(c), 1);
    /* Old enough: the next lookup refetches, and the withdrawn key is gone. */
    ck_assert_ptr_null(lookup(c, "a", T0 + US_JWKS_MAX_AGE_S));
    ck_assert_uint_eq(us_jwks_fetches(c), 2);
    ck_assert_ptr_nonnull(lookup(c, "b", T0 + US_JWKS_MAX_AGE_S));

    /* When the refetch of an old set fails, its keys stay in use (and the next try
     * waits a minute). */
    server_answer(sv, 503, "down for maintenance");
    int64_t t = T0 + 2 * US_JWKS_MAX_AGE_S;
    ck_assert_ptr_nonnull(lookup(c, "b", t));
    ck_assert_uint_eq(us_jwks_fetches(c), 3);
    ck_assert_ptr_nonnull(lookup(c, "b", t + 59));
    ck_assert_uint_eq(us_jwks_fetches(c), 3);
    server_answer(sv, 200, doc_a);
    ck_assert_ptr_nonnull(lookup(c, "a", t + 60));
    ck_assert_uint_eq(us_jwks_fetches(c), 4);
    us_jwks_free(c);
    server_stop(sv);
    free(doc_a);
    free(doc_b);
}
END_TEST

/* A fetch that fails in any way: no key, one warning line without the URL (which may
 * hold credentials), the set in hand kept; recovery a minute later. */
static void check_failure(server *sv, const char *what)
{
    char *good = doc_of(jwk_rsa("k", rsa_key, ""), NULL);
    char url[160], err[160];
    snprintf(url, sizeof url, "http://user:topsecret@127.0.0.1:%d/jwks?token=alsosecret", sv->port);
    us_jwks *c = us_jwks_create(url, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    us_test_stderr cap;
    us_test_stderr_begin(&cap);
    double t0 = now_ms();
    const us_jwt_key *k = lookup(c, "k", T0);
    double took = now_ms() - t0;
    char line[1024];
    long n = us_test_stderr_next(&cap, line, sizeof line);
    us_test_stderr_end(&cap);
    ck_assert_msg(k == NULL, "%s: a key", what);
    /* The bound: the fetch timeout, plus slack for a loaded machine under sanitizers. */
    ck_assert_msg(took < US_JWKS_FETCH_TIMEOUT_MS + 1000, "%s: %.0f ms", what, took);
    ck_assert_msg(n > 0 && strstr(line, "JWKS"), "%s: no warning", what);
    ck_assert_msg(!strstr(line, "topsecret") && !strstr(line, "alsosecret") &&
                      !strstr(line, "127.0.0.1"),
                  "%s: the log line shows the URL: %s", what, line);
    ck_assert_uint_eq(us_jwks_fetches(c), 1);
    /* Within the minute: no new attempt, the answer stays quick. */
    ck_assert_ptr_null(lookup(c, "k", T0 + 59));
    ck_assert_uint_eq(us_jwks_fetches(c), 1);
    /* The server comes back. */
    server_answer(sv, 200, good);
    ck_assert_ptr_nonnull(lookup(c, "k", T0 + 60));
    /* A later failure keeps the keys in hand. */
    server_answer(sv, 200, "garbage");
    ck_assert_ptr_null(lookup(c, "other", T0 + 120));
    ck_assert_uint_eq(us_jwks_fetches(c), 3);
    ck_assert_ptr_nonnull(lookup(c, "k", T0 + 121));
    us_jwks_free(c);
    free(good);
}

START_TEST(test_failures)
{
    server *sv = server_start();
    server_answer(sv, 200, "<html>not json</html>");
    check_failure(sv, "garbage");
    server_answer(sv, 200, "{\"keys\":[]} trailing");
    check_failure(sv, "trailing data");
    server_answer(sv, 200, "{\"no_keys\":[]}");
    check_failure(sv, "no keys array");
    server_answer(sv, 500, "{\"keys\":[]}");
    check_failure(sv, "HTTP 500");
    server_answer(sv, 404, "");
    check_failure(sv, "HTTP 404");
    server_answer_raw(
        sv, S("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"), 0);
    check_failure(sv, "redirect");
    server_answer_raw(sv, S("complete nonsense\r\n\r\n"), 0);
    check_failure(sv, "not HTTP");
    server_answer_raw(sv, S(""), 0);
    check_failure(sv, "closed without an answer");
    server_stop(sv);
}
END_TEST

START_TEST(test_oversize)
{
    server *sv = server_start();
    /* Declared too large: refused without reading it. */
    size_t big = US_JWKS_MAX_DOCUMENT_BYTES + 1;
    us_buf b = US_BUF_INIT;
    us_buf_printf(&b, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", big);
    us_buf_puts(&b, "{\"keys\":[]}");
    us_buf_reserve(&b, big);
    memset(b.data + b.len, ' ', big - 11);
    b.len += big - 11;
    server_answer_raw(sv, b.data, b.len, 0);
    check_failure(sv, "declared oversize");
    /* Undeclared (read until close): cut off at the bound. */
    us_buf_reset(&b);
    us_buf_puts(&b, "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n{\"keys\":[]}");
    us_buf_reserve(&b, big);
    memset(b.data + b.len, ' ', big - 11);
    b.len += big - 11;
    server_answer_raw(sv, b.data, b.len, 0);
    check_failure(sv, "undeclared oversize");
    us_buf_free(&b);
    server_stop(sv);
}
END_TEST

START_TEST(test_slow_and_down)
{
    server *sv = server_start();
    char *good = doc_of(jwk_rsa("k", rsa_key, ""), NULL);
    us_buf raw = US_BUF_INIT;
    us_buf_printf(&raw, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(good), good);
    server_answer_raw(sv, raw.data, raw.len, 3000); /* answers after 3 s */
    us_buf_free(&raw);
    check_failure(sv, "slow");
    server_stop(sv);

    /* Nobody listening: refused at once. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    us_jwks *c = cache_for(ntohs(a.sin_port), "/jwks");
    double t0 = now_ms();
    ck_assert_ptr_null(lookup(c, "k", T0));
    ck_assert(now_ms() - t0 < US_JWKS_FETCH_TIMEOUT_MS + 1000);
    ck_assert_uint_eq(us_jwks_fetches(c), 1);
    us_jwks_free(c);

    /* A server that accepts and never answers (a full backlog would do the same). */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = 0;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    alen = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    c = cache_for(ntohs(a.sin_port), "/jwks");
    t0 = now_ms();
    ck_assert_ptr_null(lookup(c, "k", T0));
    double took = now_ms() - t0;
    ck_assert_msg(took >= US_JWKS_FETCH_TIMEOUT_MS - 50 && took < US_JWKS_FETCH_TIMEOUT_MS + 1000,
                  "%.0f ms", took);
    us_jwks_free(c);
    close(fd);
    free(good);
}
END_TEST

static Suite *jwks_suite(void)
{
    Suite *s = suite_create("jwks");
    TCase *tc = tcase_create("parse");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_parse_each_key_type);
    tcase_add_loop_test(tc, test_unusable_key_skipped, 0, N_ELEMS(unusable));
    tcase_add_test(tc, test_kid_bounds);
    tcase_add_test(tc, test_duplicate_kids);
    tcase_add_test(tc, test_document_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_create);
    tcase_add_test(tc, test_refresh_at_most_once_a_minute);
    tcase_add_test(tc, test_max_age);
    tcase_add_test(tc, test_failures);
    tcase_add_test(tc, test_oversize);
    tcase_add_test(tc, test_slow_and_down);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* Generated once and inherited by every forked test. */
    rsa_key = us_test_gen_key(EVP_PKEY_RSA, 2048);
    rsa2_key = us_test_gen_key(EVP_PKEY_RSA, 2048);
    p256_key = us_test_gen_key(EVP_PKEY_EC, NID_X9_62_prime256v1);
    p384_key = us_test_gen_key(EVP_PKEY_EC, NID_secp384r1);
    p521_key = us_test_gen_key(EVP_PKEY_EC, NID_secp521r1);
    k256_key = us_test_gen_key(EVP_PKEY_EC, NID_secp256k1);
    int status = us_test_run(jwks_suite());
    EVP_PKEY *keys[] = {rsa_key, rsa2_key, p256_key, p384_key, p521_key, k256_key};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
    return status;
}
