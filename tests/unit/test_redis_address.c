/* Unit tests for Redis address strings (SPEC §3.1). An address that parses to the wrong
 * host, port, db or credentials connects ustatus to the wrong data, so each form is
 * checked field by field, and each rejection is checked to be a rejection. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "fixtures.h"
#include "ustatus/redis_address.h"

static us_redis_address addr;
static char err[256];

static void parse_ok(const char *s)
{
    err[0] = '\0';
    int rc = us_redis_address_parse(s, &addr, err, sizeof err);
    ck_assert_msg(rc == 0, "\"%s\" rejected: %s", s, err);
}

/* Returns the error text so callers can check it names the problem. */
static const char *parse_fail(const char *s)
{
    err[0] = '\0';
    int rc = us_redis_address_parse(s, &addr, err, sizeof err);
    ck_assert_msg(rc == -1, "\"%s\" accepted", s);
    ck_assert_msg(err[0] != '\0', "\"%s\" rejected without a reason", s);
    return err;
}

static void assert_tcp(const char *host, int port)
{
    ck_assert_int_eq(addr.kind, US_ADDR_TCP);
    ck_assert_str_eq(addr.host, host);
    ck_assert_int_eq(addr.port, port);
}

/* Nothing in the string set credentials, db or timeouts: the section's options apply. */
static void assert_unset_extras(void)
{
    ck_assert_str_eq(addr.user, "");
    ck_assert_str_eq(addr.password, "");
    ck_assert_int_eq(addr.db, -1);
    ck_assert_int_eq(addr.connect_timeout_ms, -1);
    ck_assert_int_eq(addr.io_timeout_ms, -1);
}

/* ---- accepted forms ---- */

START_TEST(test_host_port)
{
    parse_ok("127.0.0.1:6379");
    assert_tcp("127.0.0.1", 6379);
    assert_unset_extras();
    parse_ok("redis.internal:7000");
    assert_tcp("redis.internal", 7000);
    parse_ok("h:1");
    assert_tcp("h", 1);
    parse_ok("h:65535");
    assert_tcp("h", 65535);
}
END_TEST

START_TEST(test_host_alone_default_port)
{
    parse_ok("localhost");
    assert_tcp("localhost", 6379);
    assert_unset_extras();
    parse_ok("10.1.2.3");
    assert_tcp("10.1.2.3", 6379);
}
END_TEST

START_TEST(test_tcp_scheme)
{
    parse_ok("tcp://10.0.0.1:7001");
    assert_tcp("10.0.0.1", 7001);
    assert_unset_extras();
    parse_ok("tcp://redis");
    assert_tcp("redis", 6379);
    parse_ok("TCP://redis:1");
    assert_tcp("redis", 1);
}
END_TEST

START_TEST(test_ipv6)
{
    parse_ok("[::1]:6380");
    assert_tcp("::1", 6380);
    assert_unset_extras();
    parse_ok("[::1]");
    assert_tcp("::1", 6379);
    parse_ok("tcp://[2001:db8::7]:7000");
    assert_tcp("2001:db8::7", 7000);
    parse_ok("redis://:pw@[::1]:6390/2");
    assert_tcp("::1", 6390);
    ck_assert_str_eq(addr.password, "pw");
    ck_assert_int_eq(addr.db, 2);
}
END_TEST

START_TEST(test_unix)
{
    parse_ok("unix:///var/run/redis/redis.sock");
    ck_assert_int_eq(addr.kind, US_ADDR_UNIX);
    ck_assert_str_eq(addr.path, "/var/run/redis/redis.sock");
    assert_unset_extras();
    parse_ok("unix:/tmp/redis.sock");
    ck_assert_int_eq(addr.kind, US_ADDR_UNIX);
    ck_assert_str_eq(addr.path, "/tmp/redis.sock");
}
END_TEST

/* sun_path is 108 bytes including the NUL: 107 characters fit, 108 do not. */
START_TEST(test_unix_path_length)
{
    char s[200];
    char path[120];
    memset(path, 'p', sizeof path);
    path[0] = '/';
    path[107] = '\0';
    snprintf(s, sizeof s, "unix:%s", path);
    parse_ok(s);
    ck_assert_uint_eq(strlen(addr.path), 107);
    path[107] = 'p';
    path[108] = '\0';
    snprintf(s, sizeof s, "unix:%s", path);
    parse_fail(s);
}
END_TEST

