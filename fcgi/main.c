/* ustatus-fcgi: the FastCGI responder. Started by a web server (the FastCGI socket is
 * fd 0) it serves requests one at a time; started without a FastCGI socket it serves the
 * one CGI request in its environment (SPEC §5). */
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
#include "ustatus/api.h"
#include "ustatus/config.h"
#include "ustatus/log.h"
#include "ustatus/store.h"

#define DEFAULT_CONFIG "/etc/ustatus/ustatus.conf"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    FCGX_ShutdownPending();
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ustatus-fcgi [-c FILE] [--check-config]\n"
            "\n"
            "A FastCGI responder for the user status API. Run it from a web server\n"
            "(lighttpd bin-path, Apache mod_fcgid, spawn-fcgi): the FastCGI socket is fd 0.\n"
            "Without a FastCGI socket it answers the one CGI request in its environment.\n"
            "\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ");\n"
            "                      a name ending in .json is read as JSON\n"
            "      --check-config  validate the configuration and exit (0 valid, 78 not)\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Environment variables USTATUS_<OPTION_PATH> override the file, e.g.\n"
            "USTATUS_HTTP_API_KEY, USTATUS_USER_STATUS_EXPIRE_INTERVAL.\n");
}

/* ---- FastCGI and CGI I/O for the adapter ---- */

static const char *fcgx_getparam(void *ctx, const char *name)
{
    return FCGX_GetParam(name, ((FCGX_Request *)ctx)->envp);
}

static long fcgx_read(void *ctx, char *buf, size_t n)
{
    int want = n > 1 << 30 ? 1 << 30 : (int)n;
    int got = FCGX_GetStr(buf, want, ((FCGX_Request *)ctx)->in);
    if (got < 0)
        return -1;
    return got;
}

static int fcgx_write(void *ctx, const char *buf, size_t n)
{
    FCGX_Stream *out = ((FCGX_Request *)ctx)->out;
    while (n > 0) {
        int chunk = n > 1 << 30 ? 1 << 30 : (int)n;
        if (FCGX_PutStr(buf, chunk, out) != chunk)
            return -1;
        buf += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

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

static int serve_fastcgi(us_api *api)
{
    FCGX_Request request;
    us_adapter adapter;
    if (FCGX_Init() != 0) {
        us_error("FCGX_Init failed");
        return 1;
    }
    if (FCGX_InitRequest(&request, 0, 0) != 0) {
        us_error("FCGX_InitRequest failed");
        return 1;
    }
    us_adapter_init(&adapter);
    us_cgi_io io = {fcgx_getparam, fcgx_read, fcgx_write, &request};
    us_info("serving FastCGI requests on fd 0");
    while (!stop_requested) {
        int rc = FCGX_Accept_r(&request);
        if (rc < 0) {
            if (!stop_requested)
                us_info("FastCGI accept ended (%d), exiting", rc);
            break;
        }
        if (us_adapter_serve(&adapter, api, &io) < 0)
            us_debug("the client went away before the response was written");
        FCGX_Finish_r(&request);
    }
    us_adapter_free(&adapter);
    FCGX_Free(&request, 1);
    return 0;
}

static int serve_cgi(us_api *api)
{
    us_adapter adapter;
    us_adapter_init(&adapter);
    us_cgi_io io = {cgi_getparam, cgi_read, cgi_write, NULL};
    int rc = us_adapter_serve(&adapter, api, &io) < 0 ? 1 : 0;
    fflush(stdout);
    us_adapter_free(&adapter);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = DEFAULT_CONFIG;
    int check_only = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:Vh", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'C': check_only = 1; break;
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
    us_config *cfg = us_config_load(config_path, err, sizeof err);
    if (!cfg) {
        us_error("configuration: %s", err);
        return US_EXIT_CONFIG;
    }
    us_log_set_level_name(cfg->log.level);
    if (check_only) {
        printf("%s: configuration OK\n", config_path);
        us_config_free(cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a blocked accept() must return so the worker can exit. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int rc = 1;
    us_api *api = NULL;
    us_store *store = us_store_create(cfg, err, sizeof err);
    if (!store) {
        us_error("configuration: %s", err);
        rc = US_EXIT_CONFIG;
        goto done;
    }
    api = us_api_create(cfg, store, err, sizeof err);
    if (!api) {
        us_error("configuration: %s", err);
        rc = US_EXIT_CONFIG;
        goto done;
    }
    rc = FCGX_IsCGI() ? serve_cgi(api) : serve_fastcgi(api);
done:
    us_api_free(api);
    us_store_free(store);
    us_config_free(cfg);
    return rc;
}
