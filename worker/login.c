/*
 * The one entrance for passwords in the worker (see login.h): this worker's
 * memo of logins the helper accepted first, then the helper; and the one
 * exit, login_finish(), where every mechanism ends. The credential cache's
 * login list is opened lazily in this worker, after fork and the privilege
 * drop, and only read here: fastpop-auth writes it. It holds no verifier;
 * the worker computes none (shm/credcache.h, worker/credcache_memo.h).
 *
 * The memo never answers for an address or a name under the brute-force
 * penalty (the helper's view, shm/penalty_view.h; no view, no hit): those
 * logins must reach the helper, which counts them and holds their answers.
 * Nor for a name whose login-list record is missing, older than
 * auth_cache_ttl or of another generation. And a wrong password costs the
 * same here whether or not the name has an entry (two HMACs and one read
 * either way): timing does not list accounts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/runtime/log.h"
#include "daemon/runtime/clock.h"
#include "shm/credcache.h"
#include "worker/credcache_memo.h"
#include "shm/penalty_view.h"
#include "shm/stats.h"
#include "worker/auth_client.h"
#include "worker/loop.h"
#include "worker/login.h"
#include "worker/login_policy.h"
#include "worker/mailbox.h"

/* Until the helper has created the env, look again at most this often. */
#define CACHE_RETRY_SECONDS 5.0

static struct credcache *cache;
/* Logins this worker saw the helper accept (worker/credcache_memo.h); NULL if it could not be made. */
static struct credmemo *memo;
static double next_open;
static int open_error_logged;
static int read_error_logged;
/* The helper's penalty view; NULL until the auth client has received one. */
static struct penalty_view *view;

void login_adopt_view(int fd)
{
    struct penalty_view *v;

    if (penalty_view_map(fd, &v) == -1) {
        log_warning("penalty view from the auth helper unusable: %s; logins go to the helper",
                    strerror(errno));
        return;
    }
    /* Once per helper (re)start and worker: the cache answers from now on. */
    log_info("penalty view received from the auth helper");
    penalty_view_free(view);
    view = v;
}

static struct credcache *worker_cache(const struct config *cfg)
{
    if (cache != NULL || cfg->auth_cache_ttl == 0)
        return cache;
    double now = clock_mono();
    if (now < next_open)
        return NULL;
    next_open = now + CACHE_RETRY_SECONDS;
    if (credcache_open(cfg->state_dir, CREDCACHE_SHARED, 0, &cache) == 0) {
        log_debug("credential cache %s/%s opened", cfg->state_dir, CREDCACHE_DIR);
        /* Made here, after fork: each worker draws its own key. */
        if (memo == NULL && credmemo_new(CREDMEMO_DEFAULT_ENTRIES, &memo) == -1)
            log_warning("credential memo: %s; every login goes to the helper",
                        strerror(errno));
        open_error_logged = 0;
        return cache;
    }
    cache = NULL;
    /* ENOENT: the helper has not written its first entry yet; normal at start. */
    if (errno != ENOENT)
        stats_store_error(STATS_STORE_AUTH_CACHE);
    if (errno != ENOENT && !open_error_logged) {
        log_warning("credential cache %s/%s: %s; every login goes to the helper", cfg->state_dir,
                    CREDCACHE_DIR, strerror(errno));
        open_error_logged = 1;
    }
    return NULL;
}

_Static_assert(sizeof(((struct conn *)0)->memo_pretag) == CREDMEMO_PRETAG_LEN,
               "conn.h holds one pre-tag");

/*
 * A login the memo vouches for, under a fresh login-list record of the same
 * generation, that the penalty does not concern: 1 with the canonical user
 * and maildir in login. Anything else (no record, expired, another
 * generation or password, an address or name under penalty) is 0: the
 * helper decides those, and counts them. The pre-tag is left in
 * c->memo_pretag (c->memo_pending) for settle().
 */
static int cache_hit(struct conn *c, const char *user, const char *password,
                     struct credcache_login *login)
{
    const struct config *cfg = c->lp->cfg;
    struct credcache *cc = worker_cache(cfg);
    int found = 0;

