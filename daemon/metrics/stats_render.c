#include "stats_render.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum family_kind { COUNTER, HISTOGRAM };

/*
 * One metric family: the series for the i-th value of the first label and
 * the j-th of the second starts at base + i * stride + j (a second label
 * only on counters; a histogram series is STATS_HIST_VALUES long).
 */
struct family {
    const char *name;      /* without "fastpop_"; counters get "_total" */
    const char *help;
    enum family_kind kind;
    unsigned base;
    unsigned stride;
    const char *label;
    const char *const *values;
    unsigned nvalues;
    const char *label2;
    const char *const *values2;
    unsigned nvalues2;
};

static const char *const sent_commands[] = { "RETR", "TOP" };
static const char *const index_results[] = { "unchanged", "rescan" };

static const struct family families[] = {
    { "connections_accepted", "Connections accepted.", COUNTER, SV_ACCEPTED, 1,
      NULL, NULL, 1, NULL, NULL, 1 },
    { "connections_refused", "Connections refused before a session, by the limit that refused "
      "them.", COUNTER, SV_REFUSED, 1, "limit", stats_refusal_names, STATS_REFUSALS, NULL, NULL,
      1 },
    { "logins", "Login attempts by mechanism and result.", COUNTER, SV_LOGIN,
      STATS_LOGIN_RESULTS, "mechanism", stats_mech_names, STATS_MECHS, "result",
      stats_login_names, STATS_LOGIN_RESULTS },
    { "auth_cache_lookups", "Credential cache outcomes.", COUNTER, SV_CACHE, 1, "result",
      stats_cache_names, STATS_CACHE_RESULTS, NULL, NULL, 1 },
    { "sessions_ended", "Sessions ended, by the reason in the session log line.", COUNTER,
      SV_ENDED, 1, "reason", stats_end_reasons, STATS_END_REASONS, NULL, NULL, 1 },
    { "tls_handshakes", "TLS handshakes by negotiated version, or failed.", COUNTER, SV_TLS, 1,
      "result", stats_tls_names, STATS_TLS_RESULTS, NULL, NULL, 1 },
    { "sent_bytes", "Message octets sent by RETR and TOP, as LIST counts them (before "
      "dot-stuffing).", COUNTER, SV_RETR_BYTES, 1, "command", sent_commands, 2, NULL, NULL, 1 },
    { "messages_deleted", "Messages deleted at QUIT.", COUNTER, SV_DELETED, 1, NULL, NULL, 1,
      NULL, NULL, 1 },
    { "messages_expired", "Messages removed at QUIT by EXPIRE (RFC 2449), also counted in "
      "messages_deleted.", COUNTER, SV_EXPIRED, 1, NULL, NULL, 1, NULL, NULL, 1 },
    { "ldap_errors", "LDAP operations that failed (server down, timeout, error result).",
      COUNTER, SV_LDAP_ERRORS, 1, NULL, NULL, 1, NULL, NULL, 1 },
    { "login_delay_early", "Logins sooner than the user's LOGIN-DELAY (RFC 2449), by "
      "pop3_login_delay_action: refused, or let in and logged.", COUNTER, SV_LOGIN_DELAY, 1,
      "action", stats_login_delay_names, STATS_LOGIN_DELAYS, NULL, NULL, 1 },
    { "store_errors", "Failed operations on a cache store (mailbox index, credential cache, "
      "policy store): full disk, corrupt or foreign file; logins went on without it.", COUNTER,
      SV_STORE_ERRORS, 1, "store", stats_store_names, STATS_STORES, NULL, NULL, 1 },
    { "respawns", "Child processes that exited unexpectedly and were started again, by role.",
      COUNTER, SV_RESPAWNS, 1, "role", stats_role_names, STATS_ROLES, NULL, NULL, 1 },
    { "maildir_listings", "Maildir directories read by logins: new/ (what arrived), cur/ "
      "listed whole (cold, or changed by another program; fastpop's own changes are "
      "recorded instead).", COUNTER, SV_DIR_READS, 1, "dir", stats_dir_names, STATS_DIRS, NULL,
      NULL, 1 },
    { "command_duration_seconds", "POP3 commands: from the command line to the end of its "
      "answer.", HISTOGRAM, SV_COMMAND_HIST, STATS_HIST_VALUES, "command", stats_command_names,
      STATS_COMMANDS, NULL, NULL, 1 },
    { "auth_helper_duration_seconds", "Worker requests to the auth helper, until its answer.",
      HISTOGRAM, SV_TIMING_HIST + STATS_TIME_HELPER * STATS_HIST_VALUES, STATS_HIST_VALUES,
      NULL, NULL, 1, NULL, NULL, 1 },
    { "ldap_duration_seconds", "LDAP operations of the auth helper.", HISTOGRAM,
      SV_TIMING_HIST + STATS_TIME_LDAP * STATS_HIST_VALUES, STATS_HIST_VALUES, NULL, NULL, 1,
      NULL, NULL, 1 },
    { "index_sync_duration_seconds", "Mailbox index syncs at login: unchanged (no directory "
      "read) or rescan.", HISTOGRAM, SV_TIMING_HIST + STATS_TIME_INDEX_UNCHANGED *
      STATS_HIST_VALUES, STATS_HIST_VALUES, "result", index_results, 2, NULL, NULL, 1 },
};
#define FAMILIES (sizeof(families) / sizeof(families[0]))

