#include "auth/protocol.h"

#include <errno.h>
#include <string.h>

#include "daemon/runtime/ipc.h"

uint32_t protocol_message_type(const void *msg, size_t len)
{
    struct ipc_reader r;
    uint32_t type, id;

    return ipc_reader_init(&r, msg, len, &type, &id) == 0 ? type : 0;
}

int protocol_is_router_mechanism(const char *mechanism)
{
    return strcmp(mechanism, AUTH_MECH_ROUTER) == 0 ||
           strcmp(mechanism, AUTH_MECH_ROUTER_LOOKUP) == 0;
}

/* The end of every decoder: nothing missing, nothing left over. */
static int finish(const struct ipc_reader *r)
{
    if (ipc_reader_end(r) == 0)
        return 0;
    errno = EPROTO;
    return -1;
}

/* A header of the expected type; -1 (EPROTO) otherwise. */
static int begin(struct ipc_reader *r, const void *msg, size_t len, uint32_t want,
                 uint32_t *id)
{
    uint32_t type;

    if (ipc_reader_init(r, msg, len, &type, id) == 0 && type == want)
        return 0;
    errno = EPROTO;
    return -1;
}

/* --- requests (worker -> helper) ----------------------------------------- */

int protocol_encode_pass_request(struct buf *b, uint32_t id, const char *user,
                                 const char *password, const char *ip, const char *mechanism)
{
    if (ipc_begin(b, AUTH_MSG_PASS_REQUEST, id) == -1 || ipc_put_str(b, user) == -1 ||
        ipc_put_str(b, password) == -1 || ipc_put_str(b, ip) == -1 ||
        ipc_put_str(b, mechanism) == -1)
        return -1;
    return 0;
}

int protocol_decode_pass_request(const void *msg, size_t len, uint32_t *id,
                                 struct auth_pass_request *q)
{
    struct ipc_reader r;

    memset(q, 0, sizeof(*q));
    if (begin(&r, msg, len, AUTH_MSG_PASS_REQUEST, id) == -1)
        return -1;
    ipc_get_str(&r, q->user, sizeof(q->user));
    ipc_get_str(&r, q->password, sizeof(q->password));
    ipc_get_str(&r, q->ip, sizeof(q->ip));
    ipc_get_str(&r, q->mechanism, sizeof(q->mechanism));
    return finish(&r);
}

int protocol_encode_scram_start(struct buf *b, uint32_t id, const char *client_first,
                                const char *ip)
{
    if (ipc_begin(b, AUTH_MSG_SCRAM_START, id) == -1 || ipc_put_str(b, client_first) == -1 ||
        ipc_put_str(b, ip) == -1)
        return -1;
    return 0;
}

int protocol_encode_scram_finish(struct buf *b, uint32_t id, const char *client_first,
                                 const char *server_first, const char *client_final,
                                 const char *ip)
{
    if (ipc_begin(b, AUTH_MSG_SCRAM_FINISH, id) == -1 || ipc_put_str(b, client_first) == -1 ||
        ipc_put_str(b, server_first) == -1 || ipc_put_str(b, client_final) == -1 ||
        ipc_put_str(b, ip) == -1)
        return -1;
    return 0;
}

int protocol_decode_scram_request(const void *msg, size_t len, uint32_t *type, uint32_t *id,
                                  struct auth_scram_request *q)
{
    struct ipc_reader r;

    memset(q, 0, sizeof(*q));
    if (ipc_reader_init(&r, msg, len, type, id) == -1 ||
        (*type != AUTH_MSG_SCRAM_START && *type != AUTH_MSG_SCRAM_FINISH)) {
        errno = EPROTO;
        return -1;
    }
    ipc_get_str(&r, q->client_first, sizeof(q->client_first));
    if (*type == AUTH_MSG_SCRAM_FINISH) {
        ipc_get_str(&r, q->server_first, sizeof(q->server_first));
        ipc_get_str(&r, q->client_final, sizeof(q->client_final));
    }
    ipc_get_str(&r, q->ip, sizeof(q->ip));
    return finish(&r);
}

int protocol_encode_view_request(struct buf *b, uint32_t id)
{
    return ipc_begin(b, AUTH_MSG_VIEW_REQUEST, id);
}

int protocol_decode_view_request(const void *msg, size_t len, uint32_t *id)
{
    struct ipc_reader r;

    if (begin(&r, msg, len, AUTH_MSG_VIEW_REQUEST, id) == -1)
        return -1;
    return finish(&r);
}

/* --- answers (helper -> worker) ------------------------------------------ */

