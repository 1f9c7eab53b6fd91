/* Unit tests for src/config.c: the option tree read from libconfuse and JSON files,
 * environment overrides, validation and the error lines it produces. */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/config.h"

/* ---- helpers ---- */

/* The runner's own environment must not leak USTATUS_* or CENTRIFUGO_* values into the
 * tests, and each test starts from a clean slate even without fork mode. */
static void setup(void)
{
    us_test_clear_env();
}

static us_config *load_text(const char *suffix, const char *text, char *err, size_t err_len,
                            char *path, size_t path_len)
{
    us_test_write_temp(suffix, text, path, path_len);
    us_config *cfg = us_config_load(path, err, err_len);
    unlink(path);
    return cfg;
}

static us_config *load_ok(const char *suffix, const char *text)
{
    char err[512], path[64];
    us_config *cfg = load_text(suffix, text, err, sizeof err, path, sizeof path);
    ck_assert_msg(cfg != NULL, "unexpected error: %s", err);
    return cfg;
}

/* Asserts the load fails with "<file>:<line>: <option>: ..." (or "<file>: <option>: ..."
 * when line is 0) and that the text contains `reason`. */
static void expect_file_error(const char *suffix, const char *text, int line, const char *option,
                              const char *reason)
{
    char err[512], path[64], want[256];
    us_config *cfg = load_text(suffix, text, err, sizeof err, path, sizeof path);

    ck_assert_msg(cfg == NULL, "no error for %s", option);
    if (line > 0)
        snprintf(want, sizeof want, "%s:%d: %s: ", path, line, option);
    else
        snprintf(want, sizeof want, "%s: %s: ", path, option);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "error \"%s\" does not start with \"%s\"",
                  err, want);
    if (reason)
        ck_assert_msg(strstr(err, reason) != NULL, "error \"%s\" does not say \"%s\"", err, reason);
    ck_assert_msg(strchr(err, '\n') == NULL, "error has a newline");
}

/* Asserts loading `path` (may be NULL) fails with an error starting with `prefix`. */
static void expect_error_prefix(const char *path, const char *prefix, const char *reason)
{
    char err[512];
    us_config *cfg = us_config_load(path, err, sizeof err);

    ck_assert_msg(cfg == NULL, "no error, expected \"%s\"", prefix);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
                  "error \"%s\" does not start with \"%s\"", err, prefix);
    if (reason)
        ck_assert_msg(strstr(err, reason) != NULL, "error \"%s\" does not say \"%s\"", err, reason);
}

/* Asserts the load of `text` fails with exactly "<file>:<line>: <rest>" (line 0: no line
 * part) and that the message is one line. */
static void expect_error_line(const char *suffix, const char *text, int line, const char *rest)
{
    char err[1024], path[64], want[1024];
    us_config *cfg = load_text(suffix, text, err, sizeof err, path, sizeof path);

    ck_assert_msg(cfg == NULL, "no error, expected \"%s\"", rest);
    if (line > 0)
        snprintf(want, sizeof want, "%s:%d: %s", path, line, rest);
    else
        snprintf(want, sizeof want, "%s: %s", path, rest);
    ck_assert_msg(strcmp(err, want) == 0, "error \"%s\" is not \"%s\"", err, want);
}

static us_config *load_env_only(void)
{
    char err[512];
    us_config *cfg = us_config_load(NULL, err, sizeof err);
    ck_assert_msg(cfg != NULL, "unexpected error: %s", err);
    return cfg;
}

/* ---- defaults ---- */

static void assert_default_redis(const us_redis_config *r)
{
    ck_assert_uint_eq(r->address_count, 1);
    ck_assert_str_eq(r->address[0], "127.0.0.1:6379");
    ck_assert_str_eq(r->prefix, "centrifugo");
    ck_assert_str_eq(r->user, "");
    ck_assert_str_eq(r->password, "");
    ck_assert_int_eq(r->db, 0);
    ck_assert_int_eq(r->connect_timeout_ms, 1000);
    ck_assert_int_eq(r->io_timeout_ms, 4000);
    ck_assert_uint_eq(r->sentinel_address_count, 0);
    ck_assert_str_eq(r->sentinel_master_name, "");
    ck_assert_str_eq(r->sentinel_user, "");
    ck_assert_str_eq(r->sentinel_password, "");
    ck_assert_uint_eq(r->cluster_address_count, 0);
    ck_assert(!r->reuse_from_engine);
}

static void assert_defaults(const us_config *cfg)
{
    ck_assert_str_eq(cfg->http_api.key, "");
    ck_assert(!cfg->http_api.insecure);
    ck_assert_str_eq(cfg->http_api.handler_prefix, "/api");
    ck_assert_str_eq(cfg->http_api.error_mode, "");
    ck_assert_uint_eq(cfg->http_api.max_body_bytes, 1048576);
    ck_assert(cfg->user_status.enabled);
    ck_assert_int_eq(cfg->user_status.expire_interval_s, 2592000);
    ck_assert_str_eq(cfg->user_status.state_regex, "");
    ck_assert_uint_eq(cfg->user_status.max_users_per_request, 10000);
    ck_assert(!cfg->user_status.disable_for_client);
    assert_default_redis(&cfg->user_status.redis);
    ck_assert_str_eq(cfg->engine.type, "memory");
    assert_default_redis(&cfg->engine.redis);
    ck_assert_str_eq(cfg->client.handler_prefix, "/client");
    ck_assert_uint_eq(cfg->client.allowed_origins_count, 0);
    ck_assert_int_eq(cfg->client.min_update_interval_ms, 1000);
    ck_assert_str_eq(cfg->client.token.hmac_secret_key, "");
    ck_assert_str_eq(cfg->client.token.rsa_public_key, "");
    ck_assert_str_eq(cfg->client.token.ecdsa_public_key, "");
    ck_assert_str_eq(cfg->client.token.audience, "");
    ck_assert_str_eq(cfg->client.token.issuer, "");
    ck_assert_str_eq(cfg->client.token.user_id_claim, "");
    ck_assert_str_eq(cfg->centrifugo_proxy.handler_prefix, "/centrifugo");
    ck_assert_str_eq(cfg->centrifugo_proxy.key, "");
    ck_assert_str_eq(cfg->fcgi.listen, "");
    ck_assert_int_eq(cfg->fcgi.workers, 0);
    ck_assert_int_eq(cfg->fcgi.max_requests, 0);
    ck_assert_int_eq(cfg->fcgi.backlog, 1024);
    ck_assert_str_eq(cfg->log.level, "info");
    ck_assert_ptr_eq(us_config_store_redis(cfg), &cfg->user_status.redis);
}

START_TEST(test_defaults_without_file)
{
    us_config *cfg = load_env_only();
    assert_defaults(cfg);
    ck_assert_str_eq(cfg->path, "");
    us_config_free(cfg);
}
END_TEST

START_TEST(test_defaults_empty_files)
{
    us_config *cfg = load_ok(".conf", "");
    assert_defaults(cfg);
    ck_assert_str_ne(cfg->path, "");
    us_config_free(cfg);
    cfg = load_ok(".conf", "# only a comment\n\n");
    assert_defaults(cfg);
    us_config_free(cfg);
    cfg = load_ok(".json", "{}\n");
    assert_defaults(cfg);
    us_config_free(cfg);
    cfg = load_ok(".conf", "http_api {}\nuser_status { redis {} }\nengine {}\n");
    assert_defaults(cfg);
    us_config_free(cfg);
}
END_TEST

START_TEST(test_free_null)
{
    us_config_free(NULL);
}
END_TEST

/* ---- a file with every option ---- */

static const char full_conf[] =
    "# every option, none at its default\n"
    "http_api {\n"
    "  key = \"api-secret\"\n"
    "  insecure = true\n"
    "  handler_prefix = \"/v1/api/\"\n"
    "  error_mode = \"transport\"\n"
    "  max_body_bytes = 4096\n"
    "}\n"
    "user_status {\n"
    "  enabled = false\n"
    "  expire_interval = \"24h\"\n"
    "  state_regex = \"^(away|busy)$\"\n"
    "  max_users_per_request = 500\n"
    "  disable_for_client = true\n"
    "  redis {\n"
    "    address = {\"10.0.0.1:6379\", \"redis://u:p%40ss@10.0.0.2:6380/2\"}\n"
    "    prefix = \"us\"\n"
    "    user = \"alice\"\n"
    "    password = \"pw\"\n"
    "    db = 0\n"
    "    connect_timeout = \"250ms\"\n"
    "    io_timeout = \"2s\"\n"
    "    sentinel_address = {\"10.0.1.1:26379,10.0.1.2:26379\", \"10.0.2.1:26379\"}\n"
    "    sentinel_master_name = \"mymaster\"\n"
    "    sentinel_user = \"sentuser\"\n"
    "    sentinel_password = \"sentpw\"\n"
    "    cluster_address = {\"10.0.3.1:7000, 10.0.3.2:7000\"}\n"
    "    reuse_from_engine = true\n"
    "  }\n"
    "}\n"
    "engine {\n"
    "  type = \"redis\"\n"
    "  redis {\n"
    "    address = {\"unix:///run/redis.sock\"}\n"
    "    prefix = \"eng\"\n"
    "    user = \"bob\"\n"
    "    password = \"epw\"\n"
    "    db = 1\n"
    "    connect_timeout = \"1.5s\"\n"
    "    io_timeout = \"1m\"\n"
    "    sentinel_address = {}\n"
    "    sentinel_master_name = \"\"\n"
    "    sentinel_user = \"\"\n"
    "    sentinel_password = \"\"\n"
    "    cluster_address = {}\n"
    "    reuse_from_engine = false\n"
    "  }\n"
    "}\n"
    "client {\n"
    "  handler_prefix = \"/c\"\n"
    "  allowed_origins = {\"https://a.example\", \"https://b.example\"}\n"
    "  min_update_interval = \"0\"\n"
    "  token {\n"
    "    hmac_secret_key = \"hmac\"\n"
    "    rsa_public_key = \"rsa\"\n"
    "    ecdsa_public_key = \"ecdsa\"\n"
    "    audience = \"aud\"\n"
    "    issuer = \"iss\"\n"
    "    user_id_claim = \"uid\"\n"
    "  }\n"
    "}\n"
    "centrifugo_proxy {\n"
    "  handler_prefix = \"/proxy\"\n"
    "  key = \"proxy-key\"\n"
    "}\n"
    "fcgi {\n"
    "  listen = \"127.0.0.1:9000\"\n"
    "  workers = 8\n"
    "  max_requests = 1000\n"
    "  backlog = 64\n"
    "}\n"
    "log {\n"
    "  level = \"debug\"\n"
    "}\n";

/* The same tree as full_conf, in JSON. */
static const char full_json[] =
    "{\n"
    "  \"http_api\": {\"key\": \"api-secret\", \"insecure\": true,\n"
    "               \"handler_prefix\": \"/v1/api/\",\n"
    "               \"error_mode\": \"transport\", \"max_body_bytes\": 4096},\n"
    "  \"user_status\": {\n"
    "    \"enabled\": false, \"expire_interval\": \"24h\", \"state_regex\": \"^(away|busy)$\",\n"
    "    \"max_users_per_request\": 500, \"disable_for_client\": true,\n"
    "    \"redis\": {\n"
    "      \"address\": [\"10.0.0.1:6379\", \"redis://u:p%40ss@10.0.0.2:6380/2\"],\n"
    "      \"prefix\": \"us\", \"user\": \"alice\", \"password\": \"pw\", \"db\": 0,\n"
    "      \"connect_timeout\": \"250ms\", \"io_timeout\": \"2s\",\n"
    "      \"sentinel_address\": [\"10.0.1.1:26379,10.0.1.2:26379\", \"10.0.2.1:26379\"],\n"
    "      \"sentinel_master_name\": \"mymaster\", \"sentinel_user\": \"sentuser\",\n"
    "      \"sentinel_password\": \"sentpw\",\n"
    "      \"cluster_address\": [\"10.0.3.1:7000, 10.0.3.2:7000\"],\n"
    "      \"reuse_from_engine\": true\n"
    "    }\n"
    "  },\n"
    "  \"engine\": {\n"
    "    \"type\": \"redis\",\n"
    "    \"redis\": {\"address\": \"unix:///run/redis.sock\", \"prefix\": \"eng\",\n"
    "              \"user\": \"bob\",\n"
    "              \"password\": \"epw\", \"db\": 1.0, \"connect_timeout\": \"1.5s\",\n"
    "              \"io_timeout\": \"1m\", \"sentinel_address\": [], \"cluster_address\": [],\n"
    "              \"reuse_from_engine\": false}\n"
    "  },\n"
    "  \"client\": {\n"
    "    \"handler_prefix\": \"/c\",\n"
    "    \"allowed_origins\": [\"https://a.example\", \"https://b.example\"],\n"
    "    \"min_update_interval\": \"0\",\n"
    "    \"token\": {\"hmac_secret_key\": \"hmac\", \"rsa_public_key\": \"rsa\",\n"
    "              \"ecdsa_public_key\": \"ecdsa\", \"audience\": \"aud\", \"issuer\": \"iss\",\n"
    "              \"user_id_claim\": \"uid\"}\n"
    "  },\n"
    "  \"centrifugo_proxy\": {\"handler_prefix\": \"/proxy\", \"key\": \"proxy-key\"},\n"
    "  \"fcgi\": {\"listen\": \"127.0.0.1:9000\", \"workers\": 8, \"max_requests\": 1000,\n"
    "           \"backlog\": 64},\n"
    "  \"log\": {\"level\": \"debug\"}\n"
    "}\n";

