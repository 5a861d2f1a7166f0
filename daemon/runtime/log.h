/*
 * Logging for every fastpop process: syslog (facility mail) or stderr.
 * Each line names the process role and pid, e.g. "worker[2] 1234: ...".
 * log_fatal() is only for per-process invariants, never a client's mistake.
 */
#ifndef FASTPOP_LOG_H
#define FASTPOP_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG };

/* role: "master", "worker", "auth", "popctl"; index < 0 means none. */
void log_open(enum log_target target, enum log_level level, const char *role, int index);
void log_set_level(enum log_level level);
int  log_enabled(enum log_level level);
void log_close(void);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
