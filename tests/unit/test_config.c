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

static const char centrifugo_v6_json[] =
    "{\n"
    "  \"log\": {\"level\": \"trace\"},\n"
    "  \"http_server\": {\"port\": 8000, \"address\": \"0.0.0.0\"},\n"
    "  \"client\": {\n"
    "    \"allowed_origins\": [\"https://example.com\"],\n"
    "    \"token\": {\"hmac_secret_key\": \"tok-secret\", \"jwks_public_endpoint\": \"\"},\n"
    "    \"proxy\": {\"connect\": {\"enabled\": false}},\n"
    "    \"ping_pong\": {\"ping_interval\": \"25s\", \"pong_timeout\": \"8s\"},\n"
    "    \"insecure\": false\n"
    "  },\n"
    "  \"http_api\": {\"key\": \"api-key\", \"external\": true},\n"
    "  \"admin\": {\"enabled\": true, \"password\": \"pw\", \"secret\": \"s\"},\n"
    "  \"engine\": {\n"
    "    \"type\": \"redis\",\n"
    "    \"redis\": {\"address\": [\"redis://127.0.0.1:6379\"], \"tls\": {\"enabled\": false},\n"
    "              \"force_resp2\": false, \"prefix\": \"cf\", \"db\": null}\n"
    "  },\n"
    "  \"channel\": {\"namespaces\": [{\"name\": \"chat\", \"presence\": true}],\n"
    "              \"without_namespace\": {\"presence\": true}},\n"
    "  \"prometheus\": {\"enabled\": true},\n"
    "  \"consumers\": [],\n"
    "  \"user_status\": {\"enabled\": true, \"redis\": {\"reuse_from_engine\": true}},\n"
    "  \"opentelemetry\": null\n"
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
    expect_file_error(".conf", "http_api {\n  key = \"k\"\n  kee = \"k\"\n}\n", 3, "http_api.kee",
                      "unknown option");
    expect_file_error(".conf", "\n\nnot_a_section = 1\n", 3, "not_a_section", "unknown option");
    expect_file_error(".conf", "user_status {\n  redis {\n\n    adress = \"x\"\n  }\n}\n", 4,
                      "user_status.redis.adress", "unknown option");
    expect_file_error(".conf", "engine {\n  redis {\n    use_tls = true\n  }\n}\n", 3,
                      "engine.redis.use_tls", "unknown option");
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

    us_test_write_temp(".conf", "nope = 1\n", path, sizeof path);
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

    return s;
}

US_TEST_MAIN(config_suite)