static int put_policy(struct buf *b, const struct user_policy *policy)
{
    struct user_policy none;

    if (policy == NULL) {
        user_policy_init(&none);
        policy = &none;
    }
    if (ipc_put_u32(b, policy->flags) == -1 || ipc_put_u32(b, policy->login_delay) == -1 ||
        ipc_put_u32(b, policy->expire_days) == -1)
        return -1;
    return 0;
}

/* The policy at the end of a reply, if there is one (an older helper's reply ends before it). */
static void get_policy(struct ipc_reader *r, struct user_policy *policy)
{
    user_policy_init(policy);
    if (r->left == 0)
        return;
    policy->flags = ipc_get_u32(r);
    policy->login_delay = ipc_get_u32(r);
    policy->expire_days = ipc_get_u32(r);
}

int protocol_encode_pass_reply(struct buf *b, uint32_t id, enum auth_status status,
                               const char *user, const char *maildir, const char *message,
                               uint64_t generation, const char *host,
                               const struct user_policy *policy)
{
    if (ipc_begin(b, AUTH_MSG_PASS_REPLY, id) == -1 || ipc_put_u32(b, (uint32_t)status) == -1 ||
        ipc_put_str(b, user) == -1 || ipc_put_str(b, maildir) == -1 ||
        ipc_put_str(b, message) == -1 || ipc_put_u64(b, generation) == -1 ||
        ipc_put_str(b, host) == -1 || put_policy(b, policy) == -1)
        return -1;
    return 0;
}

int protocol_encode_scram_challenge(struct buf *b, uint32_t id, enum auth_status status,
                                    const char *user, const char *server_first,
                                    const char *message)
{
    if (ipc_begin(b, AUTH_MSG_SCRAM_CHALLENGE, id) == -1 ||
        ipc_put_u32(b, (uint32_t)status) == -1 || ipc_put_str(b, user) == -1 ||
        ipc_put_str(b, server_first) == -1 || ipc_put_str(b, message) == -1)
        return -1;
    return 0;
}

int protocol_encode_scram_result(struct buf *b, uint32_t id, enum auth_status status,
                                 const char *user, const char *maildir,
                                 const char *server_final, const char *message,
                                 const struct user_policy *policy)
{
    if (ipc_begin(b, AUTH_MSG_SCRAM_RESULT, id) == -1 ||
        ipc_put_u32(b, (uint32_t)status) == -1 || ipc_put_str(b, user) == -1 ||
        ipc_put_str(b, maildir) == -1 || ipc_put_str(b, server_final) == -1 ||
        ipc_put_str(b, message) == -1 || put_policy(b, policy) == -1)
        return -1;
    return 0;
}

int protocol_encode_view(struct buf *b, uint32_t id, enum auth_status status)
{
    if (ipc_begin(b, AUTH_MSG_VIEW, id) == -1 || ipc_put_u32(b, (uint32_t)status) == -1)
        return -1;
    return 0;
}

int protocol_decode_reply(const void *msg, size_t len, struct auth_reply *out)
{
    struct ipc_reader r;

    memset(out, 0, sizeof(*out));
    user_policy_init(&out->policy);
    if (ipc_reader_init(&r, msg, len, &out->type, &out->id) == -1) {
        errno = EPROTO;
        return -1;
    }
    uint32_t status = ipc_get_u32(&r);
    switch (out->type) {
    case AUTH_MSG_PASS_REPLY:
        ipc_get_str(&r, out->user, sizeof(out->user));
        ipc_get_str(&r, out->maildir, sizeof(out->maildir));
        ipc_get_str(&r, out->message, sizeof(out->message));
        out->generation = ipc_get_u64(&r);
        /* host came later (issue 15): a reply that ends before it names none. */
        if (r.left > 0)
            ipc_get_str(&r, out->host, sizeof(out->host));
        get_policy(&r, &out->policy);
        break;
    case AUTH_MSG_SCRAM_CHALLENGE:
        ipc_get_str(&r, out->user, sizeof(out->user));
        ipc_get_str(&r, out->sasl, sizeof(out->sasl));
        ipc_get_str(&r, out->message, sizeof(out->message));
        break;
    case AUTH_MSG_SCRAM_RESULT:
        ipc_get_str(&r, out->user, sizeof(out->user));
        ipc_get_str(&r, out->maildir, sizeof(out->maildir));
        ipc_get_str(&r, out->sasl, sizeof(out->sasl));
        ipc_get_str(&r, out->message, sizeof(out->message));
        get_policy(&r, &out->policy);
        break;
    case AUTH_MSG_VIEW:
        break;
    default:
        errno = EPROTO;
        return -1;
    }
    if (status > AUTH_REFUSED || !user_policy_valid(&out->policy)) {
        errno = EPROTO;
        return -1;
    }
    out->status = (enum auth_status)status;
    return finish(&r);
}
