/*
 * The settings table (every setting: its type, default and bounds) and the
 * file reader: lines, comments, "key = value". The checks that need more
 * than one setting are config_check.c; how a value of each type is parsed
 * and printed is config_types.c.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/runtime/config_private.h"
#include "daemon/runtime/log.h"

static const char *const log_targets[] = { "syslog", "stderr", NULL };
static const char *const log_levels[] = { "error", "warning", "info", "debug", NULL };
static const char *const tls_versions[] = { "TLSv1.2", "TLSv1.3", NULL };
static const char *const ldap_scopes[] = { "sub", "one", "base", NULL };
static const char *const ldap_auths[] = { "bind", "password", NULL };
static const char *const mailbox_locks[] = { "local", "shared", NULL };
static const char *const login_delay_actions[] = { "refuse", "log", NULL };

#define FIELD(f) .offset = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)

/*
 * Every setting, its default and its bounds. Why the bounds:
 *  - idle_timeout: RFC 1939 section 3 requires an autologout timer of at
 *    least 10 minutes, so the default is 600 s; shorter values are allowed
 *    (down to 5 s) for sites that knowingly trade that for sockets.
 *  - max_connections: each needs up to three descriptors (socket, lock, message).
 *  - login_timeout: from connect to a successful login, whatever the client
 *    sends meanwhile (issue 12 item 8: otherwise silent or trickling clients
 *    hold max_connections for ever). 60 s as in Courier and Dovecot: a real
 *    client logs in within a few round trips; the bounds keep room for the
 *    TLS handshake plus a penalised answer (auth_penalty_max_delay <= 12 s).
 *  - max_preauth_commands: an honest client needs about ten lines before it
 *    is logged in (CAPA, STLS, CAPA, USER/PASS per try up to
 *    max_auth_failures, QUIT); 50 leaves room for odd ones while bounding
 *    what an anonymous connection can make the worker do.
 *  - max_connections_per_ip counts an IPv4 address or an IPv6 /64 (one
 *    subnet, which one host or household gets whole). 20: a family or small
 *    office behind one NAT address, each with a mail client or two.
 *  - max_connections_per_ipv6_48: one site (RFC 6177) holds 65,536 /64s,
 *    enough to take every slot 20 at a time. 100 = five busy /64s, room
 *    for an office or a campus building; a flooder needs a /48 per 100.
 *  - quit_linger: 0 (close right after QUIT's reply, as RFC 1939 says). A
 *    value makes the server wait that long for the client to close first, so
 *    TIME_WAIT stays on its side; a client that reads to EOF then waits that
 *    long, and on Linux a TIME_WAIT socket costs a few hundred bytes.
 *  - drain_idle_timeout: during popctl drain, a logged-in session silent
 *    this long is closed (issue 15). A client between two commands of a
 *    download waits one round trip plus its own work: 10 s covers a slow
 *    client and a slow link, while an idle client (one that keeps its
 *    session open between polls) does not hold the drain for idle_timeout.
 *    At least 1 s: 0 would cut sessions between commands again, losing
 *    their DELEs; at most 1 h, the longest shutdown_timeout.
 */
