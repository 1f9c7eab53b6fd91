/* JWKS documents and their per-process cache (see jwks.h). */
#include "ustatus/jwks.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "ustatus/buf.h"
#include "ustatus/json.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/msg.h"

/* JSON values a document may hold: generous for US_JWKS_MAX_KEYS keys with certificate
 * chains and metadata, and the bound json-c's memory follows. */
#define MAX_VALUES_PER_KEY 64

/* ---- key sets ---- */

typedef struct {
    char *kid;
    size_t kid_len;
    us_jwt_key *key; /* NULL once dropped as a duplicate */
} jwks_entry;

struct us_jwks_set {
    jwks_entry *entries;
    size_t count; /* entries, duplicates included until they are dropped */
    size_t usable;
    size_t skipped;
    char skip_reason[160];
};

static void skip(us_jwks_set *s, size_t index, const char *why)
{
    if (!s->skipped)
        us_set_msg(s->skip_reason, sizeof s->skip_reason, "key %zu: %s", index, why);
    s->skipped++;
}

/* A string member; NULL when absent or of another type (*present says which). */
static const char *string_member(json_object *o, const char *name, size_t *len, bool *present)
{
    json_object *m = NULL;
    *present = json_object_object_get_ex(o, name, &m); /* null is present, of the wrong type */
    if (!*present || !json_object_is_type(m, json_type_string))
        return NULL;
    if (len)
        *len = (size_t)json_object_get_string_len(m);
    return json_object_get_string(m);
}

/* Decodes the base64url member name into out; -1 with a reason when it is missing, not a
 * string or not strict base64url. */
static int b64_member(json_object *o, const char *name, us_buf *out, char *why, size_t why_len)
{
    size_t len = 0;
    bool present = false;
    const char *s = string_member(o, name, &len, &present);
    if (!s)
        return us_fail(why, why_len, "%s %s", name, present ? "is not a string" : "missing");
    us_buf_reset(out);
    if (us_b64url_decode(s, len, out) < 0)
        return us_fail(why, why_len, "%s is not base64url", name);
    return 0;
}

/* The verification key a JWK describes, or NULL with a reason. */
static us_jwt_key *key_from_jwk(json_object *jwk, char *why, size_t why_len)
{
    us_buf a = US_BUF_INIT, b = US_BUF_INIT;
    us_jwt_key *key = NULL;
    bool present = false;
    const char *kty = string_member(jwk, "kty", NULL, &present);
    const char *use = string_member(jwk, "use", NULL, &present);
    if (present && (!use || strcmp(use, "sig") != 0)) {
        us_set_msg(why, why_len, "use is not \"sig\"");
        goto done;
    }
    const char *alg = string_member(jwk, "alg", NULL, &present);
    if (present && !alg) {
        us_set_msg(why, why_len, "alg is not a string");
        goto done;
    }
    if (kty && strcmp(kty, "RSA") == 0) {
        if (b64_member(jwk, "n", &a, why, why_len) < 0 ||
            b64_member(jwk, "e", &b, why, why_len) < 0)
            goto done;
        key = us_jwt_key_rsa((const unsigned char *)a.data, a.len, (const unsigned char *)b.data,
                             b.len, alg, why, why_len);
    } else if (kty && strcmp(kty, "EC") == 0) {
        const char *crv = string_member(jwk, "crv", NULL, &present);
        if (!crv) {
            us_set_msg(why, why_len, "crv %s", present ? "is not a string" : "missing");
            goto done;
        }
        if (b64_member(jwk, "x", &a, why, why_len) < 0 ||
            b64_member(jwk, "y", &b, why, why_len) < 0)
            goto done;
        key = us_jwt_key_ec(crv, (const unsigned char *)a.data, a.len,
                            (const unsigned char *)b.data, b.len, alg, why, why_len);
    } else {
        us_set_msg(why, why_len, "kty is not \"RSA\" or \"EC\"");
    }
done:
    us_buf_free(&a);
    us_buf_free(&b);
    return key;
}

