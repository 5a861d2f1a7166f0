/*
 * What each popctl verb does in the master (protocol in daemon/master/control.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/control_args.h"
#include "daemon/master/control_state.h"
#include "daemon/master/service_notify.h"
#include "daemon/runtime/escape.h"
#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "shm/scoreboard.h"
#include "shm/stats.h"
#include "daemon/metrics/stats_render.h"

static int verb_status(struct reply *r, int argc, char **argv)
{
    struct control *ctl = r->ctl;
    static struct control_child kids[MAX_CHILDREN];
    char uptime[32], pid[16], workers[2048] = "", helper[16] = "-", metrics[16] = "-";
    char sessions[16];
    (void)argv;
    if (argc != 1)
        return control_reply_end(r, CONTROL_BAD, "usage: status");
    int n = ctl->hooks.children(ctl->hooks.ctx, kids, MAX_CHILDREN);
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(kids[i].role, "auth") == 0) {
            snprintf(helper, sizeof(helper), "%d", (int)kids[i].pid);
        } else if (strcmp(kids[i].role, "metrics") == 0) {
            snprintf(metrics, sizeof(metrics), "%d", (int)kids[i].pid);
        } else if (used + 16 < sizeof(workers)) {
            int w = snprintf(workers + used, sizeof(workers) - used, "%s%d%s", used ? " " : "",
                             (int)kids[i].pid, kids[i].retiring ? "(retiring)" : "");
            used += w > 0 ? (size_t)w : 0;
        }
    }
    snprintf(uptime, sizeof(uptime), "%.0f", clock_mono() - ctl->started);
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    snprintf(sessions, sizeof(sessions), "%u", scoreboard_active(ctl->sb));
    const char *row[] = { "version", FASTPOP_VERSION, "pid", pid, "uptime", uptime,
                          "config", ctl->cfg->path, "workers", workers, "helper", helper,
                          "draining", scoreboard_master_draining(ctl->sb) ? "yes" : "no",
                          "stopping", ctl->hooks.stopping(ctl->hooks.ctx) ? "yes" : "no",
                          "sessions", sessions, "metrics", metrics, NULL };
    control_reply_row(r, row);
    return control_reply_end(r, CONTROL_OK, "running");
}

/*
 * who's and kick's target. Sessions keep their whole user name (up to
 * SCOREBOARD_USER_MAX - 1 bytes): a longer one can match nothing, so it
 * is refused rather than answered "0".
 */
static int parse_target(struct reply *r, const char *text, struct control_target *t,
                        const char *usage)
{
    if (control_parse_target(text, t) == -1) {
        control_reply_end(r, CONTROL_BAD, "%s", usage);
        return -1;
    }
    if (t->user != NULL && strlen(t->user) >= SCOREBOARD_USER_MAX) {
        control_reply_end(r, CONTROL_BAD, "user names are at most %d bytes",
                          SCOREBOARD_USER_MAX - 1);
        return -1;
    }
    return 0;
}

static int verb_who(struct reply *r, int argc, char **argv)
{
    struct control_target t;
    static const char usage[] = "usage: who [USER|IP[/PREFIX]]";
    if (argc > 2)
        return control_reply_end(r, CONTROL_BAD, "%s", usage);
    if (parse_target(r, argc == 2 ? argv[1] : NULL, &t, usage) == -1)
        return CONTROL_BAD;
    struct scoreboard *sb = r->ctl->sb;
    unsigned shown = 0;
    time_t now = time(NULL);
    for (unsigned i = 0; i < scoreboard_capacity(sb) && !r->failed; i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        if (scoreboard_peek(sb, i, &s, ip, &owner) != 1 || !control_target_match(&t, s.user, ip))
            continue;
        char ipt[INET6_ADDRSTRLEN], port[8], worker[24], since[24], idle[24], bytes[24];
        control_format_ip(ip, ipt, sizeof(ipt));
        snprintf(port, sizeof(port), "%u", (unsigned)s.port);
        snprintf(worker, sizeof(worker), "%u", (unsigned)s.worker);
        snprintf(since, sizeof(since), "%lld", (long long)s.since);
        snprintf(idle, sizeof(idle), "%lld",
                 (long long)(s.active > 0 && now > s.active ? now - s.active : 0));
        snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)s.bytes);
        const char *row[] = { "user", s.user[0] ? s.user : "-", "ip", ipt, "port", port,
                              "worker", worker, "state", s.state, "since", since,
                              "idle", idle, "bytes", bytes, "tls", s.tls[0] ? s.tls : "no",
                              NULL };
        control_reply_row(r, row);
        shown++;
    }
    return control_reply_end(r, CONTROL_OK, "%u", shown);
}

