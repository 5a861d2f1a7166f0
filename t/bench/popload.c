/*
 * popload: options, worker processes, coordination, the report.
 *
 * The parent never talks POP3: it forks --procs workers (each one epoll
 * loop, client.c), measures the server's process tree before and after,
 * and for `idle` measures its memory while every worker holds its
 * connections (workers say "ready" on a pipe, wait for a release byte).
 * Each worker sends back one struct result; the parent sums them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "popload.h"

#define MAX_PROCS 64

static const char *const scenario_names[] = { "login", "download", "drain", "idle", "bigbox" };
static const char *const err_names[ERR_KINDS] = { "connect", "closed", "err_reply", "protocol",
                                                  "verify", "timeout", "tls" };

double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* --- users ------------------------------------------------------------ */

static char **list_names, **list_pw;
static long list_n;

int users_load(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[1024];
    long cap = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *colon = strchr(line, ':');
        if (line[0] == '#' || !colon)
            continue;
        *colon = '\0';
        char *pw = colon + 1;
        pw[strcspn(pw, ":")] = '\0';
        if (strncmp(pw, "{PLAIN}", 7) == 0)
            pw += 7;
        if (list_n == cap) {
            cap = cap ? cap * 2 : 1024;
            list_names = realloc(list_names, (size_t)cap * sizeof(char *));
            list_pw = realloc(list_pw, (size_t)cap * sizeof(char *));
            if (!list_names || !list_pw) {
                fclose(f);
                return -1;
            }
        }
        list_names[list_n] = strdup(line);
        list_pw[list_n] = strdup(pw);
        list_n++;
    }
    fclose(f);
    return list_n > 0 ? 0 : -1;
}

long users_count(void) { return list_n; }

void user_name(const struct opts *o, long idx, char *name, size_t size, const char **password)
{
    if (o->user) {
        snprintf(name, size, "%s", o->user);
        *password = o->password;
    } else if (o->user_list) {
        snprintf(name, size, "%s", list_names[idx % list_n]);
        *password = list_pw[idx % list_n];
    } else {
        snprintf(name, size, "user%04ld", o->first_user + idx);
        *password = o->password;
    }
}

