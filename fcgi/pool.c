/* The prefork supervisor (see pool.h). */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"
#include "ustatus/clock.h"
#include "ustatus/log.h"
#include "ustatus/mem.h"
#include "ustatus/metrics.h"

/* A worker that dies sooner than this after starting counts towards the back-off. */
#define EARLY_DEATH_MS   5000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS   10000
/* Pace of a rolling replacement: one worker swapped per step. The listening socket's
 * backlog holds connections meanwhile, so the pace only spreads the Redis reconnects. */
#define ROLL_STEP_MS 100
#define MAX_WORKERS  1024

typedef struct worker_slot {
    pid_t pid;           /* 0: free slot */
    unsigned generation; /* configuration generation it runs */
    int64_t started_ms;
    bool stopping; /* we sent it SIGTERM (or SIGKILL) */
} worker_slot;

typedef struct pool {
    const us_pool_options *opt;
    us_config *cfg;            /* the configuration new workers get */
    char listen[PATH_MAX + 8]; /* effective listen address, as given */
    int listen_fd;
    char *unix_path; /* NULL for TCP */
    dev_t unix_dev;  /* the socket file we created, to remove only that one */
    ino_t unix_ino;
    bool pid_file_written;
    pid_t self;
    sigset_t entry_mask; /* the signal mask to give back to workers */

    worker_slot *slots;
    size_t n_slots;
    unsigned generation;
    long desired;
    long max_requests;

    int failures;          /* consecutive early deaths */
    int64_t respawn_at_ms; /* no start before this (back-off) */
    int64_t next_step_ms;  /* next rolling-replacement step */

    bool stopping;
    int64_t stop_deadline_ms;
    bool killed;
} pool;

/* ---- effective settings: the command line wins over the file ---- */

static long cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

static void apply_settings(pool *p)
{
    const us_pool_options *o = p->opt;
    long w = o->workers > 0 ? o->workers : p->cfg->fcgi.workers;
    p->desired = w > 0 ? w : cpu_count();
    if (p->desired > MAX_WORKERS)
        p->desired = MAX_WORKERS;
    p->max_requests = o->max_requests >= 0 ? o->max_requests : p->cfg->fcgi.max_requests;
    if (p->max_requests < 0)
        p->max_requests = 0;
}

static const char *configured_listen(const us_pool_options *o, const us_config *cfg)
{
    if (o->listen && *o->listen)
        return o->listen;
    return cfg->fcgi.listen ? cfg->fcgi.listen : "";
}

/* ---- users and groups ---- */

static int lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(name, &end, 10);
        if (!*name || *end || errno || !(pw = getpwuid((uid_t)v)))
            return -1;
    }
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return 0;
}

