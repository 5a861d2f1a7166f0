/*
 * fastpop.conf: `key = value` lines, `#` comments (at line start or after
 * whitespace). Every setting lives in one table in config.c with its type,
 * default and bounds; this struct is what the table fills.
 *
 * config_load() returns 0, or -1 with a "file:line: message" in err.
 * The struct holds no pointers, so a loaded config can be copied and
 * compared as a whole (reload builds a new one and swaps it in).
 */
#ifndef FASTPOP_CONFIG_H
#define FASTPOP_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#define CONFIG_DEFAULT_PATH "/etc/fastpop/fastpop.conf"
#define CONFIG_MAX_LISTEN 16
#define CONFIG_NAME_MAX 64
#define CONFIG_PATH_MAX 512

enum config_log_target { CONFIG_LOG_SYSLOG, CONFIG_LOG_STDERR };

struct config_listen {
    char spec[CONFIG_NAME_MAX + 16];      /* as written, e.g. "[::1]:110" */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct config {
    char path[CONFIG_PATH_MAX];           /* the file it was read from */

    struct config_listen listen[CONFIG_MAX_LISTEN];
    int  listen_count;
    int  workers;                         /* 0 = auto: one per online CPU */

    char user[CONFIG_NAME_MAX];
    char group[CONFIG_NAME_MAX];
    char auth_user[CONFIG_NAME_MAX];
    char run_dir[CONFIG_PATH_MAX];
    char state_dir[CONFIG_PATH_MAX];
    char pid_file[CONFIG_PATH_MAX];       /* "" = run_dir/fastpopd.pid */
    char auth_helper[CONFIG_PATH_MAX];    /* "" = fastpop-auth beside fastpopd */
    char passwd_file[CONFIG_PATH_MAX];
    char maildir[CONFIG_PATH_MAX];        /* template: %u %n %d %h %% */

    int  log_target;                      /* enum config_log_target */
    int  log_level;                       /* enum log_level */

    int  max_connections;
    int  max_connections_per_ip;
    int  idle_timeout;                    /* seconds */
    int  shutdown_timeout;                /* seconds */
    int  quit_linger;                     /* seconds to wait for the client's close */
    int  max_bad_commands;
    int  max_auth_failures;
    int  mark_seen;                       /* RETR adds the S flag */

    int  set_on_line[32];                 /* per table entry: line it was set on, 0 = default */
};

/* Fill cfg with every default (no listener: the file must name one). */
void config_defaults(struct config *cfg);
/* Read path into cfg (defaults first). -1: err holds "file:line: message". */
int  config_load(const char *path, struct config *cfg, char *err, size_t errlen);
/* The line a setting was given on (0: the default was used). */
int  config_line_of(const struct config *cfg, const char *name);
/* Print the effective configuration in the file's own syntax. */
void config_print(const struct config *cfg, FILE *out);
/* Workers to run: the configured count, or the online CPUs for auto. */
int  config_worker_count(const struct config *cfg);
/* The pidfile path (pid_file, or run_dir/fastpopd.pid). */
void config_pid_path(const struct config *cfg, char *out, size_t outlen);
/* Parse "addr:port" / "[v6]:port" into l. -1 with a message in err. */
int  config_parse_listen(const char *value, struct config_listen *l, char *err, size_t errlen);
/* Check a maildir template's % escapes. -1 with a message in err. */
int  config_check_maildir_template(const char *tmpl, char *err, size_t errlen);

#endif