/* --- options ---------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
        "usage: popload --port P [--host 127.0.0.1] --scenario login|download|drain|idle|bigbox\n"
        "               [--concurrency C] [--duration S] [--sessions N] [--procs N]\n"
        "               [--users N [--first-user K (default 1)] | --user-list FILE | --user NAME]\n"
        "               [--password PW] [--stat-only] [--wait-close] [--sources N] [--timeout S]\n"
        "               [--connections C --hold T] [--server-pid PID] [--quiet]\n"
        "               [--tls implicit|stls [--tls-resume] [--tls-version 1.2|1.3]\n"
        "                [--tls-cert ecdsa|rsa] [--tls-groups LIST]]\n"
        "       popload --null-server PORT [--procs N]\n");
    exit(2);
}

static int scenario_of(const char *s)
{
    for (unsigned i = 0; i < sizeof(scenario_names) / sizeof(*scenario_names); i++)
        if (strcmp(s, scenario_names[i]) == 0)
            return (int)i;
    return -1;
}

static double num(const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "popload: bad number %s (range %g..%g)\n", s, min, max);
        exit(2);
    }
    return v;
}

static void parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        { "host", 1, 0, 'h' }, { "port", 1, 0, 'p' }, { "scenario", 1, 0, 's' },
        { "concurrency", 1, 0, 'c' }, { "duration", 1, 0, 'd' }, { "sessions", 1, 0, 'n' },
        { "users", 1, 0, 'u' }, { "first-user", 1, 0, 'f' }, { "password", 1, 0, 'w' },
        { "user-list", 1, 0, 'l' }, { "user", 1, 0, 'U' }, { "procs", 1, 0, 'P' },
        { "connections", 1, 0, 'C' }, { "hold", 1, 0, 'H' }, { "sources", 1, 0, 'S' },
        { "server-pid", 1, 0, 'k' }, { "stat-only", 0, 0, 'o' }, { "wait-close", 0, 0, 'x' }, { "timeout", 1, 0, 't' },
        { "null-server", 1, 0, 'N' }, { "quiet", 0, 0, 'q' }, { "tls", 1, 0, 'T' },
        { "tls-resume", 0, 0, 'R' }, { "tls-version", 1, 0, 'V' }, { "tls-cert", 1, 0, 'K' },
        { "tls-groups", 1, 0, 'G' }, { 0, 0, 0, 0 },
    };
    *o = (struct opts){ .host = "127.0.0.1", .scenario = SC_LOGIN, .concurrency = 50,
                        .duration = 10, .first_user = 1, .password = "password", .procs = 1,
                        .connections = 1000, .hold = 10, .timeout = 30, .tls_version = 13 };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': o->host = optarg; break;
        case 'p': o->port = (int)num(optarg, 1, 65535); break;
        case 's':
            if (scenario_of(optarg) < 0)
                usage();
            o->scenario = (enum scenario)scenario_of(optarg);
            break;
        case 'c': o->concurrency = (int)num(optarg, 1, 1000000); break;
        case 'd': o->duration = num(optarg, 0.1, 86400); break;
        case 'n': o->sessions = (long)num(optarg, 0, 1e12); break;
        case 'u': o->users = (long)num(optarg, 1, 1e8); break;
        case 'f': o->first_user = (long)num(optarg, 0, 1e8); break;
        case 'w': o->password = optarg; break;
        case 'l': o->user_list = optarg; break;
        case 'U': o->user = optarg; break;
        case 'P': o->procs = (int)num(optarg, 1, MAX_PROCS); break;
        case 'C': o->connections = (long)num(optarg, 1, 1e7); break;
        case 'H': o->hold = num(optarg, 0, 86400); break;
        case 'S': o->sources = (int)num(optarg, 0, 250); break;
        case 'k': o->server_pid = (pid_t)num(optarg, 1, 1e9); break;
        case 'o': o->stat_only = 1; break;
        case 'x': o->wait_close = 1; break;
        case 't': o->timeout = num(optarg, 0.1, 3600); break;
        case 'N': o->null_port = (int)num(optarg, 1, 65535); break;
        case 'q': o->quiet = 1; break;
        case 'T':
            if (strcmp(optarg, "implicit") == 0)
                o->tls = TLS_IMPLICIT;
            else if (strcmp(optarg, "stls") == 0)
                o->tls = TLS_STLS;
            else
                usage();
            break;
        case 'R': o->tls_resume = 1; break;
        case 'V':
            if (strcmp(optarg, "1.2") != 0 && strcmp(optarg, "1.3") != 0)
                usage();
            o->tls_version = optarg[2] == '2' ? 12 : 13;
            break;
        case 'K':
            if (strcmp(optarg, "ecdsa") != 0 && strcmp(optarg, "rsa") != 0)
                usage();
            o->tls_cert = optarg;
            break;
        case 'G': o->tls_groups = optarg; break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
}

static int check(struct opts *o)
{
    struct in_addr a;
    if (inet_pton(AF_INET, o->host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "popload: %s is not a 127.0.0.0/8 address: loopback only\n", o->host);
        return -1;
    }
    if (!o->port) {
        fprintf(stderr, "popload: --port is required\n");
        return -1;
    }
    if (o->user_list && users_load(o->user_list) == -1) {
        fprintf(stderr, "popload: cannot read users from %s\n", o->user_list);
        return -1;
    }
    long nusers = o->user ? 1 : o->user_list ? users_count() : o->users;
    if (nusers == 0) {
        fprintf(stderr, "popload: give --users N, --user-list FILE or --user NAME\n");
        return -1;
    }
    if (o->scenario == SC_IDLE) {
        if (o->user || nusers < o->connections) {
            fprintf(stderr, "popload: idle needs one user per connection (%ld users, %ld "
                    "connections)\n", nusers, o->connections);
            return -1;
        }
        if (o->procs > o->connections)
            o->procs = (int)o->connections;
    } else if (o->user ? (long)o->procs * o->concurrency != 1
                       : nusers < (long)o->procs * o->concurrency) {
        fprintf(stderr, "popload: %ld users for %ld concurrent sessions: each session in "
                "flight needs a mailbox of its own\n", nusers, (long)o->procs * o->concurrency);
        return -1;
    }
    return 0;
}

/* --- the run ---------------------------------------------------------- */

