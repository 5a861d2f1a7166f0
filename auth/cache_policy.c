#include "auth/cache_policy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/private_dir.h"
#include "daemon/runtime/escape.h"
#include "daemon/runtime/log.h"
#include "shm/stats.h"
#include "shm/credcache.h"

/*
 * Users whose positive entries were all forgotten and who have had none
 * since: forgetting one again would read the whole cache (about 20 ms per
 * 100,000 records) to find nothing, and a refused account can be asked for
 * as often as a client likes. Exact, because this process writes every
 * positive entry (cache_policy_after() takes a user off the list when it does).
 * A ring: past CACHE_POLICY_FORGOTTEN_MAX refused users, the oldest is read
 * again once.
 */
#define CACHE_POLICY_FORGOTTEN_MAX 64

/*
 * One helper process, one cache: module state, like the crypt(3) work area.
 * cache: the verifiers (private/, the helper's alone); logins: what the
 * workers may read (no verifier). Without cache nothing is cached; without
 * logins the helper still answers from cache, the workers answer nothing.
 */
static struct credcache *cache;
static struct credcache *logins;
static struct credcache_ttl ttl;
static time_t last_sweep;
static char forgotten[CACHE_POLICY_FORGOTTEN_MAX][CREDCACHE_USER_MAX];
static unsigned forgotten_next;

static int forgotten_index(const char *user)
{
    for (int i = 0; i < CACHE_POLICY_FORGOTTEN_MAX; i++) {
        if (forgotten[i][0] && strcmp(forgotten[i], user) == 0)
            return i;
    }
    return -1;
}

/*
 * A failed read or write of the cache: counted each time, logged once until
 * one works again (a damaged cache fails every request; the master replaces
 * it at the next start, or at once if a process faulted on it).
 */
static int trouble_logged;

static void cache_trouble(const char *what)
{
    stats_store_error(STATS_STORE_AUTH_CACHE);
    if (!trouble_logged)
        log_warning("credential cache %s: %s (not logged again until it works)", what,
                    credcache_error(cache));
    trouble_logged = 1;
}

static void set_ttl(const struct config *cfg)
{
    ttl.positive = cfg->auth_cache_ttl;
    ttl.negative = cfg->auth_cache_negative_ttl;
    ttl.stale = cfg->auth_cache_stale_ttl;
}

int cache_policy_open(const struct config *cfg)
{
    int old = 0;

    set_ttl(cfg);
    if (cache != NULL)
        return 0;
    /* Made (0700) and checked (ours, closed to others) before LMDB creates files in it. */
    int dir_fd = private_dir_open(cfg->state_dir);
    if (dir_fd >= 0)
        close(dir_fd);
    if (dir_fd == -1 || credcache_open(cfg->state_dir, CREDCACHE_PRIVATE, 1, &cache) == -1) {
        stats_store_error(STATS_STORE_AUTH_CACHE);
        log_error("credential cache in %s/%s/%s unusable (%s); every login goes to the backend",
                  cfg->state_dir, CREDCACHE_DIR, CREDCACHE_PRIVATE_DIR, strerror(errno));
        cache = NULL;
        return -1;
    }
    if (credcache_open(cfg->state_dir, CREDCACHE_SHARED, 1, &logins) == -1) {
        log_error("credential cache: login list %s/%s/%s unusable (%s); the workers ask the "
                  "helper for every login", cfg->state_dir, CREDCACHE_DIR,
                  CREDCACHE_SHARED_FILE, strerror(errno));
        logins = NULL;
    }
    /* The previous format kept verifiers where the mail group reads: never read, deleted. */
    if (credcache_remove_old_format(cfg->state_dir, &old) == -1)
        log_error("credential cache: cannot delete the old cache files in %s/%s (%s)",
                  cfg->state_dir, CREDCACHE_DIR, strerror(errno));
    else if (old > 0)
        log_info("credential cache: deleted the previous format's files in %s/%s",
                 cfg->state_dir, CREDCACHE_DIR);
    memset(forgotten, 0, sizeof(forgotten));   /* knowledge about the cache just opened only */
    log_info("credential cache %s/%s: ttl %lds, negative %lds, stale %lds", cfg->state_dir,
             CREDCACHE_DIR, ttl.positive, ttl.negative, ttl.stale);
    last_sweep = 0;
    return 0;
}

void cache_policy_reconfigure(const struct config *cfg)
{
    set_ttl(cfg);
}

