/* Shared counters for GET /metrics (SPEC §7); see metrics.h for the model.
 *
 * Why one set of shared atomic counters rather than a slot per process: processes come
 * and go (respawn, max_requests, mod_fcgid's idle reaping, kill -9) and a slot table would
 * need claiming, reclaiming and a way to keep a dead process's counts. A shared counter
 * keeps every count the moment it is made, and a relaxed atomic add costs a few
 * nanoseconds — nothing next to a Redis round trip. */
#include "ustatus/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ustatus/buf.h"
#include "ustatus/hash.h"
#include "ustatus/msg.h"

/* Bumped whenever the block layout or the label tables below change, so a process of an
 * older build never reads a newer layout: the version is part of the segment's name. */
#define LAYOUT_VERSION 1
#define MAGIC          0x3153555441545355ull /* "USTATUS1" */

/* ---- label tables (append only; changing them means a new LAYOUT_VERSION) ---- */

#define N_METHODS  16
#define N_ERRORS   12
#define N_STATUSES 16

static const char *const method_names[N_METHODS] = {
    "update_user_status",
    "get_user_status",
    "delete_user_status",
    "update_user_online",
    "batch",
    "unknown",
    /* the slot for a name not listed here */
    [N_METHODS - 1] = "other",
};
/* The four API methods are always shown, with zeros: rate() needs the series to exist. */
#define N_ALWAYS_SHOWN 4

static const struct {
    int code;
    const char *name;
} error_names[N_ERRORS] = {
    {0, "other"}, /* slot 0: any code not listed */
    {100, "internal"},
    {101, "unauthorized"},
    {102, "unknown_channel"},
    {103, "permission_denied"},
    {104, "not_found"},
    {105, "already_subscribed"},
    {106, "limit_exceeded"},
    {107, "bad_request"},
    {108, "not_available"},
    {109, "token_expired"},
    {110, "expired"},
};

static const int statuses[N_STATUSES] = {200, 204, 400, 401, 403, 404, 405, 411,
                                         413, 429, 500, 502, 503, 504, 0 /* other */};

/* Upper bounds of the latency buckets, in ns; the last bucket is +Inf. From 0.5 ms (a
 * request to a local Redis) to 10 s (several io_timeouts). */
#define N_BOUNDS 14
static const int64_t bounds_ns[N_BOUNDS] = {
    500000,    1000000,   2500000,   5000000,    10000000,   25000000,   50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};
static const char *const bounds_text[N_BOUNDS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",
};

typedef struct block {
    uint64_t magic; /* MAGIC once initialised; set with a CAS from 0 */
    uint64_t worker_starts;
    uint64_t redis_errors;
    uint64_t redis_reconnects;
    uint64_t commands[N_METHODS];
    uint64_t errors[N_METHODS][N_ERRORS];
    uint64_t buckets[N_METHODS][N_BOUNDS + 1]; /* not cumulative: one count per bucket */
    uint64_t sum_ns[N_METHODS];
    uint64_t responses[N_STATUSES];
} block;

/* Process-private until attached: counting works in unit tests and before start-up ends. */
static block private_block;
static block *m = &private_block;
static int shared;

/* ---- updates ---- */

static inline void add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}

static inline uint64_t load(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

static size_t method_index(const char *method)
{
    if (method)
        for (size_t i = 0; i < N_METHODS - 1; i++)
            if (method_names[i] && strcmp(method_names[i], method) == 0)
                return i;
    return N_METHODS - 1;
}

static size_t error_index(int code)
{
    for (size_t i = 1; i < N_ERRORS; i++)
        if (error_names[i].code == code)
            return i;
    return 0;
}

void us_metrics_command(const char *method, int error_code, int64_t duration_ns)
{
    size_t mi = method_index(method);
    add(&m->commands[mi], 1);
    if (error_code)
        add(&m->errors[mi][error_index(error_code)], 1);
    if (duration_ns < 0)
        duration_ns = 0;
    size_t b = 0;
    while (b < N_BOUNDS && duration_ns > bounds_ns[b])
        b++;
    add(&m->buckets[mi][b], 1);
    add(&m->sum_ns[mi], (uint64_t)duration_ns);
}

void us_metrics_http_response(int status)
{
    size_t i = 0;
    while (i < N_STATUSES - 1 && statuses[i] && statuses[i] != status)
        i++;
    if (statuses[i] != status)
        i = N_STATUSES - 1;
    add(&m->responses[i], 1);
}

void us_metrics_redis_error(void)
{
    add(&m->redis_errors, 1);
}

void us_metrics_redis_reconnect(void)
{
    add(&m->redis_reconnects, 1);
}

void us_metrics_worker_started(void)
{
    add(&m->worker_starts, 1);
}

/* ---- the shared segment ---- */

static size_t block_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t p = page > 0 ? (size_t)page : 4096;
    return (sizeof(block) + p - 1) / p * p;
}