static void assert_full(const us_config *cfg)
{
    const us_redis_config *r = &cfg->user_status.redis;
    const us_redis_config *e = &cfg->engine.redis;

    ck_assert_str_eq(cfg->http_api.key, "api-secret");
    ck_assert(cfg->http_api.insecure);
    ck_assert_str_eq(cfg->http_api.handler_prefix, "/v1/api");
    ck_assert_str_eq(cfg->http_api.error_mode, "transport");
    ck_assert_uint_eq(cfg->http_api.max_body_bytes, 4096);

    ck_assert(!cfg->user_status.enabled);
    ck_assert_int_eq(cfg->user_status.expire_interval_s, 86400);
    ck_assert_str_eq(cfg->user_status.state_regex, "^(away|busy)$");
    ck_assert_uint_eq(cfg->user_status.max_users_per_request, 500);
    ck_assert(cfg->user_status.disable_for_client);

    ck_assert_uint_eq(r->address_count, 2);
    ck_assert_str_eq(r->address[0], "10.0.0.1:6379");
    ck_assert_str_eq(r->address[1], "redis://u:p%40ss@10.0.0.2:6380/2");
    ck_assert_str_eq(r->prefix, "us");
    ck_assert_str_eq(r->user, "alice");
    ck_assert_str_eq(r->password, "pw");
    ck_assert_int_eq(r->db, 0); /* a cluster has db 0 only; engine.redis covers db */
    ck_assert_int_eq(r->connect_timeout_ms, 250);
    ck_assert_int_eq(r->io_timeout_ms, 2000);
    ck_assert_uint_eq(r->sentinel_address_count, 2);
    ck_assert_str_eq(r->sentinel_address[0], "10.0.1.1:26379,10.0.1.2:26379");
    ck_assert_str_eq(r->sentinel_address[1], "10.0.2.1:26379");
    ck_assert_str_eq(r->sentinel_master_name, "mymaster");
    ck_assert_str_eq(r->sentinel_user, "sentuser");
    ck_assert_str_eq(r->sentinel_password, "sentpw");
    ck_assert_uint_eq(r->cluster_address_count, 1);
    ck_assert_str_eq(r->cluster_address[0], "10.0.3.1:7000, 10.0.3.2:7000");
    ck_assert(r->reuse_from_engine);

    ck_assert_str_eq(cfg->engine.type, "redis");
    ck_assert_uint_eq(e->address_count, 1);
    ck_assert_str_eq(e->address[0], "unix:///run/redis.sock");
    ck_assert_str_eq(e->prefix, "eng");
    ck_assert_str_eq(e->user, "bob");
    ck_assert_str_eq(e->password, "epw");
    ck_assert_int_eq(e->db, 1);
    ck_assert_int_eq(e->connect_timeout_ms, 1500);
    ck_assert_int_eq(e->io_timeout_ms, 60000);
    ck_assert_uint_eq(e->sentinel_address_count, 0);
    ck_assert_uint_eq(e->cluster_address_count, 0);
    ck_assert(!e->reuse_from_engine);
    ck_assert_ptr_eq(us_config_store_redis(cfg), e);

    ck_assert_str_eq(cfg->client.handler_prefix, "/c");
    ck_assert_uint_eq(cfg->client.allowed_origins_count, 2);
    ck_assert_str_eq(cfg->client.allowed_origins[0], "https://a.example");
    ck_assert_str_eq(cfg->client.allowed_origins[1], "https://b.example");
    ck_assert_ptr_null(cfg->client.allowed_origins[2]);
    ck_assert_int_eq(cfg->client.min_update_interval_ms, 0);
    ck_assert_str_eq(cfg->client.token.hmac_secret_key, "hmac");
    ck_assert_str_eq(cfg->client.token.rsa_public_key, "rsa");
    ck_assert_str_eq(cfg->client.token.ecdsa_public_key, "ecdsa");
    ck_assert_str_eq(cfg->client.token.audience, "aud");
    ck_assert_str_eq(cfg->client.token.issuer, "iss");
    ck_assert_str_eq(cfg->client.token.user_id_claim, "uid");

    ck_assert_str_eq(cfg->centrifugo_proxy.handler_prefix, "/proxy");
    ck_assert_str_eq(cfg->centrifugo_proxy.key, "proxy-key");

    ck_assert_str_eq(cfg->fcgi.listen, "127.0.0.1:9000");
    ck_assert_int_eq(cfg->fcgi.workers, 8);
    ck_assert_int_eq(cfg->fcgi.max_requests, 1000);
    ck_assert_int_eq(cfg->fcgi.backlog, 64);
    ck_assert_str_eq(cfg->log.level, "debug");
}

START_TEST(test_full_conf)
{
    us_config *cfg = load_ok(".conf", full_conf);
    assert_full(cfg);
    us_config_free(cfg);
}
END_TEST

START_TEST(test_full_json_same_tree)
{
    us_config *cfg = load_ok(".json", full_json);
    assert_full(cfg);
    us_config_free(cfg);
}
END_TEST

START_TEST(test_single_string_lists)
{
    us_config *cfg = load_ok(".conf",
                             "user_status { redis {\n"
                             "  address = \"10.1.1.1:6379\"\n"
                             "  sentinel_address = \"10.0.1.1:26379,10.0.1.2:26379\"\n"
                             "  sentinel_master_name = \"m\"\n"
                             "  cluster_address = \"10.0.3.1:7000\"\n"
                             "} }\n"
                             "client { allowed_origins = \"https://only.example\" }\n");
    const us_redis_config *r = &cfg->user_status.redis;
    ck_assert_uint_eq(r->address_count, 1);
    ck_assert_str_eq(r->address[0], "10.1.1.1:6379");
    ck_assert_uint_eq(r->sentinel_address_count, 1);
    ck_assert_str_eq(r->sentinel_address[0], "10.0.1.1:26379,10.0.1.2:26379");
    ck_assert_uint_eq(r->cluster_address_count, 1);
    ck_assert_uint_eq(cfg->client.allowed_origins_count, 1);
    ck_assert_str_eq(cfg->client.allowed_origins[0], "https://only.example");
    us_config_free(cfg);

    /* JSON: a string where an array is expected. */
    cfg = load_ok(".json", "{\"client\": {\"allowed_origins\": \"https://j.example\"}}");
    ck_assert_uint_eq(cfg->client.allowed_origins_count, 1);
    ck_assert_str_eq(cfg->client.allowed_origins[0], "https://j.example");
    us_config_free(cfg);
}
END_TEST

START_TEST(test_list_assignment_replaces_default)
{
    us_config *cfg = load_ok(".conf",
                             "user_status { redis {\n"
                             "  address = \"a.example:1\"\n"
                             "  address += \"b.example:2\"\n"
                             "} }\n");
    ck_assert_uint_eq(cfg->user_status.redis.address_count, 2);
    ck_assert_str_eq(cfg->user_status.redis.address[0], "a.example:1");
    ck_assert_str_eq(cfg->user_status.redis.address[1], "b.example:2");
    us_config_free(cfg);
}
END_TEST

START_TEST(test_handler_prefix_normalised)
{
    us_config *cfg = load_ok(".conf",
                             "http_api { handler_prefix = \"/\" }\n"
                             "client { handler_prefix = \"/c//\" }\n"
                             "centrifugo_proxy { handler_prefix = \"/p\" }\n");
    ck_assert_str_eq(cfg->http_api.handler_prefix, ""); /* root */
    ck_assert_str_eq(cfg->client.handler_prefix, "/c");
    ck_assert_str_eq(cfg->centrifugo_proxy.handler_prefix, "/p");
    us_config_free(cfg);
}
END_TEST

START_TEST(test_misc_values)
{
    us_config *cfg = load_ok(".conf",
                             "user_status { expire_interval = \"1500ms\" }\n"
                             "log { level = \"WARNING\" }\n"
                             "http_api { insecure = yes }\n");
    ck_assert_int_eq(cfg->user_status.expire_interval_s, 1); /* rounded down */
    ck_assert_str_eq(cfg->log.level, "warn");
    ck_assert(cfg->http_api.insecure);
    us_config_free(cfg);
}
END_TEST

/* ---- JSON: the seed's blocks and a Centrifugo v6 config.json ---- */

START_TEST(test_json_seed_blocks)
{
    us_config *cfg = load_ok(".json",
                             "{\n"
                             "\"user_status\": {\n"
                             "\"enabled\": true,\n"
                             "\"redis\": {\n"
                             "\"address\": \"localhost:6379\"\n"
                             "}\n"
                             "}\n"
                             "}\n");
    ck_assert(cfg->user_status.enabled);
    ck_assert_uint_eq(cfg->user_status.redis.address_count, 1);
    ck_assert_str_eq(cfg->user_status.redis.address[0], "localhost:6379");
    us_config_free(cfg);

    cfg = load_ok(".json",
                  "{\n"
                  "\"engine\": {\n"
                  "\"type\": \"redis\"\n"
                  "},\n"
                  "\"user_status\": {\n"
                  "\"enabled\": true,\n"
                  "\"redis\": {\n"
                  "\"reuse_from_engine\": true\n"
                  "}\n"
                  "}\n"
                  "}\n");
    ck_assert_str_eq(cfg->engine.type, "redis");
    ck_assert(cfg->user_status.redis.reuse_from_engine);
    ck_assert_ptr_eq(us_config_store_redis(cfg), &cfg->engine.redis);
    ck_assert_str_eq(us_config_store_redis(cfg)->address[0], "127.0.0.1:6379");
    us_config_free(cfg);

    cfg = load_ok(".json", "{\n\"user_status\": {\n\"expire_interval\": \"24h\"\n}\n}\n");
    ck_assert_int_eq(cfg->user_status.expire_interval_s, 86400);
    us_config_free(cfg);
}
END_TEST

/* A complete Centrifugo v6 config.json (option names from Centrifugo v6's
 * internal/config and internal/configtypes): every section ustatus skips, and in the
 * sections it reads the Centrifugo options it accepts without effect. */
