#include "ustatus/secret.h"

int us_secret_equal(const char *given, size_t given_len, const char *key, size_t key_len)
{
    volatile unsigned char diff = (unsigned char)(given_len != key_len);
    for (size_t i = 0; i < given_len; i++)
        diff |= (unsigned char)given[i] ^ (key_len ? (unsigned char)key[i % key_len] : 0);
    return diff == 0;
}
