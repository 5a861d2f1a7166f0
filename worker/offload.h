/*
 * Background threads of a worker, for work that can take seconds or wait
 * on the disk and must not stop the event loop meanwhile: reading a
 * maildir of hundreds of thousands of files at login, and QUIT's update
 * (unlinks and an fsync of cur/, each waiting on the file system's
 * journal: worker/mailbox_update.h). Everything else of the worker stays
 * on the loop's thread.
 *
 * The contract that keeps it simple to reason about:
 *  - work() runs on the thread and touches only its job (and what the job
 *    alone owns until done(): a locked session's list, the mailbox index,
 *    whose calls take its own lock, shm/index.h). It logs nothing and
 *    counts nothing: the job carries its results back.
 *  - done() runs on the loop, from the epoll batch that saw the thread's
 *    eventfd, once per job, in the order the jobs finished; it frees the
 *    job. Whoever submitted the job may be gone by then: the job says so.
 *  - Jobs start first come first served, as many at once as there are
 *    threads; the rest wait. Two jobs never share what they own (a session
 *    is one job's at a time, under its mailbox lock); the index they both
 *    use takes its own lock.
 *  - The threads block every signal: the loop's signalfd receives them.
 *  - offload_stop() lets the threads finish every job submitted, runs their
 *    done(), and joins them: a worker that exits leaves no job half done
 *    and nothing allocated behind.
 */
#ifndef FASTPOP_OFFLOAD_H
#define FASTPOP_OFFLOAD_H

#include "daemon/runtime/limits.h"
#include "worker/loop.h"

struct offload_job {
    void (*work)(struct offload_job *job);   /* on the thread */
    void (*done)(struct offload_job *job);   /* on the loop, after work; frees the job */
    struct offload_job *next;                /* the queues' own */
};

struct offload;

/*
 * Start threads (1 to OFFLOAD_THREADS_MAX, daemon/runtime/limits.h; fewer
 * if the system gives fewer) and watch their eventfd on lp. NULL with
 * errno when it cannot (no thread, no descriptor, EINVAL): the caller then
 * does the work inline.
 */
struct offload *offload_start(struct loop *lp, unsigned threads);

/* Queue job for the thread. */
void offload_submit(struct offload *o, struct offload_job *job);

/* Jobs submitted whose done() has not run yet (0 for NULL). */
unsigned offload_pending(const struct offload *o);

/* Finish every submitted job (done() included), then stop and free. NULL is a no-op. */
void offload_stop(struct offload *o);

#endif
