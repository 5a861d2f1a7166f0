/* daemon/runtime/event_loop: timer order, cancel, move, fd callbacks, scale, removal in callbacks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/runtime/clock.h"
#include "daemon/runtime/event_loop.h"

/* Every test's turns are bounded: a loop that never fires fails, it does not hang. */
#define MAX_TURNS 200

struct fired {
    int order[64];
    int count;
};

struct tagged_timer {
    struct ev_timer timer;
    int tag;
    struct fired *log;
};

static void record_fire(struct ev_loop *loop, struct ev_timer *t)
{
    (void)loop;
    struct tagged_timer *tt = t->data;
    if (tt->log->count < 64)
        tt->log->order[tt->log->count++] = tt->tag;
}

static void run_until_count(struct ev_loop *loop, const int *count, int want)
{
    for (int turn = 0; turn < MAX_TURNS && *count < want; turn++)
        assert_true(ev_loop_once(loop) >= 0);
}

static void test_timers_fire_in_deadline_order(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    assert_non_null(loop);
    struct fired log = { .count = 0 };
    struct tagged_timer t[5];
    /* Armed out of order; deadlines 50, 10, 40, 20, 30 ms ahead. */
    const int ms[5] = { 50, 10, 40, 20, 30 };
    double base = clock_mono();
    for (int i = 0; i < 5; i++) {
        t[i] = (struct tagged_timer){ .tag = ms[i], .log = &log };
        ev_timer_init(&t[i].timer, record_fire, &t[i]);
        assert_int_equal(ev_timer_arm(loop, &t[i].timer, base + ms[i] / 1000.0), 0);
    }
    assert_int_equal(ev_loop_timer_count(loop), 5);
    run_until_count(loop, &log.count, 5);
    assert_int_equal(log.count, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(log.order[i], (i + 1) * 10);
    /* None fired early. */
    assert_true(clock_mono() >= base + 0.050);
    assert_int_equal(ev_loop_timer_count(loop), 0);
    for (int i = 0; i < 5; i++)
        assert_false(ev_timer_armed(&t[i].timer));
    ev_loop_free(loop);
}

static void test_cancel_and_move(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct fired log = { .count = 0 };
    struct tagged_timer a = { .tag = 1, .log = &log }, b = { .tag = 2, .log = &log },
                        c = { .tag = 3, .log = &log };
    ev_timer_init(&a.timer, record_fire, &a);
    ev_timer_init(&b.timer, record_fire, &b);
    ev_timer_init(&c.timer, record_fire, &c);
    double now = clock_mono();
    ev_timer_arm(loop, &a.timer, now + 0.010);
    ev_timer_arm(loop, &b.timer, now + 0.020);
    ev_timer_arm(loop, &c.timer, now + 0.030);
    ev_timer_cancel(loop, &b.timer);
    ev_timer_cancel(loop, &b.timer);   /* twice is harmless */
    assert_false(ev_timer_armed(&b.timer));
    /* a moves behind c: re-arming an armed timer moves it, it is not added twice. */
    ev_timer_arm(loop, &a.timer, now + 0.040);
    assert_int_equal(ev_loop_timer_count(loop), 2);
    run_until_count(loop, &log.count, 2);
    assert_int_equal(log.count, 2);
    assert_int_equal(log.order[0], 3);
    assert_int_equal(log.order[1], 1);
    /* Re-arm after firing: it fires again. */
    ev_timer_arm_in(loop, &b.timer, 0.001);
    run_until_count(loop, &log.count, 3);
    assert_int_equal(log.order[2], 2);
    ev_loop_free(loop);
}

struct pipe_watch {
    struct ev_io io;
    int fds[2];
    int reads;
    struct pipe_watch *victim;   /* stopped (and its fd closed) from this one's callback */
};

static void on_readable(struct ev_loop *loop, struct ev_io *io, uint32_t events)
{
    struct pipe_watch *w = io->data;
    char byte;
    assert_true(events & EPOLLIN);
    assert_int_equal(read(w->fds[0], &byte, 1), 1);
    w->reads++;
    if (w->victim != NULL) {
        ev_io_stop(loop, &w->victim->io);
        w->victim = NULL;
    }
}

static void open_pipe(struct pipe_watch *w)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, w->fds), 0);
    w->reads = 0;
    w->victim = NULL;
}

