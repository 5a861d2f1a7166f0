/*
 * Arguments of control-socket verbs (daemon/master/control.c), kept apart so they
 * can be tested without a master: "name=value" options, deadlines, and the
 * USER or IP[/PREFIX] that who and kick take.
 */
#ifndef FASTPOP_CONTROL_ARGS_H
#define FASTPOP_CONTROL_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/runtime/cidr.h"

/* The value of "name=value" among argv[1..argc-1]; NULL when absent. */
const char *control_option(int argc, char **argv, const char *name);

/* A whole number of seconds, 0..86400; -1 if text is not one. */
long control_parse_seconds(const char *text);

/* A 16-byte address (IPv4 v4-mapped) as text: "192.0.2.1", "2001:db8::1". */
void control_format_ip(const uint8_t ip[16], char *out, size_t len);

/* Which sessions who/kick name: all, a user, or an address or network. */
struct control_target {
    int any;
    int by_ip;
    struct cidr_list nets;
    const char *user;     /* points into the parsed text */
};

/* NULL text: every session. -1 for an empty name. */
int control_parse_target(const char *text, struct control_target *t);
/* user is "" before login; ip as control_format_ip() takes it. */
int control_target_match(const struct control_target *t, const char *user, const uint8_t ip[16]);

#endif