static const char centrifugo_v6_json[] =
    "{\n"
    "  \"pid_file\": \"/run/centrifugo.pid\",\n"
    "  \"enable_unreleased_features\": false,\n"
    "  \"http_server\": {\"address\": \"0.0.0.0\", \"port\": 8000, \"internal_port\": \"9000\",\n"
    "                  \"tls\": {\"enabled\": false}, \"tls_autocert\": {\"enabled\": false},\n"
    "                  \"http3\": {\"enabled\": false}},\n"
    "  \"log\": {\"level\": \"trace\", \"file\": \"\"},\n"
    "  \"engine\": {\n"
    "    \"type\": \"redis\",\n"
    "    \"redis\": {\"address\": [\"redis://127.0.0.1:6379\"], \"prefix\": \"cf\", \"db\": null,\n"
    "              \"connect_timeout\": \"1s\", \"io_timeout\": \"4s\", \"user\": \"\",\n"
    "              \"password\": \"\", \"client_name\": \"centrifugo\", \"force_resp2\": false,\n"
    "              \"cluster_address\": [], \"sentinel_address\": [], \"sentinel_user\": \"\",\n"
    "              \"sentinel_password\": \"\", \"sentinel_master_name\": \"\",\n"
    "              \"sentinel_client_name\": \"\", \"replica_client\": {\"enabled\": false},\n"
    "              \"history_use_lists\": false, \"presence_ttl\": \"60s\",\n"
    "              \"presence_hash_field_ttl\": false, \"presence_user_mapping\": false,\n"
    "              \"tls\": {\"enabled\": false, \"cert_pem\": \"\", \"cert_pem_b64\": \"\",\n"
    "                      \"cert_pem_file\": \"\", \"key_pem\": \"\", \"key_pem_b64\": \"\",\n"
    "                      \"key_pem_file\": \"\", \"server_ca_pem\": \"\",\n"
    "                      \"server_ca_pem_b64\": \"\", \"server_ca_pem_file\": \"\",\n"
    "                      \"client_ca_pem\": \"\", \"client_ca_pem_b64\": \"\",\n"
    "                      \"client_ca_pem_file\": \"\", \"insecure_skip_verify\": false,\n"
    "                      \"server_name\": \"\"},\n"
    "              \"sentinel_tls\": {\"enabled\": false}}\n"
    "  },\n"
    "  \"broker\": {\"enabled\": false, \"type\": \"nats\", \"nats\": {\"url\": "
    "\"nats://n:4222\"}},\n"
    "  \"presence_manager\": {\"enabled\": false},\n"
    "  \"client\": {\n"
    "    \"allowed_origins\": [\"https://example.com\"],\n"
    "    \"token\": {\"hmac_secret_key\": \"tok-secret\", \"rsa_public_key\": \"\",\n"
    "              \"ecdsa_public_key\": \"\", \"jwks_public_endpoint\": \"\", \"audience\": "
    "\"\",\n"
    "              \"audience_regex\": \"\", \"issuer\": \"\", \"issuer_regex\": \"\",\n"
    "              \"user_id_claim\": \"\"},\n"
    "    \"subscription_token\": {\"enabled\": true, \"hmac_secret_key\": \"sub-secret\"},\n"
    "    \"proxy\": {\"connect\": {\"enabled\": true, \"endpoint\": \"http://app/connect\",\n"
    "                            \"timeout\": \"1s\", \"http_headers\": [\"Cookie\"]},\n"
    "              \"refresh\": {\"enabled\": false}},\n"
    "    \"allow_anonymous_connect_without_token\": false,\n"
    "    \"disallow_anonymous_connection_tokens\": true,\n"
    "    \"ping_interval\": \"25s\", \"pong_timeout\": \"8s\",\n"
    "    \"expired_close_delay\": \"25s\", \"expired_sub_close_delay\": \"25s\",\n"
    "    \"stale_close_delay\": \"10s\", \"channel_limit\": 128, \"queue_max_size\": 1048576,\n"
    "    \"presence_update_interval\": \"27s\", \"concurrency\": 0,\n"
    "    \"channel_position_check_delay\": \"40s\", \"channel_position_max_time_lag\": \"0s\",\n"
    "    \"connection_limit\": 0, \"user_connection_limit\": 0, \"connection_rate_limit\": 0,\n"
    "    \"connect_include_server_time\": false, \"history_max_publication_limit\": 300,\n"
    "    \"recovery_max_publication_limit\": 300,\n"
    "    \"insecure_skip_token_signature_verify\": false, \"user_id_http_header\": \"\",\n"
    "    \"insecure\": false,\n"
    "    \"subscribe_to_user_personal_channel\": {\"enabled\": false},\n"
    "    \"connect_code_to_unidirectional_disconnect\": {\"enabled\": false, \"transforms\": []}\n"
    "  },\n"
    "  \"channel\": {\n"
    "    \"without_namespace\": {\"presence\": true, \"join_leave\": true},\n"
    "    \"namespaces\": [{\"name\": \"chat\", \"presence\": true, \"history_size\": 100,\n"
    "                    \"history_ttl\": \"300s\", \"allow_subscribe_for_client\": true},\n"
    "                   {\"name\": \"news\", \"allow_history_for_subscriber\": true}],\n"
    "    \"proxy\": {\"subscribe\": {\"endpoint\": \"http://app/subscribe\"}},\n"
    "    \"history_meta_ttl\": \"720h\", \"max_length\": 255\n"
    "  },\n"
    "  \"rpc\": {\"without_namespace\": {}, \"namespaces\": [], \"ping\": {\"enabled\": true}},\n"
    "  \"proxies\": [{\"name\": \"app\", \"endpoint\": \"http://app/proxy\"}],\n"
    "  \"http_api\": {\"disabled\": false, \"handler_prefix\": \"/api\", \"key\": \"api-key\",\n"
    "               \"error_mode\": \"\", \"external\": true, \"insecure\": false},\n"
    "  \"grpc_api\": {\"enabled\": false, \"port\": 10000, \"key\": \"grpc-key\"},\n"
    "  \"consumers\": [{\"name\": \"kafka\", \"enabled\": false, \"type\": \"kafka\",\n"
    "                  \"kafka\": {\"brokers\": [\"k:9092\"], \"topics\": [\"t\"]}}],\n"
    "  \"websocket\": {\"disabled\": false, \"compression\": true},\n"
    "  \"sse\": {\"enabled\": true}, \"http_stream\": {\"enabled\": true},\n"
    "  \"webtransport\": {\"enabled\": false}, \"uni_sse\": {\"enabled\": false},\n"
    "  \"uni_http_stream\": {\"enabled\": false}, \"uni_websocket\": {\"enabled\": false},\n"
    "  \"uni_grpc\": {\"enabled\": false}, \"emulation\": {\"handler_prefix\": \"/emulation\"},\n"
    "  \"admin\": {\"enabled\": true, \"password\": \"pw\", \"secret\": \"s\", \"external\": "
    "false},\n"
    "  \"prometheus\": {\"enabled\": true, \"instrument_http_handlers\": true},\n"
    "  \"health\": {\"enabled\": true}, \"swagger\": {\"enabled\": false},\n"
    "  \"debug\": {\"enabled\": false}, \"opentelemetry\": null,\n"
    "  \"graphite\": {\"enabled\": false}, \"usage_stats\": {\"disabled\": true},\n"
    "  \"node\": {\"name\": \"n1\"}, \"shutdown\": {\"timeout\": \"30s\"},\n"
    "  \"user_status\": {\"enabled\": true, \"redis\": {\"reuse_from_engine\": true}}\n"
    "}\n";

START_TEST(test_json_centrifugo_v6)
{
    us_config *cfg = load_ok(".json", centrifugo_v6_json);
    ck_assert_str_eq(cfg->log.level, "debug");
    ck_assert_str_eq(cfg->http_api.key, "api-key");
    ck_assert_str_eq(cfg->client.token.hmac_secret_key, "tok-secret");
    ck_assert_uint_eq(cfg->client.allowed_origins_count, 1);
    ck_assert_str_eq(cfg->engine.type, "redis");
    ck_assert_str_eq(cfg->engine.redis.address[0], "redis://127.0.0.1:6379");
    ck_assert_str_eq(cfg->engine.redis.prefix, "cf");
    ck_assert_int_eq(cfg->engine.redis.db, 0); /* null leaves the default */
    ck_assert_ptr_eq(us_config_store_redis(cfg), &cfg->engine.redis);
    ck_assert_str_eq(cfg->engine.redis.client_name, "centrifugo");
    ck_assert(!cfg->engine.redis.tls.enabled);
    ck_assert_uint_eq(cfg->notice_count, 0); /* all of it is known */
    us_config_free(cfg);
}
END_TEST

START_TEST(test_json_byte_order_mark)
{
    us_config *cfg = load_ok(".json", "\xef\xbb\xbf{\"http_api\": {\"key\": \"k\"}}");
    ck_assert_str_eq(cfg->http_api.key, "k");
    us_config_free(cfg);
}
END_TEST

/* ---- environment ---- */

START_TEST(test_env_ustatus_prefix)
{
    us_test_env("USTATUS_HTTP_API_KEY", "env-key");
    us_test_env("USTATUS_USER_STATUS_REDIS_ADDRESS", "10.9.9.9:6379");
    us_test_env("USTATUS_FCGI_WORKERS", "4");
    us_test_env("USTATUS_USER_STATUS_EXPIRE_INTERVAL", "1h");
    us_test_env("USTATUS_CLIENT_TOKEN_HMAC_SECRET_KEY", "s3");
    us_test_env("USTATUS_ENGINE_REDIS_DB", "7");
    us_test_env("USTATUS_CENTRIFUGO_PROXY_KEY", "pk");
    us_test_env("USTATUS_HTTP_API_HANDLER_PREFIX", "/x/");
    us_config *cfg = load_env_only();
    ck_assert_str_eq(cfg->http_api.key, "env-key");
    ck_assert_uint_eq(cfg->user_status.redis.address_count, 1);
    ck_assert_str_eq(cfg->user_status.redis.address[0], "10.9.9.9:6379");
    ck_assert_int_eq(cfg->fcgi.workers, 4);
    ck_assert_int_eq(cfg->user_status.expire_interval_s, 3600);
    ck_assert_str_eq(cfg->client.token.hmac_secret_key, "s3");
    ck_assert_int_eq(cfg->engine.redis.db, 7);
    ck_assert_int_eq(cfg->user_status.redis.db, 0);
    ck_assert_str_eq(cfg->centrifugo_proxy.key, "pk");
    ck_assert_str_eq(cfg->http_api.handler_prefix, "/x");
    us_config_free(cfg);
}
END_TEST

START_TEST(test_env_centrifugo_prefix_and_precedence)
{
    us_test_env("CENTRIFUGO_HTTP_API_KEY", "cf-key");
    us_test_env("CENTRIFUGO_LOG_LEVEL", "error");
    us_config *cfg = load_env_only();
    ck_assert_str_eq(cfg->http_api.key, "cf-key");
    ck_assert_str_eq(cfg->log.level, "error");
    us_config_free(cfg);

    us_test_env("USTATUS_HTTP_API_KEY", "us-key");
    cfg = load_env_only();
    ck_assert_str_eq(cfg->http_api.key, "us-key"); /* USTATUS_ wins */
    ck_assert_str_eq(cfg->log.level, "error");
    us_config_free(cfg);
}
END_TEST

START_TEST(test_env_overrides_file)
{
    us_test_env("USTATUS_HTTP_API_KEY", "from-env");
    us_test_env("USTATUS_HTTP_API_ERROR_MODE", ""); /* an empty value is a value */
    us_config *cfg =
        load_ok(".conf", "http_api { key = \"from-file\" error_mode = \"transport\" }\n");
    ck_assert_str_eq(cfg->http_api.key, "from-env");
    ck_assert_str_eq(cfg->http_api.error_mode, "");
    us_config_free(cfg);

    cfg = load_ok(".json", "{\"http_api\": {\"key\": \"from-json\"}}");
    ck_assert_str_eq(cfg->http_api.key, "from-env");
    us_config_free(cfg);
}
END_TEST

START_TEST(test_env_lists)
{
    us_test_env("USTATUS_CLIENT_ALLOWED_ORIGINS",
                "https://a.example  https://b.example\thttps://c.example");
    us_test_env("CENTRIFUGO_ENGINE_REDIS_ADDRESS", "10.0.0.1:6379 10.0.0.2:6379");
    us_test_env("USTATUS_USER_STATUS_REDIS_CLUSTER_ADDRESS",
                "10.0.3.1:7000,10.0.3.2:7000 10.0.4.1:7000");
    us_config *cfg = load_ok(".conf", "client { allowed_origins = {\"https://file.example\"} }\n");
    ck_assert_uint_eq(cfg->client.allowed_origins_count, 3);
    ck_assert_str_eq(cfg->client.allowed_origins[0], "https://a.example");
    ck_assert_str_eq(cfg->client.allowed_origins[2], "https://c.example");
    ck_assert_uint_eq(cfg->engine.redis.address_count, 2);
    ck_assert_str_eq(cfg->engine.redis.address[1], "10.0.0.2:6379");
    ck_assert_uint_eq(cfg->user_status.redis.cluster_address_count, 2);
    ck_assert_str_eq(cfg->user_status.redis.cluster_address[0], "10.0.3.1:7000,10.0.3.2:7000");
    us_config_free(cfg);

    us_test_env("USTATUS_CLIENT_ALLOWED_ORIGINS", "");
    cfg = load_env_only();
    ck_assert_uint_eq(cfg->client.allowed_origins_count, 0);
    us_config_free(cfg);
}
END_TEST

