/* Counters for GET /metrics (SPEC §7), summed over every process that runs with the same
 * configuration file: the ustatus pool's workers, or the processes a web server spawned
 * (lighttpd max-procs, mod_fcgid, spawn-fcgi -F).
 *
 * The counters live in one POSIX shared memory segment per (configuration file, user):
 * "/ustatus-m<LAYOUT>-<uid>-<16 hex digits of FNV-1a 64 of the file's realpath>", mode
 * 0600, created by whichever process comes first, used only when it belongs to this user.
 * Every update is one relaxed __atomic add on a shared 64-bit counter, so nothing is lost
 * when processes die and no process needs to know the others.
 *
 * Until us_metrics_attach succeeds (or when it fails), the counters are process-private:
 * every function here can be called at any time and never fails. */
#ifndef USTATUS_METRICS_H
#define USTATUS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ustatus/buf.h"

/* The segment also holds the FastCGI workers' gauges (ustatus_workers{state="busy"|
 * "idle"}): one slot per worker process, claimed by the process itself, counted while
 * its pid lives (a worker killed with -9 drops out of the gauges at once).
 * /metrics also shows ustatus_build_info{version="<PACKAGE_VERSION>"} 1.
 *
 * A segment name is computable by anyone (every process of a configuration must find it
 * without talking to the others), so another local user can create it first: such a
 * segment (not ours, or open to others) is refused with a reason that says so, and the
 * process counts privately (ustatus_metrics_shared 0). */

/* Connects this process to the segment of the configuration file at config_path (NULL:
 * built-in defaults, keyed by the empty path). Call once, before forking workers: a child
 * inherits the mapping. Returns 0 when the counters are shared; -1 with a reason in err
 * when they stay private to this process and its children (the caller logs it). */
int us_metrics_attach(const char *config_path, char *err, size_t err_len);

/* The segment name for config_path and the current effective user (for logs and docs). */
void us_metrics_shm_name(const char *config_path, char *out, size_t out_len);

/* Removes the segment's name (the pool does this at a clean exit: it owns its workers'
 * counters). Processes still attached keep their mapping. Returns 0 or -1 (errno). */
int us_metrics_unlink(const char *config_path);

/* One API command answered: `method` is its name ("get_user_status"...; "batch" for a
 * batch rejected as a whole, "unknown" when the method is not known), error_code is the
 * API error code (0 for success), duration_ns the time since the API began handling the
 * request (its body already read). */
void us_metrics_command(const char *method, int error_code, int64_t duration_ns);

/* One HTTP response written, by status. */
void us_metrics_http_response(int status);

/* A Redis command or connection attempt failed (transport error, timeout, refused
 * connection, failed AUTH/SELECT). */
void us_metrics_redis_error(void);

/* A connection to a Redis node was established again after an earlier one was lost. */
void us_metrics_redis_reconnect(void);

/* A FastCGI worker process started serving. */
void us_metrics_worker_started(void);

/* The calling FastCGI worker process waits for a request (idle) or serves one (busy).
 * The first call claims a slot for this process in the block in use (again after a fork
 * or us_metrics_attach); more than 1024 live workers sharing a segment are not all
 * counted. Costs one relaxed atomic store once the slot is held; never fails. */
void us_metrics_worker_idle(void);
void us_metrics_worker_busy(void);

/* The worker process leaves: its slot is freed. (One that dies without calling this stops
 * counting when its pid is gone.) */
void us_metrics_worker_exit(void);

/* Counts the live worker slots of the block in use, by state. */
void us_metrics_workers(unsigned *busy, unsigned *idle);

/* Appends the Prometheus text exposition (format 0.0.4) of every counter to out. */
void us_metrics_render(us_buf *out);

#endif
