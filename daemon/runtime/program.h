/*
 * What the programs the master execs (fastpop-auth, fastpop-metrics,
 * fastpop-router) share at their start: reading the numbers on their
 * command line and the process setup before their loop.
 */
#ifndef FASTPOP_RUNTIME_PROGRAM_H
#define FASTPOP_RUNTIME_PROGRAM_H

/* A whole number in [lo, hi] from the command line into *out; -1 (nothing stored) if s is not one. */
int program_arg_int(const char *s, long lo, long hi, int *out);

/*
 * Log as name (to stderr with foreground, else to syslog) at log_level,
 * ignore SIGPIPE (a peer that goes away is an error return, not a death)
 * and leave the directory it was started in. Fatal (logged) if it cannot.
 */
void program_start(const char *name, int foreground, int log_level);

#endif