START_TEST(test_redis_url_full)
{
    parse_ok("redis://user:pass@host:6390/3?connect_timeout=2s&io_timeout=500ms");
    assert_tcp("host", 6390);
    ck_assert_str_eq(addr.user, "user");
    ck_assert_str_eq(addr.password, "pass");
    ck_assert_int_eq(addr.db, 3);
    ck_assert_int_eq(addr.connect_timeout_ms, 2000);
    ck_assert_int_eq(addr.io_timeout_ms, 500);
}
END_TEST

/* rediss:// is redis:// over TLS (SPEC §3.7): the same parts, and the tls flag; no
 * other form sets it. */
START_TEST(test_rediss_url)
{
    parse_ok("rediss://user:pass@host:6390/3?connect_timeout=2s&io_timeout=500ms");
    assert_tcp("host", 6390);
    ck_assert(addr.tls);
    ck_assert_str_eq(addr.user, "user");
    ck_assert_str_eq(addr.password, "pass");
    ck_assert_int_eq(addr.db, 3);
    ck_assert_int_eq(addr.io_timeout_ms, 500);
    parse_ok("REDISS://[::1]");
    assert_tcp("::1", 6379);
    ck_assert(addr.tls);
    assert_unset_extras();
    const char *plain[] = {"redis://host", "host:1", "tcp://host:1", "unix:///tmp/r.sock"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        parse_ok(plain[i]);
        ck_assert_msg(!addr.tls, "%s", plain[i]);
    }
    char out[64];
    parse_ok("rediss://u:secret@127.0.0.1:7000");
    us_redis_address_format(&addr, out, sizeof out);
    ck_assert_str_eq(out, "127.0.0.1:7000");
}
END_TEST

START_TEST(test_redis_url_minimal)
{
    parse_ok("redis://host");
    assert_tcp("host", 6379);
    assert_unset_extras();
    parse_ok("redis://host:6380/");
    assert_tcp("host", 6380);
    assert_unset_extras();
    parse_ok("redis://host/0");
    assert_tcp("host", 6379);
    ck_assert_int_eq(addr.db, 0);
    ck_assert_int_eq(addr.connect_timeout_ms, -1);
}
END_TEST

/* Password-only (the requirepass form) and user-only userinfo. */
START_TEST(test_redis_url_password_with_slash_and_question_mark)
{
    /* Generated passwords hold '/' and '?' raw; none of it may become host or port, or be
     * quoted back in an error line. */
    parse_ok("redis://default:s3cr/etPW@127.0.0.1:6379");
    assert_tcp("127.0.0.1", 6379);
    ck_assert_str_eq(addr.user, "default");
    ck_assert_str_eq(addr.password, "s3cr/etPW");
    parse_ok("redis://u:pa?ss@h:1/2?io_timeout=2s");
    assert_tcp("h", 1);
    ck_assert_str_eq(addr.password, "pa?ss");
    ck_assert_int_eq(addr.db, 2);
    ck_assert_int_eq(addr.io_timeout_ms, 2000);
    const char *why = parse_fail("redis://u:s3cr/et@h:99999");
    ck_assert_ptr_null(strstr(why, "s3cr"));
    ck_assert_ptr_null(strstr(why, "et"));
}
END_TEST

START_TEST(test_redis_url_userinfo_forms)
{
    parse_ok("redis://:secret@host:1");
    ck_assert_str_eq(addr.user, "");
    ck_assert_str_eq(addr.password, "secret");
    parse_ok("redis://alice@host:1");
    ck_assert_str_eq(addr.user, "alice");
    ck_assert_str_eq(addr.password, "");
    assert_tcp("host", 1);
}
END_TEST

START_TEST(test_redis_url_percent_encoded)
{
    parse_ok("redis://us%65r:p%40ss%3Aw%2Fo%25rd@host:6379");
    ck_assert_str_eq(addr.user, "user");
    ck_assert_str_eq(addr.password, "p@ss:w/o%rd");
    assert_tcp("host", 6379);
    /* Lower-case hex digits too. */
    parse_ok("redis://:%2f%3a@host");
    ck_assert_str_eq(addr.password, "/:");
}
END_TEST

