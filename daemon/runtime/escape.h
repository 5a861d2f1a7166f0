/*
 * A log-safe and terminal-safe escape for strings that come from clients
 * (user names, addresses): used by the helper's log lines, the master's
 * and popctl's output.
 */
#ifndef FASTPOP_ESCAPE_H
#define FASTPOP_ESCAPE_H

#include <stddef.h>

/*
 * Copy s into out so that the result is one word of printable ASCII: bytes
 * outside 0x21-0x7E and the backslash become \xHH. Log lines are parsed by
 * tools such as fail2ban, so a user name must never be able to add a space,
 * a fake "ip=" field or a line break; on a terminal it must never send a
 * control sequence. Always NUL-terminates (when outlen > 0); an over-long
 * result is cut and ends in "...".
 *
 * Returns out, so the call can sit inside a log call's arguments.
 */
const char *text_log_escape(const char *s, char *out, size_t outlen);

/* Room for escaping a string of n bytes completely. */
#define TEXT_LOG_ESCAPE_SIZE(n) ((n) * 4 + 1)

#endif
