#include "ustatus/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static us_log_level min_level = US_LOG_INFO;

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

void us_log(us_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    char line[1024];
    if (level < min_level)
        return;
    int n = snprintf(line, sizeof line, "ustatus[%d]: %s: ", (int)getpid(), tags[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* One event, one line: a value with a newline in it must not forge a second line. */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