    if (cc == NULL || memo == NULL || strlen(user) >= CREDCACHE_KEY_MAX)
        return 0;
    if (credmemo_pretag(memo, user, password, c->memo_pretag) == -1)
        return 0;
    c->memo_pending = 1;
    /*
     * A helper that went away may have been replaced: reconnecting fetches the
     * new helper's view. Until it arrives the old one stands (the only word
     * there is while no helper runs).
     */
    (void)auth_client_connect(c->lp->auth);
    /* Cheap, and first: a penalized login costs nothing more here, the helper delays it. */
    if (penalty_view_listed(view, c->ip, user, NULL, clock_mono_ms()))
        return 0;
    if (credcache_get_login(cc, user, login, &found) == -1) {
        /*
         * A damaged cache fails every read: logged once until a read works,
         * and reopened later, when the master may have replaced its files.
         */
        stats_store_error(STATS_STORE_AUTH_CACHE);
        if (!read_error_logged)
            log_warning("credential cache read: %s; logins go to the helper until it works "
                        "again (not logged again until then)", credcache_error(cc));
        read_error_logged = 1;
        credcache_close(cache);
        cache = NULL;
        next_open = clock_mono() + CACHE_RETRY_SECONDS;
        found = 0;
    } else {
        read_error_logged = 0;
    }
    int fresh = found && credcache_login_fresh(login, time(NULL), cfg->auth_cache_ttl);
    /* Found or not, fresh or not: the same tag and compare, so timing lists no one. */
    if (!credmemo_check(memo, user, c->memo_pretag, fresh ? login->generation : 0))
        return 0;
    /* The canonical name may be what the penalty counts (a login by another spelling). */
    return !penalty_view_listed(view, c->ip, user, login->user, clock_mono_ms());
}

/*
 * A login the helper answered (status): if it accepted a password that
 * login_password() sent, remember it in this worker's memo under the
 * generation the helper named (c->auth_generation), so the next login with
 * that password is answered here. Forgets the pending pre-tag either way.
 */
static void settle(struct conn *c, enum auth_status status)
{
    if (c->memo_pending && status == AUTH_OK && !c->auth_cached && memo != NULL &&
        c->auth_generation != 0 &&
        credmemo_remember(memo, c->user, c->memo_pretag, c->auth_generation) == -1)
        log_warning("credential memo: %s", strerror(errno));
    explicit_bzero(c->memo_pretag, sizeof(c->memo_pretag));
    c->memo_pending = 0;
    c->auth_generation = 0;
}

/* The helper's answer to a password check (worker/auth_client.h). */
static void password_answered(void *ctx, const struct auth_answer *a)
{
    struct conn *c = ctx;
    c->auth_request = 0;
    if (c->fd == -1)
        return;   /* closed meanwhile; conn_close() cancels, this is belt and braces */
    c->auth_generation = a->generation;
    login_finish(c, a->status, a->user, a->maildir, a->policy);
    /* From the helper's event, not c's own: c runs after the batch (conn_resume()). */
    conn_resume(c);
}

enum pop3_verdict login_password(struct conn *c, const char *user, char *password,
                                      const char *mech, struct pop3_reply *r)
{
    struct credcache_login login;

    c->auth_mech = mech;
    c->auth_cached = 0;
    c->auth_generation = 0;
    if (user != c->user)
        snprintf(c->user, sizeof(c->user), "%s", user);
    if (cache_hit(c, c->user, password, &login)) {
        explicit_bzero(password, strlen(password));
        c->auth_cached = 1;
        stats_cache(STATS_CACHE_HIT);
        login_finish(c, AUTH_OK, login.user, login.maildir, &login.policy);
        explicit_bzero(&login, sizeof(login));
        return POP3_DEFERRED;
    }
    explicit_bzero(&login, sizeof(login));
    stats_cache(STATS_CACHE_MISS);
    c->auth_request = helper_client_check(auth_client_helper(c->lp->auth), c->user, password,
                                          c->ip, mech, password_answered, c);
    explicit_bzero(password, strlen(password));
    if (c->auth_request == 0) {
        settle(c, AUTH_TEMPFAIL);
        c->user[0] = '\0';
        stats_login(mech, STATS_LOGIN_TEMPFAIL);
        pop3_set_reply(r, "SYS/TEMP", "Authentication service unavailable, try again later");
        return POP3_ERR;
    }
    pop3_set_state(c, POP3_AUTH_WAIT);
    return POP3_DEFERRED;
}

static void auth_failed(struct conn *c, struct pop3_reply *r)
{
    c->auth_failures++;
    log_info("login failed user=%s ip=%s mechanism=%s failures=%u", c->user, c->ip,
             c->auth_mech ? c->auth_mech : "USER", c->auth_failures);
    c->user[0] = '\0';
    pop3_set_state(c, POP3_AUTHORIZATION);
    pop3_write_reply(c, POP3_ERR, r);
    if (c->auth_failures >= (unsigned)c->lp->cfg->max_auth_failures) {
        conn_reply(c, "-ERR [AUTH] Too many authentication failures\r\n");
        conn_finish(c, "auth-failures");
    }
}