int stats_format_parse(const char *name, enum stats_format *f)
{
    static const char *const names[] = { "text", "json", "prometheus" };
    for (unsigned i = 0; i < 3; i++) {
        if (strcmp(name, names[i]) == 0) {
            *f = (enum stats_format)i;
            return 0;
        }
    }
    return -1;
}

static const uint64_t *series(const struct stats_snapshot *s, const struct family *f,
                              unsigned i, unsigned j)
{
    return &s->v[f->base + i * f->stride + j];
}

static void bound_text(unsigned b, char *out, size_t len)
{
    if (b >= STATS_BUCKETS - 1)
        snprintf(out, len, "+Inf");
    else
        snprintf(out, len, "%g", (double)stats_bucket_us[b] / 1e6);
}

/* ---- Prometheus text format 0.0.4 ---- */

static void prom_labels(struct buf *out, const struct family *f, unsigned i, unsigned j,
                        const char *le)
{
    int any = f->label != NULL || le != NULL;
    if (!any)
        return;
    buf_puts(out, "{");
    const char *sep = "";
    if (f->label != NULL) {
        buf_printf(out, "%s=\"%s\"", f->label, f->values[i]);
        sep = ",";
    }
    if (f->label2 != NULL) {
        buf_printf(out, "%s%s=\"%s\"", sep, f->label2, f->values2[j]);
        sep = ",";
    }
    if (le != NULL)
        buf_printf(out, "%sle=\"%s\"", sep, le);
    buf_puts(out, "}");
}

static void prom_family(struct buf *out, const struct stats_snapshot *s, const struct family *f)
{
    const char *suffix = f->kind == COUNTER ? "_total" : "";
    buf_printf(out, "# HELP fastpop_%s%s %s\n# TYPE fastpop_%s%s %s\n", f->name, suffix,
               f->help, f->name, suffix, f->kind == COUNTER ? "counter" : "histogram");
    for (unsigned i = 0; i < f->nvalues; i++) {
        for (unsigned j = 0; j < f->nvalues2; j++) {
            const uint64_t *v = series(s, f, i, j);
            if (f->kind == COUNTER) {
                buf_printf(out, "fastpop_%s_total", f->name);
                prom_labels(out, f, i, j, NULL);
                buf_printf(out, " %" PRIu64 "\n", v[0]);
                continue;
            }
            uint64_t cumulative = 0;
            for (unsigned b = 0; b < STATS_BUCKETS; b++) {
                char le[32];
                cumulative += v[b];
                bound_text(b, le, sizeof(le));
                buf_printf(out, "fastpop_%s_bucket", f->name);
                prom_labels(out, f, i, j, le);
                buf_printf(out, " %" PRIu64 "\n", cumulative);
            }
            buf_printf(out, "fastpop_%s_sum", f->name);
            prom_labels(out, f, i, j, NULL);
            buf_printf(out, " %.6f\nfastpop_%s_count", (double)v[STATS_BUCKETS] / 1e6, f->name);
            prom_labels(out, f, i, j, NULL);
            buf_printf(out, " %" PRIu64 "\n", cumulative);
        }
    }
}

