#include "worker/login_policy.h"

#include "daemon/runtime/log.h"

/* TLS protects this login: the worker's own, or a trusted proxy's (worker/proxy.h). */
static int login_is_secure(const struct conn *c)
{
    return c->ssl != NULL || c->proxy_tls;
}

int login_policy_refuses(struct conn *c, const char *user, const struct user_policy *policy,
                         struct pop3_reply *r)
{
    if (policy == NULL)
        user_policy_init(&c->policy);
    else if (policy != &c->policy)
        c->policy = *policy;
    if ((c->policy.flags & USER_POLICY_NO_PLAINTEXT) && !login_is_secure(c)) {
        pop3_set_reply(r, "AUTH", "This account may log in only over TLS (use STLS or port 995)");
        log_info("login refused user=%s ip=%s mechanism=%s reason=plaintext cache=%s", user,
                 c->ip, c->auth_mech ? c->auth_mech : "USER", c->auth_cached ? "hit" : "miss");
        return 1;
    }
    return 0;
}
