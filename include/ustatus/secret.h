/* Comparison of secrets (API keys, the proxy key) a client sends with configured ones. */
#ifndef USTATUS_SECRET_H
#define USTATUS_SECRET_H

#include <stddef.h>

/* 1 when the secret a client sent equals the configured one, else 0. Constant-time in the
 * content of both: the time depends only on the length of what the client sent, never on
 * where the first difference is nor on the configured key's length. */
int us_secret_equal(const char *given, size_t given_len, const char *key, size_t key_len);

#endif
