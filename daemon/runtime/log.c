#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_target log_target = LOG_TO_STDERR;
static enum log_level log_level = LOG_LVL_INFO;
static char log_tag[32] = "fastpop";
/*
 * Every line of a busy worker carries the pid and the time: both are kept
 * instead of asked for per line (glibc has not cached getpid() since 2.25).
 * A fork clears the pid (pthread_atfork), so a child never logs its parent's.
 */
static pid_t log_pid;
static time_t log_second = -1;
static char log_when[32];

static void forget_pid(void)
{
    log_pid = 0;
}

void log_open(enum log_target target, enum log_level level, const char *role, int index)
{
    static int atfork_set;
    if (!atfork_set && pthread_atfork(NULL, NULL, forget_pid) == 0)
        atfork_set = 1;
    log_pid = 0;
    if (index >= 0)
        snprintf(log_tag, sizeof(log_tag), "%s[%d]", role, index);
    else
        snprintf(log_tag, sizeof(log_tag), "%s", role);
    if (log_target == LOG_TO_SYSLOG && target != LOG_TO_SYSLOG)
        closelog();
    log_target = target;
    log_level = level;
    if (target == LOG_TO_SYSLOG)
        openlog("fastpop", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level level) { log_level = level; }

int log_enabled(enum log_level level) { return level <= log_level; }

void log_close(void)
{
    if (log_target == LOG_TO_SYSLOG)
        closelog();
}

static void log_emit(enum log_level level, const char *fmt, va_list ap)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    char msg[2048];
    int saved = errno;

    if (!log_enabled(level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (log_target == LOG_TO_SYSLOG) {
        syslog(prio[level], "%s: %s", log_tag, msg);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (ts.tv_sec != log_second) {
            struct tm tm;
            localtime_r(&ts.tv_sec, &tm);
            strftime(log_when, sizeof(log_when), "%Y-%m-%d %H:%M:%S", &tm);
            log_second = ts.tv_sec;
        }
        if (log_pid == 0)
            log_pid = getpid();
        /* One write(2) per line keeps lines of several processes whole. */
        char line[2200];
        int n = snprintf(line, sizeof(line), "%s.%03ld fastpop %s %d %s: %s\n", log_when,
                         ts.tv_nsec / 1000000, log_tag, (int)log_pid, names[level], msg);
        if (n > (int)sizeof(line) - 1)
            n = (int)sizeof(line) - 1;
        if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
            /* Nowhere left to report a failing stderr. */
        }
    }
    errno = saved;
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LVL_ERROR, fmt, ap);
    va_end(ap);
}

void log_warning(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LVL_WARNING, fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LVL_INFO, fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LVL_DEBUG, fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(LOG_LVL_ERROR, fmt, ap);
    va_end(ap);
    exit(1);
}
