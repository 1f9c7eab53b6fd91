#include "ustatus/msg.h"

#include <stdio.h>

void us_vset_msg(char *buf, size_t len, const char *fmt, va_list ap)
{
    if (buf && len)
        vsnprintf(buf, len, fmt, ap);
}

void us_set_msg(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    us_vset_msg(buf, len, fmt, ap);
    va_end(ap);
}

int us_fail(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    us_vset_msg(buf, len, fmt, ap);
    va_end(ap);
    return -1;
}