static const struct {
    const char *text;
    bool value;
} env_bools[] = {
    {"true", true}, {"false", false}, {"1", true},    {"0", false},   {"yes", true},
    {"no", false},  {"on", true},     {"off", false}, {"TRUE", true}, {"Off", false},
};

START_TEST(test_env_booleans)
{
    us_test_env("USTATUS_HTTP_API_INSECURE", env_bools[_i].text);
    us_test_env("USTATUS_USER_STATUS_ENABLED", env_bools[_i].text);
    us_config *cfg = load_env_only();
    ck_assert_msg(cfg->http_api.insecure == env_bools[_i].value, "%s", env_bools[_i].text);
    ck_assert_msg(cfg->user_status.enabled == env_bools[_i].value, "%s", env_bools[_i].text);
    us_config_free(cfg);
}
END_TEST

START_TEST(test_env_invalid_values)
{
    us_test_env("USTATUS_FCGI_WORKERS", "many");
    expect_error_prefix(NULL, "environment USTATUS_FCGI_WORKERS: ", "invalid integer \"many\"");
    us_test_env("USTATUS_FCGI_WORKERS", NULL);

    us_test_env("USTATUS_HTTP_API_INSECURE", "maybe");
    expect_error_prefix(NULL, "environment USTATUS_HTTP_API_INSECURE: ", "invalid boolean");
    us_test_env("USTATUS_HTTP_API_INSECURE", NULL);

    us_test_env("CENTRIFUGO_USER_STATUS_EXPIRE_INTERVAL", "12x");
    expect_error_prefix(
        NULL, "environment CENTRIFUGO_USER_STATUS_EXPIRE_INTERVAL: ", "invalid duration \"12x\"");
    us_test_env("CENTRIFUGO_USER_STATUS_EXPIRE_INTERVAL", NULL);

    us_test_env("CENTRIFUGO_FCGI_BACKLOG", "0");
    expect_error_prefix(NULL, "environment CENTRIFUGO_FCGI_BACKLOG: ", "at least 1");
    us_test_env("CENTRIFUGO_FCGI_BACKLOG", NULL);

    /* An error in an environment value also wins over a valid file. */
    us_test_env("USTATUS_ENGINE_TYPE", "nats");
    char path[64];
    us_test_write_temp(".conf", "engine { type = \"redis\" }\n", path, sizeof path);
    expect_error_prefix(path, "environment USTATUS_ENGINE_TYPE: ", "\"nats\"");
    unlink(path);
}
END_TEST

START_TEST(test_env_secret_not_echoed)
{
    char err[512];
    us_test_env("USTATUS_USER_STATUS_REDIS_ADDRESS", "redis://u:sekret@10.0.0.1:99999");
    us_config *cfg = us_config_load(NULL, err, sizeof err);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strncmp(err, "environment USTATUS_USER_STATUS_REDIS_ADDRESS: ", 47) == 0, "%s",
                  err);
    ck_assert_msg(strstr(err, "invalid port") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "sekret") == NULL, "password echoed: %s", err);
}
END_TEST

START_TEST(test_env_error_is_one_line)
{
    char err[512];
    us_test_env("USTATUS_FCGI_WORKERS", "1\n2");
    us_config *cfg = us_config_load(NULL, err, sizeof err);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(test_env_cross_field_names_variable)
{
    us_test_env("USTATUS_USER_STATUS_REDIS_REUSE_FROM_ENGINE", "true");
    expect_error_prefix(NULL, "environment USTATUS_USER_STATUS_REDIS_REUSE_FROM_ENGINE: ",
                        "user_status.redis.reuse_from_engine: requires engine.type \"redis\"");
    us_test_env("USTATUS_ENGINE_TYPE", "redis");
    us_config *cfg = load_env_only();
    ck_assert_ptr_eq(us_config_store_redis(cfg), &cfg->engine.redis);
    us_config_free(cfg);
}
END_TEST

/* ---- validation errors: libconfuse files (file:line: option: reason) ---- */

START_TEST(test_err_unknown_option)
{
    /* SPEC §4's wording: the option's true path, and the closest known name. */
    expect_error_line(".conf", "http_api {\n  key = \"k\"\n  kee = \"k\"\n}\n", 3,
                      "unknown option http_api.kee; did you mean key?");
    expect_error_line(".conf", "user_status {\n  redis {\n\n    adress = \"x\"\n  }\n}\n", 4,
                      "unknown option user_status.redis.adress; did you mean address?");
    /* Nothing close: no suggestion. */
    expect_error_line(".conf", "engine {\n  redis {\n    use_tls = true\n  }\n}\n", 3,
                      "unknown option engine.redis.use_tls");
    /* Close to a section of ustatus at the top level: a typo, not someone else's section. */
    expect_error_line(".conf", "\n\nuser_statuss {\n enabled = true\n}\n", 3,
                      "unknown option user_statuss; did you mean user_status?");
}
END_TEST

START_TEST(test_err_bad_duration)
{
    expect_file_error(".conf", "user_status {\n  expire_interval = \"12x\"\n}\n", 2,
                      "user_status.expire_interval", "invalid duration \"12x\"");
    expect_file_error(".conf", "user_status {\n  expire_interval = \"500ms\"\n}\n", 2,
                      "user_status.expire_interval", "at least 1s");
    expect_file_error(".conf", "user_status { redis {\n\n io_timeout = \"0\"\n} }\n", 3,
                      "user_status.redis.io_timeout", "at least 1ms");
    expect_file_error(".conf", "engine { redis {\n connect_timeout = \"-1s\"\n} }\n", 2,
                      "engine.redis.connect_timeout", "invalid duration");
    expect_file_error(".conf", "client {\n min_update_interval = \"10\"\n}\n", 2,
                      "client.min_update_interval", "invalid duration \"10\"");
}
END_TEST

START_TEST(test_err_bad_address)
{
    expect_file_error(".conf", "user_status {\n redis {\n  address = \"tcp://\"\n }\n}\n", 3,
                      "user_status.redis.address", "invalid address");
    expect_file_error(".conf", "user_status { redis {\n  address = {\"a:1\",\n  \"\"}\n} }\n", 3,
                      "user_status.redis.address", "empty address");
    expect_file_error(".conf",
                      "user_status { redis {\n sentinel_master_name = \"m\"\n"
                      " sentinel_address = {\"s1:26379,,s2:26379\"}\n} }\n",
                      3, "user_status.redis.sentinel_address", "empty address");
    expect_file_error(".conf",
                      "engine { redis {\n\n cluster_address = \"n1:7000, ftp://n2\"\n} }\n", 3,
                      "engine.redis.cluster_address", "invalid address");
}
END_TEST

START_TEST(test_err_bad_port)
{
    expect_file_error(".conf",
                      "user_status {\n redis {\n  address = {\"a:1\", \"b:70000\"}\n }\n}\n", 3,
                      "user_status.redis.address", "invalid port \"70000\"");
    expect_file_error(".conf", "user_status { redis {\n cluster_address = \"n1:7000,n2:0\"\n} }\n",
                      2, "user_status.redis.cluster_address", "invalid port \"0\"");
}
END_TEST

START_TEST(test_err_sentinel_master_name)
{
    /* Located at sentinel_address: the option that made the name necessary. */
    expect_file_error(
        ".conf", "user_status {\n redis {\n  sentinel_address = \"s1:26379,s2:26379\"\n }\n}\n", 3,
        "user_status.redis.sentinel_master_name", "required when sentinel_address");
    expect_file_error(
        ".conf", "engine {\n type = \"redis\"\n redis {\n\n  sentinel_address = \"s:1\"\n }\n}\n",
        5, "engine.redis.sentinel_master_name", "required");
    expect_file_error(".json",
                      "{\"user_status\": {\"redis\": {\"sentinel_address\": [\"s1:26379\"]}}}", 0,
                      "user_status.redis.sentinel_master_name", "required");
}
END_TEST

START_TEST(test_err_db_with_cluster)
{
    /* Located at db when it was set, the option that is wrong with a cluster. */
    expect_file_error(".conf",
                      "user_status {\n redis {\n  cluster_address = \"c1:7000\"\n  db = 2\n }\n}\n",
                      4, "user_status.redis.db", "must be 0 with cluster_address");
}
END_TEST

START_TEST(test_wait_replicas)
{
    us_config *cfg = load_ok(".conf", "user_status { redis { address = \"r:1\" } }\n");
    ck_assert_int_eq(cfg->user_status.redis.wait_replicas, 0);
    ck_assert_int_eq(cfg->user_status.redis.wait_timeout_ms, 500);
    us_config_free(cfg);
    cfg = load_ok(".json", "{\"user_status\": {\"redis\": {\"wait_replicas\": 2, "
                           "\"wait_timeout\": \"250ms\", \"io_timeout\": \"1s\"}}}");
    ck_assert_int_eq(cfg->user_status.redis.wait_replicas, 2);
    ck_assert_int_eq(cfg->user_status.redis.wait_timeout_ms, 250);
    us_config_free(cfg);
    us_test_env("USTATUS_ENGINE_REDIS_WAIT_REPLICAS", "1");
    cfg = load_ok(".conf", "");
    ck_assert_int_eq(cfg->engine.redis.wait_replicas, 1);
    us_config_free(cfg);
    unsetenv("USTATUS_ENGINE_REDIS_WAIT_REPLICAS");

    /* WAIT blocks inside the exchange: as long as io_timeout, the exchange would time out
     * first. Located at wait_timeout, or at io_timeout when only that was written. */
    expect_file_error(".conf",
                      "user_status {\n redis {\n  wait_replicas = 1\n  wait_timeout = \"4s\"\n"
                      " }\n}\n",
                      4, "user_status.redis.wait_timeout", "must be shorter than io_timeout");
    expect_file_error(".conf",
                      "user_status {\n redis {\n  wait_replicas = 1\n  io_timeout = \"300ms\"\n"
                      " }\n}\n",
                      4, "user_status.redis.wait_timeout", "must be shorter than io_timeout");
    /* without wait_replicas, wait_timeout has nothing to bound */
    cfg = load_ok(".conf", "user_status { redis { io_timeout = \"100ms\" } }\n");
    us_config_free(cfg);
    expect_error_line(".conf", "engine { redis {\n wait_replicas = 101\n} }\n", 2,
                      "engine.redis.wait_replicas: must be between 0 and 100, got 101");
    expect_error_line(".conf", "engine { redis {\n wait_replicas = -1\n} }\n", 2,
                      "engine.redis.wait_replicas: must be between 0 and 100, got -1");
}
END_TEST

START_TEST(test_err_reuse_without_redis_engine)
{
    expect_file_error(".conf",
                      "engine {\n  type = \"memory\"\n}\nuser_status {\n  redis {\n"
                      "    reuse_from_engine = true\n  }\n}\n",
                      6, "user_status.redis.reuse_from_engine", "requires engine.type \"redis\"");
    expect_file_error(".json", "{\"user_status\": {\"redis\": {\"reuse_from_engine\": true}}}", 0,
                      "user_status.redis.reuse_from_engine", "requires engine.type");
    expect_file_error(".conf",
                      "engine {\n type = \"redis\"\n redis {\n  reuse_from_engine = true\n }\n}\n",
                      4, "engine.redis.reuse_from_engine", "only meaningful in user_status.redis");
}
END_TEST

START_TEST(test_err_no_redis_address)
{
    /* libconfuse calls no validator for an empty list, so no line is known here. */
    expect_file_error(".conf", "user_status {\n redis {\n  address = {}\n }\n}\n", 0,
                      "user_status.redis.address", "no Redis configured");
    expect_file_error(".conf",
                      "engine {\n type = \"redis\"\n redis { address = {} }\n}\n"
                      "user_status {\n redis {\n  reuse_from_engine = true\n }\n}\n",
                      0, "engine.redis.address", "no Redis configured");
    /* A disabled feature needs no Redis. */
    us_config *cfg =
        load_ok(".conf", "user_status {\n enabled = false\n redis { address = {} }\n}\n");
    ck_assert_uint_eq(cfg->user_status.redis.address_count, 0);
    us_config_free(cfg);
}
END_TEST

START_TEST(test_err_error_mode)
{
    expect_file_error(".conf", "http_api {\n\n  error_mode = \"http\"\n}\n", 3,
                      "http_api.error_mode", "must be \"\" or \"transport\"");
}
END_TEST

START_TEST(test_err_regex)
{
    expect_file_error(".conf", "user_status {\n  state_regex = \"^(away\"\n}\n", 2,
                      "user_status.state_regex", "invalid regular expression");
    expect_file_error(".json", "{\"user_status\": {\"state_regex\": \"[a-\"}}", 0,
                      "user_status.state_regex", "invalid regular expression");
}
END_TEST

START_TEST(test_err_enums_and_prefixes)
{
    expect_file_error(".conf", "engine {\n type = \"nats\"\n}\n", 2, "engine.type",
                      "must be \"memory\" or \"redis\"");
    expect_file_error(".conf", "log {\n level = \"verbose\"\n}\n", 2, "log.level", "\"verbose\"");
    expect_file_error(".conf", "http_api {\n handler_prefix = \"api\"\n}\n", 2,
                      "http_api.handler_prefix", "must start with '/'");
    expect_file_error(".conf", "client {\n handler_prefix = \"/a b\"\n}\n", 2,
                      "client.handler_prefix", "without spaces");
    expect_file_error(".conf", "centrifugo_proxy {\n handler_prefix = \"\"\n}\n", 2,
                      "centrifugo_proxy.handler_prefix", "must start with '/'");
}
END_TEST

START_TEST(test_err_integer_ranges)
{
    expect_file_error(".conf", "fcgi {\n workers = 1025\n}\n", 2, "fcgi.workers",
                      "between 0 and 1024");
    expect_file_error(".conf", "fcgi {\n workers = -1\n}\n", 2, "fcgi.workers",
                      "between 0 and 1024");
    expect_file_error(".conf", "fcgi {\n\n max_requests = -1\n}\n", 3, "fcgi.max_requests",
                      "at least 0");
    expect_file_error(".conf", "fcgi {\n backlog = 0\n}\n", 2, "fcgi.backlog", "at least 1");
    expect_file_error(".conf", "http_api {\n max_body_bytes = 0\n}\n", 2, "http_api.max_body_bytes",
                      "at least 1");
    expect_file_error(".conf", "user_status {\n max_users_per_request = 0\n}\n", 2,
                      "user_status.max_users_per_request", "at least 1");
    expect_file_error(".conf", "user_status {\n redis {\n  db = -1\n }\n}\n", 3,
                      "user_status.redis.db", "at least 0");
    expect_file_error(".conf", "engine {\n redis {\n  db = 0x10\n }\n}\n", 3, "engine.redis.db",
                      "invalid integer \"0x10\"");
    expect_file_error(".conf", "fcgi {\n workers = 99999999999999999999\n}\n", 2, "fcgi.workers",
                      "invalid integer");
}
END_TEST

START_TEST(test_err_bad_boolean)
{
    expect_file_error(".conf", "http_api {\n insecure = maybe\n}\n", 2, "http_api.insecure",
                      "invalid boolean \"maybe\"");
}
END_TEST

START_TEST(test_err_syntax)
{
    char err[512], path[64], want[128];
    us_config *cfg;

    cfg =
        load_text(".conf", "http_api {\n  key = {\"a\"}\n}\n", err, sizeof err, path, sizeof path);
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof want, "%s:2: http_api: ", path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);

    cfg =
        load_text(".conf", "http_api {\n  key = \"a\"\n}\n}\n", err, sizeof err, path, sizeof path);
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof want, "%s:4: ", path);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
    ck_assert_msg(strstr(err, "closing brace") != NULL, "%s", err);
}
END_TEST