static int lookup_group(const char *name, gid_t *gid)
{
    struct group *gr = getgrnam(name);
    if (gr) {
        *gid = gr->gr_gid;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(name, &end, 10);
    if (!*name || *end || errno)
        return -1;
    *gid = (gid_t)v;
    return 0;
}

/* ---- the listening socket ---- */

static int bind_unix(pool *p, const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (!*path || strlen(path) >= sizeof sa.sun_path) {
        us_error("--listen unix:%s: the path is empty or longer than %zu bytes", path,
                 sizeof sa.sun_path - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));

    /* A socket file left by an instance that died is removed; one that something still
     * listens on is not ours to take, and neither is a file that is not a socket. */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            us_error("--listen unix:%s: the path exists and is not a socket", path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            us_error("--listen unix:%s: another process is listening on it", path);
            return -1;
        }
        if (probe >= 0)
            close(probe);
        if (unlink(path) < 0) {
            us_error("--listen unix:%s: cannot remove the stale socket: %s", path, strerror(errno));
            return -1;
        }
    }

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        us_error("socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        us_error("--listen unix:%s: bind: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    p->unix_path = us_xstrdup(path);
    if (stat(path, &st) == 0) {
        p->unix_dev = st.st_dev;
        p->unix_ino = st.st_ino;
    }
    /* Owner and mode are set before listen(): until then a connect() is refused, so no
     * one gets in through the permissions bind() left. */
    const us_pool_options *o = p->opt;
    if (o->socket_owner && *o->socket_owner) {
        char user[256];
        snprintf(user, sizeof user, "%s", o->socket_owner);
        char *colon = strchr(user, ':');
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1, primary;
        if (colon)
            *colon = '\0';
        if (*user && lookup_user(user, &uid, &primary) < 0) {
            us_error("--socket-owner: unknown user \"%s\"", user);
            goto fail;
        }
        if (colon && colon[1] && lookup_group(colon + 1, &gid) < 0) {
            us_error("--socket-owner: unknown group \"%s\"", colon + 1);
            goto fail;
        }
        if (chown(path, uid, gid) < 0) {
            us_error("--socket-owner %s: chown %s: %s", o->socket_owner, path, strerror(errno));
            goto fail;
        }
    }
    mode_t mode = o->socket_mode >= 0 ? (mode_t)o->socket_mode : 0660;
    if (chmod(path, mode) < 0) {
        us_error("--socket-mode: chmod %s: %s", path, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    unlink(path);
    free(p->unix_path);
    p->unix_path = NULL;
    return -1;
}

static int bind_tcp(const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1]) {
        us_error("--listen %s: expected HOST:PORT or unix:/path", addr);
        return -1;
    }
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= sizeof host) {
        us_error("--listen %s: host name too long", addr);
        return -1;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    char *h = host;
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h[hlen - 1] = '\0';
        h++;
    }
    if (strcmp(h, "*") == 0)
        *h = '\0';
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(*h ? h : NULL, colon + 1, &hints, &res);
    if (gai != 0) {
        us_error("--listen %s: %s", addr, gai_strerror(gai));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        /* A restart must not wait for the old connections' TIME_WAIT to end. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        us_error("--listen %s: bind: %s", addr, strerror(saved));
    return fd;
}

static int open_socket(pool *p)
{
    const us_pool_options *o = p->opt;
    bool is_unix = strncmp(p->listen, "unix:", 5) == 0;
    if (!is_unix && ((o->socket_owner && *o->socket_owner) || o->socket_mode >= 0)) {
        us_error("--socket-owner and --socket-mode apply to a unix: socket only");
        return -1;
    }
    int fd = is_unix ? bind_unix(p, p->listen + 5) : bind_tcp(p->listen);
    if (fd < 0)
        return -1;
    long backlog = o->backlog > 0 ? o->backlog : p->cfg->fcgi.backlog;
    if (backlog <= 0 || backlog > INT_MAX)
        backlog = 1024;
    if (listen(fd, (int)backlog) < 0) {
        us_error("--listen %s: listen: %s", p->listen, strerror(errno));
        close(fd);
        return -1;
    }
    p->listen_fd = fd;
    return 0;
}

static void remove_socket_file(pool *p)
{
    if (!p->unix_path)
        return;
    struct stat st;
    /* Only the file we bound: a newer instance may already have put its own there. */
    if (stat(p->unix_path, &st) == 0 && st.st_dev == p->unix_dev && st.st_ino == p->unix_ino)
        unlink(p->unix_path);
    free(p->unix_path);
    p->unix_path = NULL;
}

/* ---- pid file and privileges ---- */

static int write_pid_file(pool *p)
{
    const char *path = p->opt->pid_file;
    if (!path || !*path)
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        us_error("--pid-file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[32];
    int n = snprintf(line, sizeof line, "%ld\n", (long)p->self);
    bool ok = write(fd, line, (size_t)n) == n;
    if (close(fd) < 0 || !ok) {
        us_error("--pid-file %s: write failed", path);
        unlink(path);
        return -1;
    }
    p->pid_file_written = true;
    return 0;
}

/* Least privilege: root is needed at most to bind and chown the socket. */
static int drop_privileges(const us_pool_options *o)
{
    bool want_user = o->user && *o->user, want_group = o->group && *o->group;
    if (!want_user && !want_group) {
        if (geteuid() == 0)
            us_warn("running as root: pass --user (and --group) to drop privileges after "
                    "binding the socket");
        return 0;
    }
    uid_t uid = getuid();
    gid_t gid = getgid();
    const char *name = NULL;
    if (want_user) {
        if (lookup_user(o->user, &uid, &gid) < 0) {
            us_error("--user: unknown user \"%s\"", o->user);
            return -1;
        }
        struct passwd *pw = getpwuid(uid);
        name = pw ? pw->pw_name : NULL;
    }
    if (want_group && lookup_group(o->group, &gid) < 0) {
        us_error("--group: unknown group \"%s\"", o->group);
        return -1;
    }
    if (geteuid() != 0) {
        if (uid == geteuid() && gid == getegid())
            return 0;
        us_error("--user/--group: only root can change users (running as uid %lu)",
                 (unsigned long)geteuid());
        return -1;
    }
    /* Supplementary groups first (root's would otherwise stay), then the group, then the
     * user: after setuid() nothing else can be changed. */
    int rc = name ? initgroups(name, gid) : setgroups(1, &gid);
    if (rc < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        us_error("dropping privileges to uid %lu gid %lu: %s", (unsigned long)uid,
                 (unsigned long)gid, strerror(errno));
        return -1;
    }
    if (uid != 0 && setuid(0) == 0) {
        us_error("dropping privileges: root could be regained");
        return -1;
    }
    us_info("running as uid %lu gid %lu", (unsigned long)uid, (unsigned long)gid);
    return 0;
}

/* ---- workers ---- */

static size_t count_workers(const pool *p, bool current_generation)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_slots; i++) {
        const worker_slot *w = &p->slots[i];
        if (w->pid && !w->stopping && (w->generation == p->generation) == current_generation)
            n++;
    }
    return n;
}

