#include "worker/login_policy.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/runtime/clock.h"
#include "daemon/runtime/log.h"
#include "shm/index.h"
#include "shm/policy_store.h"
#include "shm/stats.h"

/* After the store failed to open, look again at most this often. */
#define STORE_RETRY_SECONDS 30.0

/* The policy store, opened in this worker on first use (after fork, as the mail user). */
static struct policy_store *store;
static double next_open;
static int store_error_logged;

struct policy_store *login_policy_store(const struct config *cfg)
{
    char dir[CONFIG_PATH_MAX + 32];

    if (store != NULL || clock_mono() < next_open)
        return store;
    next_open = clock_mono() + STORE_RETRY_SECONDS;
    snprintf(dir, sizeof(dir), "%s/%s/%s", cfg->state_dir, INDEX_SUBDIR, POLICY_STORE_SUBDIR);
    int rc = policy_store_open(dir, &store);
    if (rc == 0) {
        store_error_logged = 0;
        return store;
    }
    store = NULL;
    stats_store_error(STATS_STORE_POLICY);
    if (!store_error_logged)
        log_warning("policy store %s: %s; LOGIN-DELAY and EXPIRE are not enforced until it opens", dir,
                    mdb_strerror(rc));
    store_error_logged = 1;
    return NULL;
}

void login_policy_store_failed(const char *what, int rc)
{
    stats_store_error(STATS_STORE_POLICY);
    if (!store_error_logged)
        log_warning("policy store %s: %s; not logged again until it works", what,
                    mdb_strerror(rc));
    store_error_logged = 1;
    policy_store_close(store);
    store = NULL;
    next_open = clock_mono() + STORE_RETRY_SECONDS;
}

/* TLS protects this login: the worker's own, or a trusted proxy's (worker/proxy.h). */
static int login_is_secure(const struct conn *c)
{
    return c->ssl != NULL || c->proxy_tls;
}

static uint32_t login_delay(const struct conn *c)
{
    return user_policy_login_delay(&c->policy, (uint32_t)c->lp->cfg->pop3_login_delay);
}

/* 1 if user logs in sooner than delay after the last login, with how long ago that was. */
static int too_soon(const struct config *cfg, const char *user, uint32_t delay, int64_t *ago)
{
    struct policy_store *ps = login_policy_store(cfg);
    int64_t last;
    int found = 0;

    if (ps == NULL)
        return 0;
    int rc = policy_store_last_login(ps, user, &last, &found);
    if (rc != 0) {
        login_policy_store_failed("read", rc);
        return 0;
    }
    *ago = (int64_t)time(NULL) - last;
    /* A login "in the future" (the clock stepped back) holds nobody up. */
    return found && *ago >= 0 && *ago < (int64_t)delay;
}

int login_policy_refuses(struct conn *c, const char *user, const struct user_policy *policy,
                         struct pop3_reply *r)
{
    const struct config *cfg = c->lp->cfg;
    const char *mech = c->auth_mech ? c->auth_mech : "USER";
    const char *cached = c->auth_cached ? "hit" : "miss";
    int64_t ago;

    if (policy == NULL)
        user_policy_init(&c->policy);
    else if (policy != &c->policy)
        c->policy = *policy;
    if ((c->policy.flags & USER_POLICY_NO_PLAINTEXT) && !login_is_secure(c)) {
        pop3_set_reply(r, "AUTH", "This account may log in only over TLS (use STLS or port 995)");
        log_info("login refused user=%s ip=%s mechanism=%s reason=plaintext cache=%s", user,
                 c->ip, mech, cached);
        return 1;
    }
    uint32_t delay = login_delay(c);
    if (delay == 0 || !too_soon(cfg, user, delay, &ago))
        return 0;
    if (cfg->pop3_login_delay_action == CONFIG_LOGIN_DELAY_LOG) {
        stats_add(SV_LOGIN_DELAY + STATS_LOGIN_DELAY_LOGGED, 1);
        log_info("login early user=%s ip=%s mechanism=%s login_delay=%u last=%llds", user,
                 c->ip, mech, delay, (long long)ago);
        return 0;
    }
    stats_add(SV_LOGIN_DELAY + STATS_LOGIN_DELAY_REFUSED, 1);
    pop3_set_reply(r, "LOGIN-DELAY", "Log in at most every %u seconds; the last login was %lld "
                   "seconds ago", delay, (long long)ago);
    log_info("login refused user=%s ip=%s mechanism=%s reason=login-delay login_delay=%u "
             "last=%llds", user, c->ip, mech, delay, (long long)ago);
    return 1;
}

void login_policy_logged_in(struct conn *c)
{
    if (login_delay(c) == 0)
        return;   /* no delay applies: no write per login */
    struct policy_store *ps = login_policy_store(c->lp->cfg);
    int rc;
    if (ps != NULL && (rc = policy_store_set_last_login(ps, c->user, (int64_t)time(NULL))) != 0)
        login_policy_store_failed("write", rc);
}

/*
 * RFC 2449 section 6.6: before login, the global value, with USER when a
 * user's own may differ (an LDAP attribute is read, or the password file
 * may hold pop3_login_delay); after login, the value for this user.
 */
void login_policy_capa(struct conn *c)
{
    const struct config *cfg = c->lp->cfg;

    if (pop3_in(c, POP3_TRANSACTION)) {
        if (login_delay(c) > 0 || (c->policy.flags & USER_POLICY_HAS_LOGIN_DELAY))
            conn_reply(c, "LOGIN-DELAY %u\r\n", login_delay(c));
        return;
    }
    int per_user = cfg->ldap_login_delay_attribute[0] != '\0' ||
                   strstr(cfg->passdb, "passwd-file") != NULL;
    if (cfg->pop3_login_delay > 0 || cfg->ldap_login_delay_attribute[0] != '\0')
        conn_reply(c, "LOGIN-DELAY %d%s\r\n", cfg->pop3_login_delay, per_user ? " USER" : "");
}
