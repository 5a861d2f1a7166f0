#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

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

void listen_format_ip(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
    snprintf(out, outlen, "%s", ip);
}

void listen_format_addr(const struct sockaddr *sa, char *out, size_t outlen)
{
    char ip[INET6_ADDRSTRLEN];
    listen_format_ip(sa, ip, sizeof(ip));
    if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%u", ip,
                 ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    else if (sa->sa_family == AF_INET)
        snprintf(out, outlen, "%s:%u", ip, ntohs(((const struct sockaddr_in *)sa)->sin_port));
    else
        snprintf(out, outlen, "unix");
}
