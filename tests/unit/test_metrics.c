/* Unit tests for the shared counters behind GET /metrics (SPEC §7). The exposition is
 * read by Prometheus, so its bytes are pinned: bucket placement at the bounds, labels,
 * the fallbacks for unknown methods, codes and statuses; and attaching to a segment
 * keeps what was counted before. (Check runs each test in a fresh fork, so each one
 * starts from zero.) */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h" /* PACKAGE_VERSION */
#include "fixtures.h"
#include "ustatus/buf.h"
#include "ustatus/metrics.h"

static char *render(void)
{
    us_buf b = US_BUF_INIT;
    us_metrics_render(&b);
    return us_buf_steal(&b, NULL);
}

static void assert_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    ck_assert_msg(strstr(text, want) != NULL, "missing line: %s\n---\n%s", line, text);
}

START_TEST(test_zero_state_shows_the_api_methods)
{
    char *t = render();
    assert_line(t, "ustatus_api_commands_total{method=\"update_user_status\"} 0");
    assert_line(t, "ustatus_api_commands_total{method=\"get_user_status\"} 0");
    assert_line(t, "ustatus_api_commands_total{method=\"delete_user_status\"} 0");
    assert_line(t, "ustatus_api_commands_total{method=\"update_user_online\"} 0");
    assert_line(t, "ustatus_api_command_duration_seconds_count{method=\"get_user_status\"} 0");
    assert_line(t, "ustatus_redis_errors_total 0");
    assert_line(t, "ustatus_metrics_shared 0");
    /* methods nobody called and errors that never happened are not listed */
    ck_assert_ptr_null(strstr(t, "method=\"batch\""));
    ck_assert_ptr_null(strstr(t, "ustatus_api_command_errors_total{"));
    free(t);
}
END_TEST

START_TEST(test_buckets_are_cumulative_and_bounds_inclusive)
{
    us_metrics_command("get_user_status", 0, 500000);        /* exactly 0.5 ms: le="0.0005" */
    us_metrics_command("get_user_status", 0, 500001);        /* just above: le="0.001" */
    us_metrics_command("get_user_status", 0, 20000000000LL); /* 20 s: +Inf only */
    us_metrics_command("get_user_status", 0, -5);            /* a clock oddity counts as 0 */
    char *t = render();
    assert_line(
        t,
        "ustatus_api_command_duration_seconds_bucket{method=\"get_user_status\",le=\"0.0005\"} 2");
    assert_line(
        t,
        "ustatus_api_command_duration_seconds_bucket{method=\"get_user_status\",le=\"0.001\"} 3");
    assert_line(
        t, "ustatus_api_command_duration_seconds_bucket{method=\"get_user_status\",le=\"10\"} 3");
    assert_line(
        t, "ustatus_api_command_duration_seconds_bucket{method=\"get_user_status\",le=\"+Inf\"} 4");
    assert_line(t, "ustatus_api_command_duration_seconds_count{method=\"get_user_status\"} 4");
    assert_line(
        t, "ustatus_api_command_duration_seconds_sum{method=\"get_user_status\"} 20.001000001");
    assert_line(t, "ustatus_api_commands_total{method=\"get_user_status\"} 4");
    free(t);
}
END_TEST

START_TEST(test_errors_by_name_and_fallbacks)
{
    us_metrics_command("update_user_status", 107, 1);
    us_metrics_command("update_user_status", 100, 1);
    us_metrics_command("update_user_status", 999, 1);
    us_metrics_command("batch", 107, 1);
    us_metrics_command("some_future_method", 0, 1);
    us_metrics_command(NULL, 104, 1);
    char *t = render();
    assert_line(
        t,
        "ustatus_api_command_errors_total{method=\"update_user_status\",error=\"bad_request\"} 1");
    assert_line(
        t, "ustatus_api_command_errors_total{method=\"update_user_status\",error=\"internal\"} 1");
    assert_line(
        t, "ustatus_api_command_errors_total{method=\"update_user_status\",error=\"other\"} 1");
    assert_line(t, "ustatus_api_command_errors_total{method=\"batch\",error=\"bad_request\"} 1");
    assert_line(t, "ustatus_api_commands_total{method=\"update_user_status\"} 3");
    assert_line(t, "ustatus_api_commands_total{method=\"batch\"} 1");
    assert_line(t, "ustatus_api_commands_total{method=\"other\"} 2");
    assert_line(t, "ustatus_api_command_errors_total{method=\"other\",error=\"not_found\"} 1");
    free(t);
}
END_TEST

