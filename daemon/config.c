#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config_private.h"
#include "daemon/log.h"

enum setting_type {
    SET_STRING,   /* a name, e.g. a user */
    SET_PATH,     /* an absolute path, or "" where allowed */
    SET_INT,
    SET_SECONDS,  /* integer with optional s/m/h suffix */
    SET_BOOL,
    SET_ENUM,
    SET_WORKERS,  /* "auto" or an integer */
    SET_LISTEN,   /* repeatable addr:port [flags] */
    SET_PATHS,    /* repeatable absolute path, kept in order */
    SET_CIDRS,    /* a list of networks */
    SET_TEMPLATE, /* maildir template */
};

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset;
    size_t size;             /* for strings: the array size */
    const char *def;         /* parsed like a value from the file */
    long min, max;
    const char *const *choices; /* SET_ENUM, NULL-terminated, index = value */
    size_t count_offset;        /* SET_PATHS: where the number of entries is kept */
};

static const char *const log_targets[] = { "syslog", "stderr", NULL };
static const char *const log_levels[] = { "error", "warning", "info", "debug", NULL };
static const char *const tls_versions[] = { "TLSv1.2", "TLSv1.3", NULL };
static const char *const ldap_scopes[] = { "sub", "one", "base", NULL };
static const char *const ldap_auths[] = { "bind", "password", NULL };

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)

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
 *  - index_recheck: the longest another program's change to cur/ that
 *    coincided with one of fastpop's own changes (within a few ms) stays
 *    unseen (shm/index_sync.h); it costs one listing of cur/ per mailbox
 *    that fastpop changed, at most this often. 1h: a poller every few
 *    minutes lists cur/ once in a dozen polls or more. 0: cur/ is listed
 *    after every own change (the behaviour before own changes were
 *    recorded). A week at most: the bound stays a bound.
 */