static void test_fd_callbacks_and_modify(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct pipe_watch w;
    open_pipe(&w);
    assert_int_equal(ev_io_start(loop, &w.io, w.fds[0], EPOLLIN, on_readable, &w), 0);
    assert_int_equal(write(w.fds[1], "x", 1), 1);
    run_until_count(loop, &w.reads, 1);
    assert_int_equal(w.reads, 1);
    /* No interest: a byte waits, nothing is called. */
    assert_int_equal(ev_io_modify(loop, &w.io, 0), 0);
    assert_int_equal(write(w.fds[1], "y", 1), 1);
    ev_loop_no_wait(loop);
    assert_true(ev_loop_once(loop) >= 0);
    assert_int_equal(w.reads, 1);
    assert_int_equal(ev_io_modify(loop, &w.io, EPOLLIN), 0);
    run_until_count(loop, &w.reads, 2);
    assert_int_equal(w.reads, 2);
    ev_io_stop(loop, &w.io);
    assert_false(w.io.active);
    close(w.fds[0]);
    close(w.fds[1]);
    ev_loop_free(loop);
}

/* Two descriptors ready in one batch; the first's callback stops and frees the second. */
static void test_removal_during_callback(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct pipe_watch *first = calloc(1, sizeof(*first));
    struct pipe_watch *second = calloc(1, sizeof(*second));
    open_pipe(first);
    open_pipe(second);
    assert_int_equal(ev_io_start(loop, &first->io, first->fds[0], EPOLLIN, on_readable, first), 0);
    assert_int_equal(ev_io_start(loop, &second->io, second->fds[0], EPOLLIN, on_readable, second),
                     0);
    first->victim = second;
    second->victim = first;
    assert_int_equal(write(first->fds[1], "a", 1), 1);
    assert_int_equal(write(second->fds[1], "b", 1), 1);
    ev_loop_no_wait(loop);
    assert_true(ev_loop_once(loop) >= 0);
    /* Exactly one ran; it stopped the other, whose pending event was dropped. */
    assert_int_equal(first->reads + second->reads, 1);
    assert_true(!first->io.active || !second->io.active);
    for (int i = 0; i < 2; i++) {
        ev_loop_no_wait(loop);
        assert_true(ev_loop_once(loop) >= 0);
    }
    assert_int_equal(first->reads + second->reads, 1);
    struct pipe_watch *w[2] = { first, second };
    for (int i = 0; i < 2; i++) {
        ev_io_stop(loop, &w[i]->io);
        close(w[i]->fds[0]);
        close(w[i]->fds[1]);
        free(w[i]);
    }
    ev_loop_free(loop);
}

/* A timer's callback cancels another that is due in the same pass. */
struct canceller {
    struct ev_timer timer;
    struct ev_timer *victim;
    int fired;
};

static void cancel_victim(struct ev_loop *loop, struct ev_timer *t)
{
    struct canceller *c = t->data;
    c->fired++;
    if (c->victim != NULL)
        ev_timer_cancel(loop, c->victim);
}

static void test_timer_cancels_due_timer(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct canceller a = { .fired = 0 }, b = { .fired = 0 };
    ev_timer_init(&a.timer, cancel_victim, &a);
    ev_timer_init(&b.timer, cancel_victim, &b);
    a.victim = &b.timer;
    b.victim = &a.timer;
    double past = clock_mono() - 1;
    ev_timer_arm(loop, &a.timer, past);
    ev_timer_arm(loop, &b.timer, past + 0.5);
    ev_loop_no_wait(loop);
    assert_true(ev_loop_once(loop) >= 0);
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 0);
    assert_int_equal(ev_loop_timer_count(loop), 0);
    ev_loop_free(loop);
}

/* A timer re-arming itself in the past runs once per turn, not forever. */
static void rearm_now(struct ev_loop *loop, struct ev_timer *t)
{
    int *fired = t->data;
    (*fired)++;
    ev_timer_arm(loop, t, clock_mono() - 1);
}

static void test_rearm_in_callback_waits_a_turn(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    int fired = 0;
    struct ev_timer t;
    ev_timer_init(&t, rearm_now, &fired);
    ev_timer_arm(loop, &t, clock_mono() - 1);
    ev_loop_no_wait(loop);
    assert_true(ev_loop_once(loop) >= 0);
    assert_int_equal(fired, 1);
    ev_loop_no_wait(loop);
    assert_true(ev_loop_once(loop) >= 0);
    assert_int_equal(fired, 2);
    ev_timer_cancel(loop, &t);
    ev_loop_free(loop);
}