static size_t count_alive(const pool *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_slots; i++)
        n += p->slots[i].pid != 0;
    return n;
}

static worker_slot *free_slot(pool *p)
{
    for (size_t i = 0; i < p->n_slots; i++)
        if (!p->slots[i].pid)
            return &p->slots[i];
    size_t old = p->n_slots;
    p->n_slots = old ? old * 2 : 8;
    p->slots = us_xrealloc(p->slots, p->n_slots * sizeof *p->slots);
    memset(p->slots + old, 0, (p->n_slots - old) * sizeof *p->slots);
    return &p->slots[old];
}

static worker_slot *find_slot(pool *p, pid_t pid)
{
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].pid == pid)
            return &p->slots[i];
    return NULL;
}

static void worker_main(pool *p) __attribute__((noreturn));

/* In the child, right after fork(). */
static void worker_main(pool *p)
{
    /* Die with the supervisor even when it is SIGKILLed; and if it is already gone
     * (between fork and here), the signal would never come: leave now. The setting must
     * follow any change of credentials, which clears it — the supervisor dropped
     * privileges before forking. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != p->self)
        _exit(1);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    /* TERM/INT stay blocked until the worker loop waits for connections; the others are
     * given back. */
    sigset_t mask = p->entry_mask;
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigdelset(&mask, SIGCHLD);
    sigdelset(&mask, SIGHUP);
    sigdelset(&mask, SIGQUIT);
    sigprocmask(SIG_SETMASK, &mask, NULL);
    int rc = us_worker_run(p->cfg, p->listen_fd, p->max_requests);
    exit(rc);
}

static void spawn(pool *p, int64_t now)
{
    worker_slot *w = free_slot(p);
    /* All the signals the supervisor takes are blocked (since start-up), so none can be
     * delivered to the child before it has set up its own. */
    pid_t pid = fork();
    if (pid < 0) {
        us_error("fork: %s; retrying in 1 s", strerror(errno));
        p->respawn_at_ms = now + 1000;
        return;
    }
    if (pid == 0)
        worker_main(p);
    w->pid = pid;
    w->generation = p->generation;
    w->started_ms = now;
    w->stopping = false;
    us_info("worker %ld started", (long)pid);
}

static void stop_worker(worker_slot *w, int sig)
{
    w->stopping = true;
    if (kill(w->pid, sig) < 0 && errno != ESRCH)
        us_warn("kill(%ld, %d): %s", (long)w->pid, sig, strerror(errno));
}

