#include "daemon/runtime/user_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void user_policy_init(struct user_policy *p)
{
    memset(p, 0, sizeof(*p));
}

int user_policy_valid(const struct user_policy *p)
{
    int has_delay = (p->flags & USER_POLICY_HAS_LOGIN_DELAY) != 0;
    int has_expire = (p->flags & USER_POLICY_HAS_EXPIRE) != 0;

    if ((p->flags & ~USER_POLICY_FLAGS_KNOWN) != 0)
        return 0;
    if (has_delay ? p->login_delay > USER_POLICY_LOGIN_DELAY_MAX : p->login_delay != 0)
        return 0;
    if (has_expire ? p->expire_days > USER_POLICY_EXPIRE_DAYS_MAX &&
                         p->expire_days != USER_POLICY_EXPIRE_NEVER
                   : p->expire_days != 0)
        return 0;
    return 1;
}

int user_policy_parse_bool(const char *value, int *out)
{
    static const char *const yes[] = { "true", "yes", "y", "1", "on" };
    static const char *const no[] = { "false", "no", "n", "0", "off" };

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    errno = EINVAL;
    return -1;
}

/* A decimal number 0..max, digits only (no sign, no space, no suffix). */
static int parse_number(const char *value, unsigned long max, uint32_t *out)
{
    char *end;

    if (value[0] < '0' || value[0] > '9' || strlen(value) > 10) {
        errno = EINVAL;
        return -1;
    }
    unsigned long n = strtoul(value, &end, 10);
    if (*end != '\0' || n > max) {
        errno = EINVAL;
        return -1;
    }
    *out = (uint32_t)n;
    return 0;
}

int user_policy_set_login_delay(struct user_policy *p, const char *value)
{
    if (parse_number(value, USER_POLICY_LOGIN_DELAY_MAX, &p->login_delay) == -1)
        return -1;
    p->flags |= USER_POLICY_HAS_LOGIN_DELAY;
    return 0;
}

int user_policy_set_expire(struct user_policy *p, const char *value)
{
    if (strcasecmp(value, "never") == 0)
        p->expire_days = USER_POLICY_EXPIRE_NEVER;
    else if (parse_number(value, USER_POLICY_EXPIRE_DAYS_MAX, &p->expire_days) == -1)
        return -1;
    p->flags |= USER_POLICY_HAS_EXPIRE;
    return 0;
}

uint32_t user_policy_login_delay(const struct user_policy *p, uint32_t global)
{
    return p->flags & USER_POLICY_HAS_LOGIN_DELAY ? p->login_delay : global;
}

uint32_t user_policy_expire(const struct user_policy *p, uint32_t global)
{
    return p->flags & USER_POLICY_HAS_EXPIRE ? p->expire_days : global;
}
