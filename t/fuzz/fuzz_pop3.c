/*
 * The worker's command engine, end to end inside one process: bytes from the
 * input reach a real connection (worker/conn.c over a socketpair, the real
 * epoll loop, buf_getline, pop3_dispatch through AUTHORIZATION, SASL PLAIN,
 * LOGIN and SCRAM relaying, TRANSACTION and UPDATE) in pieces whose sizes
 * the input chooses, so line splits land anywhere. A stand-in for
 * fastpop-auth answers over the real IPC codec: password "pw" is right for
 * USER/PASS, PLAIN and LOGIN; SCRAM gets a real challenge and a result that
 * depends on the proof's text. The mailbox holds three messages, refreshed
 * for every input (DELE+QUIT really deletes).
 *
 * Invariants: no crash, leak or undefined behaviour (the sanitizers); the
 * server never sends a bare LF (every line it writes ends in CRLF); the
 * connection always ends (closed by the server or at the end of the input)
 * with the mailbox unlocked and its slot free.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/protocol.h"
#include "auth/scram_server.h"
#include "daemon/runtime/buf.h"
#include "daemon/runtime/config.h"
#include "daemon/runtime/ipc.h"
#include "daemon/runtime/log.h"
#include "shm/scoreboard.h"
#include "t/fuzz/fuzz_check.h"
#include "worker/auth_client.h"
#include "worker/conn.h"
#include "worker/loop.h"
#include "worker/pop3.h"
#include "worker/login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { SLOTS = 4, OUT_MAX = 1 << 20 };

static struct {
    int ready;
    struct config cfg;
    struct config_listen plain;
    struct loop lp;
    char dir[64], sock[96], root[128];
    int listener, helper;
} rig;

static const char *const messages[] = {
    "Subject: one\n\nfirst\n.dot line\n",
    "Subject: two\r\n\r\nsecond\r\n",
    "From: x\n\n\n.\n..\nend without newline",
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fuzz_check(f != NULL, "fopen");
    fputs(text, f);
    fclose(f);
}

/* Three messages in cur/, whatever the last input did to them (DELE, Seen). */
static void refresh_maildir(void)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/cur", rig.root);
    DIR *d = opendir(path);
    fuzz_check(d != NULL, "opendir cur/");
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/cur/%d.M%dP1.fuzz:2,", rig.root, 1700000000 + i, i);
        write_file(path, messages[i]);
    }
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_open(LOG_TO_STDERR, LOG_LVL_ERROR, "fuzz", -1);
    config_defaults(&rig.cfg);
    rig.cfg.plaintext_auth = 1;
    rig.cfg.auth_cache_ttl = 0;       /* every login goes to the stand-in helper */
    rig.cfg.mark_seen = 1;
    rig.cfg.index = 0;
    snprintf(rig.cfg.auth_mechanisms, sizeof(rig.cfg.auth_mechanisms), "PLAIN LOGIN SCRAM-SHA-256");
    rig.lp.cfg = &rig.cfg;
    rig.lp.protocol = &pop3_protocol;
    rig.lp.pid = getpid();
    rig.lp.ev = ev_loop_new();
    rig.lp.sb = scoreboard_create(SLOTS);
    fuzz_check(rig.lp.ev != NULL && rig.lp.sb != NULL, "loop");

    snprintf(rig.dir, sizeof(rig.dir), "/tmp/fastpop-fuzz-pop3-XXXXXX");
    fuzz_check(mkdtemp(rig.dir) != NULL, "mkdtemp");
    snprintf(rig.sock, sizeof(rig.sock), "%s/auth.sock", rig.dir);
    snprintf(rig.root, sizeof(rig.root), "%s/Maildir", rig.dir);
    char sub[PATH_MAX];
    mkdir(rig.root, 0700);
    for (const char *const *s = (const char *const[]){ "cur", "new", "tmp", NULL }; *s; s++) {
        snprintf(sub, sizeof(sub), "%s/%s", rig.root, *s);
        mkdir(sub, 0700);
    }
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", rig.sock);
    rig.listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    fuzz_check(rig.listener >= 0 && bind(rig.listener, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
               listen(rig.listener, 4) == 0, "helper socket");
    rig.helper = -1;
    rig.lp.auth = auth_client_new(&rig.lp, rig.sock, login_adopt_view);
    fuzz_check(rig.lp.auth != NULL, "auth_client_new");
    rig.ready = 1;
}

