/* Unit tests for checked allocation (src/mem.c). The policy is "never NULL, abort on
 * failure", so what is checked is that every function returns usable memory of the size
 * asked for, also for the zero sizes where the C library may return NULL, that the
 * copies are exact and terminated, and that us_oom ends the process with its line. The
 * sanitizer build catches a copy one byte short or long. */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/mem.h"

/* ---- copies ---- */

START_TEST(test_xstrndup)
{
    char *p = us_xstrndup("abcdef", 3);
    ck_assert_str_eq(p, "abc");
    free(p);
    p = us_xstrdup("");
    ck_assert_str_eq(p, "");
    free(p);
}
END_TEST

/* n bytes are copied whatever they hold: a NUL inside does not end the copy. */
START_TEST(test_xstrndup_keeps_nuls)
{
    char *p = us_xstrndup("a\0b\0c", 5);
    ck_assert_mem_eq(p, "a\0b\0c\0", 6);
    free(p);
}
END_TEST

/* The source is a byte range: nothing past n is read, so a buffer without a terminator
 * is fine (the sanitizer build would report a read past the 3-byte block). */
START_TEST(test_xstrndup_reads_only_n)
{
    char *src = malloc(3);
    memcpy(src, "xyz", 3);
    char *p = us_xstrndup(src, 3);
    ck_assert_str_eq(p, "xyz");
    ck_assert_ptr_ne(p, src);
    free(p);
    p = us_xstrndup(src, 0);
    ck_assert_str_eq(p, "");
    free(p);
    free(src);
}
END_TEST

START_TEST(test_xstrdup_is_a_copy)
{
    char orig[] = "hello";
    char *p = us_xstrdup(orig);
    ck_assert_ptr_ne(p, orig);
    ck_assert_str_eq(p, "hello");
    orig[0] = 'j';
    ck_assert_str_eq(p, "hello");
    free(p);
}
END_TEST

/* ---- allocation ---- */

/* malloc(0) may return NULL; the contract says a size of 0 allocates one byte. */
START_TEST(test_zero_sizes_are_not_null)
{
    char *p = us_xmalloc(0);
    ck_assert_ptr_nonnull(p);
    p[0] = 'x'; /* the one byte is writable */
    free(p);
    p = us_xcalloc(0, 8);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p[0], 0);
    free(p);
    p = us_xcalloc(8, 0);
    ck_assert_ptr_nonnull(p);
    free(p);
    p = us_xrealloc(NULL, 0);
    ck_assert_ptr_nonnull(p);
    p = us_xrealloc(p, 0); /* realloc(p, 0) may free p and return NULL: not here */
    ck_assert_ptr_nonnull(p);
    free(p);
}
END_TEST

START_TEST(test_xmalloc_size)
{
    unsigned char *p = us_xmalloc(4096);
    memset(p, 0xab, 4096);
    ck_assert_int_eq(p[0], 0xab);
    ck_assert_int_eq(p[4095], 0xab);
    free(p);
}
END_TEST

START_TEST(test_xcalloc_zeroes)
{
    uint32_t *p = us_xcalloc(1000, sizeof *p);
    for (size_t i = 0; i < 1000; i++)
        ck_assert_uint_eq(p[i], 0);
    free(p);
}
END_TEST

START_TEST(test_xrealloc_keeps_content)
{
    char *p = us_xrealloc(NULL, 4); /* NULL: behaves as malloc */
    memcpy(p, "abcd", 4);
    p = us_xrealloc(p, 100000);
    ck_assert_mem_eq(p, "abcd", 4);
    p[99999] = 'z';
    p = us_xrealloc(p, 2);
    ck_assert_mem_eq(p, "ab", 2);
    free(p);
}
END_TEST

/* ---- out of memory ---- */

/* us_oom writes its one line to stderr and aborts (SIGABRT, no exit handlers that could
 * allocate): in a child of our own, so the line can be read and the signal seen. */
START_TEST(test_oom_aborts_with_its_line)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        us_oom();
    }
    close(fds[1]);
    char out[256];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof out - 1 && (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x, not SIGABRT", st);
    ck_assert_str_eq(out, "ustatus: out of memory\n");
}
END_TEST

static Suite *mem_suite(void)
{
    Suite *s = suite_create("mem");
    TCase *tc = tcase_create("copies");
    tcase_add_test(tc, test_xstrndup);
    tcase_add_test(tc, test_xstrndup_keeps_nuls);
    tcase_add_test(tc, test_xstrndup_reads_only_n);
    tcase_add_test(tc, test_xstrdup_is_a_copy);
    suite_add_tcase(s, tc);

    tc = tcase_create("allocation");
    tcase_add_test(tc, test_zero_sizes_are_not_null);
    tcase_add_test(tc, test_xmalloc_size);
    tcase_add_test(tc, test_xcalloc_zeroes);
    tcase_add_test(tc, test_xrealloc_keeps_content);
    tcase_add_test(tc, test_oom_aborts_with_its_line);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(mem_suite)
