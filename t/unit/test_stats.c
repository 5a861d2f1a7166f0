/* shm/stats and daemon/metrics/stats_render: blocks per process, folding, reset, histograms, formats. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/runtime/buf.h"
#include "shm/stats.h"
#include "daemon/metrics/stats_render.h"

static void run_child(void (*body)(struct stats_region *r, int slot), struct stats_region *r,
                      int slot)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        body(r, slot);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void count_logins(struct stats_region *r, int slot)
{
    if (stats_attach(r, slot) == -1)
        _exit(1);
    for (int i = 0; i < 5; i++)
        stats_login("USER", STATS_LOGIN_OK);
    stats_login("plain", STATS_LOGIN_FAILED);    /* names match in any case */
    stats_login("CRAM-MD5", STATS_LOGIN_OK);     /* unknown: counted as USER */
    stats_add(SV_RETR_BYTES, 1000);
}

static void count_through_fd(struct stats_region *r, int slot)
{
    /* As the exec'd helper does: only the memfd, no inherited pointer. */
    if (stats_attach_fd(stats_region_fd(r), slot) == -1)
        _exit(1);
    stats_timing(STATS_TIME_LDAP, 1500);
    stats_add(SV_LDAP_ERRORS, 2);
}

static uint64_t login_count(const struct stats_snapshot *s, enum stats_mech m,
                            enum stats_login result)
{
    return s->v[SV_LOGIN + m * STATS_LOGIN_RESULTS + result];
}

static void test_children_fold_into_totals(void **state)
{
    (void)state;
    struct stats_region *r = stats_region_create(4);
    assert_non_null(r);
    struct stats_snapshot s;

    int a = stats_region_claim(r);
    int b = stats_region_claim(r);
    assert_true(a >= 0 && b >= 0 && a != b);
    run_child(count_logins, r, a);
    run_child(count_through_fd, r, b);

    stats_region_read(r, &s, STATS_SINCE_RESET);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 6);
    assert_int_equal(login_count(&s, STATS_MECH_PLAIN, STATS_LOGIN_FAILED), 1);
    assert_int_equal(s.v[SV_RETR_BYTES], 1000);
    assert_int_equal(s.v[SV_LDAP_ERRORS], 2);

    /* The processes exit: their numbers move to the totals, the blocks are reused zeroed. */
    stats_region_release(r, a);
    stats_region_release(r, b);
    stats_region_release(r, b);                   /* twice: no double count */
    stats_region_read(r, &s, STATS_SINCE_RESET);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 6);
    assert_int_equal(s.v[SV_LDAP_ERRORS], 2);
    int c = stats_region_claim(r);
    assert_true(c >= 0);
    run_child(count_logins, r, c);
    stats_region_read(r, &s, STATS_SINCE_START);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 12);
    assert_int_equal(s.v[SV_RETR_BYTES], 2000);
    stats_region_destroy(r);
}

static void test_reset_leaves_since_start_alone(void **state)
{
    (void)state;
    struct stats_region *r = stats_region_create(2);
    struct stats_snapshot s, shown;
    int a = stats_region_claim(r);
    run_child(count_logins, r, a);

    stats_region_read(r, &shown, STATS_SINCE_RESET);
    assert_int_equal(login_count(&shown, STATS_MECH_USER, STATS_LOGIN_OK), 6);
    /* Counted after the read but before the reset takes effect: not lost. */
    run_child(count_logins, r, a);
    stats_region_reset(r, &shown);
    stats_region_read(r, &s, STATS_SINCE_RESET);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 6);
    run_child(count_logins, r, a);
    stats_region_read(r, &s, STATS_SINCE_RESET);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 12);
    stats_region_read(r, &s, STATS_SINCE_START);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 18);

    /* The process exits after the reset: folding keeps both views. */
    stats_region_release(r, a);
    stats_region_read(r, &s, STATS_SINCE_RESET);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 12);
    stats_region_read(r, &s, STATS_SINCE_START);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 18);
    stats_region_destroy(r);
}

