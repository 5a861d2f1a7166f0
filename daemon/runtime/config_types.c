/*
 * The types of value a setting can have (config_private.h): for each, how a
 * value is read from the file, checked against the setting's bounds and
 * stored, and how it is written back by config_print(). Which settings exist
 * is config.c's table.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/runtime/config_private.h"
#include "daemon/runtime/template_escape.h"

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
        struct template_escape esc;
        const char *why;
        int n = template_escape_parse(p, TEMPLATE_MAILDIR_MODIFIERS, &esc, &why);
        if (n == -1)
            return config_error(err, errlen, "maildir template: %s near \"%.12s\"", why, p);
        if (strchr("undh%", esc.var) == NULL)
            return config_error(err, errlen,
                           "maildir template has unknown escape %%%c (use %%u %%n %%d %%h %%%%)",
                           esc.var);
        p += n - 1;
    }
    if (tmpl[0] != '/' && strncmp(tmpl, "%h", 2) != 0)
        return config_error(err, errlen, "maildir template must start with / or %%h");
    return 0;
}

int config_check_uidl_format(const char *fmt, char *err, size_t errlen)
{
    size_t vars = 0;
    for (const char *p = fmt; *p; p++) {
        if (*p != '%')
            continue;
        struct template_escape esc;
        const char *why;
        int n = template_escape_parse(p, UIDL_FORMAT_MODIFIERS, &esc, &why);
        if (n == -1)
            return config_error(err, errlen, "dovecot_uidl_format: %s near \"%.12s\"", why, p);
        if (esc.var == 'm')
            return config_error(err, errlen, "dovecot_uidl_format: %%m is Dovecot's for mbox "
                                "only (its maildir UIDL fails with it); use %%u %%v %%f %%g");
        if (esc.var != '%' && strchr(UIDL_FORMAT_VARS, esc.var) == NULL)
            return config_error(err, errlen, "dovecot_uidl_format has unknown escape %%%c "
                                "(use %%u %%v %%f %%g %%%%)", esc.var);
        vars += esc.var != '%';
        p += n - 1;
    }
    /* Without a variable every message would have one UIDL. */
    if (vars == 0)
        return config_error(err, errlen, "dovecot_uidl_format needs %%u, %%v, %%f or %%g");
    return 0;
}

static char *field_of(const struct setting *s, struct config *cfg)
{
    return (char *)cfg + s->offset;
}

static const char *const_field_of(const struct setting *s, const struct config *cfg)
{
    return (const char *)cfg + s->offset;
}

static int may_be_empty(const struct setting *s)
{
    return (s->flags & SETTING_MAY_BE_EMPTY) != 0;
}

/* ---- text: string, path, template ---------------------------------------- */

static int parse_string(const struct setting *s, const char *value, struct config *cfg,
                        char *err, size_t errlen)
{
    if (*value == '\0' && !may_be_empty(s))
        return config_error(err, errlen, "%s needs a value", s->name);
    if (strlen(value) >= s->size)
        return config_error(err, errlen, "%s is too long (at most %zu characters)", s->name,
                            s->size - 1);
    strcpy(field_of(s, cfg), value);
    return 0;
}

static int parse_path(const struct setting *s, const char *value, struct config *cfg,
                      char *err, size_t errlen)
{
    char *field = field_of(s, cfg);

    if (*value == '\0' && may_be_empty(s)) {
        field[0] = '\0';
        return 0;
    }
    if (value[0] != '/')
        return config_error(err, errlen, "%s must be an absolute path, not \"%s\"", s->name,
                            value);
    if (strlen(value) >= s->size)
        return config_error(err, errlen, "%s is too long", s->name);
    strcpy(field, value);
    return 0;
}

static int parse_uidl_format(const struct setting *s, const char *value, struct config *cfg,
                             char *err, size_t errlen)
{
    if (strlen(value) >= s->size)
        return config_error(err, errlen, "%s is too long", s->name);
    if (config_check_uidl_format(value, err, errlen) == -1)
        return -1;
    strcpy(field_of(s, cfg), value);
    return 0;
}

