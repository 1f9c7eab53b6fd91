/* One line per event (SPEC §5). Never pass the API key, a password or a token to these
 * functions.
 *
 * Destinations, chosen by us_log_open (until then, and when neither is configured, stderr):
 *   - stderr (the web server's error log, or the journal): "ustatus[pid]: level: message";
 *     when stderr is the journal (JOURNAL_STREAM names stderr's device and inode) each line
 *     starts with its sd-daemon priority, "<3>" error, "<4>" warn, "<6>" info, "<7>" debug;
 *   - log.file: "2024-05-01T12:34:56.789+02:00 ustatus[pid]: level: message", appended
 *     (O_APPEND, one write(2) per line), the file reopened when asked (SIGHUP/SIGUSR1
 *     through us_log_reopen_async) and whenever its path no longer names the open file
 *     (renamed or removed by logrotate): checked before each line;
 *   - log.syslog: syslog(3), ident "ustatus", LOG_PID, facility daemon, severity LOG_ERR,
 *     LOG_WARNING, LOG_INFO or LOG_DEBUG; the line is "level: message".
 * A line is at most US_LOG_LINE_MAX bytes (longer messages are cut, ending in "..."), so a
 * line to a pipe is one atomic write even when several workers share it. Every control
 * character in a message (bytes below 0x20, DEL, the C1 controls U+0080..U+009F) and
 * every byte that is not part of valid UTF-8 is written as \xHH: one event is one line,
 * and nothing in a value can move a terminal's cursor or forge a line. */
#ifndef USTATUS_LOG_H
#define USTATUS_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { US_LOG_DEBUG = 0, US_LOG_INFO, US_LOG_WARN, US_LOG_ERROR } us_log_level;

#define US_LOG_LINE_MAX 4096

/* Sets the minimum level printed; "debug", "info", "warn"/"warning", "error".
 * Returns 0, or -1 for an unknown name (the level is then unchanged). */
int us_log_set_level_name(const char *name);
void us_log_set_level(us_log_level level);

/* Chooses the destinations: `file` (NULL or "": none) and syslog. With neither, lines go
 * to stderr. Also looks again whether stderr is the journal (JOURNAL_STREAM).
 * The file is opened O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW|O_CLOEXEC, mode 0640: a symlink
 * in its place is refused (a privileged process must not append through a link someone
 * planted in a log directory). Returns 0, or -1 with a reason in err when the file cannot
 * be opened: the destinations are then unchanged (the caller decides whether to go on).
 * The path is copied. */
int us_log_open(const char *file, bool use_syslog, char *err, size_t err_len);

/* Back to stderr only: closes the file and syslog. For tests and for exit. */
void us_log_close(void);

/* Async-signal-safe: the file is reopened before the next line is written (the signal
 * handler of SIGHUP/SIGUSR1 calls this; the reopen itself happens outside the handler). */
void us_log_reopen_async(void);

/* Installs a handler of sig (SIGUSR1, logrotate's usual signal) that calls
 * us_log_reopen_async, with SA_RESTART so that the request in hand is not interrupted. */
void us_log_reopen_on(int sig);

/* Reopens the file now (same path). Returns 0 (also when no file is configured), or -1
 * with a reason in err; the old file then stays in use. */
int us_log_reopen(char *err, size_t err_len);

/* Writes the escaped form of in[0..len) to out (at most out_len - 1 bytes, NUL
 * terminated; an escape sequence is never cut). Returns the number of input bytes
 * consumed (less than len when out was too small). */
size_t us_log_escape(const char *in, size_t len, char *out, size_t out_len);

/* Formats the RFC 3339 local time with milliseconds and the zone of the realtime clock
 * into out ("2024-05-01T12:34:56.789+02:00", 29 bytes + NUL; out_len >= 32). */
void us_log_timestamp(char *out, size_t out_len);

/* Writes "<prefix>level: message" to the destinations in one write each. */
void us_log(us_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define us_debug(...) us_log(US_LOG_DEBUG, __VA_ARGS__)
#define us_info(...) us_log(US_LOG_INFO, __VA_ARGS__)
#define us_warn(...) us_log(US_LOG_WARN, __VA_ARGS__)
#define us_error(...) us_log(US_LOG_ERROR, __VA_ARGS__)

#endif
