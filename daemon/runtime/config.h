/*
 * fastpop.conf: `key = value` lines, `#` comments (at line start or after
 * whitespace). Every setting lives in one table in config.c with its type,
 * default and bounds; this struct is what the table fills.
 *
 * config_load() returns 0, or -1 with a "file:line: message" in err.
 * The struct holds no pointers, so a loaded config can be copied and
 * compared as a whole (reload builds a new one and swaps it in).
 */
#ifndef FASTPOP_CONFIG_H
#define FASTPOP_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "daemon/runtime/cidr.h"
#include "daemon/runtime/limits.h"   /* CONFIG_MAX_LISTEN, CONFIG_*_MAX, bounds of settings */

#define CONFIG_DEFAULT_PATH "/etc/fastpop/fastpop.conf"
/* A host in a shared mailbox lock file (maildir/shared_lock.h). */
#define CONFIG_HOST_NAME_MAX 64

/* pop3_workarounds, as Dovecot names them (maildir/stream.h). */
enum config_workaround {
    CONFIG_WORKAROUND_OUTLOOK_NO_NULS = 1,
    CONFIG_WORKAROUND_OE_NS_EOH = 2,
};

enum config_mailbox_lock {
    CONFIG_MAILBOX_LOCK_LOCAL,   /* the scoreboard: sessions of this host only */
    CONFIG_MAILBOX_LOCK_SHARED,  /* and a lock file in the maildir, for hosts sharing it */
};

enum config_log_target { CONFIG_LOG_SYSLOG, CONFIG_LOG_STDERR };
enum config_tls_version { CONFIG_TLS_1_2, CONFIG_TLS_1_3 };
enum config_ldap_scope { CONFIG_LDAP_SUB, CONFIG_LDAP_ONE, CONFIG_LDAP_BASE };
enum config_ldap_auth { CONFIG_LDAP_AUTH_BIND, CONFIG_LDAP_AUTH_PASSWORD };
/* pop3_login_delay_action: what a login sooner than LOGIN-DELAY gets. */
enum config_login_delay_action { CONFIG_LOGIN_DELAY_REFUSE, CONFIG_LOGIN_DELAY_LOG };

struct config_listen {
    char spec[CONFIG_NAME_MAX + 16];      /* the address as written, e.g. "[::1]:110" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int tls;                              /* flag "tls": implicit TLS (RFC 8314) */
    int proxy_protocol;                   /* flag "proxy_protocol": PROXY v1/v2 header first */
    int legacy_tls;                       /* flag "legacy_tls": TLS 1.0 and old ciphers too */
    int plaintext_via_proxy;              /* flag "plaintext_via_proxy": passwords without TLS,
                                           * the trusted proxy ended the client's TLS */
};

struct config {
    char path[CONFIG_PATH_MAX];           /* the file it was read from */

    struct config_listen listen[CONFIG_MAX_LISTEN];
    int  listen_count;
    int  workers;                         /* 0 = auto: one per online CPU */

    char user[CONFIG_NAME_MAX];
    char group[CONFIG_NAME_MAX];
    char auth_user[CONFIG_NAME_MAX];
    char control_group[CONFIG_NAME_MAX]; /* may use popctl's read-only verbs; "" = root's */
    char admin_group[CONFIG_NAME_MAX];   /* may also change things; "" = root only */
    char metrics_listen[CONFIG_NAME_MAX + 16]; /* "" = no /metrics endpoint */
    struct config_listen metrics;         /* metrics_listen parsed (addrlen 0 when off) */
    char metrics_user[CONFIG_NAME_MAX];   /* the metrics process runs as this user */
    /* nginx's mail auth_http router (daemon/router/router_main.c); runs as user. */
    char router_listen[CONFIG_NAME_MAX + 16]; /* "" = no router */
    struct config_listen router;          /* router_listen parsed (addrlen 0 when off) */
    char router_backends[CONFIG_PATH_MAX];/* "name=IP:port ..." (config_parse_backends) */
    int  router_check_interval;           /* seconds between health checks of each backend */
    int  router_proxy_protocol;           /* backends' listeners want a PROXY header */
    int  router_cache_ttl;                /* seconds a login's host is remembered */
    char run_dir[CONFIG_PATH_MAX];
    char state_dir[CONFIG_PATH_MAX];
    char pid_file[CONFIG_PATH_MAX];       /* "" = run_dir/fastpopd.pid */
    char auth_helper[CONFIG_PATH_MAX];    /* "" = fastpop-auth beside fastpopd */
    char passwd_file[CONFIG_PATH_MAX];
    char maildir[CONFIG_PATH_MAX];        /* template: %u %n %d %h %% */