START_TEST(test_responses_and_process_counters)
{
    us_metrics_http_response(200);
    us_metrics_http_response(200);
    us_metrics_http_response(401);
    us_metrics_http_response(418);
    us_metrics_redis_error();
    us_metrics_redis_reconnect();
    us_metrics_worker_started();
    char *t = render();
    assert_line(t, "ustatus_http_responses_total{code=\"200\"} 2");
    assert_line(t, "ustatus_http_responses_total{code=\"401\"} 1");
    assert_line(t, "ustatus_http_responses_total{code=\"other\"} 1");
    assert_line(t, "ustatus_redis_errors_total 1");
    assert_line(t, "ustatus_redis_reconnects_total 1");
    assert_line(t, "ustatus_worker_starts_total 1");
    free(t);
}
END_TEST

START_TEST(test_every_family_has_help_and_type)
{
    char *t = render();
    const char *families[] = {
        "ustatus_api_commands_total",           "ustatus_api_command_errors_total",
        "ustatus_api_command_duration_seconds", "ustatus_http_responses_total",
        "ustatus_redis_errors_total",           "ustatus_redis_reconnects_total",
        "ustatus_worker_starts_total",          "ustatus_metrics_shared",
        "ustatus_workers",                      "ustatus_build_info"};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char help[128], type[128];
        snprintf(help, sizeof help, "# HELP %s ", families[i]);
        snprintf(type, sizeof type, "# TYPE %s ", families[i]);
        ck_assert_msg(strstr(t, help) && strstr(t, type), "%s", families[i]);
    }
    ck_assert(t[strlen(t) - 1] == '\n');
    free(t);
}
END_TEST

