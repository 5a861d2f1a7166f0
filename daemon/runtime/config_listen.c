/*
 * Listening addresses in the configuration: "addr:port" or "[ipv6]:port",
 * and the listen setting's flags after it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "daemon/runtime/config_private.h"

int config_parse_address(const char *value, struct config_listen *l, char *err, size_t errlen)
{
    char host[CONFIG_NAME_MAX];
    const char *port;

    if (strlen(value) >= sizeof(l->spec))
        return config_error(err, errlen, "listen address too long");
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (close == NULL || close[1] != ':')
            return config_error(err, errlen, "bad listen address \"%s\": expected [ipv6]:port", value);
        size_t n = (size_t)(close - value - 1);
        if (n >= sizeof(host))
            return config_error(err, errlen, "bad listen address \"%s\"", value);
        memcpy(host, value + 1, n);
        host[n] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(value, ':');
        if (colon == NULL || strchr(value, ':') != colon)
            return config_error(err, errlen,
                           "bad listen address \"%s\": expected addr:port or [ipv6]:port", value);
        size_t n = (size_t)(colon - value);
        if (n >= sizeof(host))
            return config_error(err, errlen, "bad listen address \"%s\"", value);
        memcpy(host, value, n);
        host[n] = '\0';
        port = colon + 1;
    }
    long p;
    if (config_parse_long(port, &p) == -1 || p < 1 || p > 65535)
        return config_error(err, errlen, "bad port in listen address \"%s\" (1-65535)", value);

    struct sockaddr_in *in4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&l->addr;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        l->addrlen = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        l->addrlen = sizeof(*in6);
    } else {
        return config_error(err, errlen,
                       "bad listen address \"%s\": \"%s\" is not an IPv4 or IPv6 address",
                       value, host);
    }
    snprintf(l->spec, sizeof(l->spec), "%s", value);
    return 0;
}

/*
 * "addr:port [tls] [proxy_protocol] [legacy_tls] [plaintext_via_proxy]", flags
 * after the address as nginx has them.
 */
int config_parse_listen(const char *value, struct config_listen *l, char *err, size_t errlen)
{
    char copy[CONFIG_PATH_MAX];
    char *save = NULL;

    memset(l, 0, sizeof(*l));
    if (strlen(value) >= sizeof(copy))
        return config_error(err, errlen, "listen value too long");
    strcpy(copy, value);
    char *addr = strtok_r(copy, " \t", &save);
    if (addr == NULL)
        return config_error(err, errlen, "listen needs an address");
    if (config_parse_address(addr, l, err, errlen) == -1)
        return -1;
    for (char *flag = strtok_r(NULL, " \t", &save); flag; flag = strtok_r(NULL, " \t", &save)) {
        if (strcmp(flag, "tls") == 0)
            l->tls = 1;
        else if (strcmp(flag, "proxy_protocol") == 0)
            l->proxy_protocol = 1;
        else if (strcmp(flag, "legacy_tls") == 0)
            l->legacy_tls = 1;
        else if (strcmp(flag, "plaintext_via_proxy") == 0)
            l->plaintext_via_proxy = 1;
        else
            return config_error(err, errlen,
                           "listen %s: unknown flag \"%s\" (known: tls, proxy_protocol, "
                           "legacy_tls, plaintext_via_proxy)", addr, flag);
    }
    /* Without the header every connection is direct: the flag would allow nothing. */
    if (l->plaintext_via_proxy && !l->proxy_protocol)
        return config_error(err, errlen, "listen %s: plaintext_via_proxy needs proxy_protocol "
                            "(only a trusted proxy's connections may send a password in the "
                            "clear)", addr);
    return 0;
}

int config_listen_any_plaintext(const struct config *cfg)
{
    for (int i = 0; i < cfg->listen_count; i++) {
        if (cfg->listen[i].plaintext_via_proxy)
            return 1;
    }
    return 0;
}

int config_parse_backends(const char *list, struct config_backend *out, int max, char *err,
                          size_t errlen)
{
    int n = 0;
    const char *p = list;
    for (;;) {
        p += strspn(p, " \t,");
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " \t,");
        char item[CONFIG_NAME_MAX + 80];
        if (len >= sizeof(item))
            return config_error(err, errlen, "entry too long");
        memcpy(item, p, len);
        item[len] = '\0';
        p += len;
        if (n == max)
            return config_error(err, errlen, "more than %d backends", max);
        char *eq = strchr(item, '=');
        if (eq == NULL || eq == item || (size_t)(eq - item) >= sizeof(out[n].name))
            return config_error(err, errlen, "\"%s\" is not name=IP:port (a name of 1-64 "
                                "characters)", item);
        *eq = '\0';
        struct config_listen l;
        char why[200];
        memset(&l, 0, sizeof(l));
        if (config_parse_address(eq + 1, &l, why, sizeof(why)) == -1)
            return config_error(err, errlen, "%s: %s", item, why);
        struct config_backend *b = &out[n];
        memset(b, 0, sizeof(*b));
        memcpy(b->name, item, strlen(item) + 1);
        const void *a = l.addr.ss_family == AF_INET6
                            ? (const void *)&((const struct sockaddr_in6 *)&l.addr)->sin6_addr
                            : (const void *)&((const struct sockaddr_in *)&l.addr)->sin_addr;
        if (inet_ntop(l.addr.ss_family, a, b->ip, sizeof(b->ip)) == NULL)
            return config_error(err, errlen, "%s: bad address", item);
        b->port = ntohs(l.addr.ss_family == AF_INET6
                            ? ((const struct sockaddr_in6 *)&l.addr)->sin6_port
                            : ((const struct sockaddr_in *)&l.addr)->sin_port);
        for (int k = 0; k < n; k++) {
            if (strcmp(out[k].name, b->name) == 0)
                return config_error(err, errlen, "backend %s is named twice", b->name);
        }
        n++;
    }
    if (n == 0)
        return config_error(err, errlen, "no backend");
    return n;
}