/* The login's last step: its mailbox is open, or is not (worker/mailbox.h). */
static void mailbox_opened(struct conn *c, enum mailbox_open_result res)
{
    struct pop3_reply r = { 0 };
    if (res == MAILBOX_OPEN_OK) {
        pop3_set_state(c, POP3_TRANSACTION);
        login_policy_logged_in(c);
        stats_login(c->auth_mech, STATS_LOGIN_OK);
        pop3_set_reply(&r, NULL, "Logged in, %u messages", mailbox_count(c->session));
        pop3_write_reply(c, POP3_OK, &r);
        log_info("login user=%s ip=%s mechanism=%s messages=%u cache=%s", c->user, c->ip,
                 c->auth_mech ? c->auth_mech : "USER", mailbox_count(c->session),
                 c->auth_cached ? "hit" : "miss");
        return;
    }
    stats_login(c->auth_mech, res == MAILBOX_OPEN_IN_USE ? STATS_LOGIN_IN_USE
                                                         : STATS_LOGIN_TEMPFAIL);
    if (res == MAILBOX_OPEN_IN_USE)
        pop3_set_reply(&r, "IN-USE", "Mailbox is locked by another POP3 session");
    else if (res == MAILBOX_OPEN_TOO_BIG)
        /* RFC 3206: it takes an administrator, trying again will not help. */
        pop3_set_reply(&r, "SYS/PERM", "Mailbox has too many messages to be opened by POP3");
    else
        pop3_set_reply(&r, "SYS/TEMP", "Cannot open the mailbox, try again later");
    pop3_set_state(c, POP3_AUTHORIZATION);
    pop3_write_reply(c, POP3_ERR, &r);
    c->user[0] = '\0';
}

/* A mailbox read on the loader thread: from the loop, outside c's own event. */
static void mailbox_loaded(struct conn *c, enum mailbox_open_result res)
{
    mailbox_opened(c, res);
    pop3_command_done(c);
    conn_resume(c);
}

void login_finish(struct conn *c, enum auth_status status, const char *user,
                  const char *maildir, const struct user_policy *policy)
{
    struct pop3_reply r = { 0 };

    /* c->user is still the name as typed: what the memo is keyed by. */
    settle(c, status);
    if (status == AUTH_FAIL) {
        stats_login(c->auth_mech, STATS_LOGIN_FAILED);
        pop3_set_reply(&r, "AUTH", "Authentication failed");
        auth_failed(c, &r);
    } else if (status == AUTH_REFUSED) {
        /* The password was right; the account may not use POP3 (auth/protocol.h). */
        stats_login(c->auth_mech, STATS_LOGIN_FAILED);
        pop3_set_reply(&r, "SYS/PERM", "POP3 access is not allowed for this account");
        log_info("login refused user=%s ip=%s", c->user, c->ip);
        c->user[0] = '\0';
        pop3_set_state(c, POP3_AUTHORIZATION);
        pop3_write_reply(c, POP3_ERR, &r);
    } else if (status != AUTH_OK) {
        pop3_set_reply(&r, "SYS/TEMP", "Temporary authentication failure, try again later");
        stats_login(c->auth_mech, STATS_LOGIN_TEMPFAIL);
        log_info("login tempfail user=%s ip=%s", c->user, c->ip);
        c->user[0] = '\0';
        pop3_set_state(c, POP3_AUTHORIZATION);
        pop3_write_reply(c, POP3_ERR, &r);
    } else if (login_policy_refuses(c, user, policy, &r)) {
        /* The password was right; the user's own policy says no (logged there). */
        stats_login(c->auth_mech, STATS_LOGIN_FAILED);
        c->user[0] = '\0';
        pop3_set_state(c, POP3_AUTHORIZATION);
        pop3_write_reply(c, POP3_ERR, &r);
    } else {
        snprintf(c->user, sizeof(c->user), "%s", user);
        enum mailbox_open_result res = mailbox_open(c, maildir, mailbox_loaded);
        if (res == MAILBOX_OPEN_LOADING) {
            /* Answered, and timed, when the loader is done (mailbox_loaded). */
            pop3_set_state(c, POP3_MAILBOX_LOAD);
            return;
        }
        mailbox_opened(c, res);
    }
    /* PASS or AUTH is answered: its time includes the helper and the mailbox sync. */
    pop3_command_done(c);
}

void login_abandon(struct conn *c)
{
    helper_client_cancel(auth_client_helper(c->lp->auth), c->auth_request);
    c->auth_request = 0;
    /* A login still out at the helper leaves its pre-tag. */
    explicit_bzero(c->memo_pretag, sizeof(c->memo_pretag));
    c->memo_pending = 0;
}
