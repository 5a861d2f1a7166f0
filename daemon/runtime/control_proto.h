/*
 * The control socket's wire protocol, shared by the master (daemon/master/
 * control.c), popctl and the metrics process. Access rules and the master's
 * side are in daemon/master/control.h.
 *
 * Protocol, version 1. SOCK_SEQPACKET; every message is one datagram in
 * the one IPC layer's format (daemon/runtime/ipc.h: header {u32 type, u32 id},
 * then u32 and string fields), at most IPC_MAX_MESSAGE bytes.
 *   request   CONTROL_REQUEST  u32 version (1), str verb, u32 argc, argc x str
 *             (verb arguments; options travel as "name=value")
 *   replies   CONTROL_ROW      u32 n, n x (str key, str value): one record,
 *                              zero or more of them (a who line, the status)
 *             CONTROL_END      u32 status (enum control_status), str message
 * Replies carry the request's id. A client may send further requests on
 * the same connection; each gets its rows and one END. A request that
 * does not decode, or of another version, gets END CONTROL_BAD and the
 * connection is closed. Fields are added to ROW records, never renamed,
 * within one version.
 *
 * Verbs (arguments):
 *   stats [format=text|json|prometheus]
 *                               rows {"text": piece}: the pieces, joined, are
 *                               the document (daemon/metrics/stats_render.h)
 *   stats-reset [format=...]    the same, then counting starts anew (a
 *                               changing verb; /metrics is never reset)
 *   status                      version, pid, uptime, config, workers, helper,
 *                               draining, stopping, sessions, metrics (the
 *                               metrics process's pid, "-" for none)
 *   who [USER|IP[/PREFIX]]      one row per session
 *   kick USER|IP[/PREFIX]       END message "N": sessions told to end
 *   drain [deadline=S] [message=TEXT]
 *   drain-status                draining, sessions, logged_in, cut, deadline_left,
 *                               idle_limit (drain_idle_timeout)
 *   undrain
 *   reload                      END CONTROL_FAILED with "file:line: ..." if refused
 *   stop [deadline=S]
 *
 * Caveats: replies are written with a short send timeout; a client that
 * does not read them is dropped, never waited for.
 */
#ifndef FASTPOP_CONTROL_PROTO_H
#define FASTPOP_CONTROL_PROTO_H

/* A stats document travels in rows of at most this many bytes of text. */
#define CONTROL_STATS_PIECE 3000
#define CONTROL_STATS_MAX (1024 * 1024)

#define CONTROL_VERSION 1
#define CONTROL_SOCKET_NAME "control.sock"

enum control_message {
    CONTROL_REQUEST = 0x43544c01,
    CONTROL_ROW = 0x43544c02,
    CONTROL_END = 0x43544c03,
};

enum control_status {
    CONTROL_OK = 0,
    CONTROL_FAILED = 1,    /* the verb ran and did not succeed (a bad config on reload) */
    CONTROL_DENIED = 2,    /* the caller may not use this verb */
    CONTROL_BAD = 3,       /* unknown verb, bad arguments, bad message */
};

#endif
