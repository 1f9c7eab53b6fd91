/* Unit tests for the log (src/log.c). The web server's error log is shared by every
 * worker, so a line must leave in one write(2) (two writes from two workers interleave),
 * carry "ustatus[pid]: level: ", end in exactly one newline, and never be split in two
 * by a control character inside a value (a forged second line, a terminal escape).
 * stderr goes to a datagram socket for each test (fixtures.h): one datagram per write,
 * so the number of writes is seen. log.file lines carry an RFC 3339 timestamp and follow
 * a rename; under the journal each line starts with its priority. */
#include <check.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fixtures.h"
#include "ustatus/log.h"

static us_test_stderr cap;
static char line[2 * US_LOG_LINE_MAX];

static void setup(void)
{
    us_log_set_level(US_LOG_DEBUG);
    us_test_env("JOURNAL_STREAM", NULL);
    us_test_stderr_begin(&cap);
    us_log_close(); /* stderr, looked at again */
}

static void teardown(void)
{
    us_log_close();
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

/* Every control character inside a message is written as \xHH: one event, one line, no
 * terminal escape. */
START_TEST(test_control_characters_escaped)
{
    us_error("user %s", "x\nustatus[1]: error: forged");
    expect_line("error", "user x\\x0austatus[1]: error: forged");
    us_warn("a\r\nb\rc\n");
    expect_line("warn", "a\\x0d\\x0ab\\x0dc\\x0a");
    us_info("%s", "\x01\x1b[31mred\x7f\tend");
    expect_line("info", "\\x01\\x1b[31mred\\x7f\\x09end");
    /* C1 controls (U+009B is a CSI on some terminals) and bytes that are not UTF-8 */
    us_info("%s", "csi \xc2\x9b" "2J bad \xff\xc3 trunc");
    expect_line("info", "csi \\xc2\\x9b2J bad \\xff\\xc3 trunc");
    /* valid UTF-8, quotes and backslashes pass as they are */
    us_info("%s", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" back\\slash");
    expect_line("info", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" back\\slash");
    /* overlong forms and surrogates are not UTF-8 */
    us_info("%s", "\xc0\xaf \xed\xa0\x80");
    expect_line("info", "\\xc0\\xaf \\xed\\xa0\\x80");
}
END_TEST

/* us_log_escape never cuts an escape or a UTF-8 sequence, and says how far it got. */
START_TEST(test_escape_bounds)
{
    char out[8];
    ck_assert_uint_eq(us_log_escape("ab\n", 3, out, sizeof out), 3);
    ck_assert_str_eq(out, "ab\\x0a");
    ck_assert_uint_eq(us_log_escape("abcd\n", 5, out, sizeof out), 4);
    ck_assert_str_eq(out, "abcd");
    ck_assert_uint_eq(us_log_escape("abcde\xe2\x82\xac", 8, out, sizeof out), 5);
    ck_assert_str_eq(out, "abcde");
    ck_assert_uint_eq(us_log_escape("x", 1, out, 1), 0);
    ck_assert_str_eq(out, "");
    char zero[] = {'a', '\0', 'b'};
    ck_assert_uint_eq(us_log_escape(zero, 3, out, sizeof out), 3);
    ck_assert_str_eq(out, "a\\x00b");
}
END_TEST

/* A message longer than the line buffer is cut, still in one write ending in one "\n". */
START_TEST(test_long_message_is_cut_to_one_line)
{
    char big[3 * US_LOG_LINE_MAX];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[1500] = '\n';
    big[US_LOG_LINE_MAX - 100] = '\x01';
    us_info("%s", big);
    static char got[sizeof line];
    snprintf(got, sizeof got, "%s", next_write());
    size_t len = strlen(got);
    expect_nothing_more();
    char prefix[64];
    snprintf(prefix, sizeof prefix, "ustatus[%d]: info: yyy", (int)getpid());
    ck_assert_msg(strncmp(got, prefix, strlen(prefix)) == 0, "starts \"%.40s\"", got);
    ck_assert_uint_le(len, US_LOG_LINE_MAX); /* one atomic write to a pipe (PIPE_BUF) */
    ck_assert_uint_gt(len, US_LOG_LINE_MAX - 100); /* cut, not dropped */
    ck_assert_str_eq(got + len - 4, "...\n");
    ck_assert_ptr_eq(strchr(got, '\n'), got + len - 1);
    ck_assert_ptr_nonnull(strstr(got, "y\\x0ay"));
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

/* ---- log.file ---- */

static char dir[64], path[128], moved[128];

static void file_setup(void)
{
    setup();
    snprintf(dir, sizeof dir, "/tmp/ustatus_log_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ustatus.log", dir);
    snprintf(moved, sizeof moved, "%s/ustatus.log.1", dir);
}

static void file_teardown(void)
{
    teardown();
    unlink(path);
    unlink(moved);
    char link_path[160];
    snprintf(link_path, sizeof link_path, "%s/link.log", dir);
    unlink(link_path);
    rmdir(dir);
}

/* The whole content of a file (a static buffer). */
static const char *slurp(const char *file)
{
    static char buf[65536];
    int fd = open(file, O_RDONLY);
    ck_assert_msg(fd >= 0, "%s: cannot open", file);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    return buf;
}

/* "<RFC 3339 with ms and zone> ustatus[pid]: level: msg\n" for each line, in order. */
static void expect_lines(const char *text, const char *const *want, size_t n)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re,
                             "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
                             "\\.[0-9]{3}([+-][0-2][0-9]:[0-5][0-9]|Z) ",
                             REG_EXTENDED),
                     0);
    for (size_t i = 0; i < n; i++) {
        const char *nl = strchr(text, '\n');
        ck_assert_msg(nl, "line %zu missing in \"%s\"", i, text);
        char got[2048], tail[2048];
        snprintf(got, sizeof got, "%.*s", (int)(nl - text), text);
        ck_assert_msg(regexec(&re, got, 0, NULL, 0) == 0, "no timestamp: \"%s\"", got);
        snprintf(tail, sizeof tail, "ustatus[%d]: %s", (int)getpid(), want[i]);
        ck_assert_str_eq(strchr(got, ' ') + 1, tail);
        text = nl + 1;
    }
    ck_assert_msg(!*text, "more lines than expected: \"%s\"", text);
    regfree(&re);
}

