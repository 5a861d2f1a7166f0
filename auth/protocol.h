/*
 * The worker <-> fastpop-auth protocol, over the helper's SOCK_SEQPACKET
 * socket (run_dir/auth.sock), one message per datagram, framed by
 * daemon/runtime/ipc.h. Version 1.
 *
 * The helper accepts only peers whose SO_PEERCRED uid is the mail user
 * (or its own uid when fastpop runs unprivileged) and whose process is a
 * child of the helper's parent, the master (a worker), or the master
 * itself; at most two connections per process (auth/socket_server.h). Requests carry an id
 * chosen by the worker; answers echo it and may come in any order.
 *
 *   AUTH_MSG_PASS_REQUEST   id  str user, str password, str client_ip, str mechanism
 *   AUTH_MSG_PASS_REPLY     id  u32 status (enum auth_status), str canonical_user,
 *                               str maildir, str message, u64 generation, str host,
 *                               u32 policy flags, u32 login_delay, u32 expire_days
 *
 * status AUTH_OK: the password matched; maildir is the absolute path of the
 * user's maildir (template already expanded). AUTH_FAIL: unknown user or
 * wrong password (the helper does not say which, and spends the same work on
 * both). AUTH_TEMPFAIL: the backend could not answer (e.g. the password file
 * is unreadable); the client should retry later. AUTH_REFUSED: the password
 * matched but the account may not use POP3; retrying will not help. message is for the log only,
 * never sent to a POP3 client. generation: with AUTH_OK, the credential
 * cache's generation of this password's entry (shm/credcache.h), under
 * which the worker may remember the login; 0 when it must not. host: with
 * AUTH_OK, the user's backend as the directory names it (ldap_host_attribute),
 * "" when it names none or the answer came from the credential cache. Only
 * the router (daemon/router/) uses it; when it needs the host, its request
 * is never answered from the cache (AUTH_MECH_ROUTER_LOOKUP). A reply that
 * ends after generation, as before host existed, decodes with host "".
 * The three policy fields (daemon/runtime/user_policy.h) are the user's own
 * POP3 policy, with AUTH_OK; a reply that ends before them (an older helper)
 * decodes as "nothing of the user's own", and values outside what
 * user_policy_valid() takes make the message malformed.
 *
 * SCRAM-SHA-256 (RFC 5802/7677) runs in the helper, because the server side
 * needs the stored keys, which workers must never see. The worker relays the
 * SASL messages; the helper keeps no state between the two steps: the server
 * nonce it makes carries an expiry and a MAC under a key the helper draws at
 * start, so the worker hands back client-first and server-first with the
 * client's final message, and the helper checks that they are its own.
 *
 *   AUTH_MSG_SCRAM_START    id  str client_first (with its gs2 header),
 *                               str client_ip
 *   AUTH_MSG_SCRAM_CHALLENGE id u32 status, str user (the n= name, for logs),
 *                               str server_first, str message
 *   AUTH_MSG_SCRAM_FINISH   id  str client_first, str server_first,
 *                               str client_final, str client_ip
 *   AUTH_MSG_SCRAM_RESULT   id  u32 status, str canonical_user, str maildir,
 *                               str server_final, str message, u32 policy flags,
 *                               u32 login_delay, u32 expire_days (as PASS_REPLY)
 *
 * CHALLENGE status AUTH_OK means "send server_first to the client"; an
 * unknown user gets a made-up salt and fails only at FINISH, like a wrong
 * password. AUTH_FAIL there means the client-first message is unusable
 * (syntax, channel binding asked for, an authzid other than the user).
 * RESULT AUTH_OK carries the server-final message ("v=..."), which the
 * worker sends as a last challenge (RFC 5034 has no success data).
 *
 * The penalty view (shm/penalty_view.h): a worker asks once per connection
 * and gets a read-only descriptor of it passed along (SCM_RIGHTS):
 *
 *   AUTH_MSG_VIEW_REQUEST   id  (no fields)
 *   AUTH_MSG_VIEW           id  u32 status: AUTH_OK with the descriptor,
 *                               AUTH_TEMPFAIL without one (the helper has no view)
 *
 * A worker without a view answers no login from its credential cache.
 *
 * A malformed message makes the helper close that worker's connection.
 */
#ifndef FASTPOP_AUTH_PROTOCOL_H
#define FASTPOP_AUTH_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/runtime/buf.h"
#include "daemon/runtime/user_policy.h"

#define AUTH_PROTOCOL_VERSION 1

enum auth_msg_type {
    AUTH_MSG_PASS_REQUEST = 1,
    AUTH_MSG_PASS_REPLY = 2,
    AUTH_MSG_SCRAM_START = 3,
    AUTH_MSG_SCRAM_CHALLENGE = 4,
    AUTH_MSG_SCRAM_FINISH = 5,
    AUTH_MSG_SCRAM_RESULT = 6,
    AUTH_MSG_VIEW_REQUEST = 7,
    AUTH_MSG_VIEW = 8,
};