static void test_region_cannot_shrink(void **state)
{
    (void)state;
    /* A child holding the fd must not be able to make the master's reads fault. */
    struct stats_region *r = stats_region_create(2);
    assert_int_equal(ftruncate(stats_region_fd(r), 0), -1);
    struct stats_snapshot s;
    stats_region_read(r, &s, STATS_SINCE_START);
    stats_region_destroy(r);
}

static void test_full_region_and_bad_slots(void **state)
{
    (void)state;
    struct stats_region *r = stats_region_create(2);
    assert_true(stats_region_claim(r) >= 0);
    assert_true(stats_region_claim(r) >= 0);
    assert_int_equal(stats_region_claim(r), -1);
    assert_int_equal(stats_attach(r, 2), -1);
    assert_int_equal(stats_attach(r, -1), -1);
    assert_int_equal(stats_attach_fd(stats_region_fd(r), 2), -1);
    stats_region_release(r, 7);                   /* out of range: ignored */
    stats_region_release(NULL, 0);
    stats_region_destroy(r);
}

static void test_names_map_to_values(void **state)
{
    (void)state;
    assert_int_equal(stats_command_id("retr"), STATS_CMD_RETR);
    assert_int_equal(stats_command_id("TOP"), STATS_CMD_TOP);
    assert_int_equal(stats_command_id("XTND"), STATS_CMD_OTHER);
    assert_int_equal(stats_command_id(""), STATS_CMD_OTHER);
    assert_string_equal(stats_end_reasons[STATS_END_REASONS - 1], "other");
    assert_string_equal(stats_command_names[STATS_CMD_OTHER], "other");
}

static void record_everything(struct stats_region *r, int slot)
{
    if (stats_attach(r, slot) == -1)
        _exit(1);
    stats_session_end("quit");
    stats_session_end("no-such-reason");
    stats_session_end(NULL);
    stats_tls_handshake("TLSv1.3");
    stats_tls_handshake("TLSv1.2");
    stats_tls_handshake("TLSv1");
    stats_tls_handshake(NULL);
    stats_refused(STATS_REFUSED_PER_IP);
    stats_cache(STATS_CACHE_HIT);
    /* Bucket edges: 100 us is in the first bucket, 101 us in the second. */
    stats_command_time(STATS_CMD_RETR, 100);
    stats_command_time(STATS_CMD_RETR, 101);
    stats_command_time(STATS_CMD_RETR, 20000000);  /* past 10 s: +Inf only */
    stats_timing(STATS_TIME_INDEX_RESCAN, 3000);
}

static void test_sessions_tls_and_buckets(void **state)
{
    (void)state;
    struct stats_region *r = stats_region_create(1);
    struct stats_snapshot s;
    run_child(record_everything, r, stats_region_claim(r));
    stats_region_read(r, &s, STATS_SINCE_START);
    assert_int_equal(s.v[SV_ENDED + 0], 1);                      /* quit */
    assert_int_equal(s.v[SV_ENDED + STATS_END_REASONS - 1], 2);  /* other */
    assert_int_equal(s.v[SV_TLS + STATS_TLS_1_3], 1);
    assert_int_equal(s.v[SV_TLS + STATS_TLS_1_2], 1);
    assert_int_equal(s.v[SV_TLS + STATS_TLS_OTHER], 1);
    assert_int_equal(s.v[SV_TLS + STATS_TLS_FAILED], 1);
    const uint64_t *h = &s.v[SV_COMMAND_HIST + STATS_CMD_RETR * STATS_HIST_VALUES];
    assert_int_equal(h[0], 1);
    assert_int_equal(h[1], 1);
    assert_int_equal(h[STATS_BUCKETS - 1], 1);
    assert_int_equal(stats_hist_count(h), 3);
    assert_int_equal(h[STATS_BUCKETS], 100 + 101 + 20000000);
    stats_region_destroy(r);
}