static void expect_file_lines(const char *file, const char *const *want, size_t n)
{
    expect_lines(slurp(file), want, n);
}

START_TEST(test_file_lines_have_timestamps_and_nothing_goes_to_stderr)
{
    char err[256];
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_eq((int)write(fd, "earlier\n", 8), 8);
    close(fd);
    ck_assert_int_eq(us_log_open(path, false, err, sizeof err), 0);
    us_error("redis %s: connection refused", "127.0.0.1:6379");
    us_debug("ctl \x01");
    expect_nothing_more();
    const char *text = slurp(path);
    ck_assert_msg(strncmp(text, "earlier\n", 8) == 0, "appended, not truncated: %s", text);
    const char *want[] = {"error: redis 127.0.0.1:6379: connection refused", "debug: ctl \\x01"};
    expect_lines(text + 8, want, 2);
}
END_TEST

/* logrotate renames the file: the next line goes to a new file at the path, without any
 * signal (processes a web server spawned have nobody to send them one). */
START_TEST(test_file_followed_after_rename)
{
    char err[256];
    ck_assert_int_eq(us_log_open(path, false, err, sizeof err), 0);
    us_info("before");
    ck_assert_int_eq(rename(path, moved), 0);
    us_info("after");
    const char *one[] = {"info: before"}, *two[] = {"info: after"};
    expect_file_lines(moved, one, 1);
    expect_file_lines(path, two, 1);
    /* removed outright: recreated */
    ck_assert_int_eq(unlink(path), 0);
    us_warn("again");
    const char *three[] = {"warn: again"};
    expect_file_lines(path, three, 1);
    expect_nothing_more();
}
END_TEST

/* SIGUSR1's flag reopens the file at the next line; us_log_reopen reopens it now. */
START_TEST(test_reopen_async_and_now)
{
    char err[256];
    ck_assert_int_eq(us_log_open(path, false, err, sizeof err), 0);
    struct stat before, after;
    ck_assert_int_eq(stat(path, &before), 0);
    us_log_reopen_async();
    us_info("x");
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert_int_eq(before.st_ino, after.st_ino);
    ck_assert_int_eq(us_log_reopen(err, sizeof err), 0);
    us_info("y");
    const char *want[] = {"info: x", "info: y"};
    expect_file_lines(path, want, 2);
    ck_assert_int_eq(after.st_mode & 0777, 0640);
}
END_TEST

/* A symlink at the log path is refused (a privileged process must not append through a
 * link planted in a log directory); the destinations stay as they were. */
START_TEST(test_symlink_refused)
{
    char err[256], link_path[160];
    snprintf(link_path, sizeof link_path, "%s/link.log", dir);
    ck_assert_int_eq(symlink(path, link_path), 0);
    ck_assert_int_eq(us_log_open(link_path, false, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "symbolic link"), "%s", err);
    ck_assert_int_eq(access(path, F_OK), -1); /* nothing created through the link */
    us_info("still stderr");
    expect_line("info", "still stderr");
    ck_assert_int_eq(us_log_open("/nonexistent-dir/x.log", false, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "/nonexistent-dir/x.log"), "%s", err);
}
END_TEST

