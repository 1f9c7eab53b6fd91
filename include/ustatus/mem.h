/* Checked allocation.
 *
 * Out-of-memory policy (whole code base): allocation failure aborts the process, after one
 * line on stderr. A FastCGI worker that cannot allocate cannot answer anyway; the
 * supervisor or the web server starts a fresh one. So no caller checks for NULL, and no
 * error path exists for memory alone. */
#ifndef USTATUS_MEM_H
#define USTATUS_MEM_H

#include <stddef.h>

/* Never return NULL; a size of 0 allocates one byte. The caller frees with free(). */
void *us_xmalloc(size_t n);
void *us_xcalloc(size_t n, size_t size);
void *us_xrealloc(void *p, size_t n);
/* A NUL-terminated copy of s / of the n bytes at s (which may hold NULs). */
char *us_xstrdup(const char *s);
char *us_xstrndup(const char *s, size_t n);

/* Writes the out-of-memory line and aborts: for a size computation that would overflow. */
void us_oom(void) __attribute__((noreturn));

#endif
