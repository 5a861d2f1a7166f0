#include "daemon/popctl/popctl_drain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/runtime/clock.h"
#include "daemon/runtime/control_proto.h"
#include "daemon/popctl/popctl_client.h"

/* How often popctl asks for drain-status while it waits: a person sees it move. */
#define POLL_NS (100 * 1000000L)
/* Sessions cut at the deadline take a moment to close; then popctl gives up. */
#define CUT_GRACE_SECONDS 5.0

static void pause_a_moment(void)
{
    struct timespec pause = { 0, POLL_NS };
    nanosleep(&pause, NULL);
}

/*
 * One line, redrawn in place while popctl waits, only on a terminal: a
 * script or a log file gets the outcome line alone.
 */
struct progress {
    int on;
    int width;             /* of the line on screen now */
    char shown[128];
};

static void progress_show(struct progress *p, const char *text)
{
    if (!p->on || strcmp(text, p->shown) == 0)
        return;
    int n = (int)strlen(text);
    /* Back to the start, and spaces over what a longer line left behind. */
    printf("\r%s%*s", text, p->width > n ? p->width - n : 0, "");
    fflush(stdout);
    p->width = n;
    snprintf(p->shown, sizeof(p->shown), "%s", text);
}

static void progress_clear(struct progress *p)
{
    if (p->on && p->width > 0) {
        printf("\r%*s\r", p->width, "");
        fflush(stdout);
    }
    p->width = 0;
}

/* --deadline S, --message TEXT, --no-wait into name=value arguments for the master. */
static int drain_args(int argc, char **argv, char *out[], char deadline[32], char message[256],
                      int *no_wait, int allow_message)
{
    int n = 1;
    out[0] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--deadline") == 0 && i + 1 < argc) {
            snprintf(deadline, 32, "deadline=%s", argv[++i]);
            out[n++] = deadline;
        } else if (allow_message && strcmp(argv[i], "--message") == 0 && i + 1 < argc) {
            snprintf(message, 256, "message=%s", argv[++i]);
            out[n++] = message;
        } else if (allow_message && strcmp(argv[i], "--no-wait") == 0) {
            *no_wait = 1;
        } else {
            return -1;
        }
    }
    out[n] = NULL;
    return n;
}

/*
 * How a drain ended, for people (one line; failures on stderr) or for
 * scripts with --json: {"status": EXIT, "result": "drained"|"cut"|"stuck"|
 * "undrained"|"draining" (drain), "stopped"|"running" (stop), "sessions": N,
 * "cut": N, "message": "..."}.
 */
static int drain_outcome(int json, int exit_status, const char *result, long sessions, long cut,
                         const char *text)
{
    if (json) {
        printf("{\"status\": %d, \"result\": \"%s\", \"sessions\": %ld, \"cut\": %ld, "
               "\"message\": ", exit_status, result, sessions, cut);
        popctl_json_string(text);
        printf("}\n");
    } else {
        fprintf(exit_status == EXIT_OK || strcmp(result, "cut") == 0 ? stdout : stderr, "%s\n",
                text);
    }
    return exit_status;
}

/*
 * Ask drain-status until every session is gone (exit 0), the master cut
 * the last ones at the deadline (exit 1, with the count), or an undrain
 * ended the drain (exit 1). Bounded: the deadline plus a grace.
 */
static int wait_for_sessions(const struct config *cfg, int json)
{
    struct answer *a = popctl_answer_new();
    struct progress p = { .on = !json && isatty(STDOUT_FILENO) };
    char *status_argv[] = { "drain-status", NULL };
    char text[128];
    double give_up = -1;
    int exit_status;
    for (;;) {
        if (popctl_request(cfg, 1, status_argv, a, &exit_status) == -1) {
            progress_clear(&p);
            return exit_status;
        }
        long sessions = strtol(popctl_field(a, 0, "sessions"), NULL, 10);
        long logged_in = strtol(popctl_field(a, 0, "logged_in"), NULL, 10);
        long cut = strtol(popctl_field(a, 0, "cut"), NULL, 10);
        double left = strtod(popctl_field(a, 0, "deadline_left"), NULL);
        if (strcmp(popctl_field(a, 0, "draining"), "yes") != 0) {
            progress_clear(&p);
            return drain_outcome(json, EXIT_FAILED, "undrained", sessions, cut,
                                 "popctl: the drain was ended (undrain) before all sessions "
                                 "were gone");
        }
        if (sessions == 0) {
            progress_clear(&p);
            if (cut > 0) {
                snprintf(text, sizeof(text), "drained: %ld session(s) cut at the deadline", cut);
                return drain_outcome(json, EXIT_FAILED, "cut", 0, cut, text);
            }
            return drain_outcome(json, EXIT_OK, "drained", 0, 0, "drained: no sessions left");
        }
        if (give_up < 0 || left > 0)
            give_up = clock_mono() + left + CUT_GRACE_SECONDS;
        if (clock_mono() > give_up) {
            progress_clear(&p);
            snprintf(text, sizeof(text), "%ld session(s) still open after the deadline",
                     sessions);
            return drain_outcome(json, EXIT_FAILED, "stuck", sessions, cut, text);
        }
        snprintf(text, sizeof(text), "draining: %ld session(s) left (%ld logged in), "
                 "deadline in %.0fs", sessions, logged_in, left + 0.49);
        progress_show(&p, text);
        pause_a_moment();
    }
}

