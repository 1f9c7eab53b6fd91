#include "ustatus/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void us_oom(void)
{
    static const char msg[] = "ustatus: out of memory\n";
    fwrite(msg, 1, sizeof msg - 1, stderr);
    abort();
}

void *us_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        us_oom();
    return p;
}

void *us_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        us_oom();
    return p;
}

void *us_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        us_oom();
    return q;
}

char *us_xstrndup(const char *s, size_t n)
{
    char *p = us_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *us_xstrdup(const char *s)
{
    return us_xstrndup(s, strlen(s));
}
