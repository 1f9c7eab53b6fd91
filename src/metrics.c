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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h" /* PACKAGE_VERSION */

#include "ustatus/buf.h"
#include "ustatus/hash.h"
#include "ustatus/msg.h"

/* Bumped whenever the block layout or the label tables below change, so a process of an
 * older build never reads a newer layout: the version is part of the segment's name.
 * Fields appended at the end of the block keep the version: an older build maps and
 * reads the prefix it knows, and whichever process finds the file shorter than its own
 * block grows it (the new part reads as zeros). */
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

/* One FastCGI worker process: which pid holds the slot (0 = free), since when (its start
 * time in clock ticks after boot, from /proc, so that a recycled pid is not mistaken for
 * the worker), and whether it is serving a request. A worker that dies without giving
 * its slot back (kill -9) stops being counted as soon as its pid is gone, and its slot is
 * taken again by the next worker that finds it. */
#define N_WORKER_SLOTS 1024
typedef struct worker_state {
    uint32_t pid;
    uint32_t busy;
    uint64_t start_ticks;
} worker_state;

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
    /* appended (layout 1 still): the FastCGI workers' busy/idle slots */
    worker_state workers[N_WORKER_SLOTS];
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

/* ---- worker gauges ---- */

static worker_state *my_slot;

/* The start time of process pid in clock ticks since boot (field 22 of /proc/pid/stat),
 * 0 when the process is gone (or /proc is not there: then only the pid is compared). */
