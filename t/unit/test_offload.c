/*
 * The worker's loader thread (worker/offload.h) through a real epoll loop:
 * work runs on the thread with every signal blocked, done() on the loop in
 * the order the jobs were submitted, the loop is woken by the eventfd, and
 * stopping finishes every job submitted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "worker/loop.h"
#include "worker/offload.h"

enum { JOBS = 20 };

struct record {
    pthread_t loop_thread;
    int done_order[JOBS];
    int done_count;
};

struct test_job {
    struct offload_job job;
    struct record *rec;
    int id;
    int on_other_thread;
    int signals_blocked;
};

static void work(struct offload_job *job)
{
    struct test_job *t = (struct test_job *)job;
    sigset_t now;
    t->on_other_thread = !pthread_equal(pthread_self(), t->rec->loop_thread);
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    t->signals_blocked = sigismember(&now, SIGTERM) && sigismember(&now, SIGUSR1) &&
                         sigismember(&now, SIGCHLD);
    /* Long enough that the loop gets to wait for the thread now and then. */
    struct timespec pause = { 0, 2 * 1000 * 1000 };
    nanosleep(&pause, NULL);
}

static void done(struct offload_job *job)
{
    struct test_job *t = (struct test_job *)job;
    assert_true(pthread_equal(pthread_self(), t->rec->loop_thread));
    assert_true(t->on_other_thread);
    assert_true(t->signals_blocked);
    t->rec->done_order[t->rec->done_count++] = t->id;
    free(t);
}

static void submit_all(struct offload *o, struct record *rec)
{
    for (int i = 0; i < JOBS; i++) {
        struct test_job *t = calloc(1, sizeof(*t));
        assert_non_null(t);
        t->job.work = work;
        t->job.done = done;
        t->rec = rec;
        t->id = i;
        offload_submit(o, &t->job);
    }
    assert_int_equal(offload_pending(o), JOBS);
}

static void test_jobs_run_off_the_loop_and_finish_in_order(void **state)
{
    (void)state;
    struct loop lp = { 0 };
    struct record rec = { .loop_thread = pthread_self() };
    lp.ev = ev_loop_new();
    assert_non_null(lp.ev);
    struct offload *o = offload_start(&lp, 1);
    assert_non_null(o);
    submit_all(o, &rec);
    /* Only the eventfd wakes this loop: each wake delivers what has finished. */
    for (int turns = 0; offload_pending(o) > 0 && turns < 1000; turns++) {
        ev_loop_set_max_wait(lp.ev, 5000);
        assert_true(ev_loop_once(lp.ev) > 0);
    }
    assert_int_equal(offload_pending(o), 0);
    assert_int_equal(rec.done_count, JOBS);
    for (int i = 0; i < JOBS; i++)
        assert_int_equal(rec.done_order[i], i);
    offload_stop(o);
    ev_loop_free(lp.ev);
}

static void test_stop_finishes_every_submitted_job(void **state)
{
    (void)state;
    struct loop lp = { 0 };
    struct record rec = { .loop_thread = pthread_self() };
    lp.ev = ev_loop_new();
    assert_non_null(lp.ev);
    struct offload *o = offload_start(&lp, 1);
    assert_non_null(o);
    submit_all(o, &rec);
    /* No loop turn at all: stopping runs the rest, and every done() (no leak). */
    offload_stop(o);
    assert_int_equal(rec.done_count, JOBS);
    for (int i = 0; i < JOBS; i++)
        assert_int_equal(rec.done_order[i], i);
    offload_stop(NULL);
    assert_int_equal(offload_pending(NULL), 0);
    ev_loop_free(lp.ev);
}

/* Jobs that each wait until all of them run: only threads working at once finish them. */
struct meeting {
    pthread_mutex_t lock;
    pthread_cond_t all_here;
    unsigned here;
    unsigned met;                    /* jobs that saw everyone (not a timeout) */
    unsigned done;
};

struct meeting_job {
    struct offload_job job;
    struct meeting *m;
};

static void meet(struct offload_job *job)
{
    struct meeting *m = ((struct meeting_job *)job)->m;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;   /* a correctness bound, not a timing: 1 thread never gets there */
    pthread_mutex_lock(&m->lock);
    m->here++;
    pthread_cond_broadcast(&m->all_here);
    while (m->here < OFFLOAD_THREADS &&
           pthread_cond_timedwait(&m->all_here, &m->lock, &until) == 0)
        ;
    if (m->here >= OFFLOAD_THREADS)
        m->met++;
    pthread_mutex_unlock(&m->lock);
}

static void met_done(struct offload_job *job)
{
    ((struct meeting_job *)job)->m->done++;
    free(job);
}

static void test_pool_runs_jobs_at_once(void **state)
{
    (void)state;
    struct loop lp = { 0 };
    struct meeting m = { .lock = PTHREAD_MUTEX_INITIALIZER,
                         .all_here = PTHREAD_COND_INITIALIZER };
    lp.ev = ev_loop_new();
    assert_non_null(lp.ev);
    struct offload *o = offload_start(&lp, OFFLOAD_THREADS);
    assert_non_null(o);
    for (int i = 0; i < OFFLOAD_THREADS; i++) {
        struct meeting_job *j = calloc(1, sizeof(*j));
        assert_non_null(j);
        j->job.work = meet;
        j->job.done = met_done;
        j->m = &m;
        offload_submit(o, &j->job);
    }
    offload_stop(o);
    assert_int_equal(m.done, OFFLOAD_THREADS);
    assert_int_equal(m.met, OFFLOAD_THREADS);
    ev_loop_free(lp.ev);
}

static void test_thread_count_checked(void **state)
{
    (void)state;
    struct loop lp = { 0 };
    lp.ev = ev_loop_new();
    assert_non_null(lp.ev);
    assert_null(offload_start(&lp, 0));
    assert_null(offload_start(&lp, OFFLOAD_THREADS_MAX + 1));
    ev_loop_free(lp.ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_run_off_the_loop_and_finish_in_order),
        cmocka_unit_test(test_stop_finishes_every_submitted_job),
        cmocka_unit_test(test_pool_runs_jobs_at_once),
        cmocka_unit_test(test_thread_count_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
