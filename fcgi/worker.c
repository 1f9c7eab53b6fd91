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
 * connection, and the request then runs to its end with the signals blocked.
 *
 * Why the worker holds many connections and polls them (SPEC §5, keep-alive): a web
 * server that keeps its FastCGI connections open (nginx fastcgi_keep_conn, Apache
 * mod_proxy_fcgi enablereuse) holds more idle connections than there are workers. A
 * worker that waited on one kept connection for its next request was pinned by it, and
 * requests on the other connections waited in the backlog until the web server gave up
 * an idle one. Here an idle connection costs a file descriptor and a pollfd, nothing
 * more: the worker waits on the listening socket and all its connections at once and
 * serves whichever has a request, one request at a time (the store and the app are not
 * shared between threads, and one request at a time per CPU is what the pool sizes for).
 *
 * fcgi.request_timeout (SPEC §5) bounds the delivery of a request: from the accept of a
 * new connection, or from the first byte of a next request on a kept connection, to the
 * end of its body; and again the writing of its response. libfcgi reads a request with
 * blocking read()s in loops of its own, so the clock is an interval timer whose SIGALRM
 * handler shuts the connection down (shutdown() is async-signal-safe): every read then
 * ends at once, libfcgi sees the end of the stream, and the request fails unrun. An idle
 * kept connection, one that has served a request and waits for the next, is never
 * closed by the clock: the web server may pick it for a request at the very moment it
 * is closed, and nginx does not retry a POST on a connection the backend closed. It
 * costs nothing to keep, and the web server closes it when it no longer wants it. */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "adapter.h"
#include "ustatus/app.h"
#include "ustatus/clock.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/metrics.h"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t drain_requested; /* SIGUSR2: leave by draining (see below) */

static void on_stop_signal(int sig)
{
    if (sig == SIGUSR2)
        drain_requested = 1;
    stop_requested = 1;
}

/* ---- the clock of fcgi.request_timeout ---- */

/* The connection the timer shuts down when it fires, or -1. */
static volatile sig_atomic_t deadline_fd = -1;
static volatile sig_atomic_t deadline_hit;

static void on_deadline(int sig)
{
    (void)sig;
    int fd = deadline_fd;
    if (fd >= 0) {
        shutdown(fd, SHUT_RDWR);
        deadline_hit = 1;
    }
}

