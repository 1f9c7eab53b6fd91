/* The FastCGI worker loop, shared by the two ways ustatus serves FastCGI (SPEC §5): a
 * process spawned by a web server (the listening socket is fd 0) and each worker of the
 * prefork pool (the socket its supervisor bound). */
#ifndef USTATUS_FCGI_WORKER_H
#define USTATUS_FCGI_WORKER_H

#include <stddef.h>

#include "ustatus/config.h"

/* Serves FastCGI requests accepted on listen_fd, one request at a time, on any number of
 * connections: connections the web server keeps open (FCGI_KEEP_CONN) wait in a poll set
 * and hold no worker; whichever has a request is served. Runs until SIGTERM or SIGINT
 * (both stay blocked while a request is served and are taken between requests; the
 * requests that have arrived or whose connection was accepted are served, then every
 * connection is closed), until SIGUSR2 or max_requests requests served (0 = no limit):
 * then it drains, serving its kept connections until each is idle 250 ms, 30 s at most,
 * so that a web server never sends a request on a connection being closed — or until
 * the listening socket fails.
 *
 * cfg->fcgi.request_timeout_ms bounds the delivery of a request: a new connection must
 * deliver a whole request (params and body) that long after its accept, and on a kept
 * connection a request must be whole that long after its first byte; the writing of a
 * response has the same bound. A connection that misses it is shut down and closed and
 * its request is not run. An idle kept connection (one that has served a request) is
 * never closed by the clock: the web server may send its next request at any moment.
 * A connection whose request was answered without reading its whole body (413, a GET's
 * body) has the rest read away (at most 16 MiB, else it is closed) before the next.
 *
 * Builds its own app (store and endpoints) from cfg (borrowed; it must outlive the
 * call), so every worker has its own Redis connections. Sets O_NONBLOCK on listen_fd:
 * workers sharing the socket race for each connection and the losers must not block in
 * accept(). Uses SIGALRM and the ITIMER_REAL interval timer for the request clock.
 * Holds at most (RLIMIT_NOFILE - 64) connections; at that limit it stops accepting.
 * Returns the process exit status: 0, US_EXIT_CONFIG when the app cannot be
 * built, 1 on a fatal error. */
int us_worker_run(const us_config *cfg, int listen_fd, long max_requests);

/* Builds and frees what a worker builds from cfg (the app: store, rules, client keys; no
 * connection is opened), so a configuration the loader accepts but a worker would
 * refuse is caught before start-up or reload. 0, or -1 with a reason in err. */
int us_worker_check_config(const us_config *cfg, char *err, size_t err_len);

#endif
