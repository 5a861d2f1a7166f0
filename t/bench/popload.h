/*
 * popload: the POP3 load generator of the fastpop benchmark (see README.md).
 *
 * popload.c   options, the worker processes, coordination, the report
 * client.c    the epoll client: one state machine per connection, every
 *             response verified
 * nullserver.c  --null-server: canned POP3 from memory (the ceiling)
 * procstat.c  CPU time and memory (smaps_rollup) of a server's process tree
 * hist.c      the latency histogram
 * tlsclient.c  implicit TLS and STLS (OpenSSL), session resumption by ticket
 *
 * Loopback only: a target outside 127.0.0.0/8 is refused.
 */
#ifndef POPLOAD_H
#define POPLOAD_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/types.h>

enum scenario { SC_LOGIN, SC_DOWNLOAD, SC_DRAIN, SC_IDLE, SC_BIGBOX };

/* How a session gets TLS: none, from the first byte (a 995-style port), or by STLS. */
enum tls_mode { TLS_OFF, TLS_IMPLICIT, TLS_STLS };

/* Why a session failed; each is counted separately. */
enum err_kind {
    ERR_CONNECT,   /* connect(2) or bind(2) failed */
    ERR_CLOSED,    /* the server closed or reset the connection mid-session */
    ERR_NEG,       /* an -ERR status line */
    ERR_PROTO,     /* a malformed status line or multi-line body */
    ERR_VERIFY,    /* a count or size that does not match (RETR octets != LIST size) */
    ERR_TIMEOUT,   /* no complete response within --timeout */
    ERR_TLS,       /* the TLS handshake failed */
    ERR_KINDS
};

struct opts {
    const char *host;
    int port;
    enum scenario scenario;
    int concurrency;         /* sessions in flight per process (idle: logins in flight) */
    double duration;         /* seconds of load (idle: the limit on the ramp) */
    long sessions;           /* stop after this many sessions in total; 0 = no limit */
    long users;              /* user%04d names, first_user .. first_user+users-1 */
    long first_user;
    const char *password;
    const char *user_list;   /* a passwd-like file instead of --users */
    const char *user;        /* one fixed user (bigbox) */
    int procs;
    long connections;        /* idle: connections in total */
    double hold;             /* idle: seconds to hold them once all are logged in */
    int sources;             /* source addresses 127.0.0.2 .. 127.0.0.(1+sources) */
    pid_t server_pid;        /* measure CPU and memory of this process and descendants */
    int stat_only;           /* bigbox: login+STAT+QUIT */
    int wait_close;          /* a session ends at the server's close, not QUIT's +OK */
    double timeout;          /* per response */
    int null_port;           /* --null-server PORT */
    int quiet;
    enum tls_mode tls;
    int tls_resume;          /* offer each slot's last session ticket */
    int tls_version;         /* highest version offered: 12 or 13 */
    const char *tls_cert;    /* "ecdsa" or "rsa": the only signatures offered; NULL any */
    const char *tls_groups;  /* key exchange groups offered (OpenSSL list); NULL default */
};

/* Log-linear latency histogram in microseconds, about 3% resolution. */
#define HIST_BUCKETS 1280
struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t n;
    uint64_t max_us;
};
void     hist_add(struct hist *h, uint64_t us);
void     hist_merge(struct hist *into, const struct hist *from);
/* The value at quantile q (0..1) in microseconds, 0 if empty. */
uint64_t hist_quantile(const struct hist *h, double q);

/* What one worker process reports to the parent (same binary: sent raw over a pipe). */
struct result {
    double elapsed;          /* seconds from the first connect to the last finished session */
    uint64_t sessions;       /* completed without error */
    uint64_t commands;       /* commands answered as expected */
    uint64_t bytes_in;       /* octets received from the server */
    uint64_t retr_octets;    /* RETR message octets verified */
    uint64_t errors[ERR_KINDS];
    uint64_t unfinished;     /* sessions cut off when the run ended (not errors) */
    uint64_t idle_established;  /* idle: connections logged in when the hold began */
    uint64_t tls_handshakes;    /* completed */
    uint64_t tls_resumed;       /* of which resumed a session (no certificate, no signature) */
    char tls_version[16], tls_cipher[48], tls_group[24], tls_key[24];  /* the first one's */
    struct hist lat;
};

/* Run this process's share of the load; ready_fd/release_fd coordinate idle. */
int client_run(const struct opts *o, int proc_index, long sessions, long first_conn,
               long nconns, int ready_fd, int release_fd, struct result *res);

/* Users from --user-list (loaded once before forking). */
int users_load(const char *path);
long users_count(void);
void user_name(const struct opts *o, long idx, char *name, size_t size, const char **password);

/* TLS (tlsclient.c): see there. */
SSL_CTX *tlsc_ctx_new(const struct opts *o);
SSL *tlsc_new(SSL_CTX *ctx, int fd, SSL_SESSION **keep);
int tlsc_handshake(SSL *ssl, int *want_out);
ssize_t tlsc_read(SSL *ssl, char *buf, size_t len);
ssize_t tlsc_write(SSL *ssl, const char *buf, size_t len);
void tlsc_close(SSL *ssl, int polite);
void tlsc_describe(SSL *ssl, struct result *res);

/* Serve canned POP3 on 127.0.0.1:port with procs processes until SIGTERM/SIGINT. */
int null_server_run(int port, int procs);

/* The process tree rooted at pid: CPU seconds (utime+stime+cutime+cstime of all). */
double tree_cpu_seconds(pid_t root, int *nprocs);
/* Sum of Rss and Pss (KiB) over the tree, from /proc/PID/smaps_rollup. 0 on success. */
int tree_memory_kib(pid_t root, uint64_t *rss, uint64_t *pss, int *nprocs);

double now_mono(void);
void raise_nofile(void);

#endif