/* ---- validation errors: JSON ---- */

START_TEST(test_err_json_wrong_types)
{
    expect_file_error(".json", "{\"user_status\": {\"max_users_per_request\": \"10\"}}", 0,
                      "user_status.max_users_per_request", "expected an integer");
    expect_file_error(".json", "{\"user_status\": {\"max_users_per_request\": 1.5}}", 0,
                      "user_status.max_users_per_request", "expected an integer");
    expect_file_error(".json", "{\"http_api\": {\"insecure\": \"true\"}}", 0, "http_api.insecure",
                      "expected a boolean");
    expect_file_error(".json", "{\"http_api\": {\"key\": 42}}", 0, "http_api.key",
                      "expected a string");
    expect_file_error(".json", "{\"user_status\": {\"expire_interval\": 86400}}", 0,
                      "user_status.expire_interval", "expected a string");
    expect_file_error(".json", "{\"engine\": {\"redis\": {\"address\": [\"a:1\", 2]}}}", 0,
                      "engine.redis.address", "expected a string or an array of strings");
    expect_file_error(".json", "{\"client\": {\"allowed_origins\": {}}}", 0,
                      "client.allowed_origins", "expected a string or an array of strings");
    expect_file_error(".json", "{\"user_status\": [1]}", 0, "user_status", "expected an object");
    expect_file_error(".json",
                      "{\"user_status\": {\"redis\": {\"db\": 3, \"io_timeout\": \"soon\"}}}", 0,
                      "user_status.redis.io_timeout", "invalid duration \"soon\"");
    expect_file_error(".json", "{\"user_status\": {\"redis\": {\"address\": \"h:99999\"}}}", 0,
                      "user_status.redis.address", "invalid port");
}
END_TEST

START_TEST(test_err_json_malformed)
{
    char path[64], want[128];

    /* The trailing comma: the error is at the '}' on line 4, column 3. */
    us_test_write_temp(".json", "{\n  \"http_api\": {\n    \"key\": \"x\",\n  }\n}\n", path,
                       sizeof path);
    snprintf(want, sizeof want, "%s:4:3: malformed JSON: ", path);
    expect_error_prefix(path, want, NULL);
    unlink(path);

    us_test_write_temp(".json", "{\n  \"a\": 1\n", path, sizeof path);
    snprintf(want, sizeof want, "%s:3:1: malformed JSON: ", path);
    expect_error_prefix(path, want, "end of file");
    unlink(path);

    us_test_write_temp(".json", "{} {}", path, sizeof path);
    snprintf(want, sizeof want, "%s:1:4: malformed JSON: ", path);
    expect_error_prefix(path, want, NULL);
    unlink(path);

    us_test_write_temp(".json", "[1, 2]", path, sizeof path);
    snprintf(want, sizeof want, "%s: ", path);
    expect_error_prefix(path, want, "JSON object");
    unlink(path);
}
END_TEST

/* ---- other errors ---- */

START_TEST(test_err_cannot_open)
{
    expect_error_prefix("/nonexistent/ustatus.conf",
                        "cannot open /nonexistent/ustatus.conf: ", "No such file or directory");
    expect_error_prefix("/tmp", "cannot open /tmp: ", NULL);
}
END_TEST

START_TEST(test_err_buffer_handling)
{
    char path[64], small[16];

    us_test_write_temp(".conf", "http_api { nope = 1 }\n", path, sizeof path);
    ck_assert_ptr_null(us_config_load(path, NULL, 0));
    memset(small, 'x', sizeof small);
    ck_assert_ptr_null(us_config_load(path, small, sizeof small));
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    unlink(path);
}
END_TEST

START_TEST(test_reload_after_error)
{
    /* libconfuse's lexer is global state: a failed parse must not poison the next one. */
    char err[512], path[64];
    us_config *cfg = load_text(".conf", "http_api { key = 'unterminated }\n", err, sizeof err, path,
                               sizeof path);
    ck_assert_ptr_null(cfg);
    cfg = load_ok(".conf", "http_api { key = \"fine\" }\n");
    ck_assert_str_eq(cfg->http_api.key, "fine");
    us_config_free(cfg);
}
END_TEST

/* ---- nothing ignored silently ---- */

/* A typo in each section ustatus reads, in both file formats: the true path and the
 * closest known name. */
static const struct {
    const char *conf, *json, *message;
} typos[] = {
    {"http_api { insecur = true }", "{\"http_api\": {\"insecur\": true}}",
     "unknown option http_api.insecur; did you mean insecure?"},
    {"user_status { expire_intervall = \"1h\" }",
     "{\"user_status\": {\"expire_intervall\": \"1h\"}}",
     "unknown option user_status.expire_intervall; did you mean expire_interval?"},
    {"user_status { redis { adress = \"h:1\" } }",
     "{\"user_status\": {\"redis\": {\"adress\": \"h:1\"}}}",
     "unknown option user_status.redis.adress; did you mean address?"},
    {"user_status { redis { tls { enabeld = true } } }",
     "{\"user_status\": {\"redis\": {\"tls\": {\"enabeld\": true}}}}",
     "unknown option user_status.redis.tls.enabeld; did you mean enabled?"},
    {"user_status { redis { sentinel_tls { server_nam = \"x\" } } }",
     "{\"user_status\": {\"redis\": {\"sentinel_tls\": {\"server_nam\": \"x\"}}}}",
     "unknown option user_status.redis.sentinel_tls.server_nam; did you mean server_name?"},
    {"engine { typ = \"redis\" }", "{\"engine\": {\"typ\": \"redis\"}}",
     "unknown option engine.typ; did you mean type?"},
    {"engine { redis { force_resp3 = true } }",
     "{\"engine\": {\"redis\": {\"force_resp3\": true}}}",
     "unknown option engine.redis.force_resp3; did you mean force_resp2?"},
    {"engine { redis { tls { cert_pem_fille = \"/x\" } } }",
     "{\"engine\": {\"redis\": {\"tls\": {\"cert_pem_fille\": \"/x\"}}}}",
     "unknown option engine.redis.tls.cert_pem_fille; did you mean cert_pem_file?"},
    {"client { allowed_origin = \"x\" }", "{\"client\": {\"allowed_origin\": [\"x\"]}}",
     "unknown option client.allowed_origin; did you mean allowed_origins?"},
    {"client { token { jwks_public_endpont = \"\" } }",
     "{\"client\": {\"token\": {\"jwks_public_endpont\": \"\"}}}",
     "unknown option client.token.jwks_public_endpont; did you mean jwks_public_endpoint?"},
    {"centrifugo_proxy { kye = \"k\" }", "{\"centrifugo_proxy\": {\"kye\": \"k\"}}",
     "unknown option centrifugo_proxy.kye; did you mean key?"},
    {"fcgi { worker = 2 }", "{\"fcgi\": {\"worker\": 2}}",
     "unknown option fcgi.worker; did you mean workers?"},
    {"log { levle = \"info\" }", "{\"log\": {\"levle\": \"info\"}}",
     "unknown option log.levle; did you mean level?"},
    {"log { completely_unrelated = 1 }", "{\"log\": {\"completely_unrelated\": 1}}",
     "unknown option log.completely_unrelated"},
    {"usr_status { enabled = true }", "{\"usr_status\": {\"enabled\": true}}",
     "unknown option usr_status; did you mean user_status?"},
};

START_TEST(test_typo_conf)
{
    char text[256];
    snprintf(text, sizeof text, "# a comment\n\n%s\n", typos[_i].conf);
    expect_error_line(".conf", text, 3, typos[_i].message);
}
END_TEST

START_TEST(test_typo_json)
{
    expect_error_line(".json", typos[_i].json, 0, typos[_i].message);
}
END_TEST

