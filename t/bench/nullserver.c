/*
 * --null-server PORT: canned POP3 from memory, the ceiling the kernel and the
 * load generator allow. Any USER/PASS is accepted; every user has the same
 * four messages (2 KB to 100 KB, some lines starting with "."), built once
 * in wire form (CRLF, dot-stuffed, terminated) and sent straight from that
 * buffer with writev. Listens on 127.0.0.1 only; --procs N processes share
 * the listening socket. Stops on SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "popload.h"

#define NMSG 4
static const size_t msg_target[NMSG] = { 2000, 9000, 30000, 100000 };

struct msg {
    char *wire;       /* dot-stuffed CRLF text plus ".\r\n" */
    size_t wire_len;
    size_t octets;    /* RFC 1939 size: CRLF counted, stuffing not */
};
static struct msg msgs[NMSG];

struct nconn {
    int fd;
    int quit;                 /* QUIT answered: wait for the client to close */
    char in[1024];
    size_t inlen;
    char head[512];           /* status line (and short bodies) */
    size_t headlen, headoff;
    const char *body;         /* a message body from msgs[], not owned */
    size_t bodylen, bodyoff;
};

static volatile sig_atomic_t stop;
static void on_stop(int sig) { (void)sig; stop = 1; }

static void build_messages(void)
{
    for (int m = 0; m < NMSG; m++) {
        size_t cap = msg_target[m] + 4096, len = 0, octets = 0;
        char *w = malloc(cap);
        if (!w)
            exit(1);
        len += (size_t)snprintf(w, cap, "From: null@example.org\r\nTo: user@example.org\r\n"
                                "Subject: null message %d\r\n\r\n", m + 1);
        octets = len;
        for (int line = 0; octets < msg_target[m]; line++) {
            const char *text = line % 7 == 3 ? ".a line that starts with a dot"
                             : "The quick brown fox jumps over the lazy dog 0123456789";
            if (text[0] == '.')
                w[len++] = '.';
            size_t tl = strlen(text);
            memcpy(w + len, text, tl);
            memcpy(w + len + tl, "\r\n", 2);
            len += tl + 2;
            octets += tl + 2;
        }
        memcpy(w + len, ".\r\n", 3);
        msgs[m] = (struct msg){ w, len + 3, octets };
    }
}

static void reply(struct nconn *c, const char *fmt, unsigned a, unsigned long b)
{
    int n = snprintf(c->head + c->headlen, sizeof(c->head) - c->headlen, fmt, a, b);
    if (n > 0)
        c->headlen += (size_t)n < sizeof(c->head) - c->headlen ? (size_t)n
                                                               : sizeof(c->head) - c->headlen - 1;
}

static void command(struct nconn *c, char *line)
{
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    unsigned n = arg ? (unsigned)strtoul(arg, NULL, 10) : 0;
    size_t total = 0;
    for (int i = 0; i < NMSG; i++)
        total += msgs[i].octets;
    if (!strcasecmp(line, "USER") || !strcasecmp(line, "NOOP") || !strcasecmp(line, "RSET") ||
        !strcasecmp(line, "DELE") || !strcasecmp(line, "PASS")) {
        reply(c, "+OK\r\n", 0, 0);
    } else if (!strcasecmp(line, "STAT")) {
        reply(c, "+OK %u %lu\r\n", NMSG, (unsigned long)total);
    } else if (!strcasecmp(line, "LIST") || !strcasecmp(line, "UIDL")) {
        int uidl = !strcasecmp(line, "UIDL");
        if (n > NMSG || (arg && n == 0)) {
            reply(c, "-ERR no such message\r\n", 0, 0);
        } else if (n) {
            reply(c, uidl ? "+OK %u null-%lu\r\n" : "+OK %u %lu\r\n", n,
                  uidl ? n : (unsigned long)msgs[n - 1].octets);
        } else {
            reply(c, "+OK %u messages\r\n", NMSG, 0);
            for (unsigned i = 1; i <= NMSG; i++)
                reply(c, uidl ? "%u null-%lu\r\n" : "%u %lu\r\n", i,
                      uidl ? i : (unsigned long)msgs[i - 1].octets);
            reply(c, ".\r\n", 0, 0);
        }
    } else if (!strcasecmp(line, "RETR")) {
        if (n < 1 || n > NMSG) {
            reply(c, "-ERR no such message\r\n", 0, 0);
        } else {
            reply(c, "+OK %u octets\r\n", (unsigned)msgs[n - 1].octets, 0);
            c->body = msgs[n - 1].wire;
            c->bodylen = msgs[n - 1].wire_len;
            c->bodyoff = 0;
        }
    } else if (!strcasecmp(line, "CAPA")) {
        reply(c, "+OK\r\nUSER\r\nUIDL\r\n.\r\n", 0, 0);
    } else if (!strcasecmp(line, "QUIT")) {
        reply(c, "+OK bye\r\n", 0, 0);
        c->quit = 1;
    } else {
        reply(c, "-ERR unknown command\r\n", 0, 0);
    }
}

