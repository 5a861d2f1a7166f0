/*
 * Where a password enters a session: the credential cache first, then the
 * helper (see pop3_sasl.h). The cache is opened lazily in this worker, after
 * fork and the privilege drop, and only read here: fastpop-auth writes it.
 *
 * The cache never answers for an address or a name under the brute-force
 * penalty (the helper's view, shm/penalty_view.h; no view, no cache): those
 * logins must reach the helper, which counts them and holds their answers.
 * And a wrong password costs the same here whether or not the name has an
 * entry (one verifier computed either way): timing does not list accounts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon/log.h"
#include "shm/credcache.h"
#include "shm/credcache_memo.h"
#include "shm/penalty_view.h"
#include "shm/stats.h"
#include "worker/auth_client.h"
#include "worker/loop.h"
#include "worker/pop3_sasl.h"

/* Until the helper has created the env, look again at most this often. */
#define CACHE_RETRY_SECONDS 5.0

static struct credcache *cache;
/* PBKDF2 results this worker already knows (shm/credcache_memo.h); NULL if it could not be made. */
static struct credmemo *memo;
static double next_open;
static int open_error_logged;
static int read_error_logged;
/* The helper's penalty view; NULL until the auth client has received one. */
static struct penalty_view *view;

void pop3_login_adopt_view(int fd)
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
    double now = loop_now();
    if (now < next_open)
        return NULL;
    next_open = now + CACHE_RETRY_SECONDS;
    if (credcache_open(cfg->state_dir, 0, &cache) == 0) {
        log_debug("credential cache %s/%s opened", cfg->state_dir, CREDCACHE_DIR);
        /* Made here, after fork: each worker draws its own key. */
        if (memo == NULL && credmemo_new(CREDMEMO_DEFAULT_ENTRIES, &memo) == -1)
            log_warning("credential memo: %s; every cached login pays the full verifier",
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

/*
 * A fresh positive entry matching password, for a login the penalty does not
 * concern: 1 with the canonical user and maildir in rec. Anything else (a
 * miss, expired, another password, a remembered failure, an address or name
 * under penalty) is 0: the helper decides those, and counts them.
 */
static int cache_hit(struct conn *c, const char *user, const char *password,
                     struct credcache_record *rec)
{
    const struct config *cfg = c->lp->cfg;
    struct credcache *cc = worker_cache(cfg);
    struct credcache_ttl ttl = { cfg->auth_cache_ttl, 0, 0 };
    int found = 0;

    if (cc == NULL || strlen(user) >= CREDCACHE_KEY_MAX)
        return 0;
    /*
     * A helper that went away may have been replaced: reconnecting fetches the
     * new helper's view. Until it arrives the old one stands (the only word
     * there is while no helper runs).
     */
    (void)auth_client_connect(c->lp->auth);
    /* Cheap, and first: a penalized login costs no verifier here, the helper delays it. */
    if (penalty_view_listed(view, c->ip, user, NULL, penalty_view_now_ms()))
        return 0;
    if (credcache_get(cc, user, rec, &found) == -1) {
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
        next_open = loop_now() + CACHE_RETRY_SECONDS;
        found = 0;
    } else {
        read_error_logged = 0;
    }
    time_t now = time(NULL);
    /* Found or not, live or not: the same work, so a wrong password takes the same time. */
    enum credcache_verdict v = memo != NULL
                                   ? credmemo_judge(memo, user, found ? rec : NULL, password,
                                                    now, &ttl)
                                   : credcache_judge_even(found ? rec : NULL, password, now,
                                                            &ttl);
    if (v != CREDCACHE_HIT_OK)
        return 0;
    /* The canonical name may be what the penalty counts (a login by another spelling). */
    return !penalty_view_listed(view, c->ip, user, rec->user, penalty_view_now_ms());
}

enum pop3_verdict pop3_login_password(struct conn *c, const char *user, char *password,
                                      const char *mech, struct pop3_reply *r)
{
    struct credcache_record rec;

    c->auth_mech = mech;
    c->auth_cached = 0;
    if (user != c->user)
        snprintf(c->user, sizeof(c->user), "%s", user);
    if (cache_hit(c, c->user, password, &rec)) {
        explicit_bzero(password, strlen(password));
        c->auth_cached = 1;
        stats_cache(STATS_CACHE_HIT);
        pop3_auth_finish(c, AUTH_OK, rec.user, rec.maildir);
        explicit_bzero(&rec, sizeof(rec));
        return POP3_DEFERRED;
    }
    explicit_bzero(&rec, sizeof(rec));
    stats_cache(STATS_CACHE_MISS);
    int rc = auth_client_check(c->lp->auth, c, c->user, password, mech);
    explicit_bzero(password, strlen(password));
    if (rc == -1) {
        c->user[0] = '\0';
        stats_login(mech, STATS_LOGIN_TEMPFAIL);
        pop3_set_reply(r, "SYS/TEMP", "Authentication service unavailable, try again later");
        return POP3_ERR;
    }
    conn_set_state(c, CONN_AUTH_WAIT);
    return POP3_DEFERRED;
}