static void reap(pool *p, int64_t now)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0)
            return;
        worker_slot *w = find_slot(p, pid);
        if (!w)
            continue;
        bool expected = w->stopping || p->stopping;
        bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        int64_t lived = now - w->started_ms;
        if (WIFSIGNALED(st))
            us_log(expected ? US_LOG_INFO : US_LOG_WARN, "worker %ld killed by signal %d (%s)",
                   (long)pid, WTERMSIG(st), strsignal(WTERMSIG(st)));
        else if (!clean || !expected)
            us_log(clean ? US_LOG_INFO : US_LOG_WARN, "worker %ld exited with status %d%s",
                   (long)pid, WEXITSTATUS(st), clean ? " (recycled)" : "");
        else
            us_info("worker %ld finished", (long)pid);
        memset(w, 0, sizeof *w);
        if (expected || clean)
            continue;
        /* An unexpected death: start a replacement at once, unless workers keep dying
         * young — then wait longer each time so a broken setup does not fork-loop. */
        if (lived >= EARLY_DEATH_MS) {
            p->failures = 0;
            continue;
        }
        p->failures++;
        if (p->failures > 1) {
            int64_t delay = BACKOFF_FIRST_MS;
            for (int i = 2; i < p->failures && delay < BACKOFF_MAX_MS; i++)
                delay *= 2;
            if (delay > BACKOFF_MAX_MS)
                delay = BACKOFF_MAX_MS;
            if (p->respawn_at_ms < now + delay)
                p->respawn_at_ms = now + delay;
            us_warn("workers keep dying (%d in a row within %d s of starting): next start in "
                    "%lld ms",
                    p->failures, EARLY_DEATH_MS / 1000, (long long)delay);
        }
    }
}

/* Brings the set of workers towards `desired` workers of the current generation. */
static void maintain(pool *p, int64_t now)
{
    if (p->stopping)
        return;
    size_t current = count_workers(p, true), old = count_workers(p, false);
    size_t desired = (size_t)p->desired;
    if (old > 0) {
        /* Rolling replacement: each step starts one new worker and asks one old one to
         * finish once a new one has been up for a whole step, so the number accepting
         * never drops below `desired` — and if the new workers die young, the old ones
         * stay. */
        if (now < p->next_step_ms)
            return;
        if (current < desired && now >= p->respawn_at_ms)
            spawn(p, now);
        size_t settled = 0;
        for (size_t i = 0; i < p->n_slots; i++) {
            const worker_slot *w = &p->slots[i];
            settled += w->pid && !w->stopping && w->generation == p->generation &&
                       now - w->started_ms >= ROLL_STEP_MS;
        }
        if (settled + old > desired) {
            for (size_t i = 0; i < p->n_slots; i++) {
                worker_slot *w = &p->slots[i];
                if (w->pid && !w->stopping && w->generation != p->generation) {
                    stop_worker(w, SIGTERM);
                    break;
                }
            }
        }
        p->next_step_ms = now + ROLL_STEP_MS;
        return;
    }
    while (current < desired && now >= p->respawn_at_ms) {
        spawn(p, now);
        size_t after = count_workers(p, true);
        if (after == current)
            break; /* fork failed */
        current = after;
    }
    for (size_t i = p->n_slots; current > desired && i-- > 0;) {
        worker_slot *w = &p->slots[i];
        if (w->pid && !w->stopping) {
            stop_worker(w, SIGTERM);
            current--;
        }
    }
}

/* ---- signals ---- */

static void begin_stop(pool *p, int sig, int64_t now)
{
    if (p->stopping)
        return;
    p->stopping = true;
    p->stop_deadline_ms = now + p->opt->shutdown_timeout_ms;
    size_t n = count_alive(p);
    us_info("%s: stopping %zu workers (they finish the requests in hand, %lld ms at most)",
            strsignal(sig), n, (long long)p->opt->shutdown_timeout_ms);
    /* New connections fail at once instead of waiting in a backlog nobody will serve. */
    remove_socket_file(p);
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].pid)
            stop_worker(&p->slots[i], SIGTERM);
}

static void reload(pool *p, int64_t now)
{
    char err[512];
    const char *path = p->opt->config_path;
    us_info("SIGHUP: reloading %s", path);
    us_config *cfg = us_config_load(path, err, sizeof err);
    if (!cfg) {
        us_error("reload: %s; the workers keep the previous configuration", err);
        return;
    }
    /* Build what a worker would build: a configuration the loader accepts can still be
     * refused by the store or the API (a regex, an address). */
    if (us_worker_check_config(cfg, err, sizeof err) < 0) {
        us_error("reload: configuration %s: %s; the workers keep the previous configuration", path,
                 err);
        us_config_free(cfg);
        return;
    }
    const char *was = configured_listen(p->opt, p->cfg), *will = configured_listen(p->opt, cfg);
    if (strcmp(was, will) != 0)
        us_warn("reload: fcgi.listen changed to \"%s\": the socket stays on \"%s\" until "
                "ustatus-fcgi is restarted",
                will, p->listen);
    if (cfg->log.level)
        us_log_set_level_name(cfg->log.level);
    /* Workers started earlier keep their own copy (fork), so the old one can go now. */
    us_config_free(p->cfg);
    p->cfg = cfg;
    apply_settings(p);
    p->generation++;
    p->failures = 0;
    p->respawn_at_ms = 0;
    p->next_step_ms = now;
    us_info("reload: configuration valid; replacing the workers one by one (%ld workers)",
            p->desired);
}