/* Passwords generated by tools often contain '@' unescaped: the last '@' before the host
 * ends the userinfo. */
START_TEST(test_redis_url_raw_at_in_password)
{
    parse_ok("redis://user:p@ss@host:6381");
    ck_assert_str_eq(addr.user, "user");
    ck_assert_str_eq(addr.password, "p@ss");
    assert_tcp("host", 6381);
    parse_ok("redis://:@@@h");
    ck_assert_str_eq(addr.password, "@@");
    assert_tcp("h", 6379);
}
END_TEST

START_TEST(test_redis_url_bad_percent)
{
    parse_fail("redis://:p%zzss@host");
    parse_fail("redis://:pass%4@host");
    parse_fail("redis://:pass%@host");
    /* A decoded NUL would silently truncate the password sent with AUTH. */
    parse_fail("redis://:a%00b@host");
}
END_TEST

START_TEST(test_redis_url_query_alone)
{
    parse_ok("redis://host:1?io_timeout=4s");
    ck_assert_int_eq(addr.io_timeout_ms, 4000);
    ck_assert_int_eq(addr.connect_timeout_ms, -1);
    ck_assert_int_eq(addr.db, -1);
    parse_ok("redis://host:1/5?connect_timeout=1500ms");
    ck_assert_int_eq(addr.db, 5);
    ck_assert_int_eq(addr.connect_timeout_ms, 1500);
}
END_TEST

START_TEST(test_redis_url_bad_query)
{
    const char *e = parse_fail("redis://host:1?foo=1");
    ck_assert_ptr_nonnull(strstr(e, "foo"));
    parse_fail("redis://host:1?connect_timeout=2x");
    parse_fail("redis://host:1?io_timeout=");
    parse_fail("redis://host:1?io_timeout");
    parse_fail("redis://host:1?connect_timeout=2s&password=x");
}
END_TEST

START_TEST(test_redis_url_bad_db)
{
    parse_fail("redis://host:1/abc");
    parse_fail("redis://host:1/-1");
    parse_fail("redis://host:1/1x");
    parse_fail("redis://host:1/1/2");
}
END_TEST

/* A db number that does not fit an int must be refused, not wrapped: 4294967296 would
 * otherwise become SELECT 0 and 4294967297 SELECT 1 — someone else's data. The query
 * form already caps db at 1000000. */
START_TEST(test_redis_url_db_overflow)
{
    parse_fail("redis://host:1?db=1000001");
    parse_fail("redis://host:1/4294967296");
    parse_fail("redis://host:1/4294967297");
    parse_fail("redis://host:1/99999999999");
}
END_TEST

/* ---- rejected forms ---- */

START_TEST(test_bad_ports)
{
    const char *e = parse_fail("host:70000");
    ck_assert_ptr_nonnull(strstr(e, "70000"));
    parse_fail("host:0");
    parse_fail("host:65536");
    parse_fail("host:abc");
    parse_fail("host:");
    parse_fail("host:-1");
    parse_fail("host:+80");
    parse_fail("host:80 ");
    parse_fail("host:999999");
    parse_fail("tcp://host:0");
    parse_fail("redis://host:70000");
    parse_fail("redis://host:/0");
    parse_fail("[::1]:0");
    parse_fail("[::1]:");
}
END_TEST

START_TEST(test_missing_host)
{
    parse_fail("");
    parse_fail(":6379");
    parse_fail("tcp://");
    parse_fail("redis://");
    parse_fail("redis://user:pass@");
    parse_fail("redis://user:pass@:6379");
    parse_fail("[]:6379");
    ck_assert_int_eq(us_redis_address_parse(NULL, &addr, err, sizeof err), -1);
}
END_TEST

START_TEST(test_bad_hosts)
{
    /* A bare IPv6 literal is ambiguous with host:port. */
    parse_fail("::1");
    parse_fail("fe80::1:6379");
    parse_fail("[::1");
    parse_fail("[::1]6379");
    parse_fail("ho st:1");
    parse_fail("host/path:1");
}
END_TEST

START_TEST(test_schemes_rejected)
{
    parse_fail("http://host:6379");
    parse_fail("unknown://host");
    parse_fail("redisss://host");
    parse_fail("rediss:/host");
}
END_TEST

