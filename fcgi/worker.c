/* The FastCGI worker loop (see worker.h).
 *
 * Why the loop accepts connections itself instead of letting FCGX_Accept_r block in
 * accept(): a worker must both (a) leave promptly on SIGTERM while idle and (b) never
 * lose the request in hand to that signal. libfcgi cannot give both. Without SA_RESTART
 * the signal interrupts whatever read() or write() the request is in (libfcgi then drops
 * the request); with SA_RESTART it does not interrupt a blocked accept() either, and
 * libfcgi's own check of FCGX_ShutdownPending() before accept() leaves a window (its
 * source says so) in which the signal is lost and the worker sleeps until the next
 * connection. So: SIGTERM/SIGINT are blocked all the time except inside ppoll(), which
 * waits for a connection and takes a pending signal atomically; the connection is
 * accepted without blocking (other workers race for it) and handed to libfcgi as an open
 * connection, and the request then runs to its end with the signals blocked. */
#define _GNU_SOURCE /* accept4, ppoll */
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "adapter.h"
#include "ustatus/app.h"
#include "ustatus/log.h"
#include "ustatus/metrics.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ---- FastCGI I/O for the adapter ---- */

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

/* ---- accepting ---- */

/* FCGI_WEB_SERVER_ADDRS (a comma-separated list of the web servers' IP addresses) is
 * libfcgi's filter for TCP connections; accepting ourselves, we apply it ourselves. */
static bool peer_allowed(const struct sockaddr_storage *sa, const char *allowed)
{
    if (!allowed || !*allowed)
        return true;
    if (sa->ss_family != AF_INET && sa->ss_family != AF_INET6)
        return true;
    char peer[INET6_ADDRSTRLEN];
    const void *addr = sa->ss_family == AF_INET
                           ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
                           : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!inet_ntop(sa->ss_family, addr, peer, sizeof peer))
        return false;
    const char *p = allowed;
    while (*p) {
        size_t len = strcspn(p, ",");
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        char item[INET6_ADDRSTRLEN];
        unsigned char bin_item[16], bin_peer[16];
        if (len && len < sizeof item) {
            memcpy(item, p, len);
            item[len] = '\0';
            item[strcspn(item, " \t")] = '\0';
            if (inet_pton(sa->ss_family, item, bin_item) == 1 &&
                inet_pton(sa->ss_family, peer, bin_peer) == 1 &&
                memcmp(bin_item, bin_peer, sa->ss_family == AF_INET ? 4 : 16) == 0)
                return true;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    us_warn("connection from %s refused: not in FCGI_WEB_SERVER_ADDRS", peer);
    return false;
}

/* A new connection, or -1 when there is none to take (another worker was faster) or
 * accepting failed for a reason that a later try may not have. */
static int accept_connection(int listen_fd, const char *allowed)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    int fd = accept4(listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
    if (fd < 0) {
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
        case EINTR:
        case ECONNABORTED:
        case EPROTO: break;
        default:
            /* EMFILE, ENOBUFS...: pause rather than spin on a socket that stays readable. */
            us_error("accept: %s", strerror(errno));
            {
                struct timespec pause = {0, 100 * 1000 * 1000};
                nanosleep(&pause, NULL);
            }
        }
        return -1;
    }
    if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6) {
        int one = 1;
        /* A response goes out in one or two writes; do not let Nagle hold the last one. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!peer_allowed(&sa, allowed)) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* ---- the loop ---- */

int us_worker_run(const us_config *cfg, int listen_fd, long max_requests)
{
    char err[512];
    int rc = 0;
    us_app *app = NULL;
    FCGX_Request request;
    us_adapter adapter;
    bool have_request = false;
    us_adapter_init(&adapter);

    sigset_t stop_set, wait_mask;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_set, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Reloading is the supervisor's job (or the web server's): a hangup of the terminal
     * or the process group must not kill requests in flight. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);

    app = us_app_create(cfg, err, sizeof err);
    if (!app) {
        us_error("configuration: %s", err);
        rc = US_EXIT_CONFIG;
        goto done;
    }
    if (FCGX_Init() != 0) {
        us_error("FCGX_Init failed");
        rc = 1;
        goto done;
    }
    /* libfcgi never sees the listening socket: the loop below accepts (and applies
     * FCGI_WEB_SERVER_ADDRS, IPv6 included) and hands libfcgi the connection. When a
     * connection ends without a request, FCGX_Accept_r would otherwise accept on its own,
     * bypassing that check; with -1 its accept fails at once and the loop goes on. */
    FCGX_InitRequest(&request, -1, 0);
    have_request = true;
    int flags = fcntl(listen_fd, F_GETFL);
    if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        us_error("the FastCGI socket (fd %d) is unusable: %s", listen_fd, strerror(errno));
        rc = 1;
        goto done;
    }
    const char *allowed = getenv("FCGI_WEB_SERVER_ADDRS");
    us_cgi_io io = {fcgx_getparam, fcgx_read, fcgx_write, &request};
    us_metrics_worker_started();

    long served = 0;
    while (!stop_requested) {
        if (max_requests > 0 && served >= max_requests) {
            us_info("served %ld requests (max_requests): exiting to be replaced", served);
            break;
        }
        /* A web server that asked to keep the connection (FCGI_KEEP_CONN) sends its next
         * request on it; libfcgi reads it from there, as FCGX_Accept_r would. */
        bool kept = request.ipcFd >= 0;
        struct pollfd pfd = {kept ? request.ipcFd : listen_fd, POLLIN, 0};
        int n = ppoll(&pfd, 1, NULL, &wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            us_error("poll: %s", strerror(errno));
            rc = 1;
            break;
        }
        if (!kept) {
            if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) {
                us_info("the FastCGI listening socket was closed: exiting");
                break;
            }
            int fd = accept_connection(listen_fd, allowed);
            if (fd < 0)
                continue;
            /* Hand the open connection to libfcgi: with ipcFd set, FCGX_Accept_r reads the
             * request from it instead of accepting; keepConnection stops the
             * FCGX_Finish_r at its start from closing it (the web server's begin record
             * sets keepConnection again for this request). */
            request.ipcFd = fd;
            request.keepConnection = 1;
        }
        if (FCGX_Accept_r(&request) < 0)
            continue; /* the connection carried no request: libfcgi closed it */
        if (us_adapter_serve(&adapter, app, &io) < 0)
            us_debug("the client went away before the response was written");
        FCGX_Finish_r(&request);
        served++;
    }
    if (stop_requested)
        FCGX_ShutdownPending();
done:
    if (have_request)
        FCGX_Free(&request, 1);
    us_adapter_free(&adapter);
    us_app_free(app);
    return rc;
}

int us_worker_check_config(const us_config *cfg, char *err, size_t err_len)
{
    us_app *app = us_app_create(cfg, err, err_len);
    int rc = app ? 0 : -1;
    us_app_free(app);
    return rc;
}
