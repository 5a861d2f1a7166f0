/*
 * RETR and TOP as a connection job: the message file is read in chunks and
 * turned into the multi-line body by the maildir streamer, pausing whenever
 * the output buffer is at its high-water mark. Memory per session stays at
 * one read chunk plus the output buffer, whatever the message size.
 */
#ifndef FASTPOP_RETR_H
#define FASTPOP_RETR_H

#include <stddef.h>
#include <stdint.h>

#include "worker/conn.h"

/*
 * A job sending message i (0-based) of c's session, whose file is open as
 * fd (the job closes it). top < 0 means RETR; else TOP with that many
 * body lines. NULL with errno on failure (fd is then closed).
 */
struct conn_job *retr_job_new(struct conn *c, size_t i, int fd, long top);

#endif
