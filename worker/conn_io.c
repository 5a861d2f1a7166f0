#include "conn_io.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "worker/tls.h"

static ssize_t tls_failure(struct conn *c, int ret, int err)
{
    (void)c;
    (void)ret;
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
    ERR_clear_error();
    errno = err == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
    return -1;
}

ssize_t conn_io_read(struct conn *c, size_t max)
{
    if (c->ssl == NULL)
        return buf_read_fd(&c->in, c->fd, max);

    if (buf_reserve(&c->in, max) == -1) {
        size_t room = c->in.limit - buf_len(&c->in);
        if (room == 0 || buf_reserve(&c->in, room) == -1)
            return -1;
        max = room;
    }
    c->tls_read_wants_out = 0;
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf_wptr(&c->in), (int)max);
    if (n > 0) {
        buf_commit(&c->in, (size_t)n);
        return n;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        c->tls_read_wants_out = err == SSL_ERROR_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    }
    return tls_failure(c, n, err);
}

ssize_t conn_io_write(struct conn *c)
{
    size_t len = buf_len(&c->out);
    if (len == 0)
        return 0;
    if (c->ssl == NULL) {
        ssize_t n = send(c->fd, buf_rptr(&c->out), len, MSG_NOSIGNAL);
        if (n >= 0)
            buf_consume(&c->out, (size_t)n);
        else if (errno == EAGAIN || errno == EINTR)
            return 0;
        return n;
    }
    /* After WANT_*, OpenSSL wants the same write again: same length. */
    size_t want = c->tls_write_len ? c->tls_write_len : (len > INT32_MAX ? INT32_MAX : len);
    c->tls_write_wants_in = 0;
    ERR_clear_error();
    int n = SSL_write(c->ssl, buf_rptr(&c->out), (int)want);
    if (n > 0) {
        c->tls_write_len = 0;
        buf_consume(&c->out, (size_t)n);
        return n;
    }
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
        c->tls_write_len = want;
        c->tls_write_wants_in = err == SSL_ERROR_WANT_READ;
        return 0;
    }
    if (tls_failure(c, n, err) == 0)
        errno = EPIPE;
    return -1;
}

int conn_io_pending(const struct conn *c)
{
    return c->ssl != NULL && SSL_has_pending(c->ssl);
}

int conn_io_handshake(struct conn *c, char *why, size_t whylen)
{
    ERR_clear_error();
    c->handshake_wants_out = 0;
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1)
        return 1;
    int err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ)
        return 0;
    if (err == SSL_ERROR_WANT_WRITE) {
        c->handshake_wants_out = 1;
        return 0;
    }
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        snprintf(why, whylen, "%s", errno ? strerror(errno) : "connection closed");
    else
        tls_last_error(why, whylen);
    ERR_clear_error();
    return -1;
}

int conn_io_proxy(struct conn *c, struct proxy_info *info, char *why, size_t whylen)
{
    unsigned char peek[PROXY_V2_MAX];
    size_t have = buf_len(&c->in);

    if (have >= sizeof(peek)) {
        snprintf(why, whylen, "header too long");
        return -1;
    }
    if (have > 0)
        memcpy(peek, buf_rptr(&c->in), have);
    /* Look before taking: only the header's own bytes may be consumed. */
    ssize_t n = recv(c->fd, peek + have, sizeof(peek) - have, MSG_PEEK);
    if (n == 0) {
        snprintf(why, whylen, "closed before the header");
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    size_t used = 0;
    enum proxy_result r = proxy_parse(peek, have + (size_t)n, info, &used);
    if (r == PROXY_INVALID) {
        snprintf(why, whylen, "not a valid PROXY v1/v2 header");
        return -1;
    }
    /* Incomplete: all that arrived is header; complete: exactly the rest of it. */
    size_t take = r == PROXY_COMPLETE ? used - have : (size_t)n;
    if (buf_append(&c->in, peek + have, take) == -1 ||
        recv(c->fd, peek + have, take, 0) != (ssize_t)take) {
        snprintf(why, whylen, "read failed");
        return -1;
    }
    c->stats.bytes_in += take;
    if (r == PROXY_INCOMPLETE)
        return 0;
    buf_reset(&c->in);
    return 1;
}

void conn_io_tls_goodbye(struct conn *c)
{
    if (c->ssl == NULL || c->tls_write_len != 0)
        return;
    ERR_clear_error();
    /* One non-blocking attempt: the socket is about to close either way. */
    if (SSL_shutdown(c->ssl) < 0)
        ERR_clear_error();
}
