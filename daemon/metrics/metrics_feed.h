/*
 * The numbers behind GET /metrics, from the root master to the metrics
 * process (daemon/metrics/metrics_main.c, unprivileged), over a SOCK_SEQPACKET
 * socketpair made for each metrics process, in the one IPC format
 * (daemon/runtime/ipc.h):
 *   METRICS_ASK     child -> master  no fields; the id is the child's choice
 *   METRICS_VALUES  master -> child  u32 first, u32 count, count x u64: the
 *                                    counters [first, first + count) of a
 *                                    STATS_SINCE_START read (shm/stats.h)
 *   METRICS_GAUGES  master -> child  u32 available (0: no statistics, the
 *                                    child answers 503), u32 STATS_VALUES,
 *                                    u64 since, u64 started, u64 now,
 *                                    u32 connections, u32 logged_in,
 *                                    u32 workers, u32 draining,
 *                                    u32 max_connections, u64 open_files_limit,
 *                                    u64 open_files_wanted; always last
 * Every answer carries the ask's id.
 *
 * Trust: the master parses nothing of the child but a header. An ask with
 * a field, another type, a datagram of the wrong size, or a child that does
 * not read its answers (the socket full) ends the child; the master then
 * respawns it with the usual backoff. The master reads at most
 * METRICS_FEED_ASKS_PER_TURN asks per wakeup, so a flooding child cannot
 * hold up its loop. What a hostile child learns is what /metrics publishes.
 */
#ifndef FASTPOP_METRICS_FEED_H
#define FASTPOP_METRICS_FEED_H

#include <stdint.h>

#include "shm/stats.h"
#include "daemon/metrics/stats_render.h"

/* Enough for a burst of scrapes; more wait for the next turn of the loop. */
#define METRICS_FEED_ASKS_PER_TURN 8

enum metrics_feed_message {
    METRICS_ASK = 0x4d545201,
    METRICS_VALUES = 0x4d545202,
    METRICS_GAUGES = 0x4d545203,
};

/*
 * Master: take the next ask from fd. 1 with its id in *id; 0 when none is
 * waiting; -1 when the child is gone (EOF, errno EPIPE) or broke the
 * protocol (errno EPROTO).
 */
int metrics_feed_next_ask(int fd, uint32_t *id);

/*
 * Master: answer ask id with s and g; s NULL says there are no statistics.
 * 0, or -1 if the answer could not be sent whole (the child is not reading).
 */
int metrics_feed_answer(int fd, uint32_t id, const struct stats_snapshot *s,
                        const struct stats_gauges *g);

/*
 * Child: ask with id and wait up to timeout seconds for the answer, leaving
 * aside answers to earlier asks. 1 with *s and *g filled; 0 if the master
 * has no statistics; -1 with errno ETIMEDOUT, EPIPE (the master is gone) or
 * EPROTO; or the errno of the failed send of the ask.
 */
int metrics_feed_fetch(int fd, uint32_t id, double timeout, struct stats_snapshot *s,
                       struct stats_gauges *g);

#endif