static void deadline_arm(int fd, int64_t at_ms)
{
    int64_t left = at_ms - us_clock_mono_ms();
    if (left < 1)
        left = 1;
    deadline_fd = fd;
    struct itimerval it = {{0, 0}, {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void deadline_disarm(void)
{
    deadline_fd = -1; /* first: from here on a late signal touches nothing */
    struct itimerval it = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* ---- FastCGI I/O for the adapter ---- */

/* Bytes of a request's unread stdin (a body refused unread, a GET's body) read away so
 * that the next request on a kept connection starts at its first record; past this the
 * connection is closed after the response instead. */
#define DRAIN_MAX_BYTES (16u << 20)

typedef struct serving {
    FCGX_Request request;
    int64_t timeout_ms;
    bool armed;
} serving;

static const char *fcgx_getparam(void *ctx, const char *name)
{
    return FCGX_GetParam(name, ((serving *)ctx)->request.envp);
}

static long fcgx_read(void *ctx, char *buf, size_t n)
{
    FCGX_Stream *in = ((serving *)ctx)->request.in;
    int want = n > 1 << 30 ? 1 << 30 : (int)n;
    int got = FCGX_GetStr(buf, want, in);
    /* libfcgi reports a broken stream (the connection lost or shut down by the clock, a
     * record that is not stdin such as FCGI_ABORT_REQUEST) as an end of stream with an
     * error set: not the end of the body. */
    if (got < 0 || (got == 0 && FCGX_GetError(in) != 0))
        return -1;
    return got;
}

static int fcgx_write(void *ctx, const char *buf, size_t n)
{
    serving *sv = ctx;
    FCGX_Stream *out = sv->request.out;
    if (!sv->armed) {
        /* A web server that does not read the response must not hold the worker either. */
        deadline_arm(sv->request.ipcFd, us_clock_mono_ms() + sv->timeout_ms);
        sv->armed = true;
    }
    while (n > 0) {
        int chunk = n > 1 << 30 ? 1 << 30 : (int)n;
        if (FCGX_PutStr(buf, chunk, out) != chunk)
            return -1;
        buf += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

/* The whole request is in: what it asks for is not the web server's delay. */
static void fcgx_request_read(void *ctx)
{
    serving *sv = ctx;
    deadline_disarm();
    sv->armed = false;
}

/* Reads away what the adapter left of this request's stdin, so that the connection can
 * carry the next request; when that is more than DRAIN_MAX_BYTES or fails, the
 * connection is closed at the end of the request instead. */
static void drain_stdin(serving *sv)
{
    FCGX_Request *rq = &sv->request;
    char sink[4096];
    size_t drained = 0;
    int got;
    while ((got = FCGX_GetStr(sink, sizeof sink, rq->in)) > 0) {
        drained += (size_t)got;
        if (drained > DRAIN_MAX_BYTES) {
            rq->keepConnection = 0;
            return;
        }
    }
    if (FCGX_GetError(rq->in) != 0)
        rq->keepConnection = 0;
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

typedef struct conn {
    int fd;
    bool fresh;          /* accepted, no request served yet */
    int64_t accepted_ms;
    int64_t deadline_ms; /* fresh: its first request must be in by then */
    int64_t idle_since_ms; /* leaving: when it last served a request */
} conn;

/* After accepting a connection, a worker accepts no other for this long unless the
 * first has delivered its request: a web server writes its request right after it
 * connects, and a worker that took a second connection in that instant would serve it
 * only after the first request, however long that takes, while other workers idle.
 * Meanwhile the idle workers take the new connections; if every worker is in that
 * instant, a new connection waits at most this long in the backlog. */
#define FRESH_GRACE_MS 50

typedef struct worker {
    us_app *app;
    us_adapter adapter;
    serving sv;
    us_cgi_io io;
    conn *conns;
    size_t n_conns, cap_conns, max_conns;
    struct pollfd *pfds;
    long served;
} worker;

/* How many connections one worker holds at most: what its descriptor limit leaves after
 * Redis connections, logs and the like. At the limit it stops accepting (other workers
 * take the new connections) and logs it. */
static size_t connection_limit(void)
{
    struct rlimit rl;
    rlim_t n = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        n = rl.rlim_cur;
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        n = 65536;
    if (n > 65536)
        n = 65536;
    return n > 128 ? (size_t)n - 64 : 64;
}

static void add_conn(worker *w, int fd, int64_t now_ms, int64_t deadline_ms)
{
    if (w->n_conns == w->cap_conns) {
        w->cap_conns = w->cap_conns ? w->cap_conns * 2 : 16;
        w->conns = us_xrealloc(w->conns, w->cap_conns * sizeof *w->conns);
        w->pfds = us_xrealloc(w->pfds, (w->cap_conns + 1) * sizeof *w->pfds);
    }
    w->conns[w->n_conns++] = (conn){fd, true, now_ms, deadline_ms, now_ms};
}

/* Serves one request on c (whose first bytes are readable, or its end). Returns true
 * when the connection stays open for the next request (the web server asked for it with
 * FCGI_KEEP_CONN and nothing went wrong); false when libfcgi has closed it. */
static bool serve_one(worker *w, conn *c)
{
    serving *sv = &w->sv;
    FCGX_Request *rq = &sv->request;
    int fd = c->fd;
    int64_t deadline_ms = c->fresh ? c->deadline_ms : us_clock_mono_ms() + sv->timeout_ms;
    /* Hand the open connection to libfcgi: with ipcFd set, FCGX_Accept_r reads the
     * request from it instead of accepting; keepConnection stops the FCGX_Finish_r at
     * its start from closing it (the web server's begin record sets keepConnection
     * again for this request). */
    rq->ipcFd = fd;
    rq->keepConnection = 1;
    deadline_hit = 0;
    deadline_arm(fd, deadline_ms);
    sv->armed = true;
    us_metrics_worker_busy();
    bool served = false;
    if (FCGX_Accept_r(rq) < 0) {
        /* no request (the web server closed an idle connection) or a broken one: libfcgi
         * closed the connection */
        deadline_disarm();
        rq->ipcFd = -1;
        goto done;
    }
    if (us_adapter_serve(&w->adapter, w->app, &w->io) < 0)
        us_debug("the request was not answered: its connection failed");
    if (rq->keepConnection) {
        if (!sv->armed) {
            deadline_arm(fd, us_clock_mono_ms() + sv->timeout_ms);
            sv->armed = true;
        }
        drain_stdin(sv);
    }
    FCGX_Finish_r(rq);
    deadline_disarm();
    sv->armed = false;
    served = true;
    w->served++;
done:
    if (deadline_hit)
        us_info("closed a FastCGI connection that did not deliver its request (or take its "
                "response) within fcgi.request_timeout (%lld ms)",
                (long long)sv->timeout_ms);
    us_metrics_worker_idle();
    if (!served || rq->ipcFd < 0) {
        rq->ipcFd = -1;
        return false;
    }
    rq->ipcFd = -1; /* the connection is ours again, open */
    c->fresh = false;
    return true;
}

/* Takes a SIGTERM/SIGINT that came while a request was served. ppoll() delivers a
 * pending signal only when it would otherwise wait: with connections ready (a busy
 * worker) it returns them and the signal stays pending, so the loop looks for it itself
 * between requests. True when one was taken (stop_requested is then set). */
static bool take_stop_signal(const sigset_t *stop_set)
{
    sigset_t pending;
    if (sigpending(&pending) != 0 ||
        (sigismember(&pending, SIGTERM) != 1 && sigismember(&pending, SIGINT) != 1 &&
         sigismember(&pending, SIGUSR2) != 1))
        return false;
    struct timespec zero = {0, 0};
    int sig;
    while ((sig = sigtimedwait(stop_set, NULL, &zero)) > 0)
        if (sig == SIGUSR2)
            drain_requested = 1;
    stop_requested = 1;
    return true;
}

/* How long a leaving worker waits for the request of a connection it accepted but has
 * not read from yet (a web server writes its request right after connecting). */
#define LEAVING_GRACE_MS 1000

/* Draining (SIGUSR2 from the pool replacing a worker, or max_requests): a kept
 * connection is closed only once it has been idle this long, and the worker serves the
 * requests that come on it until then, for DRAIN_MAX_MS at most. Why: a web server
 * that keeps FastCGI connections may write a request on one at the very moment the
 * backend closes it, and nginx does not retry a POST on a connection the backend
 * closed (502). nginx reuses its most recently used connections first, so one idle
 * this long is one it has stopped picking; the busy ones it closes itself after
 * keepalive_requests (100 in deploy/nginx/ustatus.conf) — or, past DRAIN_MAX_MS, they
 * are closed. A SIGTERM (the whole service stopping) ends the drain. */
#define DRAIN_IDLE_MS 250
#define DRAIN_MAX_MS 30000

/* On the way out (SIGTERM, SIGUSR2, max_requests): a connection accepted, or one whose
 * request has arrived, is a request in hand: serve it rather than drop it, then close.
 * Idle kept connections are closed at once (SIGTERM: the whole service is stopping), or,
 * when draining, once idle for DRAIN_IDLE_MS (the web server opens new ones to the
 * workers that stay). */
static void serve_what_came(worker *w, bool drain)
{
    int64_t start = us_clock_mono_ms();
    int64_t fresh_until = start + LEAVING_GRACE_MS, drain_until = start + DRAIN_MAX_MS;
    if (drain)
        us_info("leaving: draining %zu FastCGI connections (each closed once idle %d ms, "
                "%d ms at most)", w->n_conns, DRAIN_IDLE_MS, DRAIN_MAX_MS);
    for (size_t i = 0; i < w->n_conns; i++)
        w->conns[i].idle_since_ms = start;
    size_t cut = 0; /* kept connections still in use when the drain ended */
    for (;;) {
        if (drain) {
            sigset_t pending;
            if (sigpending(&pending) == 0 && (sigismember(&pending, SIGTERM) == 1 ||
                                              sigismember(&pending, SIGINT) == 1)) {
                us_info("leaving: %s during the drain: closing its connections",
                        sigismember(&pending, SIGTERM) == 1 ? "SIGTERM" : "SIGINT");
                drain = false;
            }
        }
        /* Close what has waited long enough: a fresh connection after LEAVING_GRACE_MS;
         * a kept one at once, or when draining after DRAIN_IDLE_MS idle (DRAIN_MAX_MS in
         * all). The earliest of the others' ends is the poll's timeout. */
        int64_t now = us_clock_mono_ms(), next = -1;
        size_t k = 0;
        for (size_t i = 0; i < w->n_conns; i++) {
            conn c = w->conns[i];
            int64_t end = c.fresh ? fresh_until : !drain ? now : c.idle_since_ms + DRAIN_IDLE_MS;
            if (!c.fresh && drain && end > drain_until)
                end = drain_until;
            if (end <= now) {
                if (!c.fresh && drain && now >= drain_until)
                    cut++;
                close(c.fd);
                continue;
            }
            if (next < 0 || end < next)
                next = end;
            w->conns[k++] = c;
        }
        w->n_conns = k;
        if (w->n_conns == 0)
            break;
        for (size_t i = 0; i < w->n_conns; i++)
            w->pfds[i] = (struct pollfd){w->conns[i].fd, POLLIN, 0};
        int n = poll(w->pfds, w->n_conns, (int)(next - now));
        if (n < 0 && errno != EINTR)
            break; /* the caller closes what is left */
        if (n <= 0)
            continue;
        k = 0;
        size_t n_before = w->n_conns;
        for (size_t i = 0; i < n_before; i++) {
            conn c = w->conns[i];
            if (!w->pfds[i].revents) {
                w->conns[k++] = c;
                continue;
            }
            if (!serve_one(w, &c))
                continue; /* closed by the web server, or broken */
            if (drain) {
                c.idle_since_ms = us_clock_mono_ms();
                w->conns[k++] = c;
            } else {
                close(c.fd);
            }
        }
        w->n_conns = k;
    }
    if (cut)
        us_info("leaving: %zu FastCGI connections still in use after %d ms were closed", cut,
                DRAIN_MAX_MS);
}

int us_worker_run(const us_config *cfg, int listen_fd, long max_requests)
{
    char err[512];
    int rc = 0;
    worker w;
    bool have_request = false;
    memset(&w, 0, sizeof w);
    us_adapter_init(&w.adapter);

    sigset_t stop_set, wait_mask;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &stop_set, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGUSR2);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    /* The request clock: SA_RESTART, so that it interrupts nothing but the connection
     * it shuts down (a restarted read of that connection returns at once). */
    struct sigaction alarm_sa;
    memset(&alarm_sa, 0, sizeof alarm_sa);
    alarm_sa.sa_handler = on_deadline;
    alarm_sa.sa_flags = SA_RESTART;
    sigemptyset(&alarm_sa.sa_mask);
    sigaction(SIGALRM, &alarm_sa, NULL);
    /* Reloading is the supervisor's job (or the web server's): a hangup of the terminal
     * or the process group must not kill requests in flight. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);

    w.app = us_app_create(cfg, err, sizeof err);
    if (!w.app) {
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
    FCGX_InitRequest(&w.sv.request, -1, 0);
    have_request = true;
    w.sv.timeout_ms = cfg->fcgi.request_timeout_ms > 0 ? cfg->fcgi.request_timeout_ms : 30000;
    int flags = fcntl(listen_fd, F_GETFL);
    if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        us_error("the FastCGI socket (fd %d) is unusable: %s", listen_fd, strerror(errno));
        rc = 1;
        goto done;
    }
    const char *allowed = getenv("FCGI_WEB_SERVER_ADDRS");
    w.io = (us_cgi_io){fcgx_getparam, fcgx_read, fcgx_write, &w.sv};
    w.adapter.request_read = fcgx_request_read;
    w.max_conns = connection_limit();
    bool at_limit_logged = false;
    us_metrics_worker_started();
    us_metrics_worker_idle();

    while (!stop_requested) {
        if (max_requests > 0 && w.served >= max_requests) {
            us_info("served %ld requests (max_requests): exiting to be replaced", w.served);
            break;
        }
        /* New connections that sent nothing in time are closed; the next deadline is the
         * poll's timeout. */
        int64_t now = us_clock_mono_ms(), next = -1, hold_until = -1;
        size_t k = 0;
        for (size_t i = 0; i < w.n_conns; i++) {
            conn *c = &w.conns[i];
            if (c->fresh && c->deadline_ms <= now) {
                us_info("closed a FastCGI connection that sent no request within "
                        "fcgi.request_timeout (%lld ms)",
                        (long long)w.sv.timeout_ms);
                close(c->fd);
                continue;
            }
            if (c->fresh && (next < 0 || c->deadline_ms < next))
                next = c->deadline_ms;
            if (c->fresh && c->accepted_ms + FRESH_GRACE_MS > now &&
                c->accepted_ms + FRESH_GRACE_MS > hold_until)
                hold_until = c->accepted_ms + FRESH_GRACE_MS;
            w.conns[k++] = *c;
        }
        w.n_conns = k;
        if (w.n_conns >= w.max_conns && !at_limit_logged) {
            us_warn("holding %zu FastCGI connections, this worker's limit (open files): it "
                    "accepts no more until some close",
                    w.n_conns);
            at_limit_logged = true;
        } else if (w.n_conns < w.max_conns) {
            at_limit_logged = false;
        }
        if (!w.pfds)
            w.pfds = us_xcalloc(1, sizeof *w.pfds);
        bool accepting = w.n_conns < w.max_conns && hold_until < 0;
        w.pfds[0] = (struct pollfd){accepting ? listen_fd : -1, POLLIN, 0};
        if (hold_until >= 0 && (next < 0 || hold_until < next))
            next = hold_until;
        for (size_t i = 0; i < w.n_conns; i++)
            w.pfds[i + 1] = (struct pollfd){w.conns[i].fd, POLLIN, 0};
        struct timespec ts, *tsp = NULL;
        if (next >= 0) {
            int64_t left = next - now;
            ts.tv_sec = (time_t)(left / 1000);
            ts.tv_nsec = (long)(left % 1000) * 1000000L;
            tsp = &ts;
        }
        int n = ppoll(w.pfds, w.n_conns + 1, tsp, &wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            us_error("poll: %s", strerror(errno));
            rc = 1;
            break;
        }
        if (n == 0)
            continue;
        /* The connections first, in order: their requests were sent before anything a
         * new connection brings. */
        size_t n_before = w.n_conns;
        k = 0;
        for (size_t i = 0; i < n_before; i++) {
            conn c = w.conns[i];
            bool keep = true;
            if (w.pfds[i + 1].revents && !stop_requested && !take_stop_signal(&stop_set) &&
                !(max_requests > 0 && w.served >= max_requests))
                keep = serve_one(&w, &c);
            if (keep)
                w.conns[k++] = c;
        }
        w.n_conns = k;
        if (stop_requested)
            break;
        if (w.pfds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            us_info("the FastCGI listening socket was closed: exiting");
            break;
        }
        if (w.pfds[0].revents & POLLIN) {
            int fd = accept_connection(listen_fd, allowed);
            int64_t at = us_clock_mono_ms();
            if (fd >= 0)
                add_conn(&w, fd, at, at + w.sv.timeout_ms);
        }
    }
    if (rc == 0 && w.n_conns > 0)
        serve_what_came(&w, drain_requested || (max_requests > 0 && w.served >= max_requests));
    if (stop_requested)
        FCGX_ShutdownPending();
done:
    deadline_disarm();
    for (size_t i = 0; i < w.n_conns; i++)
        close(w.conns[i].fd);
    free(w.conns);
    free(w.pfds);
    if (have_request)
        FCGX_Free(&w.sv.request, 1);
    us_metrics_worker_exit();
    us_adapter_free(&w.adapter);
    us_app_free(w.app);
    return rc;
}

int us_worker_check_config(const us_config *cfg, char *err, size_t err_len)
{
    us_app *app = us_app_create(cfg, err, err_len);
    int rc = app ? 0 : -1;
    us_app_free(app);
    return rc;
}
