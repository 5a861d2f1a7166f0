/*
 * The one event loop of fastpop's long-running processes (the worker, the
 * auth helper, the master), after Redis 2.0's `ae`: epoll for descriptors,
 * and one-shot timers on a binary min-heap keyed by a deadline of the one
 * clock (clock_mono(), daemon/runtime/clock.h). A new deadline is one
 * ev_timer_arm() call; nobody merges waits by hand.
 *
 * Timers and descriptor watches are structs the owner embeds (in its
 * connection, request, session): the loop allocates nothing per watch and
 * reaches the owner through `data`. A timer keeps its heap index, so
 * arming, moving (a connection's idle deadline on every command) and
 * cancelling are O(log n) with tens of thousands of timers.
 *
 * A zeroed struct ev_io or ev_timer is a valid one that is not watched or
 * armed, so owners allocated with calloc need no init before a stop/cancel.
 *
 * Single-threaded: only the thread running the loop calls these.
 */
#ifndef FASTPOP_EVENT_LOOP_H
#define FASTPOP_EVENT_LOOP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct ev_io;
struct ev_timer;

/* events: the epoll bits that are ready (EPOLLIN, EPOLLOUT, EPOLLHUP, ...). */
typedef void ev_io_fn(struct ev_loop *loop, struct ev_io *io, uint32_t events);
/* The timer is disarmed when this runs: the callback may arm it again. */
typedef void ev_timer_fn(struct ev_loop *loop, struct ev_timer *timer);
/* Called before each wait (after the previous batch's events and timers). */
typedef void ev_hook_fn(struct ev_loop *loop, void *arg);

struct ev_io {
    int active;             /* watched now */
    int fd;
    ev_io_fn *on_event;
    void *data;             /* the owner's */
};

struct ev_timer {
    double deadline;        /* clock_mono() seconds, while armed */
    size_t heap_slot;       /* its heap index + 1 while armed; 0: not armed */
    ev_timer_fn *on_fire;
    void *data;             /* the owner's */
};

/* NULL (errno set) if epoll cannot be had. */
struct ev_loop *ev_loop_new(void);
/* Closes the epoll fd; watched descriptors and armed timers stay the owners'. */
void ev_loop_free(struct ev_loop *loop);

/*
 * Watch fd for events (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLEXCLUSIVE...).
 * 0, or -1 with errno from epoll_ctl.
 */
int ev_io_start(struct ev_loop *loop, struct ev_io *io, int fd, uint32_t events,
                ev_io_fn *on_event, void *data);
/* Change what a watched descriptor waits for. */
int ev_io_modify(struct ev_loop *loop, struct ev_io *io, uint32_t events);
/*
 * Stop watching (before the fd is closed). Safe inside any callback, also
 * for another watch whose event is still pending in this batch: that event
 * is dropped, so the owner may free io right after this call.
 */
void ev_io_stop(struct ev_loop *loop, struct ev_io *io);

/* A disarmed timer calling on_fire with data. */
void ev_timer_init(struct ev_timer *timer, ev_timer_fn *on_fire, void *data);
/*
 * Fire at deadline (clock_mono() seconds; a past one fires on the next
 * turn). Arms a disarmed timer or moves an armed one. -1 (ENOMEM) only
 * when the heap cannot grow.
 */
int ev_timer_arm(struct ev_loop *loop, struct ev_timer *timer, double deadline);
/* The same, counted from now. */
int ev_timer_arm_in(struct ev_loop *loop, struct ev_timer *timer, double seconds);
/* Disarm; nothing if it is not armed. */
void ev_timer_cancel(struct ev_loop *loop, struct ev_timer *timer);
int ev_timer_armed(const struct ev_timer *timer);
/* How many timers are armed. */
size_t ev_loop_timer_count(const struct ev_loop *loop);

/* Run fn before each wait (one hook; NULL removes it). */
void ev_loop_set_before_wait(struct ev_loop *loop, ev_hook_fn *fn, void *arg);
/*
 * The longest wait with no timer due, in milliseconds (-1: unbounded, the
 * default). A safety net for state that is polled, not signalled.
 */
void ev_loop_set_max_wait(struct ev_loop *loop, int ms);
/*
 * Wait with this signal mask (epoll_pwait): signals blocked elsewhere are
 * let in only while waiting, so a handler's flag is seen before the next
 * wait. NULL: keep the process mask.
 */
void ev_loop_set_wait_mask(struct ev_loop *loop, const sigset_t *mask);
/* The next wait only polls: work was queued for right after it. */
void ev_loop_no_wait(struct ev_loop *loop);

/*
 * One turn: wait for events (at most until the nearest timer), run their
 * callbacks, then the timers that are due. The number of descriptor events,
 * or -1 with errno if epoll_wait failed (EINTR is not a failure: a
 * signal's turn, 0 events).
 */
int ev_loop_once(struct ev_loop *loop);
/*
 * Run the timers due at now (ev_loop_once() passes clock_mono(); a test
 * passes a later time to skip ahead). Only as many as were armed when the
 * pass began: one re-armed in the past waits for the next pass.
 */
void ev_loop_fire_timers(struct ev_loop *loop, double now);
/*
 * The time the timers of the current pass were compared with: a timer's
 * callback judges its deadline by this, not by a fresh clock reading.
 */
double ev_loop_now(const struct ev_loop *loop);
/*
 * Turns (each after the before-wait hook) until ev_loop_stop(); it may be
 * called again after that (the helper after a reload). -1 as ev_loop_once.
 */
int ev_loop_run(struct ev_loop *loop);
/* ev_loop_run() returns after the current turn. */
void ev_loop_stop(struct ev_loop *loop);
int ev_loop_stopping(const struct ev_loop *loop);

#endif
