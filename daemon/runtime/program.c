#include "daemon/runtime/program.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/runtime/log.h"

int program_arg_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int program_parse_args(int argc, char **argv, const char *name,
                       const struct program_option *opts, void (*usage)(FILE *out))
{
    /* getopt_long's val: the option's index, above every character a short option can be. */
    enum { HELP = 256, FIRST = 257 };
    struct option longopts[PROGRAM_MAX_OPTIONS + 2];
    char shorts[2 * PROGRAM_MAX_OPTIONS + 2];
    int nl = 0, ns = 0, n = 0;
    for (; opts[n].name != NULL || opts[n].short_name != 0; n++) {
        if (n == PROGRAM_MAX_OPTIONS)
            return -1;
        int has_arg = opts[n].kind == PROGRAM_ARG_FLAG ? no_argument : required_argument;
        if (opts[n].name != NULL)
            longopts[nl++] = (struct option){ opts[n].name, has_arg, NULL, FIRST + n };
        if (opts[n].short_name != 0) {
            shorts[ns++] = opts[n].short_name;
            if (has_arg == required_argument)
                shorts[ns++] = ':';
        }
    }
    longopts[nl++] = (struct option){ "help", no_argument, NULL, HELP };
    longopts[nl] = (struct option){ NULL, 0, NULL, 0 };
    shorts[ns++] = 'h';
    shorts[ns] = '\0';

    int c;
    while ((c = getopt_long(argc, argv, shorts, longopts, NULL)) != -1) {
        if (c == HELP || c == 'h') {
            usage(stdout);
            exit(0);
        }
        int i = c >= FIRST ? c - FIRST : -1;
        for (int k = 0; i < 0 && k < n; k++) {
            if (opts[k].short_name != 0 && opts[k].short_name == c)
                i = k;
        }
        if (i < 0 || i >= n) {
            usage(stderr);
            return -1;
        }
        const struct program_option *o = &opts[i];
        if (o->kind == PROGRAM_ARG_FLAG) {
            *(int *)o->out = 1;
        } else if (o->kind == PROGRAM_ARG_STRING) {
            *(const char **)o->out = optarg;
        } else if (program_arg_int(optarg, o->lo, o->hi, o->out) == -1) {
            if (o->name != NULL)
                fprintf(stderr, "%s: bad --%s \"%s\"\n", name, o->name, optarg);
            else
                fprintf(stderr, "%s: bad -%c \"%s\"\n", name, o->short_name, optarg);
            return -1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

void program_start(const char *name, int foreground, int log_level)
{
    log_open(foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG, (enum log_level)log_level, name, -1);
    signal(SIGPIPE, SIG_IGN);
    /* Nothing is read by a relative path: the directory is not kept busy. */
    if (chdir("/") == -1)
        log_fatal("chdir /: %s", strerror(errno));
}
