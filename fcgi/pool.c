/* The prefork supervisor (see pool.h). */
#include "pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
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
    bool inherited;  /* the socket came from systemd (LISTEN_FDS): never unlinked */
    bool pid_file_written;
    pid_t self;
    char *notify_socket; /* NOTIFY_SOCKET, NULL when not under systemd's notify */
    bool ready_sent;     /* READY=1 sent after start-up */
    bool reloading;      /* RELOADING=1 sent; READY=1 once the old workers are gone */
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

static void remove_socket_file(pool *p);

/* The directory of path, opened, and the last component. */
static int open_parent(const char *path, char *base, size_t base_len)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
        snprintf(base, base_len, "%s", path);
    } else {
        size_t dlen = slash == path ? 1 : (size_t)(slash - path);
        if (dlen >= sizeof dir)
            return -1;
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
        snprintf(base, base_len, "%s", slash + 1);
    }
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Binding a unix socket as root in a directory someone else can write is a race: between
 * bind() and chown() the socket can be swapped for a symlink to any file, which a
 * path-based chown/chmod would then hand over. So: the socket is born with its mode (the
 * umask around bind() decides it; no chmod afterwards), its owner is changed through the
 * directory's descriptor without following a symlink (fchownat AT_SYMLINK_NOFOLLOW), and
 * the entry is checked to be a socket, the same one, before and after. A swap is refused
 * (the pool does not start) and nothing outside the socket is ever touched. */
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
    char base[PATH_MAX];
    int dfd = open_parent(path, base, sizeof base);
    if (dfd < 0) {
        us_error("--listen unix:%s: bind: %s", path, strerror(errno));
        return -1;
    }
    int fd = -1;
    struct stat st;
    if (fstat(dfd, &st) == 0 && ((st.st_uid != 0 && st.st_uid != geteuid()) ||
                                 ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))))
        us_warn("--listen unix:%s: its directory can be changed by other users (owner uid "
                "%lu, mode %04o): they can replace the socket; use a directory of your own "
                "such as /run/ustatus",
                path, (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));

    /* A socket file left by an instance that died is removed; one that something still
     * listens on is not ours to take, and neither is a file that is not a socket. */
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            us_error("--listen unix:%s: the path exists and is not a socket", path);
            goto fail_early;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            us_error("--listen unix:%s: another process is listening on it", path);
            goto fail_early;
        }
        if (probe >= 0)
            close(probe);
        if (unlinkat(dfd, base, 0) < 0) {
            us_error("--listen unix:%s: cannot remove the stale socket: %s", path, strerror(errno));
            goto fail_early;
        }
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        us_error("socket: %s", strerror(errno));
        goto fail_early;
    }
    const us_pool_options *o = p->opt;
    mode_t mode = (o->socket_mode >= 0 ? (mode_t)o->socket_mode : 0660) & 0777;
    mode_t old_umask = umask(~mode & 0777);
    int b = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int bind_errno = errno;
    umask(old_umask);
    if (b < 0) {
        us_error("--listen unix:%s: bind: %s", path, strerror(bind_errno));
        goto fail_early;
    }
    if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode)) {
        us_error("--listen unix:%s: the socket was replaced right after bind (by %s): "
                 "refusing to go on; its directory must not be writable by other users",
                 path, S_ISLNK(st.st_mode) ? "a symbolic link" : "something else");
        goto fail_early; /* what is there now is not ours to remove */
    }
    p->unix_path = us_xstrdup(path);
    p->unix_dev = st.st_dev;
    p->unix_ino = st.st_ino;
    /* Owner set before listen(): until then a connect() is refused, so no one gets in
     * through the permissions bind() left. */
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
        if (fchownat(dfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
            us_error("--socket-owner %s: chown %s: %s", o->socket_owner, path, strerror(errno));
            goto fail;
        }
        if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode) ||
            st.st_dev != p->unix_dev || st.st_ino != p->unix_ino) {
            us_error("--listen unix:%s: the socket was replaced while its owner was set: "
                     "refusing to go on; its directory must not be writable by other users",
                     path);
            free(p->unix_path);
            p->unix_path = NULL;
            goto fail_early;
        }
    }
    close(dfd);
    return fd;
fail:
    remove_socket_file(p);