static uint64_t start_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: count from the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    for (int field = 2; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

static bool slot_live(const worker_state *w)
{
    uint32_t pid = __atomic_load_n(&w->pid, __ATOMIC_ACQUIRE);
    if (!pid)
        return false;
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return false;
    uint64_t want = __atomic_load_n(&w->start_ticks, __ATOMIC_RELAXED);
    uint64_t now = start_ticks((pid_t)pid);
    return !want || !now || want == now;
}

/* Claims a free slot, or one whose process is gone. NULL when all are held by live
 * processes (more than N_WORKER_SLOTS workers): this worker is then not counted.
 * A free slot has start_ticks 0, and a slot is reclaimed by zeroing start_ticks before
 * its pid changes, so a slot just claimed (new pid, ticks not yet written) reads as live
 * (a zero start time compares equal to anything) and nobody takes it away meanwhile. */
static worker_state *claim_slot(void)
{
    uint32_t self = (uint32_t)getpid();
    uint64_t ticks = start_ticks(getpid());
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < N_WORKER_SLOTS; i++) {
            worker_state *w = &m->workers[i];
            uint32_t cur = __atomic_load_n(&w->pid, __ATOMIC_ACQUIRE);
            if (pass == 0 ? cur != 0 : (cur == 0 || slot_live(w)))
                continue;
            if (pass == 1) {
                uint64_t old = __atomic_load_n(&w->start_ticks, __ATOMIC_ACQUIRE);
                if (!__atomic_compare_exchange_n(&w->start_ticks, &old, 0, false,
                                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                    continue;
            }
            if (__atomic_compare_exchange_n(&w->pid, &cur, self, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                __atomic_store_n(&w->busy, 0, __ATOMIC_RELAXED);
                __atomic_store_n(&w->start_ticks, ticks, __ATOMIC_RELEASE);
                return w;
            }
        }
    }
    return NULL;
}

static block *my_slot_block;

static void set_worker_state(uint32_t busy)
{
    /* A forked child inherits the parent's slot pointer, and attaching moves the block:
     * then the slot is claimed again. */
    if (my_slot && (my_slot_block != m ||
                    __atomic_load_n(&my_slot->pid, __ATOMIC_RELAXED) != (uint32_t)getpid()))
        my_slot = NULL;
    if (!my_slot) {
        my_slot = claim_slot();
        my_slot_block = m;
    }
    if (my_slot)
        __atomic_store_n(&my_slot->busy, busy, __ATOMIC_RELAXED);
}

void us_metrics_worker_idle(void)
{
    set_worker_state(0);
}

void us_metrics_worker_busy(void)
{
    set_worker_state(1);
}

void us_metrics_worker_exit(void)
{
    if (my_slot && my_slot_block == m &&
        __atomic_load_n(&my_slot->pid, __ATOMIC_RELAXED) == (uint32_t)getpid()) {
        __atomic_store_n(&my_slot->busy, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&my_slot->start_ticks, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&my_slot->pid, 0, __ATOMIC_RELEASE);
    }
    my_slot = NULL;
}

void us_metrics_workers(unsigned *busy, unsigned *idle)
{
    *busy = *idle = 0;
    for (size_t i = 0; i < N_WORKER_SLOTS; i++) {
        const worker_state *w = &m->workers[i];
        if (!slot_live(w))
            continue;
        if (__atomic_load_n(&w->busy, __ATOMIC_RELAXED))
            (*busy)++;
        else
            (*idle)++;
    }
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
    /* a slot claimed in the old block is claimed again in the new one */
    memset(((block *)p)->workers, 0, sizeof m->workers);
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
     * shrunk mapping is a SIGBUS). An existing segment is opened without O_CREAT (the
     * kernel's protected_regular refuses O_CREAT on another user's file in /dev/shm with
     * a bare EACCES); a new one is created O_EXCL, so what we create is ours. The name
     * has to be one every process of this configuration can compute, so another local
     * user can take it first: that is detected below and said, never trusted. */
    int fd = shm_open(name, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
    if (fd < 0 && errno == ENOENT) {
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) /* another process was faster */
            fd = shm_open(name, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
    }
    struct stat st;
    if (fd < 0) {
        int e = errno;
        char path[128];
        snprintf(path, sizeof path, "/dev/shm%s", name);
        if ((e == EACCES || e == EPERM || e == ELOOP) && lstat(path, &st) == 0 &&
            st.st_uid != geteuid()) {
            us_set_msg(err, err_len,
                       "%s belongs to uid %lu, not to uid %lu that runs ustatus (another "
                       "local user created it first?): not used; remove it to share the "
                       "counters again",
                       path, (unsigned long)st.st_uid, (unsigned long)geteuid());
        } else {
            us_set_msg(err, err_len, "shm_open %s: %s", path, strerror(e));
        }
        goto fail;
    }
    if (fstat(fd, &st) < 0) {
        us_set_msg(err, err_len, "fstat /dev/shm%s: %s", name, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        us_set_msg(err, err_len,
                   "/dev/shm%s belongs to uid %lu, not to uid %lu that runs ustatus (another "
                   "local user created it first?): not used; remove it to share the counters "
                   "again",
                   name, (unsigned long)st.st_uid, (unsigned long)geteuid());
        goto fail;
    }
    if (st.st_mode & 077) {
        us_set_msg(err, err_len,
                   "/dev/shm%s is open to other users (mode %04o): not used; remove it to "
                   "share the counters again",
                   name, (unsigned)(st.st_mode & 07777));
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
    for (size_t i = 0; i < offsetof(block, workers) / sizeof(uint64_t); i++) {
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

    unsigned busy, idle;
    us_metrics_workers(&busy, &idle);
    us_buf_printf(out,
                  "# HELP ustatus_workers FastCGI worker processes alive, by state: busy "
                  "serving a request (the one answering this scrape included) or idle "
                  "waiting for one.\n"
                  "# TYPE ustatus_workers gauge\n"
                  "ustatus_workers{state=\"busy\"} %u\n"
                  "ustatus_workers{state=\"idle\"} %u\n"
                  "# HELP ustatus_build_info The version of ustatus-fcgi answering.\n"
                  "# TYPE ustatus_build_info gauge\n"
                  "ustatus_build_info{version=\"%s\"} 1\n",
                  busy, idle, PACKAGE_VERSION);
}
