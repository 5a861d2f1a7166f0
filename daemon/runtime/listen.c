#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/cidr.h"
#include "daemon/runtime/log.h"

int listen_open(const struct config_listen *l, int backlog)
{
    int one = 1;
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    /* Restarts must not wait out TIME_WAIT of the previous instance. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        goto fail;
    /* [::]:110 means IPv6 only; IPv4 is its own listen line. */
    if (l->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
        goto fail;
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == -1)
        goto fail;
    if (listen(fd, backlog) == -1)
        goto fail;
    return fd;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* sa itself, or its IPv4 form in *plain if it is v4-mapped: logged as the IPv4 address it is. */
static const struct sockaddr *unmapped(const struct sockaddr *sa, struct sockaddr_storage *plain)
{
    if (sa->sa_family != AF_INET6)
        return sa;
    memcpy(plain, sa, sizeof(struct sockaddr_in6));
    return cidr_unmap_v4(plain) ? (const struct sockaddr *)plain : sa;
}

void listen_format_ip(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    struct sockaddr_storage plain;
    sa = unmapped(sa, &plain);
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
    snprintf(out, outlen, "%s", ip);
}

int listen_set_open(struct listen_set *set, const struct config *cfg, int backlog)
{
    set->count = 0;
    for (int i = 0; i < cfg->listen_count; i++) {
        int fd = listen_open(&cfg->listen[i], backlog);
        if (fd == -1) {
            log_error("cannot listen on %s: %s", cfg->listen[i].spec, strerror(errno));
            listen_set_close(set);
            return -1;
        }
        set->fd[set->count] = fd;
        memcpy(set->spec[set->count], cfg->listen[i].spec, sizeof(set->spec[0]));
        set->count++;
        log_info("listening on %s", cfg->listen[i].spec);
    }
    return 0;
}

int listen_set_swap(struct listen_set *set, const struct config *next, int backlog)
{
    struct listen_set fresh = { .count = next->listen_count };
    int reused[CONFIG_MAX_LISTEN] = { 0 };
    int opened[CONFIG_MAX_LISTEN] = { 0 };

    for (int i = 0; i < next->listen_count; i++) {
        memcpy(fresh.spec[i], next->listen[i].spec, sizeof(fresh.spec[0]));
        fresh.fd[i] = -1;
        for (int j = 0; j < set->count; j++) {
            if (!reused[j] && strcmp(next->listen[i].spec, set->spec[j]) == 0) {
                fresh.fd[i] = set->fd[j];
                reused[j] = 1;
                break;
            }
        }
        if (fresh.fd[i] != -1)
            continue;
        fresh.fd[i] = listen_open(&next->listen[i], backlog);
        if (fresh.fd[i] == -1) {
            log_error("reload: cannot listen on %s: %s; keeping the running configuration",
                      next->listen[i].spec, strerror(errno));
            for (int k = 0; k < i; k++) {
                if (opened[k])
                    close(fresh.fd[k]);
            }
            return -1;
        }
        opened[i] = 1;
        log_info("listening on %s", next->listen[i].spec);
    }
    for (int j = 0; j < set->count; j++) {
        if (!reused[j]) {
            log_info("no longer listening on %s", set->spec[j]);
            close(set->fd[j]);
        }
    }
    *set = fresh;
    return 0;
}

void listen_set_close(struct listen_set *set)
{
    for (int i = 0; i < set->count; i++)
        close(set->fd[i]);
    set->count = 0;
}
