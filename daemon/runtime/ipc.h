/*
 * The one IPC layer: typed builders and getters over framed messages.
 * A message is a header {u32 type, u32 id} then fields, each a u32, a u64
 * or a string (u16 length + bytes, no NUL). Over SOCK_SEQPACKET one datagram is
 * one message, so framing is the kernel's; over a stream it would need a
 * length prefix (not used).
 *
 * Decoding is strict: reading past the end, a string too long for the
 * caller's space, a NUL inside a string, or bytes left over after the last
 * field all make the message invalid; ipc_reader_end() says so, and the
 * peer that sent it is treated as broken.
 *
 * Integers are in host order: both ends are processes of one machine.
 */
#ifndef FASTPOP_IPC_H
#define FASTPOP_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/limits.h"   /* IPC_MAX_MESSAGE */

struct ipc_reader {
    const unsigned char *p;
    size_t left;
    int bad;
};

/* Start a message in b (which is reset). */
int ipc_begin(struct buf *b, uint32_t type, uint32_t id);
int ipc_put_u32(struct buf *b, uint32_t v);
int ipc_put_u64(struct buf *b, uint64_t v);
int ipc_put_str(struct buf *b, const char *s);
int ipc_put_bytes(struct buf *b, const void *p, size_t n);

/* Read a header; 0 or -1 if the message is shorter than one. */
int ipc_reader_init(struct ipc_reader *r, const void *msg, size_t len, uint32_t *type,
                    uint32_t *id);
uint32_t ipc_get_u32(struct ipc_reader *r);
uint64_t ipc_get_u64(struct ipc_reader *r);
/* Copies into out (NUL-terminated); the string must fit in outlen - 1. */
void ipc_get_str(struct ipc_reader *r, char *out, size_t outlen);
/* 0 if every field was read and nothing is left over, else -1. */
int ipc_reader_end(const struct ipc_reader *r);

/* Send / receive one message on a SOCK_SEQPACKET socket. */
int ipc_send(int fd, const struct buf *b);
/* Returns the length, 0 on EOF, -1 on error (EAGAIN too). EMSGSIZE if truncated. */
ssize_t ipc_recv(int fd, void *msg, size_t cap);

/*
 * The same with one file descriptor passed along (SCM_RIGHTS). ipc_recv_fd()
 * sets *passfd to the descriptor received (close-on-exec) or -1; the caller
 * owns it and closes it if the message is not one that carries a descriptor.
 */
int ipc_send_fd(int fd, const struct buf *b, int passfd);
ssize_t ipc_recv_fd(int fd, void *msg, size_t cap, int *passfd);

#endif
