#include "ustatus/config.h"

#include <confuse.h>
#include <ctype.h>
#include <errno.h>
#include <json.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ustatus/buf.h"
#include "ustatus/duration.h"
#include "ustatus/mem.h"
#include "ustatus/redis_address.h"

/* A configuration file is a few kilobytes; the cap keeps a wrong path (a log file, a
 * device) from being slurped, and keeps lengths within json-c's int. */
#define MAX_FILE_BYTES (16u * 1024u * 1024u)
#define PATH_MAX_LEN 160 /* an option path such as "user_status.redis.sentinel_master_name" */
#define LOC_MAX_LEN 4200 /* "<file>:<line>: " for any file name the system can open */

/* ---- load context ---- */

enum source { SRC_DEFAULTS, SRC_FILE, SRC_JSON, SRC_ENV };

/* Where an option's current value came from, for cross-field errors found after
 * everything is read. */
struct origin {
    char *path;
    int line; /* line in a libconfuse file, 0 when unknown */
    char *env; /* variable that overrode the file, or NULL */
};

struct load_ctx {
    const char *file; /* as the caller named it; NULL when there is none */
    enum source src;
    const char *env_name; /* variable being applied while src == SRC_ENV */
    cfg_t *root;
    char *err;
    size_t err_len;
    bool failed;
    struct origin *origins;
    size_t origin_count;
    char **notices; /* warnings for the loaded configuration (see us_config.notices) */
    size_t notice_count;
    unsigned file_mode;     /* permission bits of the file read */
    bool file_has_secrets;  /* an option of a secret kind set in the file itself */
};

/* libconfuse callbacks (value parsers, validators, the error function) receive no user
 * pointer, so they find the load in progress here. */
static _Thread_local struct load_ctx *cur;

