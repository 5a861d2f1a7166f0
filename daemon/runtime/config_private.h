/*
 * Helpers shared by the configuration parser's files (config.c,
 * config_listen.c); nothing outside daemon/config*.c includes this.
 */
#ifndef FASTPOP_CONFIG_PRIVATE_H
#define FASTPOP_CONFIG_PRIVATE_H

#include <stddef.h>

/* Format the message into err and return -1, for `return config_error(...)`. */
int config_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A whole decimal number, nothing after it; -1 otherwise. */
int config_parse_long(const char *v, long *out);

#endif
