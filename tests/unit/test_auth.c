/* Unit tests for who may call (auth.h): the server API key in Centrifugo's order (SPEC
 * §1.1), the RPC proxy's header key, and the client's Bearer token form (SPEC §6). */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/auth.h"

#define KEY "s3cret"

static us_http_request req_with(const char *x_api_key, const char *authorization, const char *query)
{
    us_http_request r = {
        .method = "POST",
        .path = "/api/get_user_status",
        .x_api_key = x_api_key,
        .authorization = authorization,
        .query = query,
    };
    return r;
}

static bool api_key(const char *x, const char *authz, const char *query)
{
    us_http_request r = req_with(x, authz, query);
    return us_auth_api_key(&r, KEY, false);
}

/* ---- the three places, one by one ---- */

START_TEST(test_x_api_key)
{
    ck_assert(api_key(KEY, NULL, NULL));
    ck_assert(!api_key("wrong", NULL, NULL));
    ck_assert(!api_key("s3cre", NULL, NULL));
    ck_assert(!api_key("s3cret ", NULL, NULL));
    ck_assert(!api_key("S3CRET", NULL, NULL));
    ck_assert(!api_key(NULL, NULL, NULL));
}
END_TEST

START_TEST(test_authorization_apikey)
{
    ck_assert(api_key(NULL, "apikey " KEY, NULL));
    ck_assert(api_key(NULL, "APIKEY " KEY, NULL));
    ck_assert(api_key(NULL, "ApiKey " KEY, NULL));
    ck_assert(api_key(NULL, "apikey\t" KEY, NULL));
    ck_assert(api_key(NULL, "  apikey   " KEY "  ", NULL));
    /* The key itself is case-sensitive. */
    ck_assert(!api_key(NULL, "apikey S3CRET", NULL));
    ck_assert(!api_key(NULL, "apikey wrong", NULL));
    /* Exactly two fields. */
    ck_assert(!api_key(NULL, "apikey " KEY " extra", NULL));
    ck_assert(!api_key(NULL, "apikey", NULL));
    ck_assert(!api_key(NULL, "apikey ", NULL));
    ck_assert(!api_key(NULL, KEY, NULL));
    /* Another scheme, or one that only starts like it. */
    ck_assert(!api_key(NULL, "Bearer " KEY, NULL));
    ck_assert(!api_key(NULL, "apikeys " KEY, NULL));
    ck_assert(!api_key(NULL, "apike " KEY, NULL));
}
END_TEST

START_TEST(test_query_parameter)
{
    ck_assert(api_key(NULL, NULL, "api_key=" KEY));
    ck_assert(api_key(NULL, NULL, "a=1&api_key=" KEY "&b=2"));
    ck_assert(api_key(NULL, NULL, "api_key=%73%33cr%65t"));      /* percent-decoded */
    ck_assert(api_key(NULL, NULL, "x_api_key=no&api_key=" KEY)); /* a name, not a suffix */
    ck_assert(!api_key(NULL, NULL, "x_api_key=" KEY));
    ck_assert(!api_key(NULL, NULL, "api_key=wrong"));
    ck_assert(!api_key(NULL, NULL, "api_key="));
    ck_assert(!api_key(NULL, NULL, "api_key"));
    ck_assert(!api_key(NULL, NULL, "api_keys=" KEY));
    ck_assert(!api_key(NULL, NULL, ""));
    /* The first api_key decides. */
    ck_assert(!api_key(NULL, NULL, "api_key=wrong&api_key=" KEY));

    /* '+' is a space and %20 too; a key with a space. */
    us_http_request r = req_with(NULL, NULL, "api_key=a+b%20c");
    ck_assert(us_auth_api_key(&r, "a b c", false));
    r.query = "api_key=a%2Bb";
    ck_assert(us_auth_api_key(&r, "a+b", false));
    ck_assert(!us_auth_api_key(&r, "a b", false));
    /* Either case of hex digits. */
    r.query = "api_key=%2f%2F";
    ck_assert(us_auth_api_key(&r, "//", false));
    /* A '%' that does not start an escape is itself. */
    r.query = "api_key=50%25%";
    ck_assert(us_auth_api_key(&r, "50%%", false));
}
END_TEST

/* %00 would make "KEY%00anything" compare as KEY: refused whatever follows. */
START_TEST(test_query_nul_refused)
{
    ck_assert(!api_key(NULL, NULL, "api_key=" KEY "%00"));
    ck_assert(!api_key(NULL, NULL, "api_key=" KEY "%00junk"));
    ck_assert(!api_key(NULL, NULL, "api_key=%00"));
    /* And a key really containing what follows is not matched by a truncation either. */
    us_http_request r = req_with(NULL, NULL, "api_key=ab%00");
    ck_assert(!us_auth_api_key(&r, "ab", false));
}
END_TEST

/* ---- the order: the first one present decides ---- */