/* 10,000 timers (one per connection), moved at random, fire in deadline order. */
#define MANY 10000

struct many_state {
    double last;
    int fired;
    int out_of_order;
};

static void many_fire(struct ev_loop *loop, struct ev_timer *t)
{
    (void)loop;
    struct many_state *s = *(struct many_state **)t->data;
    if (t->deadline < s->last)
        s->out_of_order++;
    s->last = t->deadline;
    s->fired++;
}

static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_ten_thousand_timers(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct ev_timer *timers = calloc(MANY, sizeof(*timers));
    struct many_state s = { .last = 0, .fired = 0, .out_of_order = 0 };
    struct many_state *sp = &s;
    double base = clock_mono() - 100;   /* all in the past: one pass fires them all */
    for (int i = 0; i < MANY; i++) {
        ev_timer_init(&timers[i], many_fire, &sp);
        assert_int_equal(ev_timer_arm(loop, &timers[i], base + (rng() % 50000) / 1000.0), 0);
    }
    /* Every timer moves a few times (a command restarting the idle deadline). */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < MANY; i++)
            ev_timer_arm(loop, &timers[(int)(rng() % MANY)], base + (rng() % 50000) / 1000.0);
    /* A tenth are cancelled (connections closing). */
    for (int i = 0; i < MANY; i += 10)
        ev_timer_cancel(loop, &timers[i]);
    assert_int_equal(ev_loop_timer_count(loop), MANY - MANY / 10);
    ev_loop_no_wait(loop);
    assert_true(ev_loop_once(loop) >= 0);
    assert_int_equal(s.fired, MANY - MANY / 10);
    assert_int_equal(s.out_of_order, 0);
    assert_int_equal(ev_loop_timer_count(loop), 0);
    free(timers);
    ev_loop_free(loop);
}

/* ev_loop_run: the before-wait hook runs each turn and may stop the loop. */
static void count_and_stop(struct ev_loop *loop, void *arg)
{
    int *turns = arg;
    if (++*turns == 3)
        ev_loop_stop(loop);
    ev_loop_no_wait(loop);
}

static void test_run_and_stop(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    int turns = 0;
    ev_loop_set_before_wait(loop, count_and_stop, &turns);
    assert_int_equal(ev_loop_run(loop), 0);
    assert_int_equal(turns, 3);
    assert_true(ev_loop_stopping(loop));
    ev_loop_free(loop);
}

/* With nothing due, max_wait bounds a wait. */
static void test_max_wait_bounds_idle_wait(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    ev_loop_set_max_wait(loop, 20);
    double before = clock_mono();
    assert_true(ev_loop_once(loop) >= 0);
    double took = clock_mono() - before;
    assert_true(took >= 0.015);
    assert_true(took < 30.0);
    ev_loop_free(loop);
}

/* A zeroed watch or timer (a calloc'd owner) is inert: stop and cancel leave the loop alone. */
static void test_zeroed_structs_are_inert(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new();
    struct ev_timer armed, zero_timer = { 0 };
    struct ev_io zero_io = { 0 };
    int fired = 0;
    ev_timer_init(&armed, rearm_now, &fired);
    ev_timer_arm(loop, &armed, clock_mono() + 3600);
    assert_false(ev_timer_armed(&zero_timer));
    ev_timer_cancel(loop, &zero_timer);
    ev_io_stop(loop, &zero_io);
    assert_int_equal(ev_loop_timer_count(loop), 1);
    assert_true(ev_timer_armed(&armed));
    ev_timer_cancel(loop, &armed);
    ev_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_deadline_order),
        cmocka_unit_test(test_cancel_and_move),
        cmocka_unit_test(test_fd_callbacks_and_modify),
        cmocka_unit_test(test_removal_during_callback),
        cmocka_unit_test(test_timer_cancels_due_timer),
        cmocka_unit_test(test_rearm_in_callback_waits_a_turn),
        cmocka_unit_test(test_ten_thousand_timers),
        cmocka_unit_test(test_run_and_stop),
        cmocka_unit_test(test_max_wait_bounds_idle_wait),
        cmocka_unit_test(test_zeroed_structs_are_inert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