static int verb_kick(struct reply *r, int argc, char **argv)
{
    struct control_target t;
    static const char usage[] = "usage: kick USER|IP[/PREFIX]";
    if (argc != 2)
        return control_reply_end(r, CONTROL_BAD, "%s", usage);
    if (parse_target(r, argv[1], &t, usage) == -1)
        return CONTROL_BAD;
    struct scoreboard *sb = r->ctl->sb;
    unsigned kicked = 0;
    for (unsigned i = 0; i < scoreboard_capacity(sb); i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        if (scoreboard_peek(sb, i, &s, ip, &owner) == 1 && control_target_match(&t, s.user, ip)) {
            scoreboard_kick(sb, i, SB_KICK_IDLE);
            kicked++;
        }
    }
    if (kicked > 0)
        r->ctl->hooks.wake_workers(r->ctl->hooks.ctx);
    char target[TEXT_LOG_ESCAPE_SIZE(SCOREBOARD_USER_MAX)];
    log_info("control: kick %s: %u session(s)", text_log_escape(argv[1], target, sizeof(target)),
             kicked);
    return control_reply_end(r, CONTROL_OK, "%u", kicked);
}

static int verb_drain(struct reply *r, int argc, char **argv)
{
    struct control *ctl = r->ctl;
    const char *deadline = control_option(argc, argv, "deadline");
    const char *message = control_option(argc, argv, "message");
    long seconds = deadline ? control_parse_seconds(deadline) : ctl->cfg->shutdown_timeout;
    if (seconds < 0)
        return control_reply_end(r, CONTROL_BAD, "drain: deadline must be 0..86400 seconds");
    scoreboard_set_drain(ctl->sb, 1, message);
    ctl->drain_deadline_set = 1;
    ctl->drain_deadline = clock_mono() + (double)seconds;
    if (ev_timer_arm(ctl->ev, &ctl->drain_timer, ctl->drain_deadline) == -1)
        log_error("control: no memory for the drain deadline; sessions end by drain_idle_timeout");
    ctl->drain_cut = 0;
    ctl->hooks.wake_workers(ctl->hooks.ctx);
    service_notify_status("draining: new connections refused");
    log_info("control: draining: new connections refused, %u session(s) have %lds to end",
             scoreboard_active(ctl->sb), seconds);
    return control_reply_end(r, CONTROL_OK, "%u", scoreboard_active(ctl->sb));
}

/*
 * What popctl drain shows while it waits: the sessions left (logged_in of
 * them are being served to their QUIT), how many the deadline cut, the
 * seconds to it, and the idle limit that ends the others sooner.
 */
static int verb_drain_status(struct reply *r, int argc, char **argv)
{
    struct control *ctl = r->ctl;
    struct stats_gauges g;
    char sessions[16], logged_in[16], cut[16], left[32], idle[16];
    (void)argv;
    if (argc != 1)
        return control_reply_end(r, CONTROL_BAD, "usage: drain-status");
    double rest = ctl->drain_deadline_set ? ctl->drain_deadline - clock_mono() : -1.0;
    control_gauges(ctl, &g);
    snprintf(sessions, sizeof(sessions), "%u", scoreboard_active(ctl->sb));
    snprintf(logged_in, sizeof(logged_in), "%u", g.logged_in);
    snprintf(cut, sizeof(cut), "%u", ctl->drain_cut);
    snprintf(left, sizeof(left), "%.1f", rest < 0 ? 0.0 : rest);
    snprintf(idle, sizeof(idle), "%d", ctl->cfg->drain_idle_timeout);
    const char *row[] = { "draining", scoreboard_master_draining(ctl->sb) ? "yes" : "no",
                          "sessions", sessions, "logged_in", logged_in, "cut", cut,
                          "deadline_left", left, "idle_limit", idle, NULL };
    control_reply_row(r, row);
    return control_reply_end(r, CONTROL_OK, "ok");
}

static int verb_undrain(struct reply *r, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return control_reply_end(r, CONTROL_BAD, "usage: undrain");
    scoreboard_set_drain(r->ctl->sb, 0, NULL);
    r->ctl->drain_deadline_set = 0;
    ev_timer_cancel(r->ctl->ev, &r->ctl->drain_timer);
    r->ctl->hooks.wake_workers(r->ctl->hooks.ctx);
    service_notify_status("serving");
    log_info("control: drain ended: accepting connections");
    return control_reply_end(r, CONTROL_OK, "accepting");
}

static int verb_reload(struct reply *r, int argc, char **argv)
{
    char err[512];
    (void)argv;
    if (argc != 1)
        return control_reply_end(r, CONTROL_BAD, "usage: reload");
    if (r->ctl->hooks.reload(r->ctl->hooks.ctx, err, sizeof(err)) == -1)
        return control_reply_end(r, CONTROL_FAILED, "%s", err);
    return control_reply_end(r, CONTROL_OK, "reloaded %s", r->ctl->cfg->path);
}

