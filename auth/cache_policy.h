/*
 * The helper's side of the credential cache (shm/credcache.h): the helper is
 * its only writer, and the only reader of its verifiers (authcache/private).
 * Every password check the workers send goes through cache_policy_before() and
 * cache_policy_after() around the backend's check (auth/requests.c). Before: a fresh positive match is
 * AUTH_OK and a fresh negative match AUTH_FAIL, without the backend. After
 * the backend's answer:
 *
 *  - AUTH_OK:       stores a verifier of the password, the canonical user
 *                   and the maildir, and publishes the entry without its
 *                   verifier in the workers' login list; res->generation
 *                   tells the worker under which generation to remember
 *                   the login (worker/credcache_memo.h), so it answers the next
 *                   ones itself for auth_cache_ttl;
 *  - AUTH_FAIL:     stores a verifier of the wrong password for
 *                   auth_cache_negative_ttl (the same wrong password is then
 *                   refused without asking the backend again). If the
 *                   backend refused the account itself (res->account_refused:
 *                   locked, disabled), or refused a password the cache held
 *                   for it, every positive entry of that canonical user is
 *                   forgotten, under every login name it was cached as;
 *  - AUTH_TEMPFAIL: stale-if-error, for outages only (res->outage: the
 *                   database could not be reached or did not answer in time):
 *                   if an entry younger than auth_cache_stale_ttl matches the
 *                   password, the login is accepted anyway, with a warning
 *                   naming the user. Any other temporary failure (a setup or
 *                   server error) is passed on as it is.
 *
 * The cache is optional: if it cannot be opened the helper logs that once
 * and answers from the backend alone. Expired entries are swept now and then.
 */
#ifndef FASTPOP_AUTH_CACHE_POLICY_H
#define FASTPOP_AUTH_CACHE_POLICY_H

#include "auth/outcome.h"
#include "daemon/runtime/config.h"

/* How often the helper sweeps expired entries out (seconds). */
#define CACHE_POLICY_SWEEP_SECONDS 600

/* Open (or create) the cache in cfg->state_dir. -1 if it cannot: logged, the helper goes on. */
int cache_policy_open(const struct config *cfg);
/* New TTLs after a reload. */
void cache_policy_reconfigure(const struct config *cfg);
void cache_policy_close(void);

/*
 * Before asking the backend: 1 if the cache answers req by itself, into res
 * (the very password was accepted within auth_cache_ttl: AUTH_OK with the
 * entry's generation, debug-logged "auth ok ... reason=cached"; or it failed
 * within auth_cache_negative_ttl: AUTH_FAIL, logged "auth failed ...
 * reason=cached-failure"), else 0. One PBKDF2 either way, entry or not.
 * Workers never answer failures themselves, so every one passes here and
 * the brute-force penalty sees it; the backend (LDAP) is spared the repeats.
 */
int cache_policy_before(const struct auth_request *req, struct auth_result *res);

/*
 * After the backend answered req with res (req->password still set): record
 * the answer, or apply stale-if-error, which may turn res into AUTH_OK.
 * Not for answers cache_policy_before() gave (that would extend their life).
 */
void cache_policy_after(const struct auth_request *req, struct auth_result *res);

#endif