static void ctx_fail(struct load_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ctx_fail(struct load_ctx *c, const char *fmt, ...)
{
    va_list ap;

    /* The first error is the one that explains the others. */
    if (c->failed)
        return;
    c->failed = true;
    if (!c->err || c->err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(c->err, c->err_len, fmt, ap);
    va_end(ap);
    /* A value quoted back may hold a newline; the caller prints exactly one line. */
    for (char *p = c->err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

static void ctx_notice(struct load_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ctx_notice(struct load_ctx *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    c->notices = us_xrealloc(c->notices, (c->notice_count + 1) * sizeof *c->notices);
    c->notices[c->notice_count++] = us_xstrdup(line);
}

/* Finds the dotted path of section `want` below `node`, writing it at buf+at. */
static bool find_section_path(cfg_t *node, const cfg_t *want, char *buf, size_t len, size_t at)
{
    for (unsigned i = 0; node->opts[i].name; i++) {
        cfg_opt_t *o = &node->opts[i];
        if (o->type != CFGT_SEC || o->nvalues == 0)
            continue;
        int n = snprintf(buf + at, len - at, "%s%s", at ? "." : "", o->name);
        if (n < 0 || (size_t)n >= len - at)
            continue;
        cfg_t *sub = cfg_opt_getnsec(o, 0);
        if (sub == want || (sub && find_section_path(sub, want, buf, len, at + (size_t)n)))
            return true;
    }
    buf[at] = '\0';
    return false;
}

/* "user_status.redis" for the section cfg_t `sec` ("" for the root). The two redis
 * sections share one option array, so the name of the section alone is ambiguous. */
static void section_path(const cfg_t *sec, char *buf, size_t len)
{
    buf[0] = '\0';
    if (cur && cur->root && sec && sec != cur->root)
        find_section_path(cur->root, sec, buf, len, 0);
}

/* "a.b", or "b" when a is empty. A path too long for the buffer is cut short: it only
 * ever names an option in a message. */
static void path_join(char *buf, size_t len, const char *a, const char *b)
{
    if (snprintf(buf, len, "%s%s%s", a, a[0] ? "." : "", b) < 0)
        buf[0] = '\0';
}

static void option_path(const cfg_t *sec, const char *name, char *buf, size_t len)
{
    char sp[PATH_MAX_LEN];
    section_path(sec, sp, sizeof sp);
    path_join(buf, len, sp, name);
}

/* The location prefix for an error in the value being read right now. */
static void where(const struct load_ctx *c, const cfg_t *sec, char *buf, size_t len)
{
    switch (c->src) {
    case SRC_FILE:
        snprintf(buf, len, "%s:%d: ", c->file, sec ? sec->line : 0);
        break;
    case SRC_JSON:
        snprintf(buf, len, "%s: ", c->file);
        break;
    case SRC_ENV:
        snprintf(buf, len, "environment %s: ", c->env_name);
        break;
    default:
        buf[0] = '\0';
        break;
    }
}

static struct origin *origin_find(struct load_ctx *c, const char *path, bool create)
{
    for (size_t i = 0; i < c->origin_count; i++)
        if (strcmp(c->origins[i].path, path) == 0)
            return &c->origins[i];
    if (!create)
        return NULL;
    c->origins = us_xrealloc(c->origins, (c->origin_count + 1) * sizeof *c->origins);
    struct origin *o = &c->origins[c->origin_count++];
    o->path = us_xstrdup(path);
    o->line = 0;
    o->env = NULL;
    return o;
}

static void origins_free(struct load_ctx *c)
{
    for (size_t i = 0; i < c->origin_count; i++) {
        free(c->origins[i].path);
        free(c->origins[i].env);
    }
    free(c->origins);
    c->origins = NULL;
    c->origin_count = 0;
}

/* Values of these options are never quoted back in an error. */
static bool is_secret(const char *name)
{
    return strstr(name, "key") || strstr(name, "password") || strstr(name, "secret");
}

/* ---- names: what ustatus knows, what it accepts without effect, suggestions ---- */

/* Centrifugo options accepted in the sections ustatus reads although they change
 * nothing here, each with the reason (the README lists them). `section` is the kind of
 * section: "redis" is user_status.redis and engine.redis, "tls" is every tls and
 * sentinel_tls. A `whole` entry is a sub-section, skipped with all it holds. */
struct accepted_opt {
    const char *section, *name;
    bool whole;
    const char *why;
};

#define WHY_CONN                                                                                   \
    "real-time connection behaviour; ustatus holds no connections (each client call is one HTTP "  \
    "request)"
#define WHY_PRESENCE "Centrifugo's channel presence; ustatus keeps none"

static const struct accepted_opt accepted[] = {
    {"http_api", "external", false,
     "picks Centrifugo's external or internal port; where ustatus is reachable is the web "
     "server's configuration"},
    {"redis", "force_resp2", false,
     "ustatus always speaks RESP2 (hiredis 0.14), so there is no RESP3 to turn off"},
    {"redis", "sentinel_client_name", false,
     "ustatus asks Sentinel only for the master's address, on short connections it does not "
     "name; client_name names the data connections"},
    {"redis", "replica_client", true, "ustatus reads from and writes to masters only"},
    {"redis", "history_use_lists", false, "Centrifugo's channel history; ustatus keeps none"},
    {"redis", "presence_ttl", false, WHY_PRESENCE},
    {"redis", "presence_hash_field_ttl", false, WHY_PRESENCE},
    {"redis", "presence_user_mapping", false, WHY_PRESENCE},
    {"tls", "client_ca_pem", false,
     "verifies the clients of a TLS server; ustatus is a TLS client of Redis"},
    {"tls", "client_ca_pem_b64", false,
     "verifies the clients of a TLS server; ustatus is a TLS client of Redis"},
    {"tls", "client_ca_pem_file", false,
     "verifies the clients of a TLS server; ustatus is a TLS client of Redis"},
    {"client", "proxy", true, "Centrifugo's connect and refresh proxies of real-time connections"},
    {"client", "subscription_token", true,
     "tokens for channel subscriptions; ustatus's client endpoints take connection tokens "
     "(client.token)"},
    {"client", "subscribe_to_user_personal_channel", true, WHY_CONN},
    {"client", "connect_code_to_unidirectional_disconnect", true, WHY_CONN},
    {"client", "allow_anonymous_connect_without_token", false,
     "anonymous real-time connections; a status needs a user, so ustatus's client endpoints "
     "always need a token naming one"},
    {"client", "disallow_anonymous_connection_tokens", false,
     "anonymous real-time connections; ustatus refuses a token without a user anyway"},
    {"client", "insecure", false,
     "lets real-time connections in without a token; ustatus's client endpoints always "
     "verify the token (the safe reading)"},
    {"client", "insecure_skip_token_signature_verify", false,
     "ustatus always verifies token signatures (the safe reading)"},
    {"client", "user_id_http_header", false,
     "ustatus takes the user from a verified token only, never from a header"},
    {"client", "ping_interval", false, WHY_CONN},
    {"client", "pong_timeout", false, WHY_CONN},
    {"client", "expired_close_delay", false, WHY_CONN},
    {"client", "expired_sub_close_delay", false, WHY_CONN},
    {"client", "stale_close_delay", false, WHY_CONN},
    {"client", "channel_limit", false, WHY_CONN},
    {"client", "queue_max_size", false, WHY_CONN},
    {"client", "presence_update_interval", false, WHY_CONN},
    {"client", "concurrency", false, WHY_CONN},
    {"client", "channel_position_check_delay", false, WHY_CONN},
    {"client", "channel_position_max_time_lag", false, WHY_CONN},
    {"client", "connection_limit", false, WHY_CONN},
    {"client", "user_connection_limit", false, WHY_CONN},
    {"client", "connection_rate_limit", false, WHY_CONN},
    {"client", "connect_include_server_time", false, WHY_CONN},
    {"client", "history_max_publication_limit", false, WHY_CONN},
    {"client", "recovery_max_publication_limit", false, WHY_CONN},
};

/* Centrifugo v6's top-level keys that ustatus does not read (internal/config/config.go):
 * skipped whole, whatever they hold. */
static const char *const centrifugo_only[] = {
    "http_server", "broker", "presence_manager", "map_broker", "channel", "rpc", "proxies",
    "grpc_api", "consumers", "websocket", "sse", "http_stream", "webtransport", "uni_sse",
    "uni_http_stream", "uni_websocket", "uni_grpc", "emulation", "admin", "prometheus",
    "health", "swagger", "debug", "dev", "init", "opentelemetry", "graphite", "usage_stats",
    "node", "shutdown", "pid_file", "enable_unreleased_features",
};

/* USTATUS_ variables of the build and test tools (Makefile.am exports them to every test,
 * and the binary under test inherits them): not options. */
static const char *const tool_variables[] = {"USTATUS_BIN", "USTATUS_SRCDIR", "USTATUS_BUILDDIR",
                                             "USTATUS_SOAK_BUILD"};

/* sentinel_tls is a tls object like tls. */
static const char *section_kind(const char *name)
{
    return name && strcmp(name, "sentinel_tls") == 0 ? "tls" : name ? name : "";
}

static const struct accepted_opt *find_accepted(const char *kind, const char *name)
{
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (strcmp(accepted[i].section, kind) == 0 && strcmp(accepted[i].name, name) == 0)
            return &accepted[i];
    return NULL;
}

static bool is_centrifugo_only(const char *name)
{
    for (size_t i = 0; i < sizeof centrifugo_only / sizeof centrifugo_only[0]; i++)
        if (strcmp(centrifugo_only[i], name) == 0)
            return true;
    return false;
}

/* Damerau-Levenshtein distance (optimal string alignment), ignoring case. Names longer
 * than NAME_CMP_MAX are never close to anything ustatus knows. */
#define NAME_CMP_MAX 64
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    unsigned char d[NAME_CMP_MAX + 1][NAME_CMP_MAX + 1];

    if (n > NAME_CMP_MAX || m > NAME_CMP_MAX)
        return SIZE_MAX;
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (unsigned char)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (unsigned char)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            unsigned best = d[i - 1][j - 1] + (unsigned)(ca != cb);
            unsigned del = d[i - 1][j] + 1u, ins = d[i][j - 1] + 1u;
            if (del < best)
                best = del;
            if (ins < best)
                best = ins;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1u < best)
                best = d[i - 2][j - 2] + 1u;
            d[i][j] = (unsigned char)best;
        }
    }
    return d[n][m];
}

/* The closest candidate seen so far, when it is close enough to be a likely typo: one
 * edit for names of up to 3 characters, two up to 7, three beyond. */
struct suggestion {
    const char *best;
    size_t dist;
};

static void suggest_consider(struct suggestion *s, const char *name, const char *cand)
{
    size_t len = strlen(name);
    size_t limit = len <= 3 ? 1 : len <= 7 ? 2 : 3;
    size_t d = edit_distance(name, cand);

    if (d <= limit && d < len && (!s->best || d < s->dist)) {
        s->best = cand;
        s->dist = d;
    }
}

/* Candidates for an unknown key of a section: its options and what it accepts. */
static void suggest_in_section(struct suggestion *s, const cfg_opt_t *opts, const char *kind,
                               const char *name)
{
    for (unsigned i = 0; opts[i].name; i++)
        suggest_consider(s, name, opts[i].name);
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (strcmp(accepted[i].section, kind) == 0)
            suggest_consider(s, name, accepted[i].name);
}

/* "; did you mean x?" or "". */
static void suggestion_text(const struct suggestion *s, char *buf, size_t len)
{
    if (s->best)
        snprintf(buf, len, "; did you mean %s?", s->best);
    else if (len)
        buf[0] = '\0';
}

/* Reports a bad value of `opt` read now; returns -1 for the libconfuse callback. */
static int opt_fail(cfg_t *sec, const cfg_opt_t *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int opt_fail(cfg_t *sec, const cfg_opt_t *opt, const char *fmt, ...)
{
    struct load_ctx *c = cur;
    char reason[320], loc[LOC_MAX_LEN], path[PATH_MAX_LEN];
    va_list ap;

    if (!c)
        return -1;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    where(c, sec, loc, sizeof loc);
    if (c->src == SRC_ENV) {
        /* The variable's name already says which option it is. */
        ctx_fail(c, "%s%s", loc, reason);
    } else {
        option_path(sec, opt->name, path, sizeof path);
        ctx_fail(c, "%s%s: %s", loc, path, reason);
    }
    return -1;
}

static int bad_value(cfg_t *sec, const cfg_opt_t *opt, const char *value, const char *what)
{
    if (is_secret(opt->name))
        return opt_fail(sec, opt, "%s", what);
    return opt_fail(sec, opt, "%s \"%.200s\"", what, value);
}

/* ---- libconfuse callbacks ---- */

static void on_cfg_error(cfg_t *sec, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void on_cfg_error(cfg_t *sec, const char *fmt, va_list ap)
{
    struct load_ctx *c = cur;
    char loc[LOC_MAX_LEN], path[PATH_MAX_LEN], msg[256];

    if (!c || c->failed)
        return;
    where(c, sec, loc, sizeof loc);
    /* libconfuse's own wording does not say in which section the unknown name was. */
    if (strcmp(fmt, "no such option '%s'") == 0) {
        const char *name = va_arg(ap, const char *);
        struct suggestion s = {0};
        char hint[160];
        if (!name)
            name = "";
        option_path(sec, name, path, sizeof path);
        if (sec)
            suggest_in_section(&s, sec->opts, sec == c->root ? "" : section_kind(sec->name),
                               name);
        suggestion_text(&s, hint, sizeof hint);
        ctx_fail(c, "%sunknown option %s%s", loc, path, hint);
        return;
    }
    vsnprintf(msg, sizeof msg, fmt, ap);
    section_path(sec, path, sizeof path);
    ctx_fail(c, "%s%s%s%s", loc, path, path[0] ? ": " : "", msg);
}

/* Validator on every option: remembers the line that set it, for cross-field errors. */
static int note_line(cfg_t *sec, cfg_opt_t *opt)
{
    char path[PATH_MAX_LEN];

    if (!cur || cur->src != SRC_FILE)
        return 0; /* the defaults are parsed by libconfuse too, at line 0 */
    option_path(sec, opt->name, path, sizeof path);
    origin_find(cur, path, true)->line = sec->line;
    return 0;
}

static int cb_bool(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    static const char *const truthy[] = {"true", "yes", "on", "1"};
    static const char *const falsy[] = {"false", "no", "off", "0"};
    const char *v = value ? value : "";

    for (size_t i = 0; i < sizeof truthy / sizeof truthy[0]; i++) {
        if (strcasecmp(v, truthy[i]) == 0) {
            *(int *)result = 1;
            return 0;
        }
        if (strcasecmp(v, falsy[i]) == 0) {
            *(int *)result = 0;
            return 0;
        }
    }
    return bad_value(sec, opt, v, "invalid boolean");
}

static int int_in_range(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result, long min,
                        long max)
{
    const char *v = value ? value : "";
    char *end;
    long n;

    /* Base 10 only: libconfuse's own strtol(..., 0) would read "010" as 8. */
    errno = 0;
    n = strtol(v, &end, 10);
    if (end == v || *end || errno || isspace((unsigned char)v[0]))
        return bad_value(sec, opt, v, "invalid integer");
    if (n < min || n > max) {
        if (max == INT_MAX)
            return opt_fail(sec, opt, "must be at least %ld, got %ld", min, n);
        return opt_fail(sec, opt, "must be between %ld and %ld, got %ld", min, max, n);
    }
    *(long *)result = n;
    return 0;
}

static int cb_int_nonneg(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    return int_in_range(sec, opt, value, result, 0, INT_MAX);
}

static int cb_int_positive(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    return int_in_range(sec, opt, value, result, 1, INT_MAX);
}

/* A replica count for WAIT: more than a master has is a configuration mistake that
 * would fail every write. */
static int cb_wait_replicas(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    return int_in_range(sec, opt, value, result, 0, 100);
}

static int cb_workers(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    return int_in_range(sec, opt, value, result, 0, 1024);
}

static int duration_at_least(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result,
                             int64_t min_ms, const char *min_text)
{
    const char *v = value ? value : "";
    int64_t ms;

    if (us_duration_parse_ms(v, &ms) < 0)
        return bad_value(sec, opt, v, "invalid duration");
    if (ms < min_ms)
        return opt_fail(sec, opt, "must be at least %s, got \"%.64s\"", min_text, v);
    *(const char **)result = v;
    return 0;
}

/* Redis EXPIRE counts whole seconds: anything shorter would mean "expire now". */
static int cb_duration_expire(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    return duration_at_least(sec, opt, value, result, 1000, "1s");
}

static int cb_duration_timeout(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    return duration_at_least(sec, opt, value, result, 1, "1ms");
}

static int cb_duration_any(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    return duration_at_least(sec, opt, value, result, 0, "0");
}

/* Address messages never quote the value: a redis:// URL may carry a password. */
static int check_one_address(cfg_t *sec, cfg_opt_t *opt, const char *s, size_t n)
{
    char one[1024], why[160];
    us_redis_address a;

    while (n > 0 && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n == 0)
        return opt_fail(sec, opt, "invalid address: empty address");
    if (n >= sizeof one)
        return opt_fail(sec, opt, "invalid address: too long");
    memcpy(one, s, n);
    one[n] = '\0';
    if (us_redis_address_parse(one, &a, why, sizeof why) < 0)
        return opt_fail(sec, opt, "invalid address: %s", why);
    return 0;
}

static int cb_address(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    const char *v = value ? value : "";

    if (check_one_address(sec, opt, v, strlen(v)) < 0)
        return -1;
    *(const char **)result = v;
    return 0;
}

/* A sentinel or cluster element names one shard or cluster by several comma-separated
 * nodes, so a single list element carries many addresses. */
static int cb_address_group(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    const char *v = value ? value : "";
    const char *p = v;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (check_one_address(sec, opt, p, n) < 0)
            return -1;
        if (!comma)
            break;
        p = comma + 1;
    }
    *(const char **)result = v;
    return 0;
}

static int cb_handler_prefix(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    const char *v = value ? value : "";

    if (v[0] != '/')
        return bad_value(sec, opt, v, "must start with '/', got");
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            return bad_value(sec, opt, v, "must be a URL path without spaces, '?' or '#', got");
    *(const char **)result = v;
    return 0;
}

static int cb_error_mode(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    const char *v = value ? value : "";

    if (strcmp(v, "") != 0 && strcmp(v, "transport") != 0)
        return bad_value(sec, opt, v, "must be \"\" or \"transport\", got");
    *(const char **)result = v;
    return 0;
}

static int cb_engine_type(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    const char *v = value ? value : "";

    if (strcmp(v, "memory") != 0 && strcmp(v, "redis") != 0)
        return bad_value(sec, opt, v, "must be \"memory\" or \"redis\", got");
    *(const char **)result = v;
    return 0;
}

/* Stored in canonical form so the rest of ustatus compares plain lower-case names.
 * "trace" and "none" are Centrifugo v6 levels: accepted so its config.json loads as it
 * is, mapped to the nearest level ustatus has. */
static int cb_log_level(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    static const struct {
        const char *name, *canonical;
    } levels[] = {
        {"debug", "debug"}, {"info", "info"}, {"warn", "warn"}, {"warning", "warn"},
        {"error", "error"}, {"trace", "debug"}, {"none", "error"},
    };
    const char *v = value ? value : "";

    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcasecmp(v, levels[i].name) == 0) {
            *(const char **)result = levels[i].canonical;
            return 0;
        }
    return bad_value(sec, opt, v, "must be debug, info, warn or error, got");
}

static int cb_regex(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    const char *v = value ? value : "";

    if (*v) {
        regex_t re;
        int rc = regcomp(&re, v, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char why[128];
            regerror(rc, &re, why, sizeof why); /* regfree is not for a failed regcomp */
            return opt_fail(sec, opt, "invalid regular expression \"%.100s\": %s", v, why);
        }
        regfree(&re);
    }
    *(const char **)result = v;
    return 0;
}

/* Centrifugo's http_api.disabled: false is what ustatus does anyway; true would ask it
 * not to serve the one API it exists for. */
static int cb_not_disabled(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    if (cb_bool(sec, opt, value, result) < 0)
        return -1;
    if (*(int *)result)
        return opt_fail(sec, opt,
                        "true is not supported: ustatus is the server API; remove its route "
                        "from the web server instead");
    return 0;
}

/* "" or an http:// or https:// URL with a host, nothing a request line cannot carry. */
static int cb_http_url(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    const char *v = value ? value : "";
    const char *rest = NULL;

    if (*v) {
        if (strncasecmp(v, "https://", 8) == 0)
            rest = v + 8;
        else if (strncasecmp(v, "http://", 7) == 0)
            rest = v + 7;
        if (!rest)
            return opt_fail(sec, opt, "must be an http:// or https:// URL");
        if (*rest == '\0' || *rest == '/' || *rest == '?' || *rest == '#')
            return opt_fail(sec, opt, "the URL has no host");
        /* Not quoted back: a URL may carry credentials. */
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
                return opt_fail(sec, opt, "the URL has a space or a non-ASCII character");
    }
    *(const char **)result = v;
    return 0;
}

/* Redis's CLIENT SETNAME takes printable ASCII without spaces ('!' to '~'). */
static int cb_client_name(cfg_t *sec, cfg_opt_t *opt, const char *value, void *result)
{
    const char *v = value ? value : "";

    for (const char *p = v; *p; p++)
        if (*p < '!' || *p > '~')
            return bad_value(sec, opt, v,
                             "must be printable ASCII without spaces (Redis CLIENT SETNAME), got");
    *(const char **)result = v;
    return 0;
}

/* ---- the option tree (SPEC §4) ---- */

#define US_OPT(n, t, fl, cb) \
    .name = (n), .type = (t), .flags = (fl), .parsecb = (cb), .validcb = note_line
#define OPT_STR(n, d, cb) {US_OPT(n, CFGT_STR, CFGF_NONE, cb), .def.string = (d)}
#define OPT_LIST(n, d, cb) {US_OPT(n, CFGT_STR, CFGF_LIST, cb), .def.parsed = (d)}
#define OPT_INT(n, d, cb) {US_OPT(n, CFGT_INT, CFGF_NONE, cb), .def.number = (d)}
#define OPT_BOOL(n, d) {US_OPT(n, CFGT_BOOL, CFGF_NONE, cb_bool), .def.boolean = (d)}
#define OPT_BOOL_CB(n, d, cb) {US_OPT(n, CFGT_BOOL, CFGF_NONE, cb), .def.boolean = (d)}

/* Centrifugo's TLS object (SPEC §3.7), as redis.tls and redis.sentinel_tls. */
static cfg_opt_t tls_opts[] = {
    OPT_BOOL("enabled", cfg_false),
    OPT_STR("cert_pem", "", NULL),
    OPT_STR("cert_pem_b64", "", NULL),
    OPT_STR("cert_pem_file", "", NULL),
    OPT_STR("key_pem", "", NULL),
    OPT_STR("key_pem_b64", "", NULL),
    OPT_STR("key_pem_file", "", NULL),
    OPT_STR("server_ca_pem", "", NULL),
    OPT_STR("server_ca_pem_b64", "", NULL),
    OPT_STR("server_ca_pem_file", "", NULL),
    OPT_BOOL("insecure_skip_verify", cfg_false),
    OPT_STR("server_name", "", NULL),
    CFG_END(),
};

/* One array for user_status.redis and engine.redis: the feature description promises
 * the same options in both places. */
static cfg_opt_t redis_opts[] = {
    OPT_LIST("address", "{\"127.0.0.1:6379\"}", cb_address),
    OPT_STR("prefix", "centrifugo", NULL),
    OPT_STR("user", "", NULL),
    OPT_STR("password", "", NULL),
    OPT_INT("db", 0, cb_int_nonneg),
    OPT_STR("connect_timeout", "1s", cb_duration_timeout),
    OPT_STR("io_timeout", "4s", cb_duration_timeout),
    OPT_LIST("sentinel_address", NULL, cb_address_group),
    OPT_STR("sentinel_master_name", "", NULL),
    OPT_STR("sentinel_user", "", NULL),
    OPT_STR("sentinel_password", "", NULL),
    OPT_LIST("cluster_address", NULL, cb_address_group),
    OPT_BOOL("reuse_from_engine", cfg_false),
    OPT_STR("client_name", "", cb_client_name),
    OPT_INT("wait_replicas", 0, cb_wait_replicas),
    OPT_STR("wait_timeout", "500ms", cb_duration_timeout),
    CFG_SEC("tls", tls_opts, CFGF_NONE),
    CFG_SEC("sentinel_tls", tls_opts, CFGF_NONE),
    CFG_END(),
};

static cfg_opt_t http_api_opts[] = {
    OPT_STR("key", "", NULL),
    OPT_BOOL("insecure", cfg_false),
    OPT_STR("handler_prefix", "/api", cb_handler_prefix),
    OPT_STR("error_mode", "", cb_error_mode),
    OPT_INT("max_body_bytes", 1048576, cb_int_positive),
    OPT_BOOL_CB("disabled", cfg_false, cb_not_disabled), /* Centrifugo's; false only */
    CFG_END(),
};

static cfg_opt_t user_status_opts[] = {
    OPT_BOOL("enabled", cfg_true),
    OPT_STR("expire_interval", "720h", cb_duration_expire),
    OPT_STR("state_regex", "", cb_regex),
    OPT_INT("max_users_per_request", 10000, cb_int_positive),
    OPT_BOOL("disable_for_client", cfg_false),
    CFG_SEC("redis", redis_opts, CFGF_NONE),
    CFG_END(),
};

static cfg_opt_t engine_opts[] = {
    OPT_STR("type", "memory", cb_engine_type),
    CFG_SEC("redis", redis_opts, CFGF_NONE),
    CFG_END(),
};

static cfg_opt_t token_opts[] = {
    OPT_STR("hmac_secret_key", "", NULL),
    OPT_STR("rsa_public_key", "", NULL),
    OPT_STR("ecdsa_public_key", "", NULL),
    OPT_STR("audience", "", NULL),
    OPT_STR("issuer", "", NULL),
    OPT_STR("user_id_claim", "", NULL),
    OPT_STR("jwks_public_endpoint", "", cb_http_url),
    OPT_STR("audience_regex", "", cb_regex),
    OPT_STR("issuer_regex", "", cb_regex),
    CFG_END(),
};

static cfg_opt_t client_opts[] = {
    OPT_STR("handler_prefix", "/client", cb_handler_prefix),
    OPT_LIST("allowed_origins", NULL, NULL),
    OPT_STR("min_update_interval", "1s", cb_duration_any),
    CFG_SEC("token", token_opts, CFGF_NONE),
    CFG_END(),
};

static cfg_opt_t centrifugo_proxy_opts[] = {
    OPT_STR("handler_prefix", "/centrifugo", cb_handler_prefix),
    OPT_STR("key", "", NULL),
    CFG_END(),
};

static cfg_opt_t fcgi_opts[] = {
    OPT_STR("listen", "", NULL),
    OPT_INT("workers", 0, cb_workers),
    OPT_INT("max_requests", 0, cb_int_nonneg),
    OPT_INT("backlog", 1024, cb_int_positive),
    OPT_STR("request_timeout", "30s", cb_duration_timeout),
    CFG_END(),
};

static cfg_opt_t log_opts[] = {
    OPT_STR("level", "info", cb_log_level),
    OPT_STR("file", "", NULL),
    OPT_BOOL("syslog", cfg_false),
    CFG_END(),
};

static cfg_opt_t root_opts[] = {
    CFG_SEC("http_api", http_api_opts, CFGF_NONE),
    CFG_SEC("user_status", user_status_opts, CFGF_NONE),
    CFG_SEC("engine", engine_opts, CFGF_NONE),
    CFG_SEC("client", client_opts, CFGF_NONE),
    CFG_SEC("centrifugo_proxy", centrifugo_proxy_opts, CFGF_NONE),
    CFG_SEC("fcgi", fcgi_opts, CFGF_NONE),
    CFG_SEC("log", log_opts, CFGF_NONE),
    CFG_END(),
};

/* The sections libconfuse creates for the defaults (in cfg_init) are the ones later
 * parsing and setting write into, but they were made before the error function was
 * installed on the root. */
static void set_error_function(cfg_t *sec)
{
    cfg_set_error_function(sec, on_cfg_error);
    for (unsigned i = 0; sec->opts[i].name; i++)
        if (sec->opts[i].type == CFGT_SEC && sec->opts[i].nvalues > 0)
            set_error_function(cfg_opt_getnsec(&sec->opts[i], 0));
}

static cfg_opt_t *find_option(cfg_t *sec, const char *name)
{
    /* Not cfg_getopt(): that reports an unknown name as an error, and JSON ignores them. */
    for (unsigned i = 0; sec->opts[i].name; i++)
        if (strcmp(sec->opts[i].name, name) == 0)
            return &sec->opts[i];
    return NULL;
}

/* Every non-file value goes through cfg_setopt() so the option's own callback checks
 * it, whatever the source. */
static int set_scalar(struct load_ctx *c, cfg_t *sec, cfg_opt_t *opt, const char *text)
{
    if (cfg_setopt(sec, opt, text))
        return 0;
    if (!c->failed)
        opt_fail(sec, opt, "cannot set value");
    return -1;
}

static int set_list(struct load_ctx *c, cfg_t *sec, cfg_opt_t *opt, const char *const *items,
                    size_t n)
{
    cfg_free_value(opt); /* a new value replaces the list, as "=" does in a file */
    for (size_t i = 0; i < n; i++)
        if (set_scalar(c, sec, opt, items[i]) < 0)
            return -1;
    return 0;
}

/* ---- files ---- */

static int read_whole_file(struct load_ctx *c, const char *path, char **out, size_t *out_len)
{
    FILE *fp = fopen(path, "rb");
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (!fp) {
        ctx_fail(c, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(fp), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            ctx_fail(c, "cannot open %s: %s", path, strerror(EISDIR));
            goto fail;
        }
        c->file_mode = (unsigned)(st.st_mode & 07777);
    }
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            buf = us_xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (len > MAX_FILE_BYTES) {
            ctx_fail(c, "cannot read %s: larger than %u bytes", path, MAX_FILE_BYTES);
            goto fail;
        }
        if (got == 0) {
            if (ferror(fp)) {
                ctx_fail(c, "cannot read %s: %s", path, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    fclose(fp);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
fail:
    free(buf);
    fclose(fp);
    return -1;
}

/* ---- libconfuse text, prepared ----
 *
 * libconfuse is handed a copy of the file in which comments are blanked and the parts
 * ustatus skips (Centrifugo-only sections, options accepted without effect) are blanked
 * too, newlines kept, so that every line number libconfuse reports is the file's. Two
 * faults of Debian 12's libconfuse 3.3 go with the comments: it counts a '#' comment as
 * three lines, and a comment after a list element is a syntax error.
 *
 * The tokens are libconfuse's own (its lexer.l): '#' and a run of '/' that is not the
 * start of an unquoted word begin a comment to the end of the line, "/" "*" one to "*" "/";
 * "..." with backslash escapes, '...' likewise, and ${VAR} are strings; an unquoted word
 * runs until a space or one of  # " ' = { } ( ) + , *  ; "+=" is one token. Anything the
 * walk below does not understand stops it: the rest goes to libconfuse unchanged but
 * for its comments, and libconfuse reports the error at its true line. */

enum tok_type { T_EOF, T_WORD, T_STR, T_LBRACE, T_RBRACE, T_LPAREN, T_RPAREN, T_EQ, T_ADD,
                T_COMMA, T_BAD };

struct scanner {
    char *s;
    size_t len, pos;
    int line;
    bool strip; /* blank comments as they are passed */
};

struct token {
    enum tok_type type;
    size_t start, end;
    int line;
};

/* Blanks [from, to) but its newlines. */
static void blank(char *s, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (s[i] != '\n')
            s[i] = ' ';
}

static bool word_char(char ch)
{
    return ch == '\0' || !strchr(" #\"'\t\n\r={}()+,*", ch);
}

static size_t word_end(const struct scanner *sc, size_t p)
{
    while (p < sc->len && word_char(sc->s[p]))
        p++;
    return p;
}

/* A quoted string from sc->pos (at the quote); false when it never ends. */
static bool scan_quoted(struct scanner *sc, struct token *t)
{
    char q = sc->s[sc->pos];
    size_t p = sc->pos + 1;

    for (; p < sc->len; p++) {
        if (sc->s[p] == '\\' && p + 1 < sc->len) {
            p++;
            if (sc->s[p] == '\n')
                sc->line++;
        } else if (sc->s[p] == q) {
            t->type = T_STR;
            t->end = p + 1;
            sc->pos = p + 1;
            return true;
        } else if (sc->s[p] == '\n') {
            sc->line++;
        }
    }
    return false;
}

static void skip_comment(struct scanner *sc, size_t end)
{
    for (size_t i = sc->pos; i < end; i++)
        if (sc->s[i] == '\n')
            sc->line++;
    if (sc->strip)
        blank(sc->s, sc->pos, end);
    sc->pos = end;
}

static void next_token(struct scanner *sc, struct token *t)
{
    for (;;) {
        t->start = sc->pos;
        t->line = sc->line;
        if (sc->pos >= sc->len) {
            t->type = T_EOF;
            t->end = sc->pos;
            return;
        }
        char ch = sc->s[sc->pos];
        char next = sc->pos + 1 < sc->len ? sc->s[sc->pos + 1] : '\0';
        if (ch == '\n') {
            sc->line++;
            sc->pos++;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '*' || (ch == '+' && next != '=')) {
            sc->pos++; /* libconfuse drops a stray '*', '+' or CR too */
            continue;
        }
        if (ch == '/' && next == '*') {
            const char *close = NULL;
            for (size_t p = sc->pos + 2; p + 1 < sc->len; p++)
                if (sc->s[p] == '*' && sc->s[p + 1] == '/') {
                    close = sc->s + p + 2;
                    break;
                }
            skip_comment(sc, close ? (size_t)(close - sc->s) : sc->len);
            continue;
        }
        if (ch == '#' || (ch == '/' && next == '/')) {
            size_t slashes = sc->pos;
            while (slashes < sc->len && sc->s[slashes] == '/')
                slashes++;
            /* "//x" is a word to flex (the longer match); "// x" a comment. */
            if (ch == '#' || slashes >= word_end(sc, sc->pos)) {
                const char *nl = memchr(sc->s + sc->pos, '\n', sc->len - sc->pos);
                skip_comment(sc, nl ? (size_t)(nl - sc->s) : sc->len);
                continue;
            }
        }
        if (ch == '"' || ch == '\'') {
            if (!scan_quoted(sc, t)) {
                t->type = T_BAD;
                t->end = sc->len;
            }
            return;
        }
        if (ch == '$' && next == '{') {
            const char *close = memchr(sc->s + sc->pos, '}', sc->len - sc->pos);
            if (close) {
                t->type = T_STR;
                t->end = (size_t)(close - sc->s) + 1;
                sc->pos = t->end;
                return;
            }
        }
        static const char punct[] = "{}()=,";
        static const enum tok_type punct_type[] = {T_LBRACE, T_RBRACE, T_LPAREN,
                                                   T_RPAREN, T_EQ,     T_COMMA};
        const char *pc = ch ? strchr(punct, ch) : NULL;
        if (pc) {
            t->type = punct_type[pc - punct];
            sc->pos++;
        } else if (ch == '+') {
            t->type = T_ADD;
            sc->pos += 2;
        } else {
            t->type = T_WORD;
            sc->pos = word_end(sc, sc->pos);
        }
        t->end = sc->pos;
        return;
    }
}

static void peek_token(struct scanner *sc, struct token *t)
{
    size_t pos = sc->pos;
    int line = sc->line;
    next_token(sc, t);
    sc->pos = pos;
    sc->line = line;
}

/* Passes a balanced {...} or (...) whose opening token was just read; false at EOF. */
static bool skip_balanced(struct scanner *sc, size_t *end)
{
    struct token t;
    unsigned depth = 1;

    for (;;) {
        next_token(sc, &t);
        if (t.type == T_EOF || t.type == T_BAD)
            return false;
        if (t.type == T_LBRACE || t.type == T_LPAREN)
            depth++;
        else if ((t.type == T_RBRACE || t.type == T_RPAREN) && --depth == 0) {
            *end = t.end;
            return true;
        }
    }
}

enum stmt_form { FORM_VALUE, FORM_SECTION, FORM_CALL };

/* Passes what follows an option's name: "= value", "= {list}", "+= ...", "{...}",
 * "title {...}" or "(args)". Sets the end of the statement; false when it is none of
 * these. */
static bool skip_statement(struct scanner *sc, size_t *end, enum stmt_form *form)
{
    struct token t, v;

    next_token(sc, &t);
    switch (t.type) {
    case T_EQ:
    case T_ADD:
        *form = FORM_VALUE;
        next_token(sc, &v);
        if (v.type == T_LBRACE)
            return skip_balanced(sc, end);
        if (v.type != T_WORD && v.type != T_STR)
            return false;
        *end = v.end;
        return true;
    case T_LBRACE:
        *form = FORM_SECTION;
        return skip_balanced(sc, end);
    case T_WORD:
    case T_STR:
        *form = FORM_SECTION;
        next_token(sc, &v);
        return v.type == T_LBRACE && skip_balanced(sc, end);
    case T_LPAREN:
        *form = FORM_CALL;
        return skip_balanced(sc, end);
    default:
        return false;
    }
}

static const cfg_opt_t *static_option(const cfg_opt_t *opts, const char *name)
{
    for (unsigned i = 0; opts[i].name; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static bool close_to_root_section(const char *name)
{
    struct suggestion s = {0};
    suggest_in_section(&s, root_opts, "", name);
    return s.best != NULL;
}

/* Walks the statements of a section ustatus reads (`opts`, of kind `kind`; the root at
 * depth 0) up to its closing brace, blanking what is skipped. Unknown names are left for
 * libconfuse, which reports them with the line they are on. False when the text stops
 * making sense. */
static bool walk_section(struct load_ctx *c, struct scanner *sc, const cfg_opt_t *opts,
                         const char *kind, unsigned depth)
{
    for (;;) {
        struct token t, after;
        char name[PATH_MAX_LEN];
        size_t end;
        enum stmt_form form;

        next_token(sc, &t);
        if (t.type == T_EOF)
            return depth == 0;
        if (t.type == T_RBRACE)
            return depth > 0;
        if (t.type != T_WORD)
            return false;
        size_t n = t.end - t.start;
        if (n >= sizeof name)
            n = sizeof name - 1; /* too long to be known: libconfuse names it */
        memcpy(name, sc->s + t.start, n);
        name[n] = '\0';

        const cfg_opt_t *o = static_option(opts, name);
        if (o && o->type == CFGT_SEC) {
            peek_token(sc, &after);
            if (after.type == T_LBRACE && depth < 8) {
                next_token(sc, &after);
                if (!walk_section(c, sc, o->subopts, section_kind(o->name), depth + 1))
                    return false;
                continue;
            }
        }
        if (!skip_statement(sc, &end, &form))
            return false;
        if (o)
            continue;
        if (find_accepted(kind, name) && form != FORM_CALL) {
            blank(sc->s, t.start, end);
        } else if (depth == 0 && form != FORM_CALL && is_centrifugo_only(name)) {
            blank(sc->s, t.start, end);
        } else if (depth == 0 && form != FORM_CALL && !close_to_root_section(name)) {
            /* A section of some other program (Centrifugo PRO's own, say). */
            blank(sc->s, t.start, end);
            ctx_notice(c, "%s:%d: ignored %s: neither a section ustatus reads nor one of "
                          "Centrifugo v6",
                       c->file, t.line, name);
        }
    }
}

/* The text libconfuse parses: `text` with comments and skipped parts blanked. */
static char *prepare_confuse_text(struct load_ctx *c, const char *text, size_t len)
{
    struct scanner sc = {.s = us_xmalloc(len + 1), .len = len, .line = 1, .strip = true};
    struct token t;

    memcpy(sc.s, text, len);
    sc.s[len] = '\0';
    do
        next_token(&sc, &t);
    while (t.type != T_EOF && t.type != T_BAD);
    sc.pos = 0;
    sc.line = 1;
    sc.strip = false;
    walk_section(c, &sc, root_opts, "", 0);
    return sc.s;
}

static int load_confuse(struct load_ctx *c, cfg_t *tree, const char *text, size_t len)
{
    int rc;

    if (len == 0)
        return 0;
    char *prepared = prepare_confuse_text(c, text, len);
    /* Parsing from memory: flex exits the process on a read error from a real file. */
    FILE *fp = fmemopen(prepared, len, "r");
    if (!fp) {
        ctx_fail(c, "cannot read %s: %s", c->file, strerror(errno));
        free(prepared);
        return -1;
    }
    c->src = SRC_FILE;
    rc = cfg_parse_fp(tree, fp);
    c->src = SRC_DEFAULTS;
    fclose(fp);
    free(prepared);
    if (rc != CFG_SUCCESS || c->failed) {
        ctx_fail(c, "%s: syntax error", c->file);
        return -1;
    }
    return 0;
}

static int json_fail(struct load_ctx *c, const char *path, const char *what)
{
    ctx_fail(c, "%s: %s: %s", c->file, path, what);
    return -1;
}

/* A JSON string holding \u0000 would be cut short silently in a C string. */
static const char *json_plain_string(json_object *v)
{
    const char *s = json_object_get_string(v);
    if (!s || strlen(s) != (size_t)json_object_get_string_len(v))
        return NULL;
    return s;
}

static int json_option(struct load_ctx *c, cfg_t *sec, cfg_opt_t *opt, json_object *v,
                       const char *path)
{
    char num[32];
    const char *s;

    switch (opt->type) {
    case CFGT_STR:
        if (!(opt->flags & CFGF_LIST)) {
            if (!json_object_is_type(v, json_type_string))
                return json_fail(c, path, "expected a string");
            if (!(s = json_plain_string(v)))
                return json_fail(c, path, "string contains a NUL character");
            return set_scalar(c, sec, opt, s);
        }
        if (json_object_is_type(v, json_type_string)) {
            if (!(s = json_plain_string(v)))
                return json_fail(c, path, "string contains a NUL character");
            return set_list(c, sec, opt, &s, 1);
        }
        if (json_object_is_type(v, json_type_array)) {
            size_t n = json_object_array_length(v);
            const char **items = us_xcalloc(n ? n : 1, sizeof *items);
            for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);
                if (!json_object_is_type(e, json_type_string)) {
                    free(items);
                    return json_fail(c, path, "expected a string or an array of strings");
                }
                if (!(items[i] = json_plain_string(e))) {
                    free(items);
                    return json_fail(c, path, "string contains a NUL character");
                }
            }
            int rc = set_list(c, sec, opt, items, n);
            free(items);
            return rc;
        }
        return json_fail(c, path, "expected a string or an array of strings");
    case CFGT_INT:
        if (json_object_is_type(v, json_type_int)) {
            snprintf(num, sizeof num, "%lld", (long long)json_object_get_int64(v));
        } else if (json_object_is_type(v, json_type_double)) {
            /* 1e6 or 10.0 are integers written as JSON numbers; 1.5 is not. */
            double d = json_object_get_double(v);
            if (!(d >= -1e15 && d <= 1e15) || d != (double)(long long)d)
                return json_fail(c, path, "expected an integer");
            snprintf(num, sizeof num, "%lld", (long long)d);
        } else {
            return json_fail(c, path, "expected an integer");
        }
        return set_scalar(c, sec, opt, num);
    case CFGT_BOOL:
        if (!json_object_is_type(v, json_type_boolean))
            return json_fail(c, path, "expected a boolean");
        return set_scalar(c, sec, opt, json_object_get_boolean(v) ? "true" : "false");
    default:
        return json_fail(c, path, "unsupported option type");
    }
}

/* Every key of a section ustatus reads is an option, a Centrifugo option accepted
 * without effect, or an error; at the top level, Centrifugo's own sections are skipped
 * whole, and so is anything not close to a section name of ustatus (with a notice). */
static int json_section(struct load_ctx *c, cfg_t *sec, json_object *obj, const char *prefix,
                        const char *kind)
{
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);

    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        json_object *v = json_object_iter_peek_value(&it);
        cfg_opt_t *opt = find_option(sec, key);
        char path[PATH_MAX_LEN];

        path_join(path, sizeof path, prefix, key);
        if (!opt) {
            struct suggestion sug = {0};
            char hint[160];
            /* Accepted whatever it holds: it changes nothing here either way. */
            if (find_accepted(kind, key))
                continue;
            if (!*prefix && is_centrifugo_only(key))
                continue;
            suggest_in_section(&sug, sec->opts, kind, key);
            if (!*prefix && !sug.best) {
                ctx_notice(c, "%s: ignored %.100s: neither a section ustatus reads nor one of "
                              "Centrifugo v6",
                           c->file, key);
                continue;
            }
            suggestion_text(&sug, hint, sizeof hint);
            ctx_fail(c, "%s: unknown option %s%s", c->file, path, hint);
            return -1;
        }
        if (v == NULL)
            continue; /* null leaves the default, as Go's decoder does */
        if (opt->type == CFGT_SEC) {
            if (!json_object_is_type(v, json_type_object))
                return json_fail(c, path, "expected an object");
            if (json_section(c, cfg_opt_getnsec(opt, 0), v, path, section_kind(key)) < 0)
                return -1;
            continue;
        }
        if (json_option(c, sec, opt, v, path) < 0)
            return -1;
    }
    return 0;
}

static int load_json(struct load_ctx *c, cfg_t *tree, const char *text, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    json_object *doc = NULL;
    int rc = -1;

    if (!tok) {
        ctx_fail(c, "%s: cannot allocate the JSON parser", c->file);
        return -1;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    /* Editors on some systems write a byte order mark; strict json-c rejects it. */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3;
        len -= 3;
    }
    doc = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    if (jerr != json_tokener_success) {
        size_t off = json_tokener_get_parse_end(tok);
        const char *why = json_tokener_error_desc(jerr);
        int line = 1, col = 1;
        if (jerr == json_tokener_continue) {
            off = len; /* nothing wrong yet, but the document never ended */
            why = "unexpected end of file";
        }
        for (size_t i = 0; i < off && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        ctx_fail(c, "%s:%d:%d: malformed JSON: %s", c->file, line, col, why);
        goto done;
    }
    if (!json_object_is_type(doc, json_type_object)) {
        ctx_fail(c, "%s: the top level must be a JSON object", c->file);
        goto done;
    }
    c->src = SRC_JSON;
    rc = json_section(c, tree, doc, "", "");
    c->src = SRC_DEFAULTS;
done:
    json_object_put(doc);
    json_tokener_free(tok);
    return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ---- environment ---- */

static int apply_env_section(struct load_ctx *c, cfg_t *sec, const char *path)
{
    for (unsigned i = 0; sec->opts[i].name; i++) {
        cfg_opt_t *opt = &sec->opts[i];
        char sub[PATH_MAX_LEN], upper[PATH_MAX_LEN];
        char name_us[PATH_MAX_LEN + 16], name_cf[PATH_MAX_LEN + 16];

        path_join(sub, sizeof sub, path, opt->name);
        if (opt->type == CFGT_SEC) {
            if (opt->nvalues > 0 && apply_env_section(c, cfg_opt_getnsec(opt, 0), sub) < 0)
                return -1;
            continue;
        }
        size_t k = 0;
        for (; sub[k]; k++)
            upper[k] = sub[k] == '.' ? '_' : (char)toupper((unsigned char)sub[k]);
        upper[k] = '\0';
        snprintf(name_us, sizeof name_us, "USTATUS_%s", upper);
        snprintf(name_cf, sizeof name_cf, "CENTRIFUGO_%s", upper);

        const char *var = name_us;
        const char *value = getenv(name_us);
        if (!value) {
            var = name_cf;
            value = getenv(name_cf);
        }
        if (!value)
            continue;

        int rc;
        c->src = SRC_ENV;
        c->env_name = var;
        if (opt->flags & CFGF_LIST) {
            /* Lists are space-separated, as Centrifugo reads them from the environment. */
            char *copy = us_xstrdup(value), *save = NULL;
            size_t n = 0;
            const char **items = us_xcalloc(strlen(value) / 2 + 1, sizeof *items);
            static const char sep[] = " \t\r\n";
            for (char *t = strtok_r(copy, sep, &save); t; t = strtok_r(NULL, sep, &save))
                items[n++] = t;
            rc = set_list(c, sec, opt, items, n);
            free(items);
            free(copy);
        } else {
            rc = set_scalar(c, sec, opt, value);
        }
        c->src = SRC_DEFAULTS;
        c->env_name = NULL;
        if (rc < 0)
            return -1;
        struct origin *o = origin_find(c, sub, true);
        free(o->env);
        o->env = us_xstrdup(var);
        o->line = 0;
    }
    return 0;
}

/* ---- environment: names ---- */

extern char **environ;

/* What one USTATUS_/CENTRIFUGO_ variable (without its prefix) is. */
struct env_match {
    const char *rest;
    bool known;
    size_t best_dist;
    char best[PATH_MAX_LEN];
};

/* `upper` is a known name; `whole` makes it a prefix: a skipped section and all below. */
static void env_consider(struct env_match *m, const char *upper, bool whole, bool suggest)
{
    size_t n = strlen(upper);
    struct suggestion s = {0};

    if (strcmp(m->rest, upper) == 0 ||
        (whole && strncmp(m->rest, upper, n) == 0 && m->rest[n] == '_')) {
        m->known = true;
        return;
    }
    if (!suggest)
        return;
    suggest_consider(&s, m->rest, upper);
    if (s.best && (!m->best[0] || s.dist < m->best_dist)) {
        snprintf(m->best, sizeof m->best, "%s", upper);
        m->best_dist = s.dist;
    }
}

static void env_upper(char *buf, size_t len, const char *prefix, const char *name)
{
    size_t k = (size_t)snprintf(buf, len, "%s%s", prefix, name);
    if (k >= len)
        k = len - 1;
    for (size_t i = 0; i < k; i++)
        buf[i] = (char)toupper((unsigned char)buf[i]);
}

static void env_walk(struct env_match *m, const cfg_opt_t *opts, const char *kind,
                     const char *prefix)
{
    char upper[PATH_MAX_LEN];

    for (unsigned i = 0; opts[i].name && !m->known; i++) {
        env_upper(upper, sizeof upper, prefix, opts[i].name);
        if (opts[i].type == CFGT_SEC) {
            char sub[PATH_MAX_LEN + 2];
            snprintf(sub, sizeof sub, "%s_", upper);
            env_walk(m, opts[i].subopts, section_kind(opts[i].name), sub);
        } else {
            env_consider(m, upper, false, true);
        }
    }
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0] && !m->known; i++) {
        if (strcmp(accepted[i].section, kind) != 0)
            continue;
        env_upper(upper, sizeof upper, prefix, accepted[i].name);
        env_consider(m, upper, accepted[i].whole, true);
    }
}

/* Every USTATUS_ variable must name an option (or one accepted without effect, or lie in
 * a Centrifugo-only section); an unknown CENTRIFUGO_ one may be Centrifugo's own, so it
 * is only noted. */
static int check_env_names(struct load_ctx *c)
{
    for (char **e = environ; e && *e; e++) {
        const char *var = *e, *eq = strchr(var, '=');
        bool ours = strncmp(var, "USTATUS_", 8) == 0;
        char name[PATH_MAX_LEN], upper[PATH_MAX_LEN];
        struct env_match m = {0};
        bool tool = false;

        if (!eq || (!ours && strncmp(var, "CENTRIFUGO_", 11) != 0))
            continue;
        snprintf(name, sizeof name, "%.*s", (int)(eq - var), var);
        for (size_t i = 0; ours && i < sizeof tool_variables / sizeof tool_variables[0]; i++)
            tool = tool || strcmp(name, tool_variables[i]) == 0;
        if (tool)
            continue;
        m.rest = name + (ours ? 8 : 11);
        env_walk(&m, root_opts, "", "");
        for (size_t i = 0; i < sizeof centrifugo_only / sizeof centrifugo_only[0]; i++) {
            env_upper(upper, sizeof upper, "", centrifugo_only[i]);
            env_consider(&m, upper, true, false);
        }
        if (m.known)
            continue;
        char hint[PATH_MAX_LEN + 40] = "";
        if (m.best[0])
            snprintf(hint, sizeof hint, "; did you mean %s%s?", ours ? "USTATUS_" : "CENTRIFUGO_",
                     m.best);
        if (ours) {
            ctx_fail(c, "environment %s: unknown variable%s", name, hint);
            return -1;
        }
        ctx_notice(c, "environment %s: not an option of ustatus, ignored%s", name, hint);
    }
    return 0;
}

/* ---- conversion to plain data ---- */

static char *get_str(cfg_t *sec, const char *name)
{
    const char *s = cfg_getstr(sec, name);
    return us_xstrdup(s ? s : "");
}

static char **get_list(cfg_t *sec, const char *name, size_t *count)
{
    unsigned n = cfg_size(sec, name);
    char **v = us_xcalloc((size_t)n + 1, sizeof *v);
    for (unsigned i = 0; i < n; i++) {
        const char *s = cfg_getnstr(sec, name, i);
        v[i] = us_xstrdup(s ? s : "");
    }
    *count = n;
    return v;
}

static int64_t get_duration_ms(cfg_t *sec, const char *name)
{
    int64_t ms = 0;
    const char *s = cfg_getstr(sec, name);
    if (!s || us_duration_parse_ms(s, &ms) < 0)
        ms = 0; /* unreachable: every value passed its option's callback */
    return ms;
}

/* "/" means the root; it is stored as "" so that "<prefix>/<method>" never doubles the
 * slash. Any trailing slashes go for the same reason. */
static char *get_handler_prefix(cfg_t *sec)
{
    const char *s = cfg_getstr(sec, "handler_prefix");
    size_t n = s ? strlen(s) : 0;
    while (n > 0 && s[n - 1] == '/')
        n--;
    return us_xstrndup(s ? s : "", n);
}

/* Reports a problem with option `path`, located where `path` was set, else where
 * `near` was set (the option that made `path` necessary), else in the file. */
static int cross_fail(struct load_ctx *c, const char *path, const char *near, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cross_fail(struct load_ctx *c, const char *path, const char *near, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    struct origin *o = origin_find(c, path, false);

    if ((!o || (!o->line && !o->env)) && near)
        o = origin_find(c, near, false);
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (o && o->env)
        ctx_fail(c, "environment %s: %s: %s", o->env, path, reason);
    else if (o && o->line && c->file)
        ctx_fail(c, "%s:%d: %s: %s", c->file, o->line, path, reason);
    else if (c->file)
        ctx_fail(c, "%s: %s: %s", c->file, path, reason);
    else
        ctx_fail(c, "%s: %s", path, reason);
    return -1;
}

/* ---- TLS: the PEM texts ---- */

#define PEM_MAX_BYTES (1024u * 1024u) /* a certificate chain is a few kilobytes */

/* Standard base64 (RFC 4648 §4, padded); CR and LF are skipped as Go's decoder does.
 * Returns the decoded text (NUL-terminated) or NULL when it is not base64. */
static char *base64_decode(const char *in)
{
    size_t n = strlen(in), out_len = 0, pad = 0;
    char *out = us_xmalloc(n / 4 * 3 + 4);
    unsigned acc = 0, count = 0;

    for (const char *p = in; *p; p++) {
        int v;
        unsigned char ch = (unsigned char)*p;
        if (ch == '\r' || ch == '\n')
            continue;
        if (ch == '=') {
            pad++;
            v = 0;
        } else if (pad) {
            goto fail; /* data after padding */
        } else if (ch >= 'A' && ch <= 'Z') {
            v = ch - 'A';
        } else if (ch >= 'a' && ch <= 'z') {
            v = ch - 'a' + 26;
        } else if (ch >= '0' && ch <= '9') {
            v = ch - '0' + 52;
        } else if (ch == '+') {
            v = 62;
        } else if (ch == '/') {
            v = 63;
        } else {
            goto fail;
        }
        acc = (acc << 6) | (unsigned)v;
        if (++count == 4) {
            if (pad > 2)
                goto fail;
            out[out_len++] = (char)(acc >> 16);
            if (pad < 2)
                out[out_len++] = (char)(acc >> 8);
            if (pad < 1)
                out[out_len++] = (char)acc;
            acc = 0;
            count = 0;
        }
    }
    if (count != 0)
        goto fail;
    out[out_len] = '\0';
    if (strlen(out) != out_len) /* a NUL inside is no PEM text */
        goto fail;
    return out;
fail:
    free(out);
    return NULL;
}

/* The whole file as text, or NULL with the reason in why. */
static char *read_pem_file(const char *path, char *why, size_t why_len)
{
    FILE *fp = fopen(path, "rb");
    struct stat st;
    char *buf;
    size_t got;

    if (!fp) {
        snprintf(why, why_len, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(why, why_len, "%s", strerror(EISDIR));
        fclose(fp);
        return NULL;
    }
    buf = us_xmalloc(PEM_MAX_BYTES + 1);
    got = fread(buf, 1, PEM_MAX_BYTES + 1, fp);
    if (ferror(fp) || got > PEM_MAX_BYTES) {
        snprintf(why, why_len, "%s", got > PEM_MAX_BYTES ? "larger than 1 MiB" : strerror(errno));
        free(buf);
        fclose(fp);
        return NULL;
    }
    fclose(fp);
    buf[got] = '\0';
    if (strlen(buf) != got) {
        snprintf(why, why_len, "not a text file");
        free(buf);
        return NULL;
    }
    return buf;
}

/* Resolves <name>_pem, <name>_pem_b64 or <name>_pem_file of the tls section at `secpath`
 * into *out ("" when none is given); *used names the option that gave it. Messages
 * never quote the text: it may be a private key. */
static int get_pem(struct load_ctx *c, cfg_t *sec, const char *secpath, const char *name,
                   char **out, const char **used)
{
    static const char *const forms[] = {"_pem", "_pem_b64", "_pem_file"};
    char opt[3][48], path[PATH_MAX_LEN], why[128];
    const char *val[3];
    int given = -1;

    *out = NULL;
    *used = NULL;
    for (int i = 0; i < 3; i++) {
        snprintf(opt[i], sizeof opt[i], "%s%s", name, forms[i]);
        val[i] = cfg_getstr(sec, opt[i]);
        if (!val[i] || !*val[i])
            continue;
        if (given >= 0) {
            path_join(path, sizeof path, secpath, opt[i]);
            return cross_fail(c, path, NULL, "give only one of %s, %s and %s", opt[0], opt[1],
                              opt[2]);
        }
        given = i;
    }
    if (given < 0) {
        *out = us_xstrdup("");
        return 0;
    }
    path_join(path, sizeof path, secpath, opt[given]);
    if (given == 0) {
        *out = us_xstrdup(val[0]);
    } else if (given == 1) {
        if (!(*out = base64_decode(val[1])))
            return cross_fail(c, path, NULL, "not valid standard base64");
    } else if (!(*out = read_pem_file(val[2], why, sizeof why))) {
        return cross_fail(c, path, NULL, "cannot read %.300s: %s", val[2], why);
    }
    *used = given == 0 ? "_pem" : given == 1 ? "_pem_b64" : "_pem_file";
    if (!strstr(*out, "-----BEGIN ")) {
        free(*out);
        *out = NULL;
        return cross_fail(c, path, NULL, "holds no PEM block (no \"-----BEGIN\" line)");
    }
    return 0;
}

static int convert_tls(struct load_ctx *c, cfg_t *sec, const char *secpath, us_tls_config *t)
{
    const char *cert_form, *key_form, *ca_form;
    char path[PATH_MAX_LEN];
    int rc = 0;

    t->enabled = cfg_getbool(sec, "enabled");
    t->insecure_skip_verify = cfg_getbool(sec, "insecure_skip_verify");
    t->server_name = get_str(sec, "server_name");
    if (get_pem(c, sec, secpath, "cert", &t->cert_pem, &cert_form) < 0 ||
        get_pem(c, sec, secpath, "key", &t->key_pem, &key_form) < 0 ||
        get_pem(c, sec, secpath, "server_ca", &t->server_ca_pem, &ca_form) < 0)
        rc = -1;
    else if (key_form && !cert_form) {
        snprintf(path, sizeof path, "%s.key%s", secpath, key_form);
        rc = cross_fail(c, path, NULL, "a client key needs its certificate (cert_pem)");
    } else if (cert_form && !key_form) {
        snprintf(path, sizeof path, "%s.cert%s", secpath, cert_form);
        rc = cross_fail(c, path, NULL, "a client certificate needs its key (key_pem)");
    }
    /* Whatever failed is "", so the struct stays safe to free and to read. */
    if (!t->cert_pem)
        t->cert_pem = us_xstrdup("");
    if (!t->key_pem)
        t->key_pem = us_xstrdup("");
    if (!t->server_ca_pem)
        t->server_ca_pem = us_xstrdup("");
    return rc;
}

static void convert_redis(struct load_ctx *c, cfg_t *sec, const char *secpath,
                          us_redis_config *r)
{
    char sub[PATH_MAX_LEN];

    r->address = get_list(sec, "address", &r->address_count);
    r->prefix = get_str(sec, "prefix");
    r->user = get_str(sec, "user");
    r->password = get_str(sec, "password");
    r->db = (int)cfg_getint(sec, "db");
    r->connect_timeout_ms = get_duration_ms(sec, "connect_timeout");
    r->io_timeout_ms = get_duration_ms(sec, "io_timeout");
    r->sentinel_address = get_list(sec, "sentinel_address", &r->sentinel_address_count);
    r->sentinel_master_name = get_str(sec, "sentinel_master_name");
    r->sentinel_user = get_str(sec, "sentinel_user");
    r->sentinel_password = get_str(sec, "sentinel_password");
    r->cluster_address = get_list(sec, "cluster_address", &r->cluster_address_count);
    r->reuse_from_engine = cfg_getbool(sec, "reuse_from_engine");
    r->client_name = get_str(sec, "client_name");
    r->wait_replicas = (int)cfg_getint(sec, "wait_replicas");
    r->wait_timeout_ms = get_duration_ms(sec, "wait_timeout");
    path_join(sub, sizeof sub, secpath, "tls");
    convert_tls(c, cfg_getsec(sec, "tls"), sub, &r->tls);
    path_join(sub, sizeof sub, secpath, "sentinel_tls");
    convert_tls(c, cfg_getsec(sec, "sentinel_tls"), sub, &r->sentinel_tls);
}

/* Never fails as such; a bad PEM option is reported through c (c->failed) and leaves ""
 * in its place, so the result is always whole and safe to free. */
static us_config *convert(struct load_ctx *c, cfg_t *tree, const char *path)
{
    us_config *cfg = us_xcalloc(1, sizeof *cfg);
    cfg_t *sec;

    cfg->path = us_xstrdup(path ? path : "");

    sec = cfg_getsec(tree, "http_api");
    cfg->http_api.key = get_str(sec, "key");
    cfg->http_api.insecure = cfg_getbool(sec, "insecure");
    cfg->http_api.handler_prefix = get_handler_prefix(sec);
    cfg->http_api.error_mode = get_str(sec, "error_mode");
    cfg->http_api.max_body_bytes = (size_t)cfg_getint(sec, "max_body_bytes");

    sec = cfg_getsec(tree, "user_status");
    cfg->user_status.enabled = cfg_getbool(sec, "enabled");
    cfg->user_status.expire_interval_s = get_duration_ms(sec, "expire_interval") / 1000;
    cfg->user_status.state_regex = get_str(sec, "state_regex");
    cfg->user_status.max_users_per_request = (size_t)cfg_getint(sec, "max_users_per_request");
    cfg->user_status.disable_for_client = cfg_getbool(sec, "disable_for_client");
    convert_redis(c, cfg_getsec(sec, "redis"), "user_status.redis", &cfg->user_status.redis);

    sec = cfg_getsec(tree, "engine");
    cfg->engine.type = get_str(sec, "type");
    convert_redis(c, cfg_getsec(sec, "redis"), "engine.redis", &cfg->engine.redis);

    sec = cfg_getsec(tree, "client");
    cfg->client.handler_prefix = get_handler_prefix(sec);
    cfg->client.allowed_origins =
        get_list(sec, "allowed_origins", &cfg->client.allowed_origins_count);
    cfg->client.min_update_interval_ms = get_duration_ms(sec, "min_update_interval");
    sec = cfg_getsec(sec, "token");
    cfg->client.token.hmac_secret_key = get_str(sec, "hmac_secret_key");
    cfg->client.token.rsa_public_key = get_str(sec, "rsa_public_key");
    cfg->client.token.ecdsa_public_key = get_str(sec, "ecdsa_public_key");
    cfg->client.token.audience = get_str(sec, "audience");
    cfg->client.token.issuer = get_str(sec, "issuer");
    cfg->client.token.user_id_claim = get_str(sec, "user_id_claim");
    cfg->client.token.jwks_public_endpoint = get_str(sec, "jwks_public_endpoint");
    cfg->client.token.audience_regex = get_str(sec, "audience_regex");
    cfg->client.token.issuer_regex = get_str(sec, "issuer_regex");

    sec = cfg_getsec(tree, "centrifugo_proxy");
    cfg->centrifugo_proxy.handler_prefix = get_handler_prefix(sec);
    cfg->centrifugo_proxy.key = get_str(sec, "key");

    sec = cfg_getsec(tree, "fcgi");
    cfg->fcgi.listen = get_str(sec, "listen");
    cfg->fcgi.workers = cfg_getint(sec, "workers");
    cfg->fcgi.max_requests = cfg_getint(sec, "max_requests");
    cfg->fcgi.backlog = cfg_getint(sec, "backlog");
    cfg->fcgi.request_timeout_ms = get_duration_ms(sec, "request_timeout");

    sec = cfg_getsec(tree, "log");
    cfg->log.level = get_str(sec, "level");
    cfg->log.file = get_str(sec, "file");
    cfg->log.syslog = cfg_getbool(sec, "syslog");
    return cfg;
}

/* ---- cross-field checks ---- */

static int check_redis_section(struct load_ctx *c, const us_redis_config *r, const char *sec)
{
    char path[PATH_MAX_LEN], near[PATH_MAX_LEN];

    if (r->sentinel_address_count > 0 && r->sentinel_master_name[0] == '\0') {
        path_join(path, sizeof path, sec, "sentinel_master_name");
        path_join(near, sizeof near, sec, "sentinel_address");
        return cross_fail(c, path, near, "required when sentinel_address is set");
    }
    /* Redis Cluster has database 0 only: SELECT would fail on every connection. */
    if (r->cluster_address_count > 0 && r->db != 0) {
        path_join(path, sizeof path, sec, "db");
        path_join(near, sizeof near, sec, "cluster_address");
        return cross_fail(c, path, near,
                          "must be 0 with cluster_address (Redis Cluster has db 0 only)");
    }
    /* WAIT blocks inside the exchange, whose deadline is io_timeout: a WAIT as long as
     * that would time the exchange out instead of answering how many replicas acked. */
    if (r->wait_replicas > 0 && r->wait_timeout_ms >= r->io_timeout_ms) {
        path_join(path, sizeof path, sec, "wait_timeout");
        path_join(near, sizeof near, sec, "io_timeout");
        return cross_fail(c, path, near, "must be shorter than io_timeout (%lld ms)",
                          (long long)r->io_timeout_ms);
    }
    return 0;
}

static int check_config(struct load_ctx *c, const us_config *cfg)
{
    if (check_redis_section(c, &cfg->user_status.redis, "user_status.redis") < 0 ||
        check_redis_section(c, &cfg->engine.redis, "engine.redis") < 0)
        return -1;
    /* The options are shared, but reusing the engine's own section from itself is a loop. */
    if (cfg->engine.redis.reuse_from_engine)
        return cross_fail(c, "engine.redis.reuse_from_engine", NULL,
                          "only meaningful in user_status.redis");
    if (cfg->user_status.redis.reuse_from_engine && strcmp(cfg->engine.type, "redis") != 0)
        return cross_fail(c, "user_status.redis.reuse_from_engine", "engine.type",
                          "requires engine.type \"redis\", not \"%s\"", cfg->engine.type);
    if (cfg->user_status.enabled) {
        const us_redis_config *r = us_config_store_redis(cfg);
        const char *sec = r == &cfg->engine.redis ? "engine.redis" : "user_status.redis";
        if (r->address_count + r->sentinel_address_count + r->cluster_address_count == 0) {
            char path[PATH_MAX_LEN];
            path_join(path, sizeof path, sec, "address");
            return cross_fail(c, path, NULL,
                              "no Redis configured (address, sentinel_address and "
                              "cluster_address are all empty)");
        }
    }
    return 0;
}

static void free_list(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- secrets in the file ---- */

/* Options whose value is a secret: API and proxy keys, the HMAC key, passwords, private
 * keys given inline (a *_file option holds only a path). */
static bool is_secret_option(const char *name)
{
    return strcmp(name, "key") == 0 || strstr(name, "password") || strstr(name, "secret") ||
           strcmp(name, "key_pem") == 0 || strcmp(name, "key_pem_b64") == 0;
}

/* redis://user:password@host carries a password. */
static bool address_has_password(const char *a)
{
    const char *p = strstr(a, "://");
    if (!p)
        return false;
    p += 3;
    size_t n = strcspn(p, "/@");
    return p[n] == '@' && memchr(p, ':', n) != NULL;
}

/* Whether the values read from the file hold a secret (checked before the environment
 * is applied: a secret from a variable is not in the file). */
static bool tree_has_secrets(cfg_t *sec)
{
    for (unsigned i = 0; sec->opts[i].name; i++) {
        cfg_opt_t *o = &sec->opts[i];
        if (o->type == CFGT_SEC) {
            if (o->nvalues > 0 && tree_has_secrets(cfg_opt_getnsec(o, 0)))
                return true;
            continue;
        }
        if (o->type != CFGT_STR)
            continue;
        for (unsigned k = 0; k < cfg_opt_size(o); k++) {
            const char *v = cfg_opt_getnstr(o, k);
            if (!v || !*v)
                continue;
            if (is_secret_option(o->name) ||
                (strstr(o->name, "address") != NULL && address_has_password(v)))
                return true;
        }
    }
    return false;
}

/* ---- public ---- */

us_config *us_config_load(const char *path, char *err, size_t err_len)
{
    struct load_ctx c = {.file = path, .src = SRC_DEFAULTS, .err = err, .err_len = err_len};
    struct load_ctx *outer = cur;
    us_config *cfg = NULL;
    cfg_t *tree = NULL;
    char *text = NULL;
    size_t len = 0;

    if (err && err_len)
        err[0] = '\0';
    cur = &c;
    tree = cfg_init(root_opts, CFGF_NONE);
    if (!tree) {
        ctx_fail(&c, "cannot initialise the configuration parser");
        goto done;
    }
    c.root = tree;
    set_error_function(tree);

    if (path) {
        if (read_whole_file(&c, path, &text, &len) < 0)
            goto done;
        if (ends_with(path, ".json") ? load_json(&c, tree, text, len) < 0
                                     : load_confuse(&c, tree, text, len) < 0)
            goto done;
    }
    if (path)
        c.file_has_secrets = tree_has_secrets(tree);
    if (check_env_names(&c) < 0 || apply_env_section(&c, tree, "") < 0)
        goto done;
    cfg = convert(&c, tree, path);
    if (c.failed || check_config(&c, cfg) < 0) {
        us_config_free(cfg);
        cfg = NULL;
        goto done;
    }
    cfg->notices = c.notices;
    cfg->notice_count = c.notice_count;
    c.notices = NULL;
    c.notice_count = 0;
    cfg->file_mode = c.file_mode;
    cfg->file_has_secrets = c.file_has_secrets;
done:
    free_list(c.notices, c.notice_count);
    if (tree)
        cfg_free(tree);
    free(text);
    origins_free(&c);
    cur = outer;
    return cfg;
}

static void free_tls(us_tls_config *t)
{
    free(t->cert_pem);
    free(t->key_pem);
    free(t->server_ca_pem);
    free(t->server_name);
}

static void free_redis(us_redis_config *r)
{
    free_list(r->address, r->address_count);
    free(r->prefix);
    free(r->user);
    free(r->password);
    free_list(r->sentinel_address, r->sentinel_address_count);
    free(r->sentinel_master_name);
    free(r->sentinel_user);
    free(r->sentinel_password);
    free_list(r->cluster_address, r->cluster_address_count);
    free(r->client_name);
    free_tls(&r->tls);
    free_tls(&r->sentinel_tls);
}

void us_config_free(us_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->path);
    free(cfg->http_api.key);
    free(cfg->http_api.handler_prefix);
    free(cfg->http_api.error_mode);
    free(cfg->user_status.state_regex);
    free_redis(&cfg->user_status.redis);
    free(cfg->engine.type);
    free_redis(&cfg->engine.redis);
    free(cfg->client.handler_prefix);
    free_list(cfg->client.allowed_origins, cfg->client.allowed_origins_count);
    free(cfg->client.token.hmac_secret_key);
    free(cfg->client.token.rsa_public_key);
    free(cfg->client.token.ecdsa_public_key);
    free(cfg->client.token.audience);
    free(cfg->client.token.issuer);
    free(cfg->client.token.user_id_claim);
    free(cfg->client.token.jwks_public_endpoint);
    free(cfg->client.token.audience_regex);
    free(cfg->client.token.issuer_regex);
    free(cfg->centrifugo_proxy.handler_prefix);
    free(cfg->centrifugo_proxy.key);
    free(cfg->fcgi.listen);
    free(cfg->log.level);
    free(cfg->log.file);
    free_list(cfg->notices, cfg->notice_count);
    free(cfg);
}

const us_redis_config *us_config_store_redis(const us_config *cfg)
{
    return cfg->user_status.redis.reuse_from_engine ? &cfg->engine.redis : &cfg->user_status.redis;
}

/* ---- unsafe settings ---- */

/* A value copied from a template and never filled in. */
static bool is_placeholder(const char *k)
{
    static const char *const words[] = {"change_me", "changeme", "change-me", "replace_me",
                                        "replaceme", "your_api_key", "your-api-key",
                                        "placeholder", "api_key_here"};
    size_t n = strlen(k);
    char lower[256];

    if (n >= 2 && ((k[0] == '@' && k[n - 1] == '@') || (k[0] == '<' && k[n - 1] == '>') ||
                   (k[0] == '%' && k[n - 1] == '%')))
        return true;
    if (strstr(k, "${") || strstr(k, "{{"))
        return true;
    snprintf(lower, sizeof lower, "%s", k);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strstr(lower, words[i]))
            return true;
    return false;
}

static size_t warn(void (*emit)(void *ctx, const char *line), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t warn(void (*emit)(void *ctx, const char *line), void *ctx, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (emit)
        emit(ctx, line);
    return 1;
}

size_t us_config_warnings(const us_config *cfg, void (*emit)(void *ctx, const char *line),
                          void *ctx)
{
    static const struct {
        const char *name;
        size_t redis_off, tls_off;
    } tls_sections[] = {
        {"user_status.redis.tls", offsetof(us_config, user_status.redis),
         offsetof(us_redis_config, tls)},
        {"user_status.redis.sentinel_tls", offsetof(us_config, user_status.redis),
         offsetof(us_redis_config, sentinel_tls)},
        {"engine.redis.tls", offsetof(us_config, engine.redis), offsetof(us_redis_config, tls)},
        {"engine.redis.sentinel_tls", offsetof(us_config, engine.redis),
         offsetof(us_redis_config, sentinel_tls)},
    };
    size_t n = 0;
    const char *key = cfg->http_api.key;

    for (size_t i = 0; i < cfg->notice_count; i++)
        n += warn(emit, ctx, "%s", cfg->notices[i]);
    if (cfg->http_api.insecure)
        n += warn(emit, ctx,
                  "http_api.insecure = true: the server API answers every request without an "
                  "API key");
    else if (!key[0])
        n += warn(emit, ctx, "http_api.key is empty: every server API request is refused (401)");
    else if (is_placeholder(key))
        n += warn(emit, ctx,
                  "http_api.key looks like a template placeholder: set a random key "
                  "(e.g. openssl rand -hex 32)");
    else if (strlen(key) < 32)
        n += warn(emit, ctx,
                  "http_api.key is shorter than 32 characters: use a long random key "
                  "(e.g. openssl rand -hex 32)");
    if (cfg->path && cfg->path[0] && cfg->file_has_secrets && (cfg->file_mode & 0004))
        n += warn(emit, ctx,
                  "%.300s holds secrets and every user can read it (mode %04o): chmod o-rwx it "
                  "(0640 with the web server's group, or 0600)",
                  cfg->path, cfg->file_mode);
    if (cfg->path && cfg->path[0] && (cfg->file_mode & 0002))
        n += warn(emit, ctx, "%.300s: every user can write to it (mode %04o): chmod o-w it",
                  cfg->path, cfg->file_mode);
    for (size_t i = 0; i < sizeof tls_sections / sizeof tls_sections[0]; i++) {
        const us_redis_config *r =
            (const us_redis_config *)((const char *)cfg + tls_sections[i].redis_off);
        const us_tls_config *t = (const us_tls_config *)((const char *)r + tls_sections[i].tls_off);
        if (t->insecure_skip_verify)
            n += warn(emit, ctx,
                      "%s.insecure_skip_verify = true: the Redis server's certificate is not "
                      "verified, so anyone on the path can impersonate it",
                      tls_sections[i].name);
    }
    return n;
}