static int read_full(int fd, void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Wait (bounded) until every worker has said it holds its connections. */
static void wait_ready(int *fds, int n, double limit)
{
    int ready = 0;
    struct pollfd pf[MAX_PROCS];
    for (int i = 0; i < n; i++)
        pf[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
    while (ready < n && now_mono() < limit) {
        if (poll(pf, (nfds_t)n, 500) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            char b;
            if ((pf[i].revents & (POLLIN | POLLHUP)) && read(fds[i], &b, 1) == 1) {
                pf[i].fd = -1;
                ready++;
            }
        }
    }
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

struct memory {
    uint64_t rss0, pss0, rss, pss;
    int nprocs;
    int ok;
};

static void report(const struct opts *o, const struct result *r, double cpu, int cpu_procs,
                   const struct memory *m)
{
    uint64_t errors = 0;
    for (int k = 0; k < ERR_KINDS; k++)
        errors += r->errors[k];
    double el = r->elapsed > 0 ? r->elapsed : 1e-9;
    double p50 = (double)hist_quantile(&r->lat, 0.5) / 1000,
           p99 = (double)hist_quantile(&r->lat, 0.99) / 1000,
           p999 = (double)hist_quantile(&r->lat, 0.999) / 1000,
           mx = (double)r->lat.max_us / 1000;
    double sps = (double)r->sessions / el, cps = (double)r->commands / el,
           mbs = (double)r->bytes_in / 1e6 / el;
    double cpu_ms = r->sessions ? cpu * 1000 / (double)r->sessions : 0;
    uint64_t conns = r->idle_established ? r->idle_established : 1;
    if (!o->quiet) {
        printf("popload: %s, %d process(es) x %d in flight, %.2f s\n", scenario_names[o->scenario],
               o->procs, o->concurrency, r->elapsed);
        printf("  sessions %llu (%.1f/s)  commands %llu (%.1f/s)  received %.1f MB (%.1f MB/s)\n",
               (unsigned long long)r->sessions, sps, (unsigned long long)r->commands, cps,
               (double)r->bytes_in / 1e6, mbs);
        printf("  session latency p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n", p50,
               p99, p999, mx);
        printf("  errors %llu", (unsigned long long)errors);
        for (int k = 0; k < ERR_KINDS; k++)
            if (r->errors[k])
                printf(" %s=%llu", err_names[k], (unsigned long long)r->errors[k]);
        printf("  unfinished %llu\n", (unsigned long long)r->unfinished);
        if (o->server_pid)
            printf("  server cpu %.2f s (%.3f ms/session) over %d processes\n", cpu, cpu_ms,
                   cpu_procs);
        if (o->scenario == SC_IDLE)
            printf("  idle: %llu of %ld connections logged in and held\n",
                   (unsigned long long)r->idle_established, o->connections);
        if (o->tls)
            printf("  TLS (%s): %llu handshakes, %llu resumed; %s %s %s %s\n",
                   o->tls == TLS_STLS ? "STLS" : "implicit",
                   (unsigned long long)r->tls_handshakes, (unsigned long long)r->tls_resumed,
                   r->tls_version, r->tls_cipher, r->tls_group, r->tls_key);
        if (m->ok)
            printf("  server memory: RSS %.1f MB, PSS %.1f MB in %d processes; over the idle "
                   "baseline %.2f KB RSS, %.2f KB PSS per connection\n", (double)m->rss / 1024,
                   (double)m->pss / 1024, m->nprocs, (double)(m->rss - m->rss0) / (double)conns,
                   (double)(m->pss - m->pss0) / (double)conns);
    }
    printf("{\"scenario\":\"%s\",\"procs\":%d,\"concurrency\":%d,\"elapsed_s\":%.3f,"
           "\"sessions\":%llu,\"commands\":%llu,\"bytes_in\":%llu,\"retr_octets\":%llu,"
           "\"sessions_per_s\":%.2f,\"commands_per_s\":%.2f,\"mb_per_s\":%.3f,"
           "\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_p999_ms\":%.3f,\"lat_max_ms\":%.3f,"
           "\"errors\":%llu,\"unfinished\":%llu",
           scenario_names[o->scenario], o->procs, o->concurrency, r->elapsed,
           (unsigned long long)r->sessions, (unsigned long long)r->commands,
           (unsigned long long)r->bytes_in, (unsigned long long)r->retr_octets, sps, cps, mbs,
           p50, p99, p999, mx, (unsigned long long)errors, (unsigned long long)r->unfinished);
    for (int k = 0; k < ERR_KINDS; k++)
        printf(",\"err_%s\":%llu", err_names[k], (unsigned long long)r->errors[k]);
    if (o->server_pid)
        printf(",\"server_cpu_s\":%.3f,\"server_cpu_ms_per_session\":%.4f,\"server_procs\":%d",
               cpu, cpu_ms, cpu_procs);
    if (o->tls)
        printf(",\"tls\":\"%s\",\"tls_resume\":%d,\"tls_handshakes\":%llu,\"tls_resumed\":%llu,"
               "\"tls_version\":\"%s\",\"tls_cipher\":\"%s\",\"tls_group\":\"%s\","
               "\"tls_key\":\"%s\",\"tls_resumed_pct\":%.1f", o->tls == TLS_STLS ? "stls" : "implicit",
               o->tls_resume, (unsigned long long)r->tls_handshakes,
               (unsigned long long)r->tls_resumed, r->tls_version, r->tls_cipher, r->tls_group,
               r->tls_key, r->tls_handshakes ? 100.0 * (double)r->tls_resumed /
                                               (double)r->tls_handshakes : 0.0);
    if (o->scenario == SC_IDLE)
        printf(",\"connections\":%ld,\"established\":%llu", o->connections,
               (unsigned long long)r->idle_established);
    if (m->ok)
        printf(",\"rss_kb_base\":%llu,\"pss_kb_base\":%llu,\"rss_kb\":%llu,\"pss_kb\":%llu,"
               "\"rss_kb_per_conn\":%.3f,\"pss_kb_per_conn\":%.3f,\"mem_procs\":%d",
               (unsigned long long)m->rss0, (unsigned long long)m->pss0,
               (unsigned long long)m->rss, (unsigned long long)m->pss,
               (double)(m->rss - m->rss0) / (double)conns,
               (double)(m->pss - m->pss0) / (double)conns, m->nprocs);
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct opts o;
    parse(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (o.null_port)
        return null_server_run(o.null_port, o.procs) == 0 ? 0 : 1;
    if (check(&o) == -1)
        return 2;

    int res_fd[MAX_PROCS], rel_fd[MAX_PROCS];
    pid_t kids[MAX_PROCS];
    struct memory mem = { 0 };
    double cpu0 = 0;
    if (o.server_pid) {
        cpu0 = tree_cpu_seconds(o.server_pid, NULL);
        if (o.scenario == SC_IDLE)
            tree_memory_kib(o.server_pid, &mem.rss0, &mem.pss0, NULL);
    }
    long first_conn = 0;
    for (int i = 0; i < o.procs; i++) {
        int rp[2], cp[2];
        if (pipe2(rp, O_CLOEXEC) == -1 || pipe2(cp, O_CLOEXEC) == -1) {
            perror("popload: pipe");
            return 1;
        }
        long nconns = o.connections / o.procs + (i < o.connections % o.procs);
        long sessions = o.sessions ? o.sessions / o.procs + (i < o.sessions % o.procs) : 0;
        if (o.sessions && sessions == 0)
            sessions = -1;   /* more processes than sessions: this one has none */
        kids[i] = fork();
        if (kids[i] == -1) {
            perror("popload: fork");
            return 1;
        }
        if (kids[i] == 0) {
            static struct result r;
            close(rp[0]);
            close(cp[1]);
            if (sessions == -1) {
                memset(&r, 0, sizeof(r));
            } else if (client_run(&o, i, sessions, first_conn, nconns, rp[1], cp[0], &r) == -1) {
                perror("popload: worker");
                _exit(1);
            }
            if (o.scenario == SC_IDLE && sessions == -1 && write(rp[1], "R", 1) != 1)
                _exit(1);
            _exit(write(rp[1], &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
        }
        close(rp[1]);
        close(cp[0]);
        res_fd[i] = rp[0];
        rel_fd[i] = cp[1];
        first_conn += nconns;
    }
    if (o.scenario == SC_IDLE) {
        wait_ready(res_fd, o.procs, now_mono() + o.duration + o.timeout + 60);
        sleep_s(o.hold);
        if (o.server_pid)
            mem.ok = tree_memory_kib(o.server_pid, &mem.rss, &mem.pss, &mem.nprocs) == 0;
        for (int i = 0; i < o.procs; i++)
            if (write(rel_fd[i], "G", 1) != 1)
                perror("popload: release");
    }
    static struct result total, one;
    int failed = 0;
    for (int i = 0; i < o.procs; i++) {
        if (read_full(res_fd[i], &one, sizeof(one)) == -1) {
            fprintf(stderr, "popload: worker %d sent no result\n", i);
            failed = 1;
            continue;
        }
        if (one.elapsed > total.elapsed)
            total.elapsed = one.elapsed;
        total.sessions += one.sessions;
        total.commands += one.commands;
        total.bytes_in += one.bytes_in;
        total.retr_octets += one.retr_octets;
        total.unfinished += one.unfinished;
        total.idle_established += one.idle_established;
        total.tls_handshakes += one.tls_handshakes;
        total.tls_resumed += one.tls_resumed;
        if (!total.tls_version[0]) {
            memcpy(total.tls_version, one.tls_version, sizeof(total.tls_version));
            memcpy(total.tls_cipher, one.tls_cipher, sizeof(total.tls_cipher));
            memcpy(total.tls_group, one.tls_group, sizeof(total.tls_group));
            memcpy(total.tls_key, one.tls_key, sizeof(total.tls_key));
        }
        for (int k = 0; k < ERR_KINDS; k++)
            total.errors[k] += one.errors[k];
        hist_merge(&total.lat, &one.lat);
    }
    for (int i = 0; i < o.procs; i++) {
        int st;
        while (waitpid(kids[i], &st, 0) == -1 && errno == EINTR)
            ;
        close(res_fd[i]);
        close(rel_fd[i]);
    }
    int cpu_procs = 0;
    double cpu = o.server_pid ? tree_cpu_seconds(o.server_pid, &cpu_procs) - cpu0 : 0;
    report(&o, &total, cpu, cpu_procs, &mem);
    uint64_t errors = 0;
    for (int k = 0; k < ERR_KINDS; k++)
        errors += total.errors[k];
    return failed ? 1 : errors ? 3 : 0;
}