void cache_policy_close(void)
{
    credcache_close(cache);
    credcache_close(logins);
    cache = logins = NULL;
}

static void sweep(time_t now)
{
    size_t removed;

    if (now - last_sweep < CACHE_POLICY_SWEEP_SECONDS && now >= last_sweep)
        return;
    last_sweep = now;
    if (credcache_sweep(cache, now, &ttl, &removed) == -1)
        log_warning("credential cache sweep: %s", credcache_error(cache));
    else if (removed > 0)
        log_debug("credential cache: %zu expired entries removed", removed);
    if (logins != NULL && credcache_sweep(logins, now, &ttl, &removed) == -1)
        log_warning("credential cache: login list sweep: %s", credcache_error(logins));
}

/*
 * What the workers may know of name's entry: its positive part without the
 * verifier, or nothing. Written after every change of the private record,
 * so the login list never vouches for more than the verifiers do.
 */
static void publish(const char *name, const struct credcache_record *rec)
{
    struct credcache_login login;
    size_t removed;
    int rc;

    if (logins == NULL)
        return;
    if (credcache_login_of(rec, &login) == 0)
        rc = credcache_put_login(logins, name, &login);
    else
        rc = credcache_flush(logins, name, &removed);
    if (rc == -1)
        log_warning("credential cache: login list write: %s", credcache_error(logins));
}

/* Stale-if-error: the backend could not answer; does an old entry vouch for the password? */
static void try_stale(const struct auth_request *req, const struct credcache_record *rec,
                      time_t now, struct auth_result *res)
{
    char user[TEXT_LOG_ESCAPE_SIZE(AUTH_USER_MAX)], ip[TEXT_LOG_ESCAPE_SIZE(AUTH_IP_MAX)];
    struct credcache_ttl stale = { ttl.positive, 0, ttl.stale };

    enum credcache_verdict v = credcache_judge(rec, req->password, now, &stale);
    if (v != CREDCACHE_HIT_OK && v != CREDCACHE_STALE_OK)
        return;
    log_warning("auth ok from the stale credential cache user=%s ip=%s age=%llds "
                "(backend: %s)",
                text_log_escape(req->user, user, sizeof(user)),
                text_log_escape(req->ip, ip, sizeof(ip)),
                (long long)(now - rec->verified_at), res->message[0] ? res->message : "tempfail");
    stats_cache(STATS_CACHE_STALE);
    res->status = AUTH_OK;
    snprintf(res->user, sizeof(res->user), "%s", rec->user);
    snprintf(res->maildir, sizeof(res->maildir), "%s", rec->maildir);
    res->policy = rec->policy;
    res->message[0] = '\0';
}

/*
 * No cached password may vouch for user any more: the backend refused the
 * account, or refused a password the cache held for it. Every spelling of
 * the login that maps to user goes (credcache_forget_user()).
 */
static void forget_user(const char *user, const char *why, size_t already)
{
    char u[TEXT_LOG_ESCAPE_SIZE(AUTH_USER_MAX)];
    size_t n;

    text_log_escape(user, u, sizeof(u));
    if (forgotten_index(user) >= 0) {
        log_debug("credential cache: user=%s has no cached login (%s)", u, why);
        return;
    }
    size_t listed;
    /* The login list first: a worker must stop vouching before anything else changes. */
    if (logins != NULL && credcache_forget_user(logins, user, &listed) == -1)
        log_warning("credential cache: cannot forget user=%s in the login list: %s", u,
                    credcache_error(logins));
    if (credcache_forget_user(cache, user, &n) == -1) {
        log_warning("credential cache: cannot forget user=%s: %s", u, credcache_error(cache));
        return;
    }
    log_info("credential cache: forgot %zu cached login(s) of user=%s (%s)", n + already, u, why);
    snprintf(forgotten[forgotten_next], sizeof(forgotten[0]), "%s", user);
    forgotten_next = (forgotten_next + 1) % CACHE_POLICY_FORGOTTEN_MAX;
}

/* Write what the backend said into rec; 1 if rec changed and must be stored. */
static int record_answer(const struct auth_request *req, const struct auth_result *res,
                         struct credcache_record *rec, time_t now)
{
    /* Refused (POP3 disabled): nothing to vouch for, and no failure to remember either. */
    if (res->status == AUTH_REFUSED)
        return 0;
    if (res->status == AUTH_OK) {
        if (ttl.positive == 0 && ttl.stale == 0)
            return 0;
        int i = forgotten_index(res->user);
        if (i >= 0)
            forgotten[i][0] = '\0';   /* it has a cached login again */
        return credcache_record_ok(rec, req->password, res->user, res->maildir, &res->policy,
                                   now) == 0;
    }
    /* AUTH_FAIL: record_fail also forgets a positive part for this password. */
    if (ttl.negative > 0 || rec->has_positive)
        return credcache_record_fail(rec, req->password, now) == 0;
    return 0;
}