enum auth_status {
    AUTH_OK = 0,
    AUTH_FAIL = 1,
    AUTH_TEMPFAIL = 2,
    /* The password is right but the account may not use POP3 (authlib's
     * disablepop3, auth/passdb_authlib.h): the worker says -ERR [SYS/PERM]. */
    AUTH_REFUSED = 3,
};

/* Field limits (AUTH_USER_MAX...), with the checks that every message fits one datagram. */
#include "daemon/runtime/limits.h"

/*
 * Encoding and decoding of every message above, so each layout is written
 * once (auth/protocol.c, on the IPC codec of daemon/runtime/ipc.h); the worker
 * (worker/auth_client.c) and the helper (auth/requests.c) both use these.
 * Encoders build the message in b (reset first) and return 0, or -1 if it
 * does not fit. Decoders return 0, or -1 with errno EPROTO when the message
 * is not a well-formed one of that type; their string fields are
 * NUL-terminated copies. Buffers that held a password or a SCRAM proof are
 * the caller's to wipe.
 */
/* A worker's requests, as the helper decodes them. */
struct auth_pass_request {
    char user[AUTH_USER_MAX];
    char password[AUTH_PASS_MAX];
    char ip[AUTH_IP_MAX];
    char mechanism[AUTH_MECH_MAX];
};

/* START carries client_first and ip; FINISH all four. */
struct auth_scram_request {
    char client_first[AUTH_SCRAM_MSG_MAX];
    char server_first[AUTH_SCRAM_MSG_MAX];
    char client_final[AUTH_SCRAM_MSG_MAX];
    char ip[AUTH_IP_MAX];
};

/* Any of the helper's answers, as the worker decodes it; fields its type lacks stay "" / 0. */
struct auth_reply {
    uint32_t type, id;
    enum auth_status status;
    char user[AUTH_USER_MAX];
    char maildir[AUTH_PATH_MAX];        /* PASS_REPLY, SCRAM_RESULT */
    char sasl[AUTH_SCRAM_MSG_MAX];      /* CHALLENGE: server_first; RESULT: server_final */
    char message[AUTH_MESSAGE_MAX];
    uint64_t generation;                /* PASS_REPLY */
    char host[AUTH_HOST_MAX];           /* PASS_REPLY */
    struct user_policy policy;          /* PASS_REPLY, SCRAM_RESULT; unset otherwise */
};

/*
 * The mechanisms the router (daemon/router/router_main.c) puts in its PASS
 * requests: ROUTER when it remembers the user's host (router_cache_ttl), so
 * the credential cache may answer (with host ""); ROUTER_LOOKUP when it
 * needs the host, which the helper then asks the directory for, never the
 * cache, whose entries do not hold it.
 */
#define AUTH_MECH_ROUTER "router"
#define AUTH_MECH_ROUTER_LOOKUP "router-lookup"
/*
 * Only the router may use them (a worker could otherwise send every guess
 * past the cache to the directory): the master, which forks the router,
 * writes its pid into run_dir/ROUTER_PID_NAME, a directory only root
 * writes, and removes it when the router ends; the helper compares the
 * SO_PEERCRED pid of the connection with it.
 */
#define ROUTER_PID_NAME "router.pid"
/* 1 if mechanism is one of the router's. */
int protocol_is_router_mechanism(const char *mechanism);

/* The type field of a datagram, or 0 (no message type) if it is shorter than a header. */
uint32_t protocol_message_type(const void *msg, size_t len);

int protocol_encode_pass_request(struct buf *b, uint32_t id, const char *user,
                                 const char *password, const char *ip, const char *mechanism);
int protocol_encode_scram_start(struct buf *b, uint32_t id, const char *client_first,
                                const char *ip);
int protocol_encode_scram_finish(struct buf *b, uint32_t id, const char *client_first,
                                 const char *server_first, const char *client_final,
                                 const char *ip);
int protocol_encode_view_request(struct buf *b, uint32_t id);

int protocol_decode_pass_request(const void *msg, size_t len, uint32_t *id,
                                 struct auth_pass_request *q);
/* START or FINISH, by the message's type (in *type). */
int protocol_decode_scram_request(const void *msg, size_t len, uint32_t *type, uint32_t *id,
                                  struct auth_scram_request *q);
int protocol_decode_view_request(const void *msg, size_t len, uint32_t *id);

/* policy NULL: nothing of the user's own (user_policy_init()). */
int protocol_encode_pass_reply(struct buf *b, uint32_t id, enum auth_status status,
                               const char *user, const char *maildir, const char *message,
                               uint64_t generation, const char *host,
                               const struct user_policy *policy);
int protocol_encode_scram_challenge(struct buf *b, uint32_t id, enum auth_status status,
                                    const char *user, const char *server_first,
                                    const char *message);
int protocol_encode_scram_result(struct buf *b, uint32_t id, enum auth_status status,
                                 const char *user, const char *maildir,
                                 const char *server_final, const char *message,
                                 const struct user_policy *policy);
int protocol_encode_view(struct buf *b, uint32_t id, enum auth_status status);

/* PASS_REPLY, SCRAM_CHALLENGE, SCRAM_RESULT or VIEW; a status outside enum auth_status is malformed. */
int protocol_decode_reply(const void *msg, size_t len, struct auth_reply *out);

#endif
