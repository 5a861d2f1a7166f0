/*
 * Connections to run once the current epoll batch is done: those whose
 * helper answer arrived (worker/auth_client.c). Running a connection from
 * inside the helper client's callback would run the client's pipelined next
 * command there, and that command can send to the helper, fail, and tear
 * down the very request list the callback came from (issue 12 item 2).
 * A doubly linked FIFO: answers run in arrival order, and a connection that
 * closes leaves the queue at once, so the queue never holds freed memory.
 */
#include "worker/conn.h"

void conn_resume(struct conn *c)
{
    struct loop *lp = c->lp;
    if (c->fd == -1 || c->ready_listed)
        return;
    c->ready_prev = lp->ready_tail;
    c->ready_next = NULL;
    if (lp->ready_tail)
        lp->ready_tail->ready_next = c;
    else
        lp->ready_head = c;
    lp->ready_tail = c;
    c->ready_listed = 1;
}

void conn_ready_remove(struct conn *c)
{
    struct loop *lp = c->lp;
    if (!c->ready_listed)
        return;
    if (c->ready_prev)
        c->ready_prev->ready_next = c->ready_next;
    else
        lp->ready_head = c->ready_next;
    if (c->ready_next)
        c->ready_next->ready_prev = c->ready_prev;
    else
        lp->ready_tail = c->ready_prev;
    c->ready_prev = c->ready_next = NULL;
    c->ready_listed = 0;
}

void conn_run_ready(struct loop *lp)
{
    /*
     * A run can queue others (a failed send to the helper answers every
     * login still out), each at most once per answer: this ends. The bound
     * only keeps one call finite whatever happens; the rest waits for the
     * next turn of the loop, which then does not sleep (worker.c).
     */
    for (unsigned n = 0; lp->ready_head != NULL && n <= 2 * lp->conn_count + 16; n++) {
        struct conn *c = lp->ready_head;
        conn_ready_remove(c);
        if (c->fd != -1)
            conn_run(c);
    }
}
