/*
 * A user's own POP3 policy, as the directory states it: refuse logins
 * without TLS (Courier's disableinsecurepop3), the least time between two
 * logins (RFC 2449 LOGIN-DELAY, seconds) and how long a retrieved message
 * stays (RFC 2449 EXPIRE, days). A value the directory leaves unset means
 * "the global setting" (pop3_login_delay, pop3_expire).
 *
 * It travels from fastpop-auth to the worker in the auth answer
 * (auth/protocol.h) and is kept in the credential cache's records
 * (shm/credcache.h), so a login answered from the cache obeys it as well.
 * Whether POP3 is allowed at all is not part of it: an account refused POP3
 * is answered AUTH_REFUSED and never cached as a login.
 *
 * The parsers take the values the directory holds; each returns 0, or -1
 * (EINVAL) for a value it cannot read: the caller refuses the login for the
 * time being (tempfail, logged), as for an unusable maildir, rather than
 * guess what the administrator meant.
 */
#ifndef FASTPOP_USER_POLICY_H
#define FASTPOP_USER_POLICY_H

#include <stdint.h>

#include "daemon/runtime/limits.h"

/*
 * An all-zero policy is "nothing of the user's own" on purpose: a result
 * cleared with memset can never mean "EXPIRE 0" (remove every retrieved
 * message), only "the global setting". A value counts only with its flag.
 */
#define USER_POLICY_NO_PLAINTEXT 1u      /* a login without TLS is refused */
#define USER_POLICY_HAS_LOGIN_DELAY 2u   /* login_delay is the user's own */
#define USER_POLICY_HAS_EXPIRE 4u        /* expire_days is the user's own */
#define USER_POLICY_FLAGS_KNOWN 7u
/* expire_days (and the global pop3_expire): never removed for age (RFC 2449 "EXPIRE NEVER"). */
#define USER_POLICY_EXPIRE_NEVER UINT32_MAX

struct user_policy {
    uint32_t flags;
    uint32_t login_delay;    /* seconds; 0 unless USER_POLICY_HAS_LOGIN_DELAY */
    uint32_t expire_days;    /* days or USER_POLICY_EXPIRE_NEVER; 0 unless USER_POLICY_HAS_EXPIRE */
};

/* Nothing of the user's own (all zero). */
void user_policy_init(struct user_policy *p);

/* 1 if every field holds a value this code knows (a decoder's check). */
int user_policy_valid(const struct user_policy *p);

/* An LDAP boolean (TRUE/FALSE, RFC 4517 3.3.3) or yes/no, y/n, 1/0, on/off, any case. */
int user_policy_parse_bool(const char *value, int *out);
/* Whole seconds, 0..USER_POLICY_LOGIN_DELAY_MAX, into p (with its flag). */
int user_policy_set_login_delay(struct user_policy *p, const char *value);
/* Whole days 0..USER_POLICY_EXPIRE_DAYS_MAX, or "never" (any case), into p (with its flag). */
int user_policy_set_expire(struct user_policy *p, const char *value);

/* The value that applies: the user's own if set, else the global one. */
uint32_t user_policy_login_delay(const struct user_policy *p, uint32_t global);
uint32_t user_policy_expire(const struct user_policy *p, uint32_t global);

#endif