int cache_policy_before(const struct auth_request *req, struct auth_result *res)
{
    struct credcache_record rec;
    /* Fresh parts only: stale-if-error is for outages, after the backend failed. */
    struct credcache_ttl fresh = { ttl.positive, ttl.negative, 0 };
    int found = 0;

    /* The router needs the directory's word on the user's host, which no entry holds. */
    if (strcmp(req->mechanism, AUTH_MECH_ROUTER_LOOKUP) == 0)
        return 0;
    if (cache == NULL || (ttl.positive == 0 && ttl.negative == 0) || req->user[0] == '\0' ||
        req->password[0] == '\0' || strlen(req->user) >= CREDCACHE_KEY_MAX)
        return 0;
    if (credcache_get(cache, req->user, &rec, &found) == -1) {
        cache_trouble("read");
        found = 0;
    }
    /* One PBKDF2 whatever is stored: the answer's time does not tell who has an entry. */
    enum credcache_verdict v = credcache_judge_even(found ? &rec : NULL, req->password,
                                                    time(NULL), &fresh);
    if (v != CREDCACHE_HIT_OK && v != CREDCACHE_HIT_FAIL) {
        explicit_bzero(&rec, sizeof(rec));
        return 0;
    }
    memset(res, 0, sizeof(*res));
    if (v == CREDCACHE_HIT_FAIL) {
        stats_cache(STATS_CACHE_NEGATIVE);
        res->status = AUTH_FAIL;
        outcome_log(req, "failed", "cached-failure");
    } else {
        /* Not a refresh: verified_at stays the backend's word, so the entry still expires. */
        res->status = AUTH_OK;
        res->generation = rec.generation;
        snprintf(res->user, sizeof(res->user), "%s", rec.user);
        snprintf(res->maildir, sizeof(res->maildir), "%s", rec.maildir);
        res->policy = rec.policy;
        outcome_log(req, "ok", "cached");
    }
    explicit_bzero(&rec, sizeof(rec));
    return 1;
}

void cache_policy_after(const struct auth_request *req, struct auth_result *res)
{
    struct credcache_record rec;
    int found = 0;

    if (cache == NULL || req->user[0] == '\0' || req->password[0] == '\0' ||
        strlen(req->user) >= CREDCACHE_KEY_MAX)
        return;
    time_t now = time(NULL);
    if (credcache_get(cache, req->user, &rec, &found) == -1) {
        cache_trouble("read");
        return;
    }
    if (res->status == AUTH_TEMPFAIL) {
        /* Only an outage: a backend that answers (even "error") is not vouched for. */
        if (found && res->outage)
            try_stale(req, &rec, now, res);
        explicit_bzero(&rec, sizeof(rec));
        return;
    }
    int had_positive = found && rec.has_positive;
    char vouched_user[CREDCACHE_USER_MAX];
    snprintf(vouched_user, sizeof(vouched_user), "%s", had_positive ? rec.user : "");
    if (!found && credcache_record_init(&rec) == -1) {
        log_warning("credential cache: no random salt: %s", strerror(errno));
    } else if (record_answer(req, res, &rec, now)) {
        if (credcache_put(cache, req->user, &rec) == -1) {
            cache_trouble("write");
        } else {
            trouble_logged = 0;
            publish(req->user, &rec);
        }
        /* The worker remembers this login under the generation its password has now. */
        if (res->status == AUTH_OK && rec.has_positive)
            res->generation = rec.generation;
    }
    /* record_fail() already dropped this name's positive part if the password was its. */
    size_t dropped_here = had_positive && !rec.has_positive;
    if ((res->status == AUTH_REFUSED || (res->status == AUTH_FAIL && res->account_refused)) &&
        (res->user[0] || vouched_user[0]))
        forget_user(res->user[0] ? res->user : vouched_user, "the backend refused the account",
                    dropped_here);
    else if (res->status == AUTH_FAIL && dropped_here)
        forget_user(vouched_user, "the backend refused a password the cache held", dropped_here);
    explicit_bzero(&rec, sizeof(rec));
    sweep(now);
}
