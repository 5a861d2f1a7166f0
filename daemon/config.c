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

#include "daemon/log.h"

enum setting_type {
    SET_STRING,   /* a name, e.g. a user */
    SET_PATH,     /* an absolute path, or "" where allowed */
    SET_INT,
    SET_SECONDS,  /* integer with optional s/m/h suffix */
    SET_BOOL,
    SET_ENUM,
    SET_WORKERS,  /* "auto" or an integer */
    SET_LISTEN,   /* repeatable addr:port */
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
};

static const char *const log_targets[] = { "syslog", "stderr", NULL };
static const char *const log_levels[] = { "error", "warning", "info", "debug", NULL };

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)

/*
 * Every setting, its default and its bounds. Why the bounds:
 *  - idle_timeout: RFC 1939 section 3 requires an autologout timer of at
 *    least 10 minutes, so the default is 600 s; shorter values are allowed
 *    (down to 5 s) for sites that knowingly trade that for sockets.
 *  - max_connections: each needs up to three descriptors (socket, lock, message).
 *  - quit_linger: after the QUIT reply the client should close first, so the
 *    TIME_WAIT state stays on its side; a client that waits for our close
 *    instead is waited for at most this long.
 */
static const struct setting settings[] = {
    { "listen", SET_LISTEN, 0, 0, NULL, 0, 0, NULL },
    { "workers", SET_WORKERS, FIELD(workers), "auto", 1, 256, NULL },
    { "user", SET_STRING, FIELD(user), "vmail", 0, 0, NULL },
    { "group", SET_STRING, FIELD(group), "vmail", 0, 0, NULL },
    { "auth_user", SET_STRING, FIELD(auth_user), "fastpop", 0, 0, NULL },
    { "run_dir", SET_PATH, FIELD(run_dir), "/run/fastpop", 0, 0, NULL },
    { "state_dir", SET_PATH, FIELD(state_dir), "/var/lib/fastpop", 0, 0, NULL },
    { "pid_file", SET_PATH, FIELD(pid_file), "", 1, 0, NULL },
    { "auth_helper", SET_PATH, FIELD(auth_helper), "", 1, 0, NULL },
    { "passwd_file", SET_PATH, FIELD(passwd_file), "/etc/fastpop/passwd", 0, 0, NULL },
    { "maildir", SET_TEMPLATE, FIELD(maildir), "%h/Maildir", 0, 0, NULL },
    { "log", SET_ENUM, FIELD(log_target), "syslog", 0, 0, log_targets },
    { "log_level", SET_ENUM, FIELD(log_level), "info", 0, 0, log_levels },
    { "max_connections", SET_INT, FIELD(max_connections), "10000", 1, 1000000, NULL },
    { "max_connections_per_ip", SET_INT, FIELD(max_connections_per_ip), "20", 1, 1000000, NULL },
    { "idle_timeout", SET_SECONDS, FIELD(idle_timeout), "10m", 5, 86400, NULL },
    { "shutdown_timeout", SET_SECONDS, FIELD(shutdown_timeout), "30s", 1, 3600, NULL },
    { "quit_linger", SET_SECONDS, FIELD(quit_linger), "2s", 0, 30, NULL },
    { "max_bad_commands", SET_INT, FIELD(max_bad_commands), "10", 1, 1000, NULL },
    { "max_auth_failures", SET_INT, FIELD(max_auth_failures), "3", 1, 100, NULL },
    { "mark_seen", SET_BOOL, FIELD(mark_seen), "yes", 0, 0, NULL },
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

_Static_assert(N_SETTINGS <= sizeof(((struct config *)0)->set_on_line) / sizeof(int),
               "struct config: set_on_line too small for the settings table");

static int set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_long(const char *v, long *out)
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

int config_parse_listen(const char *value, struct config_listen *l, char *err, size_t errlen)
{
    char host[CONFIG_NAME_MAX];
    const char *port;

    memset(l, 0, sizeof(*l));
    if (strlen(value) >= sizeof(l->spec))
        return set_err(err, errlen, "listen address too long");
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (close == NULL || close[1] != ':')
            return set_err(err, errlen, "bad listen address \"%s\": expected [ipv6]:port", value);
        size_t n = (size_t)(close - value - 1);
        if (n >= sizeof(host))
            return set_err(err, errlen, "bad listen address \"%s\"", value);
        memcpy(host, value + 1, n);
        host[n] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(value, ':');
        if (colon == NULL || strchr(value, ':') != colon)
            return set_err(err, errlen,
                           "bad listen address \"%s\": expected addr:port or [ipv6]:port", value);
        size_t n = (size_t)(colon - value);
        if (n >= sizeof(host))
            return set_err(err, errlen, "bad listen address \"%s\"", value);
        memcpy(host, value, n);
        host[n] = '\0';
        port = colon + 1;
    }
    long p;
    if (parse_long(port, &p) == -1 || p < 1 || p > 65535)
        return set_err(err, errlen, "bad port in listen address \"%s\" (1-65535)", value);

    struct sockaddr_in *in4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        l->addrlen = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        l->addrlen = sizeof(*in6);
    } else {
        return set_err(err, errlen,
                       "bad listen address \"%s\": \"%s\" is not an IPv4 or IPv6 address",
                       value, host);
    }
    snprintf(l->spec, sizeof(l->spec), "%s", value);
    return 0;
}