START_TEST(test_attach_keeps_earlier_counts_and_is_private)
{
    char path[64];
    us_test_write_temp("", "", path, sizeof path);
    char name[128], shm[160], err[256];
    us_metrics_shm_name(path, name, sizeof name);
    snprintf(shm, sizeof shm, "/dev/shm%s", name);
    us_metrics_unlink(path);

    us_metrics_command("delete_user_status", 0, 1);
    ck_assert_int_eq(us_metrics_attach(path, err, sizeof err), 0);
    us_metrics_command("delete_user_status", 0, 1);
    char *t = render();
    assert_line(t, "ustatus_api_commands_total{method=\"delete_user_status\"} 2");
    assert_line(t, "ustatus_metrics_shared 1");
    free(t);
    struct stat st;
    ck_assert_int_eq(stat(shm, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_uid, geteuid());
    ck_assert_int_eq(us_metrics_unlink(path), 0);
    ck_assert_int_ne(stat(shm, &st), 0);
    unlink(path);
}
END_TEST

START_TEST(test_build_info)
{
    char *t = render();
    char want[128];
    snprintf(want, sizeof want, "ustatus_build_info{version=\"%s\"} 1", PACKAGE_VERSION);
    assert_line(t, want);
    free(t);
}
END_TEST

/* The gauges count this process's own state... */
START_TEST(test_worker_gauges_of_this_process)
{
    char *t = render();
    assert_line(t, "ustatus_workers{state=\"busy\"} 0");
    assert_line(t, "ustatus_workers{state=\"idle\"} 0");
    free(t);
    us_metrics_worker_idle();
    t = render();
    assert_line(t, "ustatus_workers{state=\"busy\"} 0");
    assert_line(t, "ustatus_workers{state=\"idle\"} 1");
    free(t);
    us_metrics_worker_busy();
    us_metrics_worker_busy();
    t = render();
    assert_line(t, "ustatus_workers{state=\"busy\"} 1");
    assert_line(t, "ustatus_workers{state=\"idle\"} 0");
    free(t);
    us_metrics_worker_exit();
    t = render();
    assert_line(t, "ustatus_workers{state=\"busy\"} 0");
    assert_line(t, "ustatus_workers{state=\"idle\"} 0");
    free(t);
}
END_TEST

/* ...and of every process sharing the segment; one killed with -9 stops counting at once,
 * and its slot is taken again. */
START_TEST(test_worker_gauges_over_processes)
{
    char path[64], err[256];
    us_test_write_temp("", "", path, sizeof path);
    us_metrics_unlink(path);
    ck_assert_int_eq(us_metrics_attach(path, err, sizeof err), 0);
    us_metrics_worker_idle();
    pid_t kids[3];
    for (int i = 0; i < 3; i++) {
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        kids[i] = fork();
        ck_assert_int_ge(kids[i], 0);
        if (kids[i] == 0) {
            if (i < 2)
                us_metrics_worker_busy();
            else
                us_metrics_worker_idle();
            char c = 'x';
            if (write(p[1], &c, 1) != 1)
                _exit(1);
            pause();
            _exit(0);
        }
        char c;
        ck_assert_int_eq((int)read(p[0], &c, 1), 1);
        close(p[0]);
        close(p[1]);
    }
    unsigned busy, idle;
    us_metrics_workers(&busy, &idle);
    ck_assert_uint_eq(busy, 2);
    ck_assert_uint_eq(idle, 2);
    kill(kids[0], SIGKILL);
    waitpid(kids[0], NULL, 0);
    us_metrics_workers(&busy, &idle);
    ck_assert_uint_eq(busy, 1);
    ck_assert_uint_eq(idle, 2);
    /* a new process reuses the dead one's slot: still counted once */
    pid_t again = fork();
    ck_assert_int_ge(again, 0);
    if (again == 0) {
        us_metrics_worker_busy();
        unsigned b, i;
        us_metrics_workers(&b, &i);
        _exit(b == 2 && i == 2 ? 0 : 1);
    }
    int st;
    waitpid(again, &st, 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the new process counted wrong");
    for (int i = 1; i < 3; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    us_metrics_workers(&busy, &idle);
    ck_assert_uint_eq(busy, 0);
    ck_assert_uint_eq(idle, 1);
    us_metrics_unlink(path);
    unlink(path);
}
END_TEST

/* The segment of a new configuration file path, created here (empty, 0600) before any
 * process attaches: its descriptor, and its /dev/shm path in shm. */
static int plant_segment(char *path, size_t path_len, char *shm, size_t shm_len)
{
    char name[128];
    us_test_write_temp("", "", path, path_len);
    us_metrics_shm_name(path, name, sizeof name);
    snprintf(shm, shm_len, "/dev/shm%s", name);
    us_metrics_unlink(path);
    int fd = open(shm, O_CREAT | O_EXCL | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* A segment of our own that others can read or write is refused, with the reason. (A
 * segment of another user: test_metrics.py, which runs as root to plant one.) */
START_TEST(test_segment_open_to_others_is_refused)
{
    char path[64], shm[160], err[256];
    int fd = plant_segment(path, sizeof path, shm, sizeof shm);
    ck_assert_int_eq(fchmod(fd, 0644), 0);
    close(fd);
    us_metrics_command("get_user_status", 0, 1);
    ck_assert_int_eq(us_metrics_attach(path, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "open to other users (mode 0644)") && strstr(err, shm), "%s", err);
    /* still counting, privately */
    us_metrics_command("get_user_status", 0, 1);
    char *t = render();
    assert_line(t, "ustatus_api_commands_total{method=\"get_user_status\"} 2");
    assert_line(t, "ustatus_metrics_shared 0");
    free(t);
    struct stat st;
    ck_assert_int_eq(stat(shm, &st), 0);
    ck_assert_int_eq(st.st_size, 0); /* left untouched */
    unlink(shm);
    unlink(path);
}
END_TEST

/* A segment of an older build (one page, the fields it knew) is grown, not refused. */
START_TEST(test_older_smaller_segment_is_grown)
{
    char path[64], shm[160], err[256];
    int fd = plant_segment(path, sizeof path, shm, sizeof shm);
    ck_assert_int_eq(ftruncate(fd, 4096), 0);
    close(fd);
    ck_assert_int_eq(us_metrics_attach(path, err, sizeof err), 0);
    us_metrics_worker_busy();
    struct stat st;
    ck_assert_int_eq(stat(shm, &st), 0);
    ck_assert_int_gt(st.st_size, 4096);
    char *t = render();
    assert_line(t, "ustatus_workers{state=\"busy\"} 1");
    assert_line(t, "ustatus_metrics_shared 1");
    free(t);
    us_metrics_unlink(path);
    unlink(path);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("exposition");
    tcase_add_test(tc, test_zero_state_shows_the_api_methods);
    tcase_add_test(tc, test_buckets_are_cumulative_and_bounds_inclusive);
    tcase_add_test(tc, test_errors_by_name_and_fallbacks);
    tcase_add_test(tc, test_responses_and_process_counters);
    tcase_add_test(tc, test_every_family_has_help_and_type);
    tcase_add_test(tc, test_build_info);
    tcase_add_test(tc, test_worker_gauges_of_this_process);
    suite_add_tcase(s, tc);
    tc = tcase_create("shared");
    tcase_add_test(tc, test_attach_keeps_earlier_counts_and_is_private);
    tcase_add_test(tc, test_worker_gauges_over_processes);
    tcase_add_test(tc, test_segment_open_to_others_is_refused);
    tcase_add_test(tc, test_older_smaller_segment_is_grown);
    suite_add_tcase(s, tc);
    return s;
}

US_TEST_MAIN(metrics_suite)