    int  log_target;                      /* enum config_log_target */
    int  log_level;                       /* enum log_level */

    int  max_connections;
    int  max_connections_per_ip;        /* per IPv4 address and per IPv6 /64 */
    int  max_connections_per_ipv6_48;
    int  idle_timeout;                    /* seconds */
    int  login_timeout;                   /* seconds from connect to a successful login */
    int  max_preauth_commands;            /* command lines before login */
    int  shutdown_timeout;                /* seconds */
    int  quit_linger;                     /* seconds to wait for the client's close */
    int  drain_idle_timeout;              /* seconds: drained sessions may idle this long */
    int  max_bad_commands;
    int  max_auth_failures;
    int  mark_seen;                       /* RETR adds the S flag */
    int  index;                           /* mailbox index in state_dir/index */
    int  max_messages;                    /* a bigger mailbox's login is refused */
    int  index_max_mb;                    /* the index's map never grows past it */
    char pop3_workarounds[CONFIG_NAME_MAX]; /* as written */
    char dovecot_uidl_format[CONFIG_NAME_MAX]; /* maildir/uidl_format.h */
    int  x_uidl_header;                   /* reuse X-UIDL: headers (maildir/xuidl.h) */
    int  pop3_workarounds_set;            /* enum config_workaround, or-ed */
    int  mailbox_lock;                    /* enum config_mailbox_lock */
    int  mailbox_lock_stale;              /* seconds: a shared lock not touched is free */
    char host_name[CONFIG_HOST_NAME_MAX + 1]; /* in shared locks; "" = gethostname() */
    int  index_recheck;                   /* seconds an own-change stamp of cur/ is trusted */

    char tls_cert[CONFIG_MAX_CERTS][CONFIG_PATH_MAX];  /* pairs with tls_key, in order */
    char tls_key[CONFIG_MAX_CERTS][CONFIG_PATH_MAX];
    int  tls_cert_count;
    int  tls_key_count;
    int  tls_min_version;                 /* enum config_tls_version */
    char tls_ciphers[CONFIG_PATH_MAX];    /* TLS 1.2 and older (OpenSSL cipher list) */
    char tls_ciphersuites[CONFIG_PATH_MAX]; /* TLS 1.3 */
    int  tls_ticket_lifetime;             /* seconds between ticket key rotations */
    int  tls_handshake_timeout;           /* seconds */
    int  plaintext_auth;                  /* USER/PASS, AUTH PLAIN/LOGIN without TLS */
    int  pop3_login_delay;                /* RFC 2449 LOGIN-DELAY, seconds; 0 = none */
    int  pop3_login_delay_action;         /* enum config_login_delay_action */
    int  pop3_expire;                     /* RFC 2449 EXPIRE, days; -1 = NEVER */
    struct cidr_list plaintext_trusted;   /* ...allowed anyway from these networks */
    struct cidr_list proxy_trusted;       /* who may send a PROXY header */
    int  proxy_timeout;                   /* seconds to wait for the PROXY header */

    /* Password databases, in the order asked: "passwd-file", "ldap", "authlib", or the file
     * and one of the others (auth/passdb.h). */
    char passdb[CONFIG_NAME_MAX];
    char ldap_uri[CONFIG_PATH_MAX];       /* one or more URIs, tried in order (auth/passdb_ldap.h) */
    int  ldap_starttls;
    char ldap_tls_ca_file[CONFIG_PATH_MAX];
    char ldap_bind_dn[CONFIG_PATH_MAX];   /* "" = anonymous searches */
    char ldap_bind_secret_file[CONFIG_PATH_MAX];
    char ldap_base[CONFIG_PATH_MAX];
    int  ldap_scope;                      /* enum config_ldap_scope */
    char ldap_user_filter[CONFIG_PATH_MAX];
    int  ldap_auth;                       /* enum config_ldap_auth */
    char ldap_maildir_attribute[CONFIG_NAME_MAX];
    char ldap_home_attribute[CONFIG_NAME_MAX];
    char ldap_host_attribute[CONFIG_NAME_MAX]; /* the user's backend, for the router; "" = none */
    char ldap_user_attribute[CONFIG_NAME_MAX];
    /* The user's POP3 policy from the entry (auth/passdb_ldap.h); "" = not read. */
    char ldap_pop3_enabled_attribute[CONFIG_NAME_MAX];
    char ldap_pop3_plaintext_attribute[CONFIG_NAME_MAX];
    char ldap_login_delay_attribute[CONFIG_NAME_MAX];
    char ldap_expire_attribute[CONFIG_NAME_MAX];
    int  ldap_connect_timeout;            /* seconds */
    int  ldap_timeout;                    /* seconds, a whole lookup */
    int  ldap_bind_connections;
    char authlib_socket[CONFIG_PATH_MAX]; /* courier-authdaemond's socket (auth/passdb_authlib.h) */
    int  authlib_timeout;                 /* seconds, a whole request */