fail_early:
    if (fd >= 0)
        close(fd);
    close(dfd);
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
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            bool any = (ai->ai_family == AF_INET &&
                        ((const struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr ==
                            htonl(INADDR_ANY)) ||
                       (ai->ai_family == AF_INET6 &&
                        IN6_IS_ADDR_UNSPECIFIED(
                            &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr));
            if (any)
                us_warn("--listen %s binds every address of this host (%s): anyone who "
                        "can reach port %s can send FastCGI requests, which carry no "
                        "authentication; listen on 127.0.0.1:%s or a unix: socket unless "
                        "that is intended (FCGI_WEB_SERVER_ADDRS limits the peers)",
                        addr, ai->ai_family == AF_INET ? "0.0.0.0" : "::", colon + 1,
                        colon + 1);
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        us_error("--listen %s: bind: %s", addr, strerror(saved));
    return fd;
}

/* "unix:/path" or "HOST:PORT" of a bound socket, for the log. */
static void describe_socket(int fd, char *out, size_t out_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    char host[INET6_ADDRSTRLEN] = "?";
    snprintf(out, out_len, "fd %d", fd);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *su = (const struct sockaddr_un *)&ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n && su->sun_path[0] == '\0')
            snprintf(out, out_len, "unix:@%.*s", (int)(n - 1), su->sun_path + 1);
        else
            snprintf(out, out_len, "unix:%.*s", (int)strnlen(su->sun_path, n), su->sun_path);
    } else if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *si = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &si->sin_addr, host, sizeof host);
        snprintf(out, out_len, "%s:%u", host, ntohs(si->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *si = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &si->sin6_addr, host, sizeof host);
        snprintf(out, out_len, "[%s]:%u", host, ntohs(si->sin6_port));
    }
}

/* The socket systemd passed (socket activation): a listening stream socket, fd 3. */
static int use_inherited(pool *p)
{
    const us_pool_options *o = p->opt;
    int fd = o->inherited_fd, type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
        (len = sizeof listening, getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len)) < 0 ||
        !listening) {
        us_error("socket activation: fd %d is not a listening stream socket (ListenStream= "
                 "in the .socket unit, Accept=no)",
                 fd);
        return -1;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    char where[256]; /* a unix socket path is at most 107 bytes */
    describe_socket(fd, where, sizeof where);
    if (configured_listen(o, p->cfg)[0])
        us_info("socket activation: serving the socket systemd passed (%s); --listen/fcgi.listen "
                "\"%s\" is not used",
                where, configured_listen(o, p->cfg));
    if ((o->socket_owner && *o->socket_owner) || o->socket_mode >= 0)
        us_warn("socket activation: --socket-owner and --socket-mode are not applied (set "
                "SocketUser=, SocketGroup= and SocketMode= in the .socket unit)");
    snprintf(p->listen, sizeof p->listen, "systemd:%s", where);
    p->inherited = true;
    p->listen_fd = fd;
    return 0;
}

static int open_socket(pool *p)
{
    const us_pool_options *o = p->opt;
    if (o->inherited_fd >= 0)
        return use_inherited(p);
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
    if (lstat(p->unix_path, &st) == 0 && st.st_dev == p->unix_dev && st.st_ino == p->unix_ino)
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

/* Workers of an earlier generation still alive (asked to stop or not). */
static size_t count_old_alive(const pool *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_slots; i++)
        n += p->slots[i].pid && p->slots[i].generation != p->generation;
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
    /* A worker follows a renamed log.file by itself (log.h); SIGUSR1 sent to it anyway
     * (pkill -USR1) reopens the file and harms nothing else. */
    us_log_reopen_on(SIGUSR1);
    unsetenv("NOTIFY_SOCKET"); /* only the supervisor talks to systemd */
    /* TERM/INT/USR2 stay blocked until the worker loop waits for connections; the others
     * are given back. */
    sigset_t mask = p->entry_mask;
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR2);
    sigdelset(&mask, SIGCHLD);
    sigdelset(&mask, SIGHUP);
    sigdelset(&mask, SIGQUIT);
    sigdelset(&mask, SIGUSR1);
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
                    /* drain: the web server's kept connections are left as it stops
                     * using them (worker.c), so no request is lost on a reload */
                    stop_worker(w, SIGUSR2);
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
            stop_worker(w, SIGUSR2);
            current--;
        }
    }
}

/* ---- systemd's notify protocol (sd_notify(3), without libsystemd) ---- */

/* One datagram of "KEY=value" lines to $NOTIFY_SOCKET: a path, or an abstract name when
 * it starts with '@'. A failure is logged at debug level and changes nothing else: the
 * service works the same with or without systemd watching. */