us_jwks_set *us_jwks_set_parse(const char *doc, size_t len, char *err, size_t err_len)
{
    if (len > US_JWKS_MAX_DOCUMENT_BYTES) {
        us_set_msg(err, err_len, "document over %d bytes", US_JWKS_MAX_DOCUMENT_BYTES);
        return NULL;
    }
    char why[128];
    json_object *root = us_json_parse_object(
        doc, len, (size_t)US_JWKS_MAX_KEYS * MAX_VALUES_PER_KEY, "JWKS document", why, sizeof why);
    if (!root) {
        us_set_msg(err, err_len, "%s", why);
        return NULL;
    }
    us_jwks_set *s = NULL;
    json_object *keys = NULL;
    if (!json_object_object_get_ex(root, "keys", &keys) ||
        !json_object_is_type(keys, json_type_array)) {
        us_set_msg(err, err_len, "JWKS document has no \"keys\" array");
        goto done;
    }
    size_t n = json_object_array_length(keys);
    if (n > US_JWKS_MAX_KEYS) {
        us_set_msg(err, err_len, "JWKS document has %zu keys (at most %d)", n, US_JWKS_MAX_KEYS);
        goto done;
    }
    s = us_xcalloc(1, sizeof *s);
    s->entries = us_xcalloc(n ? n : 1, sizeof *s->entries);
    for (size_t i = 0; i < n; i++) {
        json_object *jwk = json_object_array_get_idx(keys, i);
        if (!json_object_is_type(jwk, json_type_object)) {
            skip(s, i, "not an object");
            continue;
        }
        size_t kid_len = 0;
        bool present = false;
        const char *kid = string_member(jwk, "kid", &kid_len, &present);
        if (!kid || kid_len == 0 || kid_len > US_JWKS_MAX_KID_BYTES) {
            skip(s, i,
                 !present ? "kid missing"
                 : !kid   ? "kid is not a string"
                          : "kid empty or too long");
            continue;
        }
        us_jwt_key *key = key_from_jwk(jwk, why, sizeof why);
        if (!key) {
            skip(s, i, why);
            continue;
        }
        jwks_entry *e = &s->entries[s->count++];
        e->kid = us_xstrndup(kid, kid_len);
        e->kid_len = kid_len;
        e->key = key;
    }
    /* A kid two usable keys share: which one the issuer meant is a guess, so neither. */
    for (size_t i = 0; i < s->count; i++) {
        bool dup = false;
        for (size_t j = 0; j < s->count; j++)
            if (i != j && s->entries[i].kid_len == s->entries[j].kid_len &&
                memcmp(s->entries[i].kid, s->entries[j].kid, s->entries[i].kid_len) == 0)
                dup = true;
        if (dup && s->entries[i].key)
            skip(s, i, "duplicate kid");
        if (dup)
            s->entries[i].key = (us_jwt_key_free(s->entries[i].key), NULL);
    }
    for (size_t i = 0; i < s->count; i++)
        if (s->entries[i].key)
            s->usable++;
done:
    json_object_put(root);
    return s;
}

const us_jwt_key *us_jwks_set_find(const us_jwks_set *s, const char *kid, size_t kid_len)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < s->count; i++) {
        const jwks_entry *e = &s->entries[i];
        if (e->key && e->kid_len == kid_len && memcmp(e->kid, kid, kid_len) == 0)
            return e->key;
    }
    return NULL;
}

size_t us_jwks_set_count(const us_jwks_set *s)
{
    return s ? s->usable : 0;
}

size_t us_jwks_set_skipped(const us_jwks_set *s)
{
    return s ? s->skipped : 0;
}

const char *us_jwks_set_skip_reason(const us_jwks_set *s)
{
    return s ? s->skip_reason : "";
}

void us_jwks_set_free(us_jwks_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->count; i++) {
        free(s->entries[i].kid);
        us_jwt_key_free(s->entries[i].key);
    }
    free(s->entries);
    free(s);
}

/* ---- fetching ---- */

typedef struct {
    us_buf *body;
    bool too_large;
} transfer;

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
    transfer *t = userdata;
    size_t n = size * nmemb;
    if (t->body->len + n > US_JWKS_MAX_DOCUMENT_BYTES) {
        t->too_large = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    us_buf_append(t->body, data, n);
    return n;
}