static const struct setting settings[] = {
    { "listen", SET_LISTEN, 0, 0, NULL, 0, 0, NULL, 0 },
    { "workers", SET_WORKERS, FIELD(workers), "auto", 1, 256, NULL, 0 },
    { "user", SET_STRING, FIELD(user), "vmail", 0, 0, NULL, 0 },
    { "group", SET_STRING, FIELD(group), "vmail", 0, 0, NULL, 0 },
    { "auth_user", SET_STRING, FIELD(auth_user), "fastpop", 0, 0, NULL, 0 },
    { "control_group", SET_STRING, FIELD(control_group), "", 1, 0, NULL, 0 },
    { "admin_group", SET_STRING, FIELD(admin_group), "", 1, 0, NULL, 0 },
    { "metrics_listen", SET_STRING, FIELD(metrics_listen), "", 1, 0, NULL, 0 },
    /* The metrics process parses HTTP from the network: an account that owns nothing. */
    { "metrics_user", SET_STRING, FIELD(metrics_user), "nobody", 0, 0, NULL, 0 },
    { "run_dir", SET_PATH, FIELD(run_dir), "/run/fastpop", 0, 0, NULL, 0 },
    { "state_dir", SET_PATH, FIELD(state_dir), "/var/lib/fastpop", 0, 0, NULL, 0 },
    { "pid_file", SET_PATH, FIELD(pid_file), "", 1, 0, NULL, 0 },
    { "auth_helper", SET_PATH, FIELD(auth_helper), "", 1, 0, NULL, 0 },
    { "passwd_file", SET_PATH, FIELD(passwd_file), "/etc/fastpop/passwd", 0, 0, NULL, 0 },
    { "maildir", SET_TEMPLATE, FIELD(maildir), "%h/Maildir", 0, 0, NULL, 0 },
    { "log", SET_ENUM, FIELD(log_target), "syslog", 0, 0, log_targets, 0 },
    { "log_level", SET_ENUM, FIELD(log_level), "info", 0, 0, log_levels, 0 },
    { "max_connections", SET_INT, FIELD(max_connections), "10000", 1, 1000000, NULL, 0 },
    { "max_connections_per_ip", SET_INT, FIELD(max_connections_per_ip), "20", 1, 1000000, NULL, 0 },
    { "max_connections_per_ipv6_48", SET_INT, FIELD(max_connections_per_ipv6_48), "100", 1,
      1000000, NULL, 0 },
    { "idle_timeout", SET_SECONDS, FIELD(idle_timeout), "10m", 5, 86400, NULL, 0 },
    { "login_timeout", SET_SECONDS, FIELD(login_timeout), "60s", 5, 3600, NULL, 0 },
    { "max_preauth_commands", SET_INT, FIELD(max_preauth_commands), "50", 5, 10000, NULL, 0 },
    { "shutdown_timeout", SET_SECONDS, FIELD(shutdown_timeout), "30s", 1, 3600, NULL, 0 },
    { "quit_linger", SET_SECONDS, FIELD(quit_linger), "0s", 0, 30, NULL, 0 },
    { "max_bad_commands", SET_INT, FIELD(max_bad_commands), "10", 1, 1000, NULL, 0 },
    { "max_auth_failures", SET_INT, FIELD(max_auth_failures), "3", 1, 100, NULL, 0 },
    { "mark_seen", SET_BOOL, FIELD(mark_seen), "yes", 0, 0, NULL, 0 },
    { "index", SET_BOOL, FIELD(index), "yes", 0, 0, NULL, 0 },
    { "index_recheck", SET_SECONDS, FIELD(index_recheck), "1h", 0, 604800, NULL, 0 },
    { "tls_cert", SET_PATHS, FIELD(tls_cert), NULL, 0, 0, NULL,
      offsetof(struct config, tls_cert_count) },
    { "tls_key", SET_PATHS, FIELD(tls_key), NULL, 0, 0, NULL,
      offsetof(struct config, tls_key_count) },
    { "tls_min_version", SET_ENUM, FIELD(tls_min_version), "TLSv1.2", 0, 0, tls_versions, 0 },
    { "tls_ciphers", SET_STRING, FIELD(tls_ciphers),
      "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!SHA1:!SHA256:!SHA384", 0, 0, NULL, 0 },
    { "tls_ciphersuites", SET_STRING, FIELD(tls_ciphersuites),
      "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256", 0, 0, NULL, 0 },
    /* Tickets encrypted with a key that rotates this often; the previous key still
     * decrypts, so a ticket resumes for one to two of these (worker/tls_ticket.h).
     * 10 s is there for tests; a day at most keeps old keys out of memory. */
    { "tls_ticket_lifetime", SET_SECONDS, FIELD(tls_ticket_lifetime), "1h", 10, 86400, NULL,
      0 },
    { "tls_handshake_timeout", SET_SECONDS, FIELD(tls_handshake_timeout), "30s", 1, 600, NULL, 0 },
    { "plaintext_auth", SET_BOOL, FIELD(plaintext_auth), "no", 0, 0, NULL, 0 },
    { "plaintext_trusted", SET_CIDRS, FIELD(plaintext_trusted), "", 0, 0, NULL, 0 },
    { "proxy_trusted", SET_CIDRS, FIELD(proxy_trusted), "", 0, 0, NULL, 0 },
    { "proxy_timeout", SET_SECONDS, FIELD(proxy_timeout), "5s", 1, 60, NULL, 0 },
    /* Strings with min = 1 may be empty. The LDAP timeouts and the penalty delay
     * stay under the worker's 15 s wait for the helper (worker/auth_client.c). */
    { "passdb", SET_STRING, FIELD(passdb), "passwd-file", 0, 0, NULL, 0 },
    { "ldap_uri", SET_STRING, FIELD(ldap_uri), "", 1, 0, NULL, 0 },
    { "ldap_starttls", SET_BOOL, FIELD(ldap_starttls), "no", 0, 0, NULL, 0 },
    { "ldap_tls_ca_file", SET_PATH, FIELD(ldap_tls_ca_file), "", 1, 0, NULL, 0 },
    { "ldap_bind_dn", SET_STRING, FIELD(ldap_bind_dn), "", 1, 0, NULL, 0 },
    { "ldap_bind_secret_file", SET_PATH, FIELD(ldap_bind_secret_file), "", 1, 0, NULL, 0 },
    { "ldap_base", SET_STRING, FIELD(ldap_base), "", 1, 0, NULL, 0 },
    { "ldap_scope", SET_ENUM, FIELD(ldap_scope), "sub", 0, 0, ldap_scopes, 0 },
    { "ldap_user_filter", SET_STRING, FIELD(ldap_user_filter),
      "(&(objectClass=posixAccount)(uid=%u))", 0, 0, NULL, 0 },
    { "ldap_auth", SET_ENUM, FIELD(ldap_auth), "bind", 0, 0, ldap_auths, 0 },
    { "ldap_maildir_attribute", SET_STRING, FIELD(ldap_maildir_attribute), "", 1, 0, NULL, 0 },
    { "ldap_home_attribute", SET_STRING, FIELD(ldap_home_attribute), "", 1, 0, NULL, 0 },
    { "ldap_user_attribute", SET_STRING, FIELD(ldap_user_attribute), "", 1, 0, NULL, 0 },
    { "ldap_connect_timeout", SET_SECONDS, FIELD(ldap_connect_timeout), "5s", 1, 60, NULL, 0 },
    { "ldap_timeout", SET_SECONDS, FIELD(ldap_timeout), "5s", 1, 12, NULL, 0 },
    { "ldap_bind_connections", SET_INT, FIELD(ldap_bind_connections), "4", 1, 64, NULL, 0 },
    { "auth_penalty", SET_BOOL, FIELD(auth_penalty), "yes", 0, 0, NULL, 0 },
    { "auth_penalty_delay", SET_SECONDS, FIELD(auth_penalty_delay), "1s", 0, 12, NULL, 0 },
    { "auth_penalty_max_delay", SET_SECONDS, FIELD(auth_penalty_max_delay), "8s", 0, 12, NULL, 0 },
    { "auth_penalty_forget", SET_SECONDS, FIELD(auth_penalty_forget), "1m", 1, 86400, NULL, 0 },
    { "auth_penalty_block_after", SET_INT, FIELD(auth_penalty_block_after), "20", 0, 1000000,
      NULL, 0 },
    { "auth_penalty_block_time", SET_SECONDS, FIELD(auth_penalty_block_time), "10m", 1, 86400,
      NULL, 0 },
    { "auth_penalty_ipv4_prefix", SET_INT, FIELD(auth_penalty_ipv4_prefix), "32", 8, 32, NULL, 0 },
    { "auth_penalty_ipv6_prefix", SET_INT, FIELD(auth_penalty_ipv6_prefix), "64", 16, 128, NULL,
      0 },
    { "auth_penalty_entries", SET_INT, FIELD(auth_penalty_entries), "65536", 16, 16777216, NULL,
      0 },
    { "auth_penalty_trusted", SET_CIDRS, FIELD(auth_penalty_trusted), "", 0, 0, NULL, 0 },
    /* Helper work per client group before any hashing (auth/ratelimit.h): 5/s covers a
     * NAT of ~1,500 uncached clients polling every 5 minutes; 20 at once, a client's
     * reconnect storm (several accounts and devices after a network change). */
    { "auth_rate_limit", SET_INT, FIELD(auth_rate_limit), "5", 0, 100000, NULL, 0 },
    { "auth_rate_burst", SET_INT, FIELD(auth_rate_burst), "20", 1, 100000, NULL, 0 },
    /* The credential cache (shm/credcache.h): 0 turns a part off. A password
     * changed at the backend keeps working from the cache for auth_cache_ttl. */
    { "auth_cache_ttl", SET_SECONDS, FIELD(auth_cache_ttl), "1h", 0, 30 * 86400, NULL, 0 },
    { "auth_cache_negative_ttl", SET_SECONDS, FIELD(auth_cache_negative_ttl), "5m", 0,
      30 * 86400, NULL, 0 },
    { "auth_cache_stale_ttl", SET_SECONDS, FIELD(auth_cache_stale_ttl), "24h", 0, 30 * 86400,
      NULL, 0 },
    { "auth_mechanisms", SET_STRING, FIELD(auth_mechanisms), "PLAIN LOGIN", 0, 0, NULL, 0 },
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

_Static_assert(N_SETTINGS <= sizeof(((struct config *)0)->set_on_line) / sizeof(int),
               "struct config: set_on_line too small for the settings table");

int config_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int config_parse_long(const char *v, long *out)
{
    char *end;
    if (*v == '\0')
        return -1;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = n;
    return 0;
}

int config_check_maildir_template(const char *tmpl, char *err, size_t errlen)
{
    for (const char *p = tmpl; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (*p == '\0')
            return config_error(err, errlen, "maildir template ends with a lone %%");
        if (strchr("undh%", *p) == NULL)
            return config_error(err, errlen,
                           "maildir template has unknown escape %%%c (use %%u %%n %%d %%h %%%%)", *p);
    }
    if (tmpl[0] != '/' && strncmp(tmpl, "%h", 2) != 0)
        return config_error(err, errlen, "maildir template must start with / or %%h");
    return 0;
}

static int apply_setting(const struct setting *s, const char *value, struct config *cfg,
                         char *err, size_t errlen)
{
    char *field = (char *)cfg + s->offset;
    long n;

    switch (s->type) {
    case SET_STRING:
        /* min = 1 marks a string that may be empty, as for SET_PATH. */
        if (*value == '\0' && s->min != 1)
            return config_error(err, errlen, "%s needs a value", s->name);
        if (strlen(value) >= s->size)
            return config_error(err, errlen, "%s is too long (at most %zu characters)", s->name,
                           s->size - 1);
        strcpy(field, value);
        return 0;
    case SET_PATH:
        /* min = 1 marks a path that may be empty ("use the built-in choice"). */
        if (*value == '\0' && s->min == 1) {
            field[0] = '\0';
            return 0;
        }
        if (value[0] != '/')
            return config_error(err, errlen, "%s must be an absolute path, not \"%s\"", s->name, value);
        if (strlen(value) >= s->size)
            return config_error(err, errlen, "%s is too long", s->name);
        strcpy(field, value);
        return 0;
    case SET_TEMPLATE:
        if (strlen(value) >= s->size)
            return config_error(err, errlen, "%s is too long", s->name);
        if (config_check_maildir_template(value, err, errlen) == -1)
            return -1;
        strcpy(field, value);
        return 0;
    case SET_WORKERS:
        if (strcmp(value, "auto") == 0) {
            *(int *)field = 0;
            return 0;
        }
        /* a number: bounded like any integer */
        __attribute__((fallthrough));
    case SET_INT:
        if (config_parse_long(value, &n) == -1)
            return config_error(err, errlen, "%s: \"%s\" is not a number", s->name, value);
        if (n < s->min || n > s->max)
            return config_error(err, errlen, "%s: %ld is out of range (%ld-%ld)", s->name, n, s->min,
                           s->max);
        *(int *)field = (int)n;
        return 0;
    case SET_SECONDS: {
        char num[32];
        size_t len = strlen(value);
        long mult = 1;
        if (len == 0 || len >= sizeof(num))
            return config_error(err, errlen, "%s: \"%s\" is not a duration", s->name, value);
        memcpy(num, value, len + 1);
        char unit = num[len - 1];
        if (unit == 's' || unit == 'm' || unit == 'h') {
            mult = unit == 's' ? 1 : unit == 'm' ? 60 : 3600;
            num[len - 1] = '\0';
        }
        if (config_parse_long(num, &n) == -1 || n < 0 || n > LONG_MAX / mult)
            return config_error(err, errlen,
                           "%s: \"%s\" is not a duration (a number with s, m or h)", s->name,
                           value);
        n *= mult;
        if (n < s->min || n > s->max)
            return config_error(err, errlen, "%s: %ld seconds is out of range (%ld-%ld)", s->name, n,
                           s->min, s->max);
        *(int *)field = (int)n;
        return 0;
    }
    case SET_BOOL:
        if (strcmp(value, "yes") == 0 || strcmp(value, "on") == 0 || strcmp(value, "true") == 0)
            *(int *)field = 1;
        else if (strcmp(value, "no") == 0 || strcmp(value, "off") == 0 ||
                 strcmp(value, "false") == 0)
            *(int *)field = 0;
        else
            return config_error(err, errlen, "%s: \"%s\" is not yes or no", s->name, value);
        return 0;
    case SET_ENUM:
        for (int i = 0; s->choices[i]; i++) {
            if (strcmp(value, s->choices[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        {
            char list[128] = "";
            for (int i = 0; s->choices[i]; i++) {
                strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
                strncat(list, s->choices[i], sizeof(list) - strlen(list) - 1);
            }
            return config_error(err, errlen, "%s: \"%s\" is not one of %s", s->name, value, list);
        }
    case SET_PATHS: {
        int *count = (int *)((char *)cfg + s->count_offset);
        size_t one = sizeof(cfg->tls_cert[0]);
        if (*count == CONFIG_MAX_CERTS)
            return config_error(err, errlen, "%s is given too often (at most %d)", s->name,
                           CONFIG_MAX_CERTS);
        if (value[0] != '/')
            return config_error(err, errlen, "%s must be an absolute path, not \"%s\"", s->name,
                           value);
        if (strlen(value) >= one)
            return config_error(err, errlen, "%s is too long", s->name);
        strcpy(field + one * (size_t)*count, value);
        (*count)++;
        return 0;
    }
    case SET_CIDRS:
        if (cidr_list_parse(value, (struct cidr_list *)field, err, errlen) == -1) {
            char msg[256];
            snprintf(msg, sizeof(msg), "%s", err);
            return config_error(err, errlen, "%s: %s", s->name, msg);
        }
        return 0;
    case SET_LISTEN:
        if (cfg->listen_count == CONFIG_MAX_LISTEN)
            return config_error(err, errlen, "too many listen lines (at most %d)", CONFIG_MAX_LISTEN);
        if (config_parse_listen(value, &cfg->listen[cfg->listen_count], err, errlen) == -1)
            return -1;
        for (int i = 0; i < cfg->listen_count; i++) {
            const struct config_listen *a = &cfg->listen[i], *b = &cfg->listen[cfg->listen_count];
            /* The same socket address spelled another way is still the same. */
            if (a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0)
                return config_error(err, errlen, "listen %s is given twice (as %s)", value,
                               a->spec);
        }
        cfg->listen_lines[cfg->listen_count] = cfg->loading_line;
        cfg->listen_count++;
        return 0;
    }
    return config_error(err, errlen, "internal: unknown setting type");
}

void config_defaults(struct config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (settings[i].def != NULL && apply_setting(&settings[i], settings[i].def, cfg, err,
                                                     sizeof(err)) == -1)
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

/* Settings that only make sense together, reported at the line that needs the other. */
static int check_tls_and_proxy(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->tls_cert_count != cfg->tls_key_count)
        return config_error(err, errlen, "%s:%d: %d tls_cert lines but %d tls_key lines: they pair "
                       "up in order", cfg->path, config_line_of(cfg, "tls_key") ?
                       config_line_of(cfg, "tls_key") : config_line_of(cfg, "tls_cert"),
                       cfg->tls_cert_count, cfg->tls_key_count);
    for (int i = 0; i < cfg->listen_count; i++) {
        const struct config_listen *l = &cfg->listen[i];
        if ((l->tls || l->legacy_tls) && cfg->tls_cert_count == 0)
            return config_error(err, errlen, "%s:%d: listen %s uses TLS but no tls_cert is set",
                           cfg->path, cfg->listen_lines[i], l->spec);
        if (l->proxy_protocol && cfg->proxy_trusted.count == 0)
            return config_error(err, errlen, "%s:%d: listen %s has proxy_protocol but proxy_trusted "
                           "is empty: set the addresses of your proxies", cfg->path,
                           cfg->listen_lines[i], l->spec);
    }
    return 0;
}

/* metrics_listen: one address, no flags; the metrics process serves GET /metrics there. */
static int check_metrics(struct config *cfg, char *err, size_t errlen)
{
    char why[256];
    memset(&cfg->metrics, 0, sizeof(cfg->metrics));
    if (cfg->metrics_listen[0] == '\0')
        return 0;
    if (config_parse_address(cfg->metrics_listen, &cfg->metrics, why, sizeof(why)) == -1)
        return config_error(err, errlen, "%s:%d: metrics_listen: %s", cfg->path,
                       config_line_of(cfg, "metrics_listen"), why);
    return 0;
}

static const struct setting *find_setting(const char *name)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (strcmp(settings[i].name, name) == 0)
            return &settings[i];
    }
    return NULL;
}

/* auth_mechanisms: SASL names we implement, each once (worker/pop3_sasl.c). */
static int check_mechanisms(const struct config *cfg, char *err, size_t errlen)
{
    static const char *const known[] = { "PLAIN", "LOGIN", "SCRAM-SHA-256" };
    char list[sizeof(cfg->auth_mechanisms)];
    unsigned seen = 0;

    snprintf(list, sizeof(list), "%s", cfg->auth_mechanisms);
    for (char *save = NULL, *w = strtok_r(list, " \t", &save); w != NULL;
         w = strtok_r(NULL, " \t", &save)) {
        size_t i = 0;
        while (i < sizeof(known) / sizeof(known[0]) && strcasecmp(w, known[i]) != 0)
            i++;
        if (i == sizeof(known) / sizeof(known[0]) || (seen & (1u << i)))
            return config_error(err, errlen, "%s:%d: auth_mechanisms: \"%s\" is %s (choose from "
                           "PLAIN LOGIN SCRAM-SHA-256)", cfg->path,
                           config_line_of(cfg, "auth_mechanisms"), w,
                           i == sizeof(known) / sizeof(known[0]) ? "unknown" : "listed twice");
        seen |= 1u << i;
    }
    return 0;
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
        if (s->type != SET_LISTEN && s->type != SET_PATHS && seen_line[idx]) {
            config_error(err, errlen, "%s:%d: %s is already set on line %d", path, lineno, key,
                    seen_line[idx]);
            goto out;
        }
        seen_line[idx] = lineno;
        cfg->set_on_line[idx] = lineno;
        cfg->loading_line = lineno;
        if (apply_setting(s, value, cfg, msg, sizeof(msg)) == -1) {
            config_error(err, errlen, "%s:%d: %s", path, lineno, msg);
            goto out;
        }
    }
    if (ferror(f)) {
        config_error(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (check_tls_and_proxy(cfg, err, errlen) == -1)
        goto out;
    if (check_mechanisms(cfg, err, errlen) == -1 || check_metrics(cfg, err, errlen) == -1 ||
        config_check_ldap(cfg, err, errlen) == -1)
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

static void print_setting(const struct setting *s, const struct config *cfg, FILE *out)
{
    const char *field = (const char *)cfg + s->offset;
    int n = 0;

    if (s->type != SET_STRING && s->type != SET_PATH && s->type != SET_TEMPLATE &&
        s->type != SET_LISTEN && s->type != SET_PATHS && s->type != SET_CIDRS)
        n = *(const int *)field;
    switch (s->type) {
    case SET_LISTEN:
        for (int i = 0; i < cfg->listen_count; i++) {
            const struct config_listen *l = &cfg->listen[i];
            fprintf(out, "listen = %s%s%s%s\n", l->spec, l->tls ? " tls" : "",
                    l->proxy_protocol ? " proxy_protocol" : "", l->legacy_tls ? " legacy_tls" : "");
        }
        return;
    case SET_PATHS: {
        int count = *(const int *)((const char *)cfg + s->count_offset);
        for (int i = 0; i < count; i++)
            fprintf(out, "%s = %s\n", s->name, field + sizeof(cfg->tls_cert[0]) * (size_t)i);
        return;
    }
    case SET_CIDRS: {
        char text[CIDR_LIST_MAX * 48];
        cidr_list_format((const struct cidr_list *)field, text, sizeof(text));
        fprintf(out, "%s = %s\n", s->name, text);
        return;
    }
    case SET_STRING:
    case SET_PATH:
    case SET_TEMPLATE:
        /* "key = #x" would read back as a comment; "key =#x" reads as #x. */
        fprintf(out, "%s =%s%s\n", s->name, field[0] == '#' ? "" : " ", field);
        return;
    case SET_WORKERS:
        if (n == 0)
            fprintf(out, "%s = auto\n", s->name);
        else
            fprintf(out, "%s = %d\n", s->name, n);
        return;
    case SET_INT:
        fprintf(out, "%s = %d\n", s->name, n);
        return;
    case SET_SECONDS:
        fprintf(out, "%s = %ds\n", s->name, n);
        return;
    case SET_BOOL:
        fprintf(out, "%s = %s\n", s->name, n ? "yes" : "no");
        return;
    case SET_ENUM:
        fprintf(out, "%s = %s\n", s->name, s->choices[n]);
        return;
    }
}

void config_print(const struct config *cfg, FILE *out)
{
    fprintf(out, "# effective configuration of %s\n", cfg->path);
    for (size_t i = 0; i < N_SETTINGS; i++)
        print_setting(&settings[i], cfg, out);
}

const char *config_login_warning(const struct config *cfg)
{
    if (cfg->plaintext_auth || cfg->tls_cert_count > 0 || cfg->plaintext_trusted.count > 0)
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
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

void config_pid_path(const struct config *cfg, char *out, size_t outlen)
{
    if (cfg->pid_file[0])
        snprintf(out, outlen, "%s", cfg->pid_file);
    else
        snprintf(out, outlen, "%s/fastpopd.pid", cfg->run_dir);
}
