#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int ipc_begin(struct buf *b, uint32_t type, uint32_t id)
{
    buf_reset(b);
    if (ipc_put_u32(b, type) == -1 || ipc_put_u32(b, id) == -1)
        return -1;
    return 0;
}

int ipc_put_u32(struct buf *b, uint32_t v)
{
    return buf_append(b, &v, sizeof(v));
}

int ipc_put_u64(struct buf *b, uint64_t v)
{
    return buf_append(b, &v, sizeof(v));
}

int ipc_put_bytes(struct buf *b, const void *p, size_t n)
{
    if (n > UINT16_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    uint16_t len = (uint16_t)n;
    if (buf_append(b, &len, sizeof(len)) == -1 || buf_append(b, p, n) == -1)
        return -1;
    return 0;
}

int ipc_put_str(struct buf *b, const char *s)
{
    return ipc_put_bytes(b, s, strlen(s));
}

int ipc_reader_init(struct ipc_reader *r, const void *msg, size_t len, uint32_t *type,
                    uint32_t *id)
{
    r->p = msg;
    r->left = len;
    r->bad = 0;
    *type = ipc_get_u32(r);
    *id = ipc_get_u32(r);
    return r->bad ? -1 : 0;
}

/* n bytes of a fixed-size field into out (zeroed if the message is short). */
static void get_fixed(struct ipc_reader *r, void *out, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
}

uint32_t ipc_get_u32(struct ipc_reader *r)
{
    uint32_t v;
    get_fixed(r, &v, sizeof(v));
    return v;
}

uint64_t ipc_get_u64(struct ipc_reader *r)
{
    uint64_t v;
    get_fixed(r, &v, sizeof(v));
    return v;
}

void ipc_get_str(struct ipc_reader *r, char *out, size_t outlen)
{
    uint16_t len;
    if (outlen > 0)
        out[0] = '\0';
    if (r->bad || r->left < sizeof(len)) {
        r->bad = 1;
        return;
    }
    memcpy(&len, r->p, sizeof(len));
    if (r->left - sizeof(len) < len || (size_t)len >= outlen ||
        memchr(r->p + sizeof(len), '\0', len) != NULL) {
        r->bad = 1;
        return;
    }
    memcpy(out, r->p + sizeof(len), len);
    out[len] = '\0';
    r->p += sizeof(len) + len;
    r->left -= sizeof(len) + len;
}

int ipc_reader_end(const struct ipc_reader *r)
{
    return r->bad || r->left != 0 ? -1 : 0;
}

/* A datagram goes whole or not at all: a short send is an error for the sender. */
static int sent_whole(ssize_t n, const struct buf *b)
{
    if (n == -1)
        return -1;
    if ((size_t)n != buf_len(b)) {
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
}

int ipc_send(int fd, const struct buf *b)
{
    return sent_whole(send(fd, buf_rptr(b), buf_len(b), MSG_NOSIGNAL | MSG_DONTWAIT), b);
}

ssize_t ipc_recv(int fd, void *msg, size_t cap)
{
    ssize_t n = recv(fd, msg, cap, MSG_DONTWAIT | MSG_TRUNC);
    if (n > (ssize_t)cap) {
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}

int ipc_send_fd(int fd, const struct buf *b, int passfd)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { .iov_base = (void *)buf_rptr(b), .iov_len = buf_len(b) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
                         .msg_controllen = sizeof(ctl.space) };

    memset(&ctl, 0, sizeof(ctl));
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &passfd, sizeof(int));
    return sent_whole(sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT), b);
}

ssize_t ipc_recv_fd(int fd, void *msg, size_t cap, int *passfd)
{
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { .iov_base = msg, .iov_len = cap };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space,
                         .msg_controllen = sizeof(ctl.space) };

    *passfd = -1;
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
    if (n == -1)
        return -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)) && *passfd == -1)
            memcpy(passfd, CMSG_DATA(cm), sizeof(int));
    }
    /* More descriptors than the one room was made for were closed by the kernel. */
    if (n > (ssize_t)cap) {
        if (*passfd != -1)
            close(*passfd);
        *passfd = -1;
        errno = EMSGSIZE;
        return -1;
    }
    return n;
}
