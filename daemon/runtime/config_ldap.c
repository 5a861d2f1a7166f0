/*
 * The LDAP settings' checks at load time (fastpopd -t, the master and the
 * helper all see them): the URIs, and which attribute names the user.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "daemon/runtime/config_private.h"

/* passdb lists "ldap" (the words are checked by the helper, auth/passdb.c). */
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

/* host (no brackets, no port) is a loopback address: 127.0.0.0/8, ::1 or "localhost". */
static int loopback_host(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;

    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&v6) ||
               (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
    return 0;
}

/*
 * One URI of ldap_uri. ldaps:// and ldapi:// (a local socket) are fine;
 * ldap:// sends the service password and every user's password in the clear
 * unless ldap_starttls is on, which is only acceptable when the packets
 * never leave the host.
 */
static int check_uri(const struct config *cfg, const char *uri, char *why, size_t whylen)
{
    static const char plain[] = "ldap://";
    char host[256];

    if (strncasecmp(uri, "ldaps://", 8) == 0 || strncasecmp(uri, "ldapi://", 8) == 0)
        return 0;
    if (strncasecmp(uri, plain, sizeof(plain) - 1) != 0)
        return config_error(why, whylen, "\"%s\" is not an ldap://, ldaps:// or ldapi:// URI",
                            uri);
    if (cfg->ldap_starttls)
        return 0;
    const char *h = uri + sizeof(plain) - 1;
    size_t n;
    if (*h == '[') {
        h++;
        n = strcspn(h, "]");
    } else {
        n = strcspn(h, ":/");
    }
    if (n == 0 || n >= sizeof(host))
        n = 0;
    memcpy(host, h, n);
    host[n] = '\0';
    if (n > 0 && loopback_host(host))
        return 0;
    return config_error(why, whylen, "%s would send passwords in the clear to a host that is "
                        "not loopback: use ldaps:// or set ldap_starttls = yes", uri);
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
    char list[sizeof(cfg->ldap_uri)], why[512], attr[CONFIG_NAME_MAX];
    char *save = NULL;

    if (!uses_ldap(cfg))
        return 0;
    snprintf(list, sizeof(list), "%s", cfg->ldap_uri);
    for (char *u = strtok_r(list, " \t,", &save); u; u = strtok_r(NULL, " \t,", &save)) {
        if (check_uri(cfg, u, why, sizeof(why)) == -1)
            return config_error(err, errlen, "%s:%d: ldap_uri: %s", cfg->path,
                                config_line_of(cfg, "ldap_uri"), why);
    }
    if (config_ldap_user_attribute(cfg, attr, sizeof(attr)) == -1) {
        int line = config_line_of(cfg, "ldap_user_filter");
        return config_error(err, errlen, "%s:%d: ldap_user_filter compares no attribute with "
                            "%%u alone, so the directory cannot name the user: set "
                            "ldap_user_attribute to the attribute that holds the user name",
                            cfg->path, line ? line : config_line_of(cfg, "passdb"));
    }
    return 0;
}
