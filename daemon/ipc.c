#include "ipc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

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

uint32_t ipc_get_u32(struct ipc_reader *r)
{
    uint32_t v = 0;
    if (r->bad || r->left < sizeof(v)) {
        r->bad = 1;
        return 0;
    }
    memcpy(&v, r->p, sizeof(v));
    r->p += sizeof(v);
    r->left -= sizeof(v);
    return v;
}

uint64_t ipc_get_u64(struct ipc_reader *r)
{
    uint64_t v = 0;
    if (r->bad || r->left < sizeof(v)) {
        r->bad = 1;
        return 0;
    }
    memcpy(&v, r->p, sizeof(v));
    r->p += sizeof(v);
    r->left -= sizeof(v);
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

int ipc_send(int fd, const struct buf *b)
{
    ssize_t n = send(fd, buf_rptr(b), buf_len(b), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == -1)
        return -1;
    if ((size_t)n != buf_len(b)) {
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
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