static void reply(uint32_t type, uint32_t id, uint32_t status, const char *const *strs, int n)
{
    struct buf b;
    buf_init(&b, IPC_MAX_MESSAGE);
    int rc = ipc_begin(&b, type, id) | ipc_put_u32(&b, status);
    for (int i = 0; i < n; i++)
        rc |= ipc_put_str(&b, strs[i]);
    /* A password reply ends with the cache generation: the stand-in has none. */
    if (type == AUTH_MSG_PASS_REPLY)
        rc |= ipc_put_u64(&b, 0);
    fuzz_check(rc == 0, "encode a reply");
    if (ipc_send(rig.helper, &b) == -1)
        fuzz_check(errno == EAGAIN || errno == EPIPE || errno == ECONNRESET, "send a reply");
    buf_free(&b);
}

/* The stand-in helper: answer every request waiting on its socket. */
static void serve_helper(void)
{
    if (rig.helper == -1)
        rig.helper = accept4(rig.listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (rig.helper == -1)
        return;
    unsigned char msg[IPC_MAX_MESSAGE];
    for (int i = 0; i < 64; i++) {
        ssize_t n = recv(rig.helper, msg, sizeof(msg), MSG_DONTWAIT);
        if (n <= 0)
            return;
        struct ipc_reader r;
        uint32_t type, id;
        fuzz_check(ipc_reader_init(&r, msg, (size_t)n, &type, &id) == 0,
                   "the worker sent a message without a header");
        char a[AUTH_SCRAM_MSG_MAX], b[AUTH_SCRAM_MSG_MAX], c[AUTH_SCRAM_MSG_MAX];
        char ip[AUTH_IP_MAX], mech[32];
        if (type == AUTH_MSG_PASS_REQUEST) {
            ipc_get_str(&r, a, AUTH_USER_MAX);
            ipc_get_str(&r, b, sizeof(b));
            ipc_get_str(&r, ip, sizeof(ip));
            ipc_get_str(&r, mech, sizeof(mech));
            fuzz_check(ipc_reader_end(&r) == 0, "a malformed PASS request from the worker");
            int ok = strcmp(b, "pw") == 0;
            const char *s[] = { a, ok ? rig.root : "", "" };
            reply(AUTH_MSG_PASS_REPLY, id, ok ? AUTH_OK : AUTH_FAIL, s, 3);
        } else if (type == AUTH_MSG_SCRAM_START) {
            ipc_get_str(&r, a, sizeof(a));
            ipc_get_str(&r, ip, sizeof(ip));
            fuzz_check(ipc_reader_end(&r) == 0, "a malformed SCRAM start from the worker");
            struct scram_client_first cf;
            if (scram_parse_client_first(a, &cf) == -1) {
                const char *s[] = { "", "", "bad client-first" };
                reply(AUTH_MSG_SCRAM_CHALLENGE, id, AUTH_FAIL, s, 3);
            } else {
                snprintf(c, sizeof(c), "r=%sSRV,s=c2FsdHNhbHQ=,i=4096", cf.nonce);
                const char *s[] = { cf.user, c, "" };
                reply(AUTH_MSG_SCRAM_CHALLENGE, id, AUTH_OK, s, 3);
            }
        } else if (type == AUTH_MSG_SCRAM_FINISH) {
            ipc_get_str(&r, a, sizeof(a));
            ipc_get_str(&r, b, sizeof(b));
            ipc_get_str(&r, c, sizeof(c));
            ipc_get_str(&r, ip, sizeof(ip));
            fuzz_check(ipc_reader_end(&r) == 0, "a malformed SCRAM finish from the worker");
            int ok = strstr(c, ",p=cHc=") != NULL;
            const char *s[] = { "scram", ok ? rig.root : "", ok ? "v=c2ln" : "", "" };
            reply(AUTH_MSG_SCRAM_RESULT, id, ok ? AUTH_OK : AUTH_FAIL, s, 4);
        } else if (type == AUTH_MSG_VIEW_REQUEST) {
            /* No penalty view here: the worker then never answers from its cache. */
            fuzz_check(ipc_reader_end(&r) == 0, "a malformed view request from the worker");
            reply(AUTH_MSG_VIEW, id, AUTH_TEMPFAIL, NULL, 0);
        } else {
            fuzz_check(0, "the worker sent an unknown request type");
        }
    }
}

static void pump(void)
{
    for (int i = 0; i < 32; i++) {
        ev_loop_no_wait(rig.lp.ev);
        int n = ev_loop_once(rig.lp.ev);
        serve_helper();
        conn_run_ready(&rig.lp);
        conn_free_closed(&rig.lp);
        if (n <= 0)
            break;
    }
}

/* Read what the server sent; 1 once it has closed. */
static int drain(int fd, struct buf *seen)
{
    char chunk[16384];
    for (int i = 0; i < 1024; i++) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n == 0)
            return 1;
        if (n < 0)
            return errno == ECONNRESET;
        if (buf_len(seen) + (size_t)n <= OUT_MAX)
            buf_append(seen, chunk, (size_t)n);
    }
    return 0;
}

