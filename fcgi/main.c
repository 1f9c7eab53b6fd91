/* ustatus-fcgi: the FastCGI responder (SPEC §5). Three ways to run:
 *   - started by a web server (lighttpd bin-path, mod_fcgid, spawn-fcgi): the FastCGI
 *     listening socket is fd 0 and this process serves requests one at a time;
 *   - with --listen (or fcgi.listen), or given a socket by systemd (LISTEN_FDS): its own
 *     prefork pool (fcgi/pool.c);
 *   - without a FastCGI socket: the one CGI request in its environment. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "adapter.h"
#include "config.h"
#include "pool.h"
#include "worker.h"
#include "ustatus/app.h"
#include "ustatus/config.h"
#include "ustatus/duration.h"
#include "ustatus/log.h"
#include "ustatus/metrics.h"

/* configure's --sysconfdir (Makefile.am defines US_SYSCONFDIR); /etc when built
 * without it. */
#ifndef US_SYSCONFDIR
#define US_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG              US_SYSCONFDIR "/ustatus/ustatus.conf"
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 10000

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ustatus-fcgi [-c FILE] [--check-config]\n"
            "       ustatus-fcgi [-c FILE] --listen HOST:PORT|unix:/path [--workers N] [options]\n"
            "\n"
            "A FastCGI responder for the user status API. Run it from a web server\n"
            "(lighttpd bin-path, Apache mod_fcgid, spawn-fcgi): the FastCGI socket is fd 0.\n"
            "With --listen (or fcgi.listen in the configuration) it runs its own prefork\n"
            "pool on that socket. Without a FastCGI socket it answers the one CGI request\n"
            "in its environment.\n"
            "\n"
            "  -c, --config FILE          configuration file (default " DEFAULT_CONFIG ");\n"
            "                             a name ending in .json is read as JSON\n"
            "      --check-config         validate the configuration and exit (0 valid, 78 not);\n"
            "                             unsafe settings are warned about on stderr\n"
            "  -V, --version              print the version and exit\n"
            "  -h, --help                 print this help and exit\n"
            "\n"
            "Prefork pool (these win over the fcgi section of the configuration):\n"
            "  -l, --listen ADDR          HOST:PORT, [IPv6]:PORT or unix:/path to listen on\n"
            "  -w, --workers N            worker processes (default: the CPU count)\n"
            "      --max-requests N       replace a worker after N requests (0: never)\n"
            "      --backlog N            listen(2) backlog (default 1024)\n"
            "      --socket-owner U[:G]   chown the unix socket (so the web server can connect)\n"
            "      --socket-mode MODE     chmod the unix socket, octal (default 0660)\n"
            "  -u, --user USER            when started as root, run as USER after binding\n"
            "  -g, --group GROUP          ... and as GROUP (default: USER's primary group)\n"
            "  -p, --pid-file FILE        write the supervisor's pid to FILE\n"
            "      --shutdown-timeout T   on SIGTERM, wait T (\"10s\", \"500ms\", or seconds)\n"
            "                             for requests in hand, then SIGKILL (default 10s)\n"
            "Signals: TERM/INT stop gracefully, HUP reloads the configuration (and reopens\n"
            "log.file), USR1 reopens log.file.\n"
            "Under systemd, a socket passed by socket activation (LISTEN_FDS) is served\n"
            "by the pool instead of --listen, and with NOTIFY_SOCKET it reports READY=1,\n"
            "RELOADING=1 and STOPPING=1 (Type=notify).\n"
            "\n"
            "Environment variables USTATUS_<OPTION_PATH> override the file, e.g.\n"
            "USTATUS_HTTP_API_KEY, USTATUS_USER_STATUS_EXPIRE_INTERVAL.\n");
}

/* ---- CGI ---- */