/*
 * drain: the master refuses new connections, closes sessions not logged
 * in, and lets the logged-in ones finish (worker/conn_drain.h); popctl
 * then waits for them, showing how many are left on a terminal. Waiting is
 * what `popctl drain && reboot` needs; --no-wait is for a caller that
 * watches drain-status itself.
 */
int popctl_drain(const struct config *cfg, int argc, char **argv, int json)
{
    struct answer *a = popctl_answer_new();
    char *args[8], deadline[32], message[256];
    int no_wait = 0, exit_status;
    int n = argc <= 6 ? drain_args(argc, argv, args, deadline, message, &no_wait, 1) : -1;
    if (n == -1) {
        fprintf(stderr, "usage: popctl drain [--deadline SECONDS] [--message TEXT] "
                        "[--no-wait]\n");
        return EXIT_USAGE;
    }
    if (popctl_request(cfg, n, args, a, &exit_status) == -1)
        return exit_status;
    if (a->status != CONTROL_OK) {
        fprintf(stderr, "popctl: drain failed: %s\n", a->message);
        return EXIT_FAILED;
    }
    if (no_wait) {
        long open_now = strtol(a->message, NULL, 10);
        char text[64];
        snprintf(text, sizeof(text), "draining: %ld session(s) open", open_now);
        return drain_outcome(json, EXIT_OK, "draining", open_now, 0, text);
    }
    return wait_for_sessions(cfg, json);
}

int popctl_drain_status(const struct config *cfg, int argc, char **argv, int json)
{
    struct answer *a = popctl_answer_new();
    int exit_status;
    if (argc != 1) {
        fprintf(stderr, "usage: popctl drain-status\n");
        return EXIT_USAGE;
    }
    if (popctl_request(cfg, argc, argv, a, &exit_status) == -1)
        return exit_status;
    if (json) {
        popctl_print_json(a);
        return a->status == CONTROL_OK ? EXIT_OK : EXIT_FAILED;
    }
    if (a->status != CONTROL_OK || a->rows != 1) {
        fprintf(stderr, "popctl: drain-status: %s\n", a->message);
        return EXIT_FAILED;
    }
    int draining = strcmp(popctl_field(a, 0, "draining"), "yes") == 0;
    printf("draining: %s\nsessions: %s (%s logged in)\n", draining ? "yes" : "no",
           popctl_field(a, 0, "sessions"), popctl_field(a, 0, "logged_in"));
    if (draining)
        printf("deadline in: %ss\ncut at the deadline: %s\nidle limit: %ss\n",
               popctl_field(a, 0, "deadline_left"), popctl_field(a, 0, "cut"),
               popctl_field(a, 0, "idle_limit"));
    return EXIT_OK;
}

/* stop: a drain by another name, then the master exits; wait for it to be gone. */
int popctl_stop(const struct config *cfg, int argc, char **argv, int json)
{
    struct answer *a = popctl_answer_new();
    char *args[8], deadline[32], unused[256];
    int no_wait = 0, exit_status;
    int n = argc <= 3 ? drain_args(argc, argv, args, deadline, unused, &no_wait, 0) : -1;
    if (n == -1) {
        fprintf(stderr, "usage: popctl stop [--deadline SECONDS]\n");
        return EXIT_USAGE;
    }
    long seconds = n == 2 ? strtol(deadline + strlen("deadline="), NULL, 10)
                          : cfg->shutdown_timeout;
    if (popctl_request(cfg, n, args, a, &exit_status) == -1)
        return exit_status;
    /* The master closes the socket last, as it exits. */
    double give_up = clock_mono() + (double)seconds + 15.0;
    while (clock_mono() < give_up) {
        int fd = popctl_connect(cfg);
        if (fd == -1)
            return drain_outcome(json, EXIT_OK, "stopped", 0, 0, "fastpopd stopped");
        close(fd);
        pause_a_moment();
    }
    char text[96];
    snprintf(text, sizeof(text), "popctl: fastpopd is still running %lds after stop",
             seconds + 15);
    return drain_outcome(json, EXIT_FAILED, "running", -1, 0, text);
}
