/*
 * Shared by the configuration parser's files: config.c (the settings table
 * and the file), config_types.c (how each type of value is read and
 * written back), config_listen.c and config_ldap.c. Nothing outside
 * daemon/config*.c includes this.
 */
#ifndef FASTPOP_CONFIG_PRIVATE_H
#define FASTPOP_CONFIG_PRIVATE_H

#include <stddef.h>
#include <stdio.h>

struct config;
struct setting;

/*
 * One type of value: parse() checks value against the setting's bounds and
 * stores it in cfg, or returns -1 with a message (no "file:line:", the
 * reader adds it); print() writes the setting back as "key = value" lines
 * that parse() reads as the same value.
 */
struct setting_type {
    int (*parse)(const struct setting *s, const char *value, struct config *cfg, char *err,
                 size_t errlen);
    void (*print)(const struct setting *s, const struct config *cfg, FILE *out);
    int repeatable;             /* each line adds one (listen, tls_cert): no "already set" */
};

/* Flags of a setting. */
enum {
    /* "" is a value of its own ("none", or "use the built-in choice"), not a mistake. */
    SETTING_MAY_BE_EMPTY = 1,
};

struct setting {
    const char *name;
    const struct setting_type *type;
    size_t offset;              /* the field in struct config */
    size_t size;                /* its size: for text, the array's */
    const char *def;            /* parsed like a value from the file; NULL: none */
    long min, max;              /* numbers: the bounds (seconds for durations) */
    unsigned flags;             /* SETTING_* */
    const char *const *choices; /* setting_enum: NULL-terminated, index = value */
    size_t count_offset;        /* setting_paths: where the number of entries is kept */
};

extern const struct setting_type setting_string;   /* a name, e.g. a user */
extern const struct setting_type setting_path;     /* an absolute path */
extern const struct setting_type setting_template; /* a maildir template */
extern const struct setting_type setting_uidl_format; /* Dovecot's pop3_uidl_format */
extern const struct setting_type setting_int;
extern const struct setting_type setting_seconds;  /* integer with optional s/m/h suffix */
extern const struct setting_type setting_bool;
extern const struct setting_type setting_enum;
extern const struct setting_type setting_workers;  /* "auto" or an integer */
extern const struct setting_type setting_days_or_never; /* "never" (-1) or an integer */
extern const struct setting_type setting_listen;   /* repeatable addr:port [flags] */
extern const struct setting_type setting_paths;    /* repeatable absolute path, kept in order */
extern const struct setting_type setting_cidrs;    /* a list of networks */

/* Format the message into err and return -1, for `return config_error(...)`. */
int config_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A whole decimal number, nothing after it; -1 otherwise. */
int config_parse_long(const char *v, long *out);
/* Some listener takes passwords in the clear through its trusted proxy. */
int config_listen_any_plaintext(const struct config *cfg);

/* The checks across settings, after the whole file was read (config_check.c). */
int config_check_settings(struct config *cfg, char *err, size_t errlen);

#endif