START_TEST(test_order)
{
    /* A wrong X-API-Key is not rescued by a right Authorization or query. */
    ck_assert(!api_key("wrong", "apikey " KEY, "api_key=" KEY));
    ck_assert(!api_key("wrong", NULL, "api_key=" KEY));
    /* A right X-API-Key wins over wrong others. */
    ck_assert(api_key(KEY, "apikey wrong", "api_key=wrong"));
    /* An empty X-API-Key is absent: Authorization decides. */
    ck_assert(api_key("", "apikey " KEY, NULL));
    ck_assert(!api_key("", "apikey wrong", "api_key=" KEY));
    /* A present Authorization decides even in another form, and even when wrong. */
    ck_assert(!api_key(NULL, "apikey wrong", "api_key=" KEY));
    ck_assert(!api_key(NULL, "Bearer abc", "api_key=" KEY));
    ck_assert(api_key(NULL, "apikey " KEY, "api_key=wrong"));
    /* An empty Authorization is absent: the query decides. */
    ck_assert(api_key(NULL, "", "api_key=" KEY));
    ck_assert(api_key("", "", "api_key=" KEY));
}
END_TEST

START_TEST(test_empty_configured_key_refuses_all)
{
    us_http_request r = req_with("", NULL, NULL);
    ck_assert(!us_auth_api_key(&r, "", false));
    ck_assert(!us_auth_api_key(&r, NULL, false));
    r = req_with(NULL, "apikey ", "api_key=");
    ck_assert(!us_auth_api_key(&r, "", false));
    r = req_with("anything", NULL, NULL);
    ck_assert(!us_auth_api_key(&r, "", false));
    r = req_with(NULL, NULL, NULL);
    ck_assert(!us_auth_api_key(&r, "", false));
}
END_TEST

START_TEST(test_insecure_accepts_all)
{
    us_http_request r = req_with(NULL, NULL, NULL);
    ck_assert(us_auth_api_key(&r, "", true));
    ck_assert(us_auth_api_key(&r, KEY, true));
    r = req_with("wrong", "apikey wrong", "api_key=wrong");
    ck_assert(us_auth_api_key(&r, KEY, true));
    ck_assert(us_auth_api_key(&r, NULL, true));
}
END_TEST

/* ---- the proxy's header key ---- */

START_TEST(test_header_key)
{
    us_http_request r = req_with("proxy-key", NULL, NULL);
    ck_assert(us_auth_header_key(&r, "proxy-key"));
    ck_assert(!us_auth_header_key(&r, "proxy-ke"));
    ck_assert(!us_auth_header_key(&r, "proxy-key2"));
    ck_assert(!us_auth_header_key(&r, ""));
    ck_assert(!us_auth_header_key(&r, NULL));
    /* Only the header counts: not Authorization, not the query. */
    r = req_with(NULL, "apikey proxy-key", "api_key=proxy-key");
    ck_assert(!us_auth_header_key(&r, "proxy-key"));
    /* An empty key never matches, not even an empty header. */
    r = req_with("", NULL, NULL);
    ck_assert(!us_auth_header_key(&r, ""));
    ck_assert(!us_auth_header_key(&r, "k"));
}
END_TEST

/* ---- Bearer ---- */

static void bearer_is(const char *h, const char *want)
{
    const char *tok = (const char *)0x1;
    size_t len = 12345;
    bool ok = us_auth_bearer(h, &tok, &len);
    if (!want) {
        ck_assert_msg(!ok, "accepted \"%s\"", h ? h : "(null)");
        return;
    }
    ck_assert_msg(ok, "refused \"%s\"", h);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_mem_eq(tok, want, len);
    /* Borrowed from the header, not copied. */
    ck_assert(tok >= h && tok + len <= h + strlen(h));
}

START_TEST(test_bearer_forms)
{
    bearer_is("Bearer abc.def.ghi", "abc.def.ghi");
    bearer_is("bearer abc", "abc");
    bearer_is("BEARER abc", "abc");
    bearer_is("BeArEr abc", "abc");
    bearer_is("Bearer\tabc", "abc");
    bearer_is("Bearer \t abc", "abc");
    bearer_is("  Bearer abc", "abc");
    bearer_is("Bearer abc   ", "abc");
    bearer_is("Bearer abc\t", "abc");
}
END_TEST

START_TEST(test_bearer_refused)
{
    bearer_is(NULL, NULL);
    bearer_is("", NULL);
    bearer_is("Bearer", NULL);
    bearer_is("Bearer ", NULL);
    bearer_is("Bearer \t ", NULL);
    bearer_is("Bearer abc def", NULL);
    bearer_is("Bearerabc", NULL);
    bearer_is("Bearer:abc", NULL);
    bearer_is("Basic abc", NULL);
    bearer_is("apikey abc", NULL);
    bearer_is("Bear abc", NULL);
    bearer_is("abc", NULL);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("api_key");
    tcase_add_test(tc, test_x_api_key);
    tcase_add_test(tc, test_authorization_apikey);
    tcase_add_test(tc, test_query_parameter);
    tcase_add_test(tc, test_query_nul_refused);
    tcase_add_test(tc, test_order);
    tcase_add_test(tc, test_empty_configured_key_refuses_all);
    tcase_add_test(tc, test_insecure_accepts_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("header_key");
    tcase_add_test(tc, test_header_key);
    suite_add_tcase(s, tc);

    tc = tcase_create("bearer");
    tcase_add_test(tc, test_bearer_forms);
    tcase_add_test(tc, test_bearer_refused);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(auth_suite)