static const char *cgi_getparam(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

static long cgi_read(void *ctx, char *buf, size_t n)
{
    (void)ctx;
    size_t got = fread(buf, 1, n, stdin);
    if (got == 0 && ferror(stdin))
        return -1;
    return (long)got;
}

static int cgi_write(void *ctx, const char *buf, size_t n)
{
    (void)ctx;
    return fwrite(buf, 1, n, stdout) == n ? 0 : -1;
}

static int serve_cgi(const us_config *cfg)
{
    char err[512];
    int rc = US_EXIT_CONFIG;
    us_adapter adapter;
    us_adapter_init(&adapter);
    us_app *app = us_app_create(cfg, err, sizeof err);
    if (!app) {
        us_error("configuration: %s", err);
        goto done;
    }
    us_cgi_io io = {cgi_getparam, cgi_read, cgi_write, NULL};
    rc = us_adapter_serve(&adapter, app, &io) < 0 ? 1 : 0;
    fflush(stdout);
done:
    us_adapter_free(&adapter);
    us_app_free(app);
    return rc;
}

/* ---- signals of a process the web server started ---- */

/* ---- --check-config and the unsafe-setting warnings (SPEC §4) ---- */

static void print_warning(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "warning: %s\n", line);
}

static void log_warning(void *ctx, const char *line)
{
    (void)ctx;
    us_warn("configuration: %s", line);
}

static int check_config(const char *path, us_config *cfg)
{
    char err[512];
    /* One line each on stderr (never a secret's value: config.c names options only);
     * stdout keeps its one "configuration OK" line for scripts. */
    us_config_warnings(cfg, print_warning, NULL);
    /* What a worker would log while building (a TLS warning...) repeats one of those
     * lines: only errors are wanted from the build here. */
    us_log_set_level(US_LOG_ERROR);
    /* Build what a worker builds (no connection is opened) so everything a worker would
     * refuse at start-up — a bad PEM key, overlapping prefixes — is refused here too. */
    int rc = us_worker_check_config(cfg, err, sizeof err);
    if (rc < 0) {
        us_config_free(cfg);
        us_error("configuration: %s", err);
        return US_EXIT_CONFIG;
    }
    us_config_free(cfg);
    printf("%s: configuration OK\n", path);
    return 0;
}

/* ---- command line ---- */

