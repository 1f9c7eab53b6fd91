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
        option_path(sec, name ? name : "", path, sizeof path);
        ctx_fail(c, "%s%s: unknown option", loc, path);
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

/* ---- the option tree (SPEC §4) ---- */

#define US_OPT(n, t, fl, cb) \
    .name = (n), .type = (t), .flags = (fl), .parsecb = (cb), .validcb = note_line
#define OPT_STR(n, d, cb) {US_OPT(n, CFGT_STR, CFGF_NONE, cb), .def.string = (d)}
#define OPT_LIST(n, d, cb) {US_OPT(n, CFGT_STR, CFGF_LIST, cb), .def.parsed = (d)}
#define OPT_INT(n, d, cb) {US_OPT(n, CFGT_INT, CFGF_NONE, cb), .def.number = (d)}
#define OPT_BOOL(n, d) {US_OPT(n, CFGT_BOOL, CFGF_NONE, cb_bool), .def.boolean = (d)}

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
    OPT_STR("client_name", "", NULL),
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
    OPT_STR("jwks_public_endpoint", "", NULL),
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
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        ctx_fail(c, "cannot open %s: %s", path, strerror(EISDIR));
        goto fail;
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

static int load_confuse(struct load_ctx *c, cfg_t *tree, const char *text, size_t len)
{
    int rc;

    if (len == 0)
        return 0;
    /* Parsing from memory: flex exits the process on a read error from a real file. */
    FILE *fp = fmemopen((void *)text, len, "r");
    if (!fp) {
        ctx_fail(c, "cannot read %s: %s", c->file, strerror(errno));
        return -1;
    }
    c->src = SRC_FILE;
    rc = cfg_parse_fp(tree, fp);
    c->src = SRC_DEFAULTS;
    fclose(fp);
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

/* Keys ustatus does not know are skipped: a Centrifugo config.json carries many. */
static int json_section(struct load_ctx *c, cfg_t *sec, json_object *obj, const char *prefix)
{
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);

    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        json_object *v = json_object_iter_peek_value(&it);
        cfg_opt_t *opt = find_option(sec, key);
        char path[PATH_MAX_LEN];

        if (!opt)
            continue;
        path_join(path, sizeof path, prefix, key);
        if (v == NULL)
            continue; /* null leaves the default, as Go's decoder does */
        if (opt->type == CFGT_SEC) {
            if (!json_object_is_type(v, json_type_object))
                return json_fail(c, path, "expected an object");
            if (json_section(c, cfg_opt_getnsec(opt, 0), v, path) < 0)
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
    rc = json_section(c, tree, doc, "");
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

/* The PEM text of <name>_pem, else <name>_pem_b64, else <name>_pem_file.
 * TODO(config): decode _b64, read _file, and refuse more than one of the three. */
static char *get_pem(cfg_t *sec, const char *name)
{
    char opt[64];
    snprintf(opt, sizeof opt, "%s_pem", name);
    return get_str(sec, opt);
}

static void convert_tls(cfg_t *sec, us_tls_config *t)
{
    t->enabled = cfg_getbool(sec, "enabled");
    t->cert_pem = get_pem(sec, "cert");
    t->key_pem = get_pem(sec, "key");
    t->server_ca_pem = get_pem(sec, "server_ca");
    t->insecure_skip_verify = cfg_getbool(sec, "insecure_skip_verify");
    t->server_name = get_str(sec, "server_name");
}

static void convert_redis(cfg_t *sec, us_redis_config *r)
{
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
    convert_tls(cfg_getsec(sec, "tls"), &r->tls);
    convert_tls(cfg_getsec(sec, "sentinel_tls"), &r->sentinel_tls);
}

static us_config *convert(cfg_t *tree, const char *path)
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
    convert_redis(cfg_getsec(sec, "redis"), &cfg->user_status.redis);

    sec = cfg_getsec(tree, "engine");
    cfg->engine.type = get_str(sec, "type");
    convert_redis(cfg_getsec(sec, "redis"), &cfg->engine.redis);

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
    if (apply_env_section(&c, tree, "") < 0)
        goto done;
    cfg = convert(tree, path);
    if (check_config(&c, cfg) < 0) {
        us_config_free(cfg);
        cfg = NULL;
    }
done:
    if (tree)
        cfg_free(tree);
    free(text);
    origins_free(&c);
    cur = outer;
    return cfg;
}

static void free_list(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
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
    free(cfg);
}

const us_redis_config *us_config_store_redis(const us_config *cfg)
{
    return cfg->user_status.redis.reuse_from_engine ? &cfg->engine.redis : &cfg->user_status.redis;
}
