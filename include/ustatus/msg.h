/* The one truncating setter for message buffers (the err/why out-parameters of the whole
 * code base, and names built for logs): a message cut short is better than a message
 * missing, and one setter means one truncation rule. buf may be NULL or len 0: then
 * nothing is written. */
#ifndef USTATUS_MSG_H
#define USTATUS_MSG_H

#include <stdarg.h>
#include <stddef.h>

void us_set_msg(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void us_vset_msg(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* us_set_msg, then returns -1: for "return us_fail(err, err_len, ...)". */
int us_fail(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