static void prom_gauge(struct buf *out, const char *name, const char *help, double value)
{
    buf_printf(out, "# HELP fastpop_%s %s\n# TYPE fastpop_%s gauge\nfastpop_%s %.15g\n", name,
               help, name, name, value);
}

static void render_prometheus(const struct stats_snapshot *s, const struct stats_gauges *g,
                              struct buf *out)
{
    prom_gauge(out, "connections", "Connections open now.", g->connections);
    prom_gauge(out, "sessions_logged_in", "Open sessions past the login.", g->logged_in);
    prom_gauge(out, "workers", "Worker processes running.", g->workers);
    prom_gauge(out, "draining", "1 while popctl drain refuses new connections.", g->draining);
    prom_gauge(out, "max_connections", "The max_connections setting in force.",
               g->max_connections);
    prom_gauge(out, "open_files_limit", "The open file limit (RLIMIT_NOFILE) of each process.",
               (double)g->open_files_limit);
    prom_gauge(out, "open_files_wanted", "The open file limit max_connections needs.",
               (double)g->open_files_wanted);
    prom_gauge(out, "start_time_seconds", "When fastpopd started, in Unix time.",
               (double)g->started);
    prom_gauge(out, "counters_since_seconds", "Counters count from this Unix time (a start or "
               "popctl stats --reset).", (double)s->since);
    for (unsigned k = 0; k < FAMILIES; k++)
        prom_family(out, s, &families[k]);
}

/* ---- JSON: one object, family names as keys ---- */

static void json_histogram(struct buf *out, const uint64_t *v)
{
    uint64_t cumulative = 0;
    buf_printf(out, "{\"count\": %" PRIu64 ", \"sum_seconds\": %.6f, \"buckets\": {",
               stats_hist_count(v), (double)v[STATS_BUCKETS] / 1e6);
    for (unsigned b = 0; b < STATS_BUCKETS; b++) {
        char le[32];
        cumulative += v[b];
        bound_text(b, le, sizeof(le));
        buf_printf(out, "%s\"%s\": %" PRIu64, b ? ", " : "", le, cumulative);
    }
    buf_puts(out, "}}");
}

static void json_value(struct buf *out, const struct family *f, const uint64_t *v)
{
    if (f->kind == HISTOGRAM)
        json_histogram(out, v);
    else
        buf_printf(out, "%" PRIu64, v[0]);
}

static void json_family(struct buf *out, const struct stats_snapshot *s, const struct family *f)
{
    buf_printf(out, ",\n  \"%s\": ", f->name);
    if (f->label == NULL) {
        json_value(out, f, series(s, f, 0, 0));
        return;
    }
    buf_puts(out, "{");
    for (unsigned i = 0; i < f->nvalues; i++) {
        buf_printf(out, "%s\"%s\": ", i ? ", " : "", f->values[i]);
        if (f->label2 == NULL) {
            json_value(out, f, series(s, f, i, 0));
            continue;
        }
        buf_puts(out, "{");
        for (unsigned j = 0; j < f->nvalues2; j++) {
            buf_printf(out, "%s\"%s\": ", j ? ", " : "", f->values2[j]);
            json_value(out, f, series(s, f, i, j));
        }
        buf_puts(out, "}");
    }
    buf_puts(out, "}");
}

static void render_json(const struct stats_snapshot *s, const struct stats_gauges *g,
                        struct buf *out)
{
    buf_printf(out, "{\n  \"since\": %lld,\n  \"now\": %lld,\n  \"started\": %lld,\n"
               "  \"connections\": %u,\n  \"sessions_logged_in\": %u,\n  \"workers\": %u,\n"
               "  \"draining\": %s,\n  \"max_connections\": %u,\n"
               "  \"open_files_limit\": %" PRIu64 ",\n  \"open_files_wanted\": %" PRIu64,
               (long long)s->since, (long long)g->now, (long long)g->started, g->connections,
               g->logged_in, g->workers, g->draining ? "true" : "false", g->max_connections,
               g->open_files_limit, g->open_files_wanted);
    for (unsigned k = 0; k < FAMILIES; k++)
        json_family(out, s, &families[k]);
    buf_puts(out, "\n}\n");
}