static int parse_long(const char *opt, const char *s, long min, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < min) {
        fprintf(stderr, "ustatus-fcgi: %s: \"%s\" is not a number >= %ld\n", opt, s, min);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    OPT_CHECK = 256,
    OPT_MAX_REQUESTS,
    OPT_BACKLOG,
    OPT_SOCKET_OWNER,
    OPT_SOCKET_MODE,
    OPT_SHUTDOWN_TIMEOUT,
};

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"listen", required_argument, NULL, 'l'},
        {"workers", required_argument, NULL, 'w'},
        {"max-requests", required_argument, NULL, OPT_MAX_REQUESTS},
        {"backlog", required_argument, NULL, OPT_BACKLOG},
        {"socket-owner", required_argument, NULL, OPT_SOCKET_OWNER},
        {"socket-mode", required_argument, NULL, OPT_SOCKET_MODE},
        {"user", required_argument, NULL, 'u'},
        {"group", required_argument, NULL, 'g'},
        {"pid-file", required_argument, NULL, 'p'},
        {"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    us_pool_options po = {
        .config_path = DEFAULT_CONFIG,
        .max_requests = -1,
        .socket_mode = -1,
        .shutdown_timeout_ms = DEFAULT_SHUTDOWN_TIMEOUT_MS,
        .inherited_fd = -1,
    };
    int check_only = 0;
    int pool_flags = 0; /* options that only make sense with a pool */
    int opt;
    while ((opt = getopt_long(argc, argv, "c:l:w:u:g:p:Vh", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c': po.config_path = optarg; break;
        case OPT_CHECK: check_only = 1; break;
        case 'l': po.listen = optarg; break;
        case 'w':
            if (parse_long("--workers", optarg, 1, &po.workers) < 0)
                return 64;
            pool_flags++;
            break;
        case OPT_MAX_REQUESTS:
            if (parse_long("--max-requests", optarg, 0, &po.max_requests) < 0)
                return 64;
            pool_flags++;
            break;
        case OPT_BACKLOG:
            if (parse_long("--backlog", optarg, 1, &po.backlog) < 0)
                return 64;
            pool_flags++;
            break;
        case OPT_SOCKET_OWNER:
            po.socket_owner = optarg;
            pool_flags++;
            break;
        case OPT_SOCKET_MODE: {
            char *end;
            errno = 0;
            long mode = strtol(optarg, &end, 8);
            if (!*optarg || *end || errno || mode < 0 || mode > 07777) {
                fprintf(stderr, "ustatus-fcgi: --socket-mode: \"%s\" is not an octal mode\n",
                        optarg);
                return 64;
            }
            po.socket_mode = mode;
            pool_flags++;
            break;
        }
        case 'u':
            po.user = optarg;
            pool_flags++;
            break;
        case 'g':
            po.group = optarg;
            pool_flags++;
            break;
        case 'p':
            po.pid_file = optarg;
            pool_flags++;
            break;
        case OPT_SHUTDOWN_TIMEOUT: {
            long secs;
            int64_t ms;
            if (strspn(optarg, "0123456789") == strlen(optarg) && *optarg) {
                if (parse_long("--shutdown-timeout", optarg, 0, &secs) < 0)
                    return 64;
                ms = (int64_t)secs * 1000;
            } else if (us_duration_parse_ms(optarg, &ms) < 0) {
                fprintf(stderr, "ustatus-fcgi: --shutdown-timeout: \"%s\" is not a duration\n",
                        optarg);
                return 64;
            }
            po.shutdown_timeout_ms = ms;
            pool_flags++;
            break;
        }
        case 'V': printf("ustatus-fcgi %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 64;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ustatus-fcgi: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 64;
    }

    char err[512];
    us_config *cfg = us_config_load(po.config_path, err, sizeof err);
    if (!cfg) {
        us_error("configuration: %s", err);
        return US_EXIT_CONFIG;
    }
    us_log_set_level_name(cfg->log.level);
    if (check_only)
        return check_config(po.config_path, cfg); /* takes cfg */

    /* Socket activation: the pool serves what systemd passed, whatever --listen says. */
    po.inherited_fd = us_pool_listen_fds(err, sizeof err);
    if (po.inherited_fd == -2) {
        us_error("%s", err);
        us_config_free(cfg);
        return 1;
    }
    if (po.inherited_fd >= 0 || (po.listen && *po.listen) ||
        (cfg->fcgi.listen && *cfg->fcgi.listen))
        return us_pool_run(&po, cfg); /* takes cfg; opens the log itself */
    if (pool_flags) {
        fprintf(stderr, "ustatus-fcgi: --workers, --user, --pid-file and the other pool "
                        "options need --listen (or fcgi.listen)\n");
        us_config_free(cfg);
        return 64;
    }

    if (us_log_open(cfg->log.file, cfg->log.syslog, err, sizeof err) < 0) {
        /* Under spawn-fcgi stderr is /dev/null: exiting is the visible failure there
         * (spawn-fcgi reports the child's exit status). */
        us_error("%s", err);
        us_config_free(cfg);
        return 1;
    }
    /* SIGUSR1 reopens log.file at the next line instead of killing the process. (SIGHUP
     * is the web server's business: the worker loop ignores it; a renamed log.file is
     * followed anyway.) */
    us_log_reopen_on(SIGUSR1);
    us_config_warnings(cfg, log_warning, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (us_metrics_attach(po.config_path, err, sizeof err) < 0)
        us_warn("metrics: %s; this process counts for itself only", err);
    int rc;
    if (FCGX_IsCGI()) {
        rc = serve_cgi(cfg);
    } else {
        us_info("serving FastCGI requests on fd 0");
        rc = us_worker_run(cfg, 0, 0);
    }
    us_config_free(cfg);
    return rc;
}