static const struct {
    const char *name, *message;
} env_typos[] = {
    {"USTATUS_HTTP_API_KYE",
     "environment USTATUS_HTTP_API_KYE: unknown variable; did you mean USTATUS_HTTP_API_KEY?"},
    {"USTATUS_USER_STATUS_REDIS_ADRESS",
     "environment USTATUS_USER_STATUS_REDIS_ADRESS: unknown variable; did you mean "
     "USTATUS_USER_STATUS_REDIS_ADDRESS?"},
    {"USTATUS_ENGINE_REDIS_TLS_ENABLE",
     "environment USTATUS_ENGINE_REDIS_TLS_ENABLE: unknown variable; did you mean "
     "USTATUS_ENGINE_REDIS_TLS_ENABLED?"},
    {"USTATUS_CLIENT_TOKEN_ISSUER_REGEXP",
     "environment USTATUS_CLIENT_TOKEN_ISSUER_REGEXP: unknown variable; did you mean "
     "USTATUS_CLIENT_TOKEN_ISSUER_REGEX?"},
    {"USTATUS_FCGI_REQUEST_TIMEOUTS",
     "environment USTATUS_FCGI_REQUEST_TIMEOUTS: unknown variable; did you mean "
     "USTATUS_FCGI_REQUEST_TIMEOUT?"},
    {"USTATUS_LOG_SYSLOGG",
     "environment USTATUS_LOG_SYSLOGG: unknown variable; did you mean USTATUS_LOG_SYSLOG?"},
    {"USTATUS_CENTRIFUGO_PROXY_HANDLER_PREFX",
     "environment USTATUS_CENTRIFUGO_PROXY_HANDLER_PREFX: unknown variable; did you mean "
     "USTATUS_CENTRIFUGO_PROXY_HANDLER_PREFIX?"},
    {"USTATUS_WHATEVER", "environment USTATUS_WHATEVER: unknown variable"},
    {"USTATUS_http_api_key",
     "environment USTATUS_http_api_key: unknown variable; did you mean USTATUS_HTTP_API_KEY?"},
};

START_TEST(test_typo_env)
{
    char err[512];
    us_test_env(env_typos[_i].name, "1");
    ck_assert_ptr_null(us_config_load(NULL, err, sizeof err));
    ck_assert_str_eq(err, env_typos[_i].message);
}
END_TEST

static void collect_line(void *ctx, const char *line)
{
    us_buf *b = ctx;
    us_buf_puts(b, line);
    us_buf_puts(b, "\n");
}

/* The warnings of cfg as one text, one line each; *count gets the number. */
static char *warnings_of(const us_config *cfg, size_t *count)
{
    us_buf b = US_BUF_INIT;
    us_buf_puts(&b, "");
    *count = us_config_warnings(cfg, collect_line, &b);
    ck_assert_uint_eq(*count, us_config_warnings(cfg, NULL, NULL));
    return us_buf_steal(&b, NULL);
}

