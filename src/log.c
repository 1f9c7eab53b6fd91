/* The log (see log.h). Everything happens in the process that logs: no thread, no
 * signal handler beyond the flag us_log_reopen_async sets. */
#define _GNU_SOURCE /* dup3 */
#include "ustatus/log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "ustatus/msg.h"

static us_log_level min_level = US_LOG_INFO;

static struct {
    char *path;     /* log.file, NULL = none */
    int fd;         /* -1 = none */
    dev_t dev;      /* what `path` named when it was opened */
    ino_t ino;
    bool use_syslog;
    int journal; /* stderr is the journal: -1 not looked yet, 0 no, 1 yes */
    bool reopen_failed; /* said once, until a reopen works again */
} dest = {NULL, -1, 0, 0, false, -1, false};

static volatile sig_atomic_t reopen_requested;

void us_log_set_level(us_log_level level)
{
    min_level = level;
}

int us_log_set_level_name(const char *name)
{
    static const struct { const char *name; us_log_level level; } names[] = {
        {"debug", US_LOG_DEBUG}, {"info", US_LOG_INFO}, {"warn", US_LOG_WARN},
        {"warning", US_LOG_WARN}, {"error", US_LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0) {
            min_level = names[i].level;
            return 0;
        }
    return -1;
}

/* ---- destinations ---- */

/* systemd sets JOURNAL_STREAM="<dev>:<ino>" of the stream it connected stdout/stderr to;
 * a process whose stderr was since redirected elsewhere must not add the prefixes. */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    if (!js || !*js || fstat(STDERR_FILENO, &st) < 0)
        return 0;
    char *end;
    errno = 0;
    unsigned long long dev = strtoull(js, &end, 10);
    if (errno || *end != ':')
        return 0;
    const char *ino_text = end + 1;
    unsigned long long ino = strtoull(ino_text, &end, 10);
    if (errno || *end || end == ino_text)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int open_file(const char *path, int *fd_out, dev_t *dev, ino_t *ino, char *err,
                     size_t err_len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) {
        us_set_msg(err, err_len, "log.file %s: %s", path,
                   errno == ELOOP ? "is a symbolic link (refused)" : strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        us_set_msg(err, err_len, "log.file %s: not a regular file", path);
        close(fd);
        return -1;
    }
    *fd_out = fd;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

int us_log_open(const char *file, bool use_syslog, char *err, size_t err_len)
{
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;
    if (file && *file && open_file(file, &fd, &dev, &ino, err, err_len) < 0)
        return -1;
    if (dest.fd >= 0)
        close(dest.fd);
    free(dest.path);
    dest.path = fd >= 0 ? strdup(file) : NULL;
    if (fd >= 0 && !dest.path) {
        close(fd);
        fd = -1;
    }
    dest.fd = fd;
    dest.dev = dev;
    dest.ino = ino;
    dest.reopen_failed = false;
    if (use_syslog && !dest.use_syslog)
        openlog("ustatus", LOG_PID, LOG_DAEMON);
    else if (!use_syslog && dest.use_syslog)
        closelog();
    dest.use_syslog = use_syslog;
    dest.journal = stderr_is_journal();
    reopen_requested = 0;
    return 0;
}

void us_log_close(void)
{
    us_log_open(NULL, false, NULL, 0);
}

void us_log_reopen_async(void)
{
    reopen_requested = 1;
}

static void on_reopen_signal(int sig)
{
    (void)sig;
    us_log_reopen_async();
}

void us_log_reopen_on(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_reopen_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

int us_log_reopen(char *err, size_t err_len)
{
    reopen_requested = 0;
    if (!dest.path)
        return 0;
    int fd;
    dev_t dev;
    ino_t ino;
    if (open_file(dest.path, &fd, &dev, &ino, err, err_len) < 0)
        return -1;
    /* dup3 keeps the descriptor number: a child forked earlier is unaffected, and nothing
     * that captured the number (none today) would write to a stale file. */
    if (dup3(fd, dest.fd, O_CLOEXEC) < 0) {
        us_set_msg(err, err_len, "log.file %s: dup3: %s", dest.path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    dest.dev = dev;
    dest.ino = ino;
    return 0;
}

/* Before each line to the file: reopen when asked to, or when the path now names another
 * file or none (logrotate renamed it): every process follows a rotation by itself, with no
 * signal — the processes a web server spawned have nobody to send them one. */
static void follow_file(void)
{
    struct stat st;
    bool moved = stat(dest.path, &st) < 0 || st.st_dev != dest.dev || st.st_ino != dest.ino;
    if (!reopen_requested && !moved)
        return;
    char err[256];
    if (us_log_reopen(err, sizeof err) == 0) {
        dest.reopen_failed = false;
        return;
    }
    if (dest.reopen_failed)
        return;
    dest.reopen_failed = true;
    /* Said once, to the file still open and to stderr, until a reopen works again. */
    char line[512];
    int n = snprintf(line, sizeof line, "ustatus[%d]: error: reopening the log: %s; still "
                                        "writing to the old file\n", (int)getpid(), err);
    if (n > 0 && (size_t)n < sizeof line) {
        ssize_t w = write(dest.fd, line, (size_t)n);
        w = write(STDERR_FILENO, line, (size_t)n);
        (void)w;
    }
}

/* ---- formatting ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s[0] does not start one. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned min;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    if (cp >= 0x80 && cp <= 0x9f)
        return 0; /* a C1 control: escaped like the C0 ones */
    return n;
}

size_t us_log_escape(const char *in, size_t len, char *out, size_t out_len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0, o = 0;
    if (out_len == 0)
        return 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n = 1;
        bool escape;
        if (c < 0x80) {
            escape = c < 0x20 || c == 0x7f;
        } else {
            n = utf8_sequence(s + i, len - i);
            escape = n == 0;
            if (escape)
                n = 1;
        }
        if (escape) {
            if (o + 4 >= out_len)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            if (o + n >= out_len)
                break;
            memcpy(out + o, s + i, n);
            o += n;
        }
        i += n;
    }
    out[o] = '\0';
    return i;
}

void us_log_timestamp(char *out, size_t out_len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t t = ts.tv_sec;
    localtime_r(&t, &tm);
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    snprintf(out, out_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld%c%02ld:%02ld",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000, sign, off / 60, off % 60);
}

static void write_all(int fd, const char *buf, size_t len)
{
    /* One write: a line to a pipe (≤ PIPE_BUF) or an O_APPEND file is never interleaved
     * with another process's. A short write is not retried (that would split the line). */
    ssize_t w = write(fd, buf, len);
    (void)w;
}

void us_log(us_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    static const char *const journal_prefix[] = {"<7>", "<6>", "<4>", "<3>"};
    static const int syslog_priority[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
    if (level < min_level)
        return;
    if ((unsigned)level > US_LOG_ERROR)
        level = US_LOG_ERROR;
    int saved_errno = errno;

    char raw[US_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    size_t raw_len = m < 0 ? 0 : (size_t)m;
    bool cut = raw_len >= sizeof raw;
    if (cut)
        raw_len = sizeof raw - 1;

    /* "<ts> " or "<N>", then "ustatus[pid]: level: ", the message, "...", "\n". */
    char line[US_LOG_LINE_MAX];
    char stamp[40];
    size_t head_at = 40; /* room before the head for the timestamp or the priority */
    int h = snprintf(line + head_at, sizeof line - head_at, "ustatus[%d]: %s: ", (int)getpid(),
                     tags[level]);
    size_t msg_at = head_at + (size_t)h;
    size_t room = sizeof line - msg_at - 4; /* "...\n" */
    size_t used = us_log_escape(raw, raw_len, line + msg_at, room);
    size_t len = msg_at + strlen(line + msg_at);
    if (cut || used < raw_len) {
        memcpy(line + len, "...", 3);
        len += 3;
    }
    line[len++] = '\n';

    if (dest.fd >= 0) {
        follow_file();
        us_log_timestamp(stamp, sizeof stamp);
        size_t sl = strlen(stamp);
        char *start = line + head_at - sl - 1;
        memcpy(start, stamp, sl);
        start[sl] = ' ';
        write_all(dest.fd, start, (size_t)(line + len - start));
    }
    if (dest.use_syslog) {
        /* syslog adds the ident and the pid itself. */
        line[len - 1] = '\0';
        const char *text = line + head_at + strcspn(line + head_at, " ") + 1;
        syslog(syslog_priority[level], "%s", text);
        line[len - 1] = '\n';
    }
    if (dest.fd < 0 && !dest.use_syslog) {
        if (dest.journal < 0)
            dest.journal = stderr_is_journal();
        char *start = line + head_at;
        if (dest.journal == 1) {
            start -= 3;
            memcpy(start, journal_prefix[level], 3);
        }
        write_all(STDERR_FILENO, start, (size_t)(line + len - start));
    }
    errno = saved_errno;
}