/* Write what is pending; 1 when all is out, 0 if blocked, -1 on error. */
static int flush(struct nconn *c)
{
    while (c->headoff < c->headlen || c->bodyoff < c->bodylen) {
        struct iovec iov[2];
        int n = 0;
        if (c->headoff < c->headlen)
            iov[n++] = (struct iovec){ c->head + c->headoff, c->headlen - c->headoff };
        if (c->bodyoff < c->bodylen)
            iov[n++] = (struct iovec){ (void *)(c->body + c->bodyoff), c->bodylen - c->bodyoff };
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        size_t h = c->headlen - c->headoff;
        if ((size_t)w <= h) {
            c->headoff += (size_t)w;
        } else {
            c->headoff = c->headlen;
            c->bodyoff += (size_t)w - h;
        }
    }
    c->headlen = c->headoff = c->bodylen = c->bodyoff = 0;
    return 1;
}

/* Handle the commands in the input buffer while nothing is pending; -1 closes. */
static int serve(struct nconn *c)
{
    for (;;) {
        int f = flush(c);
        if (f <= 0)
            return f;
        char *lf = memchr(c->in, '\n', c->inlen);
        if (!lf || c->quit)
            return 0;
        size_t used = (size_t)(lf - c->in) + 1;
        *lf = '\0';
        if (lf > c->in && lf[-1] == '\r')
            lf[-1] = '\0';
        command(c, c->in);
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
    }
}

static void set_events(int ep, struct nconn *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void drop(struct nconn *c)
{
    close(c->fd);
    free(c);
}

static void loop(int lfd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL };
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 500);
        for (int i = 0; i < n; i++) {
            struct nconn *c = evs[i].data.ptr;
            if (!c) {
                for (int k = 0; k < 64; k++) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    c = calloc(1, sizeof(*c));
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    reply(c, "+OK POP3 null server ready\r\n", 0, 0);
                    flush(c);
                    struct epoll_event ce = { .events = EPOLLIN, .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (c->inlen == sizeof(c->in)) {
                    drop(c);      /* a line over 1 KB: not a POP3 client */
                    continue;
                }
                ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    drop(c);
                    continue;
                }
                if (r > 0)
                    c->inlen += (size_t)r;
            }
            int s = serve(c);
            if (s < 0) {
                drop(c);
                continue;
            }
            set_events(ep, c, c->headlen || c->bodylen ? EPOLLOUT : EPOLLIN);
        }
    }
    close(ep);
}

int null_server_run(int port, int procs)
{
    build_messages();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(lfd, 4096) == -1) {
        perror("popload: null server: bind/listen");
        return -1;
    }
    struct sigaction sa = { .sa_handler = on_stop };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t kids[64];
    int n = 0;
    for (int i = 1; i < procs && i < 64; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            loop(lfd);
            _exit(0);
        }
        if (pid > 0)
            kids[n++] = pid;
    }
    fprintf(stderr, "popload: null server on 127.0.0.1:%d, %d process(es)\n", port, n + 1);
    loop(lfd);
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGTERM);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    return 0;
}