/* ---- the journal and syslog ---- */

static void set_journal_stream(int fd)
{
    struct stat st;
    char v[64];
    ck_assert_int_eq(fstat(fd, &st), 0);
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    us_test_env("JOURNAL_STREAM", v);
}

/* stderr is the journal when JOURNAL_STREAM names its device and inode: each line starts
 * with its sd-daemon priority. */
START_TEST(test_journal_priority_prefix)
{
    char err[64];
    set_journal_stream(STDERR_FILENO);
    ck_assert_int_eq(us_log_open(NULL, false, err, sizeof err), 0);
    char want[256];
    static const struct {
        us_log_level level;
        const char *prefix, *tag;
    } cases[] = {{US_LOG_ERROR, "<3>", "error"},
                 {US_LOG_WARN, "<4>", "warn"},
                 {US_LOG_INFO, "<6>", "info"},
                 {US_LOG_DEBUG, "<7>", "debug"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        us_log(cases[i].level, "m\n%zu", i);
        snprintf(want, sizeof want, "%sustatus[%d]: %s: m\\x0a%zu\n", cases[i].prefix,
                 (int)getpid(), cases[i].tag, i);
        ck_assert_str_eq(next_write(), want);
    }
    expect_nothing_more();

    /* stderr redirected elsewhere since (another inode): no prefix */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    set_journal_stream(p[0]);
    ck_assert_int_eq(us_log_open(NULL, false, err, sizeof err), 0);
    us_error("plain");
    expect_line("error", "plain");
    us_test_env("JOURNAL_STREAM", "garbage");
    ck_assert_int_eq(us_log_open(NULL, false, err, sizeof err), 0);
    us_error("plain");
    expect_line("error", "plain");
    close(p[0]);
    close(p[1]);
}
END_TEST

/* log.syslog: lines leave through syslog(3), not stderr (the integration test
 * test_main.py reads them from a /dev/log of its own); with a file too, both get them. */
START_TEST(test_syslog_replaces_stderr)
{
    char err[256];
    ck_assert_int_eq(us_log_open(NULL, true, err, sizeof err), 0);
    us_error("to syslog \x01");
    us_debug("to syslog");
    expect_nothing_more();
    ck_assert_int_eq(us_log_open(path, true, err, sizeof err), 0);
    us_warn("both");
    expect_nothing_more();
    const char *want[] = {"warn: both"};
    expect_file_lines(path, want, 1);
    us_log_close();
    us_info("back");
    expect_line("info", "back");
}
END_TEST

START_TEST(test_timestamp_format)
{
    char ts[40];
    us_log_timestamp(ts, sizeof ts);
    ck_assert_uint_eq(strlen(ts), 29);
    ck_assert_int_eq(ts[4], '-');
    ck_assert_int_eq(ts[10], 'T');
    ck_assert_int_eq(ts[19], '.');
    ck_assert_msg(ts[23] == '+' || ts[23] == '-', "%s", ts);
    ck_assert_int_eq(ts[26], ':');
    /* POSIX TZ strings: no zoneinfo needed */
    us_test_env("TZ", "UTC0");
    tzset();
    us_log_timestamp(ts, sizeof ts);
    ck_assert_str_eq(ts + 23, "+00:00");
    us_test_env("TZ", "IST-5:30");
    tzset();
    us_log_timestamp(ts, sizeof ts);
    ck_assert_str_eq(ts + 23, "+05:30");
    us_test_env("TZ", "NST3:30");
    tzset();
    us_log_timestamp(ts, sizeof ts);
    ck_assert_str_eq(ts + 23, "-03:30");
    us_test_env("TZ", NULL);
    tzset();
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_one_write_per_line);
    tcase_add_test(tc, test_control_characters_escaped);
    tcase_add_test(tc, test_escape_bounds);
    tcase_add_test(tc, test_long_message_is_cut_to_one_line);
    tcase_add_test(tc, test_timestamp_format);
    suite_add_tcase(s, tc);

    tc = tcase_create("destinations");
    tcase_add_checked_fixture(tc, file_setup, file_teardown);
    tcase_add_test(tc, test_file_lines_have_timestamps_and_nothing_goes_to_stderr);
    tcase_add_test(tc, test_file_followed_after_rename);
    tcase_add_test(tc, test_reopen_async_and_now);
    tcase_add_test(tc, test_symlink_refused);
    tcase_add_test(tc, test_journal_priority_prefix);
    tcase_add_test(tc, test_syslog_replaces_stderr);
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
