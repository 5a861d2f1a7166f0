/*
 * The sd_notify(3) datagram protocol, spoken without libsystemd
 * (service_notify.h says why and what).
 */
#include "daemon/master/service_notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/runtime/clock.h"
#include "daemon/runtime/log.h"

/*
 * A notify message is a few short lines; STATUS text is cut to fit. systemd
 * reads datagrams up to its own much larger limit (PIPE_BUF and more), so
 * 512 bytes always arrives whole.
 */
#define NOTIFY_MESSAGE_MAX 512

static struct sockaddr_un notify_addr;
static socklen_t notify_addr_len;   /* 0: nobody to tell */
static int notify_failure_logged;

int service_notify_init(void)
{
    const char *name = getenv("NOTIFY_SOCKET");
    notify_addr_len = 0;
    notify_failure_logged = 0;
    if (name == NULL)
        return 0;
    size_t len = strlen(name);
    int ok = (name[0] == '/' || name[0] == '@') && len >= 2 &&
             len <= sizeof(notify_addr.sun_path);
    /* A path needs its terminating NUL inside sun_path; an abstract name does not. */
    if (ok && name[0] == '/' && len == sizeof(notify_addr.sun_path))
        ok = 0;
    if (ok) {
        memset(&notify_addr, 0, sizeof(notify_addr));
        notify_addr.sun_family = AF_UNIX;
        memcpy(notify_addr.sun_path, name, len);
        if (name[0] == '@')
            notify_addr.sun_path[0] = '\0';
        notify_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                      (name[0] == '/' ? 1 : 0));
    }
    unsetenv("NOTIFY_SOCKET");
    return ok ? 0 : -1;
}

static int send_message(const char *message)
{
    if (notify_addr_len == 0)
        return 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ssize_t sent = -1;
    int saved = EBADF;
    if (fd >= 0) {
        /* Never block the master's loop on a manager that is slow to read. */
        sent = sendto(fd, message, strlen(message), MSG_DONTWAIT | MSG_NOSIGNAL,
                      (const struct sockaddr *)&notify_addr, notify_addr_len);
        saved = errno;
        close(fd);
    } else {
        saved = errno;
    }
    if (sent == (ssize_t)strlen(message))
        return 0;
    /* A vanished manager would fail every call: once in the log is enough. */
    if (!notify_failure_logged)
        log_warning("cannot notify the service manager: %s", strerror(saved));
    notify_failure_logged = 1;
    return -1;
}

static int send_with_status(const char *state, const char *status)
{
    char message[NOTIFY_MESSAGE_MAX];
    /* A newline in the text would start a new variable: keep STATUS one line. */
    char line[NOTIFY_MESSAGE_MAX / 2];
    snprintf(line, sizeof(line), "%s", status ? status : "");
    line[strcspn(line, "\n")] = '\0';
    snprintf(message, sizeof(message), "%s%sSTATUS=%s", state ? state : "", state ? "\n" : "",
             line);
    return send_message(message);
}

int service_notify_ready(const char *status)
{
    return send_with_status("READY=1", status);
}

int service_notify_reloading(const char *status)
{
    char state[64];
    snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, clock_mono_us());
    return send_with_status(state, status);
}

int service_notify_status(const char *status)
{
    return send_with_status(NULL, status);
}

int service_notify_stopping(const char *status)
{
    return send_with_status("STOPPING=1", status);
}
