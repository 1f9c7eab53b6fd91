/* ustatus configuration: one option tree (SPEC §4) read from a libconfuse file or a
 * JSON file, then overridden from the environment, then validated.
 *
 * Everything here is plain data once loaded: the rest of ustatus never sees libconfuse
 * or json-c objects. Strings are owned by the us_config and freed by us_config_free. */
#ifndef USTATUS_CONFIG_H
#define USTATUS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


/* Exit status for an invalid configuration (sysexits.h EX_CONFIG). */
#define US_EXIT_CONFIG 78

/* Centrifugo's TLS object (SPEC §3.7): redis.tls, redis.sentinel_tls. Each PEM is the
 * resolved text, whichever of <name>_pem, <name>_pem_b64 or <name>_pem_file gave it ("" =
 * none). */
typedef struct us_tls_config {
    bool enabled;
    char *cert_pem;            /* client certificate (mutual TLS), with key_pem */
    char *key_pem;
    char *server_ca_pem;       /* "" = the system's CAs */
    bool insecure_skip_verify; /* no chain or name check (warned about) */
    char *server_name;         /* "" = the host of the address */
} us_tls_config;

/* One `redis` section (user_status.redis or engine.redis). */
typedef struct us_redis_config {
    char **address;            /* list, as written (each element one shard) */
    size_t address_count;
    char *prefix;              /* key prefix, default "centrifugo" */
    char *user;                /* ACL user, "" = none */
    char *password;            /* "" = none */
    int db;                    /* SELECT db, default 0 */
    int64_t connect_timeout_ms;/* default 1000 */
    int64_t io_timeout_ms;     /* default 4000 */
    char **sentinel_address;   /* list; one element per shard, sentinels comma-separated */
    size_t sentinel_address_count;
    char *sentinel_master_name;
    char *sentinel_user;
    char *sentinel_password;
    char **cluster_address;    /* list; one element per cluster, seeds comma-separated */
    size_t cluster_address_count;
    bool reuse_from_engine;
    char *client_name;         /* CLIENT SETNAME on every connection, "" = none */
    int wait_replicas;         /* WAIT for this many replicas after writes; 0 = no WAIT */
    int64_t wait_timeout_ms;   /* WAIT's timeout, default 500; below io_timeout */
    us_tls_config tls;         /* the data nodes; a rediss:// address turns it on too */
    us_tls_config sentinel_tls;/* the sentinels */
} us_redis_config;

typedef struct us_config {
    char *path;                /* the file it was read from ("" when none) */

    struct {
        char *key;             /* "" = no key configured */
        bool insecure;
        char *handler_prefix;  /* default "/api"; normalised: starts with '/', no trailing '/' */
        char *error_mode;      /* "" or "transport" */
        size_t max_body_bytes; /* default 1048576 */
    } http_api;

    struct {
        bool enabled;
        int64_t expire_interval_s;   /* default 720h = 2592000 */
        char *state_regex;           /* "" = any state accepted */
        size_t max_users_per_request;/* default 10000 */
        bool disable_for_client;
        us_redis_config redis;
    } user_status;

    struct {
        char *type;            /* "memory" (default) or "redis" */
        us_redis_config redis;
    } engine;

    struct {
        char *handler_prefix;  /* default "/client" */
        char **allowed_origins;
        size_t allowed_origins_count;
        int64_t min_update_interval_ms; /* default 1000 */
        struct {
            char *hmac_secret_key;
            char *rsa_public_key;
            char *ecdsa_public_key;
            char *audience;
            char *issuer;
            char *user_id_claim;
            char *jwks_public_endpoint; /* "" = none; http(s) URL of a JWKS document */
            char *audience_regex;       /* "" = none; POSIX extended, matched whole */
            char *issuer_regex;         /* "" = none */
        } token;
    } client;

    struct {
        char *handler_prefix;  /* default "/centrifugo" */
        char *key;
    } centrifugo_proxy;

    struct {
        char *listen;          /* "" = not set */
        long workers;          /* 0 = CPU count */
        long max_requests;     /* 0 = never recycle */
        long backlog;          /* default 1024 */
        int64_t request_timeout_ms; /* default 30000: a connection that has not delivered a
                                       whole request by then is closed */
    } fcgi;

    struct {
        char *level;           /* "debug", "info" (default), "warn", "error" */
        char *file;            /* "" = stderr; else timestamped lines appended there */
        bool syslog;           /* lines to syslog(3) with their severity */
    } log;

    /* What the load noticed without refusing it, one line each, for the log and
     * --check-config (us_config_warnings emits them): top-level keys that are neither a
     * section ustatus reads nor a Centrifugo v6 one (skipped), unknown CENTRIFUGO_*
     * variables (ignored: they may be Centrifugo's own). */
    char **notices;
    size_t notice_count;
    unsigned file_mode;        /* permission bits of the file read (0 when none) */
    bool file_has_secrets;     /* the file itself sets a key, password, secret or private key */
} us_config;

/* Loads the configuration from `path` (NULL: defaults only, then the environment).
 * A path ending in ".json" is read as JSON, anything else as libconfuse syntax.
 * Then applies USTATUS_* / CENTRIFUGO_* environment overrides (USTATUS_ wins when both
 * are set) and validates the result.
 * Every key of a section ustatus reads must be an option or a Centrifugo option accepted
 * without effect; Centrifugo-only top-level sections are skipped; an unknown key or
 * USTATUS_ variable is an error with the closest known name; skipped unknown top-level
 * keys and unknown CENTRIFUGO_ variables go to cfg->notices. TLS PEM options are resolved
 * here (a *_pem_file is read now).
 * Returns a new us_config (free with us_config_free), or NULL with one line in `err`
 * that names the file, the line when known, and the option, e.g.
 *   "/etc/ustatus/ustatus.conf:12: user_status.expire_interval: invalid duration \"12x\"",
 *   "/etc/ustatus/ustatus.conf:7: unknown option user_status.redis.adress; did you mean address?".
 * Never prints; never exits. */
us_config *us_config_load(const char *path, char *err, size_t err_len);

/* The unsafe settings of a loaded configuration (SPEC §4), one line each, passed to
 * emit(ctx, line) (emit may be NULL to count only); the line names the option, never a
 * secret's value. In order: cfg->notices; http_api.insecure = true; an http_api.key that
 * is empty, a template placeholder (@API_KEY@, <...>, ${...}, CHANGE_ME...) or shorter
 * than 32 characters; a file holding secrets that every user can read (mode & 0004;
 * group-readable is how the web server reads it, so not warned), a file every user can
 * write; insecure_skip_verify in each tls / sentinel_tls section.
 * Returns the number of lines emitted. Reads only cfg (the file's mode was recorded at
 * load); no other side effect. For --check-config (exit 0 after them) and for the log
 * at start-up. */
size_t us_config_warnings(const us_config *cfg, void (*emit)(void *ctx, const char *line),
                          void *ctx);

/* Frees everything; accepts NULL. */
void us_config_free(us_config *cfg);

/* The redis section the user status store uses: engine.redis when
 * user_status.redis.reuse_from_engine is set, else user_status.redis.
 * Points into cfg; never NULL for a loaded config. */
const us_redis_config *us_config_store_redis(const us_config *cfg);

#endif