static int open_count(void)
{
    int n = 0;
    for (struct conn *c = rig.lp.conns; c != NULL; c = c->all_next)
        n++;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    if (!rig.ready)
        setup();
    refresh_maildir();

    int sv[2];
    fuzz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0,
               "socketpair");
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(4242) };
    peer.sin_addr.s_addr = htonl(0x7f000001);
    enum scoreboard_refusal why;
    int slot = scoreboard_conn_open(rig.lp.sb, rig.lp.pid, (struct sockaddr *)&peer, SLOTS,
                                    SLOTS, &why);
    fuzz_check(slot >= 0, "a slot left over from the last input");
    fuzz_check(conn_new(&rig.lp, sv[0], (struct sockaddr *)&peer, slot, &rig.plain) == 0,
               "conn_new");

    struct buf seen;
    buf_init(&seen, OUT_MAX + 16384);
    /* Piece sizes from a small generator seeded by the first byte. */
    uint32_t state = data[0] * 2654435761u + 1;
    int closed = 0;
    for (size_t pos = 1; pos < size && !closed;) {
        state = state * 1103515245u + 12345u;
        size_t piece = 1 + (state >> 16) % 24;
        if (piece > size - pos)
            piece = size - pos;
        ssize_t sent = send(sv[1], data + pos, piece, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent > 0)
            pos += (size_t)sent;
        pump();
        closed = drain(sv[1], &seen);
        if (sent <= 0 && !closed) {
            /* The server is not reading (a long reply is pending): let it write. */
            pump();
            closed = drain(sv[1], &seen);
        }
    }
    for (int i = 0; i < 64 && !closed; i++) {
        pump();
        closed = drain(sv[1], &seen);
        if (open_count() == 0)
            break;
    }
    /* The client goes away: whatever the session was doing ends here. */
    close(sv[1]);
    for (int i = 0; i < 16 && open_count() > 0; i++)
        pump();
    while (rig.lp.conns != NULL)
        conn_close(rig.lp.conns, "fuzz-end");
    pump();
    fuzz_check(open_count() == 0, "a connection outlived its client");
    fuzz_check(scoreboard_active(rig.lp.sb) == 0, "a connection slot was not released");

    const char *out = buf_rptr(&seen);
    /* FUZZ_POP3_SHOW=1: print the conversation's answers (to check a seed does what it says). */
    if (getenv("FUZZ_POP3_SHOW") != NULL)
        fprintf(stderr, "%.*s\n----\n", (int)buf_len(&seen), out);
    for (size_t i = 0; i < buf_len(&seen); i++)
        fuzz_check(out[i] != '\n' || (i > 0 && out[i - 1] == '\r'),
                   "the server sent a bare LF");
    buf_free(&seen);
    return 0;
}