int config_check_maildir_template(const char *tmpl, char *err, size_t errlen)
{
    for (const char *p = tmpl; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (*p == '\0')
            return set_err(err, errlen, "maildir template ends with a lone %%");
        if (strchr("undh%", *p) == NULL)
            return set_err(err, errlen,
                           "maildir template has unknown escape %%%c (use %%u %%n %%d %%h %%%%)", *p);
    }
    if (tmpl[0] != '/' && strncmp(tmpl, "%h", 2) != 0)
        return set_err(err, errlen, "maildir template must start with / or %%h");
    return 0;
}

static int apply_setting(const struct setting *s, const char *value, struct config *cfg,
                         char *err, size_t errlen)
{
    char *field = (char *)cfg + s->offset;
    long n;

    switch (s->type) {
    case SET_STRING:
        if (*value == '\0')
            return set_err(err, errlen, "%s needs a value", s->name);
        if (strlen(value) >= s->size)
            return set_err(err, errlen, "%s is too long (at most %zu characters)", s->name,
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
            return set_err(err, errlen, "%s must be an absolute path, not \"%s\"", s->name, value);
        if (strlen(value) >= s->size)
            return set_err(err, errlen, "%s is too long", s->name);
        strcpy(field, value);
        return 0;
    case SET_TEMPLATE:
        if (strlen(value) >= s->size)
            return set_err(err, errlen, "%s is too long", s->name);
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
        if (parse_long(value, &n) == -1)
            return set_err(err, errlen, "%s: \"%s\" is not a number", s->name, value);
        if (n < s->min || n > s->max)
            return set_err(err, errlen, "%s: %ld is out of range (%ld-%ld)", s->name, n, s->min,
                           s->max);
        *(int *)field = (int)n;
        return 0;
    case SET_SECONDS: {
        char num[32];
        size_t len = strlen(value);
        long mult = 1;
        if (len == 0 || len >= sizeof(num))
            return set_err(err, errlen, "%s: \"%s\" is not a duration", s->name, value);
        memcpy(num, value, len + 1);
        char unit = num[len - 1];
        if (unit == 's' || unit == 'm' || unit == 'h') {
            mult = unit == 's' ? 1 : unit == 'm' ? 60 : 3600;
            num[len - 1] = '\0';
        }
        if (parse_long(num, &n) == -1 || n < 0 || n > LONG_MAX / mult)
            return set_err(err, errlen,
                           "%s: \"%s\" is not a duration (a number with s, m or h)", s->name,
                           value);
        n *= mult;
        if (n < s->min || n > s->max)
            return set_err(err, errlen, "%s: %ld seconds is out of range (%ld-%ld)", s->name, n,
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
            return set_err(err, errlen, "%s: \"%s\" is not yes or no", s->name, value);
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
            return set_err(err, errlen, "%s: \"%s\" is not one of %s", s->name, value, list);
        }
    case SET_LISTEN:
        if (cfg->listen_count == CONFIG_MAX_LISTEN)
            return set_err(err, errlen, "too many listen lines (at most %d)", CONFIG_MAX_LISTEN);
        if (config_parse_listen(value, &cfg->listen[cfg->listen_count], err, errlen) == -1)
            return -1;
        for (int i = 0; i < cfg->listen_count; i++) {
            const struct config_listen *a = &cfg->listen[i], *b = &cfg->listen[cfg->listen_count];
            /* The same socket address spelled another way is still the same. */
            if (a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0)
                return set_err(err, errlen, "listen %s is given twice (as %s)", value,
                               a->spec);
        }
        cfg->listen_count++;
        return 0;
    }
    return set_err(err, errlen, "internal: unknown setting type");
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
        return set_err(err, errlen, "%s: path too long", path);
    snprintf(cfg->path, sizeof(cfg->path), "%s", path);

    FILE *f = fopen(path, "r");
    if (f == NULL)
        return set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));

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
            set_err(err, errlen, "%s:%d: line too long (at most %zu characters)", path, lineno,
                    sizeof(line) - 1);
            goto out;
        }
        if (memchr(raw, '\0', (size_t)got) != NULL) {
            set_err(err, errlen, "%s:%d: NUL byte in line", path, lineno);
            goto out;
        }
        memcpy(line, raw, (size_t)got + 1);
        strip_comment(line);
        char *key = trim(line);
        if (*key == '\0')
            continue;
        char *eq = strchr(key, '=');
        if (eq == NULL) {
            set_err(err, errlen, "%s:%d: expected \"key = value\"", path, lineno);
            goto out;
        }
        *eq = '\0';
        char *value = trim(eq + 1);
        key = trim(key);
        const struct setting *s = find_setting(key);
        if (s == NULL) {
            set_err(err, errlen, "%s:%d: unknown setting \"%s\"", path, lineno, key);
            goto out;
        }
        size_t idx = (size_t)(s - settings);
        if (s->type != SET_LISTEN && seen_line[idx]) {
            set_err(err, errlen, "%s:%d: %s is already set on line %d", path, lineno, key,
                    seen_line[idx]);
            goto out;
        }
        seen_line[idx] = lineno;
        cfg->set_on_line[idx] = lineno;
        if (apply_setting(s, value, cfg, msg, sizeof(msg)) == -1) {
            set_err(err, errlen, "%s:%d: %s", path, lineno, msg);
            goto out;
        }
    }
    if (ferror(f)) {
        set_err(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (cfg->listen_count == 0) {
        if (lineno == 0)
            set_err(err, errlen, "%s: empty file: no listen address", path);
        else
            set_err(err, errlen,
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
        s->type != SET_LISTEN)
        n = *(const int *)field;
    switch (s->type) {
    case SET_LISTEN:
        for (int i = 0; i < cfg->listen_count; i++)
            fprintf(out, "listen = %s\n", cfg->listen[i].spec);
        return;
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