/* GETs url into body. -1 with a reason (never the URL) on any failure: transport, a
 * status other than 200, a body over the bound. */
static int fetch(const char *url, us_buf *body, char *err, size_t err_len)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return us_fail(err, err_len, "cannot start a transfer");
    transfer t = {.body = body};
    us_buf_reset(body);
    curl_easy_setopt(curl, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* No signals (a worker's handlers stay its own); the threaded resolver keeps DNS
     * inside the timeout. */
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)US_JWKS_FETCH_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)US_JWKS_FETCH_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)US_JWKS_MAX_DOCUMENT_BYTES);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "ustatus");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    if (t.too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return us_fail(err, err_len, "document over %d bytes", US_JWKS_MAX_DOCUMENT_BYTES);
    if (rc != CURLE_OK)
        return us_fail(err, err_len, "%s", curl_easy_strerror(rc));
    if (status != 200)
        return us_fail(err, err_len, "HTTP status %ld", status);
    return 0;
}

/* ---- the cache ---- */

struct us_jwks {
    char *url;
    us_jwks_set *set;   /* NULL until a fetch succeeds */
    int64_t set_time_s; /* when the set was fetched */
    int64_t attempt_s;  /* when the last fetch was tried */
    bool attempted;
    unsigned long fetches;
    us_buf body;
};

us_jwks *us_jwks_create(const char *url, char *err, size_t err_len)
{
    if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)) {
        us_set_msg(err, err_len,
                   "client.token.jwks_public_endpoint: not an http:// or https:// URL");
        return NULL;
    }
    /* Reference-counted by libcurl; paired with the cleanup in us_jwks_free. Done here,
     * while the process has one thread, as libcurl asks. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        us_set_msg(err, err_len, "client.token.jwks_public_endpoint: libcurl failed to start");
        return NULL;
    }
    us_jwks *c = us_xcalloc(1, sizeof *c);
    c->url = us_xstrdup(url);
    return c;
}

static void refresh(us_jwks *c, int64_t now_s)
{
    char why[160];
    c->attempted = true;
    c->attempt_s = now_s;
    c->fetches++;
    if (fetch(c->url, &c->body, why, sizeof why) < 0) {
        us_warn("client: JWKS fetch from client.token.jwks_public_endpoint failed: %s%s", why,
                c->set ? " (keeping the keys in hand)" : "");
        return;
    }
    us_jwks_set *s =
        us_jwks_set_parse(c->body.data ? c->body.data : "", c->body.len, why, sizeof why);
    if (!s) {
        us_warn("client: JWKS from client.token.jwks_public_endpoint refused: %s%s", why,
                c->set ? " (keeping the keys in hand)" : "");
        return;
    }
    if (s->skipped)
        us_warn("client: JWKS: %zu usable keys, %zu skipped (%s)", s->usable, s->skipped,
                s->skip_reason);
    us_jwks_set_free(c->set);
    c->set = s;
    c->set_time_s = now_s;
}

const us_jwt_key *us_jwks_lookup(void *jwks, const char *kid, size_t kid_len, int64_t now_s)
{
    us_jwks *c = jwks;
    const us_jwt_key *k = us_jwks_set_find(c->set, kid, kid_len);
    bool stale = c->set && now_s - c->set_time_s >= US_JWKS_MAX_AGE_S;
    if (k && !stale)
        return k;
    /* A clock that went back does not stretch the wait. */
    bool may_fetch =
        !c->attempted || now_s < c->attempt_s || now_s - c->attempt_s >= US_JWKS_REFRESH_INTERVAL_S;
    if (!may_fetch)
        return k;
    refresh(c, now_s);
    return us_jwks_set_find(c->set, kid, kid_len);
}

unsigned long us_jwks_fetches(const us_jwks *c)
{
    return c->fetches;
}

void us_jwks_free(us_jwks *c)
{
    if (!c)
        return;
    us_jwks_set_free(c->set);
    us_buf_free(&c->body);
    free(c->url);
    free(c);
    curl_global_cleanup();
}