static int parse_template(const struct setting *s, const char *value, struct config *cfg,
                          char *err, size_t errlen)
{
    if (strlen(value) >= s->size)
        return config_error(err, errlen, "%s is too long", s->name);
    if (config_check_maildir_template(value, err, errlen) == -1)
        return -1;
    strcpy(field_of(s, cfg), value);
    return 0;
}

static void print_text(const struct setting *s, const struct config *cfg, FILE *out)
{
    const char *field = const_field_of(s, cfg);
    /* "key = #x" would read back as a comment; "key =#x" reads as #x. */
    fprintf(out, "%s =%s%s\n", s->name, field[0] == '#' ? "" : " ", field);
}

/* ---- numbers: int, seconds, workers -------------------------------------- */

static int int_of(const struct setting *s, const struct config *cfg)
{
    return *(const int *)const_field_of(s, cfg);
}

static int parse_int(const struct setting *s, const char *value, struct config *cfg, char *err,
                     size_t errlen)
{
    long n;
    if (config_parse_long(value, &n) == -1)
        return config_error(err, errlen, "%s: \"%s\" is not a number", s->name, value);
    if (n < s->min || n > s->max)
        return config_error(err, errlen, "%s: %ld is out of range (%ld-%ld)", s->name, n, s->min,
                            s->max);
    *(int *)field_of(s, cfg) = (int)n;
    return 0;
}

static void print_int(const struct setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s = %d\n", s->name, int_of(s, cfg));
}

static int parse_seconds(const struct setting *s, const char *value, struct config *cfg,
                         char *err, size_t errlen)
{
    char num[32];
    size_t len = strlen(value);
    long n, mult = 1;

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
    *(int *)field_of(s, cfg) = (int)n;
    return 0;
}

static void print_seconds(const struct setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s = %ds\n", s->name, int_of(s, cfg));
}

/* "auto" (stored as 0), or a number bounded like any integer. */
static int parse_workers(const struct setting *s, const char *value, struct config *cfg,
                         char *err, size_t errlen)
{
    if (strcmp(value, "auto") == 0) {
        *(int *)field_of(s, cfg) = 0;
        return 0;
    }
    return parse_int(s, value, cfg, err, errlen);
}

/* "never" (stored as -1), or whole days bounded like any integer (pop3_expire). */
static int parse_days_or_never(const struct setting *s, const char *value, struct config *cfg,
                               char *err, size_t errlen)
{
    if (strcasecmp(value, "never") == 0) {
        *(int *)field_of(s, cfg) = -1;
        return 0;
    }
    return parse_int(s, value, cfg, err, errlen);
}

static void print_days_or_never(const struct setting *s, const struct config *cfg, FILE *out)
{
    if (int_of(s, cfg) < 0)
        fprintf(out, "%s = never\n", s->name);
    else
        print_int(s, cfg, out);
}

static void print_workers(const struct setting *s, const struct config *cfg, FILE *out)
{
    if (int_of(s, cfg) == 0)
        fprintf(out, "%s = auto\n", s->name);
    else
        print_int(s, cfg, out);
}

/* ---- choices: bool, enum ---------------------------------------------------- */

static int parse_bool(const struct setting *s, const char *value, struct config *cfg,
                      char *err, size_t errlen)
{
    int *field = (int *)field_of(s, cfg);

    if (strcmp(value, "yes") == 0 || strcmp(value, "on") == 0 || strcmp(value, "true") == 0)
        *field = 1;
    else if (strcmp(value, "no") == 0 || strcmp(value, "off") == 0 ||
             strcmp(value, "false") == 0)
        *field = 0;
    else
        return config_error(err, errlen, "%s: \"%s\" is not yes or no", s->name, value);
    return 0;
}

static void print_bool(const struct setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s = %s\n", s->name, int_of(s, cfg) ? "yes" : "no");
}

static int parse_enum(const struct setting *s, const char *value, struct config *cfg,
                      char *err, size_t errlen)
{
    char list[128] = "";

    for (int i = 0; s->choices[i]; i++) {
        if (strcmp(value, s->choices[i]) == 0) {
            *(int *)field_of(s, cfg) = i;
            return 0;
        }
    }
    for (int i = 0; s->choices[i]; i++) {
        strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
        strncat(list, s->choices[i], sizeof(list) - strlen(list) - 1);
    }
    return config_error(err, errlen, "%s: \"%s\" is not one of %s", s->name, value, list);
}