static int verb_stop(struct reply *r, int argc, char **argv)
{
    const char *deadline = control_option(argc, argv, "deadline");
    long seconds = deadline ? control_parse_seconds(deadline) : r->ctl->cfg->shutdown_timeout;
    if (seconds < 0)
        return control_reply_end(r, CONTROL_BAD, "stop: deadline must be 0..86400 seconds");
    control_reply_end(r, CONTROL_OK, "stopping");
    r->ctl->hooks.stop(r->ctl->hooks.ctx, (int)seconds);
    return CONTROL_OK;
}

void control_gauges(struct control *ctl, struct stats_gauges *g)
{
    static struct control_child kids[MAX_CHILDREN];
    memset(g, 0, sizeof(*g));
    int n = ctl->hooks.children(ctl->hooks.ctx, kids, MAX_CHILDREN);
    for (int i = 0; i < n; i++)
        g->workers += strcmp(kids[i].role, "worker") == 0;
    for (unsigned i = 0; i < scoreboard_capacity(ctl->sb); i++) {
        struct scoreboard_session s;
        uint8_t ip[16];
        pid_t owner;
        if (scoreboard_peek(ctl->sb, i, &s, ip, &owner) != 1)
            continue;
        g->connections++;
        g->logged_in += s.user[0] != '\0' && strcmp(s.state, "transaction") == 0;
    }
    g->draining = scoreboard_master_draining(ctl->sb);
    g->max_connections = (unsigned)ctl->cfg->max_connections;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        g->open_files_limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    g->open_files_wanted = config_open_files_wanted(ctl->cfg);
    g->now = time(NULL);
    g->started = ctl->started_wall;
}

int control_render_stats(struct control *ctl, enum stats_format f, enum stats_read how,
                         struct buf *out, struct stats_snapshot *shown)
{
    struct stats_snapshot snap;
    struct stats_gauges g;
    if (ctl->stats == NULL)
        return -1;
    stats_region_read(ctl->stats, &snap, how);
    control_gauges(ctl, &g);
    if (shown != NULL)
        *shown = snap;
    return stats_render(&snap, &g, f, out);
}

/*
 * stats [format=text|json|prometheus]: the document in rows of {"text": piece}.
 * With reset, counting starts anew only once the whole answer went out: a
 * popctl that failed to read it has lost nothing.
 */
static int send_stats(struct reply *r, int argc, char **argv, int reset)
{
    struct stats_snapshot shown;
    enum stats_format f = STATS_TEXT;
    const char *format = control_option(argc, argv, "format");
    if ((format != NULL && stats_format_parse(format, &f) == -1) ||
        argc > 1 + (format != NULL))
        return control_reply_end(r, CONTROL_BAD, "usage: stats [format=text|json|prometheus]");
    struct buf doc;
    buf_init(&doc, CONTROL_STATS_MAX);
    if (control_render_stats(r->ctl, f, STATS_SINCE_RESET, &doc, &shown) == -1) {
        buf_free(&doc);
        return control_reply_end(r, CONTROL_FAILED, "no statistics (see the log at start)");
    }
    for (size_t at = 0; at < buf_len(&doc) && !r->failed;) {
        char piece[CONTROL_STATS_PIECE + 1];
        size_t n = buf_len(&doc) - at;
        if (n > CONTROL_STATS_PIECE)
            n = CONTROL_STATS_PIECE;
        memcpy(piece, buf_rptr(&doc) + at, n);
        piece[n] = '\0';
        const char *row[] = { "text", piece, NULL };
        control_reply_row(r, row);
        at += n;
    }
    buf_free(&doc);
    control_reply_end(r, CONTROL_OK, "%s", reset ? "reset" : "ok");
    if (reset && !r->failed) {
        stats_region_reset(r->ctl->stats, &shown);
        log_info("control: statistics reset");
    }
    return CONTROL_OK;
}

static int verb_stats(struct reply *r, int argc, char **argv)
{
    return send_stats(r, argc, argv, 0);
}

static int verb_stats_reset(struct reply *r, int argc, char **argv)
{
    return send_stats(r, argc, argv, 1);
}

const struct ctl_verb control_verbs[] = {
    { "stats", 0, verb_stats },
    { "stats-reset", 1, verb_stats_reset },
    { "status", 0, verb_status },
    { "who", 0, verb_who },
    { "drain-status", 0, verb_drain_status },
    { "kick", 1, verb_kick },
    { "drain", 1, verb_drain },
    { "undrain", 1, verb_undrain },
    { "reload", 1, verb_reload },
    { "stop", 1, verb_stop },
    { NULL, 0, NULL },
};