static void test_respawns_counted_by_the_master(void **state)
{
    (void)state;
    struct stats_region *r = stats_region_create(2);
    struct stats_snapshot s, shown;
    stats_region_count_respawn(r, "worker");
    stats_region_count_respawn(r, "worker");
    stats_region_count_respawn(r, "auth");
    stats_region_count_respawn(r, "no-such-role");   /* ignored, not counted elsewhere */
    stats_region_count_respawn(r, NULL);
    stats_region_count_respawn(NULL, "worker");       /* no region: nothing counted */
    /* A child's block folded in later adds to, never replaces, the master's counts. */
    int a = stats_region_claim(r);
    run_child(count_logins, r, a);
    stats_region_release(r, a);
    stats_region_read(r, &s, STATS_SINCE_START);
    assert_int_equal(s.v[SV_RESPAWNS + STATS_ROLE_WORKER], 2);
    assert_int_equal(s.v[SV_RESPAWNS + STATS_ROLE_AUTH], 1);
    assert_int_equal(s.v[SV_RESPAWNS + STATS_ROLE_METRICS], 0);
    assert_int_equal(login_count(&s, STATS_MECH_USER, STATS_LOGIN_OK), 6);
    uint64_t total = 0;
    for (unsigned v = 0; v < STATS_VALUES; v++)
        total += s.v[v];
    assert_int_equal(total, 3 + 7 + 1000);   /* 3 respawns, 7 logins, 1000 RETR octets */
    /* popctl stats --reset starts them anew; /metrics keeps counting from the start. */
    stats_region_read(r, &shown, STATS_SINCE_RESET);
    stats_region_reset(r, &shown);
    stats_region_count_respawn(r, "metrics");
    stats_region_read(r, &s, STATS_SINCE_RESET);
    assert_int_equal(s.v[SV_RESPAWNS + STATS_ROLE_WORKER], 0);
    assert_int_equal(s.v[SV_RESPAWNS + STATS_ROLE_METRICS], 1);
    stats_region_read(r, &s, STATS_SINCE_START);
    assert_int_equal(s.v[SV_RESPAWNS + STATS_ROLE_WORKER], 2);
    stats_region_destroy(r);
}