static void print_enum(const struct setting *s, const struct config *cfg, FILE *out)
{
    fprintf(out, "%s = %s\n", s->name, s->choices[int_of(s, cfg)]);
}

/* ---- lists: paths, networks, listen ---------------------------------------- */

static int parse_paths(const struct setting *s, const char *value, struct config *cfg,
                       char *err, size_t errlen)
{
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
    strcpy(field_of(s, cfg) + one * (size_t)*count, value);
    (*count)++;
    return 0;
}

static void print_paths(const struct setting *s, const struct config *cfg, FILE *out)
{
    int count = *(const int *)((const char *)cfg + s->count_offset);
    for (int i = 0; i < count; i++)
        fprintf(out, "%s = %s\n", s->name,
                const_field_of(s, cfg) + sizeof(cfg->tls_cert[0]) * (size_t)i);
}

static int parse_cidrs(const struct setting *s, const char *value, struct config *cfg,
                       char *err, size_t errlen)
{
    if (cidr_list_parse(value, (struct cidr_list *)field_of(s, cfg), err, errlen) == -1) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", err);
        return config_error(err, errlen, "%s: %s", s->name, msg);
    }
    return 0;
}

static void print_cidrs(const struct setting *s, const struct config *cfg, FILE *out)
{
    char text[CIDR_LIST_MAX * 48];
    cidr_list_format((const struct cidr_list *)const_field_of(s, cfg), text, sizeof(text));
    fprintf(out, "%s = %s\n", s->name, text);
}

static int parse_listen(const struct setting *s, const char *value, struct config *cfg,
                        char *err, size_t errlen)
{
    (void)s;
    if (cfg->listen_count == CONFIG_MAX_LISTEN)
        return config_error(err, errlen, "too many listen lines (at most %d)", CONFIG_MAX_LISTEN);
    if (config_parse_listen(value, &cfg->listen[cfg->listen_count], err, errlen) == -1)
        return -1;
    for (int i = 0; i < cfg->listen_count; i++) {
        const struct config_listen *a = &cfg->listen[i], *b = &cfg->listen[cfg->listen_count];
        /* The same socket address spelled another way is still the same. */
        if (a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0)
            return config_error(err, errlen, "listen %s is given twice (as %s)", value, a->spec);
    }
    cfg->listen_lines[cfg->listen_count] = cfg->loading_line;
    cfg->listen_count++;
    return 0;
}

static void print_listen(const struct setting *s, const struct config *cfg, FILE *out)
{
    (void)s;
    for (int i = 0; i < cfg->listen_count; i++) {
        const struct config_listen *l = &cfg->listen[i];
        fprintf(out, "listen = %s%s%s%s%s\n", l->spec, l->tls ? " tls" : "",
                l->proxy_protocol ? " proxy_protocol" : "", l->legacy_tls ? " legacy_tls" : "",
                l->plaintext_via_proxy ? " plaintext_via_proxy" : "");
    }
}

const struct setting_type setting_string = { parse_string, print_text, 0 };
const struct setting_type setting_path = { parse_path, print_text, 0 };
const struct setting_type setting_template = { parse_template, print_text, 0 };
const struct setting_type setting_uidl_format = { parse_uidl_format, print_text, 0 };
const struct setting_type setting_int = { parse_int, print_int, 0 };
const struct setting_type setting_seconds = { parse_seconds, print_seconds, 0 };
const struct setting_type setting_workers = { parse_workers, print_workers, 0 };
const struct setting_type setting_days_or_never = { parse_days_or_never, print_days_or_never, 0 };
const struct setting_type setting_bool = { parse_bool, print_bool, 0 };
const struct setting_type setting_enum = { parse_enum, print_enum, 0 };
const struct setting_type setting_paths = { parse_paths, print_paths, 1 };
const struct setting_type setting_cidrs = { parse_cidrs, print_cidrs, 0 };
const struct setting_type setting_listen = { parse_listen, print_listen, 1 };
