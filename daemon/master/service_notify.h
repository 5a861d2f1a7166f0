/*
 * Tells a service manager (systemd, Type=notify) what the master is doing:
 * READY=1 once it serves, RELOADING=1 then READY=1 around a reload,
 * STATUS= lines for people (systemctl status), STOPPING=1 at a stop.
 *
 * The protocol is one datagram of NEWLINE-separated VAR=value lines sent to
 * the unix socket named by $NOTIFY_SOCKET (a path, or an abstract name
 * written with a leading '@'); see sd_notify(3). It is small enough to speak
 * here, so fastpop needs no libsystemd. Without NOTIFY_SOCKET every call is
 * a no-op: init scripts and foreground runs are unaffected.
 */
#ifndef FASTPOP_SERVICE_NOTIFY_H
#define FASTPOP_SERVICE_NOTIFY_H

/*
 * Reads $NOTIFY_SOCKET once and removes it from the environment, so the auth
 * helper and the metrics process (exec'd by the master) never speak for the
 * service. 0 (also when unset), -1 if it names no usable socket (then the
 * other calls do nothing).
 */
int service_notify_init(void);

/* Sends "READY=1" and a STATUS line. 0, or -1 (the first failure is logged). */
int service_notify_ready(const char *status);

/* "RELOADING=1" with MONOTONIC_USEC (systemd >= 253 wants it) and a STATUS line. */
int service_notify_reloading(const char *status);

/* Only a STATUS line (e.g. draining). */
int service_notify_status(const char *status);

/* "STOPPING=1" and a STATUS line. */
int service_notify_stopping(const char *status);

#endif
