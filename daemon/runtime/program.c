#include "daemon/runtime/program.h"

#include <errno.h>
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

void program_start(const char *name, int foreground, int log_level)
{
    log_open(foreground ? LOG_TO_STDERR : LOG_TO_SYSLOG, (enum log_level)log_level, name, -1);
    signal(SIGPIPE, SIG_IGN);
    /* Nothing is read by a relative path: the directory is not kept busy. */
    if (chdir("/") == -1)
        log_fatal("chdir /: %s", strerror(errno));
}
