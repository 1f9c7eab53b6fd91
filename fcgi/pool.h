/* The prefork pool (SPEC §5): `ustatus-fcgi --listen ADDR [--workers N]`.
 *
 * A supervisor binds the FastCGI socket (or takes the one systemd passed, LISTEN_FDS),
 * optionally drops root privileges, opens the log (log.file/log.syslog), and keeps N
 * worker processes (fcgi/worker.c) accepting on it:
 *   - a pid table; a worker that dies is started again at once, with an exponential
 *     back-off (0.1 s doubling to 10 s) while workers keep dying within 5 s of starting;
 *   - a worker leaves after fcgi.max_requests requests (when set) and is replaced;
 *   - workers die with the supervisor (PR_SET_PDEATHSIG), even when it is SIGKILLed;
 *   - SIGTERM / SIGINT: workers finish the request in hand and exit; after the shutdown
 *     timeout the stragglers get SIGKILL; then the socket and pid file are removed;
 *   - SIGHUP: the configuration file is read and checked again; when valid, the workers
 *     are replaced one by one (a new one started before an old one is asked to finish),
 *     on the same listening socket, so no connection is refused; when invalid, the
 *     reason is logged and the running workers stay; log.file is reopened;
 *   - SIGUSR1: log.file is reopened (the workers follow a renamed file by themselves);
 *   - under systemd (NOTIFY_SOCKET): READY=1 once the workers are started, RELOADING=1
 *     (with MONOTONIC_USEC) then READY=1 around a reload, STOPPING=1 on the way out;
 *   - a unix socket gets its mode at bind() (umask) and its owner through fchownat
 *     without following symlinks; a socket swapped under it is refused.
 * The supervisor handles signals synchronously (all blocked, taken by sigtimedwait), so
 * it has no signal handlers and no async-signal-safety questions. */
#ifndef USTATUS_FCGI_POOL_H
#define USTATUS_FCGI_POOL_H

#include <stdint.h>

#include "ustatus/config.h"

typedef struct us_pool_options {
    const char *config_path;     /* re-read on SIGHUP */
    const char *listen;          /* "HOST:PORT" or "unix:/path"; NULL: fcgi.listen */
    long workers;                /* 0: fcgi.workers, and when that is 0 the CPU count */
    long max_requests;           /* -1: fcgi.max_requests; 0 = never recycle */
    long backlog;                /* 0: fcgi.backlog */
    const char *socket_owner;    /* unix socket: "user[:group]" to chown it to; NULL = keep */
    long socket_mode;            /* unix socket: permission bits; -1 = 0660 */
    const char *user;            /* drop to this user after binding (started as root) */
    const char *group;           /* and this group (default: the user's primary group) */
    const char *pid_file;        /* NULL = none */
    int64_t shutdown_timeout_ms; /* how long SIGTERM waits for requests in hand */
    int inherited_fd;            /* a listening socket from systemd (us_pool_listen_fds),
                                    served instead of binding one; -1 = none */
} us_pool_options;

/* Socket activation, as sd_listen_fds(3) with unset_environment = 1: when LISTEN_PID is
 * this process and LISTEN_FDS is 1, returns 3 (the passed socket; its use is checked by
 * us_pool_run); when the variables are absent or meant for another process, -1; when
 * LISTEN_FDS is not 1 or malformed, -2 with a reason in err. LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES are removed from the environment in every case, so nothing this process
 * starts takes them for its own. */
int us_pool_listen_fds(char *err, size_t err_len);

/* Runs the pool until SIGTERM/SIGINT. Takes ownership of cfg (the configuration already
 * loaded from opt->config_path). Returns the process exit status: 0 after a clean
 * shutdown, 1 when the socket, the pid file or the privilege drop failed, 64 for a bad
 * option value, US_EXIT_CONFIG when the configuration cannot be used. */
int us_pool_run(const us_pool_options *opt, us_config *cfg);

#endif