static void test_render_formats(void **state)
{
    (void)state;
    struct stats_region *r = stats_region_create(1);
    struct stats_snapshot s;
    run_child(record_everything, r, stats_region_claim(r));
    stats_region_read(r, &s, STATS_SINCE_START);
    struct stats_gauges g = { .connections = 3, .logged_in = 2, .workers = 2, .draining = 1,
                              .max_connections = 4000, .open_files_limit = 1024,
                              .open_files_wanted = 12256, .started = 1000, .now = 1100 };
    struct buf out;
    buf_init(&out, 1 << 20);

    assert_int_equal(stats_render(&s, &g, STATS_PROMETHEUS, &out), 0);
    buf_append(&out, "", 1);
    const char *prom = buf_rptr(&out);
    assert_non_null(strstr(prom, "# TYPE fastpop_logins_total counter\n"));
    assert_non_null(strstr(prom, "fastpop_connections_refused_total{limit="
                                 "\"max_connections_per_ip\"} 1\n"));
    assert_non_null(strstr(prom, "fastpop_sessions_ended_total{reason=\"other\"} 2\n"));
    assert_non_null(strstr(prom, "fastpop_tls_handshakes_total{result=\"TLSv1.3\"} 1\n"));
    assert_non_null(strstr(prom, "# TYPE fastpop_command_duration_seconds histogram\n"));
    assert_non_null(strstr(prom, "fastpop_command_duration_seconds_bucket{command=\"RETR\","
                                 "le=\"0.0001\"} 1\n"));
    assert_non_null(strstr(prom, "fastpop_command_duration_seconds_bucket{command=\"RETR\","
                                 "le=\"0.00025\"} 2\n"));
    assert_non_null(strstr(prom, "fastpop_command_duration_seconds_bucket{command=\"RETR\","
                                 "le=\"10\"} 2\n"));
    assert_non_null(strstr(prom, "fastpop_command_duration_seconds_bucket{command=\"RETR\","
                                 "le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(prom, "fastpop_command_duration_seconds_count{command=\"RETR\"} 3\n"));
    assert_non_null(strstr(prom, "fastpop_command_duration_seconds_sum{command=\"RETR\"} "
                                 "20.000201\n"));
    assert_non_null(strstr(prom, "fastpop_index_sync_duration_seconds_count{result="
                                 "\"rescan\"} 1\n"));
    assert_non_null(strstr(prom, "fastpop_auth_helper_duration_seconds_count 0\n"));
    assert_non_null(strstr(prom, "fastpop_draining 1\n"));
    assert_non_null(strstr(prom, "fastpop_connections 3\n"));
    assert_non_null(strstr(prom, "# TYPE fastpop_max_connections gauge\n"
                                 "fastpop_max_connections 4000\n"));
    assert_non_null(strstr(prom, "fastpop_open_files_limit 1024\n"));
    assert_non_null(strstr(prom, "fastpop_open_files_wanted 12256\n"));
    assert_non_null(strstr(prom, "# TYPE fastpop_respawns_total counter\n"));
    assert_non_null(strstr(prom, "fastpop_respawns_total{role=\"worker\"} 0\n"));

    buf_reset(&out);
    assert_int_equal(stats_render(&s, &g, STATS_JSON, &out), 0);
    buf_append(&out, "", 1);
    const char *json = buf_rptr(&out);
    assert_non_null(strstr(json, "\"draining\": true"));
    assert_non_null(strstr(json, "\"max_connections\": 4000,\n  \"open_files_limit\": 1024,\n"
                                 "  \"open_files_wanted\": 12256,\n"));
    assert_non_null(strstr(json, "\"respawns\": {\"auth\": 0, \"worker\": 0, \"metrics\": 0}"));
    assert_non_null(strstr(json, "\"tls_handshakes\": {\"TLSv1.2\": 1, \"TLSv1.3\": 1, "
                                 "\"other\": 1, \"failed\": 1}"));
    assert_non_null(strstr(json, "\"RETR\": {\"count\": 3, \"sum_seconds\": 20.000201, "
                                 "\"buckets\": {\"0.0001\": 1, \"0.00025\": 2"));
    assert_int_equal(json[strlen(json) - 2], '}');

    buf_reset(&out);
    assert_int_equal(stats_render(&s, &g, STATS_TEXT, &out), 0);
    buf_append(&out, "", 1);
    const char *text = buf_rptr(&out);
    assert_non_null(strstr(text, "now                   3 open, 2 logged in, 2 workers, "
                                 "draining\n"));
    assert_non_null(strstr(text, "sessions_ended        quit=1 other=2\n"));
    assert_non_null(strstr(text, "limits                max_connections=4000 open_files=1024 "
                                 "(wanted 12256)\n"));
    assert_non_null(strstr(text, "logins                0\n"));
    char row[64];
    snprintf(row, sizeof(row), "  %-22s %10d ", "command RETR", 3);
    assert_non_null(strstr(text, row));
    snprintf(row, sizeof(row), "  %-22s %10d ", "index_sync rescan", 1);
    assert_non_null(strstr(text, row));
    assert_null(strstr(text, "command USER"));    /* nothing counted, not shown */

    enum stats_format f;
    assert_int_equal(stats_format_parse("prometheus", &f), 0);
    assert_int_equal(f, STATS_PROMETHEUS);
    assert_int_equal(stats_format_parse("yaml", &f), -1);
    buf_free(&out);
    stats_region_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_children_fold_into_totals),
        cmocka_unit_test(test_reset_leaves_since_start_alone),
        cmocka_unit_test(test_region_cannot_shrink),
        cmocka_unit_test(test_full_region_and_bad_slots),
        cmocka_unit_test(test_names_map_to_values),
        cmocka_unit_test(test_sessions_tls_and_buckets),
        cmocka_unit_test(test_respawns_counted_by_the_master),
        cmocka_unit_test(test_render_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