START_TEST(test_env_names_accepted_and_centrifugo)
{
    size_t n;
    char *w;

    /* Accepted without effect, Centrifugo-only sections, the test tools' variables. */
    us_test_env("USTATUS_HTTP_API_EXTERNAL", "true");
    us_test_env("USTATUS_CLIENT_PROXY_CONNECT_ENDPOINT", "http://app/connect");
    us_test_env("CENTRIFUGO_ADMIN_PASSWORD", "secret-admin");
    us_test_env("CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_PRESENCE", "true");
    us_test_env("CENTRIFUGO_PID_FILE", "/run/c.pid");
    us_test_env("CENTRIFUGO_ENGINE_REDIS_FORCE_RESP2", "true");
    us_test_env("USTATUS_SRCDIR", "/src");
    us_test_env("USTATUS_BIN", "/bin/x");
    us_test_env("USTATUS_BUILDDIR", "/b");
    us_test_env("USTATUS_HTTP_API_KEY", "0123456789abcdef0123456789abcdef");
    us_config *cfg = load_env_only();
    w = warnings_of(cfg, &n);
    ck_assert_msg(n == 0, "unexpected warnings: %s", w);
    free(w);
    us_config_free(cfg);

    /* An unknown CENTRIFUGO_ variable may be Centrifugo's own: a warning, not an error. */
    us_test_env("CENTRIFUGO_LOG_LEVL", "debug");
    us_test_env("CENTRIFUGO_CLICKHOUSE_ANALYTICS_ENABLED", "true");
    cfg = load_env_only();
    ck_assert_uint_eq(cfg->notice_count, 2);
    w = warnings_of(cfg, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_msg(strstr(w, "environment CENTRIFUGO_LOG_LEVL: not an option of ustatus, ignored; "
                            "did you mean CENTRIFUGO_LOG_LEVEL?\n") != NULL,
                  "%s", w);
    ck_assert_msg(strstr(w, "environment CENTRIFUGO_CLICKHOUSE_ANALYTICS_ENABLED: not an option "
                            "of ustatus, ignored\n") != NULL,
                  "%s", w);
    free(w);
    us_config_free(cfg);
}
END_TEST

START_TEST(test_accepted_without_effect_conf)
{
    us_config *cfg = load_ok(".conf",
                             "http_api { key = \"k\" external = true disabled = false }\n"
                             "engine { type = \"redis\" redis {\n"
                             "  force_resp2 = true\n"
                             "  sentinel_client_name = \"s\"\n"
                             "  replica_client { enabled = true }\n"
                             "  presence_ttl = \"60s\"\n"
                             "  tls { client_ca_pem_file = \"/nonexistent\" }\n"
                             "} }\n"
                             "client {\n"
                             "  insecure = true\n"
                             "  ping_interval = \"25s\"\n"
                             "  proxy { connect { enabled = true endpoint = \"http://a/b\" } }\n"
                             "  subscription_token { enabled = true hmac_secret_key = \"x\" }\n"
                             "}\n"
                             "channel { namespaces = {\"a\", \"b\"} history_meta_ttl = \"720h\" }\n"
                             "admin { enabled = true password = \"pw\" }\n"
                             "prometheus { enabled = true }\n"
                             "pid_file = \"/run/x.pid\"\n"
                             "user_status { redis { reuse_from_engine = true } }\n");
    ck_assert_str_eq(cfg->http_api.key, "k");
    ck_assert_ptr_eq(us_config_store_redis(cfg), &cfg->engine.redis);
    ck_assert_uint_eq(cfg->notice_count, 0);
    us_config_free(cfg);

    /* http_api.disabled is read: true would leave ustatus nothing to serve. */
    expect_error_line(".conf", "http_api {\n disabled = true\n}\n", 2,
                      "http_api.disabled: true is not supported: ustatus is the server API; "
                      "remove its route from the web server instead");
    expect_error_line(".json", "{\"http_api\": {\"disabled\": true}}", 0,
                      "http_api.disabled: true is not supported: ustatus is the server API; "
                      "remove its route from the web server instead");
}
END_TEST

START_TEST(test_unknown_top_level_sections)
{
    /* Neither ustatus's nor Centrifugo v6's, nor close to a section of ustatus: skipped,
     * but said (Centrifugo PRO has sections of its own). */
    us_config *cfg = load_ok(".conf", "http_api { key = \"k\" }\n\nclickhouse_analytics {\n"
                                      "  enabled = true\n  dsn = {\"a\", \"b\"}\n}\n");
    ck_assert_uint_eq(cfg->notice_count, 1);
    ck_assert_msg(strstr(cfg->notices[0], ":3: ignored clickhouse_analytics: neither a section "
                                          "ustatus reads nor one of Centrifugo v6") != NULL,
                  "%s", cfg->notices[0]);
    us_config_free(cfg);

    cfg = load_ok(".json", "{\"push_notifications\": {\"enabled\": true}, \"token_x\": 1}");
    ck_assert_uint_eq(cfg->notice_count, 2);
    ck_assert_msg(strstr(cfg->notices[0], ": ignored push_notifications: neither") != NULL, "%s",
                  cfg->notices[0]);
    us_config_free(cfg);

    /* A function call is no section: libconfuse has no include() here. */
    expect_error_line(".conf", "\ninclude(\"other.conf\")\n", 2, "unknown option include");
}
END_TEST

/* ---- TLS options ---- */

static const char test_cert[] =
    "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
static const char test_key[] =
    "-----BEGIN PRIVATE KEY-----\nSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";

/* Standard base64 of s. */
static char *b64(const char *s)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        *o++ = a[v >> 18 & 63];
        *o++ = a[v >> 12 & 63];
        *o++ = i + 1 < n ? a[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? a[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* A JSON string literal of s (quotes included), for the PEM texts. */
static char *jstr(const char *s)
{
    return us_test_json_str(s, strlen(s));
}

START_TEST(test_tls_pem_forms)
{
    char cert_path[64], key_path[64], ca_path[64], text[4096];
    char *cert_b64 = b64(test_cert), *key_b64 = b64(test_key);
    char *jcert = jstr(test_cert), *jkey = jstr(test_key);
    us_config *cfg;

    us_test_write_temp(".pem", test_cert, cert_path, sizeof cert_path);
    us_test_write_temp(".pem", test_key, key_path, sizeof key_path);
    us_test_write_temp(".pem", test_cert, ca_path, sizeof ca_path);

    /* Inline PEM (JSON), base64 (libconfuse), files (JSON): the same texts. */
    snprintf(text, sizeof text,
             "{\"user_status\": {\"redis\": {\"tls\": {\"enabled\": true, \"cert_pem\": %s, "
             "\"key_pem\": %s, \"server_ca_pem\": %s, \"server_name\": \"redis.example\"}}}}",
             jcert, jkey, jcert);
    cfg = load_ok(".json", text);
    ck_assert(cfg->user_status.redis.tls.enabled);
    ck_assert_str_eq(cfg->user_status.redis.tls.cert_pem, test_cert);
    ck_assert_str_eq(cfg->user_status.redis.tls.key_pem, test_key);
    ck_assert_str_eq(cfg->user_status.redis.tls.server_ca_pem, test_cert);
    ck_assert_str_eq(cfg->user_status.redis.tls.server_name, "redis.example");
    ck_assert_str_eq(cfg->user_status.redis.sentinel_tls.cert_pem, "");
    us_config_free(cfg);

    snprintf(text, sizeof text,
             "engine { redis { sentinel_tls {\n enabled = true\n cert_pem_b64 = \"%s\"\n"
             " key_pem_b64 = \"%s\"\n server_ca_pem_b64 = \"%s\"\n} } }\n",
             cert_b64, key_b64, cert_b64);
    cfg = load_ok(".conf", text);
    ck_assert_str_eq(cfg->engine.redis.sentinel_tls.cert_pem, test_cert);
    ck_assert_str_eq(cfg->engine.redis.sentinel_tls.key_pem, test_key);
    ck_assert_str_eq(cfg->engine.redis.sentinel_tls.server_ca_pem, test_cert);
    us_config_free(cfg);

    snprintf(text, sizeof text,
             "{\"engine\": {\"redis\": {\"tls\": {\"enabled\": true, \"insecure_skip_verify\": "
             "true, \"cert_pem_file\": \"%s\", \"key_pem_file\": \"%s\", "
             "\"server_ca_pem_file\": \"%s\"}}}}",
             cert_path, key_path, ca_path);
    cfg = load_ok(".json", text);
    ck_assert_str_eq(cfg->engine.redis.tls.cert_pem, test_cert);
    ck_assert_str_eq(cfg->engine.redis.tls.key_pem, test_key);
    ck_assert_str_eq(cfg->engine.redis.tls.server_ca_pem, test_cert);
    ck_assert(cfg->engine.redis.tls.insecure_skip_verify);
    us_config_free(cfg);

    /* From the environment too; a CA alone is fine (no client certificate). */
    us_test_env("USTATUS_USER_STATUS_REDIS_TLS_SERVER_CA_PEM_FILE", ca_path);
    us_test_env("USTATUS_USER_STATUS_REDIS_TLS_ENABLED", "true");
    cfg = load_env_only();
    ck_assert_str_eq(cfg->user_status.redis.tls.server_ca_pem, test_cert);
    ck_assert_str_eq(cfg->user_status.redis.tls.cert_pem, "");
    us_config_free(cfg);

    unlink(cert_path);
    unlink(key_path);
    unlink(ca_path);
    free(cert_b64);
    free(key_b64);
    free(jcert);
    free(jkey);
}
END_TEST

/* Loads text and asserts the error says `want` and quotes no key material. */
static void expect_pem_error(const char *suffix, const char *text, const char *want)
{
    char err[1024], path[64];
    us_config *cfg = load_text(suffix, text, err, sizeof err, path, sizeof path);
    ck_assert_msg(cfg == NULL, "no error for %s", want);
    ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" does not say \"%s\"", err, want);
    ck_assert_msg(strstr(err, "SECRETKEYMATERIAL") == NULL, "key material in: %s", err);
    ck_assert_msg(strstr(err, "BEGIN PRIVATE") == NULL, "key material in: %s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(test_tls_pem_errors)
{
    char text[4096], key_path[64];
    char *key_b64 = b64(test_key), *jkey = jstr(test_key), *jcert = jstr(test_cert);

    us_test_write_temp(".pem", test_key, key_path, sizeof key_path);

    /* More than one form of the same PEM. */
    snprintf(text, sizeof text,
             "user_status { redis { tls {\n cert_pem = \"%s\"\n key_pem_b64 = \"%s\"\n"
             " key_pem_file = \"%s\"\n} } }\n",
             "-----BEGIN CERTIFICATE-----", key_b64, key_path);
    expect_pem_error(".conf", text,
                     ":4: user_status.redis.tls.key_pem_file: give only one of key_pem, "
                     "key_pem_b64 and key_pem_file");
    /* An unreadable file: the option and the path. */
    expect_pem_error(
        ".conf",
        "engine { redis { sentinel_tls {\n\n server_ca_pem_file = \"/nonexistent/ca.pem\"\n"
        "} } }\n",
        ":3: engine.redis.sentinel_tls.server_ca_pem_file: cannot read "
        "/nonexistent/ca.pem: No such file or directory");
    expect_pem_error(".json", "{\"engine\": {\"redis\": {\"tls\": {\"cert_pem_file\": \"/tmp\"}}}}",
                     "engine.redis.tls.cert_pem_file: cannot read /tmp: Is a directory");
    /* A key without its certificate, and the reverse. */
    snprintf(text, sizeof text, "{\"user_status\": {\"redis\": {\"tls\": {\"key_pem\": %s}}}}",
             jkey);
    expect_pem_error(".json", text,
                     "user_status.redis.tls.key_pem: a client key needs its certificate");
    snprintf(text, sizeof text, "{\"user_status\": {\"redis\": {\"tls\": {\"cert_pem\": %s}}}}",
             jcert);
    expect_pem_error(".json", text,
                     "user_status.redis.tls.cert_pem: a client certificate needs its key");
    /* Not base64, not PEM. */
    expect_pem_error(".conf",
                     "user_status { redis { tls {\n key_pem_b64 = \"SECRETKEYMATERIAL!\"\n} } }\n",
                     ":2: user_status.redis.tls.key_pem_b64: not valid standard base64");
    expect_pem_error(".conf",
                     "user_status { redis { tls {\n key_pem = \"SECRETKEYMATERIAL\"\n} } }\n",
                     ":2: user_status.redis.tls.key_pem: holds no PEM block");
    /* From the environment, the variable is named. */
    us_test_env("USTATUS_ENGINE_REDIS_TLS_KEY_PEM", "SECRETKEYMATERIAL");
    expect_error_prefix(NULL, "environment USTATUS_ENGINE_REDIS_TLS_KEY_PEM: "
                              "engine.redis.tls.key_pem: holds no PEM block", NULL);

    unlink(key_path);
    free(key_b64);
    free(jkey);
    free(jcert);
}
END_TEST

START_TEST(test_tls_enabled_is_read)
{
    /* {"enabled": true} is an option ustatus implements, never accepted and dropped. */
    us_config *cfg = load_ok(".json", "{\"user_status\": {\"redis\": {\"address\": \"h:6380\", "
                                      "\"tls\": {\"enabled\": true}}}}");
    ck_assert(cfg->user_status.redis.tls.enabled);
    ck_assert(!cfg->user_status.redis.sentinel_tls.enabled);
    ck_assert(!cfg->engine.redis.tls.enabled);
    ck_assert_uint_eq(cfg->notice_count, 0);
    us_config_free(cfg);
    cfg = load_ok(".conf", "engine { redis { sentinel_tls { enabled = true } } }\n");
    ck_assert(cfg->engine.redis.sentinel_tls.enabled);
    us_config_free(cfg);
}
END_TEST

START_TEST(test_value_checks_round_two)
{
    us_config *cfg = load_ok(".conf",
                             "client { token { jwks_public_endpoint = "
                             "\"https://idp.example/realms/x/protocol/openid-connect/certs\" } }\n"
                             "user_status { redis { client_name = \"ustatus-1\" } }\n"
                             "fcgi { request_timeout = \"1ms\" }\n");
    ck_assert_str_eq(cfg->client.token.jwks_public_endpoint,
                     "https://idp.example/realms/x/protocol/openid-connect/certs");
    ck_assert_str_eq(cfg->user_status.redis.client_name, "ustatus-1");
    ck_assert_int_eq(cfg->fcgi.request_timeout_ms, 1);
    us_config_free(cfg);
    cfg = load_ok(".json", "{\"client\": {\"token\": {\"jwks_public_endpoint\": "
                           "\"HTTP://127.0.0.1:8080/jwks\"}}}");
    us_config_free(cfg);

    expect_error_line(".conf", "client { token {\n jwks_public_endpoint = \"ftp://x/jwks\"\n} }\n",
                      2, "client.token.jwks_public_endpoint: must be an http:// or https:// URL");
    expect_error_line(".conf", "client { token {\n jwks_public_endpoint = \"https://\"\n} }\n", 2,
                      "client.token.jwks_public_endpoint: the URL has no host");
    expect_error_line(".json",
                      "{\"client\": {\"token\": {\"jwks_public_endpoint\": \"https://a b/\"}}}", 0,
                      "client.token.jwks_public_endpoint: the URL has a space or a non-ASCII "
                      "character");
    expect_error_line(".conf", "engine { redis {\n client_name = \"my app\"\n} }\n", 2,
                      "engine.redis.client_name: must be printable ASCII without spaces (Redis "
                      "CLIENT SETNAME), got \"my app\"");
    expect_error_line(".json", "{\"user_status\": {\"redis\": {\"client_name\": \"caf\\u00e9\"}}}",
                      0,
                      "user_status.redis.client_name: must be printable ASCII without spaces "
                      "(Redis CLIENT SETNAME), got \"caf\xc3\xa9\"");
    expect_error_line(".conf", "fcgi {\n request_timeout = \"0s\"\n}\n", 2,
                      "fcgi.request_timeout: must be at least 1ms, got \"0s\"");
    us_test_env("USTATUS_FCGI_REQUEST_TIMEOUT", "soon");
    expect_error_prefix(NULL, "environment USTATUS_FCGI_REQUEST_TIMEOUT: ", "invalid duration");
}
END_TEST

START_TEST(test_secrets_never_in_errors)
{
    char err[512];
    static const char *const texts[] = {
        "http_api { key = {\"SECRETVALUE\"} }\n",
        "centrifugo_proxy { key = {\"SECRETVALUE\"} }\n",
        "client { token { hmac_secret_key = {\"SECRETVALUE\"} } }\n",
        "user_status { redis { password = {\"SECRETVALUE\"} } }\n",
        "engine { redis { sentinel_password = {\"SECRETVALUE\"} } }\n",
        "user_status { redis { tls { key_pem_b64 = \"SECRETVALUE\" } } }\n",
        "user_status { redis { tls { key_pem = \"SECRETVALUE\" } } }\n",
        "user_status { redis { address = \"redis://u:SECRETVALUE@h:99999\" } }\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char path[64];
        us_config *cfg = load_text(".conf", texts[i], err, sizeof err, path, sizeof path);
        ck_assert_msg(cfg == NULL, "accepted: %s", texts[i]);
        ck_assert_msg(strstr(err, "SECRETVALUE") == NULL, "secret in: %s", err);
    }
}
END_TEST

/* ---- comments and line numbers ---- */

START_TEST(test_comments_keep_lines)
{
    /* libconfuse 3.3 alone counts each '#' comment as three lines. */
    expect_error_line(".conf",
                      "# one\n# two\n# three\nhttp_api {\n  # four\n  key = \"k\" # five\n"
                      "  // six\n  /* seven\n     eight */\n  kee = 1\n}\n",
                      10, "unknown option http_api.kee; did you mean key?");
    expect_error_line(".conf",
                      "/* a\nb\nc */ user_status { /* d */\n\n expire_interval = \"1x\"\n}\n", 5,
                      "user_status.expire_interval: invalid duration \"1x\"");
    expect_error_line(".conf", "####\n////\nlog {\n level = \"loud\" ## trailing\n}\n", 4,
                      "log.level: must be debug, info, warn or error, got \"loud\"");
}
END_TEST

START_TEST(test_comment_after_list_element)
{
    us_config *cfg = load_ok(".conf",
                             "user_status {\n"
                             "  redis {\n"
                             "    address = {\n"
                             "      \"10.0.0.1:6379\", # the first shard\n"
                             "      \"10.0.0.2:6379\", // the second\n"
                             "      /* the third */ \"10.0.0.3:6379\" # last\n"
                             "    }\n"
                             "    prefix = \"p#not-a-comment//nor/*this*/\"\n"
                             "    user = 'single#quoted//too'\n"
                             "  }\n"
                             "}\n"
                             "client { allowed_origins = {\"https://a.example\", # a\n"
                             "  \"https://b.example\" # b\n} }\n");
    const us_redis_config *r = &cfg->user_status.redis;
    ck_assert_uint_eq(r->address_count, 3);
    ck_assert_str_eq(r->address[2], "10.0.0.3:6379");
    ck_assert_str_eq(r->prefix, "p#not-a-comment//nor/*this*/");
    ck_assert_str_eq(r->user, "single#quoted//too");
    ck_assert_uint_eq(cfg->client.allowed_origins_count, 2);
    us_config_free(cfg);

    /* A '#' after a value that is not quoted starts a comment, as in libconfuse. */
    cfg = load_ok(".conf", "fcgi { workers = 3# three\n backlog = 7 }\n");
    ck_assert_int_eq(cfg->fcgi.workers, 3);
    ck_assert_int_eq(cfg->fcgi.backlog, 7);
    us_config_free(cfg);
}
END_TEST

static const char *srcdir; /* the source tree, from USTATUS_SRCDIR (before it is cleared) */

/* Whether a shipped file is a ustatus configuration (the web servers' files under deploy/
 * are .conf too): one of its sections opens a line. */
static bool is_ustatus_config(const char *path, const char *text)
{
    static const char *const sections[] = {"http_api", "user_status", "engine", "fcgi", "log"};
    size_t n = strlen(path);
    bool json = n > 5 && strcmp(path + n - 5, ".json") == 0;

    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        while (*line == ' ' || *line == '\t')
            line++;
        for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
            size_t k = strlen(sections[i]);
            const char *p = line;
            if (json && *p++ != '"')
                continue;
            if (strncmp(p, sections[i], k) != 0)
                continue;
            p += k;
            if (json && *p++ != '"')
                continue;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p == (json ? ':' : '{'))
                return true;
        }
    }
    return false;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    us_buf b = US_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        us_buf_append(&b, chunk, n);
    fclose(fp);
    us_buf_puts(&b, "");
    return us_buf_steal(&b, NULL);
}

/* The shipped text as quickstart.sh and the package install it (the Redis port filled
 * in; the API key placeholder left, for the warning). */
static char *shipped_text(const char *path)
{
    char *raw = slurp(path);
    us_buf b = US_BUF_INIT;
    const char *p = raw, *at;
    us_buf_puts(&b, "");
    while ((at = strstr(p, "@REDIS_PORT@"))) {
        us_buf_append(&b, p, (size_t)(at - p));
        us_buf_puts(&b, "6379");
        p = at + strlen("@REDIS_PORT@");
    }
    us_buf_puts(&b, p);
    free(raw);
    return us_buf_steal(&b, NULL);
}

/* Every ustatus configuration under deploy/ (recursively): found, loaded, and warned
 * about for its placeholder key. */
static size_t find_shipped(const char *dir, char found[][512], size_t max, size_t n);

#include <dirent.h>
#include <sys/stat.h>

static size_t find_shipped(const char *dir, char found[][512], size_t max, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    while ((e = readdir(d)) != NULL) {
        char path[512];
        struct stat st;
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ck_assert_int_eq(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            n = find_shipped(path, found, max, n);
            continue;
        }
        if (!(len > 5 && (strcmp(e->d_name + len - 5, ".conf") == 0 ||
                          strcmp(e->d_name + len - 5, ".json") == 0)))
            continue;
        char *text = slurp(path);
        if (is_ustatus_config(path, text) && n < max)
            snprintf(found[n++], 512, "%s", path);
        free(text);
    }
    closedir(d);
    return n;
}

START_TEST(test_shipped_files)
{
    char found[16][512], deploy[512];
    size_t count;

    ck_assert_msg(srcdir != NULL, "USTATUS_SRCDIR is not set (make check sets it)");
    snprintf(deploy, sizeof deploy, "%s/deploy", srcdir);
    count = find_shipped(deploy, found, 16, 0);
    ck_assert_msg(count >= 2, "found %zu configurations under %s", count, deploy);
    for (size_t f = 0; f < count; f++) {
        char *text = shipped_text(found[f]);
        size_t n = strlen(found[f]), w;
        bool json = strcmp(found[f] + n - 5, ".json") == 0;
        us_config *cfg = load_ok(json ? ".json" : ".conf", text);
        char *warnings = warnings_of(cfg, &w);
        ck_assert_msg(strstr(warnings, "http_api.key looks like a template placeholder") != NULL,
                      "%s: %s", found[f], warnings);
        free(warnings);
        us_config_free(cfg);

        if (json) {
            /* A typo in the shipped JSON is named with its path and a suggestion. */
            char *at = strstr(text, "\"address\"");
            ck_assert_msg(at != NULL, "%s has no address", found[f]);
            memmove(at + 2, at + 3, strlen(at + 3) + 1); /* "adress" */
            expect_error_line(".json", text, 0,
                              "unknown option user_status.redis.adress; did you mean address?");
            free(text);
            continue;
        }
        /* An error put before each line of the shipped file is reported at that line. */
        int lines = 1;
        for (const char *p = text; *p; p++)
            lines += *p == '\n';
        for (int line = 1; line <= lines; line++) {
            us_buf b = US_BUF_INIT;
            const char *p = text;
            char err[1024], path[64], want[128];
            for (int l = 1; l < line && p; l++)
                p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
            size_t head = p ? (size_t)(p - text) : strlen(text);
            us_buf_append(&b, text, head);
            us_buf_puts(&b, "no_such_section_or_option { x = 1 } # injected\n");
            us_buf_puts(&b, text + head);
            char *mutated = us_buf_steal(&b, NULL);
            us_config *bad = load_text(".conf", mutated, err, sizeof err, path, sizeof path);
            free(mutated);
            /* At the top level it is skipped with a notice; inside a section, an error. */
            if (bad) {
                snprintf(want, sizeof want, ":%d: ignored no_such_section_or_option", line);
                ck_assert_uint_eq(bad->notice_count, 1);
                ck_assert_msg(strstr(bad->notices[0], want) != NULL, "%s line %d: %s", found[f],
                              line, bad->notices[0]);
                us_config_free(bad);
            } else {
                snprintf(want, sizeof want, "%s:%d: unknown option ", path, line);
                ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s line %d: %s", found[f],
                              line, err);
            }
        }
        free(text);
    }
}
END_TEST