static void on_signal(int sig)
{
    /* Never runs: the signals are blocked and taken by sigtimedwait. A handler (rather
     * than SIG_DFL) makes sure a blocked SIGCHLD is kept pending everywhere. */
    (void)sig;
}

/* ---- the supervisor ---- */

int us_pool_run(const us_pool_options *opt, us_config *cfg)
{
    pool pl;
    pool *p = &pl;
    memset(p, 0, sizeof *p);
    p->opt = opt;
    p->cfg = cfg;
    p->listen_fd = -1;
    p->self = getpid();
    int rc = 1;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigprocmask(SIG_BLOCK, &set, &p->entry_mask);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    snprintf(p->listen, sizeof p->listen, "%s", configured_listen(opt, cfg));
    apply_settings(p);

    char err[512];
    /* Validate before binding anything: the workers build exactly this. */
    if (us_worker_check_config(cfg, err, sizeof err) < 0) {
        us_error("configuration: %s", err);
        rc = US_EXIT_CONFIG;
        goto done;
    }
    if (open_socket(p) < 0 || write_pid_file(p) < 0 || drop_privileges(opt) < 0)
        goto done;
    /* After dropping privileges: the segment then belongs to the user the workers run
     * as, and they inherit the mapping. */
    if (us_metrics_attach(opt->config_path, err, sizeof err) < 0)
        us_warn("metrics: %s; counting for this pool only", err);
    us_info("listening on %s, %ld workers, max_requests %ld", p->listen, p->desired,
            p->max_requests);

    for (;;) {
        int64_t now = us_clock_mono_ms();
        reap(p, now);
        if (p->stopping) {
            if (count_alive(p) == 0)
                break;
            if (!p->killed && now >= p->stop_deadline_ms) {
                us_warn("shutdown timeout: killing %zu workers still busy", count_alive(p));
                for (size_t i = 0; i < p->n_slots; i++)
                    if (p->slots[i].pid)
                        stop_worker(&p->slots[i], SIGKILL);
                p->killed = true;
            }
        }
        maintain(p, now);

        /* Sleep until a signal or the next thing to do; at most 1 s as a safety net. */
        int64_t wake = now + 1000;
        if (p->stopping && !p->killed && p->stop_deadline_ms < wake)
            wake = p->stop_deadline_ms;
        if (!p->stopping && count_workers(p, false) > 0 && p->next_step_ms < wake)
            wake = p->next_step_ms;
        if (!p->stopping && count_workers(p, true) < (size_t)p->desired && p->respawn_at_ms < wake)
            wake = p->respawn_at_ms;
        int64_t wait = wake - now;
        if (wait < 1)
            wait = 1;
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000};
        int sig = sigtimedwait(&set, NULL, &ts);
        now = us_clock_mono_ms();
        switch (sig) {
        case SIGTERM:
        case SIGINT:
        case SIGQUIT: begin_stop(p, sig, now); break;
        case SIGHUP:
            if (!p->stopping)
                reload(p, now);
            break;
        default: break; /* SIGCHLD, timeout, EINTR: the loop reaps and maintains */
        }
    }
    us_info("all workers have exited");
    rc = 0;
done:
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].pid) {
            kill(p->slots[i].pid, SIGKILL);
            waitpid(p->slots[i].pid, NULL, 0);
        }
    remove_socket_file(p);
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    if (p->pid_file_written && unlink(opt->pid_file) < 0)
        us_debug("--pid-file %s: cannot remove it: %s", opt->pid_file, strerror(errno));
    if (rc == 0)
        us_metrics_unlink(opt->config_path);
    free(p->slots);
    us_config_free(p->cfg);
    sigprocmask(SIG_SETMASK, &p->entry_mask, NULL);
    return rc;
}