START_TEST(test_unix_relative_rejected)
{
    parse_fail("unix:redis.sock");
    parse_fail("unix://redis.sock");
    parse_fail("unix:./redis.sock");
    parse_fail("unix:");
}
END_TEST

START_TEST(test_host_length)
{
    char host[300];
    char s[320];
    memset(host, 'a', sizeof host);
    host[255] = '\0';
    snprintf(s, sizeof s, "%s:6379", host);
    parse_ok(s);
    ck_assert_uint_eq(strlen(addr.host), 255);
    host[255] = 'a';
    host[256] = '\0';
    snprintf(s, sizeof s, "%s:6379", host);
    parse_fail(s);
    snprintf(s, sizeof s, "redis://%s", host);
    parse_fail(s);
}
END_TEST

/* ---- formatting ---- */

START_TEST(test_format)
{
    char out[512];
    parse_ok("redis.internal:7000");
    us_redis_address_format(&addr, out, sizeof out);
    ck_assert_str_eq(out, "redis.internal:7000");
    parse_ok("localhost");
    us_redis_address_format(&addr, out, sizeof out);
    ck_assert_str_eq(out, "localhost:6379");
    parse_ok("[::1]:6380");
    us_redis_address_format(&addr, out, sizeof out);
    ck_assert_str_eq(out, "[::1]:6380");
    parse_ok("unix:///var/run/redis.sock");
    us_redis_address_format(&addr, out, sizeof out);
    ck_assert_str_eq(out, "unix:/var/run/redis.sock");
}
END_TEST

/* Formatted addresses go to log lines: credentials must never appear. */
START_TEST(test_format_hides_credentials)
{
    char out[512];
    parse_ok("redis://admin:hunter2@cache:6390/4?connect_timeout=2s");
    us_redis_address_format(&addr, out, sizeof out);
    ck_assert_str_eq(out, "cache:6390");
    ck_assert_ptr_null(strstr(out, "hunter2"));
    parse_ok("redis://:p%40ss@cache");
    us_redis_address_format(&addr, out, sizeof out);
    ck_assert_str_eq(out, "cache:6379");
    ck_assert_ptr_null(strstr(out, "p@ss"));
}
END_TEST

START_TEST(test_format_truncates)
{
    char out[8];
    parse_ok("redis.internal:7000");
    memset(out, 'X', sizeof out);
    us_redis_address_format(&addr, out, sizeof out);
    ck_assert_str_eq(out, "redis.i");
}
END_TEST

static Suite *redis_address_suite(void)
{
    Suite *s = suite_create("redis_address");
    TCase *tc = tcase_create("accepted");
    tcase_add_test(tc, test_host_port);
    tcase_add_test(tc, test_redis_url_password_with_slash_and_question_mark);
    tcase_add_test(tc, test_host_alone_default_port);
    tcase_add_test(tc, test_tcp_scheme);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_unix);
    tcase_add_test(tc, test_unix_path_length);
    tcase_add_test(tc, test_redis_url_full);
    tcase_add_test(tc, test_rediss_url);
    tcase_add_test(tc, test_redis_url_minimal);
    tcase_add_test(tc, test_redis_url_userinfo_forms);
    tcase_add_test(tc, test_redis_url_percent_encoded);
    tcase_add_test(tc, test_redis_url_raw_at_in_password);
    tcase_add_test(tc, test_redis_url_query_alone);
    suite_add_tcase(s, tc);

    tc = tcase_create("rejected");
    tcase_add_test(tc, test_redis_url_bad_percent);
    tcase_add_test(tc, test_redis_url_bad_query);
    tcase_add_test(tc, test_redis_url_bad_db);
    tcase_add_test(tc, test_redis_url_db_overflow);
    tcase_add_test(tc, test_bad_ports);
    tcase_add_test(tc, test_missing_host);
    tcase_add_test(tc, test_bad_hosts);
    tcase_add_test(tc, test_schemes_rejected);
    tcase_add_test(tc, test_unix_relative_rejected);
    tcase_add_test(tc, test_host_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_format_hides_credentials);
    tcase_add_test(tc, test_format_truncates);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(redis_address_suite)
