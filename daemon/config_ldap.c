/*
 * The LDAP settings' checks at load time (fastpopd -t, the master and the
 * helper all see them): which attribute names the user.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "daemon/config_private.h"

/* passdb lists "ldap" (the words are checked by the helper, auth/authd_async.c). */
static int uses_ldap(const struct config *cfg)
{
    char copy[sizeof(cfg->passdb)];
    char *save = NULL;

    snprintf(copy, sizeof(copy), "%s", cfg->passdb);
    for (char *w = strtok_r(copy, " ,\t", &save); w; w = strtok_r(NULL, " ,\t", &save)) {
        if (strcmp(w, "ldap") == 0)
            return 1;
    }
    return 0;
}

int config_ldap_filter_attribute(const char *filter, char *out, size_t outlen)
{
    /* The first "(attr=%u)": the value is the login alone, so attr holds the name. */
    for (const char *p = strstr(filter, "=%u)"); p != NULL; p = strstr(p + 1, "=%u)")) {
        const char *start = p;
        while (start > filter && (isalnum((unsigned char)start[-1]) || start[-1] == '-' ||
                                  start[-1] == '.' || start[-1] == ';'))
            start--;
        size_t n = (size_t)(p - start);
        if (start == filter || start[-1] != '(' || n == 0 || !isalpha((unsigned char)*start))
            continue;   /* e.g. "(uid>=%u)" or "(mail=x%u)": not the login as a whole */
        if (n >= outlen)
            return -1;
        memcpy(out, start, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

int config_ldap_user_attribute(const struct config *cfg, char *out, size_t outlen)
{
    if (cfg->ldap_user_attribute[0]) {
        if (strlen(cfg->ldap_user_attribute) >= outlen)
            return -1;
        strcpy(out, cfg->ldap_user_attribute);
        return 0;
    }
    return config_ldap_filter_attribute(cfg->ldap_user_filter, out, outlen);
}

int config_check_ldap(const struct config *cfg, char *err, size_t errlen)
{
    char attr[CONFIG_NAME_MAX];

    if (!uses_ldap(cfg))
        return 0;
    if (config_ldap_user_attribute(cfg, attr, sizeof(attr)) == -1) {
        int line = config_line_of(cfg, "ldap_user_filter");
        return config_error(err, errlen, "%s:%d: ldap_user_filter compares no attribute with "
                            "%%u alone, so the directory cannot name the user: set "
                            "ldap_user_attribute to the attribute that holds the user name",
                            cfg->path, line ? line : config_line_of(cfg, "passdb"));
    }
    return 0;
}
