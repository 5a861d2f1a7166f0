/*
 * The checks that need more than one setting, run once the whole file is
 * read (config_load()): each refuses a combination with the file:line of
 * the setting to change.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/runtime/config_private.h"

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

int config_host_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CONFIG_HOST_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
        if (!ok)
            return 0;
    }
    return 1;
}

/* pop3_workarounds: words, each a workaround Dovecot's admins know by that name. */
static int check_workarounds(struct config *cfg, char *err, size_t errlen)
{
    static const struct { const char *name; int flag; } known[] = {
        { "outlook-no-nuls", CONFIG_WORKAROUND_OUTLOOK_NO_NULS },
        { "oe-ns-eoh", CONFIG_WORKAROUND_OE_NS_EOH },
    };
    char words[sizeof(cfg->pop3_workarounds)];
    strcpy(words, cfg->pop3_workarounds);
    cfg->pop3_workarounds_set = 0;
    for (char *save = NULL, *w = strtok_r(words, " \t,", &save); w != NULL;
         w = strtok_r(NULL, " \t,", &save)) {
        size_t i = 0;
        while (i < sizeof(known) / sizeof(known[0]) && strcmp(w, known[i].name) != 0)
            i++;
        if (i == sizeof(known) / sizeof(known[0]))
            return config_error(err, errlen, "%s:%d: pop3_workarounds: unknown \"%s\" (known: "
                                "outlook-no-nuls oe-ns-eoh)", cfg->path,
                                config_line_of(cfg, "pop3_workarounds"), w);
        cfg->pop3_workarounds_set |= known[i].flag;
    }
    return 0;
}

/* host_name names this host in shared locks: the system's name unless set. */
static int check_host_name(struct config *cfg, char *err, size_t errlen)
{
    int line = config_line_of(cfg, "host_name");
    if (cfg->host_name[0] == '\0') {
        char name[256];
        if (gethostname(name, sizeof(name)) == -1 || !config_host_name_valid(name)) {
            if (cfg->mailbox_lock != CONFIG_MAILBOX_LOCK_SHARED)
                return 0;
            return config_error(err, errlen, "%s:%d: mailbox_lock = shared needs host_name: "
                                "the system's host name is not usable", cfg->path,
                                config_line_of(cfg, "mailbox_lock"));
        }
        strcpy(cfg->host_name, name);
        return 0;
    }
    if (!config_host_name_valid(cfg->host_name))
        return config_error(err, errlen, "%s:%d: host_name: \"%s\" is not a host name (1-%d "
                            "letters, digits, '.', '-', '_')", cfg->path, line, cfg->host_name,
                            CONFIG_HOST_NAME_MAX);
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

/* router_listen: one address; it needs backends to route to. */
static int check_router(struct config *cfg, char *err, size_t errlen)
{
    char why[256];
    struct config_backend b[CONFIG_ROUTER_BACKENDS_MAX];
    memset(&cfg->router, 0, sizeof(cfg->router));
    if (cfg->router_backends[0] != '\0' &&
        config_parse_backends(cfg->router_backends, b, CONFIG_ROUTER_BACKENDS_MAX, why,
                              sizeof(why)) == -1)
        return config_error(err, errlen, "%s:%d: router_backends: %s", cfg->path,
                            config_line_of(cfg, "router_backends"), why);
    if (cfg->router_listen[0] == '\0')
        return 0;
    if (config_parse_address(cfg->router_listen, &cfg->router, why, sizeof(why)) == -1)
        return config_error(err, errlen, "%s:%d: router_listen: %s", cfg->path,
                            config_line_of(cfg, "router_listen"), why);
    if (cfg->router_backends[0] == '\0')
        return config_error(err, errlen, "%s:%d: router_listen needs router_backends",
                            cfg->path, config_line_of(cfg, "router_listen"));
    return 0;
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

/* authlib_socket must fit a sockaddr_un: the helper connects to it (auth/passdb_authlib.c). */
static int check_authlib(const struct config *cfg, char *err, size_t errlen)
{
    struct sockaddr_un sa;

    if (strlen(cfg->authlib_socket) < sizeof(sa.sun_path))
        return 0;
    return config_error(err, errlen, "%s:%d: authlib_socket is longer than a Unix socket path "
                        "may be (%zu bytes)", cfg->path, config_line_of(cfg, "authlib_socket"),
                        sizeof(sa.sun_path) - 1);
}

int config_check_settings(struct config *cfg, char *err, size_t errlen)
{
    if (check_tls_and_proxy(cfg, err, errlen) == -1 || check_mechanisms(cfg, err, errlen) == -1 ||
        check_metrics(cfg, err, errlen) == -1 || check_router(cfg, err, errlen) == -1 ||
        config_check_ldap(cfg, err, errlen) == -1 || check_authlib(cfg, err, errlen) == -1 ||
        check_host_name(cfg, err, errlen) == -1 || check_workarounds(cfg, err, errlen) == -1)
        return -1;
    return 0;
}