/* ---- unsafe-setting warnings ---- */

START_TEST(test_warnings_key)
{
    static const struct {
        const char *conf, *want;
    } cases[] = {
        {"http_api { key = \"0123456789abcdef0123456789abcdef\" }", NULL},
        {"http_api { insecure = true }", "http_api.insecure = true: the server API answers every "
                                         "request without an API key"},
        {"http_api { key = \"\" }", "http_api.key is empty: every server API request is refused"},
        {"http_api { key = \"k\" }", "http_api.key is shorter than 32 characters"},
        {"http_api { key = \"0123456789abcdef0123456789abcde\" }",
         "http_api.key is shorter than 32 characters"},
        {"http_api { key = \"@API_KEY@\" }", "http_api.key looks like a template placeholder"},
        {"http_api { key = \"CHANGE_ME_CHANGE_ME_CHANGE_ME_CHANGE_ME\" }",
         "http_api.key looks like a template placeholder"},
        {"http_api { key = \"<your api key goes here, 32 characters or more>\" }",
         "http_api.key looks like a template placeholder"},
        {"http_api { key = '${API_KEY_OF_THIS_DEPLOYMENT_0123456789}' }",
         "http_api.key looks like a template placeholder"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        us_config *cfg = us_test_config("%s\n", cases[i].conf);
        size_t n;
        char *w = warnings_of(cfg, &n);
        if (!cases[i].want) {
            ck_assert_msg(n == 0, "%s: %s", cases[i].conf, w);
        } else {
            ck_assert_msg(n == 1, "%s: %zu warnings: %s", cases[i].conf, n, w);
            ck_assert_msg(strstr(w, cases[i].want) != NULL, "%s: %s", cases[i].conf, w);
            ck_assert_msg(strchr(w, '\n') == w + strlen(w) - 1, "not one line: %s", w);
        }
        /* Never the key itself. */
        ck_assert_msg(strlen(cfg->http_api.key) < 4 || strstr(w, cfg->http_api.key) == NULL, "%s",
                      w);
        free(w);
        us_config_free(cfg);
    }
}
END_TEST

START_TEST(test_warnings_file_mode_and_tls)
{
    char path[64], err[512];
    static const char secret_conf[] =
        "http_api { key = \"0123456789abcdef0123456789abcdef\" }\n"
        "engine { redis { tls { insecure_skip_verify = true } sentinel_tls {\n"
        "  insecure_skip_verify = true } } }\n";
    size_t n;
    char *w;
    us_config *cfg;

    us_test_write_temp(".conf", secret_conf, path, sizeof path);
    /* 0640: the web server's group reads it, as the Debian package ships it. */
    ck_assert_int_eq(chmod(path, 0640), 0);
    cfg = us_config_load(path, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    w = warnings_of(cfg, &n);
    ck_assert_msg(n == 2, "%s", w);
    ck_assert_msg(strstr(w, "engine.redis.tls.insecure_skip_verify = true: the Redis server's "
                            "certificate is not verified") != NULL,
                  "%s", w);
    ck_assert_msg(strstr(w, "engine.redis.sentinel_tls.insecure_skip_verify = true") != NULL, "%s",
                  w);
    free(w);
    us_config_free(cfg);

    ck_assert_int_eq(chmod(path, 0644), 0);
    cfg = us_config_load(path, err, sizeof err);
    w = warnings_of(cfg, &n);
    ck_assert_msg(n == 3, "%s", w);
    ck_assert_msg(strstr(w, "holds secrets and every user can read it (mode 0644)") != NULL, "%s",
                  w);
    ck_assert_msg(strstr(w, path) != NULL, "%s", w);
    ck_assert_msg(strstr(w, "0123456789abcdef") == NULL, "key in: %s", w);
    free(w);
    us_config_free(cfg);

    ck_assert_int_eq(chmod(path, 0666), 0);
    cfg = us_config_load(path, err, sizeof err);
    w = warnings_of(cfg, &n);
    ck_assert_msg(n == 4 && strstr(w, "every user can write to it (mode 0666)") != NULL, "%s", w);
    free(w);
    us_config_free(cfg);
    unlink(path);

    /* World-readable but without a secret in it: the key comes from the environment. */
    us_test_write_temp(".conf", "log { level = \"info\" }\n", path, sizeof path);
    ck_assert_int_eq(chmod(path, 0644), 0);
    us_test_env("USTATUS_HTTP_API_KEY", "0123456789abcdef0123456789abcdef");
    cfg = us_config_load(path, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_uint_eq(us_config_warnings(cfg, NULL, NULL), 0);
    us_config_free(cfg);
    unlink(path);

    /* A password in a redis:// URL is a secret too. */
    us_test_env("USTATUS_HTTP_API_KEY", NULL);
    us_test_write_temp(".json",
                       "{\"http_api\": {\"insecure\": true}, \"user_status\": {\"redis\": "
                       "{\"address\": \"redis://u:pw@h:6379\"}}}",
                       path, sizeof path);
    ck_assert_int_eq(chmod(path, 0604), 0);
    cfg = us_config_load(path, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    w = warnings_of(cfg, &n);
    ck_assert_msg(n == 2 && strstr(w, "holds secrets and every user can read it") != NULL, "%s",
                  w);
    free(w);
    us_config_free(cfg);
    unlink(path);
}
END_TEST

/* ---- runner ---- */

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("load");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_defaults_without_file);
    tcase_add_test(tc, test_defaults_empty_files);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_full_conf);
    tcase_add_test(tc, test_full_json_same_tree);
    tcase_add_test(tc, test_single_string_lists);
    tcase_add_test(tc, test_list_assignment_replaces_default);
    tcase_add_test(tc, test_handler_prefix_normalised);
    tcase_add_test(tc, test_misc_values);
    tcase_add_test(tc, test_json_seed_blocks);
    tcase_add_test(tc, test_json_centrifugo_v6);
    tcase_add_test(tc, test_json_byte_order_mark);
    tcase_add_test(tc, test_reload_after_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("environment");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_env_ustatus_prefix);
    tcase_add_test(tc, test_env_centrifugo_prefix_and_precedence);
    tcase_add_test(tc, test_env_overrides_file);
    tcase_add_test(tc, test_env_lists);
    tcase_add_loop_test(tc, test_env_booleans, 0, N_ELEMS(env_bools));
    tcase_add_test(tc, test_env_invalid_values);
    tcase_add_test(tc, test_env_secret_not_echoed);
    tcase_add_test(tc, test_env_error_is_one_line);
    tcase_add_test(tc, test_env_cross_field_names_variable);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_err_unknown_option);
    tcase_add_test(tc, test_err_bad_duration);
    tcase_add_test(tc, test_err_bad_address);
    tcase_add_test(tc, test_err_bad_port);
    tcase_add_test(tc, test_err_sentinel_master_name);
    tcase_add_test(tc, test_err_db_with_cluster);
    tcase_add_test(tc, test_wait_replicas);
    tcase_add_test(tc, test_err_reuse_without_redis_engine);
    tcase_add_test(tc, test_err_no_redis_address);
    tcase_add_test(tc, test_err_error_mode);
    tcase_add_test(tc, test_err_regex);
    tcase_add_test(tc, test_err_enums_and_prefixes);
    tcase_add_test(tc, test_err_integer_ranges);
    tcase_add_test(tc, test_err_bad_boolean);
    tcase_add_test(tc, test_err_syntax);
    tcase_add_test(tc, test_err_json_wrong_types);
    tcase_add_test(tc, test_err_json_malformed);
    tcase_add_test(tc, test_err_cannot_open);
    tcase_add_test(tc, test_err_buffer_handling);
    suite_add_tcase(s, tc);

    tc = tcase_create("nothing ignored");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_loop_test(tc, test_typo_conf, 0, N_ELEMS(typos));
    tcase_add_loop_test(tc, test_typo_json, 0, N_ELEMS(typos));
    tcase_add_loop_test(tc, test_typo_env, 0, N_ELEMS(env_typos));
    tcase_add_test(tc, test_env_names_accepted_and_centrifugo);
    tcase_add_test(tc, test_accepted_without_effect_conf);
    tcase_add_test(tc, test_unknown_top_level_sections);
    suite_add_tcase(s, tc);

    tc = tcase_create("tls and round-two values");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_tls_pem_forms);
    tcase_add_test(tc, test_tls_pem_errors);
    tcase_add_test(tc, test_tls_enabled_is_read);
    tcase_add_test(tc, test_value_checks_round_two);
    tcase_add_test(tc, test_secrets_never_in_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("lines");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_comments_keep_lines);
    tcase_add_test(tc, test_comment_after_list_element);
    tcase_add_test(tc, test_shipped_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("warnings");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_warnings_key);
    tcase_add_test(tc, test_warnings_file_mode_and_tls);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    /* Read before any test clears the USTATUS_ variables; forked tests inherit it. */
    const char *dir = getenv("USTATUS_SRCDIR");
    srcdir = dir ? strdup(dir) : NULL;
    int rc = us_test_run(config_suite());
    free((char *)srcdir);
    return rc;
}
