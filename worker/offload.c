#include "worker/offload.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct offload {
    struct ev_io io;                 /* the eventfd in the worker's event loop */
    struct loop *lp;
    int efd;                         /* a thread writes 1 per finished job */
    pthread_t threads[OFFLOAD_THREADS_MAX];
    unsigned nthreads;
    pthread_mutex_t lock;            /* guards the two queues and stopping */
    pthread_cond_t wake;
    struct offload_job *todo_head, *todo_tail;
    struct offload_job *done_head, *done_tail;
    int stopping;
    unsigned pending;                /* the loop's own count */
};

static void push(struct offload_job **head, struct offload_job **tail, struct offload_job *job)
{
    job->next = NULL;
    if (*tail != NULL)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static void *run(void *arg)
{
    struct offload *o = arg;
    pthread_mutex_lock(&o->lock);
    for (;;) {
        while (o->todo_head == NULL && !o->stopping)
            pthread_cond_wait(&o->wake, &o->lock);
        struct offload_job *job = o->todo_head;
        /* Stopping ends the thread only once every submitted job has run. */
        if (job == NULL)
            break;
        o->todo_head = job->next;
        if (o->todo_head == NULL)
            o->todo_tail = NULL;
        pthread_mutex_unlock(&o->lock);
        job->work(job);
        pthread_mutex_lock(&o->lock);
        push(&o->done_head, &o->done_tail, job);
        uint64_t one = 1;
        /* Only a counter at its maximum refuses: the loop is woken either way. */
        ssize_t ignored = write(o->efd, &one, sizeof(one));
        (void)ignored;
    }
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

/* Run done() of every finished job, in the order they finished. */
static void deliver(struct offload *o)
{
    pthread_mutex_lock(&o->lock);
    struct offload_job *job = o->done_head;
    o->done_head = o->done_tail = NULL;
    pthread_mutex_unlock(&o->lock);
    while (job != NULL) {
        struct offload_job *next = job->next;
        o->pending--;
        job->done(job);
        job = next;
    }
}

static void on_eventfd(struct ev_loop *ev, struct ev_io *io, uint32_t events)
{
    struct offload *o = io->data;
    uint64_t count;
    (void)ev;
    (void)events;
    ssize_t ignored = read(o->efd, &count, sizeof(count));
    (void)ignored;
    deliver(o);
}

/* Stacks of this size: the jobs keep no big buffers on the stack, and a
 * default 8 MB each would be 8 MB of address space per thread (RLIMIT_AS). */
#define OFFLOAD_STACK_BYTES (1024 * 1024)

/* Start n threads with every signal blocked (they inherit this mask). 0, or an errno. */
static int start_threads(struct offload *o, unsigned n)
{
    pthread_attr_t attr;
    sigset_t all, old;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return rc;
    pthread_attr_setstacksize(&attr, OFFLOAD_STACK_BYTES);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (o->nthreads = 0; o->nthreads < n; o->nthreads++) {
        rc = pthread_create(&o->threads[o->nthreads], &attr, run, o);
        if (rc != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    /* Fewer threads than asked still work; none does not. */
    return o->nthreads > 0 ? 0 : rc;
}

static void join_threads(struct offload *o)
{
    pthread_mutex_lock(&o->lock);
    o->stopping = 1;
    pthread_cond_broadcast(&o->wake);
    pthread_mutex_unlock(&o->lock);
    for (unsigned i = 0; i < o->nthreads; i++)
        pthread_join(o->threads[i], NULL);
}

struct offload *offload_start(struct loop *lp, unsigned threads)
{
    struct offload *o = calloc(1, sizeof(*o));
    int rc;
    if (o == NULL)
        return NULL;
    if (threads == 0 || threads > OFFLOAD_THREADS_MAX) {
        free(o);
        errno = EINVAL;
        return NULL;
    }
    o->lp = lp;
    o->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (o->efd == -1) {
        free(o);
        return NULL;
    }
    rc = pthread_mutex_init(&o->lock, NULL);
    if (rc != 0)
        goto fail_fd;
    rc = pthread_cond_init(&o->wake, NULL);
    if (rc != 0)
        goto fail_mutex;
    if (ev_io_start(lp->ev, &o->io, o->efd, EPOLLIN, on_eventfd, o) == -1) {
        rc = errno;
        goto fail_cond;
    }
    rc = start_threads(o, threads);
    if (rc == 0)
        return o;
    ev_io_stop(lp->ev, &o->io);
fail_cond:
    pthread_cond_destroy(&o->wake);
fail_mutex:
    pthread_mutex_destroy(&o->lock);
fail_fd:
    close(o->efd);
    free(o);
    errno = rc;
    return NULL;
}

void offload_submit(struct offload *o, struct offload_job *job)
{
    o->pending++;
    pthread_mutex_lock(&o->lock);
    push(&o->todo_head, &o->todo_tail, job);
    pthread_cond_signal(&o->wake);
    pthread_mutex_unlock(&o->lock);
}

unsigned offload_pending(const struct offload *o)
{
    return o != NULL ? o->pending : 0;
}

void offload_stop(struct offload *o)
{
    if (o == NULL)
        return;
    join_threads(o);
    deliver(o);
    ev_io_stop(o->lp->ev, &o->io);
    close(o->efd);
    pthread_cond_destroy(&o->wake);
    pthread_mutex_destroy(&o->lock);
    free(o);
}