static void notify(pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notify(pool *p, const char *fmt, ...)
{
    if (!p->notify_socket)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof msg)
        return;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(p->notify_socket);
    if (len < 2 || len >= sizeof sa.sun_path ||
        (p->notify_socket[0] != '/' && p->notify_socket[0] != '@')) {
        us_debug("NOTIFY_SOCKET is not a unix socket address: not notifying");
        return;
    }
    memcpy(sa.sun_path, p->notify_socket, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
        us_debug("notifying systemd (%s): %s", p->notify_socket, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static uint64_t monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* READY=1 once the workers are started (they accept from the socket, whose backlog
 * holds what comes before), and again when a reload has replaced them all. */
static void notify_progress(pool *p)
{
    if (p->stopping)
        return;
    if (!p->ready_sent && count_workers(p, true) >= (size_t)p->desired) {
        p->ready_sent = true;
        notify(p, "READY=1\nSTATUS=serving on %s with %ld workers\nMAINPID=%ld", p->listen,
               p->desired, (long)p->self);
    }
    if (p->reloading && count_old_alive(p) == 0 && count_workers(p, true) >= (size_t)p->desired) {
        p->reloading = false;
        notify(p, "READY=1\nSTATUS=serving on %s with %ld workers (reloaded)", p->listen,
               p->desired);
    }
}

/* ---- signals ---- */

/* The unsafe settings (SPEC §4), logged at start-up and after a reload. */
static void log_warning(void *ctx, const char *line)
{
    (void)ctx;
    us_warn("configuration: %s", line);
}

static void begin_stop(pool *p, int sig, int64_t now)
{
    if (p->stopping)
        return;
    p->stopping = true;
    p->stop_deadline_ms = now + p->opt->shutdown_timeout_ms;
    size_t n = count_alive(p);
    us_info("%s: stopping %zu workers (they finish the requests in hand, %lld ms at most)",
            strsignal(sig), n, (long long)p->opt->shutdown_timeout_ms);
    notify(p, "STOPPING=1\nSTATUS=stopping (%s)", strsignal(sig));
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
    notify(p, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
           (unsigned long long)monotonic_usec(), path);
    us_config *cfg = us_config_load(path, err, sizeof err);
    if (!cfg) {
        us_error("reload: %s; the workers keep the previous configuration", err);
        notify(p, "READY=1\nSTATUS=reload failed, still serving the previous configuration");
        return;
    }
    /* Build what a worker would build: a configuration the loader accepts can still be
     * refused by the store or the API (a regex, an address). */
    if (us_worker_check_config(cfg, err, sizeof err) < 0) {
        us_error("reload: configuration %s: %s; the workers keep the previous configuration", path,
                 err);
        us_config_free(cfg);
        notify(p, "READY=1\nSTATUS=reload failed, still serving the previous configuration");
        return;
    }
    /* The log's new destinations, before the workers that will use them are forked; if the
     * new file cannot be opened the old destinations stay (and the workers use them). */
    if (us_log_open(cfg->log.file, cfg->log.syslog, err, sizeof err) < 0)
        us_error("reload: %s; logging goes on where it went", err);
    us_config_warnings(cfg, log_warning, NULL);
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
    p->reloading = true;
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
    bool metrics_shared = false;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGUSR1);
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
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* SIGUSR2 means "drain" to a worker (worker.c); sent to the supervisor (pkill -USR2
     * ustatus-fcgi), it must not end the pool. The workers install their own handler. */
    signal(SIGUSR2, SIG_IGN);
    const char *ns = getenv("NOTIFY_SOCKET");
    if (ns && *ns)
        p->notify_socket = us_xstrdup(ns);

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
    /* After dropping privileges: the log file is then created by (and reopened after a
     * rotation as) the user everything runs as. Until here lines went to stderr. */
    if (us_log_open(cfg->log.file, cfg->log.syslog, err, sizeof err) < 0) {
        us_error("%s", err);
        goto done;
    }
    us_config_warnings(cfg, log_warning, NULL);
    /* After dropping privileges: the segment then belongs to the user the workers run
     * as, and they inherit the mapping. */
    if (us_metrics_attach(opt->config_path, err, sizeof err) < 0)
        us_warn("metrics: %s; counting for this pool only", err);
    else
        metrics_shared = true;
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
        notify_progress(p);

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
            if (!p->stopping) {
                us_log_reopen_async(); /* logrotate may send either signal */
                reload(p, now);
            }
            break;
        case SIGUSR1: {
            char lerr[256];
            if (us_log_reopen(lerr, sizeof lerr) < 0)
                us_error("SIGUSR1: %s; still writing to the old file", lerr);
            else
                us_info("SIGUSR1: log reopened");
            break;
        }
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
    remove_socket_file(p); /* never the socket systemd passed: it is not ours */
    if (p->listen_fd >= 0)
        close(p->listen_fd);
    free(p->notify_socket);
    if (p->pid_file_written && unlink(opt->pid_file) < 0)
        us_debug("--pid-file %s: cannot remove it: %s", opt->pid_file, strerror(errno));
    if (rc == 0 && metrics_shared) /* a segment we refused is not ours to remove */
        us_metrics_unlink(opt->config_path);
    free(p->slots);
    us_config_free(p->cfg);
    sigprocmask(SIG_SETMASK, &p->entry_mask, NULL);
    return rc;
}

int us_pool_listen_fds(char *err, size_t err_len)
{
    const char *pid_text = getenv("LISTEN_PID"), *fds_text = getenv("LISTEN_FDS");
    int rc = -1;
    if (!pid_text || !fds_text)
        goto done;
    char *end;
    errno = 0;
    unsigned long pid = strtoul(pid_text, &end, 10);
    if (errno || *end || pid != (unsigned long)getpid())
        goto done; /* meant for another process (our parent, typically) */
    errno = 0;
    long n = strtol(fds_text, &end, 10);
    if (errno || *end || !*fds_text || n != 1) {
        snprintf(err, err_len,
                 "socket activation: LISTEN_FDS=%.20s; ustatus serves exactly one socket "
                 "(one ListenStream= in the .socket unit)",
                 fds_text);
        rc = -2;
        goto done;
    }
    rc = 3; /* SD_LISTEN_FDS_START */
done:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return rc;
}
