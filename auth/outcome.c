#include "auth/outcome.h"

#include <string.h>

#include "daemon/runtime/escape.h"
#include "daemon/runtime/log.h"

void outcome_log(const struct auth_request *req, const char *what, const char *reason)
{
    char user[TEXT_LOG_ESCAPE_SIZE(AUTH_USER_MAX)], ip[TEXT_LOG_ESCAPE_SIZE(AUTH_IP_MAX)];
    char mech[TEXT_LOG_ESCAPE_SIZE(AUTH_MECH_MAX)];

    text_log_escape(req->user, user, sizeof(user));
    text_log_escape(req->ip, ip, sizeof(ip));
    text_log_escape(req->mechanism, mech, sizeof(mech));
    if (strcmp(what, "ok") == 0 && reason[0] == '\0')
        log_debug("auth ok user=%s ip=%s mechanism=%s", user, ip, mech);
    else if (strcmp(what, "ok") == 0)
        log_debug("auth ok user=%s ip=%s mechanism=%s reason=%s", user, ip, mech, reason);
    else
        log_info("auth %s user=%s ip=%s mechanism=%s reason=%s", what, user, ip, mech, reason);
}
