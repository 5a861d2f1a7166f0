/*
 * What the programs the master execs (fastpop-auth, fastpop-metrics,
 * fastpop-router) share at their start: reading the numbers on their
 * command line and the process setup before their loop.
 */
#ifndef FASTPOP_RUNTIME_PROGRAM_H
#define FASTPOP_RUNTIME_PROGRAM_H

#include <stdio.h>

/* A whole number in [lo, hi] from the command line into *out; -1 (nothing stored) if s is not one. */
int program_arg_int(const char *s, long lo, long hi, int *out);

/* The most options one program's table has. */
#define PROGRAM_MAX_OPTIONS 12

enum program_arg_kind {
    PROGRAM_ARG_INT,      /* out is an int *, the value within [lo, hi] */
    PROGRAM_ARG_STRING,   /* out is a const char **: the argument itself */
    PROGRAM_ARG_FLAG,     /* out is an int *, set to 1 */
};

struct program_option {
    const char *name;     /* "listen-fd" for --listen-fd; NULL: a short option only */
    char short_name;      /* 'F' for -F; 0: a long option only */
    enum program_arg_kind kind;
    long lo, hi;
    void *out;
};

/*
 * Read argv by opts (a table ended by an entry with neither name): --help
 * (or -h) prints usage to stdout and exits 0. A bad number is named on
 * stderr ("name: bad --listen-fd "x""), anything else unknown gets the usage
 * there; both return -1. Arguments that are not options are an error too.
 */
int program_parse_args(int argc, char **argv, const char *name,
                       const struct program_option *opts, void (*usage)(FILE *out));

/*
 * Log as name (to stderr with foreground, else to syslog) at log_level,
 * ignore SIGPIPE (a peer that goes away is an error return, not a death)
 * and leave the directory it was started in. Fatal (logged) if it cannot.
 */
void program_start(const char *name, int foreground, int log_level);

#endif
