/* The FastCGI worker loop, shared by the two ways ustatus serves FastCGI (SPEC §5): a
 * process spawned by a web server (the listening socket is fd 0) and each worker of the
 * prefork pool (the socket its supervisor bound). */
#ifndef USTATUS_FCGI_WORKER_H
#define USTATUS_FCGI_WORKER_H

#include <stddef.h>

#include "ustatus/config.h"

/* Serves FastCGI requests accepted on listen_fd, one at a time, until SIGTERM or SIGINT
 * (the request in hand is finished first: both signals stay blocked while a request is
 * served and are only taken while waiting for the next connection), until max_requests
 * requests were served (0 = no limit), or until the listening socket fails.
 *
 * Builds its own app (store and endpoints) from cfg (borrowed; it must outlive the
 * call), so every worker has its own Redis connections. Sets O_NONBLOCK on listen_fd:
 * workers sharing the socket race for each connection and the losers must not block in
 * accept().
 * Returns the process exit status: 0, US_EXIT_CONFIG when the app cannot be
 * built, 1 on a fatal error. */
int us_worker_run(const us_config *cfg, int listen_fd, long max_requests);

/* Builds and frees what a worker builds from cfg (the app: store, rules, client keys; no
 * connection is opened), so a configuration the loader accepts but a worker would
 * refuse is caught before start-up or reload. 0, or -1 with a reason in err. */
int us_worker_check_config(const us_config *cfg, char *err, size_t err_len);

#endif