    /* Brute-force penalty (auth/penalty.h). */
    int  auth_penalty;
    int  auth_penalty_delay;              /* seconds */
    int  auth_penalty_max_delay;
    int  auth_penalty_forget;
    int  auth_penalty_block_after;
    int  auth_penalty_block_time;
    int  auth_penalty_ipv4_prefix;
    int  auth_penalty_ipv6_prefix;
    int  auth_penalty_entries;
    struct cidr_list auth_penalty_trusted;
    int  auth_rate_limit;                 /* helper requests per second per client group; 0: off */
    int  auth_rate_burst;                 /* ...taken at once (auth/ratelimit.h) */
    int  auth_cache_ttl;                  /* seconds a verified password is answered by workers */
    int  auth_cache_negative_ttl;         /* ...and the same wrong password refused */
    int  auth_cache_stale_ttl;            /* how old an entry may be to log in while the backend is down */
    char auth_mechanisms[CONFIG_NAME_MAX]; /* SASL mechanisms offered, space-separated */

    int  set_on_line[128];                 /* per table entry: line it was set on, 0 = default */
    int  loading_line;                    /* the line being applied (for listen_lines) */
    int  listen_lines[CONFIG_MAX_LISTEN];  /* where each listen line is */
};

/* Fill cfg with every default (no listener: the file must name one). */
void config_defaults(struct config *cfg);
/* Read path into cfg (defaults first). -1: err holds "file:line: message". */
int  config_load(const char *path, struct config *cfg, char *err, size_t errlen);
/* The line a setting was given on (0: the default was used). */
int  config_line_of(const struct config *cfg, const char *name);
/*
 * A sane-looking file that lets nobody log in: no certificate, passwords
 * refused in the clear, no trusted network. Returns the warning, or NULL.
 */
const char *config_login_warning(const struct config *cfg);
/* Print the effective configuration in the file's own syntax. */
void config_print(const struct config *cfg, FILE *out);
/* Workers to run: the configured count, or the online CPUs for auto. */
/*
 * Whether name may stand for this host in a shared lock file: 1-64 of
 * letters, digits, '.', '-' and '_' (it is written into, and parsed back
 * from, a file other hosts read).
 */
int  config_host_name_valid(const char *name);
int  config_worker_count(const struct config *cfg);
/* The open file limit (RLIMIT_NOFILE) max_connections needs in each process. */
unsigned long long config_open_files_wanted(const struct config *cfg);
/* The pidfile path (pid_file, or run_dir/fastpopd.pid). */
void config_pid_path(const struct config *cfg, char *out, size_t outlen);
/* Parse "addr:port" / "[v6]:port" into l. -1 with a message in err. */
int  config_parse_listen(const char *value, struct config_listen *l, char *err, size_t errlen);
/* Only the address part ("addr:port" or "[ipv6]:port"), as metrics_listen takes it. */
int  config_parse_address(const char *value, struct config_listen *l, char *err, size_t errlen);
/* One of router_backends: the name the directory's host attribute uses, and where it listens. */
struct config_backend {
    char name[65];
    char ip[48];          /* an IP literal: nginx's Auth-Server takes no host names */
    unsigned port;
};
/* Parse router_backends ("name=IP:port ..."; names unique) into out[0..max); the count, or -1 with err. */
int  config_parse_backends(const char *list, struct config_backend *out, int max, char *err,
                           size_t errlen);
/* Check a maildir template's % escapes. -1 with a message in err. */
int  config_check_maildir_template(const char *tmpl, char *err, size_t errlen);
/* dovecot_uidl_format: the escapes of daemon/runtime/template_escape.h, %u %v %f %g. */
int  config_check_uidl_format(const char *fmt, char *err, size_t errlen);

/*
 * LDAP (daemon/runtime/config_ldap.c). The canonical user name comes from the
 * directory entry: ldap_user_attribute, or else the attribute the filter
 * compares with %u alone (the first "(attr=%u)"). Into out; -1 if neither.
 */
int config_ldap_filter_attribute(const char *filter, char *out, size_t outlen);
int config_ldap_user_attribute(const struct config *cfg, char *out, size_t outlen);
/* With passdb ldap: every ldap_uri is ldaps://, ldapi://, ldap:// with StartTLS or
 * ldap:// to loopback, and the user attribute is known. -1 with a file:line error. */
int config_check_ldap(const struct config *cfg, char *err, size_t errlen);

#endif
