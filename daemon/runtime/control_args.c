#include "control_args.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

const char *control_option(int argc, char **argv, const char *name)
{
    size_t len = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], name, len) == 0 && argv[i][len] == '=')
            return argv[i] + len + 1;
    }
    return NULL;
}

long control_parse_seconds(const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v > 86400)
        return -1;
    return v;
}

void control_format_ip(const uint8_t ip[16], char *out, size_t len)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (memcmp(ip, mapped, 12) == 0)
        inet_ntop(AF_INET, ip + 12, out, (socklen_t)len);
    else
        inet_ntop(AF_INET6, ip, out, (socklen_t)len);
}

int control_parse_target(const char *text, struct control_target *t)
{
    char err[128];
    memset(t, 0, sizeof(*t));
    if (text == NULL) {
        t->any = 1;
        return 0;
    }
    /* A text that parses as one address or network is one; anything else is a user name. */
    if (strpbrk(text, " ,") == NULL && cidr_list_parse(text, &t->nets, err, sizeof(err)) == 0 &&
        t->nets.count == 1) {
        t->by_ip = 1;
        return 0;
    }
    if (text[0] == '\0')
        return -1;
    t->user = text;
    return 0;
}

int control_target_match(const struct control_target *t, const char *user, const uint8_t ip[16])
{
    if (t->any)
        return 1;
    if (!t->by_ip)
        return user[0] != '\0' && strcmp(user, t->user) == 0;
    struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
    memcpy(&sin6.sin6_addr, ip, 16);
    return cidr_list_match(&t->nets, (const struct sockaddr *)&sin6);
}