void us_metrics_shm_name(const char *config_path, char *out, size_t out_len)
{
    char real[PATH_MAX];
    const char *key = config_path ? config_path : "";
    /* The same file reached through a symlink or a relative path is the same service. */
    if (config_path && realpath(config_path, real))
        key = real;
    snprintf(out, out_len, "/ustatus-m%d-%lu-%016llx", LAYOUT_VERSION, (unsigned long)geteuid(),
             (unsigned long long)us_fnv1a64(key, strlen(key)));
}

int us_metrics_unlink(const char *config_path)
{
    char name[96];
    us_metrics_shm_name(config_path, name, sizeof name);
    return shm_unlink(name);
}

/* Falls back to an anonymous shared mapping: the counters are then private to this
 * process and the children it forks afterwards (the pool still sums its workers). */
static void attach_anonymous(void)
{
    void *p = mmap(NULL, block_size(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    memcpy(p, m, sizeof(block));
    m = p;
}

int us_metrics_attach(const char *config_path, char *err, size_t err_len)
{
    char name[96];
    size_t size = block_size();
    us_metrics_shm_name(config_path, name, sizeof name);
    if (shared)
        return 0;
    /* 0600, and only ever a segment of our own: another local user must not be able to
     * plant a segment that we would trust (or that they could truncate under us: a
     * shrunk mapping is a SIGBUS). */
    int fd = shm_open(name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        us_set_msg(err, err_len, "shm_open %s: %s", name, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        us_set_msg(err, err_len, "fstat %s: %s", name, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        us_set_msg(err, err_len, "%s belongs to uid %lu or is open to others: not used", name,
                 (unsigned long)st.st_uid);
        goto fail;
    }
    /* Several processes may start at once: each grows the file to the same size, and a
     * fresh file reads as zeros, the initial value of every counter. */
    if ((size_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0) {
        us_set_msg(err, err_len, "ftruncate %s: %s", name, strerror(errno));
        goto fail;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        us_set_msg(err, err_len, "mmap %s: %s", name, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    block *b = p;
    uint64_t expected = 0;
    if (!__atomic_compare_exchange_n(&b->magic, &expected, MAGIC, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE) &&
        expected != MAGIC) {
        munmap(p, size);
        us_set_msg(err, err_len, "%s: not a ustatus metrics segment", name);
        goto fail;
    }
    /* Counts made before attaching (start-up) are carried over. */
    for (size_t i = 0; i < sizeof(block) / sizeof(uint64_t); i++) {
        uint64_t v = ((const uint64_t *)m)[i];
        if (i > 0 && v)
            add(&((uint64_t *)b)[i], v);
    }
    m = b;
    shared = 1;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    attach_anonymous();
    return -1;
}

/* ---- exposition ---- */

static void put_labels_method(us_buf *out, size_t mi)
{
    us_buf_printf(out, "method=\"%s\"", method_names[mi]);
}

static int method_shown(size_t mi)
{
    return method_names[mi] && (mi < N_ALWAYS_SHOWN || load(&m->commands[mi]) > 0);
}

void us_metrics_render(us_buf *out)
{
    us_buf_puts(out, "# HELP ustatus_api_commands_total API commands answered, by method "
                     "(a batch counts each of its commands).\n"
                     "# TYPE ustatus_api_commands_total counter\n");
    for (size_t mi = 0; mi < N_METHODS; mi++) {
        if (!method_shown(mi))
            continue;
        us_buf_puts(out, "ustatus_api_commands_total{");
        put_labels_method(out, mi);
        us_buf_printf(out, "} %llu\n", (unsigned long long)load(&m->commands[mi]));
    }

    us_buf_puts(out, "# HELP ustatus_api_command_errors_total API commands answered with an "
                     "error, by method and error.\n"
                     "# TYPE ustatus_api_command_errors_total counter\n");
    for (size_t mi = 0; mi < N_METHODS; mi++) {
        if (!method_names[mi])
            continue;
        for (size_t ei = 0; ei < N_ERRORS; ei++) {
            uint64_t v = load(&m->errors[mi][ei]);
            if (!v)
                continue;
            us_buf_puts(out, "ustatus_api_command_errors_total{");
            put_labels_method(out, mi);
            us_buf_printf(out, ",error=\"%s\"} %llu\n", error_names[ei].name,
                          (unsigned long long)v);
        }
    }

    us_buf_puts(out, "# HELP ustatus_api_command_duration_seconds Time ustatus took to answer "
                     "each command, from the request read to its reply built.\n"
                     "# TYPE ustatus_api_command_duration_seconds histogram\n");
    for (size_t mi = 0; mi < N_METHODS; mi++) {
        if (!method_shown(mi))
            continue;
        /* _count is the sum of the buckets read here, so the series stay consistent
         * with each other even while other processes keep counting. */
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= N_BOUNDS; b++) {
            cumulative += load(&m->buckets[mi][b]);
            us_buf_puts(out, "ustatus_api_command_duration_seconds_bucket{");
            put_labels_method(out, mi);
            us_buf_printf(out, ",le=\"%s\"} %llu\n", b < N_BOUNDS ? bounds_text[b] : "+Inf",
                          (unsigned long long)cumulative);
        }
        uint64_t sum_ns = load(&m->sum_ns[mi]);
        us_buf_puts(out, "ustatus_api_command_duration_seconds_sum{");
        put_labels_method(out, mi);
        us_buf_printf(out, "} %llu.%09llu\n", (unsigned long long)(sum_ns / 1000000000u),
                      (unsigned long long)(sum_ns % 1000000000u));
        us_buf_puts(out, "ustatus_api_command_duration_seconds_count{");
        put_labels_method(out, mi);
        us_buf_printf(out, "} %llu\n", (unsigned long long)cumulative);
    }

    us_buf_puts(out, "# HELP ustatus_http_responses_total HTTP responses written, by status.\n"
                     "# TYPE ustatus_http_responses_total counter\n");
    for (size_t i = 0; i < N_STATUSES; i++) {
        uint64_t v = load(&m->responses[i]);
        if (!v)
            continue;
        if (statuses[i])
            us_buf_printf(out, "ustatus_http_responses_total{code=\"%d\"} %llu\n", statuses[i],
                          (unsigned long long)v);
        else
            us_buf_printf(out, "ustatus_http_responses_total{code=\"other\"} %llu\n",
                          (unsigned long long)v);
    }

    us_buf_printf(out,
                  "# HELP ustatus_redis_errors_total Failed Redis connection attempts and "
                  "commands (refused, timed out, lost, AUTH/SELECT failed).\n"
                  "# TYPE ustatus_redis_errors_total counter\n"
                  "ustatus_redis_errors_total %llu\n"
                  "# HELP ustatus_redis_reconnects_total Connections to a Redis node made "
                  "again after an earlier one was lost.\n"
                  "# TYPE ustatus_redis_reconnects_total counter\n"
                  "ustatus_redis_reconnects_total %llu\n"
                  "# HELP ustatus_worker_starts_total FastCGI worker processes started.\n"
                  "# TYPE ustatus_worker_starts_total counter\n"
                  "ustatus_worker_starts_total %llu\n"
                  "# HELP ustatus_metrics_shared 1 when these counters are shared by every "
                  "process of this configuration file, 0 when only by this process and the "
                  "workers it forked.\n"
                  "# TYPE ustatus_metrics_shared gauge\n"
                  "ustatus_metrics_shared %d\n",
                  (unsigned long long)load(&m->redis_errors),
                  (unsigned long long)load(&m->redis_reconnects),
                  (unsigned long long)load(&m->worker_starts), shared);
}
