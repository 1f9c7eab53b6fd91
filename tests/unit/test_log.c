/* Unit tests for the log (src/log.c). The web server's error log is shared by every
 * worker, so a line must leave in one write(2) (two writes from two workers interleave),
 * carry "ustatus[pid]: level: ", end in exactly one newline, and never be split in two
 * by a CR or LF inside a value (a forged second line). stderr goes to a datagram socket
 * for each test (fixtures.h): one datagram per write, so the number of writes is seen. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/log.h"

static us_test_stderr cap;
static char line[4096];

static void setup(void)
{
    us_log_set_level(US_LOG_DEBUG);
    us_test_stderr_begin(&cap);
}

static void teardown(void)
{
    us_test_stderr_end(&cap);
    us_log_set_level(US_LOG_INFO);
}

/* The next write to stderr; asserts there was one. */
static const char *next_write(void)
{
    ck_assert_msg(us_test_stderr_next(&cap, line, sizeof line) >= 0, "nothing was written");
    return line;
}

static void expect_nothing_more(void)
{
    long n = us_test_stderr_next(&cap, line, sizeof line);
    ck_assert_msg(n < 0, "unexpected write: \"%s\"", line);
}

/* Asserts the next write is exactly "ustatus[<pid>]: <level>: <msg>\n" and the only one. */
static void expect_line(const char *level, const char *msg)
{
    char want[2048];
    snprintf(want, sizeof want, "ustatus[%d]: %s: %s\n", (int)getpid(), level, msg);
    ck_assert_str_eq(next_write(), want);
    expect_nothing_more();
}

/* ---- format ---- */

START_TEST(test_one_write_per_line)
{
    us_info("listening on %s (%d workers)", "127.0.0.1:9000", 4);
    expect_line("info", "listening on 127.0.0.1:9000 (4 workers)");
    us_debug("d");
    expect_line("debug", "d");
    us_warn("w %d", 1);
    expect_line("warn", "w 1");
    us_error("e");
    expect_line("error", "e");
    us_log(US_LOG_ERROR, "%s", "");
    expect_line("error", "");
}
END_TEST

/* A CR or LF inside a message becomes a space: one event, one line. */
START_TEST(test_newlines_do_not_split_lines)
{
    us_error("user %s", "x\nustatus[1]: error: forged");
    expect_line("error", "user x ustatus[1]: error: forged");
    us_warn("a\r\nb\rc\n");
    expect_line("warn", "a  b c ");
    us_info("\n\n");
    expect_line("info", "  ");
}
END_TEST

/* A message longer than the line buffer is cut, still in one write ending in one "\n". */
START_TEST(test_long_message_is_cut_to_one_line)
{
    char big[3000];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[1500] = '\n';
    us_info("%s", big);
    char got[sizeof line];
    snprintf(got, sizeof got, "%s", next_write());
    size_t len = strlen(got);
    expect_nothing_more();
    char prefix[64];
    snprintf(prefix, sizeof prefix, "ustatus[%d]: info: yyy", (int)getpid());
    ck_assert_msg(strncmp(got, prefix, strlen(prefix)) == 0, "starts \"%.40s\"", got);
    ck_assert_uint_le(len, 1024);
    ck_assert_uint_gt(len, 900); /* cut, not dropped */
    ck_assert_int_eq(got[len - 1], '\n');
    ck_assert_ptr_eq(strchr(got, '\n'), got + len - 1);
}
END_TEST

/* ---- levels ---- */

START_TEST(test_below_the_level_is_not_written)
{
    us_log_set_level(US_LOG_WARN);
    us_debug("no");
    us_info("no");
    expect_nothing_more();
    us_warn("yes");
    expect_line("warn", "yes");
    us_error("yes");
    expect_line("error", "yes");
    us_log_set_level(US_LOG_ERROR);
    us_warn("no");
    expect_nothing_more();
    us_log_set_level(US_LOG_DEBUG);
    us_debug("yes");
    expect_line("debug", "yes");
}
END_TEST

/* Each accepted name sets the level it names: the message just below it is dropped, the
 * one at it is written. */
START_TEST(test_level_names_accepted)
{
    static const struct {
        const char *name;
        us_log_level level;
    } names[] = {
        {"debug", US_LOG_DEBUG},  {"info", US_LOG_INFO},   {"warn", US_LOG_WARN},
        {"warning", US_LOG_WARN}, {"error", US_LOG_ERROR},
    };
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        us_log_set_level(US_LOG_DEBUG);
        ck_assert_msg(us_log_set_level_name(names[i].name) == 0, "%s refused", names[i].name);
        if (names[i].level > US_LOG_DEBUG) {
            us_log(names[i].level - 1, "below");
            expect_nothing_more();
        }
        us_log(names[i].level, "at");
        expect_line(tags[names[i].level], "at");
    }
}
END_TEST

/* An unknown name is refused and leaves the level as it was. */
START_TEST(test_level_names_refused)
{
    static const char *const bad[] = {"",      "trace",  "fatal", "none", "warn ",
                                      " info", "errors", "deb",   "0",    "3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        us_log_set_level(US_LOG_WARN);
        ck_assert_msg(us_log_set_level_name(bad[i]) == -1, "\"%s\" accepted", bad[i]);
        us_info("still warn");
        expect_nothing_more();
        us_warn("w");
        expect_line("warn", "w");
    }
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_one_write_per_line);
    tcase_add_test(tc, test_newlines_do_not_split_lines);
    tcase_add_test(tc, test_long_message_is_cut_to_one_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("levels");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_below_the_level_is_not_written);
    tcase_add_test(tc, test_level_names_accepted);
    tcase_add_test(tc, test_level_names_refused);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(log_suite)