static const struct setting settings[] = {
    { .name = "listen", .type = &setting_listen },
    { .name = "workers", .type = &setting_workers, FIELD(workers), .def = "auto", .min = 1,
      .max = WORKERS_MAX },
    { .name = "user", .type = &setting_string, FIELD(user), .def = "vmail" },
    { .name = "group", .type = &setting_string, FIELD(group), .def = "vmail" },
    { .name = "auth_user", .type = &setting_string, FIELD(auth_user), .def = "fastpop" },
    { .name = "control_group", .type = &setting_string, FIELD(control_group), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "admin_group", .type = &setting_string, FIELD(admin_group), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "metrics_listen", .type = &setting_string, FIELD(metrics_listen), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    /* The metrics process parses HTTP from the network: an account that owns nothing. */
    { .name = "metrics_user", .type = &setting_string, FIELD(metrics_user), .def = "nobody" },
    /* The router answers nginx's auth_http (README "Running several hosts"); off by default. */
    { .name = "router_listen", .type = &setting_string, FIELD(router_listen), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "router_backends", .type = &setting_string, FIELD(router_backends), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    /* 2 s: a killed backend stops getting users within about one interval plus the
     * check's timeout, at one connection per backend per interval. */
    { .name = "router_check_interval", .type = &setting_seconds, FIELD(router_check_interval),
      .def = "2s", .min = 1, .max = 60 },
    /* Must match the backends' listeners: one with proxy_protocol wants the header first. */
    { .name = "router_proxy_protocol", .type = &setting_bool, FIELD(router_proxy_protocol),
      .def = "no" },
    /* 30 s: a mailHost change counts within half a minute, and a user polling every
     * minute or more costs the directory one search per session at most. 0: every login. */
    { .name = "router_cache_ttl", .type = &setting_seconds, FIELD(router_cache_ttl),
      .def = "30s", .min = 0, .max = 3600 },
    { .name = "run_dir", .type = &setting_path, FIELD(run_dir), .def = "/run/fastpop" },
    { .name = "state_dir", .type = &setting_path, FIELD(state_dir), .def = "/var/lib/fastpop" },
    { .name = "pid_file", .type = &setting_path, FIELD(pid_file), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "auth_helper", .type = &setting_path, FIELD(auth_helper), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "passwd_file", .type = &setting_path, FIELD(passwd_file),
      .def = "/etc/fastpop/passwd" },
    { .name = "maildir", .type = &setting_template, FIELD(maildir), .def = "%h/Maildir" },
    { .name = "log", .type = &setting_enum, FIELD(log_target), .def = "syslog",
      .choices = log_targets },
    { .name = "log_level", .type = &setting_enum, FIELD(log_level), .def = "info",
      .choices = log_levels },
    { .name = "max_connections", .type = &setting_int, FIELD(max_connections), .def = "10000",
      .min = 1, .max = 1000000 },
    { .name = "max_connections_per_ip", .type = &setting_int, FIELD(max_connections_per_ip),
      .def = "20", .min = 1, .max = 1000000 },
    { .name = "max_connections_per_ipv6_48", .type = &setting_int,
      FIELD(max_connections_per_ipv6_48), .def = "100", .min = 1, .max = 1000000 },
    { .name = "idle_timeout", .type = &setting_seconds, FIELD(idle_timeout), .def = "10m", .min = 5,
      .max = 86400 },
    { .name = "login_timeout", .type = &setting_seconds, FIELD(login_timeout), .def = "60s",
      .min = 5, .max = 3600 },
    { .name = "max_preauth_commands", .type = &setting_int, FIELD(max_preauth_commands),
      .def = "50", .min = 5, .max = 10000 },
    { .name = "shutdown_timeout", .type = &setting_seconds, FIELD(shutdown_timeout), .def = "30s",
      .min = 1, .max = 3600 },
    { .name = "quit_linger", .type = &setting_seconds, FIELD(quit_linger), .def = "0s", .max = 30 },
    { .name = "drain_idle_timeout", .type = &setting_seconds, FIELD(drain_idle_timeout),
      .def = "10s", .min = 1, .max = 3600 },
    { .name = "max_bad_commands", .type = &setting_int, FIELD(max_bad_commands), .def = "10",
      .min = 1, .max = 1000 },
    { .name = "max_auth_failures", .type = &setting_int, FIELD(max_auth_failures), .def = "3",
      .min = 1, .max = 100 },
    { .name = "mark_seen", .type = &setting_bool, FIELD(mark_seen), .def = "yes" },
    { .name = "index", .type = &setting_bool, FIELD(index), .def = "yes" },
    /* The longest another program's change to cur/ that coincided with one of
     * fastpop's own (within a few ms) stays unseen (shm/index_sync.h); it costs one
     * listing of cur/ per mailbox fastpop changed, at most this often. 1h: a poller
     * every few minutes lists cur/ once in a dozen polls or more. 0: cur/ is listed
     * after every own change. A week at most: the bound stays a bound. */
    { .name = "index_recheck", .type = &setting_seconds, FIELD(index_recheck), .def = "1h",
      .max = 604800 },
    /* A session holds about 100 bytes per message in its worker, and the listing
     * stops at one more than this (maildir/scan.h): 1,000,000 is ~100 MB for the
     * biggest mailbox served. 10,000,000 keeps the index's 32-bit offsets safe. */
    { .name = "max_messages", .type = &setting_int, FIELD(max_messages), .def = "1000000",
      .min = 1, .max = 10000000 },
    /* The index is a cache: a record that does not fit is scanned instead. 16 GB
     * holds 100,000 mailboxes of 1,000 messages with room; 1 MB is the least
     * LMDB is still useful with; 4 TB the most it ever grew to before the limit. */
    { .name = "index_max_mb", .type = &setting_int, FIELD(index_max_mb), .def = "16384",
      .min = 1, .max = 4194304 },
    /* What the old Dovecot's pop3_uidl_format was: the UIDL of a dovecot-uidlist
     * record without a P field. Dovecot's default; a site that changed it says so. */
    { .name = "dovecot_uidl_format", .type = &setting_uidl_format, FIELD(dovecot_uidl_format),
      .def = "%08Xu%08Xv" },
    /* Off by default: an X-UIDL header is whatever a sender wrote, unless the
     * site's old server (qpopper, UW) put it there (maildir/xuidl.h). */
    { .name = "x_uidl_header", .type = &setting_bool, FIELD(x_uidl_header), .def = "no" },
    /* Off by default, as in Dovecot and Courier: they change what clients get. */
    { .name = "pop3_workarounds", .type = &setting_string, FIELD(pop3_workarounds), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    /* Hosts sharing maildirs lock them with a file (maildir/shared_lock.h). A lock
     * not touched for mailbox_lock_stale is free: long enough for an NFS server's
     * hiccup (holders touch it every third of it), short enough that the users of a
     * crashed host get their mailboxes back within a minute. */
    { .name = "mailbox_lock", .type = &setting_enum, FIELD(mailbox_lock), .def = "local",
      .choices = mailbox_locks },
    { .name = "mailbox_lock_stale", .type = &setting_seconds, FIELD(mailbox_lock_stale),
      .def = "60s", .min = 3, .max = 3600 },
    { .name = "host_name", .type = &setting_string, FIELD(host_name), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "tls_cert", .type = &setting_paths, FIELD(tls_cert),
      .count_offset = offsetof(struct config, tls_cert_count) },
    { .name = "tls_key", .type = &setting_paths, FIELD(tls_key),
      .count_offset = offsetof(struct config, tls_key_count) },
    { .name = "tls_min_version", .type = &setting_enum, FIELD(tls_min_version), .def = "TLSv1.2",
      .choices = tls_versions },
    { .name = "tls_ciphers", .type = &setting_string, FIELD(tls_ciphers),
      .def = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!SHA1:!SHA256:!SHA384" },
    /* AES-128-GCM first (the server's order wins): the suite every TLS 1.3 client
     * has, 17% less CPU per byte than AES-256 here, and SHA-256 for the handshake. */
    { .name = "tls_ciphersuites", .type = &setting_string, FIELD(tls_ciphersuites),
      .def = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256" },
    /* Tickets encrypted with a key that rotates this often; the previous key still
     * decrypts, so a ticket resumes for one to two of these (worker/tls_ticket.h).
     * 10 s is there for tests; a day at most keeps old keys out of memory. */
    { .name = "tls_ticket_lifetime", .type = &setting_seconds, FIELD(tls_ticket_lifetime),
      .def = "1h", .min = 10, .max = 86400 },
    { .name = "tls_handshake_timeout", .type = &setting_seconds, FIELD(tls_handshake_timeout),
      .def = "30s", .min = 1, .max = 600 },
    { .name = "plaintext_auth", .type = &setting_bool, FIELD(plaintext_auth), .def = "no" },
    /* RFC 2449 LOGIN-DELAY: 0 (none) by default, as in every other server; the
     * bound is USER_POLICY_LOGIN_DELAY_MAX's (daemon/runtime/limits.h). refuse: the
     * point of advertising it is that a client polling faster costs no login. */
    { .name = "pop3_login_delay", .type = &setting_seconds, FIELD(pop3_login_delay), .def = "0",
      .max = USER_POLICY_LOGIN_DELAY_MAX },
    /* RFC 2449 EXPIRE: never by default (nothing is removed that the client did not
     * DELE, as in every POP3 server); days bounded by USER_POLICY_EXPIRE_DAYS_MAX. */
    { .name = "pop3_expire", .type = &setting_days_or_never, FIELD(pop3_expire),
      .def = "never", .max = USER_POLICY_EXPIRE_DAYS_MAX },
    { .name = "pop3_login_delay_action", .type = &setting_enum, FIELD(pop3_login_delay_action),
      .def = "refuse", .choices = login_delay_actions },
    { .name = "plaintext_trusted", .type = &setting_cidrs, FIELD(plaintext_trusted), .def = "" },
    { .name = "proxy_trusted", .type = &setting_cidrs, FIELD(proxy_trusted), .def = "" },
    { .name = "proxy_timeout", .type = &setting_seconds, FIELD(proxy_timeout), .def = "5s",
      .min = 1, .max = 60 },
    /* The LDAP timeout and the penalty delays stay under the worker's wait for the
     * helper (AUTH_TIMEOUT_SECONDS, checked in daemon/runtime/limits.h). */
    { .name = "passdb", .type = &setting_string, FIELD(passdb), .def = "passwd-file" },
    { .name = "ldap_uri", .type = &setting_string, FIELD(ldap_uri), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_starttls", .type = &setting_bool, FIELD(ldap_starttls), .def = "no" },
    { .name = "ldap_tls_ca_file", .type = &setting_path, FIELD(ldap_tls_ca_file), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_bind_dn", .type = &setting_string, FIELD(ldap_bind_dn), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_bind_secret_file", .type = &setting_path, FIELD(ldap_bind_secret_file),
      .def = "", .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_base", .type = &setting_string, FIELD(ldap_base), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_scope", .type = &setting_enum, FIELD(ldap_scope), .def = "sub",
      .choices = ldap_scopes },
    { .name = "ldap_user_filter", .type = &setting_string, FIELD(ldap_user_filter),
      .def = "(&(objectClass=posixAccount)(uid=%u))" },
    { .name = "ldap_auth", .type = &setting_enum, FIELD(ldap_auth), .def = "bind",
      .choices = ldap_auths },
    { .name = "ldap_maildir_attribute", .type = &setting_string, FIELD(ldap_maildir_attribute),
      .def = "", .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_home_attribute", .type = &setting_string, FIELD(ldap_home_attribute), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    /* Empty: the router (router_listen) spreads users by hashing alone; e.g. mailHost. */
    { .name = "ldap_host_attribute", .type = &setting_string, FIELD(ldap_host_attribute), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_user_attribute", .type = &setting_string, FIELD(ldap_user_attribute), .def = "",
      .flags = SETTING_MAY_BE_EMPTY },
    /* The user's POP3 policy (auth/passdb_ldap.h); empty: not read, nobody is restricted. */
    { .name = "ldap_pop3_enabled_attribute", .type = &setting_string,
      FIELD(ldap_pop3_enabled_attribute), .def = "", .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_pop3_plaintext_attribute", .type = &setting_string,
      FIELD(ldap_pop3_plaintext_attribute), .def = "", .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_login_delay_attribute", .type = &setting_string,
      FIELD(ldap_login_delay_attribute), .def = "", .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_expire_attribute", .type = &setting_string, FIELD(ldap_expire_attribute),
      .def = "", .flags = SETTING_MAY_BE_EMPTY },
    { .name = "ldap_connect_timeout", .type = &setting_seconds, FIELD(ldap_connect_timeout),
      .def = "5s", .min = 1, .max = 60 },
    { .name = "ldap_timeout", .type = &setting_seconds, FIELD(ldap_timeout), .def = "5s", .min = 1,
      .max = LDAP_TIMEOUT_MAX },
    { .name = "ldap_bind_connections", .type = &setting_int, FIELD(ldap_bind_connections),
      .def = "4", .min = 1, .max = 64 },
    { .name = "authlib_socket", .type = &setting_path, FIELD(authlib_socket),
      .def = "/var/run/courier/authdaemon/socket" },
    /* The same bound as ldap_timeout, for the same reason (the worker's wait). */
    { .name = "authlib_timeout", .type = &setting_seconds, FIELD(authlib_timeout), .def = "5s",
      .min = 1, .max = LDAP_TIMEOUT_MAX },
    { .name = "auth_penalty", .type = &setting_bool, FIELD(auth_penalty), .def = "yes" },
    { .name = "auth_penalty_delay", .type = &setting_seconds, FIELD(auth_penalty_delay),
      .def = "1s", .max = AUTH_PENALTY_DELAY_MAX },
    { .name = "auth_penalty_max_delay", .type = &setting_seconds, FIELD(auth_penalty_max_delay),
      .def = "8s", .max = AUTH_PENALTY_DELAY_MAX },
    { .name = "auth_penalty_forget", .type = &setting_seconds, FIELD(auth_penalty_forget),
      .def = "1m", .min = 1, .max = 86400 },
    { .name = "auth_penalty_block_after", .type = &setting_int, FIELD(auth_penalty_block_after),
      .def = "20", .max = 1000000 },
    { .name = "auth_penalty_block_time", .type = &setting_seconds, FIELD(auth_penalty_block_time),
      .def = "10m", .min = 1, .max = 86400 },
    { .name = "auth_penalty_ipv4_prefix", .type = &setting_int, FIELD(auth_penalty_ipv4_prefix),
      .def = "32", .min = 8, .max = 32 },
    { .name = "auth_penalty_ipv6_prefix", .type = &setting_int, FIELD(auth_penalty_ipv6_prefix),
      .def = "64", .min = 16, .max = 128 },
    { .name = "auth_penalty_entries", .type = &setting_int, FIELD(auth_penalty_entries),
      .def = "65536", .min = 16, .max = 16777216 },
    { .name = "auth_penalty_trusted", .type = &setting_cidrs, FIELD(auth_penalty_trusted),
      .def = "" },
    /* Helper work per client group before any hashing (auth/ratelimit.h): 5/s covers a
     * NAT of ~1,500 uncached clients polling every 5 minutes; 20 at once, a client's
     * reconnect storm (several accounts and devices after a network change). */
    { .name = "auth_rate_limit", .type = &setting_int, FIELD(auth_rate_limit), .def = "5",
      .max = 100000 },
    { .name = "auth_rate_burst", .type = &setting_int, FIELD(auth_rate_burst), .def = "20",
      .min = 1, .max = 100000 },
    /* The credential cache (shm/credcache.h): 0 turns a part off. A password
     * changed at the backend keeps working from the cache for auth_cache_ttl. */
    { .name = "auth_cache_ttl", .type = &setting_seconds, FIELD(auth_cache_ttl), .def = "1h",
      .max = 30 * 86400 },
    { .name = "auth_cache_negative_ttl", .type = &setting_seconds, FIELD(auth_cache_negative_ttl),
      .def = "5m", .max = 30 * 86400 },
    { .name = "auth_cache_stale_ttl", .type = &setting_seconds, FIELD(auth_cache_stale_ttl),
      .def = "24h", .max = 30 * 86400 },
    { .name = "auth_mechanisms", .type = &setting_string, FIELD(auth_mechanisms),
      .def = "PLAIN LOGIN" },
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

_Static_assert(N_SETTINGS <= sizeof(((struct config *)0)->set_on_line) / sizeof(int),
               "struct config: set_on_line too small for the settings table");

void config_defaults(struct config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (settings[i].def != NULL &&
            settings[i].type->parse(&settings[i], settings[i].def, cfg, err, sizeof(err)) == -1)
            log_fatal("built-in default of %s is invalid: %s", settings[i].name, err);
    }
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* A '#' at the start or after whitespace begins a comment. */
static void strip_comment(char *line)
{
    for (char *p = line; *p; p++) {
        if (*p == '#' && (p == line || isspace((unsigned char)p[-1]))) {
            *p = '\0';
            return;
        }
    }
}

static const struct setting *find_setting(const char *name)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (strcmp(settings[i].name, name) == 0)
            return &settings[i];
    }
    return NULL;
}

int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
    char msg[384];
    char line[4096];
    int seen_line[N_SETTINGS] = { 0 };
    int lineno = 0;

    config_defaults(cfg);
    if (strlen(path) >= sizeof(cfg->path))
        return config_error(err, errlen, "%s: path too long", path);
    snprintf(cfg->path, sizeof(cfg->path), "%s", path);

    FILE *f = fopen(path, "r");
    if (f == NULL)
        return config_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));

    char *raw = NULL;
    size_t rawcap = 0;
    ssize_t got;
    int rc = -1;
    while ((got = getline(&raw, &rawcap, f)) != -1) {
        lineno++;
        /* The limit is on the text; the line end does not count. */
        if (got > 0 && raw[got - 1] == '\n')
            raw[--got] = '\0';
        if ((size_t)got >= sizeof(line)) {
            config_error(err, errlen, "%s:%d: line too long (at most %zu characters)", path, lineno,
                    sizeof(line) - 1);
            goto out;
        }
        if (memchr(raw, '\0', (size_t)got) != NULL) {
            config_error(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            goto out;
        }
        memcpy(line, raw, (size_t)got + 1);
        strip_comment(line);
        char *key = trim(line);
        if (*key == '\0')
            continue;
        char *eq = strchr(key, '=');
        if (eq == NULL) {
            config_error(err, errlen, "%s:%d: expected \"key = value\"", path, lineno);
            goto out;
        }
        *eq = '\0';
        char *value = trim(eq + 1);
        key = trim(key);
        const struct setting *s = find_setting(key);
        if (s == NULL) {
            config_error(err, errlen, "%s:%d: unknown setting \"%s\"", path, lineno, key);
            goto out;
        }
        size_t idx = (size_t)(s - settings);
        if (!s->type->repeatable && seen_line[idx]) {
            config_error(err, errlen, "%s:%d: %s is already set on line %d", path, lineno, key,
                    seen_line[idx]);
            goto out;
        }
        seen_line[idx] = lineno;
        cfg->set_on_line[idx] = lineno;
        cfg->loading_line = lineno;
        if (s->type->parse(s, value, cfg, msg, sizeof(msg)) == -1) {
            config_error(err, errlen, "%s:%d: %s", path, lineno, msg);
            goto out;
        }
    }
    if (ferror(f)) {
        config_error(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (config_check_settings(cfg, err, errlen) == -1)
        goto out;
    if (cfg->listen_count == 0) {
        if (lineno == 0)
            config_error(err, errlen, "%s: empty file: no listen address", path);
        else
            config_error(err, errlen,
                    "%s:%d: no listen address (add e.g. \"listen = 0.0.0.0:110\")", path,
                    lineno);
        goto out;
    }
    rc = 0;
out:
    free(raw);
    fclose(f);
    return rc;
}

void config_print(const struct config *cfg, FILE *out)
{
    fprintf(out, "# effective configuration of %s\n", cfg->path);
    for (size_t i = 0; i < N_SETTINGS; i++)
        settings[i].type->print(&settings[i], cfg, out);
}

const char *config_login_warning(const struct config *cfg)
{
    if (cfg->plaintext_auth || cfg->tls_cert_count > 0 || cfg->plaintext_trusted.count > 0 ||
        config_listen_any_plaintext(cfg))
        return NULL;
    return "no tls_cert and plaintext_auth = no: no client can log in (configure a "
           "certificate, or set plaintext_auth = yes or plaintext_trusted)";
}

int config_line_of(const struct config *cfg, const char *name)
{
    const struct setting *s = find_setting(name);
    return s ? cfg->set_on_line[s - settings] : 0;
}

int config_worker_count(const struct config *cfg)
{
    if (cfg->workers > 0)
        return cfg->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > WORKERS_MAX ? WORKERS_MAX : (int)n;
}

/*
 * Each connection can hold a socket and an open message (with room to spare:
 * x3), and one worker may end up with all of them; plus headroom for
 * listeners, IPC, the index and logs.
 */
unsigned long long config_open_files_wanted(const struct config *cfg)
{
    return (unsigned long long)cfg->max_connections * 3 + 256;
}

void config_pid_path(const struct config *cfg, char *out, size_t outlen)
{
    if (cfg->pid_file[0])
        snprintf(out, outlen, "%s", cfg->pid_file);
    else
        snprintf(out, outlen, "%s/fastpopd.pid", cfg->run_dir);
}
