/* One line per event on stderr (the web server's error log). Never pass the API key,
 * a password or a token to these functions. */
#ifndef USTATUS_LOG_H
#define USTATUS_LOG_H

typedef enum { US_LOG_DEBUG = 0, US_LOG_INFO, US_LOG_WARN, US_LOG_ERROR } us_log_level;

/* Sets the minimum level printed; "debug", "info", "warn"/"warning", "error".
 * Returns 0, or -1 for an unknown name (the level is then unchanged). */
int us_log_set_level_name(const char *name);
void us_log_set_level(us_log_level level);

/* Prints "ustatus[pid]: level: message\n" in a single write(2). */
void us_log(us_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define us_debug(...) us_log(US_LOG_DEBUG, __VA_ARGS__)
#define us_info(...) us_log(US_LOG_INFO, __VA_ARGS__)
#define us_warn(...) us_log(US_LOG_WARN, __VA_ARGS__)
#define us_error(...) us_log(US_LOG_ERROR, __VA_ARGS__)

#endif