/* ---- Text: what an operator reads; zero counts are left out ---- */

/* Upper bound of the bucket holding quantile q, in milliseconds (-1: above the last). */
static double quantile_ms(const uint64_t *v, double q)
{
    uint64_t total = stats_hist_count(v), seen = 0;
    for (unsigned b = 0; b < STATS_BUCKETS - 1; b++) {
        seen += v[b];
        if ((double)seen >= q * (double)total)
            return (double)stats_bucket_us[b] / 1000.0;
    }
    return -1.0;
}

static void text_quantile(struct buf *out, const uint64_t *v, double q)
{
    double ms = quantile_ms(v, q);
    if (ms < 0)
        buf_printf(out, " %9s", ">10000");
    else
        buf_printf(out, " %9g", ms);
}

static void text_histogram_row(struct buf *out, const char *name, const uint64_t *v)
{
    uint64_t n = stats_hist_count(v);
    if (n == 0)
        return;
    buf_printf(out, "  %-22s %10" PRIu64 " %9.3f", name, n,
               (double)v[STATS_BUCKETS] / 1000.0 / (double)n);
    text_quantile(out, v, 0.5);
    text_quantile(out, v, 0.9);
    text_quantile(out, v, 0.99);
    buf_puts(out, "\n");
}

static void text_counters(struct buf *out, const struct stats_snapshot *s, const struct family *f)
{
    int any = 0;
    buf_printf(out, "%-21s", f->name);
    for (unsigned i = 0; i < f->nvalues; i++) {
        for (unsigned j = 0; j < f->nvalues2; j++) {
            uint64_t v = series(s, f, i, j)[0];
            if (v == 0)
                continue;
            buf_puts(out, " ");
            if (f->label != NULL)
                buf_printf(out, "%s%s%s=", f->values[i], f->label2 ? "/" : "",
                           f->label2 ? f->values2[j] : "");
            buf_printf(out, "%" PRIu64, v);
            any = 1;
        }
    }
    buf_puts(out, any ? "\n" : " 0\n");
}

static void render_text(const struct stats_snapshot *s, const struct stats_gauges *g,
                        struct buf *out)
{
    char since[32] = "?";
    struct tm tm;
    if (localtime_r(&s->since, &tm) != NULL)
        strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm);
    buf_printf(out, "counting since %s (%llds)\n", since,
               (long long)(g->now > s->since ? g->now - s->since : 0));
    buf_printf(out, "%-21s %u open, %u logged in, %u workers%s\n", "now", g->connections,
               g->logged_in, g->workers, g->draining ? ", draining" : "");
    buf_printf(out, "%-21s max_connections=%u open_files=%" PRIu64 " (wanted %" PRIu64 ")\n",
               "limits", g->max_connections, g->open_files_limit, g->open_files_wanted);
    for (unsigned k = 0; k < FAMILIES; k++) {
        if (families[k].kind == COUNTER)
            text_counters(out, s, &families[k]);
    }
    buf_printf(out, "\n  %-22s %10s %9s %9s %9s %9s\n", "timings (ms)", "count", "avg", "p50<=",
               "p90<=", "p99<=");
    for (unsigned k = 0; k < FAMILIES; k++) {
        const struct family *f = &families[k];
        if (f->kind != HISTOGRAM)
            continue;
        /* "command RETR", "index_sync rescan", "ldap" */
        int prefix = (int)(strstr(f->name, "_duration") - f->name);
        for (unsigned i = 0; i < f->nvalues; i++) {
            char name[64];
            snprintf(name, sizeof(name), "%.*s%s%s", prefix, f->name, f->label ? " " : "",
                     f->label ? f->values[i] : "");
            text_histogram_row(out, name, series(s, f, i, 0));
        }
    }
}

int stats_render(const struct stats_snapshot *s, const struct stats_gauges *g,
                 enum stats_format f, struct buf *out)
{
    /* The documents are a few tens of KB; out's limit must allow 64 KB more. */
    if (buf_reserve(out, 64 * 1024) == -1)
        return -1;
    if (f == STATS_PROMETHEUS)
        render_prometheus(s, g, out);
    else if (f == STATS_JSON)
        render_json(s, g, out);
    else
        render_text(s, g, out);
    return 0;
}
