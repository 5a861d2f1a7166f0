/*
 * The worker <-> fastpop-auth protocol, over the helper's SOCK_SEQPACKET
 * socket (run_dir/auth.sock), one message per datagram, framed by
 * daemon/ipc.h. Version 1.
 *
 * The helper accepts only peers whose SO_PEERCRED uid is the mail user
 * (or its own uid when fastpop runs unprivileged). Requests carry an id
 * chosen by the worker; answers echo it and may come in any order.
 *
 *   AUTH_MSG_PASS_REQUEST   id  str user, str password, str client_ip, str mechanism
 *   AUTH_MSG_PASS_REPLY     id  u32 status (enum auth_status), str canonical_user,
 *                               str maildir, str message
 *
 * status AUTH_OK: the password matched; maildir is the absolute path of the
 * user's maildir (template already expanded). AUTH_FAIL: unknown user or
 * wrong password (the helper does not say which, and spends the same work on
 * both). AUTH_TEMPFAIL: the backend could not answer (e.g. the password file
 * is unreadable); the client should retry later. message is for the log only,
 * never sent to a POP3 client.
 *
 * A malformed message makes the helper close that worker's connection.
 */
#ifndef FASTPOP_AUTH_PROTOCOL_H
#define FASTPOP_AUTH_PROTOCOL_H

#define AUTH_PROTOCOL_VERSION 1

enum auth_msg_type {
    AUTH_MSG_PASS_REQUEST = 1,
    AUTH_MSG_PASS_REPLY = 2,
};

enum auth_status {
    AUTH_OK = 0,
    AUTH_FAIL = 1,
    AUTH_TEMPFAIL = 2,
};

/*
 * Field limits, as buffer sizes: a string must be shorter than its limit
 * (room for the NUL), as both ends decode with ipc_get_str(r, buf, LIMIT)
 * and the IPC reader rejects longer strings.
 */
#define AUTH_USER_MAX 256
#define AUTH_PASS_MAX 1024
#define AUTH_IP_MAX 64
#define AUTH_MECH_MAX 32
#define AUTH_PATH_MAX 1024
#define AUTH_MESSAGE_MAX 256

#endif
